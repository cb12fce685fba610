"""Figures (plotly) and the writers every notebook ends with: one palette, one style (:mod:`orsalib.viz.style`).

- :mod:`orsalib.viz.core`: ``save_figure`` / ``save_table`` and the common figures (confusion, learning curves, bars);
- :mod:`orsalib.viz.export`: ``show`` (live plotly figures in JupyterLab, an HTML version for nbconvert) and the
  static PNG/SVG copies plotly writes itself (kaleido);
- :mod:`orsalib.viz.style`: the plot conventions (accuracy in %, whole epochs, best epoch, chance/majority lines,
  titles with model · dataset · split · profile, error bars only with >= 2 seeds, the smoke banner);
- :mod:`orsalib.viz.dataset`: sample grids with landmark/parsing overlays, class and occluder statistics;
- :mod:`orsalib.viz.transfer`, :mod:`orsalib.viz.ablations`: the figures of the studies (Tables 6, 7, 8);
- :mod:`orsalib.viz.analysis`: the figures of the evaluation and of looking inside a model (accuracy vs occlusion,
  attention / Grad-CAM overlays, t-SNE, RAN region weights, ``orsa predict``'s overlay), drawn from the arrays and
  tables ``engine/`` and ``analysis/`` return;
- :mod:`orsalib.viz.index`: ``outputs/<run_name>/index.html``, every table and figure of a run, one line each.

``from orsalib import viz; viz.save_figure(...); viz.show(fig)``. Importing the package changes no plotly setting.
"""

from .core import bar_table, confusion_figure, learning_curves, read_artefacts, save_figure, save_table
from .export import PLOTLY_MIME, show, static_image
from .index import headline, write_run_index
from .style import PARSING_COLORS, PARSING_NAMES, VARIANT_COLORS, title

__all__ = [
    "PARSING_COLORS",
    "PARSING_NAMES",
    "PLOTLY_MIME",
    "VARIANT_COLORS",
    "bar_table",
    "confusion_figure",
    "headline",
    "learning_curves",
    "read_artefacts",
    "save_figure",
    "save_table",
    "show",
    "static_image",
    "title",
    "write_run_index",
]
