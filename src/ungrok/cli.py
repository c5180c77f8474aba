"""The `ungrok` command line: one verb per arrow of the data flow."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ungrok.errors import UngrokError, first_error
from ungrok.progress import output_console

app = typer.Typer(
    help="Measure, predict and control which learned rules survive language-model pretraining.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
rules_app = typer.Typer(help="Declared rules: list them, show one.", no_args_is_help=True)
corpus_app = typer.Typer(
    help="Token shards: build from text, generate storyworld, verify.", no_args_is_help=True
)
app.add_typer(rules_app, name="rules")
app.add_typer(corpus_app, name="corpus")

from ungrok.commands import edit as _edit_cmds  # noqa: E402
from ungrok.commands import experiment as _experiment_cmds  # noqa: E402
from ungrok.commands import fate as _fate_cmds  # noqa: E402
from ungrok.commands import hub as _hub_cmds  # noqa: E402
from ungrok.commands import mech as _mech_cmds  # noqa: E402
from ungrok.commands import prereg as _prereg_cmds  # noqa: E402
from ungrok.commands import probes as _probes_cmds  # noqa: E402
from ungrok.commands import report as _report_cmds  # noqa: E402
from ungrok.commands import score as _score_cmds  # noqa: E402
from ungrok.commands import train as _train_cmds  # noqa: E402

for _module in (
    _probes_cmds,
    _score_cmds,
    _train_cmds,
    _fate_cmds,
    _edit_cmds,
    _prereg_cmds,
    _report_cmds,
    _experiment_cmds,
    _hub_cmds,
    _mech_cmds,
):
    _module.register(app)


out = output_console()

RulesDir = Annotated[
    Optional[Path],  # noqa: UP045 - typer needs Optional on 3.10
    typer.Option(
        "--rules-dir", help="Folder of user rule YAML files (added to, and overriding, the built-ins)."
    ),
]


# --------------------------------------------------------------------------- rules
@rules_app.command("list")
def rules_list(rules_dir: RulesDir = None) -> None:
    """List every rule: built-in and user-declared."""
    from ungrok.rules.registry import load_rules

    table = Table("rule", "event", "cue classes", "probes", "kill", "rescue", "note")
    for name, spec in sorted(load_rules(rules_dir).items()):
        note = "focal" if spec.focal else ("exploratory" if spec.exploratory else "")
        table.add_row(
            name,
            spec.event.kind,
            ", ".join(c.name for c in spec.cues) or "-",
            str(len(spec.probes)),
            "yes" if spec.kill else "-",
            "yes" if spec.rescue else "-",
            note,
        )
    out.print(table)


@rules_app.command("show")
def rules_show(
    name: str,
    rules_dir: RulesDir = None,
    tokenizer: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Show how cues and targets tokenize under this tokenizer.json."),
    ] = None,
) -> None:
    """Show one rule: cues, event, probe counts, edits, and (with --tokenizer) token ids."""
    from collections import Counter

    from ungrok.rules.expand import expand_probes
    from ungrok.rules.registry import get_rule, lists_for
    from ungrok.rules.spec import resolve_list

    spec = get_rule(name, rules_dir)
    lists = lists_for(spec, rules_dir)
    out.print(
        f"[bold]{spec.name}[/bold]"
        + ("  (focal)" if spec.focal else "")
        + ("  (exploratory)" if spec.exploratory else "")
    )
    if spec.description:
        out.print(spec.description.strip())
    out.print(f"event: {spec.event.model_dump()}")
    for c in spec.cues:
        words = resolve_list(c.words, lists)
        out.print(f"cue class {c.name} ({c.role}): {len(words)} words, rule {c.rule} vs prior {c.prior}")
        out.print("   " + ", ".join(map(str, words)))
    items = expand_probes(spec, lists)
    counts = Counter((i["condition"], i["split"]) for i in items)
    out.print("probes: " + ", ".join(f"{c}/{s} {n}" for (c, s), n in sorted(counts.items())))
    if spec.kill:
        out.print(f"kill: {spec.kill.flip} at {spec.kill.cue_classes or 'every site'}")
    if spec.rescue:
        out.print(f"rescue: {len(resolve_list(spec.rescue.frames, lists))} frames")
    if spec.margin:
        out.print(f"margin: CM = log p({spec.margin.rule!r}) - log p({spec.margin.prior!r})")
    if tokenizer is not None:
        from ungrok.corpus.tokenizer import load_tokenizer
        from ungrok.rules.tokens import resolve_tokens

        out.print(resolve_tokens(spec, lists, load_tokenizer(tokenizer)))


# --------------------------------------------------------------------------- corpus
@corpus_app.command("build")
def corpus_build(
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(help=".txt/.jsonl/.parquet files, folders, or saved HF datasets."),
    ] = None,  # noqa: UP045,E501
    out_dir: Annotated[Path, typer.Option("--out", help="Corpus folder to write.")] = ...,  # type: ignore[assignment]
    vocab_size: Annotated[int, typer.Option(help="Train a byte-level BPE of this size.")] = 8192,
    tokenizer: Annotated[
        Path | None, typer.Option(help="Use this tokenizer.json instead of training.")
    ] = None,  # noqa: UP045,E501
    train_docs: Annotated[
        int | None, typer.Option(help="Train the BPE on the first N documents only.")
    ] = None,  # noqa: UP045,E501
    text_field: Annotated[str, typer.Option(help="Text field of .jsonl/.parquet/datasets.")] = "text",
    txt_mode: Annotated[
        str, typer.Option(help="'blocks': a document per blank-line block; 'file': per file.")
    ] = "blocks",  # noqa: E501
    split: Annotated[str, typer.Option(help="Split of a saved DatasetDict or --hf-dataset.")] = "train",
    hf_dataset: Annotated[
        str | None,
        typer.Option(
            help="Stream a datasets repository: a folder laid out as on the Hub, or a hub name "
            "(from the local cache when HF_HUB_OFFLINE=1)."
        ),
    ] = None,  # noqa: UP045,E501
    hf_config: Annotated[
        str | None, typer.Option(help="Config (subset) of --hf-dataset, as its card names it.")
    ] = None,  # noqa: UP045,E501
    dtype: Annotated[str, typer.Option(help="auto, uint16 or uint32.")] = "auto",
    shard_tokens: Annotated[int, typer.Option(help="Tokens per shard file.")] = 50_000_000,
    force: Annotated[bool, typer.Option(help="Replace a folder that holds a different corpus.")] = False,
) -> None:
    """Tokenize a corpus into shards + manifest (streaming, deterministic, atomic)."""
    from ungrok.corpus.build import BuildOptions, build_corpus, describe
    from ungrok.corpus.ingest import expand_inputs, hf_dataset_documents, iter_documents
    from ungrok.progress import optional_bar

    if txt_mode not in ("blocks", "file"):
        raise UngrokError(f"--txt-mode must be 'blocks' or 'file', not {txt_mode!r}")
    from ungrok.limits import check_at_least
    from ungrok.outputs import guard_output

    paths = list(inputs or [])
    if not paths and not hf_dataset:
        raise UngrokError("give at least one input file or folder, or --hf-dataset NAME_OR_FOLDER")
    if hf_config and not hf_dataset:
        raise UngrokError("--hf-config needs --hf-dataset")
    hf_folder = Path(hf_dataset).expanduser() if hf_dataset and Path(hf_dataset).expanduser().is_dir() else None
    check_at_least(shard_tokens, 1, "--shard-tokens")
    check_at_least(train_docs, 1, "--train-docs")
    guard_output(out_dir, inputs=[*paths, tokenizer, hf_folder], force=force, exists_ok=True, folder=True, corpus=True)
    files = expand_inputs(paths) if paths else []
    opts = BuildOptions(
        vocab_size=vocab_size,
        tokenizer=str(tokenizer) if tokenizer else None,
        train_docs=train_docs,
        text_field=text_field,
        txt_mode=txt_mode,
        split=split,
        dtype=dtype,
        shard_tokens=shard_tokens,
    )

    def documents():  # noqa: ANN202
        if hf_dataset:
            yield from hf_dataset_documents(hf_dataset, text_field, split, hf_config)
        if files:
            yield from iter_documents(files, text_field, txt_mode, split)  # type: ignore[arg-type]

    source = {
        "inputs": [{"name": f.name, "bytes": _size(f)} for f in files],
        # a folder by its name, like the inputs, so a copy elsewhere rebuilds byte-identically
        "hf_dataset": hf_folder.resolve().name if hf_folder else hf_dataset,
        **({"hf_config": hf_config} if hf_config else {}),
    }
    t0 = time.perf_counter()
    with optional_bar(True, "encoding", None) as advance:
        manifest, status = build_corpus(
            documents, out_dir, opts, source, force=force, progress=lambda _docs, toks: advance(toks)
        )
    dt = time.perf_counter() - t0
    info = describe(manifest)
    out.print(
        f"{status}: {out_dir}  ({info['tokens']:,} tokens, {info['documents']:,} documents, "
        f"{info['dtype']}, vocab {info['vocab_size']:,}) in {dt:.1f}s "
        f"= {info['tokens'] / max(dt, 1e-9):,.0f} tokens/s"
    )


def _size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size


@corpus_app.command("stats")
def corpus_stats(
    corpus: Path,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the stats as JSON.")] = None,  # noqa: UP045,E501
    no_verify: Annotated[bool, typer.Option(help="Skip re-hashing the shards.")] = False,
) -> None:
    """Verify every shard's sha256 against the manifest and print counts."""
    from ungrok.atomic import write_json
    from ungrok.corpus.build import describe
    from ungrok.corpus.shards import Corpus
    from ungrok.outputs import guard_output

    if json_out is not None:
        guard_output(json_out, inputs=[corpus], exists_ok=True, flag="--json")
    c = Corpus(corpus, verify=False)
    if not no_verify:
        c.verify()
    info = describe(c.manifest)
    table = Table("field", "value")
    for k, v in info.items():
        table.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
    table.add_row("verified", "no (skipped)" if no_verify else "yes: every sha256 matches")
    out.print(table)
    support = c.manifest.source.get("intended_support")
    if support:
        _print_support(support, "intended support (storyworld)")
    if json_out:
        write_json(json_out, {**info, "verified": not no_verify})


