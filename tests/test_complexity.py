"""Params / FLOPs: pinned counts, attention handles, counter cross-check."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from orsalib.analysis.complexity import (
    PAPER_TABLE5,
    complexity_table,
    count_flops,
    count_params,
    example_inputs,
    paper_table5,
)
from orsalib.models import create_model


class _Attn(nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        q = x.reshape(2, 4, 10, 8)  # (B, h, N, d)
        a = F.scaled_dot_product_attention(q, q, q)
        b = q @ q.transpose(-2, -1)  # (B, h, N, N)
        return {"logits": a.sum() + b.sum()}


def test_attention_is_counted_by_both_counters():
    rep = count_flops(_Attn(), (torch.randn(2, 320),))
    sdpa = 2 * 4 * 10 * 10 * (8 + 8)
    matmul = 2 * 4 * 10 * 8 * 10
    assert rep.total == sdpa + matmul
    assert rep.torch_total == sdpa + matmul


def test_count_params_splits_frozen():
    m = create_model("orsanet_tiny", prior_routing="released", priors_in_model=True, seg_prior=False)
    p = count_params(m)
    assert p["total"] == sum(q.numel() for q in m.parameters())
    assert p["frozen"] == sum(q.numel() for q in m.face_landback.parameters()) > 0
    assert p["trainable"] == p["total"] - p["frozen"]


@pytest.mark.parametrize("name, gflops", [("orsanet_tiny", 52_840_944), ("orsanet_cpu", 126_674_416)])
def test_cpu_variant_flops_pinned_and_counters_agree(name, gflops):
    m = create_model(name)
    rep = count_flops(m, example_inputs(m))
    assert rep.total == rep.trainable == gflops and rep.frozen == 0
    assert rep.agreement < 0.02  # fvcore also counts norms (LN/BN/IN); FlopCounterMode does not
    assert "aten::gelu" in rep.unsupported  # skipped ops are listed, not hidden
    assert sum(rep.by_module.values()) <= rep.total
    assert set(rep.by_module) >= {"ir_back", "seg_fusion", "pyramid_fuse", "head"}
    tbl = rep.module_table()
    assert abs(tbl["share_pct"].sum() - 100.0 * sum(rep.by_module.values()) / rep.total) < 1e-6


def test_frozen_prior_flops_reported_apart():
    m = create_model("orsanet_tiny", prior_routing="released", priors_in_model=True, seg_prior=False)
    rep = count_flops(m, (torch.randn(1, 3, 64, 64),))
    assert rep.frozen == rep.by_module["face_landback"] > 0
    assert rep.trainable == rep.total - rep.frozen
    assert rep.agreement < 0.02


def test_complexity_table_and_paper_constants():
    df = complexity_table(["orsanet_tiny", "baseline_tiny"], cross_check=False)
    assert list(df["params_trainable"]) == [581_292, 90_487]
    assert (df["gflops_trainable"] > 0).all()
    assert df.loc[0, "gflops_trainable"] > df.loc[1, "gflops_trainable"]
    assert PAPER_TABLE5["ORSANet"] == {"params_M": 60.2, "flops_G": 6.9}
    assert list(paper_table5()["model"]) == ["ORSANet", "POSTER", "POSTER V2"]


@pytest.mark.slow
def test_orsanet_large_trainable_flops():
    """fvcore: 7.08G trainable per image (paper Table 5 prints 6.9G); FlopCounterMode within 2%."""
    m = create_model("orsanet_large")
    rep = count_flops(m, example_inputs(m))
    assert rep.trainable == 7_083_242_752
    assert rep.agreement < 0.02


def test_shape_table_and_module_tree():
    from orsalib.analysis.complexity import module_tree, shape_table

    m = create_model("orsanet_tiny")
    df = shape_table(m, depth=1)
    rows = dict(zip(df["module"], df["output"]))
    assert rows["ir_back"] == "(1, 64, 8, 8)" and rows["head"] == "(1, 7)"
    assert rows["seg_fusion"] == "(1, 64, 8, 8)" and rows["pyramid_fuse"].startswith("[(1, 64)")
    tree = module_tree(m, depth=1)
    assert tree["params_total"].sum() == count_params(m)["total"]
