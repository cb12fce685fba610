"""One SynthFER sample: a face drawn from ``(seed, index)`` with its pose, lighting, noise, clutter and occluder,
and its ground truth (68 landmarks with visibility, parsing map, label, intensity, identity).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ... import registry
from .face import (
    INTENSITY_RANGE,
    NEUTRAL_INTENSITY,
    expression_aus,
    face_geometry,
    identity_params,
)
from .occluders import occluder_kinds, paint_occluder, synthfer_occluders
from .render import _N_CLS, _TO_LAPA_EXT, _clutter, _pose_frame, _render_face

# ----------------------------------------------------------------------------------------------- samples
_NB_DX = np.array([[-1, 0, 1, -1, 0, 1, -1, 0, 1]])
_NB_DY = np.array([[-1, -1, -1, 0, 0, 0, 1, 1, 1]])


@functools.lru_cache(maxsize=16)
def _light_axes(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Centred pixel coordinates in [-0.5, 0.5]: rows (S, 1) and columns (1, S), float32."""
    c = ((np.arange(size, dtype=np.float64) + 0.5) / size - 0.5).astype(np.float32)
    return c[:, None], c[None, :]


@dataclass
class SynthSample:
    """One SynthFER image with its ground truth."""

    image: np.ndarray  # (S, S, 3) uint8 RGB
    landmarks: np.ndarray  # (68, 2) float32, x,y in [0,1] of the image
    visible: np.ndarray  # (68,) bool, False where an occluder covers the landmark
    parsing: np.ndarray  # (S, S) uint8, 11 LaPa classes, occluder pixels = 0
    label: int  # canonical index
    occluder: str  # "none" | "hand" | "sunglasses" | "mask" | "scarf" | "object" | "face"
    intensity: float
    identity: int


def render_sample(
    index: int,
    seed: int = 0,
    size: int = 112,
    num_classes: int = 7,
    label: int | None = None,
    occluder: str | None = None,
    occlusion_prob: float = 0.5,
    identity: int | None = None,
    occluder_mix: tuple[str, ...] | list[str] | None = None,
) -> SynthSample:
    """Draw SynthFER sample ``index`` of dataset ``seed``.

    Args:
        index: sample id; everything is drawn from ``np.random.default_rng([seed, index])``, the face first
            (a fixed number of draws) and the occluder last, so the same index with another occluder shows
            exactly the same face, pose, lighting and background.
        seed: dataset seed.
        size: image side in pixels.
        num_classes: 7 (basic expressions) or 8 (+ contempt).
        label: canonical class index; None draws one uniformly.
        occluder: one of :data:`OCCLUDERS`; None draws ``none`` with probability ``1 - occlusion_prob`` and a
            kind chosen uniformly from ``occluder_mix`` otherwise.
        occlusion_prob: probability of an occluder when ``occluder`` is None.
        identity: identity id; None draws one from the sample's stream.
        occluder_mix: the kinds drawn from when ``occluder`` is None, in order; None = :func:`synthfer_occluders`.

    Returns:
        the :class:`SynthSample`.
    """
    if num_classes not in (7, 8):
        raise ValueError(f"num_classes must be 7 or 8, got {num_classes!r}")
    if not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"size must be an integer >= 16 pixels, got {size!r}")
    if label is not None and not 0 <= int(label) < num_classes:
        raise ValueError(f"label {label!r} is outside 0..{num_classes - 1}")
    if occluder is not None and occluder != "none" and occluder not in registry.OCCLUDERS:
        raise ValueError(f"unknown occluder {occluder!r}; expected one of {['none', *occluder_kinds()]}")
    if not 0.0 <= occlusion_prob <= 1.0:
        raise ValueError(f"occlusion_prob must be in [0, 1], got {occlusion_prob!r}")
    rng = np.random.default_rng([seed, index])
    ident_draw, label_draw = (int(v) for v in rng.integers(0, 2**31 - 1, 2))
    label = label_draw % num_classes if label is None else int(label)
    identity = ident_draw if identity is None else int(identity)
    idn = identity_params(seed, identity)
    u = rng.random(16)
    if label == 6:
        intensity = float(u[0] * NEUTRAL_INTENSITY)
    else:
        intensity = float(INTENSITY_RANGE[0] + (INTENSITY_RANGE[1] - INTENSITY_RANGE[0]) * u[0])
    aus = expression_aus(label, intensity, rng)
    geom = face_geometry(idn, aus, 1 if u[1] < 0.5 else -1, (u[2] - 0.5, u[3] - 0.5))
    frame = _pose_frame(size, geom["landmarks"], u[4:8])
    face, sil, cls_map = _render_face(size, idn, geom, frame, aus, rng.standard_normal(_N_CLS))
    # lighting gradient, colour cast and sensor noise: drawn now, applied after the occluder
    la = 2 * np.pi * u[8]
    gain = 0.7 * u[9]
    bright = 0.8 + 0.4 * u[10]
    cast = 1.0 + 0.04 * rng.standard_normal(3)
    noise_amp = (1.5 + 4.5 * u[11]) * math.sqrt(3.0) / 128.0  # uniform noise with std 1.5..6 grey levels
    noise = np.frombuffer(rng.bytes(size * size * 3), dtype=np.int8).reshape(size, size, 3)
    img = _clutter(size, rng)
    img.paste(face, (0, 0), sil)
    v = rng.random(2)
    if occluder is None:
        mix = synthfer_occluders() if occluder_mix is None else tuple(occluder_mix)
        if v[0] < occlusion_prob and not mix:
            raise ValueError("no occluder kind to draw from: register one with synthfer_mix=True or pass occluder_mix")
        occluder = mix[int(v[1] * len(mix))] if v[0] < occlusion_prob else "none"
    occ = None
    if occluder != "none":  # drawn on its own layer; exactly the pixels of its mask are pasted
        layer, mask = Image.new("RGB", (size, size), 0), Image.new("L", (size, size), 0)
        paint_occluder(occluder, layer, mask, frame, rng, idn)
        img.paste(layer, (0, 0), mask)
        occ = np.asarray(mask) > 0

    # lighting gradient x colour cast, then sensor noise (vectorised over the (S, S, 3) image)
    cy, cx = _light_axes(size)
    field = np.float32(gain * math.sin(la)) * cy + (np.float32(1.0) + np.float32(gain * math.cos(la)) * cx)
    out = np.asarray(img, dtype=np.float32)  # (S, S, 3)
    out *= field[:, :, None]
    out *= (bright * cast).astype(np.float32)
    out += noise * np.float32(noise_amp)
    image = np.clip(out, 0, 255).astype(np.uint8)
    parsing = np.take(_TO_LAPA_EXT, cls_map)
    lm_px = geom["landmarks"] @ frame.matrix().T + (frame.cx, frame.cy)  # continuous pixel coordinates
    visible = np.ones(68, dtype=bool)
    if occ is not None:
        parsing[occ] = 0
        # a landmark is hidden when the occluder covers its pixel or one of its 8 neighbours
        ix = np.clip(lm_px[:, :1].astype(int) + _NB_DX, 0, size - 1)  # (68, 9)
        iy = np.clip(lm_px[:, 1:].astype(int) + _NB_DY, 0, size - 1)
        visible = ~occ[iy, ix].any(axis=1)
    return SynthSample(
        image=image,
        landmarks=(lm_px / size).astype(np.float32),
        visible=visible,
        parsing=parsing,
        label=label,
        occluder=occluder,
        intensity=intensity,
        identity=identity,
    )
