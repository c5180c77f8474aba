"""Training curves where people already look: TensorBoard, Weights & Biases (offline), trackio (local).

One tiny interface, `Tracker`: scalars at a step, a text event at a step (a live-monitor
warning), close. One class per backend, each importing its library only when opened, so
the package works without any of them. `Trackers` fans one call out to every backend the
run asked for; the training loop feeds it the same records it writes to train_log.jsonl
and monitor.jsonl, and `MonitorCallback` does the same inside a Hugging Face `Trainer`.

Nothing leaves the machine: TensorBoard writes event files under the run folder, W&B runs
in offline mode with its folder under the run folder (`wandb sync` uploads it later), and
trackio writes its local SQLite store ($TRACKIO_DIR, default $HF_HOME/trackio).
"""

from __future__ import annotations

import contextlib
import math
import secrets
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ungrok.errors import UngrokError

TRACKERS = ("tensorboard", "wandb", "trackio")
PROJECT = "ungrok"  # the W&B and trackio project every run logs to


class Tracker(Protocol):
    def scalars(self, step: int, values: Mapping[str, float]) -> None: ...
    def event(self, step: int, title: str, text: str) -> None: ...
    def close(self) -> None: ...


def parse_names(value: Any) -> tuple[str, ...]:
    """Tracker names from a list and/or comma lists, deduplicated in order; unknown names refused."""
    items = [value] if isinstance(value, str) else list(value or ())
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"expected tracker names ({', '.join(TRACKERS)}), got {item!r}")
        for name in (n.strip().lower() for n in item.split(",")):
            if name and name not in TRACKERS:
                raise ValueError(f"unknown tracker {name!r} (choose from {', '.join(TRACKERS)})")
            if name and name not in names:
                names.append(name)
    return tuple(names)


def require(names: Sequence[str]) -> None:
    """Refuse, before any work, a tracker whose library is not installed."""
    import importlib.util

    for name in names:
        if importlib.util.find_spec(name) is None:  # each tracker's package has the tracker's name
            raise _missing(name)


def _missing(name: str) -> UngrokError:
    return UngrokError(f"--log {name} needs the {name} package: pip install 'ungrok[trackers]'")


def _import(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise _missing(name) from None


class TensorBoardTracker:
    """Event files in `folder`; a resumed run purges what was logged after its resume step."""

    def __init__(self, folder: Path, start: int = 0):
        _import("tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: TensorBoard hides events at steps >= start from earlier sessions in this
        # folder, so a resumed (or --force restarted) run shows one curve, not two.
        self.writer = SummaryWriter(log_dir=str(folder), purge_step=start)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        for key, v in values.items():
            self.writer.add_scalar(key, v, step)

    def event(self, step: int, title: str, text: str) -> None:
        self.writer.add_text(title, text, step)

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    """An offline W&B run in `folder`/wandb; its id is kept there so a resumed run continues it."""

    def __init__(self, folder: Path, name: str, config: Mapping[str, Any], start: int = 0):
        wandb = _import("wandb")
        from ungrok.atomic import write_text

        (folder / "wandb").mkdir(parents=True, exist_ok=True)
        id_file = folder / "wandb" / "ungrok_run_id"
        run_id = id_file.read_text(encoding="utf-8").strip() if start > 0 and id_file.is_file() else ""
        if not run_id:
            run_id = secrets.token_hex(8)  # W&B run ids: lowercase letters and digits
            write_text(id_file, run_id + "\n")
        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True, x_disable_machine_info=True,
                                  disable_git=True, save_code=False, reinit="create_new")
        self.run = wandb.init(mode="offline", dir=str(folder), project=PROJECT, name=name, id=run_id,
                              resume="allow", config=dict(config), settings=settings)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        self.run.log(dict(values), step=step)

    def event(self, step: int, title: str, text: str) -> None:
        # the alert carries no step, so the text also goes into the history at its step; W&B holds
        # back a second alert of the same title within wait_duration, so the title is the line itself
        self.run.log({title: text}, step=step)
        self.run.alert(title=text[:63], text=text, level="WARN", wait_duration=0.001)

    def close(self) -> None:
        self.run.finish()


class TrackioTracker:
    """A run in trackio's local store, named like the run folder; a resumed run continues it."""

    def __init__(self, name: str, config: Mapping[str, Any], start: int = 0):
        self.trackio = _import("trackio")
        with _quiet():
            self.run = self.trackio.init(project=PROJECT, name=name, config=dict(config),
                                         resume="allow" if start > 0 else "never", embed=False,
                                         auto_log_cpu=False, auto_log_gpu=False)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        self.run.log(dict(values), step=step)

    def event(self, step: int, title: str, text: str) -> None:
        with _quiet():
            self.run.alert(title=title, text=text, level=self.trackio.AlertLevel.WARN, step=step)

    def close(self) -> None:
        from trackio import context_vars

        with _quiet():
            self.run.finish()
        if context_vars.current_run.get() is self.run:  # else trackio's exit hook finishes it again
            context_vars.current_run.set(None)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """trackio prints banners and alerts on stdout; keep stdout for the command's own result."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def train_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """A train_log.jsonl line as curves: loss, learning rate, tokens seen."""
    keys = {"loss": "train/loss", "lr": "train/lr", "tokens": "train/tokens"}
    return {name: float(record[k]) for k, name in keys.items() if _finite(record.get(k))}


def monitor_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """A monitor record's raw readings per rule: held-out conflict and agree accuracy, CM."""
    out: dict[str, float] = {}
    rules = record.get("rules")
    for rule, entry in (rules.items() if isinstance(rules, Mapping) else ()):
        raw = entry.get("raw") if isinstance(entry, Mapping) else None
        for k in ("conflict", "agree", "cm"):
            if isinstance(raw, Mapping) and _finite(raw.get(k)):
                out[f"monitor/{rule}/{k}"] = float(raw[k])
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class Trackers:
    """Every backend a run asked for, fed the run's own log and monitor records."""

    def __init__(self, trackers: Sequence[Tracker] = ()):
        self.trackers = list(trackers)

    def log_train(self, record: Mapping[str, Any]) -> None:
        self._scalars(int(record["step"]), train_scalars(record))

    def log_monitor(self, record: Mapping[str, Any]) -> None:
        step = int(record["step"])
        self._scalars(step, monitor_scalars(record))
        for line in record.get("warnings") or ():
            for t in self.trackers:
                t.event(step, "monitor/warning", str(line))

    def _scalars(self, step: int, values: Mapping[str, float]) -> None:
        if values:
            for t in self.trackers:
                t.scalars(step, values)

    def close(self) -> None:
        for t in self.trackers:
            t.close()

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_trackers(names: Sequence[str], folder: Path, name: str, config: Mapping[str, Any],
                  start: int = 0) -> Trackers:
    """Open each named backend: TensorBoard in FOLDER/tensorboard, W&B in FOLDER/wandb, trackio local."""
    opened: list[Tracker] = []
    try:
        for n in parse_names(names):
            if n == "tensorboard":
                opened.append(TensorBoardTracker(folder / "tensorboard", start))
            elif n == "wandb":
                opened.append(WandbTracker(folder, name, config, start))
            else:
                opened.append(TrackioTracker(name, config, start))
    except BaseException:
        Trackers(opened).close()
        raise
    return Trackers(opened)
