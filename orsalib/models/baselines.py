"""Backbone-only baselines (paper Tables 2-4, "baseline" rows): ORSANet's image branch without priors and MCM.

``baseline_<size>`` is ``orsanet_<size>`` built with ``baseline=True``: the same IR backbone and token layer,
then mean over tokens -> LayerNorm -> SE -> linear head; no segmentation prior (SSGM), no landmark tokens, no
MCM. It takes the same constructor overrides as ORSANet (switches that concern priors are ignored), returns
``{"logits", "features"}`` and is trained with the same engine, so the difference to ORSANet measures what
the priors and the cross-interaction add.
"""

from __future__ import annotations

from typing import Any

import torch
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


class TimmClassifier(nn.Module):
    """A timm classifier under the workbook contract: ``forward(image, priors=None) -> {"logits", "features"}``.

    ``features`` (B, F) are the pooled pre-logits (what the head reads); priors are ignored.
    """

    def __init__(self, name: str, num_classes: int = 7, **kwargs: Any):
        super().__init__()
        import timm

        if kwargs.pop("pretrained", False):
            raise ValueError("the workbook does not download weights; timm baselines are built with pretrained=False")
        self.net = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)

    def forward(self, image: torch.Tensor, priors: dict | None = None) -> dict[str, torch.Tensor]:
        fmap = self.net.forward_features(image)  # (B, C, h, w)
        feat = self.net.forward_head(fmap, pre_logits=True)  # (B, C)
        return {"logits": self.net.get_classifier()(feat), "features": feat}


@register_model(family="baseline", task="fer", uses_priors=False, image_size=64)
def resnet18_cpu(**overrides: Any) -> nn.Module:
    """timm ``resnet18`` from scratch (11.2M parameters), the reference that SynthFER's difficulty is tuned against."""
    kw = dict(overrides)
    for k in ("img_size", "image_size", "drop_path", "prior_routing"):
        kw.pop(k, None)
    return TimmClassifier("resnet18", **kw)


class LogitsOnly(nn.Module):
    """Adapt a plain classifier ``f(x) -> logits`` to the workbook contract ``f(x, priors) -> {"logits"}``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, priors: dict | None = None) -> dict[str, torch.Tensor]:
        return {"logits": self.net(image)}


__all__ = [
    "LogitsOnly",
    "TimmClassifier",
    "baseline_cpu",
    "baseline_for",
    "baseline_ir50",
    "baseline_tiny",
    "resnet18_cpu",
]
