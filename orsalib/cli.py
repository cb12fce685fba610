"""``orsa`` / ``python -m orsalib``: one command per thing a user does; every subcommand's arguments live here.

    orsa reproduce --profile cpu --run-name default [--only 10,40] [--list]
    orsa train --profile cpu --run-name myrun [--resume] [--set train.epochs=3 ...] [--nproc-per-node 2]
    orsa evaluate --run-name myrun
    orsa priors --profile cpu --source oracle
    orsa check --profile paper --data-root /data/RAF-DB
    orsa predict --run-name myrun faces/
    orsa export --run-name myrun --format onnx
    orsa flops orsanet_large orsanet_cpu
    orsa synth --out DIR --size 112 --train-per-class 400
    orsa models

A mistake a user can make (a bad path, value, name or file) ends in one line on stderr that names it, and exit code 2;
``--debug`` (before the subcommand) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .paths import NOTEBOOKS_DIR, run_dir

if TYPE_CHECKING:
    from .config import RunConfig

# Start-up: this module imports only the standard library and ``orsalib.paths``; each subcommand imports what it needs
# when it runs, after its arguments passed the cheap checks of :func:`precheck`. ``orsa --help``, ``orsa VERB --help``
# and every argument error therefore answer without importing torch (benchmarks/cli_startup.py measures it).

#: the profiles of ``orsalib.config.PROFILES`` (repeated here so that a wrong name is refused before torch loads;
#: tests/test_cli.py checks that both lists agree)
PROFILE_NAMES: tuple[str, ...] = ("smoke", "cpu", "paper")

#: errors a user causes, as (module, class): reported as one line, exit 2 (anything else is a bug and keeps its
#: traceback). Looked up among the modules already imported: an error can only come from a module that was loaded.
USER_ERROR_CLASSES: tuple[tuple[str, str], ...] = (
    ("orsalib.config", "ConfigError"),
    ("orsalib.data.sources", "DatasetError"),
    ("orsalib.priors.landmarks", "WeightsError"),
    ("orsalib.errors", "CheckpointError"),
    ("builtins", "FileNotFoundError"),
    ("builtins", "ValueError"),
)
_OS_USER_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}


def user_errors() -> tuple[type[BaseException], ...]:
    """The classes of :data:`USER_ERROR_CLASSES` among the loaded modules."""
    out = []
    for module, name in USER_ERROR_CLASSES:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            out.append(cls)
    return tuple(out)


class UsageError(ValueError):
    """A command-line argument is wrong (the message says which and what is allowed)."""


# ----------------------------------------------------------------------------- config from arguments
def parse_value(text: str) -> Any:
    """``--set`` values: JSON first (numbers, true/false, lists), then YAML, else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    import yaml

    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if v is None else v


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``["train.epochs=3", ...]`` -> ``{"train.epochs": 3, ...}``."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.epochs=3")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_value(v.strip())
    return out


def resolve_train_config(args: argparse.Namespace) -> RunConfig:
    from .config import apply_overrides, load_config, load_profile
    from .runbook import resolve_dataset

    """The RunConfig of ``orsa train`` arguments (profile or config file, then run name / seed / device / --set)."""
    sets = parse_sets(args.set or [])
    dataset = args.dataset or (resolve_dataset("", args.data_root) if args.data_root else None)
    given = (
        ("run_name", args.run_name), ("seed", args.seed), ("device", args.device), ("data.dataset", dataset),
        ("data.data_root", args.data_root),
    )  # fmt: skip
    top = {k: v for k, v in given if v is not None}
    if args.config:
        return apply_overrides(load_config(args.config), {**top, **sets})
    return load_profile(args.profile, {**sets, **top})


