"""Parameters and FLOPs (paper Table 5), counted two independent ways.

* fvcore's ``FlopCountAnalysis`` (1 multiply-add = 1 flop, the convention of the paper's Table 5) with
  explicit handles for ``matmul`` / ``bmm`` / ``einsum`` / ``scaled_dot_product_attention`` so that attention
  is counted (fused attention is otherwise skipped); the operators fvcore skipped are listed.
* ``torch.utils.flop_counter.FlopCounterMode`` (2 flops per multiply-add; divided by 2 here) as a cross-check.
  It counts matmuls, convolutions and attention only, fvcore also counts norms and resizes, so the two agree
  to about 1% on conv/attention networks.

The frozen prior networks (``face_landback``, ``face_segment``) are reported apart from the trainable part,
as the paper does (its 6.9G excludes them).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..models import create_model

FROZEN_PRIOR_MODULES: tuple[str, ...] = ("face_landback", "face_segment")

# Paper Table 5: parameters (M) and FLOPs (G) as printed.
PAPER_TABLE5: dict[str, dict[str, float]] = {
    "ORSANet": {"params_M": 60.2, "flops_G": 6.9},
    "POSTER": {"params_M": 70.1, "flops_G": 7.4},
    "POSTER V2": {"params_M": 57.4, "flops_G": 8.1},
}


def paper_table5() -> pd.DataFrame:
    """Paper Table 5 as a DataFrame (model, params_M, flops_G)."""
    return pd.DataFrame([{"model": k, **v} for k, v in PAPER_TABLE5.items()])


def count_params(model: nn.Module) -> dict[str, int]:
    """``{"total", "trainable", "frozen"}`` parameter counts (shared tensors counted once)."""
    seen: set[int] = set()
    total = trainable = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return {"total": total, "trainable": trainable, "frozen": total - trainable}


# ----------------------------------------------------------------------------- fvcore handles
def _shape(v: Any) -> list[int] | None:
    from fvcore.nn.jit_handles import get_shape

    try:
        return get_shape(v)
    except Exception:  # noqa: BLE001 - a non-tensor argument (None, scalar)
        return None


def _matmul_handle(inputs: list, outputs: list) -> int:
    """``a @ b`` with broadcasting: prod(batch) * n * k * m multiply-adds."""
    a, b = _shape(inputs[0]), _shape(inputs[1])
    if len(a) == 1:
        a = [1, *a]
    if len(b) == 1:
        b = [*b, 1]
    batch = torch.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
    return int(math.prod(batch) * a[-2] * a[-1] * b[-1])


def _sdpa_handle(inputs: list, outputs: list) -> int:
    """``softmax(q k^T) v``: B*h*Nq*Nk*(d_qk + d_v) multiply-adds (softmax not counted)."""
    q, k, v = (_shape(x) for x in inputs[:3])
    batch = math.prod(q[:-2])
    return int(batch * q[-2] * k[-2] * (q[-1] + v[-1]))


def _einsum_handle(inputs: list, outputs: list) -> int:
    from fvcore.nn.jit_handles import einsum_flop_jit

    return int(einsum_flop_jit(inputs, outputs))


ATTENTION_HANDLES: dict[str, Any] = {
    "aten::matmul": _matmul_handle,
    "aten::bmm": _matmul_handle,
    "aten::einsum": _einsum_handle,
    "aten::scaled_dot_product_attention": _sdpa_handle,
}


def _torch_sdpa_mapping() -> dict[Any, Any]:
    """FlopCounterMode formulas for the CPU fused attention kernels it does not register itself."""
    from torch.utils.flop_counter import sdpa_flop_count

    def sdpa(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001 - shapes
        return sdpa_flop_count(q_shape, k_shape, v_shape)

    aten = torch.ops.aten
    names = ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_fused_attention_overrideable")
    return {getattr(aten, n): sdpa for n in names if hasattr(aten, n)}


# ----------------------------------------------------------------------------- counting
class _Traceable(nn.Module):
    """(image, *prior tensors) -> logits, so that jit tracing sees tensors only."""

    def __init__(self, model: nn.Module, prior_keys: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.prior_keys = prior_keys

    def forward(self, image: torch.Tensor, *priors: torch.Tensor) -> torch.Tensor:
        out = self.model(image, dict(zip(self.prior_keys, priors))) if self.prior_keys else self.model(image)
        return out["logits"] if isinstance(out, dict) else out


@dataclass
class FlopReport:
    """FLOPs of one forward pass (per batch given; divide by the batch for per-image numbers)."""

    total: int  # fvcore, 1 MAC = 1 flop
    trainable: int  # total minus the frozen prior networks
    frozen: int  # face_landback + face_segment
    by_module: dict[str, int]  # fvcore, direct children of the model
    by_operator: dict[str, int]  # fvcore, per aten op
    unsupported: dict[str, int]  # ops fvcore skipped (name -> calls)
    torch_total: int | None = None  # FlopCounterMode / 2
    torch_by_module: dict[str, int] = field(default_factory=dict)  # FlopCounterMode / 2, direct children
    batch: int = 1

    @property
    def torch_trainable(self) -> int | None:
        if self.torch_total is None:
            return None
        return self.torch_total - sum(self.torch_by_module.get(m, 0) for m in FROZEN_PRIOR_MODULES)

    @property
    def agreement(self) -> float | None:
        """Relative difference of the two counters on the trainable part (0.01 = 1%)."""
        if self.torch_trainable is None or not self.trainable:
            return None
        return abs(self.trainable - self.torch_trainable) / self.trainable

    def per_image(self, value: int | None) -> float | None:
        return None if value is None else value / self.batch

    def module_table(self) -> pd.DataFrame:
        """One row per direct child: fvcore and torch GFLOPs per image, share of the total, frozen flag."""
        rows = []
        for name, f in self.by_module.items():
            rows.append(
                {
                    "module": name,
                    "gflops": f / self.batch / 1e9,
                    "gflops_torch": self.torch_by_module.get(name, 0) / self.batch / 1e9,
                    "share_pct": 100.0 * f / max(self.total, 1),
                    "frozen_prior": name in FROZEN_PRIOR_MODULES,
                }
            )
        return pd.DataFrame(rows)


def example_inputs(model: nn.Module, batch: int = 1, image_size: int | None = None) -> tuple[Any, ...]:
    """``(image, priors)`` suited to ``model`` (random values; shapes per docs/contracts.md)."""
    cfg = getattr(model, "cfg", None)
    s = image_size or getattr(cfg, "img_size", None) or 224
    g = torch.Generator().manual_seed(0)
    image = torch.randn(batch, 3, s, s, generator=g)
    keys = tuple(getattr(model, "required_priors", ()))
    priors: dict[str, torch.Tensor] = {}
    for k in keys:
        if k == "landmarks":
            priors[k] = torch.rand(batch, 68, 2, generator=g)
        elif k == "parsing":
            priors[k] = torch.randint(0, 11, (batch, s, s), generator=g)
        elif k == "landmark_features":
            priors[k] = torch.randn(batch, getattr(cfg, "landmark_channels", 512), 7, 7, generator=g)
        elif k == "parser_features":
            priors[k] = torch.randn(batch, getattr(cfg, "parser_channels", 1024), 7, 7, generator=g)
    return (image, priors)


def _children_sum(flops_by_name: dict[str, int], prefix: str = "") -> dict[str, int]:
    out: dict[str, int] = {}
    for name, f in flops_by_name.items():
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix) :]
        if rest and "." not in rest:
            out[rest] = out.get(rest, 0) + int(f)
    return out


def count_flops(model: nn.Module, inputs: tuple[Any, ...] | None = None, *, cross_check: bool = True) -> FlopReport:
    """Count FLOPs of ``model`` on ``inputs`` (``(image,)`` or ``(image, priors)``; default: :func:`example_inputs`).

    The model is put in eval mode for the count and restored afterwards.
    """
    from fvcore.nn import FlopCountAnalysis

    inputs = example_inputs(model) if inputs is None else tuple(inputs)
    image = inputs[0]
    priors = inputs[1] if len(inputs) > 1 and inputs[1] else {}
    keys = tuple(priors)
    wrapper = _Traceable(model, keys)
    args = (image, *(priors[k] for k in keys))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            fca = FlopCountAnalysis(wrapper, args).set_op_handle(**ATTENTION_HANDLES)
            fca.unsupported_ops_warnings(False)
            fca.uncalled_modules_warnings(False)
            fca.tracer_warnings("none")
            total = int(fca.total())
            by_module = _children_sum(fca.by_module(), "model.")
            by_operator = {k: int(v) for k, v in fca.by_operator().items()}
            unsupported = dict(Counter(fca.unsupported_ops()))
            torch_total, torch_by_module = None, {}
            if cross_check:
                from torch.utils.flop_counter import FlopCounterMode

                with FlopCounterMode(display=False, custom_mapping=_torch_sdpa_mapping()) as fc:
                    wrapper(*args)
                torch_total = int(fc.get_total_flops()) // 2
                counts = {n: sum(d.values()) for n, d in fc.get_flop_counts().items()}
                root = type(wrapper).__name__ + ".model."
                torch_by_module = {k: v // 2 for k, v in _children_sum(counts, root).items()}
    finally:
        model.train(was_training)
    frozen = sum(by_module.get(m, 0) for m in FROZEN_PRIOR_MODULES)
    return FlopReport(
        total=total,
        trainable=total - frozen,
        frozen=frozen,
        by_module=by_module,
        by_operator=by_operator,
        unsupported=unsupported,
        torch_total=torch_total,
        torch_by_module=torch_by_module,
        batch=int(image.shape[0]),
    )


def _complexity(name: str, flops: bool, cross_check: bool, overrides: dict[str, Any]) -> tuple[dict, pd.DataFrame]:
    """One model's row (params, GFLOPs per image, time to count) and its FLOPs-by-module table."""
    t0 = time.perf_counter()
    model = create_model(name, **overrides)
    p = count_params(model)
    row: dict[str, Any] = {
        "model": name + ("" if not overrides else " " + ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))),
        "params_total_M": p["total"] / 1e6,
        "params_trainable_M": p["trainable"] / 1e6,
        "params_total": p["total"],
        "params_trainable": p["trainable"],
    }
    by_module = pd.DataFrame()
    if flops:
        rep = count_flops(model, example_inputs(model), cross_check=cross_check)
        row.update(
            {
                "gflops_trainable": rep.trainable / 1e9,
                "gflops_frozen_priors": rep.frozen / 1e9,
                "gflops_total": rep.total / 1e9,
                "gflops_trainable_torch": None if rep.torch_trainable is None else rep.torch_trainable / 1e9,
                "counter_diff_pct": None if rep.agreement is None else 100.0 * rep.agreement,
                "fvcore_skipped_ops": ", ".join(sorted(rep.unsupported)),
            }
        )
        by_module = rep.module_table().assign(model=row["model"])
    row["count_seconds"] = time.perf_counter() - t0
    return row, by_module


