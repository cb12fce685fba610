"""MobileFaceNet-68: key layout, released-equivalence on synthetic weights, the real public checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference_tools import assert_matches_reference, synthetic_subdict

from orsalib.models.mobilefacenet import MobileFaceNet
from orsalib.paths import shared_path

N_PARAMS = 1_007_248  # MobileFaceNet([112, 112], 136), trainable parameters


def test_shapes_and_param_count():
    m = MobileFaceNet((112, 112), 136).eval()
    coords, feats = m(torch.rand(2, 3, 112, 112))
    assert coords.shape == (2, 136) and feats.shape == (2, 512, 7, 7)
    assert sum(p.numel() for p in m.parameters()) == N_PARAMS


def test_bad_input_size():
    with pytest.raises(ValueError, match="multiple of 16"):
        MobileFaceNet((100, 100))


@pytest.mark.shared
def test_keys_match_public_table():
    ref = shared_path("reference", "official_state_dicts.json")
    if ref is None:
        pytest.skip("../shared/reference absent")
    table = json.loads(ref.read_text())["mobilefacenet_68"]["keys"]
    own = MobileFaceNet().state_dict()
    assert list(own) == list(table)
    assert all(list(own[k].shape) == table[k] for k in own)


@pytest.mark.shared
def test_reproduces_released_landmark_outputs():
    if shared_path("reference", "released_orsanet_outputs.pt") is None:
        pytest.skip("../shared/reference absent")
    ref = torch.load(shared_path("reference", "released_orsanet_outputs.pt"), weights_only=True)["large"]
    m = MobileFaceNet().eval()
    sd = synthetic_subdict("face_landback.")
    own = m.state_dict()
    sd.update({k: v for k, v in own.items() if k not in sd})  # num_batches_tracked are not generated
    m.load_state_dict(sd, strict=True)
    x = F.interpolate(ref["input"], size=112)  # released: default mode (nearest)
    with torch.no_grad():
        coords, feats = m(x)
    assert_matches_reference(feats, ref["landmark_features"], "landmark_features")  # ~1.9e3: scaled tolerance
    assert_matches_reference(coords, ref["landmark_coords"], "landmark_coords")


def _load_real() -> MobileFaceNet:
    path = shared_path("weights", "mobilefacenet_68lm_fp16.pth.tar")
    if path is None:
        pytest.skip("../shared/weights/mobilefacenet_68lm_fp16.pth.tar absent")
    ck = torch.load(path, weights_only=True)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in ck["state_dict"].items()}
    m = MobileFaceNet().eval()
    m.load_state_dict(sd, strict=True)
    return m


@pytest.mark.shared
def test_real_checkpoint_loads_strictly():
    m = _load_real()
    assert all(torch.isfinite(p).all() for p in m.parameters())


@pytest.mark.shared
def test_real_face_landmarks_are_plausible():
    from PIL import Image, ImageOps

    root = shared_path("data", "fer2013-mini", "valid")
    if root is None:
        pytest.skip("../shared/data/fer2013-mini absent")
    m = _load_real()
    files = sorted((root / "neutral").glob("*.jpg"))[:12]
    assert files, f"no images under {root / 'neutral'}"
    # 48x48 grey crops, given the margin a face-detector box has (FER2013 crops are tight: 8 px grey border),
    # upsampled to 112, BGR (= grey x 3), [0, 1]: the pretrained input convention.
    ims = [ImageOps.expand(Image.open(f).convert("RGB"), border=8, fill=(128, 128, 128)) for f in files]
    x = np.stack([np.asarray(im.resize((112, 112), Image.BILINEAR))[:, :, ::-1] for im in ims])
    x = torch.from_numpy(x.copy()).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, 112, 112)
    with torch.no_grad():
        coords, _ = m(x)
    lm = coords.reshape(-1, 68, 2).numpy()  # (B, 68, 2), interleaved x, y
    eyes_y = lm[:, 36:48, 1].mean(1)
    nose_y = lm[:, 30, 1]
    mouth_y = lm[:, 48:68, 1].mean(1)
    ok = (eyes_y < nose_y) & (nose_y < mouth_y)
    # iBUG 36-41 is the subject's right eye = image left.
    ok &= lm[:, 36:42, 0].mean(1) < lm[:, 42:48, 0].mean(1)
    ok &= (lm > -0.1).all((1, 2)) & (lm < 1.1).all((1, 2))
    assert ok.mean() >= 0.9, f"implausible landmarks on {int((~ok).sum())} of {len(ok)} faces"
