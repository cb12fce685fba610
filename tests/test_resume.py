"""Exact resume WITH the default augmentations (hflip + RandomErasing): a run killed anywhere and resumed equals the
uninterrupted run bit for bit on CPU, in process (0 and 1 DataLoader workers), after a real ``kill -9`` of
``python -m orsalib train`` and under 2-process DDP (gloo); checkpoint hygiene and the failed status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

import orsalib.engine.trainer as T
from orsalib.config import DataConfig, TrainConfig
from orsalib.data.loaders import build_loaders
from orsalib.data.transforms import flip_landmarks, flip_parsing
from orsalib.engine.trainer import NonFiniteLossError, fit, load_checkpoint
from orsalib.losses import build_criterion
from orsalib.models import create_model

SIZE, N_CLASSES = 64, 7
TIME_KEYS = {"epoch_time_s", "train_time_s", "images_per_s"}
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- a small FER set with priors
def make_manifest(root: Path, per_class: int = 4, n_valid: int = 7) -> pd.DataFrame:
    """Random-noise faces (as PNG files) with a class-dependent bright band, train + valid splits."""
    rng = np.random.default_rng(0)
    rows = []
    for split, n in (("train", per_class * N_CLASSES), ("valid", n_valid)):
        for k in range(n):
            lab = k % N_CLASSES
            img = rng.integers(0, 120, (SIZE, SIZE, 3), dtype=np.uint8)
            img[8 * lab : 8 * lab + 8, : SIZE // 3] = 250  # left-side band: flips change the image
            p = root / split / f"{k}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(p)
            rows.append({"path": str(p), "label": lab, "label_name": str(lab), "split": split})
    return pd.DataFrame(rows)


class Priors:
    """A prior store with landmarks and parsing maps per manifest row, flipped entries included."""

    keys = ("landmarks", "parsing")

    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(1)
        self.lm = rng.uniform(0.1, 0.9, (n, 68, 2)).astype(np.float32)
        self.par = rng.integers(0, 11, (n, SIZE, SIZE)).astype(np.int64)

    def get(self, i: int, flipped: bool = False) -> dict[str, np.ndarray]:
        if flipped:
            return {"landmarks": flip_landmarks(self.lm[i]), "parsing": flip_parsing(self.par[i])}
        return {"landmarks": self.lm[i], "parsing": self.par[i]}


@pytest.fixture(scope="module")
def fer(tmp_path_factory):
    m = make_manifest(tmp_path_factory.mktemp("fer"))
    return m, Priors(len(m))


def _cfg(**kw) -> TrainConfig:
    base = TrainConfig(
        epochs=3, batch_size=8, lr=1e-3, sam=False, scheduler="exponential", gamma=0.9, lsce_warmup_epochs=1,
        max_steps_per_epoch=3,
    )  # fmt: skip
    return replace(base, **kw)


class CrashAt:
    """Criterion wrapper that raises at (0-based) ``epoch``, ``step``: a run killed in the middle of an epoch."""

    def __init__(self, crit, epoch: int, step: int = 1, exc: BaseException | None = None) -> None:
        self.crit, self.epoch, self.step, self.n = crit, epoch, step, 0
        self.exc = exc or KeyboardInterrupt("simulated kill")
        self.phase = crit.phase

    def __call__(self, out, batch, epoch):
        if epoch == self.epoch:
            self.n += 1
            if self.n > self.step:
                raise self.exc
        return self.crit(out, batch, epoch)


def _orsanet(init_seed: int) -> nn.Module:
    torch.manual_seed(init_seed)
    return create_model("orsanet_tiny", num_classes=N_CLASSES, prior_routing="paper", drop_path=0.1)


def _fit(fer, run_dir: Path, cfg: TrainConfig, workers: int = 0, crash: CrashAt | None = None, **kw):
    manifest, store = fer
    loaders = build_loaders(manifest, DataConfig(image_size=SIZE, num_workers=workers), cfg.batch_size, seed=5,
                            prior_store=store)  # fmt: skip
    crit = crash or build_criterion(cfg)
    model = kw.pop("model", None) or _orsanet(kw.pop("init_seed", 0))
    return fit(model, loaders["train"], loaders["valid"], crit, cfg, run_dir, device="cpu", seed=11,
               num_classes=N_CLASSES, **kw)  # fmt: skip


def _tensors(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor inside a (nested) checkpoint, keyed by its path."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    out: dict[str, torch.Tensor] = {}
    for k, v in items:
        out.update(_tensors(v, f"{prefix}/{k}"))
    return out


def assert_same_run(a: Path, b: Path) -> None:
    """``last.pt`` of both runs hold equal tensors (model, optimizer, RNG states, ...) and equal metrics."""
    ca, cb = load_checkpoint(a / "checkpoints" / "last.pt"), load_checkpoint(b / "checkpoints" / "last.pt")
    ta, tb = _tensors(ca), _tensors(cb)
    assert ta.keys() == tb.keys() and len([k for k in ta if k.startswith("/model/")]) > 10
    differ = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not differ, f"{len(differ)} of {len(ta)} tensors differ, e.g. {differ[:5]}"
    ha = [{k: v for k, v in h.items() if k not in TIME_KEYS} for h in ca["history"]]
    hb = [{k: v for k, v in h.items() if k not in TIME_KEYS} for h in cb["history"]]
    assert ha == hb and ca["epoch"] == cb["epoch"]


# ----------------------------------------------------------------------------- (a), (b) in process
@pytest.mark.parametrize("workers,sam", [(0, False), (1, True)])
def test_resumed_run_with_augmentation_equals_uninterrupted(tmp_path, fer, workers, sam):
    cfg = _cfg(sam=sam)
    _fit(fer, tmp_path / "full", cfg, workers)
    with pytest.raises(KeyboardInterrupt):  # killed in the middle of epoch 2: last.pt holds epoch 1
        _fit(fer, tmp_path / "cut", cfg, workers, crash=CrashAt(build_criterion(cfg), epoch=1, step=1))
    assert load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["epoch"] == 1
    res = _fit(fer, tmp_path / "cut", cfg, workers, resume=True, init_seed=99)  # init must come from last.pt
    assert [h["epoch"] for h in res.history] == [1, 2, 3]
    assert_same_run(tmp_path / "full", tmp_path / "cut")


def test_augmentation_is_on_and_seeded_per_epoch_and_draw(fer):
    manifest, store = fer
    loader = build_loaders(manifest, DataConfig(image_size=SIZE), 8, seed=5, prior_store=store)["train"]
    ds = loader.dataset
    assert ds.transform.hflip and ds.transform.erasing_p == 0.5  # the defaults of every profile

    def epoch_batches(epoch: int) -> list[dict]:
        loader.sampler.set_epoch(epoch)
        return list(loader)

    a, b, again = epoch_batches(0), epoch_batches(1), epoch_batches(0)
    assert all(torch.equal(x["image"], y["image"]) and torch.equal(x["index"], y["index"]) for x, y in zip(a, again))
    assert not all(torch.equal(x["image"], y["image"]) for x, y in zip(a, b))
    # a sample drawn twice in an epoch (balanced sampling draws with replacement) gets its own augmentation
    idx = torch.cat([x["index"] for x in a])
    img = torch.cat([x["image"] for x in a])
    dup = [(i, j) for i in range(len(idx)) for j in range(i + 1, len(idx)) if idx[i] == idx[j]]
    assert dup and any(not torch.equal(img[i], img[j]) for i, j in dup)


# ----------------------------------------------------------------------------- (a) a real kill -9 of the CLI
def _orsa_train(out: Path, run_name: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "orsalib", "train", "--profile", "smoke", "--run-name", run_name, "--device", "cpu",
            "--set", "train.epochs=3", "--set", "model.drop_path=0.1", *extra]  # fmt: skip


@pytest.mark.slow
def test_kill_9_and_resume_of_orsa_train_equals_uninterrupted(tmp_path):
    out = tmp_path / "outputs"
    env = {**os.environ, "ORSA_OUTPUTS_DIR": str(out), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
           "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}  # fmt: skip
    full = subprocess.run(_orsa_train(out, "full"), env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert full.returncode == 0, full.stdout[-2000:] + full.stderr[-3000:]

    proc = subprocess.Popen(_orsa_train(out, "cut"), env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("epoch 1/3"):  # printed after epoch 1's checkpoint was written
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
    run = out / "cut" / "train"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] < 3
    res = subprocess.run(_orsa_train(out, "cut", "--resume"), env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "resumed from" in res.stdout
    assert_same_run(out / "full" / "train", run)
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


# ----------------------------------------------------------------------------- (c) 2-process DDP (gloo)
DDP_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    sys.path.insert(0, sys.argv[2])  # the tests folder: this file's fixtures
    import test_resume as R
    from orsalib.config import DataConfig
    from orsalib.data.loaders import build_loaders
    from orsalib.engine import ddp
    from orsalib.engine.trainer import fit
    from orsalib.losses import build_criterion

    out = Path(sys.argv[1])
    info = ddp.init_distributed(device="cpu")
    manifest = R.make_manifest(out / f"data{info.rank}")
    store = R.Priors(len(manifest))
    cfg = R._cfg(batch_size=4)

    def run(name, crash=False, resume=False, init_seed=0):
        loaders = build_loaders(manifest, DataConfig(image_size=R.SIZE), cfg.batch_size, seed=5, prior_store=store,
                                distributed=True)
        crit = build_criterion(cfg)
        if crash:
            crit = R.CrashAt(crit, epoch=1, step=1)
        return fit(R._orsanet(init_seed), loaders["train"], loaders["valid"], crit, cfg, out / name, device="cpu",
                   seed=11, resume=resume, num_classes=R.N_CLASSES)

    res = run("full")
    assert res.history[-1]["val_n"] == len(manifest[manifest["split"] == "valid"]), res.history[-1]["val_n"]
    try:
        run("cut", crash=True)
        raise SystemExit("the crash did not happen")
    except KeyboardInterrupt:
        pass
    ddp.barrier()
    run("cut", resume=True, init_seed=99)
    ddp.cleanup()
    """
)


