"""Every claim of the paper's Tables 2, 3, 4, 6, 7 and 8, measured on this run: one :class:`Verdict` per claim.

The claims (paper numbers from :mod:`orsalib.paper`):

- **Table 2** "ORSANet beats the baselines" (clean images): ORSANet vs each baseline evaluated here (notebook 50's
  prior-free twin and timm resnet18; RAN, in notebooks 50 and 80), paired on the same images (bootstrap CI, McNemar);
- **Table 3** "ORSANet is more accurate under 10/20/30 % occlusion" and "ORSANet degrades least from 0 to 10/20/30 %":
  per image, the change of correctness from the clean image to its occluded copy, ORSANet's minus the baseline's
  (positive: ORSANet degrades less);
- **Table 4** "ORSANet is best on real occlusion": the real-occlusion split(s) (RAF-DB (occlu) and Occlu-FER
  analogues), paired on images;
- **Table 6** "removing X hurts": the full model vs each ablation, per evaluation column, paired per image on the
  same images for each seed (images x seeds: bootstrap of images within each seed, McNemar on the pooled
  discordant pairs), the paired t-test over seeds beside it;
- **Tables 7 / 8** "DARELoss improves OA/AA/kappa" / "top-1/top-5": with vs without DARELoss on the same pixels /
  test images for each seed (OA, top-1, top-5: per-item correctness; AA, kappa: paired bootstrap over pixels that
  recomputes the metric, permutation test), the paired t-test over seeds beside it. Runs without per-item
  predictions (older records) are compared over seeds only, and the note says so.

Each notebook merges its claims into ``outputs/<run>/results/verdicts.json`` (:func:`record_verdicts`; keyed by
table + claim, so a rerun replaces its rows); a claim without data in this run is kept with the verdict
``not measured`` and a note, so the file always lists every claim. :func:`verdict_summary` is the table printed at
the end of ``orsa reproduce``. Verdicts are computed from what was measured, never tuned toward.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..paper import TABLE2, TABLE3, TABLE4, TABLE6, TABLE7, TABLE8
from ..paths import run_dir
from .per_image import read_per_image
from .verdicts import (
    NOT_MEASURED,
    VERDICTS,
    Verdict,
    compare_metric_by_seed,
    compare_on_images,
    compare_on_images_by_seed,
    compare_over_seeds,
    compare_scores_on_images,
    not_measured,
    read_verdicts,
    verdict_table,
    with_over_seeds,
    write_verdicts,
)

#: The paper tables whose claims get a verdict, in the order of the file.
CLAIM_TABLES: tuple[str, ...] = ("Table 2", "Table 3", "Table 4", "Table 6", "Table 7", "Table 8")
#: The baselines ORSANet is compared with on images (Tables 2-4) and the notebook that evaluates each.
BASELINES: dict[str, str] = {
    "the prior-free baseline": "50_evaluation_occlusion", "resnet18": "50_evaluation_occlusion",
    "RAN": "80_ran_baseline",
}  # fmt: skip
#: Rows of the paper's tables that stand for a baseline label (others: compared with the strongest other method).
PAPER_ROWS: dict[str, str] = {"RAN": "RAN"}
#: The paper's artificial occlusion ratios (Table 3).
PAPER_RATIOS: tuple[float, ...] = (0.1, 0.2, 0.3)
#: Table 4 columns and Table 6 real-occlusion columns.
REAL_COLUMNS: tuple[str, ...] = ("RAF-DB (occlu)", "Occlu-FER")
#: Table 6: the paper's column -> the ablation study's metric (None: no such evaluation set in the study).
TABLE6_COLUMNS: dict[str, str | None] = {
    "RAF-DB": "clean_acc", "RAF-DB (occlu)": "real_occluded_acc", "Occlu-FER": None,
}  # fmt: skip
_TABLE6_SETTINGS = {
    "RAF-DB": "clean images, RAF-DB analogue", "RAF-DB (occlu)": "real occlusion, RAF-DB (occlu) analogue",
    "Occlu-FER": "Occlu-FER analogue",
}  # fmt: skip
#: Table 6: the study's columns the paper has not (claims "removing X hurts" there too, paper numbers none).
TABLE6_EXTRA: dict[str, str] = {"artificial occlusion": "occluded_acc"}
TABLE7_METRICS: tuple[str, ...] = ("OA", "AA", "kappa")
TABLE8_METRICS: tuple[str, ...] = ("top1", "top5")
NOTEBOOKS: dict[str, str] = {"Table 6": "60_ablations", "Table 7": "71_dareloss_spectralformer",
                             "Table 8": "70_dareloss_cifar10"}  # fmt: skip

_MAIN = "ORSANet"
#: Table 7 scenes as the claims name them
SCENE_LABELS: dict[str, str] = {"indian_pines": "Indian Pines", "pavia_u": "Pavia University"}
_SCENES = SCENE_LABELS
_FAMILIES = {"crossvit": "CrossViT", "gfnet": "GFNet"}
_METRIC_LABELS = {"OA": "OA", "AA": "AA", "kappa": "kappa", "top1": "top-1", "top5": "top-5"}


# ============================================================================= the paper's side of each claim
def paper_column(dataset: str = "", num_classes: int | None = None) -> str:
    """Table 2's column a dataset stands for: ``AffectNet7``/``AffectNet8`` for AffectNet, else ``RAF-DB``."""
    if "affectnet" in dataset.lower():
        return "AffectNet8" if num_classes == 8 else "AffectNet7"
    return "RAF-DB"


def _paper_pair(table: Mapping[str, Mapping[str, float | None]], col: str, label: str) -> tuple[str, float | None]:
    """``("92.28 vs 88.90 (RAN)", 3.38)``; a label without a row is compared with the strongest other method."""
    ours = table.get(_MAIN, {}).get(col)
    if ours is None:
        return f"ORSANet reports no {col}", None
    row = PAPER_ROWS.get(label, label)
    other = table.get(row, {}).get(col) if row != _MAIN else None
    if other is not None:
        return f"{ours:.2f} vs {other:.2f} ({row})", round(ours - other, 2)
    others = {k: v.get(col) for k, v in table.items() if k != _MAIN and v.get(col) is not None}
    if not others:
        return f"{ours:.2f} (ORSANet); no other method reports {col}", None
    best = max(others, key=lambda k: others[k])
    return (f"{ours:.2f} vs {others[best]:.2f} ({best}, the strongest of {len(others)} other methods; "
            f"the paper has no row for {label})", round(ours - others[best], 2))  # fmt: skip


