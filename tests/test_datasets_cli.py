"""Dataset selection: layouts detected, SynthFER never written into a dataset folder, ``orsa check`` pre-flight."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from orsalib import paths
from orsalib.cli import main
from orsalib.config import load_profile
from orsalib.data.detect import DetectError, detect_dataset
from orsalib.data.sources import load_manifest
from orsalib.experiments.check import run_check
from orsalib.runbook import resolve_dataset


def make_rafdb(root: Path, per_class: tuple[int, int] = (3, 1), size: int = 100) -> Path:
    """RAF-DB basic in its native layout: EmoLabel/list_patition_label.txt + Image/aligned/<stem>_aligned.jpg."""
    basic = root / "basic"
    (basic / "EmoLabel").mkdir(parents=True)
    (basic / "Image" / "aligned").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for split, n in zip(("train", "test"), per_class):
        for label in range(1, 8):
            for k in range(n):
                stem = f"{split}_{label}{k:04d}"
                img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                Image.fromarray(img).save(basic / "Image" / "aligned" / f"{stem}_aligned.jpg")
                lines.append(f"{stem}.jpg {label}")
    (basic / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return root


def make_imagefolder(root: Path) -> Path:
    rng = np.random.default_rng(1)
    for split in ("train", "valid"):
        for name in ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"):
            d = root / split / name
            d.mkdir(parents=True)
            Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(d / "a.png")
    return root


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the hash of its bytes (and every folder), to prove nothing was written."""
    out = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def read_only(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "OUTPUTS_DIR", tmp_path / "outputs")
    return tmp_path / "outputs"


def test_layouts_are_detected(tmp_path):
    assert detect_dataset(make_rafdb(tmp_path / "raf")) == "rafdb"
    assert detect_dataset(make_imagefolder(tmp_path / "if")) == "imagefolder"
    (tmp_path / "f13").mkdir()
    (tmp_path / "f13" / "fer2013.csv").write_text("emotion,pixels,Usage\n")
    assert detect_dataset(tmp_path / "f13") == "fer2013"
    (tmp_path / "an").mkdir()
    (tmp_path / "an" / "training.csv").write_text("subDirectory_filePath,expression\n")
    assert detect_dataset(tmp_path / "an") == "affectnet8"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DetectError, match="list_patition_label"):
        detect_dataset(tmp_path / "empty")
    with pytest.raises(DetectError, match="not a folder"):
        detect_dataset(tmp_path / "missing")
    assert resolve_dataset("", str(tmp_path / "raf")) == "rafdb"
    assert resolve_dataset("fer2013", "") == "fer2013" and resolve_dataset("", "") == ""
    with pytest.raises(ValueError, match="not registered"):
        resolve_dataset("rafbd", "")


def test_synthfer_is_never_generated_into_a_dataset_folder(tmp_path):
    raf = make_rafdb(tmp_path / "raf")
    before = snapshot(raf)
    cfg = load_profile("smoke", {"data.data_root": str(raf)})  # dataset left at synthfer: the README's old trap
    with pytest.raises(FileExistsError, match="never generated into a dataset folder"):
        load_manifest(cfg.data)
    assert snapshot(raf) == before


def test_check_on_a_read_only_rafdb_folder(tmp_path, outputs, capsys):
    raf = make_rafdb(tmp_path / "raf")
    before = snapshot(raf)
    read_only(raf)
    try:
        rc = main(["check", "--profile", "smoke", "--data-root", str(raf), "--set", "prior.source=none", "--set",
                   "model.name=baseline_tiny", "--no-timing"])  # fmt: skip
        out = capsys.readouterr().out
        assert rc == 0, out
        assert "data: rafdb" in out and "train: 21 images" in out and "test: 7 images" in out and "ready" in out
    finally:
        for p in [raf, *raf.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert snapshot(raf) == before


def test_check_reports_a_missing_weight_file(tmp_path, outputs, capsys):
    cfg = load_profile("smoke", {"prior.source": "mobilefacenet", "prior.landmark_weights": str(tmp_path / "no.pth")})
    report = run_check(cfg, timing=False)
    assert not report.ok and any("no.pth" in p for p in report.problems)
    assert main(["check", "--profile", "smoke", "--set", "prior.source=mobilefacenet", "--set",
                 f"prior.landmark_weights={tmp_path / 'no.pth'}", "--no-timing"]) == 1  # fmt: skip
    assert "PROBLEM" in capsys.readouterr().out


def test_check_measures_a_step(outputs):
    report = run_check(load_profile("smoke", {"model.name": "baseline_tiny", "prior.source": "none"}))
    assert report.ok, report.lines
    assert report.facts["seconds_per_train_image"] > 0 and report.facts["epoch_minutes"] > 0
    assert any(line.startswith("cost:") for line in report.lines)


@pytest.mark.slow
def test_reproduce_data_step_on_a_read_only_rafdb_folder(tmp_path, outputs):
    raf = make_rafdb(tmp_path / "raf")
    before = snapshot(raf)
    read_only(raf)
    env_before = os.environ.get("ORSA_OUTPUTS_DIR")
    os.environ["ORSA_OUTPUTS_DIR"] = str(outputs)  # the papermill kernel resolves its outputs folder from this
    try:
        rc = main(["reproduce", "--profile", "smoke", "--run-name", "ro", "--only", "10", "--data-root", str(raf)])
    finally:
        if env_before is None:
            os.environ.pop("ORSA_OUTPUTS_DIR", None)
        else:
            os.environ["ORSA_OUTPUTS_DIR"] = env_before
        for p in [raf, *raf.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert rc == 0
    assert snapshot(raf) == before
    result = json.loads((outputs / "ro" / "results" / "10_dataset_assembly.json").read_text())
    assert result["dataset"] == "rafdb" and result["images"] == 28


def test_profile_prior_source_adapts_to_real_faces(tmp_path):
    raf = make_rafdb(tmp_path / "raf", per_class=(1, 1))
    cfg = load_profile("cpu", {"data.dataset": "rafdb", "data.data_root": str(raf)})
    assert cfg.prior.source == "landmark-parsing"  # the profile's oracle default needs SynthFER's ground truth
    assert load_profile("cpu").prior.source != "landmark-parsing"
    with pytest.raises(ValueError, match="ground-truth"):
        load_profile("cpu", {"data.dataset": "rafdb", "data.data_root": str(raf), "prior.source": "oracle"})


def test_synthfer_only_prior_sources_fall_back_on_real_faces(tmp_path):
    raf = make_rafdb(tmp_path / "raf", per_class=(1, 1))
    real = load_profile("cpu", {"data.dataset": "rafdb", "data.data_root": str(raf)})
    assert real.prior.source == "landmark-parsing"  # neither ground truth nor drawn-face detectors on photos
    over = {"data.dataset": "rafdb", "data.data_root": str(raf), "prior.source": "synth-detected"}
    assert load_profile("cpu", over).prior.source == "synth-detected"  # asked for by name: allowed
    assert load_profile("cpu", {"prior.source": "synth-detected"}).prior.source == "synth-detected"
