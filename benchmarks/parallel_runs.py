"""Trainings one after the other vs side by side in worker processes (``orsalib.experiments.parallel``).

Two workloads, each run both ways in the same process tree, one after the other, rounds alternating which goes first:

- ``fer``: notebook 50's prior-free contenders (``baseline_cpu``, ``resnet18_cpu``, ``ran_cpu``) beside an
  ``orsanet_cpu`` with oracle priors, on the cpu profile's SynthFER build (88 batches per epoch), ``--epochs`` each;
- ``hsi``: notebook 71's 16 SpectralFormer trainings (Indian Pines and Pavia University, pixel- and patch-wise, two
  seeds, with and without DARELoss) at the cpu profile's size.

One JSON line per workload and round: seconds one at a time (``ORSA_PARALLEL_RUNS=1``, the thread policy's threads),
seconds side by side (the plan of ``plan_workers``), their ratio, the plan, and the 1-minute load average before and
after (the machine may be shared: read the ratio beside the load). Run it alone.

Usage::

    python benchmarks/parallel_runs.py                    # both workloads, 1 round
    python benchmarks/parallel_runs.py --kind hsi --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _fer(epochs: int) -> None:
    from orsalib.config import load_profile
    from orsalib.experiments import compare
    from orsalib.experiments.fer import prepare_fer_data

    cfg = load_profile("cpu", {"prior.source": "oracle", "train.epochs": epochs}, run_name=f"bench-{time.time_ns()}")
    data = prepare_fer_data(cfg)
    items = compare.contenders(cfg, cfg.run_name, roles=["twin", "alternative", "ran"])
    compare.load_contenders(items, data, train_main=True)


def _hsi() -> None:
    from orsalib.experiments import transfer as X

    X.run_table7(["indian_pines", "pavia_u"], ["pixel", "patch"], [0, 1], f"bench-{time.time_ns()}", "cpu")


def _timed(kind: str, workers: str, epochs: int) -> float:
    os.environ["ORSA_PARALLEL_RUNS"] = workers
    t0 = time.perf_counter()
    _fer(epochs) if kind == "fer" else _hsi()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", default="fer,hsi", help="comma list of fer, hsi")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3,
                   help="fer: epochs per model (a worker's start-up and data preparation are paid once per run)")
    args = p.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="orsa-bench-parallel-"))
    os.environ["ORSA_OUTPUTS_DIR"] = str(out)  # before orsalib is imported
    os.environ.setdefault("TQDM_DISABLE", "1")
    from orsalib.experiments.parallel import plan_workers
    from orsalib.threads import apply_thread_policy

    threads = apply_thread_policy()
    try:
        if "fer" in args.kind:  # build the SynthFER data and prior caches once, outside the timings
            from orsalib.config import load_profile
            from orsalib.experiments.fer import prepare_fer_data

            prepare_fer_data(load_profile("cpu", {"prior.source": "oracle"}))
        for kind in [k.strip() for k in args.kind.split(",") if k.strip()]:
            n_tasks = 4 if kind == "fer" else 16
            plan = plan_workers(n_tasks, "cpu")
            for r in range(args.rounds):
                load0 = os.getloadavg()[0]
                order = ["1", "auto"] if r % 2 == 0 else ["auto", "1"]
                secs: dict[str, float] = {}
                for w in order:
                    secs[w] = _timed(kind, "" if w == "auto" else w, args.epochs)
                rec: dict[str, Any] = {
                    "bench": "parallel_runs", "kind": kind, "round": r, "tasks": n_tasks,
                    "one_at_a_time_s": round(secs["1"], 1), "side_by_side_s": round(secs["auto"], 1),
                    "ratio": round(secs["1"] / secs["auto"], 2), "workers": plan.workers,
                    "threads_each": plan.threads, "threads_one_at_a_time": threads.intra_op,
                    "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
                }  # fmt: skip
                print(json.dumps(rec), flush=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
