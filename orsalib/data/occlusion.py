"""Artificial occlusion at a given area ratio (ORSANet paper, Table 3) and semantic occluders on any face.

- ``rectangle``: the Table 3 protocol: one random rectangle (random aspect ratio within [1/2, 2], filled with
  grey, black or noise) covering ``ratio`` (10/20/30 %) of the face area. Aligned FER crops are filled by the face,
  so the face box defaults to the whole image; an explicit ``face_box`` (x0, y0, x1, y1) in pixels is accepted.
- semantic kinds: every registered occluder (``orsalib.registry.OCCLUDERS``; built in: ``hand``, ``sunglasses``,
  ``mask``, ``scarf``, ``object``, ``face``), SynthFER's occluder shapes (:func:`orsalib.data.synthfer.paint_occluder`)
  laid out on an average aligned face inside the face box and scaled (a few secant steps on the scale) so that they
  cover approximately ``ratio`` of the box. A kind registered with ``@register_occluder`` is accepted here as is.

:data:`OCCLUSION_KINDS` (``rectangle`` + the registered occluders) is read from the registry on access.

Every mask is a deterministic function of (image key = manifest row id, seed, ratio, kind), so every model is
evaluated on identical occlusions.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from .synthfer import Frame, occluder_kinds, paint_occluder

PAPER_RATIOS: tuple[float, ...] = (0.1, 0.2, 0.3)
"""Occlusion ratios of the paper's Table 3."""
_ASPECT_RANGE = (0.5, 2.0)  # width / height of the random rectangle


def occlusion_kinds() -> tuple[str, ...]:
    """Kinds accepted by :func:`occlude_image`: ``rectangle`` and every registered occluder."""
    return ("rectangle",) + occluder_kinds()


def __getattr__(name: str) -> Any:
    if name == "OCCLUSION_KINDS":  # read from the registry on access, so later registrations are included
        return occlusion_kinds()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _box(h: int, w: int, face_box: Any) -> tuple[int, int, int, int]:
    """Validated integer face box (x0, y0, x1, y1), clipped to the image; default = the whole image."""
    if face_box is None:
        return 0, 0, w, h
    try:
        x0, y0, x1, y1 = (int(round(float(v))) for v in face_box)
    except (TypeError, ValueError):
        raise ValueError(f"face_box must be (x0, y0, x1, y1) in pixels, got {face_box!r}") from None
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError(f"face_box {face_box!r} is empty inside a {w}x{h} image")
    return x0, y0, x1, y1


def _check_ratio(ratio: float) -> float:
    if not isinstance(ratio, (int, float, np.floating)) or not 0.0 < float(ratio) < 1.0:
        raise ValueError(f"occlusion ratio must be a fraction in (0, 1), got {ratio!r}")
    return float(ratio)


def rectangle_mask(h: int, w: int, ratio: float, rng: np.random.Generator, face_box: Any = None) -> np.ndarray:
    """One random axis-aligned rectangle covering ``ratio`` of the face box (paper Table 3 protocol).

    The rectangle lies inside the box, its aspect ratio is drawn in [1/2, 2] (narrowed where the box is too small),
    and its integer sides are chosen so that the covered fraction is as close to ``ratio`` as pixels allow.

    Args:
        h: image height.
        w: image width.
        ratio: fraction of the face-box area to cover, in (0, 1).
        rng: random generator (position and aspect).
        face_box: (x0, y0, x1, y1) in pixels; None = the whole image.

    Returns:
        bool (h, w) mask, True where occluded.
    """
    ratio = _check_ratio(ratio)
    x0, y0, x1, y1 = _box(h, w, face_box)
    bw, bh = x1 - x0, y1 - y0
    target = ratio * bw * bh
    # aspect limits so that both sides fit in the box
    lo = max(_ASPECT_RANGE[0], target / (bh * bh))
    hi = min(_ASPECT_RANGE[1], bw * bw / target)
    aspect = math.exp(rng.uniform(math.log(lo), math.log(hi))) if lo < hi else math.sqrt(lo * hi)
    rw0 = int(np.clip(round(math.sqrt(target * aspect)), 1, bw))
    sides = [(rw, int(np.clip(round(target / rw), 1, bh))) for rw in (rw0 - 1, rw0, rw0 + 1) if 1 <= rw <= bw]
    rw, rh = min(sides, key=lambda s: abs(s[0] * s[1] - target))  # integer sides closest to the target area
    left = x0 + int(rng.integers(0, bw - rw + 1))
    top = y0 + int(rng.integers(0, bh - rh + 1))
    mask = np.zeros((h, w), dtype=bool)
    mask[top : top + rh, left : left + rw] = True
    return mask


