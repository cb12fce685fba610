"""DARELoss transfer experiments (ORSANet paper Sec. 4, Tables 7-8): does adding DARELoss help other architectures?

For each model and seed, the same network (same initial weights, same batch order, same augmentation draws) is
trained twice through :func:`orsalib.engine.trainer.fit`: with plain cross-entropy ("without") and with
``CE + dare_weight * DARE`` ("with", :func:`orsalib.losses.dare_loss`, released form by default; no warm-up). The
tables report the LAST epoch (the SpectralFormer protocol reports the last evaluation) and, beside it, the best
epoch selected on the test split (optimistic, as the releases do), as mean +- std over seeds and the paired
difference (with - without) per seed.

- Table 8 analogue (:func:`image_task`): CIFAR-10 (or the digits stand-in) with CrossViT and GFNet; top-1 / top-5.
- Table 7 analogue (:func:`hsi_task`): SpectralFormer pixel-/patch-wise on Indian Pines and Pavia University (real
  .mat files or the semi-synthetic scenes); OA / AA / kappa (:func:`hsi_metrics`).

Both variants of a seed are evaluated on the same test images (pixels); each run keeps its prediction of every test
item in ``per_image.npz`` beside its training folder (:mod:`orsalib.experiments.per_image`; path in the ``per_image``
column), so that the claims pair them item by item (:func:`orsalib.experiments.claims.table7_claims`,
``table8_claims``). :func:`study_config` gives the seeds and test sets of the quick run and of ``study=True``.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix
from torch.utils.data import DataLoader, Dataset

from ..config import TrainConfig
from ..data import transfer as tdata
from ..engine.evaluate import predict
from ..engine.trainer import FitResult, fit
from ..losses import dare_loss
from ..metrics import topk_accuracy
from ..models import create_model, model_meta
from ..paper import TABLE7 as PAPER7
from ..paper import TABLE8 as PAPER8
from ..paper import table7_delta, table8_delta
from ..paths import run_dir
from ..utils import seed_everything
from .claims import SCENE_LABELS
from .parallel import side_by_side
from .per_image import FILE as PER_IMAGE_FILE
from .per_image import column_arrays, write_per_image

# ----------------------------------------------------------------------------- what the papers report
# ORSANet paper, Table 8 (CIFAR-10, top-1 %): gain of DARELoss over the baseline recipe.
PAPER_TABLE8: dict[str, dict[str, float]] = {fam: {"delta_top1": table8_delta(fam)} for fam in PAPER8}
# ORSANet paper, Table 7: SpectralFormer without DARELoss (the baseline row), OA / AA % and kappa (fraction).
PAPER_TABLE7_BASELINE: dict[tuple[str, str], dict[str, float]] = {
    key: {"OA": t["without"]["OA"], "AA": t["without"]["AA"], "kappa": t["without"]["kappa"] / 100}
    for key, t in PAPER7.items()
}


# ----------------------------------------------------------------------------- metrics
def hsi_metrics(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> dict[str, Any]:
    """Overall accuracy, average (per-class) accuracy and Cohen's kappa of a hyperspectral classification.

    Returns:
        ``{"OA": %, "AA": %, "kappa": [-1, 1], "per_class": [% per class, NaN for classes absent from y_true]}``.
        OA and AA in percent, as the SpectralFormer tables.
    """
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-d of the same length, got {t.shape} and {p.shape}")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    cm = confusion_matrix(t, p, labels=np.arange(num_classes))
    support = cm.sum(1)
    per_class = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan) * 100.0
    return {
        "OA": float(accuracy_score(t, p) * 100.0),
        "AA": float(np.nanmean(per_class)),
        "kappa": float(cohen_kappa_score(t, p, labels=np.arange(num_classes))),
        "per_class": [float(x) for x in per_class],
    }


def metrics_from_confusion(confusion: Sequence[Sequence[int]]) -> dict[str, Any]:
    """OA / AA / kappa (same conventions as :func:`hsi_metrics`) from a confusion matrix (rows true)."""
    cm = np.asarray(confusion, dtype=np.float64)
    n = cm.sum()
    support = cm.sum(1)
    per_class = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan) * 100.0
    po = np.trace(cm) / n
    pe = float((cm.sum(0) * cm.sum(1)).sum()) / (n * n)
    kappa = (po - pe) / (1 - pe) if pe < 1 else 1.0
    return {
        "OA": float(po * 100),
        "AA": float(np.nanmean(per_class)),
        "kappa": float(kappa),
        "per_class": [float(x) for x in per_class],
    }


# ----------------------------------------------------------------------------- criterion
class TransferCriterion:
    """``CE + dare_weight * DARE`` (no warm-up); ``dare_weight=0`` is the baseline. Workbook criterion contract."""

    def __init__(self, dare_weight: float = 0.0, form: str = "released", temperature: float = 1.0):
        if dare_weight < 0:
            raise ValueError(f"dare_weight must be >= 0, got {dare_weight}")
        self.dare_weight, self.form, self.temperature = float(dare_weight), form, float(temperature)

    def __call__(self, out: Mapping[str, Any], batch: Mapping[str, Any], epoch: int) -> tuple[torch.Tensor, dict]:
        logits = out["logits"].float()
        y = batch["label"]
        ce = F.cross_entropy(logits, y)
        parts = {"ce": float(ce.detach())}
        loss = ce
        if self.dare_weight > 0:
            dare = dare_loss(logits, y, form=self.form, temperature=self.temperature)
            loss = ce + self.dare_weight * dare
            parts["dare"] = float(dare.detach())
        parts["loss"] = float(loss.detach())
        return loss, parts

    def phase(self, epoch: int) -> str:
        return "ce+dare" if self.dare_weight > 0 else "ce"

    def __repr__(self) -> str:
        return f"TransferCriterion(dare_weight={self.dare_weight}, form={self.form!r}, T={self.temperature})"


# ----------------------------------------------------------------------------- tasks and profiles
@dataclass
class TransferTask:
    """One dataset of a transfer table: train/test sets and how to build each model for it."""

    kind: str  # "image" (top-1/top-5) | "hsi" (OA/AA/kappa)
    name: str  # e.g. "cifar10", "indian_pines"
    train_ds: Dataset
    test_ds: Dataset
    class_names: list[str]
    dataset_label: str
    model_kwargs: dict[str, dict] = field(default_factory=dict)  # model name -> create_model overrides
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


# Sizes per profile. smoke: seconds; cpu: a few minutes per notebook on 2 cores; paper: a GPU and the real data.
IMAGE_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(
        max_train_per_class=12,
        max_test_per_class=6,
        image_size=None,
        epochs=1,
        batch_size=32,
        models={
            "crossvit_cifar_tiny": dict(depth=((1, 1, 0),), embed_dim=(24, 48)),
            "gfnet_cifar_tiny": dict(depth=1, embed_dim=32),
        },
    ),
    "cpu": dict(
        max_train_per_class=100,
        max_test_per_class=50,
        image_size=None,
        epochs=6,
        batch_size=50,
        models={
            "crossvit_cifar_tiny": dict(depth=((1, 1, 0), (1, 1, 0)), embed_dim=(48, 96)),
            "gfnet_cifar_tiny": dict(depth=2, embed_dim=64),
        },
    ),
    # paper scale: 32 px images upsampled inside the model (``input_size``) to each network's native input
    "paper": dict(
        max_train_per_class=None,
        max_test_per_class=None,
        image_size=None,
        epochs=100,
        batch_size=128,
        models={"crossvit_tiny_240": dict(input_size=240), "gfnet_ti": dict(input_size=224)},
    ),
}
HSI_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(
        num_bands=16,
        downsample=4,
        train_scale=0.3,
        max_test=150,
        epochs=1,
        batch_size=64,
        model=dict(depth=3),
        train=dict(lr=1e-3),
    ),
    # cpu: 16 bands, Pavia at 1/4 resolution with 1/10 of its training pixels (Indian Pines keeps its 695), 1,000
    # random test pixels per task, 12 epochs at lr 1e-3 / batch 32 (instead of 5e-4 / 64); see transfer_train_config.
    "cpu": dict(
        num_bands=16,
        downsample=1,
        train_scale=1.0,
        max_test=1000,
        epochs=12,
        batch_size=32,
        pavia=dict(downsample=4, train_scale=0.1),
        model=dict(),
        train=dict(lr=1e-3, eval_every=6),
    ),
    "paper": dict(
        num_bands=None, downsample=1, train_scale=1.0, max_test=None, epochs=300, batch_size=64, model=dict()
    ),
}


def image_task(
    data_root: str | None = None,
    profile: str = "cpu",
    *,
    kind: str = "auto",
    seed: int = 0,
    image_size: int | None = None,
    max_train_per_class: int | None = -1,
    max_test_per_class: int | None = -1,
) -> TransferTask:
    """The Table 8 task: CIFAR-10 from ``data_root`` (batches or folders), else the digits stand-in.

    ``-1`` for a cap / None for ``image_size`` means "the profile's value" (:data:`IMAGE_PROFILES`); 0 = no cap.
    """
    p = IMAGE_PROFILES[profile]
    mtr = p["max_train_per_class"] if max_train_per_class == -1 else max_train_per_class
    mte = p["max_test_per_class"] if max_test_per_class == -1 else max_test_per_class
    size = image_size or p["image_size"]
    train, test, names, label = tdata.load_image_classification(
        data_root or None,
        kind,
        image_size=size,
        max_train_per_class=mtr or None,
        max_test_per_class=mte or None,
        seed=seed,
    )
    nc = len(names)
    kw = {m: dict(o, num_classes=nc) for m, o in p["models"].items()}
    if size:
        for m in kw:
            if "input_size" not in kw[m]:
                kw[m].setdefault("img_size", size)
    return TransferTask(
        "image",
        "digits_standin" if label.startswith(tdata.DIGITS_LABEL) else "cifar10",
        train,
        test,
        names,
        label,
        kw,
        info=dict(
            n_train=len(train),
            n_test=len(test),
            n_test_all=int(getattr(test, "available", len(test))),
            image_size=size or 32,
        ),
    )


def hsi_task(
    scene: str = "indian_pines",
    mode: str = "pixel",
    data_root: str | None = None,
    profile: str = "cpu",
    *,
    split_seed: int = 0,
    scene_seed: int = 0,
    num_bands: int | None = -1,
    max_test: int | None = -1,
) -> TransferTask:
    """The Table 7 task for one scene and mode (``pixel``: 1x1, band_patches 3; ``patch``: 7x7, band_patches 3 on
    Indian Pines / 7 on Pavia). Real files from ``data_root``, else the semi-synthetic scene at the profile's size."""
    if mode not in ("pixel", "patch"):
        raise ValueError(f"mode={mode!r}; choose 'pixel' or 'patch'")
    p = dict(HSI_PROFILES[profile])
    if scene == "pavia_u":
        p.update(p.get("pavia", {}))
    bands = p["num_bands"] if num_bands == -1 else num_bands
    cap = p["max_test"] if max_test == -1 else max_test
    if data_root:
        sc = tdata.load_hsi_scene(scene, data_root)
        scale = 1.0
    else:
        sc = tdata.make_semisynthetic_scene(scene, num_bands=bands, downsample=p["downsample"], seed=scene_seed)
        scale = p["train_scale"]
    patch = 1 if mode == "pixel" else 7
    band_patches = 3 if (mode == "pixel" or scene == "indian_pines") else 7
    train, test = tdata.hsi_datasets(sc, patch, seed=split_seed, train_scale=scale, max_test=cap or None)
    n_test_all = int(np.count_nonzero(tdata.scene_split(sc, seed=split_seed, scale=scale)[1]))
    model = f"spectralformer_{mode}"
    kw = {model: dict(p["model"], num_bands=sc.num_bands, num_classes=sc.num_classes, band_patches=band_patches)}
    label = sc.dataset_label + (f" [test subset {len(test)}]" if cap else "")
    info = dict(
        n_train=len(train),
        n_test=len(test),
        n_test_all=n_test_all,
        bands=sc.num_bands,
        scene_shape=list(sc.gt.shape),
        mode=mode,
        patch=patch,
        band_patches=band_patches,
        scene=scene,
    )
    return TransferTask("hsi", scene, train, test, sc.class_names, label, kw, info)


