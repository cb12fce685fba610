"""Predictions -> metrics; occlusion sweeps (paper Tables 3-4); best-vs-last bookkeeping.

``predict`` runs a model over a loader in eval mode and keeps logits, labels, manifest indices and (when the
model returns them) final features. ``occlusion_sweep`` evaluates several models on the *same* validation set
under 0/10/20/30% artificial occlusion with deterministic masks (identical for every model), on semantic
occluders and on real-occlusion subsets, with bootstrap 95% confidence intervals.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..config import RunConfig
from ..data.loaders import build_loaders
from ..data.occlusion import occlude_manifest, occlusion_kinds
from ..data.sources import eval_split, filter_by_list
from ..metrics import bootstrap_ci, classification_report
from ..models._registry import PRIOR_KEYS
from ..paths import CACHE_DIR
from ..priors.cache import PriorCache
from ..utils import progress_bar, resolve_device
from . import ddp

Forward = Callable[[nn.Module, Mapping[str, Any]], Any]
"""``forward(model, batch) -> output``: how a model is called on a contract batch (default :func:`default_forward`)."""


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


def batch_to_device(batch: Mapping[str, Any], device: torch.device, channels_last: bool = False) -> dict[str, Any]:
    """Move every tensor of a batch dict to ``device`` (non-blocking); optionally make a 4-D ``image`` channels-last."""
    out = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    if channels_last and isinstance(out.get("image"), torch.Tensor) and out["image"].ndim == 4:
        out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
    return out


def autocast(device_type: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast(device_type, dtype)``, or a no-op context when ``dtype`` is None (AMP off).

    bf16 / fp16 on a CPU also selects the math kernel of ``scaled_dot_product_attention``: for the short sequences
    of the workbook's models (ORSANet's MCM: 50 queries x 50 keys, head widths 16-64) it ran forward + backward
    2.5-5x faster than the CPU flash kernel in bf16 (docs/speed.md). fp32 keeps torch's default kernel choice.
    """
    if dtype is None:
        return contextlib.nullcontext()
    if device_type != "cpu":
        return torch.autocast(device_type, dtype=dtype)
    stack = contextlib.ExitStack()
    stack.enter_context(torch.autocast(device_type, dtype=dtype))
    stack.enter_context(sdpa_kernel([SDPBackend.MATH]))
    return stack


def unpack_output(out: Any) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]:
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
    forward: Forward | None = None,
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
        progress: show a transient bar (``orsalib.utils.progress_bar``: none in a headless run, one line instead).
        keep: extra output keys to keep per sample (tensors with a leading batch axis), e.g. ``("attn",)``.
        max_batches: stop after this many batches (debugging).

    Returns:
        :class:`Predictions`. The model's train/eval mode is restored afterwards.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    fwd = forward or default_forward
    was_training = model.training
    model.eval()
    try:
        model.to(dev)
    except (RuntimeError, AttributeError):  # pragma: no cover - stub modules without parameters
        pass
    acc = _PredictionParts(keep)
    try:
        for b, batch in enumerate(progress_bar(loader, desc="predict", unit="batch", enabled=progress)):
            if max_batches is not None and b >= max_batches:
                break
            if not isinstance(batch, Mapping) or "image" not in batch or "label" not in batch:
                raise ValueError("predict() expects batches as dicts with 'image' and 'label' (docs/contracts.md)")
            batch = batch_to_device(batch, dev)
            acc.add(batch, *unpack_output(fwd(model, batch)))
    finally:
        model.train(was_training)
    return acc.result()


