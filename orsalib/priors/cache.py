"""PriorCache: compute the frozen priors of a manifest once, store them on disk, read them memory-mapped.

The released ORSANet recomputes its frozen prior networks on every forward pass (twice per step under SAM);
the cache computes them once per image and once per flipped image, the main speed lever (docs/architecture.md,
"The prior cache").

Layout::

    <root>/<source>-<weights id>/<image size>/
        shards/<shard id>/<prior key>.npy        (n, ...) priors of the shard's n unique samples
                          <prior key>__flip.npy  the same for the horizontally flipped images
                          meta.json              sample keys, prior keys, dtypes, SHA-1 of every .npy (written last)
        index-<manifest hash>.json               manifest row -> (shard, position), one per manifest
        .lock

- Samples are keyed by content: the SHA-1 of the image file's bytes (for ``oracle``, combined with the ground
  truth), so identical images share a slot across manifests and a changed file is recomputed.
- The weights hash is part of the folder name: a cache built with one weights file is never read for another.
- Shards are computed and written one at a time, each atomically (temp folder + rename) with checksums: a killed
  build keeps its finished shards and resumes; a corrupted shard fails its checksum and is recomputed.
- The networks run through the optimised extractors of :mod:`orsalib.priors.fast` (folded BatchNorm,
  channels-last, bf16 where native: ``prior.precision``; the precision is part of the weights id), and the next batch
  of images is decoded in a background thread while they compute.
- Feature maps are stored as float16 by default (``feature_dtype``) to halve the disk/RAM footprint; landmarks
  stay float32 and parsing maps uint8.

Cached (default, ``prior.mode="cached"``) vs released (``prior.mode="released"``): see
:mod:`orsalib.priors.sources` (released: ORSANet's ``priors_in_model=True, prior_mode="released"``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock
from PIL import Image

from ..paths import CACHE_DIR
from ..utils import atomic_write_json, make_temp_dir, progress_bar
from .fast import prefetch
from .sources import PriorSource, get_prior_source

__all__ = ["CACHE_VERSION", "PriorCache", "PriorStore", "image_sha1"]

CACHE_VERSION = 1
_FEATURE_KEYS = ("landmark_features", "parser_features")


def image_sha1(path: str | Path) -> str:
    """Hex SHA-1 of an image file's bytes (the content key of the cache)."""
    h = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except FileNotFoundError:
        raise FileNotFoundError(f"prior cache: image {str(path)!r} of the manifest does not exist") from None
    return h.hexdigest()


def _file_sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_resized(path: str | Path, size: int) -> np.ndarray:
    """Decode an image to uint8 RGB and resize it to (size, size) bilinearly, as the training dataset does."""
    from ..data.transforms import read_rgb

    try:
        img = read_rgb(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"prior cache: cannot decode image {str(path)!r}: {e}") from e
    if img.shape[:2] != (size, size):
        img = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))
    return img


