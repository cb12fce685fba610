"""Run the ordered notebooks headless with papermill: ``orsa reproduce --profile cpu --run-name R``.

Each notebook runs in its own papermill process (so a per-notebook timeout can stop it), with the parameters it
declares injected (profile, data_root, run_name, seed, device, ...). Executed notebooks go to
``outputs/<run_name>/notebooks/``, each tidied as a terminal would show its output (:func:`tidy_outputs`: a progress
bar's redraws become its last frame, consecutive prints one block), with its HTML rendering beside it (nbconvert,
:func:`export_html`; the run's ``index.html`` links it). On the first failure the run stops, names the notebook and
the cell (index, first line, error), exits non-zero, and keeps everything already written. At the end it prints a
summary table from the small JSON each notebook records with :func:`record_result`.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import HEADLESS_ENV, registry
from .paths import NOTEBOOKS_DIR, run_dir
from .threads import apply_thread_policy
from .utils import atomic_write_json, atomic_write_text

# nbformat, the config, the dataset detector, the claims and the run index are imported where they are used:
# ``orsa reproduce --list`` and an argument error answer without loading torch.

KERNEL_NAME = "orsa"
DEFAULT_TIMEOUTS = {"smoke": 900, "cpu": 2400, "paper": 7 * 24 * 3600}  # seconds per notebook
STANDARD_PARAMETERS = ("profile", "data_root", "run_name", "seed", "device")


class NotebookFailed(RuntimeError):
    """A notebook of the suite failed; the message names the notebook and the cell."""

    def __init__(self, notebook: str, message: str, cell_index: int | None = None):
        super().__init__(message)
        self.notebook = notebook
        self.cell_index = cell_index


@dataclass
class NotebookRun:
    notebook: str
    status: str  # "ok" | "failed" | "timeout" | "skipped"
    seconds: float
    output: str
    error: str = ""
    cell_index: int | None = None
    result: dict = field(default_factory=dict)
    peak_rss_mb: float | None = None  # peak resident memory of papermill + its kernel (sum over the process tree)
    profile: str = ""


class PeakRSS:
    """Samples the resident memory of a process and all its descendants (papermill and the kernel it starts, which
    runs in a session of its own) from /proc; keeps the peak of their sum."""

    def __init__(self, pid: int, interval: float = 0.5):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def tree(self) -> list[int]:
        """The pid and every live descendant's pid."""
        return self._walk()[0]

    def _sample(self) -> int:
        return self._walk()[1]

    def _walk(self) -> tuple[list[int], int]:
        parent: dict[int, int] = {}
        rss: dict[int, int] = {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                parent[int(d.name)] = int(fields[1])  # field 4 of stat: the parent pid
                rss[int(d.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # field 24: resident pages
            except (OSError, ValueError, IndexError):
                continue
        total, frontier, seen = 0, [self.pid], set()
        while frontier:
            p = frontier.pop()
            if p in seen:
                continue
            seen.add(p)
            total += rss.get(p, 0)
            frontier.extend(c for c, pp in parent.items() if pp == p)
        return sorted(seen & set(parent)), total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        if Path("/proc/self/stat").exists():
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    @property
    def megabytes(self) -> float | None:
        return round(self.peak / 2**20, 1) if self.peak else None


# ----------------------------------------------------------------------------- results
def record_result(run_name: str, notebook: str, result: dict[str, Any]) -> Path:
    """Write the headline numbers of one notebook to ``outputs/<run_name>/results/<notebook>.json``."""
    return atomic_write_json(run_dir(run_name) / "results" / f"{Path(notebook).stem}.json", result)


def read_results(run_name: str) -> dict[str, dict]:
    d = run_dir(run_name) / "results"
    return {p.stem: json.loads(p.read_text()) for p in sorted(d.glob("*.json"))} if d.exists() else {}


# ----------------------------------------------------------------------------- discovery
def list_notebooks(notebooks_dir: Path = NOTEBOOKS_DIR, only: str | list | None = None) -> list[Path]:
    """The ordered suite ``NN_verb_object.ipynb``; ``only="10,40"`` selects by number prefix (or stem)."""
    nbs = sorted(p for p in Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    if only:
        keys = [k.strip() for k in (only.split(",") if isinstance(only, str) else [str(x) for x in only]) if k.strip()]
        chosen = [p for p in nbs if any(p.name.startswith(k + "_") or p.stem == k for k in keys)]
        unknown = [k for k in keys if not any(p.name.startswith(k + "_") or p.stem == k for p in nbs)]
        if unknown:
            raise ValueError(f"--only {only!r}: no notebook matches {unknown}; available: {[p.stem for p in nbs]}")
        nbs = chosen
    return nbs


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The parameters a notebook declares in its cell tagged ``parameters`` (name -> default source text).

    Read with ``ast`` (papermill's own inspector skips lines it cannot parse, e.g. a comment holding ``=``).
    """
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable notebook ({e})") from None
    cells = [c for c in nb.get("cells", []) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        return {}
    src = cells[0].get("source", "")
    src = "".join(src) if isinstance(src, list) else str(src)
    try:
        tree = ast.parse(src)
    except SyntaxError as e:
        raise ValueError(f"{path}: the parameters cell is not valid Python ({e})") from None
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = ast.get_source_segment(src, node.value) if node.value else None
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = ast.get_source_segment(src, node.value)
    return out


def ensure_kernel() -> str:
    """Install (idempotently) a kernelspec for *this* interpreter inside ``sys.prefix`` and return its name."""
    from jupyter_client.kernelspec import KernelSpecManager

    target = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    if target.exists():
        try:
            if json.loads(target.read_text())["argv"][0] == sys.executable:
                return KERNEL_NAME
        except (ValueError, KeyError, IndexError):
            pass
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python (orsa workbook)", prefix=sys.prefix)
    assert KERNEL_NAME in KernelSpecManager().find_kernel_specs()
    return KERNEL_NAME


# ----------------------------------------------------------------------------- failure analysis
def describe_failure(executed: Path) -> tuple[int | None, str]:
    """Find the failing (or, after a timeout, still running) cell in an executed notebook.

    The index is that of the cell in the ORIGINAL notebook (0-based; the cells papermill inserts — injected
    parameters, error banners — are not counted), so it matches what a user sees when opening it.
    """
    import nbformat

    try:
        nb = nbformat.read(str(executed), as_version=4)
    except Exception as e:  # noqa: BLE001 - the executed file may be partial
        return None, f"(could not read executed notebook {executed}: {e})"

    def inserted(c) -> bool:
        return "injected-parameters" in c.get("metadata", {}).get("tags", []) or (
            c.cell_type == "markdown" and "papermill-error-cell" in c.source
        )

    original = [c for c in nb.cells if not inserted(c)]

    def where(i: int, c) -> str:
        first = (c.source.strip().splitlines() or [""])[0][:100]
        return f"cell {i} (`{first}`)"

    for i, c in enumerate(original):
        for o in c.get("outputs", []) if c.cell_type == "code" else []:
            if o.get("output_type") == "error":
                return i, f"{where(i, c)}: {o.get('ename')}: {o.get('evalue')}"
    for i, c in enumerate(original):
        if c.get("metadata", {}).get("papermill", {}).get("status") == "running":
            return i, f"{where(i, c)} was still running"
    return None, "no cell had started (kernel start-up or papermill itself failed)"


# ----------------------------------------------------------------------------- executed notebooks
def _terminal_text(text: str) -> str:
    """``text`` as a terminal shows it: on each line only what follows the last carriage return (a progress bar's
    redraws leave their last frame)."""
    lines = []
    for line in text.split("\n"):
        frames = [f for f in line.split("\r") if f.strip()]
        lines.append(frames[-1] if frames else "")
    return "\n".join(lines)


#: one frame of a progress bar: "desc:  45%|####      | 38/84 [...]" (group 1: the description)
_BAR_FRAME = re.compile(r"^(.*?):?\s*(\d+)%\|")


def _merge_streams(outputs: list[dict]) -> list[dict]:
    """Consecutive stream outputs of the same stream joined into one (text as one string)."""
    merged: list[dict] = []
    for o in outputs:
        if o.get("output_type") == "stream":
            text = o.get("text", "")
            text = "".join(text) if isinstance(text, list) else str(text)
            prev = merged[-1] if merged else None
            if prev is not None and prev.get("output_type") == "stream" and prev.get("name") == o.get("name"):
                prev["text"] += text
                continue
            o = {**o, "text": text}
        merged.append(o)
    return merged


def _superseded_frames(outputs: list[dict]) -> set[int]:
    """Indices of stream outputs that are one unfinished frame of a bar redrawn later in the cell (between them other
    output was printed, so the frames did not merge): a terminal would show only the bar's latest frame."""
    seen: set[tuple[str, str]] = set()
    drop: set[int] = set()
    for i in range(len(outputs) - 1, -1, -1):
        o = outputs[i]
        lines = o.get("text", "").strip("\n").split("\n") if o.get("output_type") == "stream" else []
        m = _BAR_FRAME.match(lines[0]) if len(lines) == 1 else None
        if m is None:
            continue
        key = (str(o.get("name")), m.group(1).strip())
        if key in seen and int(m.group(2)) < 100:
            drop.add(i)
        seen.add(key)
    return drop


def tidy_outputs(executed: Path) -> int:
    """Rewrite an executed notebook's stream outputs as a terminal would show them: consecutive outputs of one
    stream (stdout / stderr) of a cell in one block, carriage-return redraws resolved to their last frame, an
    unfinished bar frame dropped where the same bar is redrawn later in the cell, blank blocks dropped. Other outputs
    (figures, tables, errors) are kept as they are. Returns the number of stream blocks removed. A notebook that
    cannot be read is left alone."""
    try:
        nb = json.loads(Path(executed).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    removed = 0
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code" or not cell.get("outputs"):
            continue
        kept = []
        for o in _merge_streams(cell["outputs"]):
            if o.get("output_type") == "stream":
                o["text"] = _terminal_text(o["text"])
                if not o["text"].strip():
                    continue
                o["text"] = o["text"].strip("\n") + "\n"
            kept.append(o)
        drop = _superseded_frames(kept)
        kept = _merge_streams([o for i, o in enumerate(kept) if i not in drop])
        removed += len(cell["outputs"]) - len(kept)
        cell["outputs"] = kept
    atomic_write_text(Path(executed), json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return removed


def export_html(executed: Path) -> Path | None:
    """The HTML rendering of an executed notebook beside it (``NN_name.html``, nbconvert's lab template), for a
    browser; None (with one printed line) when nbconvert cannot render it. The run goes on either way."""
    out = Path(executed).with_suffix(".html")
    try:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_filename(str(executed))
        atomic_write_text(out, body)
    except Exception as e:  # noqa: BLE001 - a rendering problem must not fail the run it documents
        print(f"  (no HTML rendering of {Path(executed).name}: {type(e).__name__}: {e})", flush=True)
        return None
    return out


# ----------------------------------------------------------------------------- execution
def run_notebook(path: Path, out_path: Path, parameters: dict[str, Any], timeout: float,
                 env: dict[str, str] | None = None) -> NotebookRun:
    """Execute one notebook in a papermill subprocess; never raises for notebook errors."""
    kernel = ensure_kernel()
    declared = notebook_parameters(path)
    params = {k: v for k, v in parameters.items() if k in declared and v is not None}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(params, f)
        params_file = f.name
    cmd = [sys.executable, "-m", "papermill", str(path), str(out_path), "-f", params_file, "-k", kernel,
           "--cwd", str(path.parent), "--no-progress-bar"]
    apply_thread_policy()  # exports OMP_NUM_THREADS / MKL_NUM_THREADS (when unset) to the kernel
    run_env = {**os.environ, HEADLESS_ENV: "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=run_env,
                            start_new_session=True)
    status = "ok"
    with PeakRSS(proc.pid) as mem:
        try:
            log, _ = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                status = "failed"
        except subprocess.TimeoutExpired:
            for pid in mem.tree():  # the kernel runs in a session of its own: kill the whole tree
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            log, _ = proc.communicate()
            status = "timeout"
        finally:
            os.unlink(params_file)
    seconds = time.time() - t0
    if out_path.exists():
        tidy_outputs(out_path)
        export_html(out_path)
    run = NotebookRun(path.stem, status, seconds, str(out_path), peak_rss_mb=mem.megabytes)
    if status != "ok":
        cell, msg = describe_failure(out_path)
        if status == "timeout":
            msg = f"timed out after {timeout:.0f} s; {msg}"
        tail = "\n".join((log or "").strip().splitlines()[-15:])
        run.error, run.cell_index = msg, cell
        run.result = {"log_tail": tail}
    return run


def resolve_dataset(dataset: str, data_root: str) -> str:
    """The dataset a suite runs on: ``dataset`` if named (checked against the registry), else detected from
    ``data_root`` (:func:`orsalib.data.detect.detect_dataset`), else "" (the profile's, SynthFER by default)."""
    if dataset:
        if dataset not in registry.DATASETS:
            from .config import ConfigError

            raise ConfigError(f"dataset {dataset!r} is not registered; choose one of {registry.DATASETS.names()}")
        return dataset
    if data_root:
        from .data.detect import detect_dataset

        return detect_dataset(data_root)
    return ""


def _book(run_name: str, runs: list[NotebookRun]) -> list[dict[str, Any]]:
    """``runbook.json``'s rows: this invocation's notebooks, and the earlier rows of the notebooks it did not run
    (``--only`` re-runs part of a suite), in suite order."""
    path = run_dir(run_name) / "runbook.json"
    try:
        old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    except (OSError, ValueError):
        old = []
    names = {r.notebook for r in runs}
    keep = [e for e in old if isinstance(e, dict) and e.get("notebook") not in names] if isinstance(old, list) else []
    return sorted(keep + [r.__dict__ for r in runs], key=lambda e: str(e.get("notebook")))


def reproduce(profile: str = "cpu", run_name: str = "default", only: str | None = None, data_root: str = "",
              seed: int | None = None, device: str = "auto", timeout: float | None = None,
              notebooks_dir: Path = NOTEBOOKS_DIR, extra_parameters: dict[str, Any] | None = None,
              echo: bool = True, dataset: str = "", n_seeds: int | None = None) -> list[NotebookRun]:
    """Run the ordered suite; stop at the first failure (raises :class:`NotebookFailed` after printing).

    ``n_seeds``: training seeds per compared method in every notebook with claims (those declaring ``n_seeds``, or a
    ``seeds`` list: then ``seed, seed + 1, ...``); None: each profile's own.

    ``dataset`` / ``data_root`` go to the FER notebooks (those declaring a ``dataset`` parameter); with a
    ``data_root`` and no ``dataset`` the dataset is detected from the folder's layout. The transfer notebooks (70,
    71) keep their own data parameters.
    """
    from .config import PROFILES, ConfigError

    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {list(PROFILES)}")
    if data_root and not Path(data_root).expanduser().exists():
        raise ConfigError(f"data_root={data_root!r} does not exist; expected a dataset folder (see data/README.md)")
    dataset = resolve_dataset(dataset, data_root)
    nbs = list_notebooks(notebooks_dir, only)
    if not nbs:
        raise ValueError(f"no notebooks found in {notebooks_dir}")
    out_dir = run_dir(run_name) / "notebooks"
    timeout = timeout or DEFAULT_TIMEOUTS[profile]
    common = {"profile": profile, "run_name": run_name, "device": device, "seed": seed, **(extra_parameters or {})}
    fer = {"dataset": dataset, "data_root": str(Path(data_root).expanduser().resolve()) if data_root else ""}
    runs: list[NotebookRun] = []
    say = print if echo else (lambda *a, **k: None)
    what = f" dataset={dataset} ({data_root})" if dataset and data_root else f" dataset={dataset}" if dataset else ""
    say(f"orsa reproduce: profile={profile} run_name={run_name}{what} -> {run_dir(run_name)}")
    for nb in nbs:
        say(f"  running {nb.name} ...", flush=True)
        declared = notebook_parameters(nb)
        params = {**common, **(fer if "dataset" in declared else {})}
        if n_seeds:
            if "n_seeds" in declared:
                params["n_seeds"] = int(n_seeds)
            elif "seeds" in declared:
                params["seeds"] = [(seed or 0) + k for k in range(int(n_seeds))]
        r = run_notebook(nb, out_dir / nb.name, params, timeout)
        r.profile = profile
        r.result = {**read_results(run_name).get(nb.stem, {}), **r.result}
        runs.append(r)
        atomic_write_json(run_dir(run_name) / "runbook.json", _book(run_name, runs))
        if r.status != "ok":
            index = _index(run_name)
            say(f"\nFAILED: notebook {nb.name}: {r.error}")
            if r.result.get("log_tail"):
                say("--- papermill log (last lines) ---\n" + r.result["log_tail"])
            say(f"executed notebook kept at {r.output}; outputs written so far are kept in {run_dir(run_name)}"
                + (f" (index: {index})" if index else ""))
            raise NotebookFailed(nb.name, f"notebook {nb.name} failed: {r.error}", r.cell_index)
        say(f"  done {nb.name} in {r.seconds:.0f} s")
    say("\n" + summary_table(runs))
    verdicts = _verdicts(run_name)
    if verdicts:
        say(f"\npaper claims, measured:\n{verdicts}")
    index = _index(run_name)
    if index:
        say(f"\nevery table and figure of the run: {index}")
    return runs


def _verdicts(run_name: str) -> str:
    """The verdict table of the run's paper claims (empty when no notebook recorded one)."""
    if not (run_dir(run_name, create=False) / "results" / "verdicts.json").is_file():
        return ""
    from .experiments.claims import verdict_report

    try:
        return verdict_report(run_name)
    except (OSError, ValueError) as e:
        return f"(the verdict table could not be read: {e})"


def _index(run_name: str) -> Path | None:
    """``outputs/<run_name>/index.html`` (None if it cannot be written: the run itself is what matters)."""
    from .viz.index import write_run_index

    try:
        return write_run_index(run_name)
    except (OSError, ValueError) as e:
        print(f"(the run index could not be written: {e})", flush=True)
        return None


def summary_table(runs: list[NotebookRun]) -> str:
    """A plain-text table: notebook, status, minutes, peak memory, headline numbers."""
    from .viz.index import headline

    rows = []
    for r in runs:
        head = headline({k: v for k, v in r.result.items() if k != "log_tail"}, limit=4)
        mem = f"{r.peak_rss_mb / 1024:.1f}" if r.peak_rss_mb else "-"
        rows.append((r.notebook, r.status, f"{r.seconds / 60:.1f}", mem, head))
    w0 = max([len("notebook")] + [len(r[0]) for r in rows])
    lines = [f"{'notebook':<{w0}}  status  min   GB   headline", "-" * (w0 + 46)]
    lines += [f"{a:<{w0}}  {b:<6}  {c:>4}  {m:>4}  {d}" for a, b, c, m, d in rows]
    total = sum(r.seconds for r in runs) / 60
    peak = max((r.peak_rss_mb or 0) for r in runs) / 1024 if runs else 0
    lines.append(f"{'total':<{w0}}          {total:>4.1f}  {peak:>4.1f}")
    return "\n".join(lines)


def past_minutes(profile: str, outputs_dir: Path | None = None) -> dict[str, float]:
    """Median minutes per notebook over the ``runbook.json`` files of earlier runs of ``profile`` (empty if none)."""
    root = outputs_dir or run_dir("default", create=False).parent
    seen: dict[str, list[float]] = {}
    for f in sorted(root.glob("*/runbook.json")):
        try:
            entries = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for e in entries if isinstance(entries, list) else []:
            if isinstance(e, dict) and e.get("profile") == profile and e.get("status") == "ok":
                seen.setdefault(str(e.get("notebook")), []).append(float(e.get("seconds", 0)) / 60)
    return {k: sorted(v)[len(v) // 2] for k, v in seen.items()}
