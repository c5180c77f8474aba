"""One task: split single-token targets are noted, a failed load or score fails, nothing raises."""

from __future__ import annotations

from ungrok.errors import UngrokError
from ungrok.hub import task as task_mod
from ungrok.hub.task import SuiteTask, score_task, split_targets
from ungrok.probes.battery import Battery
from ungrok.probes.margins import MarginPrompts

from . import builders as B


class Splitter:
    """ " she" and " himself" are 2 tokens; everything else 1 token per word."""

    vocab_size = 100
    unk_id = None

    def encode(self, text: str) -> list[int]:
        if text in (" she", " himself"):
            return [1, 2]
        return list(range(len(text.split())))


def test_split_single_word_targets_are_noted_multi_word_ones_are_not():
    items = [it for it in B.battery().items[:2]]
    extra = dict(items[0], item_id="x/1", correct=" an egg", distractor=" a egg")
    battery = Battery((*items, extra))
    ps = MarginPrompts("r", " himself", " herself", ("p",), ())
    notes = split_targets(battery, [ps], Splitter())
    assert notes == ["target ' she' splits into 2 tokens: scored as multi-token",
                     "target ' himself' splits into 2 tokens: scored as multi-token"]


def test_a_failed_load_or_any_other_error_fails_and_nothing_raises(monkeypatch):
    job = SuiteTask("org/m", "step5", 5, B.battery(), device="cpu")

    def missing(*_a, **_k):  # noqa: ANN002, ANN003, ANN202
        raise UngrokError("cannot load org/m at revision 'step5': weights truncated")

    monkeypatch.setattr(task_mod, "load_hf", missing)
    res = score_task(job)  # the planner set aside what is not there: a load that fails here is a failure
    assert (res.status, res.why) == ("failed", "cannot load org/m at revision 'step5': weights truncated")
    assert res.seconds is not None and res.peak_rss_mib > 0 and res.logp_correct is None

    def broken(*_a, **_k):  # noqa: ANN002, ANN003, ANN202
        raise MemoryError("CUDA out of memory. Tried to allocate 2 GiB\ndetails")

    monkeypatch.setattr(task_mod, "load_hf", broken)
    res = score_task(job)
    assert (res.status, res.why) == ("failed", "MemoryError: CUDA out of memory. Tried to allocate 2 GiB")
    import torch

    res = score_task(SuiteTask("org/m", "step5", 5, B.battery(), device="cuda:9"))
    assert res.status == "failed" and ("'cuda:9'" in res.why or torch.cuda.is_available())


def test_a_model_caught_in_a_reference_cycle_is_still_freed(offline, monkeypatch):
    import weakref

    from ungrok.probes.models import load_hf

    refs = []

    def cyclic(*a, **k):  # noqa: ANN002, ANN003, ANN202
        adapter, tok = load_hf(*a, **k)
        object.__setattr__(adapter.model, "_self", [adapter.model])  # refcounting alone never frees it
        refs.append(weakref.ref(adapter.model))
        return adapter, tok

    monkeypatch.setattr(task_mod, "load_hf", cyclic)
    res = score_task(SuiteTask("org/neox-s", "step128", 128, B.battery(), device="cpu"))
    assert res.status == "scored" and refs and refs[0]() is None
