"""Loaders of the transfer experiments: CIFAR-10 batches and folders, digits stand-in, hyperspectral .mat files."""

import pickle
import struct

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from orsalib.data import transfer as T


def _write_batches(root, n_train=6, n_test=4):
    d = root / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(0)
    expected = {}
    for name, n in [(f"data_batch_{k}", n_train) for k in range(1, 6)] + [("test_batch", n_test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, n))
        with open(d / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, f)
        expected[name] = (data, labels)
    return expected


def test_cifar_python_batches_layout(tmp_path):
    exp = _write_batches(tmp_path)
    xtr, ytr, xte, yte, names = T.load_cifar10_batches(tmp_path)
    assert xtr.shape == (30, 32, 32, 3) and xte.shape == (4, 32, 32, 3)
    assert names == list(T.CIFAR10_CLASSES)
    data, labels = exp["data_batch_1"]
    # channel-major rows: the first 1024 values are the red plane of a 32x32 image
    np.testing.assert_array_equal(xtr[0, :, :, 0], data[0, :1024].reshape(32, 32))
    np.testing.assert_array_equal(xtr[0, :, :, 2], data[0, 2048:].reshape(32, 32))
    assert list(ytr[:6]) == labels
    train, test, _, label = T.load_image_classification(tmp_path, augment=False)
    assert label.startswith("CIFAR-10") and len(train) == 30 and len(test) == 4
    item = test[1]
    assert set(item) == {"image", "label", "index"} and item["image"].shape == (3, 32, 32)
    assert item["label"].dtype == torch.int64 and int(item["index"]) == 1


