"""Paper Table 6: component ablations of ORSANet, over seeds, on clean / artificially occluded / real-occluded data.

Each variant is a set of config overrides (the ORSANet switches ``model.seg_prior``, ``model.cross_interaction``,
``model.multi_scale``, ``model.landmark_reintegration`` and the loss switch ``train.dare``), trained with
:func:`orsalib.experiment.train_fer` on data prepared once (:func:`orsalib.experiment.prepare_fer_data`) and
evaluated at the last epoch (no selection on the evaluation split) on the same evaluation conditions
(:func:`orsalib.engine.evaluate.build_conditions`: identical occlusion masks for every variant).

Results are appended to ``<out_dir>/ablations.jsonl`` one (variant, seed) at a time; a rerun skips the pairs
already there (resumable). :func:`summarise` gives mean ± std over seeds beside the paper's numbers, and
:func:`orderings_statement` says which "full > ablation" orderings hold.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import RunConfig, from_dict

#: Table 6 rows as config overrides (dotted keys of :class:`orsalib.config.RunConfig`).
TABLE6_VARIANTS: dict[str, dict[str, Any]] = {
    "full": {},
    "w/o segmentation prior": {"model.seg_prior": False},
    "w/o cross-interaction": {"model.cross_interaction": False},
    "w/o multi-scale": {"model.multi_scale": False},
    "w/o landmark reintegration": {"model.landmark_reintegration": False},
    "w/o DARELoss": {"train.dare": False},
}

#: The paper's Table 6 accuracies (%), per variant and metric column. The paper's table could not be read from the
#: reference material available to this project (only the abstract and the released README/logs were found), so
#: every entry is None: fill them in from the paper (ACM MM 2025, Table 6) rather than trusting a guess.
PAPER_TABLE6: dict[str, dict[str, float | None]] = {v: {} for v in TABLE6_VARIANTS}
PAPER_TABLE6_SOURCE = "not available in the project's reference material; fill in from the paper's Table 6"

#: Evaluation columns of the ablation table.
METRICS: tuple[str, ...] = ("clean_acc", "occluded_acc", "real_occluded_acc")


def slug(name: str) -> str:
    """A folder-safe name of a variant (``"w/o DARELoss"`` -> ``"wo_dareloss"``)."""
    s = re.sub(r"[^a-z0-9]+", "_", name.lower().replace("w/o", "wo")).strip("_")
    return s or "variant"


def _set_dotted(d: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    cur = d
    for p in parts[:-1]:
        if not isinstance(cur.get(p), dict):
            raise KeyError(f"ablation override {key!r}: unknown config section {p!r}")
        cur = cur[p]
    if parts[-1] not in cur:
        raise KeyError(f"ablation override {key!r}: unknown config key; known here: {sorted(cur)}")
    cur[parts[-1]] = copy.deepcopy(value)


def variant_config(cfg: RunConfig, overrides: Mapping[str, Any], seed: int | None = None) -> RunConfig:
    """``cfg`` with a variant's dotted overrides (and ``seed``) applied, validated; ``cfg`` is not modified."""
    d = copy.deepcopy(cfg.to_dict())
    for k, v in overrides.items():
        _set_dotted(d, k, v)
    if seed is not None:
        d["seed"] = int(seed)
    return from_dict(d)


