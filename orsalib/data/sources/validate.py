"""Validation of a manifest before training: missing, empty or unreadable files, unknown labels, empty classes,
duplicated paths, train/evaluation overlap by content; the report and its one-line summary.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import io
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from .. import labels as L
from .common import (
    _GRAY_MODES,
    _SIXTEEN_BIT_MODES,
    MAX_LISTED_PROBLEMS,
    MAX_REPORTED_SKIPPED,
    REQUIRED_COLUMNS,
    DatasetError,
)


# ============================================================================= validation
def _inspect(path: str) -> dict[str, Any]:
    """Stat, hash and fully decode one file (never raises)."""
    info: dict[str, Any] = {"error": None, "kind": None, "mode": None, "size": 0, "sha1": None}
    try:
        st = os.stat(path)
    except OSError:
        info.update(kind="missing_file", error="missing file; expected an image there")
        return info
    info["size"] = st.st_size
    info["mtime_ns"] = st.st_mtime_ns
    if st.st_size == 0:
        info.update(kind="zero_byte", error="zero-byte file; expected an image")
        return info
    try:
        with open(path, "rb") as f:
            data = f.read()
        info["sha1"] = hashlib.sha1(data).hexdigest()
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # decodes every pixel: truncated files fail here
            info["mode"] = img.mode
            info["width"], info["height"] = img.size
    except Exception as e:  # noqa: BLE001 - any decoder failure is this file's problem
        info.update(kind="unreadable", error=f"cannot decode ({type(e).__name__}: {e}); expected a complete image")
    return info


_CHECK_CACHE_VERSION = 1
_CHECK_FIELDS = ("size", "mtime_ns", "sha1", "mode", "width", "height")


def _default_check_cache() -> Path:
    from ...paths import CACHE_DIR

    return CACHE_DIR / "image_checks.json"


def _load_check_cache(path: Path | None) -> dict[str, dict[str, Any]]:
    """Results of earlier checks of good files, ``{path: info}``, from a JSON file (never unpickled: the outputs
    folder may be shared). A damaged or foreign file is ignored (and rewritten)."""
    if path is None or not path.is_file():
        return {}
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if d.get("version") != _CHECK_CACHE_VERSION or tuple(d.get("fields", ())) != _CHECK_FIELDS:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for p, vals in d["files"].items():
            if not isinstance(vals, list) or len(vals) != len(_CHECK_FIELDS):
                continue
            info = dict(zip(_CHECK_FIELDS, vals))
            if not all(isinstance(info[k], t) for k, t in (("size", int), ("mtime_ns", int), ("sha1", str))):
                continue
            out[str(p)] = {"error": None, "kind": None, **info}
        return out
    except (OSError, ValueError, TypeError, AttributeError, KeyError):  # a damaged cache is rebuilt
        return {}


def _save_check_cache(path: Path, cache: dict[str, dict[str, Any]]) -> None:
    from ...utils import atomic_write_text

    payload = {
        "version": _CHECK_CACHE_VERSION,
        "fields": list(_CHECK_FIELDS),
        "files": {p: [info.get(k) for k in _CHECK_FIELDS] for p, info in cache.items()},
    }
    try:
        atomic_write_text(path, json.dumps(payload, separators=(",", ":")))
    except OSError:
        pass  # the cache is an optimisation only


def inspect_files(
    paths: list[str], cache_file: str | Path | None = "auto", workers: int | None = None, progress: bool = False
) -> list[dict[str, Any]]:
    """:func:`_inspect` every path, reusing results cached by (path, mtime, size); threads for the decoding.

    The cache (``cache_file``; ``"auto"`` = ``outputs/cache/image_checks.json``) is JSON and holds good files only.
    """
    cache_path = _default_check_cache() if cache_file == "auto" else (Path(cache_file) if cache_file else None)
    cache = _load_check_cache(cache_path)
    out: list[dict | None] = [None] * len(paths)
    todo: list[int] = []
    for i, p in enumerate(paths):
        hit = cache.get(p)
        if hit is not None:
            try:
                st = os.stat(p)
                if st.st_size == hit["size"] and st.st_mtime_ns == hit["mtime_ns"]:
                    out[i] = hit
                    continue
            except OSError:
                pass
        todo.append(i)
    if todo:
        n = workers or min(8, (os.cpu_count() or 1) + 2)
        it: Any
        with cf.ThreadPoolExecutor(max_workers=n) as ex:
            it = ex.map(_inspect, [paths[i] for i in todo], chunksize=64)
            if progress:
                from ...utils import progress_bar

                it = progress_bar(it, total=len(todo), desc="checking images", unit="img")
            for i, info in zip(todo, it):
                out[i] = info
                if info["kind"] is None:
                    cache[paths[i]] = info
                else:
                    cache.pop(paths[i], None)
        if cache_path is not None:
            _save_check_cache(cache_path, cache)
    return out  # type: ignore[return-value]


def _format_problems(problems: list[dict], total_rows: int) -> str:
    lines = [
        f"{len(problems)} problem(s) in a manifest of {total_rows} rows "
        f"(first {min(len(problems), MAX_LISTED_PROBLEMS)} shown):"
    ]
    for p in problems[:MAX_LISTED_PROBLEMS]:
        lines.append(f"  - {p['path']}: {p['detail']}")
    kinds = Counter(p["kind"] for p in problems)
    lines.append("  by kind: " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())))
    lines.append("Fix the files, or set data.on_bad='skip' to drop the bad rows (counts go to the validation report).")
    return "\n".join(lines)


def validate_manifest(
    manifest: pd.DataFrame,
    on_bad: str = "raise",
    *,
    num_classes: int | None = None,
    check_images: bool = True,
    on_overlap: str = "warn",
    require_all_classes: bool = True,
    cache_file: str | Path | None = "auto",
    progress: bool = False,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Check a manifest before training; return the (possibly filtered) manifest and a report.

    Problems (rows): ``missing_file``, ``zero_byte``, ``unreadable`` (PIL fully decodes every image, so
    truncated files are caught), ``unknown_label`` (not in ``0..num_classes-1``), ``duplicate_path`` (second and
    later occurrences), ``overlap`` (a training image with the same content, sha1, as an evaluation image; the
    training copy is the bad row so the benchmark's test set stays intact). Dataset-level: ``empty_class`` (a
    class without training images). Counted but allowed (converted to RGB on load): grayscale, palette, RGBA,
    16-bit images.

    Args:
        manifest: the manifest (contract columns).
        on_bad: ``"raise"``: one :class:`DatasetError` listing the first 20 problems and the total;
            ``"skip"``: drop the bad rows and count them in the report.
        num_classes: 7 or 8; ``None`` = 8 if any label is 7, else 7.
        check_images: open and decode every file (``False``: only check that files exist).
        on_overlap: ``"warn"`` (default: count in the report; real benchmarks such as FER2013 ship known
            train/test duplicates, and dropping them would change the benchmark), ``"raise"`` or ``"skip"``
            (treated like the other problems).
        require_all_classes: an empty training class is a problem (``raise``) / a warning (``skip``).
        cache_file: JSON file of per-file check results keyed by (path, mtime, size); ``"auto"`` =
            ``outputs/cache/image_checks.json``, ``None`` = no cache.
        progress: show a progress bar while decoding.

    Returns:
        (manifest with a ``sha1`` column and index 0..N-1, report dict), the report also in the manifest's
        ``attrs["validation"]``: ``split_counts``, ``class_counts`` (split -> class -> images), ``skipped`` (the
        dropped files with split, kind and reason, the first 1000; ``skipped_total``, ``skipped_by_kind``),
        ``cross_split_duplicates`` (contents found in two or more splits; ``cross_split_pairs`` such as
        ``{"train~valid": 3}``, ``cross_split_examples``), ``converted_to_rgb``, ``warnings``.
        :func:`validation_summary` makes it one line,
        :func:`write_validation_report` writes it.
    """
    if on_bad not in ("raise", "skip"):
        raise ValueError(f"on_bad={on_bad!r} is not allowed; choose 'raise' or 'skip'")
    if on_overlap not in ("warn", "raise", "skip"):
        raise ValueError(f"on_overlap={on_overlap!r} is not allowed; choose 'warn', 'raise' or 'skip'")
    missing_cols = [c for c in REQUIRED_COLUMNS if c not in manifest.columns]
    if missing_cols:
        raise DatasetError(f"the manifest lacks columns {missing_cols}; required: {list(REQUIRED_COLUMNS)}")
    m = manifest.reset_index(drop=True).copy()
    n_in = len(m)
    labels_num = pd.to_numeric(m["label"], errors="coerce").fillna(-1).astype(int)
    if num_classes is None:
        num_classes = 8 if (labels_num == 7).any() else 7
    names = L.emotions(num_classes)
    problems: list[dict] = []

    def add(i: int, kind: str, detail: str) -> None:
        problems.append(
            {
                "row": int(i),
                "path": str(m.at[i, "path"]),
                "split": str(m.at[i, "split"]),
                "kind": kind,
                "detail": detail,
            }
        )

    bad_label = (labels_num < 0) | (labels_num >= num_classes)
    for i in np.flatnonzero(bad_label.to_numpy()):
        add(
            i,
            "unknown_label",
            f"unknown label {m.at[i, 'label_name']!r} (id {m.at[i, 'label']}); expected one "
            f"of {list(names)} (folder names may need data.label_map)",
        )
    dup = m["path"].duplicated(keep="first")
    for i in np.flatnonzero(dup.to_numpy()):
        add(i, "duplicate_path", "listed more than once; expected each image once")

    converted: Counter = Counter()
    sha1 = [None] * n_in
    if check_images:
        infos = inspect_files([str(p) for p in m["path"]], cache_file=cache_file, progress=progress)
        for i, info in enumerate(infos):
            if info["kind"] is not None:
                add(i, info["kind"], info["error"])
                continue
            sha1[i] = info["sha1"]
            mode = info["mode"]
            if mode in _GRAY_MODES:
                converted["grayscale"] += 1
            elif mode in _SIXTEEN_BIT_MODES:
                converted["16bit"] += 1
            elif mode in ("RGBA", "PA") or mode == "LA":
                converted["alpha"] += 1
            elif mode == "P":
                converted["palette"] += 1
            elif mode != "RGB":
                converted[f"mode_{mode}"] += 1
    else:
        for i, p in enumerate(m["path"]):
            if not os.path.isfile(p):
                add(i, "missing_file", "missing file; expected an image there")
    m["sha1"] = sha1

    # Train / evaluation overlap by content.
    overlap_pairs: list[dict] = []
    if check_images:
        is_train = (m["split"] == "train").to_numpy()
        eval_hash: dict[str, int] = {}
        for i in np.flatnonzero(~is_train):
            if sha1[i] is not None:
                eval_hash.setdefault(sha1[i], int(i))
        for i in np.flatnonzero(is_train):
            j = eval_hash.get(sha1[i]) if sha1[i] is not None else None
            if j is not None:
                overlap_pairs.append(
                    {
                        "train": str(m.at[i, "path"]),
                        "eval": str(m.at[j, "path"]),
                        "eval_split": str(m.at[j, "split"]),
                        "row": int(i),
                    }
                )
        if on_overlap != "warn":
            for o in overlap_pairs:
                add(
                    o["row"],
                    "overlap",
                    f"same content (sha1) as {o['eval_split']} image {o['eval']}; a training "
                    "image must not appear in an evaluation split",
                )

    bad_rows = sorted({p["row"] for p in problems})
    kept = m.drop(index=bad_rows)
    counts = {
        str(s): {
            names[c]: int(n)
            for c, n in g["label"].astype(int).value_counts().sort_index().items()
            if 0 <= c < num_classes
        }
        for s, g in kept.groupby("split", sort=True)
    }
    empty = {s: [n for n in names if n not in c] for s, c in counts.items()}
    empty = {s: v for s, v in empty.items() if v}
    warnings: list[str] = []
    if "train" not in counts:
        warnings.append("no 'train' split")
    if require_all_classes and "train" in empty:
        msg = f"classes without training images: {empty['train']} (num_classes={num_classes})"
        if on_bad == "raise":
            problems.append(
                {
                    "row": -1,
                    "path": "<dataset>",
                    "split": "train",
                    "kind": "empty_class",
                    "detail": msg + "; expected every class in train/ (or set data.num_classes)",
                }
            )
        else:
            warnings.append(msg)
    for s, v in empty.items():
        if s != "train":
            warnings.append(f"split {s!r} has no images of {v}")
    if overlap_pairs and on_overlap == "warn":
        warnings.append(f"{len(overlap_pairs)} training image(s) have the same content as an evaluation image")

    report: dict[str, Any] = {
        "rows_in": n_in,
        "num_classes": num_classes,
        "on_bad": on_bad,
        "checked_images": check_images,
        "problems_total": len(problems),
        "problems_by_kind": dict(Counter(p["kind"] for p in problems)),
        "problems": problems[:200],
        "converted_to_rgb": dict(converted),
        "overlap_train_eval": len(overlap_pairs),
        "overlap_examples": overlap_pairs[:20],
        "duplicate_paths": int(dup.sum()),
        "empty_classes": empty,
        "warnings": warnings,
    }
    if problems and on_bad == "raise":
        raise DatasetError(_format_problems(problems, n_in))
    kept = kept.reset_index(drop=True)
    skipped = [{k: p[k] for k in ("path", "split", "kind", "detail")} for p in problems if p["row"] >= 0]
    report.update(
        rows_out=len(kept),
        dropped=n_in - len(kept),
        split_counts={str(s): int(n) for s, n in kept["split"].value_counts().sort_index().items()},
        class_counts=counts,
        skipped=skipped[:MAX_REPORTED_SKIPPED],  # pandas copies attrs with every frame: the list is capped
        skipped_total=len(skipped),
        skipped_by_kind=dict(Counter(p["kind"] for p in skipped)),
        **_cross_split_duplicates(kept),
    )
    kept.attrs = dict(manifest.attrs)
    kept.attrs["validation"] = report
    return kept, report


