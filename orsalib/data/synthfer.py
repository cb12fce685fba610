"""SynthFER: the embedded default dataset of procedurally drawn faces with exact ground truth.

Every image is drawn (numpy + PIL only) from one face geometry in a canonical face frame, so its 68 iBUG 300-W
landmarks and its 11-class LaPa-style parsing map agree with the pixels by construction:

- identity: face width/length/jaw taper, skin tone, eye spacing/size/tilt, brow thickness/arch, nose and mouth
  size, resting mouth curvature, hair style and colour (one random draw per identity id);
- expression: the 7 basic expressions (+ contempt) as prototypes over action-unit-like parameters (:data:`AUS`,
  after the FACS/EMFACS prototypes: e.g. happiness = AU6 + AU12, surprise = AU1 + AU2 + AU5 + AU26), scaled by a
  random intensity per sample so that classes overlap at low intensity (neutral = near-zero action units);
- pose (rotation, scale, shift), a lighting gradient, sensor noise and background clutter;
- occluders drawn on top (:data:`OCCLUDERS`): hand, sunglasses, medical mask, scarf, object (cup, phone, blob)
  and a second, smaller face. Occluder pixels are background (0) in the parsing map, and each landmark carries a
  visibility flag (False when an occluder covers it or touches it within one pixel).

Coordinates: landmarks are x, y in [0, 1] of the image, pixel ``i`` covering ``[i / S, (i + 1) / S)``.
Parsing classes (LaPa): 0 background, 1 skin, 2 left brow, 3 right brow, 4 left eye, 5 right eye, 6 nose,
7 upper lip, 8 inner mouth, 9 lower lip, 10 hair; "left" is the subject's left (image right).

Determinism: a sample depends only on ``(seed, index)`` (and the explicit label/identity/occluder arguments):
everything comes from ``default_rng([seed, index])``, the face first with a fixed number of draws and the occluder
last, so the paired ``valid_occluded`` split shows exactly the faces of ``valid`` with an occluder added.

Speed: the face layout is affine in ~30 coefficients (identity proportions combined with the action units), so all
~700 points of a face are one matrix product with a cached basis; polygons are filled by PIL and all per-pixel work
is a handful of vectorised numpy operations.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import math
import multiprocessing
import os
import shutil
import struct
import zlib
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageChops, ImageDraw

from .. import registry
from ..registry import register_occluder
from .labels import emotions

# Occluder kinds are registered painters (``@register_occluder`` below; ``orsalib.registry.OCCLUDERS``). Read from
# the registry on access: ``OCCLUDER_KINDS`` (every registered kind), ``OCCLUDERS`` (``"none"`` + those kinds).

GENERATOR_VERSION = 4  # bump whenever the drawn bytes change (part of the cache key)
# 1: first release. 2: expression intensity >= 0.45 (was 0.25).
# 3: occluders are pasted through their own mask: in 2, finger lines of hands and spots of blob objects could
#    paint a few pixels outside the mask, where the parsing map kept a face class. Otherwise the pixels are
#    those of 2 up to +-1 (float32 lighting). Image PNGs are stored uncompressed.
# 4: the geometric effects of the action units are 1.2-1.45x those of 3 (lip corners, brows, lids, mouth
#    opening): at 64 px a lip corner moved ~1 px at the lowest intensity, and low-intensity sadness and
#    happiness were mostly read as neutral.

AUS: tuple[str, ...] = (
    "brow_raise",  # AU1+2 inner and outer brow raiser
    "brow_inner",  # AU1 inner brow raiser (oblique brows)
    "brow_lower",  # AU4 brow lowerer (lower + knit)
    "eye_wide",  # AU5 upper lid raiser
    "eye_squint",  # AU6/7 cheek raiser / lid tightener
    "lip_up",  # AU12 lip corner puller
    "lip_down",  # AU15 lip corner depressor
    "mouth_open",  # AU25/26 lips part, jaw drop
    "upper_lip_raise",  # AU10 upper lip raiser
    "nose_wrinkle",  # AU9 nose wrinkler
    "lip_stretch",  # AU20 lip stretcher
    "lip_press",  # AU23/24 lip tightener / presser
    "smirk",  # AU14 unilateral dimpler (contempt)
)
_A = {name: i for i, name in enumerate(AUS)}

# Expression prototypes (rows in canonical label order), columns = AUS.
_PROTOTYPES = np.zeros((8, len(AUS)), dtype=np.float64)
for _row, _aus in enumerate(
    [
        {"brow_lower": 1.0, "eye_wide": 0.35, "lip_press": 0.9, "lip_down": 0.2},  # anger
        {"nose_wrinkle": 1.0, "upper_lip_raise": 1.0, "brow_lower": 0.5, "eye_squint": 0.5, "lip_down": 0.35},
        {
            "brow_raise": 0.6,
            "brow_inner": 0.7,
            "brow_lower": 0.45,
            "eye_wide": 1.0,
            "lip_stretch": 1.0,
            "mouth_open": 0.35,
        },  # fear
        {"lip_up": 1.0, "eye_squint": 0.7, "mouth_open": 0.25},  # happiness
        {"brow_inner": 1.0, "brow_lower": 0.3, "lip_down": 1.0, "eye_squint": 0.25},  # sadness
        {"brow_raise": 1.0, "eye_wide": 0.9, "mouth_open": 1.0},  # surprise
        {},  # neutral
        {"smirk": 1.0, "eye_squint": 0.1},  # contempt
    ]
):
    for _k, _v in _aus.items():
        _PROTOTYPES[_row, _A[_k]] = _v

INTENSITY_RANGE: tuple[float, float] = (0.45, 1.0)  # expression intensity of the non-neutral classes
NEUTRAL_INTENSITY: float = 0.12  # neutral faces: intensity of the random action-unit noise
AU_NOISE: float = 0.07  # scale of random spontaneous activation of every action unit

# Internal render classes -> LaPa parsing classes / default colours.
_BG, _SKIN, _BROW_L, _BROW_R, _EYE_L, _EYE_R, _NOSE, _ULIP, _MOUTH, _LLIP, _HAIR = range(11)
_NECK, _CLOTHES, _TEETH, _IRIS_L, _IRIS_R, _EAR, _PUPIL_L, _PUPIL_R = range(11, 19)
_TO_LAPA = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 0, 8, 4, 5, 1, 4, 5], dtype=np.uint8)
_FACE_SHADED = np.zeros(19, dtype=bool)
_FACE_SHADED[[_SKIN, _NOSE, _EAR, _NECK, _ULIP, _LLIP, _BROW_L, _BROW_R, _HAIR]] = True

_SKIN_LIGHT = np.array([238.0, 203.0, 177.0])
_SKIN_DARK = np.array([88.0, 56.0, 38.0])
_HAIR_COLOURS = np.array(
    [
        [24, 20, 18],
        [52, 36, 26],
        [95, 62, 40],
        [150, 110, 70],
        [205, 170, 110],
        [140, 62, 30],
        [150, 148, 145],
        [215, 210, 200],
    ],
    dtype=np.float64,
)
_HAIR_P = np.array([0.3, 0.22, 0.16, 0.1, 0.08, 0.05, 0.05, 0.04])
_IRIS_COLOURS = np.array([[60, 38, 25], [35, 25, 20], [90, 120, 160], [80, 110, 70], [110, 80, 45]], dtype=np.float64)


# ----------------------------------------------------------------------------------------------- identities
@dataclass(frozen=True)
class Identity:
    """Face shape and colours of one synthetic person, in canonical face units (1 = image side at scale 1).

    The canonical frame has its origin at the image centre of an aligned face and y pointing down.
    """

    fw: float = 0.33  # half face width at the temples
    jaw_taper: float = 0.15  # how much narrower the jaw is than the temples
    jaw_power: float = 2.5  # 1.5 = square jaw ... 4 = pointed chin
    forehead_y: float = -0.46  # top of the skull
    eye_y: float = -0.08  # eye centres
    eye_dx: float = 0.15  # half distance between the eye centres
    eye_hw: float = 0.062  # eye half width
    eye_h: float = 0.025  # upper-lid height
    eye_tilt: float = 0.004  # canthal tilt (outer corner higher)
    brow_gap: float = 0.07  # brow centre line above the eye centre
    brow_th: float = 0.018  # brow thickness
    brow_arch: float = 0.012
    nose_y: float = 0.1  # nose tip
    nose_w: float = 0.058  # half nostril width
    mouth_y: float = 0.215  # lip meeting line at the centre
    mouth_w: float = 0.088  # half mouth width
    lip_up_th: float = 0.015
    lip_lo_th: float = 0.021
    rest_curve: float = 0.0  # resting lip-corner offset (+ = down-turned)
    chin_y: float = 0.38
    y0: float = -0.06  # height of landmarks 0 and 16 (jaw top)
    hair_style: int = 1  # 0 shaved, 1 short, 2 medium, 3 long, 4 bangs
    hairline_y: float = -0.3
    skin: tuple = (200.0, 160.0, 130.0)
    hair: tuple = (52.0, 36.0, 26.0)
    lips: tuple = (170.0, 95.0, 90.0)
    iris: tuple = (60.0, 38.0, 25.0)
    clothes: tuple = (60.0, 80.0, 120.0)


DEFAULT_IDENTITY = Identity()
"""An average face: the anchor layout of semantic occluders on arbitrary (aligned) faces."""


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw one random identity (face shape, proportions, colours, hair)."""
    u = rng.random(24)
    jaw_power = JAW_POWERS[int(rng.integers(len(JAW_POWERS)))]
    eye_y = -0.105 + 0.05 * u[0]
    nose_y = eye_y + 0.16 + 0.05 * u[1]
    mouth_y = nose_y + 0.095 + 0.035 * u[2]
    chin_y = mouth_y + 0.135 + 0.05 * u[3]
    eye_hw = 0.054 + 0.016 * u[4]
    brow_gap = 0.058 + 0.026 * u[5]
    brow_th = 0.01 + 0.018 * u[6]
    tone = u[7] ** 0.9
    skin = _SKIN_LIGHT * (1 - tone) + _SKIN_DARK * tone + rng.normal(0, 6, 3)
    hair = _HAIR_COLOURS[rng.choice(len(_HAIR_COLOURS), p=_HAIR_P)] + rng.normal(0, 6, 3)
    lips = skin * np.array([0.82, 0.58, 0.6]) + np.array([18.0, 5.0, 8.0]) + rng.normal(0, 5, 3)
    style = int(rng.choice(5, p=[0.1, 0.3, 0.2, 0.25, 0.15]))
    brow_top = eye_y - brow_gap - 0.06  # above the highest a raised brow goes
    if style == 4:
        hairline = brow_top - 0.01 - 0.05 * u[8]
    else:
        hairline = -0.36 + 0.1 * u[8]
    return Identity(
        fw=0.305 + 0.055 * u[9],
        jaw_taper=0.05 + 0.25 * u[10],
        jaw_power=jaw_power,
        forehead_y=-0.5 + 0.08 * u[12],
        eye_y=eye_y,
        eye_dx=0.13 + 0.035 * u[13],
        eye_hw=eye_hw,
        eye_h=0.019 + 0.011 * u[14],
        eye_tilt=-0.006 + 0.016 * u[15],
        brow_gap=brow_gap,
        brow_th=brow_th,
        brow_arch=0.004 + 0.016 * u[16],
        nose_y=nose_y,
        nose_w=0.045 + 0.026 * u[17],
        mouth_y=mouth_y,
        mouth_w=0.075 + 0.027 * u[18],
        lip_up_th=0.009 + 0.011 * u[19],
        lip_lo_th=0.013 + 0.015 * u[20],
        rest_curve=float(rng.normal(0, 0.006)),
        chin_y=chin_y,
        y0=eye_y + 0.035 * u[21],
        hair_style=style,
        hairline_y=hairline,
        skin=tuple(np.clip(skin, 20, 250)),
        hair=tuple(np.clip(hair, 5, 250)),
        lips=tuple(np.clip(lips, 20, 250)),
        iris=tuple(_IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))]),
        clothes=tuple(rng.uniform(20, 230, 3)),
    )


