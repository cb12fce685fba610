"""Prior figures (orsalib.viz.priors): each builder returns a Figure with the expected traces on tiny inputs, draws
(plotly's PNG export), uses the workbook's one LaPa palette; the figure functions left orsalib.priors.quality for good;
notebooks 20 and 25 write what they promise at the smoke profile."""

from __future__ import annotations

import json

import nbformat
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from _figures import ink as _ink
from PIL import Image

from orsalib.experiments.prior_noise import QUICK_LEVELS
from orsalib.viz import priors as vp

MOVED = ("colorize_parsing", "overlay_figure", "prior_browser", "quality_figure", "store_overlay")


def _traces(fig: go.Figure, kind: type) -> list:
    return [t for t in fig.data if isinstance(t, kind)]


# ----------------------------------------------------------------------------- one palette, one home
def test_one_parsing_palette_defined_beside_the_labels():
    from orsalib import viz
    from orsalib.data import labels
    from orsalib.viz import dataset, style

    assert style.PARSING_COLORS is labels.PARSING_COLORS and viz.PARSING_COLORS is labels.PARSING_COLORS
    assert style.PARSING_NAMES is labels.PARSING_NAMES and len(labels.PARSING_NAMES) == 11
    assert labels.PARSING_COLORS.shape == (11, 3) and labels.PARSING_COLORS.dtype == np.uint8
    assert len({tuple(c) for c in labels.PARSING_COLORS}) == 11  # every class its own colour
    assert not labels.PARSING_COLORS.flags.writeable
    np.testing.assert_array_equal(vp.colorize_parsing(np.arange(11)[None]), labels.PARSING_COLORS[None])
    assert dataset.PARSING_COLORS is labels.PARSING_COLORS  # the dataset grids draw the same colours


def test_figure_functions_moved_out_of_priors():
    from orsalib.priors import quality as pq

    for name in MOVED:
        assert callable(getattr(vp, name)), name
        assert not hasattr(pq, name), f"{name} is still in orsalib.priors.quality"
    assert not hasattr(pq, "LAPA_PALETTE")
    for name in ("sample_quality", "occluder_quality", "occlusion_effect", "real_face_comparison", "quality_headline"):
        assert callable(getattr(pq, name)), name  # the metrics stay


# ----------------------------------------------------------------------------- priors on images
def test_overlay_figure_sizes_landmarks_to_the_image():
    rng = np.random.default_rng(0)
    small = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)] * 2
    big = [rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)] * 2
    lms = [rng.random((68, 2))] * 2
    pars = [rng.integers(0, 11, (16, 16))] * 2
    f_small = vp.overlay_figure(small, lms, pars, ["a", "b"], cols=2)
    f_big = vp.overlay_figure(big, lms, None, cols=2)
    assert len(_traces(f_small, go.Image)) == 2 and len(_traces(f_small, go.Scatter)) == 2
    s_small = _traces(f_small, go.Scatter)[0].marker.size
    s_big = _traces(f_big, go.Scatter)[0].marker.size
    assert 2 <= s_big < s_small <= 6  # a dot covers about one image pixel on screen
    assert not f_small.layout.showlegend
    assert _ink(f_small) > 0.02


def test_overlay_figure_with_a_reference_set_has_one_legend_entry_each():
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 255, (48, 48), dtype=np.uint8)] * 3  # grey faces are accepted
    fig = vp.overlay_figure(imgs, [rng.random((68, 2))] * 3, reference_landmarks=[rng.random((68, 2))] * 3,
                            names=("detected", "reference"))  # fmt: skip
    sc = _traces(fig, go.Scatter)
    assert len(sc) == 6 and fig.layout.showlegend
    assert sorted(t.name for t in sc if t.showlegend) == ["detected", "reference"]
    assert {t.marker.color for t in sc} == {vp.LANDMARK_COLOR, vp.REFERENCE_COLOR}


