"""Test material for the paper path: a RAF-DB folder in its native layout and weight files in their public formats.

Nothing here needs ``../shared``: the faces are SynthFER renders and the weights are random tensors whose key names
and shapes come from the workbook's own networks (``MobileFaceNet``, ``SegFaceSwinB``, the IR-50 and ORSANet). When
``../shared/reference/official_state_dicts.json`` is present, the tests also check these tables against the
released ones (:func:`official_tables`).

- :func:`build_rafdb` writes ``basic/EmoLabel/list_patition_label.txt`` + ``basic/Image/aligned/*_aligned.jpg``
  (100x100 JPEG faces, as RAF-DB ships them);
- :func:`write_public_weights` writes ``mobilefacenet_68lm.pth.tar`` (``{'state_dict': ...}``, float16),
  ``model_299.pt`` (``{'state_dict_backbone': ...}``, SegFace LaPa Swin-B) and ``ir50.pth`` (the full four-stage
  IR-50 as a bare state dict, of which ORSANet loads the first three stages by name and shape);
- :func:`write_released_checkpoint` writes what the released ``train.py`` saves: ``{'iter', 'model_state_dict',
  'optimizer_state_dict'}`` with DataParallel's ``module.`` prefix on every key, frozen prior networks included.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from orsalib.data.labels import EMOTIONS_7, RAFDB_LABELS
from orsalib.data.synthfer import render_sample
from orsalib.models import create_model
from orsalib.models.ir50 import IR50_STAGES, IRBackbone, ir50
from orsalib.models.mobilefacenet import MobileFaceNet
from orsalib.models.segface import SegFaceSwinB
from orsalib.paths import shared_path

RAFDB_SIZE = 100  # RAF-DB's aligned faces are 100x100
#: the full IR-50 of the public ir50.pth: the released ORSANet keeps the first three stages
IR50_FULL_STAGES: tuple[tuple[int, int], ...] = (*IR50_STAGES, (512, 3))
#: file names of the public releases (data/README.md names the defaults under data/weights/)
LANDMARK_FILE, PARSER_FILE, IR50_FILE = "mobilefacenet_68lm.pth.tar", "model_299.pt", "ir50.pth"
_INTEGER_LEAVES = ("num_batches_tracked", "relative_position_index")


# ----------------------------------------------------------------------------- RAF-DB, native layout
def build_rafdb(root: Path, train_per_class: int = 2, test_per_class: int = 1, seed: int = 0) -> Path:
    """A RAF-DB basic folder in the native layout with SynthFER faces, ``*_per_class`` faces of each of the 7 classes.

    Labels are written with RAF-DB's own 1-based ids (1 surprise ... 7 neutral), file names as in the release
    (``train_00001.jpg`` in the label file, ``train_00001_aligned.jpg`` on disk). Returns ``root``.
    """
    rafdb_id = {name: k for k, name in RAFDB_LABELS.items()}
    img_dir = root / "basic" / "Image" / "aligned"
    img_dir.mkdir(parents=True, exist_ok=True)
    lines, index = [], 0
    for split, per_class, width in (("train", train_per_class, 5), ("test", test_per_class, 4)):
        n = 0
        for _ in range(per_class):
            for label, name in enumerate(EMOTIONS_7):
                n += 1
                index += 1
                s = render_sample(index, seed=seed, size=RAFDB_SIZE, label=label, occluder="none")
                stem = f"{split}_{n:0{width}d}"
                Image.fromarray(s.image).save(img_dir / f"{stem}_aligned.jpg", quality=92)
                lines.append(f"{stem}.jpg {rafdb_id[name]}")
    label_dir = root / "basic" / "EmoLabel"
    label_dir.mkdir(parents=True, exist_ok=True)
    (label_dir / "list_patition_label.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


# ----------------------------------------------------------------------------- key/shape tables
def shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def own_networks() -> dict[str, torch.nn.Module]:
    """The workbook's networks under the names of the released tables (``official_state_dicts.json``)."""
    return {
        "mobilefacenet_68": MobileFaceNet((112, 112), 136),
        "segface_lapa_swin_base": SegFaceSwinB(),
        "ir50_backbone": ir50(),
    }


