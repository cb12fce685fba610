"""``fit()``: the training loop of the workbook (the release's recipe, made resumable and honest).

What one call does (docs/architecture.md, "The data flow of one training run"):

- optimizer Adam / AdamW / SGD, optionally wrapped in SAM (:mod:`orsalib.engine.sam`; the release: SAM around Adam,
  the same loss in both passes); per-epoch schedule exponential (release: gamma 0.98) / cosine / step / none;
- AMP: bf16 on CPU and CUDA, fp16 with a GradScaler on CUDA (``amp="auto"``: bf16 on CUDA, none on CPU);
  channels-last and ``torch.compile`` when asked (CPU and CUDA); fused optimizer updates and a vectorised SAM
  (docs/speed.md); gradient clipping; ``max_steps_per_epoch`` cap;
- DDP when ``torch.distributed`` is initialised (see :mod:`orsalib.engine.ddp`): rank 0 logs and checkpoints;
- evaluation every ``eval_every`` epochs (and always after the last) on ``val_loader`` and ``extra_eval_loaders``;
- ``run_dir/metrics.jsonl``: one record per epoch (``epoch`` is 1-based there and in the summary; the criterion
  receives the 0-based epoch, docs/contracts.md); ``run_dir/summary.json`` with BOTH the last and the best epoch;
- checkpoints, written atomically: ``run_dir/checkpoints/last.pt`` (everything needed to resume: model, optimizer,
  SAM, scheduler, scaler, all RNG states, history) and ``best.pt`` (model weights + the epoch's record);
- exact resume: every random stream is a function of ``(seed, epoch[, rank])``: each epoch re-seeds python / numpy /
  torch (dropout, drop-path) from ``(seed, epoch, rank)`` and the loader's sampler from ``(seed, epoch)``; the
  augmentation of a :class:`orsalib.data.loaders.FERDataset` is seeded per draw from ``(seed, epoch, slot)`` (any
  number of workers, any rank). A run killed anywhere and resumed ends with the same weights as an uninterrupted
  run (bit-identical on CPU; on CUDA up to non-deterministic kernels);
- ``last.pt`` is written whenever ``best.pt`` is, and first, so ``best.pt`` is never ahead of ``last.pt``; a resume
  rewrites a ``best.pt`` that a kill between the two writes left behind; temp files of interrupted writes are removed
  when a run starts;
- a non-finite loss stops the run with :class:`NonFiniteLossError` naming the epoch and step; the last good
  checkpoint stays untouched. Any exception that stops a run leaves ``"status": "failed: <reason>"`` in
  ``summary.json``.

:func:`fit` is a thin wrapper around :class:`Trainer` (setup -> resume -> per epoch: train_epoch, evaluate,
checkpoint, summary); one optimisation step is :func:`train_step` on a :class:`StepState`.

The best epoch is selected on ``val_loader``. When that split is the test split (``eval_is_test=True``, as in the
release, which evaluates every epoch on ``valid/`` = the test split and reports the best epoch) the summary says so:
the best-epoch number is optimistic; the last-epoch number is the honest one.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..errors import CheckpointError
from ..utils import (
    append_jsonl,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    resolve_device,
    save_run_config,
    to_json,
)
from . import ddp
from .evaluate import Forward, autocast, batch_to_device, default_forward, evaluate_loader, unpack_output
from .sam import SAM
from .state import epoch_seed, load_checkpoint, rng_state, seed_epoch, set_rng_state

CHECKPOINT_FORMAT = "orsalib.trainer/1"
BEST_ON_TEST = "evaluation split (= test split; optimistic, as the release)"
BEST_ON_VAL = "validation split (held out from the test split)"

Criterion = Callable[[Any, dict, int], tuple[torch.Tensor, dict]]
"""``criterion(out, batch, epoch0) -> (loss, parts)`` (``orsalib.losses.build_criterion``; 0-based epoch)."""


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
def _fast_update(params: list[torch.Tensor]) -> dict[str, bool]:
    """``fused=True`` (one C++/CUDA kernel over all tensors) when every parameter is a floating-point tensor on the
    CPU or a CUDA device, else ``foreach=True`` (vectorised ``torch._foreach_*``): never the per-tensor loop."""
    ok = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return {"fused": True} if ok else {"foreach": True}


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, SAM | None]:
    """The base optimizer over the trainable parameters (fused / foreach update), and its SAM wrapper when ``cfg.sam``.

    Build it after the model is on its device: the fused update is chosen for CPU and CUDA parameters.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (every parameter has requires_grad=False)")
    fast = _fast_update(params)
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fast)
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fast)
    elif cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **fast)
    else:
        raise ValueError(f"train.optimizer={cfg.optimizer!r} is not allowed; choose adam, adamw or sgd")
    sam = SAM(opt, rho=cfg.sam_rho, adaptive=bool(getattr(cfg, "sam_adaptive", False))) if cfg.sam else None
    return opt, sam


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler | None:
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
    """The autocast dtype: ``auto`` = bf16 on CUDA, none on CPU; ``bf16`` on CPU and CUDA; ``fp16`` on CUDA only.

    bf16 on CPU pays where the CPU has bf16 instructions (AVX512-BF16 / AMX; docs/speed.md). fp16 needs the
    GradScaler of a GPU run: on a CPU device it resolves to None (AMP off).
    """
    if amp not in ("auto", "none", "bf16", "fp16"):
        raise ValueError(f"train.amp={amp!r} is not allowed; choose auto, none, bf16 or fp16")
    if amp == "none" or (device.type != "cuda" and amp != "bf16"):
        return None
    if amp == "fp16":
        return torch.float16
    if device.type == "cpu":
        _note_emulated_bf16()
    return torch.bfloat16


