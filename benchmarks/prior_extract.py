"""Prior extraction: the optimised extractors (orsalib.priors.fast) vs the plain fp32 eval forward, side by side.

On the same batch of real faces (``../shared/data/fer2013-mini`` when present; else random pixels, and then the NME
says nothing), in interleaved rounds so that the load of a shared machine hits both:

- MobileFaceNet-68 at 112 px (real weights when found: ``data/weights`` or ``../shared/weights``; else random):
  plain :class:`~orsalib.priors.landmarks.LandmarkPredictor` vs :class:`~orsalib.priors.fast.FastLandmarkPredictor`
  (folded BatchNorm, channels-last, bf16 where native); images/s, their ratio, and the landmark NME of the fast
  output against the plain one (fraction of the inter-ocular distance);
- SegFace Swin-B at 224 px (random weights unless ``data/weights/segface_lapa_swin_base.pt`` exists): plain
  :class:`~orsalib.priors.parsing.ParserPredictor` vs :class:`~orsalib.priors.fast.FastParserPredictor`; images/s,
  ratio, label-map agreement and the relative error of the stage-4 features.

Usage::

    python benchmarks/prior_extract.py [--rounds 3] [--batch 64] [--parser-batch 8] [--precision auto]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from orsalib.models.mobilefacenet import MobileFaceNet
from orsalib.models.segface import SegFaceSwinB
from orsalib.paths import shared_path
from orsalib.priors.fast import FastLandmarkPredictor, FastParserPredictor, landmark_nme, parsing_agreement
from orsalib.priors.landmarks import LandmarkPredictor, find_landmark_weights, load_mobilefacenet
from orsalib.priors.parsing import DEFAULT_PARSER_WEIGHTS, ParserPredictor, load_segface

try:  # run as a script (benchmarks/ on sys.path) or imported by run_all
    from cpu_speed import facts as machine_facts
except ImportError:  # pragma: no cover
    from benchmarks.cpu_speed import facts as machine_facts


def load_faces(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """``n`` uint8 RGB faces (n, size, size, 3) from fer2013-mini (every class, spread over the split), or random
    pixels when the folder is absent; and where they came from."""
    root = shared_path("data", "fer2013-mini")
    paths = sorted(Path(root).glob("valid/*/*.jpg")) if root is not None else []
    if not paths:
        rng = np.random.default_rng(seed)
        return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), "random pixels (no fer2013-mini)"
    step = max(1, len(paths) // n)
    pick = paths[::step][:n]
    imgs = [np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR)) for p in pick]
    return np.stack(imgs), f"fer2013-mini valid, {len(pick)} real 48x48 faces resized to {size}"


def _timed(f: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = f()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def interleaved(
    plain: Callable[[], Any], fast: Callable[[], Any], n_images: int, rounds: int, warmup: int = 1
) -> dict[str, Any]:
    """Images/s of ``plain`` and ``fast`` over interleaved rounds (order alternating), per-round ratios fast/plain."""
    for _ in range(warmup):
        plain()
        fast()
    t_plain, t_fast = [], []
    for r in range(rounds):
        pair = [(plain, t_plain), (fast, t_fast)]
        for f, ts in pair if r % 2 == 0 else pair[::-1]:
            ts.append(_timed(f)[1])
    ratios = [p / f for p, f in zip(t_plain, t_fast)]
    return {
        "plain_images_per_s": n_images / statistics.median(t_plain),
        "fast_images_per_s": n_images / statistics.median(t_fast),
        "ratio": statistics.median(ratios),
        "round_ratios": ratios,
        "plain_round_s": t_plain,
        "fast_round_s": t_fast,
    }


def bench_landmarks(batch: int, rounds: int, precision: str, device: torch.device) -> dict[str, Any]:
    faces, origin = load_faces(batch, 112)
    wfile = find_landmark_weights()
    net = load_mobilefacenet(wfile) if wfile is not None else MobileFaceNet().eval()
    plain = LandmarkPredictor(copy.deepcopy(net), device)
    fast = FastLandmarkPredictor(net, device, precision=precision)
    rec = interleaved(lambda: plain.predict(faces), lambda: fast.predict(faces), len(faces), rounds)
    (lm0, f0), (lm1, f1) = plain.predict(faces), fast.predict(faces)
    nme = landmark_nme(lm1, lm0)
    rec.update({
        "net": "MobileFaceNet-68", "input": 112, "batch": len(faces), "faces": origin,
        "weights": str(wfile.name) if wfile is not None else "random (no weights file)",
        "precision": fast.precision, "channels_last": fast.channels_last,
        "folded_batchnorms": int(getattr(fast.net, "folded_batchnorms", 0)),
        "nme_mean": float(nme.mean()), "nme_p99": float(np.percentile(nme, 99)), "nme_max": float(nme.max()),
        "nme_bound": 0.005, "nme_within_bound": bool(nme.mean() < 0.005),
        "feature_rel_error": float(np.linalg.norm(f1 - f0) / max(np.linalg.norm(f0), 1e-12)),
    })  # fmt: skip
    return rec


def bench_parser(batch: int, rounds: int, precision: str, device: torch.device, size: int = 224) -> dict[str, Any]:
    faces, origin = load_faces(batch, size)
    if DEFAULT_PARSER_WEIGHTS.is_file():
        net, weights = load_segface(DEFAULT_PARSER_WEIGHTS), DEFAULT_PARSER_WEIGHTS.name
    else:
        torch.manual_seed(0)
        net, weights = SegFaceSwinB().eval().requires_grad_(False), "random (no SegFace weights file)"
    plain = ParserPredictor(net, device)
    fast = FastParserPredictor(net, device, precision=precision)
    rec = interleaved(lambda: plain.predict(faces), lambda: fast.predict(faces), len(faces), rounds)
    (p0, f0), (p1, f1) = plain.predict(faces), fast.predict(faces)
    rec.update({
        "net": "SegFace Swin-B", "input": size, "batch": len(faces), "faces": origin, "weights": weights,
        "precision": fast.precision, "parsing_agreement": parsing_agreement(p1, p0),
        "feature_rel_error": float(np.linalg.norm(f1 - f0) / max(np.linalg.norm(f0), 1e-12)),
    })  # fmt: skip
    return rec


def forward_gflop(net: torch.nn.Module, size: int) -> float:
    """GFLOP of one image's forward pass, counted by fvcore (1 multiply-add = 1 flop there, x 2 here)."""
    from fvcore.nn import FlopCountAnalysis

    x = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        fca = FlopCountAnalysis(copy.deepcopy(net).float().eval(), x)
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return 2 * fca.total() / 1e9


