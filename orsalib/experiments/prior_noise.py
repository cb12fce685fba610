"""The prior-noise study: ORSANet trained and evaluated with priors of decreasing quality.

Levels go from the ``oracle`` (SynthFER ground truth, the upper bound) over ``synth-detected`` (small networks
that guess under occluders) to oracle priors degraded on purpose (:class:`~orsalib.priors.noise.NoisyPriorStore`:
landmarks jittered by ``landmark_sigma`` inter-ocular distances, parsing maps with a ``parsing_rate`` fraction of
pixels relabelled). Each (level, seed) pair trains one model (``<out_dir>/<level>/seed<k>/``, resumable) and is
evaluated on every evaluation split (SynthFER: ``valid`` and ``valid_occluded``); the level's prior quality (NME,
face-class mIoU on those splits) is recorded beside the accuracy, so a table / figure can put "prior quality" on
one axis and "what ORSANet loses" on the other.

It needs a config whose model reads the label-map priors (``model.prior_routing="paper"``, as the ``smoke`` and
``cpu`` profiles have) on a dataset with ground truth (SynthFER). Notebook 25 runs it: :func:`study_config` sizes it
(on ``cpu`` by default a quick version, :data:`QUICK_LEVELS` x 1 seed with :data:`CPU_QUICK_BUDGET`; with
``study=True`` every level of :data:`PRIOR_NOISE_LEVELS` x :data:`STUDY_SEEDS` seeds with the profile's recipe).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import RunConfig, apply_overrides
from ..data.loaders import build_loaders
from ..engine.evaluate import predict
from ..metrics import classification_report
from ..paths import run_dir as _run_dir
from ..priors.noise import NoisyPriorStore
from ..priors.quality import sample_quality
from ..registry import DATASETS
from ..utils import append_jsonl, atomic_write_json, progress_bar, read_jsonl, seed_everything
from .fer import FERData, build_fer_model, prepare_fer_data, train_fer
from .runs import eval_config

__all__ = [
    "CPU_QUICK_BUDGET",
    "PRIOR_NOISE_LEVELS",
    "QUICK_LEVELS",
    "STUDY_SEEDS",
    "has_ground_truth",
    "level_spec",
    "prior_noise_study",
    "read_prior_noise",
    "recipe_key",
    "study_config",
    "summarise_prior_noise",
]

#: name -> level: ``source`` (default ``oracle``), ``landmark_sigma``, ``parsing_rate``, ``noise_seed``.
#: For scale: ``synth-detected`` on the ``cpu`` profile's SynthFER has an NME of ~0.04 (clean faces), the NME of a
#: jitter of sigma is ~1.25 sigma.
PRIOR_NOISE_LEVELS: dict[str, dict[str, Any]] = {
    "oracle": {},
    "synth-detected": {"source": "synth-detected"},
    "jitter-0.05": {"landmark_sigma": 0.05},
    "jitter-0.1": {"landmark_sigma": 0.1},
    "jitter-0.2": {"landmark_sigma": 0.2},
    "corrupt-0.1": {"parsing_rate": 0.1},
    "corrupt-0.25": {"parsing_rate": 0.25},
    "corrupt-0.5": {"parsing_rate": 0.5},
    "both-0.1-0.25": {"landmark_sigma": 0.1, "parsing_rate": 0.25},
}
_LEVEL_KEYS = {"source": "oracle", "landmark_sigma": 0.0, "parsing_rate": 0.0, "noise_seed": 0}

#: the quick study (notebook 25 without ``study``): the upper bound and two degraded copies of it. ``synth-detected``
#: is left to ``study=True``: at the quick budget a model given detected priors stays at chance (orsanet_tiny 16.9 %,
#: orsanet_cpu 19.6 % clean), it needs the profile's full recipe (notebook 50 compares detected and oracle priors
#: there: orsanet_cpu 84.4 % vs 93.6 % clean).
QUICK_LEVELS: tuple[str, ...] = ("oracle", "jitter-0.2", "both-0.1-0.25")
#: the ``cpu`` profile's budget for the quick study: about 45 s per level on two CPU cores (the same SynthFER
#: build, so the detectors and prior caches of notebook 20 are reused; the smaller model, 8 epochs at a higher peak
#: learning rate with one warm-up epoch (73 % on clean faces with oracle priors; at 6 epochs 38 %: too short to
#: learn, for 23 s less), one evaluation).
CPU_QUICK_BUDGET: dict[str, Any] = {
    "model.name": "orsanet_tiny", "train.epochs": 8, "train.lr": 4e-3, "train.lsce_warmup_epochs": 1,
    "train.max_steps_per_epoch": 27,  # 864 faces per epoch (of the profile's 2,800): the quick look's cost stays small
}  # fmt: skip
#: seeds per level of the powered study (``study=True``).
STUDY_SEEDS = 3


def study_config(
    profile: str,
    *,
    study: bool = False,
    levels: Sequence[str] = (),
    n_seeds: int = 0,
    epochs: int = -1,
    dataset: str = "",
    data_root: str = "",
    seed: int = 0,
    **kw: Any,
) -> tuple[RunConfig, list[str], list[int]]:
    """The config, level names and seeds of the prior-noise study (notebook 25's parameters).

    Without ``study``: :data:`QUICK_LEVELS`, one seed; on ``cpu`` with :data:`CPU_QUICK_BUDGET` (``smoke`` keeps its
    own tiny recipe). With ``study``: every level of :data:`PRIOR_NOISE_LEVELS`, :data:`STUDY_SEEDS` seeds, the
    profile's recipe. ``levels`` / ``n_seeds`` (> 0) / ``epochs`` (> 0) override those choices; the model is
    evaluated once, after the last epoch. ``kw`` (run_name, device) goes to
    :func:`orsalib.experiments.runs.eval_config`.

    Raises:
        ValueError: an unknown level name.
    """
    overrides: dict[str, Any] = {k: v for k, v in {"data.dataset": dataset, "data.data_root": data_root}.items() if v}
    if profile == "cpu" and not study:
        overrides.update(CPU_QUICK_BUDGET)
    if epochs > 0:
        overrides["train.epochs"] = int(epochs)
    cfg = eval_config(profile, overrides, seed=seed, **kw)
    cfg.train.eval_every = cfg.train.epochs  # one evaluation in training, after the last epoch
    names = list(levels) or (list(PRIOR_NOISE_LEVELS) if study else list(QUICK_LEVELS))
    unknown = [v for v in names if v not in PRIOR_NOISE_LEVELS]
    if unknown:
        raise ValueError(f"unknown prior-noise levels {unknown}; known: {list(PRIOR_NOISE_LEVELS)}")
    seeds = [seed + k for k in range(n_seeds if n_seeds > 0 else (STUDY_SEEDS if study else 1))]
    return cfg, names, seeds


def has_ground_truth(cfg: RunConfig) -> bool:
    """Whether the config's dataset carries ground-truth landmarks and parsing maps (the study needs them)."""
    return cfg.data.dataset in DATASETS and bool(DATASETS.meta(cfg.data.dataset).get("ground_truth"))


def level_spec(level: Mapping[str, Any]) -> dict[str, Any]:
    """A level with its defaults filled in (``source``, ``landmark_sigma``, ``parsing_rate``, ``noise_seed``).

    Raises:
        ValueError: an unknown key or a value out of range.
    """
    unknown = sorted(set(level) - set(_LEVEL_KEYS))
    if unknown:
        raise ValueError(f"prior-noise level keys {unknown} are unknown; known: {sorted(_LEVEL_KEYS)}")
    spec = {**_LEVEL_KEYS, **dict(level)}
    if float(spec["landmark_sigma"]) < 0 or not 0.0 <= float(spec["parsing_rate"]) <= 1.0:
        raise ValueError(f"prior-noise level {dict(level)}: landmark_sigma must be >= 0, parsing_rate in [0, 1]")
    return spec


def _store(base: Any, spec: Mapping[str, Any]) -> Any:
    if not spec["landmark_sigma"] and not spec["parsing_rate"]:
        return base
    return NoisyPriorStore(base, spec["landmark_sigma"], spec["parsing_rate"], seed=int(spec["noise_seed"]))


def _evaluate(model: Any, data: FERData, num_classes: int, device: str) -> dict[str, float]:
    rec: dict[str, float] = {}
    for split, loader in data.loaders.items():
        if split == "train":
            continue
        p = predict(model, loader, device)
        rep = classification_report(p.labels, p.preds, num_classes)
        rec[f"{split}_acc"], rec[f"{split}_macro_f1"] = float(rep["accuracy"]), float(rep["macro_f1"])
        rec[f"{split}_n"] = int(len(p.labels))
    return rec


def _prior_quality(data: FERData, store: Any, image_size: int) -> dict[str, float]:
    """Mean NME and face-class mIoU of a level's priors per evaluation split (SynthFER ground truth)."""
    m = data.manifest
    splits = [s for s in data.loaders if s != "train"]
    if store is None or not {"landmarks_index", "parsing_path"} <= set(m.columns):
        return {}
    q = sample_quality(m, {"level": store}, image_size, splits=splits)
    rec: dict[str, float] = {}
    for split, g in q.groupby("split"):
        for metric in ("nme", "miou"):
            if metric in g.columns:
                rec[f"{split}_prior_{metric}"] = float(g[metric].mean())
    return rec


def _level_specs(cfg: RunConfig, levels: Mapping[str, Mapping[str, Any]] | Sequence[str] | None) -> dict[str, dict]:
    """``{name: level_spec}`` of the study's levels, each checked (name, keys, source valid for ``cfg``'s data)."""
    if levels is None:
        levels = PRIOR_NOISE_LEVELS
    if not isinstance(levels, Mapping):
        unknown = [v for v in levels if v not in PRIOR_NOISE_LEVELS]
        if unknown:
            raise ValueError(f"unknown prior-noise levels {unknown}; known: {list(PRIOR_NOISE_LEVELS)}")
        levels = {v: PRIOR_NOISE_LEVELS[v] for v in levels}
    specs = {name: level_spec(lv) for name, lv in levels.items()}
    for name, spec in specs.items():
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"prior-noise level name {name!r} must be a plain folder name")
        apply_overrides(cfg, {"prior.source": spec["source"]})  # every level's source is valid for cfg's data
    return specs