_BF16_NOTED: list[bool] = []


def _note_emulated_bf16() -> None:
    """One line, once per process, where bf16 autocast runs on a CPU without bf16 instructions (slower than fp32)."""
    from ..priors.fast import bf16_native

    if not _BF16_NOTED and not bf16_native("cpu"):
        _BF16_NOTED.append(True)
        print("train.amp=bf16 on a CPU without avx512_bf16 / amx_bf16: emulated, likely slower than fp32 "
              "(--set train.amp=none)", flush=True)  # fmt: skip


def _tqdm_disabled() -> bool:
    """No progress bar: ``TQDM_DISABLE`` set, or a headless run (``ORSA_HEADLESS``: an executed notebook keeps every
    redraw of a bar as output, so there the line per epoch is the progress)."""
    if os.environ.get("ORSA_HEADLESS", "").strip().lower() not in ("", "0", "false", "no"):
        return True
    return os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")


def _fmt_pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"


def _cfg_dict(cfg: TrainConfig) -> dict:
    return asdict(cfg) if is_dataclass(cfg) else dict(vars(cfg))


# ----------------------------------------------------------------------------- one optimisation step
@dataclass
class StepState:
    """Everything one optimisation step needs besides the batch.

    Attributes:
        model: the module that is trained (the DDP / compiled wrapper when there is one).
        criterion: ``criterion(out, batch, epoch0) -> (loss, parts)``.
        forward: ``forward(model, batch) -> out``.
        optimizer: the base optimizer (also the one inside ``sam``).
        sam: the SAM wrapper, or None for plain steps.
        scaler: the fp16 ``GradScaler``, or None.
        amp_dtype: the autocast dtype, or None (AMP off).
        grad_clip: max gradient norm (0 = off).
        checkpoint_path: ``last.pt``, named by the non-finite-loss message.
    """

    model: nn.Module
    criterion: Criterion
    forward: Forward
    optimizer: torch.optim.Optimizer
    sam: SAM | None = None
    scaler: torch.amp.GradScaler | None = None
    amp_dtype: torch.dtype | None = None
    grad_clip: float = 0.0
    checkpoint_path: Path | None = None


def _forward_loss(st: StepState, batch: dict, epoch: int, step: int) -> tuple[torch.Tensor, dict, torch.Tensor]:
    """Loss, its parts (floats, with ``loss``) and the logits of one forward pass; a NaN/inf loss raises."""
    with autocast(batch["label"].device.type, st.amp_dtype):
        out = st.forward(st.model, batch)
        loss, parts = st.criterion(out, batch, epoch)
    value = float(loss.detach())
    if not math.isfinite(value):
        path = st.checkpoint_path
        keep = f"the last good checkpoint {path} is kept" if path is not None and path.exists() else "no checkpoint yet"
        raise NonFiniteLossError(
            f"training loss is {value} at epoch {epoch + 1} step {step + 1}; stopping ({keep}). Lower train.lr, "
            "enable train.grad_clip or check the data for broken images/labels"
        )
    parts = dict(parts)
    parts.setdefault("loss", value)
    return loss, parts, unpack_output(out)[0]


