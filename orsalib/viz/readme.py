"""The README's numbers from runs: every number README.md quotes from a suite run is written there by this module.

Two steps, both by ``python -m orsalib.viz.readme``:

1. **snapshot** (``--runs default seed1``): read the finished runs' ``outputs/<run>/runbook.json`` (status, minutes
   and peak memory per notebook), ``results/NN_*.json`` (headline numbers) and verdicts (counted by
   :func:`orsalib.experiments.claims.verdict_counts` over :func:`~orsalib.experiments.claims.load_verdicts`), and
   write the compact, committed ``docs/results/cpu_suite.json`` (``outputs/`` is not committed: the snapshot is
   what the README and its test read);
2. **render**: rewrite every marked block of README.md, ``<!-- results:NAME -->...<!-- /results:NAME -->``, with
   the text :func:`render_blocks` makes from the snapshot (``--render-only`` skips step 1).

``tests/test_readme_numbers.py`` renders the blocks from the committed snapshot and compares them byte for byte with
README.md. The first run named is the main one (its training and evaluation numbers); every run gets a row of verdict
counts. A snapshot of a profile other than ``cpu`` says so in every block.

Usage::

    .venv/bin/python -m orsalib.viz.readme --runs default seed1      # after the cpu suite at seeds 0 and 1
    .venv/bin/python -m orsalib.viz.readme --render-only             # README from the committed snapshot
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..paths import REPO_ROOT, run_dir

SNAPSHOT: Path = REPO_ROOT / "docs" / "results" / "cpu_suite.json"
README: Path = REPO_ROOT / "README.md"
#: the verdicts in the order of the README's columns (those of orsalib.experiments.claims.VERDICTS)
VERDICT_COLUMNS: tuple[str, ...] = ("holds", "reversed", "not resolved", "not measured")
_BLOCK = re.compile(r"(<!-- results:(?P<name>[a-z0-9_]+) -->)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


# ----------------------------------------------------------------------------- step 1: the snapshot
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _parameters(root: Path) -> dict[str, Any]:
    """The parameters papermill injected into the run's first executed notebook (profile, seed, ...)."""
    for nb in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        meta = (_read_json(nb) or {}).get("metadata", {})
        params = meta.get("papermill", {}).get("parameters")
        if isinstance(params, dict):
            return params
    return {}


def _verdict_counts(run_name: str) -> dict[str, int] | None:
    """The run's verdict counts (every expected claim; a missing one is 'not measured'); None without verdicts."""
    if not (run_dir(run_name, create=False) / "results" / "verdicts.json").is_file():
        return None
    from ..experiments.claims import load_verdicts, verdict_counts

    counts = verdict_counts(load_verdicts(run_name))
    return {k: int(counts.get(k, 0)) for k in VERDICT_COLUMNS}


def _claim_verdicts(run_name: str) -> dict[str, str]:
    """``{"<table> | <claim>": verdict}`` of the run's measured claims (the flip check between runs)."""
    if not (run_dir(run_name, create=False) / "results" / "verdicts.json").is_file():
        return {}
    from ..experiments.claims import load_verdicts

    return {f"{v.table} | {v.claim}": v.verdict for v in load_verdicts(run_name) if v.verdict != "not measured"}


def run_entry(run_name: str) -> dict[str, Any]:
    """One run's entry of the snapshot (raises FileNotFoundError when the run has no ``runbook.json``)."""
    root = run_dir(run_name, create=False)
    book = _read_json(root / "runbook.json")
    if not isinstance(book, list) or not book:
        raise FileNotFoundError(f"run {run_name!r}: no {root / 'runbook.json'}; run `orsa reproduce` first")
    params = _parameters(root)
    results = {p.stem: _read_json(p) for p in sorted((root / "results").glob("[0-9][0-9]_*.json"))}
    notebooks = {str(e["notebook"]): {"status": e.get("status"), "minutes": round(float(e.get("seconds", 0)) / 60, 2),
                                      "peak_gb": round(float(e["peak_rss_mb"]) / 1024, 2) if e.get("peak_rss_mb")
                                      else None} for e in book}  # fmt: skip
    entry: dict[str, Any] = {
        "run": run_name,
        "profile": str(params.get("profile") or next((e.get("profile") for e in book if e.get("profile")), "")),
        "seed": params.get("seed"),
        "complete": all(v["status"] == "ok" for v in notebooks.values()),
        "notebooks": notebooks,
        "total_minutes": round(sum(v["minutes"] for v in notebooks.values()), 1),
        "peak_gb": max((v["peak_gb"] or 0 for v in notebooks.values()), default=0),
        "verdicts": _verdict_counts(run_name),
        "claims": _claim_verdicts(run_name),
        "calibration": {k: v for k, v in (_read_json(root / "results" / "calibration.json") or {}).items()
                        if k in ("false_verdict_rate", "n_false", "n_comparisons", "ci")} or None,  # fmt: skip
    }
    train = results.get("40_training") or {}
    keep = ("model", "dataset", "epochs", "last_epoch", "last_val_acc_pct", "last_valid_occluded_acc_pct",
            "best_epoch", "best_val_acc_pct", "best_valid_occluded_acc_pct", "majority_class_acc_pct",
            "train_minutes")  # fmt: skip
    entry["training"] = {k: train[k] for k in keep if k in train} or None
    pri = results.get("20_prior_visualization") or {}
    keys = ("detected_source", "detected_nme_clean", "detected_nme_occluded", "detected_miou_clean",
            "detected_miou_occluded")  # fmt: skip
    entry["priors"] = {k: pri[k] for k in keys if k in pri} or None
    ev = results.get("50_evaluation_occlusion") or {}
    acc: dict[str, dict[str, float]] = {}
    for key, value in ev.items():
        m = re.fullmatch(r"([^/]+)/(.+)_acc_pct", key)  # "<model>/<condition>_acc_pct"
        if m and " / " not in m.group(2) and isinstance(value, (int, float)):  # not the breakdowns by occluder
            acc.setdefault(m.group(1), {})[m.group(2)] = value
    entry["evaluation"] = {"models": acc, "roles": ev.get("roles"), "n_clean": ev.get("n_clean"),
                           "majority_class_acc_pct": ev.get("majority_class_acc_pct")} if acc else None  # fmt: skip
    return entry


