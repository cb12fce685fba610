"""``make lab`` starts JupyterLab as a user and as root (where it needs --allow-root)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("uid, allow_root", [("0", True), ("1000", False)])
def test_make_lab_allows_root_only_for_root(tmp_path, uid, allow_root):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (fake / "id").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(["make", "-n", "-o", ".venv/.installed", "lab"], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if "jupyter lab" in x)
    assert ("--allow-root" in line) == allow_root, line
