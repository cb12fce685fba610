"""The model registry, timm style: ``create_model("orsanet_small", seg_prior=False)`` (an :mod:`orsalib.registry`
registry whose providers are the model files).

Contract for every model the workbook trains: ``forward(image, priors=None) -> dict`` with at least
``"logits"`` (B, C); optional ``"features"`` (B, D) and model-specific extras (``"alphas"`` for RAN,
``"attn"`` for attention maps). ``priors`` is a dict of tensors keyed by
``orsalib.models.PRIOR_KEYS``; models that use no priors ignore it.
Plain ``nn.Module`` classifiers (timm models) are adapted with :class:`orsalib.models.baselines.LogitsOnly`.
Importing this module imports no torch (:mod:`orsalib.config` validates model names with it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

from ..registry import Registry

PRIOR_KEYS: tuple[str, ...] = ("landmarks", "landmark_features", "parsing", "parser_features")

#: the model registry (the one mechanism of :mod:`orsalib.registry`); its providers are the model files
MODELS = Registry(
    "model", providers=tuple(f"orsalib.models.{m}" for m in ("orsanet", "ran", "gfnet", "spectralformer", "baselines"))
)


def register_model(fn: Callable[..., nn.Module] | None = None, *, name: str | None = None, **meta: Any):
    """Decorator: register a model factory under its function name (or ``name``)."""

    def deco(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        return MODELS.register(name or f.__name__, **meta)(f)

    return deco(fn) if fn is not None else deco


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob ``pattern``, sorted."""
    import fnmatch

    return sorted(k for k in MODELS.names() if fnmatch.fnmatch(k, pattern))


def model_meta(name: str) -> dict[str, Any]:
    """The metadata of a registered model (``{}`` for an unknown name)."""
    return MODELS.meta(name) if name in MODELS else {}


def model_doc(name: str) -> str:
    """The first line of a registered model's docstring ("" when it has none)."""
    doc = (getattr(MODELS.get(name), "__doc__", None) or "") if name in MODELS else ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model by name, with keyword overrides of its config."""
    return MODELS.get(name)(**overrides)
