"""SegFace (LaPa, Swin-B): key layout, released parser features on synthetic weights, decoder output."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from orsalib.models.segface import SegFaceSwinB
from orsalib.paths import shared_path


@pytest.fixture(scope="module")
def parser() -> SegFaceSwinB:
    torch.manual_seed(0)
    return SegFaceSwinB().eval()


def _synthetic_subdict(prefix: str) -> dict[str, torch.Tensor]:
    """The ``prefix`` part of the synthetic ORSANet-large state dict (seed 0): generated up to the last key with
    ``prefix`` in file order (the random stream covers the whole table; later keys cannot change earlier ones)."""
    ref = shared_path("reference")
    spec = importlib.util.spec_from_file_location("synthetic_weights", ref / "synthetic_weights.py")
    sw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sw)
    table = json.loads((ref / "official_state_dicts.json").read_text())["orsanet_large_7cls"]["keys"]
    keys = list(table)
    last = max(i for i, k in enumerate(keys) if k.startswith(prefix))
    sd = sw.synthetic_state_dict({k: table[k] for k in keys[: last + 1]}, seed=0)
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def test_decoder_output_shape(parser):
    with torch.no_grad():
        out = parser(torch.rand(2, 3, 64, 64))
        odd = parser(torch.rand(1, 3, 72, 56))
    assert out.shape == (2, 11, 64, 64) and torch.isfinite(out).all()
    assert odd.shape == (1, 11, 72, 56)


def test_forward_features_shape(parser):
    with torch.no_grad():
        f = parser.forward_features(torch.rand(1, 3, 224, 224))
    assert f.shape == (1, 1024, 7, 7)


@pytest.mark.shared
def test_keys_match_public_table(parser):
    ref = shared_path("reference", "official_state_dicts.json")
    if ref is None:
        pytest.skip("../shared/reference absent")
    table = json.loads(ref.read_text())["segface_lapa_swin_base"]["keys"]
    own = parser.state_dict()
    assert sorted(own) == sorted(table)
    assert all(list(own[k].shape) == table[k] for k in own)


@pytest.mark.shared
def test_reproduces_released_parser_features():
    if shared_path("reference", "released_orsanet_outputs.pt") is None:
        pytest.skip("../shared/reference absent")
    ref = torch.load(shared_path("reference", "released_orsanet_outputs.pt"), weights_only=True)["large"]
    m = SegFaceSwinB().eval()
    sd = _synthetic_subdict("face_segment.")
    own = m.state_dict()
    sd.update({k: v for k, v in own.items() if k not in sd})  # relative_position_index buffers are not generated
    m.load_state_dict(sd, strict=True)
    with torch.no_grad():
        feats = m.forward_features(ref["input"])
        out = m(ref["input"][:1])
    torch.testing.assert_close(feats, ref["parser_features"], rtol=1e-3, atol=1e-4)
    assert out.shape == (1, 11, 224, 224) and torch.isfinite(out).all()
