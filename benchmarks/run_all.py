"""The speed figures a user cares about, side by side in one run (``make bench``); docs/speed.md explains them.

Prints one JSON line per bench, each with the machine facts (``threads``, ``load_average``, ``torch``):

- ``{"bench": "roofline", "fp32_gflops", "bf16_gflops", "threads"}``: first, this machine's GEMM peak (a square
  fp32 and bf16 ``torch.matmul`` with the threads the training uses, best of several repeats): every speed figure
  after it is also a fraction of that peak, measured in the same run;
- ``{"bench": "cpu_family", "model", "images_per_s", "eager_fp32_images_per_s", "speedup", "gflop_per_image_step",
  "peak_fraction", ...}`` for orsanet_cpu, baseline_cpu, resnet18_cpu and ran_cpu: the cpu profile's default
  training step against a plain fp32 eager step of the same model, batch and data, interleaved rounds
  (``benchmarks/cpu_speed.py``); the FLOPs counted with fvcore; the evaluation forward beside it (``eval_*``);
- ``{"bench": "prior_extract", ...}``: the optimised MobileFaceNet / SegFace extractors vs their plain fp32 eval
  forward on the same batch of real faces: images/s, ratios, GFLOP/s and fractions of the peak, landmark NME and
  parsing agreement against the plain output;
- ``{"bench": "cli_startup", ...}`` lines when ``benchmarks/cli_startup.py`` is there (``--skip cli_startup``);
- ``{"bench": "suite", ...}``: minutes (and peak memory) per notebook of the last ``orsa reproduce`` run
  (``outputs/<run>/runbook.json``);

then (after the JSON lines, on stdout too) a closing table of every figure with its fraction of the peak and the load
average at the time it was measured; progress goes to stderr. Takes no arguments (the defaults are the acceptance
settings); ``--quick`` for a short smoke run. ``--with train_step`` adds orsanet_large's SAM step at 224 px
(``benchmarks/train_throughput.py``: the workbook's cached-prior step beside the release's step, a measurement,
no target).

Usage::

    .venv/bin/python benchmarks/run_all.py [--rounds 5] [--quick] [--skip parser,suite] [--run RUN_NAME]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from orsalib.paths import OUTPUTS_DIR
from orsalib.threads import apply_thread_policy

HERE = Path(__file__).resolve().parent
#: train-step variants beside the release's fp32 step (train_throughput.VARIANTS), with ``--with train_step``
DEFAULT_VARIANTS = "cached-fp32,cached-bf16"


def machine_facts() -> dict[str, Any]:
    from cpu_speed import facts

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


def cli_startup_records(rounds: int = 3) -> list[dict[str, Any]]:
    """The JSON lines of ``benchmarks/cli_startup.py`` (a subprocess: it times fresh processes itself), if present."""
    script = HERE / "cli_startup.py"
    if not script.is_file():
        return []
    out = subprocess.run([sys.executable, str(script), "--rounds", str(rounds)], capture_output=True, text=True,
                         check=False)  # fmt: skip
    recs = []
    for line in out.stdout.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            recs.append({"bench": "cli_startup", **rec} if "bench" not in rec else rec)
    return recs


def closing_table(records: list[dict[str, Any]]) -> str:
    """Every speed figure of the run: images/s, GFLOP/s and fraction of the peak, ratio, with the load average."""
    lines = [f"{'figure':<46}{'images/s':>10}{'GFLOP/s':>9}{'of peak':>9}{'ratio':>8}  {'load average (1, 5, 15)':<24}"]

    def row(name: str, ips: Any, gflops: Any, frac: Any, ratio: Any, load: Any) -> None:
        f = lambda x, spec: format(x, spec) if isinstance(x, (int, float)) else "-"  # noqa: E731
        lines.append(f"{name:<46}{f(ips, '10.1f')}{f(gflops, '9.1f')}{f(frac, '9.1%')}"
                     f"{f(ratio, '7.2f') + ('x' if isinstance(ratio, (int, float)) else ' '):>8}  {str(load):<24}")

    for rec in records:
        load, bench = rec.get("load_average"), rec.get("bench")
        if bench == "roofline":
            row(f"roofline: fp32 GEMM ({rec['threads']} threads)", None, rec["fp32_gflops"], 1.0, None, load)
            row(f"roofline: bf16 GEMM ({rec['threads']} threads)", None, rec["bf16_gflops"], 1.0, None, load)
        elif bench == "cpu_family":
            m = rec["model"]
            row(f"{m}: train, default step", rec["images_per_s"], rec["gflops"], rec["peak_fraction"],
                rec["speedup"], load)  # fmt: skip
            row(f"{m}: train, eager fp32", rec["eager_fp32_images_per_s"], rec["eager_gflops"],
                rec["eager_peak_fraction"], None, load)  # fmt: skip
            if "eval_images_per_s" in rec:
                row(f"{m}: eval, default", rec["eval_images_per_s"], rec["eval_gflops"], rec["eval_peak_fraction"],
                    rec["eval_speedup"], load)  # fmt: skip
        elif bench == "prior_extract":
            for part in ("landmarks", "parser"):
                r = rec.get(part)
                if r:
                    row(f"prior extraction: {r['net']}", r["fast_images_per_s"], r.get("fast_gflops"),
                        r.get("fast_peak_fraction"), r["ratio"], rec.get(f"{part[:-1] if part == 'landmarks' else part}"
                                                                       "_load_average", load))  # fmt: skip
        elif bench == "train_step":
            for key, value in rec.items():
                if key.endswith("_ratio") and isinstance(value, (int, float)):
                    row(f"train_step: {key}", None, None, None, value, load)
    if len(lines) == 1:
        lines.append("(nothing measured)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per comparison (acceptance: >= 3)")
    p.add_argument("--quick", action="store_true", help="2 rounds, small prior batches, one model (a smoke run)")
    p.add_argument("--skip", default="", help="comma list of cpu_family, prior_extract, parser, cli_startup, suite")
    p.add_argument("--with", dest="extra", default="", help="train_step: orsanet_large's SAM step (minutes)")
    p.add_argument("--models", default="", help="cpu_family models (default: the four of the cpu family)")
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help="train_step variants (train_throughput.VARIANTS)")
    p.add_argument("--run", default=None, help="run name of the suite record (default: the newest runbook.json)")
    args = p.parse_args(argv)
    plan = apply_thread_policy()  # before torch is imported: OpenMP starts with the policy (docs/speed.md)
    import cpu_speed

    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    extra = {s.strip() for s in args.extra.split(",") if s.strip()}
    rounds = 2 if args.quick else args.rounds
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731 - progress on stderr, JSON on stdout
    say(f"thread policy: {plan.as_dict()}")
    t_start = time.perf_counter()
    records = []

    def emit(rec: dict[str, Any]) -> None:
        records.append(rec)
        print(json.dumps(rec), flush=True)

    say("roofline: GEMM peak, fp32 and bf16")
    peaks = cpu_speed.roofline(repeats=3 if args.quick else 5)
    emit(peaks)
    if "cpu_family" not in skip:
        models = [m.strip() for m in args.models.split(",") if m.strip()] or list(cpu_speed.MODELS)
        if args.quick and not args.models:
            models = models[1:2]
        for m in models:
            say(f"cpu_family: {m}, default step vs eager fp32 (interleaved rounds)")
            emit(cpu_speed.measure_model(m, peaks, rounds=rounds, warmup=2, eval_too=True, say=say))
    if "prior_extract" not in skip:
        import prior_extract

        say("prior_extract: optimised vs plain fp32 extractors on the same batch")
        emit(prior_extract.measure(batch=16 if args.quick else 64, parser_batch=2 if args.quick else 8,
                                   rounds=max(rounds, 3), parser="parser" not in skip, peaks=peaks))  # fmt: skip
    if "train_step" in extra:
        import train_throughput

        say("train_step: orsanet_large, SAM, cached priors vs the release's step (interleaved rounds)")
        names = [n.strip() for n in args.variants.split(",") if n.strip()]
        emit(train_throughput.measure(names, batch_size=2 if args.quick else 8, rounds=rounds, say=say))
    if "cli_startup" not in skip:
        for rec in cli_startup_records(rounds=2 if args.quick else 3):
            emit(rec)
    if "suite" not in skip:
        emit(suite_record(args.run))
    print("\n" + closing_table(records), flush=True)
    print(f"make bench: {(time.perf_counter() - t_start) / 60:.1f} minutes", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