class _PredictionParts:
    """Per-batch numpy pieces of :func:`predict`, concatenated by :meth:`result`."""

    def __init__(self, keep: Sequence[str]) -> None:
        self.logits: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.indices: list[np.ndarray] = []
        self.feats: list[np.ndarray] = []
        self.extras: dict[str, list[np.ndarray]] = {k: [] for k in keep}

    def add(self, batch: Mapping[str, Any], lg: torch.Tensor, ft: torch.Tensor | None, rest: dict[str, Any]) -> None:
        """Keep one batch: logits (B, C), labels, manifest indices, features (B, D) and the kept extras."""
        n = lg.shape[0]
        self.logits.append(lg.detach().float().cpu().numpy())
        self.labels.append(batch["label"].detach().cpu().numpy().astype(np.int64))
        idx = batch.get("index")
        if idx is None:
            start = sum(len(x) for x in self.indices)
            idx = torch.arange(start, start + n)
        self.indices.append(torch.as_tensor(idx).detach().cpu().numpy().astype(np.int64))
        if ft is not None:
            self.feats.append(ft.detach().float().reshape(n, -1).cpu().numpy())  # (B, D)
        for k, parts in self.extras.items():
            v = rest.get(k)
            if isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == n:
                parts.append(v.detach().float().cpu().numpy())

    def result(self) -> Predictions:
        if not self.logits:
            raise ValueError("predict() got an empty loader: the evaluation split holds no samples")
        nb = len(self.logits)
        return Predictions(
            logits=np.concatenate(self.logits).astype(np.float32),
            labels=np.concatenate(self.labels),
            indices=np.concatenate(self.indices),
            features=np.concatenate(self.feats) if self.feats and len(self.feats) == nb else None,
            extras={k: np.concatenate(v) for k, v in self.extras.items() if v and len(v) == nb},
        )


