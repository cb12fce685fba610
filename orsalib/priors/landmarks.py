"""Sparse prior: 68 facial landmarks from the frozen MobileFaceNet-68 (paper Sec. 3.2).

Weights come from a file in the public checkpoint format ``{'state_dict': {...}}`` (fp16 or fp32 tensors,
optionally with a DataParallel ``module.`` prefix); an ORSANet checkpoint (``model_state_dict`` with
``face_landback.*`` keys) is accepted too. Nothing is ever downloaded: a missing file is an error that says
where the file is expected and where to obtain it.

Default location: ``orsalib.paths.DATA_DIR / "weights" / "mobilefacenet_68lm.pth.tar"`` (``data/weights/``).

Preprocessing (the convention of the pretrained weights): the face image (already resized to the model input
side, see :mod:`orsalib.priors.sources`) is resized to 112x112 (bilinear, antialiased), converted RGB -> BGR and
scaled to [0, 1]. The network returns 136 values, 68 interleaved x, y in [0, 1] of the crop (iBUG 300-W order),
and the (512, 7, 7) map of its last 1x1 conv block (the released ORSANet landmark prior).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.mobilefacenet import MobileFaceNet
from ..paths import DATA_DIR
from ..utils import load_error_text

__all__ = [
    "DEFAULT_LANDMARK_WEIGHTS",
    "LANDMARK_INPUT_SIZE",
    "LandmarkPredictor",
    "WeightsError",
    "file_sha1",
    "find_landmark_weights",
    "load_mobilefacenet",
    "load_weights_file",
    "preprocess_landmark_input",
    "require_weights_file",
]

DEFAULT_LANDMARK_WEIGHTS: Path = DATA_DIR / "weights" / "mobilefacenet_68lm.pth.tar"
LANDMARK_INPUT_SIZE: int = 112
LANDMARK_ORIGIN = (
    "the 68-landmark MobileFaceNet checkpoint of the public PFLD/MobileFaceNet face-landmark project "
    "(pytorch_face_landmark: mobilefacenet_model_best.pth.tar), a file {'state_dict': ...} for "
    "MobileFaceNet([112, 112], 136)"
)


class WeightsError(ValueError):
    """A weights file has the wrong format or keys; the message names the file and what was expected."""


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha1(path: str | Path, length: int = 16) -> str:
    """Hex SHA-1 of a file's bytes (first ``length`` characters), memoised per (path, size, mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha1()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key][:length]


