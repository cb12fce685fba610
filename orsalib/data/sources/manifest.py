"""The registered dataset adapters (``@register_dataset``, :data:`orsalib.registry.DATASETS`) and the entry points:
:func:`load_manifest` (adapter + validation), :func:`build_source`, :func:`save_manifest`, :func:`read_manifest`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from ...registry import DATASETS, register_dataset
from .. import labels as L
from .common import REQUIRED_COLUMNS, DatasetError
from .fer2013 import load_fer2013, load_ferplus
from .folders import load_affectnet, load_imagefolder, load_occlufer, load_rafdb
from .validate import validate_manifest


# ============================================================================= registered adapters
# One decorated function per dataset, ``adapter(data_cfg, seed=0, cache_dir=None) -> manifest``: ``data_cfg`` is a
# :class:`orsalib.config.DataConfig` (``data_root``, ``num_classes``, ``label_map``; SynthFER's sizes), ``seed`` the
# generation seed of generated datasets, ``cache_dir`` where decoded images may be stored (None = the default
# cache). Extra facts go to ``manifest.attrs``. :func:`build_source` / :func:`load_manifest` then drop contempt for
# 7-class problems and fix dtypes and paths. Metadata (what ``orsa check`` and the docs show):
#   description    one line: what the dataset is, which layouts are read (data/README.md has a tree for each)
#   needs_root     data.data_root is required (False: generated)
#   native_splits  the dataset defines its own train / evaluation split (False: the user's folders decide)
#   emotions       number of emotion classes it is labelled with (7 or 8; None: as the folders say)
#   num_classes    the data.num_classes the name requires (affectnet7 / affectnet8); None: 7 or 8 (7 drops contempt)
#   label_map      data.label_map (folder or id -> emotion) is honoured
#   ground_truth   rows carry ground-truth landmarks and parsing maps (the ``oracle`` prior source works)
@register_dataset(
    "synthfer",
    description="SynthFER, the embedded default: procedurally drawn faces with ground-truth landmarks and parsing "
    "maps, generated on first use (train, valid, valid_occluded)",
    needs_root=False,
    native_splits=True,
    emotions=None,
    num_classes=None,
    label_map=False,
    ground_truth=True,
)
def synthfer_manifest(data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """SynthFER of ``data_cfg`` (sizes, class count, occlusion probability; ``data_root`` "" = the cache folder)."""
    from ..synthfer import synthfer_from_config

    return synthfer_from_config(data_cfg, seed=seed)


#: the metadata every photograph dataset shares (a folder to read, no ground-truth priors)
_PHOTOS: dict[str, Any] = dict(needs_root=True, ground_truth=False)


@register_dataset(
    "rafdb",
    description="RAF-DB basic: native list_patition_label.txt + Image/aligned (train/test), or an ImageFolder",
    native_splits=True, emotions=7, num_classes=None, label_map=True, **_PHOTOS,
)  # fmt: skip
def rafdb_manifest(data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """RAF-DB (:func:`load_rafdb`)."""
    return load_rafdb(data_cfg.data_root, data_cfg.label_map or None)


def _affectnet(data_cfg: Any) -> pd.DataFrame:
    m, info = load_affectnet(data_cfg.data_root, data_cfg.label_map or None)
    m.attrs.update(info)
    return m


@register_dataset(
    "affectnet7",
    description="AffectNet, 7 basic expressions (contempt dropped): training.csv/validation.csv, or an ImageFolder",
    native_splits=True, emotions=8, num_classes=7, label_map=True, **_PHOTOS,
)  # fmt: skip
def affectnet7_manifest(data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """AffectNet-7 (:func:`load_affectnet`; contempt is dropped afterwards)."""
    return _affectnet(data_cfg)


@register_dataset(
    "affectnet8",
    description="AffectNet, 7 basic expressions + contempt: training.csv/validation.csv, or an ImageFolder",
    native_splits=True, emotions=8, num_classes=8, label_map=True, **_PHOTOS,
)  # fmt: skip
def affectnet8_manifest(data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """AffectNet-8 (:func:`load_affectnet`)."""
    return _affectnet(data_cfg)


@register_dataset(
    "occlufer",
    description="Occlu-FER (ORSANet): ImageFolder train/valid (or test) with 8 named classes",
    native_splits=True, emotions=8, num_classes=None, label_map=True, **_PHOTOS,
)  # fmt: skip
def occlufer_manifest(data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """Occlu-FER (:func:`load_occlufer`)."""
    return load_occlufer(data_cfg.data_root, data_cfg.label_map or None)


@register_dataset(
    "fer2013",
    description="FER2013: fer2013.csv (48x48 pixels, decoded to PNG once; Training/PublicTest/PrivateTest) or folders",
    native_splits=True, emotions=7, num_classes=None, label_map=True, **_PHOTOS,
)  # fmt: skip
def fer2013_manifest(data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """FER2013 (:func:`load_fer2013`)."""
    return load_fer2013(data_cfg.data_root, data_cfg.label_map or None, cache_dir)


@register_dataset(
    "ferplus",
    description="FERPlus: fer2013new.csv majority votes joined with fer2013.csv pixels or the FER2013Train/... images",
    native_splits=True, emotions=8, num_classes=None, label_map=False, **_PHOTOS,
)  # fmt: skip
def ferplus_manifest(data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """FERPlus (:func:`load_ferplus`)."""
    m, info = load_ferplus(data_cfg.data_root, cache_dir)
    m.attrs.update(info)
    return m


@register_dataset(
    "imagefolder",
    description="any root/<split>/<class>/ tree (emotion names or aliases as class folders; data.label_map for others)",
    native_splits=False, emotions=None, num_classes=None, label_map=True, **_PHOTOS,
)  # fmt: skip
def imagefolder_manifest(data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """A generic ImageFolder tree (:func:`load_imagefolder`)."""
    return load_imagefolder(data_cfg.data_root, data_cfg.label_map or None)


# ============================================================================= entry points
def _finalize(m: pd.DataFrame, num_classes: int, source: str) -> pd.DataFrame:
    """Drop contempt for 7-class problems, fix dtypes, absolute paths, index 0..N-1."""
    m = m.copy()
    if "source" not in m.columns:
        m["source"] = source
    m["label"] = pd.to_numeric(m["label"], errors="coerce").fillna(-1).astype("int64")
    dropped = 0
    if num_classes == 7:
        contempt = m["label"] == L.EMOTIONS.index("contempt")
        dropped = int(contempt.sum())
        m = m[~contempt]
    m["path"] = [str(Path(p).expanduser().absolute()) for p in m["path"]]
    m = m.reset_index(drop=True)
    m.attrs["dropped_contempt"] = dropped
    return m


def _run_adapter(dataset: str, data_cfg: Any, seed: int = 0, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """Look ``dataset`` up in the registry, check the class count and root it needs, run it, finalize."""
    try:
        entry = DATASETS.entry(dataset)
    except ValueError as e:
        raise DatasetError(str(e)) from None
    num_classes, data_root = data_cfg.num_classes, data_cfg.data_root
    fixed = entry.meta.get("num_classes")
    if fixed is not None and fixed != num_classes:
        others = [n for n in DATASETS.names() if DATASETS.meta(n).get("num_classes") == num_classes]
        alt = f" (or use {' / '.join(others)})" if others else ""
        raise DatasetError(
            f"data.dataset={dataset!r} is a {fixed}-class problem but data.num_classes={num_classes}; "
            f"set data.num_classes={fixed}{alt}"
        )
    if entry.meta.get("needs_root", True) and not data_root:
        raise DatasetError(f"data.dataset={dataset!r} needs data.data_root; see data/README.md")
    m = entry.obj(data_cfg, seed=seed, cache_dir=cache_dir)
    if not isinstance(m, pd.DataFrame):
        raise DatasetError(
            f"the adapter of dataset {dataset!r} returned {type(m).__name__}; expected a manifest DataFrame "
            f"with columns {list(REQUIRED_COLUMNS)}"
        )
    info = dict(m.attrs)
    m = _finalize(m, num_classes, dataset)
    m.attrs.update(info)
    m.attrs["dataset"] = dataset
    m.attrs["data_root"] = str(data_root)
    return m


def build_source(
    dataset: str,
    data_root: str | Path = "",
    *,
    num_classes: int = 7,
    label_map: dict | None = None,
    cache_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Run the adapter of a registered dataset (``orsalib.registry.DATASETS``), without validation.

    SynthFER is built with the :class:`~orsalib.config.DataConfig` defaults here; :func:`load_manifest` takes a
    whole config (its sizes) and validates.

    Raises:
        DatasetError: unknown dataset (the message lists the registered ones), a class count the dataset does not
            have, a missing ``data_root``, or a bad layout.
    """
    from ...config import DataConfig

    cfg = DataConfig(dataset=dataset, data_root=str(data_root or ""), num_classes=num_classes,
                     label_map=dict(label_map or {}))  # fmt: skip
    return _run_adapter(dataset, cfg, cache_dir=cache_dir)