def evaluate_loader(
    model: nn.Module,
    loader: Any,
    device: torch.device,
    forward: Forward,
    amp_dtype: torch.dtype | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Accuracy, macro-F1, mean class accuracy, loss and confusion of ``model`` on ``loader``, over all ranks.

    Under DDP a loader whose sampler is sharded over the ranks (``num_replicas`` > 1: a ``DistributedSampler`` or
    ``orsalib.data.loaders.ShardSampler``) is evaluated in shards whose predictions are gathered (duplicates from
    sampler padding dropped by sample index); any other loader is evaluated on rank 0 and its report broadcast.
    """
    sampler = getattr(loader, "sampler", None)
    sharded = ddp.is_distributed() and int(getattr(sampler, "num_replicas", 1)) > 1
    rep = None
    if sharded or ddp.is_main_process():
        with autocast(device.type, amp_dtype):
            pr = predict(model, loader, device, forward=forward)
        logits, labels, indices = pr.logits, pr.labels, pr.indices
        if sharded:  # gather shards; DistributedSampler pads with repeats -> keep one row per sample index
            parts = ddp.all_gather_objects((logits, labels, indices))
            logits = np.concatenate([p[0] for p in parts])
            labels = np.concatenate([p[1] for p in parts])
            indices = np.concatenate([p[2] for p in parts])
            _, keep = np.unique(indices, return_index=True)
            logits, labels = logits[keep], labels[keep]
        nc = num_classes or logits.shape[1]
        rep = classification_report(labels, logits.argmax(1), nc)
        rep["loss"] = float(F.cross_entropy(torch.from_numpy(logits).float(), torch.from_numpy(labels).long()))
    if not sharded:
        rep = ddp.broadcast_object(rep)
    return rep


# ============================================================================= occlusion sweeps (Tables 3-4)
@dataclass
class EvalCondition:
    """One evaluation condition of a sweep: a set of images and its loader.

    Attributes:
        name: column label ("clean", "rectangle 20%", "sunglasses", "real: valid_occluded", ...).
        group: ``clean`` | ``artificial`` | ``semantic`` | ``real``.
        kind: occlusion kind (``none`` for clean; the split or list name for real occlusion).
        ratio: occluded fraction of the face box (None for clean, natural-size semantic and real occlusion).
        manifest: the evaluated rows (index 0..M-1 = the ``index`` the loader yields), with ``source_index``
            (row of the source manifest) when the rows are copies.
        loader: yields contract batches of these rows, in order, without augmentation.
    """

    name: str
    group: str
    kind: str
    ratio: float | None
    manifest: pd.DataFrame
    loader: Any


@dataclass
class SweepResult:
    """Everything :func:`occlusion_sweep` measured (``return_details=True``)."""

    long: pd.DataFrame
    table: pd.DataFrame
    predictions: dict[tuple[str, str], Predictions]
    conditions: list[EvalCondition]
    #: the conditions each model was evaluated on, where they differ from ``conditions`` (models with another prior
    #: source get their own copies, whose manifests have their own rows)
    model_conditions: dict[str, list[EvalCondition]] = field(default_factory=dict)


def _condition_loader(
    rows: pd.DataFrame, cfg: RunConfig, seed: int, device: torch.device, name: str
) -> tuple[Any, Any]:
    """A non-augmented loader over ``rows`` (index reset), priors from the prior cache when the config uses them."""
    m = rows.reset_index(drop=True).copy()
    m["split"] = "eval"
    store = None
    if cfg.prior.source != "none" and cfg.prior.mode == "cached":
        store = PriorCache().ensure(m, cfg.prior, cfg.data.image_size, device)
    loaders = build_loaders(m, cfg.data, cfg.train.batch_size, seed=seed, prior_store=store)
    if "eval" not in loaders:  # pragma: no cover - build_loaders keys by split
        raise RuntimeError(f"could not build the evaluation loader of condition {name!r}")
    return loaders["eval"], store


def _pct(r: float) -> str:
    return f"{round(100 * r):d}%"


@dataclass
class _ConditionBuilder:
    """What every condition of one :func:`build_conditions` call shares (config, seed, device, folders, loaders)."""

    cfg: RunConfig
    seed: int
    device: torch.device
    occ_dir: Path
    loaders: dict[str, Any]
    max_samples: int | None

    def occluded_copy(self, name: str, group: str, kind: str, ratio: float | None, src: pd.DataFrame) -> EvalCondition:
        """``src`` occluded by ``kind`` at ``ratio`` (copies written once), with priors of the copies."""
        occ = occlude_manifest(src, ratio, kind, self.occ_dir, seed=self.seed)
        # a copied content hash would make the prior cache serve the clean image's priors for the occluded copy
        occ = occ.drop(columns=["sha1"], errors="ignore").reset_index(drop=True)
        occ["source_index"] = np.asarray(src.index, dtype=np.int64)  # row order is kept by occlude_manifest
        # where each copy comes from: a prior source trained per dataset build (synth-detected) uses that build's
        # networks for the copies too
        occ["origin_path"] = src["origin_path"].to_numpy() if "origin_path" in src.columns else src["path"].to_numpy()
        _share_oracle_landmarks(src, occ)
        loader, _ = _condition_loader(occ, self.cfg, self.seed, self.device, name)
        return EvalCondition(name, group, kind, ratio, occ, loader)

    def rows(self, name: str, group: str, kind: str, src: pd.DataFrame, reuse: str | None = None) -> EvalCondition:
        """The rows ``src`` as they are; the prepared loader of split ``reuse`` is used when it serves exactly them."""
        m = src.copy()
        m["source_index"] = np.asarray(src.index, dtype=np.int64)
        m = m.reset_index(drop=True)
        if reuse is not None and reuse in self.loaders and self.max_samples is None:
            loader = self.loaders[reuse]  # the prepared data's loader (indices = source manifest rows)
            m = src.copy()
            m["source_index"] = np.asarray(src.index, dtype=np.int64)
        else:
            loader, _ = _condition_loader(m, self.cfg, self.seed, self.device, name)
        return EvalCondition(name, group, kind, None, m, loader)


def _check_sweep_args(kinds: Sequence[str], semantic: Sequence[str], ratios: Sequence[float]) -> None:
    known = occlusion_kinds()  # the registry at call time: occluders registered after import count
    for k in tuple(kinds) + tuple(semantic):
        if k not in known:
            raise ValueError(f"unknown occlusion kind {k!r}; expected one of {list(known)}")
    for r in ratios:
        if not 0.0 <= float(r) < 1.0:
            raise ValueError(f"occlusion ratio {r!r} must be a fraction in [0, 1)")


def _synthetic_todo(
    ratios: Sequence[float], kinds: Sequence[str], semantic: Sequence[str], semantic_ratio: float | None
) -> list[tuple[str, str, str, float | None]]:
    """(name, group, kind, ratio) of the clean and the artificially occluded conditions, in sweep order."""
    todo: list[tuple[str, str, str, float | None]] = []
    if any(float(r) == 0.0 for r in ratios):
        todo.append(("clean", "clean", "none", None))
    for r in (float(r) for r in ratios if float(r) > 0):
        todo += [(f"{k} {_pct(r)}", "artificial" if k == "rectangle" else "semantic", k, r) for k in kinds]
    todo += [(k if semantic_ratio is None else f"{k} {_pct(semantic_ratio)}", "semantic", k, semantic_ratio)
             for k in semantic]  # fmt: skip
    return todo


def build_conditions(
    manifest: pd.DataFrame,
    cfg: RunConfig,
    ratios: Sequence[float] = (0.0, 0.1, 0.2, 0.3),
    kinds: Sequence[str] = ("rectangle",),
    seed: int = 0,
    *,
    semantic: Sequence[str] = (),
    semantic_ratio: float | None = None,
    real: bool | Sequence[str] = True,
    list_files: Mapping[str, str | Path] | None = None,
    split: str | None = None,
    data: Any = None,
    out_dir: str | Path | None = None,
    device: str | torch.device = "auto",
    max_samples: int | None = None,
    progress: bool = False,
) -> list[EvalCondition]:
    """The evaluation conditions of a sweep, built once and shared by every model (identical masks).

    Args:
        manifest: the dataset manifest (index 0..N-1).
        cfg: the run config (data, prior and train sections are used: image size, prior source, batch size).
        ratios: artificial occlusion ratios; 0 = the clean evaluation split.
        kinds: occluders applied at each ratio > 0 (``rectangle`` = paper Table 3; any
            ``orsalib.data.occlusion.occlusion_kinds()``).
        seed: occlusion seed (masks are a function of (row, seed, ratio, kind)).
        semantic: semantic occluder kinds applied at ``semantic_ratio`` (None = their natural size).
        real: real-occlusion splits to add: True = every split named ``*occluded*`` (SynthFER ``valid_occluded``),
            False = none, or a list of split names. Rows of such a split with an ``occluder`` tag are also
            evaluated per tag afterwards (see :func:`occlusion_sweep`).
        list_files: ``{name: list file}`` real-occlusion subsets of the evaluation split
            (``orsalib.data.sources.filter_by_list``; RAF-DB/FERPlus/AffectNet challenge lists).
        split: the evaluation split (default ``orsalib.data.sources.eval_split``: ``valid`` or ``test``).
        data: an ``orsalib.experiment.FERData`` whose loaders are reused for the clean and real splits.
        out_dir: where occluded copies are written (default ``outputs/cache/occluded``).
        device: where the prior cache computes priors for the occluded copies.
        max_samples: evaluate at most this many rows per condition (a seeded, class-stratified subset; debugging).
    """
    _check_sweep_args(kinds, semantic, ratios)
    if not isinstance(manifest.index, pd.RangeIndex) or not np.array_equal(manifest.index, np.arange(len(manifest))):
        manifest = manifest.reset_index(drop=True)
    split = split or eval_split(manifest)
    rows = manifest[manifest["split"] == split]
    if rows.empty:
        raise ValueError(f"evaluation split {split!r} is empty; splits present: {sorted(manifest['split'].unique())}")
    if max_samples is not None and len(rows) > max_samples:
        rows = _stratified(rows, max_samples, seed)
    build = _ConditionBuilder(
        cfg=cfg,
        seed=seed,
        device=device if isinstance(device, torch.device) else resolve_device(device),
        occ_dir=Path(out_dir) if out_dir is not None else CACHE_DIR / "occluded",
        loaders=dict(getattr(data, "loaders", None) or {}),
        max_samples=max_samples,
    )
    conds: list[EvalCondition] = []
    todo = _synthetic_todo(ratios, kinds, semantic, semantic_ratio)
    for name, group, kind, ratio in progress_bar(todo, desc="occlusion conditions", enabled=progress):
        if group == "clean":
            conds.append(build.rows(name, group, kind, rows, reuse=split))
        else:
            conds.append(build.occluded_copy(name, group, kind, ratio, rows))
    if real:
        present = list(manifest["split"].unique())
        names = [s for s in present if "occluded" in str(s)] if real is True else [s for s in real if s in present]
        for s in names:
            part = manifest[manifest["split"] == s]
            if max_samples is not None and len(part) > max_samples:
                part = _stratified(part, max_samples, seed)
            conds.append(build.rows(f"real: {s}", "real", str(s), part, reuse=str(s)))
    for name, path in (list_files or {}).items():
        conds.append(build.rows(f"real: {name}", "real", str(name), filter_by_list(rows, path)))
    return conds


def _share_oracle_landmarks(src: pd.DataFrame, occ: pd.DataFrame) -> None:
    """Make SynthFER's ``landmarks.npy`` reachable from the occluded copies (the oracle prior source looks for it
    two folders above ``parsing_path``): link (or copy) the source file into the copies' folder once."""
    if "parsing_path" not in src.columns or "parsing_path" not in occ.columns or occ.empty:
        return
    files = {Path(str(p)).parent.parent / "landmarks.npy" for p in src["parsing_path"] if isinstance(p, str) and p}
    files = {f for f in files if f.is_file()}
    first = next((p for p in occ["parsing_path"] if isinstance(p, str) and p), None)
    if len(files) != 1 or first is None:
        return
    dst = Path(first).parent.parent / "landmarks.npy"
    if dst.exists():
        return
    src_file = files.pop()
    tmp = dst.with_name(f".landmarks.{os.getpid()}.tmp")
    try:
        os.link(src_file, tmp)
    except OSError:
        shutil.copyfile(src_file, tmp)
    os.replace(tmp, dst)