# ----------------------------------------------------------------------------- subcommands
def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .runbook import NotebookFailed, list_notebooks, notebook_parameters, past_minutes, reproduce, resolve_dataset

    nb_dir = Path(args.notebooks_dir) if args.notebooks_dir else NOTEBOOKS_DIR
    if args.list:
        past = past_minutes(args.profile)
        dataset = resolve_dataset(args.dataset, args.data_root)
        print(f"profile {args.profile}" + (f", dataset {dataset}" if dataset else "") + ":")
        for nb in list_notebooks(nb_dir, only=args.only):
            est = f"~{past[nb.stem]:.1f} min" if nb.stem in past else "no earlier run"
            print(f"  {nb.name:36s} {est:>16s}   parameters: {', '.join(notebook_parameters(nb))}")
        if past:
            print(f"  (medians of earlier {args.profile} runs under outputs/)")
        return 0
    try:
        reproduce(profile=args.profile, run_name=args.run_name, only=args.only, data_root=args.data_root,
                  seed=args.seed, device=args.device, timeout=args.timeout, notebooks_dir=nb_dir,
                  dataset=args.dataset, n_seeds=args.seeds)  # fmt: skip
    except NotebookFailed:
        return 1
    return 0


def _strip_launcher_option(argv: list[str]) -> list[str]:
    """``argv`` without ``--nproc-per-node N`` / ``--nproc-per-node=N`` (torchrun gets the rest)."""
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc-per-node":
            skip = True
        elif not a.startswith("--nproc-per-node="):
            rest.append(a)
    return rest


def _cmd_train(args: argparse.Namespace) -> int:
    from .engine import ddp

    if args.nproc_per_node > 1 and not ddp.launched_by_torchrun():
        return ddp.launch(args.nproc_per_node, _strip_launcher_option(args.argv))
    from .experiments.fer import train_fer
    from .utils import resolve_device

    cfg = resolve_train_config(args)  # validated before any data is prepared
    resolve_device(cfg.device)  # e.g. --device cuda without CUDA: said now, not after data preparation
    existing = "resume" if args.resume else "overwrite" if args.overwrite else "refuse"
    info = ddp.init_distributed(cfg.device) if ddp.launched_by_torchrun() else None
    try:
        res = train_fer(cfg, existing=existing)
    finally:
        if info is not None:
            ddp.cleanup()
    if ddp.is_main_process():
        last, best = res.last, res.best
        print(
            f"done: last epoch {last.get('epoch')} val {100 * last.get('val_acc', float('nan')):.2f}% | best epoch "
            f"{res.best_epoch} val {100 * best.get('val_acc', float('nan')):.2f}% | {res.run_dir}"
        )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import pandas as pd

    from .engine.evaluate import predict
    from .experiments.fer import prepare_fer_data
    from .experiments.runs import load_trained

    model, cfg = load_trained(_trained_run(args.run_name, args.subdir), which=args.which)
    print(f"scoring {model.checkpoint_path} (epoch {model.checkpoint_epoch}, model {cfg.model.name})")
    data = prepare_fer_data(cfg)
    rows = []
    for split, loader in data.loaders.items():
        if split == "train":
            continue
        rep = predict(model, loader, device=cfg.device).report(cfg.data.num_classes)
        rows.append({"split": split, "accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"],
                     "mean_class_acc": rep["mean_class_acc"]})  # fmt: skip
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def _cmd_priors(args: argparse.Namespace) -> int:
    from .config import load_profile
    from .data.sources import load_manifest
    from .priors.cache import PriorCache

    over: dict[str, Any] = {}
    for key, val in (
        ("data.dataset", args.dataset), ("data.data_root", args.data_root), ("data.image_size", args.image_size),
        ("prior.source", args.source), ("prior.landmark_weights", args.landmark_weights),
        ("prior.parser_weights", args.parser_weights), ("prior.batch_size", args.batch_size),
    ):  # fmt: skip
        if val is not None:
            over[key] = val
    if args.no_flip:
        over["prior.cache_flip"] = False
    cfg = load_profile(args.profile, over, device=args.device)
    manifest = load_manifest(cfg.data, seed=0)
    cache = PriorCache(args.cache_dir) if args.cache_dir else PriorCache()
    store = cache.ensure(manifest, cfg.prior, cfg.data.image_size, cfg.device, progress=not args.quiet)
    s = store.stats
    print(
        f"priors {cfg.prior.source} @{cfg.data.image_size}px for {len(store)} rows of {cfg.data.dataset}: "
        f"{s.get('computed', 0)} computed, {s.get('reused', 0)} reused, {store.nbytes() / 1e6:.1f} MB, "
        f"{s.get('seconds', 0.0):.1f} s -> {store.path}"
    )
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from .config import load_profile
    from .experiments.check import run_check
    from .runbook import resolve_dataset

    over: dict[str, Any] = parse_sets(args.set or [])
    dataset = resolve_dataset(args.dataset, args.data_root)
    if dataset:
        over["data.dataset"] = dataset
    if args.data_root:
        over["data.data_root"] = str(Path(args.data_root).expanduser().resolve())
    cfg = load_profile(args.profile, over, device=args.device)
    report = run_check(cfg, timing=not args.no_timing)
    print("\n".join(report.lines))
    return 0 if report.ok else 1


