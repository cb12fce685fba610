"""Data for the DARELoss transfer experiments (ORSANet paper Tables 7-8).

Image classification (Table 8, CIFAR-10):
- the standard python batches (``cifar-10-batches-py/data_batch_1..5`` and ``test_batch``: pickled dicts with
  ``b"data"`` (N, 3072) uint8, channel-major 3x32x32, and ``b"labels"``);
- class folders ``train/<class>/*.jpg`` and ``test/<class>/*.jpg`` (``valid/`` or ``val/`` accepted for test);
- embedded default when neither is given: scikit-learn's bundled ``load_digits`` (real 8x8 handwritten digits,
  10 classes) rendered to 32x32 RGB with a fixed stratified split, labelled :data:`DIGITS_LABEL` everywhere.

Hyperspectral (Table 7, SpectralFormer):
- ``.mat`` files read with ``scipy.io.loadmat``: Indian Pines (``Indian_pines_corrected.mat`` key
  ``indian_pines_corrected``, ``Indian_pines_gt.mat`` key ``indian_pines_gt``), Pavia University (``PaviaU.mat``
  key ``paviaU``, ``PaviaU_gt.mat`` key ``paviaU_gt``), or one file with the SpectralFormer release's keys
  ``input``, ``TR``, ``TE`` (fixed train/test label maps);
- the SpectralFormer protocol: fixed disjoint train/test maps, per-class training counts (Indian Pines 695 pixels),
  per-band min-max normalisation, mirror ("symmetric") padding, pixel-wise (1x1) or patch-wise (k x k) samples;
- embedded default: a semi-synthetic scene (:func:`make_semisynthetic_scene`) on the real Indian Pines class map
  when a copy of ``Indian_pines_gt.mat`` is found, else on a procedurally generated field map.

Every dataset yields ``{"image", "label", "index"}`` (the workbook batch contract). Hyperspectral samples are
``image`` = (bands, k, k) float32; the model groups neighbouring bands itself (group-wise spectral embedding).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)
DIGITS_LABEL = "digits stand-in (not CIFAR-10)"
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class TransferDataError(ValueError):
    """A transfer dataset file or folder is missing or not in an accepted format (the message says which)."""


# ============================================================================ image classification
class ImageArrayDataset(Dataset):
    """In-memory uint8 images -> ``{"image", "label", "index"}`` with optional flip/crop augmentation and resize.

    Args:
        images: (N, H, W, 3) uint8.
        labels: (N,) int class ids.
        train: apply augmentation (random crop with ``crop_padding`` reflect padding, horizontal flip).
        image_size: output side (bilinear resize after augmentation); None keeps the native size.
        crop_padding: padding of the random crop (CIFAR recipe: 4); 0 disables the crop.
        hflip: random horizontal flip in train mode.
        mean, std: per-channel normalisation.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        train: bool = False,
        image_size: int | None = None,
        crop_padding: int = 4,
        hflip: bool = True,
        mean: tuple[float, float, float] = CIFAR_MEAN,
        std: tuple[float, float, float] = CIFAR_STD,
    ):
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be (N, H, W, 3) uint8, got {images.shape} {images.dtype}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.train = train
        self.image_size = image_size
        self.crop_padding = crop_padding
        self.hflip = hflip
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x = torch.from_numpy(self.images[i]).permute(2, 0, 1).float() / 255.0  # (3, H, W) in [0, 1]
        if self.train:
            p = self.crop_padding
            if p > 0:
                h, w = x.shape[1:]
                x = F.pad(x.unsqueeze(0), (p, p, p, p), mode="reflect").squeeze(0)  # (3, H+2p, W+2p)
                top, left = (int(v) for v in torch.randint(0, 2 * p + 1, (2,)))
                x = x[:, top : top + h, left : left + w]
            if self.hflip and torch.rand(()) < 0.5:
                x = x.flip(-1)
        if self.image_size and x.shape[-1] != self.image_size:
            size = (self.image_size, self.image_size)
            x = F.interpolate(x.unsqueeze(0), size=size, mode="bilinear", align_corners=False, antialias=True)[0]
        x = (x - self.mean) / self.std
        return {"image": x, "label": torch.tensor(self.labels[i]), "index": torch.tensor(i, dtype=torch.int64)}


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes (``encode(text, "latin1")``), and nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r}) is not admitted")
    return text.encode("latin1")


