"""Inference-only BatchNorm folding: ``BN(conv(x))`` -> ``conv'(x)`` with the statistics folded into the weights.

For a frozen network in eval mode a BatchNorm after a convolution (or a linear layer) is an affine map per output
channel, ``y = (z - mean) / sqrt(var + eps) * gamma + beta``, so it can be folded into the layer before it:

    W' = W * gamma / sqrt(var + eps)        b' = (b - mean) * gamma / sqrt(var + eps) + beta

The folded network computes the same function up to float rounding (about 1e-6 relative in fp32) with one pass over
each activation fewer. Used by the prior extractors (:mod:`orsalib.priors.fast`); training never folds.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["fold_batchnorm", "fold_bn_into"]


@torch.no_grad()
def fold_bn_into(layer: nn.Conv2d | nn.Linear, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> nn.Conv2d | nn.Linear:
    """A copy of ``layer`` (a conv or linear layer) with the eval-mode ``bn`` that follows it folded in (with bias)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fold_bn_into: the BatchNorm has no running statistics (track_running_stats=False)")
    w = layer.weight.float()
    out_ch = w.shape[0]
    if bn.num_features != out_ch:
        raise ValueError(f"fold_bn_into: BatchNorm of {bn.num_features} features after a layer of {out_ch} outputs")
    inv_std = torch.rsqrt(bn.running_var.float() + bn.eps)  # (C,)
    gamma = bn.weight.float() if bn.weight is not None else torch.ones_like(inv_std)
    beta = bn.bias.float() if bn.bias is not None else torch.zeros_like(inv_std)
    scale = gamma * inv_std  # (C,)
    bias = layer.bias.float() if layer.bias is not None else torch.zeros_like(scale)
    if isinstance(layer, nn.Conv2d):
        fused = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                          layer.dilation, layer.groups, bias=True, padding_mode=layer.padding_mode)  # fmt: skip
    elif isinstance(layer, nn.Linear):
        fused = nn.Linear(layer.in_features, layer.out_features, bias=True)
    else:
        raise TypeError(f"fold_bn_into: cannot fold a BatchNorm into {type(layer).__name__}")
    fused = fused.to(device=layer.weight.device, dtype=layer.weight.dtype)
    fused.weight.copy_((w * scale.reshape(-1, *([1] * (w.dim() - 1)))).to(layer.weight.dtype))
    fused.bias.copy_(((bias - bn.running_mean.float()) * scale + beta).to(layer.weight.dtype))
    return fused.requires_grad_(layer.weight.requires_grad)


def _fold_children(module: nn.Module) -> int:
    """Fold every ``(Conv2d|Linear, BatchNorm)`` pair that follows each other among ``module``'s children."""
    n = 0
    names = list(module._modules)
    for a, b in zip(names, names[1:]):
        layer, bn = module._modules[a], module._modules[b]
        if isinstance(layer, (nn.Conv2d, nn.Linear)) and isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if isinstance(layer, nn.Linear) != isinstance(bn, nn.BatchNorm1d):
                continue
            module._modules[a] = fold_bn_into(layer, bn)
            module._modules[b] = nn.Identity()
            n += 1
    return n


def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """``model`` (eval mode) with every BatchNorm folded into the conv / linear layer registered right before it.

    A pair is folded when the two are consecutive children of one module (a ``Sequential``, or attributes such as
    ``conv`` then ``bn`` defined in that order) *and* the module's forward applies them in that order; this holds
    for MobileFaceNet (``ConvBlock``, ``LinearBlock``, the GDC head). Other models should be checked against the
    unfolded forward (:func:`orsalib.priors.fast` does in its tests).

    Args:
        model: the network; it must be in eval mode (a folded BatchNorm no longer updates statistics).
        inplace: fold in ``model`` itself instead of a deep copy.

    Returns:
        the folded model (eval mode), with ``folded_batchnorms`` set to the number of folded pairs.
    """
    if model.training:
        raise ValueError("fold_batchnorm: the model must be in eval mode (folding freezes the BatchNorm statistics)")
    out = model if inplace else copy.deepcopy(model)
    n = sum(_fold_children(m) for m in list(out.modules()))
    out.folded_batchnorms = n
    return out.eval()
