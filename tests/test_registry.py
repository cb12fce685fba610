"""Registries of datasets, prior sources and occluders: one decorated function makes a new entry usable end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from orsalib import registry
from orsalib.config import ConfigError, load_profile
from orsalib.data import occlusion as oc
from orsalib.data import sources as S
from orsalib.data import synthfer as sf
from orsalib.data.labels import EMOTIONS_7
from orsalib.priors.cache import PriorCache
from orsalib.priors.sources import PriorSource, get_prior_source


@pytest.fixture(autouse=True)
def _clean_registries():
    """Every test leaves the registries as it found them (the built-ins only)."""
    regs = (registry.DATASETS, registry.PRIOR_SOURCES, registry.OCCLUDERS)
    before = {r.kind: r.names() for r in regs}
    yield
    for r in regs:
        for name in set(r.names()) - set(before[r.kind]):
            r.unregister(name)
        assert r.names() == before[r.kind]


# ----------------------------------------------------------------------------- built-ins
def test_builtin_entries_and_metadata():
    assert registry.DATASETS.names() == [
        "synthfer", "rafdb", "affectnet7", "affectnet8", "occlufer", "fer2013", "ferplus", "imagefolder",
    ]  # fmt: skip
    assert registry.PRIOR_SOURCES.names() == [
        "oracle", "mobilefacenet", "segface", "mobilefacenet+segface", "landmark-parsing", "none", "synth-detected",
    ]  # fmt: skip
    assert registry.OCCLUDERS.names() == ["hand", "sunglasses", "mask", "scarf", "object", "face"]
    dataset_keys = {
        "description",
        "needs_root",
        "native_splits",
        "emotions",
        "num_classes",
        "label_map",
        "ground_truth",
    }
    for e in registry.DATASETS.entries():
        assert set(e.meta) == dataset_keys, e.name
    assert registry.DATASETS.meta("affectnet8")["num_classes"] == 8
    assert not registry.DATASETS.meta("synthfer")["needs_root"] and registry.DATASETS.meta("synthfer")["ground_truth"]
    for e in registry.PRIOR_SOURCES.entries():
        required = {"description", "keys", "weights", "ground_truth"}
        assert required <= set(e.meta) <= required | {"real_faces"}, e.name
        if isinstance(e.obj, type):
            assert e.obj.name == e.name and tuple(e.obj.keys) == tuple(e.meta["keys"])
    for e in registry.OCCLUDERS.entries():
        assert set(e.meta) == {"description", "region", "synthfer_mix"} and e.meta["synthfer_mix"], e.name
    # the names other modules read are derived from the registry
    assert sf.OCCLUDERS == ("none", *registry.OCCLUDERS.names())
    assert sf.OCCLUDER_KINDS == sf.synthfer_occluders() == tuple(registry.OCCLUDERS.names())
    assert oc.OCCLUSION_KINDS == ("rectangle", *registry.OCCLUDERS.names())


def test_names_are_unique():
    with pytest.raises(KeyError, match="already registered"):
        registry.register_dataset("rafdb", description="another RAF-DB")(lambda data_cfg, seed=0, cache_dir=None: None)
    with pytest.raises(KeyError, match="not registered"):
        registry.OCCLUDERS.unregister("helmet")


# ----------------------------------------------------------------------------- unknown names
def test_unknown_names_list_the_choices():
    with pytest.raises(ConfigError, match=r"data.dataset='mylab' is not allowed; choose one of \['synthfer', 'rafdb'"):
        load_profile("smoke", {"data.dataset": "mylab"})
    with pytest.raises(ConfigError, match=r"prior.source='dlib' is not allowed; choose one of \['oracle'"):
        load_profile("smoke", {"prior.source": "dlib"})
    with pytest.raises(S.DatasetError, match=r"unknown dataset 'rafbd'\. Did you mean \['rafdb'\]\? Registered: \["):
        S.build_source("rafbd", "/nowhere")
    with pytest.raises(ValueError, match=r"unknown prior source 'segfac'\. Did you mean \['segface'\]"):
        get_prior_source("segfac", "cpu")
    with pytest.raises(ValueError, match=r"unknown occluder 'helmet'; expected one of \['none', 'hand'"):
        sf.render_sample(0, occluder="helmet")
    with pytest.raises(ValueError, match=r"unknown occluder 'helmet'.*Registered: \['hand'"):
        sf.paint_occluder("helmet", Image.new("RGB", (8, 8)), Image.new("L", (8, 8)), sf.Frame(4, 4, 8), None)
    with pytest.raises(ValueError, match=r"unknown occlusion kind 'helmet'; expected one of \['rectangle', 'hand'"):
        oc.occlude_image(np.zeros((16, 16, 3), np.uint8), 0.2, "helmet")


# ----------------------------------------------------------------------------- a new dataset
def _write_faces(root, n_per_class: int = 2) -> pd.DataFrame:
    rows = []
    for split in ("train", "valid"):
        for c, name in enumerate(EMOTIONS_7):
            for k in range(n_per_class):
                p = root / f"{split}_{name}_{k}.png"
                Image.fromarray(np.full((8, 8, 3), 10 * c + k + (100 if split == "valid" else 0), np.uint8)).save(p)
                rows.append({"path": str(p), "label": c, "label_name": name, "split": split})
    return pd.DataFrame(rows)


def test_register_dataset(tmp_path):
    calls = []

    @registry.register_dataset("mylab", description="my lab's faces", needs_root=True, native_splits=False)
    def mylab_manifest(data_cfg, seed=0, cache_dir=None):
        calls.append((data_cfg.data_root, seed))
        m = _write_faces(tmp_path)
        m.attrs["lab_note"] = "hello"
        return m

    assert "mylab" in registry.DATASETS
    cfg = load_profile("smoke", {"data.dataset": "mylab", "data.data_root": str(tmp_path)})
    m = S.load_manifest(cfg.data, seed=3, cache_file=None)
    assert calls == [(str(tmp_path), 3)]
    assert len(m) == 2 * 2 * 7 and set(m["split"]) == {"train", "valid"} and set(m["source"]) == {"mylab"}
    assert m.attrs["dataset"] == "mylab" and m.attrs["lab_note"] == "hello"
    assert m.attrs["validation"]["problems_total"] == 0
    assert len(S.build_source("mylab", tmp_path)) == len(m)
    with pytest.raises(ConfigError, match="needs data.data_root"):  # the registry's needs_root is read
        load_profile("smoke", {"data.dataset": "mylab"})


def test_register_generated_dataset_needs_no_root(tmp_path):
    @registry.register_dataset("generated", description="made on the fly", needs_root=False)
    def generated_manifest(data_cfg, seed=0, cache_dir=None):
        return _write_faces(tmp_path, 1)

    cfg = load_profile("smoke", {"data.dataset": "generated"})
    assert len(S.load_manifest(cfg.data, cache_file=None)) == 14


def test_dataset_adapter_must_return_a_manifest():
    @registry.register_dataset("broken", description="returns the wrong thing", needs_root=False)
    def broken_manifest(data_cfg, seed=0, cache_dir=None):
        return [1, 2]

    with pytest.raises(S.DatasetError, match="returned list; expected a manifest DataFrame"):
        S.build_source("broken")


# ----------------------------------------------------------------------------- a new prior source
@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> pd.DataFrame:
    return sf.build_synthfer(tmp_path_factory.mktemp("sf"), size=24, train_per_class=1, val_per_class=1, progress=False)


def test_register_prior_source_class(synth, tmp_path):
    @registry.register_prior_source("mean-colour", description="image mean as a fake landmark", keys=("landmarks",))
    class MeanColour(PriorSource):
        name = "mean-colour"
        keys = ("landmarks",)

        def _compute(self, images, rows):
            lm = np.repeat(images.mean((1, 2))[:, None, :2] / 255.0, 68, axis=1)  # (B, 68, 2)
            return {"landmarks": lm.astype(np.float32)}

    cfg = load_profile("smoke", {"prior.source": "mean-colour"})
    src = get_prior_source(cfg.prior, "cpu")
    assert isinstance(src, MeanColour)
    store = PriorCache(tmp_path).ensure(synth, cfg.prior, 24, "cpu", progress=False)
    assert len(store) == len(synth) and store.get(0)["landmarks"].shape == (68, 2)
    assert any(tmp_path.glob("mean-colour-none/24/index-*.json"))


def test_register_prior_source_factory():
    seen = {}

    class Fixed(PriorSource):
        name = "fixed"
        keys = ("landmarks",)

        def __init__(self, value: float):
            super().__init__()
            self.value = value

        def _compute(self, images, rows):
            return {"landmarks": np.full((len(images), 68, 2), self.value, np.float32)}

    @registry.register_prior_source(
        "fixed", description="a constant", keys=("landmarks",), weights=("landmark_weights",)
    )
    def fixed(prior_cfg, device):
        seen["device"], seen["weights"] = str(device), prior_cfg.landmark_weights
        return Fixed(0.5)

    cfg = load_profile("smoke", {"prior.source": "fixed", "prior.landmark_weights": "w.pth"})
    out = get_prior_source(cfg.prior, "cpu").compute(
        np.zeros((2, 8, 8, 3), np.uint8), pd.DataFrame({"path": ["a", "b"]})
    )
    assert seen == {"device": "cpu", "weights": "w.pth"} and float(out["landmarks"][1, 3, 0]) == 0.5
    assert isinstance(get_prior_source("fixed", "cpu"), Fixed)  # a bare name reaches the factory as {"source": ...}

    @registry.register_prior_source("not-a-source", description="returns the wrong thing")
    def bad(prior_cfg, device):
        return object()

    with pytest.raises(TypeError, match="expected a PriorSource"):
        get_prior_source("not-a-source", "cpu")


# ----------------------------------------------------------------------------- a new occluder
def _register_patch(mix: bool):
    @registry.register_occluder("patch", description="a grey square over the nose", region="nose", synthfer_mix=mix)
    def paint_patch(c, rng, idn):
        anchor = np.array([0.0, idn.nose_y])
        r = rng.uniform(0.08, 0.12)
        c.fill(anchor + np.array([[-r, -r], [r, -r], [r, r], [-r, r]]), (128, 128, 128), anchor)

    return paint_patch


def test_register_occluder_renders_and_occludes():
    _register_patch(mix=False)
    assert "patch" in sf.OCCLUDERS and "patch" in oc.OCCLUSION_KINDS
    assert "patch" not in sf.synthfer_occluders()  # not in SynthFER's random mix unless asked for
    clean = sf.render_sample(4, seed=1, size=64, occluder="none")
    occ = sf.render_sample(4, seed=1, size=64, occluder="patch")
    assert occ.occluder == "patch" and occ.label == clean.label
    hidden = occ.parsing != clean.parsing
    assert hidden.any() and (occ.parsing[hidden] == 0).all()  # occluder pixels are background
    assert not occ.visible.all() and (~occ.visible).sum() < 34  # the nose landmarks are hidden, not the whole face
    assert "occluders" not in sf.synthfer_params()  # the default SynthFER settings (and cache folder) are unchanged
    out, mask = oc.occlude_image(clean.image, 0.1, "patch", key=2, seed=0)
    assert out.shape == clean.image.shape and abs(mask.mean() - 0.1) < 0.03
    assert (out[~mask] == clean.image[~mask]).all()


def test_occluder_in_the_synthfer_mix(tmp_path):
    default_params = sf.synthfer_params(size=24, train_per_class=1, val_per_class=2)
    _register_patch(mix=True)
    assert sf.synthfer_occluders()[-1] == "patch"
    params = sf.synthfer_params(size=24, train_per_class=1, val_per_class=2)
    assert params["occluders"] == list(sf.synthfer_occluders())  # a changed mix is part of the settings
    assert sf.default_root(params) != sf.default_root(default_params)
    drawn = {sf.render_sample(i, seed=0, size=24, occlusion_prob=1.0).occluder for i in range(40)}
    assert "patch" in drawn
    m = sf.build_synthfer(tmp_path / "b", size=24, train_per_class=1, val_per_class=7, progress=False, workers=1)
    assert "patch" in set(m.loc[m["split"] == "valid_occluded", "occluder"])
