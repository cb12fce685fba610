"""Models: a timm-style registry; one file per model family. Importing the package imports no torch."""

from typing import Any

from ._registry import PRIOR_KEYS, create_model, list_models, model_doc, model_meta, register_model


def __getattr__(name: str) -> Any:
    if name == "LogitsOnly":  # a torch module: imported on use
        from .baselines import LogitsOnly

        return LogitsOnly
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PRIOR_KEYS", "LogitsOnly", "create_model", "list_models", "model_doc", "model_meta", "register_model"]
