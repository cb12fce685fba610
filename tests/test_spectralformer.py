"""SpectralFormer (Hong et al. 2022): group-wise spectral embedding, CAF, shapes, gradients, pinned sizes."""

import pytest
import torch

from orsalib.models import create_model
from orsalib.models.spectralformer import group_bands


def _params(m):
    return sum(p.numel() for p in m.parameters())


def test_group_bands_circular_neighbours():
    x = torch.arange(5.0).view(1, 5, 1)  # 5 bands, 1 pixel: value = band index
    g = group_bands(x, 3)
    assert g.shape == (1, 5, 3)
    assert g[0, 0].tolist() == [4.0, 0.0, 1.0]  # band 0: wraps to the last band
    assert g[0, 2].tolist() == [1.0, 2.0, 3.0]
    assert g[0, 4].tolist() == [3.0, 4.0, 0.0]
    x2 = torch.arange(10.0).view(1, 5, 2)  # 2 pixels per band
    assert group_bands(x2, 3)[0, 1].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    with pytest.raises(ValueError, match="odd"):
        group_bands(x, 2)


@pytest.mark.parametrize("name,shape", [("spectralformer_pixel", (3, 30)), ("spectralformer_patch", (3, 30, 7, 7))])
def test_forward_backward(name, shape):
    torch.manual_seed(0)
    m = create_model(name, num_bands=30, num_classes=5)
    out = m(torch.randn(*shape))
    assert out["logits"].shape == (3, 5) and out["features"].shape == (3, 64)
    out["logits"].sum().backward()
    assert m.embed.weight.grad.abs().sum() > 0
    assert len(m.skipcat) == 3 and m.skipcat[0].weight.grad.abs().sum() > 0  # CAF before layers 2, 3, 4


def test_input_forms_agree():
    torch.manual_seed(0)
    m = create_model("spectralformer_pixel", num_bands=12, num_classes=4).eval()
    spec = torch.randn(2, 12)
    a = m(spec)["logits"]
    b = m(spec.view(2, 12, 1, 1))["logits"]
    c = m(group_bands(spec.unsqueeze(-1), 3))["logits"]
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    with pytest.raises(ValueError, match="12"):
        m(torch.randn(2, 11))


def test_caf_changes_the_function_and_vit_mode_has_none():
    torch.manual_seed(0)
    caf = create_model("spectralformer_pixel", num_bands=10, num_classes=3).eval()
    vit = create_model("spectralformer_pixel", num_bands=10, num_classes=3, mode="ViT").eval()
    assert len(vit.skipcat) == 0
    vit.load_state_dict({k: v for k, v in caf.state_dict().items() if not k.startswith("skipcat")})
    x = torch.randn(2, 10)
    assert not torch.allclose(caf(x)["logits"], vit(x)["logits"])


def test_pinned_param_counts():
    # depth 5, dim 64, 4 heads x 16, MLP 8; CAF Conv2d(N+1, N+1, (1, 2)) x 3 dominates the count
    assert _params(create_model("spectralformer_pixel")) == 346_361  # Indian Pines: 200 bands, 16 classes
    assert _params(create_model("spectralformer_patch")) == 355_577
    assert _params(create_model("spectralformer_patch", num_bands=103, num_classes=9, band_patches=7)) == 183_657
