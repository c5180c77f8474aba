"""One way to run independent tasks: inline, in a spawn process pool, or on Ray.

Every stage that fans out (support counting, edit passes, `ungrok run`, the hub suite)
hands a picklable top-level function and a list of tasks to `Executor.map`, which yields
each task once with its result or the exception it raised (completion order; inline:
task order). Stages that must stop at the first failure wrap it in `or_raise`; stages
that keep going record the exception and move on. `make_executor` is the only place that
turns `--executor/--workers/--address` into an executor, so the verbs validate alike.

Resumption where a stage's scheme is a marker file: a task with a `marker` path is done
once that file exists (`is_done`, `pending`), and `mark_done` writes it atomically after
the result is in hand, so a kill never leaves a marker for unfinished work.

Adding an executor: one class with `map` (and `threads`, `inline`) plus its name in
`make_executor`.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ungrok.errors import UngrokError

EXECUTORS = ("local", "ray")

T = TypeVar("T")
Outcome = tuple[Any, Any]  # (task, its result or the exception it raised)


class Executor(Protocol):
    """What the stages need: `map`, and how many torch threads a task may use."""

    threads: int | None  # per task; None: leave this process's setting alone
    inline: bool  # tasks run in this process (so unpicklable callbacks may ride along)

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Outcome]:
        """Yield (task, result or the exception it raised) once per task."""
        ...


def threads_per_worker(workers: int) -> int:
    """Split the cores between the workers, so two runs on two cores do not oversubscribe."""
    return max(1, (os.cpu_count() or 1) // workers)


class InlineExecutor:
    """One task at a time in this process (--workers 1): no start-up cost, plain tracebacks."""

    threads: int | None = None
    inline = True

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Outcome]:
        for task in tasks:
            try:
                result = fn(task)
            except Exception as e:  # noqa: BLE001 - reported per task, the others go on
                result = e
            yield task, result


def _limit_threads(n: int) -> None:
    """Pool initializer: cap BLAS/OpenMP and torch threads before any task runs."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    torch = sys.modules.get("torch")  # imported only if the worker already has it: counting never needs it
    if torch is not None:
        torch.set_num_threads(n)


class PoolExecutor:
    """A spawn process pool: a fresh interpreter per worker (no forked torch or Ray state)."""

    inline = False

    def __init__(self, workers: int, threads: int | None = None):
        self.workers = workers
        self.threads = threads or threads_per_worker(workers)

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Outcome]:
        if not tasks:
            return
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(tasks)), mp_context=ctx,
                                   initializer=_limit_threads, initargs=(self.threads,))
        futures = {pool.submit(fn, task): task for task in tasks}
        try:
            for f in as_completed(futures):
                exc = f.exception()
                yield futures[f], exc if exc is not None else f.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """The same task function as Ray remote tasks; at most `workers` in flight.

    Ray is imported on first use; `address` None starts (or joins) a local Ray. A task asks
    for `task.threads` CPUs (1 if it has none) and, if it has `gpus` above 0, that many GPUs.
    """

    inline = False

    def __init__(self, workers: int, address: str | None = None, threads: int | None = None):
        self.workers, self.address = workers, address
        self.threads = threads or threads_per_worker(workers)

    def ray(self) -> Any:
        """The initialised `ray` module (one `ray.init` for the whole program)."""
        try:
            import ray
        except ImportError:
            raise UngrokError("--executor ray needs the ray package (pip install 'ray>=2.9')") from None
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        return ray

    def gpus(self) -> float:
        """GPUs in the cluster: a task's devices are the cluster's, not this machine's."""
        return float(self.ray().cluster_resources().get("GPU", 0))

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Outcome]:
        if not tasks:
            return
        ray = self.ray()
        remote = ray.remote(fn)
        queue, pending = list(tasks), {}
        queue.reverse()  # pop() from the end: submission in task order
        while queue or pending:
            while queue and len(pending) < self.workers:
                task = queue.pop()
                opts: dict[str, Any] = {"num_cpus": getattr(task, "threads", None) or 1}
                if getattr(task, "gpus", 0):
                    opts["num_gpus"] = task.gpus
                pending[remote.options(**opts).remote(task)] = task
            ready, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except Exception as e:  # noqa: BLE001 - RayTaskError wraps the task's own exception
                result = getattr(e, "cause", None) or e
            yield task, result


def make_executor(kind: str, workers: int, address: str | None = None, threads: int | None = None) -> Executor:
    """The executor for `--executor KIND --workers N [--address A]` (errors name the flag)."""
    if kind not in EXECUTORS:
        raise UngrokError(f"--executor {kind!r}: use local or ray")
    if workers < 1:
        raise UngrokError(f"--workers {workers}: need at least 1")
    if address is not None and kind != "ray":
        raise UngrokError("--address is for --executor ray")
    if kind == "ray":
        return RayExecutor(workers, address, threads)
    return InlineExecutor() if workers == 1 else PoolExecutor(workers, threads)


def or_raise(outcomes: Iterator[Outcome]) -> Iterator[tuple[Any, Any]]:
    """Pass results through; raise a task's exception as it arrives (the executor then stops)."""
    try:
        for task, result in outcomes:
            if isinstance(result, BaseException):
                raise result
            yield task, result
    finally:
        close = getattr(outcomes, "close", None)
        if close is not None:
            close()  # shut a pool down now, not when the generator is collected


# --------------------------------------------------------------------------- marker resumption
def is_done(task: Any) -> bool:
    """A task with a `marker` path is done once that file exists (None: never resumable)."""
    marker = getattr(task, "marker", None)
    return marker is not None and Path(marker).is_file()


def pending(tasks: Iterable[T]) -> tuple[list[T], list[T]]:
    """(tasks still to run, tasks done earlier), each in task order."""
    todo: list[T] = []
    done: list[T] = []
    for t in tasks:
        (done if is_done(t) else todo).append(t)
    return todo, done


def mark_done(task: Any, result: Any, write: Callable[[Path, Any], None] | None = None) -> None:
    """Write the task's marker (atomically; JSON unless `write` says how) once its result is in hand."""
    marker = getattr(task, "marker", None)
    if marker is None:
        return
    if write is None:
        from ungrok.atomic import write_json

        write = write_json
    write(Path(marker), result)
