"""Forward and train-step throughput of ORSANet: priors computed in the model (as released) vs from the cache.

Side by side in one run:
  * ``orsanet_large``, released routing, frozen MobileFaceNet + Swin-B inside the model (end-to-end, as released);
  * ``orsanet_large``, released routing, priors given as tensors (what the prior cache feeds);
  * ``orsanet_cpu``, paper routing, cached priors (the default of the ``cpu`` profile).

Usage:
    python benchmarks/model_speed.py                      # batch 4 for large, 32 for orsanet_cpu, CPU/GPU auto
    python benchmarks/model_speed.py --batch 8 --iters 5 --threads 2
    python benchmarks/model_speed.py --skip-in-model      # only the cached-prior rows (fast)

A train step is forward + backward + Adam step on the trainable parameters (SAM would double it).
Weights are random: throughput does not depend on their values.
"""

from __future__ import annotations

import argparse
import time

import torch

from orsalib.analysis.complexity import count_params, example_inputs
from orsalib.models import create_model
from orsalib.utils import resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(name: str, batch: int, iters: int, warmup: int, device: torch.device, **overrides) -> dict:
    """Images/s of eval forward and of a train step for one model configuration."""
    model = create_model(name, **overrides).to(device)
    image, priors = example_inputs(model, batch=batch)
    image = image.to(device)
    priors = {k: v.to(device) for k, v in priors.items()}
    labels = torch.randint(0, model.cfg.num_classes, (batch,), device=device)
    row = {"model": name, "setting": ", ".join(f"{k}={v}" for k, v in overrides.items()) or "defaults",
           "batch": batch, "params_trainable_M": count_params(model)["trainable"] / 1e6}  # fmt: skip

    model.eval()
    with torch.no_grad():
        for _ in range(warmup):
            model(image, priors)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(iters):
            model(image, priors)
        _sync(device)
    row["forward_img_s"] = batch * iters / (time.perf_counter() - t0)

    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(image, priors)["logits"], labels)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(device)
    row["train_img_s"] = batch * iters / (time.perf_counter() - t0)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=4, help="batch of orsanet_large (CPU: 4-8)")
    ap.add_argument("--cpu-batch", type=int, default=32, help="batch of orsanet_cpu (its training batch)")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--skip-in-model", action="store_true", help="skip the (slow) priors-in-model row")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__}")

    rows = []
    if not args.skip_in_model:
        rows.append(bench("orsanet_large", args.batch, args.iters, args.warmup, device, priors_in_model=True))
    rows.append(bench("orsanet_large", args.batch, args.iters, args.warmup, device))
    rows.append(bench("orsanet_cpu", args.cpu_batch, args.iters, args.warmup, device))

    ref = rows[0]
    print(f"\n{'model':<14} {'setting':<22} {'batch':>5} {'trainable M':>11} {'fwd img/s':>10} {'train img/s':>11} "
          f"{'fwd x':>7} {'train x':>7}")  # fmt: skip
    for r in rows:
        fx, tx = r["forward_img_s"] / ref["forward_img_s"], r["train_img_s"] / ref["train_img_s"]
        print(
            f"{r['model']:<14} {r['setting']:<22} {r['batch']:>5} {r['params_trainable_M']:>11.2f} "
            f"{r['forward_img_s']:>10.2f} {r['train_img_s']:>11.2f} {fx:>7.2f} {tx:>7.2f}"
        )
    print(f"(x = ratio to the first row: {ref['model']} {ref['setting']})")


if __name__ == "__main__":
    main()