def _run_folder(run_name: str) -> Path:
    """``outputs/<run_name>`` of an existing run (a one-line error naming the folder otherwise)."""
    root = run_dir(run_name, create=False)
    if not root.is_dir():
        raise FileNotFoundError(f"no run named {run_name!r}: {root} does not exist (see outputs/)")
    return root


def _trained_run(run_name: str, subdir: str = "train") -> Path:
    from .experiments.runs import find_run

    return find_run(_run_folder(run_name) / subdir)


def _cmd_predict(args: argparse.Namespace) -> int:
    from .experiments.deploy import predict_images
    from .utils import atomic_write_text
    from .viz.analysis import prediction_figure

    out = Path(args.out) if args.out else run_dir(args.run_name, create=False) / "predict"
    res = predict_images(_trained_run(args.run_name), args.paths, out, which=args.which,
                         prior_source=args.prior_source, device=args.device)  # fmt: skip
    fig_path = out / "predictions.html"
    fig = prediction_figure(res.overlay)
    atomic_write_text(fig_path, fig.to_html(include_plotlyjs=True, full_html=True))
    print(f"{len(res.table)} images scored with {res.checkpoint} (epoch {res.epoch})")
    if res.warning:
        print(res.warning)
    print(res.table[["file", "predicted", "confidence"]].to_string(index=False, max_rows=20))
    print(f"-> {res.csv}\n-> {fig_path}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .experiments.deploy import export_model

    src = _trained_run(args.run_name)
    suffix = {"torchscript": ".pt", "onnx": ".onnx"}[args.format]
    out = Path(args.out) if args.out else run_dir(args.run_name, create=False) / "export" / f"model{suffix}"
    info = export_model(src, out, fmt=args.format, which=args.which)
    print(f"exported {info['checkpoint']} (epoch {info['epoch']}) -> {info['path']}")
    print(f"inputs: {', '.join(info['inputs'])}; output: logits over {info['classes']}")
    print(f"parity with PyTorch on random inputs: max |difference| of the logits = {info['max_abs_diff']:.2e}")
    return 0 if info["max_abs_diff"] <= args.tolerance else 1


def _cmd_convert(args: argparse.Namespace) -> int:
    from .experiments.fer import TRAIN_SUBDIR, build_fer_model
    from .models.convert import write_released_run

    args.run_name = args.run_name or Path(args.checkpoint).stem
    sets = list(args.set or [])
    if not any(x.startswith("prior.mode=") for x in sets):
        sets.append(f"prior.mode={args.prior_mode}")
    args.set, args.seed, args.device, args.config = sets, None, None, ""
    cfg = resolve_train_config(args)
    rd = run_dir(cfg.run_name, create=False) / TRAIN_SUBDIR
    model = build_fer_model(cfg, load_prior_weights=False)
    report = write_released_run(model, args.checkpoint, rd, cfg)
    print(report.summary())
    print(f"-> {rd}; score it with: orsa evaluate --run-name {cfg.run_name}")
    return 0


def _cmd_flops(args: argparse.Namespace) -> int:
    from .analysis.complexity import complexity_table

    print(complexity_table(args.models).to_string(index=False))
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from .data.synthfer import build_synthfer

    m = build_synthfer(args.out or None, size=args.size, train_per_class=args.train_per_class,
                       val_per_class=args.val_per_class, num_classes=args.num_classes,
                       occlusion_prob=args.occlusion_prob, seed=args.seed, force=args.force,
                       workers=args.workers or None)  # fmt: skip
    print(m.groupby(["split", "label_name"]).size().unstack(fill_value=0).to_string())
    print(f"{len(m)} images; manifest: {m['path'].iloc[0].rsplit('/', 3)[0]}/manifest.csv")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .analysis.complexity import complexity_row
    from .models import list_models, model_doc, model_meta

    names = list_models(args.pattern)
    if not names:
        raise UsageError(f"no registered model matches {args.pattern!r}; `orsa models` lists them all")
    print(f"{'model':22s} {'family':15s} {'task':6s} {'params':>9s} {'input':>6s}  description")
    for name in names:
        meta = model_meta(name)
        params = complexity_row(name, flops=False)["params_trainable"] if not args.no_params else None
        size = meta.get("image_size") or meta.get("input_size") or "-"
        doc = (model_doc(name) or meta.get("paper", "")).strip().replace("``", "")
        doc = doc if len(doc) <= 72 else doc[:71].rstrip() + "…"
        ptxt = f"{params / 1e6:8.2f}M" if params is not None else "        -"
        print(f"{name:22s} {meta.get('family', ''):15s} {meta.get('task', ''):6s} {ptxt} {size!s:>6s}  {doc}")
    return 0


# ----------------------------------------------------------------------------- parsers
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def _add_reproduce(sub: Any) -> None:
    r = sub.add_parser("reproduce", help="run the ordered notebook suite with papermill")
    r.add_argument("--profile", default="cpu", choices=PROFILE_NAMES, help="default: cpu")
    r.add_argument("--run-name", default="default", help="outputs go to outputs/<run-name>/")
    r.add_argument("--only", default=None, help="comma-separated notebook numbers, e.g. 10,40")
    r.add_argument("--dataset", default="", help="a registered dataset; default: detected from --data-root")
    r.add_argument("--data-root", default="", help="dataset folder (default: the embedded SynthFER)")
    r.add_argument("--seed", type=int, default=None, help="base seed: the seeds of every comparison start here")
    r.add_argument("--seeds", type=_positive_int, default=None,
                   help="training seeds per compared method (default: the profile's; cpu: 3; >= 2 for a verdict)")
    r.add_argument("--device", default="auto")
    r.add_argument("--timeout", type=float, default=None, help="seconds per notebook (default by profile)")
    r.add_argument("--list", action="store_true", help="list what would run and exit")
    r.add_argument("--notebooks-dir", default=None, help="folder of the ordered notebooks (default: notebooks/)")
    r.set_defaults(func=_cmd_reproduce)


def _add_train(sub: Any) -> None:
    t = sub.add_parser("train", help="train a model from a profile or config file (outputs/<run-name>/train/)")
    t.add_argument("--profile", default="cpu", choices=PROFILE_NAMES, help="default: cpu")
    t.add_argument("--config", default="", help="a JSON/YAML RunConfig file (overrides --profile)")
    t.add_argument("--run-name", default=None, help="output folder name under outputs/")
    t.add_argument("--dataset", default=None, help="a registered dataset (default: detected from --data-root)")
    t.add_argument("--data-root", default=None, help="the dataset's folder (data/README.md lists the layouts)")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    t.add_argument("--resume", action="store_true",
                   help="continue the run from checkpoints/last.pt (same config; train.epochs may grow)")  # fmt: skip
    t.add_argument("--overwrite", action="store_true",
                   help="an existing run of that name is moved aside (<name>.replaced-<time>); train anew")  # fmt: skip
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. --set train.epochs=3")
    t.add_argument("--nproc-per-node", type=int, default=1, help="> 1: launch DDP through torchrun")
    t.set_defaults(func=_cmd_train)


def _add_evaluate(sub: Any) -> None:
    e = sub.add_parser("evaluate", help="evaluate a trained run on every evaluation split")
    e.add_argument("--run-name", required=True)
    e.add_argument("--subdir", default="train", help="folder of the run holding config.json + checkpoints")
    e.add_argument("--which", default="best", choices=("best", "last"), help="which checkpoint to score")
    e.set_defaults(func=_cmd_evaluate)


def _add_priors(sub: Any) -> None:
    p = sub.add_parser("priors", help="build the prior cache for a dataset")
    p.add_argument("--profile", default="cpu", choices=PROFILE_NAMES, help="default: cpu")
    p.add_argument("--dataset", default=None, help="dataset name (default: the profile's)")
    p.add_argument("--data-root", default=None, help="dataset folder (default: the profile's / embedded SynthFER)")
    p.add_argument("--source", default=None, help="a registered prior source (default: the profile's)")
    p.add_argument("--image-size", type=int, default=None, help="model input side (default: the profile's)")
    p.add_argument("--landmark-weights", default=None, help="MobileFaceNet-68 checkpoint (default data/weights/...)")
    p.add_argument("--parser-weights", default=None, help="SegFace LaPa Swin-B checkpoint (default data/weights/...)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--no-flip", action="store_true", help="do not cache the priors of the flipped images")
    p.add_argument("--cache-dir", default=None, help="cache root (default outputs/cache/priors)")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_priors)


