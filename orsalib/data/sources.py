"""Dataset adapters -> one manifest, and its validation before training.

Every adapter turns a dataset layout on disk into the manifest of docs/contracts.md: one row per image with
``path`` (absolute), ``label`` (canonical id, :data:`orsalib.data.labels.EMOTIONS`), ``label_name``, ``split``
(``train`` | ``valid`` | ``test`` | evaluation-only splits) and ``source``. The accepted layouts are described,
with a tree for each, in ``data/README.md``.

Adapters are registered by name (``@register_dataset``, :data:`orsalib.registry.DATASETS`; the built-in ones and
their metadata are in the "registered adapters" section): adding a dataset is one decorated function.
:func:`load_manifest` runs the adapter of ``DataConfig.dataset`` and validates the result with
:func:`validate_manifest` (missing/zero-byte/unreadable files, unknown labels, empty classes, duplicated paths,
train/evaluation overlap by content hash). By default every problem is collected and ONE :class:`DatasetError`
lists the first 20 of them; with ``on_bad="skip"`` the bad rows are dropped and listed in the report
(``manifest.attrs["validation"]``; :func:`validation_summary` is its one line for stdout and
:func:`write_validation_report` writes it as ``validation.json`` into a run folder), together with the images
whose content appears in two splits. Malformed label files (CSV, list files) raise at once, naming file and line.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import io
import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from ..registry import DATASETS, register_dataset
from . import labels as L
from .transforms import IMAGE_EXTENSIONS

REQUIRED_COLUMNS: tuple[str, ...] = ("path", "label", "label_name", "split")
EVAL_SPLITS: tuple[str, ...] = ("valid", "test")
SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "trainset": "train",
    "valid": "valid",
    "val": "valid",
    "validation": "valid",
    "publictest": "valid",
    "test": "test",
    "testing": "test",
    "testset": "test",
    "privatetest": "test",
}
MAX_LISTED_PROBLEMS: int = 20
MAX_REPORTED_SKIPPED: int = 1000  # skipped files listed (with reasons) in the validation report; all are counted
# Image modes that decode fine but are converted to RGB on load (counted in the report).
_GRAY_MODES = {"L", "LA", "1", "P;L"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


class DatasetError(ValueError):
    """The data on disk does not match what the adapter expects; the message names the files."""


# ============================================================================= helpers
def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _split_name(folder: str) -> str | None:
    key = folder.strip().lower()
    if key in SPLIT_ALIASES:
        return SPLIT_ALIASES[key]
    if re.match(r"^(valid|test)_[a-z0-9_]+$", key):  # evaluation-only splits, e.g. valid_occluded
        return key
    return None


def _resolve_label(
    raw: str | int, numeric_map: dict[int, str] | None, label_map: dict | None, num_classes: int = 8
) -> tuple[int, str]:
    """Native label (folder name or id) -> (canonical id, canonical name); (-1, raw) when unknown."""
    raw_s = str(raw).strip()
    if label_map:
        hit = None
        for k, v in label_map.items():
            if str(k) == raw_s or str(k).lower() == raw_s.lower():
                hit = v
                break
        if hit is not None:
            if isinstance(hit, (int, np.integer)) and not isinstance(hit, bool):
                if 0 <= int(hit) < len(L.EMOTIONS):
                    return int(hit), L.EMOTIONS[int(hit)]
                return -1, raw_s
            try:
                name = L.canonical_name(str(hit))
            except ValueError:
                return -1, raw_s
            return L.EMOTIONS.index(name), name
    if raw_s.lstrip("-").isdigit() and numeric_map is not None:
        name = numeric_map.get(int(raw_s))
        return (L.EMOTIONS.index(name), name) if name is not None else (-1, raw_s)
    try:
        name = L.canonical_name(raw_s)
    except ValueError:
        return -1, raw_s
    return L.EMOTIONS.index(name), name


def _frame(rows: list[dict], source: str) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(REQUIRED_COLUMNS) if not rows else None)
    if df.empty:
        df = pd.DataFrame({c: pd.Series(dtype=object) for c in REQUIRED_COLUMNS})
    df["source"] = source
    df["label"] = df["label"].astype("int64")
    return df


def _require_dir(root: Path, what: str) -> Path:
    if not root.exists():
        raise DatasetError(f"{what}: folder {str(root)!r} does not exist; see data/README.md for the layout")
    if not root.is_dir():
        raise DatasetError(f"{what}: {str(root)!r} is not a folder; see data/README.md for the layout")
    return root


def _find(root: Path, candidates: list[str]) -> Path | None:
    for c in candidates:
        p = root / c
        if p.exists():
            return p
    return None


def eval_split(manifest: pd.DataFrame) -> str:
    """The split to evaluate on: ``valid`` when present (the release's name for the test split), else ``test``."""
    present = set(manifest["split"].unique())
    for s in EVAL_SPLITS:
        if s in present:
            return s
    others = sorted(present - {"train"})
    if others:
        return others[0]
    raise DatasetError(f"the manifest has no evaluation split; splits present: {sorted(present)}")


# ============================================================================= ImageFolder
def scan_imagefolder(
    root: str | Path,
    source: str = "imagefolder",
    numeric_map: dict[int, str] | None = None,
    label_map: dict | None = None,
) -> pd.DataFrame:
    """``root/<split>/<class>/**/<image>`` -> manifest (unknown class folders give label -1, flagged later).

    Split folders: ``train``/``training``, ``valid``/``val``/``validation``, ``test``, and evaluation-only
    ``valid_*``/``test_*``. Class folders: emotion names or aliases (``angry``, ``happy``, ...), digits through
    ``numeric_map`` (a dataset's native ids), or anything through ``label_map`` (folder -> emotion).
    """
    root = _require_dir(Path(root).expanduser().resolve(), source)
    split_dirs = sorted((d for d in root.iterdir() if d.is_dir() and _split_name(d.name)), key=lambda d: d.name)
    if not split_dirs:
        children = sorted(d.name for d in root.iterdir() if d.is_dir())[:10]
        raise DatasetError(
            f"{source}: {str(root)!r} has no split folders; expected train/ and valid/ (or test/) each holding one "
            f"folder per class, found folders {children}; see data/README.md"
        )
    rows: list[dict] = []
    for sd in split_dirs:
        split = _split_name(sd.name)
        class_dirs = sorted(d for d in sd.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not class_dirs:
            raise DatasetError(
                f"{source}: split folder {str(sd)!r} holds no class folders; expected {sd}/<class>/<image> "
                f"with class names such as {list(L.EMOTIONS_7)}"
            )
        for cd in class_dirs:
            label, name = _resolve_label(cd.name, numeric_map, label_map)
            for dirpath, dirnames, filenames in os.walk(cd):
                dirnames.sort()
                for fn in sorted(filenames):
                    p = Path(dirpath) / fn
                    if _is_image(p):
                        rows.append({"path": str(p), "label": label, "label_name": name, "split": split})
    return _frame(rows, source)


def _numeric_folders(root: Path) -> set[str]:
    out: set[str] = set()
    for sd in root.iterdir():
        if sd.is_dir() and _split_name(sd.name):
            out |= {cd.name for cd in sd.iterdir() if cd.is_dir() and cd.name.isdigit()}
    return out


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


# ============================================================================= FER2013 / FERPlus
def _file_key(p: Path) -> str:
    st = p.stat()
    return hashlib.sha1(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]


def _pixels_of(text: str, src: Path, line: int) -> np.ndarray:
    """One ``pixels`` cell -> (2304,) uint8; a DatasetError naming file, line and the bad value otherwise."""
    tokens = str(text).split()
    try:
        arr = np.array(tokens, dtype=np.int64)
    except ValueError:
        bad = next((k, t) for k, t in enumerate(tokens) if not t.lstrip("+-").isdigit())
        raise DatasetError(
            f"fer2013: {src} line {line}: pixel value {bad[1]!r} (value {bad[0] + 1}) is not an integer; "
            "expected 2304 space-separated integers 0..255"
        ) from None
    if arr.size != 48 * 48:
        raise DatasetError(
            f"fer2013: {src} line {line}: expected 2304 pixel values 0..255 (48x48), got {arr.size} values"
        )
    out = (arr < 0) | (arr > 255)
    if out.any():
        k = int(np.argmax(out))
        raise DatasetError(
            f"fer2013: {src} line {line}: pixel value {int(arr[k])} (value {k + 1} of 2304) is outside 0..255"
            + (f"; {int(out.sum())} values are" if out.sum() > 1 else "")
        )
    return arr.astype(np.uint8)


def _decode_pixel_rows(pixels: pd.Series, names: list[str], src: Path, out_dir: Path, lines: list[int]) -> None:
    """Write each 48x48 ``pixels`` string as ``out_dir/<name>`` (PNG) through a temp folder + rename."""
    from ..utils import make_temp_dir

    tmp = make_temp_dir(out_dir.parent, f".{out_dir.name}.")
    try:
        for pix, name, ln in zip(pixels, names, lines):
            arr = _pixels_of(pix, src, ln)
            dst = tmp / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr.reshape(48, 48)).save(dst)  # (2304,) -> (48, 48)
        if out_dir.exists():  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_fer2013_csv(csv_path: Path) -> pd.DataFrame:
    """``fer2013.csv`` as strings, with a ``row`` (0-based) and a ``line`` (1-based file line) column."""
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except Exception as e:  # noqa: BLE001 - the user's file
        raise DatasetError(f"fer2013: cannot read {csv_path} as CSV ({e})") from None
    missing = {"emotion", "pixels", "Usage"} - set(df.columns)
    if missing:
        raise DatasetError(f"fer2013: {csv_path} lacks columns {sorted(missing)}; expected emotion, pixels, Usage")
    df["line"] = np.arange(len(df)) + 2  # line 1 is the header (blank lines are kept until numbered)
    cells = [c for c in df.columns if c != "line"]
    df = df[(df[cells] != "").any(axis=1)].reset_index(drop=True)
    df["row"] = np.arange(len(df))
    return df


def _fer2013_csv_images(
    csv_path: Path, cache_dir: Path | None, rows_wanted: np.ndarray | None = None, df: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Decode fer2013.csv once into PNGs; returns ``row, line, path, emotion, Usage`` for the wanted rows."""
    from ..paths import CACHE_DIR

    df = _read_fer2013_csv(csv_path) if df is None else df
    if rows_wanted is not None:
        df = df.iloc[rows_wanted]
    out_dir = Path(cache_dir or CACHE_DIR / "fer2013_png") / f"{csv_path.stem}-{_file_key(csv_path)}"
    if rows_wanted is not None:
        out_dir = out_dir.with_name(
            out_dir.name + "-" + hashlib.sha1(np.asarray(rows_wanted).tobytes()).hexdigest()[:8]
        )
    names = [f"{int(r):05d}.png" for r in df["row"]]
    if not out_dir.exists():
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        _decode_pixel_rows(df["pixels"], names, csv_path, out_dir, [int(ln) for ln in df["line"]])
    df = df.drop(columns=["pixels"]).copy()
    df["path"] = [str(out_dir / n) for n in names]
    return df


def _usage_split(usage: str, src: Path, line: int | None = None) -> str:
    key = str(usage).strip().lower()
    if key not in SPLIT_ALIASES:
        where = f"{src} line {line}" if line is not None else str(src)
        raise DatasetError(f"{where}: Usage {usage!r} is not one of Training, PublicTest, PrivateTest")
    return SPLIT_ALIASES[key]


def _fer2013_labels(df: pd.DataFrame, csv_path: Path, label_map: dict | None) -> list[tuple[int, str, str]]:
    """(label id, label name, split) of each row; a DatasetError naming file, line and value for a bad cell."""
    allowed = "an integer 0..6 (" + ", ".join(f"{k} {v}" for k, v in sorted(L.FER2013_LABELS.items())) + ")"
    out = []
    for emo, usage, line in zip(df["emotion"], df["Usage"], df["line"]):
        text = str(emo).strip()
        if not text.isdigit():
            raise DatasetError(
                f"fer2013: {csv_path} line {line}: emotion {emo!r} is not an integer; expected {allowed}"
            )
        label, name = _resolve_label(int(text), L.FER2013_LABELS, label_map)
        if label < 0:
            raise DatasetError(
                f"fer2013: {csv_path} line {line}: emotion {text} is not {allowed}"
                + ("" if label_map else "; other numberings need data.label_map")
            )
        out.append((label, name, _usage_split(usage, csv_path, int(line))))
    return out


def load_fer2013(root: str | Path, label_map: dict | None = None, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """FER2013: the original ``fer2013.csv`` (decoded to PNG once, under ``cache_dir``) or class folders.

    CSV: ``emotion`` (0..6 = anger, disgust, fear, happiness, sadness, surprise, neutral), ``pixels`` (2304
    space-separated values 0..255), ``Usage`` (Training -> train, PublicTest -> valid, PrivateTest -> test). A bad
    cell raises a :class:`DatasetError` naming the file, the line and the value.
    Folders: ``train/<class>/``, ``valid/`` or ``test/<class>/`` (names such as ``angry``, or digits 0..6).
    """
    root = Path(root).expanduser().resolve()
    csv_path = root if root.is_file() else _find(_require_dir(root, "fer2013"), ["fer2013.csv", "fer2013/fer2013.csv"])
    if csv_path is None:
        return scan_imagefolder(root, "fer2013", numeric_map=L.FER2013_LABELS, label_map=label_map)
    raw = _read_fer2013_csv(csv_path)
    labels = _fer2013_labels(raw, csv_path, label_map)  # checked before any image is decoded
    df = _fer2013_csv_images(csv_path, Path(cache_dir) if cache_dir else None, df=raw)
    rows = [
        {"path": path, "label": label, "label_name": name, "split": split}
        for path, (label, name, split) in zip(df["path"], labels)
    ]
    return _frame(rows, "fer2013")


def ferplus_majority(votes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """FERPlus majority vote over the 8 emotion columns of ``fer2013new.csv``.

    A row is kept when one emotion has strictly more votes than every other emotion AND than ``unknown`` and
    ``NF`` (not a face); ties, unknown-majority and no-face rows are dropped.

    Returns:
        (keep mask (N,), canonical label ids (N,), -1 where dropped).
    """
    emo_cols = list(L.FERPLUS_EMOTION_COLUMNS)
    missing = [c for c in emo_cols + list(L.FERPLUS_OTHER_COLUMNS) if c not in votes.columns]
    if missing:
        raise DatasetError(f"ferplus: fer2013new.csv lacks vote columns {missing}")
    v = votes[emo_cols].to_numpy(dtype=np.float64)  # (N, 8)
    other = votes[list(L.FERPLUS_OTHER_COLUMNS)].to_numpy(dtype=np.float64).max(axis=1)  # (N,)
    top = v.max(axis=1)
    winners = (v == top[:, None]).sum(axis=1)
    keep = (top > 0) & (winners == 1) & (top > other)
    canon = np.array([L.EMOTIONS.index(L.FERPLUS_EMOTION_COLUMNS[c]) for c in emo_cols])
    labels = np.where(keep, canon[v.argmax(axis=1)], -1)
    return keep, labels


def _read_ferplus_votes(new_csv: Path) -> pd.DataFrame:
    """``fer2013new.csv`` with numeric vote columns and a ``line`` column; a bad cell names file, line, value."""
    try:
        votes = pd.read_csv(new_csv, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except Exception as e:  # noqa: BLE001 - the user's file
        raise DatasetError(f"ferplus: cannot read {new_csv} as CSV ({e})") from None
    if "Usage" not in votes.columns:
        raise DatasetError(f"ferplus: {new_csv} lacks the Usage column")
    votes["line"] = np.arange(len(votes)) + 2
    votes = votes[(votes.drop(columns="line") != "").any(axis=1)].reset_index(drop=True)
    for c in [c for c in list(L.FERPLUS_EMOTION_COLUMNS) + list(L.FERPLUS_OTHER_COLUMNS) if c in votes.columns]:
        num = pd.to_numeric(votes[c].str.strip(), errors="coerce")
        bad = num.isna() | (num < 0)
        if bad.any():
            k = int(np.argmax(bad.to_numpy()))
            raise DatasetError(
                f"ferplus: {new_csv} line {votes['line'].iloc[k]}: {c} vote {votes[c].iloc[k]!r} is not a count; "
                "expected an integer >= 0 in every vote column"
            )
        votes[c] = num
    return votes


def load_ferplus(root: str | Path, cache_dir: str | Path | None = None) -> tuple[pd.DataFrame, dict]:
    """FERPlus: ``fer2013new.csv`` majority labels joined with ``fer2013.csv`` pixels (row by row) or images.

    Images, when ``fer2013.csv`` is absent: ``FER2013Train/``, ``FER2013Valid/``, ``FER2013Test/`` holding the
    files named in the ``Image name`` column (the FERPlus generator's output), also under ``data/``.
    """
    root = _require_dir(Path(root).expanduser().resolve(), "ferplus")
    new_csv = _find(root, ["fer2013new.csv", "FERPlus/fer2013new.csv"])
    if new_csv is None:
        raise DatasetError(f"ferplus: no fer2013new.csv in {str(root)!r}; expected the FERPlus label file there")
    votes = _read_ferplus_votes(new_csv)
    keep, labels = ferplus_majority(votes)
    info = {"ferplus_rows": len(votes), "ferplus_dropped_vote": int((~keep).sum())}
    old_csv = _find(root, ["fer2013.csv", "fer2013/fer2013.csv", "../fer2013.csv", "../fer2013/fer2013.csv"])
    rows: list[dict] = []
    idx = np.flatnonzero(keep)
    splits = [_usage_split(votes["Usage"].iloc[i], new_csv, int(votes["line"].iloc[i])) for i in idx]
    if old_csv is not None:
        old = _read_fer2013_csv(old_csv)
        if len(old) != len(votes):
            raise DatasetError(
                f"ferplus: {old_csv} has {len(old)} rows but {new_csv} has {len(votes)}; they must align row by row"
            )
        imgs = _fer2013_csv_images(old_csv, Path(cache_dir) if cache_dir else None, rows_wanted=idx, df=old)
        paths = list(imgs["path"])
    else:
        folders = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}
        paths = []
        for i, split in zip(idx, splits):
            name = str(votes["Image name"].iloc[i]).strip() if "Image name" in votes.columns else ""
            if not name or name == "nan":
                raise DatasetError(
                    f"ferplus: {new_csv} line {votes['line'].iloc[i]}: no 'Image name' for a labelled row; without "
                    "fer2013.csv the images are found by that column"
                )
            base = _find(root, [folders[split], f"data/{folders[split]}"])
            if base is None:
                raise DatasetError(
                    f"ferplus: neither fer2013.csv nor the image folder {folders[split]}/ is in {str(root)!r}"
                )
            paths.append(str(base / name))
    for i, path, split in zip(idx, paths, splits):
        lab = int(labels[i])
        rows.append({"path": path, "label": lab, "label_name": L.EMOTIONS[lab], "split": split})
    return _frame(rows, "ferplus"), info


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


# ============================================================================= validation
def _inspect(path: str) -> dict[str, Any]:
    """Stat, hash and fully decode one file (never raises)."""
    info: dict[str, Any] = {"error": None, "kind": None, "mode": None, "size": 0, "sha1": None}
    try:
        st = os.stat(path)
    except OSError:
        info.update(kind="missing_file", error="missing file; expected an image there")
        return info
    info["size"] = st.st_size
    info["mtime_ns"] = st.st_mtime_ns
    if st.st_size == 0:
        info.update(kind="zero_byte", error="zero-byte file; expected an image")
        return info
    try:
        with open(path, "rb") as f:
            data = f.read()
        info["sha1"] = hashlib.sha1(data).hexdigest()
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # decodes every pixel: truncated files fail here
            info["mode"] = img.mode
            info["width"], info["height"] = img.size
    except Exception as e:  # noqa: BLE001 - any decoder failure is this file's problem
        info.update(kind="unreadable", error=f"cannot decode ({type(e).__name__}: {e}); expected a complete image")
    return info


_CHECK_CACHE_VERSION = 1
_CHECK_FIELDS = ("size", "mtime_ns", "sha1", "mode", "width", "height")


def _default_check_cache() -> Path:
    from ..paths import CACHE_DIR

    return CACHE_DIR / "image_checks.json"


def _load_check_cache(path: Path | None) -> dict[str, dict[str, Any]]:
    """Results of earlier checks of good files, ``{path: info}``, from a JSON file (never unpickled: the outputs
    folder may be shared). A damaged or foreign file is ignored (and rewritten)."""
    if path is None or not path.is_file():
        return {}
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if d.get("version") != _CHECK_CACHE_VERSION or tuple(d.get("fields", ())) != _CHECK_FIELDS:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for p, vals in d["files"].items():
            if not isinstance(vals, list) or len(vals) != len(_CHECK_FIELDS):
                continue
            info = dict(zip(_CHECK_FIELDS, vals))
            if not all(isinstance(info[k], t) for k, t in (("size", int), ("mtime_ns", int), ("sha1", str))):
                continue
            out[str(p)] = {"error": None, "kind": None, **info}
        return out
    except (OSError, ValueError, TypeError, AttributeError, KeyError):  # a damaged cache is rebuilt
        return {}


def _save_check_cache(path: Path, cache: dict[str, dict[str, Any]]) -> None:
    from ..utils import atomic_write_text

    payload = {
        "version": _CHECK_CACHE_VERSION,
        "fields": list(_CHECK_FIELDS),
        "files": {p: [info.get(k) for k in _CHECK_FIELDS] for p, info in cache.items()},
    }
    try:
        atomic_write_text(path, json.dumps(payload, separators=(",", ":")))
    except OSError:
        pass  # the cache is an optimisation only


def inspect_files(
    paths: list[str], cache_file: str | Path | None = "auto", workers: int | None = None, progress: bool = False
) -> list[dict[str, Any]]:
    """:func:`_inspect` every path, reusing results cached by (path, mtime, size); threads for the decoding.

    The cache (``cache_file``; ``"auto"`` = ``outputs/cache/image_checks.json``) is JSON and holds good files only.
    """
    cache_path = _default_check_cache() if cache_file == "auto" else (Path(cache_file) if cache_file else None)
    cache = _load_check_cache(cache_path)
    out: list[dict | None] = [None] * len(paths)
    todo: list[int] = []
    for i, p in enumerate(paths):
        hit = cache.get(p)
        if hit is not None:
            try:
                st = os.stat(p)
                if st.st_size == hit["size"] and st.st_mtime_ns == hit["mtime_ns"]:
                    out[i] = hit
                    continue
            except OSError:
                pass
        todo.append(i)
    if todo:
        n = workers or min(8, (os.cpu_count() or 1) + 2)
        it: Any
        with cf.ThreadPoolExecutor(max_workers=n) as ex:
            it = ex.map(_inspect, [paths[i] for i in todo], chunksize=64)
            if progress:
                from tqdm.auto import tqdm

                it = tqdm(it, total=len(todo), desc="checking images", leave=False)
            for i, info in zip(todo, it):
                out[i] = info
                if info["kind"] is None:
                    cache[paths[i]] = info
                else:
                    cache.pop(paths[i], None)
        if cache_path is not None:
            _save_check_cache(cache_path, cache)
    return out  # type: ignore[return-value]


def _format_problems(problems: list[dict], total_rows: int) -> str:
    lines = [
        f"{len(problems)} problem(s) in a manifest of {total_rows} rows "
        f"(first {min(len(problems), MAX_LISTED_PROBLEMS)} shown):"
    ]
    for p in problems[:MAX_LISTED_PROBLEMS]:
        lines.append(f"  - {p['path']}: {p['detail']}")
    kinds = Counter(p["kind"] for p in problems)
    lines.append("  by kind: " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())))
    lines.append("Fix the files, or set data.on_bad='skip' to drop the bad rows (counts go to the validation report).")
    return "\n".join(lines)


def validate_manifest(
    manifest: pd.DataFrame,
    on_bad: str = "raise",
    *,
    num_classes: int | None = None,
    check_images: bool = True,
    on_overlap: str = "warn",
    require_all_classes: bool = True,
    cache_file: str | Path | None = "auto",
    progress: bool = False,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Check a manifest before training; return the (possibly filtered) manifest and a report.

    Problems (rows): ``missing_file``, ``zero_byte``, ``unreadable`` (PIL fully decodes every image, so
    truncated files are caught), ``unknown_label`` (not in ``0..num_classes-1``), ``duplicate_path`` (second and
    later occurrences), ``overlap`` (a training image with the same content, sha1, as an evaluation image; the
    training copy is the bad row so the benchmark's test set stays intact). Dataset-level: ``empty_class`` (a
    class without training images). Counted but allowed (converted to RGB on load): grayscale, palette, RGBA,
    16-bit images.

    Args:
        manifest: the manifest (contract columns).
        on_bad: ``"raise"``: one :class:`DatasetError` listing the first 20 problems and the total;
            ``"skip"``: drop the bad rows and count them in the report.
        num_classes: 7 or 8; ``None`` = 8 if any label is 7, else 7.
        check_images: open and decode every file (``False``: only check that files exist).
        on_overlap: ``"warn"`` (default: count in the report; real benchmarks such as FER2013 ship known
            train/test duplicates, and dropping them would change the benchmark), ``"raise"`` or ``"skip"``
            (treated like the other problems).
        require_all_classes: an empty training class is a problem (``raise``) / a warning (``skip``).
        cache_file: JSON file of per-file check results keyed by (path, mtime, size); ``"auto"`` =
            ``outputs/cache/image_checks.json``, ``None`` = no cache.
        progress: show a progress bar while decoding.

    Returns:
        (manifest with a ``sha1`` column and index 0..N-1, report dict), the report also in the manifest's
        ``attrs["validation"]``: ``split_counts``, ``class_counts`` (split -> class -> images), ``skipped`` (the
        dropped files with split, kind and reason, the first 1000; ``skipped_total``, ``skipped_by_kind``),
        ``cross_split_duplicates`` (contents found in two or more splits; ``cross_split_pairs`` such as
        ``{"train~valid": 3}``, ``cross_split_examples``), ``converted_to_rgb``, ``warnings``.
        :func:`validation_summary` makes it one line,
        :func:`write_validation_report` writes it.
    """
    if on_bad not in ("raise", "skip"):
        raise ValueError(f"on_bad={on_bad!r} is not allowed; choose 'raise' or 'skip'")
    if on_overlap not in ("warn", "raise", "skip"):
        raise ValueError(f"on_overlap={on_overlap!r} is not allowed; choose 'warn', 'raise' or 'skip'")
    missing_cols = [c for c in REQUIRED_COLUMNS if c not in manifest.columns]
    if missing_cols:
        raise DatasetError(f"the manifest lacks columns {missing_cols}; required: {list(REQUIRED_COLUMNS)}")
    m = manifest.reset_index(drop=True).copy()
    n_in = len(m)
    labels_num = pd.to_numeric(m["label"], errors="coerce").fillna(-1).astype(int)
    if num_classes is None:
        num_classes = 8 if (labels_num == 7).any() else 7
    names = L.emotions(num_classes)
    problems: list[dict] = []

    def add(i: int, kind: str, detail: str) -> None:
        problems.append(
            {
                "row": int(i),
                "path": str(m.at[i, "path"]),
                "split": str(m.at[i, "split"]),
                "kind": kind,
                "detail": detail,
            }
        )

    bad_label = (labels_num < 0) | (labels_num >= num_classes)
    for i in np.flatnonzero(bad_label.to_numpy()):
        add(
            i,
            "unknown_label",
            f"unknown label {m.at[i, 'label_name']!r} (id {m.at[i, 'label']}); expected one "
            f"of {list(names)} (folder names may need data.label_map)",
        )
    dup = m["path"].duplicated(keep="first")
    for i in np.flatnonzero(dup.to_numpy()):
        add(i, "duplicate_path", "listed more than once; expected each image once")

    converted: Counter = Counter()
    sha1 = [None] * n_in
    if check_images:
        infos = inspect_files([str(p) for p in m["path"]], cache_file=cache_file, progress=progress)
        for i, info in enumerate(infos):
            if info["kind"] is not None:
                add(i, info["kind"], info["error"])
                continue
            sha1[i] = info["sha1"]
            mode = info["mode"]
            if mode in _GRAY_MODES:
                converted["grayscale"] += 1
            elif mode in _SIXTEEN_BIT_MODES:
                converted["16bit"] += 1
            elif mode in ("RGBA", "PA") or mode == "LA":
                converted["alpha"] += 1
            elif mode == "P":
                converted["palette"] += 1
            elif mode != "RGB":
                converted[f"mode_{mode}"] += 1
    else:
        for i, p in enumerate(m["path"]):
            if not os.path.isfile(p):
                add(i, "missing_file", "missing file; expected an image there")
    m["sha1"] = sha1

    # Train / evaluation overlap by content.
    overlap_pairs: list[dict] = []
    if check_images:
        is_train = (m["split"] == "train").to_numpy()
        eval_hash: dict[str, int] = {}
        for i in np.flatnonzero(~is_train):
            if sha1[i] is not None:
                eval_hash.setdefault(sha1[i], int(i))
        for i in np.flatnonzero(is_train):
            j = eval_hash.get(sha1[i]) if sha1[i] is not None else None
            if j is not None:
                overlap_pairs.append(
                    {
                        "train": str(m.at[i, "path"]),
                        "eval": str(m.at[j, "path"]),
                        "eval_split": str(m.at[j, "split"]),
                        "row": int(i),
                    }
                )
        if on_overlap != "warn":
            for o in overlap_pairs:
                add(
                    o["row"],
                    "overlap",
                    f"same content (sha1) as {o['eval_split']} image {o['eval']}; a training "
                    "image must not appear in an evaluation split",
                )

    bad_rows = sorted({p["row"] for p in problems})
    kept = m.drop(index=bad_rows)
    counts = {
        str(s): {
            names[c]: int(n)
            for c, n in g["label"].astype(int).value_counts().sort_index().items()
            if 0 <= c < num_classes
        }
        for s, g in kept.groupby("split", sort=True)
    }
    empty = {s: [n for n in names if n not in c] for s, c in counts.items()}
    empty = {s: v for s, v in empty.items() if v}
    warnings: list[str] = []
    if "train" not in counts:
        warnings.append("no 'train' split")
    if require_all_classes and "train" in empty:
        msg = f"classes without training images: {empty['train']} (num_classes={num_classes})"
        if on_bad == "raise":
            problems.append(
                {
                    "row": -1,
                    "path": "<dataset>",
                    "split": "train",
                    "kind": "empty_class",
                    "detail": msg + "; expected every class in train/ (or set data.num_classes)",
                }
            )
        else:
            warnings.append(msg)
    for s, v in empty.items():
        if s != "train":
            warnings.append(f"split {s!r} has no images of {v}")
    if overlap_pairs and on_overlap == "warn":
        warnings.append(f"{len(overlap_pairs)} training image(s) have the same content as an evaluation image")

    report: dict[str, Any] = {
        "rows_in": n_in,
        "num_classes": num_classes,
        "on_bad": on_bad,
        "checked_images": check_images,
        "problems_total": len(problems),
        "problems_by_kind": dict(Counter(p["kind"] for p in problems)),
        "problems": problems[:200],
        "converted_to_rgb": dict(converted),
        "overlap_train_eval": len(overlap_pairs),
        "overlap_examples": overlap_pairs[:20],
        "duplicate_paths": int(dup.sum()),
        "empty_classes": empty,
        "warnings": warnings,
    }
    if problems and on_bad == "raise":
        raise DatasetError(_format_problems(problems, n_in))
    kept = kept.reset_index(drop=True)
    skipped = [{k: p[k] for k in ("path", "split", "kind", "detail")} for p in problems if p["row"] >= 0]
    report.update(
        rows_out=len(kept),
        dropped=n_in - len(kept),
        split_counts={str(s): int(n) for s, n in kept["split"].value_counts().sort_index().items()},
        class_counts=counts,
        skipped=skipped[:MAX_REPORTED_SKIPPED],  # pandas copies attrs with every frame: the list is capped
        skipped_total=len(skipped),
        skipped_by_kind=dict(Counter(p["kind"] for p in skipped)),
        **_cross_split_duplicates(kept),
    )
    kept.attrs = dict(manifest.attrs)
    kept.attrs["validation"] = report
    return kept, report


def _cross_split_duplicates(m: pd.DataFrame, examples: int = 20) -> dict[str, Any]:
    """Images with the same content (sha1) in two or more splits of ``m``: count, count per split pair, examples."""
    has = m[m["sha1"].notna()] if "sha1" in m.columns else m.iloc[:0]
    if has.empty:
        return {"cross_split_duplicates": 0, "cross_split_pairs": {}, "cross_split_examples": []}
    n_splits = has.groupby("sha1")["split"].nunique()
    shared = n_splits[n_splits > 1].index
    groups = has[has["sha1"].isin(shared)].groupby("sha1", sort=False)
    pairs: Counter = Counter()
    ex: list[dict[str, Any]] = []
    for sha, g in groups:
        splits = sorted(g["split"].astype(str).unique())
        for a_i, a in enumerate(splits):
            for b in splits[a_i + 1 :]:
                pairs[f"{a}~{b}"] += 1
        if len(ex) < examples:
            paths = {s: sorted(g.loc[g["split"] == s, "path"].astype(str)) for s in splits}
            ex.append({"sha1": str(sha), "paths": paths})
    return {"cross_split_duplicates": len(shared), "cross_split_pairs": dict(sorted(pairs.items())),
            "cross_split_examples": ex}  # fmt: skip


def validation_summary(report: dict[str, Any]) -> str:
    """One line for stdout: images per split, files skipped (by reason), images shared across splits, warnings."""
    splits = report.get("split_counts") or {s: sum(c.values()) for s, c in report.get("class_counts", {}).items()}
    name = report.get("dataset", "data")
    line = f"{name}: {sum(splits.values())} images (" + ", ".join(f"{s} {n}" for s, n in splits.items()) + ")"
    line += f", {report.get('num_classes', '?')} classes"
    skipped = report.get("skipped_by_kind") or {}
    if skipped:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
        line += f"; skipped {sum(skipped.values())} file(s) ({kinds})"
    dup = report.get("cross_split_duplicates", 0)
    if dup:
        pairs = ", ".join(f"{k} {v}" for k, v in report.get("cross_split_pairs", {}).items())
        line += f"; {dup} image(s) with the same content in two splits ({pairs})"
    if report.get("converted_to_rgb"):
        line += f"; {sum(report['converted_to_rgb'].values())} converted to RGB on load"
    other = [w for w in report.get("warnings", []) if "same content" not in w]
    if other:
        line += f"; {len(other)} warning(s): " + "; ".join(other[:3])
    return line


def write_validation_report(manifest: pd.DataFrame | dict[str, Any], folder: str | Path,
                            name: str = "validation.json") -> Path:  # fmt: skip
    """Write the validation report of ``manifest`` (``attrs["validation"]``, or a report dict) as
    ``<folder>/validation.json``: counts per split and class, skipped files with their reasons, images with the same
    content in two splits, images converted to RGB, warnings.

    A manifest loaded without validation gets a report of its counts only (``"validated": false``).
    """
    from ..utils import atomic_write_json

    if isinstance(manifest, dict):
        report = dict(manifest)
    elif manifest.attrs.get("validation") is not None:
        report = dict(manifest.attrs["validation"])
    else:
        counts = {
            str(s): {str(n): int(c) for n, c in g["label_name"].value_counts().sort_index().items()}
            for s, g in manifest.groupby("split", sort=True)
        }
        report = {"validated": False, "rows_out": len(manifest), "class_counts": counts,
                  "split_counts": {s: sum(c.values()) for s, c in counts.items()}}  # fmt: skip
    if not isinstance(manifest, dict):
        for key in ("dataset", "data_root"):
            if key in manifest.attrs:
                report.setdefault(key, manifest.attrs[key])
    report.setdefault("validated", True)
    return atomic_write_json(Path(folder) / name, report)


# ============================================================================= registered adapters
# One decorated function per dataset, ``adapter(data_cfg, seed=0, cache_dir=None) -> manifest``: ``data_cfg`` is a
# :class:`orsalib.config.DataConfig` (``data_root``, ``num_classes``, ``label_map``; SynthFER's sizes), ``seed`` the
# generation seed of generated datasets, ``cache_dir`` where decoded images may be stored (None = the default
# cache). Extra facts go to ``manifest.attrs``. :func:`build_source` / :func:`load_manifest` then drop contempt for
# 7-class problems and fix dtypes and paths. Metadata (what ``orsa check`` and the docs show):
#   description    one line: what the dataset is, which layouts are read (data/README.md has a tree for each)
#   needs_root     data.data_root is required (False: generated)
#   native_splits  the dataset defines its own train / evaluation split (False: the user's folders decide)
#   emotions       number of emotion classes it is labelled with (7 or 8; None: as the folders say)
#   num_classes    the data.num_classes the name requires (affectnet7 / affectnet8); None: 7 or 8 (7 drops contempt)
#   label_map      data.label_map (folder or id -> emotion) is honoured
#   ground_truth   rows carry ground-truth landmarks and parsing maps (the ``oracle`` prior source works)
@register_dataset(
    "synthfer",
    description="SynthFER, the embedded default: procedurally drawn faces with ground-truth landmarks and parsing "
    "maps, generated on first use (train, valid, valid_occluded)",
    needs_root=False,
    native_splits=True,
    emotions=None,
    num_classes=None,
    label_map=False,
    ground_truth=True,
)
def synthfer_manifest(data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """SynthFER of ``data_cfg`` (sizes, class count, occlusion probability; ``data_root`` "" = the cache folder)."""
    from .synthfer import synthfer_from_config

    return synthfer_from_config(data_cfg, seed=seed)


#: the metadata every photograph dataset shares (a folder to read, no ground-truth priors)
_PHOTOS: dict[str, Any] = dict(needs_root=True, ground_truth=False)


@register_dataset(
    "rafdb",
    description="RAF-DB basic: native list_patition_label.txt + Image/aligned (train/test), or an ImageFolder",
    native_splits=True, emotions=7, num_classes=None, label_map=True, **_PHOTOS,
)  # fmt: skip
def rafdb_manifest(data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """RAF-DB (:func:`load_rafdb`)."""
    return load_rafdb(data_cfg.data_root, data_cfg.label_map or None)


def _affectnet(data_cfg: Any) -> pd.DataFrame:
    m, info = load_affectnet(data_cfg.data_root, data_cfg.label_map or None)
    m.attrs.update(info)
    return m


@register_dataset(
    "affectnet7",
    description="AffectNet, 7 basic expressions (contempt dropped): training.csv/validation.csv, or an ImageFolder",
    native_splits=True, emotions=8, num_classes=7, label_map=True, **_PHOTOS,
)  # fmt: skip
def affectnet7_manifest(data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """AffectNet-7 (:func:`load_affectnet`; contempt is dropped afterwards)."""
    return _affectnet(data_cfg)


@register_dataset(
    "affectnet8",
    description="AffectNet, 7 basic expressions + contempt: training.csv/validation.csv, or an ImageFolder",
    native_splits=True, emotions=8, num_classes=8, label_map=True, **_PHOTOS,
)  # fmt: skip
def affectnet8_manifest(data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """AffectNet-8 (:func:`load_affectnet`)."""
    return _affectnet(data_cfg)


@register_dataset(
    "occlufer",
    description="Occlu-FER (ORSANet): ImageFolder train/valid (or test) with 8 named classes",
    native_splits=True, emotions=8, num_classes=None, label_map=True, **_PHOTOS,
)  # fmt: skip
def occlufer_manifest(data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """Occlu-FER (:func:`load_occlufer`)."""
    return load_occlufer(data_cfg.data_root, data_cfg.label_map or None)


@register_dataset(
    "fer2013",
    description="FER2013: fer2013.csv (48x48 pixels, decoded to PNG once; Training/PublicTest/PrivateTest) or folders",
    native_splits=True, emotions=7, num_classes=None, label_map=True, **_PHOTOS,
)  # fmt: skip
def fer2013_manifest(data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """FER2013 (:func:`load_fer2013`)."""
    return load_fer2013(data_cfg.data_root, data_cfg.label_map or None, cache_dir)


@register_dataset(
    "ferplus",
    description="FERPlus: fer2013new.csv majority votes joined with fer2013.csv pixels or the FER2013Train/... images",
    native_splits=True, emotions=8, num_classes=None, label_map=False, **_PHOTOS,
)  # fmt: skip
def ferplus_manifest(data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """FERPlus (:func:`load_ferplus`)."""
    m, info = load_ferplus(data_cfg.data_root, cache_dir)
    m.attrs.update(info)
    return m


@register_dataset(
    "imagefolder",
    description="any root/<split>/<class>/ tree (emotion names or aliases as class folders; data.label_map for others)",
    native_splits=False, emotions=None, num_classes=None, label_map=True, **_PHOTOS,
)  # fmt: skip
def imagefolder_manifest(data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """A generic ImageFolder tree (:func:`load_imagefolder`)."""
    return load_imagefolder(data_cfg.data_root, data_cfg.label_map or None)


# ============================================================================= entry points
def _finalize(m: pd.DataFrame, num_classes: int, source: str) -> pd.DataFrame:
    """Drop contempt for 7-class problems, fix dtypes, absolute paths, index 0..N-1."""
    m = m.copy()
    if "source" not in m.columns:
        m["source"] = source
    m["label"] = pd.to_numeric(m["label"], errors="coerce").fillna(-1).astype("int64")
    dropped = 0
    if num_classes == 7:
        contempt = m["label"] == L.EMOTIONS.index("contempt")
        dropped = int(contempt.sum())
        m = m[~contempt]
    m["path"] = [str(Path(p).expanduser().absolute()) for p in m["path"]]
    m = m.reset_index(drop=True)
    m.attrs["dropped_contempt"] = dropped
    return m


def _run_adapter(dataset: str, data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """Look ``dataset`` up in the registry, check the class count and root it needs, run it, finalize."""
    try:
        entry = DATASETS.entry(dataset)
    except ValueError as e:
        raise DatasetError(str(e)) from None
    num_classes, data_root = data_cfg.num_classes, data_cfg.data_root
    fixed = entry.meta.get("num_classes")
    if fixed is not None and fixed != num_classes:
        others = [n for n in DATASETS.names() if DATASETS.meta(n).get("num_classes") == num_classes]
        alt = f" (or use {' / '.join(others)})" if others else ""
        raise DatasetError(
            f"data.dataset={dataset!r} is a {fixed}-class problem but data.num_classes={num_classes}; "
            f"set data.num_classes={fixed}{alt}"
        )
    if entry.meta.get("needs_root", True) and not data_root:
        raise DatasetError(f"data.dataset={dataset!r} needs data.data_root; see data/README.md")
    m = entry.obj(data_cfg, seed=seed, cache_dir=cache_dir)
    if not isinstance(m, pd.DataFrame):
        raise DatasetError(
            f"the adapter of dataset {dataset!r} returned {type(m).__name__}; expected a manifest DataFrame "
            f"with columns {list(REQUIRED_COLUMNS)}"
        )
    info = dict(m.attrs)
    m = _finalize(m, num_classes, dataset)
    m.attrs.update(info)
    m.attrs["dataset"] = dataset
    m.attrs["data_root"] = str(data_root)
    return m


def build_source(
    dataset: str,
    data_root: str | Path = "",
    *,
    num_classes: int = 7,
    label_map: dict | None = None,
    cache_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Run the adapter of a registered dataset (``orsalib.registry.DATASETS``), without validation.

    SynthFER is built with the :class:`~orsalib.config.DataConfig` defaults here; :func:`load_manifest` takes a
    whole config (its sizes) and validates.

    Raises:
        DatasetError: unknown dataset (the message lists the registered ones), a class count the dataset does not
            have, a missing ``data_root``, or a bad layout.
    """
    from ..config import DataConfig

    cfg = DataConfig(dataset=dataset, data_root=str(data_root or ""), num_classes=num_classes,
                     label_map=dict(label_map or {}))  # fmt: skip
    return _run_adapter(dataset, cfg, cache_dir=cache_dir)


def load_manifest(data_cfg: Any, seed: int = 0, validate: bool = True, **validate_kw: Any) -> pd.DataFrame:
    """The manifest of ``data_cfg.dataset`` (its registered adapter; SynthFER is generated on first use), validated.

    Args:
        data_cfg: an :class:`orsalib.config.DataConfig`.
        seed: SynthFER generation seed.
        validate: run :func:`validate_manifest` with ``on_bad=data_cfg.on_bad``; the report goes to
            ``attrs["validation"]`` (:func:`validation_summary` gives its line, :func:`write_validation_report`
            writes it as ``validation.json``).
        **validate_kw: forwarded to :func:`validate_manifest` (``on_overlap``, ``cache_file``, ...).

    Raises:
        DatasetError: unknown dataset, bad layout, or (``on_bad="raise"``) any problem found by the validation.
    """
    m = _run_adapter(data_cfg.dataset, data_cfg, seed=seed)
    if validate:
        validate_kw.setdefault("num_classes", data_cfg.num_classes)
        m, report = validate_manifest(m, on_bad=data_cfg.on_bad, **validate_kw)
        report.update(dataset=data_cfg.dataset, data_root=str(data_cfg.data_root))
    return m


def save_manifest(manifest: pd.DataFrame, path: str | Path, report: dict | None = None) -> Path:
    """Write the manifest CSV atomically; the validation report (given or in ``attrs``) goes beside it as
    ``<stem>.validation.json``."""
    from ..utils import atomic_write_json, atomic_write_text

    path = Path(path)
    atomic_write_text(path, manifest.to_csv(index=False))
    report = report if report is not None else manifest.attrs.get("validation")
    if report is not None:
        atomic_write_json(path.with_name(path.stem + ".validation.json"), report)
    return path


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest CSV written by :func:`save_manifest` (checks the contract columns)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"manifest {str(path)!r} does not exist; build it with orsalib.data.sources.load_manifest")
    m = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = [c for c in REQUIRED_COLUMNS if c not in m.columns]
    if missing:
        raise DatasetError(f"manifest {path} lacks columns {missing}; required: {list(REQUIRED_COLUMNS)}")
    m["label"] = m["label"].astype("int64")
    return m


def oracle_reader(manifest: pd.DataFrame, root: str | Path | None = None):
    """Ground-truth priors of a SynthFER-style manifest: ``read(row) -> (landmarks (68, 2) | None, parsing | None)``.

    Landmarks come from ``<root>/landmarks.npy`` at ``landmarks_index`` (root: given, else the folder above the
    ``parsing/`` folder of ``parsing_path``, else three levels above the image); parsing maps from
    ``parsing_path``. Rows or manifests without these columns give ``None``.
    """
    lms = None
    if "landmarks_index" in manifest.columns and len(manifest):
        candidates = [Path(root)] if root else []
        if "parsing_path" in manifest.columns:
            candidates.append(Path(str(manifest["parsing_path"].iloc[0])).parent.parent)
        candidates.append(Path(str(manifest["path"].iloc[0])).parents[2])
        for c in candidates:
            if (c / "landmarks.npy").is_file():
                lms = np.load(c / "landmarks.npy", mmap_mode="r")
                break

    def read(i: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        lm = par = None
        if lms is not None:
            k = manifest.at[i, "landmarks_index"]
            if pd.notna(k) and 0 <= int(k) < len(lms):
                lm = np.array(lms[int(k)], dtype=np.float32)
        if "parsing_path" in manifest.columns:
            pp = manifest.at[i, "parsing_path"]
            if isinstance(pp, str) and pp and os.path.isfile(pp):
                with Image.open(pp) as im:
                    par = np.array(im)
        return lm, par

    return read
