"""Live rule monitoring: score the rules' held-out probes and margins during training.

`RuleMonitor` plugs into our loop as a probe callback (`on_probe(step, model)`), and
`MonitorCallback` wraps the same monitor as a `transformers.TrainerCallback` for runs
trained with Hugging Face's `Trainer`. Judgement (verdict-so-far, the early displacement
warning under the hashed `WatchConfig`) lives in `ungrok.train.watch`; this module only
gathers the readings. Every record names the warning rule by its sha256 (``watch_sha256``)
and carries each rule's raw readings, so `ungrok.train.watch.replay` can re-judge it.
Only held-out items of the watched families are scored, so a probe costs a small,
fixed number of forward rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ungrok.errors import UngrokError
from ungrok.fate.config import DEFAULT_CONFIG, ClassifierConfig
from ungrok.fate.watch_config import DEFAULT_WATCH, WatchConfig
from ungrok.probes.battery import Battery
from ungrok.probes.margins import MarginPlan, MarginPrompts
from ungrok.probes.models import GPTLogits, HFLogits, resolve_precision
from ungrok.probes.score import BatteryPlan, LogitsModel, TextTokenizer
from ungrok.train.trackers import Trackers, open_trackers, parse_names, require
from ungrok.train.watch import RuleWatch

log = logging.getLogger("ungrok.monitor")


class RuleMonitor:
    """Readings of every watched rule at each probe step, and the warnings they trigger."""

    def __init__(
        self,
        battery: Battery,
        tokenizer: TextTokenizer,
        rules: Sequence[str] | None = None,
        margins: Sequence[MarginPrompts] = (),
        cfg: ClassifierConfig = DEFAULT_CONFIG,
        split: str = "heldout",
        watch: WatchConfig = DEFAULT_WATCH,
        precision: str = "fp32",
    ):
        fams = list(rules) if rules is not None else battery.families
        unknown = [f for f in fams if f not in battery.families]
        if unknown:
            raise UngrokError(f"monitor: rule(s) {', '.join(unknown)} have no items in the battery")
        keep = [
            it for i, it in enumerate(battery.items)
            if battery.group_key(i)[0] in fams and battery.group_key(i)[2] == split
        ]
        if not keep:
            raise UngrokError(f"monitor: the battery has no {split} items for {', '.join(fams)}")
        self.split = split
        self.precision = resolve_precision(precision)  # "bf16": probes autocast (ungrok.probes.models)
        self.plan = BatteryPlan(Battery(tuple(keep), source=battery.source), tokenizer)
        self.margins = MarginPlan([m for m in margins if m.rule in fams], tokenizer) if margins else None
        self.watch_cfg = watch
        self.watch_sha256 = watch.sha256()
        self.watches = {f: RuleWatch(f, watch, cfg) for f in fams}

    def observe(self, step: int, model: LogitsModel) -> dict[str, Any]:
        """Score once, update every rule's watch; the dict goes to monitor.jsonl."""
        acc = {(g.family, g.condition): g.accuracy for g in self.plan.score(model).groups()}
        cms = {m.rule: m.cm for m in self.margins.score(model)} if self.margins else {}
        warnings = []
        for fam, w in self.watches.items():
            if (fam, "conflict") in acc and (fam, "agree") in acc:
                msg = w.observe(step, acc[(fam, "conflict")], acc[(fam, "agree")], cms.get(fam))
                if msg:
                    warnings.append(msg)
        rules = {f: w.summary() for f, w in self.watches.items() if w.steps}
        alert = [
            f"{f}: {s['state']}"
            for f, s in rules.items()
            if s["state"] != "emerged" and s["state"] != "not yet"
        ]
        return {
            "rules": rules,
            "warnings": warnings,
            "display": "; ".join(alert),
            "watch_sha256": self.watch_sha256,
        }

    def on_probe(self, step: int, model: Any) -> dict[str, Any]:
        """The training loop's probe-callback protocol (model: `ungrok.model.GPT`)."""
        return self.observe(step, GPTLogits(model, self.precision))

    def state_dict(self) -> dict[str, Any]:
        """Readings so far, saved with the trainer's resume state so warnings survive a restart."""
        return {f: {k: getattr(w, k) for k in _WATCH_STATE} for f, w in self.watches.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`; a field an older save lacks keeps its fresh value."""
        for f, saved in state.items():
            if f in self.watches:
                for k in _WATCH_STATE:
                    if k not in saved:
                        continue
                    value = saved[k]
                    setattr(self.watches[f], k, list(value) if isinstance(value, (list, tuple)) else value)
                w = self.watches[f]
                if "cm_steps" not in saved and w.cm:  # older saves: CM was read at the last len(cm) probes
                    w.cm_steps = w.steps[-len(w.cm) :]


_WATCH_STATE = (
    "steps", "conflict", "agree", "cm", "cm_steps", "smoothed_conflict", "smoothed_agree", "smoothed_cm", "state",
    "gate_passed", "trigger_run", "warned_at", "best",
)


def monitor_for_corpus(
    battery_path: str | Path, corpus: str | Path, rules: Sequence[str] | None = None, precision: str = "fp32"
) -> RuleMonitor:
    """A monitor for a run on `corpus`: its tokenizer, the battery's families, their margin prompts."""
    from ungrok.corpus.shards import Corpus
    from ungrok.probes.battery import load_battery
    from ungrok.probes.margins import margin_rules
    from ungrok.probes.models import TokenizerFile

    battery = load_battery(battery_path)
    fams = list(rules) if rules is not None else battery.families
    tok = TokenizerFile.load(Corpus(corpus).tokenizer_path)
    return RuleMonitor(battery, tok, fams, margin_rules(fams, None), precision=precision)


def _trainer_callback_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


class MonitorCallback(_trainer_callback_base()):
    """The rule monitor as a `transformers.TrainerCallback`: probes every `every` optimizer steps.

    Readings are kept in `history`, appended to `log_path` (default
    `<output_dir>/ungrok_monitor.jsonl`) and added to the Trainer's log history;
    warnings are logged at WARNING level on the `ungrok.monitor` logger. `log` names
    trackers (ungrok.train.trackers) that also get the readings, the warnings and the
    Trainer's loss, learning rate and tokens seen, in `<output_dir>` as `ungrok train` does.
    """

    def __init__(self, monitor: RuleMonitor, every: int = 50, log_path: str | Path | None = None,
                 log: Sequence[str] | str = ()):
        if every < 1:
            raise UngrokError(f"monitor cadence must be >= 1 step, got {every}")
        try:
            self.log = parse_names(log)
        except ValueError as e:
            raise UngrokError(f"MonitorCallback log: {e}") from None
        require(self.log)
        self.monitor = monitor
        self.every = every
        self.log_path = Path(log_path) if log_path else None
        self.history: list[dict[str, Any]] = []
        self.curves: Trackers | None = None  # opened at train begin

    def _probe(self, args: Any, state: Any, model: Any) -> None:
        step = int(state.global_step)
        if self.history and self.history[-1]["step"] == step:
            return
        record = {"step": step, **self.monitor.observe(step, HFLogits(model, self.monitor.precision))}  # eval mode inside
        self.history.append(record)
        for w in record["warnings"]:
            log.warning(w)
        if self.curves is not None:
            self.curves.log_monitor(record)
        if state.is_world_process_zero:
            path = self.log_path or Path(args.output_dir) / "ungrok_monitor.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")
            state.log_history.append(
                {"step": step, "ungrok_warnings": len(record["warnings"]),
                 **{f"ungrok/{r}/conflict": s["conflict"] for r, s in record["rules"].items()}}
            )

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.log and state.is_world_process_zero and self.curves is None:
            out = Path(args.output_dir).resolve()
            self.curves = open_trackers(self.log, out, f"{out.parent.name}/{out.name}", args.to_sanitized_dict(),
                                        int(state.global_step))

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if self.curves is not None and logs and "loss" in logs:
            tokens = getattr(state, "num_input_tokens_seen", 0) or None  # counted when the Trainer is asked to
            self.curves.log_train({"step": int(state.global_step), "loss": logs["loss"],
                                   "lr": logs.get("learning_rate"), "tokens": tokens})

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is not None and state.global_step % self.every == 0:
            self._probe(args, state, model)

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is not None:
            self._probe(args, state, model)  # the final reading, whatever the cadence
        if self.curves is not None:
            self.curves.close()
            self.curves = None