def _cross_split_duplicates(m: pd.DataFrame, examples: int = 20) -> dict[str, Any]:
    """Images with the same content (sha1) in two or more splits of ``m``: count, count per split pair, examples."""
    has = m[m["sha1"].notna()] if "sha1" in m.columns else m.iloc[:0]
    if has.empty:
        return {"cross_split_duplicates": 0, "cross_split_pairs": {}, "cross_split_examples": []}
    n_splits = has.groupby("sha1")["split"].nunique()
    shared = n_splits[n_splits > 1].index
    groups = has[has["sha1"].isin(shared)].groupby("sha1", sort=False)
    pairs: Counter = Counter()
    ex: list[dict[str, Any]] = []
    for sha, g in groups:
        splits = sorted(g["split"].astype(str).unique())
        for a_i, a in enumerate(splits):
            for b in splits[a_i + 1 :]:
                pairs[f"{a}~{b}"] += 1
        if len(ex) < examples:
            paths = {s: sorted(g.loc[g["split"] == s, "path"].astype(str)) for s in splits}
            ex.append({"sha1": str(sha), "paths": paths})
    return {"cross_split_duplicates": len(shared), "cross_split_pairs": dict(sorted(pairs.items())),
            "cross_split_examples": ex}  # fmt: skip


def validation_table(report: dict[str, Any]) -> pd.DataFrame:
    """The validation report as an ``item, value`` table (images, dropped, problems, train/eval overlap, RGB
    conversions, warnings): notebook 10's summary."""
    return pd.DataFrame({"item": ["images", "dropped (on_bad=skip)", "problems", "train/eval content overlap",
                                  "converted to RGB", "warnings"],
                         "value": [report["rows_out"], report["dropped"], report["problems_total"],
                                   report["overlap_train_eval"], sum(report["converted_to_rgb"].values()),
                                   "; ".join(report["warnings"]) or "none"]})  # fmt: skip


