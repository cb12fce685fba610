"""GFNet (Rao et al. 2021) and the CrossViT wrappers: shapes, gradients, the global filter, pinned sizes."""

import pytest
import torch

from orsalib.models import create_model, list_models
from orsalib.models.gfnet import GlobalFilter


def _params(m):
    return sum(p.numel() for p in m.parameters())


def test_registered():
    for name in ("gfnet_ti", "gfnet_xs", "gfnet_s", "gfnet_cifar_tiny", "crossvit_cifar_tiny", "crossvit_tiny_240"):
        assert name in list_models()


def test_global_filter_identity_and_shape():
    gf = GlobalFilter(dim=5, h=4, w=4)
    x = torch.randn(2, 16, 5)
    with torch.no_grad():
        gf.complex_weight.zero_()
        gf.complex_weight[..., 0] = 1.0  # all-pass filter: FFT -> x1 -> IFFT is the identity (ortho norm)
    torch.testing.assert_close(gf(x), x, rtol=1e-5, atol=1e-5)
    assert gf.complex_weight.shape == (4, 3, 5, 2)  # (h, w//2+1, C, re/im)


def test_global_filter_is_a_circular_convolution():
    torch.manual_seed(0)
    gf = GlobalFilter(dim=1, h=4, w=4)
    x = torch.randn(1, 16, 1)
    shifted = x.view(1, 4, 4, 1).roll(1, dims=1).reshape(1, 16, 1)
    y = gf(x).view(1, 4, 4, 1).roll(1, dims=1).reshape(1, 16, 1)
    torch.testing.assert_close(gf(shifted), y, rtol=1e-4, atol=1e-5)  # shift-equivariant


def test_gfnet_cifar_forward_backward():
    torch.manual_seed(0)
    m = create_model("gfnet_cifar_tiny", drop_path=0.1)
    x = torch.randn(3, 3, 32, 32)
    out = m(x)
    assert out["logits"].shape == (3, 10) and out["features"].shape == (3, 128)
    out["logits"].sum().backward()
    assert m.blocks[0].filter.complex_weight.grad.abs().sum() > 0
    assert m.patch_embed.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="32x32"):
        m(torch.randn(1, 3, 64, 64))


def test_pinned_param_counts():
    # GFNet paper Table 2: Ti 7M, XS 16M, S 25M (1000-class head, 224 px, patch 16)
    assert _params(create_model("gfnet_ti")) == 7_511_784
    assert _params(create_model("gfnet_xs")) == 15_985_768
    assert _params(create_model("gfnet_s")) == 24_869_608
    assert _params(create_model("gfnet_cifar_tiny")) == 585_866
    # timm crossvit_tiny_240 with its 1000-class heads (CrossViT paper: 7.0M)
    assert _params(create_model("crossvit_tiny_240")) == 7_014_800
    assert _params(create_model("crossvit_cifar_tiny")) == 6_504_788


def test_crossvit_cifar_forward_backward():
    torch.manual_seed(0)
    m = create_model("crossvit_cifar_tiny")
    out = m(torch.randn(2, 3, 32, 32))
    assert out["logits"].shape == (2, 10)
    out["logits"].sum().backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="embed_dimm"):
        create_model("gfnet_ti", embed_dimm=3)
