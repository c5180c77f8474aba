"""examples/paper.yaml: it validates, carries the paper's exact hyperparameters (docs/method.md §1-§2,
§8), and runs for a handful of steps on tiny stand-in corpora through the override hook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import capture
from ungrok.experiment.spec import load_experiment

PAPER = Path(__file__).resolve().parents[2] / "examples" / "paper.yaml"
TS_CELLS = ["v1_repro", "databudget_dn5", "databudget_dn15", "kill_p437", "kill_p645", "kill_p1000",
            "ankill_p500", "ankill_p667", "ankill_p750", "ankill_p900", "ankill_p1000"]
WEB_CELLS = ["web_packed_v2", "web_dn5_v2", "web_dn15_v2", "ts_packed_armB", "rescue_d001", "rescue_d010",
             "rescue_d100", "rescue_d300", "rescue_d100_early", "rescue_d100_late"]


@pytest.fixture(scope="module")
def paper():
    return load_experiment(PAPER, check_files=False)


def test_paper_grid_has_the_papers_cells_and_hyperparameters(paper):
    from ungrok.train.config import parse_config
    from ungrok.train.schedule import checkpoint_steps

    assert set(paper.cells) == set(TS_CELLS) | set(WEB_CELLS) and len(paper.cells) == 21
    assert paper.seeds == [42, 43, 44] and paper.quarantined == [1042, 1043, 1044]
    for cell in paper.cells:
        cfg = parse_config({**paper.train_docs[cell], "seed": 42})
        m = cfg.model.resolve()
        assert (m.n_layer, m.n_embd, m.n_head, m.context, m.vocab_size) == (4, 256, 2, 2048, 8192)
        assert (cfg.sampler.context, cfg.sampler.batch_size, cfg.sampler.steps) == (2048, 32, 4400)
        assert cfg.checkpoints.dtype == "bfloat16"
        assert len(checkpoint_steps(cfg.checkpoints.rules, 4400)) == 114  # docs/method.md §1.4
        assert (cfg.probe_every, cfg.probe_dense_until) == (5, 50)
        o = cfg.optimizer
        arm = (o.matrix_lr, o.embed_lr, o.weight_decay, o.wd_decay)
        assert arm == ((0.04, 0.6, 0.2, "linear") if cell in TS_CELLS else (0.02, 0.2, 0.0, "none")), cell
        assert o.warmdown_start == 0.7
        budget = {"dn5": 57_500_000, "dn15": 17_250_000}
        want = next((v for k, v in budget.items() if cell.endswith(k) or cell.endswith(k + "_v2")), None)
        assert cfg.sampler.max_tokens == want, cell
    kills = {c: (s.kill.rule, s.kill.rate, s.kill.cues) for c, s in paper.cells.items() if s.kill}
    assert kills == {
        "kill_p437": ("pronoun_gender_ref", 0.437, "scan"), "kill_p645": ("pronoun_gender_ref", 0.645, "scan"),
        "kill_p1000": ("pronoun_gender_ref", 1.0, "scan"), "ankill_p500": ("det_an_choice", 0.5, "spec"),
        "ankill_p667": ("det_an_choice", 0.667, "spec"), "ankill_p750": ("det_an_choice", 0.75, "spec"),
        "ankill_p900": ("det_an_choice", 0.9, "spec"), "ankill_p1000": ("det_an_choice", 1.0, "spec"),
    }
    rescues = {
        c: (s.rescue.dose, s.rescue.window, s.rescue.gate_kind) for c, s in paper.cells.items() if s.rescue
    }
    assert rescues == {
        "rescue_d001": (0.01, None, "rescue"), "rescue_d010": (0.1, None, "rescue"),
        "rescue_d100": (1.0, None, "rescue"), "rescue_d300": (3.0, None, "rescue"),
        "rescue_d100_early": (1.0, "0:2400", "timing"), "rescue_d100_late": (1.0, "2800:", "timing"),
    }
    assert all(s.rescue.unit == 1.67175e-3 and s.rescue.parent == "web_packed_v2"
               for s in paper.cells.values() if s.rescue)
    assert [s.kill.gate for c, s in paper.cells.items() if c.startswith("ankill")] == ["ladder"] * 5


def test_paper_predictions_compile_against_the_grid(paper):
    from ungrok.prereg.predictions import Vocabulary, compile_predictions

    vocab = Vocabulary(families=frozenset(paper.rules) | _rule_names(), cells=tuple(paper.cells),
                       numbers=frozenset(paper.spec.cell_numbers))
    preds = {p.name: p for p in compile_predictions(paper.spec.predictions, vocab)}
    assert len(preds) == 40 and sum(p.falsifier for p in preds.values()) == 7
    assert preds["K2"].cells == ["v1_repro", "kill_p437", "kill_p645", "kill_p1000"]


def _rule_names() -> frozenset[str]:
    from ungrok.rules.registry import load_rules

    return frozenset(load_rules())


KEPT = ["v1_repro", "databudget_dn15", "web_packed_v2", "kill_p1000", "rescue_d100", "rescue_d100_early",
        "ankill_p1000"]


def _kept_predictions(paper) -> list:
    """The paper's predictions that govern only the cells this small run keeps."""
    from ungrok.prereg.predictions import Vocabulary, compile_predictions, governed_cells

    vocab = Vocabulary(families=_rule_names(), cells=tuple(paper.cells))
    raw = paper.spec.predictions
    return [r for r, p in zip(raw, compile_predictions(raw, vocab), strict=True)
            if set(governed_cells(p)) <= set(KEPT)]


