"""SynthFER: determinism, agreement of image / landmarks / parsing, occluder bookkeeping, the on-disk build."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from orsalib.data import synthfer as sf
from orsalib.data.labels import EMOTIONS
from orsalib.data.synthfer import OCCLUDERS, build_synthfer, render_sample
from orsalib.data.synthfer import build as sf_build
from orsalib.data.synthfer import face as sf_face

FACE_CLASSES = set(range(1, 10))


def _neighbourhood(parsing: np.ndarray, x: float, y: float) -> set[int]:
    s = parsing.shape[0]
    ix, iy = int(x * s), int(y * s)
    return set(parsing[max(0, iy - 1) : iy + 2, max(0, ix - 1) : ix + 2].ravel().tolist())


def test_sample_types_and_ranges():
    s = render_sample(3, seed=0, size=64)
    assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8
    assert s.landmarks.shape == (68, 2) and s.landmarks.dtype == np.float32
    assert s.visible.shape == (68,) and s.visible.dtype == bool
    assert s.parsing.shape == (64, 64) and s.parsing.dtype == np.uint8
    assert s.parsing.max() <= 10
    assert ((s.landmarks >= 0) & (s.landmarks < 1)).all()
    assert s.occluder in OCCLUDERS and 0 <= s.label < 7


def test_same_seed_identical_bytes_other_seed_differs():
    for i in (0, 5, 11):
        a = render_sample(i, seed=7, size=48, occlusion_prob=1.0)
        b = render_sample(i, seed=7, size=48, occlusion_prob=1.0)
        assert a.image.tobytes() == b.image.tobytes()
        assert a.parsing.tobytes() == b.parsing.tobytes()
        assert np.array_equal(a.landmarks, b.landmarks) and np.array_equal(a.visible, b.visible)
        c = render_sample(i, seed=8, size=48, occlusion_prob=1.0)
        assert a.image.tobytes() != c.image.tobytes()


@pytest.mark.parametrize("size", [64, 112])
def test_visible_landmarks_lie_on_face_classes(size):
    bad = []
    for i in range(24):
        s = render_sample(i, seed=1, size=size, occluder=OCCLUDERS[i % len(OCCLUDERS)], num_classes=8)
        for j in np.flatnonzero(s.visible):
            if not _neighbourhood(s.parsing, *s.landmarks[j]) & FACE_CLASSES:
                bad.append((i, j))
    assert not bad, f"visible landmarks off the face (sample, landmark): {bad[:10]}"


def test_landmark_regions_match_parsing_classes():
    """Eye landmarks sit on eye pixels of the right side, brows on brows, inner lips on lips/mouth."""
    s = render_sample(2, seed=0, size=112, occluder="none", label=6)
    right_eye = _neighbourhood(s.parsing, *s.landmarks[37:39].mean(0))  # upper lid of the subject's right eye
    left_eye = _neighbourhood(s.parsing, *s.landmarks[43:45].mean(0))
    assert 5 in right_eye and 4 in left_eye  # LaPa: 4 = left eye (image right), 5 = right eye (image left)
    assert s.landmarks[36, 0] < s.landmarks[45, 0]  # subject's right eye is on the image left
    assert 3 in _neighbourhood(s.parsing, *s.landmarks[19]) and 2 in _neighbourhood(s.parsing, *s.landmarks[24])
    assert _neighbourhood(s.parsing, *s.landmarks[62]) & {7, 8, 9}
    assert 6 in _neighbourhood(s.parsing, *s.landmarks[30])


def test_occluder_pixels_are_never_face_classes_and_face_is_unchanged():
    """The same index without and with an occluder differs only where the occluder is, and there parsing = 0."""
    for i, kind in enumerate(OCCLUDERS[1:] * 2):
        clean = render_sample(i, seed=2, size=64, occluder="none")
        occ = render_sample(i, seed=2, size=64, occluder=kind)
        assert occ.occluder == kind and occ.label == clean.label and occ.intensity == clean.intensity
        assert np.array_equal(occ.landmarks, clean.landmarks)
        changed = (occ.image != clean.image).any(-1)
        assert changed.any(), kind
        assert (occ.parsing[changed] == 0).all(), kind
        # outside the occluder the parsing map is the clean one
        same = occ.parsing != 0
        assert np.array_equal(occ.parsing[same], clean.parsing[same])
        assert clean.visible.all()


def test_hand_and_object_paint_nothing_outside_their_mask():
    """Regression (generator 2): finger lines and blob spots could paint face pixels still labelled as face."""
    for i in range(40):
        clean = render_sample(i, seed=2, size=64, occluder="none")
        for kind in ("hand", "object"):
            occ = render_sample(i, seed=2, size=64, occluder=kind)
            changed = (occ.image != clean.image).any(-1)
            assert (occ.parsing[changed] == 0).all(), (i, kind)


def test_png_writer_roundtrip():
    """The build's PNGs (written by PIL) decode to the same array (grey and RGB)."""
    import io

    rng = np.random.default_rng(0)
    for shape in [(17, 23), (17, 23, 3), (64, 64), (112, 112, 3)]:
        arr = rng.integers(0, 256, shape, dtype=np.uint8)
        if len(shape) == 2:
            arr //= 23  # label-map-like
        img = Image.open(io.BytesIO(sf_build._png_bytes(arr, 1 if len(shape) == 2 else 0)))
        assert img.format == "PNG" and img.mode == ("L" if len(shape) == 2 else "RGB")
        assert np.array_equal(np.asarray(img), arr)


