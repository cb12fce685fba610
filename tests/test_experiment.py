"""experiments.fer / experiments.runs / cli train: model from config, train_fer, load_trained round trip, CLI config."""

import argparse
import json
from dataclasses import replace

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from orsalib.cli import build_parser, resolve_train_config
from orsalib.config import ConfigError, load_profile, save_config
from orsalib.engine.evaluate import predict
from orsalib.engine.trainer import CheckpointError
from orsalib.experiments.fer import FERData, build_fer_model, train_fer
from orsalib.experiments.runs import load_trained


class PriorFaces(Dataset):
    """64 px random images with the priors orsanet_tiny (paper routing) needs: landmarks + parsing."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, 64, 64, generator=g)
        self.y = torch.arange(n) % 7
        self.lm = torch.rand(n, 68, 2, generator=g)
        self.parsing = torch.randint(0, 11, (n, 64, 64), generator=g)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {
            "image": self.x[i],
            "label": self.y[i],
            "index": torch.tensor(i),
            "landmarks": self.lm[i],
            "parsing": self.parsing[i],
        }


def _data(with_test: bool = False) -> FERData:
    loaders = {
        "train": DataLoader(PriorFaces(16, 0), batch_size=8, shuffle=True, generator=torch.Generator()),
        "valid": DataLoader(PriorFaces(7, 1), batch_size=8),
        "valid_occluded": DataLoader(PriorFaces(7, 2), batch_size=8),
    }
    if with_test:
        loaders["test"] = DataLoader(PriorFaces(7, 3), batch_size=8)
    return FERData(manifest=None, loaders=loaders, prior_store=None, class_names=[str(i) for i in range(7)])


def _cfg(**train):
    cfg = load_profile("smoke", run_name="exp_test")
    cfg.train = replace(cfg.train, epochs=2, max_steps_per_epoch=2, **train)
    return cfg


def test_build_fer_model_applies_config_switches():
    cfg = load_profile("smoke", {"model.seg_prior": False, "data.num_classes": 8})
    m = build_fer_model(cfg)
    assert m.cfg.seg_prior is False and m.cfg.num_classes == 8 and m.cfg.img_size == cfg.data.image_size
    assert "parsing" not in m.required_priors
    assert build_fer_model(cfg, cross_interaction=False).cfg.cross_interaction is False


def test_released_prior_mode_loads_the_prior_weights(tmp_path):
    """prior.mode='released' builds the frozen nets inside the model and loads prior.landmark_weights into them."""
    from orsalib.models.mobilefacenet import MobileFaceNet
    from orsalib.priors.landmarks import WeightsError

    torch.manual_seed(1)
    ref = MobileFaceNet((112, 112), 136)
    wfile = tmp_path / "mobilefacenet.pth.tar"
    torch.save({"state_dict": {k: v.half() if v.is_floating_point() else v for k, v in ref.state_dict().items()}},
               wfile)  # fmt: skip
    over = {"model.seg_prior": False, "prior.mode": "released", "prior.landmark_weights": str(wfile)}
    m = build_fer_model(load_profile("smoke", over))
    for k, v in ref.state_dict().items():
        if v.is_floating_point():
            assert torch.equal(m.face_landback.state_dict()[k], v.half().float()), k
    assert not any(p.requires_grad for p in m.face_landback.parameters())
    # a missing or wrong file stops the build with the path in the message
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        build_fer_model(load_profile("smoke", {**over, "prior.landmark_weights": str(tmp_path / "nowhere.pth")}))
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, bad)
    with pytest.raises(WeightsError, match="bad.pth"):
        build_fer_model(load_profile("smoke", {**over, "prior.landmark_weights": str(bad)}))
    # cached mode (the default) builds no prior network and reads no file
    m2 = build_fer_model(load_profile("smoke", {"prior.landmark_weights": str(tmp_path / "nowhere.pth")}))
    assert not hasattr(m2, "face_landback")


def test_train_fer_then_load_trained_round_trip(tmp_path):
    cfg = _cfg()
    res = train_fer(cfg, run_dir=tmp_path / "train", data=_data())
    assert res.eval_is_test  # no separate test split: best-epoch selection is on the reported split
    assert "valid_occluded_acc" in res.last and res.best_epoch in (1, 2)
    saved = json.loads((tmp_path / "train" / "config.json").read_text())
    assert saved["config"]["model"]["name"] == "orsanet_tiny" and "versions" in saved
    model, cfg2 = load_trained(tmp_path)  # the run folder above train/ works too
    assert cfg2.to_dict() == cfg.to_dict() and model.checkpoint_epoch == res.best_epoch
    acc = predict(model, _data().loaders["valid"], "cpu").report(7)["accuracy"]
    assert acc == pytest.approx(res.best["val_acc"])
    last, _ = load_trained(tmp_path / "train", which="last")
    assert last.checkpoint_epoch == 2


def test_eval_is_test_false_with_a_test_split(tmp_path):
    res = train_fer(_cfg(), run_dir=tmp_path, data=_data(with_test=True))
    assert not res.eval_is_test and "test_acc" in res.last


def test_load_trained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trained run"):
        load_trained(tmp_path)
    cfg = _cfg()
    cfg.train = replace(cfg.train, epochs=1)
    train_fer(cfg, run_dir=tmp_path, data=_data())
    (tmp_path / "checkpoints" / "best.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="best.pt"):
        load_trained(tmp_path)
    with pytest.raises(ValueError, match="which"):
        load_trained(tmp_path, which="first")


def test_cli_config_resolution(tmp_path):
    class _TrainParser:
        def parse_args(self, argv):
            return build_parser().parse_args(["train", *argv])

    p = _TrainParser()
    args = p.parse_args(
        [
            "--profile",
            "smoke",
            "--run-name",
            "r1",
            "--set",
            "train.epochs=3",
            "--set",
            "train.scheduler=cosine",
            "--set",
            "train.lr=1e-3",
            "--set",
            "model.seg_prior=false",
        ]
    )
    cfg = resolve_train_config(args)
    assert (cfg.run_name, cfg.train.epochs, cfg.train.scheduler, cfg.train.lr) == ("r1", 3, "cosine", 1e-3)
    assert cfg.model.seg_prior is False and cfg.profile == "smoke"
    f = tmp_path / "c.json"
    save_config(cfg, f)
    cfg2 = resolve_train_config(p.parse_args(["--config", str(f), "--set", "train.epochs=5", "--seed", "4"]))
    assert cfg2.train.epochs == 5 and cfg2.seed == 4 and cfg2.train.scheduler == "cosine"
    with pytest.raises(ValueError, match="unknown config key"):
        resolve_train_config(p.parse_args(["--config", str(f), "--set", "train.epochz=5"]))
    with pytest.raises(ConfigError):
        resolve_train_config(p.parse_args(["--profile", "smoke", "--set", "train.optimizer=lion"]))
    with pytest.raises(ValueError, match="KEY=VALUE"):
        resolve_train_config(
            argparse.Namespace(set=["train.epochs"], run_name=None, seed=None, device=None, config="", profile="smoke")
        )


@pytest.mark.slow
def test_prepare_fer_data_and_train_on_smoke_profile(tmp_path):
    pytest.importorskip("orsalib.priors.cache", reason="prior cache module not available")
    from orsalib.experiments.fer import prepare_fer_data

    cfg = _cfg()
    data = prepare_fer_data(cfg)
    assert {"train", "valid"} <= set(data.loaders) and data.class_names[0] == "anger"
    batch = next(iter(data.loaders["train"]))
    assert batch["image"].shape[-1] == cfg.data.image_size
    res = train_fer(cfg, run_dir=tmp_path, data=data)
    assert len(res.history) == 2