def test_cifar_batches_bad_file_names_it(tmp_path):
    _write_batches(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(T.TransferDataError, match="data_batch_2"):
        T.load_cifar10_batches(tmp_path)


def _py2_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch as the official files are written (python 2 cPickle, protocol 2: str keys, numpy.core names)."""
    n, raw = data.shape[0], data.tobytes()

    def s(b: bytes) -> bytes:  # SHORT_BINSTRING, a python 2 str
        return b"U" + bytes([len(b)]) + b

    arr = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + s(b"b") + b"\x87R"
           + b"(K\x01M" + struct.pack("<H", n) + b"M" + struct.pack("<H", 3072) + b"\x86"
           + b"cnumpy\ndtype\n" + s(b"u1") + b"K\x00K\x01\x87R"
           + b"(K\x03" + s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
           + b"\x89T" + struct.pack("<I", len(raw)) + raw + b"tb")  # fmt: skip
    lab = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return b"\x80\x02}(" + s(b"data") + arr + s(b"labels") + lab + s(b"batch_label") + s(b"batch 1 of 5") + b"u."


def test_cifar_python2_batches_load_through_the_restricted_unpickler(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    data = (np.arange(2 * 3072) % 251).astype(np.uint8).reshape(2, 3072)
    for name in ("data_batch_1", "test_batch"):
        (d / name).write_bytes(_py2_batch(data, [3, 9]))
    raw = T.load_cifar_pickle(d / "test_batch")
    assert raw[b"labels"] == [3, 9] and raw[b"batch_label"] == b"batch 1 of 5"
    xtr, ytr, xte, yte, names = T.load_cifar10_batches(tmp_path)
    assert np.array_equal(xte, data.reshape(2, 3, 32, 32).transpose(0, 2, 3, 1)) and list(ytr) == [3, 9]


def test_image_folders_counts_and_resize(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "ant", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for k in range(n + (cls == "dog")):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                    tmp_path / split / cls / f"{k}.png"
                )
    train, test, names, label = T.load_image_classification(tmp_path, image_size=48, max_train_per_class=2)
    assert names == ["ant", "cat", "dog"]
    assert np.bincount(train.labels).tolist() == [2, 2, 2]
    assert np.bincount(test.labels).tolist() == [2, 2, 3]
    assert "subset" in label
    assert train[0]["image"].shape == (3, 48, 48)


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(T.TransferDataError, match="does not exist"):
        T.load_image_classification(tmp_path / "nope")
    with pytest.raises(T.TransferDataError, match="train/<class>"):
        T.load_image_classification(tmp_path)


def test_digits_standin_is_labelled_and_stratified():
    train, test, names, label = T.load_image_classification(None)
    assert label == T.DIGITS_LABEL and "not CIFAR-10" in label
    assert len(train) + len(test) == 1797 and len(names) == 10
    frac = np.bincount(test.labels) / np.bincount(np.concatenate([train.labels, test.labels]))
    assert np.all(np.abs(frac - 0.25) < 0.02)
    assert train.images.shape[1:] == (32, 32, 3)
    x = train[0]["image"]
    assert x.shape == (3, 32, 32) and torch.isfinite(x).all()


def test_augmentation_changes_training_images_only():
    train, test, _, _ = T.load_image_classification(None)
    torch.manual_seed(0)
    a = torch.stack([train[3]["image"] for _ in range(6)])
    assert (a - a[0]).abs().amax() > 0  # crops/flips differ between draws
    assert torch.equal(test[3]["image"], test[3]["image"])


# ----------------------------------------------------------------------------- hyperspectral
def test_fixed_split_counts_indian_pines_protocol():
    gt = np.zeros((60, 60), dtype=np.int64)
    sizes = [46, 200, 200, 120, 100, 100, 28, 100, 20, 100, 200, 100, 80, 150, 90, 93]
    flat = gt.ravel()
    pos = 0
    for c, n in enumerate(sizes, start=1):
        flat[pos : pos + n] = c
        pos += n
    tr, te = T.fixed_split(gt, T.SCENES["indian_pines"].train_counts, seed=0)
    counts = np.bincount(tr.ravel(), minlength=17)[1:]
    assert counts.tolist() == [15, 50, 50, 50, 50, 50, 15, 50, 15, 50, 50, 50, 50, 50, 50, 50]
    assert counts.sum() == 695
    assert not np.any((tr > 0) & (te > 0))
    np.testing.assert_array_equal(np.maximum(tr, te), gt)
    tr2, _ = T.fixed_split(gt, T.SCENES["indian_pines"].train_counts, seed=0)
    np.testing.assert_array_equal(tr, tr2)
    small = np.array([[1, 1, 1, 1, 0, 2, 2]])
    tr3, te3 = T.fixed_split(small, [50, 50])
    assert np.bincount(tr3.ravel(), minlength=3)[1:].tolist() == [2, 1]  # half of a too-small class


def test_standard_mat_files(tmp_path):
    rng = np.random.default_rng(0)
    cube = rng.integers(0, 9000, (12, 10, 200)).astype(np.uint16)
    gt = rng.integers(0, 17, (12, 10)).astype(np.uint8)
    scipy.io.savemat(tmp_path / "Indian_pines_corrected.mat", {"indian_pines_corrected": cube})
    scipy.io.savemat(tmp_path / "Indian_pines_gt.mat", {"indian_pines_gt": gt})
    scene = T.load_hsi_scene("indian_pines", tmp_path)
    assert scene.cube.shape == (12, 10, 200) and scene.num_classes == 16
    np.testing.assert_array_equal(scene.gt, gt)
    np.testing.assert_allclose(scene.cube.min(axis=(0, 1)), 0.0)
    np.testing.assert_allclose(scene.cube.max(axis=(0, 1)), 1.0)
    b = 5
    expect = (cube[..., b] - cube[..., b].min()) / (cube[..., b].max() - cube[..., b].min())
    np.testing.assert_allclose(scene.cube[..., b], expect, rtol=1e-5)


def test_release_mat_with_tr_te_maps(tmp_path):
    rng = np.random.default_rng(0)
    cube = rng.random((9, 8, 103))
    lab = rng.integers(1, 10, (9, 8))
    mask = rng.random((9, 8)) < 0.3
    tr, te = np.where(mask, lab, 0), np.where(~mask, lab, 0)
    scipy.io.savemat(tmp_path / "Pavia.mat", {"input": cube, "TR": tr, "TE": te})
    scene = T.load_hsi_scene("pavia_u", tmp_path)
    np.testing.assert_array_equal(scene.train_map, tr)
    a, b = T.scene_split(scene)
    np.testing.assert_array_equal(b, te)
    scipy.io.savemat(tmp_path / "bad.mat", {"input": cube, "TR": tr})
    with pytest.raises(T.TransferDataError, match="TE"):
        T.load_hsi_scene("pavia_u", tmp_path / "bad.mat")


def test_wrong_key_names_file_and_keys(tmp_path):
    scipy.io.savemat(tmp_path / "PaviaU.mat", {"wrong": np.zeros((2, 2, 3))})
    scipy.io.savemat(tmp_path / "PaviaU_gt.mat", {"paviaU_gt": np.zeros((2, 2))})
    with pytest.raises(T.TransferDataError, match="paviaU.*wrong"):
        T.load_hsi_scene("pavia_u", tmp_path)


def test_patch_dataset_mirror_padding():
    cube = np.arange(4 * 5 * 2, dtype=np.float32).reshape(4, 5, 2)
    lab = np.zeros((4, 5), dtype=np.int64)
    lab[0, 0] = 3
    lab[2, 3] = 1
    ds = T.HSIPatchDataset(cube, lab, patch=3)
    assert len(ds) == 2
    x = ds[0]["image"]  # pixel (0, 0): corner, mirrored with the edge repeated
    assert x.shape == (2, 3, 3) and int(ds[0]["label"]) == 2
    np.testing.assert_array_equal(
        x[0].numpy(),
        [[cube[0, 0, 0], cube[0, 0, 0], cube[0, 1, 0]]] * 2 + [[cube[1, 0, 0], cube[1, 0, 0], cube[1, 1, 0]]],
    )
    np.testing.assert_array_equal(ds[1]["image"][:, 1, 1].numpy(), cube[2, 3])
    pix = T.HSIPatchDataset(cube, lab, patch=1)
    assert pix[1]["image"].shape == (2, 1, 1)


def test_semisynthetic_scene_procedural_and_scaled():
    scene = T.make_semisynthetic_scene("pavia_u", gt=T.procedural_class_map((40, 30), 9, seed=1), num_bands=20)
    assert scene.cube.shape == (40, 30, 20) and scene.cube.dtype == np.float32
    assert "semi-synthetic" in scene.dataset_label and "not the real cube" in scene.dataset_label
    assert set(np.unique(scene.gt)) == set(range(10))  # every class present, plus unlabelled
    # classes are separable on average: class-mean spectra differ more than the noise level
    means = np.stack([scene.cube[scene.gt == c].mean(0) for c in range(1, 10)])
    d = np.linalg.norm(means[:, None] - means[None], axis=-1)
    assert d[np.triu_indices(9, 1)].min() > 0.05
    small = T.make_semisynthetic_scene("indian_pines", gt=np.ones((20, 20), dtype=int), downsample=2, num_bands=8)
    assert small.cube.shape == (10, 10, 8)
    tr, te = T.hsi_datasets(scene, patch=3, max_test=50)
    assert len(te) == 50 and tr[0]["image"].shape == (20, 3, 3)


@pytest.mark.shared
def test_real_indian_pines_gt_split(shared):
    p = shared / "data" / "indian-pines" / "Indian_pines_gt.mat"
    if not p.is_file():
        pytest.skip("Indian_pines_gt.mat not present")
    gt = T.load_mat_array(p, "indian_pines_gt")
    assert gt.shape == (145, 145) and int((gt > 0).sum()) == 10249
    tr, te = T.fixed_split(gt, T.SCENES["indian_pines"].train_counts)
    assert int((tr > 0).sum()) == 695 and int((te > 0).sum()) == 10249 - 695


@pytest.mark.shared
def test_cifar10_mini_folders(shared):
    root = shared / "data" / "cifar10-mini"
    if not root.is_dir():
        pytest.skip("cifar10-mini not present")
    train, test, names, label = T.load_image_classification(root, max_train_per_class=20, max_test_per_class=5)
    assert names == list(T.CIFAR10_CLASSES) and "CIFAR-10" in label
    assert len(train) == 200 and len(test) == 50
