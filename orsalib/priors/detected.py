"""``synth-detected``: landmarks and parsing maps from small networks trained on SynthFER's ground truth.

The ``oracle`` source reads SynthFER's ground truth, which no occluder can degrade; real prior networks
(MobileFaceNet, SegFace) guess under an occluder. ``synth-detected`` sits in between: a small landmark regressor
and a small face parser (:mod:`orsalib.models.detectors`) are trained on the SynthFER *training* split (occluded
faces included: the parser learns that occluder pixels are background, as the ground-truth maps label them; the
regressor must place the landmarks an occluder hides), then frozen. Their priors are cached by
:class:`~orsalib.priors.cache.PriorCache` like every other source's (``weights_id`` = the hash of the weights file).

Which data trains them (no evaluation image can leak into training):

- The detectors of a SynthFER build are trained from that build's own folder: ``<build>/manifest.csv`` is read and
  only its rows with ``split == "train"`` are used (plus ``landmarks.npy`` and the parsing PNGs of those rows).
  The rows a source is asked to compute priors for are never training data; they only say *which build* the
  images belong to (``<build>/params.json`` beside ``train/``, ``valid/`` and ``valid_occluded/``). SynthFER's
  validation faces are other identities than its training faces, and ``valid_occluded`` shows the ``valid`` faces.
- The build a source uses: ``train_root`` when given; else the build of the rows being computed (a manifest row of
  SynthFER names its build through its paths); rows of another dataset (real faces, ``orsa predict`` images) use the
  build the source is already bound to, or else the SynthFER of the ``cpu`` profile (generated on first use).
  One batch of rows from two SynthFER builds is refused.

Trained once per SynthFER build and detector settings, deterministically (seeded; the global random state is left
alone): ``outputs/cache/detectors/<data hash>/detectors-<settings key>.pt`` (state dicts and the settings, read
with ``torch.load(weights_only=True)``) and ``detectors-<settings key>.json`` (settings, training time, the final
NME / face-class mIoU on the build's ``train``, ``valid`` and ``valid_occluded`` splits, the weights' SHA-1). Both
are written atomically under a lock; a later call (any process) loads them instead of training. The data hash
covers the build's ``params.json`` (generator version included), its ``landmarks.npy`` and its training rows.
A weights file that does not match its JSON record or does not load is trained again.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from filelock import FileLock
from PIL import Image
from torch.nn import functional as F

from ..data.transforms import flip_landmarks, flip_parsing, read_rgb
from ..models.detectors import FaceParser, LandmarkRegressor, normalize_images
from ..paths import CACHE_DIR
from ..registry import register_prior_source
from ..utils import atomic_torch_save, atomic_write_json, load_error_text, progress_bar, resolve_device
from .landmarks import file_sha1
from .quality import landmark_nme, mean_iou
from .sources import PriorSource

__all__ = [
    "DETECTOR_CACHE",
    "DetectorSettings",
    "Detectors",
    "SynthDetectedSource",
    "default_training_build",
    "load_or_train_detectors",
    "synthfer_build_of",
    "synthfer_data_hash",
    "train_detectors",
    "training_rows",
]

DETECTOR_CACHE: Path = CACHE_DIR / "detectors"
FORMAT = "orsalib.synth-detected"
FORMAT_VERSION = 1  # bump when the networks or the training recipe change in a way the settings do not name


@dataclass(frozen=True)
class DetectorSettings:
    """How the two detectors are built and trained (their hash names the weights file).

    The defaults train both networks for 700 steps of 32 faces (25 epochs of 840 faces, 8 of the ``cpu`` profile's
    2,800) at 64 px: about a minute of one CPU core.
    """

    input_size: int = 64  # side the networks see (images are resized to it; parsing logits are resized back)
    epochs: int = 25  # passes over the training split (at most; see max_steps)
    max_steps: int = 700  # cap on optimiser steps (0 = none): the cost stays flat as a SynthFER build grows
    batch_size: int = 32
    lr: float = 3e-3  # peak of the one-cycle schedule (AdamW)
    weight_decay: float = 1e-4
    landmark_width: int = 16  # LandmarkRegressor width
    parser_width: int = 16  # FaceParser width
    shift: int = 3  # random translation of the training images, in pixels at input_size (0 = none)
    colour: float = 0.2  # random contrast / per-channel brightness amplitude (0 = none)
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps < 0:
            raise ValueError(f"DetectorSettings.max_steps={self.max_steps!r} must be an integer >= 0")
        for name in ("input_size", "epochs", "batch_size", "landmark_width", "parser_width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"DetectorSettings.{name}={v!r} must be a positive integer")
        if self.input_size % 16:
            raise ValueError(f"DetectorSettings.input_size={self.input_size} must be a multiple of 16")
        if not self.lr > 0 or self.weight_decay < 0 or self.shift < 0 or not 0 <= self.colour < 1:
            raise ValueError(f"DetectorSettings out of range: {self}")

    def key(self) -> str:
        """12 hex characters naming these settings (and :data:`FORMAT_VERSION`)."""
        text = json.dumps({"format": FORMAT_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------- SynthFER builds
def _is_build(root: Path) -> bool:
    try:
        params = json.loads((root / "params.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(params, dict) and "generator_version" in params and (root / "manifest.csv").is_file()


def synthfer_build_of(rows: pd.DataFrame) -> Path | None:
    """The SynthFER build folder the manifest rows belong to; None when they belong to none (other datasets).

    Raises:
        ValueError: the rows come from two or more SynthFER builds.
    """
    if len(rows) == 0 or "path" not in rows.columns:
        return None
    candidates: set[Path] = set()
    # occluded copies (orsalib.engine.evaluate) name the image they were made from in ``origin_path``
    col = "origin_path" if "origin_path" in rows.columns and rows["origin_path"].notna().all() else "path"
    for p in rows[col].astype(str).unique():
        parts = Path(p).parents
        if len(parts) > 2:
            candidates.add(parts[2])  # <build>/<split>/<class>/<id>.png
    if "parsing_path" in rows.columns and col == "path":
        for p in rows["parsing_path"].dropna().astype(str).unique():
            if p:
                candidates.add(Path(p).parent.parent)  # <build>/parsing/<id>.png
    builds = sorted({c.resolve() for c in candidates if _is_build(c)})
    if len(builds) > 1:
        raise ValueError(
            f"synth-detected: the rows come from {len(builds)} SynthFER builds ({[str(b) for b in builds[:3]]}); "
            "compute the priors of one build at a time (each has its own detectors)"
        )
    return builds[0] if builds else None


def _build_manifest(root: Path) -> pd.DataFrame:
    """``<root>/manifest.csv`` with its image and parsing paths anchored at ``root`` (the folder may have moved)."""
    m = pd.read_csv(root / "manifest.csv")
    missing = [c for c in ("path", "split", "landmarks_index", "parsing_path") if c not in m.columns]
    if missing:
        raise ValueError(f"{root / 'manifest.csv'} lacks the columns {missing}; not a SynthFER build")
    m["path"] = [str(root.joinpath(*Path(p).parts[-3:])) for p in m["path"].astype(str)]
    m["parsing_path"] = [str(root.joinpath(*Path(p).parts[-2:])) for p in m["parsing_path"].astype(str)]
    return m


def training_rows(manifest: pd.DataFrame) -> pd.DataFrame:
    """The rows the detectors may learn from: ``split == "train"`` only (every other split is evaluation).

    Raises:
        ValueError: the manifest has no training row.
    """
    rows = manifest[manifest["split"].astype(str) == "train"]
    if rows.empty:
        raise ValueError(
            f"synth-detected: the SynthFER manifest has no 'train' rows (splits: {sorted(set(manifest['split']))}); "
            "the detectors are trained on the training split only"
        )
    return rows


def synthfer_data_hash(root: str | Path) -> str:
    """16 hex characters naming a SynthFER build's training data: its settings (``params.json``, generator version
    included), ``landmarks.npy`` and its training rows (file names, labels, occluders, landmark rows)."""
    root = Path(root)
    params = json.loads((root / "params.json").read_text(encoding="utf-8"))
    h = hashlib.sha1(json.dumps(params, sort_keys=True).encode())
    h.update(file_sha1(root / "landmarks.npy", length=40).encode())
    rows = training_rows(_build_manifest(root))
    names = [str(Path(p).relative_to(root)) for p in rows["path"]]
    cols = [c for c in ("label", "occluder", "landmarks_index") if c in rows.columns]
    h.update(pd.DataFrame({"path": names, **{c: rows[c].to_numpy() for c in cols}}).to_csv(index=False).encode())
    return h.hexdigest()[:16]


def default_training_build() -> Path:
    """The SynthFER build of the ``cpu`` profile (built on first use): the detectors for images of other datasets."""
    from ..config import load_profile
    from ..data.synthfer import synthfer_from_config

    m = synthfer_from_config(load_profile("cpu").data, seed=0)
    return Path(str(m["path"].iloc[0])).parents[2].resolve()


# ----------------------------------------------------------------------------- data
def _read_split(rows: pd.DataFrame, lms: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images (N, S, S, 3) uint8, parsing maps (N, S, S) uint8 and landmarks (N, 68, 2) float32 of ``rows``."""
    images, maps = [], []
    for p, q in zip(rows["path"], rows["parsing_path"]):
        img = read_rgb(p)
        if img.shape[:2] != (size, size):
            img = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))
        with Image.open(q) as im:
            par = np.asarray(im, dtype=np.uint8)
        if par.shape != (size, size):
            par = np.asarray(Image.fromarray(par).resize((size, size), Image.NEAREST))
        images.append(img)
        maps.append(par)
    idx = rows["landmarks_index"].astype(int).to_numpy()
    if idx.size and (idx.min() < 0 or idx.max() >= len(lms)):
        raise ValueError(f"synth-detected: landmarks_index outside landmarks.npy ({len(lms)} rows)")
    return np.stack(images), np.stack(maps), np.asarray(lms[idx], dtype=np.float32)


