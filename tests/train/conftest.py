"""A small storyworld corpus and a tiny run config shared by the training tests."""

from __future__ import annotations

import pytest
import torch
import yaml

from ungrok.corpus.storyworld import StoryworldConfig, build_storyworld
from ungrok.train.config import parse_config


@pytest.fixture
def default_threads():
    """Opt a test out of one_thread: it runs at torch's default thread count."""


@pytest.fixture
def one_thread(request):
    """Tiny models gain nothing from threads, and on a shared or oversubscribed machine (pytest -n 2
    on 2 cores) OpenMP barriers make them many times slower. Modules opt in with
    `pytestmark = pytest.mark.usefixtures("one_thread")`; a test that asks for default_threads is left alone."""
    if "default_threads" in request.fixturenames:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("train-corpus") / "sw"
    build_storyworld(out, StoryworldConfig(tokens=200_000, seed=0))
    return out


def tiny_doc(**changes) -> dict:
    """A seconds-long run: tiny preset, 4 x 32-token rows, checkpoints every 5 steps."""
    doc = {
        "model": {"preset": "tiny"},
        "sampler": {"context": 32, "batch_size": 4, "steps": 20},
        "checkpoints": {"rules": [{"start": 0, "every": 5}]},
        "probe_every": 4,
        "probe_dense_until": 2,
        "seed": 7,
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return doc


@pytest.fixture
def tiny_config():
    return lambda **changes: parse_config(tiny_doc(**changes))


@pytest.fixture
def tiny_yaml(tmp_path):
    def write(**changes):
        path = tmp_path / "train.yaml"
        path.write_text(yaml.safe_dump(tiny_doc(**changes)))
        return path

    return write
