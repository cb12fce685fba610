"""Dataset adapters -> one manifest, and its validation before training.

Every adapter turns a dataset layout on disk into the manifest of docs/contracts.md: one row per image with
``path`` (absolute), ``label`` (canonical id, :data:`orsalib.data.labels.EMOTIONS`), ``label_name``, ``split``
(``train`` | ``valid`` | ``test`` | evaluation-only splits) and ``source``. The accepted layouts are described,
with a tree for each, in ``data/README.md``.

Adapters are registered by name (``@register_dataset``, :data:`orsalib.registry.DATASETS`; the built-in ones and
their metadata are in the "registered adapters" section): adding a dataset is one decorated function.
:func:`load_manifest` runs the adapter of ``DataConfig.dataset`` and validates the result with
:func:`validate_manifest` (missing/zero-byte/unreadable files, unknown labels, empty classes, duplicated paths,
train/evaluation overlap by content hash). By default every problem is collected and ONE :class:`DatasetError`
lists the first 20 of them; with ``on_bad="skip"`` the bad rows are dropped and listed in the report
(``manifest.attrs["validation"]``; :func:`validation_summary` is its one line for stdout and
:func:`write_validation_report` writes it as ``validation.json`` into a run folder), together with the images
whose content appears in two splits. Malformed label files (CSV, list files) raise at once, naming file and line.

Files: :mod:`.common` (columns, split names, :class:`DatasetError`, the ImageFolder scan), :mod:`.folders` (RAF-DB,
AffectNet, Occlu-FER, ImageFolder), :mod:`.fer2013` (FER2013, FERPlus), :mod:`.validate` (the validator and its
report), :mod:`.manifest` (the registered adapters and the entry points).
"""

from __future__ import annotations

from .common import (
    EVAL_SPLITS,
    MAX_LISTED_PROBLEMS,
    MAX_REPORTED_SKIPPED,
    REQUIRED_COLUMNS,
    SPLIT_ALIASES,
    DatasetError,
    eval_split,
    scan_imagefolder,
)
from .fer2013 import ferplus_majority, load_fer2013, load_ferplus
from .folders import filter_by_list, load_affectnet, load_imagefolder, load_occlufer, load_rafdb
from .manifest import (
    affectnet7_manifest,
    affectnet8_manifest,
    build_source,
    fer2013_manifest,
    ferplus_manifest,
    imagefolder_manifest,
    load_manifest,
    occlufer_manifest,
    oracle_reader,
    rafdb_manifest,
    read_manifest,
    save_manifest,
    synthfer_manifest,
)
from .validate import (
    inspect_files,
    manifest_result,
    validate_manifest,
    validation_summary,
    validation_table,
    write_validation_report,
)

__all__ = [
    "DatasetError",
    "EVAL_SPLITS",
    "MAX_LISTED_PROBLEMS",
    "MAX_REPORTED_SKIPPED",
    "REQUIRED_COLUMNS",
    "SPLIT_ALIASES",
    "affectnet7_manifest",
    "affectnet8_manifest",
    "build_source",
    "eval_split",
    "fer2013_manifest",
    "ferplus_majority",
    "ferplus_manifest",
    "filter_by_list",
    "imagefolder_manifest",
    "inspect_files",
    "load_affectnet",
    "load_fer2013",
    "load_ferplus",
    "load_imagefolder",
    "load_manifest",
    "load_occlufer",
    "load_rafdb",
    "manifest_result",
    "occlufer_manifest",
    "oracle_reader",
    "rafdb_manifest",
    "read_manifest",
    "save_manifest",
    "scan_imagefolder",
    "synthfer_manifest",
    "validate_manifest",
    "validation_summary",
    "validation_table",
    "write_validation_report",
]
