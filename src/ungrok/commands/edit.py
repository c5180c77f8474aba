"""`ungrok edit`: kill a rule's support at a rate, rescue it at a dose, ladders, cue scans, checks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ungrok.edit.scan_defaults import MIN_EVENTS, MIN_RATIO
from ungrok.limits import check_at_least, check_seed
from ungrok.progress import output_console

edit_app = typer.Typer(
    help="Corpus interventions: kill or rescue one rule's support, nothing else.", no_args_is_help=True
)


out = output_console()

Rule = Annotated[str, typer.Option("--rule", help="Rule to edit (see `ungrok rules list`).")]
RulesDir = Annotated[
    Optional[Path],  # noqa: UP045 - typer needs Optional on 3.10
    typer.Option("--rules-dir", help="Folder of user rule YAML files (added to the built-ins)."),
]
Force = Annotated[bool, typer.Option(help="Replace an existing destination.")]
Workers = Annotated[
    int, typer.Option(help="Worker processes (shards run in parallel; results do not change).")
]
# The kill cue list, shared by `kill` and `ladder`: a file, or an empirical scan of the source.
Cues = Annotated[
    Optional[Path], typer.Option(help="Kill cue list: a scan's JSON or a text file of words.")  # noqa: UP045
]
Scan = Annotated[bool, typer.Option("--scan", help="Derive the kill cue list by an empirical scan of SRC.")]
MinEvents = Annotated[int, typer.Option(help="--scan: decided events a cue needs.")]
MinRatio = Annotated[float, typer.Option(help="--scan: smoothed rule:prior ratio a cue needs.")]


def _token_bar(desc: str, src: Path):  # noqa: ANN202 - a context manager yielding advance(n)
    """A progress bar over SRC's tokens; yields the callback a pass advances it with."""
    from ungrok.corpus.shards import read_manifest
    from ungrok.progress import optional_bar

    return optional_bar(True, desc, read_manifest(src).total_tokens)


def _print_kill(prov: dict, dst: Path, dt: float) -> None:
    s = prov["support"]
    fr = prov["flip_rate"]
    out.print(
        f"killed {prov['rule']} at rate {prov['rate']:g}: {prov['flipped_sites']:,} of {prov['eligible_sites']:,} "
        f"eligible sites flipped (realised {fr['realised']:.4f}, z {fr['z']:+.2f}) -> {dst}"
    )
    nominal = s["formula_nominal_p"]
    out.print(
        f"  support ratio {s['before']['ratio']:.4g} -> {s['after']['ratio']:.4g} measured, "
        f"{s['predicted_after']['ratio']:.4g} predicted from the flips ("
        + ("counts exactly as predicted" if s["exact"] else
           f"mismatch {s['mismatch']:.2%}, within {s['tolerance']:.0%}: inexact because {s['inexact_reason']}")
        + "); "
        f"(1-p)S/(C+pS) = {'-' if nominal is None else f'{nominal:.4g}'}"
    )
    inv = prov["invariants"]
    out.print(f"  {inv['tokens']:,} tokens, identical count; bytes outside flipped sites identical "
              f"({inv['verified_shards']} shards verified) in {dt:.1f}s")


def register(app: typer.Typer) -> None:
    """Add the `edit` sub-app to the top-level app."""
    app.add_typer(edit_app, name="edit")


