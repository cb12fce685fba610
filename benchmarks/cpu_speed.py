"""The cpu family's training step against this machine's roofline, interleaved, in one run (a script, not a test).

Two measurements, both printed as JSON lines with the threads and the load average beside every figure:

- ``{"bench": "roofline", "fp32_gflops", "bf16_gflops", "threads", ...}``: the GEMM peak of this machine, a square
  ``torch.matmul`` (2048 x 2048 by default) in fp32 and in bf16 with the threads the training uses, best of several
  repeats (2 n^3 flops per product);
- ``{"bench": "cpu_family", "model", "images_per_s", "eager_fp32_images_per_s", "speedup", "gflop_per_image_step",
  "peak_fraction", ...}`` per model: the workbook's default cpu training step (the cpu profile's ``train`` section:
  autocast dtype, channels-last, compile) against a plain fp32 eager step (no autocast, contiguous, not compiled) of
  the same model, on the same batch of the same SynthFER data, through the trainer's own
  :func:`orsalib.engine.trainer.train_step` (the optimiser update included). Both are built from the same initial
  weights, warmed up, then timed in interleaved rounds (the order rotated each round); ``speedup`` is the median of
  the per-round ratios. ``gflop_per_image_step`` is counted: fvcore's forward count of the model on that batch
  (1 multiply-add = 1 flop there) x 2 (flops per multiply-add) x 3 (forward + backward, whose two products per layer
  cost twice the forward). ``peak_fraction`` = achieved GFLOP/s / the roofline's peak at the default step's precision
  (bf16 when it autocasts to bf16, else fp32); ``eager_peak_fraction`` the same for the eager step against fp32.

Optional (``--variants``): further step variants beside the two, for the lever table of docs/speed.md
(``fp32-cl``, ``bf16``, ``bf16-cl``, ``compiled-fp32``, ``compiled-bf16-cl``, ...: see :data:`VARIANTS`), and
(``--eval``) the evaluation forward of the default and eager paths.

Usage::

    python benchmarks/cpu_speed.py                            # roofline + the four models (what make bench runs)
    python benchmarks/cpu_speed.py --models orsanet_cpu --variants fp32-cl,bf16,bf16-cl --rounds 5
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from orsalib.threads import export_thread_environment

export_thread_environment()  # before torch starts OpenMP: threads and the PASSIVE wait policy (orsalib/threads.py)
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")  # no compile-worker pool beside the timed steps

import torch  # noqa: E402

MODELS: tuple[str, ...] = ("orsanet_cpu", "baseline_cpu", "resnet18_cpu", "ran_cpu")
EAGER = "eager-fp32"
DEFAULT = "default"
#: name -> (amp, channels_last, compile); "default" is read from the cpu profile
VARIANTS: dict[str, tuple[str, bool, bool]] = {
    EAGER: ("none", False, False),
    "fp32-cl": ("none", True, False),
    "bf16": ("bf16", False, False),
    "bf16-cl": ("bf16", True, False),
    "compiled-fp32": ("none", False, True),
    "compiled-fp32-cl": ("none", True, True),
    "compiled-bf16": ("bf16", False, True),
    "compiled-bf16-cl": ("bf16", True, True),
}


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - platforms without getloadavg
        return None


def facts() -> dict[str, Any]:
    return {"threads": torch.get_num_threads(), "load_average": load_average(), "torch": torch.__version__}


# ----------------------------------------------------------------------------- roofline
def gemm_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5, per_repeat: int = 3) -> float:
    """Best GFLOP/s of ``per_repeat`` square ``n x n`` matmuls in ``dtype`` over ``repeats`` repeats."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(dtype) for _ in range(2))
    out = torch.empty(n, n, dtype=dtype)
    torch.matmul(a, b, out=out)  # warm-up (oneDNN / BLAS kernel selection, page faults)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(per_repeat):
            torch.matmul(a, b, out=out)
        best = min(best, (time.perf_counter() - t0) / per_repeat)
    return 2 * n**3 / best / 1e9


def roofline(n: int = 2048, repeats: int = 5) -> dict[str, Any]:
    """The roofline record: fp32 and bf16 GEMM peaks, interleaved (fp32, bf16, fp32, bf16, ...), best of each."""
    load0 = load_average()
    fp32, bf16 = [], []
    for _ in range(2):
        fp32.append(gemm_gflops(torch.float32, n, repeats))
        bf16.append(gemm_gflops(torch.bfloat16, n, repeats))
    return {"bench": "roofline", "fp32_gflops": round(max(fp32), 1), "bf16_gflops": round(max(bf16), 1),
            "threads": torch.get_num_threads(), "matrix": n, "repeats": 2 * repeats,
            "load_average_start": load0, **facts()}  # fmt: skip


# ----------------------------------------------------------------------------- one model's step variants
@dataclass
class Variant:
    name: str
    amp: str
    channels_last: bool
    compile: bool
    step: Any
    batch: dict[str, Any]
    times: list[float] = field(default_factory=list)
    build_s: float = 0.0


