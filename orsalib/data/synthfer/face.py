"""SynthFER face geometry: identities, expressions (action units), the canonical face frame, and the ~700 points
of a face laid out as one matrix product with a cached basis (landmarks and part outlines agree by construction).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

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
