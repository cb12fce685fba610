"""Prior sources and the prior cache: correctness, reuse, weights separation, interruption, corruption."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from orsalib.cli import main as orsa_main
from orsalib.data.synthfer import build_synthfer
from orsalib.data.transforms import flip_landmarks, flip_parsing
from orsalib.models.mobilefacenet import MobileFaceNet
from orsalib.priors.cache import PriorCache, load_resized
from orsalib.priors.landmarks import WeightsError, load_mobilefacenet
from orsalib.priors.sources import (
    MobileFaceNetSource,
    OracleSource,
    PriorSource,
    get_prior_source,
)

SIZE = 40  # model input side of these tests


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("synthfer")
    return build_synthfer(root, size=48, train_per_class=2, val_per_class=1, progress=False)


class FakeSource(PriorSource):
    """Cheap deterministic source (depends on the pixels only); counts calls; can fail after ``fail_after`` calls."""

    name = "fake"
    keys = ("landmarks", "landmark_features")

    def __init__(self, weights_id: str = "w1", fail_after: int | None = None) -> None:
        super().__init__()
        self.weights_id = weights_id
        self.fail_after = fail_after

    def _compute(self, images: np.ndarray, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        x = images.astype(np.float32) / 255.0  # (B, H, W, 3)
        lm = np.stack([x[:, :68, 0, 0], x[:, :68, -1, 1]], axis=-1)  # (B, <=68, 2)
        lm = np.resize(lm, (len(x), 68, 2)).astype(np.float32)
        feats = x[:, :7, :7, :].mean(-1)[:, None].repeat(4, 1) + np.arange(4, dtype=np.float32)[None, :, None, None]
        return {"landmarks": lm, "landmark_features": feats}  # features (B, 4, 7, 7)


def _all(store, flipped=False):
    """Copies of every row's priors (store arrays are read-only views of memory-mapped files)."""
    return [{k: np.array(v) for k, v in store.get(i, flipped=flipped).items()} for i in range(len(store))]


def _equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(np.asarray(x[k]), np.asarray(y[k]))


def test_oracle_store_matches_ground_truth(manifest, tmp_path):
    store = PriorCache(tmp_path, shard_size=8).ensure(manifest, {"source": "oracle", "batch_size": 5}, SIZE, "cpu",
                                                      progress=False)  # fmt: skip
    assert len(store) == len(manifest) and set(store.keys) == {"landmarks", "parsing"}
    gt = np.load(manifest["parsing_path"].iloc[0].rsplit("/parsing/", 1)[0] + "/landmarks.npy")
    from PIL import Image

    for i in (0, 7, len(manifest) - 1):
        got, flipped = store.get(i), store.get(i, flipped=True)
        lm = gt[int(manifest.at[i, "landmarks_index"])]
        par = np.asarray(Image.open(manifest.at[i, "parsing_path"]).resize((SIZE, SIZE), Image.NEAREST))
        np.testing.assert_array_equal(got["landmarks"], lm)
        np.testing.assert_array_equal(got["parsing"], par)
        np.testing.assert_array_equal(flipped["landmarks"], flip_landmarks(lm))
        np.testing.assert_array_equal(flipped["parsing"], flip_parsing(par))
        assert got["parsing"].dtype == np.uint8 and got["parsing"].shape == (SIZE, SIZE)


def test_second_ensure_makes_no_model_calls(manifest, tmp_path):
    cache = PriorCache(tmp_path, shard_size=8)
    first = FakeSource()
    s1 = cache.ensure(manifest, {"batch_size": 4}, SIZE, progress=False, source=first)
    assert first.calls > 0 and s1.stats["computed"] == len(manifest)
    second = FakeSource()
    s2 = cache.ensure(manifest, {"batch_size": 4}, SIZE, progress=False, source=second)
    assert second.calls == 0 and s2.stats["computed"] == 0
    _equal(_all(s1), _all(s2))
    _equal(_all(s1, True), _all(s2, True))
    # a sub-manifest reuses the same slots; the store survives pickling (DataLoader workers)
    sub = FakeSource()
    s3 = cache.ensure(manifest.iloc[::3], {"batch_size": 4}, SIZE, progress=False, source=sub)
    assert sub.calls == 0
    _equal(_all(s3), _all(s1)[::3])
    _equal(_all(pickle.loads(pickle.dumps(s3))), _all(s3))


