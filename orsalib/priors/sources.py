"""Prior sources behind one interface (docs/architecture.md "Prior sources"; contract in docs/contracts.md "Priors").

``get_prior_source(prior_cfg, device) -> PriorSource`` looks ``prior_cfg.source`` up in the registry of prior sources
(:data:`orsalib.registry.PRIOR_SOURCES`). Adding a source is one decorated class or function in one file:
``@register_prior_source(name, description=..., keys=..., weights=..., ground_truth=...)`` on a
:class:`PriorSource` subclass (built with :meth:`PriorSource.from_config`) or on a factory
``(prior_cfg, device) -> PriorSource``; both receive a :class:`~orsalib.config.PriorConfig`. Metadata:
``description``; ``keys``, the prior keys it produces; ``weights``, the ``PriorConfig`` fields naming the weights
files it reads; ``ground_truth``, True when it needs ground-truth rows (SynthFER). Every source has

- ``name``: the source name (``oracle``, ``mobilefacenet``, ``segface``, ``mobilefacenet+segface``,
  ``landmark-parsing``, ``none``);
- ``keys``: the prior keys it produces (a subset of :data:`orsalib.models.PRIOR_KEYS`);
- ``weights_id``: a hash of its weights file ("" for ``oracle`` / ``none`` / ``landmark-parsing``'s rasteriser);
- ``compute(images, rows) -> dict[str, np.ndarray]``: priors of a batch of uint8 RGB images (B, H, W, 3) that are
  already resized to the model input side; ``rows`` are the matching manifest rows;
- ``compute_flipped(images, rows)``: priors of the horizontally flipped images (networks run on the flipped
  pixels; the oracle mirrors its ground truth: x -> 1 - x with landmark ids swapped, lateral classes swapped);
- ``sample_keys(rows, image_sha1s)``: the content keys under which the prior cache stores each row.

Two ways of running the frozen prior networks (``prior.mode``):

- ``"cached"`` (default): priors computed once per image (and once per flipped image) in eval mode and read
  from :class:`orsalib.priors.cache.PriorCache` during training;
- ``"released"``: recomputed on every forward pass, with the frozen networks following the model's train/eval
  mode, as the released ORSANet does (BatchNorm statistics drift, Swin-B stochastic depth active, twice per step
  under SAM). ORSANet builds the frozen networks inside the model for this: ``priors_in_model=True,
  prior_mode="released"`` (:mod:`orsalib.models.orsanet`).
"""

from __future__ import annotations

import hashlib
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from ..data.transforms import flip_landmarks, flip_parsing
from ..registry import PRIOR_SOURCES, register_prior_source
from .fast import FastLandmarkPredictor, FastParserPredictor, precision_tag, resolve_precision
from .landmarks import (
    DEFAULT_LANDMARK_WEIGHTS,
    LANDMARK_ORIGIN,
    file_sha1,
    load_mobilefacenet,
    require_weights_file,
)
from .parsing import DEFAULT_PARSER_WEIGHTS, PARSER_ORIGIN, load_segface, rasterize_parsing_batch

__all__ = [
    "CombinedSource",
    "LandmarkParsingSource",
    "MobileFaceNetSource",
    "NoPriors",
    "OracleSource",
    "PriorSource",
    "SegFaceSource",
    "get_prior_source",
]


