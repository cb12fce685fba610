"""Paired transforms: the image, its 68 landmarks and its parsing map move together.

Conventions (docs/contracts.md, "Priors"):

- images are ``uint8`` arrays (H, W, 3) RGB until :func:`to_tensor`;
- landmarks are ``float32`` (68, 2), x, y in [0, 1] of the image in the *continuous* convention
  (pixel ``i`` covers ``[i / W, (i + 1) / W)``), iBUG 300-W 68-point order, so a horizontal flip is ``x -> 1 - x``
  followed by the mirror permutation :data:`FLIP_68` (the subject's left eye becomes the right eye);
- parsing maps are integer (H, W) 11-class LaPa labels; a flip mirrors the map and swaps the lateral classes
  2 <-> 3 (brows) and 4 <-> 5 (eyes).

The released ORSANet augmentation (docs/faithfulness.md, "augmentation"): horizontal flip, resize to 224, ImageNet
normalisation, ``RandomErasing(p=0.5, scale=(0.02, 0.1))`` on the normalised image only. A small random scale/shift
crop is offered in addition (off by default, as in the release).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
_MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)
_INV_STD = 1.0 / np.array(IMAGENET_STD, dtype=np.float32)
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")


def _mirror_table() -> np.ndarray:
    """The 68-point iBUG 300-W mirror permutation: ``flipped[j] = original[FLIP_68[j]]`` after ``x -> 1 - x``."""
    pairs: list[tuple[int, int]] = []
    pairs += [(i, 16 - i) for i in range(8)]  # jaw 0..16, chin tip 8 is its own mirror
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows 17..21 <-> 26..22
    pairs += [(31, 35), (32, 34)]  # nose bottom; bridge 27..30 and tip 33 stay
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes (outer, upper, inner, lower)
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips; 51 and 57 stay
    pairs += [(60, 64), (61, 63), (65, 67)]  # inner lips; 62 and 66 stay
    perm = np.arange(68)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


FLIP_68: np.ndarray = _mirror_table()
"""(68,) permutation: landmark ``j`` of the flipped face is landmark ``FLIP_68[j]`` of the original (an involution)."""

PARSING_FLIP_LUT: np.ndarray = np.array([0, 1, 3, 2, 5, 4, 6, 7, 8, 9, 10], dtype=np.int64)
"""LaPa class swap under a horizontal flip: left/right brow (2, 3) and left/right eye (4, 5)."""


# ----------------------------------------------------------------------------- image IO
def read_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to ``uint8`` RGB (H, W, 3).

    Grayscale, palette, RGBA/LA (alpha dropped) and 16-bit images are converted; 16-bit values are scaled
    to 8 bits (``v / 257``), not clipped.

    Raises:
        OSError / ValueError from PIL when the file is missing, truncated or not an image (callers wrap it
        with the file name; see :class:`orsalib.data.sources.DatasetError`).
    """
    with Image.open(path) as img:
        img.load()
        return to_rgb_array(img)


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """A loaded PIL image as ``uint8`` RGB (H, W, 3), converting every mode the validator allows."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        scale = 257.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 1.0
        gray = np.clip(np.rint(arr / scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)  # (H, W) -> (H, W, 3)
    if img.mode == "F":
        gray = np.clip(np.rint(np.asarray(img, dtype=np.float64)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)  # (H, W) -> (H, W, 3)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


# ----------------------------------------------------------------------------- geometry
def flip_landmarks(landmarks: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Mirror (68, 2) landmarks in [0, 1] horizontally: ``x -> 1 - x`` and left/right ids swapped (FLIP_68)."""
    if landmarks.shape[-2:] != (68, 2):
        raise ValueError(f"flip_landmarks expects (..., 68, 2) landmarks, got shape {tuple(landmarks.shape)}")
    if isinstance(landmarks, torch.Tensor):
        out = landmarks[..., torch.as_tensor(FLIP_68, device=landmarks.device), :].clone()
        out[..., 0] = 1.0 - out[..., 0]
        return out
    out = np.array(landmarks[..., FLIP_68, :], copy=True)
    out[..., 0] = 1.0 - out[..., 0]
    return out