def test_paper_grid_runs_a_few_steps_on_stand_in_corpora(paper, finished, tmp_path, battery, one_thread):
    from ungrok.experiment.run import run_experiment

    ts = str((finished.run / "cells" / "high" / "corpus").resolve())  # storyworld stand-ins
    web = str((finished.run / "cells" / "low" / "corpus").resolve())
    preds = _kept_predictions(paper)
    overrides = {
        "seeds": [42], "quarantined_seeds": None, "batteries": {"rvp31": str(battery)},
        "classifier": {"min_step": 0}, "predictions": preds,
        "train": {"model": {"preset": "tiny"}, "sampler": {"context": 32, "batch_size": 4, "steps": 6},
                  "checkpoints": {"dtype": "float32", "rules": [{"start": 0, "every": 3}]},
                  "probe_every": 3, "probe_dense_until": 0},
        "cells": {
            **{c: None for c in paper.cells if c not in KEPT},
            "v1_repro": {"corpus": ts},
            "databudget_dn15": {"corpus": ts, "train": {"sampler": {"max_tokens": 60_000}}},
            "web_packed_v2": {"corpus": web},
            "kill_p1000": {"kill": {"min_events": 3}},  # a 100k-token corpus: lower the scan's floor
            "rescue_d100_early": {"rescue": {"window": "0:3"}},
        },
    }
    console, buf = capture()
    run_experiment(PAPER, tmp_path / "run", overrides=overrides, console=console)
    run = tmp_path / "run"
    fates = json.loads((run / "fates.json").read_text())["records"]
    assert {r["cell"] for r in fates} == set(KEPT) and {r["seed"] for r in fates} == {42}
    gates = json.loads((run / "gates.json").read_text())
    assert {c: g["kind"] for c, g in gates.items()} == {
        "kill_p1000": "kill",
        "rescue_d100": "rescue",
        "rescue_d100_early": "timing",
        "ankill_p1000": "ladder",
    }
    ev = json.loads((run / "evidence.json").read_text())
    assert ev["cells"] == {"v1_repro": {"rate": 0.0}, "web_packed_v2": {"dose": 0.0}, "kill_p1000": {"rate": 1.0},
                           "rescue_d100": {"dose": 1.0}, "rescue_d100_early": {"dose": 1.0},
                           "ankill_p1000": {"rate": 1.0}}
    board = json.loads((run / "scoreboard.json").read_text())
    assert [o["name"] for o in board["outcomes"]] == [p["name"] for p in preds] and preds
    # the windowed rescue trains on the injected corpus, then switches to the plain base at step 3
    cfg = json.loads((run / "cells" / "rescue_d100_early" / "seed42" / "config.json").read_text())
    assert cfg["config"]["sampler"]["phase_b"]["switch_step"] == 3
    manifest = json.loads((run / "cells" / "kill_p1000" / "corpus" / "manifest.json").read_text())
    assert manifest["source"]["cues"]["mode"] == "scan"
    assert json.loads((run / "cells" / "databudget_dn15" / "seed42" / "config.json").read_text())[
        "config"]["sampler"]["max_tokens"] == 60_000
    assert (run / "report.html").is_file()