def _paper_drop(ratio_key: str, label: str) -> tuple[str, float | None]:
    """Table 3, 0 -> r %: ORSANet's drop against the baseline's (or the other methods'), and drop_B - drop_ORSANet."""
    drops = {k: v["0"] - v[ratio_key] for k, v in TABLE3.items()}
    mine = drops.pop(_MAIN)
    head = f"ORSANet -{mine:.2f} ({TABLE3[_MAIN]['0']:.2f} -> {TABLE3[_MAIN][ratio_key]:.2f})"
    row = PAPER_ROWS.get(label, label)
    if row in drops:
        return f"{head} vs {row} -{drops[row]:.2f}", round(drops[row] - mine, 2)
    less = sorted(k for k, d in drops.items() if d < mine)
    mean = float(np.mean(list(drops.values())))
    text = (f"{head} vs -{min(drops.values()):.2f} ... -{max(drops.values()):.2f} (mean -{mean:.2f}) for the "
            f"{len(drops)} other methods; by the paper's own numbers {len(less)} of {len(drops)} degrade less"
            + (f" ({', '.join(less)})" if less else ""))  # fmt: skip
    return text, round(mean - mine, 2)


# ============================================================================= per-image correctness
def per_image_correct(sweep: Any) -> dict[tuple[str, str], pd.Series]:
    """``{(model, condition): correct}`` of an ``occlusion_sweep(..., return_details=True)`` result.

    Each Series is boolean, indexed by the image id shared by every condition built from the same images: the source
    manifest row (``source_index`` of the condition's manifest), so the clean image and its occluded copy line up.
    """
    conds = {c.name: c for c in getattr(sweep, "conditions", [])}
    out: dict[tuple[str, str], pd.Series] = {}
    for (model, cname), pred in sweep.predictions.items():
        ids = np.asarray(pred.indices, dtype=np.int64)
        cond = conds.get(cname)
        if cond is not None and "source_index" in cond.manifest.columns:
            with contextlib.suppress(KeyError):
                ids = cond.manifest["source_index"].loc[ids].to_numpy(dtype=np.int64)
        s = pd.Series(np.asarray(pred.correct, dtype=bool), index=ids, name=f"{model} | {cname}")
        out[(model, cname)] = s[~s.index.duplicated(keep="first")]
    return out


def _aligned(*series: pd.Series) -> list[np.ndarray]:
    """The values of every Series on the images they all have (sorted ids)."""
    common = series[0].index
    for s in series[1:]:
        common = common.intersection(s.index)
    common = common.sort_values()
    return [s.loc[common].to_numpy(dtype=np.float64) for s in series]


def _pct(r: float) -> str:
    return f"{round(100 * float(r)):d}%"


def _finish(v: Verdict, source: str, dataset: str) -> Verdict:
    v.source, v.dataset = source, dataset
    return v


def _missing(label: str, name: str | None, main: str, cond: str, have: Mapping) -> str:
    if name is None:
        return f"{label} not evaluated in this run"
    lacking = [m for m in (main, name) if (m, cond) not in have]
    return f"no predictions of {', '.join(lacking)} on {cond!r} in this run"


#: a model "learned" when its accuracy beats chance (1 / classes) by this many binomial standard errors
#: (one-sided p < 0.01); a comparison with a model that did not learn says nothing and gets no verdict
LEARNED_Z = 2.33


def learned(acc: float, n: int, chance: float) -> bool:
    """Whether an accuracy ``acc`` (fraction) on ``n`` items is above ``chance`` beyond sampling noise."""
    if n <= 0 or not 0.0 < chance < 1.0:
        return True  # nothing to judge by
    return acc - chance > LEARNED_Z * math.sqrt(chance * (1.0 - chance) / n)


def _at_chance(accs: Mapping[str, tuple[float, int]], chance: float | None) -> str:
    """The note of a comparison whose models did not all learn (``accs``: name -> (accuracy, items)); "" if they did."""
    if chance is None:
        return ""
    bad = [f"{m} {100 * a:.1f} % on {n} images" for m, (a, n) in accs.items() if not learned(a, n, chance)]
    if not bad:
        return ""
    return (f"not above chance ({100 * chance:.1f} %): {', '.join(bad)}; a comparison with a model that did not "
            "learn says nothing, so no verdict")  # fmt: skip


def _clean_chance_note(correct: Mapping, names: Sequence[str | None], num_classes: int | None) -> str:
    """:func:`_at_chance` on the clean images of ``names`` (those evaluated there)."""
    accs = {m: (float(np.mean(correct[(m, "clean")])), len(correct[(m, "clean")])) for m in names
            if m is not None and (m, "clean") in correct}  # fmt: skip
    return _at_chance(accs, 1.0 / num_classes if num_classes else None)


# ============================================================================= Tables 2, 3, 4: images
def table2_claims(
    correct: Mapping[tuple[str, str], pd.Series],
    main: str,
    baselines: Mapping[str, str | None],
    *,
    dataset: str = "",
    num_classes: int | None = None,
    condition: str = "clean",
    n_boot: int = 2000,
    seed: int = 0,
    source: str = "",
) -> list[Verdict]:
    """Table 2, "ORSANet beats the baselines" on clean images: one verdict per baseline, paired on images.

    Args:
        correct: :func:`per_image_correct` of the sweep.
        main: ORSANet's model name in the sweep.
        baselines: ``{label: model name in the sweep}`` (label e.g. ``"the prior-free baseline"``, ``"RAN"``);
            a name of None (not evaluated in this run) gives a ``not measured`` row.
        dataset, num_classes: our data (also picks the paper's column: RAF-DB, or AffectNet7/8).
    """
    col = paper_column(dataset, num_classes)
    out = []
    for label, name in baselines.items():
        claim = f"ORSANet beats {label} (clean)"
        paper, pdelta = _paper_pair(TABLE2, col, label)
        if name is None or (main, condition) not in correct or (name, condition) not in correct:
            out.append(not_measured(claim, "Table 2", paper, _missing(label, name, main, condition, correct),
                                    paper_delta=pdelta, source=source, dataset=dataset))  # fmt: skip
            continue
        dead = _clean_chance_note(correct, [main, name], num_classes)
        if dead:
            out.append(not_measured(claim, "Table 2", paper, dead, paper_delta=pdelta, source=source, dataset=dataset))
            continue
        a, b = _aligned(correct[(main, condition)], correct[(name, condition)])
        note = f"{main} vs {name} on the same {len(a)} {condition} images; p: McNemar"
        v = compare_on_images(claim, "Table 2", paper, a, b, paper_delta=pdelta, n_boot=n_boot, seed=seed, note=note)
        out.append(_finish(v, source, dataset))
    return out


