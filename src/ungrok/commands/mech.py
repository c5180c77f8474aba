"""`ungrok mech RUN_DIR --rule R`: the mechanism instruments over a run's checkpoints
(docs/method.md §11, §13)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from ungrok.mech.store import ALL_INSTRUMENTS
from ungrok.progress import output_console


def _f(x: float | None, fmt: str = "+.2f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _values(rows: Sequence[Mapping[str, Any]], step: int, instrument: str) -> dict[tuple[str, str], float]:
    return {(r["component"], r["metric"]): r["value"] for r in rows
            if r["step"] == step and r["instrument"] == instrument}


def _top_head(heads: Mapping[tuple[str, str], float]) -> tuple[str, dict[str, float]] | None:
    """The head with the largest |attribution| (first in L, H order on ties), and its metrics."""
    names = sorted({c for c, m in heads if m == "attribution"},
                   key=lambda c: tuple(int(x) for x in c[1:].split("H")))
    best = None
    for c in names:
        a = heads[(c, "attribution")]
        if not math.isnan(a) and (best is None or abs(a) > abs(heads[(best, "attribution")])):
            best = c
    if best is None:
        return None
    return best, {m: v for (c, m), v in heads.items() if c == best}


def _best_patch(patch: Mapping[tuple[str, str], float]) -> str:
    """The single component with the largest recovery at this destination ("all" is not single)."""
    single = [(v, c) for (c, _m), v in patch.items() if c != "all" and not math.isnan(v)]
    if not single:
        return "-"
    v, c = max(single, key=lambda t: t[0])
    return f"{c} {v:+.2f}"


def rule_digest(rows: Sequence[Mapping[str, Any]], step: int, cm: float | None) -> dict[str, str]:
    """One line of the summary table: what the store says about one checkpoint."""
    dec = _values(rows, step, "decomp")
    heads = _values(rows, step, "heads")
    decode = _values(rows, step, "decode")
    top = _top_head(heads)
    blocks = sorted((int(c.removeprefix("block")), v) for (c, m), v in decode.items() if m == "accuracy")
    return {
        "CM": _f(cm),
        "gap": _f(dec.get(("gap", "nats"))),
        "embed": _f(dec.get(("embed", "nats"))),
        "ctx": _f(dec.get(("ctx", "nats"))),
        "top head": "-" if top is None else top[0],
        "share": "-" if top is None else _f(top[1].get("share"), ".2f"),
        "ablation ΔCM": "-" if top is None else _f(top[1].get("ablation_dcm")),
        "OV cos": "-" if top is None else _f(top[1].get("ov_cos")),
        "best patch": _best_patch(_values(rows, step, "patch")),
        "decode (last block)": _f(blocks[-1][1], ".2f") if blocks else "-",
    }


def ngram_letters(path: Path | None, run: str, rule: str, cfg: Any = None) -> str:
    """The classifier's letters for the rule under the 2- and 5-gram baselines (cfg: the run's
    constants, from `run_classifier`; None: the defaults)."""
    if path is None or not path.is_file():
        return "-"
    import pyarrow.parquet as pq

    from ungrok.errors import UngrokError
    from ungrok.fate.config import DEFAULT_CONFIG
    from ungrok.fate.summary import summarize
    from ungrok.mech.ngram import ngram_run_name

    rows = [r for r in pq.read_table(path).to_pylist() if r["family"] == rule]
    if not rows:
        return f"the battery does not probe {rule}"
    try:
        records = summarize(rows, None, cfg or DEFAULT_CONFIG)
    except UngrokError as e:  # e.g. a run shorter than the classifier's min_step: shown, not fatal
        return f"unclassifiable ({str(e).split(': ', 1)[-1]})"
    idx = {r["run"]: r["letter"] for r in records}
    return ", ".join(f"{n}-gram {idx.get(ngram_run_name(run, n), '-')}" for n in (2, 5))


def mech(
    run_dir: Annotated[Path, typer.Argument(help="Training run folder (checkpoints/, config.json).")],
    rule: Annotated[list[str], typer.Option("--rule", help="Rule to analyse (repeatable).")],
    battery: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Battery the run was scored with (default: the experiment's, for a seed folder)."),
    ] = None,
    tokenizer: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="tokenizer.json of the run (default: its corpus's, from config.json)."),
    ] = None,
    only: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help=f"Comma-separated instruments: {', '.join(ALL_INSTRUMENTS)}."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Recompute results already in the store.")] = False,
    rules_dir: Annotated[
        Optional[Path], typer.Option("--rules-dir", help="Folder of user rule YAML files.")  # noqa: UP045
    ] = None,
) -> None:
    """Decomposition, decodability, heads, patching, direction removal and the n-gram baseline, per
    checkpoint, into RUN_DIR/traj.mech.parquet (and traj.ngram.parquet); rerun to resume."""
    from ungrok.mech.run import mech_run, parse_instruments, run_classifier

    con = output_console()
    insts = parse_instruments(only)
    cfg, source = run_classifier(run_dir)  # the frozen registry's constants when there is one
    s = mech_run(run_dir, [r for x in rule for r in x.split(",") if r.strip()], battery=battery,
                 tokenizer=tokenizer, instruments=insts, force=force, rules_dir=rules_dir,
                 log=lambda m: con.print(m, soft_wrap=True, highlight=False), min_step=cfg.min_step)
    done = ", ".join(f"{i} {n}" for i, n in s.computed.items() if n)
    kept = sum(s.skipped.values())
    con.print(f"{s.run}: {len(s.checkpoints)} checkpoints, {s.loads} loads in {s.seconds:.1f}s; computed "
              f"{done or 'nothing new'}" + (f"; {kept} unit(s) already in the store" if kept else "")
              + f" -> {s.store}" + (f", {s.ngram}" if s.ngram else ""), soft_wrap=True, highlight=False)
    con.print(f"classifier constants: {source or 'the defaults (no registry.json or experiment.yaml)'} "
              f"(min_step {cfg.min_step}: the CM peak is sought from there)", soft_wrap=True, highlight=False)
    rows = _store_rows(s.store, s.run)
    for r, rr in s.rules.items():
        mine = [x for x in rows if x["rule"] == r]
        points = [("peak", rr.peak), ("final", rr.final)] if rr.peak is not None else [("final", rr.final)]
        table = Table(title=f"{r}  ({s.run})", caption=f"n-gram baseline: {ngram_letters(s.ngram, s.run, r, cfg)}")
        cols = ["", "step", "CM", "gap", "embed", "ctx", "top head", "share", "ablation ΔCM", "OV cos",
                "best patch", "decode (last block)"]
        for c in cols:
            table.add_column(c, justify="left" if c in ("", "top head", "best patch") else "right")
        for label, step in points:
            d = rule_digest(mine, step, rr.cms.get(step))
            table.add_row(label, str(step), *(d[c] for c in cols[2:]))
        con.print(table)


def _store_rows(path: Path, run: str) -> list[dict[str, Any]]:
    from ungrok.mech.store import read_mech

    table = read_mech(path)
    return [] if table is None else [r for r in table.to_pylist() if r["run"] == run]


def register(app: typer.Typer) -> None:
    """Add `mech` to the top-level app."""
    app.command("mech")(mech)
