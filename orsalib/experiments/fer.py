"""One FER run: data, priors, model, training (notebooks 40, 50, 60, 80 and ``orsa train`` call this).

One run, end to end (docs/architecture.md, "Data flow of one training run")::

    manifest = load_manifest(cfg.data)                       # orsalib.data.sources
    store = PriorCache().ensure(manifest, cfg.prior, ...)    # priors computed once (None for source "none")
    loaders = build_loaders(manifest, cfg.data, ...)         # balanced sampler, augmentation
    model = create_model(cfg.model.name, ...)                # Table 6 switches from cfg.model
    fit(model, loaders["train"], loaders["valid"], build_criterion(cfg.train), cfg.train, run_dir)

A trained run lives in ``outputs/<run_name>/train/`` (``config.json``, ``metrics.jsonl``, ``summary.json``,
``checkpoints/{best,last}.pt``); :func:`orsalib.experiments.runs.load_trained` rebuilds the model from there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from ..config import PriorConfig, RunConfig
from ..data.labels import emotions
from ..data.loaders import build_loaders
from ..data.sources import load_manifest, validation_summary, write_validation_report
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
        validation: the data validation report (``manifest.attrs["validation"]``: counts per split and class,
            skipped files with reasons, images shared across splits); save it into the run folder with
            :func:`orsalib.data.sources.write_validation_report`.
    """

    manifest: pd.DataFrame
    loaders: dict[str, Any]
    prior_store: Any
    class_names: list[str]
    validation: dict[str, Any] = field(default_factory=dict)


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
    validation = dict(manifest.attrs.get("validation") or {})
    if validation and ddp.is_main_process():
        print(f"data {validation_summary(validation)}", flush=True)
    store = None
    if cfg.prior.source != "none" and cfg.prior.mode == "cached":
        dev = resolve_device(cfg.device)
        store = _rank0_first(lambda: PriorCache().ensure(manifest, cfg.prior, cfg.data.image_size, dev))
    loaders = build_loaders(
        manifest, cfg.data, cfg.train.batch_size, seed=cfg.seed, prior_store=store, distributed=distributed
    )
    return FERData(
        manifest=manifest, loaders=loaders, prior_store=store, class_names=list(emotions(cfg.data.num_classes)),
        validation=validation,
    )  # fmt: skip


def _orsanet_options(cfg: RunConfig) -> dict[str, Any]:
    m = cfg.model
    opts: dict[str, Any] = dict(
        img_size=cfg.data.image_size,
        prior_routing=m.prior_routing,
        seg_prior=m.seg_prior,
        cross_interaction=m.cross_interaction,
        cross_interaction_ablation=m.cross_interaction_ablation,
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

    ORSANet variants get the Table 6 switches (seg_prior, cross_interaction with cross_interaction_ablation,
    multi_scale, landmark_reintegration), prior routing, drop path and the input size; other models (RAN,
    baselines) get ``num_classes`` only.
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


#: config keys that may differ between a run on disk and the config that continues it
SAFE_ON_RESUME: tuple[str, ...] = ("run_name", "device", "train.epochs", "train.log_every", "data.num_workers")
#: what to do with a run folder that already holds a run
EXISTING_CHOICES: tuple[str, ...] = ("refuse", "resume", "overwrite", "auto")


class RunFolderError(ValueError):
    """A run folder already holds a run that this call must not touch (the message says the ways on)."""


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix[:-1]: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) and k != "extra" else {f"{prefix}{k}": v})
    return out


def config_changes(saved: dict[str, Any], cfg: RunConfig, ignore: tuple[str, ...] = SAFE_ON_RESUME) -> dict:
    """``{dotted key: (on disk, now)}`` for every config value that differs, except the keys in ``ignore``."""
    old, new = _flat(saved), _flat(cfg.to_dict())
    keys = sorted((set(old) | set(new)) - set(ignore))
    return {k: (old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)}


def holds_run(rd: Path) -> bool:
    """Whether ``rd`` holds (part of) a training run: a config, metrics or checkpoints."""
    return (rd / "config.json").is_file() or (rd / "metrics.jsonl").is_file() or any((rd / "checkpoints").glob("*.pt"))


