"""Showing and exporting plotly figures: live figures in notebooks, static copies written by plotly itself.

- :func:`show`: displays figures live (``application/vnd.plotly.v1+json``, drawn by JupyterLab) together with an
  HTML version that nbconvert's HTML and other front ends draw (plotly.js from its CDN), sized to the cell;
- :func:`static_image`: PNG/SVG bytes from plotly's own exporter (kaleido, which drives a Chrome/Chromium);
  ``None`` where no browser is available, so callers keep the HTML alone.
"""

from __future__ import annotations

import atexit
import logging
import warnings
from pathlib import Path
from typing import Any

PLOTLY_MIME = "application/vnd.plotly.v1+json"
#: the plotly renderer of :func:`show`: the live figure for JupyterLab plus an HTML div for nbconvert and others
RENDERER = "plotly_mimetype+notebook_connected"
DEFAULT_SCALE = 1.5  # pixel density of the PNG relative to the figure's plotly size

_state: dict[str, Any] = {"server": None, "reason": ""}


def fit_to_cell(fig: Any) -> Any:
    """A copy of ``fig`` that takes the notebook cell's width (a fixed ``layout.width`` dropped; height kept)."""
    import plotly.graph_objects as go

    out = go.Figure(fig)
    out.update_layout(width=None, autosize=True)
    return out


def show(*figs: Any) -> None:
    """Display figures live (one output each, sized to the cell); ``None`` figures are skipped."""
    import copy

    import plotly.io as pio
    from IPython.display import display

    parts = []
    for name in RENDERER.split("+"):  # the renderers' own bundles, without their per-call activation script
        r = copy.copy(pio.renderers[name])
        r.config = {"displaylogo": False, "responsive": True}
        parts.append(r)
    for fig in figs:
        if fig is not None:
            d = fit_to_cell(fig).to_dict()
            display({k: v for r in parts for k, v in r.to_mimebundle(d).items()}, raw=True)


def _probe(timeout: float = 60.0) -> str:
    """Export a blank figure through the started server; "" when it worked in time, else why not."""
    import threading

    import plotly.graph_objects as go
    import plotly.io as pio

    out: list[str] = []

    def run() -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pio.to_image(go.Figure(), format="png", width=20, height=20)
            out.append("")
        except Exception as e:  # noqa: BLE001 - reported as the reason
            out.append(f"{type(e).__name__}: {e}"[:200])

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    return out[0] if out else f"the browser did not answer within {timeout:.0f} s"


def _start_server() -> bool:
    """Start kaleido's browser once per process (later exports reuse it); False with the reason when it can't."""
    if _state["server"] is not None:
        return _state["server"]
    _state["server"] = False
    try:
        import kaleido
        from choreographer.browsers.chromium import Chromium

        browser = Chromium.find_browser(skip_local=False)
        if not browser or not Path(browser).exists():
            _state["reason"] = "no Chrome/Chromium for kaleido (apt-get install chromium, or plotly_get_chrome)"
            return False
        logging.getLogger("choreographer").setLevel(logging.ERROR)
        logging.getLogger("kaleido").setLevel(logging.ERROR)
        kaleido.start_sync_server(silence_warnings=True)
        atexit.register(kaleido.stop_sync_server, silence_warnings=True)
        _state["reason"] = _probe()
        _state["server"] = not _state["reason"]
    except Exception as e:  # noqa: BLE001 - no kaleido or no browser: static copies are optional
        _state["reason"] = f"{type(e).__name__}: {e}"[:200]
    return _state["server"]


def export_unavailable() -> str:
    """Why plotly cannot write static images here ("" when it can)."""
    return "" if _start_server() else _state["reason"]


def static_image(fig: Any, fmt: str = "png", scale: float = DEFAULT_SCALE) -> bytes | None:
    """PNG or SVG bytes of a figure written by plotly (kaleido); ``None`` when plotly has no browser to draw with."""
    if not _start_server():
        return None
    import plotly.io as pio

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pio.to_image(fig, format=fmt, scale=scale if fmt == "png" else None)
    except Exception as e:  # noqa: BLE001 - a failed static copy must not break a notebook
        _state["reason"] = f"{type(e).__name__}: {e}"[:200]
        return None


__all__ = ["DEFAULT_SCALE", "PLOTLY_MIME", "RENDERER", "export_unavailable", "fit_to_cell", "show", "static_image"]