@functools.lru_cache(maxsize=8192)
def identity_params(seed: int, identity: int) -> Identity:
    """The identity ``identity`` of dataset seed ``seed`` (deterministic, cached)."""
    return sample_identity(np.random.default_rng([seed, 0x1D, identity]))


def expression_aus(label: int, intensity: float, rng: np.random.Generator) -> np.ndarray:
    """Action-unit vector (len(AUS),) of an expression at an intensity, with per-sample variation."""
    n = len(AUS)
    z = rng.standard_normal(2 * n)  # fixed number of draws whatever the label
    g = rng.random(2 * n + 1)
    aus = _PROTOTYPES[label] * intensity * np.clip(1.0 + 0.25 * z[:n], 0.4, 1.6)
    aus += AU_NOISE * np.abs(z[n:]) * (g[:n] < 0.5)
    if label == 6:  # neutral: a little spontaneous activity, no prototype
        aus += 0.5 * intensity * g[n : 2 * n]
    if label == 3:  # happiness: closed- or open-mouth smile
        aus[_A["mouth_open"]] = intensity * g[2 * n] * 0.45
    return np.clip(aus, 0.0, 1.3)


# ----------------------------------------------------------------------------------------------- frames
# ----------------------------------------------------------------------------------------------- frames
@dataclass(frozen=True)
class Frame:
    """Similarity transform canonical face units -> pixel coordinates (pixel ``i`` covers ``[i, i + 1)``)."""

    cx: float
    cy: float
    unit: float  # pixels per canonical unit
    angle: float = 0.0  # radians, positive = clockwise on screen

    def matrix(self) -> np.ndarray:
        """(2, 2) linear part M: ``px = q @ M.T + (cx, cy)``."""
        c, s = math.cos(self.angle) * self.unit, math.sin(self.angle) * self.unit
        return np.array([[c, -s], [s, c]])

    def to_px(self, q: np.ndarray) -> np.ndarray:
        """(N, 2) canonical points -> (N, 2) continuous pixel coordinates."""
        return np.asarray(q, dtype=np.float64) @ self.matrix().T + (self.cx, self.cy)

    @staticmethod
    def for_box(box: tuple[float, float, float, float]) -> Frame:
        """The frame of an aligned face filling the box ``(x0, y0, x1, y1)`` in pixels."""
        x0, y0, x1, y1 = box
        return Frame(cx=(x0 + x1) / 2, cy=(y0 + y1) / 2, unit=float(min(x1 - x0, y1 - y0)), angle=0.0)


@functools.lru_cache(maxsize=16)
def _pixel_centres(size: int) -> np.ndarray:
    return np.arange(size, dtype=np.float32) + 0.5


def _flat(px: np.ndarray) -> list[float]:
    """Continuous pixel coordinates -> PIL drawing coordinates (PIL puts pixel centres on integers)."""
    return (px - 0.5).ravel().tolist()


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 20, a0: float = 0.0, a1: float = 2 * np.pi):
    t = np.linspace(a0, a1, n, endpoint=a1 - a0 < 2 * np.pi - 1e-9)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


# ----------------------------------------------------------------------------------------------- geometry
# The face layout is affine in a vector of scalar coefficients (identity proportions already combined with the
# action units), so every point of every polygon is ``basis @ coefficients``: one matrix product per sample.
_COEFS: tuple[str, ...] = (
    "one",
    "my",
    "cd_l",
    "cd_r",
    "mw_l",
    "mw_r",
    "o_up",
    "o_lo",
    "ul",
    "ll",
    "fw",
    "fwt",
    "y0",
    "chin",
    "fry",
    "eye_dx",
    "eye_hw",
    "eye_y",
    "tilt",
    "eh_up",
    "eh_lo",
    "eye_h",
    "gx",
    "gy",
    "brow_base",
    "arch",
    "inner",
    "lower",
    "brow_th",
    "ny",
    "nw",
    "nb",
    "teeth_u",
    "teeth_l",
)
JAW_POWERS: tuple[float, ...] = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
_SHADE_LEVELS: tuple[tuple[float, int], ...] = ((1.15, 205), (1.0, 222), (0.87, 240), (0.75, 255))
_SHADE_OUTER = 190  # brightness (of 255) outside the outermost shading ellipse

_T = np.linspace(-1.0, 1.0, 21)[:, None]  # lips, outer (21, 1)
_T_IN = np.linspace(-0.85, 0.85, 17)[:, None]  # lips, inner (17, 1)
_T_EYE = np.linspace(-1.0, 1.0, 25)[:, None]  # lids; contains +-1/3
_U_BROW = np.linspace(0.0, 1.0, 11)[:, None]  # brow, outer -> inner; contains 0, .2, .5, .8, 1
_CIRCLE = np.linspace(0.0, 2 * np.pi, 16, endpoint=False)[:, None]
_CIRCLE_8 = np.linspace(0.0, 2 * np.pi, 8, endpoint=False)[:, None]


def _col1(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float64).reshape(-1, 1)


