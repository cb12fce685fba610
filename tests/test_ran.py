"""RAN (orsalib.models.ran): regions, attention, outputs, registry, region biased loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from orsalib.models import create_model, list_models
from orsalib.models.ran import (
    FIXED_SCHEMES,
    PAPER_MARGIN,
    RELEASED_MARGIN,
    crop_regions,
    fixed_regions,
    landmark_regions,
    random_regions,
)


def _check_inside(boxes: torch.Tensor) -> None:
    """Every box lies inside the unit square with a positive size; region 0 is the whole face."""
    assert torch.isfinite(boxes).all()
    x0, y0, x1, y1 = boxes.unbind(-1)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= 1).all() and (y1 <= 1).all()
    assert (x1 - x0 > 0).all() and (y1 - y0 > 0).all()
    face = boxes.reshape(-1, boxes.shape[-2], 4)[:, 0]
    assert torch.equal(face, torch.tensor([0.0, 0.0, 1.0, 1.0]).expand_as(face))


def _local_rb(alphas: torch.Tensor, margin: float) -> torch.Tensor:
    return F.relu(margin - (alphas[:, 1:].max(dim=1).values - alphas[:, 0])).mean()


# ----------------------------------------------------------------------------- regions
@pytest.mark.parametrize("scheme,count", [("ferplus", 6), ("affectnet", 8)])
def test_fixed_regions_inside_and_face_first(scheme, count):
    boxes = fixed_regions(scheme)
    assert boxes.shape == (count, 4)
    _check_inside(boxes[None])
    assert FIXED_SCHEMES[scheme][0][0] == "face"


def test_fixed_regions_unknown_scheme():
    with pytest.raises(ValueError, match="scheme"):
        fixed_regions("sfew")


def test_random_regions_inside_seeded_and_scaled():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = random_regions(64, 7, scales=(0.5, 0.9, 1.0), generator=g1)
    b = random_regions(64, 7, scales=(0.5, 0.9, 1.0), generator=g2)
    assert a.shape == (64, 8, 4) and torch.equal(a, b)
    _check_inside(a)
    side = a[:, 1:, 2] - a[:, 1:, 0]
    expected = torch.tensor([0.5, 0.9, 1.0, 0.5, 0.9, 1.0, 0.5]).expand_as(side)
    assert torch.allclose(side, expected, atol=1e-6)


def test_landmark_regions_inside_even_at_the_border():
    torch.manual_seed(0)
    lm = torch.rand(5, 68, 2)
    lm[1] = 0.0  # every point on the top-left corner
    lm[2] = 1.0  # every point on the bottom-right corner
    lm[3, 48:] = torch.tensor([1.3, -0.2])  # mouth beyond the image
    lm[4, 36:48] = float("nan")  # eyes missing
    boxes = landmark_regions(lm, pad=0.06, min_size=0.25)
    assert boxes.shape == (5, 5, 4)
    _check_inside(boxes)
    sides = torch.stack([boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]], -1)
    assert (sides >= 0.25 - 1e-6).all()
    # a group well inside the image keeps its (padded) bounding box
    mouth = lm[0, 48:68]
    lo, hi = mouth.min(0).values - 0.06, mouth.max(0).values + 0.06
    if (lo >= 0).all() and (hi <= 1).all() and ((hi - lo) >= 0.25).all():
        assert torch.allclose(boxes[0, 4], torch.cat([lo, hi]), atol=1e-5)


def test_crop_regions_matches_slicing():
    img = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.25, 0.25, 0.75, 0.75]]).expand(2, 2, 4)
    whole = crop_regions(img, boxes, 8)
    assert whole.shape == (2, 2, 3, 8, 8)
    assert torch.allclose(whole[:, 0], img, atol=1e-4)
    centre = crop_regions(img, boxes, 4)[:, 1]
    assert torch.allclose(centre, img[..., 2:6, 2:6], atol=1e-4)


# ----------------------------------------------------------------------------- model
@pytest.mark.parametrize("regions", ["fixed", "random", "landmarks"])
def test_forward_shapes_and_gradients(regions):
    torch.manual_seed(0)
    model = create_model("ran_tiny", regions=regions, num_classes=7)
    x = torch.randn(3, 3, 40, 40)
    priors = {"landmarks": torch.rand(3, 68, 2)}
    out = model(x, priors)
    r = model.num_regions
    assert out["logits"].shape == (3, 7)
    assert out["features"].shape == (3, 2 * model.feature_dim)
    assert out["alphas"].shape == (3, r) and out["betas"].shape == (3, r)
    assert out["boxes"].shape == (3, r, 4) and len(model.region_names) == r
    _check_inside(out["boxes"])
    loss = F.cross_entropy(out["logits"], torch.tensor([0, 3, 6])) + _local_rb(out["alphas"], model.margin)
    loss.backward()
    for name in ("alpha.weight", "beta.weight", "fc.weight"):
        g = dict(model.named_parameters())[name].grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name
    stem = next(p for n, p in model.backbone.named_parameters() if p.dim() == 4)
    assert stem.grad is not None and stem.grad.abs().sum() > 0


@pytest.mark.parametrize("softmax_alpha", [True, False])
def test_attention_weights_in_unit_interval(softmax_alpha):
    torch.manual_seed(1)
    model = create_model("ran_tiny", softmax_alpha=softmax_alpha, scheme="affectnet").eval()
    with torch.no_grad():
        out = model(torch.randn(4, 3, 32, 32))
    for k in ("alphas", "betas"):
        assert ((out[k] > 0) & (out[k] < 1)).all(), k
    if softmax_alpha:
        assert torch.allclose(out["alphas"].sum(1), torch.ones(4), atol=1e-5)


@pytest.mark.parametrize("softmax_alpha", [True, False])
def test_forward_follows_the_equations(softmax_alpha):
    """Recompute Eq. (1)-(4) by hand from the backbone features and compare the logits."""
    torch.manual_seed(2)
    model = create_model("ran_tiny", softmax_alpha=softmax_alpha).eval()
    x = torch.randn(2, 3, 36, 36)
    with torch.no_grad():
        out = model(x)
        crops = crop_regions(x, out["boxes"], model.cfg.crop_size)
        f = model.backbone(crops.flatten(0, 1)).reshape(2, model.num_regions, -1)
        a = torch.sigmoid(f @ model.alpha.weight.T + model.alpha.bias)
        a = a.softmax(1) if softmax_alpha else a
        fm = (a * f).sum(1) / a.sum(1)
        cat = torch.cat([f, fm[:, None].expand_as(f)], -1)
        b = torch.sigmoid(cat @ model.beta.weight.T + model.beta.bias)
        b = b.softmax(1) if softmax_alpha else b
        p = (a * b * cat).sum(1) / (a * b).sum(1)
        logits = p @ model.fc.weight.T + model.fc.bias
    assert torch.allclose(out["features"], p, atol=1e-5)
    assert torch.allclose(out["logits"], logits, atol=1e-5)
    assert torch.allclose(out["alphas"], a.squeeze(-1), atol=1e-6)


def test_random_regions_resample_in_training_only():
    model = create_model("ran_tiny", regions="random", num_random=4, seed=7)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    b1, b2 = model.region_boxes(x), model.region_boxes(x)
    assert not torch.equal(b1, b2)
    model.eval()
    e1, e2 = model.region_boxes(x), model.region_boxes(x)
    assert torch.equal(e1, e2)
    other = create_model("ran_tiny", regions="random", num_random=4, seed=7).eval()
    assert torch.equal(other.region_boxes(x), e1)


def test_landmark_regions_need_landmarks():
    model = create_model("ran_tiny", regions="landmarks")
    with pytest.raises(ValueError, match="landmarks"):
        model(torch.randn(1, 3, 32, 32), priors={"parsing": torch.zeros(1, 32, 32, dtype=torch.long)})


# ----------------------------------------------------------------------------- registry
def test_registry_names_create_and_record_margin():
    names = list_models("ran_*")
    for n in ("ran_resnet18", "ran_cpu", "ran_tiny"):
        assert n in names
    tiny = create_model("ran_tiny")
    assert tiny.margin == RELEASED_MARGIN == 0.1
    assert create_model("ran_tiny", margin=PAPER_MARGIN).margin == PAPER_MARGIN
    cpu = create_model("ran_cpu", num_classes=8)
    assert cpu.cfg.crop_size <= 64 and cpu.fc.out_features == 8
    # options other models use are accepted (one config builds either model); unknown ones are not
    create_model("ran_tiny", prior_routing="paper", drop_path=0.1, seg_prior=False)
    with pytest.raises(ValueError, match="unknown RAN option"):
        create_model("ran_tiny", heads=8)
    with pytest.raises(ValueError, match="regions"):
        create_model("ran_tiny", regions="grid")
    with pytest.raises(ValueError, match="download"):
        create_model("ran_tiny", backbone_kwargs={"channels": (8, 16, 32, 64), "pretrained": True})


@pytest.mark.parametrize("name, params", [("ran_cpu", 1_250_697), ("ran_tiny", 92_313)])
def test_cpu_variant_parameter_counts_pinned(name, params):
    """ran_cpu: half-width resnet10t (256-d region features), 48-pixel crops; ran_tiny: smoke size."""
    model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == params
    if name == "ran_cpu":
        assert model.feature_dim == 256 and model.cfg.crop_size == 48


def test_paper_model_parameter_count():
    """ResNet-18 (11,176,512 without its FC) + alpha FC 513 + beta FC 1,025 + classifier 1024*7+7."""
    model = create_model("ran_resnet18")
    assert model.cfg.crop_size == 224 and model.feature_dim == 512
    assert sum(p.numel() for p in model.parameters()) == 11_176_512 + 513 + 1_025 + 7_175


def test_missing_backbone_weights_file_is_named(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        create_model("ran_tiny", backbone_weights=str(missing))


# ----------------------------------------------------------------------------- region biased loss
def test_region_biased_loss_hand_computed():
    losses = pytest.importorskip("orsalib.losses", reason="orsalib.losses is not available")
    if not hasattr(losses, "region_biased_loss"):
        pytest.skip("orsalib.losses.region_biased_loss is not available yet")
    rb = losses.region_biased_loss
    holds = torch.tensor([[0.10, 0.30, 0.20], [0.20, 0.25, 0.32]])  # gaps 0.20, 0.12 >= 0.1
    assert rb(holds, margin=0.1).item() == pytest.approx(0.0)
    fails = torch.tensor([[0.30, 0.25, 0.10]])  # gap -0.05 -> 0.1 + 0.05
    assert rb(fails, margin=0.1).item() == pytest.approx(0.15, abs=1e-6)
    mixed = torch.tensor([[0.10, 0.30, 0.20], [0.30, 0.25, 0.10]])  # mean of 0 and 0.15
    assert rb(mixed, margin=0.1).item() == pytest.approx(0.075, abs=1e-6)
    assert rb(fails, margin=0.02).item() == pytest.approx(0.07, abs=1e-6)


# ----------------------------------------------------------------------------- region-weight figures
def test_region_weight_figure_and_table():
    import numpy as np

    from orsalib.analysis.regions import region_weight_panels, region_weight_table
    from orsalib.viz.analysis import region_weight_bars, region_weight_figure

    torch.manual_seed(3)
    model = create_model("ran_tiny").eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
    r = model.num_regions
    fig = region_weight_figure(x, out["boxes"], out["alphas"], model.region_names, titles=["a", "b", "c"])
    assert len(fig.layout.shapes) == 3 * (r - 1)  # every crop of every face; the face box only on request
    assert len(region_weight_figure(x, out["boxes"], out["alphas"], show_face=True).layout.shapes) == 3 * r
    groups = {"first": np.array([True, False, False]), "rest": np.array([False, True, True])}
    table = region_weight_table(out["alphas"], model.region_names, groups)
    assert len(table) == 2 * r
    for _, sub in table.groupby("group"):
        assert sub["top_share"].sum() == pytest.approx(1.0)
    rest = table[table.group == "rest"].set_index("region")["mean_alpha"]
    assert rest["face"] == pytest.approx(float(out["alphas"][1:, 0].mean()), abs=1e-6)
    assert len(region_weight_bars(table).data) == 2
    with pytest.raises(ValueError, match="same faces"):
        region_weight_figure(x[:2], out["boxes"], out["alphas"])
    panels = region_weight_panels(x, out["boxes"], out["alphas"])
    assert panels.images.shape == (3, 32, 32, 3) and panels.boxes.shape == (3, r, 4)
    assert panels.vmax == pytest.approx(float(out["alphas"].max()))
