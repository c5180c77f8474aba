"""`ungrok prereg`: freeze predictions before the data exist, amend, verify, score, unlock,
and pack a finished pilot run into a pilot record that a later freeze binds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ungrok.commands import fmt_value
from ungrok.errors import UngrokError
from ungrok.progress import output_console


def freeze_cmd(
    experiment: Annotated[
        Path, typer.Argument(help="experiment YAML (cells, seeds, batteries, predictions)")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="registry file, or a run folder (then FOLDER/registry.json)")
    ],
    rules_dir: Annotated[
        Optional[Path], typer.Option("--rules-dir", help="folder of user rule YAML files (family names)")
    ] = None,
) -> None:
    """Freeze the experiment's predictions, thresholds, classifier constants, battery hashes and seeds."""
    from ungrok.prereg.registry import freeze, freeze_warnings

    reg = freeze(experiment, out, rules_dir=rules_dir)
    n = len(reg.predictions)
    output_console().print(
        f"frozen: {reg.path}  ({n} prediction{'s' * (n != 1)}, {len(reg.cells)} cells, "
        f"seeds {reg.seeds.governed}"
        + (f", quarantined {reg.seeds.quarantined}" if reg.seeds.quarantined else "")
        + f")\nsha256 {reg.sha256}  (commit or publish it: it proves what was registered, and when)"
    )
    if reg.pilot is not None:
        reads = f"{len(reg.pilot.reads)} pilot read(s) bound" if reg.pilot.reads else "no pilot reads at freeze"
        rec = f"; pilot record {reg.pilot.record.path} bound" if reg.pilot.record else ""
        output_console().print(f"pilot seeds {reg.pilot.seeds}: {reads}{rec}", highlight=False)
    for line in freeze_warnings(reg):
        output_console().print(f"warning: {line}: it can only be UNSCOREABLE", highlight=False, markup=False)


def amend_cmd(
    registry: Annotated[Path, typer.Argument(help="registry.json written by `ungrok prereg freeze`")],
    file: Annotated[Path, typer.Option("--file", help="YAML with new predictions: and/or changes: text")],
    reason: Annotated[str, typer.Option("--reason", help="why the amendment is made (recorded)")],
) -> None:
    """Append a dated amendment; earlier content is never edited."""
    from ungrok.prereg.amend import amend

    a = amend(registry, file, reason)
    output_console().print(
        f"amendment {a.index} recorded {a.created_utc}: {len(a.predictions)} new prediction(s)"
        + (", documented changes" if a.changes else "")
        + f"\nchain head sha256 {a.sha256}"
    )


def verify_cmd(
    registry: Annotated[Path, typer.Argument(help="registry.json to check")],
) -> None:
    """Recompute every hash (registry, run ledger, every result read) and print the order pilot -> freeze ->
    confirmatory training -> confirmatory reads; exit 2 on any change, a missing ledger or a broken order."""
    from ungrok.prereg.integrity import verify

    c = output_console()
    for line in verify(registry):
        c.print(line, highlight=False)
    c.print("verified: nothing changed since it was frozen")


def unlock_cmd(
    registry: Annotated[Path, typer.Argument(help="registry.json whose quarantined seeds to unlock")],
    reason: Annotated[str, typer.Option("--reason", help="why the replication seeds may now be read")],
) -> None:
    """Record an unlock amendment: the quarantined seeds become readable from now on."""
    from ungrok.prereg.amend import unlock

    a = unlock(registry, reason)
    output_console().print(f"unlocked seeds {a.unlocked_seeds} at {a.created_utc} (amendment {a.index})")


def pilot_record_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(
        help="finished pilot run folder(s) (`ungrok run --phase pilot`); several: cells become FOLDER/CELL")],
    out: Annotated[Path, typer.Option("--out", help="the pilot record JSON to write")],
    force: Annotated[bool, typer.Option(help="replace an existing --out file")] = False,
) -> None:
    """Write the pilot's verdicts (per cell, seed, family) with each trajectory table's sha256; an
    experiment's `pilot_record:` then binds the file into its registry as a pilot read before the freeze."""
    from ungrok.hashing import sha256_file
    from ungrok.prereg.pilot import write_pilot_record

    rec = write_pilot_record(list(run_dirs), out, force=force)
    runs = len({(e.cell, e.seed) for e in rec.entries})
    output_console().print(
        f"wrote {out}: {len(rec.entries)} verdict(s) of {runs} pilot run(s), seeds {rec.seeds}\n"
        f"sha256 {sha256_file(out)}  (name it as pilot_record: in the experiment; the freeze binds it)",
        highlight=False,
    )


def score_cmd(
    registry: Annotated[Path, typer.Argument(help="registry.json written by `ungrok prereg freeze`")],
    evidence: Annotated[
        Path, typer.Option("--evidence", help="evidence JSON (verdict records per cell x seed)")
    ],
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the scoreboard as JSON")] = None,
    invalid_cell: Annotated[
        Optional[list[str]],
        typer.Option("--invalid-cell", help="a cell the run found INTERVENTION-INVALID (repeatable)"),
    ] = None,
    force: Annotated[bool, typer.Option(help="replace an existing --json file")] = False,
) -> None:
    """Score every registered prediction: PASS / FAIL / UNSCOREABLE, and which falsifiers triggered."""
    from ungrok.prereg.evidence import load_evidence
    from ungrok.prereg.integrity import check_run
    from ungrok.prereg.render import render_prediction
    from ungrok.prereg.scoreboard import SYMBOL, score, write_scoreboard

    if json_out is not None and json_out.exists() and not force:
        raise UngrokError(f"{json_out}: already exists; use --force to replace it")
    integ = check_run(registry)  # the check `verify` makes: what it refuses is never scored
    reg = integ.registry
    board = score(reg, load_evidence(evidence), invalid_cell or (), ledger=integ.ledger, changed=integ.changed)
    tests = {p.name: render_prediction(p) for p, _, _ in reg.registered()}  # the one-line shorthand
    t = Table(title=f"scoreboard (registry sha256 {reg.head_sha256[:12]})")
    for col in ("prediction", "group", "test", "verdict", "value", "reason"):
        t.add_column(col, overflow="fold")
    for o in board.outcomes:
        verdict = f"{SYMBOL[o.status]} {o.status}"
        if o.falsifier:
            verdict += {True: " (falsifier TRIGGERED)", False: " (falsifier silent)", None: " (falsifier)"}[
                o.triggered
            ]
        t.add_row(o.name, o.group or "", tests.get(o.name, o.kind), verdict, fmt_value(o.value, "+.3f"), o.reason)
    c = output_console()
    for ch in integ.changed:
        c.print(f"warning: result {ch.line()}: the predictions reading it are UNSCOREABLE",
                highlight=False, markup=False)
    c.print(t)
    c.print(board.summary.line())
    if json_out is not None:
        write_scoreboard(json_out, board, force=True)
        c.print(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    """Add the `prereg` sub-app (freeze, amend, verify, score, unlock, pilot-record)."""
    sub = typer.Typer(
        help="Pre-registration: freeze predictions before the data exist; amend, verify, score, unlock.",
        no_args_is_help=True,
    )
    sub.command("freeze")(freeze_cmd)
    sub.command("amend")(amend_cmd)
    sub.command("verify")(verify_cmd)
    sub.command("score")(score_cmd)
    sub.command("unlock")(unlock_cmd)
    sub.command("pilot-record")(pilot_record_cmd)
    app.add_typer(sub, name="prereg")