class PriorSource:
    """Base class: a named producer of priors for batches of images."""

    name: str = "base"
    keys: tuple[str, ...] = ()
    weights_id: str = ""

    def __init__(self) -> None:
        self.calls = 0  # number of compute batches run (network invocations for network sources)

    @classmethod
    def from_config(cls, prior_cfg: Any, device: torch.device) -> PriorSource:
        """The source for a :class:`~orsalib.config.PriorConfig` (or a dict with its fields) on ``device``, as
        :func:`get_prior_source` builds a registered class (default: no arguments)."""
        return cls()

    def _compute(self, images: np.ndarray, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def compute(self, images: np.ndarray, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        """Priors of uint8 RGB images (B, H, W, 3) (resized to the model input) and their manifest rows."""
        images = _check_images(images)
        if len(rows) != len(images):
            raise ValueError(f"{self.name}: {len(images)} images but {len(rows)} manifest rows")
        self.calls += 1
        return self._compute(images, rows)

    def compute_flipped(self, images: np.ndarray, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        """Priors of the horizontally flipped images (default: run :meth:`compute` on the mirrored pixels)."""
        return self.compute(np.ascontiguousarray(_check_images(images)[:, :, ::-1]), rows)

    def sample_keys(self, rows: pd.DataFrame, image_sha1s: list[str]) -> list[str]:
        """Cache keys of the rows: the image content hash (priors depend on the pixels only)."""
        return list(image_sha1s)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "keys": list(self.keys), "weights_id": self.weights_id}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={self.keys}, weights_id={self.weights_id!r})"


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"priors need uint8 RGB images (B, H, W, 3), got {images.dtype} {images.shape}")
    return images


def _cfg_get(cfg: Any, key: str, default: Any = "") -> Any:
    if isinstance(cfg, dict):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


