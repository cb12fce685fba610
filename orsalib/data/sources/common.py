"""The manifest's shared pieces: its columns and split names, :class:`DatasetError`, label resolution, and the
ImageFolder scan every folder-of-images adapter uses (docs/contracts.md, "Manifest").
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .. import labels as L
from ..transforms import IMAGE_EXTENSIONS

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