@edit_app.command("kill")
def kill(
    src: Annotated[Path, typer.Argument(help="Source corpus folder.")],
    rule: Rule,
    rate: Annotated[float, typer.Option(help="Flip probability per eligible site, in [0, 1].")],
    out_dir: Annotated[Path, typer.Option("--out", help="Edited corpus folder to write.")],
    seed: Annotated[int, typer.Option(help="Flip seed.")] = 0,
    cues: Cues = None,
    scan: Scan = False,
    min_events: MinEvents = MIN_EVENTS,
    min_ratio: MinRatio = MIN_RATIO,
    workers: Workers = 1,
    rules_dir: RulesDir = None,
    force: Force = False,
) -> None:
    """Flip the rule's eligible sites to the prior form at RATE; token count and other bytes unchanged."""
    from ungrok.edit.kill import check_rates, kill_corpus
    from ungrok.edit.scan import resolve_cues
    from ungrok.outputs import guard_output

    check_rates([rate])
    check_seed(seed)
    check_at_least(workers, 1, "--workers")
    guard_output(out_dir, inputs=[src, cues, rules_dir], force=force, folder=True, corpus=True)
    cue_list = resolve_cues(cues, scan, src, rule, min_events, min_ratio, rules_dir)
    t0 = time.perf_counter()
    with _token_bar("kill", src) as advance:
        prov = kill_corpus(src, out_dir, rule, rate, seed, cues=cue_list, force=force, workers=workers,
                           rules_dir=rules_dir, progress=advance)
    _print_kill(prov, out_dir, time.perf_counter() - t0)


@edit_app.command("ladder")
def ladder(
    src: Annotated[Path, typer.Argument(help="Source corpus folder.")],
    rule: Rule,
    rates: Annotated[str, typer.Option(help="Comma-separated kill rates, e.g. 0.5,0.667,0.8,0.9,1.0.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for one corpus per rate + ladder.json.")],
    seed: Annotated[int, typer.Option(help="Flip seed (coupled: one uniform per site for every rate).")] = 0,
    cues: Cues = None,
    scan: Scan = False,
    min_events: MinEvents = MIN_EVENTS,
    min_ratio: MinRatio = MIN_RATIO,
    workers: Workers = 1,
    rules_dir: RulesDir = None,
    force: Force = False,
) -> None:
    """Build a whole kill ladder in one pass over SRC, with nested flips (higher rate = superset)."""
    from ungrok.edit.kill import check_rates
    from ungrok.edit.ladder import build_ladder, parse_rates
    from ungrok.edit.scan import resolve_cues
    from ungrok.outputs import guard_output

    rate_list = check_rates(parse_rates(rates))
    check_seed(seed)
    check_at_least(workers, 1, "--workers")
    guard_output(out_dir, inputs=[src, cues, rules_dir], force=force, folder=True)
    cue_list = resolve_cues(cues, scan, src, rule, min_events, min_ratio, rules_dir)
    t0 = time.perf_counter()
    with _token_bar("ladder", src) as advance:
        summary = build_ladder(src, out_dir, rule, rate_list, seed, cues=cue_list, force=force, workers=workers,
                               rules_dir=rules_dir, progress=advance)
    dt = time.perf_counter() - t0
    out.print(f"ladder for {summary['rule']} in one pass -> {out_dir} ({dt:.1f}s)")
    for r in summary["rungs"]:
        s = r["support"]
        out.print(f"  {r['dir']}: {r['flipped_sites']:,}/{r['eligible_sites']:,} flipped, ratio "
                  f"{s['before']['ratio']:.4g} -> {s['after']['ratio']:.4g} (predicted "
                  f"{s['predicted_after']['ratio']:.4g})")