# ----------------------------------------------------------------------------- oracle
@register_prior_source(
    "oracle",
    description="SynthFER ground truth: landmarks.npy and the parsing map of each row (the upper bound)",
    keys=("landmarks", "parsing"),
    weights=(),
    ground_truth=True,
)
class OracleSource(PriorSource):
    """``oracle``: SynthFER ground truth (``landmarks.npy`` at ``landmarks_index``, the ``parsing_path`` PNG).

    The parsing map is resized to the image size with nearest-neighbour sampling; landmarks are size-free.
    """

    name = "oracle"
    keys = ("landmarks", "parsing")

    def __init__(self) -> None:
        super().__init__()
        self._lms: dict[Path, np.ndarray] = {}

    def _landmarks_file(self, row: pd.Series) -> Path:
        candidates = []
        if isinstance(row.get("parsing_path"), str) and row["parsing_path"]:
            candidates.append(Path(row["parsing_path"]).parent.parent / "landmarks.npy")
        candidates.append(Path(str(row["path"])).parents[2] / "landmarks.npy")
        for c in candidates:
            if c.is_file():
                return c
        raise FileNotFoundError(
            f"oracle priors: no landmarks.npy found for {row['path']!r} (looked at {[str(c) for c in candidates]}); "
            "the oracle source needs a SynthFER manifest (columns landmarks_index, parsing_path)"
        )

    def read_row(self, row: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """Ground truth of one manifest row: landmarks (68, 2) float32, parsing (h, w) uint8 at its stored size."""
        for col in ("landmarks_index", "parsing_path"):
            if col not in row.index or pd.isna(row[col]) or row[col] == "":
                raise ValueError(
                    f"oracle priors: manifest row {row['path']!r} has no {col!r}; the oracle source only works on "
                    "SynthFER (ground-truth landmarks and parsing maps); use prior.source='mobilefacenet' etc."
                )
        f = self._landmarks_file(row)
        if f not in self._lms:
            self._lms[f] = np.load(f, mmap_mode="r")
        lms, k = self._lms[f], int(row["landmarks_index"])
        if not 0 <= k < len(lms):
            raise ValueError(f"oracle priors: landmarks_index {k} of {row['path']!r} is outside {f} ({len(lms)} rows)")
        pp = Path(row["parsing_path"])
        if not pp.is_file():
            raise FileNotFoundError(f"oracle priors: parsing map {str(pp)!r} of {row['path']!r} does not exist")
        with Image.open(pp) as im:
            par = np.asarray(im, dtype=np.uint8)
        return np.array(lms[k], dtype=np.float32), par

    def _compute(self, images: np.ndarray, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        h, w = images.shape[1:3]
        lms, pars = [], []
        for _, row in rows.iterrows():
            lm, par = self.read_row(row)
            if par.shape != (h, w):
                par = np.asarray(Image.fromarray(par).resize((w, h), Image.NEAREST))
            lms.append(lm)
            pars.append(par)
        return {"landmarks": np.stack(lms).astype(np.float32), "parsing": np.stack(pars).astype(np.uint8)}

    def compute_flipped(self, images: np.ndarray, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        out = self.compute(images, rows)
        return {"landmarks": flip_landmarks(out["landmarks"]), "parsing": flip_parsing(out["parsing"])}

    def sample_keys(self, rows: pd.DataFrame, image_sha1s: list[str]) -> list[str]:
        """Image hash + the ground truth's content (the same pixels with other annotations get another key)."""
        keys = []
        for (_, row), sha in zip(rows.iterrows(), image_sha1s):
            lm, par = self.read_row(row)
            h = hashlib.sha1(sha.encode())
            h.update(np.ascontiguousarray(lm).tobytes())
            h.update(np.ascontiguousarray(par).tobytes())
            keys.append(h.hexdigest())
        return keys


# ----------------------------------------------------------------------------- network sources
class _NetworkSource(PriorSource):
    """A prior source backed by one frozen network, loaded from its weights file on first use.

    Args:
        weights: checkpoint path ("" / None = the subclass's default location).
        device: where to run the network.
        net: an already built network (then ``weights`` is not read; ``weights_id`` names it).
        weights_id: identifier of ``net``'s weights (required with ``net``).
        precision: ``fp32`` | ``bf16`` | ``auto`` (bf16 where the device computes it natively): the precision of
            the optimised extractor (:mod:`orsalib.priors.fast`: folded BatchNorm, channels-last, batch inference).
            Anything but fp32 is appended to ``weights_id`` (``-bf16``), so caches of different precisions never
            mix. Sources built from a config use ``prior.precision`` (default ``auto``).
    """

    default_weights: Path
    weights_field: str  # the PriorConfig field naming the weights file
    what: str  # how the weights file is named in error messages
    origin: str  # where the user can obtain the weights file

    def __init__(
        self, weights: str | Path | None = None, device: str | torch.device = "cpu", net: nn.Module | None = None,
        weights_id: str = "", precision: str = "fp32",
    ) -> None:  # fmt: skip
        super().__init__()
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.weights = Path(weights or self.default_weights).expanduser()
        if net is not None:
            if not weights_id:
                raise ValueError(
                    f"{type(self).__name__}(net=...) needs a weights_id naming the weights of that network"
                )
            self._predictor = self._make_predictor(net)
            self.weights_id = weights_id + precision_tag(self.precision)
        else:
            require_weights_file(self.weights, self.what, self.origin)
            self._predictor = None  # loaded on first use: a fully cached run never builds the network
            self.weights_id = file_sha1(self.weights) + precision_tag(self.precision)

    @classmethod
    def from_config(cls, prior_cfg: Any, device: torch.device) -> _NetworkSource:
        """The source with the weights file named by ``prior_cfg.<weights_field>`` ("" = the default location) and
        the precision ``prior_cfg.precision`` (default ``auto``)."""
        return cls(_cfg_get(prior_cfg, cls.weights_field) or None, device,
                   precision=_cfg_get(prior_cfg, "precision", "") or "auto")  # fmt: skip

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "precision": self.precision}

    def _make_predictor(self, net: nn.Module | None = None) -> Any:
        raise NotImplementedError

    @property
    def predictor(self) -> Any:
        if self._predictor is None:
            self._predictor = self._make_predictor()
        return self._predictor


@register_prior_source(
    "mobilefacenet",
    description="frozen MobileFaceNet-68: landmarks (68, 2) and landmark features (512, 7, 7)",
    keys=("landmarks", "landmark_features"),
    weights=("landmark_weights",),
    ground_truth=False,
)
class MobileFaceNetSource(_NetworkSource):
    """``mobilefacenet``: landmarks (68, 2) and landmark features (512, 7, 7) from the frozen MobileFaceNet-68.

    Default weights: :data:`~orsalib.priors.landmarks.DEFAULT_LANDMARK_WEIGHTS`; arguments as :class:`_NetworkSource`.
    """

    name = "mobilefacenet"
    keys = ("landmarks", "landmark_features")
    default_weights = DEFAULT_LANDMARK_WEIGHTS
    weights_field = "landmark_weights"
    what = "MobileFaceNet-68 landmark"
    origin = LANDMARK_ORIGIN

    def _make_predictor(self, net: nn.Module | None = None) -> FastLandmarkPredictor:
        net = net if net is not None else load_mobilefacenet(self.weights)
        return FastLandmarkPredictor(net, self.device, precision=self.precision)

    def _compute(self, images: np.ndarray, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        lm, feats = self.predictor.predict(images)
        return {"landmarks": lm, "landmark_features": feats}


@register_prior_source(
    "segface",
    description="frozen SegFace LaPa Swin-B: parsing labels (S, S) and stage-4 features (1024, S/32, S/32)",
    keys=("parsing", "parser_features"),
    weights=("parser_weights",),
    ground_truth=False,
)
class SegFaceSource(_NetworkSource):
    """``segface``: parsing labels (S, S) and Swin-B stage-4 features (1024, S/32, S/32) from frozen SegFace.

    Default weights: :data:`~orsalib.priors.parsing.DEFAULT_PARSER_WEIGHTS`; ``net`` is a
    :class:`~orsalib.models.segface.SegFaceSwinB`; arguments as :class:`_NetworkSource`.
    """

    name = "segface"
    keys = ("parsing", "parser_features")
    default_weights = DEFAULT_PARSER_WEIGHTS
    weights_field = "parser_weights"
    what = "SegFace LaPa Swin-B parser"
    origin = PARSER_ORIGIN

    def _make_predictor(self, net: nn.Module | None = None) -> FastParserPredictor:
        net = net if net is not None else load_segface(self.weights)
        return FastParserPredictor(net, self.device, precision=self.precision)

    def _compute(self, images: np.ndarray, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        parsing, feats = self.predictor.predict(images)
        return {"parsing": parsing, "parser_features": feats}


class LandmarkParsingSource(PriorSource):
    """``landmark-parsing``: MobileFaceNet landmarks and a parsing map rasterised from them (no parser weights).

    Args:
        landmarks: the landmark source (a :class:`MobileFaceNetSource`, or an :class:`OracleSource` to measure the
            rasteriser itself on ground-truth landmarks).
    """

    name = "landmark-parsing"
    keys = ("landmarks", "parsing")

    def __init__(self, landmarks: PriorSource) -> None:
        super().__init__()
        if "landmarks" not in landmarks.keys:
            raise ValueError(f"landmark-parsing needs a source of landmarks, got {landmarks!r}")
        self.landmarks = landmarks
        self.weights_id = landmarks.weights_id if landmarks.name != "oracle" else "oracle"

    def _from_landmarks(self, lm: np.ndarray, size: tuple[int, int]) -> dict[str, np.ndarray]:
        return {"landmarks": lm.astype(np.float32), "parsing": rasterize_parsing_batch(lm, size)}

    def _compute(self, images: np.ndarray, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        lm = self.landmarks.compute(images, rows)["landmarks"]
        return self._from_landmarks(lm, images.shape[1:3])

    def compute_flipped(self, images: np.ndarray, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        self.calls += 1
        lm = self.landmarks.compute_flipped(_check_images(images), rows)["landmarks"]
        return self._from_landmarks(lm, images.shape[1:3])

    def sample_keys(self, rows: pd.DataFrame, image_sha1s: list[str]) -> list[str]:
        return self.landmarks.sample_keys(rows, image_sha1s)


class CombinedSource(PriorSource):
    """``mobilefacenet+segface``: both frozen networks, as the released ORSANet uses them (its released routing needs
    ``landmark_features`` from the landmark net and ``parser_features`` from the parser).

    Args:
        parts: the sources to combine; their keys must not overlap.
    """

    def __init__(self, *parts: PriorSource) -> None:
        super().__init__()
        keys = [k for p in parts for k in p.keys]
        if len(keys) != len(set(keys)):
            raise ValueError(f"combined prior sources overlap in their keys: {keys}")
        self.parts = parts
        self.name = "+".join(p.name for p in parts)
        self.keys = tuple(keys)
        self.weights_id = "+".join(p.weights_id for p in parts)

    def _compute(self, images: np.ndarray, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for p in self.parts:
            out.update(p.compute(images, rows))
        return out

    def compute_flipped(self, images: np.ndarray, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        self.calls += 1
        out: dict[str, np.ndarray] = {}
        for p in self.parts:
            out.update(p.compute_flipped(images, rows))
        return out


@register_prior_source(
    "mobilefacenet+segface",
    description="both frozen networks, as the released ORSANet uses them (the paper profile's default)",
    keys=("landmarks", "landmark_features", "parsing", "parser_features"),
    weights=("landmark_weights", "parser_weights"),
    ground_truth=False,
)
def mobilefacenet_segface(prior_cfg: Any, device: torch.device) -> CombinedSource:
    """``mobilefacenet+segface``: :class:`MobileFaceNetSource` and :class:`SegFaceSource` combined."""
    return CombinedSource(
        MobileFaceNetSource.from_config(prior_cfg, device), SegFaceSource.from_config(prior_cfg, device)
    )


@register_prior_source(
    "landmark-parsing",
    description="MobileFaceNet-68 landmarks and a parsing map rasterised from them (no parser weights)",
    keys=("landmarks", "parsing"),
    weights=("landmark_weights",),
    ground_truth=False,
)
def landmark_parsing(prior_cfg: Any, device: torch.device) -> LandmarkParsingSource:
    """``landmark-parsing``: :class:`LandmarkParsingSource` over a :class:`MobileFaceNetSource`."""
    return LandmarkParsingSource(MobileFaceNetSource.from_config(prior_cfg, device))


@register_prior_source(
    "none",
    description="no priors (ablations, backbone baselines)",
    keys=(),
    weights=(),
    ground_truth=False,
)
class NoPriors(PriorSource):
    """``none``: produces nothing (ablations without priors)."""

    name = "none"

    def _compute(self, images: np.ndarray, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        return {}


# ----------------------------------------------------------------------------- factory
def get_prior_source(prior_cfg: Any, device: str | torch.device = "auto") -> PriorSource:
    """The prior source of a :class:`orsalib.config.PriorConfig` (or a dict with its fields, or a source name).

    The name is looked up in :data:`orsalib.registry.PRIOR_SOURCES`. Network sources hash their weights file here
    (``weights_id``) and load the network only when they first compute, so a run whose priors are all cached never
    builds it.

    Raises:
        ValueError: unknown source name (the message lists the registered ones).
        FileNotFoundError: the weights file of a network source is missing (the message says where to get it).
    """
    from ..config import PriorConfig
    from ..utils import resolve_device

    name = prior_cfg if isinstance(prior_cfg, str) else _cfg_get(prior_cfg, "source", "oracle")
    make = PRIOR_SOURCES.get(name)
    if isinstance(prior_cfg, (str, dict)):  # registered sources always receive a PriorConfig
        given = {"source": name} if isinstance(prior_cfg, str) else prior_cfg
        prior_cfg = PriorConfig(**{f.name: given[f.name] for f in fields(PriorConfig) if f.name in given})
    dev = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    if isinstance(make, type) and issubclass(make, PriorSource):
        source = make.from_config(prior_cfg, dev)
    else:
        source = make(prior_cfg, dev)
    if not isinstance(source, PriorSource):
        raise TypeError(f"prior source {name!r} was built as {type(source).__name__}; expected a PriorSource")
    return source
