"""The CPU model family side by side: does each model learn SynthFER at the cpu budget? (a script, not a test)

Trains, with the same SynthFER data, epochs, recipe and seed, through the workbook's own engine
(``orsalib.experiments.fer.train_fer``: Adam, cosine, LSCE warm-up then CE + 0.1 DARE, balanced sampler, flips and
random erasing):

- ``baseline_cpu``: the prior-free twin (``orsanet_cpu``'s image branch -> mean over tokens -> LN -> SE -> head);
- ``orsanet_cpu``: every component (SSGM/SPADE, MCM, landmark reintegration), oracle priors;
- ``resnet18_cpu``: timm ``resnet18`` from scratch, the reference SynthFER's difficulty is calibrated against;
- ``ran_cpu``: RAN as notebook 80 trains it (``experiments.ran.ran_config``: no DARE / warm-up, + region biased
  loss, weight 1, margin 0.1).

One JSON line per model: last-epoch clean (``valid``) and occluded (``valid_occluded``) accuracy in %, the best
epoch and its clean accuracy (selected on ``valid``: optimistic), minutes, training images/s and the 1-minute load
average before and after (the machine may be shared: read the minutes beside the load).

Usage::

    python benchmarks/cpu_family.py                          # the recommended cpu budget (BUDGET below)
    OMP_NUM_THREADS=1 python benchmarks/cpu_family.py --threads 1 --models baseline_cpu ran_cpu
    python benchmarks/cpu_family.py --epochs 4 --train-per-class 200       # a quicker look
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

#: the recommended cpu-profile budget (docs/cpu_family.md): SynthFER sizes and the optimisation
BUDGET: dict[str, Any] = {
    "data.train_per_class": 400,
    "data.val_per_class": 100,
    "data.image_size": 64,
    "data.synth_size": 64,
    "train.epochs": 8,
    "train.lr": 2e-3,
    "train.batch_size": 32,
}
MODELS: tuple[str, ...] = ("baseline_cpu", "orsanet_cpu", "resnet18_cpu", "ran_cpu")
PRIORS: dict[str, str] = {"orsanet_cpu": "oracle"}  # every other model trains without priors


def model_config(model: str, budget: dict[str, Any], seed: int, device: str):
    """The run config of ``model`` at ``budget`` (cpu profile), and the criterion's extra term (RAN) or None."""
    from orsalib.config import load_profile
    from orsalib.experiments.ran import ran_config, region_loss_term

    base = {**budget, "prior.source": PRIORS.get(model, "none"), "seed": seed, "device": device}
    if model.startswith("ran_"):
        cfg = ran_config(load_profile("cpu", base, run_name="cpu_family"), model=model)
        return cfg, region_loss_term(1.0, float(cfg.model.extra.get("margin", 0.1)))
    return load_profile("cpu", {**base, "model.name": model}, run_name="cpu_family"), None


def train_one(model: str, budget: dict[str, Any], seed: int, device: str, out: Path) -> dict[str, Any]:
    """Train ``model`` at ``budget``; one result row."""
    from orsalib.experiments.fer import build_fer_model, train_fer

    cfg, extra = model_config(model, budget, seed, device)
    params = sum(p.numel() for p in build_fer_model(cfg).parameters())
    load0, t0 = os.getloadavg(), time.perf_counter()
    res = train_fer(cfg, run_dir=out / model, criterion_extra=extra, existing="overwrite")
    minutes = (time.perf_counter() - t0) / 60
    imgs = [h["images_per_s"] for h in res.history if h.get("images_per_s")]
    return {
        "model": model,
        "priors": cfg.prior.source,
        "params": params,
        "clean_last": round(100 * res.last["val_acc"], 2),
        "occluded_last": round(100 * res.last["valid_occluded_acc"], 2),
        "best_epoch": res.best_epoch,
        "clean_best": round(100 * res.best["val_acc"], 2),
        "epochs": len(res.history),
        "minutes": round(minutes, 2),
        "train_images_per_s": round(sum(imgs) / len(imgs), 1) if imgs else None,
        "threads": torch.get_num_threads(),
        "load_before": [round(x, 2) for x in load0],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "budget": {k.split(".")[1]: v for k, v in budget.items()},
        "seed": seed,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), help=f"registered FER models (default {MODELS})")
    ap.add_argument("--train-per-class", type=int, default=BUDGET["data.train_per_class"])
    ap.add_argument("--val-per-class", type=int, default=BUDGET["data.val_per_class"])
    ap.add_argument("--epochs", type=int, default=BUDGET["train.epochs"])
    ap.add_argument("--lr", type=float, default=BUDGET["train.lr"])
    ap.add_argument("--batch", type=int, default=BUDGET["train.batch_size"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = OMP_NUM_THREADS, else every core)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="", help="folder for the runs ('' = a temporary folder, removed at the end)")
    args = ap.parse_args()
    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    os.environ.setdefault("TQDM_DISABLE", "1")
    budget = {
        **BUDGET,
        "data.train_per_class": args.train_per_class,
        "data.val_per_class": args.val_per_class,
        "train.epochs": args.epochs,
        "train.lr": args.lr,
        "train.batch_size": args.batch,
    }
    with tempfile.TemporaryDirectory(prefix="cpu_family_") as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        for model in args.models:
            row = train_one(model, budget, args.seed, args.device, out)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