def _aside_name(rd: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = rd.with_name(f"{rd.name}.replaced-{stamp}")
    k = 1
    while aside.exists():
        k += 1
        aside = rd.with_name(f"{rd.name}.replaced-{stamp}-{k}")
    return aside


def claim_run_dir(rd: Path, cfg: RunConfig, existing: str = "refuse") -> bool:
    """Decide what happens to ``rd`` before training into it; returns whether to resume from its checkpoint.

    Args:
        rd: the run's train folder.
        cfg: the config about to be trained.
        existing: ``refuse`` (the CLI's default: an existing run is never touched), ``resume`` (continue it, or reuse
            it when complete, only if its config equals ``cfg`` up to :data:`SAFE_ON_RESUME`), or ``overwrite``
            (move the old run aside to ``<name>.replaced-<time>`` and start again; nothing is deleted), or ``auto``
            (the notebooks' choice: ``resume`` when the configs match, ``overwrite`` otherwise).

    Raises:
        RunFolderError: the folder holds a run and ``existing`` does not allow touching it, or its config differs.
    """
    if existing not in EXISTING_CHOICES:
        raise ValueError(f"existing={existing!r} is not allowed; choose one of {list(EXISTING_CHOICES)}")
    if not rd.exists() or not holds_run(rd):
        return False
    if existing == "overwrite":
        aside = _aside_name(rd)
        rd.rename(aside)
        print(f"moved the previous run aside: {rd} -> {aside}", flush=True)
        return False
    if existing == "refuse":
        raise RunFolderError(
            f"{rd} already holds a run; continue it with --resume (same config; train.epochs may grow), or start "
            f"again with --overwrite (the old run is moved aside to {rd.name}.replaced-<time>, nothing is deleted), "
            "or choose another --run-name"
        )
    try:
        saved = json.loads((rd / "config.json").read_text(encoding="utf-8"))["config"]
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as e:
        if existing == "auto":
            return claim_run_dir(rd, cfg, "overwrite")
        raise RunFolderError(
            f"cannot resume {rd}: its config.json is missing or unreadable ({type(e).__name__}), so its config "
            "cannot be checked; start again with --overwrite or choose another --run-name"
        ) from None
    changes = config_changes(saved, cfg)
    if changes and existing == "auto":
        return claim_run_dir(rd, cfg, "overwrite")
    if changes:
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in changes.items()))
        raise RunFolderError(
            f"cannot resume {rd} with a different config ({listed}); only {', '.join(SAFE_ON_RESUME)} may change. "
            "Start again with --overwrite (the old run is moved aside) or choose another --run-name"
        )
    return True


def _claim(rd: Path, cfg: RunConfig, existing: str) -> bool:
    """:func:`claim_run_dir` on rank 0; every rank gets its answer (or its error)."""
    outcome: Any = None
    if ddp.is_main_process():
        try:
            outcome = claim_run_dir(rd, cfg, existing)
        except RunFolderError as e:
            outcome = e
    outcome = ddp.broadcast_object(outcome)
    if isinstance(outcome, BaseException):
        raise outcome
    return bool(outcome)


def train_fer(
    cfg: RunConfig,
    run_dir: str | Path | None = None,
    data: FERData | None = None,
    model: nn.Module | None = None,
    resume: bool = False,
    criterion_extra: Callable | None = None,
    *,
    existing: str | None = None,
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
        resume: shorthand for ``existing="resume"``.
        criterion_extra: ``extra(out, batch) -> (weighted tensor, name)`` added to the loss (RAN region loss).
        existing: what to do when ``run_dir`` already holds a run (:func:`claim_run_dir`): ``refuse`` (default
            unless ``resume``), ``resume``, ``overwrite`` or ``auto``. Checked before any data is prepared.

    Raises:
        RunFolderError: ``run_dir`` holds a run that ``existing`` does not allow touching.
    """
    cfg.validate()
    rd = Path(run_dir) if run_dir is not None else _run_dir(cfg.run_name) / TRAIN_SUBDIR
    resume = _claim(rd, cfg, existing or ("resume" if resume else "refuse"))
    seed_everything(cfg.seed)
    data = data or prepare_fer_data(cfg, distributed=ddp.is_distributed())
    report = data.validation or (data.manifest if isinstance(data.manifest, pd.DataFrame) else None)
    if report is not None and ddp.is_main_process():
        rd.mkdir(parents=True, exist_ok=True)
        write_validation_report(report, rd)  # counts, skipped files, cross-split copies
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
    "EXISTING_CHOICES",
    "FERData",
    "RunFolderError",
    "SAFE_ON_RESUME",
    "TRAIN_SUBDIR",
    "claim_run_dir",
    "config_changes",
    "build_fer_model",
    "load_in_model_prior_weights",
    "prepare_fer_data",
    "train_fer",
]
