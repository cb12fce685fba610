"""SynthFER rendering: a face's palette, its parts filled by PIL into an image and an 11-class LaPa parsing map, the
pose frame, and the background clutter.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from .face import (
    _BROW_L,
    _BROW_R,
    _CLOTHES,
    _EAR,
    _EYE_L,
    _EYE_R,
    _HAIR,
    _IRIS_L,
    _IRIS_R,
    _LLIP,
    _MOUTH,
    _NECK,
    _NOSE,
    _PUPIL_L,
    _PUPIL_R,
    _SHADE_LEVELS,
    _SHADE_OUTER,
    _SKIN,
    _TEETH,
    _TO_LAPA,
    _ULIP,
    AUS,
    Frame,
    Identity,
    _ellipse,
    _flat_slices,
)

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
