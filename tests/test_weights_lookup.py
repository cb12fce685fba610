"""Weights are looked for in the repository, the given paths and the environment only: never in ``../shared``."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from orsalib import paths
from orsalib.experiments import runs
from orsalib.priors import landmarks

ROOT = Path(__file__).resolve().parents[1]


def _names(source: str) -> set[str]:
    """Every name, attribute and imported name a module's code uses."""
    out: set[str] = set()
    for n in ast.walk(ast.parse(source)):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
        elif isinstance(n, ast.ImportFrom):
            out.update(a.name for a in n.names)
    return out


def test_prior_weights_are_never_looked_for_in_shared():
    # the prior sources, the experiments that pick weights and the notebooks of the prior / training / evaluation path
    looks = {"shared_path", "SHARED_DIR"}
    lib = ROOT / "orsalib"
    files = [*sorted((lib / "priors").rglob("*.py")), *sorted((lib / "experiments").glob("*.py"))]
    bad = [str(p.relative_to(ROOT)) for p in files if looks & _names(p.read_text(encoding="utf-8"))]
    for nb in sorted((ROOT / "notebooks").glob("[2-5]0_*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        text = "\n".join("".join(c["source"]) for c in cells)
        if "shared_path" in text or "../shared" in text or "SHARED_DIR" in text:
            bad.append(str(nb.relative_to(ROOT)))
    assert bad == []


def test_no_landmark_weights_without_the_default_file(tmp_path, monkeypatch):
    shared = tmp_path / "shared" / "weights"
    shared.mkdir(parents=True)
    (shared / "mobilefacenet_68lm_fp16.pth.tar").write_bytes(b"x")
    monkeypatch.setattr(paths, "SHARED_DIR", tmp_path / "shared")
    monkeypatch.setattr(landmarks, "DEFAULT_LANDMARK_WEIGHTS", tmp_path / "data" / "weights" / "absent.pth.tar")
    monkeypatch.setattr(runs, "DEFAULT_LANDMARK_WEIGHTS", tmp_path / "data" / "weights" / "absent.pth.tar")
    assert landmarks.find_landmark_weights() is None
    given = tmp_path / "mine.pth.tar"
    given.write_bytes(b"x")
    assert landmarks.find_landmark_weights(given) == given
    with pytest.raises(FileNotFoundError, match="landmark_weights"):
        runs.eval_config("smoke", {"data.dataset": "fer2013", "data.data_root": str(tmp_path)})


def test_the_missing_weights_error_names_the_default_path_and_the_setting(tmp_path):
    if landmarks.DEFAULT_LANDMARK_WEIGHTS.is_file():
        pytest.skip("data/weights holds the landmark weights")
    with pytest.raises(FileNotFoundError) as e:
        runs.eval_config("smoke", {"data.dataset": "fer2013", "data.data_root": str(tmp_path)})
    assert "data/weights/mobilefacenet_68lm.pth.tar" in str(e.value) and "prior.landmark_weights" in str(e.value)


def test_synthfer_needs_no_landmark_weights():
    cfg = runs.eval_config("cpu", run_name="t")
    assert cfg.data.dataset == "synthfer" and "landmark_weights" not in runs.PRIOR_SOURCES.meta(cfg.prior.source).get(
        "weights", ())