def load_manifest(data_cfg: Any, seed: int = 0, validate: bool = True, **validate_kw: Any) -> pd.DataFrame:
    """The manifest of ``data_cfg.dataset`` (its registered adapter; SynthFER is generated on first use), validated.

    Args:
        data_cfg: an :class:`orsalib.config.DataConfig`.
        seed: SynthFER generation seed.
        validate: run :func:`validate_manifest` with ``on_bad=data_cfg.on_bad``; the report goes to
            ``attrs["validation"]`` (:func:`validation_summary` gives its line, :func:`write_validation_report`
            writes it as ``validation.json``).
        **validate_kw: forwarded to :func:`validate_manifest` (``on_overlap``, ``cache_file``, ...).

    Raises:
        DatasetError: unknown dataset, bad layout, or (``on_bad="raise"``) any problem found by the validation.
    """
    m = _run_adapter(data_cfg.dataset, data_cfg, seed=seed)
    if validate:
        validate_kw.setdefault("num_classes", data_cfg.num_classes)
        m, report = validate_manifest(m, on_bad=data_cfg.on_bad, **validate_kw)
        report.update(dataset=data_cfg.dataset, data_root=str(data_cfg.data_root))
    return m


def save_manifest(manifest: pd.DataFrame, path: str | Path, report: dict | None = None) -> Path:
    """Write the manifest CSV atomically; the validation report (given or in ``attrs``) goes beside it as
    ``<stem>.validation.json``."""
    from ...utils import atomic_write_json, atomic_write_text

    path = Path(path)
    atomic_write_text(path, manifest.to_csv(index=False))
    report = report if report is not None else manifest.attrs.get("validation")
    if report is not None:
        atomic_write_json(path.with_name(path.stem + ".validation.json"), report)
    return path


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest CSV written by :func:`save_manifest` (checks the contract columns)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"manifest {str(path)!r} does not exist; build it with orsalib.data.sources.load_manifest")
    m = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = [c for c in REQUIRED_COLUMNS if c not in m.columns]
    if missing:
        raise DatasetError(f"manifest {path} lacks columns {missing}; required: {list(REQUIRED_COLUMNS)}")
    m["label"] = m["label"].astype("int64")
    return m


