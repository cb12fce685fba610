"""Figures (plotly) and the writers every notebook ends with: one palette, one style (:mod:`orsalib.viz.style`).

- :mod:`orsalib.viz.core`: ``save_figure`` / ``save_table`` and the common figures (confusion, learning curves, bars);
- :mod:`orsalib.viz.static`: the static PNG copy of a figure (matplotlib; no kaleido, no browser) and ``show``,
  which displays a figure with BOTH the plotly JSON (interactive in JupyterLab) and the PNG (nbconvert, GitHub);
- :mod:`orsalib.viz.style`: the plot conventions (accuracy in %, whole epochs, best epoch, chance/majority lines,
  titles with model · dataset · split · profile, error bars only with >= 2 seeds, the smoke banner);
- :mod:`orsalib.viz.dataset`: sample grids with landmark/parsing overlays, class and occluder statistics;
- :mod:`orsalib.viz.transfer`, :mod:`orsalib.viz.ablations`: the figures of the studies (Tables 6, 7, 8);
- :mod:`orsalib.viz.index`: ``outputs/<run_name>/index.html``, every table and figure of a run, one line each.

``from orsalib import viz; viz.save_figure(...); viz.show(fig)``. Inside a Jupyter kernel, importing this package
also makes the plotly renderer ``"orsa"`` (plotly JSON + PNG) the default, so a bare ``fig`` or ``fig.show()`` travels
too.
"""

from .core import bar_table, confusion_figure, learning_curves, read_artefacts, save_figure, save_table
from .index import headline, write_run_index
from .static import FigureDisplay, figure_bundle, in_kernel, register_renderer, render_png, show
from .style import PARSING_COLORS, PARSING_NAMES, VARIANT_COLORS, title

register_renderer(make_default=in_kernel())

__all__ = [
    "PARSING_COLORS",
    "PARSING_NAMES",
    "VARIANT_COLORS",
    "FigureDisplay",
    "bar_table",
    "confusion_figure",
    "figure_bundle",
    "headline",
    "learning_curves",
    "read_artefacts",
    "render_png",
    "save_figure",
    "save_table",
    "show",
    "title",
    "write_run_index",
]