def test_quality_figure_bars():
    fig = vp.quality_figure(pd.DataFrame({"occluder": ["all", "hand"], "miou": [0.5, 0.4]}), "miou")
    assert len(_traces(fig, go.Bar)) == 1 and list(fig.data[0].x) == ["all", "hand"]
    assert _ink(fig) > 0.02


class _Store:
    keys = ("landmarks", "parsing")

    def __init__(self, shift: float = 0.0):
        self.shift = shift

    def get(self, i: int, flipped: bool = False) -> dict:
        rng = np.random.default_rng(i)
        return {"landmarks": (rng.random((68, 2)) * 0.8 + 0.1 + self.shift).astype(np.float32),
                "parsing": rng.integers(0, 11, (16, 16)).astype(np.uint8)}  # fmt: skip


@pytest.fixture
def faces(tmp_path):
    """4 images: 2 faces clean (valid) and the same 2 occluded (valid_occluded)."""
    rows = []
    for k, (split, occ) in enumerate([("valid", "none"), ("valid", "none"), ("valid_occluded", "hand"),
                                      ("valid_occluded", "mask")]):  # fmt: skip
        p = tmp_path / f"{k}.png"
        Image.fromarray(np.full((24, 24, 3), 40 * k, dtype=np.uint8)).save(p)
        rows.append({"path": str(p), "split": split, "occluder": occ, "label_name": ["anger", "fear"][k % 2]})
    return pd.DataFrame(rows)


def test_store_overlay_and_clean_occluded_grid(faces):
    fig = vp.store_overlay(faces, _Store(), [0, 2], 32, title="t")
    assert len(_traces(fig, go.Image)) == 2 and fig.layout.annotations[1].text == "anger · hand"
    samples = pd.DataFrame({
        "source": ["det"] * 4, "row": [0, 1, 2, 3], "split": faces["split"], "pair": [0, 1, 0, 1],
        "nme": [0.05, 0.06, 0.09, 0.12], "miou": [0.7, 0.6, 0.5, 0.4],
    })  # fmt: skip
    grid = vp.clean_occluded_grid(faces, samples, {"ground truth": _Store(), "det": _Store(0.02)}, 32, [0, 1])
    assert len(_traces(grid, go.Image)) == 8 and len(_traces(grid, go.Scatter)) == 8  # 2 faces x 2 splits x 2
    titles = [a.text for a in grid.layout.annotations]
    assert titles[:4] == ["clean · ground truth<br>anger", "clean · det<br>NME 0.050 · mIoU 0.70",
                          "hand · ground truth<br>anger", "hand · det<br>NME 0.090 · mIoU 0.50"]  # fmt: skip
    assert _ink(grid) > 0.02


def test_real_face_figure():
    rng = np.random.default_rng(2)
    ims = [rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(3)]
    pri = {"landmarks": rng.random((3, 68, 2)), "parsing": rng.integers(0, 11, (3, 112, 112))}
    fig = vp.real_face_figure(ims, rng.random((3, 68, 2)), pri, ["angry", "fear", "happy"], nme=[0.1, 0.2, 0.3])
    assert len(_traces(fig, go.Image)) == 3 and len(_traces(fig, go.Scatter)) == 6
    assert fig.layout.annotations[2].text == "happy<br>NME vs ref. 0.300"
    assert _ink(fig) > 0.02


