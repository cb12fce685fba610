"""Optimised prior extraction: the frozen networks of :mod:`orsalib.priors.landmarks` / :mod:`~.parsing`, faster.

What the fast predictors do on top of the plain ones (batch inference in eval mode, fp32, contiguous):

- **folded BatchNorm** (MobileFaceNet): every ``BN(conv(x))`` becomes one biased conv
  (:func:`orsalib.models.fold.fold_batchnorm`); the same function up to float rounding;
- **channels-last** inputs and weights: oneDNN's native layout for convolutions (no reorder per layer);
- **bf16 autocast** for the backbones where the device computes bf16 natively (CUDA; CPUs with AVX512-BF16 or
  AMX, :func:`bf16_native`): ``precision="auto"`` picks it there and fp32 elsewhere. MobileFaceNet's GDC head (the
  68 coordinates) always runs in fp32 on the (upcast) bf16 features: the landmark NME against the fp32 output stays
  below 0.5 % of the inter-ocular distance on real faces (docs/speed.md; :func:`landmark_nme` measures it);
- **decoding overlapped with compute** (:func:`prefetch`): the prior cache decodes the next batch of images in a
  background thread while the networks run on the current one.

Priors computed in bf16 differ from fp32 ones in the last bits of the features, so the prior cache keys them apart
(:func:`precision_tag`, part of a network source's ``weights_id``).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from ..models.fold import fold_batchnorm
from ..models.mobilefacenet import MobileFaceNet
from ..models.segface import SegFaceSwinB
from .landmarks import LandmarkPredictor, preprocess_landmark_input
from .parsing import ParserPredictor, preprocess_parser_input
from .quality import landmark_nme  # the one NME, re-exported for the speed checks

__all__ = [
    "PRECISIONS",
    "FastLandmarkPredictor",
    "FastParserPredictor",
    "bf16_native",
    "landmark_nme",
    "parsing_agreement",
    "precision_tag",
    "prefetch",
    "resolve_precision",
]

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
T = TypeVar("T")


def bf16_native(device: str | torch.device = "cpu", cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether ``device`` computes bf16 natively: CUDA (bf16-capable GPU), or a CPU flag ``avx512_bf16`` /
    ``amx_bf16`` in ``cpuinfo`` (elsewhere bf16 is emulated and slower than fp32)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if dev.type != "cpu":
        return False
    try:
        flags = next((line for line in Path(cpuinfo).read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return any(f in flags.split() for f in _CPU_BF16_FLAGS)


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """``"auto"`` -> ``"bf16"`` where :func:`bf16_native`, else ``"fp32"``; ``"fp32"`` / ``"bf16"`` as given."""
    if precision not in PRECISIONS:
        raise ValueError(f"prior precision {precision!r} is not allowed; choose one of {list(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if bf16_native(device) else "fp32"
    return precision


def precision_tag(precision: str) -> str:
    """The suffix of a network source's ``weights_id`` for priors computed at ``precision`` ("" for fp32, so fp32
    caches keep their folder)."""
    return "" if precision == "fp32" else f"-{precision}"


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class FastLandmarkPredictor(LandmarkPredictor):
    """MobileFaceNet-68 with folded BatchNorm, channels-last and bf16 where native; ``predict`` as
    :class:`~orsalib.priors.landmarks.LandmarkPredictor` (landmarks (B, 68, 2), features (B, 512, 7, 7)).

    Args:
        net: a loaded :class:`MobileFaceNet` (it is not modified: the predictor folds a copy).
        device: where to run it.
        precision: ``auto`` | ``fp32`` | ``bf16`` (:func:`resolve_precision`).
        channels_last: run in the channels-last memory format.
    """

    def __init__(
        self, net: MobileFaceNet, device: str | torch.device = "cpu", precision: str = "auto",
        channels_last: bool = True,
    ) -> None:  # fmt: skip
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.channels_last = bool(channels_last)
        folded = fold_batchnorm(net.eval()).to(self.device)
        self.net = folded.to(memory_format=torch.channels_last) if self.channels_last else folded

    @torch.no_grad()
    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return landmarks (B, 68, 2) float32 in [0, 1] of the image and features (B, 512, 7, 7) float32."""
        x = preprocess_landmark_input(images, self.device)  # (B, 3, 112, 112) BGR in [0, 1]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(self.device, self.precision):
            feats = self.net.forward_features(x)  # (B, 512, 7, 7)
        feats = feats.float()
        coords = self.net.output_layer(feats)  # (B, 136), the GDC head in fp32
        lm = coords.reshape(coords.shape[0], 68, 2)  # interleaved x, y
        return lm.cpu().numpy().astype(np.float32), feats.contiguous().cpu().numpy()


class FastParserPredictor(ParserPredictor):
    """SegFace (Swin-B) in bf16 where native; ``predict`` as :class:`~orsalib.priors.parsing.ParserPredictor`.

    Swin-B has no BatchNorm to fold and is made of linear layers (channels-last brings nothing); the gain is bf16.

    Args:
        net: a loaded :class:`SegFaceSwinB`.
        device: where to run it.
        precision: ``auto`` | ``fp32`` | ``bf16`` (:func:`resolve_precision`).
    """

    def __init__(self, net: SegFaceSwinB, device: str | torch.device = "cpu", precision: str = "auto") -> None:
        super().__init__(net, device)
        self.precision = resolve_precision(precision, self.device)

    @torch.no_grad()
    def predict(self, images: np.ndarray, want_parsing: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
        """Label maps (B, H, W) uint8 (None unless ``want_parsing``) and stage-4 maps (B, 1024, H/32, W/32) float32."""
        x = preprocess_parser_input(images, self.device)
        with _autocast(self.device, self.precision):
            if not want_parsing:
                return None, self.net.forward_features(x).float().cpu().numpy()
            logits, feats = self.net.forward_with_features(x)
        parsing = logits.float().argmax(1).to(torch.uint8).cpu().numpy()  # (B, H, W)
        return parsing, feats.float().contiguous().cpu().numpy()


# ----------------------------------------------------------------------------- agreement with the fp32 output
def parsing_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels with the same label in two label maps (B, H, W)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"parsing_agreement needs label maps of one shape, got {a.shape} and {b.shape}")
    return float((a == b).mean()) if a.size else 1.0


# ----------------------------------------------------------------------------- overlapping decode and compute
_END = object()


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` while a background thread produces the next ``depth`` of them.

    Made for decoding: ``prefetch(decode(batch) for batch in batches)`` decodes the next batch of images (PIL and
    numpy release the GIL) while the caller runs the networks on the current one. Exceptions of the producer are
    re-raised in the caller at the item where they occurred; leaving the loop early stops the producer.
    """
    if depth < 1:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put((item, None))
            q.put((_END, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put((_END, e))

    worker = threading.Thread(target=produce, name="orsalib-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, err = q.get()
            if item is _END:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.05)
