import json

import pytest

from orsalib.config import PROFILES, ConfigError, from_dict, load_config, load_profile, save_config


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_resolve_and_validate(profile, tmp_path):
    cfg = load_profile(profile, {"data.data_root": str(tmp_path)} if profile == "paper" else None)
    assert cfg.profile == profile
    cfg.validate()


def test_paper_profile_needs_a_real_dataset():
    with pytest.raises(ConfigError, match="data_root"):
        load_profile("paper")


def test_paper_profile_is_the_released_recipe(tmp_path):
    t = load_profile("paper", {"data.data_root": str(tmp_path)}).train
    assert (t.epochs, t.batch_size, t.sam, t.sam_rho) == (400, 20, True, 0.05)
    assert (t.scheduler, t.gamma) == ("exponential", 0.98)
    assert (t.lsce_warmup_epochs, t.lsce_eps, t.lsce_weight) == (5, 0.2, 2.0)
    assert (t.dare_weight, t.dare_form) == (0.1, "released")


def test_unknown_profile_lists_allowed():
    with pytest.raises(ConfigError, match="smoke"):
        load_profile("laptop")


@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"train.epochs": -1}, "train.epochs"),
        ({"train.epochs": 0}, "train.epochs"),
        ({"train.optimizer": "lion"}, "adam"),
        ({"train.dare_form": "mine"}, "released"),
        ({"data.num_classes": 6}, "7 or 8"),
        ({"data.dataset": "rafdb"}, "data_root"),
        ({"data.data_root": "/no/such/folder"}, "does not exist"),
        ({"prior.source": "dlib"}, "oracle"),
        ({"device": "tpu"}, "auto"),
        ({"train.nonsense": 1}, "unknown config key"),
    ],
)
def test_bad_values_say_what_is_allowed(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_profile("smoke", override)


def test_dotted_and_nested_overrides_agree():
    a = load_profile("smoke", {"train.epochs": 3, "model.seg_prior": False})
    b = load_profile("smoke", {"train": {"epochs": 3}, "model": {"seg_prior": False}})
    assert a.to_dict() == b.to_dict()
    assert a.train.epochs == 3 and a.model.seg_prior is False


def test_seed_override_leads_seeds():
    cfg = load_profile("cpu", seed=7)
    assert cfg.seed == 7 and cfg.seeds[0] == 7 and len(cfg.seeds) == len(load_profile("cpu").seeds)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_save_load_roundtrip(tmp_path, suffix):
    cfg = load_profile("smoke", {"train.epochs": 2}, run_name="rt")
    p = save_config(cfg, tmp_path / f"c{suffix}")
    assert load_config(p).to_dict() == cfg.to_dict()
    assert from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()


def test_load_config_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json"):
        load_config(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"profile": "smoke", "train": {"epochs": -3}}))
    with pytest.raises(ConfigError, match="wrong.json.*train.epochs"):
        load_config(wrong)
