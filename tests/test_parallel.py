"""Trainings side by side in worker processes: the plan, errors that name the task, and results equal to training
one after the other."""

from __future__ import annotations

import os

import pytest
import torch

from orsalib.config import load_profile
from orsalib.experiments import compare
from orsalib.experiments.fer import prepare_fer_data
from orsalib.experiments.parallel import ENV_WORKERS, WorkerPlan, plan_workers, run_tasks
from orsalib.experiments.runs import load_trained
from orsalib.paths import run_dir


def test_plan_splits_the_cores_and_obeys_the_environment():
    env = {"OMP_NUM_THREADS": "4"}
    assert plan_workers(2, "cpu", env) == WorkerPlan(2, 2, "4 cores")
    assert plan_workers(8, "cpu", env).workers == 4 and plan_workers(8, "cpu", env).threads == 1
    assert plan_workers(1, "cpu", env) == WorkerPlan(1, 4, "4 cores")
    assert plan_workers(3, "cuda:0", env).workers == 1  # trainings on one GPU take turns
    assert plan_workers(3, "cpu", {**env, ENV_WORKERS: "1"}).workers == 1
    assert plan_workers(3, "cpu", {**env, ENV_WORKERS: "2"}) == WorkerPlan(2, 2, f"{ENV_WORKERS}=2")
    for bad in ("0", "two", "-1"):
        with pytest.raises(ValueError, match=ENV_WORKERS):
            plan_workers(3, "cpu", {**env, ENV_WORKERS: bad})


def test_a_failing_task_raises_its_own_error_naming_the_task(tmp_path):
    tasks = [("fine", {"path": str(tmp_path)}), ("broken", {"path": str(tmp_path / "missing")})]
    with pytest.raises(FileNotFoundError) as err:
        run_tasks(os.stat, tasks, plan=WorkerPlan(2, 1, "test"), log=None)
    assert any("broken" in note for note in getattr(err.value, "__notes__", []))
    with pytest.raises(FileNotFoundError) as err:  # one at a time, in this process: the same error and note
        run_tasks(os.stat, tasks, plan=WorkerPlan(1, 1, "test"), log=None)
    assert any("broken" in note for note in err.value.__notes__)
    (ok, seconds), = run_tasks(os.stat, tasks[:1], plan=WorkerPlan(2, 1, "test"), log=None)  # fmt: skip
    assert ok.st_mode and seconds >= 0


def test_missing_contenders_train_side_by_side_as_they_would_one_after_the_other(monkeypatch):
    """The twin and RAN (its region loss crosses the process boundary) trained by two workers with one thread each
    end with the same weights as trained here, one after the other, with one thread."""
    cfg = load_profile("smoke", run_name="par-a")
    data = prepare_fer_data(cfg)
    monkeypatch.setenv(ENV_WORKERS, "2")
    items = compare.contenders(cfg, "par-a", roles=["twin", "ran"], seeds=[cfg.seed])
    compare.load_contenders(items[1:], data)
    assert [c.info["trained_here"] for c in items[1:]] == [True, True]
    assert [c.info.get("parallel") for c in items[1:]] == [2, 2]

    monkeypatch.setenv(ENV_WORKERS, "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seq = compare.contenders(load_profile("smoke", run_name="par-b"), "par-b", roles=["twin", "ran"], seeds=[0])
        compare.load_contenders(seq[1:], data)
    finally:
        torch.set_num_threads(threads)
    assert "parallel" not in seq[1].info and seq[1].info["trained_here"]
    for a, b in zip(items[1:], seq[1:]):
        wa, wb = load_trained(a.train_dir, "last")[0].state_dict(), load_trained(b.train_dir, "last")[0].state_dict()
        assert wa.keys() == wb.keys()
        for k in wa:
            assert torch.equal(wa[k], wb[k]), f"{a.name}: {k} differs between the worker and this process"
    assert (run_dir("par-a") / "80_ran_train" / "summary.json").is_file()


def talk(text: str, seed: int) -> int:
    """A task that prints two lines, a carriage-return redraw and the same warning twice."""
    import warnings

    print(f"{text} one\n{text} two", flush=True)
    print("bar 10%\rbar 100%")
    for _ in range(2):
        warnings.warn("the same caution", UserWarning, stacklevel=1)
    return seed


def test_worker_output_is_prefixed_and_warnings_are_said_once(capfd):
    said: list[str] = []
    tasks = [("alpha", {"text": "a", "seed": 0}), ("beta seed 1", {"text": "b", "seed": 1})]
    results = run_tasks(talk, tasks, plan=WorkerPlan(2, 1, "test"), log=said.append)
    assert [r for r, _ in results] == [0, 1]
    out = capfd.readouterr().out.splitlines()
    assert "[alpha seed 0] a one" in out and "[alpha seed 0] a two" in out
    assert "[beta seed 1] b one" in out and "[beta seed 1] bar 100%" in out  # the label's own seed is not repeated
    assert not [line for line in out if line.startswith(("a ", "b ", "bar"))]
    warned = [line for line in said if "the same caution" in line]
    assert warned == ["warning (2 runs: alpha, beta seed 1): UserWarning: the same caution"]


def test_line_prefixed_keeps_partial_lines_until_flushed():
    import io

    from orsalib.experiments.parallel import LinePrefixed, task_prefix

    buf = io.StringIO()
    s = LinePrefixed(buf, task_prefix("ran_cpu", {"cfg": load_profile("smoke", seed=3)}))
    s.write("epoch 1")
    assert buf.getvalue() == ""
    s.write(" done\npart")
    s.flush()
    assert buf.getvalue() == "[ran_cpu seed 3] epoch 1 done\n[ran_cpu seed 3] part\n"
