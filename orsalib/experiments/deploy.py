"""A trained run outside training: predictions on a folder of face images, and export for use elsewhere.

- :func:`predict_images`: ``orsa predict --run-name R PATH...`` -> a CSV (file, predicted class, probability of each
  class) and what the overlay figure shows (:class:`PredictionOverlay`: the faces as the model saw them, the model's
  attention where it has one, each caption the predicted class and its probability above the file's name);
  ``orsalib.viz.analysis.prediction_figure`` draws it. A model trained on SynthFER that is shown other images gets
  a one-line warning (:func:`synthfer_warning`): drawn faces teach nothing reliable about photographs.
- :func:`export_model`: ``orsa export --run-name R --format torchscript|onnx`` -> one file whose inputs are the image
  and the prior tensors the model reads (in :data:`orsalib.models.PRIOR_KEYS` order), with a parity check against
  the PyTorch model (the largest absolute difference of the logits is printed and recorded).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..analysis.explain import attention_maps
from ..config import RunConfig, apply_overrides
from ..data.labels import emotions
from ..data.transforms import IMAGE_EXTENSIONS, to_tensor
from ..models import PRIOR_KEYS, model_meta
from ..priors.cache import load_resized
from ..priors.sources import get_prior_source
from ..registry import PRIOR_SOURCES
from ..utils import atomic_write_json, atomic_write_text, resolve_device
from .runs import load_trained


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """The image files named by ``paths`` (files, or folders searched recursively), sorted; a clear error if none."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{str(p)!r} does not exist; expected an image file or a folder of images")
    if not out:
        raise FileNotFoundError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {[str(p) for p in paths]}")
    return out


def _prior_config(cfg: RunConfig, prior_source: str) -> RunConfig:
    """The run's config with a prior source that works on any image (ground-truth priors exist only for SynthFER)."""
    if prior_source:
        return apply_overrides(cfg, {"prior.source": prior_source})
    if PRIOR_SOURCES.meta(cfg.prior.source).get("ground_truth"):
        raise ValueError(
            f"the run used prior source {cfg.prior.source!r} (ground truth, SynthFER only), which new images do not "
            "have; pass --prior-source with one that detects priors, e.g. landmark-parsing or mobilefacenet+segface "
            "(their weight files: data/README.md)"
        )
    return cfg


def _batch(cfg: RunConfig, files: list[Path], source: Any) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """Model inputs of ``files``: resized, normalised images and the priors the source computes on them."""
    size = cfg.data.image_size
    images = np.stack([load_resized(f, size) for f in files])  # (B, S, S, 3) uint8
    batch: dict[str, torch.Tensor] = {"image": torch.stack([to_tensor(im) for im in images])}
    if source is not None:
        priors = source.compute(images, pd.DataFrame({"path": [str(f) for f in files]}))
        for k in PRIOR_KEYS:
            if k in priors:
                t = torch.from_numpy(np.array(priors[k]))
                batch[k] = t.float() if t.is_floating_point() else t.long()
    return batch, images


def is_synthfer_image(path: str | Path) -> bool:
    """True for an image of a SynthFER build: a folder above it (``<build>/<split>/<class>/file``) holds the build's
    ``manifest.csv`` and a ``params.json`` with its ``generator_version``."""
    for folder in list(Path(path).resolve().parents)[:4]:
        params = folder / "params.json"
        if params.is_file() and (folder / "manifest.csv").is_file():
            try:
                return "generator_version" in params.read_text(encoding="utf-8")
            except OSError:
                return False
    return False


def synthfer_warning(dataset: str, files: Sequence[str | Path]) -> str:
    """One line when a model trained on SynthFER is shown images that are not SynthFER's (else "")."""
    if dataset != "synthfer":
        return ""
    other = [f for f in files if not is_synthfer_image(f)]
    if not other:
        return ""
    which = "the image is" if len(files) == 1 else f"{len(other)} of {len(files)} images are"
    return (f"warning: this model was trained on SynthFER (drawn faces) and {which} not SynthFER's: its labels and "
            "confidences on real photographs mean little; train on a real dataset (README, 'Your own dataset')")


