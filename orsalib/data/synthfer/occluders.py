"""SynthFER's occluders: the drawing canvas and the registered occluder painters (hand, sunglasses, mask, scarf,
object, a second face), laid out on a face's anchors so they follow its pose (``orsalib.registry.OCCLUDERS``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ... import registry
from ...registry import register_occluder
from .face import (
    _SKIN_DARK,
    _SKIN_LIGHT,
    DEFAULT_IDENTITY,
    Frame,
    Identity,
    _ellipse,
    _flat,
    expression_aus,
    face_geometry,
    sample_identity,
)
from .render import _N_CLS, _render_face


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