# ----------------------------------------------------------------------------- the detectors
@dataclass
class Detectors:
    """A trained, frozen landmark regressor and face parser.

    Attributes:
        landmarks: the :class:`~orsalib.models.detectors.LandmarkRegressor` (eval mode).
        parser: the :class:`~orsalib.models.detectors.FaceParser` (eval mode).
        settings: how they were trained.
        weights: the weights file (None for detectors trained in memory only).
        weights_id: hash of the weights file (the prior cache's folder key).
        info: the training record (the JSON beside the weights).
    """

    landmarks: LandmarkRegressor
    parser: FaceParser
    settings: DetectorSettings
    weights: Path | None = None
    weights_id: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.parser.parameters()).device

    @torch.no_grad()
    def predict(self, images: np.ndarray, out_size: int | None = None) -> dict[str, np.ndarray]:
        """Priors of uint8 RGB images (B, H, W, 3): ``landmarks`` (B, 68, 2) float32 in [0, 1] and ``parsing``
        (B, out, out) uint8 LaPa labels (``out_size`` default: H)."""
        images = np.asarray(images)
        out = int(out_size or images.shape[1])
        x = normalize_images(torch.from_numpy(np.ascontiguousarray(images)).to(self.device))  # (B, 3, H, W)
        size = self.settings.input_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        x = x.contiguous(memory_format=torch.channels_last)
        lm = self.landmarks(x).clamp(0.0, 1.0)  # (B, 68, 2)
        logits = self.parser(x)  # (B, 11, size, size)
        if logits.shape[-1] != out:
            logits = F.interpolate(logits, size=(out, out), mode="bilinear", align_corners=False)
        parsing = logits.argmax(1).to(torch.uint8)  # (B, out, out)
        return {"landmarks": lm.float().cpu().numpy(), "parsing": parsing.cpu().numpy()}

    def score(self, images: np.ndarray, parsing: np.ndarray, landmarks: np.ndarray, batch: int = 128) -> dict:
        """Mean NME (inter-ocular) and mean face-class mIoU of the detectors against ground truth."""
        nme, miou = [], []
        for k in range(0, len(images), batch):
            out = self.predict(images[k : k + batch], parsing.shape[-1])
            nme += landmark_nme(out["landmarks"], landmarks[k : k + batch]).tolist()
            miou += [mean_iou(p, g) for p, g in zip(out["parsing"], parsing[k : k + batch])]
        return {"n": len(images), "nme": float(np.mean(nme)), "miou": float(np.nanmean(miou))}


