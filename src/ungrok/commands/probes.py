"""`ungrok probes build|show|export`: probe batteries from rule specs, what a battery file holds, lm-eval tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ungrok.progress import output_console

probes_app = typer.Typer(
    help="Probe batteries: build from rules, show a battery file, export as lm-eval tasks.",
    no_args_is_help=True,
)


@probes_app.command("build")
def build(
    out: Annotated[Path, typer.Option("--out", help="Battery JSONL file to write.")],
    rules: Annotated[
        Optional[str], typer.Option(help="Comma-separated rule names, in battery order (default: all).")
    ] = None,
    rules_dir: Annotated[
        Optional[Path], typer.Option("--rules-dir", help="Folder of user rule YAML files.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Expand rules into a battery in the reference JSONL schema (deterministic; prints its sha256)."""
    from ungrok.outputs import guard_output
    from ungrok.probes.battery import build_battery, save_battery

    guard_output(out, inputs=[rules_dir], force=force, suffixes=(".jsonl",))
    names = [r.strip() for r in rules.split(",") if r.strip()] if rules else None
    battery = build_battery(names, rules_dir)
    save_battery(battery, out, force=force)
    output_console().print(
        f"wrote {out}: {len(battery):,} items, {len(battery.families)} families, sha256 {battery.sha256}",
        soft_wrap=True,
    )


@probes_app.command("show")
def show(battery_file: Annotated[Path, typer.Argument(help="Battery JSONL file.")]) -> None:
    """Families, items per condition and split, and the battery's hash."""
    from ungrok.probes.battery import load_battery

    battery = load_battery(battery_file)
    per: dict[str, dict[tuple[str, str], int]] = {}
    for (fam, cond, split), n in battery.counts().items():
        per.setdefault(fam, {})[(cond, split)] = n
    cols = sorted({k for d in per.values() for k in d})
    table = Table("family", *[f"{c}/{s}" for c, s in cols], "total", title=str(battery_file))
    for fam in battery.families:
        d = per[fam]
        table.add_row(fam, *[str(d.get(k, "-")) for k in cols], str(sum(d.values())))
    out = output_console()
    out.print(table)
    out.print(f"{len(battery):,} items, {len(battery.families)} families")
    out.print(f"sha256 {battery.sha256}", soft_wrap=True)
    if battery.file_sha256 != battery.sha256:
        out.print(f"file sha256 {battery.file_sha256} (the file is not in canonical form; the battery's "
                  "identity is the canonical hash above)", soft_wrap=True)


@probes_app.command("export")
def export(
    battery_file: Annotated[Path, typer.Argument(help="Battery JSONL file.")],
    out: Annotated[Path, typer.Option("--out", help="Folder of lm-eval task YAML files to write.")],
    fmt: Annotated[str, typer.Option("--format", help="Export format: lm-eval.")] = "lm-eval",
    margins: Annotated[
        Optional[str], typer.Option(help="Comma-separated margin rules (default: every family with one).")
    ] = None,
    no_margins: Annotated[bool, typer.Option("--no-margins", help="Export no margin tasks.")] = False,
    rules_dir: Annotated[
        Optional[Path], typer.Option("--rules-dir", help="Folder of user rule YAML files.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing export folder.")] = False,
) -> None:
    """Write the battery as lm-eval tasks (one per family/condition/split, margins) and their group."""
    from ungrok.errors import UngrokError
    from ungrok.outputs import guard_output
    from ungrok.probes.battery import load_battery
    from ungrok.probes.lmeval import export_lm_eval
    from ungrok.probes.margins import margin_rules

    if fmt != "lm-eval":
        raise UngrokError(f"--format must be lm-eval, not {fmt!r}")
    if margins is not None and no_margins:
        raise UngrokError("give --margins or --no-margins, not both")
    guard_output(out, inputs=[battery_file, rules_dir], force=force, folder=True)
    battery = load_battery(battery_file)
    wanted = [r.strip() for r in margins.split(",") if r.strip()] if margins else None
    prompt_sets = [] if no_margins else margin_rules(battery.families, wanted, rules_dir)
    man = export_lm_eval(battery, battery_file, prompt_sets, out, force=force)
    output_console().print(
        f"wrote {out}: group {man['group']}, {len(man['tasks'])} tasks, battery sha256 {battery.sha256}; "
        f"run: lm_eval --include_path {out} --tasks {man['group']} --log_samples --output_path RESULTS",
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add the `probes` sub-app to the top-level app."""
    app.add_typer(probes_app, name="probes")