def complexity_row(name: str, *, flops: bool = True, cross_check: bool = True, **overrides: Any) -> dict[str, Any]:
    """Params (and FLOPs per image) of one registered model, built with ``overrides``."""
    return _complexity(name, flops, cross_check, overrides)[0]


def complexity_table(
    names: list[str] | tuple[str, ...], *, flops: bool = True, cross_check: bool = True, **overrides: Any
) -> pd.DataFrame:
    """One row per registered model name: params (total / trainable) and GFLOPs per image (fvcore + torch).

    The same table ``orsa flops`` prints and notebook 30 saves as ``complexity``.
    """
    return complexity_report(names, flops=flops, cross_check=cross_check, **overrides)[0]


def complexity_report(
    names: list[str] | tuple[str, ...], *, flops: bool = True, cross_check: bool = True, **overrides: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`complexity_table` and, beside it, the FLOPs of every model by module (one frame, column ``model``)."""
    rows, parts = [], []
    for n in names:
        row, by_module = _complexity(n, flops, cross_check, dict(overrides))
        rows.append(row)
        parts.append(by_module)
    by_modules = pd.concat(parts, ignore_index=True) if any(len(p) for p in parts) else pd.DataFrame()
    return pd.DataFrame(rows), by_modules


# ----------------------------------------------------------------------------- structure tables
def module_tree(model: nn.Module, depth: int = 2) -> pd.DataFrame:
    """Sub-modules down to ``depth`` (1 = direct children): name, type, params, trainable params."""
    rows = []
    for name, mod in model.named_modules():
        level = name.count(".") + 1 if name else 0
        if 0 < level <= depth:
            p = count_params(mod)
            rows.append(
                {"module": name, "type": type(mod).__name__, "depth": level, **{f"params_{k}": v for k, v in p.items()}}
            )
    return pd.DataFrame(rows)


def shape_table(model: nn.Module, inputs: tuple[Any, ...] | None = None, depth: int = 2) -> pd.DataFrame:
    """Output shapes of every sub-module down to ``depth``, in call order, recorded by forward hooks.

    Args:
        model: any module whose forward takes ``(image, priors)`` (or ``(image,)``).
        inputs: ``(image, priors)``; default :func:`example_inputs`.
        depth: deepest module level to record (1 = direct children).
    """
    inputs = example_inputs(model) if inputs is None else tuple(inputs)
    rows: list[dict[str, Any]] = []

    def fmt(x: Any) -> str:
        if torch.is_tensor(x):
            return str(tuple(x.shape))
        if isinstance(x, (list, tuple)):
            return "[" + ", ".join(fmt(v) for v in x) + "]"
        if isinstance(x, dict):
            return "{" + ", ".join(f"{k}: {fmt(v)}" for k, v in x.items()) + "}"
        return type(x).__name__

    def hook(name: str):
        def fn(mod: nn.Module, args: tuple, out: Any) -> None:
            first = next((a for a in args if torch.is_tensor(a)), None)
            rows.append({"module": name, "type": type(mod).__name__, "input": fmt(first), "output": fmt(out)})

        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n and n.count(".") + 1 <= depth]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            priors = inputs[1] if len(inputs) > 1 else None
            model(inputs[0], priors) if priors is not None else model(inputs[0])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return pd.DataFrame(rows)
