"""FERDataset, samplers and build_loaders on a small fixture manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from orsalib.config import DataConfig
from orsalib.data import loaders as LD
from orsalib.data.sources import DatasetError
from orsalib.data.transforms import FLIP_68, flip_landmarks


def make_manifest(root: Path, n_train: int = 21, n_valid: int = 7, size: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for split, n in (("train", n_train), ("valid", n_valid)):
        for k in range(n):
            p = root / split / f"{k}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(p)
            lab = k % 7
            rows.append({"path": str(p), "label": lab, "label_name": str(lab), "split": split})
    return pd.DataFrame(rows)


class FakeStore:
    """Landmarks/parsing/feature priors with recognisable values; records the calls."""

    keys = ("landmarks", "parsing", "landmark_features")

    def __init__(self, size: int, flipped_ok: bool = True) -> None:
        rng = np.random.default_rng(1)
        self.size = size
        self.lm = rng.uniform(0.1, 0.9, (68, 2)).astype(np.float32)
        self.flipped_ok = flipped_ok
        self.calls: list[tuple[int, bool]] = []

    def get(self, i: int, flipped: bool = False) -> dict[str, np.ndarray]:
        self.calls.append((i, flipped))
        if flipped and not self.flipped_ok:
            raise KeyError("no flipped priors")
        par = np.zeros((self.size, self.size), np.uint8)
        par[:, : self.size // 2] = 2  # left half "left brow"
        lm = flip_landmarks(self.lm) if flipped else self.lm
        feat = np.full((4, 2, 2), float(i) + (0.5 if flipped else 0.0), np.float32)
        if flipped:
            par = np.zeros_like(par)
            par[:, self.size // 2 :] = 3
        return {"landmarks": lm, "parsing": par, "landmark_features": feat}


def test_dataset_contract(tmp_path):
    m = make_manifest(tmp_path)
    part = m[m["split"] == "valid"]
    ds = LD.FERDataset(part, 16, prior_store=FakeStore(16))
    s = ds[2]
    assert s["image"].shape == (3, 16, 16) and s["image"].dtype == torch.float32
    assert s["label"].dtype == torch.int64 and int(s["label"]) == part["label"].iloc[2]
    assert int(s["index"]) == part.index[2]  # the global manifest row, not the position in the split
    assert s["landmarks"].shape == (68, 2) and s["parsing"].dtype == torch.int64
    assert s["landmark_features"].shape == (4, 2, 2) and float(s["landmark_features"][0, 0, 0]) == part.index[2]
    # normalised: roughly zero-mean for uniform noise images
    assert -1.5 < float(s["image"].mean()) < 1.5


def test_train_flip_uses_cached_flipped_priors(tmp_path):
    m = make_manifest(tmp_path)
    store = FakeStore(16)
    ds = LD.FERDataset(m[m["split"] == "train"], 16, prior_store=store, train=True, random_erasing=0.0)
    torch.manual_seed(0)
    seen = set()
    for k in range(12):
        s = ds[k]
        flipped = store.calls[-1][1]
        seen.add(flipped)
        want = flip_landmarks(store.lm) if flipped else store.lm
        assert np.allclose(s["landmarks"].numpy(), want)  # not flipped twice
        assert (float(s["landmark_features"][0, 0, 0]) % 1 == 0.5) == flipped
    assert seen == {True, False}


def test_flip_fallback_when_store_has_no_flipped_priors(tmp_path):
    m = make_manifest(tmp_path)
    store = FakeStore(16, flipped_ok=False)
    ds = LD.FERDataset(m[m["split"] == "train"], 16, prior_store=store, train=True, random_erasing=0.0)
    ds.transform.sample_flip = lambda generator=None: True  # force the flip
    s = ds[0]
    assert np.allclose(s["landmarks"].numpy(), flip_landmarks(store.lm))
    assert set(np.unique(s["parsing"].numpy())) == {0, 3}  # left-brow half mirrored and relabelled
    assert int(s["parsing"][0, -1]) == 3


def test_image_flip_matches_pixels(tmp_path):
    m = make_manifest(tmp_path, n_train=1, n_valid=1)
    ds = LD.FERDataset(m.iloc[:1], 20, train=True, random_erasing=0.0, normalize=False)
    ds.transform.sample_flip = lambda generator=None: True
    img = np.asarray(Image.open(m["path"].iloc[0]).convert("RGB"))
    got = (ds[0]["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(got, img[:, ::-1])


def test_bad_file_error_names_it(tmp_path):
    m = make_manifest(tmp_path, n_train=2, n_valid=1)
    Path(m["path"].iloc[1]).write_bytes(b"not an image")
    ds = LD.FERDataset(m, 16)
    with pytest.raises(DatasetError, match=r"1\.png \(manifest row 1\)"):
        ds[1]


def test_image_cache(tmp_path):
    m = make_manifest(tmp_path, n_train=3, n_valid=1)
    ds = LD.FERDataset(m, 16, cache_images=True)
    a = ds[0]["image"]
    Path(m["path"].iloc[0]).unlink()  # served from memory now
    assert torch.equal(ds[0]["image"], a)
    assert LD.FERDataset(m, 16, cache_mb=0.0).cache_images is False


def test_balanced_sampler_is_uniform_over_classes():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    g = torch.Generator().manual_seed(0)
    draws = np.array(list(LD.class_balanced_sampler(labels, num_samples=30000, generator=g)))
    freq = np.bincount(labels[draws], minlength=3) / len(draws)
    assert np.allclose(freq, 1 / 3, atol=0.02)
    assert len(LD.class_balanced_sampler(labels)) == len(labels)


def test_distributed_balanced_shards_disjoint_and_covering():
    labels = np.arange(103) % 5
    world = 4
    samplers = [LD.DistributedBalancedSampler(labels, world, r, seed=3) for r in range(world)]
    seq = samplers[0].epoch_sequence()
    shards = [list(s) for s in samplers]
    assert all(len(sh) == len(samplers[0]) == 26 for sh in shards)
    # the shards are disjoint slices of one epoch draw and together cover it
    rebuilt = torch.empty(len(seq), dtype=torch.long)
    for r, sh in enumerate(shards):
        rebuilt[r::world] = torch.tensor(sh)
    assert torch.equal(rebuilt, seq)
    for s in samplers:
        s.set_epoch(1)
    assert not torch.equal(samplers[0].epoch_sequence(), seq)
    assert torch.equal(samplers[0].epoch_sequence(), samplers[3].epoch_sequence())


def test_build_loaders_distributed_covers_each_split(tmp_path):
    m = make_manifest(tmp_path)
    cfg = DataConfig(image_size=16, balanced_sampler=False)
    world = 3
    train_idx, valid_idx = [], []
    for r in range(world):
        loaders = LD.build_loaders(m, cfg, batch_size=4, distributed=True, num_replicas=world, rank=r)
        loaders["train"].sampler.set_epoch(0)
        train_idx.append({int(i) for b in loaders["train"] for i in b["index"]})
        valid_idx.append([int(i) for b in loaders["valid"] for i in b["index"]])
    assert set().union(*train_idx) == set(m.index[m["split"] == "train"])
    flat = sorted(i for v in valid_idx for i in v)
    assert flat == sorted(m.index[m["split"] == "valid"])  # disjoint (no repeats), covering, no padding


def test_build_loaders_keys_and_determinism(tmp_path):
    m = make_manifest(tmp_path)
    cfg = DataConfig(image_size=16)
    a = LD.build_loaders(m, cfg, batch_size=6, seed=7)
    assert set(a) == {"train", "valid"}
    assert len(a["train"].dataset) == 21 and a["train"].drop_last is False
    b1 = next(iter(a["train"]))
    b2 = next(iter(LD.build_loaders(m, cfg, batch_size=6, seed=7)["train"]))
    assert torch.equal(b1["index"], b2["index"]) and torch.equal(b1["image"], b2["image"])
    v = next(iter(a["valid"]))
    assert v["index"].tolist() == list(m.index[m["split"] == "valid"])  # in order, eval batch = 2 * batch_size
    # a last training batch of one sample is dropped (BatchNorm cannot train on it)
    assert LD.build_loaders(m, cfg, batch_size=4)["train"].drop_last is True


def test_workers_are_deterministic(tmp_path):
    m = make_manifest(tmp_path, n_train=14, n_valid=1)
    cfg = DataConfig(image_size=16, num_workers=2)
    runs = []
    for _ in range(2):
        loader = LD.build_loaders(m, cfg, batch_size=7, seed=1, cache_images=False)["train"]
        runs.append(torch.cat([b["image"] for b in loader]))
    assert torch.equal(runs[0], runs[1])


def test_flip68_used_by_flip_landmarks():
    lm = np.random.default_rng(0).uniform(size=(68, 2)).astype(np.float32)
    f = flip_landmarks(lm)
    assert np.allclose(f[:, 0], 1 - lm[FLIP_68, 0]) and np.allclose(f[:, 1], lm[FLIP_68, 1])


def test_synthfer_flip_keeps_landmark_semantics(tmp_path):
    """On real SynthFER priors: after a flip the subject's right-eye landmarks (36-41) still sit on the
    right-eye parsing class (5), and the left-eye ones (42-47) on class 4."""
    synthfer = pytest.importorskip("orsalib.data.synthfer")
    from orsalib.data.sources import oracle_reader

    m = synthfer.build_synthfer(
        tmp_path / "sf", size=64, train_per_class=2, val_per_class=1, occlusion_prob=0.0, progress=False
    )
    m = m[m["split"] == "train"]
    read = oracle_reader(m)

    class Oracle:
        keys = ("landmarks", "parsing")

        def get(self, i, flipped=False):
            lm, par = read(i)
            return {"landmarks": lm, "parsing": par}  # no flipped entries: the dataset flips them itself

    ds = LD.FERDataset(m, 64, prior_store=Oracle(), train=True, random_erasing=0.0)
    for flip in (False, True):
        ds.transform.sample_flip = lambda generator=None, flip=flip: flip
        hits = {5: 0, 4: 0}
        for k in range(len(ds)):
            s = ds[k]
            px = (s["landmarks"].numpy() * 64).astype(int).clip(0, 63)
            cls = s["parsing"].numpy()[px[:, 1], px[:, 0]]
            hits[5] += int((cls[36:42] == 5).sum())
            hits[4] += int((cls[42:48] == 4).sum())
            assert (s["landmarks"][36:42, 0].mean() < s["landmarks"][42:48, 0].mean()).item()  # 36-41: image left
        assert hits[5] > 0.5 * 6 * len(ds) and hits[4] > 0.5 * 6 * len(ds)


def test_collate_matches_default_collate(tmp_path):
    from torch.utils.data import default_collate

    m = make_manifest(tmp_path, n_train=4, n_valid=1)
    ds = LD.FERDataset(m, 16, prior_store=FakeStore(16))
    batch = [ds[k] for k in range(4)]
    a, b = LD.collate(batch), default_collate(batch)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k])
