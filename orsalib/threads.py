"""One CPU thread policy for the workbook: torch intra-op threads = the physical cores this process may use.

Why: torch's default is one intra-op thread per *logical* CPU the runtime sees, and the workbook runs on shared
machines where other processes already load the cores. More busy threads than cores (OpenMP threads of torch
plus DataLoader workers plus other users' jobs) make every parallel region wait for its slowest, descheduled
thread. Measured on the shared 2-core machine at a load average of 6.5-8 (docs/speed.md): one ``orsanet_cpu``
training step (batch 32) took 9-17 s with torch's default (2 threads that spin while they wait), 2.1-3.3 s with
1 thread and 0.9-3 s with 2 threads that sleep while they wait (below).

The policy (:func:`thread_plan` computes it, :func:`apply_thread_policy` applies it):

- CPUs available = this process's affinity mask (``os.sched_getaffinity``), capped by a cgroup CPU quota
  (``/sys/fs/cgroup/cpu.max``) when there is one;
- intra-op threads = the *physical* cores among them (SMT siblings counted once, from
  ``/sys/devices/system/cpu/cpu*/topology``), at least 1;
- ``OMP_NUM_THREADS`` (a positive integer) wins when set: the user or a launcher such as torchrun chose;
- OpenMP threads that wait at the end of a parallel region sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``
  unless set): a spinning thread burns the CPU time its descheduled partner needs. On the shared 2-core machine
  under a load average of 6.5, one ``orsanet_cpu`` training step took 9-17 s with torch's spinning default and
  0.9-3 s with PASSIVE (the same two threads; docs/speed.md). OpenMP reads it once, when torch is imported: it acts
  in this process when the environment is exported before ``import torch`` (:func:`export_thread_environment`,
  which ``import orsalib`` calls and which does not import torch), and always in subprocesses (papermill kernels,
  torchrun workers);
- DataLoader workers (:func:`loader_workers`) use only the CPUs the intra-op threads leave free (on CUDA all
  but one: the main process mostly waits on the device); each worker runs one thread (the DataLoader sets it).

Usage: ``import orsalib`` calls :func:`export_thread_environment` (environment only, no torch import); the CLI and
the runbook call :func:`apply_thread_policy` (environment + ``torch.set_num_threads``). Both are idempotent and cheap
(a few sysfs reads).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ThreadPlan",
    "applied_plan",
    "apply_thread_policy",
    "available_cpus",
    "export_thread_environment",
    "loader_workers",
    "physical_cores",
    "thread_plan",
]

_SYS_CPU = Path("/sys/devices/system/cpu")
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


@dataclass(frozen=True)
class ThreadPlan:
    """What the policy decided.

    Attributes:
        intra_op: torch intra-op threads (``torch.set_num_threads``).
        logical: logical CPUs available to the process (affinity, capped by the cgroup quota).
        physical: physical cores among them.
        source: ``"OMP_NUM_THREADS"`` when the environment chose, else ``"physical cores"``.
        wait_policy: the OpenMP wait policy (``OMP_WAIT_POLICY`` when set, else ``"PASSIVE"``).
    """

    intra_op: int
    logical: int
    physical: int
    source: str
    wait_policy: str = "PASSIVE"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def available_cpus(
    affinity: Callable[[], Iterable[int]] | None = None, cgroup_file: Path = _CGROUP_CPU_MAX
) -> list[int]:
    """The logical CPU ids this process may run on (sorted), from its affinity mask.

    Args:
        affinity: returns the CPU ids (default ``os.sched_getaffinity(0)``; ``range(os.cpu_count())`` where the
            platform has no affinity call).
        cgroup_file: a cgroup-v2 ``cpu.max`` (``"<quota> <period>"`` or ``"max <period>"``); a quota of q/p CPUs
            keeps the first ``ceil(q/p)`` of them.
    """
    if affinity is None:
        if hasattr(os, "sched_getaffinity"):
            cpus = sorted(os.sched_getaffinity(0))
        else:  # pragma: no cover - macOS / Windows
            cpus = list(range(os.cpu_count() or 1))
    else:
        cpus = sorted(int(c) for c in affinity())
    quota = _cgroup_quota(cgroup_file)
    if quota is not None and quota < len(cpus):
        cpus = cpus[: max(1, quota)]
    return cpus or [0]


def _cgroup_quota(path: Path) -> int | None:
    """``ceil(quota / period)`` CPUs of a cgroup-v2 ``cpu.max`` file, or None (no file, no limit, unreadable)."""
    try:
        quota, period = path.read_text().split()[:2]
        if quota == "max":
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def physical_cores(cpus: Iterable[int], sys_cpu: Path = _SYS_CPU) -> int:
    """Physical cores among the logical CPUs ``cpus``: distinct (package, core) pairs read from sysfs topology.

    Falls back to the number of logical CPUs when the topology is not readable (non-Linux, restricted sysfs).
    """
    cpus = list(cpus)
    cores: set[tuple[str, str]] = set()
    for c in cpus:
        topo = sys_cpu / f"cpu{c}" / "topology"
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            return len(cpus)
    return max(1, len(cores))


def _env_threads(env: Mapping[str, str]) -> int | None:
    raw = env.get("OMP_NUM_THREADS", "").strip()
    if not raw:
        return None
    try:
        n = int(raw.split(",")[0])  # OpenMP allows a nesting list "4,2": the outer level counts
    except ValueError:
        return None
    return n if n > 0 else None


def thread_plan(
    env: Mapping[str, str] | None = None,
    affinity: Callable[[], Iterable[int]] | None = None,
    sys_cpu: Path = _SYS_CPU,
    cgroup_file: Path = _CGROUP_CPU_MAX,
) -> ThreadPlan:
    """The thread numbers of the policy (no side effects; the arguments exist for tests).

    Args:
        env: the environment (default ``os.environ``).
        affinity: the CPU ids of the affinity mask (default ``os.sched_getaffinity(0)``).
        sys_cpu: the sysfs CPU folder (topology).
        cgroup_file: the cgroup-v2 ``cpu.max`` file.
    """
    env = os.environ if env is None else env
    cpus = available_cpus(affinity, cgroup_file)
    physical = physical_cores(cpus, sys_cpu)
    omp = _env_threads(env)
    wait = env.get("OMP_WAIT_POLICY", "").strip().upper() or "PASSIVE"
    if omp is not None:
        return ThreadPlan(omp, len(cpus), physical, "OMP_NUM_THREADS", wait)
    return ThreadPlan(physical, len(cpus), physical, "physical cores", wait)


def loader_workers(requested: int, device: Any = "cpu", plan: ThreadPlan | None = None) -> int:
    """DataLoader workers that do not oversubscribe the CPUs: at most ``requested``.

    On a CPU device the workers get the logical CPUs the intra-op threads leave free (``logical - intra_op``,
    0 on a machine without SMT: the batches are then decoded in the training process); on CUDA every CPU but
    one (the main process mostly waits on the device). The batches do not depend on the number of workers
    (:mod:`orsalib.data.loaders`), so capping never changes a result.

    Args:
        requested: ``data.num_workers``.
        device: the training device (a ``torch.device`` or its string).
        plan: the thread plan (default :func:`thread_plan`).
    """
    requested = int(requested)
    if requested <= 0:
        return 0
    plan = plan or thread_plan()
    kind = getattr(device, "type", str(device).split(":")[0])
    free = plan.logical - 1 if kind == "cuda" else plan.logical - plan.intra_op
    return max(0, min(requested, free))


_APPLIED: ThreadPlan | None = None


def export_thread_environment(plan: ThreadPlan | None = None) -> ThreadPlan:
    """Export the policy to the environment without importing torch (what ``import orsalib`` calls).

    Sets ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` (= ``plan.intra_op``) and ``OMP_WAIT_POLICY`` (= ``PASSIVE``)
    in ``os.environ`` *where absent*. A torch imported afterwards starts its OpenMP runtime with them (threads and
    wait policy); subprocesses (papermill kernels, torchrun, spawned DataLoader workers) inherit them.
    """
    plan = plan or thread_plan()
    for var, value in (("OMP_NUM_THREADS", str(plan.intra_op)), ("MKL_NUM_THREADS", str(plan.intra_op)),
                       ("OMP_WAIT_POLICY", plan.wait_policy)):  # fmt: skip
        os.environ.setdefault(var, value)
    return plan


def apply_thread_policy(plan: ThreadPlan | None = None, set_env: bool = True) -> ThreadPlan:
    """Apply the policy to this process (idempotent); returns the :class:`ThreadPlan`.

    Side effects:
        - with ``set_env``, :func:`export_thread_environment` (environment variables where absent);
        - imports torch and calls ``torch.set_num_threads(plan.intra_op)`` (the wait policy acts only if torch was
          not imported before: call :func:`export_thread_environment` early, as ``import orsalib`` does);
        - the inter-op pool is not touched (the workbook runs no inter-op parallel work).

    Args:
        plan: the plan to apply (default :func:`thread_plan` of this process).
        set_env: also export the policy to the environment.
    """
    global _APPLIED
    plan = plan or thread_plan()
    if set_env:
        export_thread_environment(plan)
    import torch  # after the environment: a first import of torch starts OpenMP with the policy

    if torch.get_num_threads() != plan.intra_op:
        torch.set_num_threads(plan.intra_op)
    _APPLIED = plan
    return plan


def applied_plan() -> ThreadPlan | None:
    """The plan :func:`apply_thread_policy` applied last in this process (None before it ran)."""
    return _APPLIED