def _print_support(support: dict, title: str) -> None:
    table = Table("rule", "rule events", "prior events", "ratio (r+1)/(p+1)", title=title)
    for name, row in support.items():
        if not isinstance(row, dict) or "rule_events" not in row:
            continue
        table.add_row(name, f"{row['rule_events']:,}", f"{row['prior_events']:,}", f"{row['ratio']:.3g}")
    out.print(table)


@corpus_app.command("storyworld")
def corpus_storyworld(
    out_dir: Annotated[Path, typer.Option("--out", help="Corpus folder to write.")] = ...,  # type: ignore[assignment]
    tokens: Annotated[int | None, typer.Option(help="Total tokens to generate (default 10,000,000).")] = None,  # noqa: UP045,E501
    seed: Annotated[int | None, typer.Option(help="Generator seed (default 0).")] = None,  # noqa: UP045,E501
    global_ratio: Annotated[
        float | None, typer.Option(help="Girl name -> she:he outside the probe frames.")
    ] = None,  # noqa: UP045,E501
    frame_ratio: Annotated[
        float | None, typer.Option(help="Girl name -> she:he inside the probe frames' construction.")
    ] = None,  # noqa: UP045,E501
    frame_rate: Annotated[
        float | None, typer.Option(help="Fraction of sentences in the probe-frame construction.")
    ] = None,  # noqa: UP045,E501
    neutral_he_ratio: Annotated[
        float | None, typer.Option(help="Neutral subject -> he:she (the prior).")
    ] = None,  # noqa: UP045,E501
    bridge_rate: Annotated[
        float | None, typer.Option(help="Fraction of sentences '<name> <other verb> because|when <pronoun>'.")
    ] = None,  # noqa: UP045,E501
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Any other knob, KEY=VALUE (repeatable).")
    ] = None,  # noqa: UP045,E501
    config: Annotated[Path | None, typer.Option(help="YAML file of knobs (command-line values win).")] = None,  # noqa: UP045,E501
    rules_dir: RulesDir = None,
    force: Annotated[bool, typer.Option(help="Replace an existing folder.")] = False,
) -> None:
    """Generate the synthetic story corpus with controllable support for each built-in rule
    (and every rule of --rules-dir with a `storyworld:` block)."""
    from ungrok.corpus.shards import read_manifest
    from ungrok.corpus.storyworld import StoryworldConfig, build_storyworld
    from ungrok.limits import check_seed
    from ungrok.outputs import guard_output
    from ungrok.progress import optional_bar

    check_seed(seed)
    guard_output(out_dir, inputs=[config, rules_dir], force=force, folder=True, corpus=True)
    knobs = _load_knobs(config, set_)
    for k, v in (
        ("global_ratio", global_ratio),
        ("frame_ratio", frame_ratio),
        ("frame_rate", frame_rate),
        ("neutral_he_ratio", neutral_he_ratio),
        ("bridge_rate", bridge_rate),
        ("tokens", tokens),
        ("seed", seed),
    ):
        if v is not None:  # given on the command line: wins over --config and --set
            knobs[k] = v
    cfg = StoryworldConfig(**knobs)
    t0 = time.perf_counter()
    with optional_bar(True, "storyworld", cfg.tokens) as advance:
        build_storyworld(out_dir, cfg, force, advance, rules_dir)
    manifest, dt = read_manifest(out_dir), time.perf_counter() - t0
    out.print(
        f"built: {out_dir}  ({manifest.total_tokens:,} tokens, {manifest.documents:,} documents) "
        f"in {dt:.1f}s = {manifest.total_tokens / max(dt, 1e-9):,.0f} tokens/s"
    )
    _print_support(manifest.source.get("intended_support", {}), "intended support")
    for note in manifest.source.get("notes", []):
        out.print(f"note: {note}")


