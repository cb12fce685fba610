"""``orsa``: user mistakes end in one line on stderr and exit 2; run folders are never clobbered."""

from __future__ import annotations

import json
import os

import pytest
import torch

from orsalib import paths
from orsalib.cli import main
from orsalib.config import load_profile
from orsalib.experiments.fer import RunFolderError, claim_run_dir, config_changes


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "OUTPUTS_DIR", tmp_path / "outputs")
    return tmp_path / "outputs"


def _one_line_error(capsys, argv, *match):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for m in match:
        assert m in err, err
    return err


@pytest.mark.parametrize(
    "sets, match",
    [
        (["model.name=orsanet_tni"], "orsanet_tiny"),
        (["train.lr=abc"], "train.lr"),
        (["train.lr=inf"], "finite"),
        (["train.sam=maybe"], "true or false"),
        (["train.epochs=2.5"], "whole number"),
        (["train.optimizer=lion"], "adam"),
        (["train.epochz=3"], "unknown config key"),
        (["train.epochs"], "KEY=VALUE"),
    ],
)
def test_bad_train_values_are_one_line(capsys, outputs, sets, match):
    argv = ["train", "--profile", "smoke", "--run-name", "t"]
    for s in sets:
        argv += ["--set", s]
    _one_line_error(capsys, argv, match)
    assert not (outputs / "t").exists()  # refused before anything was written


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_line(capsys, outputs):
    _one_line_error(capsys, ["train", "--profile", "smoke", "--run-name", "t", "--device", "cuda"], "CUDA")


def test_evaluate_unknown_run_creates_nothing(capsys, outputs):
    _one_line_error(capsys, ["evaluate", "--run-name", "typo"], "typo")
    assert not (outputs / "typo").exists()


def test_dataset_folder_without_splits_is_one_line(capsys, outputs, tmp_path):
    (tmp_path / "faces").mkdir()
    _one_line_error(
        capsys,
        ["train", "--profile", "smoke", "--run-name", "t", "--set", "data.dataset=imagefolder", "--set",
         f"data.data_root={tmp_path / 'faces'}"],
        "faces",
    )  # fmt: skip


def test_debug_shows_the_traceback(outputs):
    with pytest.raises(Exception, match="train.lr"):
        main(["--debug", "train", "--profile", "smoke", "--set", "train.lr=abc"])


# ----------------------------------------------------------------------------- run folders
def _fake_run(rd, cfg):
    (rd / "checkpoints").mkdir(parents=True)
    (rd / "checkpoints" / "last.pt").write_bytes(b"weights")
    (rd / "metrics.jsonl").write_text('{"epoch": 1}\n')
    (rd / "config.json").write_text(json.dumps({"config": cfg.to_dict()}))


def test_existing_run_is_refused_then_resumed_or_moved_aside(tmp_path):
    cfg = load_profile("smoke", run_name="r")
    rd = tmp_path / "r" / "train"
    assert claim_run_dir(rd, cfg, "refuse") is False  # nothing there yet
    _fake_run(rd, cfg)
    with pytest.raises(RunFolderError, match="--resume.*--overwrite"):
        claim_run_dir(rd, cfg, "refuse")
    assert claim_run_dir(rd, cfg, "resume") is True
    longer = load_profile("smoke", {"train.epochs": 5}, run_name="r")
    assert claim_run_dir(rd, longer, "resume") is True  # extending a run is allowed
    other = load_profile("smoke", {"train.lr": 0.5}, run_name="r")
    with pytest.raises(RunFolderError, match=r"train.lr: 0.001 -> 0.5"):
        claim_run_dir(rd, other, "resume")
    assert claim_run_dir(rd, other, "overwrite") is False
    aside = [p for p in rd.parent.iterdir() if p.name.startswith("train.replaced-")]
    assert len(aside) == 1 and (aside[0] / "checkpoints" / "last.pt").read_bytes() == b"weights"
    assert not rd.exists()


def test_auto_reuses_a_matching_run_and_moves_a_different_one(tmp_path):
    cfg = load_profile("smoke", run_name="r")
    rd = tmp_path / "train"
    _fake_run(rd, cfg)
    assert claim_run_dir(rd, cfg, "auto") is True and rd.exists()
    assert claim_run_dir(rd, load_profile("smoke", {"train.lr": 0.5}), "auto") is False
    assert not rd.exists() and len(list(tmp_path.glob("train.replaced-*"))) == 1


def test_config_changes_lists_dotted_keys():
    a, b = load_profile("smoke"), load_profile("smoke", {"train.gamma": 0.5, "train.epochs": 9})
    assert config_changes(a.to_dict(), b) == {"train.gamma": (0.98, 0.5)}


def test_cli_refuses_an_existing_run_name(capsys, outputs):
    cfg = load_profile("smoke", run_name="r")
    _fake_run(outputs / "r" / "train", cfg)
    _one_line_error(capsys, ["train", "--profile", "smoke", "--run-name", "r"], "--overwrite")
    assert (outputs / "r" / "train" / "metrics.jsonl").read_text() == '{"epoch": 1}\n'
    _one_line_error(capsys, ["train", "--profile", "smoke", "--run-name", "r", "--resume", "--overwrite"], "exclude")


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_keeps_nothing_half_written(tmp_path):
    """A file-size limit makes every write past 64 KiB fail with EFBIG, as a full disk would (ENOSPC is handled the
    same way): `orsa train` stops with one line naming the error, exit 2, and leaves no temp file behind."""
    import resource
    import signal
    import subprocess
    import sys

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    env = {**os.environ, "ORSA_OUTPUTS_DIR": str(tmp_path / "outputs"), "TQDM_DISABLE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "orsalib", "train", "--profile", "smoke", "--run-name", "full", "--set",
         "train.epochs=1", "--set", "train.max_steps_per_epoch=1"],
        env=env, capture_output=True, text=True, preexec_fn=limit, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.count("orsa train: error:") == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "full" in proc.stderr.split("orsa train: error:")[1].splitlines()[0]
    assert not list((tmp_path / "outputs").rglob("*.tmp"))


# ----------------------------------------------------------------------------- start-up
def test_profile_choices_match_the_config():
    from orsalib import cli, config

    assert cli.PROFILE_NAMES == config.PROFILES


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["train", "--help"], ["train", "--profile", "fast"], ["check", "--data-root", "/no/such/folder"],
     ["evaluate", "--run-name", "no-such-run"], ["train", "--set", "train.epochs"], ["reproduce", "--only", "99"]],
)  # fmt: skip
def test_help_and_argument_errors_load_no_torch(tmp_path, argv):
    """Help texts and argument errors answer before torch is imported (benchmarks/cli_startup.py times them)."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom orsalib.cli import main\ntry:\n    rc = main(sys.argv[1:])\nexcept SystemExit as e:\n"
        "    rc = e.code\nprint('TORCH' if 'torch' in sys.modules else 'NO-TORCH', rc)"
    )
    env = {**os.environ, "ORSA_OUTPUTS_DIR": str(tmp_path / "outputs")}
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=300)
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("NO-TORCH"), (last, proc.stderr[-500:])
    assert last.split()[1] == ("0" if "--help" in argv else "2"), proc.stderr[-500:]