def test_visibility_flags_follow_the_occluder():
    mouth_vis, eye_vis = [], []
    for i in range(8):
        m = render_sample(i, seed=3, size=64, occluder="mask")
        g = render_sample(i, seed=3, size=64, occluder="sunglasses")
        mouth_vis.append(m.visible[48:68].mean())
        eye_vis.append(g.visible[36:48].mean())
    assert np.mean(mouth_vis) < 0.2
    assert np.mean(eye_vis) < 0.2


def test_expressions_move_the_landmarks():
    """Surprise opens the mouth and raises the brows relative to neutral for the same identity and pose stream."""
    neu = render_sample(3, seed=0, size=112, label=6, identity=5, occluder="none")
    sur = render_sample(3, seed=0, size=112, label=5, identity=5, occluder="none")
    assert sur.intensity > 0.8 and neu.intensity < sf.NEUTRAL_INTENSITY
    gap = lambda s: np.linalg.norm(s.landmarks[66] - s.landmarks[62])  # noqa: E731
    brow = lambda s: np.linalg.norm(s.landmarks[19] - s.landmarks[37])  # noqa: E731
    assert gap(sur) > gap(neu) + 0.02
    assert brow(sur) > brow(neu)


def test_layout_is_affine_in_its_coefficients():
    """The cached basis reproduces the direct evaluation of the layout."""
    rng = np.random.default_rng(0)
    for p in sf.JAW_POWERS[:2]:
        basis, slices = sf_face._basis(p)
        coef = {n: float(v) for n, v in zip(sf_face._COEFS, rng.uniform(-0.2, 0.4, len(sf_face._COEFS)))}
        coef["one"] = 1.0
        pts = basis @ np.array([coef[n] for n in sf_face._COEFS])
        for name, xs, ys in sf_face._layout(coef, p):
            x = sf_face._stack_segment(xs, None)
            y = sf_face._stack_segment(ys, None)
            assert np.allclose(pts[slices[name]], np.stack([x, y], 1)), name


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="num_classes"):
        render_sample(0, num_classes=6)
    with pytest.raises(ValueError, match="occluder"):
        render_sample(0, occluder="helmet")
    with pytest.raises(ValueError, match="label"):
        render_sample(0, label=7, num_classes=7)


# ----------------------------------------------------------------------------------------------- build
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthfer") / "sf"
    df = build_synthfer(
        root, size=48, train_per_class=6, val_per_class=3, num_classes=7, occlusion_prob=0.5, seed=0, progress=False
    )
    return root, df


def test_manifest_columns_and_balance(built):
    root, df = built
    for col in sf.MANIFEST_COLUMNS:
        assert col in df.columns
    assert len(df) == 7 * (6 + 3 + 3)
    counts = df.groupby(["split", "label"]).size().unstack()
    assert (counts.loc["train"] == 6).all() and (counts.loc["valid"] == 3).all()
    assert (counts.loc["valid_occluded"] == 3).all()
    assert set(df.label_name) == set(EMOTIONS[:7])
    assert (df.label_name == [EMOTIONS[i] for i in df.label]).all()
    assert (df.source == "synthfer").all()
    assert (df.landmarks_index == np.arange(len(df))).all()
    assert (df[df.split == "valid"].occluded == 0).all() and (df[df.split == "valid_occluded"].occluded == 1).all()
    assert (df.occluded == (df.occluder != "none").astype(int)).all()
    for p in df.path.iloc[[0, -1]]:
        assert p.startswith(str(root)) and Image.open(p).size == (48, 48)
    # ImageFolder layout
    assert sorted(x.name for x in (root / "train").iterdir()) == sorted(EMOTIONS[:7])
    assert json.loads((root / "params.json").read_text())["size"] == 48


def test_ground_truth_files(built):
    root, df = built
    lm = np.load(root / "landmarks.npy")
    vis = np.load(root / "visible.npy")
    assert lm.shape == (len(df), 68, 2) and lm.dtype == np.float32 and vis.shape == (len(df), 68)
    row = df.iloc[5]
    parsing = np.array(Image.open(row.parsing_path))
    assert parsing.shape == (48, 48) and parsing.max() <= 10
    s = render_sample(5, seed=0, size=48, label=int(row.label), identity=int(row.subject), occluder=row.occluder)
    assert np.array_equal(np.array(Image.open(row.path)), s.image)  # lossless PNG
    assert np.array_equal(parsing, s.parsing) and np.array_equal(lm[5], s.landmarks)


