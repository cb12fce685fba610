"""A string registry of models, timm style: ``create_model("orsanet_small", seg_prior=False)``.

Contract for every model the workbook trains: ``forward(image, priors=None) -> dict`` with at least
``"logits"`` (B, C); optional ``"features"`` (B, D) and model-specific extras (``"alphas"`` for RAN,
``"attn"`` for attention maps). ``priors`` is a dict of tensors keyed by
``orsalib.models.PRIOR_KEYS``; models that use no priors ignore it.
Plain ``nn.Module`` classifiers (timm models) are adapted with :class:`LogitsOnly`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

PRIOR_KEYS: tuple[str, ...] = ("landmarks", "landmark_features", "parsing", "parser_features")

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_META: dict[str, dict[str, Any]] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, name: str | None = None, **meta: Any):
    """Decorator: register a model factory under its function name (or ``name``)."""

    def deco(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or f.__name__
        if key in _MODELS and _MODELS[key] is not f:
            raise KeyError(f"model {key!r} is already registered")
        _MODELS[key] = f
        _META[key] = dict(meta)
        return f

    return deco(fn) if fn is not None else deco


def _import_builtin_models() -> None:
    # Importing the model files registers them; missing optional ones are skipped.
    import importlib

    for mod in ("orsanet", "ran", "gfnet", "spectralformer", "baselines"):
        try:
            importlib.import_module(f"orsalib.models.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"orsalib.models.{mod}":
                raise


def list_models(pattern: str = "*") -> list[str]:
    import fnmatch

    _import_builtin_models()
    return sorted(k for k in _MODELS if fnmatch.fnmatch(k, pattern))


def model_meta(name: str) -> dict[str, Any]:
    _import_builtin_models()
    return dict(_META.get(name, {}))


def model_doc(name: str) -> str:
    """The first line of a registered model's docstring ("" when it has none)."""
    _import_builtin_models()
    doc = getattr(_MODELS.get(name), "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model by name, with keyword overrides of its config."""
    _import_builtin_models()
    if name not in _MODELS:
        import difflib

        close = difflib.get_close_matches(name, list(_MODELS), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Registered: {sorted(_MODELS)}")
    return _MODELS[name](**overrides)


class LogitsOnly(nn.Module):
    """Adapt a plain classifier ``f(x) -> logits`` to the workbook contract ``f(x, priors) -> {"logits"}``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, priors: dict | None = None) -> dict[str, torch.Tensor]:
        return {"logits": self.net(image)}
