"""DARELoss (released + paper Eq. 10-11), label-smoothing CE, region biased loss, the criterion's warm-up switch."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from orsalib.losses import (
    DARELoss,
    FERCriterion,
    build_criterion,
    dare_loss,
    label_smoothing_ce,
    region_biased_loss,
)
from orsalib.paths import shared_path


def _logits(seed: int = 0, b: int = 6, c: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, generator=g) * 3, torch.randint(0, c, (b,), generator=g)


@pytest.mark.shared
def test_released_form_reproduces_the_release_fixture():
    p = shared_path("reference", "released_orsanet_outputs.pt")
    if p is None:
        pytest.skip("../shared/reference/released_orsanet_outputs.pt is absent")
    ref = torch.load(p, weights_only=True)["dareloss_released"]
    got = dare_loss(ref["logits"], ref["targets"], form="released", temperature=1.0)
    torch.testing.assert_close(got, ref["loss"].float(), rtol=1e-5, atol=1e-6)
    # the paper form is a different function: it must not coincidentally match
    assert not torch.allclose(dare_loss(ref["logits"], ref["targets"], form="paper"), ref["loss"].float(), atol=1e-3)


def _hand_dare(z: list[float], y: int, form: str, t: float = 1.0) -> float:
    """Per-sample DARE computed with python floats only."""
    ez = [math.exp(v) for v in z]
    p_y = ez[y] / sum(ez)
    k = max((i for i in range(len(z)) if i != y), key=lambda i: z[i])
    alpha = t * (1 - p_y)
    zk = z[k] + alpha if form == "released" else (1 + alpha) * z[k]
    return -math.log(math.exp(z[y]) / (math.exp(z[y]) + math.exp(zk)))


@pytest.mark.parametrize("form", ["released", "paper"])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_dare_matches_hand_computation(form, temperature):
    z, y = _logits(1)
    want = [_hand_dare(z[i].tolist(), int(y[i]), form, temperature) for i in range(len(y))]
    got = dare_loss(z, y, form=form, temperature=temperature, reduction="none")
    torch.testing.assert_close(got, torch.tensor(want), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(dare_loss(z, y, form=form, temperature=temperature), torch.tensor(want).mean())
    assert DARELoss(form, temperature, reduction="sum")(z, y).item() == pytest.approx(sum(want), rel=1e-5)


def test_dare_paper_form_on_a_small_example():
    # z = [2, 1, 0], target 0: p0 = e^2/(e^2+e+1); alpha = 1 - p0; z'_1 = (1 + alpha) * 1
    z = torch.tensor([[2.0, 1.0, 0.0]])
    p0 = math.exp(2) / (math.exp(2) + math.exp(1) + 1)
    want = math.log(1 + math.exp((1 + (1 - p0)) * 1.0 - 2.0))
    assert dare_loss(z, torch.tensor([0]), form="paper").item() == pytest.approx(want, rel=1e-6)
    # released: additive margin 1 - p0 on the hardest negative
    want_rel = math.log(1 + math.exp(1.0 + (1 - p0) - 2.0))
    assert dare_loss(z, torch.tensor([0]), form="released").item() == pytest.approx(want_rel, rel=1e-6)


@pytest.mark.parametrize("form", ["released", "paper"])
def test_dare_gradients_finite_and_only_on_target_and_hardest_negative(form):
    z, y = _logits(2)
    z = (z * 10).requires_grad_()  # large logits: saturated softmax must still give finite gradients
    dare_loss(z, y, form=form).backward()
    assert torch.isfinite(z.grad).all()
    k = z.detach().scatter(1, y[:, None], float("-inf")).argmax(1)
    mask = torch.zeros_like(z, dtype=torch.bool)
    mask[torch.arange(len(y)), y] = True
    mask[torch.arange(len(y)), k] = True
    assert (z.grad[~mask] == 0).all()  # p is detached: no gradient through the softmax
    assert (z.grad[torch.arange(len(y)), y] <= 0).all()  # descent raises the target logit


def test_dare_rejects_bad_input():
    z, y = _logits(3)
    with pytest.raises(ValueError, match="form"):
        dare_loss(z, y, form="other")
    with pytest.raises(ValueError, match="target"):
        dare_loss(z, y[:-1])
    with pytest.raises(ValueError, match="reduction"):
        dare_loss(z, y, reduction="max")


def test_label_smoothing_ce_matches_torch_and_reduces_to_ce():
    z, y = _logits(4)
    torch.testing.assert_close(label_smoothing_ce(z, y, 0.2), F.cross_entropy(z, y, label_smoothing=0.2))
    torch.testing.assert_close(label_smoothing_ce(z, y, 0.0), F.cross_entropy(z, y))


def test_region_biased_loss():
    alphas = torch.tensor([[0.5, 0.7, 0.2], [0.5, 0.55, 0.1], [0.9, 0.1, 0.2]])
    # gaps: 0.2 -> relu(0.1-0.2)=0; 0.05 -> 0.05; -0.7 -> 0.8
    assert region_biased_loss(alphas, 0.1).item() == pytest.approx((0 + 0.05 + 0.8) / 3, rel=1e-5)
    with pytest.raises(ValueError, match="alphas"):
        region_biased_loss(torch.ones(4))


def _cfg(**kw):
    base = dict(
        ce_weight=1.0,
        lsce_warmup_epochs=2,
        lsce_eps=0.2,
        lsce_weight=2.0,
        dare=True,
        dare_form="released",
        dare_weight=0.1,
        dare_temperature=1.0,
    )
    base.update(kw)
    return SimpleNamespace(**base)


def test_criterion_warmup_switch():
    z, y = _logits(5)
    crit = build_criterion(_cfg())
    out, batch = {"logits": z}, {"label": y}
    ce = F.cross_entropy(z, y)
    for epoch in (0, 1):  # 0-based: epochs 0..lsce_warmup_epochs-1 are warm-up
        loss, parts = crit(out, batch, epoch)
        assert set(parts) == {"ce", "lsce", "loss"} and crit.phase(epoch) == "warmup"
        torch.testing.assert_close(loss, ce + 2.0 * label_smoothing_ce(z, y, 0.2))
    loss, parts = crit(out, batch, 2)
    assert set(parts) == {"ce", "dare", "loss"} and crit.phase(2) == "main"
    torch.testing.assert_close(loss, ce + 0.1 * dare_loss(z, y))
    assert parts["loss"] == pytest.approx(loss.item(), rel=1e-6)
    # paper form and no DARE
    loss_p, _ = build_criterion(_cfg(dare_form="paper"))(out, batch, 5)
    torch.testing.assert_close(loss_p, ce + 0.1 * dare_loss(z, y, form="paper"))
    loss_n, parts_n = build_criterion(_cfg(dare=False))(out, batch, 5)
    torch.testing.assert_close(loss_n, ce)
    assert "dare" not in parts_n


def test_criterion_extra_term_and_grad():
    z, y = _logits(6)
    z.requires_grad_()
    alphas = torch.rand(6, 4, requires_grad=True)

    def extra(out, batch):
        return 0.5 * region_biased_loss(out["alphas"], 0.1), "rb"

    crit = FERCriterion(lsce_warmup_epochs=0, extra=extra)
    loss, parts = crit({"logits": z, "alphas": alphas}, {"label": y}, 0)
    assert "rb" in parts
    loss.backward()
    assert torch.isfinite(z.grad).all() and alphas.grad is not None


def test_criterion_rejects_unknown_form():
    with pytest.raises(ValueError, match="dare_form"):
        build_criterion(_cfg(dare_form="eq11"))
