"""House style is checked, not hoped for: ruff over the library, tests and benchmarks (pyproject settings)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orsalib.paths import REPO_ROOT


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e .[dev])")
    proc = subprocess.run([ruff, "check", "--output-format", "concise", "orsalib", "tests", "benchmarks"],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
