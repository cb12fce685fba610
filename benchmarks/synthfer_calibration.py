"""SynthFER generation speed and difficulty calibration (a script, not a test).

1. Generation speed: ``render_sample`` images per second at 112 and 64 px (single process; wall and CPU time).
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


def generation_speed(size: int, n: int = 300) -> tuple[float, float]:
    """(images/s wall, images/s CPU) of render_sample at ``size``, identities reused as in a build."""
    from orsalib.data.synthfer import render_sample

    for i in range(20):  # warm the caches (layout basis, identities)
        render_sample(i, size=size, identity=i % 50)
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        render_sample(10_000 + i, size=size, identity=i % 50, occlusion_prob=0.5)
    return n / (time.perf_counter() - w0), n / (time.process_time() - c0)


def load_split(df, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    rows = df[df.split == split]
    x = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in rows.path])  # (N, H, W, 3)
    x = torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, H, W)
    x = (x - 0.5) / 0.25
    return x, torch.tensor(rows.label.to_numpy().copy(), dtype=torch.long)


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bs: int = 256) -> float:
    model.eval()
    pred = torch.cat([model(x[i : i + bs]).argmax(1) for i in range(0, len(x), bs)])
    return float((pred == y).float().mean()) * 100


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
    clean, occ = accuracy(model, xva, yva), accuracy(model, xoc, yoc)
    per_kind = {}
    occ_rows = df[df.split == "valid_occluded"].reset_index(drop=True)
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(xoc[i : i + 256]).argmax(1) for i in range(0, len(xoc), 256)]).numpy()
    for kind, sub in occ_rows.groupby("occluder"):
        per_kind[kind] = float((pred[sub.index] == sub.label.to_numpy()).mean() * 100)
    return {
        "clean": clean,
        "occluded": occ,
        "drop": clean - occ,
        "per_kind": per_kind,
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
        for size in (112, 64):
            wall, cpu = generation_speed(size)
            print(f"render_sample {size}px: {wall:.0f} images/s wall, {cpu:.0f} images/s CPU time", flush=True)

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


if __name__ == "__main__":
    main()
