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


@pytest.fixture(scope="module")
def one_thread():
    """Small CPU workloads: one intra-op thread (avoids OpenMP oversubscription on shared CI machines); a module
    asks for it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
