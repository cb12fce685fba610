"""Training step of orsanet_large: the workbook's cached-prior step vs the release's step, interleaved, in one run.

One SAM training step (two forward/backward passes, the same loss in both, as released) at batch 8, 224 px:

- ``released`` (the release's step, the baseline): the frozen MobileFaceNet and Swin-B parser run inside the model
  on every forward pass in train mode (``priors_in_model=True, prior_mode="released"``: numerically the release),
  twice per step under SAM; fp32; Adam and SAM as released (a per-parameter loop: ``foreach=False``);
- ``cached``: the priors are tensors from the prior cache (``landmark_features`` (B,512,7,7), ``parser_features``
  (B,1024,7,7)), as the workbook trains by default; the trainer's optimizer (fused Adam) and vectorised SAM;
  ``channels_last`` and fp32 or bf16 autocast as listed.

Every variant runs the trainer's own step (:func:`orsalib.engine.trainer.train_step`). The variants are built once,
warmed up once, then timed in interleaved rounds (one step of each per round, the order rotated), so that the load
of a shared machine hits all of them; the ratios are taken per round (baseline time / variant time) and their median
reported, beside the median step times. With ``released-bf16`` among the variants, ``cached-bf16`` is also compared
with the release's step at its own precision (``cached-bf16_same_precision_ratio``). Usage::

    python benchmarks/train_throughput.py [--rounds 3] [--batch 8] [--variants cached-fp32,cached-bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from orsalib.config import TrainConfig
from orsalib.engine.evaluate import default_forward
from orsalib.engine.sam import SAM
from orsalib.engine.trainer import StepState, build_optimizer, resolve_amp, train_step
from orsalib.losses import build_criterion
from orsalib.models import create_model

BASELINE = "released-fp32"
#: name -> (prior mode, amp, channels_last, compile); "released-*" = the release's step (loop Adam/SAM)
VARIANTS: dict[str, tuple[str, str, bool, bool]] = {
    "released-fp32": ("released", "none", False, False),
    "released-bf16": ("released", "bf16", False, False),
    "cached-fp32": ("cached", "none", True, False),
    "cached-bf16": ("cached", "bf16", True, False),
    "cached-fp32-contiguous": ("cached", "none", False, False),
    "cached-bf16-contiguous": ("cached", "bf16", False, False),
    "cached-bf16-compiled": ("cached", "bf16", True, True),
}
DEFAULT_VARIANTS = ("cached-fp32", "cached-bf16")


def machine_facts() -> dict[str, Any]:
    """Threads, load average and torch version: printed beside every figure."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - platforms without getloadavg
        load = None
    return {"threads": torch.get_num_threads(), "load_average": load, "torch": torch.__version__}


def _batch(b: int, size: int, with_priors: bool, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.randn(b, 3, size, size, generator=g), "label": torch.randint(0, 7, (b,), generator=g),
             "index": torch.arange(b)}  # fmt: skip
    if with_priors:  # what the prior cache hands the model (released routing)
        batch["landmark_features"] = torch.randn(b, 512, 7, 7, generator=g)
        batch["parser_features"] = torch.randn(b, 1024, 7, 7, generator=g)
    return {k: v.to(device) for k, v in batch.items()}


@dataclass
class Variant:
    """One timed configuration: its step state, batch and the seconds of its timed steps."""

    name: str
    step: StepState
    batch: dict[str, torch.Tensor]
    build_s: float
    times: list[float] = field(default_factory=list)

    def run(self, i: int) -> float:
        t0 = time.perf_counter()
        train_step(self.step, self.batch, epoch=10, step=i)  # epoch 10: CE + DARE, the main phase of the recipe
        if self.batch["label"].device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0


