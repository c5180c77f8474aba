"""A local hub cache of designed tiny GPT-NeoX models (built once per session) and offline mode."""

from __future__ import annotations

import pytest

from ungrok.probes.battery import save_battery

from . import builders


@pytest.fixture(scope="session")
def designed_cache(tmp_path_factory):  # noqa: ANN001, ANN201
    """(hub cache folder, battery file) for the models of `builders`."""
    root = tmp_path_factory.mktemp("hubsuite")
    cache = builders.build_cache(root)
    path = root / "battery.jsonl"
    save_battery(builders.battery(), path)
    return cache, path


@pytest.fixture
def cache_env(designed_cache, monkeypatch):  # noqa: ANN001, ANN201
    """HF_HUB_CACHE at the designed cache, HF_HUB_OFFLINE unset: the suite's offline flag must do it."""
    import huggingface_hub.constants as hc

    cache, battery = designed_cache
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    return cache, battery


@pytest.fixture
def offline(cache_env, monkeypatch):  # noqa: ANN001, ANN201
    """As cache_env, with HF_HUB_OFFLINE=1 in the environment and in huggingface_hub's constants."""
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    return cache_env
