"""Load released checkpoints into the workbook's ORSANet, by key name.

Accepted inputs (a path, or the already-loaded object):

* the released ``train.py`` format ``{'iter', 'model_state_dict', 'optimizer_state_dict'}`` with DataParallel's
  ``module.`` prefix, or any bare ORSANet state dict (keys ``ir_back.*``, ``pyramid_fuse.*``, ...);
* the public IR-50 ``ir50.pth`` -> ``model.ir_back`` (name + shape match, as the release loads it);
* the public MobileFaceNet checkpoint ``{'state_dict': ...}`` -> ``model.face_landback``;
* the public SegFace ``model_299.pt`` ``{'state_dict_backbone': ...}`` -> ``model.face_segment``.

Files are always read with ``torch.load(weights_only=True)``. A mismatch raises :class:`CheckpointError` naming
the file, with the first 20 missing / unexpected / wrongly shaped keys and their counts.

:func:`write_released_run` turns a released checkpoint into a workbook run folder (``config.json`` +
``checkpoints/best.pt``), which ``orsa evaluate --run-name`` and ``orsalib.experiments.runs.load_trained`` read like
any trained run (docs/paper_profile.md, "Evaluating the authors' checkpoint").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..utils import atomic_torch_save, save_run_config

ORSANET_PREFIXES: tuple[str, ...] = (
    "ir_back.", "ir_layer.", "face_landback.", "face_segment.", "seg_sample.", "seg_encoder.", "seg_fusion.",
    "lm_proj.", "lm_embed.", "pyramid_fuse.", "se_block.", "head.", "norm.",
)  # fmt: skip
PRIOR_PREFIXES: tuple[str, ...] = ("face_landback.", "face_segment.")
RELEASED_RUN_FORMAT = "orsalib.released/1"  # best.pt of a converted run (read by load_trained like a trainer one)
_SHOW = 20


@dataclass
class LoadReport:
    """What :func:`load_released_checkpoint` did."""

    source: str  # file path or "<state dict>"
    kind: str  # "orsanet" | "ir50" | "mobilefacenet" | "segface"
    target: str  # the sub-module loaded ("" = the whole model)
    loaded: int = 0  # tensors copied
    missing: list[str] = field(default_factory=list)  # model keys the checkpoint lacks
    unexpected: list[str] = field(default_factory=list)  # checkpoint keys the model lacks
    mismatched: list[str] = field(default_factory=list)  # same name, other shape ("key: ckpt vs model")
    ignored: list[str] = field(default_factory=list)  # prior-network keys skipped (model gets cached priors)

    def summary(self) -> str:
        return (
            f"{self.source} ({self.kind} -> {self.target or 'model'}): loaded {self.loaded}, "
            f"missing {len(self.missing)}, unexpected {len(self.unexpected)}, shape mismatches {len(self.mismatched)}, "
            f"ignored prior-network keys {len(self.ignored)}"
        )


def _first(keys: list[str]) -> str:
    more = f" ... (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return ", ".join(keys[:_SHOW]) + more


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, with errors that name the file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - anything here means the file is not a (safe) torch checkpoint
        raise CheckpointError(
            f"{str(path)!r} is not a readable PyTorch checkpoint (expected a released ORSANet checkpoint, a state "
            f"dict, ir50.pth, a MobileFaceNet or a SegFace file): {type(e).__name__}: {str(e)[:300]}"
        ) from e


def _unwrap(obj: Any, source: str) -> tuple[dict[str, torch.Tensor], str | None]:
    """Return (state dict without ``module.``, hint of the kind from the container key)."""
    hint = None
    if isinstance(obj, dict):
        for key, kind in (("model_state_dict", None), ("state_dict_backbone", "segface"), ("state_dict", None)):
            if key in obj and isinstance(obj[key], dict):
                obj, hint = obj[key], kind
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) for k in obj):
        raise CheckpointError(
            f"{source}: not a checkpoint this loader knows; expected a state dict or a dict with 'model_state_dict' "
            f"(released train.py), 'state_dict' (MobileFaceNet / ir50) or 'state_dict_backbone' (SegFace); "
            f"got {type(obj).__name__}" + (f" with keys {list(obj)[:10]}" if isinstance(obj, dict) else "")
        )
    tensors = {k: v for k, v in obj.items() if torch.is_tensor(v)}
    if len(tensors) != len(obj):
        bad = [k for k, v in obj.items() if not torch.is_tensor(v)][:5]
        raise CheckpointError(f"{source}: the state dict holds non-tensor entries (e.g. {bad}); not a model checkpoint")
    return {k.removeprefix("module."): v for k, v in tensors.items()}, hint


def _detect(state: dict[str, torch.Tensor], hint: str | None) -> str:
    keys = set(state)
    if hint:
        return hint
    if any(k.startswith(ORSANET_PREFIXES) and not k.startswith("norm.") for k in keys):
        return "orsanet"
    if "input_layer.0.weight" in keys and any(k.startswith("body.") for k in keys):
        return "ir50"
    if "conv1.conv.weight" in keys and any(k.startswith("conv_6_sep.") for k in keys):
        return "mobilefacenet"
    if any(k.startswith("backbone.0.") for k in keys) and any(k.startswith("face_decoder.") for k in keys):
        return "segface"
    return "unknown"


def _compare(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> tuple[list, list, list, dict]:
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched, ok = [], {}
    for k, v in state.items():
        if k in own:
            if tuple(own[k].shape) == tuple(v.shape):
                ok[k] = v
            else:
                mismatched.append(f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}")
    return missing, unexpected, mismatched, ok


def load_released_checkpoint(
    model: nn.Module, path_or_state: str | Path | dict[str, Any], *, strict: bool = True
) -> LoadReport:
    """Load a released / public checkpoint into ``model`` (an ORSANet) by key name.

    Args:
        model: the target ORSANet.
        path_or_state: a file path or the loaded object (any accepted format, see the module docstring).
        strict: raise :class:`CheckpointError` on any missing, unexpected or wrongly shaped key. Without
            ``strict`` the keys that fit are loaded and the rest is reported. ``face_landback.*`` /
            ``face_segment.*`` keys are skipped (reported as ``ignored``) when the model has no in-model priors.

    Returns:
        A :class:`LoadReport`.
    """
    if isinstance(path_or_state, (str, Path)):
        return _load_into(model, read_checkpoint(path_or_state), str(path_or_state), strict)
    return _load_into(model, path_or_state, "<state dict>", strict)


def _load_into(model: nn.Module, obj: Any, source: str, strict: bool) -> LoadReport:
    """:func:`load_released_checkpoint` of an already loaded ``obj``; messages name ``source``."""
    state, hint = _unwrap(obj, source)
    kind = _detect(state, hint)
    if kind == "unknown":
        raise CheckpointError(
            f"{source}: keys match neither ORSANet (ir_back.*, pyramid_fuse.*, ...), IR-50 (input_layer.*, body.*), "
            f"MobileFaceNet (conv1.*, conv_6_sep.*) nor SegFace (backbone.*, face_decoder.*); first keys: "
            f"{_first(sorted(state))}"
        )
    target_name = {"orsanet": "", "ir50": "ir_back", "mobilefacenet": "face_landback", "segface": "face_segment"}[kind]
    if target_name and not hasattr(model, target_name):
        raise CheckpointError(
            f"{source}: a {kind} checkpoint goes into model.{target_name}, which this model does not have"
            + (" (build it with priors_in_model=True)" if kind in ("mobilefacenet", "segface") else "")
        )
    target = getattr(model, target_name) if target_name else model
    report = LoadReport(source=source, kind=kind, target=target_name)
    if kind == "ir50":
        state = {k.removeprefix("ir_back."): v for k, v in state.items()}
    own = target.state_dict()
    if kind == "orsanet":
        present = {k.split(".", 1)[0] + "." for k in own}
        report.ignored = [k for k in state if k.startswith(PRIOR_PREFIXES) and k.split(".", 1)[0] + "." not in present]
        state = {k: v for k, v in state.items() if k not in set(report.ignored)}
    missing, unexpected, mismatched, ok = _compare(own, state)
    if kind == "ir50":
        unexpected = []  # the public file holds the full 4-stage IR-50; extra keys are skipped by design
    report.missing, report.unexpected, report.mismatched = missing, unexpected, mismatched
    if strict and (missing or unexpected or mismatched):
        lines = [f"{source}: the {kind} checkpoint does not fit {type(target).__name__}"]
        if missing:
            lines.append(f"  {len(missing)} missing keys (first {_SHOW}): {_first(missing)}")
        if unexpected:
            lines.append(f"  {len(unexpected)} unexpected keys (first {_SHOW}): {_first(unexpected)}")
        if mismatched:
            lines.append(f"  {len(mismatched)} shape mismatches (checkpoint vs model): {_first(mismatched)}")
        lines.append("  (load with strict=False to copy the keys that fit)")
        raise CheckpointError("\n".join(lines))
    if not ok:
        raise CheckpointError(f"{source}: no key of the {kind} checkpoint fits the model; nothing was loaded")
    target.load_state_dict(ok, strict=False)
    report.loaded = len(ok)
    return report


def write_released_run(
    model: nn.Module, checkpoint: str | Path, run_dir: str | Path, config: Any = None, *, strict: bool = True
) -> LoadReport:
    """Load a released ORSANet checkpoint into ``model`` and write it as a run folder of the workbook.

    ``run_dir`` gets ``checkpoints/best.pt`` (``{"format", "epoch", "model", "record", "source"}``: the weights of
    ``model`` after loading, ``epoch`` = the checkpoint's ``iter``) and, when ``config`` is given, ``config.json``
    (the resolved RunConfig the model was built from, versions, git SHA, the source file and the load summary), so
    that ``orsa evaluate --run-name`` and :func:`orsalib.experiments.runs.load_trained` score it like a trained run.
    No ``last.pt`` is written: a converted checkpoint cannot be resumed (it has no workbook optimizer state).

    Args:
        model: the ORSANet the config builds (``experiments.fer.build_fer_model(cfg, load_prior_weights=False)``).
            With ``prior.mode="released"`` it holds the frozen MobileFaceNet / SegFace, which are then loaded from the
            checkpoint (the release trains them in train mode, so their BatchNorm statistics are the checkpoint's);
            otherwise those keys are skipped and the priors come from the prior cache.
        checkpoint: the released ``{'iter', 'model_state_dict', 'optimizer_state_dict'}`` file (or a bare state dict).
        run_dir: the run's train folder, e.g. ``outputs/<run_name>/train``; must not hold a run yet.
        config: the RunConfig (or dict) to save as ``config.json``; None writes only the checkpoint.
        strict: as in :func:`load_released_checkpoint`.

    Raises:
        CheckpointError: the file does not fit ``model``, is not an ORSANet checkpoint, or ``run_dir`` already holds a
            checkpoint.
    """
    run_dir = Path(run_dir)
    best = run_dir / "checkpoints" / "best.pt"
    if best.exists() or (run_dir / "checkpoints" / "last.pt").exists():
        raise CheckpointError(f"{run_dir} already holds a run; choose another run name or move it aside")
    source = str(checkpoint)
    obj = read_checkpoint(checkpoint)
    kind = _detect(*_unwrap(obj, source))
    if kind != "orsanet":
        raise CheckpointError(
            f"{source} holds {kind} weights, not an ORSANet checkpoint; a run needs the whole model "
            "(prior-network and backbone files go to prior.landmark_weights / prior.parser_weights / "
            "model.backbone_weights)"
        )
    report = _load_into(model, obj, source, strict)
    epoch = int(obj.get("iter", 0)) if isinstance(obj, dict) and isinstance(obj.get("iter", 0), int) else 0
    record = {"epoch": epoch, "source": source, "load_report": report.summary()}
    payload = {"format": RELEASED_RUN_FORMAT, "epoch": epoch, "model": model.state_dict(), "record": record,
               "source": source}  # fmt: skip
    atomic_torch_save(payload, best)
    if config is not None:
        save_run_config(run_dir, config, extra={"converted_from": source, "load_report": report.summary()})
    return report
