"""The prior-noise study: ORSANet trained and evaluated with priors of decreasing quality.

Levels go from the ``oracle`` (SynthFER ground truth, the upper bound) over ``synth-detected`` (small networks
that guess under occluders) to oracle priors degraded on purpose (:class:`~orsalib.priors.noise.NoisyPriorStore`:
landmarks jittered by ``landmark_sigma`` inter-ocular distances, parsing maps with a ``parsing_rate`` fraction of
pixels relabelled). Each (level, seed) pair trains one model (``<out_dir>/<level>/seed<k>/``, resumable) and is
evaluated on every evaluation split (SynthFER: ``valid`` and ``valid_occluded``); the level's prior quality (NME,
face-class mIoU on those splits) is recorded beside the accuracy, so a table / figure can put "prior quality" on
one axis and "what ORSANet loses" on the other.

It needs a config whose model reads the label-map priors (``model.prior_routing="paper"``, as the ``smoke`` and
``cpu`` profiles have) on a dataset with ground truth (SynthFER). Not run by the notebooks by default (hours on a
CPU at the ``cpu`` profile's size); :func:`prior_noise_study` with ``levels`` / ``seeds`` chosen by the caller.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from ..config import RunConfig, apply_overrides
from ..data.loaders import build_loaders
from ..engine.evaluate import predict
from ..metrics import classification_report
from ..paths import run_dir as _run_dir
from ..priors.noise import NoisyPriorStore
from ..priors.quality import sample_quality
from ..utils import append_jsonl, atomic_write_json, read_jsonl, seed_everything
from .fer import FERData, build_fer_model, prepare_fer_data, train_fer

__all__ = ["PRIOR_NOISE_LEVELS", "level_spec", "prior_noise_study", "read_prior_noise", "summarise_prior_noise"]

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

    Returns:
        every record so far: ``level``, ``seed``, the level's settings, ``<split>_acc`` / ``<split>_macro_f1`` per
        evaluation split, ``<split>_prior_nme`` / ``<split>_prior_miou`` (the level's prior quality), ``train_s``.
    """
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
    seeds = [int(s) for s in (seeds if seeds is not None else cfg.seeds)]
    out = Path(out_dir) if out_dir is not None else _run_dir(cfg.run_name) / "prior_noise"
    out.mkdir(parents=True, exist_ok=True)
    done = {(str(r.get("level")), int(r.get("seed", -1))) for r in read_jsonl(out / "prior_noise.jsonl")} if (
        out / "prior_noise.jsonl").is_file() else set()  # fmt: skip
    todo = [(n, s) for n in specs for s in seeds if (n, s) not in done]
    train = train_fn or train_fer
    prepared: dict[str, FERData] = {}
    quality: dict[str, dict[str, float]] = {}
    for name, seed in tqdm(todo, desc="prior noise", disable=not progress):
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
        best = int(getattr(res, "best_epoch", 0) or 0)
        rec = {"level": name, "seed": seed, **spec, **scores, **quality[name], "best_epoch": best,
               "train_s": round(train_s, 1)}  # fmt: skip
        append_jsonl(out / "prior_noise.jsonl", rec)
    return read_prior_noise(out)


def summarise_prior_noise(df: pd.DataFrame) -> pd.DataFrame:
    """Per level: the mean and standard deviation over seeds of every accuracy / F1 column, the prior quality, and
    the number of seeds; levels in the order they first appear."""
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
    out["seeds"] = g.size()
    return out.reset_index()
