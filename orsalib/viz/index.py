"""The index of one run: ``outputs/<run_name>/index.html`` lists every table and figure, one line each, by notebook.

The page reads top to bottom as a researcher asks: the verdict of every paper claim first (``results/verdicts.json``,
:mod:`orsalib.experiments.claims`; the paper baseline of each Table 2-4 claim named, the MDE explained where it first
appears), then the tables and figures by notebook, then what each folder of the run holds.

Artefacts are grouped by the ``NN_`` their names start with (the notebook that wrote them); each line links the
files (CSV + JSON, interactive HTML + static PNG) and says what it is (the caption registered by ``save_figure`` /
``save_table``, else one derived from the file). Each notebook's group links its executed notebook as a page a
browser reads (the HTML the runbook renders beside it; the ``.ipynb`` beside that) and starts with its headline
numbers (``results/NN_*.json``): accuracies in %, last and best epoch side by side. A smoke run carries a "numbers
not meaningful" banner.

- :func:`write_run_index` (called at the end of ``orsa reproduce``);
- :func:`headline`: one line of a notebook's headline numbers (the run summary prints it).
"""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path
from typing import Any

from ..paths import run_dir
from ..utils import atomic_write_text
from .core import ARTEFACTS_FILE, caption_of, notebook_of, read_artefacts
from .style import SMOKE_BANNER, is_accuracy_key

#: what each folder of a run holds (shown in the index; the same list is in docs/outputs.md).
FOLDERS: dict[str, str] = {
    "notebooks": "executed notebooks (papermill), with their outputs and figures: NN_name.html to read, "
    "NN_name.ipynb to open in JupyterLab",
    "tables": "NN_<name>.csv + NN_<name>.json (records) of every table",
    "figures": "NN_<name>.html (interactive, offline: plotly.min.js beside) + NN_<name>.png (static copy)",
    "results": "NN_<notebook>.json: the headline numbers of each notebook (the run summary is built from them); "
    "verdicts.json: a verdict for every paper claim",
    "data": "manifest.csv + manifest.validation.json of the run's dataset (notebook 10)",
    "train": "notebook 40's training run: config.json, metrics.jsonl, summary.json, checkpoints/{last,best}.pt",
    "baseline": "notebook 50's prior-free twin: train/ (same layout as train/)",
    "50_oracle": "notebook 50's ORSANet with oracle (ground-truth) priors, the upper bound: train/",
    "50_resnet18": "notebook 50's timm resnet18 trained from scratch: train/",
    "ablations": "notebook 60: ablations.jsonl (one record per variant and seed) + <variant>/seed<k>/ runs",
    "transfer": "notebooks 70/71: <task>/<model>/<variant>_seed<k>/ training runs",
    "80_ran_train": "RAN's training run (notebook 50's comparison, reused by notebook 80; same layout as train/)",
    "80_orsanet_train": "notebook 80's ORSANet run when notebook 40's could not be reused",
}
FILES: dict[str, str] = {
    "index.html": "this page",
    "artefacts.json": "every saved table and figure with its caption (the source of this page)",
    "runbook.json": "status, minutes and headline numbers of every notebook of the last `orsa reproduce`",
    "results/verdicts.json": "every claim of Tables 2, 3, 4, 6, 7, 8: difference over seeds, CI, Holm, verdict",
    "results/calibration.json": "A/A comparisons of one configuration: the false-verdict rate of the procedure",
}

# ----------------------------------------------------------------------------- headline numbers
def _is_pct_key(key: str) -> bool:
    k = key.lower()
    return k.endswith("_pct") or k.endswith("(%)")


def _num(key: str, v: float) -> str:
    """A number with its unit: ``*_pct`` keys and accuracies in %; fractions of accuracies are scaled."""
    k = key.lower()
    if _is_pct_key(k):
        return f"{v:.1f}%"
    if is_accuracy_key(re.sub(r"[^a-z0-9_]", "_", k)) and not any(u in k for u in ("f1", "kappa", "loss")):
        return f"{100 * v:.1f}%" if abs(v) <= 1.0 else f"{v:.1f}%"
    if isinstance(v, int) or float(v).is_integer():
        return f"{int(v)}"
    return f"{v:.4g}"


def _short(key: str) -> str:
    return re.sub(r"_pct$", "", key)


