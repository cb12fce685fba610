"""Adapters of the CSV pixel-row family: FER2013 (``fer2013.csv``) and FERPlus (its majority votes), decoded once
into a PNG cache (layouts in data/README.md).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .. import labels as L
from .common import SPLIT_ALIASES, DatasetError, _find, _frame, _require_dir, _resolve_label, scan_imagefolder


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
    from ...utils import make_temp_dir

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
    from ...paths import CACHE_DIR

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
