"""Canonical emotion names/order and per-dataset label maps.

The workbook's canonical order is FER2013's seven basic expressions, with contempt appended as the 8th class:
index 0..7 = anger, disgust, fear, happiness, sadness, surprise, neutral, contempt.
Every adapter converts its native ids to this order; tables always print names, never ids.

The face-parsing labels are LaPa's 11 classes (:data:`PARSING_NAMES`, label id = position) with the one palette every
parsing map of the workbook is drawn in (:data:`PARSING_COLORS`, RGB per label id; :mod:`orsalib.viz` uses it).
"""

from __future__ import annotations

import numpy as np

EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral", "contempt")
EMOTIONS_7: tuple[str, ...] = EMOTIONS[:7]

# Native id -> canonical name, per dataset.
RAFDB_LABELS: dict[int, str] = {  # basic/EmoLabel/list_patition_label.txt, 1-based
    1: "surprise", 2: "fear", 3: "disgust", 4: "happiness", 5: "sadness", 6: "anger", 7: "neutral",
}
AFFECTNET_LABELS: dict[int, str] = {  # manual annotations, 0-based; >= 8 are not expressions
    0: "neutral", 1: "happiness", 2: "sadness", 3: "surprise", 4: "fear", 5: "disgust", 6: "anger", 7: "contempt",
}
FER2013_LABELS: dict[int, str] = {  # fer2013.csv 'emotion'
    0: "anger", 1: "disgust", 2: "fear", 3: "happiness", 4: "sadness", 5: "surprise", 6: "neutral",
}

# Folder-name aliases met in the wild (ImageFolder layouts of the released codes, FER2013 folders, ...).
ALIASES: dict[str, str] = {
    "angry": "anger", "anger": "anger", "ang": "anger",
    "disgust": "disgust", "disgusted": "disgust", "dis": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear",
    "happy": "happiness", "happiness": "happiness", "hap": "happiness", "joy": "happiness",
    "sad": "sadness", "sadness": "sadness",
    "surprise": "surprise", "surprised": "surprise", "sur": "surprise",
    "neutral": "neutral", "neu": "neutral",
    "contempt": "contempt", "con": "contempt",
}


def emotions(num_classes: int) -> tuple[str, ...]:
    """The canonical class names for a 7- or 8-class problem."""
    if num_classes not in (7, 8):
        raise ValueError(f"FER num_classes must be 7 or 8, got {num_classes}")
    return EMOTIONS[:num_classes]


def canonical_name(name: str) -> str:
    """Map a folder/label name (any case, common aliases) to the canonical emotion name."""
    key = str(name).strip().lower()
    if key.isdigit() and len(key) == 1:
        raise ValueError(
            f"label {name!r} is a bare digit; numeric folder names need an explicit label map "
            f"(e.g. FER2013 folders 0..6 -> {FER2013_LABELS})"
        )
    if key not in ALIASES:
        raise ValueError(f"unknown emotion label {name!r}; expected one of {sorted(set(ALIASES))}")
    return ALIASES[key]


def index_of(name: str, num_classes: int = 8) -> int:
    """Canonical index of an emotion name (after alias resolution)."""
    canon = canonical_name(name)
    names = emotions(num_classes)
    if canon not in names:
        raise ValueError(f"label {name!r} ({canon}) is not part of the {num_classes}-class problem {names}")
    return names.index(canon)


# FERPlus (fer2013new.csv): the 8 emotion vote columns, then the two non-emotion columns.
FERPLUS_EMOTION_COLUMNS: dict[str, str] = {
    "neutral": "neutral",
    "happiness": "happiness",
    "surprise": "surprise",
    "sadness": "sadness",
    "anger": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "contempt": "contempt",
}
FERPLUS_OTHER_COLUMNS: tuple[str, ...] = ("unknown", "NF")

# Occlu-FER (ORSANet, ACM MM 2025): 8 classes, the 7 basic expressions + contempt, released as an ImageFolder of
# named class folders. A 7-class run drops contempt. Numeric class folders need an explicit ``data.label_map``.
OCCLUFER_CLASSES: tuple[str, ...] = EMOTIONS


def imagefolder_order(folder_names: list[str] | tuple[str, ...]) -> dict[int, str]:
    """torchvision ``ImageFolder`` class index -> canonical name for named class folders.

    ``ImageFolder`` numbers classes by the sorted folder names, so a checkpoint trained by a released code on
    folders ``angry, disgust, ...`` uses that order; this map converts its logits to the canonical order.
    """
    return {i: canonical_name(n) for i, n in enumerate(sorted(folder_names))}


# LaPa face parsing: 11 classes, label id = position (SynthFER's maps, SegFace, the landmark rasteriser).
PARSING_NAMES: tuple[str, ...] = (
    "background", "skin", "left brow", "right brow", "left eye", "right eye", "nose", "upper lip", "inner mouth",
    "lower lip", "hair",
)  # fmt: skip
#: the one LaPa palette of the workbook: RGB (uint8) per label id, in :data:`PARSING_NAMES` order.
PARSING_COLORS: np.ndarray = np.array(
    [
        [0, 0, 0], [255, 204, 153], [255, 0, 0], [255, 128, 0], [0, 0, 255], [0, 160, 255], [0, 200, 0],
        [255, 0, 255], [128, 0, 128], [200, 0, 100], [120, 80, 40],
    ],
    dtype=np.uint8,
)  # fmt: skip
PARSING_COLORS.setflags(write=False)  # shared by every figure: nobody recolours it in place
