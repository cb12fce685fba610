"""Every number README.md quotes from a suite run is written by ``python -m orsalib.viz.readme`` from the committed
snapshot of that run's results (docs/results/cpu_suite.json): the README's marked blocks equal, byte for byte, what
the snapshot renders."""

from __future__ import annotations

import json

import pytest

from orsalib.viz import readme


def test_readme_blocks_match_the_snapshot_byte_for_byte():
    snap = json.loads(readme.SNAPSHOT.read_text(encoding="utf-8"))
    text = readme.README.read_text(encoding="utf-8")
    have, want = readme.readme_blocks(text), readme.render_blocks(snap)
    assert set(have) == set(want), f"README blocks {sorted(have)} != renderers {sorted(want)}"
    for name in want:
        assert have[name] == want[name], (
            f"README block {name!r} differs from docs/results/cpu_suite.json; run "
            f"`python -m orsalib.viz.readme --render-only` (or --runs ... after a new suite)"
        )
    assert readme.rewrite(text, want) == text


def test_snapshot_has_one_verdict_row_per_run():
    snap = json.loads(readme.SNAPSHOT.read_text(encoding="utf-8"))
    rows = [line for line in readme.block_verdicts(snap).splitlines() if line.startswith("| `")]
    assert len(rows) == len(snap["runs"]) >= 1
    assert readme.block_verdicts(snap).splitlines()[1] == (
        "| run | seed | holds | reversed | not resolved | not measured |"
    )


def _run(tmp_path, name, seed, counts):
    root = tmp_path / name
    (root / "results").mkdir(parents=True)
    (root / "notebooks").mkdir()
    (root / "runbook.json").write_text(json.dumps([
        {"notebook": "10_dataset_assembly", "status": "ok", "seconds": 30, "peak_rss_mb": 1024, "profile": "cpu"},
        {"notebook": "40_training", "status": "ok", "seconds": 270, "peak_rss_mb": 2048, "profile": "cpu"},
    ]))  # fmt: skip
    params = {"profile": "cpu", "run_name": name, **({"seed": seed} if seed is not None else {})}
    (root / "notebooks" / "10_dataset_assembly.ipynb").write_text(
        json.dumps({"cells": [], "metadata": {"papermill": {"parameters": params}}}))
    (root / "results" / "40_training.json").write_text(json.dumps({
        "model": "orsanet_cpu", "dataset": "synthfer", "epochs": 8, "last_epoch": 8, "last_val_acc_pct": 84.14,
        "last_valid_occluded_acc_pct": 65.57, "best_epoch": 8, "best_val_acc_pct": 84.14,
        "best_valid_occluded_acc_pct": 65.57, "majority_class_acc_pct": 14.29, "train_minutes": 4.61}))  # fmt: skip
    (root / "results" / "50_evaluation_occlusion.json").write_text(json.dumps({
        "n_clean": 700, "majority_class_acc_pct": 14.29, "roles": {"orsanet_cpu": "main"},
        "orsanet_cpu/clean_acc_pct": 84.1, "orsanet_cpu/rect 30%_acc_pct": 38.1}))  # fmt: skip
    return counts


def test_snapshot_of_finished_runs_and_rewrite(tmp_path, monkeypatch):
    from orsalib import paths

    monkeypatch.setattr(paths, "OUTPUTS_DIR", tmp_path)
    counts = {"default": {"holds": 16, "reversed": 10, "not resolved": 26, "not measured": 11},
              "seed1": {"holds": 15, "reversed": 9, "not resolved": 28, "not measured": 11}}  # fmt: skip
    for name, seed in (("default", None), ("seed1", 1)):
        _run(tmp_path, name, seed, counts[name])
    monkeypatch.setattr(readme, "_verdict_counts", lambda run: counts[run])
    snap = readme.make_snapshot(["default", "seed1"])
    assert [r["run"] for r in snap["runs"]] == ["default", "seed1"] and snap["runs"][1]["seed"] == 1
    assert snap["runs"][0]["total_minutes"] == 5.0 and snap["runs"][0]["peak_gb"] == 2.0
    blocks = readme.render_blocks(snap)
    assert "| `default` (cpu) | 0 (default) | 16 | 10 | 26 | 11 |" in blocks["verdicts"]
    assert "| `seed1` (cpu) | 1 | 15 | 9 | 28 | 11 |" in blocks["verdicts"]
    assert blocks["training"].startswith("`orsanet_cpu` on synthfer, 8 epochs: 84.1 % clean / 65.6 % occluded")
    assert "to be regenerated" not in "".join(blocks.values())  # a complete cpu run needs no note
    text = "a <!-- results:suite_minutes -->old<!-- /results:suite_minutes --> b"
    assert readme.rewrite(text, {"suite_minutes": "5"}) == text.replace("old", "5")
    with pytest.raises(ValueError, match="training"):
        readme.rewrite(text, {"training": "x"})


def test_flipped_claims_between_runs():
    from orsalib.viz.readme import flipped_claims

    runs = [{"claims": {"Table 2 | a": "holds", "Table 3 | b": "holds", "Table 6 | c": "reversed"}},
            {"claims": {"Table 2 | a": "reversed", "Table 3 | b": "not resolved"}}]  # fmt: skip
    assert flipped_claims(runs) == ["Table 2 | a"]
    assert flipped_claims(runs[:1]) == []
