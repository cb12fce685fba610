"""Adapters of datasets stored as image files with label lists or folders: RAF-DB, AffectNet, Occlu-FER, any
``<split>/<emotion>/`` ImageFolder, and the evaluation-list filter (layouts in data/README.md).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .. import labels as L
from .common import DatasetError, _find, _frame, _numeric_folders, _require_dir, _resolve_label, scan_imagefolder


# ============================================================================= RAF-DB
def load_rafdb(root: str | Path, label_map: dict | None = None) -> pd.DataFrame:
    """RAF-DB basic: the native layout or the released ORSANet ImageFolder layout (detected).

    Native: ``basic/EmoLabel/list_patition_label.txt`` (lines ``train_00001.jpg 5``, labels 1..7 =
    surprise, fear, disgust, happiness, sadness, anger, neutral) and ``basic/Image/aligned/<stem>_aligned.jpg``;
    names ``train_*`` -> split ``train``, ``test_*`` -> ``test``.
    ImageFolder: ``train/<class>/``, ``valid/<class>/`` (or ``test/``); digit folders ``1``..``7`` use the native ids.
    """
    root = _require_dir(Path(root).expanduser().resolve(), "rafdb")
    label_file = _find(
        root,
        ["basic/EmoLabel/list_patition_label.txt", "EmoLabel/list_patition_label.txt", "list_patition_label.txt"],
    )
    if label_file is None:
        digits = _numeric_folders(root)
        if digits and not label_map and not digits <= {str(k) for k in L.RAFDB_LABELS}:
            raise DatasetError(
                f"rafdb: {str(root)!r} has numeric class folders {sorted(digits)}; RAF-DB ids are 1..7 "
                f"({L.RAFDB_LABELS}); for another numbering set data.label_map (folder -> emotion)"
            )
        return scan_imagefolder(root, "rafdb", numeric_map=L.RAFDB_LABELS, label_map=label_map)
    image_dir = _find(label_file.parent.parent, ["Image/aligned", "Image/Aligned", "aligned"])
    if image_dir is None:
        raise DatasetError(
            f"rafdb: found {label_file} but no aligned image folder; expected {label_file.parent.parent}/Image/aligned/"
        )
    rows: list[dict] = []
    for lineno, line in enumerate(label_file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            what = f"{len(parts)} token(s)" if len(parts) != 2 else f"label {parts[1]!r} is not an integer"
            raise DatasetError(
                f"rafdb: {label_file} line {lineno}: {line.strip()!r} ({what}); expected exactly two tokens "
                "'<name>.jpg <label 1..7>'"
            )
        name, lab = parts[0], parts[1]
        stem = Path(name).stem
        path = image_dir / f"{stem}_aligned.jpg"
        if not path.exists() and (image_dir / name).exists():
            path = image_dir / name
        split = "train" if stem.startswith("train") else "test" if stem.startswith("test") else None
        if split is None:
            raise DatasetError(f"rafdb: {label_file} line {lineno}: name {name!r} starts with neither train_ nor test_")
        label, lname = _resolve_label(lab, L.RAFDB_LABELS, label_map)
        if label < 0:
            ids = ", ".join(f"{k} {v}" for k, v in sorted(L.RAFDB_LABELS.items()))
            raise DatasetError(
                f"rafdb: {label_file} line {lineno}: {line.strip()!r}: label {lab} is not one of 1..7 ({ids})"
                + ("" if label_map else "; other numberings need data.label_map")
            )
        rows.append({"path": str(path), "label": label, "label_name": lname, "split": split})
    if not rows:
        raise DatasetError(f"rafdb: {label_file} lists no images")
    return _frame(rows, "rafdb")


# ============================================================================= AffectNet
def load_affectnet(root: str | Path, label_map: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """AffectNet: the annotation CSVs (detected) or an ImageFolder.

    CSV: ``training.csv`` / ``validation.csv`` (also under ``Manually_Annotated_file_lists/``) with columns
    ``subDirectory_filePath`` and ``expression`` (0..7 = neutral, happiness, sadness, surprise, fear, disgust,
    anger, contempt; 8..10 = none/uncertain/no-face, ignored); images under ``Manually_Annotated_Images/``
    (or ``Manually_Annotated/Manually_Annotated_Images/``, or the root). ``validation`` -> split ``valid``.
    ImageFolder: digit folders use the native ids above.

    Returns:
        (manifest, info) with ``info["ignored_non_expression"]``, the rows with labels >= 8.
    """
    root = _require_dir(Path(root).expanduser().resolve(), "affectnet")
    lists = {}
    for fname, split in (("training.csv", "train"), ("validation.csv", "valid")):
        p = _find(root, [fname, f"Manually_Annotated_file_lists/{fname}"])
        if p is not None:
            lists[split] = p
    if not lists:
        return scan_imagefolder(root, "affectnet", numeric_map=L.AFFECTNET_LABELS, label_map=label_map), {}
    img_root = _find(root, ["Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images"]) or root
    rows: list[dict] = []
    ignored = 0
    for split, p in lists.items():
        try:
            df = pd.read_csv(p, usecols=["subDirectory_filePath", "expression"], dtype=str, keep_default_na=False)
        except ValueError as e:
            raise DatasetError(f"affectnet: {p} lacks the columns subDirectory_filePath and expression ({e})") from None
        text = df["expression"].str.strip()
        expr = pd.to_numeric(text.where(text.str.isdigit()), errors="coerce")
        bad = expr.isna() | (expr > 10)
        if bad.any():
            k = int(np.argmax(bad.to_numpy()))
            raise DatasetError(
                f"affectnet: {p} line {k + 2}: expression {df['expression'].iloc[k]!r} is not an integer 0..10 "
                "(0..7 = " + ", ".join(L.AFFECTNET_LABELS.values()) + "; 8..10 none/uncertain/no-face, ignored)"
            )
        no_path = df["subDirectory_filePath"].str.strip() == ""
        if no_path.any():
            k = int(np.argmax(no_path.to_numpy()))
            raise DatasetError(f"affectnet: {p} line {k + 2}: subDirectory_filePath is empty; expected the image path")
        keep = expr < 8
        ignored += int((~keep).sum())
        for rel, e in zip(df["subDirectory_filePath"][keep], expr[keep].astype(int)):
            label, name = _resolve_label(int(e), L.AFFECTNET_LABELS, label_map)
            rows.append({"path": str(img_root / str(rel)), "label": label, "label_name": name, "split": split})
    return _frame(rows, "affectnet"), {"ignored_non_expression": ignored}


# ============================================================================= Occlu-FER / generic
def load_occlufer(root: str | Path, label_map: dict | None = None) -> pd.DataFrame:
    """Occlu-FER (ORSANet): ImageFolder ``train/<class>/``, ``valid/`` or ``test/<class>/`` with 8 named classes."""
    root = _require_dir(Path(root).expanduser().resolve(), "occlufer")
    digits = _numeric_folders(root)
    if digits and not label_map:
        raise DatasetError(
            f"occlufer: {str(root)!r} has numeric class folders {sorted(digits)}; Occlu-FER has no published "
            "numbering, so set data.label_map (folder -> emotion name), or rename the folders to emotion names"
        )
    return scan_imagefolder(root, "occlufer", label_map=label_map)


def load_imagefolder(root: str | Path, label_map: dict | None = None) -> pd.DataFrame:
    """Any ``root/<split>/<class>/`` tree; ``label_map`` maps folder names to emotions (aliases work without)."""
    return scan_imagefolder(root, "imagefolder", label_map=label_map)


def filter_by_list(manifest: pd.DataFrame, list_file: str | Path, tag_column: str = "occlusion_type") -> pd.DataFrame:
    """Keep the rows whose file name appears in a list file (RAF-DB/FERPlus/AffectNet challenge-subset style).

    Each non-empty line starts with a file name or relative path (``test_0001.jpg``); ``_aligned`` suffixes are
    ignored on both sides. When lines carry further tokens, the last one is stored in ``tag_column`` (e.g. the
    occlusion type of the RAF-DB occlusion list); an existing column of that name is kept.

    Raises:
        DatasetError: the list is missing or matches no row. Names not found are in ``attrs["filter_missing"]``.
    """
    list_file = Path(list_file)
    if not list_file.is_file():
        raise DatasetError(f"list file {str(list_file)!r} does not exist; expected one file name per line")

    def norm(name: str) -> str:
        stem = Path(name).stem
        return re.sub(r"_aligned$", "", stem).lower()

    wanted: dict[str, str | None] = {}
    for line in list_file.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.replace(",", " ").split()
        if parts:
            wanted[norm(parts[0])] = parts[-1] if len(parts) > 1 else None
    keys = manifest["path"].map(lambda p: norm(os.path.basename(str(p))))
    mask = keys.isin(wanted)
    if not mask.any():
        raise DatasetError(f"list file {list_file} matches no image of the manifest ({len(wanted)} names listed)")
    out = manifest[mask].copy()
    tags = keys[mask].map(wanted)
    if tags.notna().any() and tag_column not in out.columns:
        out[tag_column] = tags.values
    out.attrs = dict(manifest.attrs)
    out.attrs["filter_missing"] = sorted(set(wanted) - set(keys[mask]))
    out.attrs["filter_list"] = str(list_file)
    return out