def _pick_state_dict(obj: object, path: Path, containers: tuple[str, ...]) -> Mapping[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in containers:
            if key in obj and isinstance(obj[key], Mapping):
                return obj[key]
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise WeightsError(
        f"{path}: expected a checkpoint dict holding a state dict under one of {list(containers)} "
        f"(or a plain state dict), got {type(obj).__name__}"
        + (f" with keys {list(obj)[:8]}" if isinstance(obj, Mapping) else "")
    )


def require_weights_file(path: str | Path, what: str, origin: str) -> Path:
    """``path`` as a Path if it is a file; else FileNotFoundError saying the expected format and where to get it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} weights not found at {str(path)!r}. Expected {origin}. Weights are never downloaded: place "
            f"the file there (default folder: {DATA_DIR / 'weights'}) or pass its path (prior.landmark_weights / "
            "prior.parser_weights)."
        )
    return path


def load_weights_file(
    path: str | Path,
    model: nn.Module,
    *,
    what: str,
    origin: str,
    containers: tuple[str, ...] = ("state_dict", "model_state_dict", "state_dict_backbone"),
    submodule_prefixes: tuple[str, ...] = (),
    keep_own: tuple[str, ...] = ("relative_position_index",),
) -> nn.Module:
    """Load a public-format checkpoint into ``model`` strictly (fp16 -> fp32, ``module.`` prefix stripped).

    Args:
        path: the checkpoint file.
        model: the module to load into.
        what: a short name of the network, for error messages.
        origin: where the file comes from, for the missing-file message.
        containers: dict keys under which the state dict may sit.
        submodule_prefixes: prefixes of the network inside a larger checkpoint (e.g. ``"face_landback."`` in an
            ORSANet checkpoint); used when the file holds keys with such a prefix.
        keep_own: integer buffers the module builds itself; taken from ``model`` when the file lacks them.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message says the format and where to get it).
        WeightsError: not a checkpoint, or the keys/shapes do not match ``model``.
    """
    path = require_weights_file(path, what, origin)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling error means the file is not a checkpoint
        raise WeightsError(
            f"{path}: cannot be read as a {what} checkpoint ({load_error_text(e)}); expected {origin}"
        ) from e
    sd = _pick_state_dict(obj, path, containers)
    sd = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in sd.items()}
    for prefix in submodule_prefixes:
        if any(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
            break
    own = model.state_dict()
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}
    for k, v in own.items():
        if k not in sd and k.rsplit(".", 1)[-1] in keep_own:
            sd[k] = v
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    bad_shape = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in own
                 if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]  # fmt: skip
    if missing or unexpected or bad_shape:

        def show(xs: list[str]) -> str:
            return f"{len(xs)} {xs[:10]}{' ...' if len(xs) > 10 else ''}"

        raise WeightsError(
            f"{path} does not hold {what} weights: missing keys {show(missing)}; unexpected keys {show(unexpected)}; "
            f"shape mismatches {show(bad_shape)}. Expected {origin}."
        )
    model.load_state_dict(sd, strict=True)
    return model


def find_landmark_weights(explicit: str | Path = "") -> Path | None:
    """The MobileFaceNet-68 weights to use: ``explicit`` (must exist), else :data:`DEFAULT_LANDMARK_WEIGHTS`
    (``data/weights/mobilefacenet_68lm.pth.tar``, under ``ORSA_DATA_DIR`` when set); None when there is none.

    Nothing outside the repository, the given path and the environment is looked at."""
    if explicit:
        return require_weights_file(explicit, "MobileFaceNet-68 landmark", LANDMARK_ORIGIN)
    if DEFAULT_LANDMARK_WEIGHTS.is_file():
        return DEFAULT_LANDMARK_WEIGHTS
    return None


def load_mobilefacenet(path: str | Path | None = None, device: str | torch.device = "cpu") -> MobileFaceNet:
    """The frozen MobileFaceNet-68 from a public-format file (default :data:`DEFAULT_LANDMARK_WEIGHTS`), eval mode."""
    net = MobileFaceNet((112, 112), 136)
    load_weights_file(
        path or DEFAULT_LANDMARK_WEIGHTS, net, what="MobileFaceNet-68 landmark", origin=LANDMARK_ORIGIN,
        submodule_prefixes=("face_landback.",),
    )  # fmt: skip
    return net.to(device).eval().requires_grad_(False)


def preprocess_landmark_input(images: np.ndarray | torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 RGB images (B, H, W, 3) -> the network input (B, 3, 112, 112): BGR, [0, 1], bilinear (antialiased)."""
    x = torch.as_tensor(np.ascontiguousarray(images) if isinstance(images, np.ndarray) else images)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB images (B, H, W, 3), got shape {tuple(x.shape)}")
    x = x.to(device).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W) RGB in [0, 1]
    x = x.flip(1)  # RGB -> BGR
    if x.shape[-2:] != (LANDMARK_INPUT_SIZE, LANDMARK_INPUT_SIZE):
        x = F.interpolate(x, size=LANDMARK_INPUT_SIZE, mode="bilinear", align_corners=False, antialias=True)
    return x.contiguous()


class LandmarkPredictor:
    """MobileFaceNet-68 inference on uint8 RGB images: ``predict(images) -> (landmarks, features)``.

    Args:
        net: a loaded :class:`MobileFaceNet` (see :func:`load_mobilefacenet`).
        device: where to run it.
    """

    def __init__(self, net: MobileFaceNet, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()

    @torch.no_grad()
    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return landmarks (B, 68, 2) float32 in [0, 1] of the image and features (B, 512, 7, 7) float32."""
        coords, feats = self.net(preprocess_landmark_input(images, self.device))
        lm = coords.float().reshape(coords.shape[0], 68, 2)  # (B, 136) -> (B, 68, 2), interleaved x, y
        return lm.cpu().numpy().astype(np.float32), feats.float().cpu().numpy()
