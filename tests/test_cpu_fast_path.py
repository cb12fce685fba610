"""The cpu profile's training step: its settings, the compile fallback, the roofline record (no timing)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from orsalib.config import load_profile
from orsalib.engine import trainer
from orsalib.engine.trainer import compile_for_training, resolve_amp

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_cpu_profile_step_is_fp32_channels_last_eager():
    """docs/speed.md section 0: bf16 autocast and torch.compile are levers, not the cpu profile's default."""
    cfg = load_profile("cpu", run_name="t").train
    assert resolve_amp(cfg.amp, torch.device("cpu")) is None
    assert cfg.channels_last and not cfg.compile


def test_compile_without_a_cpp_compiler_falls_back_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(trainer, "cpp_compiler", lambda: None)
    model = nn.Linear(3, 2)
    assert compile_for_training(model, torch.device("cpu")) is model
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "C++ compiler" in out[0]


def test_roofline_record(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop("cpu_speed", None)
    import cpu_speed

    assert cpu_speed.gemm_gflops(torch.float32, n=64, repeats=1) > 0
    rec = cpu_speed.roofline(n=64, repeats=1)
    assert rec["bench"] == "roofline" and {"fp32_gflops", "bf16_gflops", "matrix"} <= set(rec)
    assert rec["threads"] == torch.get_num_threads() and "load_average" in rec
