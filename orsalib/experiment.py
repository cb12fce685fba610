"""The glue the FER notebooks (40 training, 50 evaluation, 60 ablations, 80 RAN) and ``orsa train`` call.

One run, end to end (DESIGN.md, "data flow of one training run")::

    manifest = load_manifest(cfg.data)                       # orsalib.data.sources
    store = PriorCache().ensure(manifest, cfg.prior, ...)    # priors computed once (None for source "none")
    loaders = build_loaders(manifest, cfg.data, ...)         # balanced sampler, augmentation
    model = create_model(cfg.model.name, ...)                # Table 6 switches from cfg.model
    fit(model, loaders["train"], loaders["valid"], build_criterion(cfg.train), cfg.train, run_dir)

A trained run lives in ``outputs/<run_name>/train/`` (``config.json``, ``metrics.jsonl``, ``summary.json``,
``checkpoints/{best,last}.pt``); :func:`load_trained` rebuilds the model from there.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .config import RunConfig, from_dict, load_config, load_profile
from .engine import ddp
from .engine.trainer import CheckpointError, FitResult, fit, load_checkpoint

TRAIN_SUBDIR = "train"


@dataclass
class FERData:
    """Everything a FER run needs from the data side.

    Attributes:
        manifest: the dataset manifest (docs/contracts.md).
        loaders: one DataLoader per split (``train``, ``valid``, and e.g. SynthFER's ``valid_occluded``).
        prior_store: the prior cache's store (``store.get(i, flipped)``), or None (prior source ``none`` or the
            released in-model priors).
        class_names: canonical emotion names of the classes, in label order.
    """

    manifest: Any
    loaders: dict[str, Any]
    prior_store: Any
    class_names: list[str]


def _rank0_first(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 first (it may build caches on disk), then on the other ranks (which then read them)."""
    if not ddp.is_distributed():
        return fn()
    if ddp.is_main_process():
        out = fn()
        ddp.barrier()
        return out
    ddp.barrier()
    return fn()


def prepare_fer_data(cfg: RunConfig, distributed: bool = False) -> FERData:
    """Manifest -> prior cache -> loaders for ``cfg`` (``load_manifest`` -> ``PriorCache.ensure`` -> ``build_loaders``).

    The dataset does not depend on the run seed (SynthFER is generated with seed 0), so every seed of a multi-seed
    study sees the same images. With ``prior.mode="released"`` no cache is built: the model recomputes its priors.
    """
    from .data.labels import emotions
    from .data.loaders import build_loaders
    from .data.sources import load_manifest

    manifest = _rank0_first(lambda: load_manifest(cfg.data, seed=0))
    store = None
    if cfg.prior.source != "none" and cfg.prior.mode == "cached":
        from .priors.cache import PriorCache
        from .utils import resolve_device

        dev = resolve_device(cfg.device)
        store = _rank0_first(lambda: PriorCache().ensure(manifest, cfg.prior, cfg.data.image_size, dev))
    loaders = build_loaders(
        manifest, cfg.data, cfg.train.batch_size, seed=cfg.seed, prior_store=store, distributed=distributed
    )
    return FERData(
        manifest=manifest, loaders=loaders, prior_store=store, class_names=list(emotions(cfg.data.num_classes))
    )


def _orsanet_options(cfg: RunConfig) -> dict[str, Any]:
    m = cfg.model
    opts: dict[str, Any] = dict(
        img_size=cfg.data.image_size,
        prior_routing=m.prior_routing,
        seg_prior=m.seg_prior,
        cross_interaction=m.cross_interaction,
        multi_scale=m.multi_scale,
        landmark_reintegration=m.landmark_reintegration,
        drop_path=m.drop_path,
    )
    if m.backbone_weights:
        opts["backbone_weights"] = m.backbone_weights
    if cfg.prior.mode == "released" and "baseline" not in m.name:
        opts.update(priors_in_model=True, prior_mode="released")
    return opts


def build_fer_model(cfg: RunConfig, *, load_prior_weights: bool = True, **overrides: Any) -> nn.Module:
    """``create_model(cfg.model.name, ...)`` with the class count and the ``cfg.model`` switches.

    ORSANet variants get the Table 6 switches (seg_prior, cross_interaction, multi_scale, landmark_reintegration),
    prior routing, drop path and the input size; other models (RAN, baselines) get ``num_classes`` only.
    ``cfg.model.extra`` and then ``overrides`` are applied last.

    With ``prior.mode="released"`` the frozen prior networks live inside the model; their weights are loaded
    here from ``prior.landmark_weights`` / ``prior.parser_weights`` (default: ``data/weights/``), so a run never
    trains on randomly initialised priors. ``load_prior_weights=False`` skips that (a checkpoint that holds
    them is loaded next).

    Raises:
        FileNotFoundError: a prior network's weights file is missing (the message names it and its format).
        orsalib.priors.landmarks.WeightsError: the file does not hold that network's weights.
    """
    from .models import create_model

    kw: dict[str, Any] = {"num_classes": cfg.data.num_classes}
    if cfg.model.name.startswith("orsanet"):
        kw.update(_orsanet_options(cfg))
    kw.update(dict(cfg.model.extra or {}))
    kw.update(overrides)
    model = create_model(cfg.model.name, **kw)
    if load_prior_weights:
        load_in_model_prior_weights(model, cfg.prior)
    return model


