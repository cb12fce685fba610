"""Figures that travel: plotly's static copies, live figures in notebooks, the run index, the plot conventions, headless
progress, and kernel metadata of every notebook. The slow test runs one notebook through papermill and counts the
images of its nbconvert HTML against the figures it saved."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from _figures import ink as fig_ink
from PIL import Image

from orsalib import viz
from orsalib.paths import NOTEBOOKS_DIR, run_dir
from orsalib.viz import export, style
from orsalib.viz.index import headline, write_run_index

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
KERNELSPEC = {"name": "orsa", "display_name": "Python (orsa workbook)", "language": "python"}


def _decode(png: bytes) -> Image.Image:
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    im = Image.open(io.BytesIO(png))
    im.load()
    return im


def _ink(im: Image.Image) -> float:
    """Fraction of pixels that are not the background white (something was drawn)."""
    a = np.asarray(im.convert("RGB"), dtype=np.int16)
    return float((np.abs(a - 255).sum(-1) > 30).mean())


# ----------------------------------------------------------------------------- static copies by plotly
def test_plotly_writes_the_static_copies_or_says_why_not():
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]), layout=dict(title="bars", width=400, height=300))
    png, svg = viz.static_image(fig, "png", scale=1.0), viz.static_image(fig, "svg")
    if png is None:
        assert export.export_unavailable(), "no PNG and no reason"
        pytest.skip(f"plotly cannot export here: {export.export_unavailable()}")
    im = _decode(png)
    assert (im.width, im.height) == (400, 300) and _ink(im) > 0.02
    assert b"<svg" in svg[:400]
    long = style.finish(go.Figure(go.Bar(y=[1]), layout=dict(width=600, height=300, title=style.title(
        "A title", dataset="d", split="s", profile="smoke"))), "smoke")  # three lines of title
    top = np.asarray(_decode(viz.static_image(long, scale=1.0)).convert("L"))[:4]
    assert (top > 200).all(), "the title's first line is cut at the top"


def test_without_a_browser_the_html_stands_alone(tmp_path):
    """Where kaleido finds no Chrome/Chromium, save_figure writes the HTML, no PNG, says why, and never hangs."""
    code = ("import plotly.graph_objects as go\nfrom orsalib import viz\nfrom orsalib.viz import export\n"
            "p = viz.save_figure(go.Figure(go.Bar(y=[1])), 'nobrowser', '40_bars')\n"
            "print(p.exists(), p.with_suffix('.png').exists(), 'Chrome' in export.export_unavailable())")
    env = {**os.environ, "BROWSER_PATH": str(tmp_path / "no-chrome"), "ORSA_OUTPUTS_DIR": str(tmp_path / "out")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.split() == ["True", "False", "True"], out.stderr[-2000:]


def test_every_library_figure_builder_renders():
    from orsalib.viz import priors as vp
    from orsalib.viz.analysis import overlay_figure, region_weight_bars, region_weight_figure, tsne_figure

    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    figs = [
        overlay_figure(imgs, [rng.random((3, 32, 32)), rng.random((3, 8, 8))], row_names=["att", "cam"]),
        tsne_figure(rng.random((30, 4)), rng.integers(0, 3, 30), ["a", "b", "c"], preds=rng.integers(0, 3, 30),
                    max_iter=250),
        region_weight_figure(imgs, np.tile([[0, 0, 1, 1], [0, 0, .5, .5]], (3, 1, 1)), rng.random((3, 2))),
        region_weight_bars(pd.DataFrame({"group": ["g"] * 2, "region": ["r1", "r2"], "mean_alpha": [.4, .6],
                                         "std_alpha": [.1, .1]})),
        vp.overlay_figure(list(imgs), [rng.random((68, 2))] * 3, [rng.integers(0, 11, (32, 32))] * 3),
        vp.quality_figure(pd.DataFrame({"occluder": ["all", "hand"], "miou": [.5, .4]}), "miou"),
    ]
    for fig in figs:
        assert fig_ink(fig) > 0.02


# ----------------------------------------------------------------------------- display
def test_show_displays_a_live_plotly_figure_sized_to_the_cell(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: shown.append((a, k)))
    fig = go.Figure(go.Bar(x=["a"], y=[1]), layout=dict(title="t", width=900, height=400))
    viz.show(fig, None)
    bundles = [a[0] for a, _k in shown if a and isinstance(a[0], dict) and viz.PLOTLY_MIME in a[0]]
    assert len(bundles) == 1
    live = bundles[0][viz.PLOTLY_MIME]
    assert live["data"][0]["type"] == "bar" and "width" not in live["layout"], "sized to the cell"
    assert live["layout"]["height"] == 400 and fig.layout.width == 900, "the caller's figure is left as it was"
    assert "plotly-graph-div" in bundles[0]["text/html"], "an HTML version for nbconvert"


def test_a_notebook_shows_live_plotly_figures(tmp_path):
    """A notebook run through papermill keeps, in every cell that shows a figure, the live plotly JSON."""
    from _nbfactory import make_notebook

    from orsalib import runbook

    cells = ["import plotly.graph_objects as go\nfrom orsalib import viz",
             "fig = go.Figure(go.Bar(x=['a', 'b'], y=[1, 2]), layout=dict(width=1200))\nviz.show(fig)",
             "viz.show(go.Figure(go.Scatter(y=[1, 3, 2])), go.Figure(go.Heatmap(z=[[1, 2], [3, 4]])))"]
    nb = make_notebook(tmp_path / "live.ipynb", cells)
    out = tmp_path / "live_out.ipynb"
    r = runbook.run_notebook(nb, out, {"run_name": "viz-live"}, timeout=120, env={"ORSA_HEADLESS": "1"})
    assert r.status == "ok", r.error
    executed = nbformat.read(str(out), as_version=4)
    assert list(live_figures_per_cell(executed).values()) == [1, 2]
    shown = [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "display_data"]
    assert len(shown) == 3 and all("text/html" in o.data for o in shown), "one output per figure, HTML for nbconvert"


def live_figures_per_cell(nb) -> dict[int, int]:
    """For each code cell that calls ``viz.show``: how many outputs carry a live plotly figure."""
    return {i: sum(viz.PLOTLY_MIME in o.get("data", {}) for o in c.outputs)
            for i, c in enumerate(nb.cells) if c.cell_type == "code" and "viz.show(" in c.source}


# ----------------------------------------------------------------------------- conventions
def test_learning_curves_conventions():
    hist = [{"epoch": e, "train_acc": 0.2 * e, "val_acc": [0.3, 0.5, 0.4][e - 1], "val_loss": 1.0 / e}
            for e in (1, 2, 3)]
    fig = viz.learning_curves(hist, title=style.title("Accuracy", model="m", dataset="d", split="valid",
                                                      profile="smoke"), chance=7, majority=0.25)
    assert max(v for tr in fig.data for v in tr.y if v is not None) > 1, "accuracy in %"
    assert fig.layout.yaxis.title.text == "accuracy (%)"
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tickformat == "d"
    star = [tr for tr in fig.data if tr.marker.symbol == "star"]
    assert star and star[0].x[0] == 2 and abs(star[0].y[0] - 50) < 1e-9, "best epoch marked at its value"
    hlines = sorted(round(s.y0, 2) for s in fig.layout.shapes if s.type == "line" and s.y0 == s.y1)
    assert hlines == [14.29, 25.0], "chance and majority lines"
    assert "m · d · valid · smoke profile" in fig.layout.title.text
    loss = viz.learning_curves(hist, keys=["val_loss"])
    assert loss.layout.yaxis.title.text == "loss"


def test_error_bars_only_with_two_seeds_and_smoke_banner():
    df = pd.DataFrame({"v": ["a", "b"], "acc": [50.0, 60.0], "std": [1.0, 2.0]})
    assert viz.bar_table(df, "v", "acc", error="std", n_seeds=1).data[0].error_y.array is None
    assert viz.bar_table(df, "v", "acc", error="std", n_seeds=3).data[0].error_y.array is not None
    fig = go.Figure(go.Bar(y=[1]), layout=dict(title="A title"))
    style.finish(fig, "smoke")
    style.finish(fig, "smoke")
    assert fig.layout.title.text.count(style.SMOKE_BANNER) == 1
    assert style.SMOKE_BANNER not in style.finish(go.Figure(layout=dict(title="x")), "cpu").layout.title.text


def test_landmark_dots_scale_with_the_image():
    small = style.landmark_marker(64, 140)["size"]
    big = style.landmark_marker(64, 560)["size"]
    assert 2 <= small < big <= 6
    from orsalib.viz.dataset import image_grid

    fig = image_grid([np.zeros((64, 64, 3), np.uint8)], landmarks=[np.full((68, 2), 0.5)], cell_px=140)
    assert fig.data[1].marker.size <= 2.5


# ----------------------------------------------------------------------------- saving and the index
def test_save_figure_writes_png_and_the_index_lists_every_artefact():
    run = "viz-index-test"
    fig = viz.bar_table(pd.DataFrame({"x": ["a"], "y": [1]}), "x", "y", title="Some bars")
    html = viz.save_figure(fig, run, "40_bars", caption="bars of the test", profile="smoke")
    exported = not export.export_unavailable()
    assert html.exists() and html.with_suffix(".png").exists() == exported
    if exported:
        _decode(html.with_suffix(".png").read_bytes())
    viz.save_table(pd.DataFrame({"a": [1, 2]}), run, "40_numbers", caption="two numbers")
    viz.save_table(pd.DataFrame({"b": [3]}), run, "unnumbered_table")
    (run_dir(run) / "results").mkdir(exist_ok=True)
    (run_dir(run) / "results" / "40_training.json").write_text(json.dumps(
        {"last_epoch": 2, "last_val_acc_pct": 41.0, "best_epoch": 1, "best_val_acc_pct": 44.0}))
    page = write_run_index(run).read_text()
    for name in ("40_bars", "40_numbers", "unnumbered_table"):
        assert name in page
    assert "bars of the test" in page and "two numbers" in page and "2 rows" in page
    assert ("figures/40_bars.png" in page) == exported and "figures/40_bars.html" in page
    assert "tables/40_numbers.json" in page
    assert "last 41.0% (epoch 2), best 44.0% (epoch 1)" in page
    assert style.SMOKE_BANNER in page  # the run's figures were saved with the smoke profile
    lines = [ln for ln in page.splitlines() if ln.startswith("<li>")]
    assert len(lines) == 3, "one line per table or figure"


def test_headline_formats_units_last_best_and_nested_records():
    line = headline({"last_epoch": 3, "last_val_acc_pct": 52.5, "best_epoch": 2, "best_val_acc_pct": 55.0,
                     "train_minutes": 1.25, "model": "orsanet_tiny"})
    assert "val_acc: last 52.5% (epoch 3), best 55.0% (epoch 2)" in line and "model=orsanet_tiny" in line
    nested = headline({"metric": "last-epoch top1", "digits/crossvit": {"without": 40.0, "with": 41.5,
                                                                         "delta": 1.5, "seeds": 1}})
    assert "without 40.00%, with 41.50%, Δ +1.50 pts (1 seed)" in nested
    assert headline({"val_acc": 0.5}) == "val_acc=50.0%"


# ----------------------------------------------------------------------------- headless progress
def test_headless_env_makes_tqdm_auto_plain_text():
    code = ("import io, orsalib, tqdm.auto, tqdm.std; import orsalib.engine.trainer as e\n"
            "f = io.StringIO()\n"
            "for _ in tqdm.auto.tqdm(range(3), file=f, disable=False):\n"
            "    for _ in e.tqdm(range(2), file=f, leave=False, disable=False): pass\n"
            "print(issubclass(tqdm.auto.tqdm, tqdm.std.tqdm), e.tqdm is tqdm.auto.tqdm, repr(f.getvalue()))")
    env = {**os.environ, "ORSA_HEADLESS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    plain, same, text = out.stdout.strip().split(" ", 2)
    assert plain == same == "True"
    assert "3/3" in text and "\\x1b" not in text, "text bars without cursor-movement escapes"


# ----------------------------------------------------------------------------- notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_kernel_metadata_and_stable_bytes(path):
    raw = path.read_text(encoding="utf-8")
    nb = nbformat.reads(raw, as_version=4)
    nbformat.validate(nb)
    assert dict(nb.metadata.kernelspec) == KERNELSPEC
    assert nb.metadata.language_info["name"] == "python"
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5) and all(c.get("id") for c in nb.cells)
    again = nbformat.writes(nb)
    assert again + ("" if again.endswith("\n") else "\n") == raw, "re-writing the notebook changes its bytes"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_figures_go_through_viz_show(path):
    nb = nbformat.read(str(path), as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    saved = len(re.findall(r"save_figure\(", code))
    shown = len(re.findall(r"viz\.show\(", code))
    assert not re.search(r"\bfig\w*\.show\(\)", code), "use viz.show(fig): live and sized to the cell"
    assert shown >= min(saved, 1), "a notebook that saves figures shows them with viz.show"
    for name in re.findall(r"save_(?:figure|table)\([^,]+,\s*run_name,\s*f?\"([^\"]+)\"", code):
        assert name.startswith(path.name[:3]), f"{name}: artefact names start with the notebook's number"


@pytest.mark.slow
def test_executed_notebook_shows_every_saved_figure_in_nbconvert_html(tmp_path):
    """Notebook 10 headless with the smoke profile: every figure cell keeps a live plotly figure, and nbconvert's HTML
    draws one plotly figure per saved figure."""
    from orsalib import runbook

    run = "viz-nbconvert"
    nb = next(p for p in NOTEBOOKS if p.name.startswith("10_"))
    out = run_dir(run) / "notebooks" / nb.name
    r = runbook.run_notebook(nb, out, {"profile": "smoke", "run_name": run, "data_root": "", "device": "cpu"},
                             timeout=runbook.DEFAULT_TIMEOUTS["smoke"], env={"ORSA_HEADLESS": "1"})
    assert r.status == "ok", f"{r.error}\n{r.result.get('log_tail', '')}"
    executed = nbformat.read(str(out), as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), \
        "headless runs show no widgets (frozen progress bars)"
    saved = [p for p in (run_dir(run) / "figures").glob("10_*.html")]
    assert len(saved) >= 4
    assert all(p.with_suffix(".png").exists() for p in saved) or export.export_unavailable()
    assert all(n >= 1 for n in live_figures_per_cell(executed).values()), "a figure cell without a live figure"
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--output-dir", str(tmp_path),
                    str(out)], check=True, capture_output=True)
    page = (tmp_path / f"{nb.stem}.html").read_text(encoding="utf-8")
    drawn = len(re.findall(r'class="plotly-graph-div"', page))
    assert drawn >= len(saved), f"{drawn} plotly figures in the HTML for {len(saved)} saved figures"
    index = write_run_index(run).read_text()
    assert all(p.stem in index for p in saved)
    assert Path(run_dir(run) / "artefacts.json").exists()
