import numpy as np
import pandas as pd
import pytest

from orsalib.config import load_profile
from orsalib.priors.sources import CombinedSource, PriorSource, get_prior_source


class _Stub(PriorSource):
    def __init__(self, name, keys, wid):
        super().__init__()
        self.name, self.keys, self.weights_id = name, keys, wid

    def _compute(self, images, rows):
        b = len(images)
        return {k: np.full((b, 2), float(images[:, 0, 0, 0].mean() if "lm" in k else -1)) for k in self.keys}


def test_combined_source_unites_keys_and_weights():
    a, b = _Stub("a", ("lm_x",), "h1"), _Stub("b", ("parser_y",), "h2")
    c = CombinedSource(a, b)
    assert c.name == "a+b" and c.keys == ("lm_x", "parser_y") and c.weights_id == "h1+h2"
    img = np.zeros((3, 8, 8, 3), np.uint8)
    img[:, 0, 7] = 200  # top-right pixel: after a horizontal flip it becomes the top-left one
    rows = pd.DataFrame({"path": ["x"] * 3})
    out = c.compute(img, rows)
    assert set(out) == {"lm_x", "parser_y"} and out["lm_x"].shape == (3, 2)
    assert out["lm_x"][0, 0] == 0 and c.compute_flipped(img, rows)["lm_x"][0, 0] == 200
    assert a.calls == 2 and b.calls == 2


def test_combined_source_rejects_overlap():
    with pytest.raises(ValueError, match="overlap"):
        CombinedSource(_Stub("a", ("k",), "1"), _Stub("b", ("k",), "2"))


def test_paper_profile_source_needs_both_weight_files(tmp_path):
    cfg = load_profile("paper", {"data.data_root": str(tmp_path), "prior.landmark_weights": str(tmp_path / "lm.pth")})
    assert cfg.prior.source == "mobilefacenet+segface"
    with pytest.raises(FileNotFoundError, match="lm.pth"):
        get_prior_source(cfg.prior, device="cpu")