def _layout(c: Any, jaw_power: float) -> list[tuple[str, Any, Any]]:
    """All face points as ``(segment, x, y)`` in canonical units, written affinely in the coefficients ``c``.

    ``c`` maps each name of ``_COEFS`` to a float (direct evaluation) or to a one-hot row (1, K) (the basis);
    fixed functions of the curve parameters are (n, 1) columns, so products broadcast to (n, K) in the latter.
    """
    one = c["one"]
    out: list[tuple[str, Any, Any]] = []

    def seg(name, x, y):
        out.append((name, x, y))

    # --- mouth (AU10, AU12, AU14, AU15, AU20, AU23/24, AU25/26)
    def mid(t):
        a = np.abs(t) ** 2.2
        return c["my"] * np.ones_like(t) + c["cd_l"] * ((t < 0) * a) + c["cd_r"] * ((t >= 0) * a)

    def mx(t):
        return c["mw_l"] * ((t < 0) * t) + c["mw_r"] * ((t >= 0) * t)

    def upper_out(t):
        bow = 0.004 * np.exp(-(((np.abs(t) - 0.3) / 0.15) ** 2)) - 0.003 * np.exp(-((t / 0.1) ** 2))
        return mid(t) - c["o_up"] * (1 - t**2) - c["ul"] * (1 - 0.85 * t**2) - one * bow

    def lower_out(t):
        return mid(t) + c["o_lo"] * (1 - t**2) ** 0.8 + c["ll"] * (1 - t**2) ** 0.6

    def upper_in(t):
        return mid(t) - c["o_up"] * (1 - (t / 0.85) ** 2)

    def lower_in(t):
        return mid(t) + c["o_lo"] * np.clip(1 - (t / 0.85) ** 2, 0, None) ** 0.8

    t, ti, tr = _T, _T_IN, _T_IN[::-1]
    seg("upper_lip", [mx(t), mx(tr)], [upper_out(t), upper_in(tr)])
    seg("lower_lip", [mx(t), mx(tr)], [lower_out(t), lower_in(tr)])
    seg("inner_mouth", [mx(ti), mx(tr)], [upper_in(ti), lower_in(tr)])
    seg("teeth_up", [mx(ti), mx(tr)], [upper_in(ti) - 0.01 * one, upper_in(tr) + c["teeth_u"] * np.ones_like(tr)])
    seg("teeth_lo", [mx(ti), mx(tr)], [lower_in(ti) - c["teeth_l"] * np.ones_like(ti), lower_in(tr) + 0.01 * one])
    seg("lip_line", [mx(t)], [mid(t)])
    e, p6, p3 = _col1([-1.0]), _col1([-0.6, -0.3, 0.0, 0.3, 0.6]), _col1([-0.32, 0.0, 0.32])
    seg(
        "lm_mouth",
        [mx(e), mx(p6), mx(-e), mx(-p6), mx(0.85 * e), mx(p3), mx(-0.85 * e), mx(-p3)],
        [mid(e), upper_out(p6), mid(-e), lower_out(-p6), mid(0.85 * e), upper_in(p3), mid(-0.85 * e), lower_in(-p3)],
    )  # 48, 49-53, 54, 55-59, 60, 61-63, 64, 65-67
    for k, side in enumerate((-1, 1)):  # nasolabial folds and smirk dimples end at the mouth corners
        corner_x, corner_y = mx(_col1([side * 1.0])), mid(_col1([side * 1.0]))
        seg(
            f"fold{k}",
            [
                _col1([side * 1.15, side * 1.3]) * c["nw"] + _col1([0.0, side * 0.01]) * one,
                corner_x + side * 0.018 * one,
            ],
            [c["ny"] + _col1([-0.005, 0.05]) * one, corner_y + 0.02 * one],
        )
        seg(
            f"dimple{k}",
            [corner_x + _col1([0.01, 0.02, 0.012]) * side * one],
            [corner_y + _col1([-0.02, 0, 0.018]) * one],
        )

    # --- jaw and forehead: face outline; landmarks 0-16 every second jaw point
    phi = np.linspace(np.pi, 0.0, 33)[:, None]
    s = np.sin(phi)
    ey = 0.9 + 0.1 * jaw_power

    def jaw(ph, s):
        return (np.cos(ph) * c["fw"] - np.cos(ph) * s**jaw_power * c["fwt"], c["y0"] * (1 - s**ey) + c["chin"] * s**ey)

    fa = np.linspace(0.0, -np.pi, 21)[1:-1, None]
    jx, jy = jaw(phi, s)
    seg("face", [jx, np.cos(fa) * c["fw"]], [jy, c["y0"] + np.sin(fa) * c["fry"]])
    jx, jy = jaw(phi[::2], s[::2])
    seg("lm_jaw", [jx], [jy])
    fc_y = 0.5 * (c["y0"] + c["chin"])
    for k, (lv, _) in enumerate(_SHADE_LEVELS):
        seg(
            f"shade{k}",
            [lv * 1.05 * np.cos(_CIRCLE) * c["fw"]],
            [fc_y + lv / 1.9 * np.sin(_CIRCLE) * (c["chin"] - c["y0"] + c["fry"])],
        )

    # --- eyes (AU5, AU6/7): t runs image-left -> image-right; the outer corner is t = side
    te, ter = _T_EYE, _T_EYE[::-1]
    for k, side in enumerate((-1, 1)):

        def yc(t, side=side):
            return c["eye_y"] * np.ones_like(t) - c["tilt"] * (side * t)

        def up(t, yc=yc):
            return yc(t) - c["eh_up"] * (1 - t**2) ** 0.75

        def lo(t, yc=yc):
            return yc(t) + c["eh_lo"] * (1 - t**2) ** 0.9

        def ex(t, side=side):
            return side * c["eye_dx"] * np.ones_like(t) + c["eye_hw"] * t

        name = "R" if side < 0 else "L"  # subject's right eye is on the image left
        seg(f"eye_{name}", [ex(te), ex(ter)], [up(te), lo(ter)])
        seg(f"crease_{name}", [ex(te[4:-4])], [up(te[4:-4]) - 0.7 * c["eye_h"]])
        q = _col1([-1.0, -1 / 3, 1 / 3, 1.0])
        seg(
            f"lm_eye_{name}",
            [ex(q[:1]), ex(q[1:3]), ex(q[3:]), ex(q[2:0:-1])],
            [yc(q[:1]), up(q[1:3]), yc(q[3:]), lo(q[2:0:-1])],
        )  # 36-41 / 42-47
        icx = side * c["eye_dx"] + c["gx"]
        icy = c["eye_y"] - 0.2 * c["eye_h"] + c["gy"]
        seg(f"iris_{name}", [icx + 1.05 * np.cos(_CIRCLE) * c["eye_h"]], [icy + 1.05 * np.sin(_CIRCLE) * c["eye_h"]])
        seg(
            f"pupil_{name}",
            [icx + 0.47 * np.cos(_CIRCLE_8) * c["eye_h"]],
            [icy + 0.47 * np.sin(_CIRCLE_8) * c["eye_h"]],
        )
        ox = side * c["eye_dx"] + side * 1.15 * c["eye_hw"]
        for j in (-1, 0, 1):  # crow's feet
            seg(
                f"crow{k}{j}", [ox + _col1([0.0, side * 0.03]) * one], [c["eye_y"] + _col1([0.012 * j, 0.02 * j]) * one]
            )

    # --- brows (AU1+2, AU1, AU4)
    u = _U_BROW
    ub = u**0.8
    for side in (-1, 1):
        x = (
            side * (c["eye_dx"] + 1.25 * c["eye_hw"]) * (1 - u)
            + side * (c["eye_dx"] - c["eye_hw"]) * u
            - side * 0.64 * c["lower"] * u**2
        )
        y = (
            c["brow_base"] * np.ones_like(u)
            - c["arch"] * (4 * ub * (1 - ub))
            - c["inner"] * u**2
            + c["lower"] * (0.35 + 0.65 * u)
        )
        th = c["brow_th"] * (0.25 + 0.25 * u)
        name = "R" if side < 0 else "L"
        seg(f"brow_{name}", [x, x[::-1]], [y - th, (y + th)[::-1]])
        idx = [0, 2, 5, 8, 10] if side < 0 else [10, 8, 5, 2, 0]  # 17-21 outer->inner / 22-26 inner->outer
        seg(f"lm_brow_{name}", [x[idx]], [y[idx]])
    for k in range(3):  # forehead wrinkles
        xs = np.linspace(-0.12, 0.12, 7)[:, None]
        seg(f"wrinkle{k}", [xs * one], [c["brow_base"] + (-0.045 - 0.028 * k + 0.012 * (xs / 0.12) ** 2) * one])
    for k, side in enumerate((-1, 1)):  # glabella lines
        seg(
            f"glabella{k}", [_col1([side * 0.012, side * 0.0084]) * one], [c["brow_base"] + _col1([-0.01, 0.035]) * one]
        )

    # --- nose (AU9)
    seg(
        "lm_nose",
        [_col1([0, 0, 0, 0]) * one, _col1([-1, -0.5, 0, 0.5, 1]) * c["nw"]],
        [
            c["eye_y"] - 0.005 * one,
            (2 / 3) * c["eye_y"] + (1 / 3) * c["ny"],
            (1 / 3) * c["eye_y"] + (2 / 3) * c["ny"],
            c["ny"],
            c["nb"] + _col1([-0.006, 0.004, 0.008, 0.004, -0.006]) * one,
        ],
    )  # 27-30, 31-35
    nl = _col1([-1.08, -1.08])
    seg(
        "nose",
        [
            _col1([-0.018, -0.026]) * one,
            nl * c["nw"],
            _col1([-1, -0.5, 0, 0.5, 1]) * c["nw"],
            -nl * c["nw"],
            _col1([0.026, 0.018]) * one,
        ],
        [
            c["eye_y"] - 0.012 * one,
            c["ny"] - 0.055 * one,
            c["ny"] - 0.004 * one,
            c["nb"] - 0.012 * one,
            c["nb"] + _col1([-0.006, 0.004, 0.008, 0.004, -0.006]) * one,
            c["nb"] - 0.012 * one,
            c["ny"] - 0.004 * one,
            c["ny"] - 0.055 * one,
            c["eye_y"] - 0.012 * one,
        ],
    )
    for k, side in enumerate((-1, 1)):
        seg(
            f"nostril{k}",
            [side * 0.5 * c["nw"] + 0.3 * np.cos(_CIRCLE_8) * c["nw"]],
            [c["nb"] - 0.008 * one + 0.008 * np.sin(_CIRCLE_8) * one],
        )
        seg(
            f"noseside{k}",
            [_col1([side * 0.02, 0]) * one + _col1([0, side * 0.9]) * c["nw"]],
            [_col1([1, 0]) * c["eye_y"] + _col1([0, 1]) * c["ny"] + _col1([0.03, -0.01]) * one],
        )
    for k in range(3):  # nose wrinkles
        seg(
            f"nosewrinkle{k}",
            [_col1([-0.022, 0.0, 0.022]) * one],
            [c["eye_y"] + _col1([0.02, 0.024, 0.02]) * one + 0.014 * k * one],
        )
    return out


def _stack_segment(parts, k: int | None) -> np.ndarray:
    """Concatenate the pieces of one coordinate into (n, K) (basis) or (n,) (direct)."""
    cols = []
    for p in parts:
        p = np.asarray(p, dtype=np.float64)
        if k is None:
            cols.append(p.reshape(-1))
            continue
        if p.ndim != 2 or p.shape[1] != k:
            raise AssertionError(f"a layout term of shape {p.shape} is not multiplied by a coefficient")
        cols.append(p)
    out = np.concatenate(cols, axis=0)
    return out if k is not None else out.reshape(-1)


@functools.lru_cache(maxsize=len(JAW_POWERS))
def _basis(jaw_power: float) -> tuple[np.ndarray, dict[str, slice]]:
    """(N, 2, K) basis of all face points and the row slice of each segment."""
    k = len(_COEFS)
    eye = np.eye(k)
    c = {name: eye[i][None, :] for i, name in enumerate(_COEFS)}
    rows, slices, n = [], {}, 0
    for name, xs, ys in _layout(c, jaw_power):
        x, y = _stack_segment(xs, k), _stack_segment(ys, k)
        if x.shape != y.shape:
            raise AssertionError(f"segment {name}: x {x.shape} and y {y.shape} differ")
        rows.append(np.stack([x, y], axis=1))  # (n, 2, K)
        slices[name] = slice(n, n + len(x))
        n += len(x)
    return np.ascontiguousarray(np.concatenate(rows)), slices


@functools.lru_cache(maxsize=len(JAW_POWERS))
def _flat_slices(jaw_power: float) -> dict[str, slice]:
    """The segment slices of :func:`_basis` into a flat ``[x0, y0, x1, y1, ...]`` list of its points."""
    return {k: slice(2 * v.start, 2 * v.stop) for k, v in _basis(jaw_power)[1].items()}


_LM_ORDER = ("lm_jaw", "lm_brow_R", "lm_brow_L", "lm_nose", "lm_eye_R", "lm_eye_L", "lm_mouth")


