"""Small shared helpers: seeding, devices, atomic writes, run metadata, progress bars that know when to be quiet."""

from __future__ import annotations

import io
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    import torch

    if device in ("auto", "", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was asked for but CUDA is not available on this machine; use 'auto' or 'cpu'"
        )
    return dev


# ----------------------------------------------------------------------------- file modes and atomic writes
def _umask() -> int:
    """The process umask (read from /proc on Linux, where reading it does not change it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # elsewhere: set and restore
    os.umask(old)
    return old


def file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: ``0o666`` less the umask (every file the workbook writes)."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """The mode ``mkdir`` gives a new folder: ``0o777`` less the umask."""
    return 0o777 & ~_umask()


def make_temp_dir(parent: str | Path, prefix: str) -> Path:
    """A new folder in ``parent`` to be renamed into place later, with the mode of a normal ``mkdir``
    (``tempfile.mkdtemp`` alone gives 0700)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(tmp, dir_mode())
    return tmp


def atomic_write_bytes(path: str | Path, data: bytes, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder + rename (never a half file).

    The file ends with the mode a plain ``open(path, "wb")`` would give (``tempfile.mkstemp`` alone gives 0600).
    ``fsync=False`` skips the flush to disk (many small files whose completeness another file marks).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(o: Any) -> Any:
    if is_dataclass(o):
        return asdict(o)
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "item") and callable(o.item):  # torch scalars
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def to_json(obj: Any, indent: int | None = 2) -> str:
    return json.dumps(obj, indent=indent, default=_json_default, sort_keys=False)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj) + "\n")


_UNSAFE_ADVICE = re.compile(
    r"weights_only|trust|arbitrary code|safe_globals|add_safe_globals|allowlist|documentation of torch\.load|"
    r"pytorch\.org|two options|recommended steps",
    re.IGNORECASE,
)


def load_error_text(e: BaseException, limit: int = 300) -> str:
    """``"<type>: <message>"`` of a ``torch.load(weights_only=True)`` failure without torch's advice to load the
    file unrestricted or to allow-list its globals (advice the workbook never takes): what stays is the reason,
    e.g. which global the file wanted. Other errors pass through (cut to ``limit`` characters)."""
    sentences = [t.strip() for line in str(e).splitlines() for t in re.split(r"(?<=[.!?])\s+", line) if t.strip()]
    kept = [t for t in sentences if not _UNSAFE_ADVICE.search(t) and not re.match(r"^\(?\d\)", t)]
    kept = [re.sub(r"^WeightsUnpickler error:\s*", "", t) for t in kept]
    text = " ".join(kept) or "no detail"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    refused = len(kept) < len(sentences)
    note = " (the file holds objects other than tensors and plain containers; it was not read)" if refused else ""
    return f"{type(e).__name__}: {text}{note}"


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through a temp file + rename: an interrupted save leaves the previous file intact."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one JSON line (flushed and fsynced: a crash loses at most the line being written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(to_json(record, indent=None) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSON-lines file; a torn last line (crash mid-write) is ignored."""
    out = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON") from None
    return out


# ----------------------------------------------------------------------------- run metadata
def git_sha(repo: str | Path | None = None) -> str | None:
    from .paths import REPO_ROOT

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo or REPO_ROOT, capture_output=True, text=True, timeout=5
        )
        sha = out.stdout.strip()
        if out.returncode != 0 or not sha:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo or REPO_ROOT, capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def library_versions() -> dict[str, str]:
    """Versions of python and the libraries a result depends on."""
    import importlib.metadata as md

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("orsalib", "torch", "torchvision", "timm", "fvcore", "numpy", "scikit-learn", "papermill", "plotly"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    try:
        import torch

        out["cuda"] = torch.version.cuda or "none"
        out["cuda_available"] = str(torch.cuda.is_available())
    except ImportError:
        pass
    return out


def save_run_config(run_dir: str | Path, config: Any, extra: dict | None = None, name: str = "config.json") -> Path:
    """Write the resolved config + library versions + git SHA as ``<run_dir>/config.json``."""
    payload = {
        "config": asdict(config) if is_dataclass(config) else config,
        "versions": library_versions(),
        "git_sha": git_sha(),
    }
    if extra:
        payload.update(extra)
    return atomic_write_json(Path(run_dir) / name, payload)


# ----------------------------------------------------------------------------- progress
def _in_notebook_display() -> bool:
    """True inside a Jupyter kernel (a notebook's display draws the bar)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # pragma: no cover - a broken IPython
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def progress_quiet() -> bool:
    """True where a transient progress bar would only leave noise: a headless run (``ORSA_HEADLESS``, set by
    ``orsa reproduce`` for its papermill kernels, where every redraw of a bar stays in the executed notebook),
    ``TQDM_DISABLE``, or a process whose stderr is neither a terminal nor a notebook's display (a log file, a pipe,
    pytest). The training bar follows the same rule (``engine.trainer``: a line per epoch instead)."""
    from . import headless

    if headless() or os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes"):
        return True
    if _in_notebook_display():
        return False
    try:
        return not sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced stderr
        return True


class QuietProgress:
    """The part of tqdm's interface the library uses (iterate, ``update``, ``close``, ``set_postfix``, context
    manager), without a bar; with ``summary``, one line when it closes: ``<desc>: <n> <unit> in <s> s``."""

    def __init__(self, iterable: Iterable | None = None, desc: str = "", total: int | None = None, unit: str = "it",
                 summary: bool = True) -> None:  # fmt: skip
        self.iterable, self.desc, self.unit, self.summary = iterable, desc, unit, summary
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n = 0
        self.closed = False
        self._it: Iterator = iter(())
        self._t0 = time.perf_counter()

    def __iter__(self) -> Iterator:
        self._it = iter(self.iterable or ())
        return self

    def __next__(self) -> Any:
        try:
            x = next(self._it)
        except StopIteration:
            self.close()
            raise
        self.n += 1  # items handed out (a loop that stops early says how far it got)
        return x

    def __del__(self) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> QuietProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += int(n)

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.summary and self.n:
            of = f"/{self.total}" if self.total and self.total != self.n else ""
            print(f"{self.desc}: {self.n}{of} {self.unit} in {time.perf_counter() - self._t0:.1f} s", flush=True)


def progress_bar(iterable: Iterable | None = None, *, desc: str = "", total: int | None = None, enabled: bool = True,
                 unit: str = "it", leave: bool = False, summary: bool = True, **kwargs: Any) -> Any:  # fmt: skip
    """A tqdm bar (``tqdm.auto``) over ``iterable`` (or one to ``update`` by hand), transient by default.

    ``enabled=False`` (the caller's ``progress=False``): no bar and no line. Where :func:`progress_quiet` holds
    (headless run, no terminal or notebook display): no bar, and with ``summary`` one line when it closes
    (:class:`QuietProgress`). Otherwise a tqdm bar with ``leave`` (False: it disappears once done).
    """
    if not enabled or progress_quiet():
        return QuietProgress(iterable, desc=desc, total=total, unit=unit, summary=summary and enabled)
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, **kwargs)
