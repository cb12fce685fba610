"""Independent trainings side by side on a CPU machine: one process per training, the cores split between them.

Why: the workbook's CPU-sized models keep two intra-op threads only partly busy (small feature maps, many small
operations, Python between them), so two trainings with one thread each finish sooner than the same two one after
the other with two threads each. Measured on the 2-core machine (docs/speed.md, ``benchmarks/parallel_runs.py``):
two ``orsanet_cpu`` trainings 1.25x, two SpectralFormer trainings 1.6x, two ``resnet18_cpu`` 1.07x.

Policy (:func:`plan_workers`): on a CUDA device, one training at a time (they share the device); on a CPU, as many
workers as there are trainings and physical cores (the thread policy's count, :mod:`orsalib.threads`), each with
``cores // workers`` threads. ``ORSA_PARALLEL_RUNS=<n>`` sets the number of workers (``1`` = one at a time, in the
calling process). A training's numbers depend on its thread count only in the last bits (summation order): on one
machine the plan, and so every result, is the same from run to run.

Every task writes its run folder itself (atomically, as every training does) and returns a small picklable value;
the caller then loads the finished runs from disk as if it had trained them. A task that fails raises its own
exception here, with a note naming the task; tasks not started yet are cancelled, finished ones stay on disk.

Output: every line a worker prints starts with its task's label and seed (``[baseline_cpu seed 0] epoch 3/8 ...``), so
that the logs of trainings run side by side can be told apart; warnings raised in the workers are collected and
said once here, after the tasks, with the runs that raised them.
"""

from __future__ import annotations

import io
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

#: Environment variable: the number of trainings run side by side (1 = one at a time).
ENV_WORKERS = "ORSA_PARALLEL_RUNS"


@dataclass(frozen=True)
class WorkerPlan:
    """How many trainings run at once and how many intra-op threads each gets."""

    workers: int
    threads: int
    reason: str