def _class_weights(parsing: torch.Tensor, num_classes: int = 11) -> torch.Tensor:
    """Cross-entropy weights ~ frequency^-1/2 (small classes such as eyes and lips count), mean weight 1 per pixel."""
    freq = torch.bincount(parsing.reshape(-1), minlength=num_classes)[:num_classes].double()
    freq = freq / freq.sum()
    w = freq.clamp_min(1e-4) ** -0.5
    return (w / (w * freq).sum()).float()


def _augment(
    x: torch.Tensor, par: torch.Tensor, lm: torch.Tensor, s: DetectorSettings, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paired augmentation of a batch (B, 3, S, S) / (B, S, S) / (B, 68, 2): flip, translation, colour."""
    n = len(x)
    flip = torch.rand(n, generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    par = torch.where(flip[:, None, None], flip_parsing(par), par)
    lm = torch.where(flip[:, None, None], flip_landmarks(lm), lm)
    if s.shift:
        dx, dy = (int(v) for v in torch.randint(-s.shift, s.shift + 1, (2,), generator=g))
        x, par = torch.roll(x, (dy, dx), (2, 3)), torch.roll(par, (dy, dx), (1, 2))
        lm = lm + torch.tensor([dx, dy], dtype=lm.dtype) / s.input_size
    if s.colour:
        gain = 1 + s.colour * (2 * torch.rand(n, 1, 1, 1, generator=g) - 1)
        bias = s.colour * (2 * torch.rand(n, 3, 1, 1, generator=g) - 1)
        x = x * gain + bias
    return x, par, lm


def _fit(
    images: np.ndarray, parsing: np.ndarray, landmarks: np.ndarray, s: DetectorSettings, device: torch.device,
    progress: bool,
) -> tuple[LandmarkRegressor, FaceParser]:  # fmt: skip
    """Train both networks (one optimiser, the sum of the two losses; the networks share nothing)."""
    x_all = normalize_images(torch.from_numpy(images))  # (N, 3, S, S), normalised once
    par_all = torch.from_numpy(parsing.astype(np.int64))  # (N, S, S)
    lm_all = torch.from_numpy(landmarks)  # (N, 68, 2)
    torch.manual_seed(s.seed)
    lm_net = LandmarkRegressor(s.landmark_width, mean_shape=lm_all.mean(0)).to(device)
    parser = FaceParser(s.parser_width).to(device)
    lm_net, parser = (m.to(memory_format=torch.channels_last) for m in (lm_net, parser))
    params = [*lm_net.parameters(), *parser.parameters()]
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    n = len(x_all)
    per_epoch = (n + s.batch_size - 1) // s.batch_size
    steps = s.epochs * per_epoch if not s.max_steps else min(s.epochs * per_epoch, s.max_steps)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.lr, total_steps=steps, pct_start=0.15)
    cw = _class_weights(par_all).to(device)
    g = torch.Generator().manual_seed(s.seed)
    lm_net.train()
    parser.train()
    done = 0
    for _ in progress_bar(range(-(-steps // per_epoch)), desc="synth-detected training", unit="epoch",
                          enabled=progress):
        order = torch.randperm(n, generator=g)
        for b0 in range(0, n, s.batch_size):
            if done == steps:
                break
            done += 1
            idx = order[b0 : b0 + s.batch_size]
            x, par, lm = _augment(x_all[idx], par_all[idx], lm_all[idx], s, g)
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            par, lm = par.to(device), lm.to(device)
            iod = (lm[:, 36] - lm[:, 45]).norm(dim=-1).clamp_min(1e-3)  # (B,)
            loss_lm = ((lm_net(x) - lm).norm(dim=-1).mean(1) / iod).mean()  # NME
            loss_par = F.cross_entropy(parser(x), par, weight=cw)
            opt.zero_grad(set_to_none=True)
            (loss_lm + loss_par).backward()
            opt.step()
            sched.step()
    return lm_net.eval(), parser.eval()


def train_detectors(
    root: str | Path, settings: DetectorSettings | None = None, device: str | torch.device = "cpu",
    progress: bool = True,
) -> Detectors:  # fmt: skip
    """Train the detectors on the training split of the SynthFER build in ``root`` (in memory; no file written).

    Deterministic for a given build, settings, device and thread count; the global torch random state is restored
    afterwards. ``info`` holds the training time and the NME / mIoU on the build's train, valid and valid_occluded
    splits (evaluated after training; they choose nothing).
    """
    s = settings or DetectorSettings()
    root = Path(root).resolve()
    dev = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    manifest = _build_manifest(root)
    rows = training_rows(manifest)
    lms = np.load(root / "landmarks.npy", mmap_mode="r")
    images, parsing, landmarks = _read_split(rows, lms, s.input_size)
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        lm_net, parser = _fit(images, parsing, landmarks, s, dev, progress)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    det = Detectors(lm_net, parser, s)
    scores = {"train": det.score(images, parsing, landmarks)}
    for split in ("valid", "valid_occluded"):  # evaluation only, after training
        part = manifest[manifest["split"].astype(str) == split]
        if len(part):
            scores[split] = det.score(*_read_split(part, lms, s.input_size))
    names = "\n".join(str(Path(p).relative_to(root)) for p in rows["path"])
    det.info = {
        "format": FORMAT, "version": FORMAT_VERSION, "settings": asdict(s), "settings_key": s.key(),
        "build": str(root), "data_hash": synthfer_data_hash(root), "splits_trained_on": ["train"],
        "training_rows": len(rows), "training_rows_sha1": hashlib.sha1(names.encode()).hexdigest(),
        "occluded_training_rows": int((rows.get("occluder", pd.Series(dtype=str)).astype(str) != "none").sum()),
        "device": str(dev), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "train_seconds": round(seconds, 2), "train_cpu_seconds": round(cpu_seconds, 2), "scores": scores,
        "parameters": {"landmarks": sum(p.numel() for p in lm_net.parameters()),
                       "parser": sum(p.numel() for p in parser.parameters())},
    }  # fmt: skip
    return det


def _state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}


def _load_file(path: Path, s: DetectorSettings, device: torch.device) -> Detectors:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path} is not a {FORMAT} v{FORMAT_VERSION} weights file")
    lm_net = LandmarkRegressor(s.landmark_width)
    parser = FaceParser(s.parser_width)
    lm_net.load_state_dict(obj["landmarks"])
    parser.load_state_dict(obj["parser"])
    lm_net, parser = (m.to(device).to(memory_format=torch.channels_last).eval() for m in (lm_net, parser))
    return Detectors(lm_net, parser, s, path, file_sha1(path))


def load_or_train_detectors(
    root: str | Path, settings: DetectorSettings | None = None, cache_root: str | Path | None = None,
    device: str | torch.device = "cpu", progress: bool = True,
) -> Detectors:  # fmt: skip
    """The detectors of the SynthFER build in ``root``: loaded from the cache, or trained once and cached.

    Files: ``<cache_root>/<data hash>/detectors-<settings key>.pt`` and ``.json`` (``cache_root`` default
    :data:`DETECTOR_CACHE`). The JSON gets ``"reused": true`` in ``info`` when the file was loaded.
    """
    s = settings or DetectorSettings()
    root = Path(root).resolve()
    dev = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    folder = Path(cache_root or DETECTOR_CACHE).expanduser() / synthfer_data_hash(root)
    wfile, jfile = folder / f"detectors-{s.key()}.pt", folder / f"detectors-{s.key()}.json"
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / ".lock"):
        problem = ""
        if wfile.is_file() and jfile.is_file():
            try:
                info = json.loads(jfile.read_text(encoding="utf-8"))
                if info.get("weights_sha1") != file_sha1(wfile, length=40):
                    raise ValueError("the weights file does not match the SHA-1 its JSON records")
                det = _load_file(wfile, s, dev)
                det.info = {**info, "reused": True}
                return det
            except Exception as e:  # noqa: BLE001 - any damage means: train again
                problem = load_error_text(e)
        elif wfile.exists() or jfile.exists():
            problem = "the weights file or its JSON record is missing"
        if problem:
            print(f"synth-detected: {wfile} cannot be used ({problem}); training again", flush=True)
        det = train_detectors(root, s, dev, progress)
        atomic_torch_save(
            {"format": FORMAT, "version": FORMAT_VERSION, "settings": asdict(s), "landmarks": _state(det.landmarks),
             "parser": _state(det.parser)},
            wfile,
        )  # fmt: skip
        det.weights, det.weights_id = wfile, file_sha1(wfile)
        det.info["weights_sha1"] = file_sha1(wfile, length=40)
        det.info["weights"] = wfile.name
        atomic_write_json(jfile, det.info)
        det.info["reused"] = False
        sc = det.info["scores"]
        occ = sc.get("valid_occluded", {})
        print(
            f"synth-detected: trained on {det.info['training_rows']} training faces of {root.name} in "
            f"{det.info['train_seconds']:.0f} s; valid NME {sc.get('valid', {}).get('nme', float('nan')):.4f} "
            f"mIoU {sc.get('valid', {}).get('miou', float('nan')):.3f}, occluded NME {occ.get('nme', float('nan')):.4f}"
            f" mIoU {occ.get('miou', float('nan')):.3f} -> {wfile}",
            flush=True,
        )
        return det


# ----------------------------------------------------------------------------- the prior source
@register_prior_source(
    "synth-detected",
    description="small landmark regressor + face parser trained on SynthFER's training split (occluders "
    "included), weights cached per build; they guess under occluders as real prior networks do",
    keys=("landmarks", "parsing"),
    weights=(),
    ground_truth=False,
    real_faces=False,  # trained on drawn faces: a profile's default on SynthFER only (orsalib.config)
)
class SynthDetectedSource(PriorSource):
    """``synth-detected``: landmarks (68, 2) and parsing (S, S) from :class:`Detectors` (see the module docstring for
    which SynthFER build trains them).

    Args:
        train_root: the SynthFER build to train on (default: the build of the rows computed; see the module doc).
        device: where the detectors train and run.
        settings: detector settings (default :class:`DetectorSettings`).
        cache_root: where trained weights are kept (default :data:`DETECTOR_CACHE`).
        progress: progress bar while training.
    """

    name = "synth-detected"
    keys = ("landmarks", "parsing")

    def __init__(
        self, train_root: str | Path | None = None, device: str | torch.device = "cpu",
        settings: DetectorSettings | None = None, cache_root: str | Path | None = None, progress: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        self.train_root = Path(train_root).expanduser().resolve() if train_root else None
        if self.train_root is not None and not _is_build(self.train_root):
            raise FileNotFoundError(
                f"synth-detected: train_root={str(self.train_root)!r} is not a SynthFER build (params.json and "
                "manifest.csv); build one with orsalib.data.synthfer.build_synthfer"
            )
        self.device = torch.device(device) if not isinstance(device, torch.device) else device
        self.settings = settings or DetectorSettings()
        self.cache_root = cache_root
        self.progress = progress
        self._detectors: Detectors | None = None
        self._root: Path | None = None  # the build the detectors were trained on

    @classmethod
    def from_config(cls, prior_cfg: Any, device: torch.device) -> SynthDetectedSource:
        """The source with default settings on ``device`` (the build is found from the rows it computes)."""
        return cls(device=device)

    def bind(self, rows: pd.DataFrame | None = None) -> Detectors:
        """The detectors for ``rows`` (loaded or trained now); the source keeps them for later batches."""
        root = self.train_root
        if root is None:
            root = synthfer_build_of(rows) if rows is not None else None
        if root is None:
            if self._detectors is not None:
                return self._detectors
            root = default_training_build()
        if self._detectors is None or self._root != root:
            self._detectors = load_or_train_detectors(root, self.settings, self.cache_root, self.device, self.progress)
            self._root = root
        return self._detectors

    @property
    def detectors(self) -> Detectors:
        """The bound detectors (binding to the default build when none is bound yet)."""
        return self.bind(None)

    @property
    def weights_id(self) -> str:  # type: ignore[override]
        """Hash of the bound detectors' weights file."""
        if self._detectors is None:
            raise RuntimeError(
                "synth-detected: no detectors bound yet, so no weights_id; call source.bind(manifest) (PriorCache."
                "ensure does) or compute priors first"
            )
        return self._detectors.weights_id

    def sample_keys(self, rows: pd.DataFrame, image_sha1s: list[str]) -> list[str]:
        self.bind(rows)  # before the cache asks for weights_id
        return list(image_sha1s)

    def _compute(self, images: np.ndarray, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        return self.bind(rows).predict(images)

    def describe(self) -> dict[str, Any]:
        det = self._detectors
        return {
            "name": self.name, "keys": list(self.keys), "weights_id": det.weights_id if det is not None else "",
            "build": str(self._root or ""), "data_hash": det.info.get("data_hash", "") if det is not None else "",
            "settings_key": self.settings.key(),
        }  # fmt: skip

    def __repr__(self) -> str:
        return f"SynthDetectedSource(build={str(self._root or 'not bound')!r}, settings={self.settings.key()})"
