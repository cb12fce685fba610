"""The run index reads as a researcher asks: verdicts first, then the notebooks' tables and figures, then the
folders; executed notebooks linked as HTML pages; each paper baseline named; the MDE explained."""

from __future__ import annotations

import json

import pytest

from orsalib import paths
from orsalib.viz.index import MDE_LINE, paper_baseline, write_run_index


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "OUTPUTS_DIR", tmp_path / "outputs")
    root = tmp_path / "outputs" / "idx"
    for sub in ("notebooks", "results", "train"):
        (root / sub).mkdir(parents=True)
    (root / "notebooks" / "40_training.ipynb").write_text(json.dumps({"cells": [], "metadata": {}}))
    (root / "notebooks" / "40_training.html").write_text("<html></html>")
    (root / "notebooks" / "50_evaluation_occlusion.ipynb").write_text(json.dumps({"cells": [], "metadata": {}}))
    (root / "results" / "40_training.json").write_text(json.dumps({"last_epoch": 2, "last_val_acc_pct": 41.0}))
    rows = [
        {"table": "Table 2", "claim": "ORSANet beats the prior-free baseline on clean RAF-DB", "verdict": "holds",
         "paper": "92.28 vs 92.21 (POSTER V2, the strongest of 7 other methods; the paper has no row for it)",
         "paper_delta": 0.07, "delta": 2.7, "ci_low": 0.5, "ci_high": 4.9, "n": 700, "unit": "images", "mde": 3.1},
        {"table": "Table 2", "claim": "ORSANet beats RAN", "verdict": "not resolved", "paper": "92.28 vs 86.90 (RAN)",
         "paper_delta": 5.38, "delta": 1.0, "ci_low": -1.0, "ci_high": 3.0, "n": 700, "unit": "images", "mde": 2.9},
        {"table": "Table 6", "claim": "removing the MCM hurts", "verdict": "not measured", "paper": "92.28 vs 91.5"},
    ]  # fmt: skip
    (root / "results" / "verdicts.json").write_text(json.dumps({"verdicts": rows}))
    return "idx"


def test_verdicts_come_first_then_notebooks_then_folders(run):
    page = write_run_index(run).read_text()
    v, nb, folders = page.index("id='verdicts'"), page.index("id='nb40'"), page.index("id='folders'")
    assert v < nb < folders
    assert page.index("<code>train/</code>") > folders  # the folder list is at the end


def test_notebook_links_open_html_pages(run):
    page = write_run_index(run).read_text()
    assert "href='notebooks/40_training.html'" in page
    assert "href='notebooks/40_training.ipynb'" in page  # beside it, for JupyterLab
    assert "no HTML rendering" in page  # notebook 50 was not rendered: said so, and its .ipynb linked


def test_paper_baseline_in_the_header_and_the_mde_explained(run):
    page = write_run_index(run).read_text()
    assert "Table 2: paper Δ = ORSANet − POSTER V2 / RAN" in page
    assert "<td>POSTER V2</td>" in page and "<td>RAN</td>" in page
    assert page.count(MDE_LINE.split(":")[0]) == 1 and page.index("MDE (minimum") < page.index("<th>MDE</th>")


def test_paper_baseline_of_a_claim():
    assert paper_baseline({"table": "Table 2", "paper": "92.28 vs 88.90 (RAN)"}) == "RAN"
    assert paper_baseline({"table": "Table 4", "paper": "87.75 vs 86.8 (POSTER V2, the strongest of 7 others)"}) == (
        "POSTER V2")
    assert paper_baseline({"table": "Table 6", "paper": "92.28 vs 91.50 (full vs w/o MCM)"}) == ""
