"""Frozen priors of ORSANet (paper Sec. 3.2): sources (oracle, MobileFaceNet-68, SegFace, landmark rasterisation)
and the on-disk prior cache. Sources are registered by name (``orsalib.registry.PRIOR_SOURCES``); see
:mod:`orsalib.priors.sources` for cached vs released prior modes."""

from .cache import PriorCache, PriorStore
from .sources import PriorSource, get_prior_source

__all__ = ["PriorCache", "PriorSource", "PriorStore", "get_prior_source"]
