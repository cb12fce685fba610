"""Paired transforms: the image, its 68 landmarks and its parsing map stay aligned."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from orsalib.data import transforms as T


def test_flip68_is_an_involution_with_the_mirror_pairs():
    perm = T.FLIP_68
    assert sorted(perm.tolist()) == list(range(68))
    assert np.array_equal(perm[perm], np.arange(68))
    pairs = {0: 16, 7: 9, 17: 26, 21: 22, 31: 35, 36: 45, 37: 44, 39: 42, 41: 46, 48: 54, 55: 59, 60: 64, 65: 67}
    for a, b in pairs.items():
        assert perm[a] == b and perm[b] == a
    for fixed in (8, 27, 28, 29, 30, 33, 51, 57, 62, 66):
        assert perm[fixed] == fixed


def test_flip_twice_is_identity():
    rng = np.random.default_rng(0)
    lm = rng.uniform(size=(68, 2)).astype(np.float32)
    assert np.allclose(T.flip_landmarks(T.flip_landmarks(lm)), lm)
    lm_t = torch.from_numpy(lm)[None].repeat(2, 1, 1)  # (2, 68, 2)
    assert torch.allclose(T.flip_landmarks(T.flip_landmarks(lm_t)), lm_t)
    par = rng.integers(0, 11, (9, 7)).astype(np.uint8)
    assert np.array_equal(T.flip_parsing(T.flip_parsing(par)), par)
    par_t = torch.from_numpy(par).long()
    assert torch.equal(T.flip_parsing(T.flip_parsing(par_t)), par_t)
    with pytest.raises(ValueError, match="68, 2"):
        T.flip_landmarks(np.zeros((5, 2)))


def _painted(size: int, lm: np.ndarray) -> np.ndarray:
    """An image whose pixel under landmark j holds colour (j + 1, 0, 0); the rest is (0, 0, 0)."""
    img = np.zeros((size, size, 3), np.uint8)
    px = np.floor(lm * size).astype(int)
    for j, (x, y) in enumerate(px):
        img[y, x, 0] = j + 1
    return img


def test_flipped_landmark_lands_on_the_same_pixel_content():
    size = 96
    rng = np.random.default_rng(3)
    # distinct pixels, away from pixel borders
    cells = rng.choice(size * size, 68, replace=False)
    lm = (np.stack([cells % size, cells // size], 1) + 0.5) / size
    img = _painted(size, lm)
    f_img = T.flip_image(img)
    f_lm = T.flip_landmarks(lm)
    px = np.floor(f_lm * size).astype(int)
    got = f_img[px[:, 1], px[:, 0], 0].astype(int) - 1
    # flipped landmark j sits on the content of original landmark FLIP_68[j]
    assert np.array_equal(got, T.FLIP_68)


def test_parsing_flip_swaps_lateral_classes():
    par = np.zeros((4, 6), np.uint8)
    par[:, 0] = 2  # subject's left brow... drawn on the image left
    par[:, 1] = 4
    par[:, 2] = 6
    f = T.flip_parsing(par)
    assert (f[:, 5] == 3).all() and (f[:, 4] == 5).all() and (f[:, 3] == 6).all()
    assert (f[:, :3] == 0).all()


def test_paired_transform_flip_keeps_alignment():
    size = 32
    lm = np.full((68, 2), 0.5, np.float32)
    lm[36] = (0.2 + 0.5 / size, 0.3)  # one eye corner on the image left
    par = np.zeros((size, size), np.uint8)
    par[:, : size // 2] = 4
    img = np.zeros((size, size, 3), np.uint8)
    img[:, : size // 2] = 200
    tf = T.PairedTransform(size, train=True, random_erasing=0.0, normalize=False)
    t, f_lm, f_par = tf(img, lm, par, flip=True)
    assert f_lm[45, 0] == pytest.approx(1 - lm[36, 0])  # landmark 36 became 45, mirrored
    x = int(f_lm[45, 0] * size)
    assert t[0, 5, x] > 0.7 and f_par[5, x] == 5  # the bright half and the (now right) eye class moved with it


def test_resize_and_scale_shift_move_landmarks_with_content():
    size = 40
    img = np.zeros((size, size, 3), np.uint8)
    img[9:14, 25:30] = 255  # a bright block centred on pixel (27, 11)
    lm = np.zeros((68, 2), np.float32)
    lm[:] = ((27 + 0.5) / size, (11 + 0.5) / size)
    par = np.zeros((size, size), np.uint8)
    par[9:14, 25:30] = 6
    r_img, r_lm, r_par = T.resize(img, 80, lm, par)
    assert r_img.shape == (80, 80, 3) and r_par.shape == (80, 80) and np.allclose(r_lm, lm)
    x, y = (r_lm[0] * 80).astype(int)
    assert r_img[y, x].min() > 200 and r_par[y, x] == 6
    s_img, s_lm, s_par = T.scale_shift(img, 1.2, (0.05, -0.04), lm, par)
    x, y = (s_lm[0] * size).astype(int)
    assert s_img.shape == img.shape and s_img[y, x].min() > 200 and s_par[y, x] == 6


def test_read_rgb_converts_modes(tmp_path):
    gray = tmp_path / "g.png"
    Image.fromarray(np.full((5, 6), 77, np.uint8), "L").save(gray)
    deep = tmp_path / "d.png"
    Image.fromarray(np.full((5, 6), 65535, np.uint16)).save(deep)
    rgba = tmp_path / "a.png"
    Image.fromarray(np.full((5, 6, 4), 9, np.uint8), "RGBA").save(rgba)
    for p, v in ((gray, 77), (deep, 255), (rgba, 9)):
        a = T.read_rgb(p)
        assert a.shape == (5, 6, 3) and a.dtype == np.uint8 and (a == v).all()


def test_random_erase_and_normalisation():
    x = torch.ones(3, 20, 20)
    assert torch.equal(T.random_erase(x, p=0.0), x)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, b = T.random_erase(x, p=1.0, generator=g1), T.random_erase(x, p=1.0, generator=g2)
    assert torch.equal(a, b)
    erased = (a == 0).all(0).float().mean().item()
    assert 0.0 < erased <= 0.12  # scale (0.02, 0.1) of the area (rounding)
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    t = T.to_tensor(img)
    assert torch.allclose(T.denormalize(t), T.to_tensor(img, normalize=False), atol=1e-6)


def test_eval_transform_is_deterministic():
    img = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    tf = T.PairedTransform(16, train=False)
    a, _, _ = tf(img)
    b, _, _ = tf(img)
    assert torch.equal(a, b) and a.shape == (3, 16, 16)
