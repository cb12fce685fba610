"""``orsa predict`` and ``orsa export`` on a trained smoke run."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from orsalib import paths
from orsalib.cli import main
from orsalib.config import load_profile
from orsalib.experiments.deploy import export_model, image_files, predict_images
from orsalib.experiments.fer import train_fer


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny trained runs: a prior-free baseline and ORSANet with landmark + parsing priors (oracle)."""
    root = tmp_path_factory.mktemp("deploy")
    old = paths.OUTPUTS_DIR
    paths.OUTPUTS_DIR = root / "outputs"
    try:
        over = {"train.epochs": 1, "train.max_steps_per_epoch": 1}
        train_fer(load_profile("smoke", {**over, "model.name": "baseline_tiny", "prior.source": "none"},
                               run_name="base"))  # fmt: skip
        train_fer(load_profile("smoke", over, run_name="orsa"))
        yield root
    finally:
        paths.OUTPUTS_DIR = old


@pytest.fixture
def outputs(runs, monkeypatch):
    monkeypatch.setattr(paths, "OUTPUTS_DIR", runs / "outputs")
    return runs / "outputs"


def _faces(folder, n=3, size=80):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"face{i}.jpg")
    return folder


def test_predict_writes_a_csv_and_a_figure(outputs, tmp_path, capsys):
    faces = _faces(tmp_path / "faces")
    rc = main(["predict", "--run-name", "base", str(faces)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "3 images scored with" in out and "epoch 1" in out
    table = pd.read_csv(outputs / "base" / "predict" / "predictions.csv")
    assert list(table.columns[:3]) == ["file", "predicted", "confidence"] and len(table) == 3
    probs = table[[c for c in table.columns if c.startswith("p_")]].to_numpy()
    assert probs.shape == (3, 7) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (outputs / "base" / "predict" / "predictions.html").stat().st_size > 1000
    assert "warning: this model was trained on SynthFER" in out and "3 of 3 images are not SynthFER's" in out


def test_no_synthfer_warning_on_synthfer_images_and_captions_on_two_lines(tmp_path):
    from orsalib.experiments.deploy import caption, synthfer_warning
    from orsalib.viz.analysis import readable_captions

    build = tmp_path / "s64_c7_x"
    face = build / "valid" / "happiness" / "000001.png"
    face.parent.mkdir(parents=True)
    face.write_bytes(b"")
    (build / "manifest.csv").write_text("path\n")
    (build / "params.json").write_text('{"generator_version": 4}')
    photo = tmp_path / "me.jpg"
    assert synthfer_warning("synthfer", [face]) == ""
    assert synthfer_warning("rafdb", [photo]) == ""
    assert synthfer_warning("synthfer", [photo]).startswith("warning:") and "the image is" in synthfer_warning(
        "synthfer", [photo])
    text = caption("a_very_long_file_name_of_a_face.jpg", "happiness", 0.973)
    assert text == "<b>happiness 97 %</b><br>a_very_long_file_na…"
    from plotly.subplots import make_subplots

    fig = readable_captions(make_subplots(rows=1, cols=2, subplot_titles=[text, text]))
    assert fig.layout.margin.t >= 2 * fig.layout.annotations[0].font.size + 70


def test_predict_after_ground_truth_priors_needs_a_detecting_source(outputs, tmp_path):
    faces = _faces(tmp_path / "faces", n=1)
    with pytest.raises(ValueError, match="--prior-source"):
        predict_images(outputs / "orsa" / "train", [faces], tmp_path / "p")


def test_predict_names_a_missing_path(outputs, tmp_path, capsys):
    assert main(["predict", "--run-name", "base", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="no image files"):
        image_files([tmp_path])


def test_export_torchscript_parity(outputs, tmp_path):
    info = export_model(outputs / "orsa" / "train", tmp_path / "m.pt", "torchscript")
    assert info["inputs"] == ["image", "landmarks", "parsing"]
    assert info["max_abs_diff"] <= 1e-4 and (tmp_path / "m.pt.json").is_file()


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed (.[export])")
def test_export_onnx_parity_through_the_cli(outputs, capsys):
    assert main(["export", "--run-name", "orsa", "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "parity with PyTorch" in out and (outputs / "orsa" / "export" / "model.onnx").is_file()
    info = export_model(outputs / "base" / "train", outputs / "base" / "export" / "b.onnx", "onnx")
    assert info["inputs"] == ["image"] and info["max_abs_diff"] <= 1e-4


def test_convert_verb_needs_a_checkpoint(outputs, tmp_path, capsys):
    # the full released-checkpoint path runs in tests/test_paper_path.py; here the verb's error path
    raf = tmp_path / "raf"
    raf.mkdir()
    rc = main(["convert", str(tmp_path / "missing.pth"), "--profile", "smoke", "--dataset", "synthfer"])
    assert rc == 2 and "missing.pth" in capsys.readouterr().err
