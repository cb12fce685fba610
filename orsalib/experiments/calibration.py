"""Calibration of the verdicts, measured: A/A comparisons of one configuration trained with different seeds.

A verdict procedure is calibrated when two groups of independent trainings of the SAME configuration come out "not
resolved" at the nominal rate. :func:`run_calibration` trains ``2 * per_group * n_comparisons`` runs of one
configuration, each with its own seed, evaluates every run on the same clean evaluation images, splits the runs into
disjoint pairs of groups (``per_group`` runs each: the seeds of a paper claim) and judges each pair by exactly the
code path of a Table 2 claim (:func:`orsalib.experiments.claims.table2_claims`: the learned guard, the crossed seeds x
images comparison, the decision of a family of one). ``results/calibration.json`` holds the share judged "holds" or
"reversed" (``false_verdict_rate``), ``n_comparisons``, its 95 % Clopper-Pearson interval (``ci``, statsmodels),
the ``design`` in words and every comparison.

The cheapest honest configuration (120 trainings must fit the cpu suite): a small classifier head (Linear - ReLU -
Linear, Adam) trained on the frozen features of an already trained model of the run (notebook 50's prior-free twin)
from the real-occlusion split, and evaluated on the clean evaluation split: every run sees the same images, the hard
images are hard for every run (shared image effects), and the seed moves the initial weights and the batch order
(training variance). Each run must beat the majority class, or its comparison is not counted and the file says so.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import stats
from ..engine.evaluate import predict
from ..paths import run_dir
from ..utils import atomic_write_text
from . import claims
from .verdicts import NOT_MEASURED, adjust

#: the A/A design per profile: comparisons, runs per group (a claim's seeds), the head and its training
BUDGET: dict[str, dict[str, Any]] = {
    "smoke": {"n_comparisons": 20, "per_group": 3, "epochs": 3, "hidden": 32, "lr": 1e-2, "batch_size": 32},
    "cpu": {"n_comparisons": 40, "per_group": 3, "epochs": 3, "hidden": 64, "lr": 3e-3, "batch_size": 32},
    "paper": {"n_comparisons": 20, "per_group": 3, "epochs": 3, "hidden": 128, "lr": 1e-3, "batch_size": 64},
}
#: the seeds of the calibration runs start here (away from the seeds of the study itself)
SEED_OFFSET = 1000
_LABEL = "the same configuration (A/A)"


def calibration_path(run_name: str) -> Path:
    """``outputs/<run_name>/results/calibration.json``."""
    return run_dir(run_name) / "results" / "calibration.json"


def frozen_features(model: nn.Module, loader: Any, device: str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features (N, D), labels, manifest rows)`` of a trained model over a loader (its final features)."""
    pr = predict(model, loader, device)
    if pr.features is None:
        raise ValueError("the model returns no features; the calibration heads need its final features")
    return np.asarray(pr.features, dtype=np.float32), np.asarray(pr.labels), np.asarray(pr.indices, dtype=np.int64)