# The globals a CIFAR-10 python batch needs (numpy arrays and bytes), under every name numpy has given them.
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1, np.uint8))[0]
_FROMBUFFER = np.ndarray.__reduce_ex__(np.zeros(1, np.uint8), 5)[0]
_SCALAR = np.int64(0).__reduce__()[0]
_CIFAR_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy.core.multiarray", "scalar"): _SCALAR,  # numeric scalars (labels saved as numpy ints)
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}
_PLAIN = (bytes, str, int, float, bool, type(None), np.number, np.bool_)


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that admits numpy arrays (and numeric scalars), lists, dicts, bytes and str, and refuses every
    other global."""

    def find_class(self, module: str, name: str) -> object:
        hit = _CIFAR_GLOBALS.get((module, name))
        if hit is None:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: a CIFAR-10 batch holds only numpy arrays, lists, dicts, bytes and str"
            )
        return hit


def _check_plain(obj: object, depth: int = 0) -> None:
    """Raise unless ``obj`` is made of dicts, lists, tuples, plain scalars, bytes, str and non-object arrays."""
    if depth > 8:
        raise pickle.UnpicklingError("nested deeper than a CIFAR-10 batch")
    if isinstance(obj, (np.ndarray, np.generic)):
        if obj.dtype.hasobject:
            raise pickle.UnpicklingError("an array of python objects; a CIFAR-10 batch holds numeric arrays")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, depth + 1)
            _check_plain(v, depth + 1)
    elif isinstance(obj, (list, tuple)):
        if any(not isinstance(v, _PLAIN) for v in obj):
            for v in obj:
                _check_plain(v, depth + 1)
    elif not isinstance(obj, _PLAIN):
        raise pickle.UnpicklingError(f"a {type(obj).__name__}; a CIFAR-10 batch holds arrays, lists, dicts, bytes")


def load_cifar_pickle(path: str | Path) -> dict:
    """Read one pickled CIFAR-10 python batch (``data_batch_*``, ``test_batch``, ``batches.meta``).

    The one place the workbook unpickles (the format of these files): a restricted ``pickle.load`` that builds
    numpy arrays, lists, dicts, bytes and str and refuses any other global, so a crafted file cannot run code.

    Raises:
        TransferDataError: unreadable, not a dict, or a refused global (the message names the file and the global).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="bytes").load()
        _check_plain(d)
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise TransferDataError(f"{path}: not a readable CIFAR-10 python batch (pickled dict): {e}") from e
    if not isinstance(d, dict):
        raise TransferDataError(f"{path}: not a CIFAR-10 python batch: holds a {type(d).__name__}, expected a dict")
    return d


def _batch_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = load_cifar_pickle(path)
    data = d.get(b"data", d.get("data")) if isinstance(d, dict) else None
    labels = d.get(b"labels", d.get("labels")) if isinstance(d, dict) else None
    if data is None or labels is None:
        keys = sorted(map(str, d)) if isinstance(d, dict) else type(d).__name__
        raise TransferDataError(f"{path}: expected a dict with b'data' and b'labels', found {keys}")
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise TransferDataError(
            f"{path}: b'data' must be (N, 3072) uint8 with N labels; got {data.shape} and {len(labels)} labels"
        )
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), np.asarray(labels, dtype=np.int64)  # NHWC


def find_cifar_batches(root: str | Path) -> Path | None:
    """The folder holding ``data_batch_1`` (``root`` itself or ``root/cifar-10-batches-py``), or None."""
    root = Path(root)
    for cand in (root, root / "cifar-10-batches-py"):
        if (cand / "data_batch_1").is_file():
            return cand
    return None


