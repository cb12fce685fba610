"""SegFace (LaPa, Swin-B): key layout, released parser features on synthetic weights, decoder output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from reference_tools import assert_matches_reference, synthetic_subdict

from orsalib.models.segface import SegFaceSwinB
from orsalib.paths import shared_path

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def parser() -> SegFaceSwinB:
    torch.manual_seed(0)
    return SegFaceSwinB().eval()


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
    sd = synthetic_subdict("face_segment.")
    own = m.state_dict()
    sd.update({k: v for k, v in own.items() if k not in sd})  # relative_position_index buffers are not generated
    m.load_state_dict(sd, strict=True)
    with torch.no_grad():
        feats = m.forward_features(ref["input"])
        out = m(ref["input"][:1])
    assert_matches_reference(feats, ref["parser_features"], "parser_features")
    assert out.shape == (1, 11, 224, 224) and torch.isfinite(out).all()


def test_load_segface_public_format(parser, tmp_path):
    from orsalib.priors.landmarks import WeightsError
    from orsalib.priors.parsing import load_segface

    sd = {"module." + k: (v.half() if v.is_floating_point() else v) for k, v in parser.state_dict().items()}
    sd = {k: v for k, v in sd.items() if "relative_position_index" not in k}  # rebuilt by the module
    torch.save({"state_dict_backbone": sd}, tmp_path / "model_299.pt")
    net = load_segface(tmp_path / "model_299.pt")
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    w = parser.face_decoder.nose_token.weight
    torch.testing.assert_close(net.face_decoder.nose_token.weight, w.half().float())
    del sd["module.linear_fuse.weight"]
    torch.save({"state_dict_backbone": sd}, tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match="linear_fuse.weight"):
        load_segface(tmp_path / "bad.pt")


@pytest.fixture(scope="module")
def synth_landmarks(tmp_path_factory):
    from orsalib.data.synthfer import build_synthfer

    m = build_synthfer(tmp_path_factory.mktemp("sf"), size=64, train_per_class=1, val_per_class=1, progress=False)
    lms = np.load(Path(m["parsing_path"].iloc[0]).parent.parent / "landmarks.npy")
    return lms[m.index[m["split"] == "valid"]]  # clean faces


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def test_rasterized_parsing_layout(synth_landmarks):
    from orsalib.priors.parsing import rasterize_parsing

    for lm in synth_landmarks:
        p = rasterize_parsing(lm, 96)
        assert p.shape == (96, 96) and p.dtype == np.uint8
        present = set(np.unique(p).tolist())
        assert {0, 1, 2, 3, 4, 5, 6, 7, 9} <= present and 10 not in present
        c = {k: _centroid(p == k) for k in (2, 3, 4, 5, 6)}
        # LaPa "left" = subject's left = image right
        assert c[4][0] > c[5][0] and c[2][0] > c[3][0]
        assert max(c[2][1], c[3][1]) < min(c[4][1], c[5][1]) < c[6][1]
        lips = np.isin(p, (7, 8, 9))
        assert _centroid(lips)[1] > c[6][1]


def test_rasterized_parsing_flip_equivariance(synth_landmarks):
    from orsalib.data.transforms import flip_landmarks, flip_parsing
    from orsalib.priors.parsing import rasterize_parsing

    for lm in synth_landmarks[:3]:
        a = flip_parsing(rasterize_parsing(lm, 64))
        b = rasterize_parsing(flip_landmarks(lm), 64)
        assert (a == b).mean() > 0.97  # equal up to pixel-boundary sampling


def test_rasterized_parsing_rejects_bad_shape():
    from orsalib.priors.parsing import rasterize_parsing

    with pytest.raises(ValueError, match="68, 2"):
        rasterize_parsing(np.zeros((5, 2)), 32)


def test_segface_source_outputs(parser):
    import pandas as pd

    from orsalib.priors.sources import SegFaceSource

    src = SegFaceSource(net=parser, weights_id="random")
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    rows = pd.DataFrame({"path": ["a.png", "b.png"]})
    out = src.compute(images, rows)
    assert set(out) == {"parsing", "parser_features"} and src.calls == 1
    assert out["parsing"].shape == (2, 64, 64) and out["parsing"].dtype == np.uint8 and out["parsing"].max() <= 10
    assert out["parser_features"].shape == (2, 1024, 2, 2)
    flipped = src.compute_flipped(images, rows)
    with torch.no_grad():
        from orsalib.priors.parsing import preprocess_parser_input

        direct = parser.forward_features(preprocess_parser_input(np.ascontiguousarray(images[:, :, ::-1])))
    np.testing.assert_allclose(flipped["parser_features"], direct.numpy(), rtol=1e-4, atol=1e-4)
