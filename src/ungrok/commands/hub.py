"""`ungrok hub score|classify`: a battery over public checkpoints (models x revisions), and its fates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from ungrok.commands import ScoreCompile, ScorePrecision, fmt_value
from ungrok.progress import output_console

hub_app = typer.Typer(
    help="Public checkpoints: score a battery over models x revisions, classify, depth by scale.",
    no_args_is_help=True,
)


@hub_app.command("score")
def hub_score(
    models: Annotated[
        str,
        typer.Option(
            help="Comma-separated hub model ids, e.g. EleutherAI/pythia-70m,EleutherAI/pythia-160m."
        ),
    ],
    battery: Annotated[Path, typer.Option(help="Battery JSONL file (e.g. the paper's rvp3.1).")],
    out: Annotated[Path, typer.Option("--out", help="Suite folder; resumed if it exists.")],
    revisions: Annotated[
        str,
        typer.Option(
            help="auto (Pythia's 154 revisions; OLMo's stepN-tokensM branches), thinned "
            "(the paper's 41-revision Pythia grid), or a comma-separated list."
        ),
    ] = "auto",
    margins: Annotated[
        bool, typer.Option("--margins/--no-margins", help="Also score CM/PM of the battery's rules.")
    ] = True,
    executor: Annotated[
        str, typer.Option(help="local (this machine; a process pool with --workers > 1) or ray.")
    ] = "local",
    workers: Annotated[
        int, typer.Option(help="Tasks at once (local processes, or Ray tasks in flight).")
    ] = 1,
    address: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Ray cluster address (with --executor ray; default: start or join a local one)."),
    ] = None,
    ray_address: Annotated[
        Optional[str], typer.Option("--ray-address", hidden=True, help="Deprecated name of --address.")  # noqa: UP045
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto, cpu or cuda (with ray: one GPU per task when the cluster has GPUs).")
    ] = "auto",
    dtype: Annotated[str, typer.Option(help="float32, or bfloat16 on a GPU.")] = "float32",
    precision: ScorePrecision = "fp32",
    compile_model: ScoreCompile = False,
    batch_tokens: Annotated[int, typer.Option(help="Tokens per forward batch.")] = 1024,
    offline: Annotated[
        bool, typer.Option("--offline", help="Set HF_HUB_OFFLINE=1: load from the local hub cache only.")
    ] = False,
    rules_dir: Annotated[
        Optional[Path], typer.Option("--rules-dir", help="Folder of user rule YAML files (margins).")
    ] = None,
) -> None:
    """Score the battery on every (model, revision) into OUT; skips are named at the end, never fatal;
    a failed load or score is named too, and makes the exit status 1 once everything is written."""
    from ungrok.hub.suite import score_suite
    from ungrok.limits import check_at_least
    from ungrok.outputs import guard_output

    check_at_least(batch_tokens, 1, "--batch-tokens")  # --workers is checked by score_suite
    if address is None:  # one flag name per concept: every verb says --address; the old name still works
        address = ray_address
    guard_output(out, inputs=[battery, rules_dir], exists_ok=True, folder=True)
    summary = score_suite(
        models, revisions, battery, out, margins=margins, executor=executor, workers=workers,
        address=address, device=device, dtype=dtype, precision=precision, compile=compile_model,
        batch_tokens=batch_tokens, offline=True if offline else None, progress=True, rules_dir=rules_dir,
    )
    con = output_console()
    for line in summary.lines():
        style = "red" if line.startswith("failed") else "yellow" if line.startswith(("skipped", "note")) else None
        con.print(line, style=style, highlight=False, soft_wrap=True)
    con.print(f"next: ungrok hub classify {out}", highlight=False, soft_wrap=True)
    summary.raise_failures()  # everything is written and listed above; exit 1 says the suite is incomplete


@hub_app.command("classify")
def hub_classify(
    out: Annotated[Path, typer.Argument(help="Suite folder written by `ungrok hub score`.")],
    family: Annotated[
        Optional[str],
        typer.Option(help="Family of the scale statistic (default: the anchor, pronoun_gender_ref)."),
    ] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the CI of rho.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    scale_models: Annotated[
        Optional[str],
        typer.Option(help="Comma-separated models the scale statistic ranks (default: every model)."),
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option(help="YAML overriding classifier constants (its hash is printed).")
    ] = None,
) -> None:
    """Frozen-classifier verdicts per model and family, and Spearman(size, final conflict) with a CI."""
    from ungrok.fate.config import ClassifierConfig
    from ungrok.hub.scale import HUB_FATES, classify_suite
    from ungrok.limits import check_at_least, check_seed
    from ungrok.yamlfile import load_yaml

    check_seed(seed)
    check_at_least(n_boot, 1, "--n-boot")
    cfg = ClassifierConfig(**load_yaml(config, "classifier config")) if config else ClassifierConfig()
    ranked = None if scale_models is None else [m.strip() for m in scale_models.split(",") if m.strip()]
    result = classify_suite(out, cfg=cfg, family=family, n_boot=n_boot, seed=seed, scale_models=ranked)
    con = output_console()
    scale = result["scale"]
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in result["records"]:
        by_model.setdefault(r["run"], []).append(r)
    sizes = {m["model"]: m for m in scale["models"]}
    for model, recs in by_model.items():
        n = sizes.get(model, {}).get("n_params")
        t = Table("family", "fate", "gate", "conflict final/max", "agree final", "CM final",
                  title=f"{model}" + (f" ({n:,} parameters)" if n else ""))
        for r in recs:
            t.add_row(
                r["family"] + ("" if r["confirmatory"] else " (exploratory)"),
                r["fate"] + (" (transient)" if r["transient"] else ""),
                r["agree_gate"],
                f"{r['conflict_final']:.3f} / {r['conflict_max']:.3f}",
                f"{r['agree_final']:.3f}",
                fmt_value(r.get("cm_final")),
            )
        con.print(t)
    for u in result["unclassified"]:
        con.print(f"unclassified {u['model']}: {u['why']}", style="yellow", highlight=False, soft_wrap=True)
    finals = ", ".join(f"{m['model']} {fmt_value(m['final_accuracy'])}" for m in scale["models"])
    con.print(f"depth by scale ({scale['family']}, held-out conflict final, by size): {finals}",
              highlight=False, soft_wrap=True)
    if scale["rho"] is not None:
        ci = scale["ci"]
        ci_text = f" [{ci[0]:.3f}, {ci[1]:.3f}] (95% CI, {scale['n_boot']} item resamples, seed {scale['seed']})" \
            if ci else ""
        con.print(
            f"Spearman rho(size, final conflict) = {scale['rho']:.3f}{ci_text}",
            highlight=False,
            soft_wrap=True,
        )
    if scale["note"]:
        con.print(f"note: {scale['note']}", style="yellow", highlight=False, soft_wrap=True)
    con.print(f"classifier sha256 {result['classifier_sha256'][:12]}…; wrote {Path(out) / HUB_FATES}",
              highlight=False, soft_wrap=True)


@hub_app.command("mech")
def hub_mech_cmd(
    models: Annotated[
        list[str], typer.Option(help="GPT-NeoX hub model ids; repeat the flag or comma-separate.")
    ],
    revisions: Annotated[
        list[str], typer.Option(help="auto, thinned, or revision names; repeat the flag or comma-separate.")
    ],
    rule: Annotated[str, typer.Option(help="Rule with a margin section and one-token targets.")],
    battery: Annotated[Path, typer.Option(help="Battery JSONL with the rule's held-out conflict and agree items.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for traj.mech.parquet (a hub suite folder works).")],
    executor: Annotated[str, typer.Option(help="local or ray.")] = "local",
    workers: Annotated[int, typer.Option(help="Tasks at once.")] = 1,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (with --executor ray).")] = None,  # noqa: UP045
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (weights are always float32).")] = "auto",
    offline: Annotated[
        bool, typer.Option("--offline", help="Set HF_HUB_OFFLINE=1: load from the local hub cache only.")
    ] = False,
    force: Annotated[bool, typer.Option("--force/--no-force", help="Recompute revisions already stored.")] = False,
    rules_dir: Annotated[Optional[Path], typer.Option("--rules-dir", help="Folder of user rule YAML files.")] = None,  # noqa: UP045
) -> None:
    """Logit-gap decomposition, head attribution and cue decodability on GPT-NeoX checkpoints
    (read through nnsight) into OUT/traj.mech.parquet; descriptive, resumable."""
    from ungrok.mech.hub import hub_mech
    from ungrok.outputs import guard_output

    guard_output(out, inputs=[battery, rules_dir], exists_ok=True, folder=True)
    spec = [r for item in revisions for r in item.split(",")]
    summary = hub_mech(models, spec[0] if len(spec) == 1 else spec, rule, battery, out, executor=executor,
                       workers=workers, address=address, device=device, offline=True if offline else None,
                       force=force, rules_dir=rules_dir)
    con = output_console()
    for line in summary.lines():
        style = "red" if line.startswith("failed") else "yellow" if line.startswith("skipped") else None
        con.print(line, style=style, highlight=False, soft_wrap=True)
    summary.raise_failures()


def register(app: typer.Typer) -> None:
    """Add the `hub` sub-app to the top-level app."""
    app.add_typer(hub_app, name="hub")
