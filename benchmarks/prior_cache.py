"""Prior cache vs per-step prior recomputation: time of one training epoch, side by side, in one run.

Both runs train the ``cpu`` profile's model (``orsanet_cpu``, paper routing: landmarks + parsing map) on the
``cpu`` profile's SynthFER training split for one epoch (Adam, no SAM, as the profile), with the priors

- **recomputed** every step from the batch, as the released ORSANet does (``priors_in_model=True,
  prior_mode="released"``: the frozen networks inside the model follow its train mode):
  the real MobileFaceNet-68 architecture at 112x112 (the real weights when the file is found, else random) and the
  SegFace Swin-B parser (random weights; no public weights here) run at the model input side (64 on ``cpu``);
- **read** from the prior cache (built once beforehand with the same networks; its build time is reported).

Usage::

    python benchmarks/prior_cache.py                     # cpu profile, whole epoch
    python benchmarks/prior_cache.py --limit 320         # the first 320 training images (busy CPUs)
    python benchmarks/prior_cache.py --device cuda
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import pandas as pd
import torch


def _combined_source(lm_net, parser, device):
    """Landmarks (MobileFaceNet) + parsing (SegFace) in one source, the priors the paper-routing model needs."""
    from orsalib.priors.sources import MobileFaceNetSource, PriorSource, SegFaceSource

    class Both(PriorSource):
        name = "bench-mobilefacenet-segface"
        keys = ("landmarks", "parsing")
        weights_id = "bench"

        def __init__(self) -> None:
            super().__init__()
            self.lm = MobileFaceNetSource(net=lm_net, weights_id="bench", device=device)
            self.par = SegFaceSource(net=parser, weights_id="bench", device=device)

        def _compute(self, images: np.ndarray, rows: pd.DataFrame) -> dict[str, np.ndarray]:
            lm = self.lm.compute(images, rows)["landmarks"]
            parsing, _ = self.par.predictor.predict(images)
            return {"landmarks": lm, "parsing": parsing}

    return Both()


def _epoch(model, loader, device, max_steps: int, forward) -> tuple[float, int]:
    from orsalib.models import PRIOR_KEYS

    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    n = 0
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for step, batch in enumerate(loader):
        if max_steps and step >= max_steps:
            break
        image = batch["image"].to(device, non_blocking=True)
        priors = {k: batch[k].to(device) for k in PRIOR_KEYS if k in batch}
        out = forward(image, priors)
        loss = torch.nn.functional.cross_entropy(out["logits"], batch["label"].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(image)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="cpu")
    p.add_argument("--device", default="auto")
    p.add_argument("--max-steps", type=int, default=0, help="0 = the whole epoch")
    p.add_argument("--limit", type=int, default=0, help="use only the first N training images (0 = all)")
    p.add_argument("--landmark-weights", default="", help="MobileFaceNet-68 file (default: data/weights or ../shared)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    args = p.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)

    from orsalib.config import load_profile
    from orsalib.data.loaders import build_loaders
    from orsalib.data.sources import load_manifest
    from orsalib.experiments.fer import build_fer_model
    from orsalib.models.mobilefacenet import MobileFaceNet
    from orsalib.models.segface import SegFaceSwinB
    from orsalib.paths import shared_path
    from orsalib.priors.cache import PriorCache
    from orsalib.priors.landmarks import DEFAULT_LANDMARK_WEIGHTS, load_mobilefacenet
    from orsalib.utils import resolve_device, seed_everything

    cfg = load_profile(args.profile, {"prior.source": "none"}, device=args.device)
    device = resolve_device(cfg.device)
    seed_everything(0)
    manifest = load_manifest(cfg.data, seed=0)
    train = manifest[manifest["split"] == "train"].reset_index(drop=True)
    if args.limit:
        train = train.iloc[: args.limit].reset_index(drop=True)

    wfile = args.landmark_weights or (
        str(DEFAULT_LANDMARK_WEIGHTS) if DEFAULT_LANDMARK_WEIGHTS.is_file()
        else str(shared_path("weights", "mobilefacenet_68lm_fp16.pth.tar") or "")
    )  # fmt: skip
    if wfile:
        lm_net, lm_desc = load_mobilefacenet(wfile, device), f"real weights ({os.path.basename(wfile)})"
    else:
        lm_net, lm_desc = MobileFaceNet().to(device).eval(), "random weights"
    parser = SegFaceSwinB().to(device).eval().requires_grad_(False)
    S = cfg.data.image_size
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, profile {args.profile}: {len(train)} training "
        f"images at {S}px, batch {cfg.train.batch_size}, model {cfg.model.name} ({cfg.model.prior_routing} routing)"
    )
    print(f"priors: MobileFaceNet-68 at 112x112 ({lm_desc}); SegFace Swin-B parser at {S}x{S} (random weights)")

    with tempfile.TemporaryDirectory() as tmp:
        src = _combined_source(lm_net, parser, device)
        t0 = time.perf_counter()
        store = PriorCache(tmp).ensure(train, {"batch_size": 64, "cache_flip": True}, S, device, progress=False,
                                       source=src)  # fmt: skip
        build_s = time.perf_counter() - t0
        print(f"cache build (once, {len(train)} images + flipped): {build_s:.1f} s, {store.nbytes() / 1e6:.1f} MB")

        seed_everything(0)
        model_c = build_fer_model(cfg).to(device)
        loader_c = build_loaders(train, cfg.data, cfg.train.batch_size, seed=0, prior_store=store)["train"]
        t_cached, n_c = _epoch(model_c, loader_c, device, args.max_steps, lambda x, pr: model_c(x, priors=pr))

        seed_everything(0)
        model_r = build_fer_model(cfg, load_prior_weights=False, priors_in_model=True, prior_mode="released")
        model_r.face_landback.load_state_dict(lm_net.state_dict())  # the same frozen networks as the cache's
        model_r.face_segment.load_state_dict(parser.state_dict())
        model_r = model_r.to(device)
        loader_r = build_loaders(train, cfg.data, cfg.train.batch_size, seed=0, prior_store=None)["train"]
        t_recomp, n_r = _epoch(model_r, loader_r, device, args.max_steps, lambda x, pr: model_r(x, priors=pr))

    print()
    print(f"{'':32s}{'images':>8s}{'seconds':>10s}{'img/s':>10s}")
    print(f"{'epoch, priors recomputed':32s}{n_r:8d}{t_recomp:10.2f}{n_r / t_recomp:10.1f}")
    print(f"{'epoch, priors from cache':32s}{n_c:8d}{t_cached:10.2f}{n_c / t_cached:10.1f}")
    print(f"speed-up per epoch (recomputed / cached): {t_recomp / t_cached:.2f}x; "
          f"cache build pays for itself after {build_s / max(t_recomp - t_cached, 1e-9):.2f} epochs")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
