"""One FER run: data, priors, model, training (notebooks 40, 50, 60, 80 and ``orsa train`` call this).

One run, end to end (DESIGN.md, "data flow of one training run")::

    manifest = load_manifest(cfg.data)                       # orsalib.data.sources
    store = PriorCache().ensure(manifest, cfg.prior, ...)    # priors computed once (None for source "none")
    loaders = build_loaders(manifest, cfg.data, ...)         # balanced sampler, augmentation
    model = create_model(cfg.model.name, ...)                # Table 6 switches from cfg.model
    fit(model, loaders["train"], loaders["valid"], build_criterion(cfg.train), cfg.train, run_dir)

A trained run lives in ``outputs/<run_name>/train/`` (``config.json``, ``metrics.jsonl``, ``summary.json``,
``checkpoints/{best,last}.pt``); :func:`orsalib.experiments.runs.load_trained` rebuilds the model from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from ..config import PriorConfig, RunConfig
from ..data.labels import emotions
from ..data.loaders import build_loaders
from ..data.sources import load_manifest
from ..engine import ddp
from ..engine.trainer import FitResult, fit
from ..losses import build_criterion
from ..models import create_model, model_meta
from ..paths import run_dir as _run_dir
from ..priors.cache import PriorCache
from ..priors.landmarks import load_weights_file
from ..priors.sources import MobileFaceNetSource, SegFaceSource
from ..utils import resolve_device, seed_everything

TRAIN_SUBDIR = "train"


@dataclass
class FERData:
    """Everything a FER run needs from the data side.

    Attributes:
        manifest: the dataset manifest (docs/contracts.md).
        loaders: one DataLoader per split (``train``, ``valid``, and e.g. SynthFER's ``valid_occluded``).
        prior_store: the prior cache's store (``store.get(i, flipped)``), or None (prior source ``none`` or the
            released in-model priors).
        class_names: canonical emotion names of the classes, in label order.
    """

    manifest: pd.DataFrame
    loaders: dict[str, Any]
    prior_store: Any
    class_names: list[str]


def _rank0_first(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 first (it may build caches on disk), then on the other ranks (which then read them)."""
    if not ddp.is_distributed():
        return fn()
    if ddp.is_main_process():
        out = fn()
        ddp.barrier()
        return out
    ddp.barrier()
    return fn()


def prepare_fer_data(cfg: RunConfig, distributed: bool = False) -> FERData:
    """Manifest -> prior cache -> loaders for ``cfg`` (``load_manifest`` -> ``PriorCache.ensure`` -> ``build_loaders``).

    The dataset does not depend on the run seed (SynthFER is generated with seed 0), so every seed of a multi-seed
    study sees the same images. With ``prior.mode="released"`` no cache is built: the model recomputes its priors.
    """
    manifest = _rank0_first(lambda: load_manifest(cfg.data, seed=0))
    store = None
    if cfg.prior.source != "none" and cfg.prior.mode == "cached":
        dev = resolve_device(cfg.device)
        store = _rank0_first(lambda: PriorCache().ensure(manifest, cfg.prior, cfg.data.image_size, dev))
    loaders = build_loaders(
        manifest, cfg.data, cfg.train.batch_size, seed=cfg.seed, prior_store=store, distributed=distributed
    )
    return FERData(
        manifest=manifest, loaders=loaders, prior_store=store, class_names=list(emotions(cfg.data.num_classes))
    )


def _orsanet_options(cfg: RunConfig) -> dict[str, Any]:
    m = cfg.model
    opts: dict[str, Any] = dict(
        img_size=cfg.data.image_size,
        prior_routing=m.prior_routing,
        seg_prior=m.seg_prior,
        cross_interaction=m.cross_interaction,
        multi_scale=m.multi_scale,
        landmark_reintegration=m.landmark_reintegration,
        drop_path=m.drop_path,
    )
    if m.backbone_weights:
        opts["backbone_weights"] = m.backbone_weights
    if cfg.prior.mode == "released" and model_meta(m.name).get("uses_priors", False):
        opts.update(priors_in_model=True, prior_mode="released")
    return opts


