"""The A/A calibration on constructed features: every comparison judged by the Table 2 path, the rate and its
interval written atomically to results/calibration.json; runs that did not learn are not counted."""

import json
import types
import uuid

import numpy as np

from orsalib.experiments import calibration as K

CENTRES = np.random.default_rng(42).normal(0, 1, (5, 16))  # the classes, shared by the training and evaluation sets


def _features(rng, n, signal=1.5):
    y = rng.integers(0, len(CENTRES), n)
    return (CENTRES[y] * signal + rng.normal(0, 1, (n, 16))).astype(np.float32), y


def test_aa_calibration_writes_its_rate(monkeypatch):
    rng = np.random.default_rng(0)
    fit, ev = _features(rng, 400), _features(rng, 300)
    feats = {"valid_occluded": (*fit, np.arange(400)), "valid": (*ev, np.arange(1000, 1300))}
    monkeypatch.setattr(K, "frozen_features", lambda model, loader, device="auto": feats[loader])
    data = types.SimpleNamespace(loaders={"valid_occluded": "valid_occluded", "valid": "valid"})
    run = f"cal-{uuid.uuid4().hex[:8]}"
    out = K.run_calibration(None, data, run, profile="smoke", n_comparisons=6, n_boot=300, source="constructed")
    raw = json.loads(K.calibration_path(run).read_text())
    assert raw == out and raw["n_comparisons"] == 6 and raw["n_not_counted"] == 0
    assert 0.0 <= raw["false_verdict_rate"] <= 1.0 and raw["ci"][0] <= raw["false_verdict_rate"] <= raw["ci"][1]
    assert raw["false_verdict_rate"] <= 1 / 6  # same configuration: at most one false verdict in six here
    assert "A/A" in raw["design"] and "constructed" in raw["design"] and len(raw["comparisons"]) == 6
    assert raw["accuracy_pct"]["mean"] > raw["accuracy_pct"]["majority_class"] + 20
    assert "A/A comparisons" in K.calibration_sentence(raw)


def test_runs_that_did_not_learn_are_not_counted(monkeypatch):
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, (300, 16)).astype(np.float32)
    y = rng.integers(0, 5, 300)
    feats = {"valid_occluded": (noise, y, np.arange(300)), "valid": (noise[::-1].copy(), y, np.arange(300))}
    monkeypatch.setattr(K, "frozen_features", lambda model, loader, device="auto": feats[loader])
    data = types.SimpleNamespace(loaders={"valid_occluded": "valid_occluded", "valid": "valid"})
    out = K.run_calibration(None, data, f"cal-{uuid.uuid4().hex[:8]}", profile="smoke", n_comparisons=2, n_boot=100)
    assert out["n_comparisons"] == 0 and out["n_not_counted"] == 2 and out["false_verdict_rate"] is None
    assert all("did not learn" in c["note"] for c in out["comparisons"])
    assert "no A/A comparison" in K.calibration_sentence(out)


def test_a_head_training_is_seeded():
    rng = np.random.default_rng(2)
    x, y = _features(rng, 200)
    a, b = K.train_head(x, y, 5, 5, epochs=1), K.train_head(x, y, 5, 5, epochs=1)
    c = K.train_head(x, y, 6, 5, epochs=1)
    wa, wb, wc = (next(m.parameters()).detach().numpy() for m in (a, b, c))
    assert np.array_equal(wa, wb) and not np.array_equal(wa, wc)
