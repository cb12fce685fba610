"""The speed figures a user cares about, side by side in one run (``make bench``); docs/speed.md explains them.

Prints one JSON line per bench, each with the machine facts (``threads``, ``load_average``, ``torch``):

- ``{"bench": "train_step", ...}``: one SAM step of orsanet_large (batch 8, 224 px) with cached priors (the
  workbook's fused/vectorised step, channels-last; fp32 and bf16) vs the release's step (``prior.mode=released``:
  the frozen nets recomputed twice per step in train mode; fp32, looped Adam/SAM), interleaved rounds, medians and
  per-round ratios (``cached-fp32_ratio``, ``cached-bf16_ratio``: release time / workbook time);
- ``{"bench": "prior_extract", ...}``: the optimised MobileFaceNet / SegFace extractors vs their plain fp32 eval
  forward on the same batch of real faces: images/s, ``landmark_ratio`` / ``parser_ratio``, landmark NME and
  parsing agreement against the plain output;
- ``{"bench": "suite", ...}``: minutes (and peak memory) per notebook of the last ``orsa reproduce`` run
  (``outputs/<run>/runbook.json``);

then (after the JSON lines, on stdout too) a closing table of every ratio with the load average at the time it was
measured; progress goes to stderr. Takes no arguments (the
defaults are the acceptance settings); ``--quick`` for a short smoke run.

Usage::

    .venv/bin/python benchmarks/run_all.py [--rounds 3] [--quick] [--skip parser,suite] [--run RUN_NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from orsalib.paths import OUTPUTS_DIR
from orsalib.threads import apply_thread_policy

#: train-step variants beside the release's fp32 step (train_throughput.VARIANTS)
DEFAULT_VARIANTS = "cached-fp32,cached-bf16,released-bf16"


def machine_facts() -> dict[str, Any]:
    from train_throughput import machine_facts as facts

    return facts()


def suite_record(run: str | None = None, outputs: Path = OUTPUTS_DIR) -> dict[str, Any]:
    """Minutes per notebook of an ``orsa reproduce`` run: ``outputs/<run>/runbook.json`` (default: the newest)."""
    files = [outputs / run / "runbook.json"] if run else sorted(outputs.glob("*/runbook.json"),
                                                                 key=lambda f: f.stat().st_mtime)  # fmt: skip
    files = [f for f in files if f.is_file()]
    rec: dict[str, Any] = {"bench": "suite"}
    if not files:
        where = outputs / (run or "<run>") / "runbook.json"
        rec.update(run=run, notebooks=[], note=f"no {where} yet: run `orsa reproduce` (make reproduce) first")
        return {**rec, **machine_facts()}
    f = files[-1]
    entries = json.loads(f.read_text(encoding="utf-8"))
    rows = [{"notebook": e.get("notebook"), "status": e.get("status"),
             "minutes": round(float(e.get("seconds", 0.0)) / 60, 2), "peak_rss_mb": e.get("peak_rss_mb")}
            for e in entries]  # fmt: skip
    rec.update(run=f.parent.name, file=str(f), notebooks=rows, total_minutes=round(sum(r["minutes"] for r in rows), 2),
               recorded=time.strftime("%Y-%m-%d %H:%M", time.localtime(f.stat().st_mtime)))  # fmt: skip
    return {**rec, **machine_facts()}


def closing_table(records: list[dict[str, Any]]) -> str:
    """Every ratio of the run with the load average when it was measured."""
    lines = [f"{'ratio':<44}{'value':>8}  {'load average (1, 5, 15 min)':<30}{'threads':>8}"]
    for rec in records:
        load = rec.get("load_average")
        for key, value in rec.items():
            if not key.endswith("_ratio") or not isinstance(value, (int, float)):
                continue
            at = rec.get(f"{key[: -len('_ratio')]}_load_average", load)
            lines.append(f"{rec['bench'] + ': ' + key:<44}{value:>7.2f}x  {str(at):<30}{rec.get('threads', ''):>8}")
    if len(lines) == 1:
        lines.append("(no ratio measured)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per comparison (acceptance: >= 3)")
    p.add_argument("--quick", action="store_true", help="1 round, batch 2 steps, small prior batches (a smoke run)")
    p.add_argument("--skip", default="", help="comma list of train_step, prior_extract, parser, suite")
    p.add_argument("--variants", default=DEFAULT_VARIANTS,
                   help="train-step variants beside the release's (benchmarks/train_throughput.py VARIANTS)")
    p.add_argument("--run", default=None, help="run name of the suite record (default: the newest runbook.json)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    plan = apply_thread_policy()  # before torch is imported: OpenMP starts with the policy (docs/speed.md)
    import prior_extract
    import train_throughput

    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    rounds = 1 if args.quick else args.rounds
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731 - progress on stderr, JSON on stdout
    say(f"thread policy: {plan.as_dict()}")
    records = []
    if "train_step" not in skip:
        say("train_step: orsanet_large, SAM, cached priors vs the release's step (interleaved rounds)")
        names = [n.strip() for n in args.variants.split(",") if n.strip()]
        rec = train_throughput.measure(names, batch_size=2 if args.quick else 8, rounds=rounds, device=args.device,
                                       say=say)  # fmt: skip
        records.append(rec)
        print(json.dumps(rec), flush=True)
    if "prior_extract" not in skip:
        say("prior_extract: optimised vs plain fp32 extractors on the same batch")
        rec = prior_extract.measure(batch=16 if args.quick else 64, parser_batch=2 if args.quick else 8,
                                    rounds=max(rounds, 3), device=args.device, parser="parser" not in skip)  # fmt: skip
        records.append(rec)
        print(json.dumps(rec), flush=True)
    if "suite" not in skip:
        rec = suite_record(args.run)
        records.append(rec)
        print(json.dumps(rec), flush=True)
    print("\n" + closing_table(records), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