def validate_variants(cfg: RunConfig, variants: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Raise if any variant's overrides do not apply to ``cfg`` (unknown key or invalid value)."""
    for name, ov in (variants or TABLE6_VARIANTS).items():
        try:
            variant_config(cfg, ov)
        except (KeyError, ValueError) as e:
            raise ValueError(f"ablation variant {name!r}: {e}") from e


def _done_pairs(path: Path) -> set[tuple[str, int]]:
    from .utils import read_jsonl

    if not path.is_file():
        return set()
    return {(r["variant"], int(r["seed"])) for r in read_jsonl(path) if "variant" in r and "seed" in r}


def read_results(out_dir: str | Path) -> pd.DataFrame:
    """The per-(variant, seed) records written so far (latest record per pair)."""
    from .utils import read_jsonl

    path = Path(out_dir) / "ablations.jsonl"
    if not path.is_file():
        return pd.DataFrame(columns=["variant", "seed", *METRICS])
    df = pd.DataFrame(read_jsonl(path))
    return df.drop_duplicates(["variant", "seed"], keep="last").reset_index(drop=True)


def run_ablations(
    cfg: RunConfig,
    variants: Mapping[str, Mapping[str, Any]] | Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    *,
    out_dir: str | Path | None = None,
    data: Any = None,
    occlusion_ratio: float = 0.2,
    occlusion_kind: str = "rectangle",
    occlusion_seed: int = 0,
    n_boot: int = 0,
    progress: bool = True,
    train_fn: Callable[..., Any] | None = None,
) -> pd.DataFrame:
    """Train and evaluate every (variant, seed) pair not yet in ``<out_dir>/ablations.jsonl``.

    Args:
        cfg: the base config (the "full" model).
        variants: ``{name: overrides}``, a list of names of :data:`TABLE6_VARIANTS`, or None for all of them.
        seeds: default ``cfg.seeds``.
        out_dir: default ``outputs/<run_name>/ablations``; one ``<variant>/seed<k>/`` training folder per pair.
        data: prepared data (``orsalib.experiment.prepare_fer_data(cfg)``), reused by every variant.
        occlusion_ratio: the artificial occlusion column (paper Table 3 protocol, rectangle at this ratio).
        n_boot: bootstrap resamples for CIs of each cell (0 = none; the spread over seeds is reported instead).
        train_fn: ``train_fn(cfg, run_dir=..., data=..., model=..., resume=True) -> FitResult`` that trains ``model``
            in place (default ``orsalib.experiment.train_fer``).

    Returns:
        All records so far (``variant, seed, clean_acc, occluded_acc, real_occluded_acc, *_macro_f1, best_val_acc,
        best_epoch, last_epoch, train_s``), one row per pair.
    """
    from . import experiment
    from .engine.evaluate import build_conditions, evaluate_conditions
    from .paths import run_dir as _run_dir
    from .utils import append_jsonl, seed_everything

    if variants is None:
        variants = TABLE6_VARIANTS
    elif not isinstance(variants, Mapping):
        unknown = [v for v in variants if v not in TABLE6_VARIANTS]
        if unknown:
            raise ValueError(f"unknown ablation variants {unknown}; known: {list(TABLE6_VARIANTS)}")
        variants = {v: TABLE6_VARIANTS[v] for v in variants}
    validate_variants(cfg, variants)
    seeds = [int(s) for s in (seeds if seeds is not None else cfg.seeds)]
    out = Path(out_dir) if out_dir is not None else _run_dir(cfg.run_name) / "ablations"
    out.mkdir(parents=True, exist_ok=True)
    log = out / "ablations.jsonl"
    done = _done_pairs(log)
    todo = [(v, s) for v in variants for s in seeds if (v, s) not in done]
    if todo:
        train = train_fn or experiment.train_fer
        data = data or experiment.prepare_fer_data(cfg)
        conditions = build_conditions(
            data.manifest, cfg, ratios=(0.0, occlusion_ratio), kinds=(occlusion_kind,), seed=occlusion_seed,
            real=True, data=data, device=cfg.device,
        )  # fmt: skip
        real = [c.name for c in conditions if c.group == "real"]
        from tqdm.auto import tqdm

        for name, seed in tqdm(todo, desc="ablations", disable=not progress):
            vcfg = variant_config(cfg, variants[name], seed=seed)
            seed_everything(seed)
            model = experiment.build_fer_model(vcfg)
            t0 = time.perf_counter()
            # resume=True: a pair interrupted mid-training continues from its last checkpoint
            res = train(vcfg, run_dir=out / slug(name) / f"seed{seed}", data=data, model=model, resume=True)
            train_s = time.perf_counter() - t0
            long, _ = evaluate_conditions({name: model}, conditions, vcfg.data.num_classes, device=vcfg.device,
                                          n_boot=n_boot, seed=occlusion_seed, by_occluder=False)  # fmt: skip
            acc = dict(zip(long["condition"], long["accuracy"]))
            f1 = dict(zip(long["condition"], long["macro_f1"]))
            occ_name = next(c.name for c in conditions if c.group != "clean" and c.group != "real")
            rec = {
                "variant": name,
                "seed": seed,
                "overrides": dict(variants[name]),
                "clean_acc": acc["clean"],
                "occluded_acc": acc[occ_name],
                "real_occluded_acc": acc[real[0]] if real else float("nan"),
                "clean_macro_f1": f1["clean"],
                "occluded_macro_f1": f1[occ_name],
                "real_occluded_macro_f1": f1[real[0]] if real else float("nan"),
                "occluded_condition": occ_name,
                "real_condition": real[0] if real else "",
                "best_val_acc": float(res.best.get("val_acc", float("nan"))) if res.best else float("nan"),
                "best_epoch": int(res.best_epoch),
                "last_epoch": int(res.last.get("epoch", 0)) if res.last else 0,
                "train_s": round(train_s, 1),
            }
            append_jsonl(log, rec)
    return read_results(out)


def summarise(
    df: pd.DataFrame, metrics: Sequence[str] = METRICS, paper: Mapping[str, Mapping[str, float | None]] | None = None
) -> pd.DataFrame:
    """Mean ± std over seeds per variant (accuracies in %), in Table 6 order, beside the paper's numbers.

    Returns:
        One row per variant: ``n_seeds``, and per metric ``<m>_mean``, ``<m>_std`` (sample std, ddof=1; 0 for one
        seed), ``<m>`` (a ``"mean ± std"`` string) and ``paper_<m>`` (NaN where the paper's value is unknown).
    """
    if df.empty:
        raise ValueError("no ablation results to summarise (run run_ablations first)")
    paper = PAPER_TABLE6 if paper is None else paper
    order = [v for v in TABLE6_VARIANTS if v in set(df["variant"])] + sorted(set(df["variant"]) - set(TABLE6_VARIANTS))
    rows = []
    for v in order:
        g = df[df["variant"] == v]
        row: dict[str, Any] = {"variant": v, "n_seeds": int(g["seed"].nunique())}
        for m in metrics:
            vals = 100.0 * g[m].astype(float).dropna().to_numpy()
            mean = float(vals.mean()) if vals.size else float("nan")
            std = float(vals.std(ddof=1)) if vals.size > 1 else 0.0 if vals.size else float("nan")
            row[f"{m}_mean"], row[f"{m}_std"] = mean, std
            row[m] = "n/a" if np.isnan(mean) else f"{mean:.2f} ± {std:.2f}"
            pv = (paper.get(v) or {}).get(m)
            row[f"paper_{m}"] = float("nan") if pv is None else float(pv)
        rows.append(row)
    return pd.DataFrame(rows)


def orderings_statement(summary: pd.DataFrame, metrics: Sequence[str] = METRICS, full: str = "full") -> str:
    """Plain sentences saying, per metric, which "full > ablation" orderings of Table 6 hold at this scale.

    An ordering "holds" when the full model's mean exceeds the ablation's mean; it is called "clear" when the gap
    also exceeds the larger of the two standard deviations over seeds (with one seed no ordering is called clear).
    """
    if full not in set(summary["variant"]):
        return f"The '{full}' variant is missing from the summary; no ordering can be checked."
    f = summary[summary["variant"] == full].iloc[0]
    others = summary[summary["variant"] != full]
    lines = []
    for m in metrics:
        if np.isnan(f[f"{m}_mean"]):
            lines.append(f"{m}: not measured.")
            continue
        holds, clear, fails = [], [], []
        for _, r in others.iterrows():
            if np.isnan(r[f"{m}_mean"]):
                continue
            gap = f[f"{m}_mean"] - r[f"{m}_mean"]
            spread = max(f[f"{m}_std"], r[f"{m}_std"])
            tag = f"{r['variant']} ({gap:+.2f} pts)"
            if gap > 0:
                holds.append(tag)
                if int(min(f["n_seeds"], r["n_seeds"])) > 1 and gap > spread:
                    clear.append(r["variant"])
            else:
                fails.append(tag)
        n = len(holds) + len(fails)
        s = f"{m}: full > ablation holds for {len(holds)} of {n}"
        s += f" ({', '.join(holds)})" if holds else ""
        s += f"; it does not hold for {', '.join(fails)}" if fails else ""
        s += f". Beyond the seed-to-seed spread: {', '.join(clear) if clear else 'none'}."
        lines.append(s)
    n_seeds = int(summary["n_seeds"].min())
    lines.append(
        f"(Means over {n_seeds}+ seed(s), last epoch; at this scale differences within the seed spread are noise, "
        "not evidence for or against the paper's Table 6.)"
    )
    return "\n".join(lines)


# ============================================================================= trained models for notebooks 50/60
def eval_config(
    profile: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    prior_source: str = "",
    landmark_weights: str = "",
    **kw: Any,
) -> RunConfig:
    """The run config of an evaluation notebook, with a prior source that works on the chosen data.

    SynthFER's ``oracle`` priors (ground-truth landmarks and parsing) do not exist for real photographs; for any
    other dataset the ``oracle`` default becomes ``landmark-parsing`` (MobileFaceNet-68 landmarks + rasterised
    parsing), with the landmark weights taken from ``landmark_weights``, ``PriorConfig.landmark_weights``,
    ``data/weights/`` or, for development, ``../shared/weights/``. Without weights a FileNotFoundError says
    where to put them (or to pass ``prior_source="none"`` with a prior-free model).
    """
    from .config import load_profile

    ov = dict(overrides or {})
    if prior_source:
        ov["prior.source"] = prior_source
    if landmark_weights:
        ov["prior.landmark_weights"] = landmark_weights
    cfg = load_profile(profile, ov, **kw)
    if cfg.data.dataset != "synthfer" and cfg.prior.source == "oracle" and not prior_source:
        from .paths import shared_path
        from .priors.landmarks import DEFAULT_LANDMARK_WEIGHTS

        w = cfg.prior.landmark_weights or (str(DEFAULT_LANDMARK_WEIGHTS) if DEFAULT_LANDMARK_WEIGHTS.is_file() else "")
        if not w:
            sp = shared_path("weights", "mobilefacenet_68lm_fp16.pth.tar")
            w = str(sp) if sp is not None else ""
        if not w:
            raise FileNotFoundError(
                f"data.dataset={cfg.data.dataset!r} has no ground-truth ('oracle') priors and no landmark weights "
                f"were found: place the MobileFaceNet-68 checkpoint at {DEFAULT_LANDMARK_WEIGHTS} (see data/README.md)"
                ", pass landmark_weights=..., or pass prior_source='none' with a prior-free model"
            )
        ov.update({"prior.source": "landmark-parsing", "prior.landmark_weights": w})
        cfg = load_profile(profile, ov, **kw)
    return cfg


def _train_status(run: Path) -> str:
    """``completed`` / ``running`` (interrupted) / ``missing`` for a train folder written by ``train_fer``."""
    import json

    if not (run / "config.json").is_file() or not (run / "checkpoints" / "last.pt").is_file():
        return "missing"
    try:
        status = json.loads((run / "summary.json").read_text(encoding="utf-8")).get("status", "completed")
    except (OSError, ValueError):
        status = "running"
    return "completed" if status == "completed" else "running"


def load_or_train(
    cfg: RunConfig,
    run_dir: str | Path,
    *,
    train_if_missing: bool = False,
    data: Any = None,
    which: str = "last",
    hint: str = "run notebooks/40_training.ipynb with the same run_name first",
) -> tuple[Any, RunConfig, dict[str, Any]]:
    """The trained model of ``run_dir`` (a ``train_fer`` folder), training it there first when asked.

    Args:
        cfg: the config to train with when nothing (or an interrupted run) is there; also checked against a found
            run: a run on another dataset or class count is refused.
        run_dir: the ``train`` folder (``outputs/<run_name>/train`` for notebook 40's model).
        train_if_missing: train (or finish an interrupted training, resumable) with ``cfg``; otherwise a missing
            run is a FileNotFoundError whose message is ``hint``.
        data: prepared data for training (``orsalib.experiment.prepare_fer_data``).
        which: ``"last"`` (honest) or ``"best"`` (selected on the evaluation split, as the release reports).

    Returns:
        ``(model in eval mode, the run's config, info)`` with ``info`` = ``{"run_dir", "trained_here", "status",
        "epoch", "minutes"}``.
    """
    from . import experiment

    rd = Path(run_dir)
    status = _train_status(rd)
    info: dict[str, Any] = {"run_dir": str(rd), "trained_here": False, "status": status, "minutes": 0.0}
    if status == "missing" and not train_if_missing:
        raise FileNotFoundError(f"no trained model in {rd} (expected config.json and checkpoints/last.pt): {hint}")
    if status != "missing":
        _, found = experiment.load_trained(rd, which="last")
        if (found.data.dataset, found.data.num_classes) != (cfg.data.dataset, cfg.data.num_classes):
            raise ValueError(
                f"the model in {rd} was trained on {found.data.dataset!r} ({found.data.num_classes} classes), not on "
                f"{cfg.data.dataset!r} ({cfg.data.num_classes} classes); point checkpoint_run at a matching run"
            )
    if status == "missing" or (status == "running" and train_if_missing):
        t0 = time.perf_counter()
        experiment.train_fer(cfg, run_dir=rd, data=data, resume=True)
        info.update(trained_here=True, status="completed", minutes=round((time.perf_counter() - t0) / 60, 2))
    model, run_cfg = experiment.load_trained(rd, which=which)
    info["epoch"] = int(getattr(model, "checkpoint_epoch", 0))
    return model, run_cfg, info


def baseline_config(cfg: RunConfig) -> RunConfig:
    """``cfg`` with the model replaced by its backbone-only baseline (``orsalib.models.baselines``)."""
    from .models.baselines import baseline_for

    return variant_config(cfg, {"model.name": baseline_for(cfg.model.name)})


__all__ = [
    "METRICS",
    "PAPER_TABLE6",
    "PAPER_TABLE6_SOURCE",
    "TABLE6_VARIANTS",
    "baseline_config",
    "eval_config",
    "load_or_train",
    "orderings_statement",
    "read_results",
    "run_ablations",
    "slug",
    "summarise",
    "validate_variants",
    "variant_config",
]