def load_cifar10_batches(root: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Read the python batches -> (x_train, y_train, x_test, y_test, class_names); images (N, 32, 32, 3) uint8."""
    folder = find_cifar_batches(root)
    if folder is None:
        raise TransferDataError(f"{root}: no CIFAR-10 python batches (expected data_batch_1..5 and test_batch)")
    train_files = sorted(folder.glob("data_batch_*"))
    if not (folder / "test_batch").is_file():
        raise TransferDataError(f"{folder}: test_batch is missing (expected data_batch_1..5 and test_batch)")
    parts = [_batch_arrays(p) for p in train_files]
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    xte, yte = _batch_arrays(folder / "test_batch")
    names = list(CIFAR10_CLASSES)
    meta = folder / "batches.meta"
    if meta.is_file():
        m = load_cifar_pickle(meta)
        raw = m.get(b"label_names", m.get("label_names")) if isinstance(m, dict) else None
        if raw:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in raw]
    bad = int(max(ytr.max(initial=0), yte.max(initial=0)))
    if bad >= len(names):
        raise TransferDataError(f"{folder}: label {bad} out of range for {len(names)} classes")
    return xtr, ytr, xte, yte, names


def _read_image(path: Path, size: int | None) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except OSError as e:
        raise TransferDataError(f"{path}: not a readable image ({e})") from e


def _read_split_folder(folder: Path, classes: list[str], size: int | None) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for c, name in enumerate(classes):
        d = folder / name
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.suffix.lower() in IMAGE_EXTS:
                img = _read_image(p, size)
                if size is None:
                    size = img.shape[0]
                    if img.shape[0] != img.shape[1]:
                        raise TransferDataError(f"{p}: images must be square or a size must be given")
                images.append(img)
                labels.append(c)
    if not images:
        raise TransferDataError(f"{folder}: no images found in the class folders {classes}")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def load_image_folders(
    root: str | Path, size: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Read ``root/train/<class>/*`` and ``root/test/<class>/*`` (or ``valid``/``val``).

    Class order = the sorted class folder names of ``train/``. Images are read as RGB and resized to ``size``
    (default: the side of the first image) when they differ.
    """
    root = Path(root)
    train = root / "train"
    test = next((root / n for n in ("test", "valid", "val") if (root / n).is_dir()), None)
    if not train.is_dir() or test is None:
        raise TransferDataError(
            f"{root}: expected class folders train/<class>/*.jpg and test/<class>/*.jpg (or valid/, val/)"
        )
    classes = sorted(d.name for d in train.iterdir() if d.is_dir())
    if not classes:
        raise TransferDataError(f"{train}: no class folders")
    xtr, ytr = _read_split_folder(train, classes, size)
    xte, yte = _read_split_folder(test, classes, size or xtr.shape[1])
    return xtr, ytr, xte, yte, classes


def load_digits_standin(
    seed: int = 0, test_fraction: float = 0.25, size: int = 32
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 real images) rendered to ``size`` x ``size`` RGB.

    Each digit is upsampled bilinearly and drawn in a random foreground colour on a random darker background
    colour (fixed by ``seed``), so the images have three meaningful channels. Fixed stratified split.
    """
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    rng = np.random.default_rng(seed)
    imgs = np.empty((len(d.images), size, size, 3), dtype=np.uint8)
    for i, im in enumerate(d.images):
        g = Image.fromarray((im / 16.0 * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
        a = np.asarray(g, dtype=np.float32)[..., None] / 255.0  # (S, S, 1) ink coverage
        fg = rng.uniform(0.55, 1.0, 3)
        bg = rng.uniform(0.0, 0.35, 3)
        imgs[i] = np.clip((a * fg + (1 - a) * bg) * 255, 0, 255).astype(np.uint8)
    idx = np.arange(len(imgs))
    tr, te = train_test_split(idx, test_size=test_fraction, stratify=d.target, random_state=seed)
    names = [f"digit {k}" for k in range(10)]
    return imgs[tr], d.target[tr].astype(np.int64), imgs[te], d.target[te].astype(np.int64), names


def cap_per_class(labels: np.ndarray, max_per_class: int | None, seed: int = 0) -> np.ndarray:
    """Indices keeping at most ``max_per_class`` random items of each class (all when None/0), sorted."""
    labels = np.asarray(labels)
    if not max_per_class:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(labels == c))[:max_per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(keep))


def load_image_classification(
    root: str | Path | None = None,
    kind: str = "auto",
    *,
    image_size: int | None = None,
    augment: bool = True,
    max_train_per_class: int | None = None,
    max_test_per_class: int | None = None,
    seed: int = 0,
) -> tuple[ImageArrayDataset, ImageArrayDataset, list[str], str]:
    """CIFAR-10 (python batches or folders) or the digits stand-in -> (train_ds, test_ds, class_names, label).

    Args:
        root: a folder with ``cifar-10-batches-py`` (or the batches themselves) or ``train/``+``test/`` class
            folders; None/"" = the embedded digits stand-in.
        kind: "auto" | "cifar10-batches" | "folders" | "digits".
        image_size: model input side (resize after augmentation); None = native 32.
        augment: random crop (pad 4) + horizontal flip on the training set.
        max_train_per_class, max_test_per_class: random per-class caps (CPU profiles); None = all.
        seed: seed of the caps and of the digits split.

    Returns:
        train and test datasets, class names, and the dataset label used in tables and figures.
    """
    kinds = ("auto", "cifar10-batches", "folders", "digits")
    if kind not in kinds:
        raise ValueError(f"kind={kind!r}; choose one of {list(kinds)}")
    if root in (None, "") and kind in ("auto", "digits"):
        kind = "digits"
    elif root in (None, ""):
        raise TransferDataError(f"kind={kind!r} needs a root folder")
    if kind != "digits":
        root = Path(root).expanduser()
        if not root.exists():
            raise TransferDataError(f"data root {str(root)!r} does not exist; expected CIFAR-10 batches or folders")
        if kind == "auto":
            kind = "cifar10-batches" if find_cifar_batches(root) else "folders"
    if kind == "digits":
        xtr, ytr, xte, yte, names = load_digits_standin(seed=0)
        label = DIGITS_LABEL
    elif kind == "cifar10-batches":
        xtr, ytr, xte, yte, names = load_cifar10_batches(root)
        label = "CIFAR-10 (python batches)"
    else:
        xtr, ytr, xte, yte, names = load_image_folders(root)
        label = f"CIFAR-10 folders ({Path(root).name})" if len(names) == 10 else f"image folders ({Path(root).name})"
    itr = cap_per_class(ytr, max_train_per_class, seed)
    ite = cap_per_class(yte, max_test_per_class, seed + 1)
    if max_train_per_class or max_test_per_class:
        label += f" [subset {len(itr)}/{len(ite)}]"
    train = ImageArrayDataset(xtr[itr], ytr[itr], train=augment, image_size=image_size)
    test = ImageArrayDataset(xte[ite], yte[ite], train=False, image_size=image_size)
    test.available = len(yte)  # test images of the dataset before the cap
    return train, test, names, label


# ============================================================================ hyperspectral
INDIAN_PINES_CLASSES: tuple[str, ...] = (
    "Alfalfa",
    "Corn-notill",
    "Corn-mintill",
    "Corn",
    "Grass-pasture",
    "Grass-trees",
    "Grass-pasture-mowed",
    "Hay-windrowed",
    "Oats",
    "Soybean-notill",
    "Soybean-mintill",
    "Soybean-clean",
    "Wheat",
    "Woods",
    "Buildings-Grass-Trees-Drives",
    "Stone-Steel-Towers",
)
PAVIA_U_CLASSES: tuple[str, ...] = (
    "Asphalt",
    "Meadows",
    "Gravel",
    "Trees",
    "Painted metal sheets",
    "Bare Soil",
    "Bitumen",
    "Self-Blocking Bricks",
    "Shadows",
)


@dataclass(frozen=True)
class SceneSpec:
    """What a hyperspectral scene looks like and the SpectralFormer training counts (in this class order)."""

    name: str
    shape: tuple[int, int]
    bands: int
    class_names: tuple[str, ...]
    cube_file: tuple[str, str]  # (file name, key)
    gt_file: tuple[str, str]
    release_file: str  # the SpectralFormer release's single .mat with input/TR/TE
    train_counts: tuple[int, ...]  # SpectralFormer paper's training pixels per class


SCENES: dict[str, SceneSpec] = {
    # Indian Pines: 50 training pixels per class, 15 for the three smallest (Alfalfa, Grass-pasture-mowed, Oats):
    # 695 in all (SpectralFormer paper, Table I; its test map has 9,671 pixels).
    "indian_pines": SceneSpec(
        "indian_pines",
        (145, 145),
        200,
        INDIAN_PINES_CLASSES,
        ("Indian_pines_corrected.mat", "indian_pines_corrected"),
        ("Indian_pines_gt.mat", "indian_pines_gt"),
        "IndianPine.mat",
        (15, 50, 50, 50, 50, 50, 15, 50, 15, 50, 50, 50, 50, 50, 50, 50),
    ),
    # Pavia University: 3,921 training pixels (SpectralFormer paper; its test map has 40,002).
    "pavia_u": SceneSpec(
        "pavia_u",
        (610, 340),
        103,
        PAVIA_U_CLASSES,
        ("PaviaU.mat", "paviaU"),
        ("PaviaU_gt.mat", "paviaU_gt"),
        "Pavia.mat",
        (548, 540, 392, 524, 265, 532, 375, 514, 231),
    ),
}


@dataclass
class HSIScene:
    """A hyperspectral scene: cube (H, W, B) float32, class map (H, W) int (0 = unlabelled, classes 1..C)."""

    name: str
    cube: np.ndarray
    gt: np.ndarray
    class_names: list[str]
    dataset_label: str
    train_map: np.ndarray | None = None  # fixed split maps (same coding as gt) when the files provide them
    test_map: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_bands(self) -> int:
        return int(self.cube.shape[2])


def load_mat_array(path: str | Path, key: str | None = None) -> np.ndarray | dict[str, np.ndarray]:
    """``scipy.io.loadmat`` with clear errors; returns ``d[key]`` or the dict of arrays when ``key`` is None."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise TransferDataError(f"{path}: file does not exist")
    try:
        d = scipy.io.loadmat(str(path))
    except NotImplementedError as e:
        raise TransferDataError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; re-save with -v7") from e
    except Exception as e:  # noqa: BLE001 - any parse error is the user's file
        raise TransferDataError(f"{path}: not a readable .mat file ({e})") from e
    arrays = {k: v for k, v in d.items() if not k.startswith("__")}
    if key is None:
        return arrays
    if key not in arrays:
        raise TransferDataError(f"{path}: key {key!r} not found; keys present: {sorted(arrays)}")
    return arrays[key]


def normalize_bands(cube: np.ndarray) -> np.ndarray:
    """Per-band min-max normalisation to [0, 1] (constant bands -> 0)."""
    cube = cube.astype(np.float32)
    lo = cube.min(axis=(0, 1), keepdims=True)
    hi = cube.max(axis=(0, 1), keepdims=True)
    return (cube - lo) / np.where(hi > lo, hi - lo, 1.0)


def _check_scene(path: Path, cube: np.ndarray, *maps: np.ndarray) -> None:
    if cube.ndim != 3:
        raise TransferDataError(f"{path}: the cube must be (H, W, bands), got shape {cube.shape}")
    for m in maps:
        if m.shape != cube.shape[:2]:
            raise TransferDataError(f"{path}: label map shape {m.shape} != cube spatial shape {cube.shape[:2]}")


def load_hsi_scene(name: str = "indian_pines", root: str | Path | None = None, **synth_kw) -> HSIScene:
    """Load a hyperspectral scene from ``root`` or build the semi-synthetic default.

    Args:
        name: "indian_pines" | "pavia_u".
        root: a folder with the standard cube + GT files, or with the release's single file (``IndianPine.mat`` /
            ``Pavia.mat``: keys ``input``, ``TR``, ``TE``), or such a .mat file itself; None/"" = semi-synthetic.
        **synth_kw: passed to :func:`make_semisynthetic_scene` when no files are given.

    Returns:
        the scene, cube normalised per band to [0, 1].
    """
    if name not in SCENES:
        raise ValueError(f"unknown hyperspectral scene {name!r}; choose one of {sorted(SCENES)}")
    spec = SCENES[name]
    if root in (None, ""):
        return make_semisynthetic_scene(name, **synth_kw)
    root = Path(root).expanduser()
    release = root if root.is_file() else root / spec.release_file
    if release.is_file():
        d = load_mat_array(release)
        missing = [k for k in ("input", "TR", "TE") if k not in d]
        if missing:
            raise TransferDataError(f"{release}: expected keys input, TR, TE; missing {missing}")
        cube, tr, te = d["input"], d["TR"].astype(np.int64), d["TE"].astype(np.int64)
        _check_scene(release, cube, tr, te)
        if np.any((tr > 0) & (te > 0)):
            raise TransferDataError(f"{release}: TR and TE overlap; expected disjoint train/test maps")
        gt = np.maximum(tr, te)
        names = (
            list(spec.class_names)
            if int(gt.max()) == len(spec.class_names)
            else [f"class {k}" for k in range(1, int(gt.max()) + 1)]
        )
        return HSIScene(
            name,
            normalize_bands(cube),
            gt,
            names,
            f"{name} ({release.name}, fixed TR/TE)",
            tr,
            te,
            {"source": str(release)},
        )
    cube_path, gt_path = root / spec.cube_file[0], root / spec.gt_file[0]
    if not cube_path.is_file() or not gt_path.is_file():
        raise TransferDataError(
            f"{root}: expected {spec.cube_file[0]} + {spec.gt_file[0]} or {spec.release_file} (keys input/TR/TE)"
        )
    cube = load_mat_array(cube_path, spec.cube_file[1])
    gt = load_mat_array(gt_path, spec.gt_file[1]).astype(np.int64)
    _check_scene(cube_path, cube, gt)
    if int(gt.max()) > len(spec.class_names):
        raise TransferDataError(f"{gt_path}: label {int(gt.max())} > {len(spec.class_names)} classes of {name}")
    return HSIScene(
        name, normalize_bands(cube), gt, list(spec.class_names), f"{name} (real cube)", info={"source": str(root)}
    )


# ---------------------------------------------------------------------------- semi-synthetic scenes
def procedural_class_map(
    shape: tuple[int, int], num_classes: int, seed: int = 0, cells_per_class: int = 3, unlabelled: float = 0.3
) -> np.ndarray:
    """A Voronoi-like field map (H, W) int: 0 = unlabelled (borders and some fields), classes 1..C.

    Every class gets at least one field; field borders (1 px) and a fraction ``unlabelled`` of the fields are 0.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    n_cells = max(num_classes * cells_per_class, num_classes + 1)
    pts = rng.uniform(0, 1, (n_cells, 2)) * np.array([h, w])
    yy, xx = np.mgrid[0:h, 0:w]
    grid = np.stack([yy.ravel(), xx.ravel()], axis=1).astype(np.float32)  # (HW, 2)
    # anisotropic distance -> elongated, field-like cells
    scale = rng.uniform(0.5, 2.0, (n_cells, 2)).astype(np.float32)
    cell = np.empty(h * w, dtype=np.int64)
    for s in range(0, len(grid), 65536):
        d = (((grid[s : s + 65536, None, :] - pts[None].astype(np.float32)) * scale[None]) ** 2).sum(-1)
        cell[s : s + 65536] = d.argmin(1)
    cell = cell.reshape(h, w)
    cls = np.concatenate([rng.permutation(num_classes), rng.integers(0, num_classes, n_cells - num_classes)]) + 1
    drop = rng.random(n_cells) < unlabelled
    drop[:num_classes] = False  # the first fields carry one of each class
    cls[drop] = 0
    gt = cls[cell]
    border = np.zeros_like(gt, dtype=bool)
    border[1:, :] |= cell[1:, :] != cell[:-1, :]
    border[:, 1:] |= cell[:, 1:] != cell[:, :-1]
    gt[border] = 0
    return gt.astype(np.int64)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    f = gaussian_filter(rng.standard_normal(shape), sigma=sigma, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-8)  # zero mean, unit std


def _gaussian_bumps(rng: np.random.Generator, t: np.ndarray, k: int, amp: tuple[float, float]) -> np.ndarray:
    c = rng.uniform(0, 1, k)
    s = rng.uniform(0.04, 0.2, k)
    a = rng.uniform(*amp, k)
    return (a[:, None] * np.exp(-0.5 * ((t[None] - c[:, None]) / s[:, None]) ** 2)).sum(0)


def make_semisynthetic_scene(
    name: str = "indian_pines",
    *,
    gt: np.ndarray | str | Path | None = None,
    num_bands: int | None = None,
    downsample: int = 1,
    seed: int = 0,
    separation: float = 1.0,
    mixing: float = 0.3,
    variability: float = 0.08,
    noise: float = 0.02,
) -> HSIScene:
    """A semi-synthetic hyperspectral cube on a real or procedural class map.

    Class map: ``gt`` (an array or a .mat file with the scene's GT key), else the real Indian Pines GT when a copy of
    ``Indian_pines_gt.mat`` is found under ``data/indian-pines`` or ``../shared/data/indian-pines``, else a
    procedural field map of the scene's shape. Spectra: each class has a smooth signature (a baseline plus Gaussian
    absorption/reflection bumps), classes come in families with similar signatures (as crops do); each pixel is
    ``(1 - m) * (class signature + within-class variation) + m * (mixture of background endmembers)``, with
    spatially correlated abundances ``m`` and variation coefficients, a smooth illumination factor, and white noise.

    Args:
        name: "indian_pines" (145x145, 200 bands, 16 classes) | "pavia_u" (610x340, 103 bands, 9 classes).
        gt: class map to use (0 = unlabelled).
        num_bands: fewer bands for CPU runs (default: the real scene's count).
        downsample: keep every k-th row/column of the class map (smaller scene for CPU runs).
        seed: seed of spectra, fields and noise.
        separation: scale of the between-class spectral differences within a family (smaller = harder).
        mixing: mean fraction of background endmembers mixed into a pixel.
        variability: amplitude of the within-class spectral variation.
        noise: white-noise standard deviation (relative to a mean reflectance of ~0.5).
    """
    from .. import paths

    spec = SCENES[name]
    src = "procedural field map"
    if isinstance(gt, (str, Path)):
        gt_path = Path(gt)
        gt = load_mat_array(gt_path, spec.gt_file[1])
        src = f"class map {gt_path.name}"
    elif gt is None and name == "indian_pines":
        for cand in (
            paths.DATA_DIR / "indian-pines" / spec.gt_file[0],
            paths.SHARED_DIR / "data" / "indian-pines" / spec.gt_file[0],
        ):
            if cand.is_file():
                gt = load_mat_array(cand, spec.gt_file[1])
                src = "real Indian Pines class map"
                break
    elif gt is not None:
        src = "given class map"
    if gt is None:  # generated directly at the reduced size
        shape = (-(-spec.shape[0] // downsample), -(-spec.shape[1] // downsample))
        gt = procedural_class_map(shape, len(spec.class_names), seed=seed)
    elif downsample > 1:
        gt = np.asarray(gt)[::downsample, ::downsample]  # (H/k, W/k) nearest subsampling
    gt = np.asarray(gt).astype(np.int64)
    n_cls = len(spec.class_names)
    if int(gt.max()) > n_cls or int(gt.min()) < 0:
        raise TransferDataError(f"class map labels must be 0..{n_cls} for {name}, got {gt.min()}..{gt.max()}")
    bands = num_bands or spec.bands
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, bands)
    h, w = gt.shape

    n_fam = max(2, n_cls // 4)
    fam = [0.25 + 0.3 * t * rng.uniform(-0.5, 1.0) + _gaussian_bumps(rng, t, 4, (-0.25, 0.35)) for _ in range(n_fam)]
    sig = np.stack([fam[c % n_fam] + separation * _gaussian_bumps(rng, t, 3, (-0.12, 0.12)) for c in range(n_cls)])
    var_dirs = np.stack([_gaussian_bumps(rng, t, 2, (-1.0, 1.0)) for _ in range(2 * n_cls)]).reshape(n_cls, 2, bands)
    endm = np.stack([0.3 + _gaussian_bumps(rng, t, 3, (-0.2, 0.3)) for _ in range(3)])  # background endmembers

    lab = np.clip(gt - 1, 0, None)  # unlabelled pixels take class-0-like signatures, then heavy mixing
    pure = sig[lab]  # (H, W, B)
    coef = np.stack([_smooth_field(rng, (h, w), 3.0) for _ in range(2)], -1)  # (H, W, 2)
    pure = pure + variability * np.einsum("hwk,hwkb->hwb", coef, var_dirs[lab])
    ab = np.stack([_smooth_field(rng, (h, w), 4.0) for _ in range(3)], -1)
    ab = np.exp(ab) / np.exp(ab).sum(-1, keepdims=True)  # (H, W, 3) abundances of the endmembers
    m = np.clip(mixing * (1 + 0.5 * _smooth_field(rng, (h, w), 5.0)), 0, 0.9)[..., None]  # (H, W, 1)
    m = np.where(gt[..., None] == 0, np.maximum(m, 0.6), m)
    cube = (1 - m) * pure + m * (ab @ endm)  # (H, W, B)
    cube *= (1 + 0.1 * _smooth_field(rng, (h, w), 8.0))[..., None]  # illumination
    cube += noise * rng.standard_normal(cube.shape)
    label = f"semi-synthetic {name} ({src}, {h}x{w}, {bands} bands; not the real cube)"
    info = dict(source=src, seed=seed, separation=separation, mixing=mixing, variability=variability, noise=noise)
    return HSIScene(name, normalize_bands(cube.astype(np.float32)), gt, list(spec.class_names), label, info=info)


# ---------------------------------------------------------------------------- split protocol and samples
def fixed_split(
    gt: np.ndarray, train_counts: tuple[int, ...] | list[int], seed: int = 0, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint train/test maps with ``train_counts[c] * scale`` random training pixels of class ``c + 1``.

    A class with too few pixels gives half of them to training. Returns (train_map, test_map), coded like ``gt``.
    """
    gt = np.asarray(gt)
    n_cls = int(gt.max())
    if len(train_counts) < n_cls:
        raise ValueError(f"{len(train_counts)} training counts for a map with {n_cls} classes")
    rng = np.random.default_rng(seed)
    flat = gt.ravel()
    train = np.zeros_like(flat)
    for c in range(1, n_cls + 1):
        idx = np.flatnonzero(flat == c)
        want = max(1, int(round(train_counts[c - 1] * scale)))
        k = want if want < len(idx) else len(idx) // 2
        train[rng.permutation(idx)[:k]] = c
    test = np.where(train > 0, 0, flat)
    return train.reshape(gt.shape), test.reshape(gt.shape)


def scene_split(scene: HSIScene, seed: int = 0, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The scene's fixed TR/TE maps when it has them, else :func:`fixed_split` with the SpectralFormer counts."""
    if scene.train_map is not None and scene.test_map is not None:
        return scene.train_map, scene.test_map
    return fixed_split(scene.gt, SCENES[scene.name].train_counts, seed=seed, scale=scale)


def subsample_map(label_map: np.ndarray, max_pixels: int | None, seed: int = 0) -> np.ndarray:
    """Keep a uniform random subset of ``max_pixels`` labelled pixels (class proportions kept in expectation)."""
    if not max_pixels:
        return label_map
    flat = label_map.ravel().copy()
    idx = np.flatnonzero(flat)
    if len(idx) <= max_pixels:
        return label_map
    drop = np.random.default_rng(seed).permutation(idx)[max_pixels:]
    flat[drop] = 0
    return flat.reshape(label_map.shape)


class HSIPatchDataset(Dataset):
    """Pixels of a label map as ``{"image": (bands, k, k), "label": class - 1, "index"}`` (mirror padding).

    Args:
        cube: (H, W, B) normalised cube.
        label_map: (H, W) int, 0 = not in this split, classes 1..C.
        patch: spatial side k (1 = pixel-wise: the spectrum).
    """

    def __init__(self, cube: np.ndarray, label_map: np.ndarray, patch: int = 1):
        if patch < 1 or patch % 2 == 0:
            raise ValueError(f"patch must be an odd number >= 1, got {patch}")
        if label_map.shape != cube.shape[:2]:
            raise ValueError(f"label map {label_map.shape} does not match the cube {cube.shape[:2]}")
        self.patch = patch
        pad = patch // 2
        # mirror padding that repeats the edge pixel (numpy "symmetric"), as the SpectralFormer release does
        padded = np.pad(cube.astype(np.float32), ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")
        self.padded = np.ascontiguousarray(padded.transpose(2, 0, 1))  # (B, H+2p, W+2p)
        self.rows, self.cols = np.nonzero(label_map)
        self.labels = (label_map[self.rows, self.cols] - 1).astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r, c, k = self.rows[i], self.cols[i], self.patch
        x = torch.from_numpy(self.padded[:, r : r + k, c : c + k].copy())  # (B, k, k), centred on pixel (r, c)
        return {"image": x, "label": torch.tensor(self.labels[i]), "index": torch.tensor(i, dtype=torch.int64)}


def hsi_datasets(
    scene: HSIScene,
    patch: int = 1,
    *,
    seed: int = 0,
    train_scale: float = 1.0,
    max_test: int | None = None,
) -> tuple[HSIPatchDataset, HSIPatchDataset]:
    """Train/test datasets of a scene under the fixed-split protocol (``max_test``: random test subset)."""
    tr, te = scene_split(scene, seed=seed, scale=train_scale)
    te = subsample_map(te, max_test, seed=seed + 1)
    return HSIPatchDataset(scene.cube, tr, patch), HSIPatchDataset(scene.cube, te, patch)
