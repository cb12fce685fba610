"""Per-item predictions of one trained run, kept beside its record so that two runs can be paired item by item.

Tables 6-8 compare two variants trained with the same seed on the same evaluation items (images or pixels); the
claims (:mod:`orsalib.experiments.claims`) pair them per item, which needs each run's prediction of each item, not
only its accuracy. One ``per_image.npz`` per run, written atomically, holds for each evaluation column (``clean_acc``,
``occluded_acc``, ``real_occluded_acc`` of the ablations; ``test`` of the transfer studies):

- ``<column>__ids``: the item ids, shared by every run evaluated on the same items (the source manifest row of a
  face, so that an occluded copy keeps its face's id; the position of a test image; the flat position
  ``row * width + col`` of a hyperspectral pixel);
- ``<column>__label`` and ``<column>__pred``: the true and the predicted class;
- ``<column>__top5`` (image classification only): whether the true class is among the five highest logits.

Plain arrays only (read with ``allow_pickle=False``).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..utils import atomic_write_bytes

#: the file name beside a run's other files
FILE = "per_image.npz"
_SEP = "__"
_FIELDS = ("ids", "label", "pred", "top5")


def column_arrays(
    ids: np.ndarray, labels: np.ndarray, logits: np.ndarray, *, top5: bool = False
) -> dict[str, np.ndarray]:
    """The arrays of one evaluation column from ids, labels and logits ``(N, C)`` (or predicted labels ``(N,)``)."""
    ids = np.asarray(ids, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    lg = np.asarray(logits)
    pred = lg.argmax(axis=1) if lg.ndim == 2 else lg
    if not (ids.shape == labels.shape == pred.shape) or ids.ndim != 1:
        raise ValueError(f"ids, labels and predictions must be 1-d of one length, got {ids.shape}, {labels.shape}, "
                         f"{pred.shape}")  # fmt: skip
    out = {"ids": ids, "label": labels.astype(np.int32), "pred": pred.astype(np.int32)}
    if top5:
        if lg.ndim != 2:
            raise ValueError("top-5 correctness needs the logits (N, C), not predicted labels")
        k = min(5, lg.shape[1])
        top = np.argpartition(-lg, k - 1, axis=1)[:, :k]  # (N, k) the k highest logits, unordered
        out["top5"] = (top == labels[:, None]).any(axis=1)
    return out


def write_per_image(path: str | Path, columns: Mapping[str, Mapping[str, np.ndarray]]) -> Path:
    """Write ``{column: column_arrays(...)}`` to ``path`` (``.npz``, compressed, atomically); returns the path."""
    arrays: dict[str, np.ndarray] = {}
    for col, parts in columns.items():
        if _SEP in col or not col:
            raise ValueError(f"column name {col!r} must be non-empty and must not contain {_SEP!r}")
        missing = [k for k in ("ids", "label", "pred") if k not in parts]
        if missing:
            raise ValueError(f"column {col!r} lacks {missing}")
        for k, v in parts.items():
            if k not in _FIELDS:
                raise ValueError(f"column {col!r}: unknown array {k!r}; expected some of {_FIELDS}")
            arrays[f"{col}{_SEP}{k}"] = np.asarray(v)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(Path(path), buf.getvalue())


def read_per_image(path: str | Path) -> dict[str, pd.DataFrame]:
    """``{column: DataFrame}`` of a ``per_image.npz``: index ``id`` (unique; the first of a repeated id is kept),
    columns ``label``, ``pred``, ``correct`` and ``top5`` when stored."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            raw = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable per-image file ({e}); expected the .npz of write_per_image") from e
    out: dict[str, pd.DataFrame] = {}
    for col in dict.fromkeys(k.split(_SEP)[0] for k in raw):
        try:
            frame = pd.DataFrame({"label": raw[f"{col}{_SEP}label"], "pred": raw[f"{col}{_SEP}pred"]},
                                 index=pd.Index(raw[f"{col}{_SEP}ids"], name="id"))  # fmt: skip
        except KeyError as e:
            raise ValueError(f"{path}: column {col!r} lacks {e}; expected ids, label and pred") from None
        frame["correct"] = frame["label"].to_numpy() == frame["pred"].to_numpy()
        if f"{col}{_SEP}top5" in raw:
            frame["top5"] = raw[f"{col}{_SEP}top5"].astype(bool)
        out[col] = frame[~frame.index.duplicated(keep="first")]
    return out


def condition_ids(manifest: pd.DataFrame, indices: np.ndarray) -> np.ndarray:
    """Item ids of an evaluation condition's predictions: the loader's ``index`` mapped through the condition
    manifest's ``source_index`` (the row of the source manifest, shared by a clean image and its occluded copy)."""
    ids = np.asarray(indices, dtype=np.int64)
    if "source_index" in manifest.columns:
        missing = np.setdiff1d(ids, manifest.index.to_numpy())
        if missing.size:
            raise ValueError(f"predictions for rows {missing[:8].tolist()} that the condition's manifest lacks "
                             f"({missing.size} rows): they cannot be paired with their source images")  # fmt: skip
        return manifest["source_index"].loc[ids].to_numpy(dtype=np.int64)
    return ids


__all__ = ["FILE", "column_arrays", "condition_ids", "read_per_image", "write_per_image"]
