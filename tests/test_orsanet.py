"""ORSANet: pinned sizes, forward contract, ablation switches, numerical equivalence with the release."""

from __future__ import annotations

import pytest
import torch
from reference_tools import assert_matches_reference, official_tables, synthetic_weights_module

from orsalib.models import create_model
from orsalib.models.convert import load_released_checkpoint
from orsalib.models.orsanet import ORSANet, landmark_heatmaps
from orsalib.paths import shared_path


def n_params(m: torch.nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad or not trainable)


def paper_priors(b: int = 2, s: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"landmarks": torch.rand(b, 68, 2, generator=g), "parsing": torch.randint(0, 11, (b, s, s), generator=g)}


# ----------------------------------------------------------------------------- sizes
@pytest.mark.parametrize(
    "name, expected",
    [("orsanet_cpu", 1_385_861), ("orsanet_tiny", 581_292), ("baseline_cpu", 366_975),
     ("baseline_tiny", 90_487), ("resnet18_cpu", 11_180_103)],
)  # fmt: skip
def test_cpu_variant_param_counts_pinned(name, expected):
    m = create_model(name)
    assert n_params(m) == n_params(m, trainable=True) == expected
    if "orsanet" in name:
        assert n_params(m) < 3_000_000


def test_cpu_family_token_layouts():
    """orsanet_cpu and its twin use the released raw-view tokens; orsanet_tiny keeps one token per grid cell."""
    for name in ("orsanet_cpu", "baseline_cpu"):
        assert create_model(name).cfg.token_layout == "released", name
    for name in ("orsanet_tiny", "baseline_tiny"):
        assert create_model(name).cfg.token_layout == "spatial", name


@pytest.mark.parametrize("name, sees_position", [("baseline_cpu", True), ("baseline_tiny", False)])
def test_twin_pooling_sees_where_features_are(name, sees_position):
    """The twin's mean over tokens: with raw-view tokens it changes when the IR map's cells are permuted (it knows
    where a feature is); with one token per cell it does not (a bag of local features: the cause of a chance-level
    prior-free baseline on SynthFER, docs/cpu_family.md)."""
    torch.manual_seed(0)
    m = create_model(name).eval()
    c, side = m.ir_back.out_channels, 64 // m.ir_back.stride
    x_ir = torch.randn(2, c, side, side)
    perm = torch.randperm(side * side, generator=torch.Generator().manual_seed(1))
    shuffled = x_ir.flatten(2)[..., perm].reshape_as(x_ir)  # the same features at other cells
    with torch.no_grad():
        pooled = m._image_map(x_ir).flatten(2).mean(-1)  # (B, D)
        pooled_shuffled = m._image_map(shuffled).flatten(2).mean(-1)
    assert torch.allclose(pooled, pooled_shuffled, atol=1e-5) is not sees_position


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, trainable, total",
    [("orsanet_small", 50_337_931, 142_350_931), ("orsanet_base", 55_313_753, 147_326_753),
     ("orsanet_large", 60_289_575, 152_302_575)],
)  # fmt: skip
def test_released_param_counts(name, trainable, total):
    m = create_model(name, priors_in_model=True)
    assert n_params(m, trainable=True) == trainable
    assert n_params(m) == total
    # the cached-prior model is exactly the trainable part
    assert n_params(create_model(name)) == trainable


# ----------------------------------------------------------------------------- forward contract
def test_tiny_forward_paper_routing_contract():
    torch.manual_seed(0)
    m = create_model("orsanet_tiny", num_classes=8).eval()
    assert m.required_priors == ("landmarks", "parsing")
    x = torch.randn(2, 3, 64, 64)
    out = m(x, paper_priors(), return_attn=True)
    assert out["logits"].shape == (2, 8) and out["features"].shape == (2, 64)
    attn = out["attn"]
    assert attn.shape == (2, 2, 65, 65)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 2, 65))
    # the explicit-attention path and the fused SDPA path agree
    torch.testing.assert_close(m(x, paper_priors())["logits"], out["logits"], rtol=1e-4, atol=1e-5)
    assert torch.isfinite(out["logits"]).all()


