"""String registries, timm style, for everything a user adds: datasets, prior sources, occluders.

Adding one is one decorated function (or class) in one file::

    from orsalib.registry import register_dataset

    @register_dataset("mydata", description="my lab's faces, folder per emotion", needs_root=True)
    def load_mydata(data_cfg, seed=0, cache_dir=None):  # -> manifest DataFrame (orsalib.data.sources)
        return scan_imagefolder(data_cfg.data_root, "mydata")

What each registry holds, and its metadata keys, is described where the built-in entries live:
datasets: ``adapter(data_cfg, seed=0, cache_dir=None) -> manifest`` (:mod:`orsalib.data.sources`);
prior sources: a ``PriorSource`` subclass or ``factory(prior_cfg, device) -> PriorSource``
(:mod:`orsalib.priors.sources`, :mod:`orsalib.priors.detected`); occluders: ``painter(canvas, rng, identity)``
(:mod:`orsalib.data.synthfer`).

Each registry knows the module(s) that hold its built-in entries (``providers``) and imports them the first time a
name is looked up, so :mod:`orsalib.config` can validate names against the registry without importing torch-heavy
modules at import time, and without an import arrow from the bottom of the package to the top.
Models are registered the same way (:data:`orsalib.models._registry.MODELS`).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Entry:
    """One registered thing: its name, the object, and free-form metadata (``description`` at least)."""

    name: str
    obj: Any
    meta: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Name -> :class:`Entry`, with lazy loading of the built-in providers and did-you-mean errors.

    Args:
        kind: what is registered ("dataset", "prior source", "occluder"), for messages.
        providers: modules whose import registers the built-in entries.
    """

    def __init__(self, kind: str, providers: tuple[str, ...] = ()):
        self.kind = kind
        self.providers = providers
        self._entries: dict[str, Entry] = {}
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # before the imports: a provider registering its entries calls back here
        try:
            for mod in self.providers:
                importlib.import_module(mod)
        except BaseException:
            self._loaded = False  # a failed provider import is raised again on the next lookup, not hidden
            raise

    def register(self, name: str, **meta: Any) -> Callable[[Any], Any]:
        """Decorator: register the decorated object under ``name`` with metadata ``meta``."""

        def deco(obj: Any) -> Any:
            if getattr(obj, "__module__", None) not in self.providers:
                # built-in entries first: a clash with one of them is caught, their order is kept. A provider's own
                # entries load nothing: a provider importing another (detected -> sources) keeps the listed order.
                self._load()
            old = self._entries.get(name)
            if (
                old is not None
                and old.obj is not obj
                and getattr(old.obj, "__qualname__", None) != getattr(obj, "__qualname__", object())
            ):
                raise KeyError(f"{self.kind} {name!r} is already registered (by {old.obj!r})")
            self._entries[name] = Entry(name, obj, dict(meta))
            return obj

        return deco

    def unregister(self, name: str) -> Entry:
        """Remove ``name`` and return its entry (tests, notebooks that redefine an entry)."""
        self._load()
        if name not in self._entries:
            raise KeyError(f"{self.kind} {name!r} is not registered")
        return self._entries.pop(name)

    def entries(self) -> list[Entry]:
        """Every entry, in registration order (name, object, metadata: what ``orsa check`` and the docs list)."""
        self._load()
        return list(self._entries.values())

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        self._load()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def entry(self, name: str) -> Entry:
        """The entry of ``name``; a ValueError naming the allowed choices (and close matches) otherwise."""
        self._load()
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), list(self._entries), n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise ValueError(f"unknown {self.kind} {name!r}.{hint} Registered: {list(self._entries)}")
        return self._entries[name]

    def get(self, name: str) -> Any:
        """The registered object of ``name`` (see :meth:`entry` for the error)."""
        return self.entry(name).obj

    def meta(self, name: str) -> dict[str, Any]:
        """A copy of the metadata of ``name``."""
        return dict(self.entry(name).meta)


DATASETS = Registry("dataset", providers=("orsalib.data.sources",))
PRIOR_SOURCES = Registry("prior source", providers=("orsalib.priors.sources", "orsalib.priors.detected"))
OCCLUDERS = Registry("occluder", providers=("orsalib.data.synthfer.occluders",))

register_dataset = DATASETS.register
register_prior_source = PRIOR_SOURCES.register
register_occluder = OCCLUDERS.register

__all__ = [
    "DATASETS",
    "Entry",
    "OCCLUDERS",
    "PRIOR_SOURCES",
    "Registry",
    "register_dataset",
    "register_occluder",
    "register_prior_source",
]
