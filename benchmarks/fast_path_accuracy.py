"""Does the cpu profile's fast training path change the science? Fast path vs plain fp32 eager, several seeds each.

Trains each model with the cpu profile's recipe (``benchmarks/cpu_family.py``: same SynthFER data, epochs, recipe,
priors) twice per seed, through the workbook's own engine (``orsalib.experiments.fer.train_fer``):

- ``fast``: the cpu profile's default step (``train.amp``, ``train.channels_last``, ``train.compile`` as configured);
- ``eager-fp32``: ``train.amp=none``, ``train.channels_last=false``, ``train.compile=false``.

Every training runs in its own spawned process with one thread (``--workers`` of them side by side): the thread
count is the same for both paths, so the paths differ only by their step. One JSON line per training (clean =
``valid``, occluded = ``valid_occluded``, last epoch, %), then per model a summary line: the mean and the sample
standard deviation over seeds of each path, the difference of the means and whether it lies within one seed's
spread of the eager path (|mean fast - mean eager| <= the eager path's standard deviation over seeds). The two
paths are only ever compared with each other: bf16 and fp32 results are never pooled.

Usage::

    python benchmarks/fast_path_accuracy.py                       # orsanet_cpu and baseline_cpu, seeds 0 1 2
    python benchmarks/fast_path_accuracy.py --models ran_cpu --seeds 0 1 2 --epochs 8
    python benchmarks/fast_path_accuracy.py --models orsanet_cpu --epochs 4 --train-per-class 150 --eval-at-end
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PATHS: dict[str, dict[str, Any]] = {
    "fast": {},  # the cpu profile's defaults
    "eager-fp32": {"train.amp": "none", "train.channels_last": False, "train.compile": False},
}
#: relative cost of a training (longest first keeps both workers busy to the end)
COST = {"orsanet_cpu": 3.0, "ran_cpu": 2.5, "resnet18_cpu": 2.2, "baseline_cpu": 2.0}


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    sys.path.insert(0, str(HERE))
    import torch

    torch.set_num_threads(1)


def train_job(model: str, path: str, seed: int, budget: dict[str, Any], out: str) -> dict[str, Any]:
    """One training; its result row."""
    import cpu_family
    import torch

    from orsalib.experiments.fer import train_fer

    cfg, extra = cpu_family.model_config(model, {**budget, **PATHS[path]}, seed, "cpu")
    load0, t0 = os.getloadavg(), time.perf_counter()
    res = train_fer(cfg, run_dir=Path(out) / f"{model}-{path}-s{seed}", criterion_extra=extra, existing="overwrite")
    imgs = [h["images_per_s"] for h in res.history if h.get("images_per_s")]
    return {
        "bench": "fast_path_accuracy", "model": model, "path": path, "seed": seed,
        "amp": cfg.train.amp, "channels_last": cfg.train.channels_last, "compile": cfg.train.compile,
        "clean_last": round(100 * res.last["val_acc"], 2),
        "occluded_last": round(100 * res.last["valid_occluded_acc"], 2),
        "epochs": len(res.history), "minutes": round((time.perf_counter() - t0) / 60, 2),
        "train_images_per_s": round(sum(imgs) / len(imgs), 1) if imgs else None,
        "threads": torch.get_num_threads(),
        "load_before": [round(x, 2) for x in load0], "load_after": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip


def summary(model: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over seeds per path; the difference of the means against the eager spread."""
    out: dict[str, Any] = {"bench": "fast_path_accuracy_summary", "model": model}
    for metric in ("clean_last", "occluded_last"):
        by = {p: [r[metric] for r in sorted(rows, key=lambda r: r["seed"]) if r["path"] == p] for p in PATHS}
        if any(len(v) < 2 for v in by.values()):
            continue
        stats = {p: (statistics.mean(v), statistics.stdev(v)) for p, v in by.items()}
        diff = stats["fast"][0] - stats["eager-fp32"][0]
        out[metric] = {
            **{f"{p}_mean": round(m, 2) for p, (m, _) in stats.items()},
            **{f"{p}_std": round(s, 2) for p, (_, s) in stats.items()},
            **{f"{p}_seeds": v for p, v in by.items()},
            "difference": round(diff, 2),
            "paired_differences": [round(f - e, 2) for f, e in zip(by["fast"], by["eager-fp32"])],
            "within_one_seed_spread": bool(abs(diff) <= stats["eager-fp32"][1]),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    import cpu_family

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["orsanet_cpu", "baseline_cpu"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=cpu_family.BUDGET["train.epochs"])
    p.add_argument("--train-per-class", type=int, default=cpu_family.BUDGET["data.train_per_class"])
    p.add_argument("--eval-at-end", action="store_true", help="evaluate after the last epoch only (a cheaper run)")
    p.add_argument("--workers", type=int, default=2, help="trainings side by side (one thread each)")
    p.add_argument("--out", default="", help="folder for the runs ('' = a temporary folder)")
    args = p.parse_args(argv)
    budget = {**cpu_family.BUDGET, "train.epochs": args.epochs, "data.train_per_class": args.train_per_class}
    if args.eval_at_end:
        budget["train.eval_every"] = args.epochs
    jobs = sorted(((m, path, s) for m in args.models for path in PATHS for s in args.seeds),
                  key=lambda j: -COST.get(j[0], 1.0) * (2.0 if j[1] == "eager-fp32" else 1.0))  # fmt: skip
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fast_path_") as tmp:
        out = args.out or tmp
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_init_worker) as pool:
            futs = [pool.submit(train_job, m, path, s, budget, out) for m, path, s in jobs]
            for f in as_completed(futs):
                rows.append(f.result())
                print(json.dumps(rows[-1]), flush=True)
                m = rows[-1]["model"]
                mine = [r for r in rows if r["model"] == m]
                if len(mine) == len(PATHS) * len(args.seeds):  # every training of this model is done
                    print(json.dumps(summary(m, mine)), flush=True)
    print(json.dumps({"bench": "fast_path_accuracy_total", "minutes": round((time.perf_counter() - t0) / 60, 1),
                      "budget": {k.split(".")[1]: v for k, v in budget.items()}, "workers": args.workers}),
          flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
