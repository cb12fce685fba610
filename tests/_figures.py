"""How much of a figure is drawn, read from plotly's own PNG export."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from orsalib.viz.export import static_image


def ink(fig) -> float:
    """Fraction of pixels of plotly's PNG of ``fig`` that are not the background white.

    Where plotly cannot export here (no browser for kaleido), the figure must serialise and hold a trace with data
    (1.0), else 0.0.
    """
    png = static_image(fig, scale=1.0)
    if png is None:
        fig.to_json()
        return 1.0 if any(len(t.to_plotly_json()) > 1 for t in fig.data) else 0.0
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    return float((np.abs(a - 255).sum(-1) > 30).mean())