def _clip(st: StepState) -> None:
    if st.grad_clip and st.grad_clip > 0:
        nn.utils.clip_grad_norm_([p for g in st.optimizer.param_groups for p in g["params"]], st.grad_clip)


def _plain_step(st: StepState, loss: torch.Tensor) -> None:
    """Backward + (clipped) optimizer step, through the GradScaler when there is one."""
    if st.scaler is not None:
        st.scaler.scale(loss).backward()
        if st.grad_clip:
            st.scaler.unscale_(st.optimizer)
        _clip(st)
        st.scaler.step(st.optimizer)
        st.scaler.update()
    else:
        loss.backward()
        _clip(st)
        st.optimizer.step()
    st.optimizer.zero_grad(set_to_none=True)


def _sam_step(st: StepState, loss: torch.Tensor, batch: dict, epoch: int, step: int) -> None:
    """SAM (Foret et al. Alg. 1): ascent to w + e(w), gradient there, descent from w (the same loss both passes)."""
    sam, scaler = st.sam, st.scaler
    if scaler is not None:
        scaler.scale(loss).backward()
        inv = 1.0 / scaler.get_scale()
        for g in st.optimizer.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    p.grad.mul_(inv)  # unscaled first-pass gradient (non-finite -> no perturbation)
    else:
        loss.backward()
    sam.first_step(zero_grad=True)
    try:
        loss2, _, _ = _forward_loss(st, batch, epoch, step)
    except NonFiniteLossError:
        sam.restore()
        raise
    if scaler is not None:
        scaler.scale(loss2).backward()
        scaler.unscale_(st.optimizer)
        _clip(st)
        sam.restore()
        scaler.step(st.optimizer)
        scaler.update()
        st.optimizer.zero_grad(set_to_none=True)
    else:
        loss2.backward()
        _clip(st)
        sam.second_step(zero_grad=True)


def train_step(st: StepState, batch: dict, epoch: int, step: int = 0) -> tuple[dict, torch.Tensor]:
    """One optimisation step (two passes under SAM, the same loss in both).

    Args:
        st: model, criterion, optimizer, SAM, scaler, AMP and clipping of the run.
        batch: a contract batch already on the device.
        epoch: the 0-based epoch (given to the criterion; 1-based in the non-finite-loss message).
        step: the 0-based step in the epoch (for the message).

    Returns:
        ``(parts, logits)``: the loss terms of the first pass as floats (with ``loss``) and its logits (B, C).
    """
    if st.sam is None:
        loss, parts, logits = _forward_loss(st, batch, epoch, step)
        _plain_step(st, loss)
        return parts, logits
    with reuse_priors(st.model):  # in-model priors of cached mode: computed once for both passes
        loss, parts, logits = _forward_loss(st, batch, epoch, step)
        _sam_step(st, loss, batch, epoch, step)
    return parts, logits


