"""Explain: attention maps, Grad-CAM and t-SNE on a tiny model (arrays from analysis, figures from viz.analysis)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from torch import nn

from orsalib.analysis import explain as E
from orsalib.viz import analysis as VA


class _Attn(nn.Module):
    """A timm-style attention: landmark tokens query image tokens (cls + 4x4), softmax fed to attn_drop."""

    def __init__(self, dim: int = 8, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.kv = nn.Linear(dim, 2 * dim)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        k, v = self.kv(x).reshape(b, n, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # (2, B, h, N, d)
        qh = q.reshape(b, q.shape[1], self.heads, c // self.heads).transpose(1, 2)  # (B, h, Nq, d)
        attn = (qh @ k.transpose(-2, -1)).softmax(-1)  # (B, h, Nq, N)
        attn = self.attn_drop(attn)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, q.shape[1], c))


class Tiny(nn.Module):
    def __init__(self, return_attn: bool = False, with_attn: bool = True):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU()
        )
        self.attn = _Attn() if with_attn else None
        self.lm = nn.Linear(2, 8)
        self.head = nn.Linear(8, 3)
        self.return_attn = return_attn

    def forward(self, image, priors=None):
        f = self.backbone(image)  # (B, 8, 4, 4)
        tok = f.flatten(2).transpose(1, 2)  # (B, 16, 8)
        tok = torch.cat([tok.mean(1, keepdim=True), tok], 1)  # (B, 17, 8)
        out = {}
        if self.attn is not None:
            q = self.lm(priors["landmarks"])  # (B, 5, 8)
            feats = self.attn(q, tok).mean(1)
            if self.return_attn:
                out["attn"] = [torch.rand(image.shape[0], 2, 5, 17)]
        else:
            feats = tok.mean(1)
        out.update(logits=self.head(feats), features=feats)
        return out


def _batch(n: int = 3, side: int = 16) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "image": torch.randn(n, 3, side, side, generator=g),
        "label": torch.tensor([0, 1, 2][:n]),
        "landmarks": torch.rand(n, 5, 2, generator=g),
    }


def test_attention_from_hook_and_from_output():
    torch.manual_seed(0)
    m = Tiny()
    maps = E.attention_maps(m, _batch())
    assert maps.shape == (3, 16, 16)
    assert maps.min() >= 0 and maps.max() <= 1 and maps.max() == pytest.approx(1.0)
    m2 = Tiny(return_attn=True)
    assert E.attention_maps(m2, _batch(), image_size=32).shape == (3, 32, 32)


def test_attention_absent_is_none():
    assert E.attention_maps(Tiny(with_attn=False), _batch()) is None


def test_grad_cam_shape_and_target():
    torch.manual_seed(0)
    m = Tiny()
    cam = E.grad_cam(m, _batch())
    assert cam.shape == (3, 16, 16) and np.isfinite(cam).all() and cam.min() >= 0 and cam.max() <= 1
    assert E.find_last_conv(m) is m.backbone[2]
    assert E.default_cam_target(m) is m.backbone
    cam2 = E.grad_cam(m, _batch(), target_layer="backbone.0", class_idx=1)
    assert cam2.shape == (3, 16, 16)
    assert m.training  # mode restored
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        E.find_last_conv(nn.Linear(2, 2))


def test_overlay_and_explain_figure():
    m = Tiny()
    b = _batch()
    ex = E.explain_batch(m, b, ["a", "b", "c"])
    assert len(ex.titles) == 3 and ex.grad_cam is not None and ex.grad_cam.shape == (3, 16, 16)
    fig = VA.explain_samples(m, b, ["a", "b", "c"])
    assert isinstance(fig, go.Figure)
    # 3 columns x (image row + 2 overlay rows each image + heatmap)
    assert sum(isinstance(t, go.Image) for t in fig.data) == 3 * 3
    assert sum(isinstance(t, go.Heatmap) for t in fig.data) == 3 * 2
    fig2 = VA.overlay_figure(b["image"], [None, np.zeros((3, 16, 16))], row_names=["att", "cam"])
    assert sum(isinstance(t, go.Heatmap) for t in fig2.data) == 3
    with pytest.raises(ValueError, match="maps for 3 images"):
        VA.overlay_figure(b["image"], np.zeros((2, 16, 16)))


def test_tsne_figure():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    feats = rng.normal(size=(60, 8)) + labels[:, None] * 4.0
    fig = VA.tsne_figure(feats, labels, ["a", "b", "c"], preds=labels, max_points=45, max_iter=250)
    assert len(fig.data) == 3
    assert sum(len(t.x) for t in fig.data) == 45
    emb, rows = E.tsne_embedding(feats, seed=1, max_iter=250)
    emb2, _ = E.tsne_embedding(feats, seed=1, max_iter=250)
    assert emb.shape == (60, 2) and np.allclose(emb, emb2)


def test_orsanet_attention_and_cam():
    from orsalib.models import create_model

    torch.manual_seed(0)
    m = create_model("orsanet_tiny")
    b = {
        "image": torch.randn(2, 3, 64, 64),
        "label": torch.tensor([0, 1]),
        "landmarks": torch.rand(2, 68, 2),
        "parsing": torch.randint(0, 11, (2, 64, 64)),
    }
    att = E.attention_maps(m, b)
    assert att is not None and att.shape == (2, 64, 64)
    assert E.grad_cam(m, b).shape == (2, 64, 64)
    base = create_model("baseline_tiny")
    assert E.attention_maps(base, b) is None


def test_select_examples_and_batch_at():
    correct = np.array([True, False, True, True, False])
    pos = E.select_examples(correct, 2, want_correct=True, seed=0)
    assert len(pos) == 2 and correct[pos].all() and list(pos) == sorted(pos)
    assert list(E.select_examples(correct, 9, want_correct=False)) == [1, 4]
    assert len(E.select_examples(np.ones(3, bool), 2, want_correct=False)) == 0
    ds = [{"image": torch.full((3, 2, 2), float(i)), "label": torch.tensor(i)} for i in range(5)]
    b = E.batch_at(ds, [1, 3])
    assert b["image"].shape == (2, 3, 2, 2) and b["label"].tolist() == [1, 3]