def _coefficients(idn: Identity, aus: np.ndarray, smirk_side: int, gaze: tuple[float, float]) -> dict[str, float]:
    """Identity proportions combined with the action units -> the layout coefficients."""
    a = {name: float(v) for name, v in zip(AUS, aus)}
    mw = idn.mouth_w * (
        1
        + 0.28 * a["lip_up"]
        + 0.38 * a["lip_stretch"]
        - 0.15 * a["lip_press"]
        - 0.06 * a["lip_down"]
        - 0.18 * a["mouth_open"]
    )
    cd = idn.rest_curve - 0.055 * a["lip_up"] + 0.045 * a["lip_down"] + 0.006 * a["lip_stretch"]
    sm = a["smirk"]
    o_lo = 0.085 * a["mouth_open"] + 0.012 * a["lip_stretch"]
    o_up = 0.024 * a["upper_lip_raise"] + 0.25 * o_lo
    ny = idn.nose_y - 0.014 * a["nose_wrinkle"] - 0.005 * a["upper_lip_raise"]
    return {
        "one": 1.0,
        "my": idn.mouth_y - 0.01 * a["upper_lip_raise"],
        "cd_l": cd - (0.045 * sm if smirk_side < 0 else 0.0),
        "cd_r": cd - (0.045 * sm if smirk_side > 0 else 0.0),
        "mw_l": mw * (1 + (0.26 * sm if smirk_side < 0 else 0.0)),
        "mw_r": mw * (1 + (0.26 * sm if smirk_side > 0 else 0.0)),
        "o_up": o_up,
        "o_lo": o_lo,
        "ul": idn.lip_up_th * (1 - 0.55 * a["lip_press"]) * (1 - 0.3 * a["upper_lip_raise"]),
        "ll": idn.lip_lo_th * (1 - 0.55 * a["lip_press"]),
        "fw": idn.fw,
        "fwt": idn.fw * idn.jaw_taper,
        "y0": idn.y0,
        "chin": idn.chin_y + 0.75 * o_lo,
        "fry": idn.y0 - idn.forehead_y,
        "eye_dx": idn.eye_dx,
        "eye_hw": idn.eye_hw,
        "eye_y": idn.eye_y,
        "tilt": idn.eye_tilt,
        "eh_up": idn.eye_h * max(0.12, 1 + 1.0 * a["eye_wide"] - 0.7 * a["eye_squint"]),
        "eh_lo": idn.eye_h * 0.55 * max(0.15, 1 + 0.35 * a["eye_wide"] - 0.7 * a["eye_squint"]),
        "eye_h": idn.eye_h,
        "gx": gaze[0] * 0.35 * idn.eye_hw,
        "gy": gaze[1] * 0.004,
        "brow_base": idn.eye_y - idn.brow_gap - 0.05 * a["brow_raise"],
        "arch": idn.brow_arch + 0.016 * a["brow_raise"],
        "inner": 0.05 * a["brow_inner"],
        "lower": 0.035 * a["brow_lower"],
        "brow_th": idn.brow_th,
        "ny": ny,
        "nw": idn.nose_w * (1 + 0.18 * a["nose_wrinkle"]),
        "nb": ny + 0.025,
        "teeth_u": 0.012 + 0.25 * o_up,
        "teeth_l": 0.008,
    }


def face_geometry(
    idn: Identity, aus: np.ndarray, smirk_side: int = 1, gaze: tuple[float, float] = (0.0, 0.0)
) -> dict[str, Any]:
    """All points of a face in canonical units.

    Args:
        idn: the identity.
        aus: action-unit activations (len(AUS),).
        smirk_side: +1 raises the image-right lip corner for ``smirk``, -1 the image-left one.
        gaze: iris offset (x, y) in units of the eye size.

    Returns:
        dict with ``points`` (N, 2), ``slices`` (segment name -> rows), ``landmarks`` (68, 2) in iBUG 300-W order
        and the scalar ``coefficients``.
    """
    coef = _coefficients(idn, aus, smirk_side, gaze)
    basis, slices = _basis(idn.jaw_power)
    pts = basis @ np.array([coef[n] for n in _COEFS])  # (N, 2)
    lm = np.concatenate([pts[slices[n]] for n in _LM_ORDER])  # (68, 2)
    return {"points": pts, "slices": slices, "landmarks": lm, "coefficients": coef, "smirk_side": smirk_side}


# ----------------------------------------------------------------------------------------------- rendering
_HAIR_DARK = 19
_N_CLS = 20
# code layer: 32 iris, 64 pupil, 96 teeth; resolved per class by _RESOLVE[class + code]
_RESOLVE = np.tile(np.arange(32, dtype=np.uint8), 4)
_RESOLVE[_EYE_L + 32], _RESOLVE[_EYE_R + 32] = _IRIS_L, _IRIS_R
_RESOLVE[_EYE_L + 64], _RESOLVE[_EYE_R + 64] = _PUPIL_L, _PUPIL_R
_RESOLVE[_MOUTH + 96] = _TEETH
_TO_LAPA_EXT = np.concatenate([_TO_LAPA, np.array([10] + [0] * 12, dtype=np.uint8)])[_RESOLVE]  # (128,)


@functools.lru_cache(maxsize=4096)
def _base_palette(idn: Identity) -> np.ndarray:
    """(32, 3) float colour of every render class of an identity, before the per-sample jitter."""
    pal = np.zeros((32, 3))
    skin = np.array(idn.skin)
    hair = np.array(idn.hair)
    pal[_SKIN] = skin
    pal[_BROW_L] = pal[_BROW_R] = np.minimum(0.52 * hair + 0.15 * skin, skin * 0.7)
    pal[_EYE_L] = pal[_EYE_R] = (236, 232, 226)
    pal[_NOSE] = skin * 0.97
    pal[_ULIP] = np.array(idn.lips) * 0.95
    pal[_LLIP] = idn.lips
    pal[_MOUTH] = (62, 22, 28)
    pal[_HAIR] = hair
    pal[_HAIR_DARK] = hair * 0.72
    pal[_NECK] = skin * 0.82
    pal[_CLOTHES] = idn.clothes
    pal[_TEETH] = (238, 234, 220)
    pal[_IRIS_L] = pal[_IRIS_R] = idn.iris
    pal[_EAR] = skin * 0.94
    pal[_PUPIL_L] = pal[_PUPIL_R] = (12, 10, 10)
    pal.flags.writeable = False
    return pal


_JITTER_PAD = np.zeros(32 - _N_CLS)


def _palette(idn: Identity, jitter: np.ndarray) -> np.ndarray:
    """(128, 3) uint8 colour of every (class + code) value: the identity's colours, each class scaled by
    ``1 + 0.03 * jitter``."""
    scale = 1.0 + 0.03 * np.concatenate([jitter[:_N_CLS], _JITTER_PAD])
    pal = _base_palette(idn) * scale[:, None]
    np.clip(pal, 0, 255, out=pal)
    return pal.astype(np.uint8)[_RESOLVE]


@functools.lru_cache(maxsize=4096)
def _identity_assets(idn: Identity) -> tuple[np.ndarray, list[tuple[str, slice, int]], list[tuple[str, slice, int]]]:
    """Identity-only polygons (clothes, neck, hair, ears) as one (N, 2) array and draw lists (before/after face).

    The draw lists hold ``(kind, slice, class)``; the slices index the flat ``[x0, y0, x1, y1, ...]`` list.
    """
    polys_before: list[tuple[str, np.ndarray, int]] = []
    polys_after: list[tuple[str, np.ndarray, int]] = []
    nw = idn.fw * 0.55
    polys_before.append(
        (
            "poly",
            np.array(
                [
                    [-0.7, 1.2],
                    [-0.7, idn.chin_y + 0.2],
                    [-nw - 0.1, idn.chin_y + 0.1],
                    [nw + 0.1, idn.chin_y + 0.1],
                    [0.7, idn.chin_y + 0.2],
                    [0.7, 1.2],
                ]
            ),
            _CLOTHES,
        )
    )
    polys_before.append(
        (
            "poly",
            np.array(
                [
                    [-nw, idn.y0 + 0.1],
                    [-nw, idn.chin_y + 0.17],
                    [0, idn.chin_y + 0.2],
                    [nw, idn.chin_y + 0.17],
                    [nw, idn.y0 + 0.1],
                ]
            ),
            _NECK,
        )
    )
    st = idn.hair_style
    if st:
        head_ry = idn.y0 - idn.forehead_y
        m = 0.012 + 0.02 * (st >= 2)
        top = _ellipse(0.0, idn.y0, idn.fw + m, head_ry + m + 0.01 * st, 25, 0.0, -np.pi)  # right -> left
        if st in (2, 3, 4):
            drop = {2: idn.y0 + 0.18, 3: idn.chin_y + 0.2, 4: idn.chin_y + 0.05}[st]
            w = idn.fw + m + (0.05 if st == 3 else 0.02)
            back = np.concatenate([top, [[-w, idn.y0 + 0.02], [-w, drop], [w, drop], [w, idn.y0 + 0.02]]])
        else:
            back = np.concatenate([top, [[-idn.fw - m, idn.y0 + 0.03], [idn.fw + m, idn.y0 + 0.03]]])
        polys_before.append(("poly", back, _HAIR))
        if st in (2, 3, 4):  # strands of the back hair
            for x in np.linspace(-0.8, 0.8, 9):
                xx = x * (idn.fw + m)
                polys_before.append(("line", np.array([[xx, idn.y0 - 0.05], [xx * 1.08, drop - 0.02]]), _HAIR_DARK))
    for side in (-1, 1):
        polys_before.append(("poly", _ellipse(side * (idn.fw + 0.004), idn.y0 + 0.045, 0.03, 0.055, 12), _EAR))
    if st == 3:  # long hair falls in front of the ears
        for side in (-1, 1):
            x0, x1 = side * (idn.fw + 0.05), side * (idn.fw - 0.012)
            polys_before.append(
                (
                    "poly",
                    np.array(
                        [
                            [x0, idn.y0 - 0.05],
                            [x1, idn.y0 - 0.05],
                            [x1 + side * 0.01, idn.y0 + 0.12],
                            [x0, idn.chin_y + 0.15],
                        ]
                    ),
                    _HAIR,
                )
            )
    if st:
        xs = np.linspace(-idn.fw - m, idn.fw + m, 17)
        rel = np.clip(np.abs(xs) / (idn.fw + m), 0, 1)
        side_y = idn.y0 - 0.05
        if st == 4:  # bangs: a flat fringe
            hl = np.where(rel > 0.85, side_y, idn.hairline_y + 0.025 * rel**2)
        else:
            hl = side_y + (idn.hairline_y - side_y) * np.sqrt(1 - rel**2)
        polys_after.append(("poly", np.concatenate([top, np.stack([xs, hl], 1)]), _HAIR))
        for x in np.linspace(-0.6, 0.6, 7):  # strands of the front hair, ending above the hairline
            xx = x * idn.fw
            y_end = float(np.interp(xx, xs, hl)) - 0.02
            polys_after.append(("line", np.array([[xx * 0.3, idn.forehead_y + 0.02], [xx, y_end]]), _HAIR_DARK))
    pts, draws_b, draws_a, n = [], [], [], 0
    for src, dst in ((polys_before, draws_b), (polys_after, draws_a)):
        for kind, p, cls in src:
            pts.append(p)
            dst.append((kind, slice(2 * n, 2 * (n + len(p))), cls))  # into the flat x0, y0, x1, ... list
            n += len(p)
    return np.concatenate(pts), draws_b, draws_a


