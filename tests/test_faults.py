"""Faults the workbook must survive or name: planted pickles in its caches never run, malformed label files name
file and line, skipped files and cross-split duplicates are reported, every written file gets one mode, and a
repaired prior cache says so."""

from __future__ import annotations

import json
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from orsalib import paths
from orsalib.config import DataConfig, load_profile
from orsalib.data import sources as S
from orsalib.data import transfer as T
from orsalib.data.synthfer import build_synthfer
from orsalib.priors.cache import PriorCache
from orsalib.priors.landmarks import WeightsError, load_mobilefacenet
from orsalib.priors.sources import PriorSource
from orsalib.utils import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    file_mode,
    make_temp_dir,
)

NAMED_7 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


class Planted:
    """Unpickling this creates ``marker``: the proof that a planted pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _img(path: Path, seed: int, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def _imagefolder(root: Path, splits=("train", "valid"), n: int = 2) -> Path:
    seed = 1000
    for split in splits:
        for c in NAMED_7:
            for k in range(n):
                seed += 1
                _img(root / split / c / f"{c}_{k}.png", seed)
    return root


class _Source(PriorSource):
    """A cheap deterministic prior source (pixels only)."""

    name = "faults"
    keys = ("landmarks", "landmark_features")

    def __init__(self) -> None:
        super().__init__()
        self.weights_id = "w"

    def _compute(self, images: np.ndarray, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        x = images.astype(np.float32) / 255.0  # (B, H, W, 3)
        lm = np.resize(x[:, :68, 0, :2], (len(x), 68, 2)).astype(np.float32)
        return {"landmarks": lm, "landmark_features": x[:, :4, :4, :].transpose(0, 3, 1, 2).copy()}  # (B, 3, 4, 4)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> pd.DataFrame:
    return build_synthfer(tmp_path_factory.mktemp("synth"), size=48, train_per_class=1, val_per_class=1,
                          progress=False)  # fmt: skip


# ============================================================================= planted pickles never run
def test_image_check_cache_is_never_unpickled(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    cache_dir = tmp_path / "outputs" / "cache"
    cache_dir.mkdir(parents=True)
    evil = pickle.dumps({"x": Planted(marker)})
    for name in ("image_checks.pkl", "image_checks.json"):  # the old and the current location
        (cache_dir / name).write_bytes(evil)
    monkeypatch.setattr(paths, "CACHE_DIR", cache_dir)
    m = S.build_source("imagefolder", _imagefolder(tmp_path / "ds", n=1))
    kept, rep = S.validate_manifest(m)  # cache_file="auto": outputs/cache/image_checks.json
    assert rep["problems_total"] == 0 and len(kept) == len(m)
    S.validate_manifest(m, cache_file=cache_dir / "image_checks.pkl")  # even when pointed at the pickle
    assert not marker.exists()
    back = json.loads((cache_dir / "image_checks.json").read_text())  # rewritten as JSON
    assert set(back["files"]) == set(m["path"])
    S.validate_manifest(m)  # and read back as JSON
    assert not marker.exists()


def test_prior_cache_planted_arrays_and_meta_never_run(synth, tmp_path, capsys):
    marker = tmp_path / "ran"
    cache = PriorCache(tmp_path / "priors", shard_size=4)
    rows = synth.iloc[:8].reset_index(drop=True)
    store = cache.ensure(rows, {"batch_size": 4}, 32, progress=False, source=_Source())
    first = store.path / "shards" / store.shards[int(store.slots[0][0])]  # the shard of row 0
    shards = [first] + sorted(p for p in (store.path / "shards").iterdir() if p.is_dir() and p != first)
    # shard 0: an object array whose checksum, size and shape match meta.json (a careful attacker)
    f = shards[0] / "landmarks.npy"
    with open(f, "wb") as fh:
        np.save(fh, np.array([Planted(marker)] * 4, dtype=object), allow_pickle=True)
    meta = json.loads((shards[0] / "meta.json").read_text())
    from orsalib.priors.cache import _file_sha1

    meta["files"]["landmarks.npy"].update(sha1=_file_sha1(f), bytes=f.stat().st_size, shape=[4])
    (shards[0] / "meta.json").write_text(json.dumps(meta))
    # reading the planted array directly (a store opened before the check) refuses it
    with pytest.raises(ValueError, match="allow_pickle|Python objects"):
        store.get(0)
    # shard 1: meta.json replaced by a pickle
    (shards[1] / "meta.json").write_bytes(pickle.dumps({"samples": Planted(marker)}))
    again = cache.ensure(rows, {"batch_size": 4}, 32, progress=False, source=_Source())
    assert not marker.exists()
    assert again.stats["repaired"] == 2 and again.stats["computed"] == 8
    assert again.get(0)["landmarks"].dtype == np.float32


def test_synthfer_cache_planted_files_never_run(tmp_path):
    marker = tmp_path / "ran"
    root = tmp_path / "synth"
    m = build_synthfer(root, size=48, train_per_class=1, val_per_class=1, progress=False)
    with open(root / "landmarks.npy", "wb") as fh:
        np.save(fh, np.array([Planted(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle|Python objects"):
        S.oracle_reader(m)(0)
    (root / "params.json").write_bytes(pickle.dumps(Planted(marker)))
    rebuilt = build_synthfer(root, size=48, train_per_class=1, val_per_class=1, progress=False)
    assert len(rebuilt) == len(m) and not marker.exists()
    assert S.oracle_reader(rebuilt)(0)[0].shape == (68, 2)


def test_weights_and_checkpoints_are_read_weights_only(tmp_path):
    marker = tmp_path / "ran"
    f = tmp_path / "mobilefacenet.pth.tar"
    torch.save({"state_dict": Planted(marker)}, f)
    with pytest.raises(WeightsError) as e:
        load_mobilefacenet(f)
    assert not marker.exists()
    msg = str(e.value)
    assert "mobilefacenet.pth.tar" in msg and "weights_only" not in msg and "trust" not in msg.lower()
    from orsalib.engine.trainer import load_checkpoint
    from orsalib.models.convert import read_checkpoint

    ckpt = tmp_path / "last.pt"
    torch.save({"model": Planted(marker)}, ckpt)
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do; what matters is that nothing ran
        load_checkpoint(ckpt)
    with pytest.raises(Exception):  # noqa: B017
        read_checkpoint(ckpt)
    assert not marker.exists()


def test_no_unrestricted_unpickling_in_the_library():
    hits = []
    for p in sorted((paths.PACKAGE_DIR).rglob("*.py")):
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if "pickle.load" in line or "weights_only=False" in line or "allow_pickle=True" in line:
                hits.append(f"{p.relative_to(paths.PACKAGE_DIR)}:{n}")
    assert all(h.startswith("data/transfer.py:") for h in hits), hits


# ============================================================================= CIFAR-10: restricted unpickler
def test_cifar_unpickler_refuses_other_globals(tmp_path):
    marker = tmp_path / "ran"
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    good = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"batch_label": b"x"}
    for name in ("data_batch_1", "test_batch"):
        (d / name).write_bytes(pickle.dumps(good, protocol=2))
    assert T.load_cifar10_batches(tmp_path)[0].shape == (2, 32, 32, 3)
    (d / "data_batch_1").write_bytes(pickle.dumps({**good, b"x": Planted(marker)}))
    with pytest.raises(T.TransferDataError, match=r"data_batch_1.*refused global (io|builtins)\.open"):
        T.load_cifar10_batches(tmp_path)
    (d / "data_batch_1").write_bytes(pickle.dumps({**good, b"x": np.array([Planted(marker)], dtype=object)}))
    with pytest.raises(T.TransferDataError, match=r"refused global (io|builtins)\.open"):
        T.load_cifar10_batches(tmp_path)
    (d / "data_batch_1").write_bytes(pickle.dumps({**good, b"x": np.array([1, "a"], dtype=object)}))
    with pytest.raises(T.TransferDataError, match="python objects"):
        T.load_cifar10_batches(tmp_path)
    assert not marker.exists()


# ============================================================================= malformed label files
def _fer_rows(n: int = 3) -> pd.DataFrame:
    pix = " ".join(["7"] * 2304)
    return pd.DataFrame({"emotion": [3] * n, "pixels": [pix] * n, "Usage": ["Training"] * n})


def test_fer2013_bad_emotion_names_file_line_value(tmp_path):
    df = _fer_rows()
    df["emotion"] = df["emotion"].astype(object)
    df.loc[1, "emotion"] = "happy"
    df.to_csv(tmp_path / "fer2013.csv", index=False)
    with pytest.raises(S.DatasetError) as e:
        S.build_source("fer2013", tmp_path, cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert "fer2013.csv line 3" in msg and "'happy'" in msg and "0..6" in msg and "anger" in msg
    assert not (tmp_path / "cache").exists()  # checked before anything is decoded
    df.loc[1, "emotion"] = 9
    df.to_csv(tmp_path / "fer2013.csv", index=False)
    with pytest.raises(S.DatasetError, match=r"fer2013.csv line 3: emotion 9 is not an integer 0\.\.6"):
        S.build_source("fer2013", tmp_path, cache_dir=tmp_path / "cache")


def test_fer2013_pixel_out_of_range_names_file_line_value(tmp_path):
    df = _fer_rows()
    vals = ["7"] * 2304
    vals[10] = "300"
    df.loc[2, "pixels"] = " ".join(vals)
    df.to_csv(tmp_path / "fer2013.csv", index=False)
    with pytest.raises(S.DatasetError, match=r"fer2013.csv line 4: pixel value 300 \(value 11 of 2304\) is outside"):
        S.build_source("fer2013", tmp_path, cache_dir=tmp_path / "cache")
    vals[10] = "x7"
    df.loc[2, "pixels"] = " ".join(vals)
    df.to_csv(tmp_path / "fer2013.csv", index=False)
    with pytest.raises(S.DatasetError, match=r"line 4: pixel value 'x7' \(value 11\) is not an integer"):
        S.build_source("fer2013", tmp_path, cache_dir=tmp_path / "cache")
    assert not any((tmp_path / "cache").rglob("*.png"))  # no half-decoded folder is left


def test_rafdb_extra_or_missing_token_names_file_line_text(tmp_path):
    (tmp_path / "basic" / "EmoLabel").mkdir(parents=True)
    (tmp_path / "basic" / "Image" / "aligned").mkdir(parents=True)
    lst = tmp_path / "basic" / "EmoLabel" / "list_patition_label.txt"
    lst.write_text("train_00001.jpg 5\ntrain_00002.jpg 4 7\n")
    with pytest.raises(S.DatasetError) as e:
        S.build_source("rafdb", tmp_path)
    assert "list_patition_label.txt line 2" in str(e.value) and "'train_00002.jpg 4 7'" in str(e.value)
    lst.write_text("train_00001.jpg\n")
    with pytest.raises(S.DatasetError, match=r"line 1: 'train_00001.jpg' \(1 token"):
        S.build_source("rafdb", tmp_path)
    lst.write_text("train_00001.jpg 9\n")
    with pytest.raises(S.DatasetError, match=r"line 1: 'train_00001.jpg 9': label 9 is not one of 1\.\.7"):
        S.build_source("rafdb", tmp_path)


def test_ferplus_and_affectnet_bad_cells_name_file_line_value(tmp_path):
    cols = ["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
            "contempt", "unknown", "NF"]  # fmt: skip
    votes = pd.DataFrame([["Training", "fer0.png", 10, 0, 0, 0, 0, 0, 0, 0, 0, 0]] * 2, columns=cols, dtype=object)
    votes.loc[1, "fear"] = "lots"
    (tmp_path / "ferplus").mkdir()
    votes.to_csv(tmp_path / "ferplus" / "fer2013new.csv", index=False)
    with pytest.raises(S.DatasetError, match=r"fer2013new.csv line 3: fear vote 'lots' is not a count"):
        S.build_source("ferplus", tmp_path / "ferplus")
    (tmp_path / "an").mkdir()
    pd.DataFrame({"subDirectory_filePath": ["1/a.jpg", "1/b.jpg"], "expression": ["1", "smile"]}).to_csv(
        tmp_path / "an" / "training.csv", index=False)  # fmt: skip
    with pytest.raises(S.DatasetError, match=r"training.csv line 3: expression 'smile' is not an integer 0\.\.10"):
        S.build_source("affectnet7", tmp_path / "an")


# ============================================================================= reports
def test_on_bad_skip_is_counted_reported_and_written(tmp_path, capsys):
    root = _imagefolder(tmp_path / "ds")
    (root / "train" / "happy" / "empty.png").write_bytes(b"")
    (root / "train" / "sad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    cfg = DataConfig(dataset="imagefolder", data_root=str(root), on_bad="skip")
    m = S.load_manifest(cfg, cache_file=None)
    rep = m.attrs["validation"]
    assert rep["skipped_by_kind"] == {"zero_byte": 1, "unreadable": 1} and rep["dropped"] == rep["skipped_total"] == 2
    assert {Path(s["path"]).name: s["kind"] for s in rep["skipped"]} == {"empty.png": "zero_byte",
                                                                        "broken.png": "unreadable"}  # fmt: skip
    assert all(s["detail"] for s in rep["skipped"])
    assert rep["split_counts"] == {"train": 14, "valid": 14} and rep["class_counts"]["train"]["happiness"] == 2
    line = S.validation_summary(rep)
    assert "imagefolder: 28 images (train 14, valid 14)" in line and "skipped 2 file(s)" in line
    out = S.write_validation_report(m, tmp_path / "run")
    assert out == tmp_path / "run" / "validation.json"
    back = json.loads(out.read_text())
    assert back["skipped_by_kind"] == rep["skipped_by_kind"] and back["dataset"] == "imagefolder"
    # prepare_fer_data prints the line and hands the report on
    from orsalib.experiments.fer import prepare_fer_data

    run_cfg = load_profile("smoke", {"data.dataset": "imagefolder", "data.data_root": str(root),
                                     "data.on_bad": "skip", "prior.source": "none"}, device="cpu")  # fmt: skip
    capsys.readouterr()
    data = prepare_fer_data(run_cfg)
    assert "skipped 2 file(s) (unreadable 1, zero_byte 1)" in capsys.readouterr().out
    assert data.validation["dropped"] == 2


def test_cross_split_duplicates_are_reported(tmp_path):
    root = _imagefolder(tmp_path / "ds", splits=("train", "valid", "test"), n=1)
    _img(root / "train" / "happy" / "twin.png", seed=7)
    _img(root / "valid" / "sad" / "twin_copy.png", seed=7)
    _img(root / "valid" / "fear" / "v.png", seed=8)
    _img(root / "test" / "fear" / "v_copy.png", seed=8)
    m = S.build_source("imagefolder", root)
    kept, rep = S.validate_manifest(m, cache_file=None)
    assert len(kept) == len(m)  # counted, not dropped (on_overlap="warn")
    assert rep["cross_split_duplicates"] == 2 and rep["cross_split_pairs"] == {"test~valid": 1, "train~valid": 1}
    ex = {e["sha1"]: e["paths"] for e in rep["cross_split_examples"]}
    assert {"train": [str(root / "train" / "happy" / "twin.png")],
            "valid": [str(root / "valid" / "sad" / "twin_copy.png")]} in ex.values()  # fmt: skip
    assert "2 image(s) with the same content in two splits (test~valid 1, train~valid 1)" in S.validation_summary(rep)


# ============================================================================= file modes
def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_written_file_gets_the_open_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
        want = _mode(tmp_path / "plain.txt")
        assert want == file_mode() == 0o666 & ~umask
        written = [
            atomic_write_bytes(tmp_path / "a.bin", b"x"),
            atomic_write_bytes(tmp_path / "b.bin", b"x", fsync=False),
            atomic_write_text(tmp_path / "c.txt", "x"),
            atomic_write_json(tmp_path / "d.json", {"x": 1}),
            atomic_torch_save({"x": torch.zeros(1)}, tmp_path / "e.pt"),
        ]
        assert {p.name: _mode(p) for p in written} == {p.name: want for p in written}
        (tmp_path / "plain_dir").mkdir()
        assert _mode(make_temp_dir(tmp_path, ".t-")) == _mode(tmp_path / "plain_dir")
        # a decoded FER2013 folder and a prior cache shard, written through temp folders + rename
        _fer_rows(2).to_csv(tmp_path / "fer2013.csv", index=False)
        m = S.build_source("fer2013", tmp_path, cache_dir=tmp_path / "cache")
        png = Path(m["path"].iloc[0])
        assert _mode(png) == want and _mode(png.parent) == _mode(tmp_path / "plain_dir")
        rows = pd.DataFrame({"path": [str(png)], "label": [3], "split": ["train"]})
        store = PriorCache(tmp_path / "priors").ensure(rows, {"batch_size": 1}, 16, progress=False, source=_Source())
        shard = next(p for p in (store.path / "shards").iterdir() if p.is_dir())
        assert _mode(shard) == _mode(tmp_path / "plain_dir")
        assert {f.name: _mode(f) for f in shard.iterdir()} == {f.name: want for f in shard.iterdir()}
    finally:
        os.umask(old)


# ============================================================================= prior cache repair
def test_prior_cache_repair_is_printed_and_counted(synth, tmp_path, capsys):
    cache = PriorCache(tmp_path, shard_size=4)
    rows = synth.iloc[:8].reset_index(drop=True)
    first = cache.ensure(rows, {"batch_size": 4}, 32, progress=False, source=_Source())
    assert first.stats["repaired"] == 0
    shard = sorted(p for p in (first.path / "shards").iterdir() if p.is_dir())[1]
    f = shard / "landmark_features.npy"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))
    capsys.readouterr()
    again = cache.ensure(rows, {"batch_size": 4}, 32, progress=False, source=_Source())
    out = capsys.readouterr().out
    assert "1 damaged shard(s)" in out and shard.name in out and "landmark_features.npy checksum" in out
    assert again.stats["repaired"] == 1 and again.stats["computed"] == 4
    assert again.stats["repaired_shards"] == [{"shard": shard.name, "problem": "landmark_features.npy checksum "
                                               "does not match meta.json"}]  # fmt: skip
    quiet = cache.ensure(rows, {"batch_size": 4}, 32, progress=False, source=_Source())
    assert quiet.stats["repaired"] == 0 and "damaged" not in capsys.readouterr().out