def _stratified(rows: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """A seeded, class-stratified subset of about ``n`` rows (kept in manifest order)."""
    rng = np.random.default_rng(seed)
    frac = n / len(rows)
    keep = []
    for _, g in rows.groupby("label"):
        k = max(1, int(round(frac * len(g))))
        keep.extend(rng.choice(g.index.to_numpy(), size=min(k, len(g)), replace=False).tolist())
    return rows.loc[sorted(keep)]


def _metrics_row(pred: Predictions, num_classes: int, n_boot: int, seed: int) -> dict[str, Any]:
    rep = pred.report(num_classes)
    lo, hi = bootstrap_ci(pred.labels, pred.preds, "accuracy", n=n_boot, seed=seed) if n_boot else (np.nan, np.nan)
    return {
        "n": rep["n"],
        "accuracy": rep["accuracy"],
        "acc_low": lo,
        "acc_high": hi,
        "macro_f1": rep["macro_f1"],
        "mean_class_acc": rep["mean_class_acc"],
    }


def evaluate_conditions(
    models: Mapping[str, nn.Module],
    conditions: Sequence[EvalCondition],
    num_classes: int,
    *,
    device: str | torch.device = "auto",
    n_boot: int = 1000,
    seed: int = 0,
    forwards: Mapping[str, Forward] | None = None,
    by_occluder: bool = True,
    progress: bool = False,
) -> tuple[pd.DataFrame, dict[tuple[str, str], Predictions]]:
    """Evaluate every model on every condition; tidy long table + the predictions.

    Returns:
        ``(long, predictions)``: one row per (model, condition) with ``n``, ``accuracy``, ``acc_low``/``acc_high``
        (bootstrap 95% CI, ``n_boot`` resamples, same seed for every cell), ``macro_f1``, ``mean_class_acc``;
        real-occlusion conditions with several ``occluder`` tags get one extra row per tag (``group`` = ``real``,
        condition ``"<condition> / <tag>"``).
    """
    rows: list[dict[str, Any]] = []
    preds: dict[tuple[str, str], Predictions] = {}
    jobs = [(mn, c) for mn in models for c in conditions]
    for mname, cond in progress_bar(jobs, desc="evaluating", unit="model x condition", enabled=progress):
        fwd = (forwards or {}).get(mname)
        p = predict(models[mname], cond.loader, device=device, forward=fwd)
        preds[(mname, cond.name)] = p
        base = {"model": mname, "condition": cond.name, "group": cond.group, "kind": cond.kind, "ratio": cond.ratio}
        rows.append({**base, **_metrics_row(p, num_classes, n_boot, seed)})
        if by_occluder and cond.group == "real" and "occluder" in cond.manifest.columns:
            tags = _tags_of(p, cond)
            if tags is not None and len(set(tags)) > 1:
                for tag in sorted(set(tags)):
                    sub = p.subset(tags == tag)
                    rows.append({**base, "condition": f"{cond.name} / {tag}", "kind": str(tag),
                                 **_metrics_row(sub, num_classes, n_boot, seed)})  # fmt: skip
    return pd.DataFrame(rows), preds


def _tags_of(p: Predictions, cond: EvalCondition) -> np.ndarray | None:
    """The ``occluder`` tag of every prediction (looked up by the loader's ``index``)."""
    m = cond.manifest
    lookup = pd.Series(m["occluder"].astype(str).to_numpy(), index=m.index)
    try:
        return lookup.loc[p.indices].to_numpy()
    except KeyError:
        return None


def sweep_table(
    long: pd.DataFrame, metric: str = "accuracy", ci: bool = True, percent: bool = True, digits: int = 2
) -> pd.DataFrame:
    """Paper Table 3/4 layout: one row per model, one column per condition (sweep order), ``"acc [lo, hi]"``.

    With ``ci=False`` (or a metric without interval) the cells are numbers.
    """
    if long.empty:
        return pd.DataFrame()
    order = list(dict.fromkeys(long["condition"]))
    models = list(dict.fromkeys(long["model"]))
    scale = 100.0 if percent else 1.0
    with_ci = ci and metric == "accuracy" and {"acc_low", "acc_high"} <= set(long.columns)

    def cell(r: pd.Series) -> Any:
        v = r[metric] * scale
        if not with_ci or pd.isna(r["acc_low"]):
            return round(float(v), digits)
        return f"{v:.{digits}f} [{r['acc_low'] * scale:.{digits}f}, {r['acc_high'] * scale:.{digits}f}]"

    t = long.assign(_cell=long.apply(cell, axis=1)).pivot(index="model", columns="condition", values="_cell")
    t = t.reindex(index=models, columns=order)
    t.columns.name = None
    return t


def occlusion_sweep(
    models: Mapping[str, nn.Module],
    manifest: pd.DataFrame,
    cfg: RunConfig,
    *,
    seed: int = 0,
    conditions: Sequence[EvalCondition] | None = None,
    n_boot: int = 1000,
    device: str | torch.device = "auto",
    forwards: Mapping[str, Forward] | None = None,
    progress: bool = False,
    return_details: bool = False,
    **condition_kw: Any,
) -> pd.DataFrame | SweepResult:
    """Evaluate several models on the same validation set under artificial occlusion (paper Tables 3-4).

    The clean evaluation split is occluded at each ratio in ``ratios`` (0 = clean) by every kind in ``kinds``
    with deterministic masks (``orsalib.data.occlusion.occlude_manifest``: a function of row, seed, ratio and
    kind), so every model sees identical pixels; priors of the occluded copies come from the prior cache. Semantic
    occluders (``semantic``) and real-occlusion subsets (``real`` splits such as SynthFER's ``valid_occluded``,
    broken down by ``occluder`` tag, and ``list_files`` subsets) are added as further columns.

    Args:
        models: ``{name: model}`` (workbook contract ``forward(image, priors) -> {"logits", ...}``).
        manifest: the dataset manifest.
        cfg: the run config (``orsalib.config.RunConfig``).
        seed: seed of the occlusion masks and of the bootstrap.
        conditions: prebuilt conditions (:func:`build_conditions`) to reuse across calls.
        condition_kw: what :func:`build_conditions` takes to build them otherwise (``ratios``, ``kinds``,
            ``semantic``, ``semantic_ratio``, ``real``, ``list_files``, ``data``, ``out_dir``, ``max_samples``).
        n_boot: bootstrap resamples for the 95% CI of the accuracy (0 = none).
        forwards: optional ``{name: forward(model, batch)}`` for models outside the contract.
        return_details: return a :class:`SweepResult` instead of the long frame.

    Returns:
        The tidy long DataFrame (``model, condition, group, kind, ratio, n, accuracy, acc_low, acc_high, macro_f1,
        mean_class_acc``); with ``return_details`` a :class:`SweepResult` holding it, the wide table
        (:func:`sweep_table`), the predictions per (model, condition) and the conditions.
    """
    if not models:
        raise ValueError("occlusion_sweep needs at least one model ({name: model})")
    if conditions is None:
        conditions = build_conditions(manifest, cfg, seed=seed, device=device, progress=progress, **condition_kw)
    long, preds = evaluate_conditions(
        models, conditions, cfg.data.num_classes, device=device, n_boot=n_boot, seed=seed, forwards=forwards,
        progress=progress,
    )  # fmt: skip
    if not return_details:
        return long
    return SweepResult(long=long, table=sweep_table(long), predictions=preds, conditions=list(conditions))


def robustness_curve(long: pd.DataFrame, kind: str = "rectangle") -> pd.DataFrame:
    """The rows of a sweep's long table that make an accuracy-vs-ratio curve of ``kind``: the clean condition (ratio
    0) and every ``kind`` condition with a ratio, with ``x`` = the ratio in % of the face, sorted by model (sweep
    order) then ``x``. ``orsalib.viz.analysis.robustness_figure`` draws it."""
    sel = long[(long["group"] == "clean") | ((long["kind"] == kind) & long["ratio"].notna())].copy()
    sel["x"] = sel["ratio"].fillna(0.0).astype(float) * 100
    order = {m: i for i, m in enumerate(dict.fromkeys(sel["model"]))}
    sel["_order"] = sel["model"].map(order)
    return sel.sort_values(["_order", "x"], kind="stable").drop(columns="_order")


def best_vs_last(history: Sequence[Mapping[str, Any]], key: str = "val_acc") -> dict[str, Any]:
    """Best and last epoch of a metric in a training history (``metrics.jsonl`` records), said plainly.

    Returns ``{"last_epoch", "last", "best_epoch", "best", "gap"}`` (best selected on the same split, so
    optimistic when that split is the test split).
    """
    recs = [r for r in history if key in r and r[key] is not None]
    if not recs:
        raise ValueError(f"the history holds no {key!r}; keys present: {sorted({k for r in history for k in r})}")
    last = recs[-1]
    best = max(recs, key=lambda r: r[key])
    return {"last_epoch": last.get("epoch"), "last": last[key], "best_epoch": best.get("epoch"), "best": best[key],
            "gap": best[key] - last[key]}  # fmt: skip


__all__ = [
    "EvalCondition",
    "Predictions",
    "SweepResult",
    "best_vs_last",
    "build_conditions",
    "autocast",
    "batch_to_device",
    "default_forward",
    "evaluate_conditions",
    "evaluate_loader",
    "occlusion_sweep",
    "predict",
    "robustness_curve",
    "sweep_table",
    "unpack_output",
]
