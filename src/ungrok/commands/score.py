"""`ungrok score`: a battery (and rule margins) over a run's checkpoints, a hub model's revisions, or lm-eval logs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ungrok.commands import ScoreCompile, ScorePrecision
from ungrok.errors import UngrokError
from ungrok.progress import output_console


def _split_list(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [v.strip() for x in values for v in x.split(",") if v.strip()]


def score(
    battery: Annotated[Path, typer.Option(help="Battery JSONL file (e.g. the paper's rvp3.1).")],
    out: Annotated[Path, typer.Option("--out", help="Trajectory table (.parquet); resumed if it exists.")],
    run: Annotated[
        Optional[Path], typer.Option(help="Training run folder (its checkpoints/ are scored).")
    ] = None,
    tokenizer: Annotated[
        Optional[Path],
        typer.Option(help="tokenizer.json of --run (default: its corpus's, from config.json)."),
    ] = None,
    hf: Annotated[
        Optional[str], typer.Option(help="Hugging Face causal LM name, e.g. EleutherAI/pythia-70m.")
    ] = None,
    revisions: Annotated[
        Optional[str], typer.Option(help="Comma-separated revisions of --hf, e.g. step1000,step2000.")
    ] = None,
    run_name: Annotated[
        Optional[str], typer.Option(help="Value of the run column (default: run folder name or --hf name).")
    ] = None,
    margins: Annotated[
        Optional[list[str]],
        typer.Option(
            help="Rules whose CM/PM to score (repeat or comma-separate; default: every battery "
            "family with a margin section)."
        ),
    ] = None,
    no_margins: Annotated[bool, typer.Option("--no-margins", help="Score no margins.")] = False,
    rules_dir: Annotated[
        Optional[Path], typer.Option("--rules-dir", help="Folder of user rule YAML files.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dtype: Annotated[
        str, typer.Option(help="Hub models' weights: float32, or bfloat16 on a GPU.")
    ] = "float32",
    precision: ScorePrecision = "fp32",
    compile_model: ScoreCompile = False,
    batch_tokens: Annotated[int, typer.Option(help="Tokens per forward batch.")] = 1024,
    items: Annotated[
        bool,
        typer.Option(
            "--items", help="Also keep per-item log-probs in OUT.items.parquet (for bootstrap CIs)."
        ),
    ] = False,
    bos: Annotated[
        bool, typer.Option("--bos", help="Prepend the tokenizer's BOS id (models trained with one).")
    ] = False,
    from_lm_eval: Annotated[
        Optional[Path],
        typer.Option("--from-lm-eval", help="lm-eval --output_path folder of runs of `probes export` tasks."),
    ] = None,
) -> None:
    """Score every checkpoint into OUT (one row per step/family/condition/split) and OUT.margins.parquet."""
    from ungrok.probes.battery import load_battery
    from ungrok.probes.margins import margin_rules
    from ungrok.probes.trajectories import TrajectoryStore, score_checkpoints
    from ungrok.progress import bar

    if from_lm_eval is not None:
        if run is not None or hf is not None or revisions is not None or margins is not None:
            raise UngrokError("--from-lm-eval reads scores; give no --run, --hf, --revisions or --margins")
        return _from_lm_eval(from_lm_eval, battery, out, run_name, items, no_margins)
    if (run is None) == (hf is None):
        raise UngrokError("give exactly one of --run DIR, --hf NAME or --from-lm-eval DIR")
    if hf is not None and tokenizer is not None:
        raise UngrokError("--tokenizer is for --run; a hub model brings its own tokenizer")
    if run is not None and revisions is not None:
        raise UngrokError("--revisions is for --hf; --run scores every checkpoint of the run")
    if margins is not None and no_margins:
        raise UngrokError("give --margins or --no-margins, not both")
    from ungrok.heap import keep_freed_memory
    from ungrok.limits import check_at_least
    from ungrok.outputs import guard_output
    from ungrok.probes.models import resolve_precision

    check_at_least(batch_tokens, 1, "--batch-tokens")
    resolve_precision(precision)
    guard_output(out, inputs=[battery, run, tokenizer, rules_dir], exists_ok=True, suffixes=(".parquet",))
    bat = load_battery(battery)
    store = TrajectoryStore(out, items=items)
    prompt_sets = [] if no_margins else margin_rules(bat.families, _split_list(margins), rules_dir)
    sources = _run_sources(run, tokenizer, run_name, device, precision, compile_model) if run is not None else \
        _hf_sources(hf, revisions, run_name, device, dtype, precision, compile_model)  # type: ignore[arg-type]

    keep_freed_memory()  # every checkpoint allocates the same batches (ungrok.heap)
    with bar("checkpoints", len(sources)) as p:
        summary = score_checkpoints(
            store, sources, bat, prompt_sets, bos=bos, batch_tokens=batch_tokens,
            on_checkpoint=lambda _src, _scored: p.advance(p.task_ids[0], 1),
        )
    con = output_console()
    con.print(
        f"scored {summary.scored} checkpoint(s), {summary.already} already in {out}; battery sha256 "
        f"{bat.sha256[:12]}…"
        + ("; bf16 matmuls" if precision == "bf16" else "")
        + ("; compiled forward" if compile_model else "")
        + (f"; margins: {', '.join(ps.rule for ps in prompt_sets)}" if prompt_sets else ""),
        soft_wrap=True,
    )
    if summary.items_skipped:
        con.print(f"{summary.items_skipped} item(s) skipped: prefix or continuation encodes to nothing",
                  soft_wrap=True)
    _show_last(con, store, sources[-1].run, bat.sha256)


def _from_lm_eval(
    results: Path, battery: Path, out: Path, run_name: str | None, items: bool, no_margins: bool
) -> None:
    """Import lm-eval sample logs into the same tables `ungrok score` writes."""
    from ungrok.outputs import guard_output
    from ungrok.probes.battery import load_battery
    from ungrok.probes.lmeval import import_lm_eval, store_imported
    from ungrok.probes.trajectories import TrajectoryStore

    guard_output(out, inputs=[battery, results], exists_ok=True, suffixes=(".parquet",))
    bat = load_battery(battery)
    runs = import_lm_eval(results, bat, run_name, margins=not no_margins)
    store = TrajectoryStore(out, items=items)
    added = store_imported(store, runs, bat)
    rules = sorted({m.rule for r in runs for m in r.margins})
    con = output_console()
    con.print(
        f"imported {len(runs)} lm-eval run(s) ({added} new) into {out}; battery sha256 {bat.sha256[:12]}…"
        + (f"; margins: {', '.join(rules)}" if rules else "; no margins"),
        soft_wrap=True,
    )
    _show_last(con, store, runs[-1].run, bat.sha256)


def _run_sources(
    run: Path, tokenizer: Path | None, run_name: str | None, device: str, precision: str, compile_model: bool
) -> list:
    from ungrok.probes.models import (
        TokenizerFile,
        load_own_checkpoint,
        resolve_device,
        run_checkpoints,
        run_tokenizer_path,
    )
    from ungrok.probes.trajectories import CheckpointSource

    cks = run_checkpoints(run)
    tok_path = run_tokenizer_path(run, tokenizer)
    dev = resolve_device(device)
    shared: dict[str, object] = {}

    def loader(ck):  # noqa: ANN001, ANN202
        def load():  # noqa: ANN202
            if "tok" not in shared:
                shared["tok"] = TokenizerFile.load(tok_path)
            return load_own_checkpoint(ck, dev, precision, compile_model), shared["tok"]

        return load

    name = run_name or run.resolve().name
    return [CheckpointSource(name, ck.step, None, loader(ck)) for ck in cks]


def _hf_sources(
    name: str, revisions: str | None, run_name: str | None, device: str, dtype: str, precision: str,
    compile_model: bool,
) -> list:
    from ungrok.probes.models import load_hf, resolve_device, resolve_dtype
    from ungrok.probes.revisions import revision_steps
    from ungrok.probes.trajectories import CheckpointSource

    revs = _split_list([revisions]) if revisions else []
    if not revs:
        raise UngrokError("--hf needs --revisions (comma-separated, e.g. step1000,step143000)")
    resolve_dtype(dtype, resolve_device(device))  # a bad --dtype fails before any loading
    steps = revision_steps(revs)
    return [
        CheckpointSource(
            run_name or name, step, rev, lambda rev=rev: load_hf(name, rev, dtype, device, precision, compile_model)
        )
        for rev, step in zip(revs, steps, strict=True)
    ]


def _show_last(con: Console, store, run: str, sha: str) -> None:  # noqa: ANN001
    rows = [
        r for r in store.rows if r["run"] == run and r["battery_sha256"] == sha and r["split"] == "heldout"
    ]
    if not rows:
        return
    last = max(r["step"] for r in rows)
    table = Table(
        "family", "condition", "accuracy", "items", "mean margin", title=f"{run} step {last} (held-out)"
    )
    for r in sorted((r for r in rows if r["step"] == last), key=lambda r: (r["family"], r["condition"])):
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        mm = "-" if r["mean_margin"] is None else f"{r['mean_margin']:+.3f}"
        table.add_row(r["family"], r["condition"], acc, str(r["n_items"]), mm)
    con.print(table)


def register(app: typer.Typer) -> None:
    """Add `score` to the top-level app."""
    app.command("score")(score)