def manifest_result(manifest: pd.DataFrame, dataset: str) -> dict[str, Any]:
    """The headline numbers of a validated manifest (``attrs["validation"]``): images per split, classes, problems,
    dropped rows, train/eval overlap and, when tagged, the occluded fraction of the training split."""
    report = manifest.attrs["validation"]
    out: dict[str, Any] = {"dataset": dataset, "images": int(len(manifest)),
                           **{f"images_{s}": int(n) for s, n in manifest.groupby("split").size().items()},
                           "classes": int(manifest["label"].nunique()), "problems": int(report["problems_total"]),
                           "dropped": int(report["dropped"]), "overlap_train_eval": int(report["overlap_train_eval"])}
    if "occluded" in manifest.columns:
        out["occluded_fraction_train"] = round(float(manifest.loc[manifest["split"] == "train", "occluded"].mean()), 4)
    return out


def validation_summary(report: dict[str, Any]) -> str:
    """One line for stdout: images per split, files skipped (by reason), images shared across splits, warnings."""
    splits = report.get("split_counts") or {s: sum(c.values()) for s, c in report.get("class_counts", {}).items()}
    name = report.get("dataset", "data")
    line = f"{name}: {sum(splits.values())} images (" + ", ".join(f"{s} {n}" for s, n in splits.items()) + ")"
    line += f", {report.get('num_classes', '?')} classes"
    skipped = report.get("skipped_by_kind") or {}
    if skipped:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
        line += f"; skipped {sum(skipped.values())} file(s) ({kinds})"
    dup = report.get("cross_split_duplicates", 0)
    if dup:
        pairs = ", ".join(f"{k} {v}" for k, v in report.get("cross_split_pairs", {}).items())
        line += f"; {dup} image(s) with the same content in two splits ({pairs})"
    if report.get("converted_to_rgb"):
        line += f"; {sum(report['converted_to_rgb'].values())} converted to RGB on load"
    other = [w for w in report.get("warnings", []) if "same content" not in w]
    if other:
        line += f"; {len(other)} warning(s): " + "; ".join(other[:3])
    return line


