"""RAN beside ORSANet (notebook 80): the RAN run config, its released recipe and the region biased loss term.

RAN (Wang et al., TIP 2020) is trained with the same engine, data, epochs and evaluation as ORSANet; what differs is
the model (``model.extra`` carries the region options), no DARELoss / LSCE warm-up, the region biased loss added to
the cross-entropy, and, with the ``released`` recipe, the release's SGD schedule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..config import RunConfig, apply_overrides
from ..losses import region_biased_loss

#: the RAN variant of each profile
DEFAULT_RAN_MODEL: dict[str, str] = {"smoke": "ran_tiny", "cpu": "ran_cpu", "paper": "ran_resnet18"}


def released_ran_recipe(epochs: int, batch_size: int) -> dict[str, Any]:
    """The release's optimisation: SGD momentum 0.9, weight decay 1e-4, lr 0.1 x batch/128, lr / 10 at 30 % of the
    epochs (no SAM)."""
    return {
        "train.optimizer": "sgd", "train.momentum": 0.9, "train.weight_decay": 1e-4, "train.sam": False,
        "train.lr": 0.1 * batch_size / 128, "train.scheduler": "step", "train.step_size": max(1, round(0.3 * epochs)),
        "train.gamma": 0.1,
    }  # fmt: skip


def ran_config(
    cfg: RunConfig,
    *,
    model: str = "",
    regions: str = "fixed",
    scheme: str = "ferplus",
    softmax_alpha: bool = True,
    margin: float = 0.1,
    recipe: str = "auto",
) -> RunConfig:
    """The RAN run beside the ORSANet run ``cfg``: same data, epochs, seed and evaluation.

    Args:
        cfg: the ORSANet run config.
        model: a registered RAN variant; "" = :data:`DEFAULT_RAN_MODEL` of the profile.
        regions, scheme, softmax_alpha, margin: RAN's region options (``orsalib.models.ran``).
        recipe: ``released`` (SGD, :func:`released_ran_recipe`), ``profile`` (the profile's optimizer) or ``auto``
            (released on the ``paper`` profile, the profile's otherwise).
    """
    if recipe not in ("auto", "released", "profile"):
        raise ValueError(f"recipe={recipe!r} is not allowed; choose auto, released or profile")
    over: dict[str, Any] = {
        "model.name": model or DEFAULT_RAN_MODEL.get(cfg.profile, "ran_cpu"),
        "model.extra": {"regions": regions, "scheme": scheme, "softmax_alpha": softmax_alpha, "margin": margin},
        "train.dare": False,
        "train.lsce_warmup_epochs": 0,
    }
    if recipe == "released" or (recipe == "auto" and cfg.profile == "paper"):
        over.update(released_ran_recipe(cfg.train.epochs, cfg.train.batch_size))
    return apply_overrides(cfg, over)


class RegionLossTerm:
    """``extra(out, batch) -> (weight * region biased loss, "rb")`` for ``train_fer(criterion_extra=...)``; a class,
    not a closure, so that a training can run in a worker process (:mod:`orsalib.experiments.parallel`)."""

    def __init__(self, weight: float, margin: float) -> None:
        self.weight, self.margin = float(weight), float(margin)

    def __call__(self, out: Mapping[str, Any], batch: Mapping) -> tuple[torch.Tensor, str]:
        return self.weight * region_biased_loss(out["alphas"], margin=self.margin), "rb"

    def __repr__(self) -> str:
        return f"RegionLossTerm(weight={self.weight}, margin={self.margin})"


def region_loss_term(weight: float, margin: float) -> Callable[[Mapping[str, Any], Mapping], tuple[torch.Tensor, str]]:
    """``extra(out, batch) -> (weight * region biased loss, "rb")`` for ``train_fer(criterion_extra=...)``."""
    return RegionLossTerm(weight, margin)


__all__ = ["DEFAULT_RAN_MODEL", "RegionLossTerm", "ran_config", "region_loss_term", "released_ran_recipe"]
