"""Predictions -> metrics; occlusion sweeps (paper Tables 3-4); best-vs-last bookkeeping.

``predict`` runs a model over a loader in eval mode and keeps logits, labels, manifest indices and (when the
model returns them) final features. ``occlusion_sweep`` evaluates several models on the *same* validation set
under 0/10/20/30% artificial occlusion with deterministic masks (identical for every model), on semantic
occluders and on real-occlusion subsets, with bootstrap 95% confidence intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..metrics import bootstrap_ci, classification_report
from ..models._registry import PRIOR_KEYS


@dataclass
class Predictions:
    """Everything one evaluation pass produced.

    Attributes:
        logits: (N, C) float32.
        labels: (N,) int64 ground truth.
        indices: (N,) int64 manifest rows (the sample ids).
        features: (N, D) float32 final features, or None when the model returns none.
        extras: other per-sample arrays the model returned and the caller asked to keep (e.g. ``"attn"``).
    """

    logits: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    features: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def preds(self) -> np.ndarray:
        """(N,) argmax class ids."""
        if self.logits.size == 0:
            return np.zeros((0,), dtype=np.int64)
        return self.logits.argmax(axis=1).astype(np.int64)

    @property
    def correct(self) -> np.ndarray:
        """(N,) bool, prediction == label."""
        return self.preds == self.labels

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def report(self, num_classes: int | None = None) -> dict:
        """``orsalib.metrics.classification_report`` of these predictions."""
        nc = num_classes if num_classes is not None else (self.logits.shape[1] if self.logits.ndim == 2 else None)
        return classification_report(self.labels, self.preds, nc)

    def accuracy_ci(self, n: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
        """Bootstrap confidence interval of the accuracy."""
        return bootstrap_ci(self.labels, self.preds, "accuracy", n=n, seed=seed, alpha=alpha)

    def subset(self, mask: np.ndarray) -> Predictions:
        """The predictions of the rows where ``mask`` is True."""
        mask = np.asarray(mask, dtype=bool)
        return Predictions(
            logits=self.logits[mask],
            labels=self.labels[mask],
            indices=self.indices[mask],
            features=None if self.features is None else self.features[mask],
            extras={k: v[mask] for k, v in self.extras.items()},
        )


def default_forward(model: nn.Module, batch: Mapping[str, Any]) -> Any:
    """The workbook contract: ``model(batch["image"], priors={k: batch[k] for k in PRIOR_KEYS if k in batch})``."""
    return model(batch["image"], priors={k: batch[k] for k in PRIOR_KEYS if k in batch})


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def _unpack(out: Any) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]:
    """Logits, features and the rest of a model output (dict per contract, or a tensor / tuple)."""
    if isinstance(out, Mapping):
        if "logits" not in out:
            raise ValueError(f"the model returned a dict without 'logits' (keys: {sorted(out)}); see docs/contracts.md")
        return out["logits"], out.get("features"), dict(out)
    if isinstance(out, torch.Tensor):
        return out, None, {}
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        feats = out[1] if len(out) > 1 and isinstance(out[1], torch.Tensor) and out[1].ndim == 2 else None
        return out[0], feats, {}
    raise TypeError(f"cannot read logits from a model output of type {type(out).__name__}; expected a dict")


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: Any,
    device: str | torch.device = "auto",
    forward: Callable[[nn.Module, dict], Any] | None = None,
    progress: bool = False,
    keep: Sequence[str] = (),
    max_batches: int | None = None,
) -> Predictions:
    """Run ``model`` over ``loader`` in eval mode without gradients.

    Args:
        model: a workbook model (``forward(image, priors) -> {"logits", "features"?}``).
        loader: yields batch dicts (``image``, ``label``, ``index`` and prior keys; docs/contracts.md).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or a ``torch.device``.
        forward: ``forward(model, batch) -> output``; default :func:`default_forward`.
        progress: show a tqdm bar.
        keep: extra output keys to keep per sample (tensors with a leading batch axis), e.g. ``("attn",)``.
        max_batches: stop after this many batches (debugging).

    Returns:
        :class:`Predictions`. The model's train/eval mode is restored afterwards.
    """
    from ..utils import resolve_device

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    fwd = forward or default_forward
    was_training = model.training
    model.eval()
    try:
        model.to(dev)
    except (RuntimeError, AttributeError):  # pragma: no cover - stub modules without parameters
        pass
    logits, labels, indices, feats = [], [], [], []
    extras: dict[str, list[np.ndarray]] = {k: [] for k in keep}
    try:
        from tqdm.auto import tqdm

        it = tqdm(loader, desc="predict", leave=False, disable=not progress)
        for b, batch in enumerate(it):
            if max_batches is not None and b >= max_batches:
                break
            if not isinstance(batch, Mapping) or "image" not in batch or "label" not in batch:
                raise ValueError("predict() expects batches as dicts with 'image' and 'label' (docs/contracts.md)")
            batch = _to_device(batch, dev)
            lg, ft, rest = _unpack(fwd(model, batch))
            n = lg.shape[0]
            logits.append(lg.detach().float().cpu().numpy())
            labels.append(batch["label"].detach().cpu().numpy().astype(np.int64))
            idx = batch.get("index")
            if idx is None:
                start = sum(len(x) for x in indices)
                idx = torch.arange(start, start + n)
            indices.append(torch.as_tensor(idx).detach().cpu().numpy().astype(np.int64))
            if ft is not None:
                feats.append(ft.detach().float().reshape(n, -1).cpu().numpy())  # (B, D)
            for k in keep:
                v = rest.get(k)
                if isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == n:
                    extras[k].append(v.detach().float().cpu().numpy())
    finally:
        model.train(was_training)
    if not logits:
        raise ValueError("predict() got an empty loader: the evaluation split holds no samples")
    feat_arr = np.concatenate(feats) if feats and len(feats) == len(logits) else None
    return Predictions(
        logits=np.concatenate(logits).astype(np.float32),
        labels=np.concatenate(labels),
        indices=np.concatenate(indices),
        features=feat_arr,
        extras={k: np.concatenate(v) for k, v in extras.items() if v and len(v) == len(logits)},
    )


__all__ = ["Predictions", "default_forward", "predict"]
