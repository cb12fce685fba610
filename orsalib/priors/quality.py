"""Prior quality (notebooks 20 and 25): how good are the priors, per occluder type?

- :func:`landmark_nme`: normalised mean error of 68 landmarks (inter-ocular distance, outer eye corners 36/45,
  the 300-W convention).
- :func:`parsing_iou`: per-class IoU of two LaPa label maps; :func:`mean_iou` averages the face classes
  (skin .. lower lip, 1-9; background and hair excluded, hair cannot come from landmarks).
- :func:`prior_quality_table`: per-sample metrics of a prior store (or of landmark rasterisation applied to the
  ground-truth landmarks) against SynthFER's ground truth, with the occluder type of each sample;
  :func:`summarize_quality` gives the per-occluder means.
- Per occluder, for any prior sources side by side (e.g. ``oracle`` and ``synth-detected``):
  :func:`sample_quality` (per sample: NME over all / visible / hidden landmarks, face-class mIoU, per-class pixel
  counts), :func:`occluder_quality` (per source, split and occluder: mean NMEs, mIoU and per-class IoU over the
  group's pixels) and :func:`occlusion_effect` (each ``valid_occluded`` face against the same face in ``valid``:
  the paired difference with a bootstrap CI and a sign-flip p-value, i.e. whether a source is measurably worse
  under each occluder).
- :func:`real_face_comparison`: a source's landmarks on real face crops beside MobileFaceNet-68's (no ground truth
  there: their disagreement, as NME against MobileFaceNet).
- :func:`quality_headline`: a source's mean NME and mIoU on the clean and the occluded faces (the notebook's
  headline numbers).

The figures of these numbers (and the prior overlays, the prior browser) are in :mod:`orsalib.viz.priors`; this
module only measures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from .parsing import LAPA_CLASSES, rasterize_parsing

__all__ = [
    "cache_report",
    "compare_sources",
    "detected_source",
    "has_ground_truth",
    "landmark_nme",
    "mean_iou",
    "occluder_quality",
    "occlusion_effect",
    "occlusion_effect_summary",
    "parsing_iou",
    "prior_quality_table",
    "quality_headline",
    "real_face_comparison",
    "real_face_landmarks",
    "sample_quality",
    "sample_rows",
    "summarize_quality",
]

FACE_CLASSES: tuple[int, ...] = tuple(range(1, 10))


# ----------------------------------------------------------------------------- metrics
def landmark_nme(pred: np.ndarray, gt: np.ndarray, eyes: tuple[int, int] = (36, 45)) -> np.ndarray:
    """Per-sample NME: mean point distance / inter-ocular distance of ``gt`` (outer eye corners ``eyes``; iBUG 300-W:
    36, 45). Two (..., L, 2) arrays of one shape (any consistent unit) -> (...,) float64 (0.005 = 0.5 %)."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim < 2 or pred.shape[-1] != 2:
        raise ValueError(f"landmark_nme needs two (..., L, 2) arrays of one shape, got {pred.shape} and {gt.shape}")
    iod = np.linalg.norm(gt[..., eyes[0], :] - gt[..., eyes[1], :], axis=-1)
    return np.linalg.norm(pred - gt, axis=-1).mean(-1) / np.maximum(iod, 1e-12)


def parsing_iou(pred: np.ndarray, gt: np.ndarray, num_classes: int = 11) -> np.ndarray:
    """Per-class IoU (num_classes,) of two label maps; NaN for a class absent from both."""
    pred, gt = np.asarray(pred).ravel(), np.asarray(gt).ravel()
    if pred.shape != gt.shape:
        raise ValueError(f"parsing_iou needs label maps of one size, got {pred.size} and {gt.size} pixels")
    inter = np.bincount(gt[pred == gt].astype(np.int64), minlength=num_classes)[:num_classes]
    area_p = np.bincount(pred.astype(np.int64), minlength=num_classes)[:num_classes]
    area_g = np.bincount(gt.astype(np.int64), minlength=num_classes)[:num_classes]
    union = area_p + area_g - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def mean_iou(pred: np.ndarray, gt: np.ndarray, classes: Sequence[int] = FACE_CLASSES) -> float:
    """Mean IoU over the face classes present in either map (NaN when none is)."""
    iou = parsing_iou(pred, gt)[list(classes)]
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


