"""Paper Table 6: component ablations of ORSANet, over seeds, on clean / artificially occluded / real-occluded data.

Each variant is a set of config overrides (the ORSANet switches ``model.seg_prior``, ``model.cross_interaction``,
``model.multi_scale``, ``model.landmark_reintegration`` and the loss switch ``train.dare``), trained with
:func:`orsalib.experiments.fer.train_fer` on data prepared once (:func:`orsalib.experiments.fer.prepare_fer_data`) and
evaluated at the last epoch (no selection on the evaluation split) on the same evaluation conditions
(:func:`orsalib.engine.evaluate.build_conditions`: identical occlusion masks for every variant).

Results are appended to ``<out_dir>/ablations.jsonl`` one (variant, seed) at a time; a rerun skips the pairs
already there (resumable). Beside each record, ``<variant>/seed<k>/per_image.npz``
(:mod:`orsalib.experiments.per_image`) keeps the prediction of every evaluated image, so that the claims pair the
full model and each ablation image by image (:func:`orsalib.experiments.claims.table6_claims`). :func:`summarise`
gives mean ± std over seeds beside the paper's numbers, and :func:`orderings_statement` says which "full > ablation"
orderings hold. :func:`study_config` sizes the study: a quick budget by default, the powered study with
``study=True`` (:data:`STUDY`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import ConfigError, RunConfig, apply_overrides
from ..engine.evaluate import EvalCondition, build_conditions, evaluate_conditions
from ..paper import TABLE6 as PAPER
from ..paths import run_dir as _run_dir
from ..utils import append_jsonl, progress_bar, read_jsonl, seed_everything
from .fer import FERData, build_fer_model, prepare_fer_data, train_fer
from .parallel import side_by_side
from .per_image import FILE as PER_IMAGE_FILE
from .per_image import column_arrays, condition_ids, write_per_image
from .runs import eval_config, train_run

#: Table 6 rows as config overrides (dotted keys of :class:`orsalib.config.RunConfig`).
TABLE6_VARIANTS: dict[str, dict[str, Any]] = {
    "full": {},
    "w/o segmentation prior": {"model.seg_prior": False},
    "w/o cross-interaction": {"model.cross_interaction": False},
    "w/o multi-scale": {"model.multi_scale": False},
    "w/o landmark reintegration": {"model.landmark_reintegration": False},
    "w/o DARELoss": {"train.dare": False},
}

#: The paper's Table 6 accuracies (%) in this study's columns: clean = RAF-DB, real occlusion = RAF-DB (occlu)
#: (the paper's Occlu-FER column is in :data:`orsalib.paper.TABLE6`); the paper has no artificial-occlusion column.
PAPER_TABLE6: dict[str, dict[str, float | None]] = {
    v: {"clean_acc": row["RAF-DB"], "occluded_acc": None, "real_occluded_acc": row["RAF-DB (occlu)"]}
    for v, row in PAPER.items()
}
PAPER_TABLE6_SOURCE = (
    "ORSANet paper (ACM MM 2025) Table 6: clean = RAF-DB, real occlusion = RAF-DB (occlu); no artificial column"
)

#: Evaluation columns of the ablation table.
METRICS: tuple[str, ...] = ("clean_acc", "occluded_acc", "real_occluded_acc")


def slug(name: str) -> str:
    """A folder-safe name of a variant (``"w/o DARELoss"`` -> ``"wo_dareloss"``)."""
    s = re.sub(r"[^a-z0-9]+", "_", name.lower().replace("w/o", "wo")).strip("_")
    return s or "variant"


def variant_config(cfg: RunConfig, overrides: Mapping[str, Any], seed: int | None = None) -> RunConfig:
    """``cfg`` with a variant's dotted overrides (and ``seed``) applied, validated; ``cfg`` is not modified."""
    extra = {} if seed is None else {"seed": int(seed)}
    return apply_overrides(cfg, {**dict(overrides), **extra})


