"""Frozen priors of ORSANet (paper Sec. 3.2): sources (oracle, MobileFaceNet-68, SegFace, landmark rasterisation)
and the on-disk prior cache. See :mod:`orsalib.priors.sources` for cached vs released prior modes."""

from .cache import PriorCache, PriorStore
from .sources import SOURCE_NAMES, InModelPriors, PriorSource, get_prior_source

__all__ = ["SOURCE_NAMES", "InModelPriors", "PriorCache", "PriorSource", "PriorStore", "get_prior_source"]