def _add_small(sub: Any) -> None:
    f = sub.add_parser("flops", help="params and FLOPs (fvcore, cross-checked) of registered models")
    f.add_argument("models", nargs="+")
    f.set_defaults(func=_cmd_flops)

    s = sub.add_parser("synth", help="generate the SynthFER dataset")
    s.add_argument("--out", default="", help="folder (default: outputs/cache/synthfer/<params-hash>)")
    s.add_argument("--size", type=int, default=112)
    s.add_argument("--train-per-class", type=int, default=400)
    s.add_argument("--val-per-class", type=int, default=100)
    s.add_argument("--num-classes", type=int, default=7, choices=(7, 8))
    s.add_argument("--occlusion-prob", type=float, default=0.5)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--force", action="store_true")
    s.add_argument("--workers", type=int, default=0,
                   help="processes drawing images (0 = automatic: every core for builds of 512+ images)")  # fmt: skip
    s.set_defaults(func=_cmd_synth)

    m = sub.add_parser("models", help="registered models: family, task, trainable parameters, input size, one line")
    m.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'orsanet_*'")
    m.add_argument("--no-params", action="store_true", help="skip building each model to count its parameters")
    m.set_defaults(func=_cmd_models)


def _add_deploy(sub: Any) -> None:
    p = sub.add_parser("predict", help="predict the expression of face images with a trained run (CSV + figure)")
    p.add_argument("--run-name", required=True)
    p.add_argument("paths", nargs="+", help="image files or folders of images")
    p.add_argument("--which", default="best", choices=("best", "last"), help="which checkpoint")
    p.add_argument("--prior-source", default="", help="detect priors with this source (needed after oracle priors)")
    p.add_argument("--out", default="", help="folder (default outputs/<run-name>/predict)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_predict)

    e = sub.add_parser("export", help="export a trained run to TorchScript or ONNX, checked against PyTorch")
    e.add_argument("--run-name", required=True)
    e.add_argument("--format", default="torchscript", choices=("torchscript", "onnx"))
    e.add_argument("--which", default="best", choices=("best", "last"))
    e.add_argument("--out", default="", help="file (default outputs/<run-name>/export/model.pt|.onnx)")
    e.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted logit difference (exit 1 above)")
    e.set_defaults(func=_cmd_export)


def _add_convert(sub: Any) -> None:
    c = sub.add_parser("convert", help="turn a released ORSANet checkpoint into a run that orsa evaluate scores")
    c.add_argument("checkpoint", help="the released {'iter', 'model_state_dict', ...} file")
    c.add_argument("--profile", default="paper", choices=PROFILE_NAMES,
                   help="the profile of the model (default paper: orsanet_large)")  # fmt: skip
    c.add_argument("--dataset", default=None, help="the dataset to score it on (default: detected from --data-root)")
    c.add_argument("--data-root", default=None, help="the dataset's folder")
    c.add_argument("--run-name", default="", help="outputs/<run-name>/train (default: the checkpoint's file name)")
    c.add_argument("--prior-mode", default="released", choices=("released", "cached"),
                   help="released (default): the checkpoint's frozen prior networks are used as trained")  # fmt: skip
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides, as orsa train")
    c.set_defaults(func=_cmd_convert)


def _add_check(sub: Any) -> None:
    c = sub.add_parser("check", help="pre-flight: data, prior weights, device, expected time and memory of a run")
    c.add_argument("--profile", default="cpu", choices=PROFILE_NAMES, help="default: cpu")
    c.add_argument("--dataset", default="", help="a registered dataset; default: detected from --data-root")
    c.add_argument("--data-root", default="", help="dataset folder (default: the profile's / embedded SynthFER)")
    c.add_argument("--device", default="auto")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides, as orsa train")
    c.add_argument("--no-timing", action="store_true", help="skip the measured trial step")
    c.set_defaults(func=_cmd_check)


def build_parser() -> argparse.ArgumentParser:
    """The ``orsa`` argument parser with every subcommand."""
    p = argparse.ArgumentParser(prog="orsa", description="ORSA workbook: occlusion-robust FER (ORSANet, RAN, DARELoss)")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_reproduce, _add_check, _add_train, _add_evaluate, _add_priors, _add_deploy, _add_convert,
                _add_small):  # fmt: skip
        add(sub)
    return p


