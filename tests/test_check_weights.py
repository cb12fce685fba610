"""``orsa check`` names the weights path it really reads and why; it looks nowhere but the given path and the default
location under data/weights (``ORSA_DATA_DIR``)."""

from __future__ import annotations

from pathlib import Path

from orsalib.config import load_profile
from orsalib.experiments.check import CheckReport, check_weights, weights_in_use
from orsalib.paths import DATA_DIR


def test_default_and_given_paths_are_named_with_their_reason(tmp_path):
    cfg = load_profile("paper", {"prior.mode": "cached", "data.data_root": str(tmp_path)})
    used = weights_in_use(cfg)
    assert set(used) == {"landmark_weights", "parser_weights"}
    for path, why in used.values():
        assert path.parent == DATA_DIR / "weights" and why.startswith("default location")
    given = tmp_path / "lm.pth.tar"
    over = {"prior.mode": "cached", "data.data_root": str(tmp_path), "prior.landmark_weights": str(given)}
    cfg = load_profile("paper", over)
    assert weights_in_use(cfg)["landmark_weights"] == (given, "given")


def test_a_missing_default_file_is_a_problem_that_names_the_path(tmp_path, monkeypatch):
    import orsalib.experiments.check as check

    monkeypatch.setitem(check.DEFAULT_WEIGHTS, "landmark_weights", tmp_path / "absent" / "lm.pth.tar")
    monkeypatch.setitem(check.DEFAULT_WEIGHTS, "parser_weights", tmp_path / "absent" / "segface.pt")
    monkeypatch.setattr(check, "get_prior_source", lambda *a, **k: None)
    cfg = load_profile("paper", {"prior.mode": "cached", "data.data_root": str(tmp_path)})
    report = CheckReport()
    check_weights(cfg, report, device=None)
    text = "\n".join(report.problems)
    assert str(tmp_path / "absent" / "lm.pth.tar") in text and "default location" in text, text
    assert "shared" not in "\n".join(report.lines)
    assert all(Path(p).is_absolute() for p, _ in weights_in_use(cfg).values())