def _ratios_in(correct: Mapping[tuple[str, str], Any], kind: str) -> list[float]:
    pat = re.compile(rf"^{re.escape(kind)} (\d+)%$")
    return [int(m.group(1)) / 100 for _, c in correct if (m := pat.match(c))]


def table3_claims(
    correct: Mapping[tuple[str, str], pd.Series],
    main: str,
    baselines: Mapping[str, str | None],
    *,
    ratios: Sequence[float] = (),
    kind: str = "rectangle",
    dataset: str = "",
    num_classes: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    source: str = "",
) -> list[Verdict]:
    """Table 3 under ``kind`` occlusion at each ratio, per baseline: "ORSANet is more accurate" (paired on the
    occluded images, McNemar) and "ORSANet degrades less from 0 to r %" (per image: ORSANet's change of correctness
    from the clean image to its occluded copy minus the baseline's; positive = ORSANet degrades less; p: Wilcoxon).

    The paper's ratios (10/20/30 %) are always listed; other ratios evaluated here are added.
    """
    todo = sorted({round(float(r), 4) for r in (*PAPER_RATIOS, *ratios, *_ratios_in(correct, kind)) if float(r) > 0})
    out = []
    for r in todo:
        key, pct = str(round(100 * r)), _pct(r)
        cond = f"{kind} {pct}"
        for label, name in baselines.items():
            in_paper = key in TABLE3[_MAIN]
            p_acc, d_acc = _paper_pair({k: {cond: v.get(key)} for k, v in TABLE3.items()}, cond, label) \
                if in_paper else ("no such ratio in the paper", None)  # fmt: skip
            p_drop, d_drop = _paper_drop(key, label) if in_paper else ("no such ratio in the paper", None)
            c_acc = f"ORSANet beats {label} under {pct} occlusion"
            c_drop = f"ORSANet degrades less than {label} from 0 to {pct} occlusion"
            keys = [(main, "clean"), (main, cond)] + ([(name, "clean"), (name, cond)] if name is not None else [])
            dead = "" if name is None else _clean_chance_note(correct, [main, name], num_classes)
            if name is None or any(k not in correct for k in keys) or dead:
                why = dead or _missing(label, name, main, cond, correct)
                out.append(not_measured(c_acc, "Table 3", p_acc, why, paper_delta=d_acc, source=source,
                                        dataset=dataset))  # fmt: skip
                out.append(not_measured(c_drop, "Table 3", p_drop, why, paper_delta=d_drop, source=source,
                                        dataset=dataset))  # fmt: skip
                continue
            a, b = _aligned(correct[(main, cond)], correct[(name, cond)])
            note = f"{main} vs {name} on the same {len(a)} images under {cond}; p: McNemar"
            out.append(_finish(compare_on_images(c_acc, "Table 3", p_acc, a, b, paper_delta=d_acc, n_boot=n_boot,
                                                 seed=seed, note=note), source, dataset))  # fmt: skip
            a0, a1, b0, b1 = _aligned(correct[(main, "clean")], correct[(main, cond)], correct[(name, "clean")],
                                      correct[(name, cond)])  # fmt: skip
            chg_a, chg_b = 100 * float(np.mean(a1 - a0)), 100 * float(np.mean(b1 - b0))
            ours = f"{main} {chg_a:+.2f} vs {name} {chg_b:+.2f} (accuracy change in points, clean -> {pct})"
            note = (f"per image: (occluded - clean correctness) of {main} minus that of {name}, on {len(a0)} images; "
                    "p: Wilcoxon signed-rank")  # fmt: skip
            v = compare_scores_on_images(c_drop, "Table 3", p_drop, (a1 - a0) - (b1 - b0), ours, paper_delta=d_drop,
                                         n_boot=n_boot, seed=seed, note=note)  # fmt: skip
            out.append(_finish(v, source, dataset))
    return out


def real_column(condition: str) -> str:
    """The Table 4 column a real-occlusion condition stands for: ``Occlu-FER`` when its name says so, else
    ``RAF-DB (occlu)`` (the real-occluded images of the evaluated dataset, e.g. SynthFER's ``valid_occluded``)."""
    s = re.sub(r"[^a-z0-9]", "", condition.lower())
    return "Occlu-FER" if "occlufer" in s else "RAF-DB (occlu)"