def oracle_reader(manifest: pd.DataFrame, root: str | Path | None = None):
    """Ground-truth priors of a SynthFER-style manifest: ``read(row) -> (landmarks (68, 2) | None, parsing | None)``.

    Landmarks come from ``<root>/landmarks.npy`` at ``landmarks_index`` (root: given, else the folder above the
    ``parsing/`` folder of ``parsing_path``, else three levels above the image); parsing maps from
    ``parsing_path``. Rows or manifests without these columns give ``None``.
    """
    lms = None
    if "landmarks_index" in manifest.columns and len(manifest):
        candidates = [Path(root)] if root else []
        if "parsing_path" in manifest.columns:
            candidates.append(Path(str(manifest["parsing_path"].iloc[0])).parent.parent)
        candidates.append(Path(str(manifest["path"].iloc[0])).parents[2])
        for c in candidates:
            if (c / "landmarks.npy").is_file():
                lms = np.load(c / "landmarks.npy", mmap_mode="r")
                break

    def read(i: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        lm = par = None
        if lms is not None:
            k = manifest.at[i, "landmarks_index"]
            if pd.notna(k) and 0 <= int(k) < len(lms):
                lm = np.array(lms[int(k)], dtype=np.float32)
        if "parsing_path" in manifest.columns:
            pp = manifest.at[i, "parsing_path"]
            if isinstance(pp, str) and pp and os.path.isfile(pp):
                with Image.open(pp) as im:
                    par = np.array(im)
        return lm, par

    return read
