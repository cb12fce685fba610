"""The SynthFER dataset folder: settings and their cache folder, the balanced plan of samples, and the writer
(images and parsing maps as PNG by PIL, landmarks as .npy, the manifest last; parallel workers; a folder lock).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock
from PIL import Image

from ... import registry
from ..labels import emotions
from .occluders import synthfer_occluders
from .sample import render_sample

GENERATOR_VERSION = 4  # bump whenever the drawn bytes change (part of the cache key)
# 1: first release. 2: expression intensity >= 0.45 (was 0.25).
# 3: occluders are pasted through their own mask: in 2, finger lines of hands and spots of blob objects could
#    paint a few pixels outside the mask, where the parsing map kept a face class. Otherwise the pixels are
#    those of 2 up to +-1 (float32 lighting). Image PNGs are stored uncompressed.
# 4: the geometric effects of the action units are 1.2-1.45x those of 3 (lip corners, brows, lids, mouth
#    opening): at 64 px a lip corner moved ~1 px at the lowest intensity, and low-intensity sadness and
#    happiness were mostly read as neutral.

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
    if any(getattr(registry.OCCLUDERS.get(k), "__module__", None) != synthfer_occluders.__module__ for k in mix):
        params["occluders"] = list(mix)  # a mix with registered kinds of elsewhere is part of the settings
    return params


def _mix(params: dict[str, Any]) -> tuple[str, ...]:
    """The occluder kinds of a build (recorded in ``params`` when they are not the built-in ones)."""
    return tuple(params.get("occluders") or synthfer_occluders())


def default_root(params: dict[str, Any]) -> Path:
    """``outputs/cache/synthfer/<hash of the params>``: different settings never share a folder."""
    from ...paths import CACHE_DIR

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


def _png_bytes(arr: np.ndarray, compress_level: int = 0) -> bytes:
    """A uint8 greyscale (H, W) or RGB (H, W, 3) array as PNG, written by PIL.

    Images are stored uncompressed (``compress_level=0``): SynthFER's sensor noise leaves zlib about 30 % to gain, at
    a cost larger than drawing the image. Label maps (few values, long runs) use level 1.
    """
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def _write_fast(path: Path, data: bytes) -> None:
    """Temp file + rename (no fsync per image: the manifest, written last with fsync, marks a complete build)."""
    from ...utils import atomic_write_bytes

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
        _write_fast(ppath, _png_bytes(s.parsing, compress_level=1))
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
    force: bool = False,
    progress: bool = True,
    workers: int | None = None,
    **settings: Any,
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
        force: rebuild even when a complete build exists.
        progress: show a progress bar.
        workers: processes that render and write images (the bytes do not depend on it); None = every core
            (at most 8) for builds of 512 images or more, one process below that.
        settings: those of :func:`synthfer_params` (``size``, ``train_per_class``, ``val_per_class`` (clean; the
            occluded split has as many), ``num_classes`` (7, or 8 with contempt), ``occlusion_prob`` (fraction of
            training faces with an occluder), ``seed``).

    Returns:
        the manifest (columns :data:`MANIFEST_COLUMNS`).
    """
    from ...utils import atomic_write_bytes, atomic_write_json, atomic_write_text, progress_bar

    params = synthfer_params(**settings)
    size, num_classes = params["size"], params["num_classes"]
    _resolve_workers(workers, 0)
    root = Path(root).expanduser().resolve() if root else default_root(params)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"SynthFER root {str(root)!r} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / ".build.lock"):
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
        bar = progress_bar(total=n, desc=f"SynthFER {size}px", enabled=progress, mininterval=1.0, unit="img")
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
