"""Which dataset a folder holds, from its layout (``orsa reproduce --data-root DIR`` without ``--dataset``).

Layouts recognised (data/README.md has the trees):

- ``rafdb``: ``[basic/]EmoLabel/list_patition_label.txt`` (the native RAF-DB basic layout);
- ``affectnet8``: ``training.csv`` / ``validation.csv`` (also under ``Manually_Annotated_file_lists/``);
- ``ferplus``: ``fer2013new.csv``; ``fer2013``: ``fer2013.csv``;
- ``synthfer``: a SynthFER build (its ``params.json`` and ``manifest.csv``);
- ``imagefolder``: ``<split>/<class>/`` image folders (``train`` and ``valid``/``val``/``test``).

Detection only reads the folder. When nothing matches, :class:`DetectError` says what was looked for.
"""

from __future__ import annotations

import json
from pathlib import Path

from .sources import DatasetError
from .transforms import IMAGE_EXTENSIONS

SPLIT_FOLDERS: tuple[str, ...] = ("train", "valid", "val", "test", "training", "validation")


class DetectError(DatasetError):
    """The folder's layout matches no known dataset (the message lists the layouts looked for)."""


def _first(root: Path, candidates: tuple[str, ...]) -> Path | None:
    for c in candidates:
        p = root / c
        if p.exists():
            return p
    return None


def is_synthfer_build(root: str | Path) -> bool:
    """Whether ``root`` is a folder written by the SynthFER generator."""
    p = Path(root) / "params.json"
    if not p.is_file() or not (Path(root) / "manifest.csv").is_file():
        return False
    try:
        params = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(params, dict) and {"generator_version", "train_per_class", "occlusion_prob"} <= set(params)


def _has_images(folder: Path) -> bool:
    return any(f.suffix.lower() in IMAGE_EXTENSIONS for f in folder.iterdir() if f.is_file())


def _is_imagefolder(root: Path) -> bool:
    splits = [d for d in root.iterdir() if d.is_dir() and d.name.lower() in SPLIT_FOLDERS]
    if not splits:
        return False
    return any(_has_images(c) for s in splits for c in s.iterdir() if c.is_dir())


def detect_dataset(root: str | Path) -> str:
    """The registered dataset name whose layout ``root`` has.

    Raises:
        DetectError: ``root`` is missing, not a folder, or holds no known layout.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DetectError(f"data root {str(root)!r} is not a folder; expected a dataset folder (see data/README.md)")
    if _first(root, ("basic/EmoLabel/list_patition_label.txt", "EmoLabel/list_patition_label.txt",
                     "list_patition_label.txt")):  # fmt: skip
        return "rafdb"
    if _first(root, ("training.csv", "validation.csv", "Manually_Annotated_file_lists/training.csv")):
        return "affectnet8"
    if _first(root, ("fer2013new.csv", "FERPlus/fer2013new.csv")):
        return "ferplus"
    if _first(root, ("fer2013.csv", "fer2013/fer2013.csv")):
        return "fer2013"
    if is_synthfer_build(root):
        return "synthfer"
    if _is_imagefolder(root):
        return "imagefolder"
    raise DetectError(
        f"cannot tell which dataset {str(root)!r} holds: expected RAF-DB's EmoLabel/list_patition_label.txt, "
        "AffectNet's training.csv/validation.csv, fer2013.csv, fer2013new.csv (FERPlus), or <split>/<class>/ image "
        "folders (train + valid or test); name it with --dataset (see data/README.md)"
    )


__all__ = ["DetectError", "SPLIT_FOLDERS", "detect_dataset", "is_synthfer_build"]
