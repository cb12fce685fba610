import json
import subprocess
import sys

import pytest
from _nbfactory import make_notebook

from orsalib import runbook
from orsalib.paths import run_dir

OK_CELL = (
    "from orsalib.runbook import record_result\n"
    'record_result(run_name, "10_first", {"answer": 42, "profile": profile})'
)


def test_list_and_only(tmp_path):
    for n in ("10_a", "20_b", "30_c"):
        make_notebook(tmp_path / f"{n}.ipynb", ["x = 1"])
    (tmp_path / "scratch.ipynb").write_text("{}")  # not part of the ordered suite
    assert [p.stem for p in runbook.list_notebooks(tmp_path)] == ["10_a", "20_b", "30_c"]
    assert [p.stem for p in runbook.list_notebooks(tmp_path, "30,10")] == ["10_a", "30_c"]
    with pytest.raises(ValueError, match="99"):
        runbook.list_notebooks(tmp_path, "99")


@pytest.mark.slow
def test_failing_notebook_stops_the_suite_and_names_the_cell(tmp_path):
    make_notebook(tmp_path / "10_first.ipynb", [OK_CELL])
    make_notebook(tmp_path / "20_broken.ipynb", ["y = 1", "raise ValueError('bad label file: labels.txt')"])
    make_notebook(tmp_path / "30_never.ipynb", ["from orsalib.runbook import record_result\n"
                                                "record_result(run_name, '30_never', {'ran': True})"])
    with pytest.raises(runbook.NotebookFailed) as ei:
        runbook.reproduce(profile="smoke", run_name="rb-fail", notebooks_dir=tmp_path, echo=False, timeout=300)
    err = ei.value
    assert err.notebook == "20_broken.ipynb"
    assert err.cell_index == 3  # cells of the notebook as written: 0 title, 1 parameters, 2 y = 1, 3 raise
    assert "ValueError" in str(err) and "labels.txt" in str(err)
    # what was written before the failure is kept; later notebooks did not run
    out = run_dir("rb-fail")
    assert json.loads((out / "results" / "10_first.json").read_text()) == {"answer": 42, "profile": "smoke"}
    assert not (out / "results" / "30_never.json").exists()
    assert (out / "notebooks" / "20_broken.ipynb").exists()
    status = {r["notebook"]: r["status"] for r in json.loads((out / "runbook.json").read_text())}
    assert status == {"10_first": "ok", "20_broken": "failed"}


@pytest.mark.slow
def test_cli_exit_code_and_message(tmp_path):
    make_notebook(tmp_path / "10_first.ipynb", [OK_CELL])
    make_notebook(tmp_path / "20_broken.ipynb", ["1 / 0"])
    proc = subprocess.run([sys.executable, "-m", "orsalib", "reproduce", "--profile", "smoke", "--run-name",
                           "rb-cli", "--notebooks-dir", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "20_broken.ipynb" in proc.stdout and "ZeroDivisionError" in proc.stdout and "cell 2" in proc.stdout


@pytest.mark.slow
def test_timeout_names_the_running_cell(tmp_path):
    make_notebook(tmp_path / "10_slow.ipynb", ["x = 1", "import time\ntime.sleep(600)"])
    expected = r"timed out after 60 s; cell 3 \(`import time`\) was still running"
    with pytest.raises(runbook.NotebookFailed, match=expected):
        runbook.reproduce(profile="smoke", run_name="rb-timeout", notebooks_dir=tmp_path, echo=False, timeout=60)


def test_only_declared_parameters_are_injected(tmp_path):
    params = 'run_name: str = "x"\nepochs: int = 3  # 0 = the profile\'s value\nlr = 1e-3'
    nb = make_notebook(tmp_path / "10_p.ipynb", ["pass"], params=params)
    assert runbook.notebook_parameters(nb) == {"run_name": '"x"', "epochs": "3", "lr": "1e-3"}


def test_unknown_profile_and_missing_data_root(tmp_path):
    from orsalib.config import ConfigError

    with pytest.raises(ConfigError, match="profile"):
        runbook.reproduce(profile="fast", notebooks_dir=tmp_path, echo=False)
    with pytest.raises(ConfigError, match="does not exist"):
        runbook.reproduce(profile="smoke", data_root=str(tmp_path / "nope"), notebooks_dir=tmp_path, echo=False)


def test_seeds_reach_the_notebooks_with_claims(tmp_path, monkeypatch):
    """``orsa reproduce --seeds N``: ``n_seeds`` where a notebook declares it, a ``seeds`` list (from the base seed)
    where it declares that, nothing elsewhere."""
    make_notebook(tmp_path / "10_plain.ipynb", ["pass"], params='run_name: str = "x"')
    make_notebook(tmp_path / "50_claims.ipynb", ["pass"], params='run_name: str = "x"\nn_seeds: int = 0')
    make_notebook(tmp_path / "70_transfer.ipynb", ["pass"], params='run_name: str = "x"\nseeds: list = []')
    got = {}

    def fake_run(nb, out, params, timeout, **kw):
        got[nb.stem] = params
        return runbook.NotebookRun(notebook=nb.name, output=str(out), status="ok", seconds=0.0)

    monkeypatch.setattr(runbook, "run_notebook", fake_run)
    monkeypatch.setattr(runbook, "_verdicts", lambda run: "")
    runbook.reproduce(profile="smoke", run_name="rb-seeds", notebooks_dir=tmp_path, echo=False, seed=4, n_seeds=5)
    assert "n_seeds" not in got["10_plain"] and "seeds" not in got["10_plain"]
    assert got["50_claims"]["n_seeds"] == 5 and got["70_transfer"]["seeds"] == [4, 5, 6, 7, 8]


def test_a_partial_rerun_keeps_the_other_notebooks_rows(tmp_path, monkeypatch):
    for n in ("10_a", "20_b"):
        make_notebook(tmp_path / f"{n}.ipynb", ["pass"], params='run_name: str = "x"')
    calls = []

    def fake_run(nb, out, params, timeout, **kw):
        calls.append(nb.stem)
        return runbook.NotebookRun(notebook=nb.stem, output=str(out), status="ok", seconds=float(len(calls)))

    monkeypatch.setattr(runbook, "run_notebook", fake_run)
    monkeypatch.setattr(runbook, "_verdicts", lambda run: "")
    runbook.reproduce(profile="smoke", run_name="rb-partial", notebooks_dir=tmp_path, echo=False)
    runbook.reproduce(profile="smoke", run_name="rb-partial", notebooks_dir=tmp_path, echo=False, only="20")
    book = json.loads((run_dir("rb-partial") / "runbook.json").read_text())
    assert [(e["notebook"], e["seconds"]) for e in book] == [("10_a", 1.0), ("20_b", 3.0)]
