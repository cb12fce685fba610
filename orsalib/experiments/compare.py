"""The like-for-like comparison of notebook 50 (paper Tables 2-4 analogues).

Five models, the same data, epochs, seeds and evaluation pixels:

- ``main``: ORSANet with the profile's priors (``cpu``: ``synth-detected``, networks that fail under occluders the way
  MobileFaceNet and SegFace do); notebook 40's run;
- ``oracle``: the same ORSANet with ground-truth priors, the labelled **upper bound** (SynthFER only: real photographs
  have no ground truth); occluders never degrade these priors;
- ``twin``: the prior-free twin (ORSANet's image branch, no priors, no MCM; registry ``baseline_of``);
- ``alternative``: what a user would pick instead, timm ``resnet18`` from scratch (``cpu`` and ``smoke`` profiles);
- ``ran``: RAN with a backbone that learns at the profile's size, trained as notebook 80 trains it (its own loss: the
  region biased loss, no DARE / LSCE warm-up; the folder is notebook 80's, so each is trained once).

ORSANet, the twin and resnet18 share the profile's recipe. Each model sees the priors of its own source: the sweep
builds the (deterministic, identical) occluded copies once and, per prior source, re-detects their priors on the
occluded pixels through the prior cache.

Seeds are the unit of a method comparison: every model that a claim compares (main, twin, alternative, RAN) is
trained once per seed of ``cfg.seeds`` (the first in the folders above, the others in ``<folder>_seed<k>``); the
oracle upper bound makes no claim and is trained once. A run's row name is the model name for the first seed and
``<name>@s<k>`` for the others; :attr:`Contender.method` and :attr:`Contender.seed` say which is which.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import registry
from ..config import RunConfig, apply_overrides
from ..engine.evaluate import SweepResult, build_conditions, evaluate_conditions, sweep_table
from ..models import model_meta
from ..paths import run_dir
from .fer import FERData, prepare_fer_data
from .parallel import side_by_side
from .ran import ran_config, region_loss_term
from .runs import baseline_config, load_or_train, train_run, train_status

#: The model a user would pick instead of ORSANet, per profile (None: not part of that profile's comparison).
ALTERNATIVE: dict[str, str | None] = {"smoke": "resnet18_cpu", "cpu": "resnet18_cpu", "paper": None}
#: The roles, in table order.
ROLES: tuple[str, ...] = ("main", "oracle", "twin", "alternative", "ran")
#: The claims' label of each baseline role (orsalib.experiments.claims.BASELINES).
CLAIM_LABELS: dict[str, str] = {"twin": "the prior-free baseline", "alternative": "resnet18", "ran": "RAN"}


@dataclass
class Contender:
    """One model of the comparison: its row name, role, config and train folder."""

    name: str  # row name in the tables (the registered model name; "<name>-oracle" for the upper bound)
    role: str  # one of ROLES
    cfg: RunConfig
    train_dir: Path
    criterion_extra: Callable | None = None
    info: dict[str, Any] = field(default_factory=dict)
    method: str = ""  # the model name shared by every seed ("" = name)
    seed: int = 0

    @property
    def uses_priors(self) -> bool:
        return bool(model_meta(self.cfg.model.name).get("uses_priors", False))

    @property
    def claim_label(self) -> str | None:
        return CLAIM_LABELS.get(self.role)


#: roles trained once per seed (those a claim compares); the others once
SEEDED_ROLES: tuple[str, ...] = ("main", "twin", "alternative", "ran")


def seed_dir(path: Path, seed: int, first: int) -> Path:
    """The train folder of ``seed``: ``path`` for the first seed, ``<path>_seed<k>`` for the others."""
    return path if seed == first else path.with_name(f"{path.name}_seed{seed}")


def contenders(
    cfg: RunConfig,
    run_name: str,
    *,
    main_dir: str | Path | None = None,
    roles: Sequence[str] = ROLES,
    seeds: Sequence[int] | None = None,
) -> list[Contender]:
    """The models of the comparison beside the ORSANet run ``cfg`` (roles not available on this data are left out),
    each model of :data:`SEEDED_ROLES` once per seed.

    Args:
        cfg: notebook 40's config (the profile's model, priors and recipe).
        run_name: ``outputs/<run_name>/`` holds every train folder (``train``, ``50_oracle/train``, ``baseline/train``,
            ``50_resnet18/train``, ``80_ran_train``; ``<folder>_seed<k>`` for the seeds after the first).
        main_dir: ORSANet's train folder (default ``outputs/<run_name>/train``, notebook 40's).
        roles: which of :data:`ROLES` to include.
        seeds: training seeds (default ``cfg.seeds``; the first must be ``cfg.seed``, notebook 40's run).
    """
    seeds = [int(s) for s in (seeds if seeds is not None else cfg.seeds)] or [cfg.seed]
    if seeds[0] != cfg.seed:
        seeds = [cfg.seed] + [s for s in seeds if s != cfg.seed]
    out = []
    for k, s in enumerate(seeds):
        scfg = cfg if s == cfg.seed else apply_overrides(cfg, {"seed": s})
        for c in _contenders_of(scfg, run_name, main_dir=main_dir, roles=roles if k == 0 else
                                [r for r in roles if r in SEEDED_ROLES]):  # fmt: skip
            c.method, c.seed = c.name, s
            if k:
                c.name, c.train_dir = f"{c.name}@s{s}", seed_dir(c.train_dir, s, seeds[0])
            out.append(c)
    return out


def _contenders_of(
    cfg: RunConfig, run_name: str, *, main_dir: str | Path | None = None, roles: Sequence[str] = ROLES
) -> list[Contender]:
    """The models of one seed (:func:`contenders`)."""
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise ValueError(f"unknown roles {bad}; choose from {list(ROLES)}")
    base = run_dir(run_name)
    out = [Contender(cfg.model.name, "main", cfg, Path(main_dir) if main_dir else base / "train")]
    truth = cfg.data.dataset in registry.DATASETS and registry.DATASETS.meta(cfg.data.dataset).get("ground_truth")
    if "oracle" in roles and cfg.prior.source != "oracle" and truth:
        ocfg = apply_overrides(cfg, {"prior.source": "oracle"})
        out.append(Contender(f"{cfg.model.name}-oracle", "oracle", ocfg, base / "50_oracle" / "train"))
    if "twin" in roles:
        tcfg = baseline_config(cfg)
        out.append(Contender(tcfg.model.name, "twin", tcfg, base / "baseline" / "train"))
    alt = ALTERNATIVE.get(cfg.profile)
    if "alternative" in roles and alt:
        acfg = apply_overrides(cfg, {"model.name": alt})
        out.append(Contender(alt, "alternative", acfg, base / "50_resnet18" / "train"))
    if "ran" in roles:
        rcfg = ran_config(cfg)
        extra = region_loss_term(1.0, float(rcfg.model.extra.get("margin", 0.1)))
        out.append(Contender(rcfg.model.name, "ran", rcfg, base / "80_ran_train", criterion_extra=extra))
    return out


#: Roles in the order their trainings start when several run side by side (longest first; cpu profile, 2 cores:
#: the oracle ORSANet ~250 s, resnet18 ~180 s, RAN ~170 s, the twin ~130 s).
TRAIN_ORDER: tuple[str, ...] = ("main", "oracle", "alternative", "ran", "twin")


def load_contenders(
    items: Sequence[Contender], data: FERData, *, which: str = "last", train_main: bool = False
) -> dict[str, Any]:
    """The trained model of every contender (``data`` is the first contender's prepared data, shared by every
    contender with the same prior source). A missing model is trained in its folder first; the main model only when
    ``train_main`` (else a FileNotFoundError says to run notebook 40). Fills ``info``; returns ``{name: model}``.

    When several models are missing and the device is a CPU with several cores, they are trained side by side in
    worker processes (:mod:`orsalib.experiments.parallel`; ``ORSA_PARALLEL_RUNS=1`` trains one at a time)."""
    models: dict[str, Any] = {}
    own: dict[str, FERData] = {items[0].cfg.prior.source: data}
    first = items[0].seed
    may_train = {c.name: train_main or c.role != "main" or c.seed != first for c in items}
    todo = [c for c in items if may_train[c.name] and train_status(c.train_dir) in ("missing", "running")]
    for c in todo:  # prior caches are built here, once, before any worker reads them
        if c.cfg.prior.source not in own:
            own[c.cfg.prior.source] = prepare_fer_data(c.cfg)
    todo.sort(key=lambda c: TRAIN_ORDER.index(c.role) if c.role in TRAIN_ORDER else len(TRAIN_ORDER))
    tasks = [(c.name, dict(cfg=c.cfg, run_dir=str(c.train_dir), criterion_extra=c.criterion_extra)) for c in todo]
    plan, seconds = side_by_side(train_run, tasks, items[0].cfg.device)
    spent = {c.name: s for c, s in zip(todo, seconds)}
    for c in items:
        src = c.cfg.prior.source
        if src not in own:
            own[src] = prepare_fer_data(c.cfg)
        model, _, info = load_or_train(c.cfg, c.train_dir, train_if_missing=may_train[c.name],
                                       data=own[src], which=which, criterion_extra=c.criterion_extra)  # fmt: skip
        if c.name in spent:
            info.update(trained_here=True, minutes=round(spent[c.name] / 60, 2), parallel=plan.workers)
        c.info = {"model": c.name, "method": c.method or c.name, "seed": c.seed, "role": c.role,
                  "priors": src if c.uses_priors else "none", **info}  # fmt: skip
        models[c.name] = model
    return models


def like_for_like_sweep(
    items: Sequence[Contender],
    models: Mapping[str, Any],
    manifest: pd.DataFrame,
    *,
    ratios: Sequence[float] = (0.0, 0.1, 0.2, 0.3),
    semantic: Sequence[str] = (),
    seed: int = 0,
    n_boot: int = 1000,
    data: FERData | None = None,
    device: str = "auto",
    max_samples: int | None = None,
    progress: bool = False,
) -> SweepResult:
    """Every contender on the same evaluation conditions, each with the priors of its own source.

    The conditions are built once per prior source (the occluded copies are deterministic: the same files and rows for
    every source; only the priors differ, computed on the occluded pixels); prior-free models use the main model's.
    """
    main = items[0]
    groups: dict[str, list[Contender]] = {}
    for c in items:
        groups.setdefault(c.cfg.prior.source if c.uses_priors else main.cfg.prior.source, []).append(c)
    long_parts, preds, main_conds, own = [], {}, None, {}
    for src, group in groups.items():
        gcfg = group[0].cfg if group[0].uses_priors else main.cfg
        conds = build_conditions(manifest, gcfg, ratios, ("rectangle",), seed, semantic=semantic,
                                 data=data if src == main.cfg.prior.source else None, device=device,
                                 max_samples=max_samples, progress=progress)  # fmt: skip
        long, p = evaluate_conditions({c.name: models[c.name] for c in group}, conds, gcfg.data.num_classes,
                                      device=device, n_boot=n_boot, seed=seed, progress=progress)  # fmt: skip
        long_parts.append(long)
        preds.update(p)
        if src == main.cfg.prior.source:
            main_conds = conds
        else:
            own.update({c.name: list(conds) for c in group})
    long = pd.concat(long_parts, ignore_index=True)
    order = {c.name: i for i, c in enumerate(items)}
    long = long.sort_values("model", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    return SweepResult(long=long, table=sweep_table(long), predictions=preds, conditions=list(main_conds or []),
                       model_conditions=own)


def contender_table(items: Sequence[Contender]) -> pd.DataFrame:
    """One row per contender: role, priors, parameters of the recipe that differ, train folder and epoch."""
    rows = []
    for c in items:
        rows.append({
            "model": c.name, "role": c.role, "priors": c.cfg.prior.source if c.uses_priors else "none",
            "epochs": c.cfg.train.epochs, "loss": "CE + region biased" if c.role == "ran" else
            ("CE + DARE" if c.cfg.train.dare else "CE"), "seed": c.cfg.seed, "method": c.method or c.name,
            **{k: c.info.get(k) for k in ("epoch", "trained_here", "minutes", "run_dir")},
        })  # fmt: skip
    return pd.DataFrame(rows)


def methods(items: Sequence[Contender]) -> dict[str, tuple[str, int]]:
    """``{run name: (method, seed)}`` of the contenders (for :func:`orsalib.experiments.claims.by_method`)."""
    return {c.name: (c.method or c.name, c.seed) for c in items}


def seed_table(long: pd.DataFrame, items: Sequence[Contender]) -> pd.DataFrame:
    """Accuracy (%) per method and condition over its seeds: ``mean ± sd (k seeds)``; rows in contender order."""
    of = methods(items)
    df = long.assign(method=long["model"].map(lambda m: of.get(m, (m, 0))[0]))
    order = list(dict.fromkeys(c.method or c.name for c in items))
    cols = list(dict.fromkeys(df["condition"]))
    rows = {}
    for m in order:
        g = df[df["method"] == m]
        row = {}
        for cond in cols:
            x = 100 * g.loc[g["condition"] == cond, "accuracy"].astype(float)
            row[cond] = (f"{x.mean():.2f} ± {x.std(ddof=1):.2f} ({len(x)} seeds)" if len(x) > 1
                         else f"{x.mean():.2f} (1 seed)" if len(x) else "")  # fmt: skip
        rows[m] = row
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols)


__all__ = ["ALTERNATIVE", "CLAIM_LABELS", "ROLES", "SEEDED_ROLES", "Contender", "contender_table", "contenders",
           "like_for_like_sweep", "load_contenders", "methods", "seed_dir", "seed_table"]  # fmt: skip
