"""SynthFER generation speed and difficulty calibration (a script, not a test).

1. Generation speed at 112 and 64 px: ``render_sample`` in one process (wall and CPU time) and in one process per
   core, and complete on-disk builds (drawing + PNG + writing) with 1 and with every core.
2. Difficulty: a timm ``resnet18`` trained from scratch (Adam, horizontal flips) on SynthFER ``train`` at 64 px,
   evaluated on the clean ``valid`` split and on ``valid_occluded`` (the same faces with an occluder).
   Target of the generator's tuning: clean accuracy 70-95 %, occluded at least 10 points lower.

Usage::

    python benchmarks/synthfer_calibration.py                      # speed + default sizes (400/100 per class)
    python benchmarks/synthfer_calibration.py --train-per-class 150 --val-per-class 50   # the `cpu` profile sizes
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image


def _render_range(args: tuple[int, int, int]) -> int:
    from orsalib.data.synthfer import render_sample

    size, start, n = args
    for i in range(start, start + n):
        render_sample(10_000 + i, size=size, identity=i % 50, occlusion_prob=0.5)
    return n


def generation_speed(size: int, n: int = 300) -> tuple[float, float]:
    """(images/s wall, images/s CPU) of render_sample at ``size`` in this process, identities reused as in a build."""
    from orsalib.data.synthfer import render_sample

    for i in range(20):  # warm the caches (layout basis, identities)
        render_sample(i, size=size, identity=i % 50)
    w0, c0 = time.perf_counter(), time.process_time()
    _render_range((size, 0, n))
    return n / (time.perf_counter() - w0), n / (time.process_time() - c0)


def parallel_speed(size: int, workers: int, n: int = 1200) -> float:
    """Images/s (wall) of render_sample in ``workers`` forked processes (pool start-up excluded)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        list(pool.map(_render_range, [(size, 0, 20)] * workers))  # start + warm every worker
        chunk = 50
        t0 = time.perf_counter()
        done = sum(pool.map(_render_range, [(size, k, chunk) for k in range(0, n, chunk)]))
        return done / (time.perf_counter() - t0)


def build_speed(size: int, workers: int, per_class: int = 60) -> float:
    """Images/s (wall) of a complete ``build_synthfer`` to a temporary folder: drawing, PNG encoding, writing."""
    import tempfile

    from orsalib.data.synthfer import build_synthfer

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        df = build_synthfer(
            tmp, size=size, train_per_class=per_class, val_per_class=per_class // 2, progress=False, workers=workers
        )
        return len(df) / (time.perf_counter() - t0)


def load_split(df, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    rows = df[df.split == split]
    x = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in rows.path])  # (N, H, W, 3)
    x = torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, H, W)
    x = (x - 0.5) / 0.25
    return x, torch.tensor(rows.label.to_numpy().copy(), dtype=torch.long)


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, bs: int = 256) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + bs]).argmax(1) for i in range(0, len(x), bs)])


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x) == y).float().mean()) * 100


def train_and_eval(df, epochs: int, lr: float, batch: int, seed: int) -> dict[str, float]:
    import timm

    torch.manual_seed(seed)
    xtr, ytr = load_split(df, "train")
    xva, yva = load_split(df, "valid")
    xoc, yoc = load_split(df, "valid_occluded")
    model = timm.create_model("resnet18", pretrained=False, num_classes=int(df.label.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * ((len(xtr) + batch - 1) // batch))
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), batch):
            idx = perm[i : i + batch]
            xb, yb = xtr[idx], ytr[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if ep == epochs - 1 or (ep + 1) % max(1, epochs // 4) == 0:
            print(
                f"  epoch {ep + 1}/{epochs}: loss {loss.item():.3f}  clean {accuracy(model, xva, yva):.1f}%  "
                f"occluded {accuracy(model, xoc, yoc):.1f}%  ({time.perf_counter() - t0:.0f}s)",
                flush=True,
            )
    pred_clean, pred_occ = predict(model, xva), predict(model, xoc)  # each split predicted once
    clean = float((pred_clean == yva).float().mean()) * 100
    occ = float((pred_occ == yoc).float().mean()) * 100
    occ_rows = df[df.split == "valid_occluded"].reset_index(drop=True)
    pred = pred_occ.numpy()
    per_kind = {
        kind: float((pred[sub.index] == sub.label.to_numpy()).mean() * 100)
        for kind, sub in occ_rows.groupby("occluder")
    }
    k = int(df.label.max()) + 1
    confusion = torch.bincount(yva * k + pred_clean, minlength=k * k).reshape(k, k).numpy()
    return {
        "clean": clean,
        "occluded": occ,
        "drop": clean - occ,
        "per_kind": per_kind,
        "confusion": confusion,
        "train_s": time.perf_counter() - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64, help="generated image side for training")
    ap.add_argument("--train-per-class", type=int, default=400)
    ap.add_argument("--val-per-class", type=int, default=100)
    ap.add_argument("--occlusion-prob", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--root", default="", help="SynthFER folder ('' = the default cache)")
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if not args.skip_speed:
        import os

        cores = os.cpu_count() or 1
        target = 500.0
        print(f"generation speed (target >= {target:.0f} images/s at 112 px; {cores} cores)")
        print(f"  {'px':>4} {'what':<34} {'images/s':>9} {'x target':>9}")
        for size in (112, 64):
            rows = []
            wall, cpu = generation_speed(size)
            rows += [("render, 1 process (wall)", wall), ("render, 1 process (CPU time)", cpu)]
            if cores > 1:
                rows.append((f"render, {cores} processes (wall)", parallel_speed(size, cores)))
            rows.append(("build to disk, 1 process", build_speed(size, 1)))
            if cores > 1:
                rows.append((f"build to disk, {cores} processes", build_speed(size, cores)))
            for what, ips in rows:
                print(f"  {size:>4} {what:<34} {ips:9.0f} {ips / target:9.2f}", flush=True)

    from orsalib.data.synthfer import build_synthfer

    t0 = time.perf_counter()
    df = build_synthfer(
        args.root or None,
        size=args.size,
        train_per_class=args.train_per_class,
        val_per_class=args.val_per_class,
        occlusion_prob=args.occlusion_prob,
        seed=args.seed,
        progress=False,
    )
    counts = df.split.value_counts().to_dict()
    print(f"SynthFER {args.size}px {counts} ready in {time.perf_counter() - t0:.1f}s", flush=True)
    r = train_and_eval(df, args.epochs, args.lr, args.batch, args.seed)
    print(
        f"resnet18 from scratch, {args.size}px, {args.train_per_class}/class, {args.epochs} epochs: "
        f"clean valid {r['clean']:.1f}%  valid_occluded {r['occluded']:.1f}%  drop {r['drop']:.1f} points "
        f"(train {r['train_s']:.0f}s)"
    )
    print("  occluded accuracy per occluder: " + ", ".join(f"{k} {v:.1f}%" for k, v in sorted(r["per_kind"].items())))
    from orsalib.data.labels import emotions

    names = emotions(int(df.label.max()) + 1)
    cm = r["confusion"]
    print("  clean confusion (rows = true class, columns = predicted; per-class recall at the end):")
    print("    " + " ".join(f"{n[:5]:>6}" for n in names))
    for i, n in enumerate(names):
        recall = 100.0 * cm[i, i] / max(1, cm[i].sum())
        print(f"    {' '.join(f'{v:6d}' for v in cm[i])}   {n:<10} {recall:5.1f}%")


if __name__ == "__main__":
    main()