def train_head(x: np.ndarray, y: np.ndarray, seed: int, num_classes: int, *, epochs: int = 3, hidden: int = 64,
               lr: float = 3e-3, batch_size: int = 32) -> nn.Module:  # fmt: skip
    """One training of the calibration configuration: Linear - ReLU - Linear on standardised features, Adam, cross
    entropy; ``seed`` draws the initial weights and the batch order."""
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    xt, yt = torch.as_tensor(x), torch.as_tensor(y, dtype=torch.long)
    head = nn.Sequential(nn.Linear(xt.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(int(epochs)):
        for idx in torch.randperm(len(yt), generator=gen).split(int(batch_size)):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(head(xt[idx]), yt[idx]).backward()
            opt.step()
    return head.eval()


def _judge(correct: dict[int, pd.Series], seeds: list[int], k: int, n_cmp: int, majority: float, *, n_boot: int,
           seed: int) -> list[dict[str, Any]]:  # fmt: skip
    """Each disjoint pair of groups of ``k`` runs judged by the Table 2 claim path (a family of one)."""
    rows = []
    for c in range(n_cmp):
        group = seeds[2 * k * c : 2 * k * (c + 1)]
        a, b = group[:k], group[k:]
        frames = {("A", "clean"): pd.DataFrame({s: correct[s] for s in a}),
                  ("B", "clean"): pd.DataFrame({s: correct[s] for s in b})}  # fmt: skip
        v = adjust(claims.table2_claims(frames, "A", {_LABEL: "B"}, majority=majority, n_boot=n_boot,
                                        seed=seed + c, source="calibration"))[0]  # fmt: skip
        rows.append({"comparison": c, "seeds_a": a, "seeds_b": b, "verdict": v.verdict, "delta": v.delta, "p": v.p,
                     "ci_low": v.ci_low, "ci_high": v.ci_high, "note": v.note})  # fmt: skip
    return rows


def run_calibration(
    model: nn.Module,
    data: Any,
    run_name: str,
    *,
    profile: str = "cpu",
    source: str = "",
    n_comparisons: int | None = None,
    per_group: int | None = None,
    seed: int = 0,
    n_boot: int = 2000,
    device: str = "auto",
    train_split: str = "valid_occluded",
    eval_split: str = "valid",
) -> dict[str, Any]:
    """Train, evaluate and judge the A/A comparisons; write and return ``results/calibration.json``'s content.

    Args:
        model: a trained model of the run whose final features the heads are trained on (e.g. notebook 50's twin).
        data: its prepared data (``loaders[train_split]``, ``loaders[eval_split]``).
        source: what ``model`` is, for the design text (e.g. its train folder).
        n_comparisons, per_group: default the profile's :data:`BUDGET`.
        seed: base seed; the runs use ``SEED_OFFSET + seed + k``.
        train_split: the split the heads learn from (another split than the evaluated one; without it, the training
            split itself).
    """
    from statsmodels.stats.proportion import proportion_confint

    t0 = time.perf_counter()
    plan = BUDGET.get(profile, BUDGET["cpu"])
    n_cmp = int(n_comparisons or plan["n_comparisons"])
    k = int(per_group or plan["per_group"])
    fit_split = train_split if train_split in data.loaders else "train"
    x_fit, y_fit, _ = frozen_features(model, data.loaders[fit_split], device)
    x_eval, y_eval, rows = frozen_features(model, data.loaders[eval_split], device)
    mu, sd = x_fit.mean(0), x_fit.std(0) + 1e-6
    x_fit, x_eval = (x_fit - mu) / sd, (x_eval - mu) / sd
    num_classes = int(max(y_fit.max(), y_eval.max())) + 1
    seeds = [SEED_OFFSET + seed + i for i in range(2 * k * n_cmp)]
    correct = {}
    for s in seeds:
        head = train_head(x_fit, y_fit, s, num_classes, epochs=plan["epochs"], hidden=plan["hidden"], lr=plan["lr"],
                          batch_size=plan["batch_size"])  # fmt: skip
        with torch.no_grad():
            pred = head(torch.as_tensor(x_eval)).argmax(1).numpy()
        correct[s] = pd.Series(pred == y_eval, index=rows)
    majority = stats.majority_rate(y_eval)
    out_rows = _judge(correct, seeds, k, n_cmp, majority, n_boot=n_boot, seed=seed)
    judged = [r for r in out_rows if r["verdict"] != NOT_MEASURED]
    false = sum(r["verdict"] in ("holds", "reversed") for r in judged)
    n = len(judged)
    lo, hi = proportion_confint(false, n, alpha=0.05, method="beta") if n else (float("nan"), float("nan"))
    accs = [100 * float(correct[s].mean()) for s in seeds]
    out = {
        "false_verdict_rate": round(false / n, 4) if n else None,
        "n_false": int(false),
        "n_comparisons": int(n),
        "n_not_counted": len(out_rows) - n,
        "ci": [round(float(lo), 4), round(float(hi), 4)] if n else [None, None],
        "nominal": stats.ALPHA,
        "design": (f"{n_cmp} disjoint A/A comparisons of {k} vs {k} independent trainings of one configuration "
                   f"({len(seeds)} trainings, seeds {seeds[0]}-{seeds[-1]}): a head (Linear {x_fit.shape[1]}-"
                   f"{plan['hidden']}, ReLU, Linear; Adam lr {plan['lr']:g}, {plan['epochs']} epochs, batch "
                   f"{plan['batch_size']}) on the frozen final features of {source or 'a trained model of the run'}, "
                   f"trained on the {fit_split} split ({len(y_fit)} images), every run evaluated on the same "
                   f"{len(y_eval)} {eval_split} images; each pair judged by the Table 2 claim path (learned guard, "
                   "seeds x images comparison, a family of one)"),  # fmt: skip
        "accuracy_pct": {"mean": round(float(np.mean(accs)), 2), "sd": round(float(np.std(accs, ddof=1)), 2),
                         "min": round(min(accs), 2), "max": round(max(accs), 2),
                         "majority_class": round(100 * majority, 2)},  # fmt: skip
        "comparisons": [{k_: (None if isinstance(v_, float) and not np.isfinite(v_) else v_) for k_, v_ in r.items()}
                        for r in out_rows],  # fmt: skip
        "seconds": round(time.perf_counter() - t0, 1),
    }
    path = calibration_path(run_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(out, indent=2) + "\n")
    return out


def calibration_sentence(cal: dict[str, Any]) -> str:
    """One sentence for the notebook and the index."""
    if not cal or cal.get("false_verdict_rate") is None:
        return "Calibration: no A/A comparison was judged (the runs did not beat the majority class)."
    lo, hi = cal["ci"]
    return (f"Calibration: {cal['n_false']} of {cal['n_comparisons']} A/A comparisons (two groups of independent "
            f"trainings of the same configuration) were judged 'holds' or 'reversed': false-verdict rate "
            f"{100 * cal['false_verdict_rate']:.1f} % (95 % CI {100 * lo:.1f}-{100 * hi:.1f} %; nominal 5 %).")


__all__ = ["BUDGET", "calibration_path", "calibration_sentence", "frozen_features", "run_calibration", "train_head"]
