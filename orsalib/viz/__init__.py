"""Figures (plotly) and the writers every notebook ends with: one palette, one style (:mod:`orsalib.viz.style`).

- :mod:`orsalib.viz.core`: ``save_figure`` / ``save_table`` and the common figures (confusion, learning curves, bars);
- :mod:`orsalib.viz.dataset`: sample grids with landmark/parsing overlays, class and occluder statistics;
- :mod:`orsalib.viz.transfer`: the DARELoss transfer figures (Tables 7/8).

``from orsalib import viz; viz.save_figure(...)`` works for the core functions.
"""

from .core import bar_table, confusion_figure, learning_curves, save_figure, save_table
from .style import PARSING_COLORS, PARSING_NAMES, VARIANT_COLORS

__all__ = [
    "PARSING_COLORS",
    "PARSING_NAMES",
    "VARIANT_COLORS",
    "bar_table",
    "confusion_figure",
    "learning_curves",
    "save_figure",
    "save_table",
]
