"""Run configuration: dataclasses with the paper's defaults, validation, profiles, JSON/YAML load/save.

Profiles:
- ``smoke``: seconds per notebook; used by the test suite (tiny SynthFER, 1-2 epochs, tiny model).
- ``cpu``: the default of ``make reproduce``; meaningful results on 2 CPU cores, whole suite in well under 30 min.
- ``paper``: the paper's recipe (as released) for a GPU and the real datasets.

Defaults of the dataclasses equal the paper/release settings; profiles override what they must.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from . import registry  # validation reads the registries (they load their providers on first lookup)
from .models._registry import list_models
from .utils import atomic_write_text

PROFILES: tuple[str, ...] = ("smoke", "cpu", "paper")
PRIOR_MODES: tuple[str, ...] = ("cached", "released")
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
SCHEDULERS: tuple[str, ...] = ("exponential", "cosine", "step", "none")
DARE_FORMS: tuple[str, ...] = ("released", "paper")
AMP_MODES: tuple[str, ...] = ("auto", "none", "bf16", "fp16")


class ConfigError(ValueError):
    """A configuration value is out of its allowed range; the message says what is allowed."""


def _choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed; choose one of {list(allowed)}")


def _positive(name: str, value: Any, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not ok:
        rel = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name}={value!r} is not allowed; it must be a number {rel}")


def _fraction(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}={value!r} is not allowed; it must be a fraction in [0, 1]")


@dataclass
class DataConfig:
    """Which data, at which size."""

    dataset: str = "synthfer"  # a name registered in orsalib.registry.DATASETS (adapters: orsalib/data/sources.py)
    data_root: str = ""  # "" = the embedded default (SynthFER is generated under outputs/cache/synthfer)
    image_size: int = 224  # model input side (paper: 224)
    num_classes: int = 7  # 7 basic expressions; 8 adds contempt (AffectNet-8, Occlu-FER)
    train_per_class: int = 400  # SynthFER only: training images per class
    val_per_class: int = 100  # SynthFER only: validation images per class (clean and occluded splits each)
    synth_size: int = 112  # SynthFER only: side of the generated images
    occlusion_prob: float = 0.5  # SynthFER only: fraction of training faces with an occluder
    balanced_sampler: bool = True  # release: imbalanced-dataset sampler on every dataset
    num_workers: int = 0  # DataLoader workers (0 = in process)
    on_bad: str = "raise"  # "raise" or "skip" unreadable/invalid files
    hflip: bool = True  # release augmentation: horizontal flip
    random_erasing: float = 0.5  # release: RandomErasing(p=0.5, scale=(0.02, 0.1))
    label_map: dict = field(default_factory=dict)  # imagefolder only: folder name -> canonical emotion

    def validate(self) -> None:
        _choice("data.dataset", self.dataset, tuple(registry.DATASETS))
        _positive("data.image_size", self.image_size)
        if self.num_classes not in (7, 8):
            raise ConfigError(f"data.num_classes={self.num_classes!r} is not allowed; choose 7 or 8")
        _positive("data.train_per_class", self.train_per_class)
        _positive("data.val_per_class", self.val_per_class)
        _positive("data.synth_size", self.synth_size)
        _fraction("data.occlusion_prob", self.occlusion_prob)
        _positive("data.num_workers", self.num_workers, allow_zero=True)
        _choice("data.on_bad", self.on_bad, ("raise", "skip"))
        _fraction("data.random_erasing", self.random_erasing)
        if registry.DATASETS.meta(self.dataset).get("needs_root", True) and not self.data_root:
            raise ConfigError(
                f"data.dataset={self.dataset!r} needs data.data_root (the folder holding it); "
                "see data/README.md for the accepted layouts"
            )
        if self.data_root and not Path(self.data_root).expanduser().exists():
            raise ConfigError(f"data.data_root={self.data_root!r} does not exist; expected a dataset folder")


@dataclass
class PriorConfig:
    """Where the landmark (sparse) and parsing (dense) priors come from."""

    source: str = "oracle"  # a name in orsalib.registry.PRIOR_SOURCES; paper: "mobilefacenet+segface" (both nets)
    landmark_weights: str = ""  # MobileFaceNet-68 checkpoint {'state_dict': ...}; "" = data/weights/...
    parser_weights: str = ""  # SegFace LaPa Swin-B checkpoint (model_299.pt, 'state_dict_backbone')
    mode: str = "cached"  # "cached": computed once in eval mode; "released": recomputed every step in train mode
    cache_flip: bool = True  # also cache the priors of the horizontally flipped image
    batch_size: int = 64  # batch size when building the cache

    def validate(self) -> None:
        _choice("prior.source", self.source, tuple(registry.PRIOR_SOURCES))
        _choice("prior.mode", self.mode, PRIOR_MODES)
        _positive("prior.batch_size", self.batch_size)


@dataclass
class ModelConfig:
    """Which network; ablation switches of paper Table 6."""

    name: str = "orsanet_large"  # a registered model name (orsalib.models.list_models())
    prior_routing: str = "released"  # "released": backbone features of the prior nets; "paper": label map + conv stack
    seg_prior: bool = True  # Table 6: w/o segmentation prior when False
    cross_interaction: bool = True  # Table 6: w/o cross-interaction (MCM) when False
    # what w/o cross-interaction removes: "self-attention" (paper: image-token queries, landmark tokens kept and
    # reintegrated) | "no-landmarks" (no landmark tokens at all); docs/faithfulness.md
    cross_interaction_ablation: str = "self-attention"
    multi_scale: bool = True  # Table 6: single scale when False
    landmark_reintegration: bool = True  # Table 6: w/o landmark reintegration (Eq. 9) when False
    drop_path: float = 0.1  # MCM stochastic depth (release: up to 0.1)
    backbone_weights: str = ""  # optional IR-50 ir50.pth (public format); "" = random init
    extra: dict = field(default_factory=dict)  # further keyword overrides passed to create_model

    def validate(self) -> None:
        if self.name not in list_models():
            close = difflib.get_close_matches(str(self.name), list_models(), n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise ConfigError(f"model.name={self.name!r} is not a registered model.{hint} See `orsa models`")
        _choice("model.prior_routing", self.prior_routing, ("released", "paper"))
        _choice("model.cross_interaction_ablation", self.cross_interaction_ablation, ("self-attention", "no-landmarks"))
        _fraction("model.drop_path", self.drop_path)


@dataclass
class TrainConfig:
    """Optimisation; defaults = the released training recipe (see FACTS in docs)."""

    epochs: int = 400  # release: 400
    batch_size: int = 20  # release: 20
    lr: float = 1e-4  # paper text: 1e-4; release code default 1e-5 (logs imply 4e-5 on RAF-DB)
    optimizer: str = "adam"  # adam | adamw | sgd
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0  # release: none
    sam: bool = True  # release: SAM around Adam
    sam_rho: float = 0.05  # release: 0.05, not adaptive
    scheduler: str = "exponential"  # release: ExponentialLR
    gamma: float = 0.98  # exponential decay per epoch (release 0.98) / step factor
    step_size: int = 30  # step scheduler: epochs per step
    lsce_warmup_epochs: int = 5  # release: epochs 1-5 use CE + lsce_weight * LSCE
    lsce_eps: float = 0.2  # label smoothing of the warm-up
    lsce_weight: float = 2.0  # release: CE + 2 * LSCE
    ce_weight: float = 1.0  # lambda1 (paper: 1)
    dare: bool = True  # use DARELoss after the warm-up
    dare_form: str = "released"  # "released" (default: what the published numbers used) | "paper" (Eq. 10-11)
    dare_weight: float = 0.1  # lambda2 (paper and release: 0.1)
    dare_temperature: float = 1.0  # release: T = 1
    grad_clip: float = 0.0  # 0 = off
    amp: str = "auto"  # auto = bf16 on CUDA, none on CPU
    channels_last: bool = False
    compile: bool = False  # torch.compile (CUDA only)
    eval_every: int = 1
    checkpoint_every: int = 1
    max_steps_per_epoch: int = 0  # 0 = full epoch (smoke runs cap this)
    log_every: int = 0  # 0 = one line per epoch only

    def validate(self) -> None:
        _positive("train.epochs", self.epochs)
        if not isinstance(self.epochs, int):
            raise ConfigError(f"train.epochs={self.epochs!r} must be an integer > 0")
        _positive("train.batch_size", self.batch_size)
        _positive("train.lr", self.lr)
        _choice("train.optimizer", self.optimizer, OPTIMIZERS)
        _positive("train.weight_decay", self.weight_decay, allow_zero=True)
        _positive("train.sam_rho", self.sam_rho)
        _choice("train.scheduler", self.scheduler, SCHEDULERS)
        _positive("train.gamma", self.gamma)
        _positive("train.lsce_warmup_epochs", self.lsce_warmup_epochs, allow_zero=True)
        _fraction("train.lsce_eps", self.lsce_eps)
        _choice("train.dare_form", self.dare_form, DARE_FORMS)
        _positive("train.dare_weight", self.dare_weight, allow_zero=True)
        _positive("train.dare_temperature", self.dare_temperature)
        _positive("train.grad_clip", self.grad_clip, allow_zero=True)
        _choice("train.amp", self.amp, AMP_MODES)
        _positive("train.eval_every", self.eval_every)
        _positive("train.checkpoint_every", self.checkpoint_every)
        _positive("train.max_steps_per_epoch", self.max_steps_per_epoch, allow_zero=True)


@dataclass
class RunConfig:
    """One run: profile, name, seed, device and the four sections."""

    profile: str = "cpu"
    run_name: str = "default"
    seed: int = 123  # release: 123
    device: str = "auto"  # auto = CUDA when present
    seeds: list = field(default_factory=lambda: [123])  # training seeds of every method comparison (Tables 2-4, 6-8)
    data: DataConfig = field(default_factory=DataConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> RunConfig:
        _choice("profile", self.profile, PROFILES)
        if not self.run_name or any(c in self.run_name for c in "/\\"):
            raise ConfigError(f"run_name={self.run_name!r} must be a plain folder name (no slashes)")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed={self.seed!r} must be an integer >= 0")
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")
        ):
            raise ConfigError(f"device={self.device!r} is not allowed; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
        for s in (self.data, self.prior, self.model, self.train):
            s.validate()
        if _needs_ground_truth(self) and not _has_ground_truth(self):
            raise ConfigError(
                f"prior.source={self.prior.source!r} reads ground-truth landmarks and parsing maps, which "
                f"data.dataset={self.data.dataset!r} does not have (only SynthFER does); use a source that detects "
                f"them, e.g. {REAL_DATA_PRIOR_SOURCE!r}, 'mobilefacenet+segface' or 'none' (orsa check lists them)"
            )
        return self

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- profiles
_PROFILE_OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": {
        "seeds": [0, 1],
        "data": dict(image_size=64, train_per_class=6, val_per_class=3, synth_size=64, occlusion_prob=0.5),
        "prior": dict(source="oracle", batch_size=32),
        "model": dict(name="orsanet_tiny", prior_routing="paper", drop_path=0.0),
        "train": dict(epochs=2, batch_size=8, lr=1e-3, sam=False, lsce_warmup_epochs=1, scheduler="none",
                      max_steps_per_epoch=3),
    },
    "cpu": {
        # three training seeds per compared method: a verdict is about methods, not one trained network
        "seeds": [0, 1, 2],
        # 400 / 100 faces per class and 6 epochs: every model of the cpu family learns SynthFER well above the
        # majority class (docs/cpu_family.md; at 8 epochs ORSANet with detected priors reached 84 %, at 7 77 %: it
        # is the slowest learner of the family). 6, not 8: the suite trains each compared model with 3 seeds and
        # must fit 40 minutes on 2 cores (README, "what the seeds cost")
        "data": dict(image_size=64, train_per_class=400, val_per_class=100, synth_size=64, occlusion_prob=0.5),
        # detected priors (small networks trained on SynthFER's training split, orsalib/priors/detected.py): they
        # fail under occluders as real prior networks do; "oracle" (ground truth) is the labelled upper bound
        "prior": dict(source="synth-detected", batch_size=64),
        "model": dict(name="orsanet_cpu", prior_routing="paper", drop_path=0.05),
        # channels-last: 1.16x (orsanet_cpu), 1.35x (baseline_cpu), 1.28x (ran_cpu), 1.0x (resnet18_cpu) training
        # images/s on 2 cores (docs/speed.md); the numbers change only in the last bits
        "train": dict(epochs=6, batch_size=32, lr=2e-3, sam=False, lsce_warmup_epochs=2, scheduler="cosine",
                      channels_last=True),
    },
    "paper": {
        "seeds": [123],
        "data": dict(image_size=224, dataset="rafdb"),
        "prior": dict(source="mobilefacenet+segface"),
        "model": dict(name="orsanet_large", prior_routing="released"),
        "train": dict(),  # the dataclass defaults are the released recipe
    },
}


def _check_type(where: str, value: Any, ftype: str) -> Any:
    """``value`` checked against a field's annotation (bool, int, finite float, str, list, dict); returns it."""
    if ftype == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where}={value!r} is not allowed; it must be true or false")
    elif ftype == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}={value!r} is not allowed; it must be a whole number")
    elif ftype == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}={value!r} is not allowed; it must be a finite number")
        value = float(value)
    elif ftype == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where}={value!r} is not allowed; it must be a string")
    elif ftype == "list":
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{where}={value!r} is not allowed; it must be a list")
    elif ftype == "dict" and not isinstance(value, dict):
        raise ConfigError(f"{where}={value!r} is not allowed; it must be a mapping")
    return value


