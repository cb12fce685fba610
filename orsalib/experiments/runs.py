"""Trained runs on disk: find, load, reuse or train them; the configs the evaluation notebooks (50, 60, 80) use.

A trained run lives in ``outputs/<run_name>/train/`` (``config.json``, ``metrics.jsonl``, ``summary.json``,
``checkpoints/{best,last}.pt``), as written by :func:`orsalib.experiments.fer.train_fer`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from ..config import RunConfig, apply_overrides, from_dict, load_profile
from ..engine.trainer import CheckpointError, load_checkpoint
from ..models.baselines import baseline_for
from ..priors.landmarks import DEFAULT_LANDMARK_WEIGHTS
from ..registry import PRIOR_SOURCES
from .fer import TRAIN_SUBDIR, FERData, RunFolderError, build_fer_model, train_fer


def find_run(run_dir: str | Path) -> Path:
    """The folder holding ``config.json`` + ``checkpoints/``: ``run_dir`` itself or its ``train/`` subfolder."""
    p = Path(run_dir)
    if (p / "config.json").is_file():
        return p
    if (p / TRAIN_SUBDIR / "config.json").is_file():
        return p / TRAIN_SUBDIR
    raise FileNotFoundError(
        f"no trained run in {str(p)!r}: expected config.json and checkpoints/ (as written by train_fer) there or in "
        f"{str(p / TRAIN_SUBDIR)!r}"
    )


def load_trained(run_dir: str | Path, which: str = "best", map_location: str = "cpu") -> tuple[nn.Module, RunConfig]:
    """Rebuild a trained model from ``run_dir`` (``config.json`` + ``checkpoints/best.pt`` or ``last.pt``).

    Args:
        run_dir: a run's train folder (``outputs/<run_name>/train``) or the run folder above it.
        which: ``"best"`` (falls back to last when no best exists) or ``"last"``.
        map_location: where to load the weights.

    Returns:
        ``(model in eval mode, RunConfig)``; ``model.checkpoint_epoch`` says which epoch the weights are from and
        ``model.checkpoint_path`` which file they came from.
    """
    if which not in ("best", "last"):
        raise ValueError(f"which={which!r} is not allowed; choose 'best' or 'last'")
    rd = find_run(run_dir)
    try:
        payload = json.loads((rd / "config.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{rd / 'config.json'} is not valid JSON ({e}); expected the file written by train_fer") from e
    cfg = from_dict(payload.get("config", payload))
    ck_dir = rd / "checkpoints"
    path = ck_dir / f"{which}.pt"
    if which == "best" and not path.is_file():
        path = ck_dir / "last.pt"
    ckpt = load_checkpoint(path, map_location=map_location)
    model = build_fer_model(cfg, load_prior_weights=False)  # the checkpoint holds any in-model prior nets
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit model {cfg.model.name!r} built from {rd / 'config.json'}: "
            f"{str(e)[:300]}"
        ) from e
    model.eval()
    model.checkpoint_epoch = int(ckpt.get("epoch", 0))  # which epoch these weights are from
    model.checkpoint_path = str(path)
    return model, cfg


def _default_landmark_weights(cfg: RunConfig) -> str:
    """The MobileFaceNet-68 file to use: the config's, else ``data/weights/mobilefacenet_68lm.pth.tar`` when it
    exists (``ORSA_DATA_DIR`` moves ``data/``), else ""."""
    if cfg.prior.landmark_weights:
        return cfg.prior.landmark_weights
    if DEFAULT_LANDMARK_WEIGHTS.is_file():
        return str(DEFAULT_LANDMARK_WEIGHTS)
    return ""


def eval_config(
    profile: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    prior_source: str = "",
    landmark_weights: str = "",
    **kw: Any,
) -> RunConfig:
    """The run config of an evaluation notebook, with a prior source that works on the chosen data.

    SynthFER's ``oracle`` priors (ground-truth landmarks and parsing) do not exist for real photographs; on any
    other dataset the profile falls back to ``landmark-parsing`` (MobileFaceNet-68 landmarks + rasterised parsing,
    :data:`orsalib.config.REAL_DATA_PRIOR_SOURCE`), whose weights are taken from ``landmark_weights``,
    ``PriorConfig.landmark_weights`` or ``data/weights/mobilefacenet_68lm.pth.tar``. Without weights a
    FileNotFoundError names that path and the settings to pass (``landmark_weights=`` /
    ``prior.landmark_weights``), or ``prior_source="none"`` with a prior-free model.
    """
    ov = dict(overrides or {})
    if prior_source:
        ov["prior.source"] = prior_source
    if landmark_weights:
        ov["prior.landmark_weights"] = landmark_weights
    cfg = load_profile(profile, ov, **kw)
    reads = PRIOR_SOURCES.meta(cfg.prior.source).get("weights", ())
    if cfg.data.dataset != "synthfer" and "landmark_weights" in reads and not cfg.prior.landmark_weights:
        w = _default_landmark_weights(cfg)
        if not w:
            raise FileNotFoundError(
                f"data.dataset={cfg.data.dataset!r} has no ground-truth ('oracle') priors and no landmark weights "
                f"were found: place the MobileFaceNet-68 checkpoint at {DEFAULT_LANDMARK_WEIGHTS} "
                "(data/weights/mobilefacenet_68lm.pth.tar, see data/README.md), pass landmark_weights=... "
                "(--set prior.landmark_weights=PATH), or pass prior_source='none' with a prior-free model"
            )
        cfg = apply_overrides(cfg, {"prior.landmark_weights": w})
    return cfg


def train_status(run: str | Path) -> str:
    """``completed`` / ``running`` (interrupted) / ``failed: <reason>`` / ``missing`` for a ``train_fer`` folder."""
    run = Path(run)
    if not (run / "config.json").is_file() or not (run / "checkpoints" / "last.pt").is_file():
        return "missing"
    try:
        status = str(json.loads((run / "summary.json").read_text(encoding="utf-8")).get("status", "completed"))
    except (OSError, ValueError):
        status = "running"
    return status if status in ("completed", "running") or status.startswith("failed") else "running"


def load_or_train(
    cfg: RunConfig,
    run_dir: str | Path,
    *,
    train_if_missing: bool = False,
    data: FERData | None = None,
    which: str = "last",
    hint: str = "run notebooks/40_training.ipynb with the same run_name first",
    criterion_extra: Callable | None = None,
) -> tuple[nn.Module, RunConfig, dict[str, Any]]:
    """The trained model of ``run_dir`` (a ``train_fer`` folder), training it there first when asked.

    Args:
        cfg: the config to train with when nothing (or an interrupted run) is there; also checked against a found
            run: a run on another dataset or class count is refused.
        run_dir: the ``train`` folder (``outputs/<run_name>/train`` for notebook 40's model).
        train_if_missing: train (or finish an interrupted training, resumable) with ``cfg``; otherwise a missing
            run is a FileNotFoundError whose message is ``hint``.
        data: prepared data for training (:func:`orsalib.experiments.fer.prepare_fer_data`).
        which: ``"last"`` (honest) or ``"best"`` (selected on the evaluation split, as the release reports).
        criterion_extra: an extra loss term for training (RAN's region biased loss; ``train_fer``).

    Returns:
        ``(model in eval mode, the run's config, info)`` with ``info`` = ``{"run_dir", "trained_here", "status",
        "epoch", "minutes"}``.
    """
    rd = Path(run_dir)
    status = train_status(rd)
    info: dict[str, Any] = {"run_dir": str(rd), "trained_here": False, "status": status, "minutes": 0.0}
    if status == "missing" and not train_if_missing:
        raise FileNotFoundError(f"no trained model in {rd} (expected config.json and checkpoints/last.pt): {hint}")
    if status.startswith("failed"):
        raise RunFolderError(
            f"the training in {rd} stopped ({status}); resuming it would fail the same way: fix the cause and train "
            "it again (orsa train --overwrite, or existing='overwrite')"
        )
    if status != "missing":
        _, found = load_trained(rd, which="last")
        if (found.data.dataset, found.data.num_classes) != (cfg.data.dataset, cfg.data.num_classes):
            raise ValueError(
                f"the model in {rd} was trained on {found.data.dataset!r} ({found.data.num_classes} classes), not on "
                f"{cfg.data.dataset!r} ({cfg.data.num_classes} classes); point checkpoint_run at a matching run"
            )
    if status == "missing" or (status == "running" and train_if_missing):
        t0 = time.perf_counter()
        train_fer(cfg, run_dir=rd, data=data, resume=True, criterion_extra=criterion_extra)
        info.update(trained_here=True, status="completed", minutes=round((time.perf_counter() - t0) / 60, 2))
    model, run_cfg = load_trained(rd, which=which)
    info["epoch"] = int(getattr(model, "checkpoint_epoch", 0))
    return model, run_cfg, info


def train_run(cfg: RunConfig, run_dir: str | Path, criterion_extra: Callable | None = None) -> str:
    """Train (or finish, resumable) the ``train_fer`` run of ``cfg`` in ``run_dir``; returns its status. What a worker
    process runs (:mod:`orsalib.experiments.parallel`); the caller loads the run from disk afterwards."""
    train_fer(cfg, run_dir=Path(run_dir), resume=True, criterion_extra=criterion_extra)
    return train_status(run_dir)


def baseline_config(cfg: RunConfig) -> RunConfig:
    """``cfg`` with the model replaced by its backbone-only baseline (registry metadata ``baseline_of``)."""
    return apply_overrides(cfg, {"model.name": baseline_for(cfg.model.name)})




def same_run(path: str | Path, cfg: RunConfig) -> bool:
    """Whether ``path`` holds a completed run trained as ``cfg`` (profile, seed, data, prior, model and epochs)."""
    path = Path(path)
    try:
        saved = json.loads((path / "config.json").read_text(encoding="utf-8"))["config"]
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        return False
    now = cfg.to_dict()
    same = all(saved.get(k) == now[k] for k in ("profile", "seed", "data", "prior", "model"))
    return same and train_status(path) == "completed" and saved["train"]["epochs"] == now["train"]["epochs"]


def reuse_or_train(
    cfg: RunConfig,
    reuse_dir: str | Path,
    train_dir: str | Path,
    *,
    data: FERData | None = None,
    retrain: bool = False,
    resume: bool = False,
) -> tuple[Path, bool, float]:
    """Reuse the run in ``reuse_dir`` when it was trained as ``cfg`` (:func:`same_run`), else train into ``train_dir``.

    A run already in ``train_dir`` is continued or reused when its config matches, else moved aside (``resume``:
    refuse a different config instead).

    Returns:
        ``(folder of the run, reused?, minutes spent training here)``.
    """
    if not retrain and same_run(reuse_dir, cfg):
        return Path(reuse_dir), True, 0.0
    t0 = time.perf_counter()
    train_fer(cfg, run_dir=train_dir, data=data, existing="resume" if resume else "auto")
    return Path(train_dir), False, (time.perf_counter() - t0) / 60


__all__ = [
    "baseline_config",
    "eval_config",
    "find_run",
    "load_or_train",
    "load_trained",
    "reuse_or_train",
    "same_run",
    "train_run",
    "train_status",
]