def build_variant(name: str, batch_size: int, device: torch.device) -> Variant:
    """The model, optimizer, SAM and batch of a variant (see :data:`VARIANTS`)."""
    mode, amp, channels_last, compiled = VARIANTS[name]
    t0 = time.perf_counter()
    torch.manual_seed(0)
    released = mode == "released"
    kw = dict(priors_in_model=True, prior_mode="released") if released else {}
    model = create_model("orsanet_large", num_classes=7, **kw).to(device).train()
    cfg = replace(TrainConfig(), sam=True, amp=amp, channels_last=channels_last)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if released:  # the release's optimizer: torch's per-parameter loop on CPU, and the looped SAM
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)
        sam = SAM(opt, rho=cfg.sam_rho, foreach=False)
    else:
        opt, sam = build_optimizer(model, cfg)
    train_model = torch.compile(model) if compiled else model
    step = StepState(model=train_model, criterion=build_criterion(cfg), forward=default_forward, optimizer=opt,
                     sam=sam, amp_dtype=resolve_amp(amp, device))  # fmt: skip
    batch = _batch(batch_size, 224, not released, device)
    if channels_last:
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    return Variant(name, step, batch, time.perf_counter() - t0)


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def measure(
    names: list[str], batch_size: int = 8, rounds: int = 3, warmup: int = 1, device: str = "cpu",
    say: Callable[[str], None] = lambda msg: print(msg, flush=True),
) -> dict[str, Any]:  # fmt: skip
    """Build the baseline and ``names``, warm each up, then time ``rounds`` interleaved rounds of one step each.

    Returns:
        the JSON record: per variant the median s/step, images/s and per-round times; per variant the per-round
        ratios ``baseline / variant`` and their median (``<variant>_ratio``); the machine facts at the start and end.
    """
    dev = torch.device(device)
    order = [BASELINE] + [n for n in names if n != BASELINE]
    facts_start = machine_facts()
    variants = []
    for n in order:
        v = build_variant(n, batch_size, dev)
        for i in range(warmup):
            t = v.run(i)
            say(f"  warm-up {n}: {t:.1f} s (build {v.build_s:.1f} s)")
        variants.append(v)
    loads = []
    for r in range(rounds):
        k = r % len(variants)
        for v in variants[k:] + variants[:k]:  # rotate: no variant always runs first (or after the same one)
            v.times.append(v.run(warmup + r))
        loads.append(machine_facts()["load_average"])
        say(f"  round {r + 1}/{rounds}: " + ", ".join(f"{v.name} {v.times[-1]:.1f} s" for v in variants)
            + f" (load {loads[-1]})")  # fmt: skip
    base = variants[0].times
    rec: dict[str, Any] = {"bench": "train_step", "model": "orsanet_large", "batch": batch_size, "image_size": 224,
                           "sam": True, "rounds": rounds, "baseline": BASELINE}  # fmt: skip
    rec["variants"] = {
        v.name: {"s_per_step": _median(v.times), "images_per_s": batch_size / _median(v.times), "round_s": v.times,
                 "prior_mode": VARIANTS[v.name][0], "amp": VARIANTS[v.name][1],
                 "channels_last": VARIANTS[v.name][2], "compile": VARIANTS[v.name][3]}
        for v in variants
    }  # fmt: skip
    by_name = {v.name: v for v in variants}
    for v in variants[1:]:
        per_round = [b / t for b, t in zip(base, v.times)]
        rec[f"{v.name}_ratio"] = _median(per_round)
        rec[f"{v.name}_round_ratios"] = per_round
        mode, amp = VARIANTS[v.name][:2]
        twin = by_name.get(f"released-{'fp32' if amp == 'none' else amp}")
        if mode == "cached" and twin is not None and twin is not variants[0]:  # the release's step at this precision
            rec[f"{v.name}_same_precision_ratio"] = _median([b / t for b, t in zip(twin.times, v.times)])
    rec["round_load_average"] = loads
    rec["load_average_start"] = facts_start["load_average"]
    rec.update(machine_facts())
    return rec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help=f"comma list of {sorted(VARIANTS)}")
    args = p.parse_args(argv)
    from orsalib.threads import apply_thread_policy

    apply_thread_policy()
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    rec = measure(names, args.batch, args.rounds, args.warmup, args.device)
    print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
