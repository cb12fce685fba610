"""Training throughput of orsanet_large: priors from the cache vs priors recomputed in every step (the release).

One SAM training step (two forward/backward passes, the same loss in both, as released) at batch 8, 224 px:

- ``cached``:   priors are tensors from the prior cache (``landmark_features`` (B,512,7,7), ``parser_features``
  (B,1024,7,7)), as the workbook trains by default;
- ``released``: the frozen MobileFaceNet and Swin-B parser run inside the model on every forward pass, in train
  mode (``priors_in_model=True, prior_mode="released"``), as the released code does (twice per step with SAM).

Both use the trainer's own step (``orsalib.engine.trainer``), so AMP (bf16 on CUDA) and SAM are the real ones.
Prints images/s of each and the ratio. Usage::

    python benchmarks/train_throughput.py [--batch 8] [--steps 3] [--warmup 1] [--device auto] [--no-sam]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from orsalib.config import TrainConfig
from orsalib.engine.trainer import _train_step, build_optimizer, resolve_amp
from orsalib.losses import build_criterion
from orsalib.models import create_model
from orsalib.utils import resolve_device


def _batch(b: int, size: int, device: torch.device, with_priors: bool) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.randn(b, 3, size, size, generator=g), "label": torch.randint(0, 7, (b,), generator=g)}
    if with_priors:  # what the prior cache hands the model (released routing)
        batch["landmark_features"] = torch.randn(b, 512, 7, 7, generator=g)
        batch["parser_features"] = torch.randn(b, 1024, 7, 7, generator=g)
    return {k: v.to(device) for k, v in batch.items()}


def measure(mode: str, args: argparse.Namespace, device: torch.device) -> float:
    """Images/s of ``args.steps`` training steps after ``args.warmup`` untimed ones."""
    in_model = mode == "released"
    torch.manual_seed(0)
    kw = dict(priors_in_model=True, prior_mode="released") if in_model else {}
    model = create_model("orsanet_large", num_classes=7, **kw).to(device).train()
    cfg = replace(TrainConfig(), sam=not args.no_sam, amp=args.amp)
    opt, sam = build_optimizer(model, cfg)
    amp = resolve_amp(cfg.amp, device)
    crit = build_criterion(cfg)
    batch = _batch(args.batch, 224, device, with_priors=not in_model)

    def fwd(m, b):
        pri = {k: b[k] for k in ("landmark_features", "parser_features") if k in b}
        return m(b["image"], priors=pri)

    last = Path("/nonexistent/last.pt")
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
        _train_step(model, batch, crit, cfg.lsce_warmup_epochs, fwd, opt, sam, None, amp, 0.0, 0, i, last)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dt = time.perf_counter() - t0
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    ips = args.batch * args.steps / dt
    print(
        f"{mode:>9}: {ips:8.2f} images/s  ({dt / args.steps:.3f} s/step; params trainable {n_train / 1e6:.2f}M, "
        f"total {n_all / 1e6:.2f}M)",
        flush=True,
    )
    del model, opt, sam
    return ips


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="auto", help="auto (bf16 on CUDA) | none | bf16 | fp16")
    p.add_argument("--no-sam", action="store_true", help="plain Adam step instead of SAM")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU x{torch.get_num_threads()} threads"
    print(
        f"orsanet_large, batch {args.batch}, 224 px, {'SAM(Adam)' if not args.no_sam else 'Adam'}, amp={args.amp}, "
        f"{name}, torch {torch.__version__}"
    )
    cached = measure("cached", args, device)
    released = measure("released", args, device)
    print(f"ratio cached / released: {cached / released:.2f}x")


if __name__ == "__main__":
    main()