def official_tables() -> dict[str, dict[str, tuple[int, ...]]] | None:
    """``{table: {key: shape}}`` of the released model (``../shared/reference``), or None when absent."""
    path = shared_path("reference", "official_state_dicts.json")
    if path is None:
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {name: {k: tuple(v) for k, v in t["keys"].items()} for name, t in raw.items()}


# ----------------------------------------------------------------------------- random weights, real names
def random_like(own: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with ``own``'s keys, shapes and dtypes and random, well-scaled values.

    Weights of rank >= 2 are drawn with std 1/sqrt(fan_in); norm gains around 1, running variances in [0.5, 1.5],
    biases and other vectors small; integer buffers (``num_batches_tracked``, Swin's ``relative_position_index``)
    are the module's own. Deep nets (Swin-B, IR-50) stay finite with such values, as with trained weights.
    """
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, ref in own.items():
        leaf = name.rsplit(".", 1)[-1]
        if not ref.is_floating_point() or leaf in _INTEGER_LEAVES:
            out[name] = ref.clone()
            continue
        t = torch.randn(ref.shape, generator=g)
        if leaf == "running_var":
            t = 0.5 + torch.rand(ref.shape, generator=g)
        elif leaf == "running_mean":
            t = 0.1 * t
        elif ref.dim() >= 2:
            t = t / math.sqrt(max(1, math.prod(ref.shape[1:])))
        elif bool((ref == 1).all()):  # norm gains, learnable scales initialised at 1
            t = 1.0 + 0.1 * t
        elif leaf == "weight" and bool((ref == 0.25).all()):  # PReLU slopes
            t = 0.25 + 0.02 * t
        else:  # biases, tokens, scales, tables
            t = 0.02 * t
        out[name] = t.to(ref.dtype)
    for name in [k for k in out if k.endswith(".weight_orig")]:  # spectral norm: u, v = top singular vectors
        w = out[name].reshape(out[name].shape[0], -1)
        u, _, vh = torch.linalg.svd(w, full_matrices=False)
        base = name[: -len("_orig")]
        if base + "_u" in out:
            out[base + "_u"], out[base + "_v"] = u[:, 0].contiguous(), vh[0].contiguous()
    return out


def write_public_weights(folder: Path, seed: int = 0) -> dict[str, Path]:
    """The three weight files in their public formats; returns ``{"landmark", "parser", "ir50"}`` -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    nets = own_networks()
    lm = random_like(nets["mobilefacenet_68"].state_dict(), seed)
    lm = {k: v.half() if v.is_floating_point() else v for k, v in lm.items()}  # the public file is float16
    torch.save({"state_dict": lm}, folder / LANDMARK_FILE)
    seg = random_like(nets["segface_lapa_swin_base"].state_dict(), seed + 1)
    torch.save({"epoch": 299, "state_dict_backbone": seg}, folder / PARSER_FILE)
    full = IRBackbone(64, IR50_FULL_STAGES, input_size=112, output_layer=True)
    torch.save(random_like(full.state_dict(), seed + 2), folder / IR50_FILE)
    return {"landmark": folder / LANDMARK_FILE, "parser": folder / PARSER_FILE, "ir50": folder / IR50_FILE}


def released_state_dict(variant: str = "large", num_classes: int = 7, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights of the released ``ORSA(img_size=224, type=variant)`` by the workbook's key names (no prefix),
    frozen MobileFaceNet and SegFace included."""
    model = create_model(f"orsanet_{variant}", num_classes=num_classes, priors_in_model=True)
    return random_like(model.state_dict(), seed)


def write_released_checkpoint(path: Path, state: dict[str, torch.Tensor], iteration: int = 392) -> Path:
    """``state`` saved as the released ``train.py`` does: ``module.`` prefix, ``iter``, an Adam optimizer state
    (its moments left out to keep the file small; the converter reads only ``model_state_dict``)."""
    n_trainable = sum(1 for k in state if not k.startswith(("face_landback.", "face_segment.")))
    group = {"lr": 4e-5, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False,
             "rho": 0.05, "adaptive": False, "params": list(range(n_trainable))}  # fmt: skip
    torch.save(
        {
            "iter": iteration,
            "model_state_dict": {f"module.{k}": v for k, v in state.items()},
            "optimizer_state_dict": {"state": {}, "param_groups": [group]},
        },
        path,
    )
    return path


def jpeg_faces_ok(root: Path) -> bool:
    """Every aligned face is a 100x100 RGB JPEG (what the RAF-DB adapter reads)."""
    for p in sorted((root / "basic" / "Image" / "aligned").glob("*.jpg")):
        with Image.open(p) as im:
            if im.format != "JPEG" or im.size != (RAFDB_SIZE, RAFDB_SIZE) or im.mode != "RGB":
                return False
            if np.asarray(im).std() < 1.0:
                return False
    return True


# ----------------------------------------------------------------------------- peak memory of one paper step
def step_peak_memory(mode: str = "cached", batch: int = 20, seed: int = 0) -> dict:
    """Peak resident memory of this process around one paper-profile optimisation step on CPU.

    ``orsanet_large`` at 224 px, the release's recipe (SAM around Adam, rho 0.05; the CE + 0.1 DARE loss of the epochs
    after the warm-up), batch ``batch``; ``mode="cached"``: the priors are tensors as the prior cache hands them
    (``landmark_features`` (B, 512, 7, 7), ``parser_features`` (B, 1024, 7, 7)); ``"released"``: the frozen
    MobileFaceNet and SegFace run inside the model in train mode (twice per step). Run it in a fresh process
    (``python tests/paper_fixture.py step-memory --mode cached --batch 20``): ``ru_maxrss`` is the process's peak.
    """
    import os
    import resource
    import time

    from orsalib.config import TrainConfig
    from orsalib.engine.evaluate import default_forward
    from orsalib.engine.trainer import StepState, build_optimizer, train_step
    from orsalib.losses import build_criterion

    torch.manual_seed(seed)
    released = mode == "released"
    kw = {"priors_in_model": True, "prior_mode": "released"} if released else {}
    model = create_model("orsanet_large", num_classes=7, **kw).train()
    cfg = TrainConfig()  # the dataclass defaults are the released recipe (paper profile)
    opt, sam = build_optimizer(model, cfg)
    g = torch.Generator().manual_seed(seed)
    batch_t = {"image": torch.randn(batch, 3, 224, 224, generator=g), "label": torch.arange(batch) % 7,
               "index": torch.arange(batch)}  # fmt: skip
    if not released:
        batch_t["landmark_features"] = torch.randn(batch, 512, 7, 7, generator=g)
        batch_t["parser_features"] = torch.randn(batch, 1024, 7, 7, generator=g)
    st = StepState(model=model, criterion=build_criterion(cfg), forward=default_forward, optimizer=opt, sam=sam)
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    parts, _ = train_step(st, batch_t, epoch=cfg.lsce_warmup_epochs)  # the first epoch after the warm-up: CE + DARE
    seconds = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "mode": mode,
        "batch": batch,
        "peak_rss_mb": round(peak_kb / 1024),
        "rss_before_step_mb": round(before_kb / 1024),
        "step_seconds": round(seconds, 1),
        "loss": round(float(parts["loss"]), 4),
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
    }


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="peak memory of one paper-profile SAM step (orsanet_large, 224 px)")
    ap.add_argument("what", choices=["step-memory"])
    ap.add_argument("--mode", default="cached", choices=["cached", "released"])
    ap.add_argument("--batch", type=int, default=20)
    a = ap.parse_args()
    print(json.dumps(step_peak_memory(a.mode, a.batch)))