def headline(result: dict[str, Any], limit: int | None = 8) -> str:
    """One line of a notebook's headline numbers: last and best side by side, accuracies in %.

    ``{"last_epoch": 2, "last_val_acc_pct": 41.0, "best_epoch": 1, "best_val_acc_pct": 44.0}`` gives
    ``"val_acc: last 41.0% (epoch 2), best 44.0% (epoch 1)"``; nested per-model records (the transfer studies) give
    ``"task/model: without 40.0%, with 41.0%, Δ +1.0 (1 seed)"``; other numbers follow with their units.
    """
    parts: list[str] = []
    used: set[str] = set()
    for k, v in result.items():
        m = re.fullmatch(r"last_(.+)", k)
        if not m or not isinstance(v, (int, float)) or isinstance(v, bool) or m.group(1) == "epoch":
            continue
        b = f"best_{m.group(1)}"
        if isinstance(result.get(b), (int, float)):
            le, be = result.get("last_epoch"), result.get("best_epoch")
            ltxt = _num(k, v) + (f" (epoch {le})" if le is not None else "")
            btxt = _num(b, result[b]) + (f" (epoch {be})" if be is not None else "")
            parts.append(f"{_short(m.group(1))}: last {ltxt}, best {btxt}")
            used |= {k, b, "last_epoch", "best_epoch"}
    metric = str(result.get("metric", ""))
    for k, v in result.items():
        if k in used:
            continue
        if isinstance(v, dict) and {"with", "without"} <= set(v):
            acc = bool(re.search(r"top1|top5|OA|AA|acc", metric)) and "kappa" not in metric
            unit = "%" if acc else ""
            seeds = v.get("seeds")
            d = v.get("delta")
            dtxt = f", Δ {d:+.2f}{' pts' if acc else ''}" if isinstance(d, (int, float)) else ""
            stxt = f" ({seeds} seed{'s' if seeds != 1 else ''})" if seeds is not None else ""
            parts.append(f"{k}: without {v['without']:.2f}{unit}, with {v['with']:.2f}{unit}{dtxt}{stxt}")
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, (int, float)):
            parts.append(f"{_short(k)}={_num(k, v)}")
        elif isinstance(v, str) and len(v) <= 40 and k not in ("checkpoint",):
            parts.append(f"{k}={v}")
    if limit is not None and len(parts) > limit:
        parts = parts[:limit] + [f"... ({len(parts) - limit} more in results/)"]
    return "; ".join(parts)


# ----------------------------------------------------------------------------- the page
def _notebook_names(root: Path) -> dict[str, str]:
    """``{"40": "40_training", ...}`` from the executed notebooks, the results and the repository's notebooks."""
    from ..paths import NOTEBOOKS_DIR

    names: dict[str, str] = {}
    for folder, pattern in ((NOTEBOOKS_DIR, "[0-9][0-9]_*.ipynb"), (root / "notebooks", "[0-9][0-9]_*.ipynb"),
                            (root / "results", "[0-9][0-9]_*.json")):  # fmt: skip
        if folder.is_dir():
            for p in sorted(folder.glob(pattern)):
                names[p.stem[:2]] = p.stem
    return names


def _derived_caption(root: Path, rel: str) -> str:
    p = root / rel
    if p.suffix == ".csv":
        try:
            with p.open(encoding="utf-8") as f:
                header = f.readline().strip()
                rows = sum(1 for _ in f)
            cols = header.split(",")
            return f"{rows} rows; columns: {', '.join(cols[:8])}{' ...' if len(cols) > 8 else ''}"
        except OSError:
            return ""
    if p.suffix == ".html":
        try:
            tail = p.read_text(encoding="utf-8")[-400_000:]
            m = re.search(r'"title":\s*\{[^{}]*?"text":\s*"((?:[^"\\]|\\.)*)"', tail)
            if m:
                return caption_of(json.loads(f'"{m.group(1)}"'))
        except (OSError, ValueError):
            return ""
    return ""