def table4_claims(
    correct: Mapping[tuple[str, str], pd.Series],
    main: str,
    baselines: Mapping[str, str | None],
    *,
    dataset: str = "",
    num_classes: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    source: str = "",
) -> list[Verdict]:
    """Table 4, "ORSANet is best on real occlusion": per real-occlusion condition (``real: <split or list>``) and
    baseline, paired on images. Both paper columns (RAF-DB (occlu), Occlu-FER) are always listed; a further real
    condition of the same column is added with its name in brackets."""
    reals = list(dict.fromkeys(c for _, c in correct if c.startswith("real: ") and " / " not in c))
    by_col: dict[str, list[str]] = {col: [] for col in REAL_COLUMNS}
    for c in reals:
        by_col[real_column(c)].append(c)
    out = []
    for col in REAL_COLUMNS:
        for label, name in baselines.items():
            paper, pdelta = _paper_pair(TABLE4, col, label)
            base_claim = f"ORSANet beats {label} on real occlusion ({col} analogue)"
            if not by_col[col]:
                out.append(not_measured(base_claim, "Table 4", paper, f"no {col} analogue in this run",
                                        paper_delta=pdelta, source=source, dataset=dataset))  # fmt: skip
                continue
            for j, cond in enumerate(by_col[col]):
                claim = base_claim if j == 0 else f"{base_claim} [{cond}]"
                dead = "" if name is None else _clean_chance_note(correct, [main, name], num_classes)
                if name is None or (main, cond) not in correct or (name, cond) not in correct or dead:
                    out.append(not_measured(claim, "Table 4", paper, dead or _missing(label, name, main, cond, correct),
                                            paper_delta=pdelta, source=source, dataset=dataset))  # fmt: skip
                    continue
                a, b = _aligned(correct[(main, cond)], correct[(name, cond)])
                note = f"{main} vs {name} on the same {len(a)} images of {cond!r}; p: McNemar"
                v = compare_on_images(claim, "Table 4", paper, a, b, paper_delta=pdelta, n_boot=n_boot, seed=seed,
                                      note=note)  # fmt: skip
                out.append(_finish(v, source, dataset))
    return out


# ============================================================================= Tables 6, 7, 8: images x seeds
def _over_seeds(
    claim: str, table: str, paper: str, a: pd.Series, b: pd.Series, *, paper_delta: float | None, note: str,
    source: str, dataset: str, why_missing: str,
) -> Verdict:  # fmt: skip
    """``compare_over_seeds`` on the seeds where both ``a`` and ``b`` (indexed by seed) have a finite value."""
    a, b = a.dropna(), b.dropna()
    seeds = sorted(set(a.index) & set(b.index))
    if not seeds:
        return not_measured(claim, table, paper, why_missing, paper_delta=paper_delta, source=source, dataset=dataset)
    v = compare_over_seeds(claim, table, paper, a.loc[seeds].to_numpy(float), b.loc[seeds].to_numpy(float), seeds,
                           paper_delta=paper_delta, note=note)  # fmt: skip
    return _finish(v, source, dataset)


def _by_seed(frame: pd.DataFrame, col: str, scale: float = 1.0) -> pd.Series:
    if col not in frame.columns or frame.empty:
        return pd.Series(dtype=float)
    s = frame.drop_duplicates("seed", keep="last").set_index("seed")[col]
    return pd.to_numeric(s, errors="coerce").astype(float) * scale


#: the column of a run's row that names its per-image file (ablations: ``per_image_path``; transfer: ``per_image``)
_PER_IMAGE_COLUMNS: tuple[str, ...] = ("per_image_path", "per_image")


class _PerImage:
    """The per-image predictions of the runs of a frame, read once per file: ``get(rows, seed, column)``."""

    def __init__(self) -> None:
        self._cache: dict[str, dict[str, pd.DataFrame] | None] = {}

    def get(self, rows: pd.DataFrame, seed: int, column: str) -> pd.DataFrame | None:
        """The predictions of ``column`` of the run of ``seed`` in ``rows`` (None: no file, or no such column)."""
        if rows.empty or "seed" not in rows:
            return None
        r = rows[rows["seed"] == seed]
        path = ""
        for col in _PER_IMAGE_COLUMNS:
            if col in r.columns and len(r) and isinstance(r[col].iloc[-1], str) and r[col].iloc[-1]:
                path = r[col].iloc[-1]
                break
        if not path:
            return None
        if path not in self._cache:
            try:
                self._cache[path] = read_per_image(path) if Path(path).is_file() else None
            except ValueError as e:
                print(f"claims: {e}; that run's claims fall back to the comparison over seeds")
                self._cache[path] = None
        got = self._cache[path]
        return None if got is None else got.get(column)


def _paired_items(
    store: _PerImage, rows_a: pd.DataFrame, rows_b: pd.DataFrame, seeds: Sequence[int], column: str
) -> tuple[list[int], list[pd.DataFrame], list[pd.DataFrame], list[int]]:
    """Per seed, A's and B's predictions of ``column`` on the items both have (sorted ids); seeds without data."""
    have, fa, fb, lacking = [], [], [], []
    for s in seeds:
        a, b = store.get(rows_a, s, column), store.get(rows_b, s, column)
        if a is None or b is None:
            lacking.append(int(s))
            continue
        common = a.index.intersection(b.index).sort_values()
        if common.empty:
            lacking.append(int(s))
            continue
        have.append(int(s))
        fa.append(a.loc[common])
        fb.append(b.loc[common])
    return have, fa, fb, lacking


def _seeds_of(a: pd.Series, b: pd.Series) -> list[int]:
    return sorted(set(a.dropna().index) & set(b.dropna().index))


def _lacking_note(lacking: Sequence[int]) -> str:
    return (f"seeds {list(lacking)} have no per-image predictions (records written before they were kept): left "
            "out of the images x seeds test, counted over seeds") if lacking else ""  # fmt: skip


#: the note of a claim whose runs kept no per-image predictions
_FALLBACK = "no per-image predictions for these runs (records written before they were kept): paired over seeds only"


