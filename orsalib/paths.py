"""Where things live. Resolved from this file, never from the working directory.

Environment overrides (for users who keep data or outputs elsewhere):
``ORSA_DATA_DIR``, ``ORSA_OUTPUTS_DIR``, ``ORSA_SHARED_DIR``.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR: Path = Path(__file__).resolve().parent
REPO_ROOT: Path = PACKAGE_DIR.parent
NOTEBOOKS_DIR: Path = REPO_ROOT / "notebooks"
DATA_DIR: Path = Path(os.environ.get("ORSA_DATA_DIR", REPO_ROOT / "data")).resolve()
OUTPUTS_DIR: Path = Path(os.environ.get("ORSA_OUTPUTS_DIR", REPO_ROOT / "outputs")).resolve()
CACHE_DIR: Path = OUTPUTS_DIR / "cache"
# Development material that sits beside a checkout (real faces, weights, reference tensors). Optional.
SHARED_DIR: Path = Path(os.environ.get("ORSA_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()


def run_dir(run_name: str, create: bool = True) -> Path:
    """The output folder of one run: ``outputs/<run_name>/`` (created unless ``create=False``)."""
    if not run_name or any(c in run_name for c in "/\\") or run_name in {".", ".."}:
        raise ValueError(f"run_name must be a plain folder name (no slashes), got {run_name!r}")
    d = OUTPUTS_DIR / run_name
    if create:
        d.mkdir(parents=True, exist_ok=True)
    return d


def shared_path(*parts: str) -> Path | None:
    """A path under ``../shared`` if it exists, else ``None`` (tests skip on ``None``)."""
    p = SHARED_DIR.joinpath(*parts)
    return p if p.exists() else None