def _kind_id(kind: str) -> int:
    return zlib.crc32(kind.encode("utf-8"))


def _rng(key: int, seed: int, ratio: float | None, kind: str) -> np.random.Generator:
    r = -1 if ratio is None else int(round(ratio * 10_000))
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(key) & 0xFFFFFFFF, r + 1, _kind_id(kind)])


def _semantic(
    rgb: np.ndarray, kind: str, ratio: float | None, key: int, seed: int, box: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Paste a semantic occluder; with a ratio, search the scale so that it covers ~ratio of the box."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    frame = Frame.for_box(box)
    area = (x1 - x0) * (y1 - y0)

    def paint(scale: float) -> tuple[Image.Image, np.ndarray]:
        img = Image.fromarray(rgb)
        mask = Image.new("L", (w, h), 0)
        paint_occluder(kind, img, mask, frame, _rng(key, seed, ratio, kind), scale=scale)
        return img, np.asarray(mask) > 0

    if ratio is None:
        img, m = paint(1.0)
        return np.asarray(img), m
    best = None
    scale = 1.0
    for _ in range(7):
        img, m = paint(scale)
        cov = m[y0:y1, x0:x1].sum() / area
        if best is None or abs(cov - ratio) < best[0]:
            best = (abs(cov - ratio), img, m)
        if abs(cov - ratio) < 0.005:
            break
        # coverage grows roughly with the square of the scale
        scale = float(np.clip(scale * math.sqrt(ratio / max(cov, 1e-3)), 0.2, 5.0))
    return np.asarray(best[1]), best[2]


def occlude_image(
    image: np.ndarray,
    ratio: float | None,
    kind: str = "rectangle",
    key: int = 0,
    seed: int = 0,
    face_box: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Occlude one face image, deterministically per (key, seed, ratio, kind).

    Args:
        image: (H, W, 3) or (H, W) uint8 face image (any face: SynthFER or real).
        ratio: fraction of the face box to cover (paper Table 3: 0.1 / 0.2 / 0.3); None = the occluder's natural
            size (semantic kinds only).
        kind: ``rectangle`` or one of the semantic kinds (:data:`OCCLUSION_KINDS`).
        key: the image's id (its manifest row), so that every model sees the same mask for the same image.
        seed: occlusion seed.
        face_box: (x0, y0, x1, y1) in pixels; None = the whole image (aligned crops).

    Returns:
        (occluded image, same shape and dtype as the input; bool (H, W) mask, True where occluded).
    """
    kinds = occlusion_kinds()
    if kind not in kinds:
        raise ValueError(f"unknown occlusion kind {kind!r}; expected one of {list(kinds)}")
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3)):
        raise ValueError(f"image must be a uint8 (H, W) or (H, W, 3) array, got {arr.dtype} {arr.shape}")
    gray = arr.ndim == 2 or arr.shape[2] == 1
    rgb = np.repeat(arr.reshape(arr.shape[0], arr.shape[1], 1), 3, axis=2) if gray else arr
    h, w = rgb.shape[:2]
    box = _box(h, w, face_box)
    if kind == "rectangle":
        if ratio is None:
            raise ValueError("the rectangle occlusion needs a ratio (paper Table 3: 0.1, 0.2 or 0.3)")
        rng = _rng(key, seed, _check_ratio(ratio), kind)
        mask = rectangle_mask(h, w, ratio, rng, face_box=box)
        out = rgb.copy()
        fill = int(rng.integers(3))
        n = int(mask.sum())
        if fill == 0:  # grey
            out[mask] = np.uint8(int(rng.integers(96, 161)))
        elif fill == 1:  # black
            out[mask] = 0
        else:  # noise
            out[mask] = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    else:
        ratio = None if ratio is None else _check_ratio(ratio)
        out, mask = _semantic(np.ascontiguousarray(rgb), kind, ratio, key, seed, box)
    if gray:
        out = np.asarray(Image.fromarray(out).convert("L"))
        out = out.reshape(arr.shape)
    return np.ascontiguousarray(out), mask


def _tag(kind: str, ratio: float | None) -> str:
    return f"{kind}@{'natural' if ratio is None else f'{ratio:g}'}"


def occlude_manifest(
    manifest: pd.DataFrame,
    ratio: float | None,
    kind: str,
    out_dir: str | Path,
    seed: int = 0,
    split: str | None = None,
    face_box: Any = None,
) -> pd.DataFrame:
    """Write occluded copies of a manifest's images and return the manifest of the copies.

    Files go to ``out_dir/<kind>_<ratio>_<hash>/`` (the hash covers the source rows, seed and box, so different
    settings never share files): ``<key>.png`` per image and, for rows with a ``parsing_path``, an adjusted
    ``parsing/<key>.png`` whose occluded pixels are 0 (background). The key of a row is its manifest index (the
    row id after ``reset_index``), so a mask is the same for every model. Idempotent: a completed folder (its
    ``manifest.csv`` is written last) is returned as is; files of an interrupted run are reused.

    Args:
        manifest: source manifest (contract columns; ``path`` absolute).
        ratio: fraction of the face box to cover; None = natural size (semantic kinds).
        kind: one of :data:`OCCLUSION_KINDS`.
        out_dir: parent folder of the output.
        seed: occlusion seed.
        split: only rows of this split (None = all rows).
        face_box: (x0, y0, x1, y1) in pixels; None = whole image.

    Returns:
        manifest of the copies (same columns; ``path`` -> the copy, ``occluded`` = 1,
        ``occluder`` = ``"<kind>@<ratio>"``, ``parsing_path`` -> adjusted map, ``landmarks_index`` kept).
    """
    from ..utils import atomic_write_bytes, atomic_write_text

    kinds = occlusion_kinds()
    if kind not in kinds:
        raise ValueError(f"unknown occlusion kind {kind!r}; expected one of {list(kinds)}")
    if ratio is not None:
        ratio = _check_ratio(ratio)
    if "path" not in manifest.columns:
        raise ValueError(f"manifest has no 'path' column (columns: {list(manifest.columns)})")
    rows = manifest
    if split is not None:
        if "split" not in manifest.columns:
            raise ValueError("split= was given but the manifest has no 'split' column")
        rows = manifest[manifest["split"] == split]
        if rows.empty:
            raise ValueError(f"no rows with split={split!r}; splits present: {sorted(manifest['split'].unique())}")
    keys = [int(k) for k in rows.index]
    sig = hashlib.sha1(
        json.dumps(
            [
                kind,
                ratio,
                int(seed),
                None if face_box is None else [float(v) for v in face_box],
                keys,
                [str(p) for p in rows["path"]],
            ]
        ).encode()
    ).hexdigest()[:10]
    pct = "natural" if ratio is None else f"{int(round(ratio * 100)):02d}"
    folder = Path(out_dir).expanduser().resolve() / f"{kind}_{pct}_{sig}"
    done = folder / "manifest.csv"
    if done.exists():
        return pd.read_csv(done)
    folder.mkdir(parents=True, exist_ok=True)
    has_parsing = "parsing_path" in rows.columns
    out = rows.copy()
    new_paths, new_parsing = [], []
    for key, (_, row) in zip(keys, rows.iterrows()):
        dst = folder / f"{key:06d}.png"
        pdst = folder / "parsing" / f"{key:06d}.png"
        need_parsing = has_parsing and isinstance(row["parsing_path"], str) and row["parsing_path"] != ""
        if not dst.exists() or (need_parsing and not pdst.exists()):
            src = Path(row["path"])
            try:
                with Image.open(src) as im:
                    img = np.asarray(im.convert("RGB"))
            except (OSError, ValueError) as e:
                raise ValueError(f"cannot read image {str(src)!r} (manifest row {key}): {e}") from e
            occluded, mask = occlude_image(img, ratio, kind, key=key, seed=seed, face_box=face_box)
            if need_parsing:
                try:
                    with Image.open(row["parsing_path"]) as pm:
                        parsing = np.array(pm)
                except (OSError, ValueError) as e:
                    raise ValueError(f"cannot read parsing map {row['parsing_path']!r} (row {key}): {e}") from e
                m = mask
                if parsing.shape != mask.shape:
                    m = np.asarray(Image.fromarray(mask).resize(parsing.shape[::-1], Image.NEAREST))
                parsing[m] = 0
                atomic_write_bytes(pdst, _png(parsing))
            atomic_write_bytes(dst, _png(occluded))
        new_paths.append(str(dst))
        new_parsing.append(str(pdst) if need_parsing else (row["parsing_path"] if has_parsing else None))
    out["path"] = new_paths
    if has_parsing:
        out["parsing_path"] = new_parsing
    out["occluded"] = 1
    out["occluder"] = _tag(kind, ratio)
    out = out.reset_index(drop=True)
    atomic_write_text(done, out.to_csv(index=False))
    return pd.read_csv(done)


def _png(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