def table6_claims(
    runs: pd.DataFrame | None,
    *,
    full: str = "full",
    dataset: str = "",
    source: str = "60_ablations",
    n_boot: int = 2000,
    seed: int = 0,
    chance_guard: bool = True,
) -> list[Verdict]:
    """Table 6, "removing X hurts": the full model vs each ablation row of the paper, in every column (RAF-DB -> our
    clean images, RAF-DB (occlu) -> our real-occluded split, Occlu-FER -> not in the study; plus the study's
    artificial-occlusion column, which the paper has not).

    The verdict is that of the images x seeds comparison (:func:`orsalib.experiments.verdicts.
    compare_on_images_by_seed`): per image, full minus ablation correctness, pooled over the seeds both ran, CI by
    a bootstrap of images within each seed, p by McNemar on the pooled discordant pairs, n = images x seeds. The
    paired-by-seed t-test of the same claim is kept in ``over_seeds`` and the note. Records without per-image
    predictions (written before they were kept) fall back to the test over seeds, and the note says so.

    Args:
        runs: ``orsalib.experiments.ablations.read_results`` / ``run_ablations`` (``variant``, ``seed``, the
            accuracies as fractions, ``per_image_path``); None or empty: every claim ``not measured``.
        chance_guard: a claim whose full model or ablation is not above chance (1 / the classes seen) on the paired
            images gets no verdict (:func:`learned`).
    """
    runs = runs if runs is not None else pd.DataFrame(columns=["variant", "seed"])
    f = runs[runs["variant"] == full] if "variant" in runs else runs.iloc[:0]
    store = _PerImage()
    out = []
    for variant in (v for v in TABLE6 if v != full):
        part = variant.removeprefix("w/o ")
        g = runs[runs["variant"] == variant] if "variant" in runs else runs.iloc[:0]
        cols = [(col, metric, TABLE6[full][col], TABLE6[variant][col]) for col, metric in TABLE6_COLUMNS.items()]
        cols += [(name, metric, None, None) for name, metric in TABLE6_EXTRA.items()]
        for col, metric, pf, pv in cols:
            in_paper = pf is not None
            setting = _TABLE6_SETTINGS.get(col, col) if in_paper else f"{col}; not a column of the paper"
            claim = f"removing {part} hurts ({setting})"
            paper = f"{pf:.2f} vs {pv:.2f} (full vs {variant})" if in_paper else "not in the paper"
            pdelta = round(pf - pv, 2) if in_paper else None
            if metric is None:
                out.append(not_measured(claim, "Table 6", paper, f"the ablation study has no {col} evaluation set",
                                        paper_delta=pdelta, source=source, dataset=dataset))  # fmt: skip
                continue
            why = (f"variant {variant!r} not run" if g.empty else "full model not run" if f.empty
                   else f"no finite {metric} for both on a common seed")  # fmt: skip
            cond = ""
            if metric == "occluded_acc" and "occluded_condition" in runs and not f.empty:
                cond = f" ({f['occluded_condition'].iloc[0]})"
            fa, fb = _by_seed(f, metric, 100.0), _by_seed(g, metric, 100.0)
            note = f"{metric}{cond} per seed, last epoch; p: paired t-test over seeds"
            over = _over_seeds(claim, "Table 6", paper, fa, fb, paper_delta=pdelta, note=note, source=source,
                               dataset=dataset, why_missing=why)  # fmt: skip
            have, pa, pb, lacking = _paired_items(store, f, g, _seeds_of(fa, fb), metric)
            if over.verdict == NOT_MEASURED or not have:
                out.append(over if over.verdict == NOT_MEASURED else _with_note(over, _FALLBACK))
                continue
            both = {full: pd.concat(pa), variant: pd.concat(pb)}
            labels = both[full]["label"] if "label" in both[full] else None
            chance = 1.0 / labels.nunique() if labels is not None and labels.nunique() > 1 else None
            dead = _at_chance({k: (float(v["correct"].mean()), len(v)) for k, v in both.items()},
                              chance if chance_guard else None)  # fmt: skip
            if dead:
                out.append(not_measured(claim, "Table 6", paper, f"{metric}: {dead}", paper_delta=pdelta,
                                        source=source, dataset=dataset))  # fmt: skip
                continue
            n_img = "/".join(str(len(x)) for x in pa)
            note = (f"{metric}{cond}, last epoch: full vs {variant} on the same {n_img} images of seeds {have}, "
                    "paired per image; CI: bootstrap of images within each seed; p: McNemar on the pooled "
                    "discordant pairs; the verdict is that of images x seeds")  # fmt: skip
            v = compare_on_images_by_seed(claim, "Table 6", paper, [x["correct"].to_numpy() for x in pa],
                                          [x["correct"].to_numpy() for x in pb], have, paper_delta=pdelta,
                                          n_boot=n_boot, seed=seed,
                                          note=_join(note, _lacking_note(lacking)))  # fmt: skip
            out.append(_finish(with_over_seeds(v, over), source, dataset))
    return out


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _with_note(v: Verdict, note: str) -> Verdict:
    v.note = _join(v.note, note)
    return v


def _dataset_of(g: pd.DataFrame) -> str:
    return str(g["dataset"].iloc[0]) if "dataset" in g and len(g) else ""


def _num_classes(frames: Sequence[pd.DataFrame]) -> int:
    return int(max(max(int(x["label"].max()), int(x["pred"].max())) for x in frames)) + 1


def _dare_items(
    table: str, claim: str, paper: str, m: str, pw: list[pd.DataFrame], pwo: list[pd.DataFrame], have: list[int], *,
    pdelta: float | None, note: str, n_boot: int, seed: int, item: str, ours: str,
) -> Verdict:  # fmt: skip
    """The images (pixels) x seeds verdict of one with/without claim: per-item correctness for OA / top-1 / top-5
    (McNemar), a paired bootstrap over items recomputing AA / kappa (permutation test)."""
    unit = f"{item} x seeds"
    if m in ("AA", "kappa"):
        nc = _num_classes([*pw, *pwo])
        v = compare_metric_by_seed(claim, table, paper, m, [x["label"].to_numpy() for x in pw],
                                   [x["pred"].to_numpy() for x in pw], [x["pred"].to_numpy() for x in pwo], have, nc,
                                   paper_delta=pdelta, n_boot=n_boot, seed=seed, note=note, unit=unit)  # fmt: skip
        v.ours = ours
        return v
    col = "top5" if m == "top5" else "correct"
    return compare_on_images_by_seed(claim, table, paper, [x[col].to_numpy() for x in pw],
                                     [x[col].to_numpy() for x in pwo], have, paper_delta=pdelta, n_boot=n_boot,
                                     seed=seed, note=note, unit=unit)  # fmt: skip


