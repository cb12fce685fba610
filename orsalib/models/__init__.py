"""Models: a timm-style registry; one file per model family."""

from ._registry import PRIOR_KEYS, LogitsOnly, create_model, list_models, model_doc, model_meta, register_model

__all__ = ["PRIOR_KEYS", "LogitsOnly", "create_model", "list_models", "model_doc", "model_meta", "register_model"]
