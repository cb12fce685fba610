"""``synth-detected`` priors, prior quality per occluder, and the prior-noise study (degraded priors)."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from orsalib import registry
from orsalib.config import load_profile
from orsalib.data.synthfer import build_synthfer
from orsalib.data.transforms import flip_landmarks, flip_parsing
from orsalib.priors import detected as D
from orsalib.priors.cache import PriorCache
from orsalib.priors.landmarks import file_sha1
from orsalib.priors.noise import NoisyPriorStore, corrupt_parsing, jitter_landmarks
from orsalib.priors.quality import landmark_nme, occluder_quality, occlusion_effect, sample_quality
from orsalib.priors.sources import OracleSource, get_prior_source

TINY = D.DetectorSettings(input_size=32, epochs=2, batch_size=16, landmark_width=4, parser_width=4)


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    root = tmp_path_factory.mktemp("sf") / "build"
    m = build_synthfer(root, size=32, train_per_class=3, val_per_class=2, progress=False, workers=1)
    return root.resolve(), m


def _states_equal(a: D.Detectors, b: D.Detectors) -> bool:
    pairs = [(a.landmarks, b.landmarks), (a.parser, b.parser)]
    return all(
        sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        for sa, sb in ((x.state_dict(), y.state_dict()) for x, y in pairs)
    )


# ----------------------------------------------------------------------------- registration
def test_registered_and_validates():
    assert "synth-detected" in registry.PRIOR_SOURCES
    assert registry.PRIOR_SOURCES.names()[-1] == "synth-detected"  # after the built-ins of sources.py
    meta = registry.PRIOR_SOURCES.meta("synth-detected")
    assert meta["keys"] == ("landmarks", "parsing") and meta["weights"] == () and meta["ground_truth"] is False
    cfg = load_profile("smoke", {"prior.source": "synth-detected"})
    src = get_prior_source(cfg.prior, "cpu")
    assert isinstance(src, D.SynthDetectedSource) and src.keys == ("landmarks", "parsing")
    with pytest.raises(RuntimeError, match="no detectors bound yet"):
        src.weights_id  # noqa: B018 - the property raises before any binding


# ----------------------------------------------------------------------------- training
def test_training_is_deterministic_quick_and_leaves_the_global_rng(build):
    root, _ = build
    torch.manual_seed(7)
    before = torch.rand(1)
    torch.manual_seed(7)
    a = D.train_detectors(root, TINY, progress=False)
    assert torch.equal(torch.rand(1), before)  # the global random stream is untouched
    b = D.train_detectors(root, TINY, progress=False)
    assert _states_equal(a, b)
    info = a.info
    assert info["train_seconds"] < 30 and info["splits_trained_on"] == ["train"] and info["training_rows"] == 21
    assert set(info["scores"]) == {"train", "valid", "valid_occluded"}
    assert info["data_hash"] == D.synthfer_data_hash(root) and info["settings"]["epochs"] == 2
    other = D.train_detectors(root, D.DetectorSettings(**{**TINY.__dict__, "seed": 1}), progress=False)
    assert not _states_equal(a, other)


def test_evaluation_rows_never_train(build, tmp_path):
    root, m = build
    with pytest.raises(ValueError, match="no 'train' rows"):
        D.training_rows(m[m["split"] != "train"])
    assert set(D.training_rows(m)["split"]) == {"train"}
    # a copy whose evaluation images and parsing maps are noise: the detectors come out bit-identical
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    rng = np.random.default_rng(0)
    from PIL import Image

    ev = m[m["split"] != "train"]
    for p, q in zip(ev["path"], ev["parsing_path"]):
        rel, relq = p.split("/build/")[-1], q.split("/build/")[-1]
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(copy / rel)
        Image.fromarray(rng.integers(0, 11, (32, 32), dtype=np.uint8)).save(copy / relq)
    a = D.train_detectors(root, TINY, progress=False)
    b = D.train_detectors(copy, TINY, progress=False)
    assert _states_equal(a, b)
    assert a.info["data_hash"] == b.info["data_hash"]  # evaluation files are not training data
    assert a.info["scores"]["valid"] != b.info["scores"]["valid"]  # ... though they are scored after training


def test_weights_cached_once_and_reused(build, tmp_path, monkeypatch):
    root, _ = build
    first = D.load_or_train_detectors(root, TINY, tmp_path, progress=False)
    folder = tmp_path / D.synthfer_data_hash(root)
    wfile, jfile = folder / f"detectors-{TINY.key()}.pt", folder / f"detectors-{TINY.key()}.json"
    assert wfile.is_file() and jfile.is_file() and first.info["reused"] is False
    obj = torch.load(wfile, map_location="cpu", weights_only=True)
    assert obj["format"] == D.FORMAT and set(obj) >= {"landmarks", "parser", "settings"}
    rec = json.loads(jfile.read_text())
    assert rec["weights_sha1"] == file_sha1(wfile, length=40) and "valid_occluded" in rec["scores"]
    assert first.weights_id == file_sha1(wfile)

    def no_training(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(D, "train_detectors", no_training)
    again = D.load_or_train_detectors(root, TINY, tmp_path, progress=False)
    assert again.info["reused"] is True and again.weights_id == first.weights_id and _states_equal(first, again)
    monkeypatch.undo()
    wfile.write_bytes(b"not a checkpoint")
    repaired = D.load_or_train_detectors(root, TINY, tmp_path, progress=False)
    assert repaired.info["reused"] is False and repaired.weights_id == first.weights_id  # same bytes, retrained


# ----------------------------------------------------------------------------- the source and the cache
def test_priors_through_the_cache(build, tmp_path, monkeypatch):
    root, m = build
    src = D.SynthDetectedSource(settings=TINY, cache_root=tmp_path / "det", progress=False)
    cache = PriorCache(tmp_path / "priors", shard_size=16)
    store = cache.ensure(m, {"batch_size": 8}, 32, progress=False, source=src)
    assert store.path.parent.name == f"synth-detected-{src.weights_id}" and src.describe()["build"] == str(root)
    for i in (0, len(m) - 1):
        for flipped in (False, True):
            p = store.get(i, flipped=flipped)
            assert p["landmarks"].shape == (68, 2) and p["landmarks"].dtype == np.float32
            assert p["landmarks"].min() >= 0 and p["landmarks"].max() <= 1
            assert p["parsing"].shape == (32, 32) and p["parsing"].dtype == np.uint8 and p["parsing"].max() < 11

    monkeypatch.setattr(D, "train_detectors", lambda *a, **k: pytest.fail("trained again"))
    fresh = D.SynthDetectedSource(settings=TINY, cache_root=tmp_path / "det", progress=False)
    again = cache.ensure(m, {"batch_size": 8}, 32, progress=False, source=fresh)
    assert again.stats["computed"] == 0 and again.path == store.path
    # another input size: parsing at that size; images of no SynthFER build use the bound detectors
    imgs = np.zeros((2, 48, 48, 3), np.uint8)
    out = fresh.compute(imgs, pd.DataFrame({"path": ["/elsewhere/a.png", "/elsewhere/b.png"]}))
    assert out["parsing"].shape == (2, 48, 48) and out["landmarks"].shape == (2, 68, 2)


def test_build_choice(build, tmp_path, monkeypatch):
    root, m = build
    assert D.synthfer_build_of(m.iloc[:3]) == root
    assert D.synthfer_build_of(pd.DataFrame({"path": ["/x/y/z/a.png"]})) is None
    other = m.iloc[:1].assign(
        path=str(tmp_path / "b" / "train" / "anger" / "0.png"), parsing_path=str(tmp_path / "b" / "parsing" / "0.png")
    )
    two = pd.concat([m.iloc[:1], other])
    (tmp_path / "b").mkdir()
    shutil.copy(root / "params.json", tmp_path / "b")
    shutil.copy(root / "manifest.csv", tmp_path / "b")
    with pytest.raises(ValueError, match="2 SynthFER builds"):
        D.synthfer_build_of(two)
    # unbound, on images of no build: the default build (the cpu profile's SynthFER) is used
    monkeypatch.setattr(D, "default_training_build", lambda: root)
    src = D.SynthDetectedSource(settings=TINY, cache_root=tmp_path / "det", progress=False)
    src.compute(np.zeros((1, 32, 32, 3), np.uint8), pd.DataFrame({"path": ["/x/y/z/a.png"]}))
    assert src.describe()["build"] == str(root)
    with pytest.raises(FileNotFoundError, match="not a SynthFER build"):
        D.SynthDetectedSource(train_root=tmp_path)


# ----------------------------------------------------------------------------- quality per occluder
def test_quality_tables_per_occluder(build, tmp_path):
    root, m = build
    src = D.SynthDetectedSource(train_root=root, settings=TINY, cache_root=tmp_path, progress=False)
    samples = sample_quality(m, {"oracle": OracleSource(), "synth-detected": src}, 32)
    assert set(samples["split"]) == {"valid", "valid_occluded"} and len(samples) == 2 * 28
    ora = samples[samples["source"] == "oracle"]
    assert np.allclose(ora["nme"], 0) and np.allclose(ora["miou"], 1)
    table = occluder_quality(samples)
    occl = set(m.loc[m["split"] == "valid_occluded", "occluder"])
    got = set(table.loc[(table["source"] == "oracle") & (table["split"] == "valid_occluded"), "occluder"])
    assert got == occl | {"all"}
    assert {"n", "nme", "nme_visible", "nme_hidden", "miou", "iou_skin", "iou_left_eye", "iou_hair"} <= set(table)
    assert (table.loc[table["source"] == "oracle", "iou_skin"] == 1).all()
    eff = occlusion_effect(samples, n_boot=200)
    assert set(eff["occluder"]) == occl | {"all"}
    row = eff[(eff["source"] == "oracle") & (eff["occluder"] == "all") & (eff["metric"] == "nme")].iloc[0]
    assert row["diff"] == 0 and not row["worse"]


def test_compare_sources_summary_and_detected_source(build):
    from orsalib.priors import quality as pq

    _, m = build
    ev = m[m["split"].isin(["valid", "valid_occluded"])].reset_index(drop=True)
    cmp = pq.compare_sources(ev, ["oracle", "oracle"], 32, {"batch_size": 8})
    assert set(cmp) == {"sources", "stores", "samples", "quality", "effect"} and list(cmp["stores"]) == ["oracle"]
    assert np.allclose(cmp["samples"]["nme"], 0) and (cmp["quality"]["source"] == "oracle").all()
    assert {"nme", "nme_visible", "nme_hidden", "miou"} <= set(cmp["effect"]["metric"])
    text = pq.occlusion_effect_summary(cmp["effect"], "oracle")
    assert text.startswith("oracle: clean -> occluded, same faces: nme 0.000 -> 0.000") and "no single occluder" in text
    assert pq.detected_source(["oracle", "mobilefacenet", "segface"], "segface") == "segface"
    assert pq.detected_source(["oracle", "mobilefacenet"], "oracle") == "mobilefacenet"
    assert pq.detected_source(["oracle"], "oracle") is None


def test_occlusion_effect_on_known_differences():
    rng = np.random.default_rng(0)
    n = 40
    clean = rng.uniform(0.03, 0.05, n)
    rows = [{"source": "s", "split": "valid", "occluder": "none", "pair": k, "nme": clean[k], "miou": 0.8}
            for k in range(n)]  # fmt: skip
    worse = [clean[k] + (0.02 if k % 2 else 0.0) + rng.normal(0, 1e-3) for k in range(n)]
    rows += [{"source": "s", "split": "valid_occluded", "occluder": "hand" if k % 2 else "mask", "pair": k,
              "nme": worse[k], "miou": 0.8} for k in range(n)]  # fmt: skip
    eff = occlusion_effect(pd.DataFrame(rows), n_boot=500).set_index(["occluder", "metric"])
    hand, mask = eff.loc[("hand", "nme")], eff.loc[("mask", "nme")]
    assert hand["worse"] and hand["ci_low"] > 0.015 and hand["p"] < 0.01 and abs(hand["diff"] - 0.02) < 2e-3
    assert not mask["worse"] and mask["ci_low"] < 0 < mask["ci_high"]
    assert not eff.loc[("hand", "miou"), "worse"]


# ----------------------------------------------------------------------------- degraded priors
def test_jitter_landmarks_rate_and_determinism(build):
    _, m = build
    lms = np.load(D.synthfer_build_of(m) / "landmarks.npy")
    lms = np.repeat(lms, 20, axis=0)  # (N, 68, 2), many faces
    a = jitter_landmarks(lms, 0.1, np.random.default_rng(3))
    assert np.array_equal(a, jitter_landmarks(lms, 0.1, np.random.default_rng(3))) and a.dtype == np.float32
    assert abs(landmark_nme(a, lms).mean() - 0.1 * np.sqrt(np.pi / 2)) < 0.005
    assert np.array_equal(jitter_landmarks(lms[0], 0.0, np.random.default_rng(0)), lms[0])
    with pytest.raises(ValueError):
        jitter_landmarks(lms[0], -1, np.random.default_rng(0))


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.1, 0.37, 0.9, 1.0])
def test_corrupt_parsing_changes_exactly_the_rate(build, rate):
    _, m = build
    par = OracleSource().read_row(m.iloc[0])[1]
    par = np.kron(par, np.ones((2, 2), np.uint8))  # (64, 64)
    out = corrupt_parsing(par, rate, np.random.default_rng(1))
    assert out.dtype == par.dtype and out.shape == par.shape and out.max() < 11
    assert (out != par).sum() == round(rate * par.size)
    assert np.array_equal(out, corrupt_parsing(par, rate, np.random.default_rng(1)))


def test_noisy_store(build, tmp_path):
    root, m = build
    store = PriorCache(tmp_path).ensure(m, {"source": "oracle", "batch_size": 16}, 32, progress=False)
    noisy = NoisyPriorStore(store, landmark_sigma=0.1, parsing_rate=0.2, seed=5)
    a, b = noisy.get(3), noisy.get(3)
    assert np.array_equal(a["landmarks"], b["landmarks"]) and np.array_equal(a["parsing"], b["parsing"])
    assert (a["parsing"] != store.get(3)["parsing"]).mean() == pytest.approx(0.2, abs=1 / 1024)
    assert not np.array_equal(a["landmarks"], noisy.get(4)["landmarks"])
    f = noisy.get(3, flipped=True)
    assert np.allclose(f["landmarks"], flip_landmarks(a["landmarks"])) and np.array_equal(
        f["parsing"], flip_parsing(a["parsing"]))  # fmt: skip
    clone = pickle.loads(pickle.dumps(noisy))
    assert np.array_equal(clone.get(3)["parsing"], a["parsing"]) and len(clone) == len(m) and clone.keys == store.keys
    with pytest.raises(ValueError, match="holds no"):
        NoisyPriorStore(PriorCache(tmp_path).ensure(m, {"source": "none"}, 32, progress=False), landmark_sigma=0.1)


def test_prior_noise_study_smoke(tmp_path):
    from orsalib.config import apply_overrides
    from orsalib.experiments.prior_noise import prior_noise_study, read_prior_noise, summarise_prior_noise

    cfg = load_profile("smoke", {"train.epochs": 1, "train.max_steps_per_epoch": 1}, run_name="noise")
    levels = {"oracle": {}, "noisy": {"landmark_sigma": 0.1, "parsing_rate": 0.2}}
    df = prior_noise_study(cfg, levels, seeds=[0], out_dir=tmp_path, progress=False)
    assert list(df["level"]) == ["oracle", "noisy"]
    assert {"valid_acc", "valid_occluded_acc", "valid_prior_nme", "valid_occluded_prior_miou"} <= set(df.columns)
    ora, noisy = df.set_index("level").loc["oracle"], df.set_index("level").loc["noisy"]
    assert ora["valid_prior_nme"] == 0 and noisy["valid_prior_nme"] > 0.05 and noisy["valid_prior_miou"] < 1
    assert (tmp_path / "noisy" / "seed0" / "level.json").is_file()
    again = prior_noise_study(cfg, levels, seeds=[0], out_dir=tmp_path, progress=False,
                              train_fn=lambda *a, **k: pytest.fail("trained again"))  # fmt: skip
    assert len(again) == 2 and len(summarise_prior_noise(again)) == 2
    assert list(df["valid_n"]) == [21, 21] and df["recipe"].nunique() == 1
    # another recipe (here: more epochs) in the same folder is trained anew, never mixed with the first one's records
    trained = []
    other = apply_overrides(cfg, {"train.epochs": 2})
    third = prior_noise_study(other, {"oracle": {}}, seeds=[0], out_dir=tmp_path, progress=False,
                              train_fn=lambda c, **k: trained.append(c.train.epochs))  # fmt: skip
    assert trained == [2] and list(third["level"]) == ["oracle"] and third.at[0, "recipe"] != df.at[0, "recipe"]
    assert len(read_prior_noise(tmp_path)) == 3


def test_prior_noise_study_config():
    from orsalib.experiments import prior_noise as pn

    cfg, names, seeds = pn.study_config("smoke", run_name="noise")
    assert names == list(pn.QUICK_LEVELS) and seeds == [0] and cfg.train.eval_every == cfg.train.epochs
    assert pn.has_ground_truth(cfg) and cfg.model.prior_routing == "paper"
    quick, _, seeds = pn.study_config("cpu", seed=3)
    assert quick.model.name == "orsanet_tiny" and quick.train.epochs == 8 and seeds == [3]
    full, names, seeds = pn.study_config("cpu", study=True)
    profile = load_profile("cpu")
    assert names == list(pn.PRIOR_NOISE_LEVELS) and seeds == [0, 1, 2]
    assert (full.model.name, full.train.epochs, full.train.lr) == (profile.model.name, profile.train.epochs,
                                                                     profile.train.lr)  # fmt: skip
    assert pn.recipe_key(full) != pn.recipe_key(quick)
    _, names, seeds = pn.study_config("smoke", levels=["jitter-0.1"], n_seeds=2, epochs=3)
    assert names == ["jitter-0.1"] and seeds == [0, 1]
    with pytest.raises(ValueError, match="unknown prior-noise levels"):
        pn.study_config("smoke", levels=["jitter-9"])


def test_real_faces_beside_mobilefacenet(build, tmp_path, shared):
    from orsalib.priors.quality import real_face_comparison

    weights = shared / "weights" / "mobilefacenet_68lm_fp16.pth.tar"
    files = sorted((shared / "data" / "fer2013-mini" / "valid").rglob("*.jpg"))[:4]
    if not weights.is_file() or not files:
        pytest.skip("no MobileFaceNet weights or FER2013 faces in ../shared")
    root, _ = build
    src = D.SynthDetectedSource(train_root=root, settings=TINY, cache_root=tmp_path, progress=False)
    ims, lm_ref, pri, table = real_face_comparison(files, src, weights)
    assert len(ims) == 4 and lm_ref.shape == (4, 68, 2) and pri["parsing"].shape == (4, 112, 112)
    assert list(table.columns) == ["file", "nme_vs_mobilefacenet"] and np.isfinite(table["nme_vs_mobilefacenet"]).all()


def test_a_run_config_with_synth_detected_gets_its_priors(monkeypatch):
    from orsalib.experiments.fer import prepare_fer_data

    monkeypatch.setattr(D, "DetectorSettings", lambda: TINY)  # the source's default settings, kept tiny here
    cfg = load_profile("smoke", {"prior.source": "synth-detected"})
    data = prepare_fer_data(cfg)
    store = data.prior_store
    assert store.keys == ("landmarks", "parsing") and len(store) == len(data.manifest)
    assert store.path.parent.name.startswith("synth-detected-")
    batch = next(iter(data.loaders["valid_occluded"]))
    assert batch["landmarks"].shape[1:] == (68, 2) and batch["parsing"].shape[1:] == (64, 64)