def _dare_claims(
    table: str, groups: list[tuple[str, pd.DataFrame, dict, str]], metrics: Sequence[str], source: str,
    scale: Mapping[str, float], *, item: str = "images", n_boot: int = 2000, seed: int = 0,
) -> list[Verdict]:  # fmt: skip
    """With vs without DARELoss per group (claim stem, rows, paper {"with", "without"}, why missing) and metric:
    on items x seeds where the runs kept their per-item predictions (the over-seeds test beside it), else over
    seeds."""
    out = []
    store = _PerImage()
    for stem, g, ref, why in groups:
        wo = g[g["variant"] == "without"] if "variant" in g else g.iloc[:0]
        w = g[g["variant"] == "with"] if "variant" in g else g.iloc[:0]
        models = ", ".join(dict.fromkeys(g["model"].astype(str))) if "model" in g else ""
        for m in metrics:
            claim = f"DARELoss improves {stem.format(metric=_METRIC_LABELS[m])}"
            pw, pwo = ref["with"][m], ref["without"][m]
            paper = f"{pw:.2f} vs {pwo:.2f} (with vs without)"
            pdelta = round(pw - pwo, 2)
            sw, swo = _by_seed(w, m, scale.get(m, 1.0)), _by_seed(wo, m, scale.get(m, 1.0))
            note = f"{models}: last-epoch {m}{' x 100' if scale.get(m, 1.0) != 1.0 else ''} per seed; p: paired t-test"
            over = _over_seeds(claim, table, paper, sw, swo, paper_delta=pdelta, note=note, source=source,
                               dataset=_dataset_of(g), why_missing=why)  # fmt: skip
            have, fw, fwo, lacking = _paired_items(store, w, wo, _seeds_of(sw, swo), "test")
            if over.verdict == NOT_MEASURED or not have:
                out.append(over if over.verdict == NOT_MEASURED else _with_note(over, _FALLBACK))
                continue
            n_items = "/".join(str(len(x)) for x in fw)
            test = ("CI: paired bootstrap of the items of each seed, recomputing the metric; p: paired permutation "
                    "test" if m in ("AA", "kappa") else "CI: bootstrap of the items within each seed; p: McNemar on "
                    "the pooled discordant pairs")  # fmt: skip
            what = {"top5": "top-5 correctness", "OA": "correctness", "top1": "correctness"}.get(m, m)
            note_i = (f"{models}, last epoch: with vs without on the same {n_items} {item} of seeds {have}, paired "
                      f"per item ({what}{' x 100' if m == 'kappa' else ''}); {test}; the verdict is that of "
                      f"{item} x seeds")  # fmt: skip
            ours = f"{sw.loc[have].mean():.2f} vs {swo.loc[have].mean():.2f}"
            v = _dare_items(table, claim, paper, m, fw, fwo, have, pdelta=pdelta, ours=ours, item=item,
                            note=_join(note_i, _lacking_note(lacking)), n_boot=n_boot, seed=seed)  # fmt: skip
            out.append(_finish(with_over_seeds(v, over), source, _dataset_of(g)))
    return out


def _first_model(g: pd.DataFrame) -> pd.DataFrame:
    """Rows of the first model of a group (one verdict per claim); the others are listed as extra claims."""
    if "model" not in g or g.empty:
        return g
    return g[g["model"] == g["model"].iloc[0]]


def _scene_mode(task: str, model: str) -> tuple[str, str]:
    parts = str(task).split()
    mode = parts[1] if len(parts) > 1 and parts[1] in ("pixel", "patch") else ("patch" if "patch" in model else "pixel")
    return parts[0] if parts else "", mode


def table7_claims(
    runs: pd.DataFrame | None, *, source: str = NOTEBOOKS["Table 7"], n_boot: int = 2000, seed: int = 0
) -> list[Verdict]:
    """Table 7, "DARELoss improves SpectralFormer's OA / AA / kappa": with vs without, for each (scene, mode) of the
    paper (kappa x 100, as the paper prints it).

    The verdict is that of pixels x seeds, from each run's per-pixel predictions (``per_image``): OA per pixel
    (pooled correctness, bootstrap of pixels within each seed, McNemar); AA and kappa are not means over pixels, so
    their CI is a paired bootstrap over the pixels of each seed that recomputes the metric, and p a paired
    permutation test. The paired t-test over seeds is kept in ``over_seeds``; runs without per-pixel predictions
    fall back to it.

    Args:
        runs: ``orsalib.experiments.transfer.run_table7``'s runs (``task`` "<scene> <mode>", ``model``, ``variant``
            with/without, ``seed``, ``OA``, ``AA`` in %, ``kappa`` as a fraction, ``per_image``); None: every claim
            not measured.
    """
    runs = runs if runs is not None else pd.DataFrame(columns=["task", "model", "variant", "seed"])
    keys = [_scene_mode(t, m) for t, m in zip(runs.get("task", []), runs.get("model", []))]
    groups = []
    extra = []
    for (scene, mode), ref in TABLE7.items():
        mask = np.array([k == (scene, mode) for k in keys], dtype=bool)
        g = runs[mask] if len(runs) else runs
        stem = f"SpectralFormer {{metric}} on {_SCENES.get(scene, scene)} ({mode}-wise)"
        groups.append((stem, _first_model(g), ref, f"{scene} {mode}-wise not run"))
        for other in list(dict.fromkeys(g["model"]))[1:] if "model" in g and len(g) else []:
            extra.append((stem + f" [{other}]", g[g["model"] == other], ref, ""))
    return _dare_claims("Table 7", groups + extra, TABLE7_METRICS, source, {"kappa": 100.0}, item="pixels",
                        n_boot=n_boot, seed=seed)  # fmt: skip


def table8_claims(
    runs: pd.DataFrame | None, *, source: str = NOTEBOOKS["Table 8"], n_boot: int = 2000, seed: int = 0
) -> list[Verdict]:
    """Table 8, "DARELoss improves top-1 / top-5 on CIFAR-10": with vs without, for CrossViT and GFNet.

    The verdict is that of images x seeds, from each run's per-image predictions (``per_image``): top-1 and top-5
    correctness per test image, pooled over the seeds (bootstrap of images within each seed, McNemar). The paired
    t-test over seeds is kept in ``over_seeds``; runs without per-image predictions fall back to it.

    Args:
        runs: ``orsalib.experiments.transfer.run_dare_comparison``'s runs (``model``, ``family``, ``variant``,
            ``seed``, ``top1``, ``top5`` in %, ``per_image``); the ``dataset`` column says when it was not CIFAR-10.
    """
    runs = runs if runs is not None else pd.DataFrame(columns=["model", "family", "variant", "seed"])
    fam = runs["family"] if "family" in runs else runs.get("model", pd.Series(dtype=str)).str.split("_").str[0]
    groups, extra = [], []
    for family, ref in TABLE8.items():
        g = runs[fam.astype(str) == family] if len(runs) else runs
        stem = f"{_FAMILIES.get(family, family)} {{metric}} on CIFAR-10"
        groups.append((stem, _first_model(g), ref, f"no {family} model trained in this run"))
        for other in list(dict.fromkeys(g["model"]))[1:] if "model" in g and len(g) else []:
            extra.append((stem + f" [{other}]", g[g["model"] == other], ref, ""))
    return _dare_claims("Table 8", groups + extra, TABLE8_METRICS, source, {}, item="images", n_boot=n_boot,
                        seed=seed)  # fmt: skip


