"""Dataset adapters and manifest validation on small fixture trees written in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from orsalib.config import DataConfig
from orsalib.data import labels as L
from orsalib.data import sources as S
from orsalib.paths import shared_path

RNG = np.random.default_rng(0)


def write_img(path: Path, size: int = 16, mode: str = "RGB", seed: int | None = None, fmt: str | None = None) -> Path:
    """A small image with distinct random content (so content hashes differ unless seed repeats)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed) if seed is not None else RNG
    if mode == "L":
        img = Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8), "L")
    elif mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (size, size), dtype=np.uint16))
    elif mode == "RGBA":
        img = Image.fromarray(rng.integers(0, 256, (size, size, 4), dtype=np.uint8), "RGBA")
    else:
        img = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")
    img.save(path, format=fmt)
    return path


def make_imagefolder(root: Path, classes: dict[str, str], splits=("train", "valid"), n: int = 2, ext=".png") -> Path:
    for split in splits:
        for folder in classes:
            for k in range(n):
                write_img(root / split / folder / f"{folder}_{split}_{k}{ext}")
    return root


NAMED_7 = {n: n for n in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")}


def check(m: pd.DataFrame, require_all_classes: bool = True) -> pd.DataFrame:
    m, report = S.validate_manifest(m, cache_file=None, require_all_classes=require_all_classes)
    assert report["problems_total"] == 0
    return m


# ----------------------------------------------------------------------------- layouts
def test_imagefolder_named(tmp_path):
    root = make_imagefolder(tmp_path / "ds", NAMED_7)
    write_img(root / "train" / "angry" / "sub" / "nested.png")  # ImageFolder is recursive
    (root / "train" / "angry" / "notes.txt").write_text("not an image")
    cfg = DataConfig(dataset="imagefolder", data_root=str(root), num_classes=7)
    m = S.load_manifest(cfg, cache_file=None)
    assert set(m["split"]) == {"train", "valid"}
    assert len(m) == 7 * 2 * 2 + 1
    for _, r in m.iterrows():
        folder = Path(r["path"]).relative_to(root).parts[1]
        assert r["label"] == L.index_of(folder)
        assert r["label_name"] == L.EMOTIONS[r["label"]]
    assert all(Path(p).is_absolute() for p in m["path"])
    assert m.attrs["validation"]["converted_to_rgb"] == {}


def test_validation_table_and_manifest_result(tmp_path):
    root = make_imagefolder(tmp_path / "ds", NAMED_7)
    m = S.load_manifest(DataConfig(dataset="imagefolder", data_root=str(root), num_classes=7), cache_file=None)
    table = S.validation_table(m.attrs["validation"]).set_index("item")["value"]
    assert table["images"] == 28 and table["problems"] == 0 and table["warnings"] == "none"
    res = S.manifest_result(m, "imagefolder")
    assert res == {"dataset": "imagefolder", "images": 28, "images_train": 14, "images_valid": 14, "classes": 7,
                   "problems": 0, "dropped": 0, "overlap_train_eval": 0}  # fmt: skip
    m["occluded"] = [i % 2 for i in range(len(m))]
    assert S.manifest_result(m, "x")["occluded_fraction_train"] == 0.5


def test_imagefolder_label_map(tmp_path):
    classes = {f"c{i}": "" for i in range(7)}
    root = make_imagefolder(tmp_path / "ds", classes)
    label_map = {f"c{i}": L.EMOTIONS[6 - i] for i in range(7)}
    cfg = DataConfig(dataset="imagefolder", data_root=str(root), label_map=label_map)
    m = S.load_manifest(cfg, cache_file=None)
    got = {Path(p).parent.name: lab for p, lab in zip(m["path"], m["label"])}
    assert got == {f"c{i}": 6 - i for i in range(7)}


def test_rafdb_native(tmp_path):
    base = tmp_path / "raf" / "basic"
    lines = []
    for k in range(14):
        split = "train" if k < 7 else "test"
        name = f"{split}_{k:05d}.jpg"
        native = k % 7 + 1
        lines.append(f"{name} {native}")
        write_img(base / "Image" / "aligned" / f"{split}_{k:05d}_aligned.jpg", fmt="JPEG")
    (base / "EmoLabel").mkdir(parents=True)
    (base / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    m = check(S.build_source("rafdb", tmp_path / "raf"))
    assert len(m) == 14 and set(m["split"]) == {"train", "test"}
    r = m.iloc[0]
    assert r["path"].endswith("train_00000_aligned.jpg") and r["label_name"] == "surprise"  # RAF-DB 1 = surprise
    assert m.iloc[5]["label_name"] == "anger"  # RAF-DB 6 = anger
    assert list(m["label"][:7]) == [L.EMOTIONS.index(L.RAFDB_LABELS[i]) for i in range(1, 8)]


def test_rafdb_label_file_points_at_absent_images(tmp_path):
    base = tmp_path / "raf" / "basic"
    write_img(base / "Image" / "aligned" / "train_00001_aligned.jpg", fmt="JPEG")
    (base / "EmoLabel").mkdir(parents=True)
    (base / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 4\ntrain_00002.jpg 4\n")
    m = S.build_source("rafdb", tmp_path / "raf")
    with pytest.raises(S.DatasetError, match="train_00002_aligned.jpg: missing file"):
        S.validate_manifest(m, cache_file=None, require_all_classes=False)
    kept, rep = S.validate_manifest(m, on_bad="skip", cache_file=None)
    assert len(kept) == 1 and rep["problems_by_kind"] == {"missing_file": 1}


def test_rafdb_imagefolder_numeric(tmp_path):
    root = make_imagefolder(tmp_path / "raf", {str(i): "" for i in range(1, 8)}, n=1)
    m = check(S.build_source("rafdb", root))
    got = {Path(p).parent.name: n for p, n in zip(m["path"], m["label_name"])}
    assert got["1"] == "surprise" and got["6"] == "anger" and got["7"] == "neutral"
    bad = make_imagefolder(tmp_path / "raf0", {str(i): "" for i in range(0, 7)}, n=1)
    with pytest.raises(S.DatasetError, match="label_map"):
        S.build_source("rafdb", bad)


def test_rafdb_malformed_label_line(tmp_path):
    (tmp_path / "basic" / "EmoLabel").mkdir(parents=True)
    (tmp_path / "basic" / "Image" / "aligned").mkdir(parents=True)
    (tmp_path / "basic" / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg\n")
    with pytest.raises(S.DatasetError, match=r"list_patition_label.txt line 1"):
        S.build_source("rafdb", tmp_path)


def test_affectnet_csv_ignores_non_expressions(tmp_path):
    root = tmp_path / "affectnet"
    rows = {"train": [], "valid": []}
    for split, fname in (("train", "training.csv"), ("valid", "validation.csv")):
        recs = []
        for e in range(11):
            rel = f"{e}/{split}_{e}.jpg"
            write_img(root / "Manually_Annotated_Images" / rel, fmt="JPEG")
            recs.append(
                {
                    "subDirectory_filePath": rel,
                    "face_x": 0,
                    "face_y": 0,
                    "face_width": 16,
                    "face_height": 16,
                    "facial_landmarks": "",
                    "expression": e,
                    "valence": 0,
                    "arousal": 0,
                }
            )
        pd.DataFrame(recs).to_csv(root / fname, index=False)
        rows[split] = recs
    m8 = check(S.build_source("affectnet8", root, num_classes=8))
    assert len(m8) == 16 and m8.attrs["ignored_non_expression"] == 6
    first = m8[m8["split"] == "train"].sort_values("path")
    got = {Path(p).parent.name: n for p, n in zip(first["path"], first["label_name"])}
    assert got == {str(k): v for k, v in L.AFFECTNET_LABELS.items()}
    m7 = check(S.build_source("affectnet7", root, num_classes=7))
    assert len(m7) == 14 and "contempt" not in set(m7["label_name"]) and m7.attrs["dropped_contempt"] == 2
    with pytest.raises(S.DatasetError, match="num_classes=8"):
        S.build_source("affectnet8", root, num_classes=7)


def test_affectnet_imagefolder(tmp_path):
    root = make_imagefolder(tmp_path / "an", {str(i): "" for i in range(8)}, n=1)
    m = check(S.build_source("affectnet8", root, num_classes=8))
    got = {Path(p).parent.name: n for p, n in zip(m["path"], m["label_name"])}
    assert got == {str(k): v for k, v in L.AFFECTNET_LABELS.items()}


def _fer_csv(path: Path, n: int = 14) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    usage = ["Training"] * (n - 4) + ["PublicTest"] * 2 + ["PrivateTest"] * 2
    df = pd.DataFrame(
        {
            "emotion": [i % 7 for i in range(n)],
            "pixels": [" ".join(map(str, rng.integers(0, 256, 48 * 48))) for _ in range(n)],
            "Usage": usage,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return df


def test_fer2013_csv(tmp_path):
    df = _fer_csv(tmp_path / "fer" / "fer2013.csv")
    m = check(S.build_source("fer2013", tmp_path / "fer", cache_dir=tmp_path / "cache"))
    assert len(m) == len(df)
    assert list(m["label_name"]) == [L.FER2013_LABELS[e] for e in df["emotion"]]
    assert list(m["split"]) == ["train"] * 10 + ["valid"] * 2 + ["test"] * 2
    img = np.asarray(Image.open(m["path"].iloc[3]))
    assert img.shape == (48, 48)
    assert np.array_equal(img.ravel(), np.array(df["pixels"].iloc[3].split(), dtype=np.uint8))
    # Decoded once: a second build reuses the cache folder.
    mtime = Path(m["path"].iloc[0]).stat().st_mtime_ns
    m2 = S.build_source("fer2013", tmp_path / "fer", cache_dir=tmp_path / "cache")
    assert list(m2["path"]) == list(m["path"]) and Path(m2["path"].iloc[0]).stat().st_mtime_ns == mtime


def test_fer2013_csv_bad_pixels(tmp_path):
    pd.DataFrame({"emotion": [0], "pixels": ["1 2 3"], "Usage": ["Training"]}).to_csv(tmp_path / "fer2013.csv")
    with pytest.raises(S.DatasetError, match=r"fer2013.csv line 2: expected 2304"):
        S.build_source("fer2013", tmp_path, cache_dir=tmp_path / "cache")


def test_fer2013_folders(tmp_path):
    root = make_imagefolder(tmp_path / "fer", NAMED_7, splits=("train", "test"), n=1, ext=".jpg")
    m = check(S.build_source("fer2013", root))
    assert set(m["split"]) == {"train", "test"} and len(m) == 14
    root2 = make_imagefolder(tmp_path / "fer_num", {str(i): "" for i in range(7)}, n=1)
    m2 = check(S.build_source("fer2013", root2))
    got = {Path(p).parent.name: n for p, n in zip(m2["path"], m2["label_name"])}
    assert got == {str(k): v for k, v in L.FER2013_LABELS.items()}


def test_ferplus_majority_vote(tmp_path):
    cols = list(L.FERPLUS_EMOTION_COLUMNS) + list(L.FERPLUS_OTHER_COLUMNS)
    votes = np.array(
        [
            [10, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # neutral
            [0, 6, 4, 0, 0, 0, 0, 0, 0, 0],  # happiness
            [0, 5, 5, 0, 0, 0, 0, 0, 0, 0],  # tie -> dropped
            [0, 0, 0, 0, 0, 0, 0, 0, 7, 3],  # unknown wins -> dropped
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face -> dropped
            [1, 0, 0, 0, 0, 0, 0, 9, 0, 0],  # contempt
            [0, 0, 0, 0, 8, 2, 0, 0, 0, 0],  # anger
        ]
    )
    n = len(votes)
    new = pd.DataFrame(votes, columns=cols)
    new.insert(0, "Image name", [f"fer{i:07d}.png" for i in range(n)])
    new.insert(0, "Usage", ["Training"] * 5 + ["PublicTest", "PrivateTest"])
    root = tmp_path / "ferplus"
    root.mkdir()
    new.to_csv(root / "fer2013new.csv", index=False)
    keep, lab = S.ferplus_majority(new)
    assert keep.tolist() == [True, True, False, False, False, True, True]
    # (a) joined with fer2013.csv pixels row by row
    _fer_csv(root / "fer2013.csv", n=n)
    m, info = S.load_ferplus(root, cache_dir=tmp_path / "cache")
    assert list(m["label_name"]) == ["neutral", "happiness", "contempt", "anger"]
    assert list(m["split"]) == ["train", "train", "valid", "test"]
    assert info["ferplus_dropped_vote"] == 3
    m7 = S.build_source("ferplus", root, num_classes=7, cache_dir=tmp_path / "cache")
    assert list(m7["label_name"]) == ["neutral", "happiness", "anger"]
    # (b) image files of the FERPlus generator
    (root / "fer2013.csv").unlink()
    for i, u in enumerate(new["Usage"]):
        folder = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}[u]
        write_img(root / folder / f"fer{i:07d}.png", mode="L")
    m2 = check(S.build_source("ferplus", root, num_classes=8), require_all_classes=False)
    assert list(m2["label_name"]) == ["neutral", "happiness", "contempt", "anger"]
    assert Path(m2["path"].iloc[2]).parent.name == "FER2013Valid"


def test_occlufer(tmp_path):
    classes = {n: n for n in ("anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise")}
    root = make_imagefolder(tmp_path / "occ", classes, splits=("train", "test"), n=1)
    m8 = check(S.build_source("occlufer", root, num_classes=8))
    assert len(m8) == 16 and set(m8["label"]) == set(range(8))
    m7 = check(S.build_source("occlufer", root, num_classes=7))
    assert len(m7) == 14 and 7 not in set(m7["label"])
    num = make_imagefolder(tmp_path / "occn", {str(i): "" for i in range(8)}, n=1)
    with pytest.raises(S.DatasetError, match="label_map"):
        S.build_source("occlufer", num, num_classes=8)


def test_filter_by_list(tmp_path):
    m = pd.DataFrame(
        {
            "path": [f"/x/test_{i:04d}_aligned.jpg" for i in range(5)],
            "label": [0, 1, 2, 3, 4],
            "label_name": [L.EMOTIONS[i] for i in range(5)],
            "split": ["test"] * 5,
        }
    )
    lst = tmp_path / "occlusion_list.txt"
    lst.write_text("test_0001.jpg 3\ntest_0003.jpg 1\ntest_9999.jpg 2\n")
    out = S.filter_by_list(m, lst)
    assert list(out["label"]) == [1, 3] and list(out["occlusion_type"]) == ["3", "1"]
    assert out.attrs["filter_missing"] == ["test_9999"]
    with pytest.raises(S.DatasetError, match="does not exist"):
        S.filter_by_list(m, tmp_path / "nope.txt")


# ----------------------------------------------------------------------------- bad inputs
def test_missing_directory(tmp_path):
    with pytest.raises(S.DatasetError, match="does not exist"):
        S.build_source("imagefolder", tmp_path / "absent")
    (tmp_path / "flat" / "angry").mkdir(parents=True)
    with pytest.raises(S.DatasetError, match="no split folders"):
        S.build_source("imagefolder", tmp_path / "flat")


def test_bad_files_raise_one_error_naming_them(tmp_path):
    root = make_imagefolder(tmp_path / "ds", NAMED_7, n=2, ext=".jpg")
    trunc = write_img(root / "train" / "happy" / "truncated.jpg", size=64, fmt="JPEG")
    trunc.write_bytes(trunc.read_bytes()[: trunc.stat().st_size // 2])
    zero = root / "train" / "sad" / "zero.png"
    zero.write_bytes(b"")
    write_img(root / "train" / "bored" / "b.png")  # unknown label folder
    write_img(root / "train" / "angry" / "gray.png", mode="L")
    write_img(root / "train" / "angry" / "alpha.png", mode="RGBA")
    write_img(root / "train" / "angry" / "deep.png", mode="I;16")
    m = S.build_source("imagefolder", root)
    with pytest.raises(S.DatasetError) as ei:
        S.validate_manifest(m, cache_file=None)
    msg = str(ei.value)
    assert "3 problem(s)" in msg
    assert f"{trunc}: cannot decode" in msg
    assert f"{zero}: zero-byte file" in msg
    assert "b.png: unknown label 'bored'" in msg
    kept, rep = S.validate_manifest(m, on_bad="skip", cache_file=None)
    assert len(kept) == len(m) - 3 and rep["dropped"] == 3
    assert rep["problems_by_kind"] == {"unreadable": 1, "zero_byte": 1, "unknown_label": 1}
    assert rep["converted_to_rgb"] == {"grayscale": 1, "alpha": 1, "16bit": 1}
    assert kept["sha1"].notna().all() and list(kept.index) == list(range(len(kept)))


def test_error_lists_at_most_20(tmp_path):
    root = make_imagefolder(tmp_path / "ds", NAMED_7, n=1)
    for k in range(25):
        (root / "train" / "fear" / f"z{k:02d}.png").write_bytes(b"")
    with pytest.raises(S.DatasetError) as ei:
        S.validate_manifest(S.build_source("imagefolder", root), cache_file=None)
    msg = str(ei.value)
    assert msg.startswith("25 problem(s)") and msg.count("zero-byte") == 20


def test_empty_class_and_duplicates(tmp_path):
    root = make_imagefolder(tmp_path / "ds", {k: v for k, v in NAMED_7.items() if k != "fear"}, n=1)
    m = S.build_source("imagefolder", root)
    with pytest.raises(S.DatasetError, match=r"classes without training images: \['fear'\]"):
        S.validate_manifest(m, cache_file=None)
    kept, rep = S.validate_manifest(m, on_bad="skip", cache_file=None)
    assert rep["empty_classes"]["train"] == ["fear"] and len(kept) == len(m)
    dup = pd.concat([m, m.iloc[:2]], ignore_index=True)
    kept, rep = S.validate_manifest(dup, on_bad="skip", cache_file=None, require_all_classes=False)
    assert rep["duplicate_paths"] == 2 and len(kept) == len(m)


def test_overlap_detection(tmp_path):
    root = make_imagefolder(tmp_path / "ds", NAMED_7, n=1)
    a = write_img(root / "train" / "happy" / "same.png", seed=42)
    write_img(root / "valid" / "happy" / "same_copy.png", seed=42)
    m = S.build_source("imagefolder", root)
    kept, rep = S.validate_manifest(m, cache_file=None)  # default: counted, not fatal
    assert rep["overlap_train_eval"] == 1 and len(kept) == len(m)
    assert rep["overlap_examples"][0]["train"] == str(a)
    with pytest.raises(S.DatasetError, match="same content"):
        S.validate_manifest(m, cache_file=None, on_overlap="raise")
    kept, rep = S.validate_manifest(m, cache_file=None, on_overlap="skip", on_bad="skip")
    assert str(a) not in set(kept["path"]) and len(kept) == len(m) - 1


def test_check_cache_reuses_results(tmp_path):
    root = make_imagefolder(tmp_path / "ds", NAMED_7, n=1)
    m = S.build_source("imagefolder", root)
    cache = tmp_path / "checks.json"
    _, r1 = S.validate_manifest(m, cache_file=cache)
    assert cache.is_file()
    p = Path(m["path"].iloc[0])
    p.write_bytes(b"")  # a changed file (size differs) is re-checked, not served from the cache
    with pytest.raises(S.DatasetError, match="zero-byte"):
        S.validate_manifest(m, cache_file=cache)


def test_save_and_read_manifest(tmp_path):
    root = make_imagefolder(tmp_path / "ds", NAMED_7, n=1)
    cfg = DataConfig(dataset="imagefolder", data_root=str(root))
    m = S.load_manifest(cfg, cache_file=None)
    out = S.save_manifest(m, tmp_path / "run" / "manifest.csv")
    assert (tmp_path / "run" / "manifest.validation.json").is_file()
    back = S.read_manifest(out)
    assert list(back["path"]) == list(m["path"]) and back["label"].dtype == np.int64
    assert S.eval_split(back) == "valid"


# ----------------------------------------------------------------------------- real data (development machine)
@pytest.mark.shared
def test_fer2013_mini_real():
    root = shared_path("data", "fer2013-mini")
    if root is None:
        pytest.skip("../shared/data/fer2013-mini is not present")
    cfg = DataConfig(dataset="fer2013", data_root=str(root), image_size=48)
    m = S.load_manifest(cfg)
    assert len(m) == 6436
    counts = m.groupby(["split", "label_name"]).size()
    for name in L.EMOTIONS_7:
        assert counts["train", name] == (350 if name == "disgust" else 800)
        assert counts["valid", name] == (86 if name == "disgust" else 200)
    rep = m.attrs["validation"]
    assert rep["problems_total"] == 0 and rep["converted_to_rgb"].get("grayscale") == 6436


def test_data_figures_from_a_manifest(tmp_path):
    from orsalib.viz import dataset as viz_data

    root = make_imagefolder(tmp_path / "ds", NAMED_7, n=2)
    m = S.build_source("imagefolder", root)
    m["occluder"] = ["none", "hand"] * (len(m) // 2)
    t = viz_data.class_counts(m)
    assert t["images"].sum() == len(m) and set(t["class"]) == set(L.EMOTIONS_7)
    assert viz_data.occluder_counts(m).groupby("split")["fraction"].sum().round(6).eq(1.0).all()
    fig = viz_data.sample_grid(m, n_per_class=2, split="valid")
    assert sum(tr.type == "image" for tr in fig.data) == 14
    assert len(viz_data.class_histogram(m).data) == 2 and len(viz_data.occluder_histogram(m).data) == 2
    img = np.zeros((8, 8, 3), np.uint8)
    par = np.zeros((8, 8), np.uint8)
    par[2:4, 2:4] = 4
    out = viz_data.blend_parsing(img, par)
    assert (out[0, 0] == 0).all() and out[2, 2, 2] > 0  # only labelled pixels are tinted (eye = blue)