def model_setup(model_name: str, seed: int = 0, batch_size: int | None = None) -> dict[str, Any]:
    """The cpu profile's config of ``model_name``, its data (one training batch), initial weights and criterion."""
    import cpu_family

    from orsalib.experiments.fer import build_fer_model, prepare_fer_data
    from orsalib.losses import build_criterion
    from orsalib.utils import seed_everything

    budget = dict(cpu_family.BUDGET)
    if batch_size:
        budget["train.batch_size"] = batch_size
    cfg, extra = cpu_family.model_config(model_name, budget, seed, "cpu")
    seed_everything(seed)
    data = prepare_fer_data(cfg)
    batch = next(iter(data.loaders["train"]))
    seed_everything(seed)
    model = build_fer_model(cfg)
    return {"cfg": cfg, "model": model, "batch": batch, "criterion": build_criterion(cfg.train, extra=extra),
            "loaders": data.loaders}  # fmt: skip


def default_spec(cfg: Any) -> tuple[str, bool, bool]:
    """(amp, channels_last, compile) of the cpu profile's training step, as the trainer resolves them on a CPU."""
    from orsalib.engine.trainer import resolve_amp

    dtype = resolve_amp(cfg.train.amp, torch.device("cpu"))
    amp = "bf16" if dtype == torch.bfloat16 else "none"
    return amp, bool(cfg.train.channels_last), bool(cfg.train.compile)


def build_variant(name: str, spec: tuple[str, bool, bool], setup: dict[str, Any]) -> Variant:
    """A fresh copy of the initial model with its own optimiser, as the trainer builds them for this spec."""
    from orsalib.engine.evaluate import batch_to_device, default_forward
    from orsalib.engine.trainer import StepState, build_optimizer, compile_for_training, resolve_amp

    amp, cl, compiled = spec
    t0 = time.perf_counter()
    cfg = replace(setup["cfg"].train, amp=amp, channels_last=cl, compile=compiled)
    model = copy.deepcopy(setup["model"]).train()
    if cl:
        model.to(memory_format=torch.channels_last)
    opt, sam = build_optimizer(model, cfg)
    dev = torch.device("cpu")
    train_model = compile_for_training(model, dev) if compiled else model
    step = StepState(model=train_model, criterion=setup["criterion"], forward=default_forward, optimizer=opt, sam=sam,
                     amp_dtype=resolve_amp(amp, dev), grad_clip=cfg.grad_clip)  # fmt: skip
    batch = batch_to_device(setup["batch"], dev, cl)
    return Variant(name, amp, cl, compiled, step, batch, build_s=time.perf_counter() - t0)


def _run(v: Variant, epoch: int) -> float:
    from orsalib.engine.trainer import train_step

    t0 = time.perf_counter()
    train_step(v.step, v.batch, epoch)
    return time.perf_counter() - t0


def count_gflop_per_image_step(setup: dict[str, Any]) -> tuple[float, float]:
    """(GFLOP per image per training step, fvcore's forward GMAC per image) on the setup's batch."""
    from orsalib.analysis.complexity import count_flops
    from orsalib.models import PRIOR_KEYS

    model = copy.deepcopy(setup["model"]).eval()
    b = setup["batch"]
    priors = {k: b[k] for k in PRIOR_KEYS if k in b}
    rep = count_flops(model, (b["image"], priors), cross_check=False)
    gmac = rep.total / rep.batch / 1e9
    return 2 * 3 * gmac, gmac