def _load_knobs(config: Path | None, sets: list[str] | None) -> dict:
    knobs: dict = {}
    if config is not None:
        from ungrok.yamlfile import load_yaml

        loaded = load_yaml(config, "config file")
        if not isinstance(loaded, dict):
            raise UngrokError(f"{config}: expected a mapping of knob: value")
        knobs.update(loaded)
    for item in sets or []:
        if "=" not in item:
            raise UngrokError(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        knobs[k.strip()] = yaml.safe_load(v)
    return knobs


# --------------------------------------------------------------------------- support
@app.command()
def support(
    corpora: Annotated[list[Path], typer.Argument(help="Corpus folder(s) built by `ungrok corpus`.")],
    rules: Annotated[
        Optional[str], typer.Option(help="Comma-separated rule names (default: every rule).")
    ] = None,  # noqa: UP045,E501
    battery: Annotated[
        Optional[Path], typer.Option(help="Count the rules whose families this battery JSONL probes.")
    ] = None,  # noqa: UP045,E501
    served: Annotated[
        Optional[Path], typer.Option(help="Sampler config YAML: count what training serves.")
    ] = None,  # noqa: UP045,E501
    seed: Annotated[int, typer.Option(help="Training seed for --served.")] = 0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the table as JSON.")] = None,  # noqa: UP045,E501
    workers: Annotated[int, typer.Option(help="Local worker processes.")] = 1,
    executor: Annotated[str, typer.Option(help="local or ray.")] = "local",
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (with --executor ray).")] = None,  # noqa: UP045,E501
    task_tokens: Annotated[int, typer.Option(help="Tokens per task.")] = 25_000_000,
    work_dir: Annotated[
        Optional[Path], typer.Option(help="Keep task markers here so an interrupted count resumes.")
    ] = None,  # noqa: UP045,E501
    survive_ratio: Annotated[
        float, typer.Option(help="Forecast: ratio at or above which a rule likely survives.")
    ] = 2.5,  # noqa: E501
    lost_ratio: Annotated[
        float, typer.Option(help="Forecast: ratio at or below which a rule is likely lost.")
    ] = 1.0,  # noqa: E501
    rules_dir: RulesDir = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing --json file.")] = False,
) -> None:
    """Count every selected rule's support in one pass, with a forecast from the support law."""
    from ungrok.atomic import write_json
    from ungrok.corpus.shards import read_manifest
    from ungrok.limits import check_at_least, check_seed
    from ungrok.outputs import guard_output
    from ungrok.progress import optional_bar
    from ungrok.support.count import count, count_served, load_served_config
    from ungrok.support.forecast import ForecastThresholds

    thresholds = ForecastThresholds(survive_ratio=survive_ratio, lost_ratio=lost_ratio)
    check_seed(seed)
    check_at_least(workers, 1, "--workers")
    check_at_least(task_tokens, 1, "--task-tokens")
    if executor not in ("local", "ray"):
        raise UngrokError(f"--executor {executor!r}: use local or ray")
    if json_out is not None:
        guard_output(json_out, inputs=[*corpora, battery, served, rules_dir], force=force,
                     suffixes=(".json",), flag="--json")
    if work_dir is not None:
        guard_output(work_dir, inputs=corpora, exists_ok=True, folder=True, flag="--work-dir")
    specs = _select_rules(rules, battery, rules_dir)
    manifests = [read_manifest(c) for c in corpora]
    if len({m.tokenizer_sha256 for m in manifests}) > 1:
        raise UngrokError("corpora were built with different tokenizers; count them separately")
    if len({m.dtype for m in manifests}) > 1:
        raise UngrokError("corpora have mixed dtypes (uint16 and uint32); count them separately")
    tables = []
    if served is not None:
        if len(corpora) != 1:
            raise UngrokError("--served counts one training corpus; give exactly one folder")
        cfg = load_served_config(served)
        with optional_bar(True, "served windows", cfg.steps) as advance:
            tables.append(count_served(corpora[0], cfg, seed, specs, rules_dir=rules_dir, progress=advance))
    else:
        total = sum(m.total_tokens for m in manifests)
        with optional_bar(True, "counting", total) as advance:
            for c in corpora:
                tables.append(
                    count(
                        c,
                        specs,
                        workers=workers,
                        executor=executor,
                        address=address,
                        task_tokens=task_tokens,
                        work_dir=work_dir,
                        rules_dir=rules_dir,
                        progress=advance,
                    )
                )
    result = _merge_tables(tables)
    _add_forecast(result, thresholds)
    _show_support(result)
    if json_out is not None:
        write_json(json_out, result)


def _add_forecast(result: dict, thresholds) -> None:  # noqa: ANN001
    from ungrok.support.forecast import forecast

    for row in result["rules"].values():
        row["forecast"] = forecast(row["ratio"], thresholds, row["rule_events"] + row["prior_events"])
    result["forecast_thresholds"] = thresholds.model_dump()


def _show_support(result: dict) -> None:
    from ungrok.support.forecast import CAVEAT as FORECAST_CAVEAT

    table = Table("rule", "event", "rule events", "prior events", "neither", "ratio", "per token", "forecast",
                  title=f"support over {result['tokens']:,} tokens ({result['mode']})")
    for name, r in result["rules"].items():
        table.add_row(name, r["event"], f"{r['rule_events']:,}", f"{r['prior_events']:,}",
                      "-" if r["neither"] is None else f"{r['neither']:,}", f"{r['ratio']:.3g}",
                      f"{r['frequency']:.2e}", r["forecast"])
        for cname, cr in (r.get("classes") or {}).items():
            table.add_row(f"  {cname}", "", f"{cr['rule_events']:,}", f"{cr['prior_events']:,}",
                          f"{cr['neither']:,}", f"{cr['ratio']:.3g}", f"{cr['frequency']:.2e}", "")
    out.print(table)
    t = result["forecast_thresholds"]
    out.print(
        f"forecast (the support law, not a verdict): likely survives at ratio >= {t['survive_ratio']:g}, "
        f"likely lost at <= {t['lost_ratio']:g}, at risk between"
    )
    out.print(f"caveat: {FORECAST_CAVEAT}", highlight=False, markup=False, soft_wrap=True)
    for name, why in result["skipped"].items():
        out.print(f"[yellow]skipped {name}:[/yellow] {why}")


def _select_rules(rules: str | None, battery: Path | None, rules_dir: Path | None) -> list:
    from ungrok.rules.registry import get_rule, load_rules

    if rules and battery:
        raise UngrokError("give --rules or --battery, not both")
    if battery is not None:
        from ungrok.probes.battery import battery_families

        fams = battery_families(battery)
        known = load_rules(rules_dir)
        return [known[f] for f in fams if f in known]
    if rules:
        return [get_rule(r.strip(), rules_dir) for r in rules.split(",") if r.strip()]
    return list(load_rules(rules_dir).values())


def _merge_tables(tables: list) -> dict:
    """Sum the support of several corpora (separate streams: no windows between them)."""
    first = tables[0].to_json()
    if len(tables) == 1:
        return first
    tokens = sum(t.tokens for t in tables)
    rules: dict[str, dict] = {}
    for t in tables:
        for name, r in t.rules.items():
            acc = rules.setdefault(
                name,
                {**r, "rule_events": 0, "prior_events": 0, "neither": None if r["neither"] is None else 0},
            )
            acc["rule_events"] += r["rule_events"]
            acc["prior_events"] += r["prior_events"]
            if r["neither"] is not None:
                acc["neither"] += r["neither"]
            acc.pop("classes", None)
    for r in rules.values():
        r["ratio"] = (r["rule_events"] + 1) / (r["prior_events"] + 1)
        r["frequency"] = r["rule_events"] / max(tokens, 1)
    skipped = {k: v for t in tables for k, v in t.skipped.items()}
    return {"tokens": tokens, "mode": first["mode"], "rules": rules, "skipped": skipped}


# --------------------------------------------------------------------------- demo
@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where the demo writes its outputs.")] = Path(
        "demo-out"
    ),
    workers: Annotated[int, typer.Option(help="Training runs at once (one per core).")] = 2,
    set_: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--set", help="Override a key of the embedded experiment, KEY.PATH=YAML (repeatable)."),
    ] = None,
) -> None:
    """The main job: natural ungrokking on storyworld, predicted before it runs (about 13 minutes on 2 cores).

    A supported and a web-like cell one knob apart, a kill ladder and a rescue, three
    confirmatory seeds each; predictions written after the shipped pilot and frozen before
    training; every run trained, monitored, scored and classified; the scoreboard and
    report.html at the end. Rerun to resume; finished steps are skipped.
    """
    from importlib.resources import files

    from ungrok.atomic import write_bytes
    from ungrok.experiment.run import parse_sets, run_experiment, same_but_mech
    from ungrok.limits import check_at_least
    from ungrok.outputs import guard_output
    from ungrok.probes.battery import build_battery, canonical_bytes

    check_at_least(workers, 1, "--workers")
    guard_output(out_dir, exists_ok=True, folder=True)
    t0 = time.perf_counter()
    spec_dir = out_dir / "spec"
    wanted = {
        "demo.yaml": files("ungrok.experiment").joinpath("demo.yaml").read_bytes(),
        "battery.jsonl": canonical_bytes(build_battery().items),
        "demo-pilot.json": files("ungrok.experiment").joinpath("demo-pilot.json").read_bytes(),
    }
    for name, data in wanted.items():
        path = spec_dir / name
        if path.exists() and path.read_bytes() != data:
            old = path.read_text(encoding="utf-8")
            if not (name == "demo.yaml" and same_but_mech(old, data.decode("utf-8"))):
                raise UngrokError(
                    f"{path}: differs from the embedded demo; remove {out_dir} or pick another --out"
                )
            write_bytes(path, data)  # only the descriptive mech: section changed; the run keeps its registered copy
        if not path.exists():
            write_bytes(path, data)
    run_experiment(
        spec_dir / "demo.yaml", out_dir / "run", workers=workers, overrides=parse_sets(set_ or []) or None
    )
    out.print(f"demo finished in {time.perf_counter() - t0:.0f}s; report: {out_dir / 'run' / 'report.html'}")


