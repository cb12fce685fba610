import json
import os

import pytest
import torch

from orsalib import paths
from orsalib.utils import (
    append_jsonl,
    atomic_torch_save,
    atomic_write_json,
    read_jsonl,
    resolve_device,
    save_run_config,
    seed_everything,
)


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "a.json"
    atomic_write_json(p, {"v": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_json(p, {"v": 2})
    assert json.loads(p.read_text()) == {"v": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]  # no temp litter


def test_atomic_torch_save_roundtrip(tmp_path):
    p = atomic_torch_save({"w": torch.arange(3)}, tmp_path / "x.pt")
    assert torch.equal(torch.load(p, weights_only=True)["w"], torch.arange(3))


def test_jsonl_ignores_torn_last_line(tmp_path):
    p = tmp_path / "m.jsonl"
    append_jsonl(p, {"epoch": 1})
    append_jsonl(p, {"epoch": 2})
    with open(p, "a") as f:
        f.write('{"epoch": 3, "lo')
    assert [r["epoch"] for r in read_jsonl(p)] == [1, 2]


def test_seed_everything_repeats():
    seed_everything(3)
    a = torch.rand(4)
    seed_everything(3)
    assert torch.equal(a, torch.rand(4))


def test_resolve_device():
    assert resolve_device("auto").type in ("cpu", "cuda")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError):
        resolve_device("gpu0")


def test_run_dir_rejects_paths():
    with pytest.raises(ValueError):
        paths.run_dir("../escape")


def test_save_run_config_records_versions(tmp_path):
    from orsalib.config import load_profile

    p = save_run_config(tmp_path, load_profile("smoke"))
    d = json.loads(p.read_text())
    assert d["config"]["profile"] == "smoke" and "torch" in d["versions"] and "git_sha" in d
