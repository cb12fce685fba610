"""One palette and one figure style for every figure of the workbook.

- ``PARSING_COLORS`` / ``PARSING_NAMES``: the 11 LaPa classes (background, skin, brows, eyes, nose, lips, inner mouth,
  hair), used by every parsing overlay.
- ``VARIANT_COLORS``: the colours of compared variants (with / without DARELoss, ORSANet / baseline ...).
"""

from __future__ import annotations

import numpy as np

# LaPa 11 classes: background, skin, l/r brow, l/r eye, nose, upper lip, inner mouth, lower lip, hair.
PARSING_COLORS: np.ndarray = np.array(
    [
        [0, 0, 0],
        [255, 204, 153],
        [255, 0, 0],
        [255, 128, 0],
        [0, 0, 255],
        [0, 160, 255],
        [0, 200, 0],
        [255, 0, 255],
        [128, 0, 128],
        [200, 0, 100],
        [120, 80, 40],
    ],
    dtype=np.uint8,
)
PARSING_NAMES: tuple[str, ...] = (
    "background",
    "skin",
    "left brow",
    "right brow",
    "left eye",
    "right eye",
    "nose",
    "upper lip",
    "inner mouth",
    "lower lip",
    "hair",
)

#: compared variants: the reference in grey, the variant under test in red.
VARIANT_COLORS: dict[str, str] = {"without": "#7f7f7f", "with": "#d62728"}

__all__ = ["PARSING_COLORS", "PARSING_NAMES", "VARIANT_COLORS"]