def make_snapshot(run_names: Sequence[str]) -> dict[str, Any]:
    """The snapshot of ``run_names`` (the first is the main run)."""
    if not run_names:
        raise ValueError("name at least one run (--runs default seed1)")
    return {
        "written_by": "python -m orsalib.viz.readme --runs " + " ".join(run_names),
        "runs": [run_entry(r) for r in run_names],
    }


# ----------------------------------------------------------------------------- step 2: the README's blocks
def _pct(x: Any) -> str:
    return f"{x:.1f} %" if isinstance(x, (int, float)) else "-"


def _provenance(main: Mapping[str, Any]) -> str:
    """The words every block ends with when the numbers are not the cpu suite's."""
    if main.get("profile") == "cpu" and main.get("complete"):
        return ""
    what = "incomplete run" if not main.get("complete") else f"{main.get('profile') or '?'}-profile run"
    return f" **({what} `{main['run']}`, not the cpu suite: to be regenerated with `make readme RUNS=...`)**"


def _seed(run: Mapping[str, Any]) -> str:
    return "0 (default)" if run.get("seed") is None else str(run["seed"])


def block_verdicts(snap: Mapping[str, Any]) -> str:
    rows = ["| run | seed | holds | reversed | not resolved | not measured |", "|---|---|---|---|---|---|"]
    for run in snap["runs"]:
        counts = run.get("verdicts")
        cells = [str(counts[k]) for k in VERDICT_COLUMNS] if counts else ["-"] * len(VERDICT_COLUMNS)
        rows.append(f"| `{run['run']}` ({run.get('profile') or '?'}) | {_seed(run)} | " + " | ".join(cells) + " |")
    lines = []
    runs = snap["runs"]
    if len(runs) > 1:
        flips = flipped_claims(runs)
        lines.append(f"Claims that hold in one run and are reversed in another: {len(flips)}"
                     + (f" ({'; '.join(flips)})" if flips else "") + ".")  # fmt: skip
    for run in runs:
        cal = run.get("calibration")
        if cal and cal.get("false_verdict_rate") is not None:
            lo, hi = cal["ci"]
            lines.append(f"Calibration of `{run['run']}` (`results/calibration.json`): {cal['n_false']} false verdicts "
                         f"in {cal['n_comparisons']} A/A comparisons, rate {100 * cal['false_verdict_rate']:.1f} % "
                         f"(95 % CI {100 * lo:.1f}-{100 * hi:.1f} %).")  # fmt: skip
    note = _provenance(snap["runs"][0])
    extra = "".join(f"\n{x}\n" for x in lines)
    return "\n" + "\n".join(rows) + "\n" + extra + (f"\n{note.strip()}\n" if note else "")


