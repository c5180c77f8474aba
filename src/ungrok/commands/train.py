"""`ungrok train` (a resumable run from a YAML config) and `ungrok model info` (a preset's size)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ungrok.progress import output_console

model_app = typer.Typer(help="Model architectures: presets and their exact sizes.", no_args_is_help=True)


def train(
    config: Annotated[Path, typer.Option(help="Training config YAML (see examples/train-tiny.yaml).")],
    data: Annotated[Path, typer.Option(help="Corpus folder of token shards (`ungrok corpus ...`).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder; an interrupted run here is resumed.")],
    seed: Annotated[
        Optional[int], typer.Option(help="Init and sampler seed (overrides the config's).")
    ] = None,
    steps: Annotated[Optional[int], typer.Option(help="Training steps (overrides sampler.steps).")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu or cuda (default: cuda when present).")] = None,
    precision: Annotated[
        Optional[str],
        typer.Option(help="fp32 or bf16 matmuls (overrides the config's; default fp32 on CPU, bf16 on CUDA)."),
    ] = None,
    compile_model: Annotated[
        Optional[bool], typer.Option("--compile/--no-compile", help="torch.compile the training step.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace a run folder that holds a different run.")] = False,
    monitor_battery: Annotated[
        Optional[Path],
        typer.Option(help="Watch these probes live: held-out accuracy, CM and displacement warnings."),
    ] = None,
    monitor_rules: Annotated[
        Optional[str], typer.Option(help="Comma-separated families to watch (default: all in the battery).")
    ] = None,
    log: Annotated[
        Optional[list[str]],
        typer.Option("--log", help="Also log curves to tensorboard, wandb (offline) or trackio (local); "
                     "repeatable or a comma list (overrides the config's log)."),
    ] = None,
) -> None:
    """Train a model on a corpus: checkpoints on the paper's schedule, loss log, exact resume."""
    from ungrok.corpus.shards import Corpus
    from ungrok.limits import check_at_least, check_seed
    from ungrok.outputs import guard_output
    from ungrok.train.config import load_train_config
    from ungrok.train.dist import world_from_env
    from ungrok.train.loop import train as run_training

    check_seed(seed)
    check_at_least(steps, 1, "--steps")
    guard_output(out, inputs=[config, data, monitor_battery], force=force, exists_ok=True, folder=True)
    cfg = load_train_config(config, seed=seed, steps=steps, precision=precision, compile=compile_model, log=log)
    check_seed(cfg.seed, f"{config}: seed")
    Corpus(data)  # hashes, and every token id inside the vocabulary, before any training
    callbacks = []
    if monitor_battery is not None:
        from ungrok.train.monitor import monitor_for_corpus

        rules = [r.strip() for r in monitor_rules.split(",") if r.strip()] if monitor_rules else None
        callbacks.append(monitor_for_corpus(monitor_battery, data, rules))
    result = run_training(cfg, data, out, force=force, device=device, callbacks=callbacks)
    if not world_from_env().is_main:  # under torchrun, rank 0 speaks for the run
        return
    con = output_console()
    loss = "n/a" if result.final_loss is None else f"{result.final_loss:.4f}"
    if result.status == "complete":
        con.print(f"{out}: already trained with this config ({result.steps:,} steps, final loss {loss}); "
                  "nothing to do", highlight=False)
        return
    con.print(f"{result.status}: {out}  ({result.steps:,} steps, {result.tokens:,} tokens, final loss {loss}, "
              f"{len(result.checkpoints)} checkpoints) in {result.wall_s:.1f}s", highlight=False)


@model_app.command("info")
def model_info(
    name: Annotated[str, typer.Argument(help="Preset name (paper-11.5m, demo, tiny).")],
    vocab_size: Annotated[Optional[int], typer.Option(help="Override the vocabulary size.")] = None,
    context: Annotated[Optional[int], typer.Option(help="Override the context length.")] = None,
) -> None:
    """A preset's architecture and exact parameter count, by optimiser group."""
    import torch

    from ungrok.model.gpt import GPT
    from ungrok.model.optim import split_parameters
    from ungrok.train.config import ModelSpec

    cfg = ModelSpec(preset=name, vocab_size=vocab_size, context=context).resolve()
    with torch.device("meta"):  # sizes only: no memory, no init
        model = GPT(cfg)
    groups = {k: sum(p.numel() for p in ps) for k, ps in split_parameters(model).items()}
    ve_layers = [i for i in range(cfg.n_layer) if cfg.has_value_embedding(i)]
    table = Table("field", "value", title=f"model preset {name}")
    for k, v in [
        (
            "layers / d_model / heads",
            f"{cfg.n_layer} / {cfg.n_embd} / {cfg.n_head} (head_dim {cfg.head_dim})",
        ),
        ("context", f"{cfg.context:,}"),
        ("vocab", f"{cfg.vocab_size:,}"),
        ("MLP", f"{cfg.n_embd} → {cfg.mlp_ratio * cfg.n_embd:,} → {cfg.n_embd}, ReLU²"),
        ("value embeddings on layers", ", ".join(map(str, ve_layers))),
        ("logit soft-cap", f"{cfg.softcap:g}"),
        ("block matrices (Muon)", f"{groups['matrix']:,}"),
        ("embeddings + value embeddings + head (AdamW)", f"{groups['embed']:,}"),
        ("λ scalars (AdamW)", f"{groups['scalar']:,}"),
        ("parameters", f"{model.num_params():,}"),
    ]:
        table.add_row(k, v)
    output_console().print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("train")(train)
    app.add_typer(model_app, name="model")