def _merge(obj: Any, overrides: Mapping[str, Any], where: str = "") -> Any:
    """Apply nested overrides to a dataclass in place, rejecting unknown keys and values of the wrong type."""
    known = {f.name: f for f in fields(obj)}
    for key, value in overrides.items():
        if key not in known:
            raise ConfigError(f"unknown config key {where + key!r}; known keys: {sorted(known)}")
        cur = getattr(obj, key)
        if is_dataclass(cur):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config section {where + key!r} must be a mapping, got {type(value).__name__}")
            _merge(cur, value, where=f"{where}{key}.")
        else:
            ftype = known[key].type if isinstance(known[key].type, str) else known[key].type.__name__
            setattr(obj, key, copy.deepcopy(_check_type(where + key, value, ftype)))
    return obj


def _split_dotted(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``{"train.epochs": 3}`` -> ``{"train": {"epochs": 3}}`` (dotted keys as papermill/CLI give them)."""
    out: dict[str, Any] = {}
    for k, v in overrides.items():
        parts = str(k).split(".")
        d = out
        for p in parts[:-1]:
            nxt = d.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"config key {k!r}: {p!r} is a value, not a section")
            d = nxt
        if isinstance(v, Mapping) and isinstance(d.get(parts[-1]), dict):
            d[parts[-1]].update(v)
        else:
            d[parts[-1]] = v
    return out


def apply_overrides(cfg: RunConfig, overrides: Mapping[str, Any] | None = None, **kw: Any) -> RunConfig:
    """A validated copy of ``cfg`` with dotted (``{"train.lr": 1e-3}``) or nested overrides applied.

    The one way to override a config: the CLI's ``--set``, notebooks, ablation variants and the runbook all use it.
    ``cfg`` itself is not modified.

    Raises:
        ConfigError: an unknown key (the message lists the known ones), a value of the wrong type (bool, whole
            number, finite number, string, list, mapping) or out of its allowed range.
    """
    out = copy.deepcopy(cfg)
    _merge(out, _split_dotted({**(overrides or {}), **kw}))
    return out.validate()


def load_profile(profile: str = "cpu", overrides: Mapping[str, Any] | None = None, **kw: Any) -> RunConfig:
    """The resolved config of a profile, with nested or dotted overrides, validated.

    Example: ``load_profile("smoke", {"train.epochs": 1}, run_name="t")``. Setting ``seed`` without ``seeds`` shifts
    the profile's seeds to start there (``seed=1`` on ``cpu``: 1, 2, 3), as many as the profile lists.
    """
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {list(PROFILES)}")
    cfg = RunConfig(profile=profile)
    _merge(cfg, copy.deepcopy(_PROFILE_OVERRIDES[profile]))
    cfg.seed = cfg.seeds[0] if profile != "paper" else cfg.seed
    merged = _split_dotted({**(overrides or {}), **kw})
    _merge(cfg, merged)
    if "seed" in merged and "seeds" not in merged:
        cfg.seeds = [cfg.seed + k for k in range(max(1, len(cfg.seeds)))]
    if "source" not in merged.get("prior", {}) and not _has_ground_truth(cfg) and _synthfer_only(cfg):
        cfg.prior.source = REAL_DATA_PRIOR_SOURCE  # the profile's SynthFER default is not meant for real faces
    return cfg.validate()


#: the prior source a profile falls back to on a dataset without ground-truth landmarks and parsing (real faces):
#: MobileFaceNet-68 landmarks + a parsing map rasterised from them (one weights file, data/README.md)
REAL_DATA_PRIOR_SOURCE = "landmark-parsing"


def _needs_ground_truth(cfg: RunConfig) -> bool:
    return cfg.prior.source in registry.PRIOR_SOURCES and bool(
        registry.PRIOR_SOURCES.meta(cfg.prior.source).get("ground_truth")
    )


def _synthfer_only(cfg: RunConfig) -> bool:
    """Whether the prior source needs SynthFER's ground truth or was made for SynthFER (registry metadata)."""
    if cfg.prior.source not in registry.PRIOR_SOURCES:
        return False
    meta = registry.PRIOR_SOURCES.meta(cfg.prior.source)
    return bool(meta.get("ground_truth")) or not meta.get("real_faces", True)


def _has_ground_truth(cfg: RunConfig) -> bool:
    return cfg.data.dataset in registry.DATASETS and bool(registry.DATASETS.meta(cfg.data.dataset).get("ground_truth"))


def from_dict(d: dict[str, Any]) -> RunConfig:
    """Rebuild a RunConfig from ``to_dict()`` output (or a saved ``config.json``'s ``config`` entry)."""
    d = dict(d.get("config", d))
    profile = d.pop("profile", "cpu")
    cfg = RunConfig(profile=profile)
    _merge(cfg, d)
    return cfg.validate()


def save_config(cfg: RunConfig, path: str | Path) -> Path:
    """Write ``cfg`` as JSON (or YAML by the file's suffix), atomically."""
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        return atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return atomic_write_text(path, json.dumps(cfg.to_dict(), indent=2) + "\n")


def load_config(path: str | Path) -> RunConfig:
    """Load a JSON or YAML config file (a full RunConfig, or a ``profile`` plus overrides)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; expected a .json or .yaml RunConfig")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            d = yaml.safe_load(text) or {}
        else:
            d = json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse error is the user's file
        raise ConfigError(f"config file {str(path)!r} is not valid {path.suffix[1:].upper()}: {e}") from e
    if not isinstance(d, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at top level")
    d = dict(d.get("config", d))
    profile = d.pop("profile", "cpu")
    try:
        return load_profile(profile, d)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
