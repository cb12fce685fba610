"""Every notebook of the suite runs headless through papermill with the smoke profile, in order,
and writes what it promises (its results JSON; no error cells; a live plotly figure in every cell that shows one;
every saved figure with plotly's PNG where plotly can export; no widget views, whose frozen state is all a headless
run can keep)."""

import json

import nbformat
import pytest

from orsalib import runbook
from orsalib.paths import NOTEBOOKS_DIR, run_dir
from orsalib.viz.export import PLOTLY_MIME, export_unavailable

RUN = "smoke-suite"
SUITE = runbook.list_notebooks(NOTEBOOKS_DIR)
_failed: list[str] = []
_ran: list[str] = []


@pytest.mark.slow
@pytest.mark.parametrize("nb", SUITE, ids=lambda p: p.stem)
def test_notebook_runs_with_smoke_profile(nb):
    if _failed:
        pytest.skip(f"an earlier notebook of the suite failed ({_failed[0]}); later ones depend on it")
    out = run_dir(RUN) / "notebooks" / nb.name
    r = runbook.run_notebook(nb, out, {"profile": "smoke", "run_name": RUN, "data_root": "", "device": "cpu"},
                             timeout=runbook.DEFAULT_TIMEOUTS["smoke"], env={"ORSA_HEADLESS": "1"})
    if r.status != "ok":
        _failed.append(nb.name)
    assert r.status == "ok", f"{nb.name}: {r.error}\n{r.result.get('log_tail', '')}"
    executed = nbformat.read(str(out), as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})], \
        f"{nb.name}: a widget in a headless run (progress bars stay frozen at 0 %)"
    figures = sorted((run_dir(RUN) / "figures").glob(f"{nb.name[:2]}_*.html"))
    assert all(f.with_suffix(".png").exists() for f in figures) or export_unavailable(), \
        f"{nb.name}: a saved figure lacks its PNG"
    def skipped(c) -> bool:  # a section that says it was skipped (e.g. no real faces on this machine) shows nothing
        return any("skipped" in str(o.get("text", "")) for o in c.outputs if o.get("output_type") == "stream")

    live = {i: sum(PLOTLY_MIME in o.get("data", {}) for o in c.outputs) for i, c in enumerate(executed.cells)
            if c.cell_type == "code" and ("viz.show(" in c.source or "verdict_block(" in c.source) and not skipped(c)}
    assert all(n >= 1 for n in live.values()), f"{nb.name}: cells {[i for i, n in live.items() if not n]} show no " \
        "live plotly figure"
    assert sum(live.values()) >= len(figures), f"{nb.name}: {len(figures)} figures saved, {sum(live.values())} shown"
    res = run_dir(RUN) / "results" / f"{nb.stem}.json"
    assert res.exists(), f"{nb.name} did not record its results"
    assert json.loads(res.read_text()), f"{nb.name} recorded an empty result"
    _ran.append(nb.stem)


@pytest.mark.slow
def test_verdicts_after_the_suite():
    """After the smoke suite, results/verdicts.json holds every claim of Tables 2, 3, 4, 6, 7, 8 once, with the
    verdict's fields, and each notebook that measures claims measured some (numbers not meaningful at this scale)."""
    from orsalib.experiments import claims
    from orsalib.experiments.verdicts import NOT_MEASURED, VERDICTS

    if [p.stem for p in SUITE] != _ran:
        pytest.skip("the whole smoke suite did not run in this session")
    raw = json.loads(claims.verdicts_path(RUN).read_text())
    rows = raw["verdicts"]
    keys = [(r["table"], r["claim"]) for r in rows]
    assert len(keys) == len(set(keys)), "a claim is listed twice"
    assert {(v.table, v.claim) for v in claims.expected_claims()} <= set(keys), "a paper claim is missing"
    for r in rows:
        assert {"claim", "table", "paper", "ours", "delta", "ci_low", "ci_high", "p", "n", "seeds", "verdict", "mde",
                "paper_delta", "unit", "note", "source", "p_adjusted", "adjust_method", "n_seeds", "resampling",
                "data"} <= set(r)  # fmt: skip
        assert r["verdict"] in VERDICTS
        if r["verdict"] != NOT_MEASURED:
            assert r["n"] > 0 and isinstance(r["delta"], float) and r["source"]
    # smoke models may stay at chance: such a comparison is computed and then refused a verdict ("did not learn")
    computed = [r for r in rows if r["verdict"] != NOT_MEASURED or "did not learn" in r["note"]]
    measured = {r["table"] for r in computed}
    assert measured == set(claims.CLAIM_TABLES), f"no measured claim in {set(claims.CLAIM_TABLES) - measured}"
    sources = {r["source"] for r in computed}
    assert {"50_evaluation_occlusion", "60_ablations", "70_dareloss_cifar10", "71_dareloss_spectralformer"} <= sources
    assert len(claims.verdict_summary(RUN)) == len(rows)
    cal = json.loads((run_dir(RUN) / "results" / "calibration.json").read_text())
    assert {"false_verdict_rate", "n_comparisons", "ci", "design"} <= set(cal) and cal["comparisons"]
