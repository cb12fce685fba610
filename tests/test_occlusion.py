"""Artificial (paper Table 3) and semantic occlusion: coverage, determinism, manifests."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from orsalib.data.occlusion import OCCLUSION_KINDS, occlude_image, occlude_manifest, rectangle_mask
from orsalib.data.synthfer import build_synthfer, render_sample


@pytest.mark.parametrize("ratio", [0.1, 0.2, 0.3])
@pytest.mark.parametrize("shape", [(48, 48), (100, 100), (112, 90)])
def test_rectangle_coverage_within_two_points(ratio, shape):
    h, w = shape
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = rectangle_mask(h, w, ratio, rng)
        assert m.dtype == bool and m.shape == (h, w)
        assert abs(m.mean() - ratio) <= 0.02
        ys, xs = np.nonzero(m)  # one solid rectangle
        assert m[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()


def test_rectangle_respects_face_box():
    rng = np.random.default_rng(1)
    box = (10, 20, 60, 90)  # 50 x 70
    for ratio in (0.1, 0.2, 0.3):
        m = rectangle_mask(100, 80, ratio, rng, face_box=box)
        inside = m[20:90, 10:60]
        assert inside.sum() == m.sum()
        assert abs(inside.mean() - ratio) <= 0.02


def test_occlusion_is_deterministic_per_key_seed_ratio_kind():
    img = render_sample(0, seed=0, size=64, occluder="none").image
    for kind in OCCLUSION_KINDS:
        a, ma = occlude_image(img, 0.2, kind, key=5, seed=1)
        b, mb = occlude_image(img, 0.2, kind, key=5, seed=1)
        assert np.array_equal(a, b) and np.array_equal(ma, mb), kind
        c, mc = occlude_image(img, 0.2, kind, key=6, seed=1)
        d, md = occlude_image(img, 0.2, kind, key=5, seed=2)
        assert not (np.array_equal(ma, mc) and np.array_equal(ma, md)), kind


@pytest.mark.parametrize("kind", OCCLUSION_KINDS[1:])
def test_semantic_occluders_cover_about_the_ratio(kind):
    img = render_sample(3, seed=0, size=96, occluder="none").image
    for ratio in (0.1, 0.2, 0.3):
        out, m = occlude_image(img, ratio, kind, key=3)
        assert abs(m.mean() - ratio) <= 0.05, (kind, ratio, m.mean())
        assert (out[~m] == img[~m]).all()  # nothing changes outside the mask
        assert (out[m] != img[m]).any(-1).mean() > 0.5


def test_grayscale_real_like_image_and_natural_size():
    img = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    out, m = occlude_image(img, 0.3, "rectangle", key=1)
    assert out.shape == (48, 48) and out.dtype == np.uint8
    assert abs(m.mean() - 0.3) <= 0.02
    out, m = occlude_image(img, None, "sunglasses", key=1)
    assert out.shape == (48, 48) and 0.02 < m.mean() < 0.4


def test_bad_arguments():
    img = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="kind"):
        occlude_image(img, 0.1, "cape")
    with pytest.raises(ValueError, match="ratio"):
        occlude_image(img, 1.5)
    with pytest.raises(ValueError, match="face_box"):
        occlude_image(img, 0.1, face_box=(5, 5, 5, 5))


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("occ") / "sf"
    return build_synthfer(root, size=40, train_per_class=1, val_per_class=1, progress=False)


def test_occlude_manifest(small_set, tmp_path):
    df = small_set
    out = occlude_manifest(df, 0.2, "rectangle", tmp_path, seed=0, split="valid")
    src = df[df.split == "valid"]
    assert len(out) == len(src)
    assert (out.occluded == 1).all() and (out.occluder == "rectangle@0.2").all()
    assert (out.landmarks_index.to_numpy() == src.landmarks_index.to_numpy()).all()
    assert (out.label.to_numpy() == src.label.to_numpy()).all()
    for (_, o), (key, s) in zip(out.iterrows(), src.iterrows()):
        img = np.array(Image.open(o.path))
        _, mask = occlude_image(np.array(Image.open(s.path).convert("RGB")), 0.2, "rectangle", key=key)
        assert abs(mask.mean() - 0.2) <= 0.02
        parsing = np.array(Image.open(o.parsing_path))
        assert (parsing[mask] == 0).all()
        assert np.array_equal(parsing[~mask], np.array(Image.open(s.parsing_path))[~mask])
        assert img.shape == (40, 40, 3)


def test_occlude_manifest_is_idempotent(small_set, tmp_path):
    a = occlude_manifest(small_set, 0.1, "hand", tmp_path, split="valid")
    mtimes = [os.stat(p).st_mtime_ns for p in a.path]
    b = occlude_manifest(small_set, 0.1, "hand", tmp_path, split="valid")
    pd.testing.assert_frame_equal(a, b)
    assert mtimes == [os.stat(p).st_mtime_ns for p in b.path]
    # an interrupted run (no manifest) reuses files and gives the same result
    done = next(tmp_path.glob("hand_10_*")) / "manifest.csv"
    done.unlink()
    c = occlude_manifest(small_set, 0.1, "hand", tmp_path, split="valid")
    pd.testing.assert_frame_equal(a, c)
    # other settings never share files
    d = occlude_manifest(small_set, 0.3, "hand", tmp_path, split="valid")
    assert not set(d.path) & set(a.path)


def test_occlude_manifest_bad_input(small_set, tmp_path):
    with pytest.raises(ValueError, match="split"):
        occlude_manifest(small_set, 0.1, "rectangle", tmp_path, split="test")
    bad = small_set.iloc[:1].copy()
    bad["path"] = str(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="missing.png"):
        occlude_manifest(bad, 0.1, "rectangle", tmp_path)