def build_fer_model(cfg: RunConfig, *, load_prior_weights: bool = True, **overrides: Any) -> nn.Module:
    """``create_model(cfg.model.name, ...)`` with the class count and the ``cfg.model`` switches.

    ORSANet variants get the Table 6 switches (seg_prior, cross_interaction, multi_scale, landmark_reintegration),
    prior routing, drop path and the input size; other models (RAN, baselines) get ``num_classes`` only.
    ``cfg.model.extra`` and then ``overrides`` are applied last.

    With ``prior.mode="released"`` the frozen prior networks live inside the model; their weights are loaded
    here from ``prior.landmark_weights`` / ``prior.parser_weights`` (default: ``data/weights/``), so a run never
    trains on randomly initialised priors. ``load_prior_weights=False`` skips that (a checkpoint that holds
    them is loaded next).

    Raises:
        FileNotFoundError: a prior network's weights file is missing (the message names it and its format).
        orsalib.priors.landmarks.WeightsError: the file does not hold that network's weights.
    """
    kw: dict[str, Any] = {"num_classes": cfg.data.num_classes}
    if model_meta(cfg.model.name).get("family") == "orsanet":
        kw.update(_orsanet_options(cfg))
    kw.update(dict(cfg.model.extra or {}))
    kw.update(overrides)
    model = create_model(cfg.model.name, **kw)
    if load_prior_weights:
        load_in_model_prior_weights(model, cfg.prior)
    return model


def load_in_model_prior_weights(model: nn.Module, prior_cfg: PriorConfig) -> list[str]:
    """Load the frozen MobileFaceNet / SegFace built inside ``model`` (if any) from the files of ``prior_cfg``.

    Returns:
        the attribute names loaded (``face_landback``, ``face_segment``); [] when the model holds neither.
    """
    loaded = []
    for attr, source, path in (
        ("face_landback", MobileFaceNetSource, prior_cfg.landmark_weights),
        ("face_segment", SegFaceSource, prior_cfg.parser_weights),
    ):
        net = getattr(model, attr, None)
        if net is None:
            continue
        # same file, defaults and messages as the cached path's prior sources; the model keeps the nets frozen
        load_weights_file(path or source.default_weights, net, what=source.what, origin=source.origin,
                          submodule_prefixes=(f"{attr}.",))  # fmt: skip
        loaded.append(attr)
    return loaded


def _eval_splits(loaders: dict[str, Any]) -> tuple[str, list[str]]:
    names = [s for s in loaders if s != "train"]
    if not names:
        raise ValueError(f"the data has no evaluation split (splits: {sorted(loaders)}); expected 'valid' or 'test'")
    val = "valid" if "valid" in loaders else ("test" if "test" in loaders else names[0])
    return val, [s for s in names if s != val]


def train_fer(
    cfg: RunConfig,
    run_dir: str | Path | None = None,
    data: FERData | None = None,
    model: nn.Module | None = None,
    resume: bool = False,
    criterion_extra: Callable | None = None,
) -> FitResult:
    """Train a FER model as configured: seed, data, model, criterion (release recipe), :func:`fit`.

    The best epoch is selected on ``valid`` (the release's name for the test split); when the data has no separate
    ``test`` split the summary marks that selection as optimistic (``eval_is_test``). The other evaluation splits
    (SynthFER: ``valid_occluded``) are evaluated every epoch too.

    Args:
        cfg: the resolved run config.
        run_dir: output folder; default ``outputs/<run_name>/train``.
        data: prepared data (default :func:`prepare_fer_data`).
        model: a model (default :func:`build_fer_model`).
        resume: continue from ``run_dir/checkpoints/last.pt`` if present.
        criterion_extra: ``extra(out, batch) -> (weighted tensor, name)`` added to the loss (RAN region loss).
    """
    cfg.validate()
    seed_everything(cfg.seed)
    rd = Path(run_dir) if run_dir is not None else _run_dir(cfg.run_name) / TRAIN_SUBDIR
    data = data or prepare_fer_data(cfg, distributed=ddp.is_distributed())
    if model is None:
        seed_everything(cfg.seed)  # model init independent of what data preparation consumed
        model = build_fer_model(cfg)
    val, extra = _eval_splits(data.loaders)
    return fit(
        model,
        data.loaders["train"],
        data.loaders[val],
        build_criterion(cfg.train, extra=criterion_extra),
        cfg.train,
        rd,
        device=cfg.device,
        seed=cfg.seed,
        eval_is_test="test" not in data.loaders,
        resume=resume,
        class_names=data.class_names,
        extra_eval_loaders={s: data.loaders[s] for s in extra},
        config_to_save=cfg,
        num_classes=cfg.data.num_classes,
    )


__all__ = [
    "FERData",
    "TRAIN_SUBDIR",
    "build_fer_model",
    "load_in_model_prior_weights",
    "prepare_fer_data",
    "train_fer",
]