# ----------------------------------------------------------------------------- quality tables
def prior_quality_table(
    manifest: pd.DataFrame,
    image_size: int,
    store: Any = None,
    rows: Sequence[int] | None = None,
    rasterize_gt: bool = False,
) -> pd.DataFrame:
    """Per-sample prior quality against SynthFER ground truth.

    Args:
        manifest: a SynthFER manifest (``landmarks_index``, ``parsing_path``, ``occluder``).
        image_size: side at which parsing maps are compared (the model input side).
        store: a prior store; its ``landmarks`` (NME) and ``parsing`` (mIoU) are scored when present.
        rows: manifest rows to score (default all).
        rasterize_gt: instead of a store, score :func:`~orsalib.priors.parsing.rasterize_parsing` applied to the
            ground-truth landmarks (the rasteriser's own error; occluded pixels are background in the ground truth,
            so occluders lower it).

    Returns:
        a DataFrame with ``row``, ``split``, ``occluder``, ``label_name`` and ``nme`` and/or ``miou`` columns.
    """
    from .sources import OracleSource  # sources -> fast -> this module: imported on use

    oracle = OracleSource()
    manifest = manifest.reset_index(drop=True)
    ids = range(len(manifest)) if rows is None else rows
    keys = set(getattr(store, "keys", ()) or ())
    out = []
    for i in ids:
        row = manifest.iloc[int(i)]
        lm_gt, par_gt = oracle.read_row(row)
        if par_gt.shape != (image_size, image_size):
            par_gt = np.asarray(Image.fromarray(par_gt).resize((image_size, image_size), Image.NEAREST))
        rec: dict[str, Any] = {
            "row": int(i), "split": row.get("split", ""), "occluder": row.get("occluder", "none"),
            "label_name": row.get("label_name", ""),
        }  # fmt: skip
        if rasterize_gt:
            rec["miou"] = mean_iou(rasterize_parsing(lm_gt, image_size), par_gt)
        else:
            pri = store.get(int(i))
            if "landmarks" in keys:
                rec["nme"] = float(landmark_nme(np.asarray(pri["landmarks"]), lm_gt))
            if "parsing" in keys:
                rec["miou"] = mean_iou(np.asarray(pri["parsing"]), par_gt)
        out.append(rec)
    return pd.DataFrame(out)


def summarize_quality(df: pd.DataFrame, by: str = "occluder") -> pd.DataFrame:
    """Means (and counts) of the metric columns per ``by`` value, plus an ``all`` row."""
    metrics = [c for c in ("nme", "miou") if c in df.columns]
    g = df.groupby(by)[metrics].mean()
    g["n"] = df.groupby(by).size()
    total = pd.DataFrame({**{m: [df[m].mean()] for m in metrics}, "n": [len(df)]}, index=["all"])
    return pd.concat([g, total]).rename_axis(by).reset_index()


# ----------------------------------------------------------------------------- per occluder, several sources
#: direction in which each metric gets worse (+1: larger is worse)
WORSE: dict[str, int] = {"nme": 1, "nme_visible": 1, "nme_hidden": 1, "miou": -1}