def _fit_summary(res: Any) -> dict[str, Any]:
    """``best_epoch`` and the last epoch's ``train_acc`` (on augmented images: a generalisation gap's other side)."""
    out: dict[str, Any] = {"best_epoch": int(getattr(res, "best_epoch", 0) or 0)}
    last = getattr(res, "last", None)
    if isinstance(last, Mapping) and isinstance(last.get("train_acc"), (int, float)):
        out["train_acc"] = float(last["train_acc"])
    return out


def read_prior_noise(out_dir: str | Path) -> pd.DataFrame:
    """The records of ``<out_dir>/prior_noise.jsonl`` (one row per level and seed)."""
    f = Path(out_dir) / "prior_noise.jsonl"
    return pd.DataFrame(read_jsonl(f)) if f.is_file() else pd.DataFrame()


def prior_noise_study(
    cfg: RunConfig,
    levels: Mapping[str, Mapping[str, Any]] | Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    *,
    out_dir: str | Path | None = None,
    progress: bool = True,
    train_fn: Callable[..., Any] | None = None,
) -> pd.DataFrame:
    """Train and evaluate ORSANet once per (prior level, seed) not yet in ``<out_dir>/prior_noise.jsonl``.

    Args:
        cfg: the base config (its ``prior.source`` is replaced by each level's).
        levels: ``{name: level}`` (keys of :func:`level_spec`), names of :data:`PRIOR_NOISE_LEVELS`, or None for all.
        seeds: default ``cfg.seeds``.
        out_dir: default ``outputs/<run_name>/prior_noise``.
        progress: a bar over the pairs.
        train_fn: ``train_fn(cfg, run_dir=..., data=..., model=..., existing=...)`` that trains ``model`` in place
            (default :func:`orsalib.experiments.fer.train_fer`).

    Records of another recipe (:func:`recipe_key`: other data, model or training settings) in the same ``out_dir``
    are neither reused nor returned; their training folders are moved aside when a level is trained again.

    Returns:
        every record of this recipe so far: ``level``, ``seed``, ``recipe``, the level's settings, ``<split>_acc`` /
        ``<split>_macro_f1`` / ``<split>_n`` (images) per evaluation split, ``train_acc`` (the last training epoch's),
        ``<split>_prior_nme`` / ``<split>_prior_miou`` (the level's prior quality), ``train_s``.
    """
    specs = _level_specs(cfg, levels)
    seeds = [int(s) for s in (seeds if seeds is not None else cfg.seeds)]
    out = Path(out_dir) if out_dir is not None else _run_dir(cfg.run_name) / "prior_noise"
    out.mkdir(parents=True, exist_ok=True)
    key = recipe_key(cfg)
    done = {(str(r.get("level")), int(r.get("seed", -1))) for r in read_jsonl(out / "prior_noise.jsonl")
            if r.get("recipe") == key} if (out / "prior_noise.jsonl").is_file() else set()  # fmt: skip
    todo = [(n, s) for n in specs for s in seeds if (n, s) not in done]
    train = train_fn or train_fer
    prepared: dict[str, FERData] = {}
    quality: dict[str, dict[str, float]] = {}
    for name, seed in progress_bar(todo, desc="prior noise", unit="run", enabled=progress, leave=True):
        spec = specs[name]
        vcfg = apply_overrides(cfg, {"prior.source": spec["source"], "seed": seed})
        if spec["source"] not in prepared:
            prepared[spec["source"]] = prepare_fer_data(vcfg)
        base = prepared[spec["source"]]
        store = _store(base.prior_store, spec)
        loaders = build_loaders(base.manifest, vcfg.data, vcfg.train.batch_size, seed=seed, prior_store=store)
        data = FERData(base.manifest, loaders, store, base.class_names, base.validation)
        if name not in quality:
            quality[name] = _prior_quality(data, store, vcfg.data.image_size)
        rd = out / name / f"seed{seed}"
        level_file = rd / "level.json"
        same = level_file.is_file() and json.loads(level_file.read_text(encoding="utf-8")) == spec
        existing = "auto" if same else "overwrite"
        seed_everything(seed)
        model = build_fer_model(vcfg)
        t0 = time.perf_counter()
        res = train(vcfg, run_dir=rd, data=data, model=model, existing=existing)
        train_s = time.perf_counter() - t0
        atomic_write_json(level_file, spec)
        scores = _evaluate(model, data, vcfg.data.num_classes, vcfg.device)
        rec = {"level": name, "seed": seed, "recipe": key, **spec, **scores, **_fit_summary(res), **quality[name],
               "train_s": round(train_s, 1)}  # fmt: skip
        append_jsonl(out / "prior_noise.jsonl", rec)
    df = read_prior_noise(out)
    return df[df["recipe"] == key].reset_index(drop=True) if "recipe" in df.columns else df.iloc[:0]


