"""``orsa`` / ``python -m orsalib``: one command per thing a user does.

    orsa reproduce --profile cpu --run-name default [--only 10,40] [--list]
    orsa train --profile cpu --run-name myrun [--resume] [--set train.epochs=3 ...]
    orsa evaluate --run-name myrun
    orsa priors --profile cpu --source oracle
    orsa flops orsanet_large orsanet_cpu
    orsa synth --out DIR --size 112 --train-per-class 400
    orsa models
"""

from __future__ import annotations

import argparse
import sys


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .paths import NOTEBOOKS_DIR
    from .runbook import NotebookFailed, list_notebooks, notebook_parameters, reproduce

    nb_dir = Path(args.notebooks_dir) if args.notebooks_dir else NOTEBOOKS_DIR
    if args.list:
        for nb in list_notebooks(nb_dir, only=args.only):
            params = notebook_parameters(nb)
            print(f"{nb.name:40s} parameters: {', '.join(params)}")
        return 0
    try:
        reproduce(profile=args.profile, run_name=args.run_name, only=args.only, data_root=args.data_root,
                  seed=args.seed, device=args.device, timeout=args.timeout, notebooks_dir=nb_dir)
    except NotebookFailed:
        return 1
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import pandas as pd

    from .engine.evaluate import predict
    from .experiment import load_trained, prepare_fer_data
    from .paths import run_dir

    src = run_dir(args.run_name) / args.subdir
    model, cfg = load_trained(src)
    data = prepare_fer_data(cfg)
    rows = []
    for split, loader in data.loaders.items():
        if split == "train":
            continue
        rep = predict(model, loader, device=cfg.device).report(cfg.data.num_classes)
        rows.append({"split": split, "accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"],
                     "mean_class_acc": rep["mean_class_acc"]})
    print(pd.DataFrame(rows).to_string(index=False))
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
                       workers=args.workers or None)
    print(m.groupby(["split", "label_name"]).size().unstack(fill_value=0).to_string())
    print(f"{len(m)} images; manifest: {m['path'].iloc[0].rsplit('/', 3)[0]}/manifest.csv")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models

    print("\n".join(list_models(args.pattern)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orsa", description="ORSA workbook: occlusion-robust FER (ORSANet, RAN, DARELoss)")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("reproduce", help="run the ordered notebook suite with papermill")
    r.add_argument("--profile", default="cpu", help="smoke | cpu | paper (default: cpu)")
    r.add_argument("--run-name", default="default", help="outputs go to outputs/<run-name>/")
    r.add_argument("--only", default=None, help="comma-separated notebook numbers, e.g. 10,40")
    r.add_argument("--data-root", default="", help="dataset folder (default: the embedded SynthFER)")
    r.add_argument("--seed", type=int, default=None)
    r.add_argument("--device", default="auto")
    r.add_argument("--timeout", type=float, default=None, help="seconds per notebook (default by profile)")
    r.add_argument("--list", action="store_true", help="list what would run and exit")
    r.add_argument("--notebooks-dir", default=None, help="folder of the ordered notebooks (default: notebooks/)")
    r.set_defaults(func=_cmd_reproduce)

    t = sub.add_parser("train", help="train a model from a profile or config file", add_help=False)
    t.set_defaults(func=None, passthrough="orsalib.experiment:cli_train")
    pr = sub.add_parser("priors", help="build the prior cache for a dataset", add_help=False)
    pr.set_defaults(func=None, passthrough="orsalib.priors.cache:cli_main")

    e = sub.add_parser("evaluate", help="evaluate a trained run on every evaluation split")
    e.add_argument("--run-name", required=True)
    e.add_argument("--subdir", default="train", help="folder of the run holding config.json + checkpoints")
    e.set_defaults(func=_cmd_evaluate)

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
                   help="processes drawing images (0 = automatic: every core for builds of 512+ images)")
    s.set_defaults(func=_cmd_synth)

    m = sub.add_parser("models", help="list registered models")
    m.add_argument("pattern", nargs="?", default="*")
    m.set_defaults(func=_cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in ("train", "priors"):
        import importlib

        entry = {"train": "orsalib.experiment:cli_train", "priors": "orsalib.priors.cache:cli_main"}[argv[0]]
        mod, fn = entry.split(":")
        return int(getattr(importlib.import_module(mod), fn)(argv[1:]) or 0)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:  # user-caused: say it plainly, no deep traceback
        print(f"orsa {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
