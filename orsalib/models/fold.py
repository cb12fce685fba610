"""Inference-only BatchNorm folding of a frozen network: each ``BN(conv(x))`` / ``BN(linear(x))`` pair becomes one
layer, folded by torch's own ``torch.nn.utils.fusion`` (the same function up to float rounding). Used by the prior
extractors (:mod:`orsalib.priors.fast`); training never folds.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

__all__ = ["fold_batchnorm"]


def _fold_children(module: nn.Module) -> int:
    """Fold every ``(Conv2d|Linear, BatchNorm)`` pair that follows each other among ``module``'s children."""
    n = 0
    names = list(module._modules)
    for a, b in zip(names, names[1:]):
        layer, bn = module._modules[a], module._modules[b]
        if isinstance(layer, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            module._modules[a] = fuse_conv_bn_eval(layer, bn)
        elif isinstance(layer, nn.Linear) and isinstance(bn, nn.BatchNorm1d):
            module._modules[a] = fuse_linear_bn_eval(layer, bn)
        else:
            continue
        module._modules[b] = nn.Identity()
        n += 1
    return n


def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """``model`` (eval mode) with every BatchNorm folded into the conv / linear layer registered right before it.

    A pair is folded when the two are consecutive children of one module (a ``Sequential``, or attributes such as
    ``conv`` then ``bn`` defined in that order) *and* the module's forward applies them in that order; this holds
    for MobileFaceNet (``ConvBlock``, ``LinearBlock``, the GDC head). Other models should be checked against the
    unfolded forward (tests/test_speed_paths.py does).

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