# ----------------------------------------------------------------------------- quality per occluder
def _samples() -> pd.DataFrame:
    """Two sources on 12 faces clean and occluded (hand / mask); ``det`` gets worse under occluders."""
    rng = np.random.default_rng(0)
    recs = []
    for src, base, hurt in (("oracle", 0.0, 0.0), ("det", 0.05, 0.04)):
        for split in ("valid", "valid_occluded"):
            for p in range(12):
                occ = "none" if split == "valid" else ("hand", "mask")[p % 2]
                nme = 0.0 if src == "oracle" else base + (hurt if occ != "none" else 0) + rng.normal(0, 0.005)
                miou = 1.0 if src == "oracle" else 0.7 - (0.2 if occ != "none" else 0) + rng.normal(0, 0.02)
                rec = {"source": src, "row": p + (12 if split != "valid" else 0), "split": split, "occluder": occ,
                       "label_name": "anger", "pair": p, "nme": nme, "miou": miou}  # fmt: skip
                for c in ("background", "skin", "left_brow"):
                    rec[f"inter_{c}"], rec[f"union_{c}"] = (10, 10) if src == "oracle" else (int(5 + p % 3), 10)
                recs.append(rec)
    return pd.DataFrame(recs)


def test_occluder_quality_figure_with_occlusion_whiskers():
    from orsalib.priors.quality import occluder_quality, occlusion_effect

    s = _samples()
    q, e = occluder_quality(s), occlusion_effect(s, n_boot=200)
    fig = vp.occluder_quality_figure(q, e)
    bars = _traces(fig, go.Bar)
    assert len(bars) == 8  # 2 metrics x 2 sources x (clean, occluded)
    occluded = [b for b in bars if b.name.endswith("occluded")]
    assert all(b.error_y.array is not None and b.error_y.arrayminus is not None for b in occluded)
    assert all(list(b.x) == ["hand", "mask", "all"] for b in bars)
    det = next(b for b in occluded if b.name == "det: occluded" and b.xaxis == "x")  # NME panel
    row = e[(e["source"] == "det") & (e["metric"] == "nme") & (e["occluder"] == "hand")].iloc[0]
    assert det.y[0] == pytest.approx(row["occluded"])
    assert det.y[0] - det.error_y.arrayminus[0] == pytest.approx(row["clean"] + row["ci_low"])  # whisker from clean
    assert sum(1 for b in bars if b.showlegend) == 4
    plain = vp.occluder_quality_figure(q)  # without the effect: one bar per source and metric
    assert len(_traces(plain, go.Bar)) == 4
    assert _ink(fig) > 0.02


def test_class_iou_figure_one_heatmap_per_source():
    from orsalib.priors.quality import occluder_quality

    q = occluder_quality(_samples())
    fig = vp.class_iou_figure(q, sources=["det", "oracle"])
    maps = _traces(fig, go.Heatmap)
    assert len(maps) == 2 and list(maps[0].x) == ["background", "skin", "left brow"]
    assert list(maps[0].y) == ["clean · none", "clean · all", "occluded · hand", "occluded · mask", "occluded · all"]
    assert np.asarray(maps[1].z, dtype=float).min() == 1.0  # the oracle is the ground truth
    assert _ink(fig) > 0.02


def test_quality_headline():
    from orsalib.priors.quality import occluder_quality, quality_headline

    q = occluder_quality(_samples())
    h = quality_headline(q, "det", prefix="detected")
    assert list(h) == ["detected_nme_clean", "detected_nme_occluded", "detected_miou_clean", "detected_miou_occluded"]
    assert h["detected_nme_occluded"] > h["detected_nme_clean"]
    assert h["detected_miou_occluded"] < h["detected_miou_clean"]
    assert quality_headline(q, "oracle") == {"oracle_nme_clean": 0.0, "oracle_nme_occluded": 0.0,
                                             "oracle_miou_clean": 1.0, "oracle_miou_occluded": 1.0}  # fmt: skip


# ----------------------------------------------------------------------------- the prior-noise study
def _runs(seeds: int) -> pd.DataFrame:
    recs = []
    for level, nme, miou, acc in (("oracle", 0.0, 1.0, 0.8), ("noisy", 0.2, 0.6, 0.6)):
        for s in range(seeds):
            recs.append({"level": level, "seed": s, "source": "oracle", "landmark_sigma": nme, "parsing_rate": 0.1,
                         "valid_acc": acc + 0.01 * s, "valid_occluded_acc": acc - 0.1 + 0.01 * s, "valid_n": 50,
                         "valid_occluded_n": 50, "valid_prior_nme": nme, "valid_occluded_prior_nme": nme + 0.05,
                         "valid_prior_miou": miou, "valid_occluded_prior_miou": miou - 0.1})  # fmt: skip
    return pd.DataFrame(recs)


