"""Helpers of the released-equivalence tests: the synthetic reference weights and magnitude-scaled tolerances.

The reference tensors (``../shared/reference/released_orsanet_outputs.pt``) were recorded on one CPU; another CPU
(AVX-512 instead of AVX2, another thread count) sums in another order. The maps reach ~1.9e3 (landmark features)
and ~2.6e4 (IR features), where one float32 ulp is 1e-4 to 2e-3, so differences of up to ~3e-6 of the map's largest
value are rounding, not a wrong model. The absolute tolerance of a map therefore scales with its magnitude
(:func:`assert_matches_reference`); small outputs (logits, features) keep the fixed 1e-4.
"""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType

import torch

from orsalib.paths import shared_path

#: differences allowed relative to the largest magnitude of the reference map (observed up to 2.7e-6)
REL_ATOL = 1e-5


def synthetic_weights_module() -> ModuleType:
    """``../shared/reference/synthetic_weights.py`` (the reference's weight generator), imported by path."""
    ref = shared_path("reference")
    spec = importlib.util.spec_from_file_location("synthetic_weights", ref / "synthetic_weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def official_tables() -> dict:
    """``official_state_dicts.json``: every released network's keys and shapes."""
    return json.loads(shared_path("reference", "official_state_dicts.json").read_text())


def synthetic_subdict(prefix: str) -> dict[str, torch.Tensor]:
    """The ``prefix`` part of the synthetic ORSANet-large state dict (seed 0), as the reference fixture used it.

    The random stream runs over the whole table in file order, so the table is generated up to the last key with
    ``prefix`` (later keys cannot change earlier values) and then sliced.
    """
    table = official_tables()["orsanet_large_7cls"]["keys"]
    keys = list(table)
    last = max(i for i, k in enumerate(keys) if k.startswith(prefix))
    sd = synthetic_weights_module().synthetic_state_dict({k: table[k] for k in keys[: last + 1]}, seed=0)
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def scaled_atol(reference: torch.Tensor, floor: float = 1e-4, rel: float = REL_ATOL) -> float:
    """``max(floor, rel * max|reference|)``: the absolute tolerance of a map of this magnitude."""
    return max(floor, rel * float(reference.abs().max()))


def assert_matches_reference(actual: torch.Tensor, reference: torch.Tensor, name: str = "", rtol: float = 1e-3) -> None:
    """``assert_close`` with rtol 1e-3 and an absolute tolerance scaled to the reference's magnitude."""
    torch.testing.assert_close(actual, reference, rtol=rtol, atol=scaled_atol(reference), msg=name or None)
