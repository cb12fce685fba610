"""Calibration of the verdicts, measured: A/A comparisons of one configuration trained with different seeds.

A verdict procedure is calibrated when two groups of independent trainings of the SAME configuration come out
"not resolved" at the nominal rate. :func:`run_calibration` trains ``2 * per_group * n_comparisons`` runs of one
configuration (seeds counted from ``seed_offset``), evaluates every run on the same clean evaluation images, splits
the runs into disjoint pairs of groups (``per_group`` runs each, the number of seeds a paper claim uses) and judges
each pair by exactly the code path of a Table 2 claim (:func:`orsalib.experiments.claims.table2_claims`, the learned
guard, the crossed seeds x images test, the decision of a family of one). ``results/calibration.json`` holds the
share judged "holds" or "reversed" (``false_verdict_rate``), ``n_comparisons``, its 95 % Clopper-Pearson interval
(``ci``, statsmodels), the ``design`` in words and every comparison.

The configuration is the profile's prior-free twin on a short budget (:data:`BUDGET`): cheap enough to train many
times, and it learns (every run must beat the majority class, or the comparison is not counted and the file says so).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pandas as pd

from .. import stats
from ..config import RunConfig, apply_overrides
from ..engine.evaluate import predict
from ..paths import run_dir
from ..utils import atomic_write_text
from . import claims
from .fer import prepare_fer_data
from .parallel import side_by_side
from .runs import baseline_config, load_or_train, train_run, train_status
from .verdicts import NOT_MEASURED, adjust

#: the A/A design per profile: comparisons, runs per group, the short training budget of the configuration
BUDGET: dict[str, dict[str, Any]] = {
    # smoke: the plumbing only (its tiny runs stay at chance, so nothing is judged)
    "smoke": {"n_comparisons": 1, "per_group": 2, "overrides": {"train.epochs": 1, "train.max_steps_per_epoch": 1}},
    "cpu": {"n_comparisons": 20, "per_group": 3,
            "overrides": {"train.epochs": 2, "train.max_steps_per_epoch": 12, "train.lsce_warmup_epochs": 0,
                          "train.scheduler": "none"}},
    "paper": {"n_comparisons": 20, "per_group": 3, "overrides": {"train.epochs": 2}},
}  # fmt: skip
#: the seeds of the calibration runs start here (away from the seeds of the study itself)
SEED_OFFSET = 1000
_LABEL = "the same configuration (A/A)"


def calibration_path(run_name: str):
    """``outputs/<run_name>/results/calibration.json``."""
    return run_dir(run_name) / "results" / "calibration.json"


def calibration_config(cfg: RunConfig) -> RunConfig:
    """The configuration the A/A comparisons train: ``cfg``'s prior-free twin on the profile's short budget (it reads
    no priors, so none are prepared for it)."""
    over = {**BUDGET.get(cfg.profile, BUDGET["cpu"])["overrides"], "prior.source": "none"}
    return apply_overrides(baseline_config(cfg), over)


def _correct(model: Any, data: Any, device: str) -> tuple[pd.Series, np.ndarray]:
    """Per-image correctness on the clean evaluation split (indexed by row) and the true labels."""
    pr = predict(model, data.loaders["valid"], device)
    labels = np.asarray(pr.labels)
    return pd.Series(np.asarray(pr.preds) == labels, index=np.asarray(pr.indices, dtype=np.int64)), labels


def run_calibration(
    cfg: RunConfig,
    run_name: str,
    *,
    n_comparisons: int | None = None,
    per_group: int | None = None,
    seed: int = 0,
    n_boot: int = 2000,
) -> dict[str, Any]:
    """Train, evaluate and judge the A/A comparisons; write and return ``results/calibration.json``'s content.

    Args:
        cfg: the study's config (profile, data, device); the trained configuration is :func:`calibration_config`.
        run_name: runs go to ``outputs/<run_name>/calibration/seed<k>/`` (finished runs are reused).
        n_comparisons, per_group: default the profile's :data:`BUDGET`.
        seed: base seed; the runs use ``SEED_OFFSET + seed + k``.
    """
    from statsmodels.stats.proportion import proportion_confint

    t0 = time.perf_counter()
    plan = BUDGET.get(cfg.profile, BUDGET["cpu"])
    n_cmp = int(n_comparisons or plan["n_comparisons"])
    k = int(per_group or plan["per_group"])
    ccfg = calibration_config(cfg)
    seeds = [SEED_OFFSET + seed + i for i in range(2 * k * n_cmp)]
    base = run_dir(run_name) / "calibration"
    cfgs = {s: apply_overrides(ccfg, {"seed": s}) for s in seeds}
    dirs = {s: base / f"seed{s}" for s in seeds}
    data = prepare_fer_data(ccfg)
    todo = [s for s in seeds if train_status(dirs[s]) != "completed"]
    side_by_side(train_run, [(f"A/A seed {s}", dict(cfg=cfgs[s], run_dir=str(dirs[s]))) for s in todo], cfg.device)
    correct, lab = {}, np.empty(0)
    for s in seeds:
        model, _, _ = load_or_train(cfgs[s], dirs[s], train_if_missing=True, data=data, which="last")
        correct[s], lab = _correct(model, data, cfg.device)
    majority = stats.majority_rate(lab)
    rows = []
    for c in range(n_cmp):
        group = seeds[2 * k * c : 2 * k * (c + 1)]
        a, b = group[:k], group[k:]
        frames = {("A", "clean"): pd.DataFrame({s: correct[s] for s in a}),
                  ("B", "clean"): pd.DataFrame({s: correct[s] for s in b})}  # fmt: skip
        v = adjust(claims.table2_claims(frames, "A", {_LABEL: "B"}, dataset=ccfg.data.dataset,
                                        num_classes=ccfg.data.num_classes, majority=majority, n_boot=n_boot,
                                        seed=seed + c, source="calibration"))[0]  # fmt: skip
        rows.append({"comparison": c, "seeds_a": a, "seeds_b": b, "verdict": v.verdict, "delta": v.delta,
                     "p": v.p, "ci_low": v.ci_low, "ci_high": v.ci_high, "note": v.note})  # fmt: skip
    judged = [r for r in rows if r["verdict"] != NOT_MEASURED]
    false = sum(r["verdict"] in ("holds", "reversed") for r in judged)
    n = len(judged)
    lo, hi = proportion_confint(false, n, alpha=0.05, method="beta") if n else (float("nan"), float("nan"))
    accs = {s: round(100 * float(correct[s].mean()), 2) for s in seeds}
    out = {
        "false_verdict_rate": round(false / n, 4) if n else None,
        "n_false": int(false),
        "n_comparisons": int(n),
        "n_not_counted": len(rows) - n,
        "ci": [round(float(lo), 4), round(float(hi), 4)],
        "nominal": 0.05,
        "design": (f"{n_cmp} disjoint A/A comparisons: {2 * k * n_cmp} independent trainings of one configuration "
                   f"({ccfg.model.name}, {ccfg.train.epochs} epochs x {ccfg.train.max_steps_per_epoch or 'all'} "
                   f"batches of {ccfg.train.batch_size}, {ccfg.data.dataset}), seeds {seeds[0]}-{seeds[-1]}, split "
                   f"into groups of {k} vs {k} runs, each pair judged by the Table 2 claim path (learned guard, "
                   "crossed seeds x images test, family of one) on the same clean evaluation images"),  # fmt: skip
        "accuracy_pct": {"mean": round(float(np.mean(list(accs.values()))), 2),
                         "min": min(accs.values()), "max": max(accs.values()),
                         "majority_class": round(100 * majority, 2)},  # fmt: skip
        "comparisons": [{k_: (None if isinstance(v_, float) and not np.isfinite(v_) else v_) for k_, v_ in r.items()}
                        for r in rows],  # fmt: skip
        "minutes": round((time.perf_counter() - t0) / 60, 2),
    }
    path = calibration_path(run_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(out, indent=2) + "\n")
    return out


def calibration_sentence(cal: dict[str, Any]) -> str:
    """One sentence for the notebook and the index."""
    if not cal or cal.get("false_verdict_rate") is None:
        return "Calibration: no A/A comparison was judged."
    lo, hi = cal["ci"]
    return (f"Calibration: {cal['n_false']} of {cal['n_comparisons']} A/A comparisons (two groups of independent "
            f"trainings of the same configuration) were judged 'holds' or 'reversed': false-verdict rate "
            f"{100 * cal['false_verdict_rate']:.1f} % (95 % CI {100 * lo:.1f}-{100 * hi:.1f} %; nominal 5 %).")


__all__ = ["BUDGET", "calibration_config", "calibration_path", "calibration_sentence", "run_calibration"]
