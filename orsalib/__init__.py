"""ORSA workbook library: occlusion-robust facial expression recognition (ORSANet, RAN, DARELoss).

Headless runs: with the environment variable ``ORSA_HEADLESS=1`` (``orsa reproduce`` sets it for the papermill
kernels) progress bars are plain text (``tqdm.auto`` is pointed at the text ``tqdm`` before any module of the
library imports it), because widget bars in an executed notebook stay frozen at 0 % once the kernel is gone; the
notebooks also show static snapshots instead of interactive widgets.
"""

import os

__version__ = "0.1.0"

HEADLESS_ENV = "ORSA_HEADLESS"


def headless() -> bool:
    """True in a headless run (``ORSA_HEADLESS`` set to anything but "", "0", "false", "no")."""
    return os.environ.get(HEADLESS_ENV, "").strip().lower() not in ("", "0", "false", "no")


def use_plain_progress() -> None:
    """Make ``tqdm.auto`` / ``tqdm.autonotebook`` a plain-text tqdm suited to a notebook file (idempotent).

    Modules that run ``from tqdm.auto import tqdm`` afterwards get text bars; the library's modules all import it
    after this package's ``__init__``. The bars redraw at most every 10 s (``TQDM_MININTERVAL`` overrides), in ASCII,
    on one line (nested bars share it: no cursor-movement escapes end up in the executed notebook).
    """
    import tqdm.auto
    import tqdm.std

    if getattr(tqdm.auto.tqdm, "_orsa_plain", False):
        return

    class PlainTqdm(tqdm.std.tqdm):
        _orsa_plain = True

        def __init__(self, *args, **kwargs):
            if "TQDM_MININTERVAL" not in os.environ:
                kwargs.setdefault("mininterval", 10.0)
            kwargs.setdefault("ascii", True)
            kwargs.setdefault("ncols", 100)
            kwargs["position"] = 0
            super().__init__(*args, **kwargs)

    def trange(*args, **kwargs):
        return PlainTqdm(range(*args), **kwargs)

    tqdm.auto.tqdm, tqdm.auto.trange = PlainTqdm, trange
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tqdm.autonotebook
        tqdm.autonotebook.tqdm, tqdm.autonotebook.trange = PlainTqdm, trange
    except ImportError:
        pass


if headless():
    use_plain_progress()