def test_paired_occluded_split(built):
    root, df = built
    va = df[df.split == "valid"].reset_index(drop=True)
    vo = df[df.split == "valid_occluded"].reset_index(drop=True)
    for col in ("label", "subject", "intensity"):
        assert (va[col] == vo[col]).all(), col
    lm = np.load(root / "landmarks.npy")
    assert np.array_equal(lm[va.landmarks_index], lm[vo.landmarks_index])
    assert set(vo.occluder) <= set(OCCLUDERS[1:])
    a = np.array(Image.open(va.path[0])).astype(int)
    b = np.array(Image.open(vo.path[0])).astype(int)
    assert (a != b).any() and (a == b).all(-1).mean() > 0.3  # same face, part of it covered


def test_identities_disjoint(built):
    _, df = built
    assert not set(df[df.split == "train"].subject) & set(df[df.split != "train"].subject)


def test_build_is_idempotent_and_redone_when_incomplete(built, tmp_path):
    root, df = built
    mtime = (root / "manifest.csv").stat().st_mtime_ns
    again = build_synthfer(root, size=48, train_per_class=6, val_per_class=3, progress=False)
    assert (root / "manifest.csv").stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(again, df)
    # an interrupted build (no manifest) is redone with identical bytes
    other = tmp_path / "x"
    a = build_synthfer(other, size=32, train_per_class=2, val_per_class=1, progress=False)
    first = open(a.path[3], "rb").read()
    (other / "manifest.csv").unlink()
    b = build_synthfer(other, size=32, train_per_class=2, val_per_class=1, progress=False)
    assert open(b.path[3], "rb").read() == first
    # other settings rebuild the folder (no stale files left)
    c = build_synthfer(other, size=32, train_per_class=1, val_per_class=1, progress=False)
    assert len(c) == 21 and len(list((other / "train").rglob("*.png"))) == 7


def test_default_root_differs_per_settings():
    a = sf.default_root(sf.synthfer_params(size=64))
    b = sf.default_root(sf.synthfer_params(size=112))
    c = sf.default_root(sf.synthfer_params(size=64, seed=1))
    assert len({a, b, c}) == 3


def test_refuses_foreign_folder(tmp_path):
    (tmp_path / "train" / "happy").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="params.json"):
        build_synthfer(tmp_path, size=32, train_per_class=1, val_per_class=1, progress=False)


def test_eight_classes_and_from_config(tmp_path):
    from orsalib.config import DataConfig

    cfg = DataConfig(data_root=str(tmp_path), synth_size=32, train_per_class=1, val_per_class=1, num_classes=8)
    df = sf.synthfer_from_config(cfg, seed=0)
    assert sorted(df.label.unique()) == list(range(8)) and "contempt" in set(df.label_name)


def test_parallel_build_writes_the_same_bytes(tmp_path):
    """Worker processes change the speed of a build, never its files or its manifest."""
    kw = dict(size=32, train_per_class=12, val_per_class=4, progress=False)
    a = build_synthfer(tmp_path / "one", workers=1, **kw)
    b = build_synthfer(tmp_path / "two", workers=2, **kw)
    rel = lambda df: df.assign(path=df.path.str.split("/").str[-3:].str.join("/"),  # noqa: E731
                               parsing_path=df.parsing_path.str.split("/").str[-1])
    pd.testing.assert_frame_equal(rel(a), rel(b))
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.png"))
    assert len(files) == 2 * len(a)
    for f in files:
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes(), f
    for f in ("landmarks.npy", "visible.npy"):
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes()


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork (the workers inherit the patch)")
def test_dead_worker_gives_a_clear_error_and_no_manifest(tmp_path, monkeypatch):
    import os

    def die(*args, **kwargs):
        os._exit(3)

    monkeypatch.setattr(sf_build, "render_sample", die)
    with pytest.raises(RuntimeError, match="workers=1"):
        build_synthfer(tmp_path, size=32, train_per_class=2, val_per_class=1, progress=False, workers=2)
    assert not (tmp_path / "manifest.csv").exists()


def test_bad_worker_count_raises(tmp_path):
    with pytest.raises(ValueError, match="workers"):
        build_synthfer(tmp_path, size=32, train_per_class=1, val_per_class=1, progress=False, workers=0)


def test_cli_synth_writes_a_build(tmp_path, capsys):
    from orsalib.cli import main

    out = tmp_path / "cli"
    rc = main(["synth", "--out", str(out), "--size", "32", "--train-per-class", "2", "--val-per-class", "1",
               "--workers", "1"])  # fmt: skip
    assert rc == 0 and (out / "manifest.csv").is_file()
    assert "28 images" in capsys.readouterr().out
    assert len(pd.read_csv(out / "manifest.csv")) == 28
