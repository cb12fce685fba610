"""Degraded priors for the prior-noise study: how much does ORSANet lose as its priors get worse?

- :func:`jitter_landmarks`: Gaussian offsets of every landmark coordinate, ``sigma`` in units of the inter-ocular
  distance (outer eye corners 36, 45), so the expected NME of the jittered landmarks is ``sigma * sqrt(pi / 2)``.
- :func:`corrupt_parsing`: relabels square blocks of a LaPa map until exactly ``round(rate * H * W)`` pixels have
  another class (the last block only in part): a parser's blob-like confusions at a chosen pixel error rate.
- :class:`NoisyPriorStore`: wraps a prior store (:class:`~orsalib.priors.cache.PriorStore`) and serves its priors
  degraded at given levels. The noise of row ``i`` is drawn from ``(seed, i)``: fixed per image, as a worse
  detector's errors are (not resampled every epoch), and the same in training and evaluation. The priors of the
  flipped image are the mirror of the degraded priors (flip augmentation sees the same errors, mirrored).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.transforms import flip_landmarks, flip_parsing

__all__ = ["NoisyPriorStore", "corrupt_parsing", "jitter_landmarks"]


def jitter_landmarks(landmarks: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Landmarks (..., 68, 2) in [0, 1] plus N(0, (sigma * IOD)^2) per coordinate (IOD: per face, points 36-45).

    Args:
        landmarks: one face (68, 2) or a batch (B, 68, 2).
        sigma: standard deviation of each coordinate's offset in inter-ocular distances (0 = unchanged).
        rng: the random generator.

    Returns:
        float32 landmarks of the same shape (not clipped: a jittered point may leave the image).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape[-2:] != (68, 2):
        raise ValueError(f"jitter_landmarks expects (..., 68, 2) landmarks, got {lm.shape}")
    if sigma < 0:
        raise ValueError(f"jitter_landmarks: sigma={sigma!r} must be >= 0")
    iod = np.linalg.norm(lm[..., 36, :] - lm[..., 45, :], axis=-1)[..., None, None]  # (..., 1, 1)
    return (lm + rng.normal(size=lm.shape) * sigma * iod).astype(np.float32)


def corrupt_parsing(
    parsing: np.ndarray, rate: float, rng: np.random.Generator, block: int | None = None, num_classes: int = 11
) -> np.ndarray:
    """A copy of an (H, W) label map in which exactly ``round(rate * H * W)`` pixels carry another class.

    The map is cut into ``block`` x ``block`` cells (default ``max(1, H // 16)``) on a randomly shifted grid; cells
    are visited in random order and each is relabelled with a random class other than its most frequent one,
    until the count of changed pixels is reached (the last cell is changed only in part, in raster order). Near
    ``rate = 1``, pixels a cell left unchanged then get another class one by one.

    Args:
        parsing: (H, W) integer labels.
        rate: fraction of pixels to change, in [0, 1].
        rng: the random generator.
        block: cell side in pixels.
        num_classes: label range (LaPa: 11).
    """
    par = np.asarray(parsing)
    if par.ndim != 2:
        raise ValueError(f"corrupt_parsing expects one (H, W) label map, got shape {par.shape}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"corrupt_parsing: rate={rate!r} must be in [0, 1]")
    h, w = par.shape
    target = int(round(rate * h * w))
    out = par.copy()
    if target == 0:
        return out
    b = int(block or max(1, h // 16))
    oy, ox = (int(v) for v in rng.integers(0, b, size=2))
    ys, xs = np.arange(-oy, h, b), np.arange(-ox, w, b)
    cells = [(y, x) for y in ys for x in xs]
    changed = 0
    for k in rng.permutation(len(cells)):
        y, x = cells[k]
        sl = (slice(max(y, 0), y + b), slice(max(x, 0), x + b))
        cur = out[sl]
        mode = int(np.bincount(cur.ravel().astype(np.int64), minlength=num_classes).argmax())
        new = int(rng.integers(0, num_classes - 1))
        new += new >= mode  # any class but the cell's most frequent one
        diff = cur != new  # the pixels this cell changes (cells do not overlap)
        need = target - changed
        if diff.sum() > need:
            diff.ravel()[np.flatnonzero(diff.ravel())[need:]] = False
        cur[diff] = new
        changed += int(diff.sum())
        if changed >= target:
            return out
    # rates near 1: pixels that kept their label (a cell's minority of the new class) get another one each
    same = np.flatnonzero(out.ravel() == par.ravel())[: target - changed]
    shift = rng.integers(1, num_classes, size=len(same))
    out.ravel()[same] = ((par.ravel()[same].astype(np.int64) + shift) % num_classes).astype(out.dtype)
    return out


class NoisyPriorStore:
    """A prior store whose ``landmarks`` / ``parsing`` are degraded (:func:`jitter_landmarks`,
    :func:`corrupt_parsing`); other keys pass through.

    Args:
        store: the store to wrap (``get(i, flipped)``, ``keys``, ``has_flip``).
        landmark_sigma: landmark jitter in inter-ocular distances (0 = none).
        parsing_rate: fraction of parsing pixels relabelled (0 = none).
        seed: the noise of row ``i`` comes from ``default_rng([seed, i])``.
        block: cell side of the parsing corruption (default: a 16th of the map side).
    """

    def __init__(
        self, store: Any, landmark_sigma: float = 0.0, parsing_rate: float = 0.0, seed: int = 0,
        block: int | None = None,
    ) -> None:  # fmt: skip
        if landmark_sigma < 0 or not 0.0 <= parsing_rate <= 1.0:
            raise ValueError(f"landmark_sigma={landmark_sigma!r} must be >= 0, parsing_rate={parsing_rate!r} in [0, 1]")
        wanted = {"landmarks": landmark_sigma, "parsing": parsing_rate}
        missing = [k for k, v in wanted.items() if v and k not in store.keys]
        if missing:
            raise ValueError(f"the prior store holds no {missing} to degrade (keys: {list(store.keys)})")
        self.store = store
        self.landmark_sigma = float(landmark_sigma)
        self.parsing_rate = float(parsing_rate)
        self.seed = int(seed)
        self.block = block
        self.keys = tuple(store.keys)
        self.has_flip = True  # the flipped priors are mirrored here, whatever the wrapped store holds

    def __len__(self) -> int:
        return len(self.store)

    def __getattr__(self, name: str) -> Any:  # path, stats, nbytes, ... of the wrapped store
        if name == "store":
            raise AttributeError(name)
        return getattr(self.store, name)

    def get(self, i: int, flipped: bool = False) -> dict[str, np.ndarray]:
        """Degraded priors of row ``i`` (of the flipped image when ``flipped``)."""
        pri = dict(self.store.get(i, flipped=False))
        rng = np.random.default_rng([self.seed, int(i)])
        if self.landmark_sigma:
            pri["landmarks"] = jitter_landmarks(pri["landmarks"], self.landmark_sigma, rng)
        if self.parsing_rate:
            pri["parsing"] = corrupt_parsing(pri["parsing"], self.parsing_rate, rng, self.block)
        if not flipped:
            return pri
        other = [k for k in self.keys if k not in ("landmarks", "parsing")]
        out = dict(self.store.get(i, flipped=True)) if other else {}
        if "landmarks" in pri:
            out["landmarks"] = flip_landmarks(np.asarray(pri["landmarks"]))
        if "parsing" in pri:
            out["parsing"] = np.ascontiguousarray(flip_parsing(np.asarray(pri["parsing"])))
        return out

    def describe(self) -> dict[str, Any]:
        return {"landmark_sigma": self.landmark_sigma, "parsing_rate": self.parsing_rate, "seed": self.seed,
                "block": self.block}  # fmt: skip

    def __repr__(self) -> str:
        levels = f"landmark_sigma={self.landmark_sigma}, parsing_rate={self.parsing_rate}"
        return f"NoisyPriorStore({self.store!r}, {levels})"