def test_cache_equals_direct_computation(manifest, tmp_path):
    torch.manual_seed(0)
    net = MobileFaceNet().eval()
    rows = manifest.iloc[:3]
    src = MobileFaceNetSource(net=net, weights_id="random-seed0")
    store = PriorCache(tmp_path, shard_size=2, feature_dtype="float32").ensure(
        rows, {"batch_size": 1}, SIZE, progress=False, source=src
    )
    images = np.stack([load_resized(p, SIZE) for p in rows["path"]])
    direct = src.compute(images, rows)
    direct_f = src.compute_flipped(images, rows)
    for i in range(len(rows)):
        for k in ("landmarks", "landmark_features"):
            np.testing.assert_allclose(store.get(i)[k], direct[k][i], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(store.get(i, flipped=True)[k], direct_f[k][i], rtol=1e-5, atol=1e-6)
    assert store.get(0)["landmark_features"].shape == (512, 7, 7)
    assert not np.allclose(store.get(0)["landmarks"], store.get(0, flipped=True)["landmarks"])


def _save_public(path, seed: int) -> None:
    torch.manual_seed(seed)
    sd = {"module." + k: (v.half() if v.is_floating_point() else v) for k, v in MobileFaceNet().state_dict().items()}
    torch.save({"state_dict": sd}, path)


def test_different_weights_file_gives_different_cache(manifest, tmp_path):
    w1, w2 = tmp_path / "a.pth.tar", tmp_path / "b.pth.tar"
    _save_public(w1, 1)
    _save_public(w2, 2)
    rows = manifest.iloc[:2]
    cache = PriorCache(tmp_path / "cache")
    s1 = cache.ensure(rows, {"source": "mobilefacenet", "landmark_weights": str(w1), "batch_size": 3}, SIZE, "cpu",
                      progress=False)  # fmt: skip
    s2 = cache.ensure(rows, {"source": "mobilefacenet", "landmark_weights": str(w2), "batch_size": 3}, SIZE, "cpu",
                      progress=False)  # fmt: skip
    assert s1.path != s2.path and s2.stats["computed"] == len(rows)
    assert not np.allclose(s1.get(0)["landmarks"], s2.get(0)["landmarks"])
    # the same file again: reused, no network built
    src = get_prior_source({"source": "mobilefacenet", "landmark_weights": str(w1)}, "cpu")
    s3 = cache.ensure(rows, {"batch_size": 3}, SIZE, progress=False, source=src)
    assert s3.path == s1.path and src.calls == 0 and src._predictor is None


def test_interrupted_build_resumes_and_equals_clean(manifest, tmp_path):
    cache = PriorCache(tmp_path / "c", shard_size=4)
    cfg = {"batch_size": 2}
    with pytest.raises(KeyboardInterrupt):
        cache.ensure(manifest, cfg, SIZE, progress=False, source=FakeSource(fail_after=9))  # dies inside shard 3
    shards = [p for p in (cache.store_dir(FakeSource(), SIZE) / "shards").iterdir() if p.is_dir()]
    assert len(shards) == 2 and not any(p.name.startswith(".tmp") for p in shards)
    rerun = FakeSource()
    resumed = cache.ensure(manifest, cfg, SIZE, progress=False, source=rerun)
    assert resumed.stats["reused"] == 8 and resumed.stats["computed"] == len(manifest) - 8
    clean = PriorCache(tmp_path / "clean", shard_size=4).ensure(manifest, cfg, SIZE, progress=False,
                                                                source=FakeSource())  # fmt: skip
    _equal(_all(resumed), _all(clean))
    _equal(_all(resumed, True), _all(clean, True))


def test_corrupted_shard_is_recomputed(manifest, tmp_path):
    cache = PriorCache(tmp_path, shard_size=8)
    clean = _all(cache.ensure(manifest, {"batch_size": 4}, SIZE, progress=False, source=FakeSource()))
    shard = sorted(p for p in (cache.store_dir(FakeSource(), SIZE) / "shards").iterdir() if p.is_dir())[0]
    n_rows = len(json.loads((shard / "meta.json").read_text())["samples"])  # shard names follow the image bytes
    f = shard / "landmark_features.npy"
    data = bytearray(f.read_bytes())
    data[-5] ^= 0xFF  # same size, different content
    f.write_bytes(bytes(data))
    src = FakeSource()
    store = cache.ensure(manifest, {"batch_size": 4}, SIZE, progress=False, source=src)
    assert store.stats["recomputed_shards"] == 1 and store.stats["computed"] == n_rows and src.calls > 0
    assert store.stats["repaired"] == 1 and store.stats["repaired_shards"][0]["shard"] == shard.name
    _equal(_all(store), clean)


def test_no_flip_store_refuses_flipped(manifest, tmp_path):
    store = PriorCache(tmp_path).ensure(manifest.iloc[:4], {"cache_flip": False}, SIZE, progress=False,
                                        source=FakeSource())  # fmt: skip
    assert not store.has_flip
    with pytest.raises(KeyError):
        store.get(0, flipped=True)


def test_none_source_gives_empty_store(manifest, tmp_path):
    store = PriorCache(tmp_path).ensure(manifest, {"source": "none"}, SIZE, progress=False)
    assert len(store) == len(manifest) and store.keys == () and store.get(3) == {}


def test_missing_weights_file_says_where_and_what(tmp_path):
    missing = tmp_path / "nope.pth.tar"
    with pytest.raises(FileNotFoundError, match="nope.pth.tar") as e:
        get_prior_source({"source": "mobilefacenet", "landmark_weights": str(missing)}, "cpu")
    assert "state_dict" in str(e.value) and "MobileFaceNet" in str(e.value)
    with pytest.raises(FileNotFoundError, match="model_299.pt"):
        get_prior_source({"source": "segface", "parser_weights": str(missing)}, "cpu")


def test_wrong_keys_are_listed(tmp_path):
    f = tmp_path / "wrong.pth.tar"
    sd = MobileFaceNet().state_dict()
    sd["extra.weight"] = torch.zeros(1)
    del sd["conv1.conv.weight"]
    torch.save({"state_dict": sd}, f)
    with pytest.raises(WeightsError, match="conv1.conv.weight") as e:
        load_mobilefacenet(f)
    assert "extra.weight" in str(e.value)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="list.pt"):
        load_mobilefacenet(tmp_path / "list.pt")


