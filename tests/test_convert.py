"""Checkpoint converter: released formats in, clear errors out."""

from __future__ import annotations

import json

import pytest
import torch

from orsalib.models import create_model
from orsalib.models.convert import CheckpointError, load_released_checkpoint
from orsalib.models.ir50 import IRBackbone, ir50, load_ir50
from orsalib.paths import shared_path

X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
PRI = {
    "landmarks": torch.rand(2, 68, 2, generator=torch.Generator().manual_seed(1)),
    "parsing": torch.randint(0, 11, (2, 64, 64), generator=torch.Generator().manual_seed(2)),
}


def _pair():
    torch.manual_seed(0)
    src = create_model("orsanet_tiny").eval()
    torch.manual_seed(1)
    dst = create_model("orsanet_tiny").eval()
    return src, dst


def test_train_py_format_roundtrip(tmp_path):
    src, dst = _pair()
    path = tmp_path / "epoch_3.pth"
    sd = {f"module.{k}": v for k, v in src.state_dict().items()}
    torch.save({"iter": 3, "model_state_dict": sd, "optimizer_state_dict": {"state": {}, "param_groups": []}}, path)
    rep = load_released_checkpoint(dst, path)
    assert rep.kind == "orsanet" and rep.loaded == len(sd) and not rep.missing and str(path) in rep.summary()
    with torch.no_grad():
        torch.testing.assert_close(dst(X, PRI)["logits"], src(X, PRI)["logits"])


def test_bare_state_dict_file(tmp_path):
    src, dst = _pair()
    torch.save(src.state_dict(), tmp_path / "bare.pt")
    load_released_checkpoint(dst, tmp_path / "bare.pt")
    with torch.no_grad():
        torch.testing.assert_close(dst(X, PRI)["features"], src(X, PRI)["features"])


def test_wrong_keys_error_names_file_and_counts(tmp_path):
    src, dst = _pair()
    sd = src.state_dict()
    sd.pop("head.linear.bias")
    sd["head.extra.weight"] = torch.zeros(3)
    path = tmp_path / "broken.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as e:
        load_released_checkpoint(dst, path)
    msg = str(e.value)
    assert str(path) in msg and "1 missing keys" in msg and "head.linear.bias" in msg
    assert "1 unexpected keys" in msg and "head.extra.weight" in msg
    rep = load_released_checkpoint(dst, path, strict=False)  # the rest fits
    assert rep.missing == ["head.linear.bias"] and rep.unexpected == ["head.extra.weight"]
    torch.testing.assert_close(dst.head.linear.weight, src.head.linear.weight)


def test_shape_mismatch_is_reported(tmp_path):
    src, _ = _pair()
    dst = create_model("orsanet_tiny", num_classes=8)
    with pytest.raises(CheckpointError, match=r"shape mismatches.*head\.linear\.weight: \(7, 64\) vs \(8, 64\)"):
        load_released_checkpoint(dst, src.state_dict())


def test_not_a_checkpoint_and_missing_file(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError, match="notes.txt.*not a readable PyTorch checkpoint"):
        load_released_checkpoint(create_model("orsanet_tiny"), bad)
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_released_checkpoint(create_model("orsanet_tiny"), tmp_path / "nowhere.pth")
    torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt.*keys match neither"):
        load_released_checkpoint(create_model("orsanet_tiny"), tmp_path / "other.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="list.pt.*not a checkpoint"):
        load_released_checkpoint(create_model("orsanet_tiny"), tmp_path / "list.pt")


def test_public_ir50_format_by_name_and_shape(tmp_path):
    dst = create_model("orsanet_tiny")
    torch.manual_seed(3)
    donor = IRBackbone(16, ((16, 1), (32, 1), (64, 1)), input_size=None, output_layer=False)
    sd = donor.state_dict()
    sd["body.99.res_layer.1.weight"] = torch.zeros(4, 4, 3, 3)  # a 4th stage the truncated model lacks
    torch.save({"state_dict": sd}, tmp_path / "ir50.pth")
    rep = load_released_checkpoint(dst, tmp_path / "ir50.pth")
    assert rep.kind == "ir50" and rep.target == "ir_back" and rep.loaded == len(sd) - 1
    torch.testing.assert_close(dst.ir_back.input_layer[0].weight, donor.input_layer[0].weight)
    rep2 = load_ir50(dst.ir_back, tmp_path / "ir50.pth")
    assert rep2["n_skipped"] == 1 and rep2["skipped"] == ["body.99.res_layer.1.weight"] and rep2["n_missing"] == 0


def test_prior_network_files_need_in_model_priors(tmp_path):
    from orsalib.models.mobilefacenet import MobileFaceNet

    torch.manual_seed(4)
    lm = MobileFaceNet((112, 112), 136)
    torch.save({"state_dict": lm.state_dict()}, tmp_path / "mobilefacenet_model_best.pth.tar")
    with pytest.raises(CheckpointError, match="face_landback.*priors_in_model=True"):
        load_released_checkpoint(create_model("orsanet_tiny"), tmp_path / "mobilefacenet_model_best.pth.tar")
    m = create_model("orsanet_tiny", prior_routing="released", priors_in_model=True, seg_prior=False)
    rep = load_released_checkpoint(m, tmp_path / "mobilefacenet_model_best.pth.tar")
    assert rep.kind == "mobilefacenet" and not rep.missing
    torch.testing.assert_close(m.face_landback.conv1.conv.weight, lm.conv1.conv.weight)
    fake_segface = {"state_dict_backbone": {"backbone.0.0.0.weight": torch.zeros(1), "face_decoder.x": torch.zeros(1)}}
    with pytest.raises(CheckpointError, match="face_segment"):
        load_released_checkpoint(create_model("orsanet_tiny"), fake_segface)


@pytest.mark.shared
def test_key_names_match_the_released_tables():
    path = shared_path("reference", "official_state_dicts.json")
    if path is None:
        pytest.skip("../shared/reference is not present")
    tables = json.loads(path.read_text())
    ir = {k: tuple(v.shape) for k, v in ir50().state_dict().items()}
    assert ir == {k: tuple(v) for k, v in tables["ir50_backbone"]["keys"].items()}
    own = {k: tuple(v.shape) for k, v in create_model("orsanet_small").state_dict().items()}
    rel = {
        k: tuple(v)
        for k, v in tables["orsanet_small_7cls"]["keys"].items()
        if not k.startswith(("face_landback.", "face_segment."))
    }
    assert own == rel
