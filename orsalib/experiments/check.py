"""``orsa check``: a pre-flight of a run before anything long starts.

It checks, in order, and says what is wrong and how to fix it:

1. the data: the dataset's layout, counts per split and class, the validation's problems;
2. the prior weights: every file the prior source (and ``prior.mode="released"``'s in-model networks) reads is
   present, loads as the network it should be, and its SHA-1; each line names the path really read and why that one
   (given with ``--set`` / the config, or the default location under ``data/weights/``, ``$ORSA_DATA_DIR``): no
   other place is searched;
3. the device: CUDA or CPU, bf16 support, torch threads;
4. the cost: one measured training step and one measured prior extraction on this machine, scaled to the run
   (epochs x images), and the peak memory of a step at the profile's batch size (extrapolated from batch 1 and 2).
"""

from __future__ import annotations

import gc
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..config import RunConfig
from ..data.sources import load_manifest
from ..engine.evaluate import batch_to_device
from ..engine.trainer import build_optimizer
from ..losses import build_criterion
from ..models import PRIOR_KEYS, model_meta
from ..paths import DATA_DIR
from ..priors.landmarks import DEFAULT_LANDMARK_WEIGHTS, file_sha1
from ..priors.parsing import DEFAULT_PARSER_WEIGHTS
from ..priors.sources import get_prior_source
from ..registry import PRIOR_SOURCES
from ..utils import resolve_device
from .fer import build_fer_model


