"""Losses of the ORSANet recipe: DARELoss (paper Sec. 3.5, Eq. 10-11, and the released variant), label-smoothing
CE (the release's warm-up), RAN's region biased loss (Wang et al., TIP 2020, Eq. 4), and the training criterion.

DARELoss (Dynamic Adaptive Reweighting) compares the target logit with the single *strongest* competitor:

- ``form="paper"`` (Eq. 10-11): the competitor logit is scaled, ``z'_k = (1 + alpha) z_k`` with
  ``alpha = T * (1 - P(y))`` and ``L = -log(e^{z_y} / (e^{z_y} + e^{z'_k}))``.
- ``form="released"`` (the published code, **default**, because the published numbers used it): an additive,
  detached margin, ``L = softplus(z_k - z_y + T * (1 - P(y)))``, i.e. the 2-way cross-entropy of the target
  against the hardest negative after adding ``T * (1 - P(y))`` to the negative logits.

In both forms ``P = softmax(z)`` is **detached** (it only sets the size of the penalty), ``k = argmax`` of the
raw non-target logits and ``T`` is the temperature (release: 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

DARE_FORMS: tuple[str, ...] = ("released", "paper")
_REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction={reduction!r} is not allowed; choose one of {list(_REDUCTIONS)}")


def _check_logits(logits: torch.Tensor, target: torch.Tensor, name: str) -> None:
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"{name}: logits must be (B, C) with C >= 2, got shape {tuple(logits.shape)}")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"{name}: target must be (B,) = {tuple(logits.shape[:1])}, got {tuple(target.shape)}")


def dare_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    form: str = "released",
    temperature: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """DARELoss of paper Sec. 3.5 (Eq. 10-11) or of the released code.

    Args:
        logits: (B, C) raw class scores (computed in float32 whatever the autocast dtype).
        target: (B,) int64 class ids.
        form: ``"released"`` (default; additive detached margin ``T * (1 - p_y)`` on the hardest negative, what
            the published numbers used) or ``"paper"`` (Eq. 10: ``z'_k = (1 + alpha) z_k``, ``alpha = T (1 - p_y)``;
            Eq. 11: ``-log(e^{z_y} / (e^{z_y} + e^{z'_k}))``).
        temperature: T, the scale of the adaptive term (release: 1).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.

    Returns:
        The loss (scalar, or (B,) for ``reduction="none"``).
    """
    _check_logits(logits, target, "dare_loss")
    if form not in DARE_FORMS:
        raise ValueError(f"dare_loss: form={form!r} is not allowed; choose one of {list(DARE_FORMS)}")
    z = logits.float()
    y = target.long()[:, None]  # (B, 1)
    p_y = z.detach().softmax(dim=1).gather(1, y)[:, 0]  # (B,) P(target), detached: sets the penalty only
    alpha = temperature * (1.0 - p_y)  # (B,)
    z_y = z.gather(1, y)[:, 0]  # (B,)
    z_neg = z.scatter(1, y, float("-inf"))  # (B, C) target masked out
    k = z_neg.detach().argmax(dim=1, keepdim=True)  # (B, 1) strongest negative
    z_k = z.gather(1, k)[:, 0]  # (B,)
    if form == "released":
        # softplus(z_k + margin - z_y) = -log(e^{z_y} / (e^{z_y} + e^{z_k + margin}))
        loss = F.softplus(z_k - z_y + alpha)
    else:
        # Eq. (10): z'_k = (1 + alpha) z_k ; Eq. (11): -log(e^{z_y} / (e^{z_y} + e^{z'_k}))
        loss = F.softplus((1.0 + alpha) * z_k - z_y)
    return _reduce(loss, reduction)


class DARELoss(nn.Module):
    """Module form of :func:`dare_loss` (``form="released"`` by default; see the module docstring)."""

    def __init__(self, form: str = "released", temperature: float = 1.0, reduction: str = "mean"):
        super().__init__()
        if form not in DARE_FORMS:
            raise ValueError(f"DARELoss: form={form!r} is not allowed; choose one of {list(DARE_FORMS)}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"DARELoss: reduction={reduction!r} is not allowed; choose one of {list(_REDUCTIONS)}")
        self.form, self.temperature, self.reduction = form, float(temperature), reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dare_loss(logits, target, self.form, self.temperature, self.reduction)

    def extra_repr(self) -> str:
        return f"form={self.form!r}, temperature={self.temperature}"


def label_smoothing_ce(logits: torch.Tensor, target: torch.Tensor, eps: float = 0.2) -> torch.Tensor:
    """Label-smoothing cross-entropy: ``(1 - eps) * CE + eps * mean_c(-log p_c)`` (release warm-up: eps 0.2)."""
    _check_logits(logits, target, "label_smoothing_ce")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing_ce: eps={eps!r} must lie in [0, 1]")
    logp = logits.float().log_softmax(dim=1)  # (B, C)
    nll = -logp.gather(1, target.long()[:, None])[:, 0]  # (B,)
    smooth = -logp.mean(dim=1)  # (B,)
    return ((1.0 - eps) * nll + eps * smooth).mean()


def region_biased_loss(alphas: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """RAN's region biased loss: ``mean_b relu(margin - (max_{i>=1} alpha_i - alpha_0))``.

    Args:
        alphas: (B, R) region attention weights; region 0 is the whole face, 1..R-1 the crops.
        margin: m (RAN code: 0.1 on FERPlus, 0.03 on AffectNet).
    """
    if alphas.ndim != 2 or alphas.shape[1] < 2:
        raise ValueError(
            f"region_biased_loss: alphas must be (B, R) with R >= 2 (face + crops), got {tuple(alphas.shape)}"
        )
    a = alphas.float()
    gap = a[:, 1:].max(dim=1).values - a[:, 0]  # (B,) best crop minus whole face
    return F.relu(margin - gap).mean()


# ----------------------------------------------------------------------------- criterion
ExtraLoss = Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[torch.Tensor, str]]


class FERCriterion:
    """The release's recipe as a ``criterion(out, batch, epoch) -> (loss, parts)`` (docs/contracts.md).

    ``epoch`` is 0-based. Epochs ``0 .. lsce_warmup_epochs-1``: ``ce_weight * CE + lsce_weight * LSCE(eps)``;
    afterwards: ``ce_weight * CE + dare_weight * DARE`` (DARE only when ``dare``). ``extra(out, batch) ->
    (tensor, name)`` adds a further (already weighted) term, e.g. RAN's region biased loss. ``parts`` holds the
    unweighted value of every term and ``"loss"``, the weighted total, as python floats.
    """

    def __init__(
        self,
        ce_weight: float = 1.0,
        lsce_warmup_epochs: int = 5,
        lsce_eps: float = 0.2,
        lsce_weight: float = 2.0,
        dare: bool = True,
        dare_form: str = "released",
        dare_weight: float = 0.1,
        dare_temperature: float = 1.0,
        extra: ExtraLoss | None = None,
    ):
        if dare_form not in DARE_FORMS:
            raise ValueError(f"dare_form={dare_form!r} is not allowed; choose one of {list(DARE_FORMS)}")
        self.ce_weight, self.lsce_warmup_epochs, self.lsce_eps = ce_weight, int(lsce_warmup_epochs), lsce_eps
        self.lsce_weight, self.dare, self.dare_form = lsce_weight, bool(dare), dare_form
        self.dare_weight, self.dare_temperature, self.extra = dare_weight, dare_temperature, extra

    def phase(self, epoch: int) -> str:
        """``"warmup"`` (CE + LSCE) or ``"main"`` (CE + DARE) for a 0-based epoch."""
        return "warmup" if epoch < self.lsce_warmup_epochs else "main"

    def __call__(self, out: Mapping[str, Any], batch: Mapping[str, Any], epoch: int) -> tuple[torch.Tensor, dict]:
        logits = out["logits"] if isinstance(out, Mapping) else out
        target = batch["label"]
        ce = F.cross_entropy(logits.float(), target.long())
        terms: dict[str, torch.Tensor] = {"ce": ce}
        loss = self.ce_weight * ce
        if self.phase(epoch) == "warmup":
            lsce = label_smoothing_ce(logits, target, self.lsce_eps)
            terms["lsce"] = lsce
            loss = loss + self.lsce_weight * lsce
        elif self.dare and self.dare_weight > 0:
            dare = dare_loss(logits, target, self.dare_form, self.dare_temperature)
            terms["dare"] = dare
            loss = loss + self.dare_weight * dare
        if self.extra is not None:
            value, name = self.extra(out, batch)
            terms[name] = value
            loss = loss + value
        terms["loss"] = loss
        values = torch.stack([t.detach().float() for t in terms.values()]).tolist()  # one device sync
        return loss, dict(zip(terms.keys(), values))

    def __repr__(self) -> str:
        main = f"{self.dare_weight}*DARE[{self.dare_form}]" if self.dare and self.dare_weight > 0 else "nothing"
        return (
            f"FERCriterion(epochs<{self.lsce_warmup_epochs}: {self.ce_weight}*CE + {self.lsce_weight}*LSCE(eps="
            f"{self.lsce_eps}); then {self.ce_weight}*CE + {main}{' + extra' if self.extra else ''})"
        )


def build_criterion(train_cfg: Any, extra: ExtraLoss | None = None) -> FERCriterion:
    """The training criterion of a :class:`orsalib.config.TrainConfig` (release recipe; see :class:`FERCriterion`).

    Args:
        train_cfg: a ``TrainConfig`` (fields ce_weight, lsce_*, dare*).
        extra: optional ``extra(out, batch) -> (weighted tensor, name)`` added to every step (RAN region loss).
    """
    return FERCriterion(
        ce_weight=train_cfg.ce_weight,
        lsce_warmup_epochs=train_cfg.lsce_warmup_epochs,
        lsce_eps=train_cfg.lsce_eps,
        lsce_weight=train_cfg.lsce_weight,
        dare=train_cfg.dare,
        dare_form=train_cfg.dare_form,
        dare_weight=train_cfg.dare_weight,
        dare_temperature=train_cfg.dare_temperature,
        extra=extra,
    )


__all__ = [
    "DARELoss",
    "DARE_FORMS",
    "FERCriterion",
    "build_criterion",
    "dare_loss",
    "label_smoothing_ce",
    "region_biased_loss",
]
