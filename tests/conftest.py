"""Test-session setup: outputs go to a private temp folder so tests never touch a user's outputs/."""

import os
import tempfile

os.environ.setdefault("ORSA_OUTPUTS_DIR", tempfile.mkdtemp(prefix="orsa-test-outputs-"))
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest  # noqa: E402

from orsalib.paths import shared_path  # noqa: E402


@pytest.fixture
def shared():
    """The ../shared development folder, or skip."""
    p = shared_path()
    if p is None:
        pytest.skip("../shared is not present (development data); skipping")
    return p
