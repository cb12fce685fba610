"""Dataset / DataLoader building: paired augmentation, cached priors, class-balanced and DDP samplers.

Batch contract (docs/contracts.md): ``image`` float (3, H, W) normalised, ``label`` int64, ``index`` int64 (the
manifest row, i.e. the prior-cache sample id), plus any prior keys as tensors (``parsing`` int64).

Flip augmentation with cached priors: when a training sample is flipped the dataset asks the prior store for
the priors of the *flipped* image (``store.get(i, flipped=True)``), computed once when the cache was built,
instead of recomputing the frozen prior networks (the release recomputes them every step).

Exact resume: every random stream of the data side is a function of (seed, epoch, ...), never of what ran before.
The training sampler draws its epoch sequence from ``(seed, epoch)`` (:meth:`DistributedBalancedSampler.set_epoch`;
one rank = the single-process case) and yields :class:`Draw` items that carry the epoch and the draw's slot in the
epoch's global sequence; the dataset seeds each draw's augmentation (flip, RandomErasing) from
``(seed, epoch, slot)``. So a run resumed at any epoch sees the same images as an uninterrupted run, with any number
of DataLoader workers (persistent or not) and on every DDP rank.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, WeightedRandomSampler

from ..threads import loader_workers
from .sources import DatasetError
from .transforms import PairedTransform, read_rgb

_GEOMETRIC_KEYS = ("landmarks", "parsing")
# the random streams of a run, as the second key of derive_seed(seed, stream, epoch, ...): never the same seed twice
PROCESS_STREAM = 0  # (seed, 0, epoch, rank): python / numpy / torch global RNGs of a process (dropout, drop-path)
SAMPLER_STREAM = 1  # (seed, 1, epoch): the training sampler's epoch sequence (identical on every rank)
AUGMENT_STREAM = 2  # (seed, 2, epoch, slot): the augmentation of one draw


def derive_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from non-negative integers (``numpy.random.SeedSequence``), e.g. (seed, epoch)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0] % (2**63 - 1))


class Draw(NamedTuple):
    """One item of a training epoch, as :class:`EpochDraws` yields it and :class:`FERDataset` reads it.

    Attributes:
        index: position in the dataset.
        epoch: 0-based epoch of the draw.
        slot: position of the draw in the epoch's global sequence (the same on every rank, with any workers).
    """

    index: int
    epoch: int
    slot: int


class FERDataset(Dataset):
    """Images of a manifest (+ cached priors) as contract batches.

    Args:
        manifest: rows to serve; ``manifest.index`` holds the global manifest row ids (pass slices of a
            reset-indexed manifest, as :func:`build_loaders` does).
        image_size: output side (images are resized before augmentation, as the priors were).
        prior_store: an object with ``get(i, flipped=False) -> dict[str, np.ndarray]`` and ``keys``, or None.
        train: enable augmentation (flip, RandomErasing, optional scale/shift).
        hflip: horizontal flip with p = 0.5 (train only).
        random_erasing: RandomErasing probability (train only; release 0.5, scale (0.02, 0.1)).
        normalize: ImageNet normalisation.
        cache_images: keep decoded, resized uint8 images in memory; ``None`` = when they need < ``cache_mb``.
        cache_mb: memory budget of the automatic image cache.
        scale_range: optional random zoom range (e.g. (0.95, 1.05)); geometric priors (landmarks, parsing)
            follow, feature-map priors cannot, so it is refused when the store holds feature maps.
        seed: base seed of the augmentation: a training item's flip and RandomErasing are drawn from a generator
            seeded with ``(seed, epoch, slot)`` of its :class:`Draw` (a plain index ``k`` counts as a draw of
            :attr:`epoch`, see :meth:`set_epoch`, with slot = its manifest row). ``None``: a generator reseeded per
            DataLoader worker (:func:`seed_worker`), else torch's global RNG (no exact resume).
    """

    def __init__(
        self,
        manifest: pd.DataFrame,
        image_size: int,
        prior_store: Any = None,
        train: bool = False,
        hflip: bool = True,
        random_erasing: float = 0.5,
        normalize: bool = True,
        cache_images: bool | None = None,
        cache_mb: float = 200.0,
        scale_range: tuple[float, float] | None = None,
        seed: int | None = None,
    ) -> None:
        for c in ("path", "label"):
            if c not in manifest.columns:
                raise DatasetError(f"FERDataset: the manifest lacks column {c!r}; see docs/contracts.md")
        self.paths: list[str] = [str(p) for p in manifest["path"]]
        self.labels: np.ndarray = manifest["label"].to_numpy(dtype=np.int64)
        self.ids: np.ndarray = manifest.index.to_numpy(dtype=np.int64)
        self.image_size = int(image_size)
        self.store = prior_store
        self.train = train
        self.keys: tuple[str, ...] = tuple(getattr(prior_store, "keys", ()) or ()) if prior_store is not None else ()
        if scale_range is not None and train and any(k not in _GEOMETRIC_KEYS for k in self.keys):
            fixed = sorted(set(self.keys) - set(_GEOMETRIC_KEYS))
            raise ValueError(
                f"scale_range augmentation cannot move feature-map priors {fixed}; "
                "use it only with landmark/parsing priors or none"
            )
        self.transform = PairedTransform(
            image_size,
            train=train,
            hflip=hflip,
            random_erasing=random_erasing,
            scale_range=scale_range,
            normalize=normalize,
        )
        if cache_images is None:
            need_mb = len(self.paths) * self.image_size * self.image_size * 3 / 2**20
            cache_images = need_mb < cache_mb
        self.cache_images = bool(cache_images)
        self._cache: dict[int, np.ndarray] = {}
        self._store_flip_ok = True
        self.seed = None if seed is None else int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch of plain integer indices (items of :class:`EpochDraws` carry their own)."""
        self.epoch = int(epoch)

    def reseed(self, seed: int) -> None:
        """Reseed the fallback augmentation generator of a dataset without ``seed`` (:func:`seed_worker`)."""
        self.transform.seed(seed)

    def _generator(self, item: int | Draw, k: int) -> torch.Generator | None:
        """The augmentation generator of one item: seeded from (seed, epoch, slot); None = the transform's own."""
        if self.seed is None or not self.train or not self.transform.random:
            return None
        epoch, slot = (item.epoch, item.slot) if isinstance(item, Draw) else (self.epoch, int(self.ids[k]))
        return torch.Generator().manual_seed(derive_seed(self.seed, AUGMENT_STREAM, epoch, slot))

    def __len__(self) -> int:
        return len(self.paths)

    def load_image(self, k: int) -> np.ndarray:
        """Decoded RGB uint8 (S, S, 3) of position ``k`` (resized to ``image_size``; cached when enabled)."""
        hit = self._cache.get(k)
        if hit is not None:
            return hit
        path = self.paths[k]
        try:
            img = read_rgb(path)
        except Exception as e:  # noqa: BLE001 - name the file, never a bare decoder traceback
            raise DatasetError(
                f"cannot load image {path} (manifest row {int(self.ids[k])}): {type(e).__name__}: {e}; expected a "
                "readable image file (run orsalib.data.sources.validate_manifest before training)"
            ) from None
        if img.shape[:2] != (self.image_size, self.image_size):
            from PIL import Image

            img = np.array(Image.fromarray(img).resize((self.image_size, self.image_size), Image.BILINEAR))
        if self.cache_images:
            self._cache[k] = img
        return img

    def preload(self, progress: bool = False) -> None:
        """Decode every image now (fills the in-memory cache; useful before forking workers)."""
        it = range(len(self))
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="decoding images", leave=False)
        self.cache_images = True
        for k in it:
            self.load_image(k)

    def _priors(self, i: int, flip: bool) -> tuple[dict[str, np.ndarray], bool]:
        """Priors of manifest row ``i``; returns (priors, already_flipped)."""
        if self.store is None:
            return {}, False
        if flip and self._store_flip_ok:
            try:
                return dict(self.store.get(i, flipped=True)), True
            except (KeyError, NotImplementedError, ValueError):
                self._store_flip_ok = False  # the store has no flipped entries: flip the unflipped ones here
        return dict(self.store.get(i, flipped=False)), False

    def __getitem__(self, item: int | Draw) -> dict[str, torch.Tensor]:
        k = item.index if isinstance(item, Draw) else int(item)
        g = self._generator(item, k)
        i = int(self.ids[k])
        img = self.load_image(k)
        flip = self.transform.sample_flip(g)
        priors, pre_flipped = self._priors(i, flip)
        lm = priors.pop("landmarks", None)
        par = priors.pop("parsing", None)
        image, lm, par = self.transform(img, lm, par, flip=flip, flip_priors=not pre_flipped, generator=g)
        out: dict[str, torch.Tensor] = {
            "image": image,
            "label": torch.tensor(self.labels[k], dtype=torch.int64),
            "index": torch.tensor(i, dtype=torch.int64),
        }
        if lm is not None:
            out["landmarks"] = torch.from_numpy(np.array(lm, dtype=np.float32))
        if par is not None:
            out["parsing"] = torch.from_numpy(np.array(par, dtype=np.int64))
        for key, v in priors.items():
            t = torch.from_numpy(np.array(v))  # a copy: store arrays may be read-only memory maps
            if flip and not pre_flipped and t.ndim >= 2:
                t = t.flip(-1)  # fallback: mirror a feature map spatially (approximation; cache flips instead)
            out[key] = t.float() if t.is_floating_point() else t
        return out