# ============================================================================= what the budget can resolve
def _n_study_of(v: Verdict, n_study: int | Mapping[str, int] | None) -> int | None:
    if n_study is None or isinstance(n_study, int):
        return n_study
    return next((int(n) for key, n in n_study.items() if key in v.claim), None)


def power_summary(verdicts: Sequence[Verdict], *, n_study: int | Mapping[str, int] | None = None) -> dict[str, Any]:
    """The minimum detectable differences of a notebook's claims, for its ``results/NN_*.json`` (claims without an MDE,
    e.g. two models that agree on every image, are left out).

    Args:
        verdicts: one table's claims (those ``not measured`` count only for the paper's deltas).
        n_study: items x seeds per claim of the ``study=True`` settings (an int, or ``{text in the claim: n}``,
            e.g. per scene); the expected MDE there is this run's MDE scaled by ``sqrt(n / n_study)`` (the spread of
            the per-item differences seen here; a better-trained pair disagrees less, so this is conservative).

    Returns:
        ``{"unit", "n" (median items x seeds per claim), "mde_median", "mde_min", "mde_max",
        "mde_over_seeds_median", "paper_delta_min", "paper_delta_max", "paper_deltas_detectable" ("k of m": paper
        deltas at or above their claim's MDE), "study_mde_median", "mde": {claim: MDE}}`` (points; None where not
        computable).
    """
    shown = [v for v in verdicts if v.verdict != NOT_MEASURED and math.isfinite(v.mde)]
    mdes = np.array([v.mde for v in shown], dtype=np.float64)
    over = np.array([v.over_seeds.get("mde", math.nan) if v.over_seeds else math.nan for v in shown], dtype=float)
    over = over[np.isfinite(over)]
    papers = [abs(v.paper_delta) for v in verdicts if v.paper_delta is not None]
    with_paper = [v for v in shown if v.paper_delta is not None]
    study = []
    for v in shown:
        n = _n_study_of(v, n_study)
        if n and v.n:
            study.append(v.mde * math.sqrt(v.n / n))

    def r(x: float | None) -> float | None:
        return None if x is None or not math.isfinite(x) else round(float(x), 2)

    return {
        "unit": ", ".join(dict.fromkeys(v.unit for v in shown)),
        "n": int(np.median([v.n for v in shown])) if shown else 0,
        "mde_median": r(float(np.median(mdes))) if mdes.size else None,
        "mde_min": r(float(mdes.min())) if mdes.size else None,
        "mde_max": r(float(mdes.max())) if mdes.size else None,
        "mde_over_seeds_median": r(float(np.median(over))) if over.size else None,
        "paper_delta_min": r(min(papers)) if papers else None,
        "paper_delta_max": r(max(papers)) if papers else None,
        "paper_deltas_detectable": f"{sum(abs(v.paper_delta) >= v.mde for v in with_paper)} of {len(with_paper)}",
        "study_mde_median": r(float(np.median(study))) if study else None,
        "mde": {v.claim: r(v.mde) for v in shown},
    }


def power_statement(
    verdicts: Sequence[Verdict],
    table: str,
    *,
    study: bool,
    study_settings: str = "",
    study_minutes: float | None = None,
    n_study: int | Mapping[str, int] | None = None,
    target: float = 2.0,
) -> str:
    """What this budget can resolve for one table, in plain words: the MDE (80 % power, alpha 0.05) against the
    paper's deltas, and (quick runs) what ``study=True`` runs, how long it takes and the MDE expected there."""
    ps = power_summary(verdicts, n_study=n_study)
    if ps["mde_median"] is None:
        return f"{table}: no claim measured in this run, so no minimum detectable difference."
    pmin, pmax = ps["paper_delta_min"], ps["paper_delta_max"]
    paper = f"The paper's {table} deltas are {pmin:.2f}-{pmax:.2f} points" if pmin is not None else "The paper " \
        "gives no deltas"  # fmt: skip
    head = (f"{table}: this run detects differences >= {ps['mde_median']:.2f} points (80 % power, alpha 0.05; median "
            f"MDE of {len(ps['mde'])} claims, range {ps['mde_min']:.2f}-{ps['mde_max']:.2f}, "
            f"{ps['n']} {ps['unit']} per claim)")  # fmt: skip
    if ps["mde_over_seeds_median"] is not None:
        head += f"; paired over seeds only it would be {ps['mde_over_seeds_median']:.2f}"
    text = f"{head}. {paper}; {ps['paper_deltas_detectable']} are at or above their claim's MDE."
    if study:
        return text + " This is the powered run (study=True)."
    when = f"about {_duration(study_minutes)} on 2 CPU cores" if study_minutes else "run time: see the title cell"
    expect = (f"; expected MDE there about {ps['study_mde_median']:.2f} points at the disagreement seen here"
              if ps["study_mde_median"] is not None else "")  # fmt: skip
    settings = f"{study_settings}; {when}" if study_settings else when
    if ps["mde_median"] <= target:
        return text + f" Differences of about {target:g} points are resolvable at this budget."
    return text + f" Run with study=True ({settings}) to resolve differences of about {target:g} points{expect}."


def _duration(minutes: float) -> str:
    return f"{minutes:.0f} minutes" if minutes < 90 else f"{minutes / 60:.1f} hours"


# ============================================================================= the shared file
def verdicts_path(run_name: str) -> Path:
    """``outputs/<run_name>/results/verdicts.json``."""
    return run_dir(run_name) / "results" / "verdicts.json"