def _roofline_fields(rec: dict[str, Any], gflop: float, peaks: dict[str, Any] | None) -> None:
    """GFLOP/s of both paths and their fractions of the run's GEMM peak (fast: at its precision; plain: fp32)."""
    rec["gflop_per_image"] = round(gflop, 4)
    rec["plain_gflops"] = round(rec["plain_images_per_s"] * gflop, 1)
    rec["fast_gflops"] = round(rec["fast_images_per_s"] * gflop, 1)
    if peaks:
        fast_peak = peaks["bf16_gflops"] if rec.get("precision") == "bf16" else peaks["fp32_gflops"]
        rec["plain_peak_fraction"] = round(rec["plain_gflops"] / peaks["fp32_gflops"], 3)
        rec["fast_peak_fraction"] = round(rec["fast_gflops"] / fast_peak, 3)


def measure(
    batch: int = 64, parser_batch: int = 8, rounds: int = 3, precision: str = "auto", device: str = "cpu",
    parser: bool = True, peaks: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The ``prior_extract`` JSON record: landmark (and parser) extraction, plain vs fast, with the machine facts;
    with ``peaks`` (a roofline record) also each path's GFLOP/s as a fraction of the peak."""
    dev = torch.device(device)
    rec: dict[str, Any] = {"bench": "prior_extract", "rounds": rounds}
    rec["load_average_start"] = machine_facts()["load_average"]
    rec["landmarks"] = bench_landmarks(batch, rounds, precision, dev)
    _roofline_fields(rec["landmarks"], forward_gflop(MobileFaceNet(), 112), peaks)
    rec["landmark_ratio"] = rec["landmarks"]["ratio"]
    rec["landmark_load_average"] = machine_facts()["load_average"]
    if parser:
        rec["parser"] = bench_parser(parser_batch, rounds, precision, dev)
        torch.manual_seed(0)
        _roofline_fields(rec["parser"], forward_gflop(SegFaceSwinB(), 224), peaks)
        rec["parser_ratio"] = rec["parser"]["ratio"]
        rec["parser_load_average"] = machine_facts()["load_average"]
    rec.update(machine_facts())
    return rec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64, help="MobileFaceNet batch (the prior cache's default)")
    p.add_argument("--parser-batch", type=int, default=8, help="SegFace batch at 224 px")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--precision", default="auto", help="auto | fp32 | bf16")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-parser", action="store_true", help="skip SegFace (slow on a CPU)")
    args = p.parse_args(argv)
    from orsalib.threads import apply_thread_policy

    apply_thread_policy()
    rec = measure(args.batch, args.parser_batch, args.rounds, args.precision, args.device, not args.no_parser)
    print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