@dataclass
class PredictionOverlay:
    """The first (up to 8) scored images, the model's attention on them (None: the model has none) and a caption
    each (:func:`caption`); ``orsalib.viz.analysis.prediction_figure`` draws them."""

    images: np.ndarray  # (N, S, S, 3) uint8, resized as the model saw them
    attention: np.ndarray | None  # (N, S, S) in [0, 1]
    titles: list[str]


@dataclass
class Predictions:
    """What :func:`predict_images` wrote, and the overlay to draw."""

    table: pd.DataFrame
    csv: Path
    overlay: PredictionOverlay
    checkpoint: str
    epoch: int
    warning: str = ""  # one line for the user ("" when none), e.g. :func:`synthfer_warning`


def predict_images(
    run_dir: str | Path,
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    which: str = "best",
    prior_source: str = "",
    batch_size: int = 32,
    device: str = "auto",
) -> Predictions:
    """Predict the expression of every image in ``paths`` with the trained run in ``run_dir``.

    Writes ``<out_dir>/predictions.csv`` (file, predicted, confidence, one probability column per class) and
    returns the overlay of the first images (:class:`PredictionOverlay`; drawn by
    ``orsalib.viz.analysis.prediction_figure``).
    """
    model, cfg = load_trained(run_dir, which=which)
    cfg = _prior_config(cfg, prior_source)
    dev = resolve_device(device)
    model.to(dev).eval()
    uses_priors = bool(model_meta(cfg.model.name).get("uses_priors")) and cfg.prior.mode == "cached"
    source = get_prior_source(cfg.prior, dev) if uses_priors and cfg.prior.source != "none" else None
    files = image_files(paths)
    names = list(emotions(cfg.data.num_classes))
    rows, shown = [], None
    for i in range(0, len(files), batch_size):
        chunk = files[i : i + batch_size]
        batch, images = _batch(cfg, chunk, source)
        with torch.no_grad():
            b = {k: v.to(dev) for k, v in batch.items()}
            out = model(b["image"], priors={k: b[k] for k in PRIOR_KEYS if k in b})
        probs = torch.softmax(out["logits"].float(), dim=1).cpu().numpy()
        for f, p in zip(chunk, probs):
            k = int(p.argmax())
            rows.append({"file": str(f), "predicted": names[k], "confidence": float(p[k]),
                         **{f"p_{n}": float(q) for n, q in zip(names, p)}})  # fmt: skip
        if shown is None:
            shown = (batch, images, probs)
    table = pd.DataFrame(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv = atomic_write_text(out / "predictions.csv", table.to_csv(index=False))
    overlay = _overlay(model, cfg, shown, files, names, dev)
    return Predictions(table, csv, overlay, str(getattr(model, "checkpoint_path", "")), int(model.checkpoint_epoch),
                       warning=synthfer_warning(cfg.data.dataset, files))  # fmt: skip


def _overlay(
    model: nn.Module, cfg: RunConfig, shown: tuple, files: list[Path], names: list[str], dev: Any
) -> PredictionOverlay:
    """The first (up to 8) images with the model's attention (or none) and the predicted class."""
    batch, images, probs = shown
    n = min(8, len(images))
    sub = {k: v[:n] for k, v in batch.items()}
    try:
        att = attention_maps(model, sub, image_size=cfg.data.image_size, device=dev)  # None: the model has none
    except (ValueError, RuntimeError, KeyError, AttributeError):
        att = None
    titles = [caption(files[i].name, names[int(probs[i].argmax())], float(probs[i].max())) for i in range(n)]
    return PredictionOverlay(images=images[:n], attention=att, titles=titles)


def caption(file_name: str, label: str, p: float, width: int = 20) -> str:
    """A column's caption on two short lines: the class and its probability (bold), then the file name (cut to
    ``width`` characters), so that neighbouring captions never run into each other."""
    name = file_name if len(file_name) <= width else file_name[: width - 1] + "…"
    return f"<b>{label} {100 * p:.0f} %</b><br>{name}"


# ----------------------------------------------------------------------------- export
class _Positional(nn.Module):
    """``forward(image, *priors) -> logits``: the workbook model with its prior dict as positional tensors."""

    def __init__(self, model: nn.Module, keys: Sequence[str]):
        super().__init__()
        self.model, self.keys = model, tuple(keys)

    def forward(self, image: torch.Tensor, *priors: torch.Tensor) -> torch.Tensor:
        return self.model(image, priors=dict(zip(self.keys, priors)))["logits"]


def _example(cfg: RunConfig, keys: Sequence[str], n: int = 2) -> tuple[torch.Tensor, ...]:
    s = cfg.data.image_size
    g = torch.Generator().manual_seed(0)
    shapes = {"landmarks": (68, 2), "landmark_features": (512, 7, 7), "parser_features": (1024, s // 32, s // 32)}
    out = [torch.randn(n, 3, s, s, generator=g)]
    for k in keys:
        out.append(torch.randint(0, 11, (n, s, s), generator=g) if k == "parsing" else torch.rand(n, *shapes[k]))
    return tuple(out)


def prior_inputs(model: nn.Module, cfg: RunConfig) -> list[str]:
    """The prior keys the exported model takes as inputs (those its forward reads), in PRIOR_KEYS order."""
    if not model_meta(cfg.model.name).get("uses_priors") or cfg.prior.mode != "cached":
        return []
    keys = list(get_prior_source(cfg.prior, "cpu").keys) if cfg.prior.source != "none" else []
    return [k for k in PRIOR_KEYS if k in keys]


def export_model(run_dir: str | Path, out: str | Path, fmt: str = "torchscript", which: str = "best") -> dict:
    """Export the trained model of ``run_dir`` to ``out`` and check it against PyTorch on random inputs.

    Returns:
        ``{"path", "format", "inputs", "max_abs_diff", "checkpoint", "epoch"}`` (also written beside ``out`` as
        ``<out>.json``).
    """
    if fmt not in ("torchscript", "onnx"):
        raise ValueError(f"format={fmt!r} is not allowed; choose torchscript or onnx")
    model, cfg = load_trained(run_dir, which=which)
    keys = prior_inputs(model, cfg)
    wrapped = _Positional(model.cpu().eval(), keys).eval()
    example = _example(cfg, keys)
    check = _example(cfg, keys, n=3)  # another batch size than the example: the export must not fix it
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        ref = wrapped(*check).numpy()
        with warnings.catch_warnings():  # torch's deprecation notices of jit/onnx tracing: not the user's concern
            for category in (FutureWarning, DeprecationWarning, UserWarning, torch.jit.TracerWarning):
                warnings.simplefilter("ignore", category)
            if fmt == "torchscript":
                traced = torch.jit.trace(wrapped, example, check_trace=False)
                tmp = out.with_name(out.name + ".tmp")
                traced.save(str(tmp))
                tmp.replace(out)
                got = torch.jit.load(str(out))(*check).numpy()
            else:
                got = _onnx(wrapped, example, check, keys, out)
    info = {
        "path": str(out), "format": fmt, "inputs": ["image", *keys], "max_abs_diff": float(np.abs(got - ref).max()),
        "checkpoint": str(getattr(model, "checkpoint_path", "")), "epoch": int(model.checkpoint_epoch),
        "model": cfg.model.name, "num_classes": cfg.data.num_classes, "image_size": cfg.data.image_size,
        "classes": list(emotions(cfg.data.num_classes)), "normalisation": "ImageNet mean/std, RGB in [0, 1]",
    }  # fmt: skip
    atomic_write_json(out.with_name(out.name + ".json"), info)
    return info


def _onnx(wrapped: nn.Module, example: tuple, check: tuple, keys: list[str], out: Path) -> np.ndarray:
    try:
        import onnxruntime as ort  # optional: pip install -e .[export]
    except ImportError as e:
        raise ValueError("ONNX export needs onnx, onnxscript and onnxruntime: pip install -e '.[export]'") from e
    names = ["image", *keys]
    dyn = {n: {0: "batch"} for n in names}
    tmp = out.with_name(out.name + ".tmp")
    torch.onnx.export(wrapped, example, str(tmp), input_names=names, output_names=["logits"],
                      dynamic_axes={**dyn, "logits": {0: "batch"}}, dynamo=False)  # fmt: skip
    tmp.replace(out)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    feeds = {n: t.numpy() for n, t in zip(names, check)}
    return sess.run(["logits"], feeds)[0]


__all__ = [
    "PredictionOverlay",
    "Predictions",
    "caption",
    "export_model",
    "image_files",
    "predict_images",
    "prior_inputs",
]