def recipe_key(cfg: RunConfig) -> str:
    """10 hex characters naming what a study's records depend on besides level and seed: the data, model and
    training settings of ``cfg`` (not its run name, seed, device or prior source, which every level sets)."""
    d = cfg.to_dict()
    text = json.dumps({k: d[k] for k in ("data", "model", "train")}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def summarise_prior_noise(df: pd.DataFrame) -> pd.DataFrame:
    """Per level: the mean and standard deviation over seeds of every accuracy / F1 column, the prior quality, the
    images per split (``<split>_n``) with ``<split>_acc_ci95`` (the binomial 95% half-width of one model's accuracy
    on them: differences between levels well inside it are not resolved by one seed), and the number of seeds;
    levels in the order they first appear."""
    if df.empty:
        return df
    metrics = [c for c in df.columns if c.endswith(("_acc", "_macro_f1"))]
    prior = [c for c in df.columns if "_prior_" in c]
    g = df.groupby("level", sort=False)
    out = g[["source", "landmark_sigma", "parsing_rate"]].first()
    for c in metrics:
        out[c] = g[c].mean()
        out[f"{c}_std"] = g[c].std(ddof=1)
    for c in prior:
        out[c] = g[c].mean()
    for c in metrics:
        n_col = c[: -len("_acc")] + "_n" if c.endswith("_acc") else ""
        if n_col in df.columns:
            n = g[n_col].max()
            out[n_col] = n
            out[f"{c}_ci95"] = 1.96 * np.sqrt(out[c] * (1 - out[c]) / n.clip(lower=1))
    out["seeds"] = g.size()
    return out.reset_index()