@pytest.mark.slow
def test_two_process_ddp_resume_equals_uninterrupted(tmp_path):
    script = tmp_path / "ddp_resume.py"
    script.write_text(DDP_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(tmp_path), str(Path(__file__).parent)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_same_run(tmp_path / "full", tmp_path / "cut")


# ----------------------------------------------------------------------------- (d) checkpoint hygiene, failed status
class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(16, N_CLASSES))

    def forward(self, image, priors=None):
        return {"logits": self.head(self.body(image).flatten(1))}  # (B, C)


def _tiny(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet()


def test_stale_temp_files_are_removed_at_start(tmp_path, fer):
    ck = tmp_path / "checkpoints"
    ck.mkdir(parents=True)
    stale = [ck / ".last.pt.k3j2.tmp", ck / ".best.pt.x9.tmp"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    keep = ck / "notes.txt"
    keep.write_text("mine")
    _fit(fer, tmp_path, _cfg(epochs=1), model=_tiny())
    assert not any(p.exists() for p in stale) and keep.exists()
    assert not list(ck.glob("*.tmp")) and (ck / "last.pt").is_file()


def test_last_is_written_before_best_and_a_lagging_best_is_repaired(tmp_path, fer, monkeypatch):
    writes: list[tuple[str, int]] = []
    real = T.atomic_torch_save

    def recording_save(obj, path):
        writes.append((Path(path).name, int(obj["epoch"])))
        return real(obj, path)

    monkeypatch.setattr(T, "atomic_torch_save", recording_save)
    cfg = _cfg(epochs=3, checkpoint_every=50)  # last.pt only when needed: at a new best and at the end
    res = _fit(fer, tmp_path / "order", cfg, model=_tiny())
    for k, (name, epoch) in enumerate(writes):
        if name == "best.pt":
            assert k > 0 and writes[k - 1] == ("last.pt", epoch), writes
    assert ("best.pt", res.best_epoch) in writes and writes[-1][0] in ("last.pt", "best.pt")

    # killed between the two writes of epoch 1: best.pt is missing (never ahead of last.pt) ...
    def dies_on_best(obj, path):
        if Path(path).name == "best.pt":
            raise KeyboardInterrupt("killed between last.pt and best.pt")
        return real(obj, path)

    monkeypatch.setattr(T, "atomic_torch_save", dies_on_best)
    run = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        _fit(fer, run, cfg, model=_tiny())
    epoch1 = load_checkpoint(run / "checkpoints" / "last.pt")
    assert epoch1["epoch"] == 1 and not (run / "checkpoints" / "best.pt").exists()
    # ... and the resume writes it from last.pt's weights before it goes on
    monkeypatch.setattr(T, "atomic_torch_save", recording_save)
    writes.clear()
    res = _fit(fer, run, cfg, model=_tiny(1), resume=True)
    assert writes[0] == ("best.pt", 1)
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["epoch"] == res.best_epoch <= last["epoch"] == 3
    if res.best_epoch == 1:
        assert all(torch.equal(v, epoch1["model"][k]) for k, v in best["model"].items())


@pytest.mark.parametrize("what", ["nan", "error"])
def test_summary_says_failed_with_the_reason(tmp_path, fer, what):
    cfg = _cfg(epochs=3)
    crit = build_criterion(cfg)
    if what == "nan":

        def crit_nan(out, batch, epoch):
            loss, parts = crit(out, batch, epoch)
            return (loss * float("nan") if epoch == 1 else loss), parts

        crash, exc, want = crit_nan, NonFiniteLossError, "failed: NonFiniteLossError: training loss is nan at epoch 2"
    else:
        crash = CrashAt(crit, epoch=2, step=0, exc=RuntimeError("disk on fire"))
        exc, want = RuntimeError, "failed: RuntimeError: disk on fire"
    with pytest.raises(exc):
        _fit(fer, tmp_path, cfg, model=_tiny(), crash=crash)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["status"].startswith(want), s["status"]
    assert s["epochs_completed"] == (1 if what == "nan" else 2)
