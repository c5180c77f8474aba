"""The local hub cache: refs a folder added with add_to_cache resolves, offline detection, env restore."""

from __future__ import annotations

import os

import pytest

from ungrok.errors import UngrokError
from ungrok.hub.cache import (
    UnknownModel,
    add_to_cache,
    available_revisions,
    cached_refs,
    hub_env,
    hub_env_for,
    hub_refs,
    is_offline,
)


def test_added_folders_are_refs_of_the_cache(tmp_path):
    src = tmp_path / "files"
    src.mkdir()
    (src / "config.json").write_text("{}")
    cache = tmp_path / "cache"
    assert cached_refs("org/m", cache) is None
    snap = add_to_cache(cache, "org/m", "step5", src)
    add_to_cache(cache, "org/m", "step6", src)  # same bytes: one blob, same snapshot id differs by revision
    refs = cached_refs("org/m", cache)
    assert {"step5", "step6", snap.name} <= refs and len(refs) == 4
    assert (snap / "config.json").read_text() == "{}" and (snap / "config.json").is_symlink()
    assert len(list((cache / "models--org--m" / "blobs").iterdir())) == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(UngrokError, match="no files"):
        add_to_cache(cache, "org/m", "x", tmp_path / "empty")


def test_hub_env_sets_and_restores_variables_and_constants(tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    before = hc.HF_HUB_CACHE
    env = hub_env_for(True)
    assert env == {"HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    with hub_env(env):
        assert is_offline() and os.environ["HF_HUB_OFFLINE"] == "1" and str(tmp_path) == hc.HF_HUB_CACHE
        with hub_env({"HF_HUB_OFFLINE": "0"}):
            assert not is_offline()
        assert is_offline()
    assert not is_offline() and "HF_HUB_OFFLINE" not in os.environ and before == hc.HF_HUB_CACHE
    assert "HF_HUB_OFFLINE" not in hub_env_for(None)


def test_offline_availability_is_the_caches(tmp_path, monkeypatch):
    src = tmp_path / "files"
    src.mkdir()
    (src / "config.json").write_text("{}")
    add_to_cache(tmp_path / "cache", "org/m", "step5", src)
    with hub_env({"HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}):
        assert "step5" in available_revisions("org/m")
        with pytest.raises(UnknownModel, match="org/x: not in the local hub cache"):
            available_revisions("org/x")


def test_online_refs_and_an_unknown_repository(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import RepositoryNotFoundError

    class Ref:
        def __init__(self, name):  # noqa: ANN001
            self.name = name

    class Refs:
        branches = [Ref("main"), Ref("step1000")]
        tags = [Ref("v1")]

    def fake(repo_id, **_):  # noqa: ANN001, ANN003, ANN202
        if repo_id == "org/none":
            e = RepositoryNotFoundError.__new__(
                RepositoryNotFoundError
            )  # its __init__ wants an HTTP response
            Exception.__init__(e, "404 Client Error: Repository Not Found for url ...")
            raise e
        if repo_id == "org/down":
            raise ConnectionError("no route to host")
        return Refs()

    monkeypatch.setattr(huggingface_hub, "list_repo_refs", fake)
    assert hub_refs("org/m") == {"main", "step1000", "v1"}
    assert hub_refs("org/down") is None  # no answer: loading will tell, per revision
    with pytest.raises(UnknownModel, match="org/none: unknown model id on the hub"):
        hub_refs("org/none")