def write_validation_report(manifest: pd.DataFrame | dict[str, Any], folder: str | Path,
                            name: str = "validation.json") -> Path:  # fmt: skip
    """Write the validation report of ``manifest`` (``attrs["validation"]``, or a report dict) as
    ``<folder>/validation.json``: counts per split and class, skipped files with their reasons, images with the same
    content in two splits, images converted to RGB, warnings.

    A manifest loaded without validation gets a report of its counts only (``"validated": false``).
    """
    from ...utils import atomic_write_json

    if isinstance(manifest, dict):
        report = dict(manifest)
    elif manifest.attrs.get("validation") is not None:
        report = dict(manifest.attrs["validation"])
    else:
        counts = {
            str(s): {str(n): int(c) for n, c in g["label_name"].value_counts().sort_index().items()}
            for s, g in manifest.groupby("split", sort=True)
        }
        report = {"validated": False, "rows_out": len(manifest), "class_counts": counts,
                  "split_counts": {s: sum(c.values()) for s, c in counts.items()}}  # fmt: skip
    if not isinstance(manifest, dict):
        for key in ("dataset", "data_root"):
            if key in manifest.attrs:
                report.setdefault(key, manifest.attrs[key])
    report.setdefault("validated", True)
    return atomic_write_json(Path(folder) / name, report)
