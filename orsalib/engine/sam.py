"""Sharpness-Aware Minimization (Foret et al., ICLR 2021, Alg. 1) around any base optimizer.

One SAM step is two forward/backward passes:

1. gradient g at w; ``first_step``: ``e(w) = rho * g / ||g||`` (adaptive ASAM: ``rho * |w|^2 g / || |w| g ||``),
   move to ``w + e(w)``;
2. gradient at ``w + e(w)``; ``second_step``: restore the exact ``w`` and take the base optimizer's step
   with that gradient.

The release wraps Adam (rho 0.05, not adaptive, no weight decay) and uses the same loss in both passes.
Gradient clipping goes between the second backward and :meth:`SAM.second_step`. Learning-rate schedulers are
attached to ``sam.base_optimizer``.

The gradient norm and the perturbation run as ``torch._foreach_*`` operations over all parameters of a device
and dtype at once (``foreach=True``, the default): the same arithmetic per tensor as the per-parameter loop
(``foreach=False``), so both give bit-identical weights. ``w + e(w)`` is swapped in as the parameters' data and
``w`` swapped back by :meth:`SAM.restore`: no copy of the weights per step (the loop copies them).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch


class SAM:
    """SAM wrapper: ``first_step`` / ``second_step`` / ``zero_grad`` / ``state_dict`` / ``load_state_dict``.

    Args:
        base_optimizer: a constructed ``torch.optim.Optimizer`` over the model's parameters.
        rho: neighbourhood radius (release: 0.05).
        adaptive: ASAM (Kwon et al., 2021) scaling by ``|w|`` (release: False).
        foreach: vectorised perturbation and restore (``torch._foreach_*``); False = the per-parameter loop (the
            same numbers, slower).
    """

    def __init__(
        self, base_optimizer: torch.optim.Optimizer, rho: float = 0.05, adaptive: bool = False, foreach: bool = True
    ):
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError(f"SAM wraps a torch.optim.Optimizer, got {type(base_optimizer).__name__}")
        if not rho > 0:
            raise ValueError(f"SAM: rho={rho!r} must be > 0")
        self.base_optimizer = base_optimizer
        self.rho, self.adaptive, self.foreach = float(rho), bool(adaptive), bool(foreach)
        self._old: dict[torch.Tensor, torch.Tensor] = {}  # parameter -> its value (foreach: its data) before e(w)
        self._active = False  # between first_step and restore

    @property
    def param_groups(self) -> list[dict]:
        return self.base_optimizer.param_groups

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"] if p.grad is not None]

    @staticmethod
    def _grouped(params: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        """Parameters grouped by (device, dtype, grad dtype): what one ``torch._foreach_*`` call accepts."""
        groups: dict[tuple, list[torch.Tensor]] = defaultdict(list)
        for p in params:
            groups[(p.device, p.dtype, p.grad.dtype)].append(p)
        return list(groups.values())

    @torch.no_grad()
    def grad_norm(self) -> torch.Tensor:
        """``|| (|w| if adaptive else 1) * g ||_2`` over all parameters with a gradient."""
        params = self._params()
        if not params:
            return torch.zeros(())
        dev = params[0].device
        if not self.foreach:
            norms = [((p.abs() if self.adaptive else 1.0) * p.grad).norm(p=2).to(dev) for p in params]
            return torch.stack(norms).norm(p=2)
        norms: dict[int, torch.Tensor] = {}
        for group in self._grouped(params):
            grads = [p.grad for p in group]
            if self.adaptive:
                grads = torch._foreach_mul(torch._foreach_abs(group), grads)
            norms.update((id(p), n.to(dev)) for p, n in zip(group, torch._foreach_norm(grads, 2)))
        return torch.stack([norms[id(p)] for p in params]).norm(p=2)  # the loop's order: the same rounding

    @torch.no_grad()
    def first_step(self, zero_grad: bool = True) -> None:
        """Move to the worst-case neighbour ``w + e(w)`` (gradients of the first pass must be in ``.grad``).

        A non-finite gradient norm leaves the weights where they are (the second pass then equals plain descent).
        """
        if self._active:
            raise RuntimeError("SAM.first_step called twice without second_step")
        params = self._params()
        norm = self.grad_norm()
        finite = bool(torch.isfinite(norm))
        scale = self.rho / (norm + 1e-12)
        self._active = True
        if self.foreach:
            self._first_step_foreach(params, scale, finite)
        else:
            for p in params:
                self._old[p] = p.detach().clone()
                if finite:
                    e_w = (p.pow(2) if self.adaptive else 1.0) * p.grad * scale.to(p)
                    p.add_(e_w)  # climb to the local maximum w + e(w)
        if zero_grad:
            self.zero_grad()

    def _first_step_foreach(self, params: list[torch.Tensor], scale: torch.Tensor, finite: bool) -> None:
        """:meth:`first_step` with one ``torch._foreach_*`` call per (device, dtype) group.

        ``w + e(w)`` is computed out of place and swapped in as the parameters' data; ``w`` itself is never
        copied or touched, and :meth:`restore` swaps it back (exact, and no copy of the weights per step).
        """
        if not finite:
            return
        for group in self._grouped(params):
            s = scale.to(device=group[0].device, dtype=group[0].dtype)
            grads = [p.grad for p in group]
            if self.adaptive:  # (p^2 * g) * s, the loop's order of operations
                e_w = torch._foreach_mul(torch._foreach_pow(group, 2), grads)
                torch._foreach_mul_(e_w, s)
            else:
                e_w = torch._foreach_mul(grads, s)
            torch._foreach_add_(e_w, group)  # e(w) + w = w + e(w) exactly: the local maximum, in e(w)'s memory
            for p, w_e in zip(group, e_w):
                if w_e.stride() != p.stride():  # e.g. a 1x1 conv's gradient: keep the parameter's layout (compile)
                    w_e = torch.empty_like(p).copy_(w_e)
                self._old[p] = p.data
                p.data = w_e

    @torch.no_grad()
    def restore(self) -> None:
        """Put back the exact weights saved by :meth:`first_step` (no step)."""
        for p, old in self._old.items():
            if self.foreach:
                p.data = old  # the untouched w (swapped out by first_step)
            else:
                p.copy_(old)
        self._old.clear()
        self._active = False

    @torch.no_grad()
    def second_step(self, zero_grad: bool = True) -> None:
        """Restore ``w`` and step the base optimizer with the gradient computed at ``w + e(w)``."""
        if not self._active:
            raise RuntimeError("SAM.second_step called without first_step")
        self.restore()
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    def step(self, closure: Any = None) -> Any:
        """Full SAM step with a closure that re-evaluates the loss and calls ``backward`` (Foret et al., Alg. 1)."""
        if closure is None:
            raise RuntimeError("SAM.step needs a closure (or call first_step / second_step yourself)")
        closure = torch.enable_grad()(closure)
        self.first_step(zero_grad=True)
        loss = closure()
        self.second_step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """Base optimizer state + SAM settings (the perturbation is transient: a checkpoint is taken between steps)."""
        return {"base_optimizer": self.base_optimizer.state_dict(), "rho": self.rho, "adaptive": self.adaptive}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or "base_optimizer" not in state:
            raise ValueError("SAM.load_state_dict expects the dict of SAM.state_dict() (with 'base_optimizer')")
        self.base_optimizer.load_state_dict(state["base_optimizer"])
        self.rho, self.adaptive = float(state.get("rho", self.rho)), bool(state.get("adaptive", self.adaptive))
        self._old.clear()
        self._active = False

    def __repr__(self) -> str:
        return (
            f"SAM(rho={self.rho}, adaptive={self.adaptive}, foreach={self.foreach}, "
            f"base={type(self.base_optimizer).__name__})"
        )


__all__ = ["SAM"]