def _render_face(
    size: int, idn: Identity, geom: dict[str, Any], frame: Frame, aus: np.ndarray, colour_jitter: np.ndarray
) -> tuple[Image.Image, Image.Image, np.ndarray]:
    """Draw a face without background.

    Returns:
        (shaded RGB image, silhouette "L" image (255 = person), class map (S, S) uint8 of class + code values).
    """
    M = frame.matrix().T
    off = np.array([frame.cx - 0.5, frame.cy - 0.5])  # PIL puts pixel centres on integers
    static, draws_b, draws_a = _identity_assets(idn)
    # flat [x0, y0, x1, y1, ...] lists (what PIL takes) and slices into them
    sp = (static @ M + off).ravel().tolist()
    dp = (geom["points"] @ M + off).ravel().tolist()
    sl = _flat_slices(idn.jaw_power)
    lw = max(1, round(size / 112))

    lab = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(lab)
    for kind, s, cls in draws_b:
        if kind == "poly":
            d.polygon(sp[s], fill=cls)
        else:
            d.line(sp[s], fill=cls, width=lw)
    d.polygon(dp[sl["face"]], fill=_SKIN)
    for kind, s, cls in draws_a:
        if kind == "poly":
            d.polygon(sp[s], fill=cls)
        else:
            d.line(sp[s], fill=cls, width=lw)
    d.polygon(dp[sl["brow_R"]], fill=_BROW_R)  # image left = subject's right
    d.polygon(dp[sl["brow_L"]], fill=_BROW_L)
    d.polygon(dp[sl["eye_R"]], fill=_EYE_R)
    d.polygon(dp[sl["eye_L"]], fill=_EYE_L)
    d.polygon(dp[sl["nose"]], fill=_NOSE)
    d.polygon(dp[sl["upper_lip"]], fill=_ULIP)
    d.polygon(dp[sl["lower_lip"]], fill=_LLIP)
    coef = geom["coefficients"]
    is_open = coef["o_up"] + coef["o_lo"] > 0.004
    if is_open:
        d.polygon(dp[sl["inner_mouth"]], fill=_MOUTH)
    # code layer: iris, pupil, teeth (resolved against the class map, so they never leave the eye or mouth)
    code = Image.new("L", (size, size), 0)
    dc = ImageDraw.Draw(code)
    for name in ("R", "L"):
        dc.polygon(dp[sl[f"iris_{name}"]], fill=32)
        dc.polygon(dp[sl[f"pupil_{name}"]], fill=64)
    if is_open:
        dc.polygon(dp[sl["teeth_up"]], fill=96)
        dc.polygon(dp[sl["teeth_lo"]], fill=96)
    lab_arr = np.asarray(lab)
    cls_map = lab_arr + np.asarray(code)  # (S, S) class + code

    # brightness layer: soft shading towards the outline, then lid lines, creases, wrinkles, nostrils
    det = Image.new("L", (size, size), _SHADE_OUTER)
    dd = ImageDraw.Draw(det)
    for k, (_, v) in enumerate(_SHADE_LEVELS):
        dd.polygon(dp[sl[f"shade{k}"]], fill=v)
    a = {name: float(v) for name, v in zip(AUS, aus)}

    def line(name, dark):
        dd.line(dp[sl[name]], fill=int(255 - min(230.0, dark)), width=lw)

    for name in ("R", "L"):
        line(f"crease_{name}", 50)
        dd.line(dp[sl[f"eye_{name}"]][:50], fill=105, width=lw)  # upper lid lash line (25 points)
    if a["eye_squint"] > 0.3:
        for k in (0, 1):
            for j in (-1, 0, 1):
                line(f"crow{k}{j}", 140 * min(1.0, a["eye_squint"]))
    for k in (0, 1):
        dd.polygon(dp[sl[f"nostril{k}"]], fill=85)
        line(f"noseside{k}", 35)
        line(f"fold{k}", 70 * (0.15 + 0.9 * a["lip_up"] + 0.6 * a["upper_lip_raise"] + 0.4 * a["nose_wrinkle"]))
    if not is_open:
        line("lip_line", 140)
    br = a["brow_raise"] + 0.5 * a["brow_inner"]
    if br > 0.25:
        for k in range(3):
            line(f"wrinkle{k}", 120 * br)
    if a["brow_lower"] > 0.25:
        for k in range(2):
            line(f"glabella{k}", 150 * a["brow_lower"])
    if a["nose_wrinkle"] > 0.2:
        for k in range(3):
            line(f"nosewrinkle{k}", 170 * a["nose_wrinkle"])
    if a["smirk"] > 0.25:
        line(f"dimple{int(geom['smirk_side'] > 0)}", 160 * a["smirk"])
    rgb = Image.fromarray(np.take(_palette(idn, colour_jitter), cls_map, axis=0))
    shaded = ImageChops.multiply(rgb, det.convert("RGB"))
    sil = Image.fromarray((lab_arr != 0).view(np.uint8) * np.uint8(255))
    return shaded, sil, cls_map


def _pose_frame(size: int, lm_q: np.ndarray, u: np.ndarray) -> Frame:
    """Pose from 4 uniforms (rotation +-15 deg, scale, shift), corrected so every landmark stays inside."""
    ang = math.radians(-15.0 + 30.0 * u[0])
    scale = 0.86 + 0.2 * u[1]
    fr = Frame(cx=size * (0.45 + 0.1 * u[2]), cy=size * (0.45 + 0.1 * u[3]), unit=size * scale, angle=ang)
    px = fr.to_px(lm_q)
    margin = 0.02 * size
    lo, hi = px.min(0), px.max(0)
    f = min(1.0, float(np.min((size - 2 * margin) / np.maximum(hi - lo, 1e-6))))
    if f < 1.0:
        fr = Frame(fr.cx, fr.cy, fr.unit * f, ang)
        px = fr.to_px(lm_q)
        lo, hi = px.min(0), px.max(0)
    dx = np.maximum(0.0, margin - lo) - np.maximum(0.0, hi - (size - margin))
    return Frame(fr.cx + float(dx[0]), fr.cy + float(dx[1]), fr.unit, ang)


def _clutter(size: int, rng: np.random.Generator) -> Image.Image:
    """Background: a random base colour with random stripes, shapes and lines."""
    u = rng.random((12, 8))
    cols = [tuple(c) for c in (u[:, :3] * 256).astype(int).tolist()]
    img = Image.new("RGB", (size, size), cols[0])
    d = ImageDraw.Draw(img)
    if u[0, 3] < 0.35:  # stripes / tiles
        step = max(3, int(size * (0.06 + 0.14 * u[0, 4])))
        w = max(1, int(step * (0.2 + 0.4 * u[0, 5])))
        for x in range(0, size, step):
            d.rectangle([x, 0, x + w - 1, size] if u[0, 6] < 0.5 else [0, x, size, x + w - 1], fill=cols[1])
    for k in range(2, 2 + int(3 + 7 * u[0, 7])):
        r = u[k]
        x0, y0 = (r[3] * 1.1 - 0.1) * size, (r[4] * 1.1 - 0.1) * size
        x1, y1 = x0 + (0.05 + 0.4 * r[5]) * size, y0 + (0.05 + 0.4 * r[6]) * size
        kind = int(r[7] * 4)
        if kind == 0:
            d.rectangle([x0, y0, x1, y1], fill=cols[k])
        elif kind == 1:
            d.ellipse([x0, y0, x1, y1], fill=cols[k])
        elif kind == 2:
            d.polygon([x0, y0, x1, y0 + 0.3 * (y1 - y0), x0 + 0.5 * (x1 - x0), y1], fill=cols[k])
        else:
            d.line([x0, y0, x1, y1], fill=cols[k], width=max(1, int(r[5] * size / 20)))
    return img


# ----------------------------------------------------------------------------------------------- occluders
def _capsule(p0: np.ndarray, p1: np.ndarray, r: float, n: int = 6) -> np.ndarray:
    """Polygon of a stadium (rounded segment) from p0 to p1 with radius r."""
    d = p1 - p0
    ang = math.atan2(d[1], d[0])
    a1 = np.linspace(ang - np.pi / 2, ang + np.pi / 2, n)
    a0 = np.linspace(ang + np.pi / 2, ang + 3 * np.pi / 2, n)
    return np.concatenate(
        [p1 + r * np.stack([np.cos(a1), np.sin(a1)], 1), p0 + r * np.stack([np.cos(a0), np.sin(a0)], 1)]
    )


def _rot(q: np.ndarray, ang: float, about: np.ndarray) -> np.ndarray:
    c, s = math.cos(ang), math.sin(ang)
    d = q - about
    return about + np.stack([d[:, 0] * c - d[:, 1] * s, d[:, 0] * s + d[:, 1] * c], 1)