def load_in_model_prior_weights(model: nn.Module, prior_cfg: Any) -> list[str]:
    """Load the frozen MobileFaceNet / SegFace built inside ``model`` (if any) from the files of ``prior_cfg``.

    Returns:
        the attribute names loaded (``face_landback``, ``face_segment``); [] when the model holds neither.
    """
    from .priors.landmarks import load_weights_file
    from .priors.sources import MobileFaceNetSource, SegFaceSource

    loaded = []
    for attr, source, path in (
        ("face_landback", MobileFaceNetSource, prior_cfg.landmark_weights),
        ("face_segment", SegFaceSource, prior_cfg.parser_weights),
    ):
        net = getattr(model, attr, None)
        if net is None:
            continue
        # same file, defaults and messages as the cached path's prior sources; the model keeps the nets frozen
        load_weights_file(path or source.default_weights, net, what=source.what, origin=source.origin,
                          submodule_prefixes=(f"{attr}.",))  # fmt: skip
        loaded.append(attr)
    return loaded


def _eval_splits(loaders: dict[str, Any]) -> tuple[str, list[str]]:
    names = [s for s in loaders if s != "train"]
    if not names:
        raise ValueError(f"the data has no evaluation split (splits: {sorted(loaders)}); expected 'valid' or 'test'")
    val = "valid" if "valid" in loaders else ("test" if "test" in loaders else names[0])
    return val, [s for s in names if s != val]


def train_fer(
    cfg: RunConfig,
    run_dir: str | Path | None = None,
    data: FERData | None = None,
    model: nn.Module | None = None,
    resume: bool = False,
    criterion_extra: Callable | None = None,
) -> FitResult:
    """Train a FER model as configured: seed, data, model, criterion (release recipe), :func:`fit`.

    The best epoch is selected on ``valid`` (the release's name for the test split); when the data has no separate
    ``test`` split the summary marks that selection as optimistic (``eval_is_test``). The other evaluation splits
    (SynthFER: ``valid_occluded``) are evaluated every epoch too.

    Args:
        cfg: the resolved run config.
        run_dir: output folder; default ``outputs/<run_name>/train``.
        data: prepared data (default :func:`prepare_fer_data`).
        model: a model (default :func:`build_fer_model`).
        resume: continue from ``run_dir/checkpoints/last.pt`` if present.
        criterion_extra: ``extra(out, batch) -> (weighted tensor, name)`` added to the loss (RAN region loss).
    """
    from .losses import build_criterion
    from .paths import run_dir as _run_dir
    from .utils import seed_everything

    cfg.validate()
    seed_everything(cfg.seed)
    rd = Path(run_dir) if run_dir is not None else _run_dir(cfg.run_name) / TRAIN_SUBDIR
    data = data or prepare_fer_data(cfg, distributed=ddp.is_distributed())
    if model is None:
        seed_everything(cfg.seed)  # model init independent of what data preparation consumed
        model = build_fer_model(cfg)
    val, extra = _eval_splits(data.loaders)
    return fit(
        model,
        data.loaders["train"],
        data.loaders[val],
        build_criterion(cfg.train, extra=criterion_extra),
        cfg.train,
        rd,
        device=cfg.device,
        seed=cfg.seed,
        eval_is_test="test" not in data.loaders,
        resume=resume,
        class_names=data.class_names,
        extra_eval_loaders={s: data.loaders[s] for s in extra},
        config_to_save=cfg,
        num_classes=cfg.data.num_classes,
    )


def _find_run(run_dir: str | Path) -> Path:
    p = Path(run_dir)
    if (p / "config.json").is_file():
        return p
    if (p / TRAIN_SUBDIR / "config.json").is_file():
        return p / TRAIN_SUBDIR
    raise FileNotFoundError(
        f"no trained run in {str(p)!r}: expected config.json and checkpoints/ (as written by train_fer) there or in "
        f"{str(p / TRAIN_SUBDIR)!r}"
    )