# ----------------------------------------------------------------------------- samplers
def class_balanced_sampler(
    labels: np.ndarray | list[int], num_samples: int | None = None, generator: torch.Generator | None = None
) -> WeightedRandomSampler:
    """The release's imbalanced-dataset sampler: each sample weighted 1 / (count of its class), with replacement.

    Classes are then drawn about uniformly; an epoch has ``num_samples`` (default: the dataset size) draws.
    """
    weights = _balanced_weights(labels)
    return WeightedRandomSampler(weights, num_samples or len(weights), replacement=True, generator=generator)


def _balanced_weights(labels: np.ndarray | list[int]) -> torch.Tensor:
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise ValueError("class_balanced_sampler needs at least one label")
    _, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return torch.as_tensor(1.0 / counts[inv], dtype=torch.double)


class DistributedBalancedSampler(Sampler[int]):
    """Class-balanced sampling, one epoch sequence per ``(seed, epoch)``; under DDP each rank takes a disjoint shard.

    The sequence is ``num_samples`` weighted draws (padded to a multiple of ``num_replicas``) from a generator
    seeded with ``(seed, epoch)``; rank ``r`` takes positions ``r, r + R, r + 2R, ...``. Call :meth:`set_epoch`.
    Outside DDP (one replica) it is a ``WeightedRandomSampler`` whose draws depend on the epoch only (exact resume).
    """

    def __init__(
        self,
        labels: np.ndarray | list[int],
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
        num_samples: int | None = None,
    ) -> None:
        num_replicas, rank = _world(num_replicas, rank)
        self.weights = _balanced_weights(labels)
        self.num_replicas, self.rank, self.seed, self.epoch = num_replicas, rank, seed, 0
        self.total = num_samples or len(self.weights)
        self.per_rank = math.ceil(self.total / num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_sequence(self) -> torch.Tensor:
        """The full draw of this epoch (identical on every rank)."""
        g = torch.Generator().manual_seed(derive_seed(self.seed, SAMPLER_STREAM, self.epoch))
        return torch.multinomial(self.weights, self.per_rank * self.num_replicas, replacement=True, generator=g)

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_sequence()[self.rank :: self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.per_rank


class DistributedShuffleSampler(Sampler[int]):
    """Plain shuffling (``DistributedSampler`` semantics): one permutation per epoch, seeded with ``(seed, epoch)``,
    padded by wrapping to a multiple of ``num_replicas``; rank ``r`` takes positions ``r::R`` (one replica outside
    DDP)."""

    def __init__(self, n: int, num_replicas: int | None = None, rank: int | None = None, seed: int = 0) -> None:
        self.n = n
        self.num_replicas, self.rank = _world(num_replicas, rank)
        self.seed, self.epoch = seed, 0
        self.per_rank = math.ceil(n / self.num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_sequence(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(derive_seed(self.seed, SAMPLER_STREAM, self.epoch))
        perm = torch.randperm(self.n, generator=g)
        pad = self.per_rank * self.num_replicas - self.n
        return torch.cat([perm, perm[:pad]]) if pad else perm

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_sequence()[self.rank :: self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.per_rank


class EpochDraws(Sampler[Draw]):
    """Wraps a training sampler: yields its indices as :class:`Draw` items tagged with the epoch and global slot.

    The epoch travels with each item to the DataLoader workers (also persistent ones, which never see a
    ``set_epoch`` of the main process); the slot ``j * num_replicas + rank`` of the ``j``-th index of this rank is
    the draw's position in the epoch's global sequence. :meth:`set_epoch` is passed on to the wrapped sampler.
    """

    def __init__(self, sampler: Sampler[int]) -> None:
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[Draw]:
        epoch = self.epoch
        world, rank = int(getattr(self.sampler, "num_replicas", 1)), int(getattr(self.sampler, "rank", 0))
        for j, k in enumerate(self.sampler):
            yield Draw(int(k), epoch, j * world + rank)

    def __len__(self) -> int:
        return len(self.sampler)


class ShardSampler(Sampler[int]):
    """Evaluation under DDP: rank ``r`` takes rows ``r, r + R, ...`` in order, no padding (gather by ``index``)."""

    def __init__(self, n: int, num_replicas: int | None = None, rank: int | None = None) -> None:
        self.n = n
        self.num_replicas, self.rank = _world(num_replicas, rank)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.num_replicas))

    def set_epoch(self, epoch: int) -> None:  # interface parity with DistributedSampler
        pass


def _world(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    if num_replicas is None or rank is None:
        import torch.distributed as dist  # heavy import: only when the world is not given

        if dist.is_available() and dist.is_initialized():
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        else:
            num_replicas, rank = num_replicas or 1, rank or 0
    if not 0 <= rank < num_replicas:
        raise ValueError(f"rank={rank} must be in [0, {num_replicas})")
    return int(num_replicas), int(rank)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy, ``random`` and the dataset's fallback augmentation generator from
    the worker's torch seed (itself drawn from the loader's generator), so workers are deterministic. (A
    :class:`FERDataset` with a ``seed`` seeds each draw itself and needs none of it.)"""
    s = torch.initial_seed()
    np.random.seed(s % 2**32)
    random.seed(s)
    info = torch.utils.data.get_worker_info()
    if info is not None and hasattr(info.dataset, "reseed"):
        info.dataset.reseed(s)


# ----------------------------------------------------------------------------- loaders
def collate(batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack a list of sample dicts key by key (same result as the default collate).

    Stacks through numpy (a single-threaded copy): on small, busy CPUs torch's multi-threaded ``stack`` of many
    small tensors spends most of its time synchronising threads.
    """
    out: dict[str, torch.Tensor] = {}
    for key in batch[0]:
        vals = [b[key] for b in batch]
        if any(v.requires_grad for v in vals):
            out[key] = torch.stack(vals)
        else:
            out[key] = torch.from_numpy(np.stack([v.numpy() for v in vals]))  # (B, ...)
    return out


def build_loaders(
    manifest: pd.DataFrame,
    data_cfg: Any,
    batch_size: int,
    seed: int = 0,
    prior_store: Any = None,
    distributed: bool = False,
    eval_batch_size: int | None = None,
    *,
    num_replicas: int | None = None,
    rank: int | None = None,
    cache_images: bool | None = None,
    pin_memory: bool | None = None,
    device: Any = None,
) -> dict[str, DataLoader]:
    """One DataLoader per split of the manifest (keys = split names).

    ``train``: augmented (``data_cfg.hflip``, ``data_cfg.random_erasing``), class-balanced when
    ``data_cfg.balanced_sampler`` (the release), else shuffled; a last batch of size 1 is dropped. Its sampler is a
    :class:`DistributedBalancedSampler` / :class:`DistributedShuffleSampler` (one replica unless ``distributed``)
    inside :class:`EpochDraws`: call ``loader.sampler.set_epoch(epoch)`` before each epoch (``fit`` does); batches
    and augmentations are then a function of (seed, epoch) only (exact resume).
    Other splits: in order, no augmentation, ``eval_batch_size`` (default ``2 * batch_size``); under
    ``distributed`` sharded by :class:`ShardSampler` (no padding).

    Args:
        manifest: the full manifest (index 0..N-1 = prior-cache ids; it is reset if not).
        data_cfg: :class:`orsalib.config.DataConfig` (image_size, balanced_sampler, num_workers, hflip,
            random_erasing).
        batch_size: training batch size.
        seed: seeds the training sampler, the augmentation and the workers.
        prior_store: optional prior store shared by all splits.
        device: the training device; ``data_cfg.num_workers`` is capped so that the workers and the training
            process's threads do not oversubscribe the CPUs (:func:`orsalib.threads.loader_workers`; the batches
            do not depend on the number of workers). Default: CUDA when available.
    """
    if not isinstance(manifest.index, pd.RangeIndex) or manifest.index.start != 0:
        if not np.array_equal(manifest.index.to_numpy(), np.arange(len(manifest))):
            manifest = manifest.reset_index(drop=True)
    eval_bs = eval_batch_size or 2 * batch_size
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    workers = loader_workers(int(getattr(data_cfg, "num_workers", 0)), device)
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    loaders: dict[str, DataLoader] = {}
    for split in sorted(manifest["split"].unique(), key=lambda s: (s != "train", s)):
        part = manifest[manifest["split"] == split]
        train = split == "train"
        ds = FERDataset(
            part,
            data_cfg.image_size,
            prior_store=prior_store,
            train=train,
            hflip=bool(getattr(data_cfg, "hflip", True)),
            random_erasing=float(getattr(data_cfg, "random_erasing", 0.5)),
            cache_images=cache_images,
            seed=seed,
        )
        g = torch.Generator().manual_seed(seed)
        sampler: Any = None
        if train:
            world, r = (num_replicas, rank) if distributed else (1, 0)
            if bool(getattr(data_cfg, "balanced_sampler", True)):
                inner: Sampler[int] = DistributedBalancedSampler(ds.labels, world, r, seed=seed)
            else:
                inner = DistributedShuffleSampler(len(ds), world, r, seed=seed)
            sampler = EpochDraws(inner)
            drop_last = len(sampler) > 1 and len(sampler) % batch_size == 1
            bs = batch_size
        else:
            if distributed:
                sampler = ShardSampler(len(ds), num_replicas, rank)
            drop_last, bs = False, eval_bs
        loaders[split] = DataLoader(
            ds,
            batch_size=bs,
            collate_fn=collate,
            sampler=sampler,
            num_workers=workers,
            drop_last=drop_last,
            pin_memory=pin_memory,
            worker_init_fn=seed_worker,
            generator=g,
            persistent_workers=workers > 0,
        )
    return loaders
