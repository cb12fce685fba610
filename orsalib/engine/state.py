"""What makes a training run resumable bit for bit: every random stream seeded from ``(seed, epoch[, rank])``, all RNG
states saved and restored, and checkpoints read back with a clear error (only tensors and plain containers).

:mod:`orsalib.engine.trainer` uses these; they are importable from there too.
"""

from __future__ import annotations

import pickle
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.loaders import PROCESS_STREAM, derive_seed
from ..errors import CheckpointError
from . import ddp


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A well-mixed 63-bit seed of a process's global RNGs for (run seed, 0-based epoch, DDP rank)."""
    return derive_seed(seed, PROCESS_STREAM, epoch, rank)


def seed_epoch(seed: int, epoch: int, loader: Any = None, rank: int | None = None) -> int:
    """Re-seed python / numpy / torch (all devices) from ``(seed, epoch, rank)``; put the loader at ``epoch``.

    The loader part handles samplers with ``set_epoch`` (``DistributedSampler``, the workbook's samplers), samplers
    with their own ``torch.Generator`` (e.g. a ``WeightedRandomSampler(generator=...)``), a DataLoader ``generator``
    (which also seeds the workers) and datasets with ``set_epoch`` (:class:`orsalib.data.loaders.FERDataset`).

    Args:
        seed: the run seed.
        epoch: the 0-based epoch.
        loader: the training DataLoader, or None.
        rank: the DDP rank (default: this process's rank); dropout masks differ between ranks.
    """
    s = epoch_seed(seed, epoch, ddp.get_rank() if rank is None else rank)
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
    if loader is None:
        return s
    gen = getattr(loader, "generator", None)
    if isinstance(gen, torch.Generator):
        gen.manual_seed(s ^ 0x5EED)
    samplers = [getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)]
    for smp in samplers:
        if smp is None:
            continue
        if hasattr(smp, "set_epoch"):
            smp.set_epoch(epoch)
        g = getattr(smp, "generator", None)
        if isinstance(g, torch.Generator):
            g.manual_seed(s ^ 0xA11CE)
    dataset = getattr(loader, "dataset", None)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    return s


def rng_state() -> dict[str, Any]:
    """All RNG states as tensors / plain python (loadable with ``torch.load(weights_only=True)``)."""
    st = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(st[1].astype(np.int64)),
            "pos": int(st[2]),
            "has_gauss": int(st[3]),
            "cached_gaussian": float(st[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


_EXPECTED_CKPT = (
    "expected a checkpoint written by orsalib fit() (a dict of tensors and plain values with 'model', 'epoch', ...)"
)


def _load_failure(e: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, without torch's advice to load it unrestricted.

    A refused pickle names the offending global (``GLOBAL module.Name``) only; other errors keep their first
    sentence (a truncated zip, a wrong file type).
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    if isinstance(e, pickle.UnpicklingError) or "weights only load failed" in text.lower():
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f" (it references {found.group(1)})" if found else ""
        return f"it holds objects other than tensors and plain containers{what}; it was not unpickled"
    first = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0] if text.strip() else "no detail"
    return f"it is truncated or corrupt ({type(e).__name__}: {first[:200]})"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a trainer checkpoint (``last.pt`` / ``best.pt``) with a clear error for missing or damaged files.

    Only tensors and plain containers are read (``weights_only=True``); a file with anything else is refused
    and never unpickled.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; {_EXPECTED_CKPT}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, bad pickle, wrong file type: all the file's fault
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read: {_load_failure(e)}; {_EXPECTED_CKPT}. Delete it or point to "
            "an intact one (the other file in the same checkpoints/ folder may still be good)"
        ) from e
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        keys = sorted(ckpt)[:10] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not an orsalib trainer checkpoint (found {keys}); {_EXPECTED_CKPT}"
        )
    return ckpt


__all__ = ["epoch_seed", "load_checkpoint", "rng_state", "seed_epoch", "set_rng_state"]