def cpp_compiler() -> str | None:
    """The C++ compiler inductor's CPU backend would use (``$CXX``, else ``g++`` / ``c++`` / ``clang++``), or None."""
    import shutil

    for name in (os.environ.get("CXX", ""), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def compile_for_training(model: nn.Module, device: torch.device) -> nn.Module:
    """``torch.compile(model)``, or ``model`` itself with one printed line where it cannot be compiled (a CPU device
    without a C++ compiler for inductor's CPU backend).

    On a CPU the kernels are compiled in this process (``compile_threads=1`` unless ``TORCHINDUCTOR_COMPILE_THREADS``
    says otherwise): with inductor's pool of compile workers beside it, the training steps after the compilation ran
    several times slower on the 2-core machine (docs/speed.md).
    """
    if device.type == "cpu":
        if cpp_compiler() is None:
            print("train.compile: no C++ compiler (g++ / clang++) for inductor's CPU backend; training eagerly",
                  flush=True)  # fmt: skip
            return model
        if not os.environ.get("TORCHINDUCTOR_COMPILE_THREADS"):
            import torch._inductor.config as inductor_config

            inductor_config.compile_threads = 1
    return torch.compile(model)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def reuse_priors(model: nn.Module) -> contextlib.AbstractContextManager:
    """The model's ``reuse_priors()`` context (ORSANet: in-model priors computed once per image), else a no-op."""
    ctx = getattr(unwrap_model(model), "reuse_priors", None)
    return ctx() if callable(ctx) else contextlib.nullcontext()


# ----------------------------------------------------------------------------- the trainer
class Trainer:
    """One training run: :meth:`setup`, :meth:`resume`, then per epoch :meth:`train_epoch`, :meth:`evaluate`,
    :meth:`save_checkpoint` and :meth:`write_summary`; :meth:`run` does all of it (what :func:`fit` calls).

    The arguments are those of :func:`fit` (less ``resume``, which :meth:`run` takes).
    """

    def __init__(
        self,
        model: nn.Module,
        train_loader: Any,
        val_loader: Any,
        criterion: Criterion,
        cfg: TrainConfig,
        run_dir: str | Path,
        *,
        device: str | torch.device = "auto",
        seed: int = 0,
        eval_is_test: bool = True,
        forward: Forward | None = None,
        class_names: list[str] | None = None,
        extra_eval_loaders: Mapping[str, Any] | None = None,
        config_to_save: Any = None,
        num_classes: int | None = None,
    ) -> None:
        self.model, self.train_loader, self.val_loader = model, train_loader, val_loader
        self.criterion, self.cfg, self.seed, self.eval_is_test = criterion, cfg, seed, eval_is_test
        self.forward = forward or default_forward
        self.class_names, self.config_to_save = class_names, config_to_save
        self.extra_eval_loaders = dict(extra_eval_loaders or {})
        self.num_classes = len(class_names) if num_classes is None and class_names else num_classes
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.last_path, self.best_path = self.ckpt_dir / "last.pt", self.ckpt_dir / "best.pt"
        self.metrics_path, self.summary_path = self.run_dir / "metrics.jsonl", self.run_dir / "summary.json"
        self.distributed, self.main = ddp.is_distributed(), ddp.is_main_process()
        if self.distributed and torch.cuda.is_available() and str(device) != "cpu":
            self.device = torch.device("cuda", torch.cuda.current_device())
        else:
            self.device = device if isinstance(device, torch.device) else resolve_device(str(device))
        self.quiet = (not self.main) or _tqdm_disabled()
        self.history: list[dict] = []
        self.best: dict = {}
        self.best_epoch = self.start_epoch = self.global_step = 0

    # --- setup and resume
    def setup(self) -> None:
        """Output folder and config; model on the device; optimizer, SAM, schedule, AMP; DDP / compile wrappers."""
        cfg, dev = self.cfg, self.device
        if self.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.remove_temp_files()
            if self.config_to_save is not None:
                save_run_config(self.run_dir, self.config_to_save)
        torch.manual_seed(self.seed)
        self.amp_dtype = resolve_amp(cfg.amp, dev)
        self.channels_last = bool(cfg.channels_last)
        self.model.to(dev)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer, self.sam = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        train_model: nn.Module = self.model
        if self.distributed:
            ids = [dev.index] if dev.type == "cuda" else None
            train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=True)
        compiled = bool(cfg.compile)
        self.train_model = compile_for_training(train_model, dev) if compiled else train_model
        self.eval_model = compile_for_training(self.model, dev) if compiled else self.model
        self.step = StepState(
            model=self.train_model,
            criterion=self.criterion,
            forward=self.forward,
            optimizer=self.optimizer,
            sam=self.sam,
            scaler=self.scaler,
            amp_dtype=self.amp_dtype,
            grad_clip=cfg.grad_clip,
            checkpoint_path=self.last_path,
        )
        n_batches = len(self.train_loader)
        cap = cfg.max_steps_per_epoch
        self.steps_per_epoch = min(n_batches, cap) if cap else n_batches

    def remove_temp_files(self) -> list[Path]:
        """Delete the temp files that interrupted atomic checkpoint writes left in ``checkpoints/``."""
        stale = [p for name in ("last.pt", "best.pt") for p in self.ckpt_dir.glob(f".{name}.*.tmp")]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def resume(self, requested: bool = True) -> None:
        """Continue from ``last.pt`` when ``requested`` and it exists (model, optimizer, RNG, history); else start
        from epoch 1 (a stale ``metrics.jsonl`` is removed)."""
        if requested and self.last_path.exists():
            self._load_last()
        elif self.main:
            if requested:
                print(f"resume requested but {self.last_path} does not exist; starting from epoch 1", flush=True)
            if self.metrics_path.exists():
                self.metrics_path.unlink()
        ddp.barrier()

    def _load_last(self) -> None:
        ckpt = load_checkpoint(self.last_path, map_location="cpu")
        try:
            self.model.load_state_dict(ckpt["model"])
            (self.sam or self.optimizer).load_state_dict(ckpt["optimizer"])
            if self.scheduler is not None and ckpt.get("scheduler") is not None:
                self.scheduler.load_state_dict(ckpt["scheduler"])
            if self.scaler is not None and ckpt.get("scaler") is not None:
                self.scaler.load_state_dict(ckpt["scaler"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(
                f"checkpoint {str(self.last_path)!r} does not match this model/optimizer "
                f"(different architecture or train config?): {str(e)[:300]}"
            ) from e
        set_rng_state(ckpt["rng"])
        self.history = list(ckpt.get("history", []))
        self.best, self.best_epoch = dict(ckpt.get("best") or {}), int(ckpt.get("best_epoch", 0))
        self.start_epoch, self.global_step = int(ckpt["epoch"]), int(ckpt.get("global_step", 0))
        if self.main:  # metrics.jsonl = the checkpoint's history (drops lines of epochs after the last checkpoint)
            atomic_write_text(self.metrics_path, "".join(to_json(h, indent=None) + "\n" for h in self.history))
            self._repair_best()
            print(f"resumed from {self.last_path} after epoch {self.start_epoch}/{self.cfg.epochs}", flush=True)

    def _repair_best(self) -> None:
        """Rewrite ``best.pt`` when a kill between the writes of ``last.pt`` and ``best.pt`` left it behind (the best
        epoch is then the checkpoint's epoch, whose weights were just loaded)."""
        if not self.best or self.best_epoch != self.start_epoch:
            return
        try:
            behind = int(load_checkpoint(self.best_path).get("epoch", 0)) != self.best_epoch
        except CheckpointError:
            behind = True
        if behind:
            self.save_best(self.best)

    # --- one epoch
    def train_epoch(self, epoch: int) -> tuple[dict[str, Any], float]:
        """Train the 0-based ``epoch``: re-seed from ``(seed, epoch)``, run the steps, step the schedule.

        Returns:
            ``(record, train_time_s)``: the epoch's training metrics (all-reduced over ranks) and its duration.
        """
        seed_epoch(self.seed, epoch, self.train_loader)
        self.train_model.train()
        lr = self.optimizer.param_groups[0]["lr"]
        t0 = time.perf_counter()
        sums, n_seen, correct = self._run_steps(epoch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        train_time = time.perf_counter() - t0
        record = self._train_record(epoch, lr, sums, n_seen, correct, train_time)
        if self.scheduler is not None:
            self.scheduler.step()
        return record, train_time

    def _run_steps(self, epoch: int) -> tuple[dict[str, float], int, torch.Tensor]:
        """The optimisation steps of one epoch; per-sample sums of the loss parts, samples seen, correct (tensor)."""
        sums: dict[str, float] = {}
        n_seen, correct = 0, torch.zeros((), dtype=torch.long, device=self.device)
        total, cfg = self.steps_per_epoch, self.cfg
        bar = getattr(self, "_bar", None)  # the training's one bar (None: quiet, or an epoch run on its own)
        for step, batch in enumerate(self.train_loader):
            if step >= total:
                break
            batch = batch_to_device(batch, self.device, self.channels_last)
            parts, logits = train_step(self.step, batch, epoch, step)
            bs = int(batch["label"].shape[0])
            n_seen += bs
            correct += (logits.detach().argmax(1) == batch["label"]).sum()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v) * bs
            self.global_step += 1
            if cfg.log_every and self.main and (step + 1) % cfg.log_every == 0:
                tqdm.write(f"  epoch {epoch + 1} step {step + 1}/{total} loss {parts.get('loss', 0):.4f}")
            if bar is not None:
                bar.set_postfix_str(f"epoch {epoch + 1}/{cfg.epochs} loss {parts.get('loss', float('nan')):.3f}",
                                    refresh=False)  # fmt: skip
                bar.update(1)
        return sums, n_seen, correct

    def _train_record(
        self, epoch: int, lr: float, sums: dict[str, float], n_seen: int, correct: torch.Tensor, train_time: float
    ) -> dict[str, Any]:
        keys = sorted(sums)
        tot = ddp.all_reduce_sum([sums[k] for k in keys] + [n_seen, float(correct.item()), train_time], self.device)
        n_all = max(tot[len(keys)], 1.0)
        record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
        phase = getattr(self.criterion, "phase", None)
        if callable(phase):
            record["phase"] = phase(epoch)
        record["train_loss"] = tot[keys.index("loss")] / n_all if "loss" in keys else None
        for i, k in enumerate(keys):
            if k != "loss":
                record[f"train_{k}"] = tot[i] / n_all
        record["train_acc"] = tot[len(keys) + 1] / n_all
        record["train_samples"] = int(n_all)
        return record

    def evaluate(self) -> dict[str, Any]:
        """The evaluation part of an epoch record: ``val_*`` on ``val_loader``, ``<name>_*`` on the extra loaders."""
        rep = evaluate_loader(
            self.eval_model, self.val_loader, self.device, self.forward, self.amp_dtype, self.num_classes
        )
        out = {
            "val_acc": rep["accuracy"],
            "val_macro_f1": rep["macro_f1"],
            "val_mean_class_acc": rep["mean_class_acc"],
            "val_loss": rep["loss"],
            "val_per_class_recall": rep["per_class_recall"],
            "val_confusion": rep["confusion"],
            "val_n": rep["n"],
        }
        for name, loader in self.extra_eval_loaders.items():
            r = evaluate_loader(self.eval_model, loader, self.device, self.forward, self.amp_dtype, self.num_classes)
            out.update(
                {
                    f"{name}_acc": r["accuracy"],
                    f"{name}_macro_f1": r["macro_f1"],
                    f"{name}_mean_class_acc": r["mean_class_acc"],
                }
            )
        return out

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """Train, evaluate (every ``eval_every`` epochs and after the last), log, checkpoint; returns the record."""
        cfg = self.cfg
        t0 = time.perf_counter()
        record, train_time = self.train_epoch(epoch)
        do_eval = (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs
        if do_eval:
            record.update(self.evaluate())
        record["epoch_time_s"] = time.perf_counter() - t0
        record["train_time_s"] = train_time
        record["images_per_s"] = record["train_samples"] / max(train_time, 1e-9)
        self.history.append(record)
        improved = do_eval and (not self.best or record["val_acc"] > self.best.get("val_acc", -1.0))
        if improved:
            self.best, self.best_epoch = dict(record), epoch + 1
        if self.main:
            append_jsonl(self.metrics_path, record)
            if improved or (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs:
                self.save_checkpoint(epoch + 1)  # last before best: best.pt is never ahead of last.pt
            if improved:
                self.save_best(record)
            self.write_summary("running" if epoch + 1 < cfg.epochs else "completed")
            tqdm.write(_epoch_line(record, cfg.epochs, self.extra_eval_loaders, self.best, self.best_epoch))
        ddp.barrier()
        return record

    # --- files
    def save_checkpoint(self, epoch_done: int) -> None:
        """``last.pt`` after ``epoch_done`` epochs: everything :meth:`resume` needs (written atomically)."""
        payload = {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch_done,
            "global_step": self.global_step,
            "model": self.model.state_dict(),
            "optimizer": (self.sam or self.optimizer).state_dict(),
            "sam": self.sam is not None,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rng_state(),
            "sampler": {"next_epoch": epoch_done, "seed": self.seed},
            "history": self.history,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "seed": self.seed,
            "train_config": _cfg_dict(self.cfg),
        }
        atomic_torch_save(payload, self.last_path)

    def save_best(self, record: dict[str, Any]) -> None:
        """``best.pt``: the model weights of the best epoch and its record (written atomically)."""
        payload = {
            "format": CHECKPOINT_FORMAT,
            "epoch": record["epoch"],
            "model": self.model.state_dict(),
            "record": record,
            "train_config": _cfg_dict(self.cfg),
            "seed": self.seed,
        }
        atomic_torch_save(payload, self.best_path)

    def summary(self, status: str) -> dict[str, Any]:
        """The content of ``summary.json``: status, last and best epoch, where the best was selected, checkpoints."""
        last = self.history[-1] if self.history else {}
        return {
            "status": status,
            "epochs_completed": len(self.history),
            "epochs": self.cfg.epochs,
            "last": last,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "last_epoch": last.get("epoch", 0),
            "selection_metric": "val_acc",
            "best_selected_on": BEST_ON_TEST if self.eval_is_test else BEST_ON_VAL,
            "eval_is_test": self.eval_is_test,
            "class_names": self.class_names,
            "checkpoint_last": str(self.last_path),
            "checkpoint_best": str(self.best_path),
            "seed": self.seed,
        }

    def write_summary(self, status: str) -> None:
        """Write ``summary.json`` (rank 0 only)."""
        if self.main:
            atomic_write_json(self.summary_path, self.summary(status))

    # --- the whole run
    def run(self, resume: bool = False) -> FitResult:
        """Set up, resume if asked, train the remaining epochs; returns the :class:`FitResult`.

        An exception (a non-finite loss, a damaged checkpoint, an interrupt, ...) is re-raised after
        ``summary.json`` says ``"status": "failed: <reason>"``.
        """
        try:
            return self._run(resume)
        except (Exception, KeyboardInterrupt) as e:
            self._write_failed(e)
            raise

    def _write_failed(self, e: BaseException) -> None:
        first = str(e).splitlines()[0][:300] if str(e) else ""
        if self.main and self.run_dir.is_dir():
            try:
                self.write_summary(f"failed: {type(e).__name__}" + (f": {first}" if first else ""))
            except OSError:  # a full or read-only disk must not hide the original error
                pass

    def _run(self, resume: bool) -> FitResult:
        self.setup()
        self.resume(resume)
        epochs = self.cfg.epochs
        # one bar per training, over the steps of every epoch (none when quiet or headless: a line per epoch instead)
        steps = self.steps_per_epoch
        self._bar = None if self.quiet else tqdm(total=epochs * steps, initial=self.start_epoch * steps, desc="train")
        try:
            for epoch in range(self.start_epoch, epochs):
                self.run_epoch(epoch)
        finally:
            if self._bar is not None:
                self._bar.close()
            self._bar = None
        if not self.history:
            raise ValueError(f"nothing to train or resume in {self.run_dir}: no epoch was run (train.epochs={epochs})")
        if self.start_epoch >= epochs and self.main:
            print(f"{self.last_path} already holds all {epochs} epochs; nothing left to train", flush=True)
        self.write_summary("completed")
        return self.result()

    def result(self) -> FitResult:
        return FitResult(
            run_dir=self.run_dir,
            history=self.history,
            last=self.history[-1],
            best=self.best,
            best_epoch=self.best_epoch,
            checkpoint_last=self.last_path,
            checkpoint_best=self.best_path,
            eval_is_test=self.eval_is_test,
        )


def fit(
    model: nn.Module,
    train_loader: Any,
    val_loader: Any,
    criterion: Criterion,
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    device: str | torch.device = "auto",
    seed: int = 0,
    eval_is_test: bool = True,
    resume: bool = False,
    forward: Forward | None = None,
    class_names: list[str] | None = None,
    extra_eval_loaders: Mapping[str, Any] | None = None,
    config_to_save: Any = None,
    num_classes: int | None = None,
) -> FitResult:
    """Train ``model`` with ``criterion`` under the :class:`orsalib.config.TrainConfig` ``cfg`` (a :class:`Trainer`).

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
    trainer = Trainer(
        model,
        train_loader,
        val_loader,
        criterion,
        cfg,
        run_dir,
        device=device,
        seed=seed,
        eval_is_test=eval_is_test,
        forward=forward,
        class_names=class_names,
        extra_eval_loaders=extra_eval_loaders,
        config_to_save=config_to_save,
        num_classes=num_classes,
    )
    return trainer.run(resume=resume)


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
    "StepState",
    "Trainer",
    "build_optimizer",
    "build_scheduler",
    "epoch_seed",
    "fit",
    "load_checkpoint",
    "resolve_amp",
    "rng_state",
    "seed_epoch",
    "set_rng_state",
    "train_step",
]