def _iou_counts(pred: np.ndarray, gt: np.ndarray, num_classes: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Per-class intersection and union pixel counts (num_classes,) of two label maps."""
    pred, gt = np.asarray(pred).ravel().astype(np.int64), np.asarray(gt).ravel().astype(np.int64)
    inter = np.bincount(gt[pred == gt], minlength=num_classes)[:num_classes]
    union = np.bincount(pred, minlength=num_classes)[:num_classes] + np.bincount(gt, minlength=num_classes)[
        :num_classes
    ] - inter  # fmt: skip
    return inter, union


def _visible(oracle: Any, row: pd.Series) -> np.ndarray | None:
    """The (68,) visibility flags of a SynthFER row (``visible.npy`` beside ``landmarks.npy``), None without them."""
    f = oracle._landmarks_file(row).with_name("visible.npy")
    if not f.is_file():
        return None
    vis = np.load(f, mmap_mode="r")
    return np.asarray(vis[int(row["landmarks_index"])], dtype=bool)


def _priors_of(obj: Any, m: pd.DataFrame, ids: list[int], image_size: int, batch_size: int) -> list[dict]:
    """Priors of rows ``ids``: read from a store (``get``) or computed by a prior source (``compute``)."""
    if hasattr(obj, "get") and not hasattr(obj, "compute"):
        return [obj.get(i) for i in ids]
    from .cache import load_resized

    out: list[dict] = []
    for b0 in range(0, len(ids), batch_size):
        rows = m.iloc[ids[b0 : b0 + batch_size]]
        pri = obj.compute(np.stack([load_resized(p, image_size) for p in rows["path"]]), rows)
        out += [{k: v[j] for k, v in pri.items()} for j in range(len(rows))]
    return out


def sample_quality(
    manifest: pd.DataFrame,
    priors: Mapping[str, Any],
    image_size: int,
    splits: Sequence[str] = ("valid", "valid_occluded"),
    batch_size: int = 64,
) -> pd.DataFrame:
    """Per-sample quality of one or more prior sources against SynthFER's ground truth.

    Args:
        manifest: a SynthFER manifest (``landmarks_index``, ``parsing_path``, ``occluder``).
        priors: ``{name: prior store or PriorSource}``; stores are read (``store.get(row)``, rows of ``manifest``),
            sources compute on the images resized to ``image_size``.
        image_size: the model input side (parsing maps are compared at it).
        splits: the splits scored.
        batch_size: images per ``compute`` call of a source.

    Returns:
        one row per (source, sample): ``source, row, split, occluder, label_name, pair`` (the sample's position
        within its split: SynthFER's ``valid_occluded`` k-th face is ``valid``'s k-th), ``nme``, ``nme_visible`` and
        ``nme_hidden`` (error over the landmarks an occluder leaves visible / hides, in inter-ocular units; NaN when
        there are none or no ``visible.npy``), ``miou`` (face classes), and ``inter_<class>`` / ``union_<class>``
        pixel counts of every LaPa class (for :func:`occluder_quality`).
    """
    from .sources import OracleSource  # sources -> fast -> this module: imported on use

    oracle = OracleSource()
    m = manifest.reset_index(drop=True)
    sel = m[m["split"].astype(str).isin(list(splits))]
    ids = [int(i) for i in sel.index]
    pair = sel.groupby("split").cumcount().to_dict()
    truth = {}
    for i in ids:
        row = m.iloc[i]
        lm, par = oracle.read_row(row)
        if par.shape != (image_size, image_size):
            par = np.asarray(Image.fromarray(par).resize((image_size, image_size), Image.NEAREST))
        truth[i] = (lm, par, _visible(oracle, row))
    out = []
    for name, obj in priors.items():
        for i, pri in zip(ids, _priors_of(obj, m, ids, image_size, batch_size)):
            row, (lm_gt, par_gt, vis) = m.iloc[i], truth[i]
            rec: dict[str, Any] = {
                "source": name, "row": i, "split": row["split"], "occluder": row.get("occluder", "none"),
                "label_name": row.get("label_name", ""), "pair": int(pair[i]),
            }  # fmt: skip
            if "landmarks" in pri:
                lm = np.asarray(pri["landmarks"], dtype=np.float64)
                err = np.linalg.norm(lm - lm_gt, axis=-1) / max(float(np.linalg.norm(lm_gt[36] - lm_gt[45])), 1e-8)
                rec["nme"] = float(err.mean())
                if vis is not None:
                    rec["nme_visible"] = float(err[vis].mean()) if vis.any() else float("nan")
                    rec["nme_hidden"] = float(err[~vis].mean()) if (~vis).any() else float("nan")
            if "parsing" in pri:
                par = np.asarray(pri["parsing"])
                rec["miou"] = mean_iou(par, par_gt)
                inter, union = _iou_counts(par, par_gt)
                for k, cls in enumerate(LAPA_CLASSES):
                    rec[f"inter_{cls}"], rec[f"union_{cls}"] = int(inter[k]), int(union[k])
            out.append(rec)
    return pd.DataFrame(out)


def occluder_quality(samples: pd.DataFrame, by: Sequence[str] = ("source", "split", "occluder")) -> pd.DataFrame:
    """Per group of :func:`sample_quality` rows (default: source, split, occluder; plus an ``all`` occluder row per
    source and split): ``n``, mean ``nme`` / ``nme_visible`` / ``nme_hidden`` / ``miou``, and ``iou_<class>`` of every
    LaPa class over the group's pixels (intersection / union summed over its samples; NaN for a class absent from
    both maps of every sample)."""
    by = list(by)
    metrics = [c for c in WORSE if c in samples.columns]
    classes = [c for c in LAPA_CLASSES if f"inter_{c}" in samples.columns]

    def agg(g: pd.DataFrame) -> pd.Series:
        rec: dict[str, Any] = {"n": len(g), **{c: g[c].mean() for c in metrics}}
        for c in classes:
            u = g[f"union_{c}"].sum()
            rec[f"iou_{c}"] = g[f"inter_{c}"].sum() / u if u > 0 else float("nan")
        return pd.Series(rec)

    parts = [samples.groupby(by, sort=True).apply(agg, include_groups=False).reset_index()]
    if "occluder" in by and len(by) > 1:
        rest = [b for b in by if b != "occluder"]
        total = samples.groupby(rest, sort=True).apply(agg, include_groups=False).reset_index()
        parts.append(total.assign(occluder="all"))
    out = pd.concat(parts, ignore_index=True)
    out["n"] = out["n"].astype(int)
    return out.sort_values(by, kind="stable", key=lambda s: s.map(lambda v: (v == "all", v))).reset_index(drop=True)


def occlusion_effect(
    samples: pd.DataFrame,
    metrics: Sequence[str] = ("nme", "miou"),
    clean: str = "valid",
    occluded: str = "valid_occluded",
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """How much worse each source's priors get under each occluder, on the same faces.

    Each ``occluded`` sample is paired with the ``clean`` sample of the same ``pair`` id (SynthFER draws the same
    face in both splits); per source, occluder (and ``all``) and metric: ``n`` pairs, the ``clean`` and
    ``occluded`` means, ``diff`` = occluded - clean with a paired-bootstrap 95% CI (``ci_low``, ``ci_high``,
    ``n_boot`` resamples), ``p`` (two-sided sign-flip permutation test of a zero mean difference, ``n_boot``
    flips), ``frac_worse`` (pairs that got worse) and ``worse``: True when the whole CI lies on the worse side
    (:data:`WORSE`: NME up, mIoU down).

    Raises:
        ValueError: the two splits' faces do not pair up (different labels at one ``pair`` id).
    """
    rng = np.random.default_rng(seed)
    out = []
    for src, g in samples.groupby("source", sort=False):
        a = g[g["split"] == clean].set_index("pair")
        b = g[g["split"] == occluded].set_index("pair")
        common = b.index.intersection(a.index)
        if "label_name" in g.columns and (a.loc[common, "label_name"] != b.loc[common, "label_name"]).any():
            raise ValueError(f"occlusion_effect: {clean!r} and {occluded!r} rows of {src!r} do not show the same faces")
        for occ in [*sorted(b["occluder"].astype(str).unique()), "all"]:
            ids = common if occ == "all" else common[(b.loc[common, "occluder"].astype(str) == occ).to_numpy()]
            for metric in [mt for mt in metrics if mt in g.columns]:
                d = (b.loc[ids, metric] - a.loc[ids, metric]).to_numpy(dtype=np.float64)
                d = d[np.isfinite(d)]
                rec: dict[str, Any] = {"source": src, "occluder": occ, "metric": metric, "n": len(d)}
                if len(d) == 0:
                    out.append(rec)
                    continue
                boot = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(1)
                flips = (np.where(rng.random((n_boot, len(d))) < 0.5, -1.0, 1.0) * d).mean(1)
                lo, hi = np.percentile(boot, [2.5, 97.5])
                sign = WORSE.get(metric, 1)
                rec.update(
                    clean=float(a.loc[ids, metric].mean()), occluded=float(b.loc[ids, metric].mean()),
                    diff=float(d.mean()), ci_low=float(lo), ci_high=float(hi),
                    p=float((1 + (np.abs(flips) >= abs(d.mean()) - 1e-12).sum()) / (n_boot + 1)),
                    frac_worse=float((sign * d > 0).mean()), worse=bool(sign * lo > 0 if sign > 0 else sign * hi > 0),
                )  # fmt: skip
                out.append(rec)
    return pd.DataFrame(out)


def quality_headline(
    quality: pd.DataFrame,
    source: str,
    prefix: str | None = None,
    metrics: Sequence[str] = ("nme", "miou"),
    clean: str = "valid",
    occluded: str = "valid_occluded",
    digits: int = 4,
) -> dict[str, float]:
    """``{"<prefix>_nme_clean": .., "<prefix>_nme_occluded": .., "<prefix>_miou_clean": .., ...}``: a source's mean
    metrics over all faces of the clean and the occluded split (the ``all`` rows of :func:`occluder_quality`).

    ``prefix`` defaults to the source name with ``-`` / ``+`` as ``_``; metrics or splits absent are left out.
    """
    prefix = prefix if prefix is not None else source.replace("-", "_").replace("+", "_")
    rows = quality[(quality["source"] == source) & (quality["occluder"].astype(str) == "all")].set_index("split")
    out: dict[str, float] = {}
    for metric in metrics:
        for split, tag in ((clean, "clean"), (occluded, "occluded")):
            if metric in rows.columns and split in rows.index and np.isfinite(rows.at[split, metric]):
                out[f"{prefix}_{metric}_{tag}"] = round(float(rows.at[split, metric]), digits)
    return out


def compare_sources(
    manifest: pd.DataFrame,
    names: Sequence[str],
    image_size: int,
    prior_cfg: Mapping[str, Any] | None = None,
    device: Any = "cpu",
    splits: Sequence[str] = ("valid", "valid_occluded"),
    seed: int = 0,
) -> dict[str, Any]:
    """Each named prior source on the same SynthFER faces against their ground truth (notebook 20).

    The priors of every source are computed once through the prior cache; returns ``{"sources", "stores",
    "samples"}`` (:func:`sample_quality`), ``"quality"`` (:func:`occluder_quality`) and ``"effect"``
    (:func:`occlusion_effect` of NME on all / visible / hidden landmarks and mIoU).

    Args:
        manifest: SynthFER rows of the compared splits.
        names: prior source names (``oracle``, ``mobilefacenet``, ``landmark-parsing``, ...).
        image_size: model input side at which parsing maps are compared.
        prior_cfg: prior settings shared by every source (``landmark_weights``, ``batch_size``).
        device: where the prior networks run.
        splits: the clean and the occluded split.
        seed: seed of the bootstrap.
    """
    from .cache import PriorCache  # cache -> fast -> this module: imported on use
    from .sources import get_prior_source

    sources, stores = {}, {}
    for name in dict.fromkeys(names):
        pcfg = {**(prior_cfg or {}), "source": name}
        sources[name] = get_prior_source(pcfg, device)
        stores[name] = PriorCache().ensure(manifest, pcfg, image_size, device, source=sources[name])
    samples = sample_quality(manifest, stores, image_size, splits=splits)
    return {"sources": sources, "stores": stores, "samples": samples, "quality": occluder_quality(samples),
            "effect": occlusion_effect(samples, metrics=("nme", "nme_visible", "nme_hidden", "miou"), seed=seed)}


def detected_source(names: Sequence[str], configured: str) -> str | None:
    """The compared source that stands for detected priors: the configured one unless it is ``oracle``, else the
    first non-oracle source; None when every source is ``oracle``."""
    others = [n for n in names if n != "oracle"]
    return configured if configured in others else next(iter(others), None)


def occlusion_effect_summary(effect: pd.DataFrame, source: str) -> str:
    """Two lines on a source: NME and mIoU clean -> occluded on the same faces (difference, 95% CI, p), and the
    occluders under which it is measurably worse (the 95% CI entirely on the worse side)."""
    mine = effect[effect["source"] == source]
    e = mine[mine["occluder"] == "all"].set_index("metric")
    parts = [f"{m} {e.at[m, 'clean']:.3f} -> {e.at[m, 'occluded']:.3f} ({e.at[m, 'diff']:+.3f}, 95% CI "
             f"[{e.at[m, 'ci_low']:+.3f}, {e.at[m, 'ci_high']:+.3f}], p={e.at[m, 'p']:.3g})"
             for m in ("nme", "miou") if m in e.index and e.at[m, "n"] > 0]  # fmt: skip
    worse = mine[mine["worse"].fillna(False).astype(bool) & (mine["occluder"] != "all")]
    by_occ = worse.groupby("occluder")["metric"].agg(", ".join)
    return (f"{source}: clean -> occluded, same faces: " + "; ".join(parts) + "\n  measurably worse (95% CI) under: "
            + ("; ".join(f"{o} ({m})" for o, m in by_occ.items()) or "no single occluder"))


def has_ground_truth(manifest: pd.DataFrame) -> bool:
    """Whether the manifest carries SynthFER ground truth (``landmarks_index`` and ``parsing_path``)."""
    cols = ("landmarks_index", "parsing_path")
    return all(c in manifest.columns for c in cols) and bool(manifest[list(cols)].notna().all(axis=None))


def sample_rows(
    manifest: pd.DataFrame,
    by: str = "occluder",
    per_group: int = 1,
    limit: int = 8,
    seed: int = 0,
    splits: Sequence[str] | None = None,
) -> list[int]:
    """Row positions: ``per_group`` random rows per ``by`` value (or per class), at most ``limit`` in all."""
    m = manifest.reset_index(drop=True)
    if splits is not None:
        m = m[m["split"].isin(list(splits))]
    col = by if by in m.columns else "label_name"
    rng = np.random.default_rng(seed)
    out: list[int] = []
    for _, g in m.groupby(col, sort=True):
        out += [int(i) for i in rng.choice(g.index.to_numpy(), size=min(per_group, len(g)), replace=False)]
    return out[:limit]


def cache_report(store: Any, build_seconds: float, reopen_seconds: float | None = None) -> pd.DataFrame:
    """One-row table: rows, unique samples computed/reused, keys, size on disk, build (and reopen) time."""
    s = getattr(store, "stats", {}) or {}
    rec = {
        "rows": len(store), "keys": " ".join(store.keys) or "-", "computed": s.get("computed", 0),
        "reused": s.get("reused", 0), "flipped_too": bool(getattr(store, "has_flip", False)),
        "size_mb": round(store.nbytes() / 1e6, 3), "build_s": round(build_seconds, 2),
        "path": str(store.path or ""),
    }  # fmt: skip
    if reopen_seconds is not None:
        rec["reopen_s"] = round(reopen_seconds, 3)
    return pd.DataFrame([rec])


# ----------------------------------------------------------------------------- real faces
def real_face_landmarks(
    files: Sequence[str | Path], weights: str | Path, margin: int = 8, device: str = "cpu"
) -> tuple[list[np.ndarray], np.ndarray]:
    """MobileFaceNet-68 landmarks of real face crops (e.g. FER2013's 48x48), each padded by ``margin`` grey pixels.

    Tight crops (FER2013) lack the margin of a face-detector box the landmark model was trained on; a grey border
    of ``margin`` pixels restores it. Returns the padded RGB images (upsampled to 112) and landmarks (B, 68, 2) in
    [0, 1] of them.
    """
    from .landmarks import LandmarkPredictor, load_mobilefacenet

    ims = []
    for f in files:
        with Image.open(f) as im:
            im = (
                ImageOps.expand(im.convert("RGB"), border=margin, fill=(128, 128, 128)) if margin else im.convert("RGB")
            )
            ims.append(np.asarray(im.resize((112, 112), Image.BILINEAR)))
    pred = LandmarkPredictor(load_mobilefacenet(weights, device), device)
    lm, _ = pred.predict(np.stack(ims))
    return ims, lm


def real_face_comparison(
    files: Sequence[str | Path], source: Any, weights: str | Path, margin: int = 8, device: str = "cpu"
) -> tuple[list[np.ndarray], np.ndarray, dict[str, np.ndarray], pd.DataFrame]:
    """A prior source's priors (e.g. ``synth-detected``) on real face crops, beside MobileFaceNet-68's landmarks.

    Real faces have no ground truth; the table measures the disagreement: NME of the source's landmarks against
    MobileFaceNet's (normalised by MobileFaceNet's inter-ocular distance). Images as in :func:`real_face_landmarks`.

    Returns:
        (padded RGB images, MobileFaceNet landmarks (B, 68, 2), the source's priors, a table with ``file`` and
        ``nme_vs_mobilefacenet``).
    """
    ims, lm_ref = real_face_landmarks(files, weights, margin=margin, device=device)
    pri = source.compute(np.stack(ims), pd.DataFrame({"path": [str(f) for f in files]}))
    table = pd.DataFrame({"file": [str(f) for f in files]})
    if "landmarks" in pri:
        table["nme_vs_mobilefacenet"] = landmark_nme(pri["landmarks"], lm_ref)
    return ims, lm_ref, pri, table
