"""Backbone-only baselines (paper Tables 2-4, "baseline" rows): ORSANet's image branch without priors and MCM.

``baseline_<size>`` is ``orsanet_<size>`` built with ``baseline=True``: the same IR backbone and token layer,
then mean over tokens -> LayerNorm -> SE -> linear head; no segmentation prior (SSGM), no landmark tokens, no
MCM. It takes the same constructor overrides as ORSANet (switches that concern priors are ignored), returns
``{"logits", "features"}`` and is trained with the same engine, so the difference to ORSANet measures what
the priors and the cross-interaction add.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ._registry import register_model
from .orsanet import orsanet_cpu, orsanet_large, orsanet_tiny

#: baseline name -> the ORSANet variant whose backbone it shares.
BASELINE_OF: dict[str, str] = {
    "baseline_tiny": "orsanet_tiny",
    "baseline_cpu": "orsanet_cpu",
    "baseline_ir50": "orsanet_large",
}


def baseline_for(model_name: str) -> str:
    """The baseline sharing ``model_name``'s backbone (``"orsanet_cpu"`` -> ``"baseline_cpu"``)."""
    for base, full in BASELINE_OF.items():
        if full == model_name:
            return base
    if model_name in ("orsanet_small", "orsanet_base"):
        return "baseline_ir50"
    if model_name in BASELINE_OF:
        return model_name
    raise ValueError(f"no baseline is registered for model {model_name!r}; known: {sorted(BASELINE_OF.values())}")


def _strip(overrides: dict[str, Any]) -> dict[str, Any]:
    kw = dict(overrides)
    kw.pop("baseline", None)
    return kw


@register_model(image_size=64, baseline_of="orsanet_tiny")
def baseline_tiny(**overrides: Any) -> nn.Module:
    """``orsanet_tiny``'s backbone, no priors, no MCM (global mean of tokens + SE + linear head)."""
    return orsanet_tiny(baseline=True, **_strip(overrides))


@register_model(image_size=64, baseline_of="orsanet_cpu")
def baseline_cpu(**overrides: Any) -> nn.Module:
    """``orsanet_cpu``'s backbone, no priors, no MCM."""
    return orsanet_cpu(baseline=True, **_strip(overrides))


@register_model(image_size=224, baseline_of="orsanet_large")
def baseline_ir50(**overrides: Any) -> nn.Module:
    """The released IR-50 image branch (112 px nearest resize, 3 stages, raw token view), no priors, no MCM."""
    return orsanet_large(baseline=True, **_strip(overrides))


__all__ = ["BASELINE_OF", "baseline_cpu", "baseline_for", "baseline_ir50", "baseline_tiny"]
