"""DDP: a 2-process gloo run through torchrun on CPU; every training sample seen exactly once per epoch."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orsalib.engine import ddp
from orsalib.engine.ddp import (
    DistInfo,
    all_reduce_sum,
    distributed_session,
    get_world_size,
    init_distributed,
    torchrun_command,
)

N_TRAIN, N_VAL, EPOCHS = 40, 11, 2

SCRIPT = textwrap.dedent(
    f"""
    import json, sys
    from dataclasses import replace
    from pathlib import Path

    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset
    from torch.utils.data.distributed import DistributedSampler

    from orsalib.config import TrainConfig
    from orsalib.engine import ddp
    from orsalib.engine.trainer import fit
    from orsalib.losses import build_criterion

    out = Path(sys.argv[1])
    info = ddp.init_distributed(device="cpu")

    class Tensors(Dataset):
        def __init__(self, n, seed):
            g = torch.Generator().manual_seed(seed)
            self.x = torch.randn(n, 3, 4, 4, generator=g)
            self.y = torch.arange(n) % 3
        def __len__(self):
            return len(self.y)
        def __getitem__(self, i):
            return {{"image": self.x[i], "label": self.y[i], "index": torch.tensor(i)}}

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(48, 3)
        def forward(self, image, priors=None):
            return {{"logits": self.fc(image.flatten(1))}}  # (B, 3)

    train, val = Tensors({N_TRAIN}, 0), Tensors({N_VAL}, 1)
    tl = DataLoader(train, batch_size=4, sampler=DistributedSampler(train, shuffle=True, seed=3))
    vl = DataLoader(val, batch_size=4, sampler=DistributedSampler(val, shuffle=False))
    seen = []
    base = build_criterion(TrainConfig(lsce_warmup_epochs=1))

    def crit(o, batch, epoch):
        seen.append((epoch, batch["index"].tolist()))
        return base(o, batch, epoch)

    cfg = replace(TrainConfig(), epochs={EPOCHS}, lr=1e-2, sam=False, scheduler="none", lsce_warmup_epochs=1)
    torch.manual_seed(0)
    res = fit(Net(), tl, vl, crit, cfg, out / "run", device="cpu", seed=0)
    (out / f"seen_rank{{info.rank}}.json").write_text(json.dumps(seen))
    ddp.cleanup()
    """
)


@pytest.mark.slow
def test_two_process_gloo_run_sees_every_sample_once_per_epoch(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(SCRIPT)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    seen = [json.loads((tmp_path / f"seen_rank{r}.json").read_text()) for r in (0, 1)]
    for epoch in range(EPOCHS):
        per_rank = [[i for e, idx in s if e == epoch for i in idx] for s in seen]
        assert len(per_rank[0]) == len(per_rank[1]) == N_TRAIN // 2
        assert not set(per_rank[0]) & set(per_rank[1]), "a sample went to both ranks"
        assert sorted(per_rank[0] + per_rank[1]) == list(range(N_TRAIN)), "union of ranks != dataset"
    # the shuffle changes between epochs (set_epoch), and rank 0 alone wrote the outputs
    assert [i for e, idx in seen[0] if e == 0 for i in idx] != [i for e, idx in seen[0] if e == 1 for i in idx]
    run = tmp_path / "run"
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs] == [1, 2]
    assert all(r["train_samples"] == N_TRAIN for r in recs)  # all-reduced over ranks
    assert all(r["val_n"] == N_VAL for r in recs)  # sharded eval gathered, sampler padding dropped
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "summary.json").is_file()


def test_helpers_outside_torchrun(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    info = init_distributed(device="cpu")
    assert isinstance(info, DistInfo) and info.is_main and not info.distributed and info.device.type == "cpu"
    assert get_world_size() == 1 and all_reduce_sum([1.0, 2.5]) == [1.0, 2.5]
    cmd = torchrun_command(2, args=["train", "--profile", "smoke"])
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"] and "--nproc_per_node=2" in cmd
    assert cmd[-4:] == ["orsalib", "train", "--profile", "smoke"] and cmd[-5] == "-m"
    assert Path(cmd[0]).name.startswith("python")
    with distributed_session(device="cpu") as info:  # outside torchrun: rank 0 of 1, nothing to set up
        assert info.is_main and not info.distributed


def test_launch_runs_orsa_train_under_torchrun(monkeypatch):
    calls = []
    monkeypatch.setattr(ddp.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    assert ddp.launch(2, ["--profile", "smoke", "--run-name", "r"]) == 0
    (cmd,) = calls
    i = cmd.index("--nproc_per_node=2")
    assert cmd[i + 1 :] == ["-m", "orsalib", "train", "--profile", "smoke", "--run-name", "r"]
    with pytest.raises(ValueError, match="nproc_per_node"):
        ddp.launch(0, [])
    assert not hasattr(ddp, "main")  # no `python -m orsalib.engine.ddp` entry (it imported the experiments)