def plan_workers(n_tasks: int, device: Any = "auto", env: Mapping[str, str] | None = None) -> WorkerPlan:
    """The :class:`WorkerPlan` for ``n_tasks`` independent trainings on ``device`` (module docstring).

    Raises:
        ValueError: ``ORSA_PARALLEL_RUNS`` is not a whole number >= 1.
    """
    from ..threads import thread_plan

    env = os.environ if env is None else env
    plan = thread_plan(env)
    cores = max(1, plan.intra_op)
    raw = env.get(ENV_WORKERS, "").strip()
    if raw:
        try:
            want = int(raw)
        except ValueError:
            want = 0
        if want < 1:
            raise ValueError(f"{ENV_WORKERS}={raw!r} is not allowed; it must be a whole number >= 1 (1: one at a time)")
        n = max(1, min(want, n_tasks))
        return WorkerPlan(n, max(1, cores // n), f"{ENV_WORKERS}={want}")
    kind = str(getattr(device, "type", device)).split(":")[0]
    if kind == "auto":
        import torch

        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind != "cpu":
        return WorkerPlan(1, cores, f"device {kind}: one training at a time")
    n = max(1, min(n_tasks, cores))
    return WorkerPlan(n, max(1, cores // n), f"{cores} cores")


def _init_worker(threads: int) -> None:
    """Worker start: ``threads`` intra-op threads (environment too, for its own subprocesses), no progress bars."""
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    os.environ["TQDM_DISABLE"] = "1"  # two interleaved bars on one terminal help nobody; each run logs its epochs
    import torch

    torch.set_num_threads(threads)


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Spawned workers do not import the caller's ``__main__``: a script without an ``if __name__ == "__main__"``
    guard would otherwise run again in every worker. The tasks' functions live in importable modules."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    try:
        if main is not None:
            main.__dict__.pop("__file__", None)
            main.__spec__ = None
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)
            if "__spec__" not in saved:
                main.__dict__.pop("__spec__", None)


def _timed(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(**kwargs)
    return out, time.perf_counter() - t0


def task_prefix(label: str, kwargs: Mapping[str, Any]) -> str:
    """``[label seed k]``: the label, and the seed of the task's config (``cfg.seed`` or ``seed``) unless the label
    already names one."""
    seed = kwargs.get("seed", getattr(kwargs.get("cfg"), "seed", None))
    if seed is not None and "seed" not in label:
        label = f"{label} seed {seed}"
    return f"[{label}] "


class LinePrefixed(io.TextIOBase):
    """A text stream that writes every complete line to ``stream`` with ``prefix`` in front (a carriage return ends
    a line too: a progress bar's redraws become lines). The unfinished rest is written by :meth:`flush`."""

    def __init__(self, stream: Any, prefix: str):
        super().__init__()
        self.stream, self.prefix, self._pending = stream, prefix, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        for line in lines:
            if line.strip():
                self.stream.write(f"{self.prefix}{line}\n")
        if lines:
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        if self._pending.strip():
            self.stream.write(f"{self.prefix}{self._pending}\n")
        self._pending = ""
        self.stream.flush()


def _worker_task(fn: Callable[..., Any], kwargs: Mapping[str, Any], prefix: str) -> tuple[Any, float, list[str]]:
    """One task in a worker: its output lines prefixed, its warnings recorded (each distinct one once) and returned
    as text for the caller to say once."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = LinePrefixed(out, prefix), LinePrefixed(err, prefix)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("once")
            result, seconds = _timed(fn, kwargs)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = out, err
    said = [f"{w.category.__name__}: {w.message}" for w in caught]
    return result, seconds, list(dict.fromkeys(said))


def say_warnings_once(raised: Mapping[str, Sequence[str]], say: Callable[[str], None]) -> None:
    """``{task label: [warning text, ...]}`` -> one line per distinct warning, naming the runs that raised it."""
    by_text: dict[str, list[str]] = {}
    for label, texts in raised.items():
        for text in texts:
            by_text.setdefault(text, []).append(label)
    for text, labels in by_text.items():
        who = labels[0] if len(labels) == 1 else f"{len(labels)} runs: {', '.join(sorted(labels))}"
        say(f"warning ({who}): {' '.join(text.split())}")


def run_tasks(
    fn: Callable[..., Any],
    tasks: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    plan: WorkerPlan | None = None,
    device: Any = "auto",
    log: Callable[[str], None] | None = print,
) -> list[tuple[Any, float]]:
    """``fn(**kwargs)`` for every ``(label, kwargs)`` of ``tasks``; returns ``[(result, seconds)]`` in task order.

    ``fn`` must be a module-level function and ``kwargs``/results picklable (they cross process boundaries). With one
    worker the tasks run here, in order. Put the longest tasks first: workers take them in order.

    Raises:
        the first failing task's own exception (with a note naming it); ``RuntimeError`` if a worker process died
        (killed, out of memory) naming the tasks that were running.
    """
    tasks = list(tasks)
    if not tasks:
        return []
    plan = plan or plan_workers(len(tasks), device)
    say = log or (lambda _msg: None)
    if plan.workers <= 1:
        results = []
        for label, kw in tasks:
            try:
                results.append(_timed(fn, kw))
            except Exception as e:
                e.add_note(f"while running {label}")
                raise
        return results
    say(f"training {len(tasks)} runs, {plan.workers} at a time, {plan.threads} thread(s) each ({plan.reason}): "
        + ", ".join(label for label, _ in tasks))  # fmt: skip
    out: dict[int, tuple[Any, float]] = {}
    t0 = time.perf_counter()
    ctx = get_context("spawn")  # never fork a process that holds OpenMP / torch threads
    with (
        _main_module_hidden(),
        ProcessPoolExecutor(plan.workers, mp_context=ctx, initializer=_init_worker, initargs=(plan.threads,)) as pool,
    ):
        futures: dict[Future, int] = {
            pool.submit(_worker_task, fn, kw, task_prefix(label, kw)): i for i, (label, kw) in enumerate(tasks)
        }
        raised: dict[str, list[str]] = {}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                i = futures[f]
                label = tasks[i][0]
                exc = f.exception()
                if exc is not None:
                    for p in pending:
                        p.cancel()
                    if isinstance(exc, BrokenProcessPool):
                        running = [tasks[futures[p]][0] for p in pending | done if not p.cancelled()]
                        raise RuntimeError(
                            f"a worker process died while training {', '.join(running) or label} (killed or out of "
                            f"memory?); finished runs are on disk. Set {ENV_WORKERS}=1 to train one at a time"
                        ) from exc
                    exc.add_note(f"while training {label} in a worker process")
                    raise exc
                result, seconds, said = f.result()
                out[i] = (result, seconds)
                if said:
                    raised[label] = said
                say(f"  {label}: done in {out[i][1] / 60:.1f} min ({time.perf_counter() - t0:.0f} s since the start)")
    say_warnings_once(raised, say)
    return [out[i] for i in range(len(tasks))]


def side_by_side(
    fn: Callable[..., Any], tasks: Sequence[tuple[str, Mapping[str, Any]]], device: Any = "auto"
) -> tuple[WorkerPlan, list[float]]:
    """:func:`run_tasks` in worker processes when the plan for ``tasks`` has several workers; returns the plan and
    each task's seconds, in task order (empty with one worker: the caller then trains them itself, in its own process
    and with its own prepared data)."""
    plan = plan_workers(len(tasks), device)
    if plan.workers <= 1:
        return plan, []
    return plan, [seconds for _, seconds in run_tasks(fn, tasks, plan=plan)]


__all__ = ["ENV_WORKERS", "WorkerPlan", "plan_workers", "run_tasks", "side_by_side"]