@edit_app.command("rescue")
def rescue(
    src: Annotated[Path, typer.Argument(help="Base corpus folder.")],
    rule: Rule,
    dose: Annotated[float, typer.Option(help="Dose in units of the support density (> 0).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Rescue corpus folder to write.")],
    unit_from: Annotated[
        Optional[Path], typer.Option(help="Reference corpus: the unit is the rule's density there.")  # noqa: UP045
    ] = None,
    unit: Annotated[Optional[float], typer.Option(help="The unit, in rule events per token.")] = None,  # noqa: UP045
    placement: Annotated[
        str, typer.Option(help="append (corpus grows) or replace (neutral docs removed).")
    ] = "append",
    window: Annotated[
        Optional[str], typer.Option(help="START:END training steps for phased exposure (writes phase_b/).")  # noqa: UP045
    ] = None,
    steps: Annotated[int, typer.Option(help="Training steps of the run (for --window).")] = 4400,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 0,
    battery: Annotated[
        Optional[list[Path]], typer.Option(help="Extra battery JSONL for the disjointness gate (repeatable).")  # noqa: UP045
    ] = None,
    rules_dir: RulesDir = None,
    force: Force = False,
) -> None:
    """Inject rule-supporting sentences (and their symmetric control) at DOSE, with accounting and D1-D3."""
    from ungrok.edit.rescue import build_rescue

    t0 = time.perf_counter()
    prov = build_rescue(src, out_dir, rule, dose, unit=unit, unit_from=unit_from, placement=placement,
                        window=window, steps=steps, seed=seed, battery_files=battery or [], rules_dir=rules_dir,
                        force=force)
    dt = time.perf_counter() - t0
    inj, acc = prov["injected"], prov["accounting"]
    out.print(
        f"rescued {prov['rule']} at dose {prov['dose']:g} (unit {prov['unit']['events_per_token']:.4g}/token, "
        f"W {prov['base_tokens']:,}): {prov['n_events']:,} events per class in {inj['documents']:,} documents, "
        f"{inj['tokens']:,} tokens ({prov['placement']}) -> {out_dir} in {dt:.1f}s"
    )
    out.print("  accounting: " + ", ".join(f"{k} {v:,} ({acc['fraction'][k]:.1%})" for k, v in acc["measured"].items())
              + "; disjointness D1-D3 passed")
    if prov.get("window"):
        out.print(
            f"  phased exposure: see {out_dir / 'phase.yaml'} (switch at step {prov['window']['switch_step']})"
        )


@edit_app.command("scan")
def scan(
    src: Annotated[Path, typer.Argument(help="Corpus folder to scan.")],
    rule: Rule,
    out_file: Annotated[Path, typer.Option("--out", help="Cue file (JSON) to write.")],
    min_events: Annotated[int, typer.Option(help="Decided events (rule + prior) a cue needs.")] = MIN_EVENTS,
    min_ratio: Annotated[float, typer.Option(help="Smoothed rule:prior ratio a cue needs.")] = MIN_RATIO,
    rules_dir: RulesDir = None,
    force: Force = False,
) -> None:
    """Empirical cue scan (docs/method.md §6.4): name-shaped tokens the corpus follows with the rule
    target."""
    from ungrok.edit.scan import scan_cues, write_cue_file
    from ungrok.outputs import guard_output

    guard_output(out_file, inputs=[src, rules_dir], force=force, suffixes=(".json",))
    with _token_bar("scan", src) as advance:
        doc = scan_cues(src, rule, min_events=min_events, min_ratio=min_ratio, rules_dir=rules_dir,
                        progress=advance)
    write_cue_file(out_file, doc, force=force)
    share = doc["battery_share_of_rule_events"]
    out.print(
        f"{len(doc['selected'])} of {doc['candidates']:,} name-shaped tokens selected "
        f"({len(doc['cue_ids'])} ids with no-space forms); battery names carry "
        f"{'-' if share is None else f'{share:.0%}'} of their rule events -> {out_file}"
    )


@edit_app.command("check")
def check(
    dst: Annotated[Path, typer.Argument(help="Edited corpus folder (kill, ladder or rescue).")],
    battery: Annotated[
        Optional[list[Path]], typer.Option(help="Battery JSONL to check against (repeatable).")  # noqa: UP045
    ] = None,
    rules_dir: RulesDir = None,
) -> None:
    """Disjointness and invariants D1-D4; exit 2 with one line naming the first offending string."""
    from ungrok.edit.checks import check_edited

    report = check_edited(dst, battery or [], rules_dir)
    for where, r in report.items():
        passed = ", ".join(k for k in ("D1", "D2_D3", "D4", "bytes") if k in r)
        out.print(
            f"{where}: {r['edit']} passed {passed.replace('D2_D3', 'D2, D3').replace('bytes', 'byte check')}"
        )