def _short_write(e: BaseException) -> bool:
    """numpy's ``tofile`` reports a full disk as ``OSError("N requested and M written")`` without an errno."""
    return isinstance(e, OSError) and e.errno is None and "requested and" in str(e) and "written" in str(e)


def _user_error(e: BaseException) -> bool:
    if isinstance(e, user_errors()):
        return True
    return isinstance(e, OSError) and (e.errno in _OS_USER_ERRNOS or _short_write(e))


def _existing(option: str, value: str | None, what: str = "folder") -> None:
    if value and not Path(value).expanduser().exists():
        raise FileNotFoundError(f"{option} {value}: no such {what}")


def precheck(args: argparse.Namespace) -> None:
    """The checks of a command's arguments that need no heavy import (paths named on the command line, ``--set``
    syntax, exclusive options): run before torch loads, so that a typo is answered at once."""
    cmd = args.command
    for attr, option in (("data_root", "--data-root"), ("notebooks_dir", "--notebooks-dir")):
        _existing(option, getattr(args, attr, None))
    for attr, option in (("config", "--config"), ("landmark_weights", "--landmark-weights"),
                         ("parser_weights", "--parser-weights"), ("checkpoint", "checkpoint")):  # fmt: skip
        _existing(option, getattr(args, attr, None), "file")
    if getattr(args, "set", None):
        parse_sets(args.set)
    if cmd == "reproduce":
        from .runbook import list_notebooks

        list_notebooks(Path(args.notebooks_dir) if args.notebooks_dir else NOTEBOOKS_DIR, only=args.only)
    if cmd == "train" and args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite exclude each other: continue the run, or move it aside and restart")
    if cmd in ("evaluate", "predict", "export"):
        _run_folder(args.run_name)
    if cmd == "predict":
        for path in args.paths:
            _existing("image path", path, "file or folder")


#: commands that do not run torch in this process (the notebooks' kernels apply the thread policy themselves)
_NO_TORCH = frozenset({"reproduce"})


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a subcommand; user mistakes become one line on stderr and exit 2 (``--debug`` re-raises).

    The cheap argument checks (:func:`precheck`) come first, then the thread policy (which imports torch), then the
    command itself.
    """
    try:
        precheck(args)
        if args.command not in _NO_TORCH:
            from .threads import apply_thread_policy

            apply_thread_policy()  # torch threads = cores available to this process (docs/speed.md)
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print(f"orsa {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - sorted into user mistakes and bugs below
        if args.debug or not _user_error(e):
            raise
        msg = " ".join(str(e).split()) or type(e).__name__
        if _short_write(e) or (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)):
            msg = f"a write failed: the disk (or a file-size limit) is full ({msg}); free space and run again"
        print(f"orsa {args.command}: error: {msg}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv[argv.index(args.command) + 1 :] if args.command in argv else []
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