def transfer_train_config(kind: str, profile: str = "cpu", epochs: int | None = None, **overrides: Any) -> TrainConfig:
    """The optimisation recipe of a transfer task (no SAM, no warm-up; the criterion carries the DARE term).

    HSI: SpectralFormer's recipe, Adam 5e-4 with StepLR(step = epochs // 10, gamma 0.9), batch 64 (the ``smoke`` and
    ``cpu`` profiles raise the lr to 1e-3, and ``cpu`` uses batch 32 and evaluates every 6 epochs).
    Image: AdamW 1e-3 (weight decay 0.05) with a cosine schedule (training from scratch; the paper fine-tunes
    ImageNet weights, which this workbook never downloads).
    """
    prof = (HSI_PROFILES if kind == "hsi" else IMAGE_PROFILES)[profile]
    n = int(epochs or prof["epochs"])
    if kind == "hsi":
        base = dict(optimizer="adam", lr=5e-4, weight_decay=0.0, scheduler="step", step_size=max(1, n // 10), gamma=0.9)
    else:
        base = dict(optimizer="adamw", lr=1e-3, weight_decay=0.05, scheduler="cosine")
    base.update(prof.get("train", {}))
    cfg = TrainConfig(
        epochs=n,
        batch_size=prof["batch_size"],
        sam=False,
        lsce_warmup_epochs=0,
        dare=False,
        amp="auto",
        eval_every=1,
        checkpoint_every=max(1, n),
    )
    cfg = replace(cfg, **{**base, **overrides})
    cfg.eval_every = min(cfg.eval_every, n)
    cfg.validate()
    return cfg


# ----------------------------------------------------------------------------- quick run and powered study
#: ``study=True`` of notebook 70 (Table 8) per profile: the profile's recipe (same models, epochs and training
#: images), every test image of the dataset (``max_test_per_class`` 0) and more seeds. cpu: the digits stand-in has
#: 450 test images (all of them are already in the quick run), so 20 seeds -> 9,000 images x seeds per claim: MDE 1.9
#: points if with and without disagree on 40 % of the images (the small from-scratch models of the cpu profile reach
#: 20-55 % top-1 there), 1.3 at 20 % (CIFAR-10 folders of 1,000 test images: 20,000, 1.3 at 40 %); 10x the quick
#: run's trainings (:data:`STUDY_MINUTES`).
IMAGE_STUDY: dict[str, dict[str, int]] = {
    "smoke": {"n_seeds": 2, "max_test_per_class": 0},
    "cpu": {"n_seeds": 20, "max_test_per_class": 0},
    "paper": {"n_seeds": 3, "max_test_per_class": 0},
}
#: ``study=True`` of notebook 71 (Table 7) per profile: the profile's recipe, every test pixel of each scene
#: (``max_test`` 0) and 5 seeds. cpu: the semi-synthetic Indian Pines (real class map) has 9,554 test pixels and Pavia
#: University at 1/4 resolution 9,746 -> about 48,000 pixels x seeds per claim: OA MDE about 0.8 points at 35 %
#: discordant pixels (AA, which weighs the few pixels of the rarest classes as much as the others, stays wider);
#: 2.5x the quick run's trainings, each evaluated on about 10x more pixels (:data:`STUDY_MINUTES`).
HSI_STUDY: dict[str, dict[str, int]] = {
    "smoke": {"n_seeds": 2, "max_test": 0},
    "cpu": {"n_seeds": 5, "max_test": 0},
    "paper": {"n_seeds": 3, "max_test": 0},
}
#: the expected minutes of ``study=True`` on 2 CPU cores (cpu profile; see the notebooks' title cells)
#: 70: the quick run's 8 trainings took 1.4 minutes (1.6 for the notebook), the study runs 80 -> about 15 minutes;
#: 71: the quick run's 16 trainings took 2.4 minutes (2.6), the study runs 40 (6 minutes) and evaluates each on
#: ~9,600 instead of 1,000 pixels three times (1,000 pixels: 0.2 s) -> about 10 minutes.
STUDY_MINUTES: dict[str, dict[str, float]] = {"image": {"cpu": 15.0}, "hsi": {"cpu": 10.0}}


def study_config(
    kind: str,
    profile: str,
    *,
    study: bool = False,
    seeds: Sequence[int] = (),
    seed: int = 0,
    profile_seeds: Sequence[int] = (),
    **caps: int,
) -> dict[str, Any]:
    """The seeds and test-set caps of notebook 70 (``kind="image"``: ``max_test_per_class``) or 71 (``"hsi"``:
    ``max_test``); the training recipe is the same either way.

    Quick (``study=False``): ``seeds`` or else ``profile_seeds``, and the caps as given (-1: the profile's).
    Powered (``study=True``): :data:`IMAGE_STUDY` / :data:`HSI_STUDY`: every test item (a cap of -1 becomes 0 = no
    cap; one given >= 0 wins) and the study's number of seeds counted from ``seed`` (``seeds`` given still win).

    Returns:
        ``{"seeds": [...], <cap>: value, ...}``.
    """
    if kind not in ("image", "hsi"):
        raise ValueError(f"kind={kind!r}; choose 'image' or 'hsi'")
    plan = (IMAGE_STUDY if kind == "image" else HSI_STUDY).get(profile, {"n_seeds": 3}) if study else {}
    out: dict[str, Any] = {k: (int(plan.get(k, v)) if v == -1 else int(v)) for k, v in caps.items()}
    n = int(plan.get("n_seeds", 0))
    out["seeds"] = [int(s) for s in seeds] or ([seed + k for k in range(n)] if n else [int(s) for s in profile_seeds])
    return out


def study_plan(kind: str, profile: str, runs: pd.DataFrame) -> dict[str, Any]:
    """What ``study=True`` of notebook 70 (``kind="image"``) or 71 (``"hsi"``) runs, from this run's rows (their
    ``n_test_all``: the test items of each dataset), for the statement of what the budget can resolve.

    Returns:
        ``{"settings": text, "seeds": k, "n_study": items x seeds per claim (an int; for HSI ``{"<scene> (<mode>-wise)":
        n}`` as the claims name them), "minutes": the expected minutes on 2 CPU cores (None when not estimated)}``.
    """
    plan = (IMAGE_STUDY if kind == "image" else HSI_STUDY).get(profile, {"n_seeds": 3})
    k = int(plan["n_seeds"])
    minutes = STUDY_MINUTES.get(kind, {}).get(profile)
    if runs.empty or "n_test_all" not in runs:
        return {"settings": f"every test item, {k} seeds", "seeds": k, "n_study": None, "minutes": minutes}
    n_all = runs.groupby("task", sort=False)["n_test_all"].first().astype(int)
    if kind == "image":
        n = int(n_all.max()) * k
        settings = f"the same recipe, all {int(n_all.max()):,} test images, {k} seeds: {n:,} images x seeds per claim"
        return {"settings": settings, "seeds": k, "n_study": n, "minutes": minutes}
    labels = {t: f"{SCENE_LABELS.get(t.split()[0], t.split()[0])} ({_scene_mode(t)}-wise)" for t in n_all.index}
    scenes = {SCENE_LABELS.get(t.split()[0], t.split()[0]): int(v) for t, v in n_all.items()}
    pixels = ", ".join(f"{name} {v:,}" for name, v in scenes.items())
    settings = f"the same recipe, every test pixel ({pixels}), {k} seeds"
    return {"settings": settings, "seeds": k, "n_study": {labels[t]: int(v) * k for t, v in n_all.items()},
            "minutes": minutes}  # fmt: skip


def _scene_mode(task: str) -> str:
    parts = str(task).split()
    return parts[1] if len(parts) > 1 else "pixel"


# ----------------------------------------------------------------------------- the experiment loop
def model_family(name: str) -> str:
    """The registry's ``family`` of a model (``"crossvit"``, ``"gfnet"``, ``"spectralformer"``, ...)."""
    return str(model_meta(name).get("family", name))


class ResizeInput(torch.nn.Module):
    """Upsample the input image to ``size`` (bilinear) before a model built for a larger input (paper scale)."""

    def __init__(self, net: torch.nn.Module, size: int):
        super().__init__()
        self.net, self.size = net, int(size)

    def forward(self, image: torch.Tensor, priors: dict | None = None) -> dict[str, torch.Tensor]:
        if image.shape[-1] != self.size or image.shape[-2] != self.size:
            image = F.interpolate(image, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.net(image, priors)


def build_transfer_model(name: str, overrides: Mapping[str, Any]) -> torch.nn.Module:
    """``create_model(name, **overrides)``; an ``input_size`` override wraps the model in :class:`ResizeInput`."""
    kw = copy.deepcopy(dict(overrides))
    size = kw.pop("input_size", None)
    model = create_model(name, **kw)
    return ResizeInput(model, size) if size else model


def _last_metrics(task: TransferTask, last: Mapping[str, Any], pr: Any) -> dict[str, Any]:
    """Last-epoch metrics: HSI from the trainer's last evaluation (confusion); images from the predictions ``pr``
    of the test set after the last epoch (for top-5)."""
    if task.kind == "hsi":
        return metrics_from_confusion(last["val_confusion"])
    rep = hsi_metrics(pr.labels, pr.logits.argmax(1), task.num_classes)
    return {
        "top1": 100.0 * topk_accuracy(pr.logits, pr.labels, 1),
        "top5": 100.0 * topk_accuracy(pr.logits, pr.labels, min(5, pr.logits.shape[1])),
        "per_class": rep["per_class"],
    }


def _best_metrics(task: TransferTask, best: Mapping[str, Any]) -> dict[str, Any]:
    if not best or "val_confusion" not in best:
        return {}
    m = metrics_from_confusion(best["val_confusion"])
    if task.kind == "image":
        return {"best_top1": m["OA"]}
    return {"best_OA": m["OA"], "best_AA": m["AA"], "best_kappa": m["kappa"]}


def _item_ids(ds: Any, indices: np.ndarray) -> np.ndarray:
    """Ids of test items shared by every run on the same test set: a hyperspectral pixel's flat position
    ``row * width + col`` in its scene, else the item's position in the test set."""
    idx = np.asarray(indices, dtype=np.int64)
    if all(hasattr(ds, a) for a in ("rows", "cols", "padded", "patch")):
        width = int(ds.padded.shape[2]) - 2 * (int(ds.patch) // 2)
        return np.asarray(ds.rows, dtype=np.int64)[idx] * width + np.asarray(ds.cols, dtype=np.int64)[idx]
    return idx


def _write_per_item(path: Any, task: TransferTask, pr: Any) -> str:
    """``per_image.npz`` of one run: ids, labels, predictions (and top-5 correctness of images) on the test set."""
    arrays = column_arrays(_item_ids(task.test_ds, pr.indices), pr.labels, pr.logits, top5=task.kind == "image")
    return str(write_per_image(path, {"test": arrays}))


def _model_specs(task: TransferTask, models: Sequence[str] | Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
    """``{model name: create_model overrides}``: the task's own overrides, updated by ``models`` when a mapping."""
    if isinstance(models, Mapping):
        return {m: {**task.model_kwargs.get(m, {}), **dict(o)} for m, o in models.items()}
    return {m: dict(task.model_kwargs.get(m, {})) for m in models}


def _train_variant(
    task: TransferTask, name: str, kw: Mapping[str, Any], seed: int, crit: TransferCriterion, cfg: TrainConfig,
    out: Any, test_loader: DataLoader, *, device: str, num_workers: int, resume: bool,
) -> tuple[torch.nn.Module, FitResult, float]:  # fmt: skip
    """Build ``name`` from ``seed`` (identical initial weights for both variants) and fit it; returns minutes too."""
    seed_everything(seed)
    model = build_transfer_model(name, kw)
    train_loader = DataLoader(task.train_ds, batch_size=cfg.batch_size, shuffle=True, drop_last=False,
                              num_workers=num_workers, pin_memory=torch.cuda.is_available())  # fmt: skip
    t0 = time.perf_counter()
    res = fit(model, train_loader, test_loader, crit, cfg, out, device=device, seed=seed, eval_is_test=True,
              resume=resume, class_names=task.class_names)  # fmt: skip
    return model, res, (time.perf_counter() - t0) / 60


def _fit_completed(out: Path, epochs: int) -> bool:
    """Whether the ``fit`` folder ``out`` holds a completed run of ``epochs`` epochs."""
    try:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return summary.get("status") == "completed" and int(summary.get("epochs_completed", 0)) >= epochs


def fit_transfer_run(
    task: TransferTask, name: str, kw: Mapping[str, Any], seed: int, weight: float, dare_form: str,
    dare_temperature: float, cfg: TrainConfig, out: str, device: str, resume: bool,
) -> None:  # fmt: skip
    """Train one (model, variant, seed) of :func:`run_dare_comparison` into ``out``; what a worker process runs
    (:mod:`orsalib.experiments.parallel`). The caller reads the run back from disk."""
    crit = TransferCriterion(weight, form=dare_form, temperature=dare_temperature)
    test_loader = DataLoader(task.test_ds, batch_size=max(cfg.batch_size, 128), shuffle=False)
    _train_variant(task, name, kw, seed, crit, cfg, Path(out), test_loader, device=device, num_workers=0,
                   resume=resume)  # fmt: skip


def _comparison_runs(
    task: TransferTask,
    models: Sequence[str] | Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    run_name: str,
    dare_weight: float,
    tag: str,
) -> Iterator[tuple[str, dict, int, str, float, Path]]:
    """``(model, overrides, seed, variant, DARE weight, run folder)`` of every run of :func:`run_dare_comparison`,
    in its order: model, seed, then without / with DARELoss."""
    base = run_dir(run_name) / "transfer" / (task.name + (f"_{tag}" if tag else ""))
    for name, kw in _model_specs(task, models).items():
        for seed in seeds:
            for variant, w in (("without", 0.0), ("with", float(dare_weight))):
                yield name, kw, seed, variant, w, base / name / f"{variant}_seed{seed}"


def comparison_jobs(
    task: TransferTask,
    models: Sequence[str] | Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    cfg: TrainConfig,
    run_name: str,
    *,
    dare_weight: float = 0.1,
    dare_form: str = "released",
    dare_temperature: float = 1.0,
    device: str = "auto",
    resume: bool = False,
    tag: str = "",
) -> list[tuple[str, dict[str, Any]]]:
    """The runs :func:`run_dare_comparison` trains (``(label, fit_transfer_run kwargs)``), less those ``resume``
    finds completed."""
    jobs = []
    for name, kw, seed, variant, w, out in _comparison_runs(task, models, seeds, run_name, dare_weight, tag):
        if resume and _fit_completed(out, cfg.epochs):
            continue
        label = f"{task.name}{f' {tag}' if tag else ''} {name} {variant} DARE seed {seed}"
        jobs.append((label, dict(task=task, name=name, kw=kw, seed=seed, weight=w, dare_form=dare_form,
                                 dare_temperature=dare_temperature, cfg=cfg, out=str(out), device=device,
                                 resume=resume)))  # fmt: skip
    return jobs


def train_side_by_side(jobs: Sequence[tuple[str, dict[str, Any]]], device: str = "auto") -> dict[str, float]:
    """Train ``jobs`` (:func:`comparison_jobs`) in worker processes when the plan has several workers; returns
    ``{run folder: seconds}`` of what was trained (empty: nothing was, the caller trains one at a time)."""
    _, seconds = side_by_side(fit_transfer_run, jobs, device)
    return {kw["out"]: s for (_, kw), s in zip(jobs, seconds)}


def run_dare_comparison(
    task: TransferTask,
    models: Sequence[str] | Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    cfg: TrainConfig,
    run_name: str,
    *,
    dare_weight: float = 0.1,
    dare_form: str = "released",
    dare_temperature: float = 1.0,
    device: str = "auto",
    num_workers: int = 0,
    resume: bool = False,
    tag: str = "",
    trained: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Train every model with and without DARELoss on ``task`` for each seed; one row per (model, variant, seed).

    On a CPU with several cores the runs are trained side by side in worker processes first
    (:func:`train_side_by_side`, :mod:`orsalib.experiments.parallel`) and then read back here.

    Args:
        task: from :func:`image_task` / :func:`hsi_task`.
        models: model names (overrides from ``task.model_kwargs``) or ``{name: overrides}``.
        seeds: run seeds; the two variants of a seed share initial weights, batch order and augmentation draws.
        cfg: the TrainConfig (:func:`transfer_train_config`).
        run_name: runs go to ``outputs/<run_name>/transfer/<task>/<model>/<variant>_seed<k>/``.
        dare_weight, dare_form, dare_temperature: the "with" criterion (paper/release: 0.1, released form, T = 1).
        device: "auto" | "cpu" | "cuda[:N]".
        resume: continue interrupted runs from their last checkpoint.
        tag: extra label of this task in the run folders and rows (e.g. "pixel").
        trained: ``{run folder: seconds}`` of runs the caller already trained (:func:`train_side_by_side` over
            several tasks at once, as :func:`run_table7` does); None: plan and train this task's runs here.

    Returns:
        a DataFrame with columns task, dataset, model, variant ("without"/"with"), seed, the LAST-epoch metrics
        (top1, top5 or OA, AA, kappa), the best-epoch ones (best_*), best_epoch, per_class (list), minutes,
        per_image (the path of the run's per-item predictions on the test set, the same items for every run), n_test
        (items evaluated) and n_test_all (test items of the dataset before any cap).
    """
    test_loader = DataLoader(task.test_ds, batch_size=max(cfg.batch_size, 128), shuffle=False,
                             num_workers=num_workers, pin_memory=torch.cuda.is_available())  # fmt: skip
    if trained is None:  # not planned by the caller: train this task's missing runs side by side here
        jobs = comparison_jobs(task, models, seeds, cfg, run_name, dare_weight=dare_weight, dare_form=dare_form,
                               dare_temperature=dare_temperature, device=device, resume=resume, tag=tag)  # fmt: skip
        trained = train_side_by_side(jobs, device)
    rows = []
    for name, kw, seed, variant, w, out in _comparison_runs(task, models, seeds, run_name, dare_weight, tag):
        crit = TransferCriterion(w, form=dare_form, temperature=dare_temperature)
        model, res, minutes = _train_variant(
            task, name, kw, seed, crit, cfg, out, test_loader, device=device, num_workers=num_workers,
            resume=resume or str(out) in trained,
        )  # fmt: skip
        minutes = trained[str(out)] / 60 if str(out) in trained else minutes
        row = dict(
            task=task.name + (f" {tag}" if tag else ""), dataset=task.dataset_label, model=name,
            family=model_family(name), variant=variant, seed=seed, dare_weight=w, epochs=cfg.epochs,
            last_epoch=res.last["epoch"], best_epoch=res.best_epoch,
        )  # fmt: skip
        pr = predict(model, test_loader, device)  # the last epoch's prediction of every test item
        row.update(_last_metrics(task, res.last, pr))
        row.update(_best_metrics(task, res.best))
        row["minutes"] = minutes
        row["per_image"] = _write_per_item(out / PER_IMAGE_FILE, task, pr)
        row["n_test"], row["n_test_all"] = len(pr.labels), int(task.info.get("n_test_all", len(pr.labels)))
        if task.kind == "hsi":  # per-pixel ids are row * width + col: the claims group pixels into scene blocks
            row["scene_width"] = int(task.info.get("scene_shape", [0, 0])[1])
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- tables
def _fmt(mean: float, std: float, digits: int) -> str:
    if np.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def metric_names(kind: str) -> list[str]:
    return ["top1", "top5"] if kind == "image" else ["OA", "AA", "kappa"]


def paired_differences(runs: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Per (task, model, seed): with - without for each metric (and best_* when present)."""
    keys = ["task", "model", "seed"]
    cols = [m for m in metrics if m in runs] + [f"best_{m}" for m in metrics if f"best_{m}" in runs]
    w = runs[runs.variant == "with"].set_index(keys)[cols]
    wo = runs[runs.variant == "without"].set_index(keys)[cols]
    return (w - wo).dropna(how="all").reset_index()


def _paper_columns(paper: Mapping[str, Mapping[str, float]] | None, metrics: Sequence[str]) -> dict[str, float]:
    """``paper <m> without`` / ``with`` / ``Δ`` for each metric from the paper's Table 7 / 8 (kappa as a fraction,
    as in this table; NaN for a model family or scene the paper has no row for)."""
    out: dict[str, float] = {}
    for m in metrics:
        k = 0.01 if m == "kappa" else 1.0
        wo = paper["without"][m] * k if paper else np.nan
        w = paper["with"][m] * k if paper else np.nan
        out[f"paper {m} without"], out[f"paper {m} with"] = wo, w
        out[f"paper Δ {m}"] = round(w - wo, 4 if m == "kappa" else 2) if paper else np.nan
    return out


def comparison_table(runs: pd.DataFrame, kind: str, digits: int = 2) -> pd.DataFrame:
    """Paper Table 7/8 layout: one row per (task, model); per metric: without, with (mean ± std over seeds),
    the paired difference (with - without, mean ± std), and the paper's without / with / Δ (``paper <m> ...``;
    Table 7 by scene and mode, Table 8 by model family; kappa as a fraction).
    Metrics are those of the LAST epoch; ``best top1``/``best OA`` columns give the best epoch (test-selected)."""
    metrics = metric_names(kind)
    diffs = paired_differences(runs, metrics)
    rows = []
    for (task, model), g in runs.groupby(["task", "model"], sort=False):
        d = diffs[(diffs.task == task) & (diffs.model == model)]
        row: dict[str, Any] = {
            "task": task,
            "model": model,
            "dataset": g.dataset.iloc[0],
            "seeds": int(g.seed.nunique()),
            "epoch": "last",
        }
        for m in metrics:
            dig = 4 if m == "kappa" else digits
            for v in ("without", "with"):
                x = g[g.variant == v][m].astype(float)
                row[f"{m} {v}"] = _fmt(x.mean(), x.std(ddof=1) if len(x) > 1 else np.nan, dig)
            row[f"{m} Δ (with−without)"] = _fmt(d[m].mean(), d[m].std(ddof=1) if len(d) > 1 else np.nan, dig)
        best = f"best_{metrics[0]}"
        if best in g:
            x = d[best] if best in d else pd.Series(dtype=float)
            row[f"best {metrics[0]} Δ"] = _fmt(x.mean(), x.std(ddof=1) if len(x) > 1 else np.nan, digits)
        fam = model_family(model)
        if kind == "image":
            ref = PAPER_TABLE8.get(fam, {})
            row["paper Δ top1"] = ref.get("delta_top1", np.nan)
            paper = PAPER8.get(fam)
        else:
            scene = task.split()[0]
            mode = "patch" if "patch" in model else "pixel"
            ref = PAPER_TABLE7_BASELINE.get((scene, mode), {})
            row["paper baseline (OA/AA/kappa)"] = (
                f"{ref['OA']:.2f} / {ref['AA']:.2f} / {ref['kappa']:.4f}" if ref else "not documented here"
            )
            delta = table7_delta(scene, mode, "OA")
            row["paper Δ OA"] = np.nan if delta is None else delta
            paper = PAPER7.get((scene, mode))
        row.update(_paper_columns(paper, metrics))
        rows.append(row)
    return pd.DataFrame(rows)


def summary_numbers(runs: pd.DataFrame, kind: str) -> dict[str, Any]:
    """Small dict of headline numbers for ``record_result``: mean with/without and paired Δ per (task, model)."""
    m = metric_names(kind)[0]
    diffs = paired_differences(runs, [m])
    out: dict[str, Any] = {"metric": f"last-epoch {m}"}
    for (task, model), g in runs.groupby(["task", "model"], sort=False):
        key = f"{task}/{model}".replace(" ", "_")
        d = diffs[(diffs.task == task) & (diffs.model == model)][m]
        out[key] = {
            "dataset": str(g.dataset.iloc[0]),
            "without": round(float(g[g.variant == "without"][m].mean()), 3),
            "with": round(float(g[g.variant == "with"][m].mean()), 3),
            "delta": round(float(d.mean()), 3),
            "seeds": int(g.seed.nunique()),
        }
    return out


# ----------------------------------------------------------------------------- whole tables
def run_table7(
    scenes: Sequence[str],
    modes: Sequence[str],
    seeds: Sequence[int],
    run_name: str,
    profile: str = "cpu",
    *,
    data_root: str = "",
    epochs: int | None = None,
    num_bands: int | None = -1,
    max_test: int | None = -1,
    dare_weight: float = 0.1,
    dare_form: str = "released",
    device: str = "auto",
    train_overrides: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Table 7 analogue: SpectralFormer with/without DARELoss on each scene x mode.

    ``data_root`` "" = the semi-synthetic scenes; otherwise a folder holding every requested scene's files (a
    missing scene is an error, never a silent fallback). Returns (runs, class names per scene).
    """
    planned = []
    for scene in scenes:
        for mode in modes:
            task = hsi_task(scene, mode, data_root or None, profile, num_bands=num_bands, max_test=max_test)
            cfg = transfer_train_config("hsi", profile, epochs, **dict(train_overrides or {}))
            print(
                f"== {scene} {mode}-wise: {task.dataset_label}; {task.info['n_train']} train / "
                f"{task.info['n_test']} test pixels; {cfg.epochs} epochs",
                flush=True,
            )
            planned.append((scene, mode, task, cfg))
    kw: dict[str, Any] = dict(dare_weight=dare_weight, dare_form=dare_form, device=device)
    jobs = [j for _, mode, task, cfg in planned
            for j in comparison_jobs(task, list(task.model_kwargs), seeds, cfg, run_name, tag=mode, **kw)]  # fmt: skip
    trained = train_side_by_side(jobs, device)  # one pool for every scene and mode
    frames, names = [], {}
    for scene, mode, task, cfg in planned:
        frames.append(run_dare_comparison(task, list(task.model_kwargs), seeds, cfg, run_name, tag=mode,
                                          trained=trained, **kw))  # fmt: skip
        names[scene] = task.class_names
    return pd.concat(frames, ignore_index=True), names