def _col(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


class OccluderCanvas:
    """Where an occluder painter draws: the layer image and its mask, the face frame and a size multiplier.

    Painters lay their shapes out in canonical face units and draw them with :meth:`fill` and :meth:`line`, which
    enlarge them by ``scale`` about the painter's anchor and map them to pixels through ``frame``; they may also
    paste onto ``image`` / ``mask`` directly (scarf fabric, second face).

    Args:
        image: RGB PIL image (modified).
        mask: "L" PIL image of the same size (modified: 255 where occluded).
        frame: canonical face units -> pixels.
        scale: size multiplier about the occluder's anchor.
    """

    def __init__(self, image: Image.Image, mask: Image.Image, frame: Frame, scale: float = 1.0) -> None:
        self.image, self.mask, self.frame, self.scale = image, mask, frame, scale
        self.size = image.size[0]
        self.draw_image, self.draw_mask = ImageDraw.Draw(image), ImageDraw.Draw(mask)

    def to_px(self, q: Any, anchor: np.ndarray) -> np.ndarray:
        """(N, 2) canonical points, enlarged by ``scale`` about ``anchor`` -> (N, 2) pixel coordinates."""
        return self.frame.to_px(anchor + self.scale * (np.asarray(q, dtype=np.float64) - anchor))

    def fill(self, q: Any, col: tuple[int, ...], anchor: np.ndarray, mask_too: bool = True) -> None:
        """Fill the polygon ``q`` (canonical units) with ``col``; mark it in the mask unless ``mask_too=False``."""
        px = self.to_px(q, anchor)
        self.draw_image.polygon(_flat(px), fill=col)
        if mask_too:
            self.draw_mask.polygon(_flat(px), fill=255)

    def line(
        self, q: Any, col: tuple[int, ...], anchor: np.ndarray, width: float, mask_too: bool = False
    ) -> None:  # fmt: skip
        """Draw the polyline ``q`` of ``width`` canonical units; mark it in the mask only with ``mask_too=True``."""
        px = self.to_px(q, anchor)
        w = max(1, int(round(width * self.scale * self.frame.unit)))
        self.draw_image.line(_flat(px), fill=col, width=w)
        if mask_too:
            self.draw_mask.line(_flat(px), fill=255, width=w)


# Occluder painters: ``painter(canvas, rng, idn)`` draws one occluder laid out on the anchors of identity ``idn``
# (eyes, nose, mouth, chin), taking its shape, colour and placement from ``rng``. Metadata: ``description``,
# ``region`` (what it covers) and ``synthfer_mix`` (True: drawn at random in SynthFER's training split and cycled
# through in its ``valid_occluded`` split; the registration order is the order of that draw).
@register_occluder(
    "hand",
    description="a hand (palm, four fingers, thumb, forearm) at a random angle",
    region="mouth, an eye, the nose or the chin",
    synthfer_mix=True,
)
def paint_hand(c: OccluderCanvas, rng: np.random.Generator, idn: Identity) -> None:
    """A hand over the mouth, one eye, one cheek/nose side or the chin."""
    target = rng.integers(4)
    anchor = [
        np.array([0.0, idn.mouth_y]),
        np.array([rng.choice([-1, 1]) * idn.eye_dx, idn.eye_y + 0.01]),
        np.array([rng.choice([-1, 1]) * 0.2, idn.nose_y + 0.03]),
        np.array([0.0, idn.chin_y - 0.02]),
    ][target]
    tone = rng.random()
    skin = _SKIN_LIGHT * (1 - tone) + _SKIN_DARK * tone
    col = tuple(int(v) for v in np.clip(skin + rng.normal(0, 8, 3), 0, 255))
    dark = tuple(int(v * 0.72) for v in col)
    hs = rng.uniform(0.9, 1.2)
    ang = rng.uniform(-np.pi, np.pi)
    palm = _ellipse(0.0, 0.02, 0.085 * hs, 0.1 * hs, 16)
    pieces = [palm]
    tips = []
    for k, (dx, ln) in enumerate(zip((-0.06, -0.02, 0.02, 0.06), (0.12, 0.14, 0.135, 0.11))):
        p0 = np.array([dx * hs, -0.05 * hs])
        p1 = p0 + np.array([0.15 * dx * hs, -ln * hs * rng.uniform(0.85, 1.05)])
        pieces.append(_capsule(p0, p1, 0.02 * hs))
        tips.append((p0, p1, k))
    thumb_side = rng.choice([-1, 1])
    t0 = np.array([thumb_side * 0.07 * hs, 0.05 * hs])
    pieces.append(_capsule(t0, t0 + np.array([thumb_side * 0.06, -0.07]) * hs, 0.022 * hs))
    pieces.append(_capsule(np.array([0, 0.08 * hs]), np.array([0, 0.5]), 0.055 * hs))  # wrist/forearm
    for p in pieces:
        c.fill(_rot(p, ang, np.zeros(2)) + anchor, col, anchor)
    for p0, p1, _ in tips[:-1]:
        a0 = p0 + np.array([0.02 * hs, 0.0])
        c.line(_rot(np.array([a0, a0 + 0.7 * (p1 - p0)]), ang, np.zeros(2)) + anchor, dark, anchor, 0.004)


@register_occluder(
    "sunglasses",
    description="sunglasses: round, rectangular or aviator lenses in a frame, bridge and temples",
    region="both eyes",
    synthfer_mix=True,
)
def paint_sunglasses(c: OccluderCanvas, rng: np.random.Generator, idn: Identity) -> None:
    """Sunglasses over both eyes (lens fill is dark, the frame and temples are marked in the mask)."""
    anchor = np.array([0.0, idn.eye_y])
    style = rng.integers(3)
    lens = _col(rng, 5, 70)
    frame_col = _col(rng, 0, 200)
    rx, ry = idn.eye_hw * rng.uniform(1.45, 1.75), idn.eye_hw * rng.uniform(1.0, 1.3)
    for side in (-1, 1):
        cx = side * idn.eye_dx
        cy = idn.eye_y + 0.006
        if style == 0:  # round
            q = _ellipse(cx, cy, rx, ry, 20)
        elif style == 1:  # rectangular with rounded corners
            t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
            q = np.stack(
                [
                    cx + rx * np.sign(np.cos(t)) * np.abs(np.cos(t)) ** 0.4,
                    cy + ry * 0.85 * np.sign(np.sin(t)) * np.abs(np.sin(t)) ** 0.4,
                ],
                1,
            )
        else:  # aviator: wider at the top, drop towards the outer-lower side
            t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
            q = np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t) * (1 + 0.25 * np.sin(t))], 1)
            q[:, 1] -= 0.008
        c.fill(q, frame_col, anchor)
        inner = cx + 0.85 * (q[:, 0] - cx), cy + 0.85 * (q[:, 1] - cy)
        c.fill(np.stack(inner, 1), lens, anchor, mask_too=False)
        hl = np.array([[cx - 0.4 * rx, cy - 0.1 * ry], [cx - 0.1 * rx, cy - 0.55 * ry]])
        c.line(hl, tuple(min(255, v + 90) for v in lens), anchor, 0.01)
    gap = idn.eye_dx - rx
    c.line(
        np.array([[-gap - 0.01, idn.eye_y - 0.01], [0, idn.eye_y - 0.02], [gap + 0.01, idn.eye_y - 0.01]]),
        frame_col,
        anchor,
        0.012,
        mask_too=True,
    )
    for side in (-1, 1):
        c.line(
            np.array(
                [[side * (idn.eye_dx + rx * 0.95), idn.eye_y - 0.01], [side * (idn.fw + 0.03), idn.eye_y - 0.015]]
            ),
            frame_col,
            anchor,
            0.012,
            mask_too=True,
        )


@register_occluder(
    "mask",
    description="a medical face mask with pleats and ear loops",
    region="nose, mouth and chin",
    synthfer_mix=True,
)
def paint_mask(c: OccluderCanvas, rng: np.random.Generator, idn: Identity) -> None:
    """A medical mask from the nose bridge to below the chin."""
    anchor = np.array([0.0, idn.mouth_y])
    col = [(170, 205, 235), (235, 238, 240), (30, 32, 36), (235, 190, 200), (150, 200, 185)][rng.integers(5)]
    col = tuple(int(np.clip(v + rng.normal(0, 8), 0, 255)) for v in col)
    top_c = idn.nose_y - rng.uniform(0.06, 0.1)
    top_s = idn.eye_y + rng.uniform(0.07, 0.1)
    w = idn.fw * rng.uniform(0.9, 1.02)
    xs = np.linspace(-w, w, 15)
    top = np.stack([xs, top_s + (top_c - top_s) * (1 - (xs / w) ** 2) ** 0.6 - 0.0], 1)
    bot_y = idn.chin_y + rng.uniform(0.0, 0.04)
    bot = np.stack([xs[::-1], idn.mouth_y + 0.06 + (bot_y - idn.mouth_y - 0.06) * (1 - (xs[::-1] / w) ** 2)], 1)
    c.fill(np.concatenate([top, bot]), col, anchor)
    dark = tuple(int(v * 0.78) for v in col)
    for k in range(3):
        y = idn.nose_y + 0.04 + 0.045 * k
        c.line(np.array([[-w * 0.85, y + 0.01], [0, y - 0.005], [w * 0.85, y + 0.01]]), dark, anchor, 0.006)
    for side in (-1, 1):
        c.line(
            np.array([[side * w, top_s + 0.005], [side * (idn.fw + 0.03), idn.y0 + 0.04]]),
            (235, 235, 235),
            anchor,
            0.006,
            mask_too=True,
        )
        c.line(
            np.array([[side * w * 0.97, idn.mouth_y + 0.07], [side * (idn.fw + 0.03), idn.y0 + 0.07]]),
            (235, 235, 235),
            anchor,
            0.006,
            mask_too=True,
        )