def test_prior_noise_figure():
    from orsalib.experiments.prior_noise import summarise_prior_noise

    summary = summarise_prior_noise(_runs(2))
    assert summary["valid_acc_ci95"].between(0.05, 0.2).all() and list(summary["valid_n"]) == [50, 50]
    fig = vp.prior_noise_figure(summary, num_classes=7)
    sc = _traces(fig, go.Scatter)
    assert len(sc) == 4  # 2 quality axes x 2 splits
    occ_nme = next(t for t in sc if t.legendgroup == "valid_occluded" and t.xaxis == "x")
    assert list(occ_nme.x) == [0.05, 0.25] and occ_nme.y[0] == pytest.approx(100 * 0.705)  # in %, at its split's NME
    assert all(t.error_y.array is not None for t in sc)  # two seeds: error bars
    assert any("chance" in (a.text or "") for a in fig.layout.annotations)
    one = vp.prior_noise_figure(summarise_prior_noise(_runs(1)))
    assert all(t.error_y.array is None for t in _traces(one, go.Scatter))  # one seed: no error bars
    assert _ink(fig) > 0.02


# ----------------------------------------------------------------------------- the notebooks
@pytest.mark.slow
@pytest.mark.parametrize("number", ["20", "25"])
def test_notebook_smoke_run_writes_its_artefacts(number):
    from orsalib import runbook
    from orsalib.paths import NOTEBOOKS_DIR, run_dir

    run = f"viz-priors-{number}"
    nb = next(NOTEBOOKS_DIR.glob(f"{number}_*.ipynb"))
    out = run_dir(run) / "notebooks" / nb.name
    r = runbook.run_notebook(nb, out, {"profile": "smoke", "run_name": run, "data_root": "", "device": "cpu"},
                             timeout=runbook.DEFAULT_TIMEOUTS["smoke"], env={"ORSA_HEADLESS": "1"})
    assert r.status == "ok", f"{r.error}\n{r.result.get('log_tail', '')}"
    executed = nbformat.read(str(out), as_version=4)
    assert not [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    res = json.loads((run_dir(run) / "results" / f"{nb.stem}.json").read_text())
    figures = {p.stem for p in (run_dir(run) / "figures").glob(f"{number}_*.png")}
    tables = {p.stem for p in (run_dir(run) / "tables").glob(f"{number}_*.csv")}
    if number == "20":
        assert {"20_prior_quality_per_occluder", "20_class_iou", "20_clean_vs_occluded", "20_prior_overlays"} <= figures
        assert {"20_prior_quality_per_occluder", "20_occlusion_effect", "20_prior_cache_build"} <= tables
        head = ["detected_nme_clean", "detected_nme_occluded", "detected_miou_clean", "detected_miou_occluded"]
        assert list(res)[:4] == head and all(np.isfinite(res[k]) for k in head)
    else:
        assert figures == {"25_accuracy_vs_prior_quality"}
        assert {"25_prior_noise", "25_prior_noise_runs", "25_prior_noise_levels"} <= tables
        table = pd.read_csv(run_dir(run) / "tables" / "25_prior_noise.csv")
        assert list(table["level"]) == list(QUICK_LEVELS) == ["oracle", "jitter-0.2", "both-0.1-0.25"]
        assert "valid_occluded_acc_oracle_pct" in res and res["levels"] == 3 and res["seeds"] == 1
    assert {a["name"] for a in json.loads((run_dir(run) / "artefacts.json").read_text()).values()} >= figures | tables