def test_cpu_train_step_updates_and_priors_matter():
    torch.manual_seed(0)
    m = create_model("orsanet_cpu").train()
    x = torch.randn(3, 3, 64, 64)
    out = m(x, paper_priors(3))
    out["logits"].logsumexp(1).sum().backward()
    grads = {n for n, p in m.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    for prefix in ("ir_back.", "seg_encoder.", "seg_fusion.", "lm_embed.", "pyramid_fuse.", "se_block.", "head."):
        assert any(g.startswith(prefix) for g in grads), prefix
    m.eval()
    with torch.no_grad():
        a = m(x, paper_priors(3, seed=1))["logits"]
        b = m(x, paper_priors(3, seed=2))["logits"]
    assert not torch.allclose(a, b)


def test_released_routing_on_tensors_with_projection():
    torch.manual_seed(0)
    m = create_model("orsanet_tiny", prior_routing="released").eval()
    assert m.required_priors == ("landmark_features", "parser_features")
    assert hasattr(m, "lm_proj") and hasattr(m, "seg_sample")
    pri = {"landmark_features": torch.randn(2, 512, 7, 7), "parser_features": torch.randn(2, 1024, 7, 7)}
    assert m(torch.randn(2, 3, 64, 64), pri)["logits"].shape == (2, 7)


def test_missing_prior_is_a_clear_error():
    m = create_model("orsanet_tiny").eval()
    with pytest.raises(ValueError, match="parsing"):
        m(torch.randn(1, 3, 64, 64), {"landmarks": torch.rand(1, 68, 2)})
    with pytest.raises(ValueError, match="unknown ORSANet option 'sed_prior'"):
        create_model("orsanet_tiny", sed_prior=False)
    with pytest.raises(ValueError, match="prior_routing"):
        create_model("orsanet_tiny", prior_routing="magic")


def test_landmark_heatmaps_peak_and_missing():
    lm = torch.tensor([[[0.1, 0.9], [float("nan"), 0.5]]])  # (1, 2, 2): x=0.1,y=0.9 -> row 7, col 0 of 8
    h = landmark_heatmaps(lm, grid=8, sigma=1.0)
    assert h.shape == (1, 2, 8, 8)
    assert divmod(int(h[0, 0].argmax()), 8) == (7, 0)
    assert h[0, 1].abs().sum() == 0


def test_baseline_ignores_priors_and_has_no_mcm():
    m = create_model("baseline_cpu").eval()
    assert m.required_priors == () and not hasattr(m, "pyramid_fuse") and not hasattr(m, "seg_fusion")
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(m(x)["logits"], m(x, paper_priors())["logits"])
    backbone = create_model("orsanet_cpu").ir_back
    assert n_params(m.ir_back) == n_params(backbone)


# ----------------------------------------------------------------------------- ablations (paper Table 6)
def _ablated(switch: str) -> tuple[ORSANet, ORSANet]:
    torch.manual_seed(0)
    full = create_model("orsanet_tiny").eval()
    extra = {"cross_interaction_ablation": "no-landmarks"} if switch == "cross_interaction" else {}  # pins the old
    abl = create_model("orsanet_tiny", **{switch: False}, **extra).eval()  # variant's parameter drop
    own = abl.state_dict()
    abl.load_state_dict(
        {k: v for k, v in full.state_dict().items() if k in own and own[k].shape == v.shape}, strict=False
    )
    return full, abl


@pytest.mark.parametrize("switch", ["seg_prior", "cross_interaction", "multi_scale", "landmark_reintegration"])
def test_ablation_switch_changes_output_and_params(switch):
    full, abl = _ablated(switch)
    cfg, n, t = full.cfg, full.cfg.num_tokens + 1, 2 * full.cfg.num_tokens + 2
    stages = full.pyramid_fuse.blocks
    if switch == "seg_prior":
        expected = n_params(full.seg_encoder) + n_params(full.seg_fusion)
    elif switch == "multi_scale":
        pf = full.pyramid_fuse
        expected = (
            n_params(pf.downsample_m)
            + n_params(pf.downsample_s)
            + sum(n_params(s) - n_params(s.block_l) for s in stages)
        )
    elif switch == "landmark_reintegration":
        expected = cfg.depth * 3 * (1 + (t * t + t) - (n * n + n))  # scale s + Conv1d(T,T,1) -> Conv1d(n,n,1)
    else:  # cross_interaction: no landmark embedding, token count T -> n everywhere
        conv = lambda c, k: c * c * k + c  # noqa: E731 - Conv1d / ConvTranspose1d (c -> c, kernel k) params
        per_stage = 3 * (1 + conv(t, 1) - conv(n, 1)) + 2 * (conv(t, 2) - conv(n, 2))
        expected = n_params(full.lm_embed) + n_params(full.lm_coords) + cfg.depth * per_stage
        expected += conv(t, 2) - conv(n, 2) + conv(t, 4) - conv(n, 4)
    assert n_params(full) - n_params(abl) == expected
    x, pri = torch.randn(2, 3, 64, 64), paper_priors()
    with torch.no_grad():
        a, b = full(x, pri)["logits"], abl(x, pri)["logits"]
    assert a.shape == b.shape and not torch.allclose(a, b, atol=1e-6)
    if switch == "seg_prior":
        assert "parsing" not in abl.required_priors
    if switch == "cross_interaction":
        assert "landmarks" not in abl.required_priors


def test_prior_mode_keeps_frozen_nets_in_eval():
    m = create_model("orsanet_tiny", prior_routing="released", priors_in_model=True, seg_prior=False)
    m.train()
    assert not m.face_landback.training and m.ir_back.training
    assert n_params(m.face_landback, trainable=True) == 0
    r = create_model(
        "orsanet_tiny", prior_routing="released", priors_in_model=True, seg_prior=False, prior_mode="released"
    )
    r.train()
    assert r.face_landback.training
    out = m.eval()(torch.randn(1, 3, 64, 64), return_intermediates=True)
    assert out["landmark_features"].shape == (1, 512, 7, 7) and out["landmark_coords"].shape == (1, 136)


# ----------------------------------------------------------------------------- numerical equivalence
_TABLES: dict = {}
_SYNTH: dict = {}


def _synthetic(size: str, own: dict) -> dict[str, torch.Tensor]:
    """Synthetic released weights (seed 0) over the full table in file order; cached per size."""
    if size not in _SYNTH:
        if not _TABLES:
            _TABLES.update(official_tables())
        mod = synthetic_weights_module()
        _SYNTH[size] = mod.synthetic_state_dict(_TABLES[f"orsanet_{size}_7cls"]["keys"], own=own, seed=0)
    return _SYNTH[size]


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.parametrize("size", ["small", "large"])
def test_released_equivalence(size):
    """Synthetic weights through the converter reproduce the released model's tensors (rtol 1e-3, atol 1e-4)."""
    if shared_path("reference", "released_orsanet_outputs.pt") is None:
        pytest.skip("../shared/reference is not present")
    ref = torch.load(shared_path("reference", "released_orsanet_outputs.pt"), weights_only=True)[size]
    model = create_model(f"orsanet_{size}", priors_in_model=True)
    sd = _synthetic(size, model.state_dict())
    ckpt = {"iter": 0, "model_state_dict": {f"module.{k}": v for k, v in sd.items()}, "optimizer_state_dict": {}}
    rep = load_released_checkpoint(model, ckpt)
    assert rep.loaded == len(sd) and not rep.missing and not rep.unexpected
    model.eval()
    with torch.no_grad():
        out = model(ref["input"], return_intermediates=True)
    for key in ("logits", "features", "ir_features", "parser_features", "landmark_features"):
        # the maps reach ~1.9e3 (landmark) and ~2.6e4 (IR): their absolute tolerance scales with their magnitude
        # (summation order differs between CPUs); logits and features keep 1e-4 (tests/reference_tools.py)
        assert_matches_reference(out[key], ref[key], f"{size} {key}")

    # the trainable part alone, priors given as tensors (the prior-cache path), loaded by name
    cached = create_model(f"orsanet_{size}").eval()
    rep = load_released_checkpoint(cached, sd)
    assert rep.ignored and all(k.startswith(("face_landback.", "face_segment.")) for k in rep.ignored)
    with torch.no_grad():
        out = cached(ref["input"], {k: ref[k] for k in ("landmark_features", "parser_features")})
    torch.testing.assert_close(out["logits"], ref["logits"], rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(out["features"], ref["features"], rtol=1e-3, atol=1e-4)