@register_occluder(
    "scarf",
    description="a plain, diagonally striped or horizontally striped scarf with a wavy upper edge",
    region="everything below a line between the nose and the mouth",
    synthfer_mix=True,
)
def paint_scarf(c: OccluderCanvas, rng: np.random.Generator, idn: Identity) -> None:
    """A scarf pulled up to between the nose and the mouth, down to the bottom of the image."""
    size = c.size
    anchor = np.array([0.0, idn.mouth_y])
    col = _col(rng, 20, 240)
    top_y = rng.uniform(idn.nose_y + 0.01, idn.mouth_y + 0.03)
    xs = np.linspace(-0.75, 0.75, 13)
    wave = 0.012 * np.sin(xs * rng.uniform(8, 16) + rng.uniform(0, 6))
    top = np.stack([xs, top_y + 0.08 * (xs / idn.fw) ** 2 + wave], 1)
    q = np.concatenate([top, [[0.75, 1.2], [-0.75, 1.2]]])
    px = c.to_px(q, anchor)
    layer = Image.new("RGB", c.image.size, col)
    ld = ImageDraw.Draw(layer)
    col2 = _col(rng, 0, 256)
    step = max(2, int(size * rng.uniform(0.04, 0.1)))
    pattern = rng.integers(3)
    if pattern:
        for k in range(-size, 2 * size, step * 2):
            if pattern == 1:
                ld.line([k, -size, k + size, 2 * size], fill=col2, width=step)
            else:
                ld.rectangle([0, k, size, k + step // 2], fill=col2)
    scarf_mask = Image.new("L", c.image.size, 0)
    ImageDraw.Draw(scarf_mask).polygon(_flat(px), fill=255)
    c.image.paste(layer, (0, 0), scarf_mask)
    c.draw_mask.polygon(_flat(px), fill=255)
    c.line(top[2:-2] + np.array([0.0, 0.03]), tuple(int(v * 0.7) for v in col), anchor, 0.006)


@register_occluder(
    "object",
    description="a cup with a handle, a phone or a random blob, slightly rotated",
    region="lower face (between the nose and the chin)",
    synthfer_mix=True,
)
def paint_object(c: OccluderCanvas, rng: np.random.Generator, idn: Identity) -> None:
    """A cup, a phone or a blob held in front of the lower face."""
    obj = rng.integers(3)
    anchor = np.array([rng.uniform(-0.15, 0.15), rng.uniform(idn.nose_y - 0.05, idn.chin_y - 0.05)])
    ang = rng.uniform(-0.5, 0.5)
    col = _col(rng)
    if obj == 0:  # cup with handle
        w, h = rng.uniform(0.08, 0.11), rng.uniform(0.12, 0.17)
        body = np.array([[-w, -h], [w, -h], [w * 0.85, h], [-w * 0.85, h]])
        handle = _ellipse(w + 0.03, 0.0, 0.045, 0.06, 14)
        handle_in = _ellipse(w + 0.03, 0.0, 0.025, 0.038, 14)
        c.fill(_rot(handle, ang, np.zeros(2)) + anchor, col, anchor)
        c.fill(_rot(handle_in, ang, np.zeros(2)) + anchor, (0, 0, 0), anchor, mask_too=False)
        # the hole of the handle is painted dark and counted as occluder
        c.fill(_rot(body, ang, np.zeros(2)) + anchor, col, anchor)
        stripe = np.array([[-w * 0.95, -h * 0.2], [w * 0.95, -h * 0.2], [w * 0.93, 0.0], [-w * 0.93, 0.0]])
        c.fill(_rot(stripe, ang, np.zeros(2)) + anchor, _col(rng), anchor)
    elif obj == 1:  # phone
        w, h = rng.uniform(0.06, 0.075), rng.uniform(0.12, 0.15)
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        body = np.stack(
            [w * np.sign(np.cos(t)) * np.abs(np.cos(t)) ** 0.3, h * np.sign(np.sin(t)) * np.abs(np.sin(t)) ** 0.3],
            1,
        )
        c.fill(_rot(body, ang, np.zeros(2)) + anchor, _col(rng, 0, 60), anchor)
        c.fill(_rot(body * 0.85, ang, np.zeros(2)) + anchor, _col(rng, 40, 256), anchor, mask_too=False)
    else:  # random blob
        n = 14
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        r = rng.uniform(0.09, 0.16) * rng.uniform(0.7, 1.3, n)
        blob = np.stack([r * np.cos(t), r * np.sin(t)], 1)
        c.fill(blob + anchor, col, anchor)
        for _ in range(3):
            sub = blob * rng.uniform(0.2, 0.5) + rng.uniform(-0.04, 0.04, 2)
            c.fill(sub + anchor, _col(rng), anchor, mask_too=False)


@register_occluder(
    "face",
    description="a second, smaller SynthFER face with its own identity and expression",
    region="one side of the face, from the eyes to the mouth",
    synthfer_mix=True,
)
def paint_face(c: OccluderCanvas, rng: np.random.Generator, idn: Identity) -> None:
    """Another person's face overlapping one side (crowded scenes)."""
    frame = c.frame
    side = rng.choice([-1, 1])
    anchor = np.array([side * rng.uniform(0.3, 0.42), rng.uniform(0.05, 0.35)])
    m = max(8, int(round(frame.unit * 0.55 * rng.uniform(0.8, 1.1) * c.scale)))
    sub_id = sample_identity(rng)
    label = int(rng.integers(7))
    aus = expression_aus(label, rng.uniform(0.2, 1.0), rng)
    geom = face_geometry(sub_id, aus, int(rng.choice([-1, 1])), tuple(rng.uniform(-0.5, 0.5, 2)))
    sub_frame = Frame(m / 2, m / 2, m * 0.95, rng.uniform(-0.3, 0.3))
    sub_img, sub_mask, _ = _render_face(m, sub_id, geom, sub_frame, aus, rng.standard_normal(_N_CLS))
    px = frame.to_px(anchor[None])[0]
    off = (int(round(px[0] - m / 2)), int(round(px[1] - m / 2)))
    c.image.paste(sub_img, off, sub_mask)
    c.mask.paste(255, (off[0], off[1], off[0] + m, off[1] + m), sub_mask)


def occluder_kinds() -> tuple[str, ...]:
    """Every registered occluder kind (``orsalib.registry.OCCLUDERS``), in registration order."""
    return tuple(registry.OCCLUDERS.names())


def synthfer_occluders() -> tuple[str, ...]:
    """The kinds SynthFER draws at random (training split) and cycles through (``valid_occluded``), in order:
    the registered occluders with ``synthfer_mix=True``."""
    return tuple(n for n in registry.OCCLUDERS.names() if registry.OCCLUDERS.meta(n).get("synthfer_mix"))


def __getattr__(name: str) -> Any:
    # OCCLUDERS / OCCLUDER_KINDS are read from the registry on access, so later registrations are included.
    if name == "OCCLUDER_KINDS":
        return occluder_kinds()
    if name == "OCCLUDERS":
        return ("none",) + occluder_kinds()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def paint_occluder(
    kind: str,
    image: Image.Image,
    mask: Image.Image,
    frame: Frame,
    rng: np.random.Generator,
    idn: Identity = DEFAULT_IDENTITY,
    scale: float = 1.0,
) -> None:
    """Draw one semantic occluder over a face, in place, and mark its pixels (255) in ``mask``.

    The occluder is laid out in the canonical frame of the face (``idn`` gives the anchor positions: eyes,
    nose, mouth, chin), so it follows the face's pose; ``scale`` enlarges it about its own anchor. The painter
    of each kind is registered with :func:`orsalib.registry.register_occluder`.

    Args:
        kind: one of :data:`OCCLUDER_KINDS` (a registered occluder).
        image: RGB PIL image (modified).
        mask: "L" PIL image of the same size (modified: 255 where occluded).
        frame: canonical face units -> pixels.
        rng: the random stream of this occluder (shape, colour, placement).
        idn: identity whose anchors the occluder is placed on.
        scale: size multiplier about the occluder's anchor.

    Raises:
        ValueError: ``kind`` is not a registered occluder (the message lists them).
    """
    painter = registry.OCCLUDERS.get(kind)
    painter(OccluderCanvas(image, mask, frame, scale), rng, idn)


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


# ----------------------------------------------------------------------------------------------- dataset build
_VALID_OFFSET = 10_000_000  # sample indices and identity ids of the validation faces (disjoint from training)
_IMAGES_PER_IDENTITY = 6
MANIFEST_COLUMNS: tuple[str, ...] = (
    "path",
    "label",
    "label_name",
    "split",
    "occluded",
    "occluder",
    "source",
    "landmarks_index",
    "parsing_path",
    "intensity",
    "subject",
)


def synthfer_params(
    size: int = 112,
    train_per_class: int = 400,
    val_per_class: int = 100,
    num_classes: int = 7,
    occlusion_prob: float = 0.5,
    seed: int = 0,
) -> dict[str, Any]:
    """The settings that determine a SynthFER build (recorded in ``params.json``; their hash names the folder)."""
    for name, v in (("size", size), ("train_per_class", train_per_class), ("val_per_class", val_per_class)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"SynthFER {name} must be a positive integer, got {v!r}")
    if size < 16:
        raise ValueError(f"SynthFER size must be >= 16 pixels, got {size!r}")
    if num_classes not in (7, 8):
        raise ValueError(f"SynthFER num_classes must be 7 or 8, got {num_classes!r}")
    if not 0.0 <= float(occlusion_prob) <= 1.0:
        raise ValueError(f"SynthFER occlusion_prob must be in [0, 1], got {occlusion_prob!r}")
    params: dict[str, Any] = {
        "generator_version": GENERATOR_VERSION,
        "size": int(size),
        "train_per_class": int(train_per_class),
        "val_per_class": int(val_per_class),
        "num_classes": int(num_classes),
        "occlusion_prob": float(occlusion_prob),
        "seed": int(seed),
    }
    mix = synthfer_occluders()
    if not mix:
        raise ValueError("SynthFER needs at least one occluder kind registered with synthfer_mix=True")
    if any(getattr(registry.OCCLUDERS.get(k), "__module__", None) != __name__ for k in mix):
        params["occluders"] = list(mix)  # a mix with registered kinds of elsewhere is part of the settings
    return params


def _mix(params: dict[str, Any]) -> tuple[str, ...]:
    """The occluder kinds of a build (recorded in ``params`` when they are not the built-in ones)."""
    return tuple(params.get("occluders") or synthfer_occluders())


def default_root(params: dict[str, Any]) -> Path:
    """``outputs/cache/synthfer/<hash of the params>``: different settings never share a folder."""
    from ..paths import CACHE_DIR

    key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    return CACHE_DIR / "synthfer" / f"s{params['size']}_c{params['num_classes']}_{key}"


def _plan(params: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per manifest row: split, sample index, label, identity, occluder (None = drawn)."""
    c = params["num_classes"]
    rows: list[dict[str, Any]] = []
    for split, per_class, offset in (
        ("train", params["train_per_class"], 0),
        ("valid", params["val_per_class"], _VALID_OFFSET),
    ):
        n = per_class * c
        n_ids = max(1, n // _IMAGES_PER_IDENTITY)
        perm = np.random.default_rng([params["seed"], 0x5EED, offset]).permutation(n)
        for k in range(n):
            rows.append(
                {
                    "split": split,
                    "index": offset + k,
                    "label": k % c,
                    "identity": offset + int(perm[k]) % n_ids,
                    "occluder": None if split == "train" else "none",
                }
            )
    n_val = params["val_per_class"] * c
    mix = _mix(params)
    for k in range(n_val):  # the same faces as `valid`, each class cycling through the occluder kinds
        row = dict(rows[params["train_per_class"] * c + k])
        row.update(split="valid_occluded", occluder=mix[(k // c) % len(mix)])
        rows.append(row)
    return rows


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _png_bytes(arr: np.ndarray) -> bytes:
    """A standard 8-bit greyscale (H, W) or RGB (H, W, 3) PNG of a uint8 array, written for speed.

    Images are stored without compression (deflate "stored" blocks): the sensor noise of SynthFER leaves zlib
    little to gain (about 30 %) at a cost of ~1 ms per 112-px image, more than drawing it. Label maps (few
    values, long runs) are run-length compressed. Any PNG reader decodes both (PIL, libpng, torchvision).
    """
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    h, w = arr.shape[:2]
    colour = 2 if arr.ndim == 3 else 0
    rows = np.empty((h, 1 + arr[0].size), dtype=np.uint8)
    rows[:, 0] = 0  # filter type None
    rows[:, 1:] = arr.reshape(h, -1)
    z = zlib.compressobj(0 if colour else 1, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY if colour else zlib.Z_RLE)
    idat = z.compress(rows.tobytes()) + z.flush()
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)),
            _png_chunk(b"IDAT", idat),
            _png_chunk(b"IEND", b""),
        )
    )


def _write_fast(path: Path, data: bytes) -> None:
    """Temp file + rename (no fsync per image: the manifest, written last with fsync, marks a complete build)."""
    from ..utils import atomic_write_bytes

    atomic_write_bytes(path, data, fsync=False)


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _load_manifest(root: Path) -> pd.DataFrame:
    df = pd.read_csv(root / "manifest.csv")
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{root / 'manifest.csv'} lacks the columns {missing}; delete the folder to rebuild it")
    if len(df) and not Path(df["path"].iloc[0]).exists():  # the folder was moved: re-anchor the paths
        df["path"] = [str(root.joinpath(*Path(p).parts[-3:])) for p in df["path"]]
        df["parsing_path"] = [str(root.joinpath(*Path(p).parts[-2:])) for p in df["parsing_path"]]
    return df


class _FolderLock:
    """An exclusive lock on a build folder (POSIX ``flock``; a no-op where unavailable)."""

    def __init__(self, root: Path) -> None:
        self.path = root / ".build.lock"
        self.f = None

    def __enter__(self) -> _FolderLock:
        self.f = open(self.path, "w")  # noqa: SIM115 - held for the duration of the build
        try:
            import fcntl

            fcntl.flock(self.f, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - non-POSIX
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()


_CHUNK = 64  # rows per task of a parallel build


def _resolve_workers(workers: int | None, n: int) -> int:
    """Worker processes of a build: ``None`` = every core for builds of at least 512 images, else 1."""
    if workers is None:
        return min(os.cpu_count() or 1, 8) if n >= 512 else 1
    if not isinstance(workers, (int, np.integer)) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"SynthFER workers must be a positive integer or None (= automatic), got {workers!r}")
    return int(workers)


def _build_chunk(
    root: str, params: dict[str, Any], names: list[str], chunk: list[tuple[int, dict[str, Any]]]
) -> list[tuple[int, np.ndarray, np.ndarray, dict[str, Any]]]:
    """Render and write the rows ``chunk`` of a build (runs in a worker process or inline)."""
    out = []
    base = Path(root)
    mix = _mix(params)
    for i, row in chunk:
        s = render_sample(
            row["index"],
            seed=params["seed"],
            size=params["size"],
            num_classes=params["num_classes"],
            label=row["label"],
            occluder=row["occluder"],
            occlusion_prob=params["occlusion_prob"],
            identity=row["identity"],
            occluder_mix=mix,
        )
        path = base / row["split"] / names[s.label] / f"{i:06d}.png"
        ppath = base / "parsing" / f"{i:06d}.png"
        _write_fast(path, _png_bytes(s.image))
        _write_fast(ppath, _png_bytes(s.parsing))
        rec = {
            "path": str(path),
            "label": s.label,
            "label_name": names[s.label],
            "split": row["split"],
            "occluded": int(s.occluder != "none"),
            "occluder": s.occluder,
            "source": "synthfer",
            "landmarks_index": i,
            "parsing_path": str(ppath),
            "intensity": round(s.intensity, 6),
            "subject": s.identity,
        }
        out.append((i, s.landmarks, s.visible, rec))
    return out


def build_synthfer(
    root: str | Path | None = None,
    *,
    size: int = 112,
    train_per_class: int = 400,
    val_per_class: int = 100,
    num_classes: int = 7,
    occlusion_prob: float = 0.5,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    workers: int | None = None,
) -> pd.DataFrame:
    """Generate SynthFER on disk (idempotent) and return its manifest.

    Layout (the ImageFolder layout of the released ORSANet code)::

        <root>/train/<class>/<id>.png            occluder with probability ``occlusion_prob``
        <root>/valid/<class>/<id>.png            clean
        <root>/valid_occluded/<class>/<id>.png   the same faces as valid with an occluder (kinds balanced per class)
        <root>/parsing/<id>.png                  11-class LaPa label maps (occluder pixels 0)
        <root>/landmarks.npy, visible.npy        (N, 68, 2) float32 in [0, 1]; (N, 68) bool
        <root>/params.json, manifest.csv         settings; the manifest (written last)

    ``<id>`` is the manifest row. Classes are exactly balanced; validation identities are disjoint from
    training identities. A folder whose ``params.json`` matches and that holds ``manifest.csv`` is returned
    as is; anything else (no manifest after an interruption, other settings, ``force``) is rebuilt.

    Args:
        root: output folder; None = ``outputs/cache/synthfer/<hash of the settings>``.
        size: image side in pixels.
        train_per_class: training images per class.
        val_per_class: validation images per class (clean; the occluded split has as many).
        num_classes: 7 or 8 (+ contempt).
        occlusion_prob: fraction of training faces with an occluder.
        seed: dataset seed.
        force: rebuild even when a complete build exists.
        progress: show a progress bar.
        workers: processes that render and write images (the bytes do not depend on it); None = every core
            (at most 8) for builds of 512 images or more, one process below that.

    Returns:
        the manifest (columns :data:`MANIFEST_COLUMNS`).
    """
    from tqdm.auto import tqdm

    from ..utils import atomic_write_bytes, atomic_write_json, atomic_write_text

    params = synthfer_params(size, train_per_class, val_per_class, num_classes, occlusion_prob, seed)
    _resolve_workers(workers, 0)
    root = Path(root).expanduser().resolve() if root else default_root(params)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"SynthFER root {str(root)!r} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    with _FolderLock(root):
        pfile, mfile = root / "params.json", root / "manifest.csv"
        old = None
        if pfile.exists():
            try:
                old = json.loads(pfile.read_text(encoding="utf-8"))
            except ValueError:  # not JSON (or not text): rebuilt
                old = {}
        if not force and old == params and mfile.exists():
            return _load_manifest(root)
        names = emotions(num_classes)
        subdirs = ("train", "valid", "valid_occluded", "parsing")
        if old is None and any((root / s).exists() for s in subdirs):
            raise FileExistsError(
                f"{str(root)!r} holds train/valid folders but no SynthFER params.json; refusing to overwrite "
                "what may be a real dataset. Pick an empty folder (or root=None for the default cache)."
            )
        for f in ("manifest.csv", "landmarks.npy", "visible.npy"):
            (root / f).unlink(missing_ok=True)
        for s in subdirs:
            if (root / s).exists():
                shutil.rmtree(root / s)
        atomic_write_json(pfile, params)
        for split in ("train", "valid", "valid_occluded"):
            for name in names:
                (root / split / name).mkdir(parents=True, exist_ok=True)
        (root / "parsing").mkdir(exist_ok=True)

        plan = _plan(params)
        n = len(plan)
        landmarks = np.zeros((n, 68, 2), dtype=np.float32)
        visible = np.zeros((n, 68), dtype=bool)
        records: list[dict[str, Any]] = [{}] * n
        jobs = list(enumerate(plan))
        chunks = [jobs[k : k + _CHUNK] for k in range(0, n, _CHUNK)]
        workers = _resolve_workers(workers, n)
        work = functools.partial(_build_chunk, str(root), params, names)
        bar = tqdm(total=n, desc=f"SynthFER {size}px", disable=not progress, mininterval=1.0, unit="img")
        with contextlib.ExitStack() as stack:
            if workers > 1:  # the workers only run numpy + PIL, so forking a process that holds torch is safe
                method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
                pool = stack.enter_context(
                    ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))
                )
                results = pool.map(work, chunks)
            else:
                results = map(work, chunks)
            try:
                for done in results:
                    for i, lm, vis, rec in done:
                        landmarks[i], visible[i], records[i] = lm, vis, rec
                    bar.update(len(done))
            except BrokenProcessPool as e:
                raise RuntimeError(
                    f"a SynthFER worker process died while building {str(root)!r} ({e}); nothing was marked complete "
                    "(no manifest.csv), so the next call rebuilds it. If it happens again (out of memory?), build "
                    "with workers=1 (orsa synth --workers 1)."
                ) from e
            finally:
                bar.close()
        atomic_write_bytes(root / "landmarks.npy", _npy_bytes(landmarks))
        atomic_write_bytes(root / "visible.npy", _npy_bytes(visible))
        df = pd.DataFrame.from_records(records, columns=list(MANIFEST_COLUMNS))
        atomic_write_text(mfile, df.to_csv(index=False))
        return _load_manifest(root)


def synthfer_from_config(data_cfg: Any, seed: int = 0) -> pd.DataFrame:
    """Build (or reuse) the SynthFER of a :class:`orsalib.config.DataConfig`.

    Uses ``synth_size``, ``train_per_class``, ``val_per_class``, ``num_classes``, ``occlusion_prob`` and
    ``data_root`` ("" = the default cache folder, the only place the workbook generates SynthFER by default).

    A ``data_root`` that holds anything but a SynthFER build is refused: the workbook never writes into a user's
    dataset folder (e.g. a RAF-DB folder passed without naming its dataset).
    """
    root = Path(data_cfg.data_root).expanduser() if data_cfg.data_root else None
    if root is not None and root.is_dir() and any(root.iterdir()) and not (root / "params.json").is_file():
        raise FileExistsError(
            f"data.dataset='synthfer' with data.data_root={str(root)!r}: that folder holds other files and no "
            "SynthFER build, and SynthFER is never generated into a dataset folder. To use the dataset in it, name "
            "it (--dataset rafdb / affectnet8 / fer2013 / imagefolder ...) or leave --dataset empty to detect it; "
            "for SynthFER leave data_root empty (it is generated under outputs/cache/synthfer/)"
        )
    return build_synthfer(
        root,
        size=data_cfg.synth_size,
        train_per_class=data_cfg.train_per_class,
        val_per_class=data_cfg.val_per_class,
        num_classes=data_cfg.num_classes,
        occlusion_prob=data_cfg.occlusion_prob,
        seed=seed,
        progress=os.environ.get("TQDM_DISABLE", "") not in ("1", "true", "True"),
    )