def _decoded_batches(
    manifest: pd.DataFrame, chunk: list[tuple[str, int]], batch_size: int, image_size: int
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """``(rows, images (B, S, S, 3) uint8)`` of consecutive batches of ``chunk`` ((sample key, manifest row) pairs);
    the cache decodes them in a background thread (:func:`orsalib.priors.fast.prefetch`) while the networks run."""
    for b0 in range(0, len(chunk), batch_size):
        rows = manifest.iloc[[i for _, i in chunk[b0 : b0 + batch_size]]]
        yield rows, np.stack([load_resized(p, image_size) for p in rows["path"]])  # (B, S, S, 3)


# ----------------------------------------------------------------------------- the store
class PriorStore:
    """Read access to the cached priors of one manifest: ``store.get(i, flipped=False) -> dict``.

    Arrays are opened memory-mapped on first use (and reopened in DataLoader workers after pickling).

    Attributes:
        keys: the prior keys held.
        path: the store folder (None for an empty store).
        has_flip: whether the priors of the flipped images are stored.
        stats: what the last :meth:`PriorCache.ensure` did (computed / reused samples, seconds, ...).
    """

    def __init__(
        self, path: Path | None, shards: list[str], slots: np.ndarray, keys: tuple[str, ...], has_flip: bool,
        stats: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        self.path = path
        self.shards = list(shards)
        self.slots = np.asarray(slots, dtype=np.int64).reshape(-1, 2)  # (N, 2): (shard number, position)
        self.keys = tuple(keys)
        self.has_flip = bool(has_flip)
        self.stats = dict(stats or {})
        self._arrays: dict[tuple[int, str], np.ndarray] = {}

    @classmethod
    def empty(cls, n: int) -> PriorStore:
        """A store with no priors for ``n`` rows (source ``none``)."""
        return cls(None, [], np.zeros((n, 2), dtype=np.int64), (), True, {"computed": 0, "reused": 0})

    def __len__(self) -> int:
        return len(self.slots)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_arrays"] = {}  # memory maps are reopened in the receiving process
        return state

    def _array(self, shard: int, name: str) -> np.ndarray:
        key = (shard, name)
        if key not in self._arrays:
            self._arrays[key] = np.load(self.path / "shards" / self.shards[shard] / f"{name}.npy", mmap_mode="r")
        return self._arrays[key]

    def get(self, i: int, flipped: bool = False) -> dict[str, np.ndarray]:
        """Priors of manifest row ``i`` (of the horizontally flipped image when ``flipped``); read-only arrays."""
        if not 0 <= i < len(self.slots):
            raise IndexError(f"prior store has {len(self.slots)} rows, asked for row {i}")
        if flipped and not self.has_flip:
            raise KeyError("this prior store holds no flipped priors (built with prior.cache_flip=False)")
        shard, pos = (int(v) for v in self.slots[i])
        suffix = "__flip" if flipped else ""
        return {k: self._array(shard, k + suffix)[pos] for k in self.keys}

    def nbytes(self) -> int:
        """Bytes on disk of the shards this store reads."""
        if self.path is None:
            return 0
        total = 0
        for s in set(self.shards):
            total += sum(f.stat().st_size for f in (self.path / "shards" / s).glob("*") if f.is_file())
        return total

    def __repr__(self) -> str:
        return f"PriorStore(rows={len(self)}, keys={self.keys}, flip={self.has_flip}, path={self.path})"


# ----------------------------------------------------------------------------- the cache
class PriorCache:
    """Build-once prior storage.

    Args:
        root: cache root (default ``outputs/cache/priors``).
        shard_size: unique samples per shard (the unit of atomic writes and of resumption).
        feature_dtype: storage dtype of feature-map priors (``"float16"`` or ``"float32"``).
        verify: check every shard's SHA-1 checksums when opening a store (detects corruption).
    """

    def __init__(
        self, root: str | Path = CACHE_DIR / "priors", shard_size: int = 512, feature_dtype: str = "float16",
        verify: bool = True,
    ) -> None:  # fmt: skip
        if feature_dtype not in ("float16", "float32"):
            raise ValueError(f"feature_dtype={feature_dtype!r}; choose 'float16' or 'float32'")
        if shard_size < 1:
            raise ValueError(f"shard_size={shard_size!r} must be >= 1")
        self.root = Path(root).expanduser()
        self.shard_size = int(shard_size)
        self.feature_dtype = feature_dtype
        self.verify = verify

    def store_dir(self, source: PriorSource, image_size: int) -> Path:
        """``<root>/<source>-<weights id>/<image size>``."""
        return self.root / f"{source.name}-{source.weights_id or 'none'}" / str(int(image_size))

    # -------------------------------------------------------------- shards
    def _check_shard(self, d: Path, keys: tuple[str, ...], flip: bool) -> tuple[list[str] | None, str | None]:
        """(sample keys, None) of a valid shard; (None, None) for a shard of other settings (stale); (None, reason)
        for a damaged one (unreadable meta.json, a missing/truncated/altered array, a header that is not the
        recorded dtype and shape)."""
        try:
            meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            return None, f"meta.json unreadable ({type(e).__name__})"
        if meta.get("version") != CACHE_VERSION or tuple(meta.get("prior_keys", ())) != keys:
            return None, None
        if meta.get("feature_dtype") != self.feature_dtype or (flip and not meta.get("flip")):
            return None, None
        files = meta.get("files", {})
        samples = meta.get("samples")
        if not isinstance(files, dict) or not isinstance(samples, list):
            return None, "meta.json lacks its file list or samples"
        for name in [k + s for k in keys for s in ("", "__flip") if s == "" or meta.get("flip")]:
            fname = f"{name}.npy"
            f = d / fname
            rec = files.get(fname)
            if not isinstance(rec, dict) or not f.is_file():
                return None, f"{fname} missing"
            if f.stat().st_size != rec.get("bytes"):
                return None, f"{fname} has {f.stat().st_size} bytes, meta.json says {rec.get('bytes')}"
            try:
                with open(f, "rb") as fh:
                    fmt = np.lib.format
                    read = fmt.read_array_header_1_0 if fmt.read_magic(fh) == (1, 0) else fmt.read_array_header_2_0
                    shape, _, dtype = read(fh)  # the header only (a literal; nothing is unpickled)
            except (OSError, ValueError) as e:
                return None, f"{fname} is not a .npy array ({e})"
            if dtype.hasobject or list(shape) != list(rec.get("shape", ())) or shape[:1] != (len(samples),):
                return None, f"{fname} holds {dtype} {tuple(shape)}, not the recorded {tuple(rec.get('shape', ()))}"
            if self.verify and _file_sha1(f) != rec.get("sha1"):
                return None, f"{fname} checksum does not match meta.json"
        return [str(x) for x in samples], None

    def _write_shard(self, shards_dir: Path, samples: list[str], arrays: dict[str, np.ndarray], meta: dict) -> str:
        name = hashlib.sha1("\n".join(samples).encode()).hexdigest()[:20]
        final = shards_dir / name
        tmp = make_temp_dir(shards_dir, f".tmp-{name}-")
        try:
            files = {}
            for k, arr in arrays.items():
                f = tmp / f"{k}.npy"
                with open(f, "wb") as fh:
                    np.save(fh, np.ascontiguousarray(arr))
                    fh.flush()
                    os.fsync(fh.fileno())
                files[f"{k}.npy"] = {"sha1": _file_sha1(f), "bytes": f.stat().st_size, "shape": list(arr.shape)}
            atomic_write_json(tmp / "meta.json", {**meta, "samples": samples, "files": files})
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return name

    def _cast(self, key: str, arr: np.ndarray) -> np.ndarray:
        if key in _FEATURE_KEYS:
            return np.asarray(arr, dtype=self.feature_dtype)
        if key == "parsing":
            return np.asarray(arr, dtype=np.uint8)
        return np.asarray(arr, dtype=np.float32)

    # -------------------------------------------------------------- ensure
    def ensure(
        self, manifest: pd.DataFrame, prior_cfg: Any, image_size: int, device: Any = "auto", progress: bool = True,
        source: PriorSource | None = None,
    ) -> PriorStore:  # fmt: skip
        """The store of ``manifest``'s priors; computes (in shards) only what is not cached yet.

        Args:
            manifest: the dataset manifest (row position = sample id, as in docs/contracts.md).
            prior_cfg: a :class:`orsalib.config.PriorConfig` (``source``, weights, ``cache_flip``, ``batch_size``),
                a dict with those fields, or a source name.
            image_size: the model input side; priors are computed on the image resized to it.
            device: where the prior networks run ("auto" = CUDA when present).
            progress: show progress bars (``orsalib.utils.progress_bar``: a headless run gets one line each).
            source: use this :class:`PriorSource` instead of building one from ``prior_cfg``.

        Returns:
            a :class:`PriorStore` with ``len(store) == len(manifest)``.
        """
        t0 = time.perf_counter()
        cfg_get = (lambda k, d: prior_cfg.get(k, d)) if isinstance(prior_cfg, dict) else (
            lambda k, d: getattr(prior_cfg, k, d))  # fmt: skip
        flip = bool(cfg_get("cache_flip", True))
        batch_size = int(cfg_get("batch_size", 64))
        source = source or get_prior_source(prior_cfg, device)
        manifest = manifest.reset_index(drop=True)
        n = len(manifest)
        if not source.keys:
            return PriorStore.empty(n)
        image_size = int(image_size)
        if "sha1" in manifest.columns and manifest["sha1"].notna().all():
            shas = [str(s) for s in manifest["sha1"]]
        else:
            paths = manifest["path"].astype(str).tolist()
            shas = [image_sha1(p) for p in progress_bar(paths, desc="hashing images", unit="img", enabled=progress)]
        sample_keys = source.sample_keys(manifest, shas)
        d = self.store_dir(source, image_size)
        shards_dir = d / "shards"
        stats: dict[str, Any] = {"rows": n, "computed": 0, "reused": 0, "recomputed_shards": 0}
        d.mkdir(parents=True, exist_ok=True)
        with FileLock(d / ".lock"):
            shards_dir.mkdir(parents=True, exist_ok=True)
            for tmp in shards_dir.glob(".tmp-*"):  # left by an interrupted build
                shutil.rmtree(tmp, ignore_errors=True)
            where: dict[str, tuple[str, int]] = {}
            repaired: list[dict[str, str]] = []
            for sd in sorted(p for p in shards_dir.iterdir() if p.is_dir()):
                samples, damage = self._check_shard(sd, source.keys, flip)
                if samples is None:
                    shutil.rmtree(sd, ignore_errors=True)
                    stats["recomputed_shards"] += 1
                    if damage:
                        repaired.append({"shard": sd.name, "problem": damage})
                    continue
                for pos, key in enumerate(samples):
                    where.setdefault(key, (sd.name, pos))
            stats["repaired"] = len(repaired)
            stats["repaired_shards"] = repaired
            if repaired:
                shown = "; ".join(f"{r['shard']}: {r['problem']}" for r in repaired[:5])
                more = f"; and {len(repaired) - 5} more" if len(repaired) > 5 else ""
                print(
                    f"prior cache {shards_dir}: {len(repaired)} damaged shard(s) removed, their priors are recomputed "
                    f"({shown}{more})"
                )
            first_row: dict[str, int] = {}
            for i, key in enumerate(sample_keys):
                if key not in where and key not in first_row:
                    first_row[key] = i
            todo = list(first_row.items())
            stats["computed"] = len(todo)
            stats["reused"] = len(set(sample_keys)) - len(todo)
            meta = {
                "version": CACHE_VERSION, "source": source.describe(), "image_size": image_size,
                "prior_keys": list(source.keys), "flip": flip, "feature_dtype": self.feature_dtype,
            }  # fmt: skip
            bar = progress_bar(total=len(todo), desc=f"priors {source.name} @{image_size}", unit="img",
                               enabled=progress and bool(todo))
            for s0 in range(0, len(todo), self.shard_size):
                chunk = todo[s0 : s0 + self.shard_size]
                parts: dict[str, list[np.ndarray]] = {}
                for rows, images in prefetch(_decoded_batches(manifest, chunk, batch_size, image_size)):
                    outs = {"": source.compute(images, rows)}
                    if flip:
                        outs["__flip"] = source.compute_flipped(images, rows)
                    for suffix, out in outs.items():
                        missing = [k for k in source.keys if k not in out]
                        if missing:
                            raise RuntimeError(f"prior source {source.name!r} did not return {missing}")
                        for k in source.keys:
                            parts.setdefault(k + suffix, []).append(self._cast(k, out[k]))
                    bar.update(len(rows))
                samples = [key for key, _ in chunk]
                arrays = {k: np.concatenate(v, axis=0) for k, v in parts.items()}
                name = self._write_shard(shards_dir, samples, arrays, meta)
                for pos, key in enumerate(samples):
                    where[key] = (name, pos)
            bar.close()
            shard_names = sorted({where[k][0] for k in sample_keys})
            number = {s: j for j, s in enumerate(shard_names)}
            slots = np.array([[number[where[k][0]], where[k][1]] for k in sample_keys], dtype=np.int64).reshape(-1, 2)
            mhash = hashlib.sha1("\n".join(sample_keys).encode()).hexdigest()[:16]
            atomic_write_json(
                d / f"index-{mhash}.json",
                {"version": CACHE_VERSION, "rows": n, "shards": shard_names, "slots": slots.tolist(),
                 "paths": manifest["path"].astype(str).tolist()},
            )  # fmt: skip
        stats["seconds"] = round(time.perf_counter() - t0, 3)
        stats["model_calls"] = source.calls
        return PriorStore(d, shard_names, slots, source.keys, flip, stats)