@dataclass
class CheckReport:
    """What ``orsa check`` found: one line per fact, and the problems that would stop or spoil the run."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str) -> None:
        self.lines.append(text)

    def problem(self, text: str) -> None:
        self.problems.append(text)
        self.lines.append(f"PROBLEM: {text}")

    @property
    def ok(self) -> bool:
        return not self.problems


def check_data(cfg: RunConfig, report: CheckReport) -> pd.DataFrame | None:
    """Load and validate the manifest; counts per split and class."""
    root = cfg.data.data_root or "(embedded; generated under outputs/cache/synthfer)"
    report.say(f"data: {cfg.data.dataset} at {root}")
    try:
        manifest = load_manifest(cfg.data, seed=0)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        report.problem(f"data: {' '.join(str(e).split())}")
        return None
    counts = manifest.groupby(["split", "label_name"]).size().unstack(fill_value=0)
    for split, row in counts.iterrows():
        per = ", ".join(f"{k} {int(v)}" for k, v in row.items())
        report.say(f"  {split}: {int(row.sum())} images ({per})")
    report.facts["images"] = {str(s): int(n) for s, n in manifest["split"].value_counts().items()}
    if "train" not in set(manifest["split"]):
        report.problem("data: no 'train' split")
    if not set(manifest["split"]) - {"train"}:
        report.problem("data: no evaluation split ('valid' or 'test')")
    validation = manifest.attrs.get("validation") or {}
    for key, what in (("skipped_total", "unreadable or invalid files skipped"),
                      ("cross_split_duplicates", "images found in two splits")):  # fmt: skip
        n = validation.get(key)
        if n:
            report.say(f"  note: {n} {what} (listed in validation.json of the run)")
    return manifest


def _weight_fields(cfg: RunConfig) -> list[str]:
    fields_ = list(PRIOR_SOURCES.meta(cfg.prior.source).get("weights", ()))
    if cfg.prior.mode == "released" and model_meta(cfg.model.name).get("uses_priors"):
        fields_ += [f for f in ("landmark_weights", "parser_weights") if f not in fields_]
    return fields_


#: where a weights field is read when the config leaves it empty (the prior sources' and the models' default)
DEFAULT_WEIGHTS: dict[str, Path] = {"landmark_weights": DEFAULT_LANDMARK_WEIGHTS,
                                    "parser_weights": DEFAULT_PARSER_WEIGHTS}  # fmt: skip


def weights_in_use(cfg: RunConfig, source: Any = None) -> dict[str, tuple[Path | None, str]]:
    """``{field: (path, why)}`` for every weights file the run reads: the path the prior source really opened (or
    will open) and why that path: "given" (the config / ``--set``) or "default location" (``data/weights/`` under
    ``$ORSA_DATA_DIR``). No other place is looked at."""
    opened = {}
    for part in getattr(source, "parts", (source,)) if source is not None else ():
        f, w = getattr(part, "weights_field", None), getattr(part, "weights", None)
        if f and w:
            opened[f] = Path(w)
    out: dict[str, tuple[Path | None, str]] = {}
    for f in _weight_fields(cfg):
        given = getattr(cfg.prior, f, "") or ""
        if given:
            out[f] = (Path(given).expanduser(), "given")
        else:
            out[f] = (opened.get(f) or DEFAULT_WEIGHTS.get(f), f"default location, {DATA_DIR / 'weights'}")
    return out


def check_weights(cfg: RunConfig, report: CheckReport, device: torch.device) -> Any:
    """Every weights file the run reads: present, loadable as the right network, SHA-1. Returns the prior source."""
    source = None
    try:
        source = get_prior_source(cfg.prior, device)
        for part in getattr(source, "parts", (source,)):  # combined sources (mobilefacenet+segface): every network
            getattr(part, "predictor", None)  # network sources load (strictly: the right network) their file here
    except (ValueError, FileNotFoundError) as e:
        report.problem(f"prior source {cfg.prior.source!r}: {' '.join(str(e).split())}")
    for f, (path, why) in weights_in_use(cfg, source).items():
        if path is not None and path.is_file():
            report.say(f"weights: prior.{f} = {path.absolute()} ({why}; sha1 {file_sha1(path)[:12]})")
        elif path is not None:
            report.problem(f"weights: prior.{f} = {path} ({why}) does not exist; see data/README.md, "
                           f"'Prior-network weights', or pass --set prior.{f}=PATH")  # fmt: skip
        else:
            report.problem(f"weights: prior.{f} has no default location; pass --set prior.{f}=PATH")
    if not cfg.model.backbone_weights and model_meta(cfg.model.name).get("image_size") == 224:
        report.say("  note: model.backbone_weights is empty: the IR-50 starts from random weights; the release "
                   "starts from the face-recognition ir50.pth (--set model.backbone_weights=data/weights/ir50.pth)")
    if cfg.model.backbone_weights:
        p = Path(cfg.model.backbone_weights)
        if p.is_file():
            report.say(f"weights: model.backbone_weights = {p} (sha1 {file_sha1(p)[:12]})")
        else:
            report.problem(f"weights: model.backbone_weights = {p} does not exist")
    if source is not None:
        report.say(f"prior source {cfg.prior.source!r} ({cfg.prior.mode}) ready: keys {list(source.keys)}")
    return source


def check_device(cfg: RunConfig, report: CheckReport) -> torch.device | None:
    """CUDA / CPU, bf16, threads."""
    try:
        dev = resolve_device(cfg.device)
    except ValueError as e:
        report.problem(f"device: {e}")
        return None
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
        mem = torch.cuda.get_device_properties(dev).total_memory / 2**30
        bf16 = torch.cuda.is_bf16_supported()
        report.say(f"device: {dev} ({name}, {mem:.0f} GiB), bf16 {'yes' if bf16 else 'no'}")
    else:
        flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
        report.say(f"device: cpu, {torch.get_num_threads()} torch threads, bf16 instructions {'yes' if bf16 else 'no'}")
    report.facts["device"] = str(dev)
    return dev


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _fake_batch(cfg: RunConfig, n: int, source: Any) -> dict[str, torch.Tensor]:
    """Random images and random priors of the shapes the source produces (docs/contracts.md, "Priors")."""
    s = cfg.data.image_size
    g = torch.Generator().manual_seed(0)
    batch: dict[str, torch.Tensor] = {
        "image": torch.randn(n, 3, s, s, generator=g),
        "label": torch.arange(n) % cfg.data.num_classes,
        "index": torch.arange(n),
    }
    keys = set(getattr(source, "keys", ())) if cfg.prior.mode == "cached" else set()
    shapes = {"landmarks": (68, 2), "landmark_features": (512, 7, 7), "parser_features": (1024, s // 32, s // 32)}
    for k in keys & set(shapes):
        batch[k] = torch.rand(n, *shapes[k], generator=g)
    if "parsing" in keys:
        batch["parsing"] = torch.randint(0, 11, (n, s, s), generator=g)
    return batch


def _step_seconds(cfg: RunConfig, model: torch.nn.Module, batch: dict, device: torch.device, repeat: int = 3) -> float:
    """Median seconds of one optimisation step (two forward/backward passes under SAM) on ``batch``."""
    opt, sam = build_optimizer(model, cfg.train)
    crit = build_criterion(cfg.train)
    b = batch_to_device(batch, device)
    priors = {k: b[k] for k in PRIOR_KEYS if k in b}
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(2 if sam is not None else 1):
            out = model(b["image"], priors=priors)
            loss, _ = crit(out, b, cfg.train.lsce_warmup_epochs)
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def estimate_cost(cfg: RunConfig, report: CheckReport, device: torch.device, source: Any, images: dict) -> None:
    """Measured seconds per training image and per prior extraction, scaled to the run; peak memory of a step.

    Time: median of steps at batch 4 after a warm-up step (so that one-off costs are not counted per image).
    Memory: the process peak after steps at batch 2 and then 4 (the optimizer, SAM and gradient state exist by
    then), extrapolated linearly to the profile's batch size.
    """
    model = build_fer_model(cfg, load_prior_weights=False).to(device).train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _step_seconds(cfg, model, _fake_batch(cfg, 2, source), device, repeat=1)  # warm-up: state, allocations, kernels
    at2 = _rss_mb()
    per_image = _step_seconds(cfg, model, _fake_batch(cfg, 4, source), device) / 4
    at4 = _rss_mb()
    n_train = images.get("train", 0)
    n_eval = sum(v for k, v in images.items() if k != "train")
    steps = cfg.train.max_steps_per_epoch or max(1, -(-n_train // cfg.train.batch_size))
    epoch_s = steps * cfg.train.batch_size * per_image + n_eval * per_image / 3  # eval: forward only (~1/3)
    total_h = epoch_s * cfg.train.epochs / 3600
    report.say(f"cost: one training step {per_image:.3f} s per image on {device} (median of steps at batch 4)")
    total = f"{total_h:.1f} h" if total_h >= 1 else f"{total_h * 60:.1f} min"
    report.say(f"  epoch ~ {epoch_s / 60:.1f} min ({steps} steps of {cfg.train.batch_size}, {n_eval} eval images); "
               f"{cfg.train.epochs} epochs ~ {total} on this machine, now (load {os.getloadavg()[0]:.1f})")  # fmt: skip
    report.facts.update(seconds_per_train_image=per_image, epoch_minutes=epoch_s / 60, total_hours=total_h)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        report.say(f"  peak GPU memory at batch 4: {peak:.0f} MB (activations grow about linearly with the batch)")
    else:
        per = max(at4 - at2, 0.0) / 2
        at_batch = at4 + per * (cfg.train.batch_size - 4)
        report.say(f"  peak memory ~ {at_batch / 1024:.1f} GB at batch {cfg.train.batch_size} "
                   f"({at4 / 1024:.1f} GB at batch 4, + {per:.0f} MB per image)")  # fmt: skip
        report.facts["peak_memory_gb"] = at_batch / 1024
    if source is not None and cfg.prior.mode == "cached" and cfg.prior.source not in ("none", "oracle"):
        s = cfg.data.image_size
        imgs = np.zeros((4, s, s, 3), dtype=np.uint8)
        rows = pd.DataFrame({"path": [""] * 4})
        try:
            source.compute(imgs[:1], rows.iloc[:1])
            t0 = time.perf_counter()
            source.compute(imgs, rows)
            per_prior = (time.perf_counter() - t0) / 4
            n_all = sum(images.values()) * (2 if cfg.prior.cache_flip else 1)
            report.say(f"  prior cache: {per_prior:.3f} s per image, {n_all} images (with flips) ~ "
                       f"{n_all * per_prior / 60:.1f} min, once per dataset")  # fmt: skip
        except (ValueError, KeyError, RuntimeError) as e:  # e.g. a source that needs real manifest rows
            report.say(f"  prior cache: not timed ({type(e).__name__})")
    del model
    gc.collect()


def run_check(cfg: RunConfig, *, timing: bool = True) -> CheckReport:
    """The whole pre-flight of ``cfg`` (see the module docstring)."""
    report = CheckReport()
    report.say(f"profile {cfg.profile}: model {cfg.model.name}, prior {cfg.prior.source} ({cfg.prior.mode}), "
               f"{cfg.train.epochs} epochs, batch {cfg.train.batch_size}, {cfg.data.image_size} px")  # fmt: skip
    manifest = check_data(cfg, report)
    dev = check_device(cfg, report)
    source = check_weights(cfg, report, dev) if dev is not None else None
    if timing and dev is not None and manifest is not None and report.ok:
        try:
            estimate_cost(cfg, report, dev, source, report.facts.get("images", {}))
        except (RuntimeError, ValueError) as e:
            report.problem(f"a trial training step failed: {' '.join(str(e).split())[:300]}")
    report.say("ready: nothing found that would stop this run" if report.ok else
               f"{len(report.problems)} problem(s) found; fix them before starting the run")  # fmt: skip
    return report


__all__ = ["CheckReport", "check_data", "check_device", "check_weights", "estimate_cost", "run_check"]
