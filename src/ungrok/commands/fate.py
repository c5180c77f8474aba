"""`ungrok classify`: verdicts from a trajectory table, one line per (run, family)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ungrok.commands import fmt_value
from ungrok.errors import UngrokError
from ungrok.progress import output_console


def _read_parquet(path: Path, what: str):  # noqa: ANN202 - pyarrow is imported lazily
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.exists():
        raise UngrokError(f"{path}: {what} not found")
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise UngrokError(f"{path}: not a readable parquet {what} ({e})") from None


def classify(
    trajectories: Annotated[Path, typer.Argument(help="trajectory table written by `ungrok score`")],
    margins: Annotated[
        Optional[Path],
        typer.Option(help="margin table (default: TRAJ.margins.parquet beside it, if present)"),
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option(help="YAML overriding classifier constants (its hash is printed)")
    ] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the records as JSON")] = None,
    force: Annotated[bool, typer.Option(help="replace an existing --json file")] = False,
) -> None:
    """Classify each rule's trajectory (RECOVERED / DISPLACED / PARTIAL / NEVER / UNSTABLE) with the agree gate."""
    from ungrok.atomic import write_json
    from ungrok.fate.config import ClassifierConfig
    from ungrok.fate.summary import summarize
    from ungrok.outputs import guard_output
    from ungrok.probes.trajectories import margins_path_for
    from ungrok.yamlfile import load_yaml

    if json_out is not None:
        guard_output(json_out, inputs=[trajectories, margins, margins_path_for(trajectories), config],
                     force=force, suffixes=(".json",), flag="--json")
    doc = load_yaml(config, "classifier config") if config else {}
    if not isinstance(doc, dict):
        raise UngrokError(f"{config}: expected a mapping of classifier constants")
    cfg = ClassifierConfig(**doc)
    table = _read_parquet(trajectories, "trajectory table")
    mpath = margins if margins is not None else margins_path_for(trajectories)
    mtable = _read_parquet(mpath, "margin table") if (margins is not None or mpath.exists()) else None
    records = summarize(table, mtable, cfg)

    out = output_console()
    t = Table(title=f"fates (classifier sha256 {cfg.sha256()[:12]})")
    for col in (
        "run",
        "family",
        "fate",
        "gate",
        "conflict final/max",
        "agree final",
        "onset",
        "CM final",
        "zero crossing",
        "timing",
    ):
        t.add_column(col)
    for r in records:
        t.add_row(
            r["run"],
            r["family"] + ("" if r["confirmatory"] else " (exploratory)"),
            r["fate"] + (" (transient)" if r["transient"] else ""),
            r["agree_gate"],
            f"{r['conflict_final']:.3f} / {r['conflict_max']:.3f}",
            f"{r['agree_final']:.3f}",
            fmt_value(r["onset"]),
            fmt_value(r.get("cm_final")) + ("" if r.get("cm_instrument_valid", True) else " (guard fail)"),
            fmt_value(r.get("cm_zero_crossing")),
            fmt_value(r.get("timing")),
        )
    out.print(t)
    out.print(
        "A fate counts only when its agree gate passes; lower-case letters in reports mark a failed gate."
    )
    if json_out:
        write_json(
            json_out,
            {
                "classifier_sha256": cfg.sha256(),
                "classifier": cfg.model_dump(mode="json"),
                "records": records,
            },
        )
        out.print(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    """Add `classify` to the top-level app."""
    app.command("classify")(classify)
