"""``fit()``: the training loop of the workbook (the release's recipe, made resumable and honest).

What one call does (DESIGN.md, "data flow of one training run"):

- optimizer Adam / AdamW / SGD, optionally wrapped in SAM (:mod:`orsalib.engine.sam`; the release: SAM around Adam,
  the same loss in both passes); per-epoch schedule exponential (release: gamma 0.98) / cosine / step / none;
- AMP (bf16 / fp16 with a GradScaler) and channels-last on CUDA only (``amp="auto"``: bf16 on CUDA, none on CPU);
  optional ``torch.compile`` (CUDA); gradient clipping; ``max_steps_per_epoch`` cap;
- DDP when ``torch.distributed`` is initialised (see :mod:`orsalib.engine.ddp`): rank 0 logs and checkpoints;
- evaluation every ``eval_every`` epochs (and always after the last) on ``val_loader`` and ``extra_eval_loaders``;
- ``run_dir/metrics.jsonl``: one record per epoch (``epoch`` is 1-based there and in the summary; the criterion
  receives the 0-based epoch, docs/contracts.md); ``run_dir/summary.json`` with BOTH the last and the best epoch;
- checkpoints, written atomically: ``run_dir/checkpoints/last.pt`` (everything needed to resume: model, optimizer,
  SAM, scheduler, scaler, all RNG states, history) and ``best.pt`` (model weights + the epoch's record);
- exact resume: every epoch re-seeds python / numpy / torch and the loaders' samplers from ``(seed, epoch)``,
  so a run killed after epoch k and resumed ends with the same weights as an uninterrupted run (bit-identical on
  CPU; on CUDA up to non-deterministic kernels);
- a non-finite loss stops the run with :class:`NonFiniteLossError` naming the epoch and step; the last good
  checkpoint stays untouched.

The best epoch is selected on ``val_loader``. When that split is the test split (``eval_is_test=True``, as in the
release, which evaluates every epoch on ``valid/`` = the test split and reports the best epoch) the summary says so:
the best-epoch number is optimistic; the last-epoch number is the honest one.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..utils import append_jsonl, atomic_torch_save, atomic_write_json, atomic_write_text, resolve_device, to_json
from . import ddp
from .evaluate import default_forward, predict
from .sam import SAM

CHECKPOINT_FORMAT = "orsalib.trainer/1"
BEST_ON_TEST = "evaluation split (= test split; optimistic, as the release)"
BEST_ON_VAL = "validation split (held out from the test split)"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or not a trainer checkpoint (the message names the file)."""


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN/inf; the message names the epoch and step and the last good checkpoint."""


@dataclass
class FitResult:
    """What :func:`fit` returns. Epoch numbers are 1-based."""

    run_dir: Path
    history: list[dict]
    last: dict
    best: dict
    best_epoch: int
    checkpoint_last: Path
    checkpoint_best: Path
    eval_is_test: bool


# ----------------------------------------------------------------------------- building blocks
def build_optimizer(model: nn.Module, cfg: Any) -> tuple[torch.optim.Optimizer, SAM | None]:
    """The base optimizer over the trainable parameters, and its SAM wrapper when ``cfg.sam``."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (every parameter has requires_grad=False)")
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        raise ValueError(f"train.optimizer={cfg.optimizer!r} is not allowed; choose adam, adamw or sgd")
    sam = SAM(opt, rho=cfg.sam_rho, adaptive=bool(getattr(cfg, "sam_adaptive", False))) if cfg.sam else None
    return opt, sam


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Any) -> Any:
    """Per-epoch LR schedule: exponential (gamma/epoch) | cosine (to 0 over ``epochs``) | step | none (None)."""
    if cfg.scheduler == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.gamma)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, cfg.epochs))
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.scheduler == "none":
        return None
    raise ValueError(f"train.scheduler={cfg.scheduler!r} is not allowed; choose exponential, cosine, step or none")


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: ``auto`` = bf16 on CUDA; AMP is CUDA-only (None on CPU)."""
    if amp not in ("auto", "none", "bf16", "fp16"):
        raise ValueError(f"train.amp={amp!r} is not allowed; choose auto, none, bf16 or fp16")
    if device.type != "cuda" or amp == "none":
        return None
    if amp == "fp16":
        return torch.float16
    return torch.bfloat16


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 63-bit seed for (run seed, 0-based epoch)."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, np.uint64)[0] % (2**63 - 1))


def seed_epoch(seed: int, epoch: int, loader: Any = None) -> int:
    """Re-seed python / numpy / torch (all devices) and the loader's sampler from ``(seed, epoch)``.

    Handles a ``DistributedSampler`` (``set_epoch``), samplers with their own ``torch.Generator`` (e.g. a
    ``WeightedRandomSampler(generator=...)``) and a DataLoader ``generator`` (which also seeds the workers).
    """
    s = epoch_seed(seed, epoch)
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
    if loader is not None:
        gen = getattr(loader, "generator", None)
        if isinstance(gen, torch.Generator):
            gen.manual_seed(s ^ 0x5EED)
        samplers = [getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)]
        for smp in samplers:
            if smp is None:
                continue
            if hasattr(smp, "set_epoch"):
                smp.set_epoch(epoch)
            g = getattr(smp, "generator", None)
            if isinstance(g, torch.Generator):
                g.manual_seed(s ^ 0xA11CE)
    return s


def rng_state() -> dict[str, Any]:
    """All RNG states as tensors / plain python (loadable with ``torch.load(weights_only=True)``)."""
    st = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(st[1].astype(np.int64)),
            "pos": int(st[2]),
            "has_gauss": int(st[3]),
            "cached_gaussian": float(st[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a trainer checkpoint (``last.pt`` / ``best.pt``) with a clear error for missing or damaged files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; expected a file written by orsalib fit()")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, bad pickle, wrong file type: all the file's fault
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or corrupt and cannot be read ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200] if str(e) else 'no detail'}); delete it or point to an intact one "
            "(the other file in the same checkpoints/ folder may still be good)"
        ) from e
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        keys = sorted(ckpt)[:10] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not an orsalib trainer checkpoint (found {keys}); "
            "expected a dict with 'model', 'epoch', ... as written by orsalib fit()"
        )
    return ckpt


def _to_device(batch: Mapping[str, Any], device: torch.device, channels_last: bool) -> dict[str, Any]:
    out = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    if channels_last and isinstance(out.get("image"), torch.Tensor) and out["image"].ndim == 4:
        out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
    return out


def _logits(out: Any) -> torch.Tensor:
    if isinstance(out, Mapping):
        return out["logits"]
    if isinstance(out, (tuple, list)):
        return out[0]
    return out


def _tqdm_disabled() -> bool:
    return os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")


def _fmt_pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"


def _cfg_dict(cfg: Any) -> dict:
    return asdict(cfg) if is_dataclass(cfg) else dict(vars(cfg))


# ----------------------------------------------------------------------------- evaluation
def _evaluate(
    model: nn.Module,
    loader: Any,
    device: torch.device,
    forward: Callable,
    amp_dtype: torch.dtype | None,
    num_classes: int | None,
) -> dict[str, Any]:
    """Accuracy, macro-F1, mean class accuracy, loss and confusion of ``model`` on ``loader`` (gathered over ranks)."""
    from ..metrics import classification_report

    sampler = getattr(loader, "sampler", None)
    sharded = ddp.is_distributed() and isinstance(sampler, torch.utils.data.distributed.DistributedSampler)
    rep = None
    if sharded or ddp.is_main_process():
        ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else _null()
        with ctx:
            pr = predict(model, loader, device, forward=forward)
        logits, labels, indices = pr.logits, pr.labels, pr.indices
        if sharded:  # gather shards; DistributedSampler pads with repeats -> keep one row per sample index
            parts = ddp.all_gather_objects((logits, labels, indices))
            logits = np.concatenate([p[0] for p in parts])
            labels = np.concatenate([p[1] for p in parts])
            indices = np.concatenate([p[2] for p in parts])
            _, keep = np.unique(indices, return_index=True)
            logits, labels = logits[keep], labels[keep]
        nc = num_classes or logits.shape[1]
        rep = classification_report(labels, logits.argmax(1), nc)
        rep["loss"] = float(F.cross_entropy(torch.from_numpy(logits).float(), torch.from_numpy(labels).long()))
    if not sharded:
        rep = ddp.broadcast_object(rep)
    return rep


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


# ----------------------------------------------------------------------------- fit
def fit(
    model: nn.Module,
    train_loader: Any,
    val_loader: Any,
    criterion: Callable[[Any, dict, int], tuple[torch.Tensor, dict]],
    cfg: Any,
    run_dir: str | Path,
    *,
    device: str | torch.device = "auto",
    seed: int = 0,
    eval_is_test: bool = True,
    resume: bool = False,
    forward: Callable[[nn.Module, dict], Any] | None = None,
    class_names: list[str] | None = None,
    extra_eval_loaders: Mapping[str, Any] | None = None,
    config_to_save: Any = None,
    num_classes: int | None = None,
) -> FitResult:
    """Train ``model`` with ``criterion`` under the :class:`orsalib.config.TrainConfig` ``cfg``.

    Args:
        model: a workbook model (``forward(image, priors) -> {"logits", ...}``, docs/contracts.md).
        train_loader: yields batch dicts (``image``, ``label``, ``index``, prior keys).
        val_loader: the evaluation split the best epoch is selected on.
        criterion: ``criterion(out, batch, epoch0) -> (loss, parts)`` (``orsalib.losses.build_criterion``).
        cfg: the ``TrainConfig`` (epochs, optimizer, sam, scheduler, amp, checkpoint_every, ...).
        run_dir: output folder (metrics.jsonl, summary.json, checkpoints/, config.json).
        device: ``"auto"`` (CUDA when present) / ``"cpu"`` / ``"cuda[:N]"``; under DDP the local rank's device.
        seed: run seed; every epoch is re-seeded from ``(seed, epoch)`` (exact resume).
        eval_is_test: ``val_loader`` is the test split (as in the release): the summary marks the best epoch as
            selected on it (optimistic).
        resume: continue from ``run_dir/checkpoints/last.pt`` if present (exactly; see the module docstring).
        forward: ``forward(model, batch) -> out``; default ``model(image, priors=...)``.
        class_names: names for the summary's per-class recall.
        extra_eval_loaders: further evaluation splits (e.g. ``{"valid_occluded": loader}``); their accuracy and
            macro-F1 go into each record as ``<name>_acc`` / ``<name>_macro_f1``.
        config_to_save: a RunConfig (or dict) written to ``run_dir/config.json`` with versions and git SHA.
        num_classes: number of classes for the metrics (default: from ``class_names`` or the logits).

    Returns:
        :class:`FitResult` (history, last and best records, checkpoint paths).

    Raises:
        NonFiniteLossError: the loss became NaN/inf (epoch and step in the message); last.pt is the last good state.
        CheckpointError: ``resume=True`` and ``last.pt`` is unreadable.
    """
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    metrics_path, summary_path = run_dir / "metrics.jsonl", run_dir / "summary.json"
    distributed = ddp.is_distributed()
    main = ddp.is_main_process()
    if distributed and torch.cuda.is_available() and str(device) != "cpu":
        dev = torch.device("cuda", torch.cuda.current_device())
    else:
        dev = device if isinstance(device, torch.device) else resolve_device(str(device))
    fwd = forward or default_forward
    extra_eval_loaders = dict(extra_eval_loaders or {})
    if num_classes is None and class_names:
        num_classes = len(class_names)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if config_to_save is not None:
            from ..utils import save_run_config

            save_run_config(run_dir, config_to_save)

    # --- model, optimizer, schedule, AMP
    torch.manual_seed(seed)
    amp_dtype = resolve_amp(cfg.amp, dev)
    channels_last = bool(cfg.channels_last) and dev.type == "cuda"
    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    base_model = model
    optimizer, sam = build_optimizer(base_model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    train_model: nn.Module = base_model
    if distributed:
        ids = [dev.index] if dev.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(base_model, device_ids=ids, find_unused_parameters=True)
    if cfg.compile and dev.type == "cuda":
        train_model = torch.compile(train_model)
    eval_model = torch.compile(base_model) if (cfg.compile and dev.type == "cuda") else base_model

    # --- resume
    history: list[dict] = []
    best: dict = {}
    best_epoch = 0
    start_epoch = 0
    global_step = 0
    if resume and last_path.exists():
        ckpt = load_checkpoint(last_path, map_location="cpu")
        try:
            base_model.load_state_dict(ckpt["model"])
            (sam or optimizer).load_state_dict(ckpt["optimizer"])
            if scheduler is not None and ckpt.get("scheduler") is not None:
                scheduler.load_state_dict(ckpt["scheduler"])
            if scaler is not None and ckpt.get("scaler") is not None:
                scaler.load_state_dict(ckpt["scaler"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(
                f"checkpoint {str(last_path)!r} does not match this model/optimizer "
                f"(different architecture or train config?): {str(e)[:300]}"
            ) from e
        set_rng_state(ckpt["rng"])
        history = list(ckpt.get("history", []))
        best, best_epoch = dict(ckpt.get("best") or {}), int(ckpt.get("best_epoch", 0))
        start_epoch, global_step = int(ckpt["epoch"]), int(ckpt.get("global_step", 0))
        if main:  # metrics.jsonl = the checkpoint's history (drops lines of epochs after the last checkpoint)
            atomic_write_text(metrics_path, "".join(to_json(h, indent=None) + "\n" for h in history))
            print(f"resumed from {last_path} after epoch {start_epoch}/{cfg.epochs}", flush=True)
    elif main:
        if resume:
            print(f"resume requested but {last_path} does not exist; starting from epoch 1", flush=True)
        if metrics_path.exists():
            metrics_path.unlink()
    ddp.barrier()

    def _status_summary(status: str) -> None:
        if not main:
            return
        last = history[-1] if history else {}
        atomic_write_json(
            summary_path,
            {
                "status": status,
                "epochs_completed": len(history),
                "epochs": cfg.epochs,
                "last": last,
                "best": best,
                "best_epoch": best_epoch,
                "last_epoch": last.get("epoch", 0),
                "selection_metric": "val_acc",
                "best_selected_on": BEST_ON_TEST if eval_is_test else BEST_ON_VAL,
                "eval_is_test": eval_is_test,
                "class_names": class_names,
                "checkpoint_last": str(last_path),
                "checkpoint_best": str(best_path),
                "seed": seed,
            },
        )

    def _save_last(epoch_done: int) -> None:
        payload = {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch_done,
            "global_step": global_step,
            "model": base_model.state_dict(),
            "optimizer": (sam or optimizer).state_dict(),
            "sam": sam is not None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rng_state(),
            "sampler": {"next_epoch": epoch_done, "seed": seed},
            "history": history,
            "best": best,
            "best_epoch": best_epoch,
            "seed": seed,
            "train_config": _cfg_dict(cfg),
        }
        atomic_torch_save(payload, last_path)

    # --- epochs
    from tqdm.auto import tqdm

    disable_bars = (not main) or _tqdm_disabled()
    n_batches = len(train_loader)
    steps_per_epoch = min(n_batches, cfg.max_steps_per_epoch) if cfg.max_steps_per_epoch else n_batches
    epoch_bar = tqdm(
        range(start_epoch, cfg.epochs), total=cfg.epochs, initial=start_epoch, desc="epochs", disable=disable_bars
    )
    for epoch in epoch_bar:
        seed_epoch(seed, epoch, train_loader)
        train_model.train()
        lr = optimizer.param_groups[0]["lr"]
        sums: dict[str, float] = {}
        n_seen, correct = 0, torch.zeros((), dtype=torch.long, device=dev)
        t0 = time.perf_counter()
        batch_bar = tqdm(
            train_loader, total=steps_per_epoch, desc=f"epoch {epoch + 1}", leave=False, disable=disable_bars
        )
        for step, batch in enumerate(batch_bar):
            if step >= steps_per_epoch:
                break
            batch = _to_device(batch, dev, channels_last)
            parts, logits = _train_step(
                train_model,
                batch,
                criterion,
                epoch,
                fwd,
                optimizer,
                sam,
                scaler,
                amp_dtype,
                cfg.grad_clip,
                epoch,
                step,
                last_path,
            )
            bs = int(batch["label"].shape[0])
            n_seen += bs
            correct += (logits.detach().argmax(1) == batch["label"]).sum()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v) * bs
            global_step += 1
            if cfg.log_every and main and (step + 1) % cfg.log_every == 0:
                tqdm.write(f"  epoch {epoch + 1} step {step + 1}/{steps_per_epoch} loss {parts.get('loss', 0):.4f}")
            if main and not disable_bars:
                batch_bar.set_postfix(loss=f"{parts.get('loss', float('nan')):.3f}", refresh=False)
        batch_bar.close()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        train_time = time.perf_counter() - t0
        keys = sorted(sums)
        tot = ddp.all_reduce_sum([sums[k] for k in keys] + [n_seen, float(correct.item()), train_time], dev)
        n_all = max(tot[len(keys)], 1.0)
        record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
        phase = getattr(criterion, "phase", None)
        if callable(phase):
            record["phase"] = phase(epoch)
        record["train_loss"] = tot[keys.index("loss")] / n_all if "loss" in keys else None
        for i, k in enumerate(keys):
            if k != "loss":
                record[f"train_{k}"] = tot[i] / n_all
        record["train_acc"] = tot[len(keys) + 1] / n_all
        record["train_samples"] = int(n_all)
        if scheduler is not None:
            scheduler.step()

        # --- evaluation
        do_eval = (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs
        if do_eval:
            rep = _evaluate(eval_model, val_loader, dev, fwd, amp_dtype, num_classes)
            record.update(
                {
                    "val_acc": rep["accuracy"],
                    "val_macro_f1": rep["macro_f1"],
                    "val_mean_class_acc": rep["mean_class_acc"],
                    "val_loss": rep["loss"],
                    "val_per_class_recall": rep["per_class_recall"],
                    "val_confusion": rep["confusion"],
                    "val_n": rep["n"],
                }
            )
            for name, loader in extra_eval_loaders.items():
                r = _evaluate(eval_model, loader, dev, fwd, amp_dtype, num_classes)
                record.update(
                    {
                        f"{name}_acc": r["accuracy"],
                        f"{name}_macro_f1": r["macro_f1"],
                        f"{name}_mean_class_acc": r["mean_class_acc"],
                    }
                )
        epoch_time = time.perf_counter() - t0
        record["epoch_time_s"] = epoch_time
        record["train_time_s"] = train_time
        record["images_per_s"] = n_all / max(train_time, 1e-9)
        history.append(record)
        improved = do_eval and (not best or record["val_acc"] > best.get("val_acc", -1.0))
        if improved:
            best, best_epoch = dict(record), epoch + 1
        if main:
            append_jsonl(metrics_path, record)
            if improved:
                atomic_torch_save(
                    {
                        "format": CHECKPOINT_FORMAT,
                        "epoch": epoch + 1,
                        "model": base_model.state_dict(),
                        "record": record,
                        "train_config": _cfg_dict(cfg),
                        "seed": seed,
                    },
                    best_path,
                )
            if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs:
                _save_last(epoch + 1)
            _status_summary("running" if epoch + 1 < cfg.epochs else "completed")
            tqdm.write(_epoch_line(record, cfg.epochs, extra_eval_loaders, best, best_epoch))
        ddp.barrier()
    epoch_bar.close()
    if not history:
        raise ValueError(f"nothing to train or resume in {run_dir}: no epoch was run (train.epochs={cfg.epochs})")
    if start_epoch >= cfg.epochs and main:
        print(f"{last_path} already holds all {cfg.epochs} epochs; nothing left to train", flush=True)
    _status_summary("completed")
    return FitResult(
        run_dir=run_dir,
        history=history,
        last=history[-1],
        best=best,
        best_epoch=best_epoch,
        checkpoint_last=last_path,
        checkpoint_best=best_path,
        eval_is_test=eval_is_test,
    )


def _train_step(
    model: nn.Module,
    batch: dict,
    criterion: Callable,
    epoch0: int,
    fwd: Callable,
    optimizer: torch.optim.Optimizer,
    sam: SAM | None,
    scaler: Any,
    amp_dtype: torch.dtype | None,
    grad_clip: float,
    epoch: int,
    step: int,
    last_path: Path,
) -> tuple[dict, torch.Tensor]:
    """One optimisation step (two passes under SAM, the same loss in both). Returns (parts, first-pass logits)."""
    dev_type = batch["label"].device.type

    def _loss() -> tuple[torch.Tensor, dict, torch.Tensor]:
        ctx = torch.autocast(dev_type, dtype=amp_dtype) if amp_dtype is not None else _null()
        with ctx:
            out = fwd(model, batch)
            loss, parts = criterion(out, batch, epoch0)
        value = float(loss.detach())
        if not math.isfinite(value):
            where = f"epoch {epoch + 1} step {step + 1}"
            keep = f"the last good checkpoint {last_path} is kept" if last_path.exists() else "no checkpoint yet"
            raise NonFiniteLossError(
                f"training loss is {value} at {where}; stopping ({keep}). Lower train.lr, "
                "enable train.grad_clip or check the data for broken images/labels"
            )
        parts = dict(parts)
        parts.setdefault("loss", value)
        return loss, parts, _logits(out)

    def _clip() -> None:
        if grad_clip and grad_clip > 0:
            nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)

    loss, parts, logits = _loss()
    if sam is None:
        if scaler is not None:
            scaler.scale(loss).backward()
            if grad_clip:
                scaler.unscale_(optimizer)
            _clip()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            _clip()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return parts, logits
    # SAM (Foret et al. Alg. 1): ascent to w + e(w), gradient there, descent from w.
    if scaler is not None:
        scaler.scale(loss).backward()
        inv = 1.0 / scaler.get_scale()
        for g in optimizer.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    p.grad.mul_(inv)  # unscaled first-pass gradient (non-finite -> no perturbation)
    else:
        loss.backward()
    sam.first_step(zero_grad=True)
    try:
        loss2, _, _ = _loss()
    except NonFiniteLossError:
        sam.restore()
        raise
    if scaler is not None:
        scaler.scale(loss2).backward()
        scaler.unscale_(optimizer)
        _clip()
        sam.restore()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
    else:
        loss2.backward()
        _clip()
        sam.second_step(zero_grad=True)
    return parts, logits


def _epoch_line(rec: dict, epochs: int, extra: Mapping[str, Any], best: dict, best_epoch: int) -> str:
    """One printed summary line per epoch."""
    parts = [f"epoch {rec['epoch']}/{epochs}", f"loss {rec.get('train_loss') or float('nan'):.4f}"]
    terms = [
        f"{k[6:]} {v:.3f}"
        for k, v in rec.items()
        if k.startswith("train_") and k[6:] not in ("loss", "acc", "samples", "time_s") and isinstance(v, float)
    ]
    if terms:
        parts[-1] += f" ({', '.join(terms)})"
    parts.append(f"train {_fmt_pct(rec.get('train_acc'))}")
    if "val_acc" in rec:
        parts.append(f"val {_fmt_pct(rec['val_acc'])} (F1 {rec['val_macro_f1']:.3f})")
        for name in extra:
            parts.append(f"{name} {_fmt_pct(rec.get(f'{name}_acc'))}")
    parts.append(f"lr {rec['lr']:.2e}")
    parts.append(f"{rec['epoch_time_s']:.1f}s {rec['images_per_s']:.0f} img/s")
    if best:
        parts.append(f"best {_fmt_pct(best.get('val_acc'))} @ {best_epoch}")
    return " | ".join(parts)


__all__ = [
    "BEST_ON_TEST",
    "CheckpointError",
    "FitResult",
    "NonFiniteLossError",
    "build_optimizer",
    "build_scheduler",
    "epoch_seed",
    "fit",
    "load_checkpoint",
    "resolve_amp",
    "rng_state",
    "seed_epoch",
    "set_rng_state",
]