def _collect(root: Path, registered: dict[str, dict]) -> list[dict]:
    """Every table (CSV/JSON pair) and figure (HTML/PNG pair) of the run folder, registered or not."""
    items: dict[str, dict] = {}
    for rel, rec in registered.items():
        if (root / rel).exists() or any((root / f).exists() for f in rec.get("files", [])):
            items[rel] = {**rec, "files": [f for f in rec.get("files", [rel]) if (root / f).exists()]}
    tables, figures = root / "tables", root / "figures"
    for p in sorted(tables.glob("*.csv")) if tables.is_dir() else []:
        rel = f"tables/{p.name}"
        if rel not in items:
            files = [rel] + ([f"tables/{p.stem}.json"] if p.with_suffix(".json").exists() else [])
            items[rel] = {"kind": "table", "name": p.stem, "notebook": notebook_of(p.stem), "files": files,
                          "caption": ""}  # fmt: skip
    for p in sorted(tables.glob("*.json")) if tables.is_dir() else []:
        if not p.with_suffix(".csv").exists():
            rel = f"tables/{p.name}"
            items.setdefault(rel, {"kind": "table", "name": p.stem, "notebook": notebook_of(p.stem), "files": [rel],
                                   "caption": ""})  # fmt: skip
    for p in sorted(figures.glob("*.html")) if figures.is_dir() else []:
        rel = f"figures/{p.name}"
        if rel not in items:
            files = [rel] + ([f"figures/{p.stem}.png"] if p.with_suffix(".png").exists() else [])
            items[rel] = {"kind": "figure", "name": p.stem, "notebook": notebook_of(p.stem), "files": files,
                          "caption": ""}  # fmt: skip
    for p in sorted(figures.glob("*.png")) if figures.is_dir() else []:
        if not p.with_suffix(".html").exists():
            rel = f"figures/{p.name}"
            items.setdefault(rel, {"kind": "figure", "name": p.stem, "notebook": notebook_of(p.stem), "files": [rel],
                                   "caption": ""})  # fmt: skip
    out = []
    for rel, rec in items.items():
        if not rec.get("caption"):
            rec["caption"] = _derived_caption(root, rel)
        rec["rel"] = rel
        out.append(rec)
    return sorted(out, key=lambda r: (r.get("notebook") or "99", 0 if r["kind"] == "figure" else 1, r["name"]))


def _run_profile(root: Path, registered: dict[str, dict]) -> str:
    for nb in sorted((root / "notebooks").glob("*.ipynb")) if (root / "notebooks").is_dir() else []:
        try:
            meta = json.loads(nb.read_text(encoding="utf-8")).get("metadata", {})
            prof = meta.get("papermill", {}).get("parameters", {}).get("profile")
            if prof:
                return str(prof)
        except (OSError, ValueError):
            continue
    profiles = {r.get("profile") for r in registered.values() if r.get("profile")}
    return profiles.pop() if len(profiles) == 1 else ""


_CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:26px 0 4px;border-bottom:1px solid #ddd}
.meta{color:#666;margin:2px 0} .headline{background:#f4f6fa;padding:6px 10px;border-radius:4px;margin:6px 0}
ul{list-style:none;padding-left:0;margin:4px 0} li{padding:3px 0;border-bottom:1px dotted #eee;white-space:nowrap;
overflow:hidden;text-overflow:ellipsis} .kind{display:inline-block;width:46px;color:#888;font-size:12px}
.name{font-family:ui-monospace,Menlo,monospace} .cap{color:#444} img.thumb{height:26px;vertical-align:middle;
margin-right:6px;border:1px solid #ddd} .banner{background:#ffebee;color:#b00020;border:1px solid #b00020;
padding:6px 10px;border-radius:4px;font-weight:600} table.folders td{padding:1px 10px 1px 0;vertical-align:top}
table.verdicts{border-collapse:collapse;font-size:13px} table.verdicts td,table.verdicts th{padding:2px 8px;
border-bottom:1px solid #eee;text-align:left} td.num{text-align:right;font-family:ui-monospace,Menlo,monospace}
.v-holds{color:#1b7a1b;font-weight:600} .v-reversed{color:#b00020;font-weight:600} .v-not-resolved{color:#666}
.v-not-measured{color:#aaa} tr.group th{background:#f4f6fa;font-weight:600}
"""


def _fmt_num(x: Any, spec: str = "+.2f") -> str:
    return format(x, spec) if isinstance(x, (int, float)) and not isinstance(x, bool) else ""


#: one line on the MDE, said where the column first appears
MDE_LINE = (
    "MDE (minimum detectable effect): the smallest true difference, in points, that this run's sample would detect "
    "with 80 % power at the 5 % level; where the paper's Δ is smaller than the MDE, the run is too small to resolve "
    "the claim"
)


#: the paper tables whose claims compare ORSANet with another method (the others: a model with and without a part)
BASELINE_TABLES: tuple[str, ...] = ("Table 2", "Table 3", "Table 4")


def paper_baseline(row: dict[str, Any]) -> str:
    """The method the paper's Δ of a claim is taken against, from the claim's ``paper`` text (``"92.28 vs 88.90
    (RAN)"`` -> ``RAN``; ``"... (POSTER V2, the strongest of 7 other methods; ...)"`` -> ``POSTER V2``); "" when the
    text names none; Tables 6-8 compare a model with itself, so only Tables 2-4 have one."""
    if str(row.get("table", "")) not in BASELINE_TABLES:
        return ""
    m = re.search(r"\bvs\s+[-+\d.]+\s*\(([^,;()]+)", str(row.get("paper") or ""))
    return m.group(1).strip() if m else ""


def _group_header(table: str, rows: list[dict[str, Any]]) -> str:
    """The header of one paper table's claims: what its paper Δ is taken against, by name."""
    named = list(dict.fromkeys(b for r in rows if r.get("table") == table for b in [paper_baseline(r)] if b))
    if named:
        return f"{table}: paper Δ = ORSANet − {' / '.join(named)} (the paper's own numbers; the baseline per claim)"
    return f"{table}: paper Δ = the two models of the claim, as the paper reports them (A − B)"


def _verdicts_section(root: Path) -> list[str]:
    """The table of ``results/verdicts.json`` (one row per paper claim), or nothing when the run has none."""
    path = root / "results" / "verdicts.json"
    try:
        rows = json.loads(path.read_text(encoding="utf-8")).get("verdicts", []) if path.exists() else []
    except (OSError, ValueError, AttributeError):
        rows = []
    if not rows:
        return []
    e = html.escape
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r.get("verdict"))] = counts.get(str(r.get("verdict")), 0) + 1
    out = ["<h2 id='verdicts'>Paper claims: verdicts</h2>",
           f"<p class='meta'>{e(', '.join(f'{n} {k}' for k, n in counts.items()))} · "
           "<a href='results/verdicts.json'>results/verdicts.json</a> · ours: A − B in points, the mean over each "
           "method's training seeds on the same images, its uncertainty from the seeds and the images "
           "(docs/statistics.md); p (Holm): adjusted within each paper table; the CI is the one that matches the "
           "verdict; not resolved: it contains 0, or one training run per model</p>",
           f"<p class='meta'>{e(MDE_LINE)}</p>",
           "<table class='verdicts'><tr><th>table</th><th>claim</th><th>paper Δ vs</th><th>paper Δ</th>"
           "<th>ours Δ</th><th>CI</th><th>p (Holm)</th><th>seeds</th><th>n</th><th>MDE</th><th>verdict</th>"
           "</tr>"]  # fmt: skip
    table = None
    for r in rows:
        if r.get("table") != table:
            table = r.get("table")
            out.append(f"<tr class='group'><th colspan='11'>{e(_group_header(str(table or ''), rows))}</th></tr>")
        lo, hi = _fmt_num(r.get("ci_low")) or str(r.get("ci_low") or ""), _fmt_num(r.get("ci_high")) or str(
            r.get("ci_high") or "")  # one-sided: "inf" / "-inf"
        n = f"{r.get('n')} {r.get('unit')}" if r.get("unit") else ""
        v = str(r.get("verdict", ""))
        title = e(" · ".join(str(r.get(k) or "") for k in ("paper", "ours", "data", "note") if r.get(k)), quote=True)
        out.append(f"<tr title=\"{title}\"><td>{e(str(r.get('table', '')))}</td><td>{e(str(r.get('claim', '')))}</td>"
                   f"<td>{e(paper_baseline(r))}</td><td class='num'>{_fmt_num(r.get('paper_delta'))}</td>"
                   f"<td class='num'>{_fmt_num(r.get('delta'))}</td>"
                   f"<td class='num'>{f'[{lo}, {hi}]' if lo and hi else ''}</td>"
                   f"<td class='num'>{_fmt_num(r.get('p_adjusted'), '.3g')}</td>"
                   f"<td>{e(str(r.get('n_seeds') or ''))}</td>"
                   f"<td>{e(n)}</td>"
                   f"<td class='num'>{_fmt_num(r.get('mde'), '.2f')}</td>"
                   f"<td class='v-{e(v.replace(' ', '-'))}'>{e(v)}</td></tr>")  # fmt: skip
    out.append("</table>")
    return out


def write_run_index(run_name: str) -> Path:
    """Write ``outputs/<run_name>/index.html``: every table and figure of the run, one line each, by notebook.

    Returns the path. Safe to call at any time (also on a partial run); it only reads the run folder.
    """
    root = run_dir(run_name, create=False)
    if not root.is_dir():
        raise FileNotFoundError(f"no run folder {root}; run the notebooks first (orsa reproduce --run-name {run_name})")
    registered = read_artefacts(run_name)
    items = _collect(root, registered)
    names = _notebook_names(root)
    results = {}
    for p in sorted((root / "results").glob("*.json")) if (root / "results").is_dir() else []:
        try:
            results[p.stem[:2] if notebook_of(p.stem) else p.stem] = (p.stem, json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    runbook = {}
    try:
        for r in json.loads((root / "runbook.json").read_text()) if (root / "runbook.json").exists() else []:
            runbook[str(r.get("notebook", ""))[:2]] = r
    except (OSError, ValueError, AttributeError):
        runbook = {}
    profile = _run_profile(root, registered)
    e = html.escape
    n_fig = sum(r["kind"] == "figure" for r in items)
    n_tab = len(items) - n_fig
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>ORSA run {e(run_name)}</title>",
           f"<style>{_CSS}</style></head><body>", f"<h1>Run <code>{e(run_name)}</code></h1>",
           f"<p class='meta'>{f'profile {e(profile)} · ' if profile else ''}{n_tab} tables, {n_fig} figures · "
           f"index written {time.strftime('%Y-%m-%d %H:%M')}</p>"]  # fmt: skip
    if profile == "smoke":
        out.append(f"<p class='banner'>{e(SMOKE_BANNER)}</p>")
    out += _verdicts_section(root)
    executed = {k for k, stem in names.items() if (root / "notebooks" / f"{stem}.ipynb").exists()}
    groups = sorted({r.get("notebook") or "" for r in items} | {k for k in results if len(k) == 2} | set(runbook)
                    | executed)  # fmt: skip
    for g in [g for g in groups if g] + ([""] if "" in groups else []):
        stem = names.get(g) or (results.get(g, ("",))[0]) or g
        out.append(f"<h2 id='nb{e(g or 'other')}'>{e(stem) if g else 'Other artefacts'}</h2>")
        meta = []
        rb = runbook.get(g)
        if rb:
            meta.append(f"{e(str(rb.get('status', '')))} in {float(rb.get('seconds', 0)) / 60:.1f} min")
        nb_path = root / "notebooks" / f"{stem}.ipynb"
        if g and nb_path.with_suffix(".html").exists():
            meta.append(f"executed notebook <a href='notebooks/{e(nb_path.stem)}.html'>{e(nb_path.stem)}.html</a> "
                        f"(<a href='notebooks/{e(nb_path.name)}'>.ipynb</a>)")  # fmt: skip
        elif g and nb_path.exists():
            meta.append(f"executed notebook <a href='notebooks/{e(nb_path.name)}'>{e(nb_path.name)}</a> (no HTML "
                        "rendering: open it in JupyterLab)")  # fmt: skip
        if g in results:
            meta.append(f"<a href='results/{e(results[g][0])}.json'>results/{e(results[g][0])}.json</a>")
        if meta:
            out.append(f"<p class='meta'>{' · '.join(meta)}</p>")
        if g in results:
            out.append(f"<p class='headline'>{e(headline(results[g][1], limit=None)) or 'no numbers recorded'}</p>")
        lines = [r for r in items if (r.get("notebook") or "") == g]
        if lines:
            out.append("<ul>")
            for r in lines:
                files = r.get("files") or [r["rel"]]
                main = files[0]
                links = " · ".join(f"<a href='{e(f)}'>{e(Path(f).suffix.lstrip('.'))}</a>" for f in files)
                thumb = next((f for f in files if f.endswith(".png")), None)
                img = f"<img class='thumb' loading='lazy' src='{e(thumb)}' alt=''>" if thumb else ""
                size = f" ({r['rows']} rows)" if r.get("rows") is not None else ""
                out.append(f"<li><span class='kind'>{e(r['kind'])}</span>{img}<a class='name' href='{e(main)}'>"
                           f"{e(r['name'])}</a> [{links}] <span class='cap'>— {e(r.get('caption') or '')}{size}"
                           f"</span></li>")  # fmt: skip
            out.append("</ul>")
    out.append("<h2 id='folders'>What the run folder holds</h2><table class='folders'>")
    for folder, what in FOLDERS.items():
        if (root / folder).exists():
            out.append(f"<tr><td><a href='{e(folder)}/'><code>{e(folder)}/</code></a></td><td>{e(what)}</td></tr>")
    for f, what in FILES.items():
        if (root / f).exists() or f == "index.html":
            out.append(f"<tr><td><a href='{e(f)}'><code>{e(f)}</code></a></td><td>{e(what)}</td></tr>")
    out.append("</table>")
    out.append(f"<p class='meta'>Captions come from <code>{ARTEFACTS_FILE}</code> (written by save_figure / "
               "save_table); names start with the number of the notebook that wrote them.</p></body></html>")
    path = root / "index.html"
    atomic_write_text(path, "\n".join(out) + "\n")
    return path


__all__ = ["FILES", "FOLDERS", "MDE_LINE", "headline", "paper_baseline", "write_run_index"]