def flip_parsing(parsing: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Mirror an (..., H, W) LaPa parsing map and swap the lateral classes 2 <-> 3, 4 <-> 5."""
    if isinstance(parsing, torch.Tensor):
        lut = torch.as_tensor(PARSING_FLIP_LUT, device=parsing.device, dtype=parsing.dtype)
        return lut[parsing.flip(-1).long()]
    flipped = np.flip(parsing, axis=-1)
    return PARSING_FLIP_LUT.astype(parsing.dtype)[flipped]


def flip_image(image: np.ndarray) -> np.ndarray:
    """Mirror an (H, W, C) image horizontally."""
    return np.ascontiguousarray(image[:, ::-1])


def resize(
    image: np.ndarray,
    size: int | tuple[int, int],
    landmarks: np.ndarray | None = None,
    parsing: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Resize image (bilinear, antialiased by PIL) and parsing (nearest) to ``size``; landmarks are size-free.

    Args:
        image: (H, W, 3) uint8.
        size: an int (square) or (height, width).
        landmarks: optional (68, 2) in [0, 1], returned unchanged.
        parsing: optional (h, w) class map (any size), resized with nearest neighbour.
    """
    h, w = (size, size) if isinstance(size, int) else size
    if image.shape[:2] != (h, w):
        image = np.array(Image.fromarray(image).resize((w, h), Image.BILINEAR))
    if parsing is not None and parsing.shape[-2:] != (h, w):
        parsing = np.array(Image.fromarray(parsing.astype(np.uint8)).resize((w, h), Image.NEAREST))
    return image, landmarks, parsing


def scale_shift(
    image: np.ndarray,
    scale: float,
    shift: tuple[float, float],
    landmarks: np.ndarray | None = None,
    parsing: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Zoom by ``scale`` about the centre moved by ``shift`` (fractions of the side); output keeps the size.

    The visible window is the box of side ``1 / scale`` centred at ``(0.5 + shift_x, 0.5 + shift_y)`` in
    normalised coordinates; pixels outside the image are black (image) / background 0 (parsing).
    Landmarks follow: ``p' = (p - box_origin) * scale``.
    """
    h, w = image.shape[:2]
    side = 1.0 / scale
    x0 = 0.5 + shift[0] - side / 2
    y0 = 0.5 + shift[1] - side / 2
    box = (x0 * w, y0 * h, (x0 + side) * w, (y0 + side) * h)
    image = np.array(Image.fromarray(image).transform((w, h), Image.EXTENT, box, Image.BILINEAR))
    if parsing is not None:
        ph, pw = parsing.shape[-2:]
        pbox = (x0 * pw, y0 * ph, (x0 + side) * pw, (y0 + side) * ph)
        parsing = np.array(
            Image.fromarray(parsing.astype(np.uint8)).transform((pw, ph), Image.EXTENT, pbox, Image.NEAREST)
        )
    if landmarks is not None:
        landmarks = ((np.asarray(landmarks, dtype=np.float32) - np.array([x0, y0], np.float32)) * scale).astype(
            np.float32
        )
    return image, landmarks, parsing


# ----------------------------------------------------------------------------- tensors
def to_tensor(image: np.ndarray, normalize: bool = True) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [0, 1], ImageNet-normalised when ``normalize``.

    Done in numpy (single-threaded): per-sample tensors are small, and torch's intra-op threads only add
    contention inside DataLoader workers.
    """
    x = image.astype(np.float32) * np.float32(1 / 255)  # (H, W, 3)
    if normalize:
        x = (x - _MEAN) * _INV_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))  # (H, W, 3) -> (3, H, W)


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """Undo ImageNet normalisation of a (..., 3, H, W) tensor (for figures)."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(3, 1, 1)
    return image * std + mean


def random_erase(
    image: torch.Tensor,
    p: float = 0.5,
    scale: tuple[float, float] = (0.02, 0.1),
    ratio: tuple[float, float] = (0.3, 3.3),
    value: float = 0.0,
    generator: torch.Generator | None = None,
    inplace: bool = False,
) -> torch.Tensor:
    """RandomErasing as torchvision's (the release: ``p=0.5, scale=(0.02, 0.1)``), drawing from ``generator``.

    With probability ``p`` one rectangle of area ``U(scale) * H * W`` and log-uniform aspect ``ratio`` is set
    to ``value`` (10 tries to fit, as torchvision); acts on the (normalised) image tensor only.
    """
    if p <= 0 or torch.rand((), generator=generator).item() >= p:
        return image
    _, h, w = image.shape
    area = h * w
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        erase_area = area * torch.empty(()).uniform_(scale[0], scale[1], generator=generator).item()
        aspect = torch.exp(
            torch.empty(()).uniform_(float(log_ratio[0]), float(log_ratio[1]), generator=generator)
        ).item()
        eh = int(round((erase_area * aspect) ** 0.5))
        ew = int(round((erase_area / aspect) ** 0.5))
        if not (eh < h and ew < w):
            continue
        i = int(torch.randint(0, h - eh + 1, (1,), generator=generator).item())
        j = int(torch.randint(0, w - ew + 1, (1,), generator=generator).item())
        if not inplace:
            image = image.clone()
        image[:, i : i + eh, j : j + ew] = value
        return image
    return image


class PairedTransform:
    """Training/evaluation transform for one sample: image + optional landmarks + optional parsing map.

    Order (release): flip -> resize -> (optional scale/shift) -> tensor -> normalise -> RandomErasing (image only).
    Randomness comes from the ``generator`` given to the call (``orsalib.data.loaders.FERDataset`` passes one per
    draw, seeded from (seed, epoch, draw): exact resume, independent of workers and ranks), else from a private
    generator once :meth:`seed` is called, else from torch's global RNG.

    Args:
        image_size: output side.
        train: enable the random augmentations.
        hflip: horizontal flip with probability 0.5 (train only).
        random_erasing: RandomErasing probability (train only; 0 = off).
        scale_range: (min, max) zoom of the optional scale/shift crop; ``None`` = off (release).
        max_shift: largest centre shift (fraction of the side) of the scale/shift crop.
        normalize: ImageNet normalisation.
    """

    def __init__(
        self,
        image_size: int,
        train: bool = False,
        hflip: bool = True,
        random_erasing: float = 0.5,
        scale_range: tuple[float, float] | None = None,
        max_shift: float = 0.05,
        normalize: bool = True,
    ) -> None:
        self.image_size = int(image_size)
        self.train = train
        self.hflip = hflip and train
        self.scale_range = scale_range if train else None
        self.max_shift = max_shift
        self.normalize = normalize
        self.erasing_p = float(random_erasing) if train else 0.0
        self.generator: torch.Generator | None = None  # None = torch's global RNG

    def seed(self, seed: int) -> None:
        """Draw the augmentations from a private generator seeded with ``seed`` when a call brings none."""
        self.generator = torch.Generator().manual_seed(int(seed) % 2**63)

    @property
    def random(self) -> bool:
        """Whether any augmentation draws random numbers (flip, RandomErasing, scale/shift)."""
        return bool(self.hflip or self.erasing_p > 0 or self.scale_range is not None)

    def sample_flip(self, generator: torch.Generator | None = None) -> bool:
        """Draw the flip decision (exposed so a caller can fetch cached flipped priors)."""
        g = generator if generator is not None else self.generator
        return bool(self.hflip and torch.rand((), generator=g).item() < 0.5)

    def __call__(
        self,
        image: np.ndarray,
        landmarks: np.ndarray | None = None,
        parsing: np.ndarray | None = None,
        flip: bool | None = None,
        flip_priors: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, np.ndarray | None, np.ndarray | None]:
        """Apply the transform.

        Args:
            image: (H, W, 3) uint8.
            landmarks: (68, 2) in [0, 1] of the unflipped image, or None.
            parsing: (h, w) class map of the unflipped image, or None.
            flip: force the flip decision (``None`` = draw it).
            flip_priors: also flip landmarks/parsing (False when they already come flipped from a prior cache).
            generator: where the random draws come from (default: :meth:`seed`'s generator, else torch's global RNG).

        Returns:
            (image tensor (3, S, S), landmarks (68, 2) or None, parsing (S, S) or None).
        """
        g = generator if generator is not None else self.generator
        if flip is None:
            flip = self.sample_flip(g)
        if flip:
            image = flip_image(image)
            if flip_priors:
                landmarks = None if landmarks is None else flip_landmarks(landmarks)
                parsing = None if parsing is None else flip_parsing(parsing)
        image, landmarks, parsing = resize(image, self.image_size, landmarks, parsing)
        if self.scale_range is not None:
            lo, hi = self.scale_range
            s = float(lo + (hi - lo) * torch.rand((), generator=g).item())
            dx, dy = ((torch.rand(2, generator=g) * 2 - 1) * self.max_shift).tolist()
            image, landmarks, parsing = scale_shift(image, s, (dx, dy), landmarks, parsing)
        t = to_tensor(image, self.normalize)
        if self.erasing_p > 0:
            t = random_erase(t, self.erasing_p, generator=g, inplace=True)
        return t, landmarks, parsing