# --------------------------------------------------------------------------- entry
def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors become one line on stderr and exit code 2, never a traceback."""
    err = Console(stderr=True)

    def fail(message: str, code: int = 2) -> NoReturn:
        err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
        sys.exit(code)

    try:
        app(args=argv, standalone_mode=False)
    except UngrokError as e:
        # escaped: a message may name a pip extra, pip install 'ungrok[trackers]', that is not markup
        fail(escape(str(e)), e.exit_code)
    except ValidationError as e:
        loc, msg = first_error(e, top="input", raw=True)
        fail(f"invalid {e.title} field {loc}: {msg}")
    except FileExistsError as e:
        fail(f"{e}: already exists; use --force to replace it")
    except OSError as e:
        # A path the user named cannot be read or written (read-only folder, a file where a
        # folder is needed, a full disk): one line naming it, never a traceback.
        where = f"{e.filename}: " if e.filename else ""
        fail(f"{where}{e.strerror or e}")
    except KeyboardInterrupt:
        err.print("interrupted; rerun the same command to resume")
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:
        # Usage errors come from click, or from the copy of click that typer >= 0.29 vendors
        # (typer._click), whose classes are not click's: match them by name.
        kinds = {c.__name__ for c in type(e).__mro__}
        if "ClickException" in kinds:
            fail(e.format_message() if hasattr(e, "format_message") else str(e))
        if "Abort" in kinds:
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