def measure_model(
    model_name: str, peaks: dict[str, float], rounds: int = 5, warmup: int = 2, extra: list[str] | None = None,
    seed: int = 0, batch_size: int | None = None, eval_too: bool = False,
    say: Callable[[str], None] = lambda m: None,
) -> dict[str, Any]:  # fmt: skip
    """The ``cpu_family`` record of one model (see the module docstring); ``eval_too``: with the evaluation forward
    (:func:`measure_eval`) of the default and the eager path."""
    setup = model_setup(model_name, seed, batch_size)
    cfg = setup["cfg"]
    epoch = int(cfg.train.lsce_warmup_epochs)  # the step of most epochs: CE + DARE after the warm-up
    specs = {DEFAULT: default_spec(cfg), EAGER: VARIANTS[EAGER]}
    for n in extra or []:
        specs[n] = VARIANTS[n]
    variants = []
    for name, spec in specs.items():
        v = build_variant(name, spec, setup)
        for i in range(warmup):
            t = _run(v, epoch)
            if i == 0:
                say(f"  {model_name} {name}: first step {t:.2f} s (build {v.build_s:.1f} s)")
        variants.append(v)
    loads = []
    for r in range(rounds):
        k = r % len(variants)
        for v in variants[k:] + variants[:k]:
            v.times.append(_run(v, epoch))
        loads.append(load_average())
    say(f"  {model_name}: " + ", ".join(f"{v.name} {statistics.median(v.times):.3f} s" for v in variants)
        + f" (load {loads[-1]})")  # fmt: skip
    gflop, gmac = count_gflop_per_image_step(setup)
    bs = int(setup["batch"]["label"].shape[0])
    by = {v.name: v for v in variants}

    def ips(v: Variant) -> float:
        return bs / statistics.median(v.times)

    def ratio(v: Variant) -> float:
        return statistics.median([e / t for e, t in zip(by[EAGER].times, v.times)])

    d, e = by[DEFAULT], by[EAGER]
    peak = peaks["bf16_gflops"] if d.amp == "bf16" else peaks["fp32_gflops"]
    rec: dict[str, Any] = {
        "bench": "cpu_family", "model": model_name,
        "images_per_s": round(ips(d), 1), "eager_fp32_images_per_s": round(ips(e), 1),
        "speedup": round(ratio(d), 3),
        "gflop_per_image_step": round(gflop, 4),
        "gflops": round(ips(d) * gflop, 1),
        "peak_fraction": round(ips(d) * gflop / peak, 3),
        "peak_precision": "bf16" if d.amp == "bf16" else "fp32",
        "eager_gflops": round(ips(e) * gflop, 1),
        "eager_peak_fraction": round(ips(e) * gflop / peaks["fp32_gflops"], 3),
        "default_step": {"amp": d.amp, "channels_last": d.channels_last, "compile": d.compile,
                         "batch": bs, "sam": cfg.train.sam, "optimizer": cfg.train.optimizer},
        "fvcore_gmac_per_image": round(gmac, 4),
        "round_ratios": [round(a / b, 3) for a, b in zip(e.times, d.times)],
        "round_load_average": loads,
    }  # fmt: skip
    if eval_too:
        rec.update(measure_eval(setup, by[DEFAULT], by[EAGER], gflop / 3, peaks, rounds))
    for v in variants[2:]:
        rec.setdefault("variants", {})[v.name] = {"images_per_s": round(ips(v), 1), "ratio": round(ratio(v), 3),
                                                  "gflops": round(ips(v) * gflop, 1)}  # fmt: skip
    rec.update(facts())
    return rec


def measure_eval(
    setup: dict[str, Any], default: Variant, eager: Variant, gflop_forward: float, peaks: dict[str, float],
    rounds: int = 5,
) -> dict[str, Any]:  # fmt: skip
    """The evaluation forward on one batch of the ``valid`` split as the trainer evaluates (the default step's model
    and autocast; a compiled model evaluates through its own compiled copy) against the eager fp32 forward."""
    from orsalib.engine.evaluate import autocast, batch_to_device, default_forward
    from orsalib.engine.trainer import compile_for_training, resolve_amp, unwrap_model

    batch = batch_to_device(next(iter(setup["loaders"]["valid"])), torch.device("cpu"))
    bs = int(batch["label"].shape[0])
    dev = torch.device("cpu")
    models = {}
    for v in (default, eager):
        m = unwrap_model(v.step.model).eval()
        models[v.name] = (compile_for_training(m, dev) if v.compile else m, resolve_amp(v.amp, dev))

    def run(name: str) -> float:
        m, dtype = models[name]
        t0 = time.perf_counter()
        with torch.inference_mode(), autocast("cpu", dtype):
            default_forward(m, batch)
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {DEFAULT: [], EAGER: []}
    for name in times:
        run(name), run(name)  # warm-up (a compiled model compiles its eval graph here)
    for r in range(rounds):
        for name in ([DEFAULT, EAGER] if r % 2 == 0 else [EAGER, DEFAULT]):
            times[name].append(run(name))
    for v in (default, eager):
        unwrap_model(v.step.model).train()
    d_ips, e_ips = (bs / statistics.median(times[n]) for n in (DEFAULT, EAGER))
    peak = peaks["bf16_gflops"] if default.amp == "bf16" else peaks["fp32_gflops"]
    return {"eval_batch": bs, "eval_images_per_s": round(d_ips, 1), "eval_eager_fp32_images_per_s": round(e_ips, 1),
            "eval_speedup": round(statistics.median([e / d for e, d in zip(times[EAGER], times[DEFAULT])]), 3),
            "eval_gflop_per_image": round(gflop_forward, 4), "eval_gflops": round(d_ips * gflop_forward, 1),
            "eval_peak_fraction": round(d_ips * gflop_forward / peak, 3),
            "eval_eager_peak_fraction": round(e_ips * gflop_forward / peaks["fp32_gflops"], 3)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--variants", default="", help=f"extra step variants, comma list of {sorted(VARIANTS)}")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=0, help="batch size (0 = the cpu profile's)")
    p.add_argument("--eval", action="store_true", help="also the evaluation forward (default vs eager fp32)")
    p.add_argument("--no-roofline", action="store_true")
    args = p.parse_args(argv)
    from orsalib.threads import apply_thread_policy

    apply_thread_policy()
    os.environ.setdefault("TQDM_DISABLE", "1")
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    peaks = roofline()
    if not args.no_roofline:
        print(json.dumps(peaks), flush=True)
    extra = [n.strip() for n in args.variants.split(",") if n.strip()]
    for m in [m.strip() for m in args.models.split(",") if m.strip()]:
        rec = measure_model(m, peaks, args.rounds, args.warmup, extra, batch_size=args.batch or None,
                            eval_too=args.eval, say=say)
        print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
