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

from ._registry import list_models, model_meta, register_model
from .orsanet import orsanet_cpu, orsanet_large, orsanet_tiny


def baseline_for(model_name: str) -> str:
    """The registered baseline sharing ``model_name``'s backbone (``"orsanet_cpu"`` -> ``"baseline_cpu"``).

    Read from the registry metadata ``baseline_of`` of the ``baseline`` family; a baseline maps to itself.
    """
    if model_meta(model_name).get("family") == "baseline":
        return model_name
    for name in list_models():
        if model_name in model_meta(name).get("baseline_of", ()):
            return name
    known = sorted(m for n in list_models() for m in model_meta(n).get("baseline_of", ()))
    raise ValueError(f"no baseline is registered for model {model_name!r}; known: {known}")


def _strip(overrides: dict[str, Any]) -> dict[str, Any]:
    kw = dict(overrides)
    kw.pop("baseline", None)
    return kw


@register_model(family="baseline", task="fer", uses_priors=False, image_size=64, baseline_of=("orsanet_tiny",))
def baseline_tiny(**overrides: Any) -> nn.Module:
    """``orsanet_tiny``'s backbone, no priors, no MCM (global mean of tokens + SE + linear head)."""
    return orsanet_tiny(baseline=True, **_strip(overrides))


@register_model(family="baseline", task="fer", uses_priors=False, image_size=64, baseline_of=("orsanet_cpu",))
def baseline_cpu(**overrides: Any) -> nn.Module:
    """``orsanet_cpu``'s backbone, no priors, no MCM."""
    return orsanet_cpu(baseline=True, **_strip(overrides))


@register_model(
    family="baseline", task="fer", uses_priors=False, image_size=224,
    baseline_of=("orsanet_large", "orsanet_base", "orsanet_small"),
)  # fmt: skip
def baseline_ir50(**overrides: Any) -> nn.Module:
    """The released IR-50 image branch (112 px nearest resize, 3 stages, raw token view), no priors, no MCM."""
    return orsanet_large(baseline=True, **_strip(overrides))


__all__ = ["baseline_cpu", "baseline_for", "baseline_ir50", "baseline_tiny"]
