"""Distributed data-parallel training through ``torchrun`` (NCCL on GPU, gloo on CPU).

Launch: ``orsa train --nproc-per-node N --profile cpu --run-name R [--set k=v ...]``, which re-launches itself as
``torchrun --standalone --nproc_per_node N -m orsalib train <the same arguments>`` (:func:`launch`); each process
then initialises the process group (:func:`distributed_session`) before it builds its loaders.

Inside :func:`orsalib.engine.trainer.fit` a run is distributed when ``torch.distributed`` is initialised: the model
is wrapped in ``DistributedDataParallel``, the training sampler (a ``DistributedSampler``, see
``orsalib.data.loaders.build_loaders(distributed=True)``) gets ``set_epoch``, train metrics are all-reduced,
evaluation predictions are gathered (duplicates from sampler padding dropped by sample index), and only rank 0
prints, writes metrics and checkpoints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..utils import resolve_device


@dataclass
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, ``local_rank`` on its node, its ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True inside a process started by ``torchrun`` (it sets RANK / WORLD_SIZE / LOCAL_RANK)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def init_distributed(device: str = "auto", backend: str | None = None) -> DistInfo:
    """Initialise the process group from torchrun's environment (no-op returning rank 0 of 1 outside torchrun).

    Args:
        device: ``"auto"`` -> CUDA (one GPU per local rank, NCCL) when present, else CPU (gloo).
        backend: force ``"nccl"`` or ``"gloo"``.
    """
    if not launched_by_torchrun():
        return DistInfo(device=resolve_device(device))
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    backend = backend or ("nccl" if use_cuda else "gloo")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def cleanup() -> None:
    """Destroy the process group (safe to call when none exists)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(values: list[float], device: torch.device | str = "cpu") -> list[float]:
    """Sum a list of numbers over all ranks (identity when not distributed)."""
    if not is_distributed():
        return [float(v) for v in values]
    dev = torch.device(device)
    if dist.get_backend() == "nccl" and dev.type != "cuda":
        dev = torch.device("cuda", torch.cuda.current_device())
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (``[obj]`` when not distributed)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DDP / ``torch.compile`` wrappers (whose ``state_dict`` keys carry no prefix)."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def torchrun_command(nproc_per_node: int, module: str = "orsalib", args: list[str] | None = None) -> list[str]:
    """The argv that runs ``python -m module args`` under ``torchrun --standalone --nproc_per_node N``."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={int(nproc_per_node)}",
        "-m",
        module,
        *(args or []),
    ]


def launch(nproc_per_node: int, args: list[str]) -> int:
    """Run ``orsa train <args>`` in ``nproc_per_node`` processes (``torchrun ... -m orsalib train <args>``).

    ``args`` are the arguments of ``orsa train`` without the launcher option; returns torchrun's exit code.
    """
    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node={nproc_per_node!r} must be >= 1")
    return subprocess.call(torchrun_command(nproc_per_node, module="orsalib", args=["train", *args]))


@contextmanager
def distributed_session(device: str = "auto", backend: str | None = None) -> Iterator[DistInfo]:
    """Initialise the process group when started by torchrun (:func:`init_distributed`) and destroy it on exit.

    Outside torchrun it yields rank 0 of 1 and does nothing else. After an exception the group is destroyed without
    the final barrier (the other ranks may never reach it).
    """
    info = init_distributed(device, backend)
    ok = False
    try:
        yield info
        ok = True
    finally:
        if launched_by_torchrun() and dist.is_available() and dist.is_initialized():
            if ok:
                dist.barrier()
            dist.destroy_process_group()