def flipped_claims(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The claims judged "holds" in one run and "reversed" in another (a verdict must never flip that way)."""
    seen: dict[str, set[str]] = {}
    for run in runs:
        for claim, verdict in (run.get("claims") or {}).items():
            seen.setdefault(claim, set()).add(verdict)
    return sorted(c for c, vs in seen.items() if {"holds", "reversed"} <= vs)


def block_suite(snap: Mapping[str, Any]) -> str:
    main = snap["runs"][0]
    nbs = main["notebooks"]
    per = ", ".join(f"{v['minutes']:.1f}" for v in nbs.values())
    first, last = (next(iter(nbs))[:2], list(nbs)[-1][:2]) if nbs else ("", "")
    return (f"{main['total_minutes']:.1f} minutes (per notebook {per} for {first} ... {last}), peak memory "
            f"{main['peak_gb']:.1f} GB; run `{main['run']}`, profile {main.get('profile')}{_provenance(main)}")


def block_suite_minutes(snap: Mapping[str, Any]) -> str:
    main = snap["runs"][0]
    note = "" if not _provenance(main) else f" (run `{main['run']}`, {main.get('profile')} profile: to be regenerated)"
    return f"{main['total_minutes']:.0f}{note}"


def block_training(snap: Mapping[str, Any]) -> str:
    main = snap["runs"][0]
    t = main.get("training")
    if not t:
        return f"(no notebook 40 result in run `{main['run']}`){_provenance(main)}"
    return (f"`{t.get('model')}` on {t.get('dataset')}, {t.get('epochs')} epochs: {_pct(t.get('last_val_acc_pct'))} "
            f"clean / {_pct(t.get('last_valid_occluded_acc_pct'))} occluded validation accuracy at the last epoch "
            f"({t.get('last_epoch')}); best epoch {t.get('best_epoch')}: {_pct(t.get('best_val_acc_pct'))} / "
            f"{_pct(t.get('best_valid_occluded_acc_pct'))}; majority class {_pct(t.get('majority_class_acc_pct'))}; "
            f"{t.get('train_minutes', 0):.1f} minutes of training{_provenance(main)}")


def block_evaluation(snap: Mapping[str, Any]) -> str:
    main = snap["runs"][0]
    ev = main.get("evaluation")
    if not ev:
        return f"\n(no notebook 50 result in run `{main['run']}`){_provenance(main)}\n"
    conditions = list(dict.fromkeys(c for accs in ev["models"].values() for c in accs))
    roles = ev.get("roles") or {}
    rows = ["| model | role | " + " | ".join(conditions) + " |", "|---" * (len(conditions) + 2) + "|"]
    for model, accs in ev["models"].items():
        role = roles.get(model, "") if isinstance(roles, dict) else ""
        rows.append(f"| `{model}` | {role} | " + " | ".join(_pct(accs.get(c)) for c in conditions) + " |")
    note = (f"Accuracy in % on {ev.get('n_clean')} validation faces per condition (majority class "
            f"{_pct(ev.get('majority_class_acc_pct'))}).{_provenance(main)}")
    return "\n" + "\n".join(rows) + "\n\n" + note + "\n"


def block_priors(snap: Mapping[str, Any]) -> str:
    main = snap["runs"][0]
    pr = main.get("priors")
    if not pr or "detected_nme_clean" not in pr:
        return f"(no notebook 20 result in run `{main['run']}`){_provenance(main)}"

    def num(k: str) -> str:
        return f"{pr[k]:.3f}" if isinstance(pr.get(k), (int, float)) else "-"

    return (f"`{pr.get('detected_source', 'detected')}` priors under occluders: landmark NME "
            f"{num('detected_nme_clean')} -> {num('detected_nme_occluded')} of the inter-ocular distance, parsing mIoU "
            f"{num('detected_miou_clean')} -> {num('detected_miou_occluded')} (clean -> occluded faces)"
            f"{_provenance(main)}")


#: block name -> renderer (README.md holds one marked block of each)
BLOCKS = {
    "verdicts": block_verdicts,
    "suite": block_suite,
    "suite_minutes": block_suite_minutes,
    "training": block_training,
    "priors": block_priors,
    "evaluation": block_evaluation,
}


def render_blocks(snap: Mapping[str, Any]) -> dict[str, str]:
    """``{block name: text}`` of every block, from a snapshot."""
    return {name: fn(snap) for name, fn in BLOCKS.items()}


def readme_blocks(text: str) -> dict[str, str]:
    """The marked blocks of a README text: ``{name: body}``."""
    return {m.group("name"): m.group("body") for m in _BLOCK.finditer(text)}


def rewrite(text: str, blocks: Mapping[str, str]) -> str:
    """``text`` with each marked block's body replaced (a block without a renderer is left as it is)."""
    missing = set(blocks) - set(readme_blocks(text))
    if missing:
        raise ValueError(f"README.md has no marked block for {sorted(missing)} (<!-- results:NAME -->...)")
    return _BLOCK.sub(lambda m: m.group(1) + blocks.get(m.group("name"), m.group("body")) + m.group(4), text)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orsalib.viz.readme", description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs="+", default=[], help="finished runs under outputs/, the main one first")
    ap.add_argument("--render-only", action="store_true", help="rewrite README.md from the committed snapshot")
    ap.add_argument("--snapshot", default=str(SNAPSHOT))
    ap.add_argument("--readme", default=str(README))
    args = ap.parse_args(argv)
    snap_path, readme = Path(args.snapshot), Path(args.readme)
    if not args.render_only:
        snap = make_snapshot(args.runs)
        snap_path.parent.mkdir(parents=True, exist_ok=True)
        snap_path.write_text(json.dumps(snap, indent=1) + "\n", encoding="utf-8")
        print(f"snapshot of {', '.join(args.runs)} -> {snap_path}")
    snap = json.loads(snap_path.read_text(encoding="utf-8"))
    readme.write_text(rewrite(readme.read_text(encoding="utf-8"), render_blocks(snap)), encoding="utf-8")
    print(f"{len(BLOCKS)} blocks rewritten in {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
