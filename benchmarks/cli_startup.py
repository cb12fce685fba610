"""How long ``orsa`` takes to answer before it does any work: help texts and argument errors.

Each command runs in a fresh process (``python -m orsalib ...``, as the ``orsa`` script does), ``--rounds`` times;
one JSON line per command with the median and the slowest wall time in seconds, the exit code, and the 1-minute
load average before and after (the machine may be shared: read the time beside the load). The goal is <= 2 s for
every line; ``import torch`` alone takes 1-2 s on a 2-core machine, so a command that reaches it is too slow.

A closing table repeats the medians. Nothing here is a test: no threshold fails anything.

Usage::

    .venv/bin/python benchmarks/cli_startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (label, arguments): help texts, then argument errors of several kinds (argparse, a missing path, --set syntax,
#: a run that does not exist, an unknown notebook number)
COMMANDS: list[tuple[str, list[str]]] = [
    ("--help", ["--help"]),
    ("train --help", ["train", "--help"]),
    ("reproduce --help", ["reproduce", "--help"]),
    ("check --help", ["check", "--help"]),
    ("predict --help", ["predict", "--help"]),
    ("error: unknown verb", ["trian"]),
    ("error: bad --profile", ["train", "--profile", "fast"]),
    ("error: --set without =", ["train", "--set", "train.epochs"]),
    ("error: missing --data-root", ["check", "--data-root", "/no/such/folder"]),
    ("error: unknown run", ["evaluate", "--run-name", "no-such-run"]),
    ("error: missing image", ["predict", "--run-name", "RUN", "/no/such/face.png"]),
    ("error: --only 99", ["reproduce", "--only", "99"]),
    ("reproduce --list", ["reproduce", "--list"]),
]


def _load() -> float:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else float("nan")


def time_command(args: list[str], rounds: int, env: dict[str, str]) -> dict:
    """Median and slowest wall time of ``python -m orsalib ARGS`` over ``rounds`` fresh processes."""
    times, rc, last = [], None, ""
    load_before = _load()
    for _ in range(rounds):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "orsalib", *args], capture_output=True, text=True, env=env,
                              cwd=ROOT)  # fmt: skip
        times.append(time.perf_counter() - t0)
        rc = proc.returncode
        last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or [""])[-1]
    return {"median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3), "exit_code": rc,
            "load_before": load_before, "load_after": _load(), "last_line": last[:100]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        outputs = Path(tmp) / "outputs"
        (outputs / "RUN").mkdir(parents=True)  # a run folder, so that predict's missing image is what it reports
        env = {**os.environ, "ORSA_OUTPUTS_DIR": str(outputs)}
        rows = []
        for label, args in COMMANDS:
            rec = {"bench": "cli_startup", "command": label, **time_command(args, opts.rounds, env)}
            print(json.dumps(rec), flush=True)
            rows.append(rec)
    print(f"\n{'command':30s} {'median s':>9s} {'max s':>7s} {'exit':>5s}  load average (1 min)")
    for r in rows:
        print(f"{r['command']:30s} {r['median_s']:9.2f} {r['max_s']:7.2f} {r['exit_code']!s:>5s}  "
              f"{r['load_before']:.2f} -> {r['load_after']:.2f}")  # fmt: skip
    slow = [r["command"] for r in rows if r["max_s"] > 2.0]
    print(f"slower than 2 s: {', '.join(slow) if slow else 'none'}")


if __name__ == "__main__":
    main()