def validate_variants(cfg: RunConfig, variants: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Raise if any variant's overrides do not apply to ``cfg`` (unknown key or invalid value)."""
    for name, ov in (variants or TABLE6_VARIANTS).items():
        try:
            variant_config(cfg, ov)
        except ConfigError as e:
            raise ConfigError(f"ablation variant {name!r}: {e}") from e


def _done_pairs(path: Path) -> set[tuple[str, int]]:
    if not path.is_file():
        return set()
    return {(r["variant"], int(r["seed"])) for r in read_jsonl(path) if "variant" in r and "seed" in r}


def read_results(out_dir: str | Path) -> pd.DataFrame:
    """The per-(variant, seed) records written so far (latest record per pair).

    ``per_image_path`` is the absolute path of the pair's per-image predictions (``""`` for a record written before
    they were kept, or whose file is gone: its claims fall back to the comparison over seeds).
    """
    out = Path(out_dir)
    path = out / "ablations.jsonl"
    if not path.is_file():
        return pd.DataFrame(columns=["variant", "seed", *METRICS, "per_image_path"])
    df = pd.DataFrame(read_jsonl(path))
    df = df.drop_duplicates(["variant", "seed"], keep="last").reset_index(drop=True)
    rel = df["per_image"] if "per_image" in df.columns else pd.Series([None] * len(df))
    df["per_image_path"] = [str(out / r) if isinstance(r, str) and r and (out / r).is_file() else "" for r in rel]
    return df


#: the cpu profile's quick budget for the Table 6 study (it must fit the whole cpu suite on 2 cores): orsanet_tiny with
#: oracle priors on the profile's SynthFER build (its caches are reused), 4 epochs of 40 batches (5,120 faces), three
#: seeds per variant (a verdict is about methods: seeds are its replicates), on the 700 images of each column. The
#: full model learns there (6 epochs: 83 % clean at seed 0, 50 s
#: per training); with the profile's detected priors orsanet_tiny stays at chance at any budget that fits (17 %), and on
#: 50 faces per class (the earlier budget) every variant did (15-21 %).
CPU_STUDY_BUDGET: dict[str, Any] = {
    "model.name": "orsanet_tiny", "train.epochs": 4, "train.max_steps_per_epoch": 40, "train.lr": 4e-3,
    "train.lsce_warmup_epochs": 1, "prior.source": "oracle", "n_seeds": 3,
}  # fmt: skip

#: ``study=True`` per profile: the profile's full recipe (model, epochs, training images), more evaluation images
#: (SynthFER ``val_per_class``: clean, artificially occluded and real-occluded faces each) and more seeds, so that
#: a paired difference of about 2 points is detectable on images x seeds. cpu: 300 faces per class -> 2,100 images
#: per column and seed, 3 seeds -> 6,300 images x seeds per claim: MDE 1.4 points if full model and ablation disagree
#: on 15 % of the images, 1.9 at 30 % (:func:`orsalib.experiments.verdicts.planned_mde_points`); 18 runs of
#: ``orsanet_cpu`` (2,800 faces, 8 epochs), under 2 hours on 2 CPU cores (:data:`STUDY_MINUTES`).
STUDY: dict[str, dict[str, Any]] = {
    "smoke": {"n_seeds": 2},
    "cpu": {"n_seeds": 3, "data.val_per_class": 300},
    "paper": {"n_seeds": 3},
}
#: the expected minutes of ``study=True`` on 2 CPU cores (cpu profile), scaled from notebook 40's training
#: (``orsanet_cpu``, 2,800 faces x 8 epochs: 4.6 minutes): 18 such trainings, plus
#: the evaluation of 6,300 images per run (~25 s) and a new SynthFER build with its prior detectors (~5 minutes)
STUDY_MINUTES: dict[str, float] = {"cpu": 100.0}


def study_config(
    profile: str,
    *,
    dataset: str = "",
    data_root: str = "",
    model_name: str = "auto",
    epochs: int = -1,
    train_per_class: int = -1,
    n_seeds: int = 0,
    seed: int = 0,
    study: bool = False,
    **kw: Any,
) -> tuple[RunConfig, list[int]]:
    """The config and seeds of the Table 6 study (notebook 60's parameters).

    Quick (``study=False``): on the ``cpu`` profile the study is sized down (:data:`CPU_STUDY_BUDGET`) and evaluated
    once, after the last epoch (what the table reports). ``model_name="auto"`` / ``epochs=-1`` /
    ``train_per_class=-1`` take that budget on ``cpu`` and the profile's value elsewhere; ``""`` / ``0`` / ``0``
    always take the profile's value. ``n_seeds=0`` runs as many seeds as the profile lists, counted from ``seed``.

    Powered (``study=True``): the profile's full recipe ("auto" means the profile's value), evaluated once after the
    last epoch, with :data:`STUDY`'s evaluation images and seeds (``n_seeds`` > 0 still wins). ``kw`` (run_name,
    device) goes to :func:`orsalib.experiments.runs.eval_config`.
    """
    plan = STUDY.get(profile, {"n_seeds": 3}) if study else {}
    budget = CPU_STUDY_BUDGET if profile == "cpu" and not study else {}
    overrides: dict[str, Any] = {k: v for k, v in {"data.dataset": dataset, "data.data_root": data_root}.items() if v}
    overrides.update({k: v for k, v in plan.items() if "." in k})
    name = budget.get("model.name", "") if model_name == "auto" else model_name
    ep = budget.get("train.epochs", 0) if epochs < 0 else epochs
    tpc = budget.get("data.train_per_class", 0) if train_per_class < 0 else train_per_class
    fixed = ("train.max_steps_per_epoch", "train.lr", "train.lsce_warmup_epochs", "prior.source")
    overrides.update({k: budget[k] for k in fixed if k in budget})
    if name:
        overrides["model.name"] = name
    if ep:
        overrides["train.epochs"] = ep
    if budget or study:
        overrides["train.eval_every"] = ep or 1000
    if tpc:
        overrides["data.train_per_class"] = tpc
    cfg = eval_config(profile, overrides, seed=seed, **kw)
    if study and not ep:  # evaluate once, after the profile's last epoch
        cfg.train.eval_every = cfg.train.epochs
    default_seeds = int(plan.get("n_seeds", 0)) or int(budget.get("n_seeds", 0)) or len(cfg.seeds)
    seeds = [seed + k for k in range(n_seeds if n_seeds > 0 else default_seeds)]
    return cfg, seeds


def ablations_dir(run_name: str, study: bool = False) -> Path:
    """``outputs/<run_name>/ablations`` (quick budget) or ``ablations_study`` (``study=True``): the two never share
    a folder, so a resumed study never mixes in the quick budget's records of the same (variant, seed)."""
    return _run_dir(run_name) / ("ablations_study" if study else "ablations")


def study_plan(profile: str, *, items_per_seed: int = 0, **kw: Any) -> dict[str, Any]:
    """What ``study=True`` runs, for the notebook's statement of what its budget can resolve.

    Args:
        profile: the profile.
        items_per_seed: evaluation images per column and seed of this run (used when the study does not set them:
            datasets other than SynthFER).
        kw: :func:`study_config`'s other arguments (dataset, data_root, seed, run_name, device).

    Returns:
        ``{"settings": text, "seeds": k, "n_study": images x seeds per claim (None when unknown), "minutes": the
        expected minutes on 2 CPU cores (None when not estimated)}``.
    """
    cfg, seeds = study_config(profile, study=True, **kw)
    synth = cfg.data.dataset == "synthfer"
    per_seed = cfg.data.val_per_class * cfg.data.num_classes if synth else int(items_per_seed)
    faces = f"{cfg.data.train_per_class} training / {cfg.data.val_per_class} validation faces per class, " if synth \
        else ""  # fmt: skip
    n = per_seed * len(seeds) or None
    settings = (f"{cfg.model.name}, {faces}{cfg.train.epochs} epochs, {len(seeds)} seeds"
                + (f": {n:,} images x seeds per claim" if n else ""))  # fmt: skip
    return {"settings": settings, "seeds": len(seeds), "n_study": n, "minutes": STUDY_MINUTES.get(profile)}


def _resolve_variants(variants: Mapping[str, Mapping[str, Any]] | Sequence[str] | None) -> dict[str, dict]:
    """``{name: overrides}`` from a mapping, a list of :data:`TABLE6_VARIANTS` names, or None (all of them)."""
    if variants is None:
        return {k: dict(v) for k, v in TABLE6_VARIANTS.items()}
    if isinstance(variants, Mapping):
        return {k: dict(v) for k, v in variants.items()}
    unknown = [v for v in variants if v not in TABLE6_VARIANTS]
    if unknown:
        raise ValueError(f"unknown ablation variants {unknown}; known: {list(TABLE6_VARIANTS)}")
    return {v: dict(TABLE6_VARIANTS[v]) for v in variants}


def _columns(conditions: Sequence[EvalCondition]) -> dict[str, str]:
    """``{metric column: condition name}``: clean, the artificial occlusion, the (first) real-occlusion split."""
    occ = next(c.name for c in conditions if c.group not in ("clean", "real"))
    real = next((c.name for c in conditions if c.group == "real"), "")
    return {"clean_acc": "clean", "occluded_acc": occ, **({"real_occluded_acc": real} if real else {})}


def _write_per_image(path: Path, name: str, conditions: Sequence[EvalCondition], preds: Mapping) -> Path:
    """The per-image predictions of one (variant, seed) on each evaluation column (image ids: source rows)."""
    conds = {c.name: c for c in conditions}
    cols = {}
    for metric, cname in _columns(conditions).items():
        p = preds[(name, cname)]
        cols[metric] = column_arrays(condition_ids(conds[cname].manifest, p.indices), p.labels, p.logits)
    return write_per_image(path, cols)


def _pair_record(
    name: str, seed: int, overrides: Mapping[str, Any], long: pd.DataFrame, conditions: list[EvalCondition],
    res: Any, train_s: float, per_image: str = "",
) -> dict[str, Any]:  # fmt: skip
    """One ``ablations.jsonl`` record: the variant's accuracies / macro-F1 per evaluation column, and where its
    per-image predictions are (relative to the jsonl's folder)."""
    acc = dict(zip(long["condition"], long["accuracy"]))
    f1 = dict(zip(long["condition"], long["macro_f1"]))
    cols = _columns(conditions)
    occ, real = cols["occluded_acc"], cols.get("real_occluded_acc", "")
    nan = float("nan")
    return {
        "variant": name,
        "seed": seed,
        "overrides": dict(overrides),
        "clean_acc": acc["clean"],
        "occluded_acc": acc[occ],
        "real_occluded_acc": acc[real] if real else nan,
        "clean_macro_f1": f1["clean"],
        "occluded_macro_f1": f1[occ],
        "real_occluded_macro_f1": f1[real] if real else nan,
        "occluded_condition": occ,
        "real_condition": real,
        "best_val_acc": float(res.best.get("val_acc", nan)) if res.best else nan,
        "best_epoch": int(res.best_epoch),
        "last_epoch": int(res.last.get("epoch", 0)) if res.last else 0,
        "train_s": round(train_s, 1),
        "per_image": per_image,
    }


def run_ablations(
    cfg: RunConfig,
    variants: Mapping[str, Mapping[str, Any]] | Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    *,
    out_dir: str | Path | None = None,
    data: FERData | None = None,
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
        data: prepared data (:func:`orsalib.experiments.fer.prepare_fer_data`), reused by every variant.
        occlusion_ratio: the artificial occlusion column (paper Table 3 protocol, rectangle at this ratio).
        n_boot: bootstrap resamples for CIs of each cell (0 = none; the spread over seeds is reported instead).
        train_fn: ``train_fn(cfg, run_dir=..., data=..., model=..., resume=True) -> FitResult`` that trains ``model``
            in place (default :func:`orsalib.experiments.fer.train_fer`).

    Returns:
        All records so far (``variant, seed, clean_acc, occluded_acc, real_occluded_acc, *_macro_f1, best_val_acc,
        best_epoch, last_epoch, train_s, per_image, per_image_path``), one row per pair. Every variant and seed is
        evaluated on the same images (the conditions are built once per call, identical masks), and the prediction
        of each image is kept in ``<variant>/seed<k>/per_image.npz``.
    """
    variants = _resolve_variants(variants)
    validate_variants(cfg, variants)
    seeds = [int(s) for s in (seeds if seeds is not None else cfg.seeds)]
    out = Path(out_dir) if out_dir is not None else _run_dir(cfg.run_name) / "ablations"
    out.mkdir(parents=True, exist_ok=True)
    log = out / "ablations.jsonl"
    done = _done_pairs(log)
    todo = [(v, s) for v in variants for s in seeds if (v, s) not in done]
    if not todo:
        return read_results(out)
    train = train_fn or train_fer
    data = data or prepare_fer_data(cfg)
    conditions = build_conditions(
        data.manifest, cfg, ratios=(0.0, occlusion_ratio), kinds=(occlusion_kind,), seed=occlusion_seed,
        real=True, data=data, device=cfg.device,
    )  # fmt: skip
    side: dict[tuple[str, int], float] = {}  # pairs trained side by side in worker processes -> seconds
    if train_fn is None:
        jobs = [(f"{name} seed {seed}", dict(cfg=variant_config(cfg, variants[name], seed=seed),
                                             run_dir=str(out / slug(name) / f"seed{seed}"))) for name, seed in todo]
        side = dict(zip(todo, side_by_side(train_run, jobs, cfg.device)[1]))
    for name, seed in progress_bar(todo, desc="ablations", unit="run", enabled=progress, leave=True):
        vcfg = variant_config(cfg, variants[name], seed=seed)
        seed_everything(seed)
        model = build_fer_model(vcfg)
        t0 = time.perf_counter()
        # resume=True: a pair interrupted mid-training continues from its last checkpoint (one trained side by side
        # is complete: its weights are loaded)
        res = train(vcfg, run_dir=out / slug(name) / f"seed{seed}", data=data, model=model, resume=True)
        train_s = side.get((name, seed), time.perf_counter() - t0)
        long, preds = evaluate_conditions({name: model}, conditions, vcfg.data.num_classes, device=vcfg.device,
                                          n_boot=n_boot, seed=occlusion_seed, by_occluder=False)  # fmt: skip
        rel = f"{slug(name)}/seed{seed}/{PER_IMAGE_FILE}"
        _write_per_image(out / rel, name, conditions, preds)  # before the record: a record always has its file
        append_jsonl(log, _pair_record(name, seed, variants[name], long, conditions, res, train_s, rel))
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


__all__ = [
    "CPU_STUDY_BUDGET",
    "METRICS",
    "PAPER_TABLE6",
    "PAPER_TABLE6_SOURCE",
    "STUDY",
    "STUDY_MINUTES",
    "TABLE6_VARIANTS",
    "ablations_dir",
    "orderings_statement",
    "read_results",
    "run_ablations",
    "slug",
    "study_config",
    "study_plan",
    "summarise",
    "validate_variants",
    "variant_config",
]
