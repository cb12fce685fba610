"""Frozen priors of ORSANet (paper Sec. 3.2): sources (oracle, MobileFaceNet-68, SegFace, landmark rasterisation)
and the on-disk prior cache. Sources are registered by name (``orsalib.registry.PRIOR_SOURCES``); see
:mod:`orsalib.priors.sources` for cached vs released prior modes. Importing the package imports no torch: the
names below load their module on first use."""

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("PriorCache", "PriorStore"):
        from . import cache

        return getattr(cache, name)
    if name in ("PriorSource", "get_prior_source"):
        from . import sources

        return getattr(sources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PriorCache", "PriorSource", "PriorStore", "get_prior_source"]
