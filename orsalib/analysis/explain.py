"""Looking inside a trained model: cross-fusion attention maps, Grad-CAM, t-SNE of final features.

- Attention (paper Sec. 3.4, Eq. 6-8): in each cross-fusion block the landmark tokens query the 50 image tokens
  (a mean "cls" token + 7x7 spatial tokens). The map of a sample is the attention the landmark queries put on the
  49 spatial image tokens, averaged over heads, queries and (by default) blocks, then upsampled to the image.
  The maps are read, in order of preference, from the model output key ``"attn"`` (docs/contracts.md), from
  modules that store their last attention (an ``attn_map``/``last_attn``/``attn_weights`` attribute), or from a
  forward hook on timm-style ``attn_drop`` modules, whose input is the softmaxed attention. When none of these
  exist (e.g. a fused attention kernel), :func:`attention_maps` returns ``None`` and callers show Grad-CAM only.
- Grad-CAM (Selvaraju et al., ICCV 2017): ReLU(sum_c w_c A_c) with w_c the spatial mean of dScore/dA_c, on any
  given convolutional module (default: the last ``nn.Conv2d`` of the image backbone).
- t-SNE (sklearn ``TSNE``) of the ``features`` the model returns (:func:`tsne_embedding`).

Arrays only: the figures of these maps and embeddings are drawn by :mod:`orsalib.viz.analysis`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models._registry import PRIOR_KEYS

_ATTN_ATTRS: tuple[str, ...] = ("attn_map", "last_attn", "attn_weights", "attention_map")


def _forward(
    model: nn.Module, image: torch.Tensor, priors: Mapping[str, torch.Tensor] | None, want_attn: bool = False
) -> Any:
    kw = {}
    if want_attn:
        try:
            if "return_attn" in inspect.signature(model.forward).parameters:
                kw["return_attn"] = True  # ORSANet: explicit attention of the last large-scale fusion block
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            pass
    return model(image, priors=dict(priors) if priors else {}, **kw)


def _batch_parts(batch: Mapping[str, Any], device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    image = batch["image"].to(device)
    priors = {k: batch[k].to(device) for k in PRIOR_KEYS if k in batch and isinstance(batch[k], torch.Tensor)}
    return image, priors


# ----------------------------------------------------------------------------- attention
def _attn_to_grid(attn: torch.Tensor, query: str = "mean") -> torch.Tensor | None:
    """One attention tensor -> (B, g, g) spatial map, or None if it has no square key grid.

    Accepts (B, heads, Nq, Nk), (B, Nq, Nk) or an already spatial (B, g, g) / (B, heads, g, g) map.
    """
    a = attn.detach().float()
    if a.ndim == 3 and a.shape[-1] == a.shape[-2] and a.shape[-1] in (7, 14, 28) and not _is_token_attn(a):
        return a  # already (B, g, g)
    if a.ndim == 4:
        a = a.mean(dim=1)  # (B, Nq, Nk): mean over heads
    if a.ndim != 3:
        return None
    a = a[:, 0, :] if query == "first" else a.mean(dim=1)  # (B, Nk)
    nk = a.shape[-1]
    for drop in (0, 1):  # keys = g*g spatial tokens, optionally preceded by one "cls" token
        g = math.isqrt(nk - drop)
        if g * g == nk - drop and g > 1:
            return a[:, drop:].reshape(a.shape[0], g, g)  # (B, g, g)
    return None


def _is_token_attn(a: torch.Tensor) -> bool:
    # A square (B, N, N) tensor whose rows sum to 1 is a token-to-token attention matrix, not a spatial map.
    rows = a.sum(dim=-1)
    return bool(torch.allclose(rows, torch.ones_like(rows), atol=1e-3))


def _collect_attention(out: Any) -> list[torch.Tensor]:
    if not isinstance(out, Mapping) or "attn" not in out:
        return []
    a = out["attn"]
    if isinstance(a, torch.Tensor):
        return [a]
    if isinstance(a, Mapping):
        return [v for v in a.values() if isinstance(v, torch.Tensor)]
    if isinstance(a, (list, tuple)):
        flat: list[torch.Tensor] = []
        for v in a:
            flat.extend(_collect_attention({"attn": v}))
        return flat
    return []


@torch.no_grad()
def attention_maps(
    model: nn.Module,
    batch: Mapping[str, Any],
    image_size: int | None = None,
    reduce: str = "mean",
    query: str = "mean",
    device: str | torch.device | None = None,
) -> np.ndarray | None:
    """Cross-fusion attention of a batch as (B, H, W) maps in [0, 1], or None when the model exposes none.

    Args:
        model: a workbook model (``forward(image, priors) -> dict``).
        batch: a batch dict (``image`` and prior keys).
        image_size: output side (default: the image's).
        reduce: ``"mean"`` over all attention blocks found, ``"last"`` or ``"first"`` block only.
        query: ``"mean"`` over the query tokens or ``"first"`` (the mean/"cls" landmark token).
        device: default: the model's.
    """
    if reduce not in ("mean", "last", "first"):
        raise ValueError(f"reduce must be 'mean', 'last' or 'first', got {reduce!r}")
    dev = torch.device(device) if device is not None else _model_device(model)
    image, priors = _batch_parts(batch, dev)
    was_training = model.training
    model.eval()
    captured: list[torch.Tensor] = []
    hooks = []
    for mod in model.modules():
        drop = getattr(mod, "attn_drop", None)
        if isinstance(drop, nn.Module):
            hooks.append(drop.register_forward_hook(lambda m, inp, out: captured.append(inp[0].detach())))
    try:
        out = _forward(model, image, priors, want_attn=True)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    tensors = _collect_attention(out)
    if not tensors:
        tensors = [
            getattr(m, a) for m in model.modules() for a in _ATTN_ATTRS if isinstance(getattr(m, a, None), torch.Tensor)
        ]
    if not tensors:
        tensors = captured
    grids = [g for g in (_attn_to_grid(t, query) for t in tensors) if g is not None and g.shape[0] == image.shape[0]]
    if not grids:
        return None
    if reduce != "mean":
        grids = [grids[-1] if reduce == "last" else grids[0]]
    side = image_size or int(image.shape[-1])
    ups = [F.interpolate(g[:, None], size=(side, side), mode="bilinear", align_corners=False)[:, 0] for g in grids]
    m = torch.stack(ups).mean(dim=0)  # (B, H, W)
    return _normalise(m.cpu().numpy())


# ----------------------------------------------------------------------------- Grad-CAM
def find_last_conv(model: nn.Module, within: str | None = None) -> nn.Module:
    """The last ``nn.Conv2d`` of ``model`` (or of its submodule named ``within``, e.g. ``"backbone"``)."""
    root = model.get_submodule(within) if within else model
    convs = [m for m in root.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        where = f"submodule {within!r}" if within else type(model).__name__
        raise ValueError(f"{where} holds no nn.Conv2d; pass the Grad-CAM target module explicitly")
    return convs[-1]


def default_cam_target(model: nn.Module) -> nn.Module:
    """The image backbone when the model names one (ORSANet/baselines: ``ir_back``, else ``backbone``), whose
    output map is what Grad-CAM should explain; otherwise the last ``nn.Conv2d``."""
    for name in ("ir_back", "backbone", "features"):
        sub = getattr(model, name, None)
        if isinstance(sub, nn.Module) and any(isinstance(m, nn.Conv2d) for m in sub.modules()):
            return sub
    return find_last_conv(model)


def grad_cam(
    model: nn.Module,
    batch: Mapping[str, Any],
    target_layer: nn.Module | str | None = None,
    class_idx: Sequence[int] | int | None = None,
    image_size: int | None = None,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Grad-CAM maps (B, H, W) in [0, 1] for the predicted (or given) class of every sample.

    Args:
        target_layer: a module whose output is (B, C, h, w), its dotted name, or None for
            :func:`default_cam_target` (the image backbone's output map).
        class_idx: class per sample (or one for all); default the predicted class.
    """
    dev = torch.device(device) if device is not None else _model_device(model)
    if target_layer is None:
        target_layer = default_cam_target(model)
    elif isinstance(target_layer, str):
        target_layer = model.get_submodule(target_layer)
    image, priors = _batch_parts(batch, dev)
    store: dict[str, torch.Tensor] = {}

    def fwd_hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        out = out[0] if isinstance(out, (tuple, list)) else out
        store["act"] = out
        if out.requires_grad:
            out.register_hook(lambda g: store.__setitem__("grad", g))

    was_training = model.training
    model.eval()
    h = target_layer.register_forward_hook(fwd_hook)
    try:
        with torch.enable_grad():
            out = _forward(model, image, priors)
            logits = out["logits"] if isinstance(out, Mapping) else out
            if class_idx is None:
                idx = logits.argmax(dim=1)
            else:
                idx = torch.as_tensor(class_idx, device=logits.device).long().expand(logits.shape[0])
            score = logits.gather(1, idx[:, None]).sum()
            model.zero_grad(set_to_none=True)
            score.backward()
    finally:
        h.remove()
        model.train(was_training)
    act, grad = store.get("act"), store.get("grad")
    if act is None or grad is None or act.ndim != 4:
        raise ValueError(
            f"Grad-CAM target {type(target_layer).__name__} gave no (B, C, h, w) activation with a gradient; "
            "pick a convolutional module on the path to the logits"
        )
    w = grad.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
    cam = F.relu((w * act).sum(dim=1, keepdim=True))  # (B, 1, h, w)
    side = image_size or int(image.shape[-1])
    cam = F.interpolate(cam, size=(side, side), mode="bilinear", align_corners=False)[:, 0]  # (B, H, W)
    model.zero_grad(set_to_none=True)
    return _normalise(cam.detach().cpu().numpy())


# ----------------------------------------------------------------------------- picking samples
def select_examples(correct: np.ndarray, n: int, want_correct: bool = True, seed: int = 0) -> np.ndarray:
    """Up to ``n`` seeded positions (sorted) where ``correct`` equals ``want_correct``."""
    pool = np.flatnonzero(np.asarray(correct, dtype=bool) == want_correct)
    if pool.size == 0 or n <= 0:
        return np.zeros((0,), dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(pool, size=min(n, pool.size), replace=False))


def batch_at(loader: Any, positions: Sequence[int]) -> dict[str, torch.Tensor]:
    """A batch of the given positions of a non-shuffled loader's dataset (the order ``predict`` returns)."""
    from torch.utils.data import default_collate

    ds = getattr(loader, "dataset", loader)
    if len(positions) == 0:
        raise ValueError("batch_at needs at least one position")
    return default_collate([ds[int(i)] for i in positions])


# ----------------------------------------------------------------------------- maps and images
def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _normalise(maps: np.ndarray) -> np.ndarray:
    """Per-sample min-max to [0, 1] (constant maps become 0)."""
    m = maps.astype(np.float32)
    lo = m.reshape(m.shape[0], -1).min(axis=1)[:, None, None]
    hi = m.reshape(m.shape[0], -1).max(axis=1)[:, None, None]
    return np.where(hi > lo, (m - lo) / np.maximum(hi - lo, 1e-12), 0.0).astype(np.float32)


def to_display(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Normalised (N, 3, H, W) images -> uint8 (N, H, W, 3) for display (per-image min-max stretch)."""
    x = images.detach().float().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, np.float32)
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {x.shape}")
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    x = x.transpose(0, 2, 3, 1)  # (N, H, W, 3)
    lo = x.reshape(len(x), -1).min(axis=1)[:, None, None, None]
    hi = x.reshape(len(x), -1).max(axis=1)[:, None, None, None]
    x = (x - lo) / np.maximum(hi - lo, 1e-12)
    return (x * 255).round().astype(np.uint8)


def resize_map(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """One (h, w) map resized (bilinear) to ``shape`` (H, W); returned as is when it already has that shape."""
    m = np.asarray(m, dtype=np.float32)
    if m.shape == tuple(shape):
        return m
    return F.interpolate(torch.as_tensor(m)[None, None], size=tuple(shape), mode="bilinear")[0, 0].numpy()


def tsne_embedding(
    features: np.ndarray,
    seed: int = 0,
    perplexity: float = 30.0,
    max_points: int = 2000,
    labels: np.ndarray | None = None,
    max_iter: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """2-d t-SNE of (N, D) features (sklearn ``TSNE``, PCA init); returns ``(embedding (M, 2), kept rows (M,))``.

    At most ``max_points`` rows are used (a class-stratified, seeded subsample when ``labels`` is given).
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"t-SNE needs (N >= 3, D) features, got shape {x.shape}")
    rng = np.random.default_rng(seed)
    rows = np.arange(x.shape[0])
    if x.shape[0] > max_points:
        if labels is not None:
            frac = max_points / x.shape[0]
            picks = [
                rng.permutation(np.flatnonzero(labels == c))[: max(1, int(round(frac * np.sum(labels == c))))]
                for c in np.unique(labels)
            ]
            rows = np.sort(np.concatenate(picks))[:max_points]
        else:
            rows = np.sort(rng.choice(x.shape[0], size=max_points, replace=False))
    perp = float(min(perplexity, max(2.0, (len(rows) - 1) / 3)))
    # One OpenMP thread: on a shared CPU the Barnes-Hut threads spin-wait and run ~30x slower than one thread.
    with threadpool_limits(limits=1):
        tsne = TSNE(
            n_components=2,
            perplexity=perp,
            init="pca",
            random_state=seed,
            learning_rate="auto",
            max_iter=max(250, max_iter),
        )
        emb = tsne.fit_transform(x[rows])
    return emb.astype(np.float32), rows


@dataclass
class ExplainedBatch:
    """What :func:`explain_batch` computed for a batch: the maps to overlay and each sample's caption.

    Attributes:
        images: (N, 3, H, W) the batch's normalised images.
        attention: (N, H, W) cross-fusion attention in [0, 1], or None when the model exposes none.
        grad_cam: (N, H, W) Grad-CAM in [0, 1], or None when the target gives no gradient map.
        titles: one per sample, "true X / pred Y".
    """

    images: torch.Tensor
    attention: np.ndarray | None
    grad_cam: np.ndarray | None
    titles: list[str]


def explain_batch(
    model: nn.Module,
    batch: Mapping[str, Any],
    class_names: Sequence[str],
    target_layer: nn.Module | str | None = None,
    forward_logits: Callable[[nn.Module, Mapping[str, Any]], torch.Tensor] | None = None,
) -> ExplainedBatch:
    """Attention maps, Grad-CAM maps and "true X / pred Y" captions of a batch (``orsalib.viz.analysis.
    explain_samples`` draws them as an image / attention / Grad-CAM grid)."""
    dev = _model_device(model)
    image, priors = _batch_parts(batch, dev)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = forward_logits(model, batch) if forward_logits else _forward(model, image, priors)
        logits = out["logits"] if isinstance(out, Mapping) else out
    model.train(was_training)
    pred = logits.argmax(1).cpu().numpy()
    true = batch["label"].cpu().numpy()
    titles = [f"{class_names[int(t)]} / {class_names[int(p)]}" for t, p in zip(true, pred)]
    att = attention_maps(model, batch)
    try:
        cam = grad_cam(model, batch, target_layer=target_layer)
    except ValueError:
        cam = None
    return ExplainedBatch(images=batch["image"], attention=att, grad_cam=cam, titles=titles)


__all__ = [
    "ExplainedBatch",
    "attention_maps",
    "batch_at",
    "default_cam_target",
    "explain_batch",
    "find_last_conv",
    "grad_cam",
    "resize_map",
    "select_examples",
    "to_display",
    "tsne_embedding",
]