def expected_claims() -> list[Verdict]:
    """Every claim of Tables 2, 3, 4, 6, 7, 8, as ``not measured`` placeholders saying which notebook measures it."""
    out = []
    for label, nb in BASELINES.items():
        none = {label: None}
        for v in (*table2_claims({}, _MAIN, none), *table3_claims({}, _MAIN, none), *table4_claims({}, _MAIN, none)):
            v.source, v.note = nb, f"no result yet: measured by notebook {nb}"
            out.append(v)
    for table, fn in (("Table 6", table6_claims), ("Table 7", table7_claims), ("Table 8", table8_claims)):
        for v in fn(None):
            v.source, v.note = NOTEBOOKS[table], f"no result yet: measured by notebook {NOTEBOOKS[table]}"
            out.append(v)
    return out


def _key(v: Verdict) -> tuple[str, str]:
    return (v.table, v.claim)


def _order(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """Grouped by table (paper order), the expected claims first in their canonical order, then the others."""
    canon = {_key(v): i for i, v in enumerate(expected_claims())}
    rank = {t: i for i, t in enumerate(CLAIM_TABLES)}
    idx = {_key(v): i for i, v in enumerate(verdicts)}
    return sorted(verdicts, key=lambda v: (rank.get(v.table, len(rank)), _key(v) not in canon,
                                           canon.get(_key(v), 0), idx[_key(v)]))  # fmt: skip


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path`` (POSIX), so two notebooks merging at once lose nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as f:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - non-POSIX
            pass
        yield


def load_verdicts(run_name: str, complete: bool = True) -> list[Verdict]:
    """The verdicts of a run (``[]`` when none); with ``complete``, every expected claim absent from the file is
    added as ``not measured``."""
    path = verdicts_path(run_name)
    have = read_verdicts(path) if path.exists() else []
    if complete:
        keys = {_key(v) for v in have}
        have = have + [v for v in expected_claims() if _key(v) not in keys]
    return _order(have)


def record_verdicts(run_name: str, verdicts: Sequence[Verdict], **context: Any) -> Path:
    """Merge ``verdicts`` into ``outputs/<run_name>/results/verdicts.json`` and return its path.

    Keyed by (table, claim): a row of the same claim is replaced, never duplicated; other rows are kept; every
    expected claim still absent is written as ``not measured``, so the file always lists every claim of Tables 2,
    3, 4, 6, 7 and 8. The write is atomic and the merge runs under a lock. ``context`` is stored beside the rows.
    """
    bad = [v.verdict for v in verdicts if v.verdict not in VERDICTS]
    if bad:
        raise ValueError(f"unknown verdicts {bad}; expected one of {VERDICTS}")
    path = verdicts_path(run_name)
    with _locked(path):
        merged: dict[tuple[str, str], Verdict] = {}
        old_context: dict[str, Any] = {}
        if path.exists():
            try:
                old_context = {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items()
                               if k not in ("verdicts", "counts")}  # fmt: skip
                merged = {_key(v): v for v in read_verdicts(path)}
            except (ValueError, TypeError) as e:
                print(f"verdicts: {path} was unreadable ({e}); rewritten from this notebook's claims")
        for v in verdicts:
            merged[_key(v)] = v
        for v in expected_claims():
            merged.setdefault(_key(v), v)
        rows = _order(list(merged.values()))
        counts = {k: sum(v.verdict == k for v in rows) for k in VERDICTS}
        ctx = {**old_context, **context, "run_name": run_name, "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "counts": counts}  # fmt: skip
        return write_verdicts(rows, path, **ctx)


def verdict_summary(run_name: str, tables: Sequence[str] = CLAIM_TABLES) -> pd.DataFrame:
    """The verdict table of a run (every claim of ``tables``; missing ones ``not measured``), one row per claim:
    table, claim, paper, paper Δ, ours, delta, 95% CI, p, n, MDE, verdict, source. Points (%), A - B."""
    vs = [v for v in load_verdicts(run_name) if v.table in tables]
    df = verdict_table(vs)
    df["source"] = [v.source for v in vs]
    return df


def verdict_counts(verdicts: Sequence[Verdict] | pd.DataFrame) -> dict[str, int]:
    """``{"holds": k, "reversed": k, "not resolved": k, "not measured": k}``."""
    got = list(verdicts["verdict"]) if isinstance(verdicts, pd.DataFrame) else [v.verdict for v in verdicts]
    return {k: got.count(k) for k in VERDICTS}


def verdict_report(run_name: str, width: int = 64) -> str:
    """Plain text for a terminal: the counts, then one line per claim: table, claim (cut to ``width``), the paper's
    delta, ours with its 95 % CI, the verdict."""
    rows = verdict_summary(run_name).to_dict(orient="records")
    counts = verdict_counts(pd.DataFrame(rows, columns=["verdict"]))
    lines = [f"verdicts ({verdicts_path(run_name)}): " + ", ".join(f"{n} {k}" for k, n in counts.items())]

    def num(x: Any) -> str:
        return f"{x:+.2f}" if isinstance(x, (int, float)) and math.isfinite(x) else "-"

    for r in rows:
        claim = r["claim"] if len(r["claim"]) <= width else r["claim"][: width - 3] + "..."
        lines.append(f"  {r['table']:<8} {claim:<{width}} paper {num(r['paper Δ']):>6}  ours {num(r['delta']):>6} "
                     f"{r['95% CI']:<17} {r['verdict']}")  # fmt: skip
    return "\n".join(lines)


__all__ = [
    "BASELINES",
    "CLAIM_TABLES",
    "NOT_MEASURED",
    "PAPER_RATIOS",
    "SCENE_LABELS",
    "expected_claims",
    "load_verdicts",
    "paper_column",
    "per_image_correct",
    "power_statement",
    "power_summary",
    "real_column",
    "record_verdicts",
    "table2_claims",
    "table3_claims",
    "table4_claims",
    "table6_claims",
    "table7_claims",
    "table8_claims",
    "verdict_counts",
    "verdict_report",
    "verdict_summary",
    "verdict_table",
    "verdicts_path",
]