def load_trained(run_dir: str | Path, which: str = "best", map_location: str = "cpu") -> tuple[nn.Module, RunConfig]:
    """Rebuild a trained model from ``run_dir`` (``config.json`` + ``checkpoints/best.pt`` or ``last.pt``).

    Args:
        run_dir: a run's train folder (``outputs/<run_name>/train``) or the run folder above it.
        which: ``"best"`` (falls back to last when no best exists) or ``"last"``.
        map_location: where to load the weights.

    Returns:
        ``(model in eval mode, RunConfig)``.
    """
    if which not in ("best", "last"):
        raise ValueError(f"which={which!r} is not allowed; choose 'best' or 'last'")
    rd = _find_run(run_dir)
    try:
        payload = json.loads((rd / "config.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{rd / 'config.json'} is not valid JSON ({e}); expected the file written by train_fer") from e
    cfg = from_dict(payload.get("config", payload))
    ck_dir = rd / "checkpoints"
    path = ck_dir / f"{which}.pt"
    if which == "best" and not path.is_file():
        path = ck_dir / "last.pt"
    ckpt = load_checkpoint(path, map_location=map_location)
    model = build_fer_model(cfg, load_prior_weights=False)  # the checkpoint holds any in-model prior nets
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit model {cfg.model.name!r} built from {rd / 'config.json'}: "
            f"{str(e)[:300]}"
        ) from e
    model.eval()
    model.checkpoint_epoch = int(ckpt.get("epoch", 0))  # which epoch these weights are from
    return model, cfg


# ----------------------------------------------------------------------------- CLI
def _parse_value(text: str) -> Any:
    """``--set`` values: JSON first (numbers, true/false, lists), then YAML, else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        import yaml

        v = yaml.safe_load(text)
        return text if v is None else v
    except Exception:  # noqa: BLE001 - anything unparsable is a string
        return text


def _parse_sets(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.epochs=3")
        k, v = item.split("=", 1)
        out[k.strip()] = _parse_value(v.strip())
    return out


def _set_dotted(d: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        if not isinstance(d.get(p), dict):
            raise ValueError(f"unknown config section {p!r} in --set {key}=...")
        d = d[p]
    if parts[-1] not in d:
        raise ValueError(f"unknown config key {key!r}; known keys here: {sorted(d)}")
    d[parts[-1]] = value


def resolve_cli_config(args: argparse.Namespace) -> RunConfig:
    """The RunConfig of ``orsa train`` arguments (profile or config file, then run name / seed / device / --set)."""
    sets = _parse_sets(args.set or [])
    top = {
        k: v for k, v in (("run_name", args.run_name), ("seed", args.seed), ("device", args.device)) if v is not None
    }
    if args.config:
        d = load_config(args.config).to_dict()
        for k, v in {**top, **sets}.items():
            _set_dotted(d, k, v)
        return from_dict(d)
    return load_profile(args.profile, {**sets, **top})


def build_cli_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orsa train", description="Train a FER model (outputs/<run-name>/train/).")
    p.add_argument("--profile", default="cpu", help="smoke | cpu | paper (default cpu)")
    p.add_argument("--config", default="", help="a JSON/YAML RunConfig file (overrides --profile)")
    p.add_argument("--run-name", default=None, help="output folder name under outputs/")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--resume", action="store_true", help="continue from checkpoints/last.pt of the run")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. --set train.epochs=3")
    p.add_argument("--nproc-per-node", type=int, default=1, help="> 1: launch DDP through torchrun")
    return p


def cli_train(argv: list[str] | None = None, distributed: bool = False) -> int:
    """``orsa train --profile P | --config FILE --run-name R [--resume] [--set k=v ...] [--nproc-per-node N]``."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_cli_parser().parse_args(argv)
    if args.nproc_per_node > 1 and not ddp.launched_by_torchrun():
        rest, skip = [], False
        for a in argv:  # forward everything but the launcher option
            if skip:
                skip = False
                continue
            if a == "--nproc-per-node":
                skip = True
                continue
            if a.startswith("--nproc-per-node="):
                continue
            rest.append(a)
        return ddp.launch(args.nproc_per_node, rest)
    try:
        cfg = resolve_cli_config(args)
    except ValueError as e:
        print(f"orsa train: error: {e}", file=sys.stderr)
        return 2
    res = train_fer(cfg, resume=args.resume)
    if ddp.is_main_process():
        last, best = res.last, res.best
        print(
            f"done: last epoch {last.get('epoch')} val {100 * last.get('val_acc', float('nan')):.2f}% | best epoch "
            f"{res.best_epoch} val {100 * best.get('val_acc', float('nan')):.2f}% | {res.run_dir}"
        )
    return 0


__all__ = [
    "FERData",
    "build_fer_model",
    "load_in_model_prior_weights",
    "cli_train",
    "load_trained",
    "prepare_fer_data",
    "resolve_cli_config",
    "train_fer",
]