def test_oracle_needs_ground_truth(tmp_path):
    rows = pd.DataFrame({"path": [str(tmp_path / "x.png")], "label": [0]})
    with pytest.raises(ValueError, match="landmarks_index"):
        OracleSource().compute(np.zeros((1, 8, 8, 3), np.uint8), rows)


@pytest.mark.parametrize("mode", ["released", "cached"])
def test_in_model_priors_modes(mode):
    """prior.mode="released": ORSANet recomputes its priors in every forward pass, with the frozen landmark net
    following train() (BatchNorm statistics drift, as in the release); "cached" keeps it in eval mode."""
    from orsalib.models import create_model

    torch.manual_seed(0)
    kw = dict(img_size=32, priors_in_model=True, seg_prior=False, prior_mode=mode)
    model = create_model("orsanet_tiny", prior_routing="released", **kw).train()
    lm_net = model.face_landback
    before = lm_net.conv1.bn.running_mean.clone()
    out = model(torch.randn(2, 3, 32, 32), return_intermediates=True)
    assert out["landmark_features"].shape == (2, 512, 7, 7) and out["logits"].shape == (2, 7)
    assert lm_net.training == (mode == "released")
    changed = not torch.equal(before, lm_net.conv1.bn.running_mean)
    assert changed == (mode == "released")  # the release's BatchNorm drift happens only in released mode
    assert not any(p.requires_grad for p in lm_net.parameters())
    model.eval()
    assert not lm_net.training
    paper = create_model("orsanet_tiny", prior_routing="paper", **kw).eval()
    out = paper(torch.randn(1, 3, 32, 32), return_intermediates=True)
    assert out["landmark_coords"].shape == (1, 136) and out["logits"].shape == (1, 7)


def test_cli_builds_cache(tmp_path, capsys):
    rc = orsa_main(["priors", "--profile", "smoke", "--source", "oracle", "--cache-dir", str(tmp_path), "--quiet"])
    assert rc == 0
    assert "computed" in capsys.readouterr().out
    assert any(tmp_path.glob("oracle-none/64/index-*.json"))
    assert orsa_main(["priors", "--profile", "smoke", "--source", "mobilefacenet", "--landmark-weights",
                     str(tmp_path / "missing.pth"), "--cache-dir", str(tmp_path), "--quiet"]) == 2  # fmt: skip


def test_quality_metrics():
    from orsalib.priors.quality import landmark_nme, mean_iou, parsing_iou, summarize_quality

    rng = np.random.default_rng(0)
    gt = rng.random((3, 68, 2))
    iod = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=-1)
    shifted = gt + np.array([0.0, 1.0]) * (0.1 * iod)[:, None, None]  # every point moved by 0.1 x inter-ocular
    np.testing.assert_allclose(landmark_nme(gt, gt), 0.0)
    np.testing.assert_allclose(landmark_nme(shifted, gt), 0.1)
    a = np.array([[1, 1, 2], [0, 4, 4]])
    b = np.array([[1, 2, 2], [0, 4, 5]])
    iou = parsing_iou(a, b)
    assert iou[1] == 0.5 and iou[2] == 0.5 and iou[4] == 0.5 and iou[5] == 0.0 and np.isnan(iou[3])
    assert mean_iou(a, b, classes=(1, 2)) == 0.5
    s = summarize_quality(pd.DataFrame({"occluder": ["none", "hand", "none"], "miou": [0.5, 0.1, 0.7]}))
    assert s.set_index("occluder").loc["none", "miou"] == pytest.approx(0.6)
    assert s.set_index("occluder").loc["all", "n"] == 3
