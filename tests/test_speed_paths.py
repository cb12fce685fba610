"""The fast paths of docs/speed.md compute what the plain paths compute (correctness only, never timings).

bf16 training on CPU, the fused optimizer, the vectorised SAM, priors computed once per SAM step, folded BatchNorm,
the optimised prior extractors, decoding in a background thread, and the thread policy under a mocked machine.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from orsalib.config import TrainConfig
from orsalib.engine.evaluate import default_forward
from orsalib.engine.sam import SAM
from orsalib.engine.trainer import StepState, build_optimizer, resolve_amp, train_step
from orsalib.losses import build_criterion
from orsalib.models import create_model
from orsalib.models.fold import fold_batchnorm
from orsalib.models.ir50 import BottleneckIR, IRBackbone
from orsalib.models.mobilefacenet import MobileFaceNet
from orsalib.paths import shared_path
from orsalib.priors.fast import (
    FastLandmarkPredictor,
    bf16_native,
    landmark_nme,
    parsing_agreement,
    precision_tag,
    prefetch,
    resolve_precision,
)
from orsalib.priors.landmarks import LandmarkPredictor, load_mobilefacenet
from orsalib.threads import (
    ThreadPlan,
    apply_thread_policy,
    available_cpus,
    export_thread_environment,
    loader_workers,
    physical_cores,
    thread_plan,
)

CPU = torch.device("cpu")


def _tiny_batch(n: int = 8, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, 3, 64, 64, generator=g), "label": torch.arange(n) % 7, "index": torch.arange(n),
            "landmarks": torch.rand(n, 68, 2, generator=g),
            "parsing": torch.randint(0, 11, (n, 64, 64), generator=g)}  # fmt: skip


# ----------------------------------------------------------------------------- training step
def test_amp_resolution_on_cpu():
    assert resolve_amp("bf16", CPU) == torch.bfloat16  # bf16 autocast runs on a CPU device
    assert resolve_amp("auto", CPU) is None  # ... but the CPU default stays fp32
    assert resolve_amp("none", CPU) is None and resolve_amp("fp16", CPU) is None  # fp16 needs a GPU's GradScaler
    with pytest.raises(ValueError, match="train.amp"):
        resolve_amp("int8", CPU)


def test_bf16_step_on_cpu_runs_and_learns():
    torch.manual_seed(0)
    model = create_model("orsanet_tiny", num_classes=7).train()
    cfg = TrainConfig(sam=True, lr=3e-3, amp="bf16", lsce_warmup_epochs=0)
    opt, sam = build_optimizer(model, cfg)
    st = StepState(model=model, criterion=build_criterion(cfg), forward=default_forward, optimizer=opt, sam=sam,
                   amp_dtype=resolve_amp(cfg.amp, CPU))  # fmt: skip
    batch = _tiny_batch()
    losses = []
    for i in range(12):
        parts, logits = train_step(st, batch, epoch=0, step=i)
        losses.append(parts["loss"])
    assert logits.dtype == torch.bfloat16  # autocast was on inside the step
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 master weights
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]  # it learns the (memorisable) batch


def test_optimizer_update_is_fused_or_foreach_never_the_loop():
    model = create_model("orsanet_tiny", num_classes=7)
    for name in ("adam", "adamw", "sgd"):
        opt, _ = build_optimizer(model, TrainConfig(optimizer=name, sam=False))
        assert opt.defaults.get("fused") or opt.defaults.get("foreach"), name


def test_fused_adam_matches_the_loop():
    # a well-conditioned problem: parameters whose true gradient is 0 (a bias before a norm layer) move by +-lr on
    # rounding noise in any Adam, so a deep model would compare noise, not the update
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 7))
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    fused, _ = build_optimizer(a, TrainConfig(sam=False, lr=1e-2))
    loop = torch.optim.Adam(b.parameters(), lr=1e-2, foreach=False)
    x, y = torch.randn(64, 16), torch.randint(0, 7, (64,))
    for m, opt in ((a, fused), (b, loop)):
        for _ in range(5):
            torch.nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
            opt.zero_grad()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("adaptive", [False, True], ids=["sam", "asam"])
def test_foreach_sam_equals_the_loop_bit_for_bit(adaptive):
    torch.manual_seed(0)
    base = create_model("orsanet_tiny", num_classes=7)
    models = [copy.deepcopy(base) for _ in range(2)]
    sams = [SAM(torch.optim.Adam(m.parameters(), lr=1e-3, foreach=False), rho=0.05, adaptive=adaptive, foreach=fe)
            for m, fe in zip(models, (False, True))]  # fmt: skip
    batch = _tiny_batch()

    def loss(m: torch.nn.Module, seed: int) -> torch.Tensor:
        torch.manual_seed(seed)  # the same drop-path draws in both models
        return torch.nn.functional.cross_entropy(default_forward(m, batch)["logits"], batch["label"])

    for step in range(3):
        for m in models:
            loss(m, step).backward()
        assert torch.equal(sams[0].grad_norm(), sams[1].grad_norm())
        for s in sams:
            s.first_step()
        for p, q in zip(*(m.parameters() for m in models)):
            assert torch.equal(p, q)  # the same w + e(w)
        for m, s in zip(models, sams):
            loss(m, 100 + step).backward()
            s.second_step()
        for p, q in zip(*(m.parameters() for m in models)):
            assert torch.equal(p, q)  # the same restored w and base step


def test_foreach_sam_restores_exactly_and_guards_its_order():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 2))
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), foreach=True)
    w0 = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(3, 5)).sum().backward()
    sam.first_step()
    assert not all(torch.equal(p, w) for p, w in zip(model.parameters(), w0))
    with pytest.raises(RuntimeError, match="twice"):
        sam.first_step()
    sam.restore()
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), w0))
    with pytest.raises(RuntimeError, match="without first_step"):
        sam.second_step()
    # a non-finite gradient: no perturbation, the second step is plain descent
    for p in model.parameters():
        p.grad = torch.full_like(p, float("nan"))
    sam.first_step(zero_grad=False)
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), w0))
    sam.restore()


def _count_calls(module: torch.nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("mode, per_step", [("cached", 1), ("released", 2)])
def test_in_model_priors_once_per_sam_step_in_cached_mode(mode, per_step):
    torch.manual_seed(0)
    model = create_model("orsanet_tiny", num_classes=7, priors_in_model=True, prior_mode=mode, seg_prior=False)
    calls = _count_calls(model.face_landback)
    cfg = TrainConfig(sam=True, lr=1e-3)
    opt, sam = build_optimizer(model, cfg)
    st = StepState(model=model.train(), criterion=build_criterion(cfg), forward=default_forward, optimizer=opt,
                   sam=sam)  # fmt: skip
    batch = {k: v for k, v in _tiny_batch(4).items() if k in ("image", "label", "index")}
    for i in range(2):
        train_step(st, batch, epoch=0, step=i)
    assert calls[0] == 2 * per_step
    model.eval()
    with torch.no_grad():
        model(batch["image"])
        model(batch["image"])
    assert calls[0] == 2 * per_step + 2  # outside a SAM step nothing is reused


def test_reused_priors_equal_recomputed_ones():
    torch.manual_seed(0)
    model = create_model("orsanet_tiny", num_classes=7, priors_in_model=True, seg_prior=False).eval()
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        plain = model(image, return_intermediates=True)
        with model.reuse_priors():
            first = model(image, return_intermediates=True)
            second = model(image, return_intermediates=True)
            image2 = image.clone()
            other = model(image2 + 1, return_intermediates=True)  # another tensor: computed afresh
    for out in (first, second):
        torch.testing.assert_close(out["landmark_features"], plain["landmark_features"], rtol=0, atol=0)
        torch.testing.assert_close(out["logits"], plain["logits"], rtol=0, atol=0)
    assert not torch.equal(other["landmark_features"], plain["landmark_features"])


# ----------------------------------------------------------------------------- folded BatchNorm
def _randomise_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def test_folded_mobilefacenet_equals_unfolded():
    torch.manual_seed(0)
    net = _randomise_bn(MobileFaceNet())
    folded = fold_batchnorm(net)
    assert folded.folded_batchnorms == 50 and not any(
        isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules()
    )  # every conv+BN pair and the GDC head's linear+BN1d
    x = torch.rand(4, 3, 112, 112)
    with torch.no_grad():
        c0, f0 = net(x)
        c1, f1 = folded(x)
    torch.testing.assert_close(f1, f0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(c1, c0, rtol=1e-4, atol=1e-4)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # the original is untouched


def test_folded_ir_backbone_equals_unfolded_and_training_models_refuse():
    torch.manual_seed(0)
    ir = _randomise_bn(IRBackbone(16, ((16, 1), (32, 2)), input_size=None, output_layer=False))
    folded = fold_batchnorm(ir)
    assert folded.folded_batchnorms > 0  # conv -> BN pairs; a BN *before* a conv (res_layer[0]) stays
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), ir(x), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(ir.train())


def test_ir_shortcut_subsample_equals_the_1x1_max_pool():
    # BottleneckIR replaces its 1x1 max-pool shortcut by a strided view: the same numbers and gradients, bit for bit
    torch.manual_seed(0)
    unit = IRBackbone(8, ((8, 2), (16, 1)), input_size=None, output_layer=False).body[1]  # stride 1, max-pool
    down = BottleneckIR(8, 8, 2)
    for m in (unit, down):
        assert isinstance(m.shortcut_layer, torch.nn.MaxPool2d)
        x = torch.randn(2, 8, 12, 12, requires_grad=True)
        x_ref = x.detach().clone().requires_grad_()
        y = m(x)
        y_ref = m.shortcut_layer(x_ref) + m.res_layer(x_ref)
        assert torch.equal(y, y_ref)
        g = torch.randn_like(y)
        y.backward(g)
        y_ref.backward(g)
        assert torch.equal(x.grad, x_ref.grad)


def test_cpu_autocast_uses_the_math_attention_kernel_and_fp32_is_untouched():
    from orsalib.engine.evaluate import autocast

    q = torch.randn(2, 4, 10, 16)
    ref = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    with autocast("cpu", None):
        assert not torch.is_autocast_enabled("cpu") and torch.backends.cuda.flash_sdp_enabled()
        assert torch.equal(torch.nn.functional.scaled_dot_product_attention(q, q, q), ref)
    with autocast("cpu", torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
        assert torch.backends.cuda.math_sdp_enabled() and not torch.backends.cuda.flash_sdp_enabled()
        out = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)


# ----------------------------------------------------------------------------- prior extraction
def _faces(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def test_fast_landmark_predictor_fp32_equals_the_plain_one():
    torch.manual_seed(0)
    net = _randomise_bn(MobileFaceNet())
    lm0, f0 = LandmarkPredictor(copy.deepcopy(net)).predict(_faces())
    fast = FastLandmarkPredictor(net, precision="fp32", channels_last=True)
    lm1, f1 = fast.predict(_faces())
    assert lm1.shape == (6, 68, 2) and f1.shape == (6, 512, 7, 7) and lm1.dtype == f1.dtype == np.float32
    assert f1.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(f1, f0, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(lm1, lm0, rtol=1e-4, atol=1e-5)


def test_fast_landmark_predictor_bf16_runs_with_an_fp32_head():
    torch.manual_seed(0)
    fast = FastLandmarkPredictor(_randomise_bn(MobileFaceNet()), precision="bf16")
    lm, feats = fast.predict(_faces(3))
    assert lm.dtype == np.float32 and np.isfinite(lm).all() and np.isfinite(feats).all()
    assert fast.net.output_layer.linear.weight.dtype == torch.float32


def test_precision_resolution_and_cache_tag(tmp_path):
    with_flag, without = tmp_path / "yes", tmp_path / "no"
    with_flag.write_text("processor : 0\nflags : fpu sse avx512f avx512_bf16\n")
    without.write_text("processor : 0\nflags : fpu sse avx2\n")
    assert bf16_native("cpu", with_flag) and not bf16_native("cpu", without)
    assert not bf16_native("cpu", tmp_path / "missing")
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cpu") in ("fp32", "bf16")
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp8", "cpu")
    assert precision_tag("fp32") == "" and precision_tag("bf16") == "-bf16"


def test_network_source_keys_its_cache_by_precision():
    from orsalib.priors.sources import MobileFaceNetSource

    net = MobileFaceNet().eval()
    assert MobileFaceNetSource(net=net, weights_id="w").weights_id == "w"
    bf = MobileFaceNetSource(net=net, weights_id="w", precision="bf16")
    assert bf.weights_id == "w-bf16" and bf.describe()["precision"] == "bf16"


def test_nme_and_agreement():
    ref = np.random.default_rng(0).random((3, 68, 2))
    assert np.allclose(landmark_nme(ref, ref), 0)
    shifted = ref + np.array([0.01, 0.0])
    iod = np.linalg.norm(ref[:, 36] - ref[:, 45], axis=1)
    np.testing.assert_allclose(landmark_nme(shifted, ref), 0.01 / iod)
    a = np.zeros((2, 4, 4), np.uint8)
    b = a.copy()
    b[0, 0, :2] = 1
    assert parsing_agreement(a, a) == 1.0 and parsing_agreement(a, b) == 1 - 2 / 32
    with pytest.raises(ValueError):
        landmark_nme(ref, ref[:2])


@pytest.mark.skipif(shared_path("weights", "mobilefacenet_68lm_fp16.pth.tar") is None
                    or shared_path("data", "fer2013-mini") is None,
                    reason="needs ../shared (real MobileFaceNet-68 weights and fer2013-mini faces)")  # fmt: skip
def test_bf16_landmarks_on_real_faces_stay_within_half_a_percent_of_the_iod():
    from PIL import Image

    paths = sorted(Path(shared_path("data", "fer2013-mini")).glob("valid/*/*.jpg"))[::40][:48]
    faces = np.stack([np.asarray(Image.open(p).convert("RGB").resize((112, 112), Image.BILINEAR)) for p in paths])
    net = load_mobilefacenet(shared_path("weights", "mobilefacenet_68lm_fp16.pth.tar"))
    ref, _ = LandmarkPredictor(copy.deepcopy(net)).predict(faces)
    fast, _ = FastLandmarkPredictor(net, precision="bf16").predict(faces)
    assert landmark_nme(fast, ref).mean() < 0.005


# ----------------------------------------------------------------------------- decode / compute overlap
def test_prefetch_keeps_order_runs_ahead_and_propagates_errors():
    produced_by = set()

    def items():
        for i in range(5):
            produced_by.add(threading.current_thread().name)
            yield i

    assert list(prefetch(items(), depth=2)) == [0, 1, 2, 3, 4]
    assert produced_by == {"orsalib-prefetch"}
    assert list(prefetch(iter(range(3)), depth=0)) == [0, 1, 2]

    def broken():
        yield 1
        raise ValueError("cannot decode image 'x.jpg'")

    got = []
    with pytest.raises(ValueError, match="x.jpg"):
        for v in prefetch(broken()):
            got.append(v)
    assert got == [1]
    gen = prefetch(iter(range(1000)), depth=2)
    assert next(gen) == 0
    gen.close()  # leaving early stops the producer


# ----------------------------------------------------------------------------- thread policy
def _fake_sysfs(root: Path, cores: dict[int, tuple[int, int]]) -> Path:
    for cpu, (pkg, core) in cores.items():
        topo = root / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text(f"{pkg}\n")
        (topo / "core_id").write_text(f"{core}\n")
    return root


def test_thread_plan_counts_physical_cores_of_the_affinity(tmp_path):
    # 4 cores x 2 SMT threads (cpu i and i+4 are siblings); the process may run on cpus 0, 1, 4, 5 -> 2 cores
    sys_cpu = _fake_sysfs(tmp_path / "cpu", {i: (0, i % 4) for i in range(8)})
    no_cgroup = tmp_path / "none"
    plan = thread_plan(env={}, affinity=lambda: {0, 1, 4, 5}, sys_cpu=sys_cpu, cgroup_file=no_cgroup)
    assert plan == ThreadPlan(intra_op=2, logical=4, physical=2, source="physical cores")
    whole = thread_plan(env={}, affinity=lambda: range(8), sys_cpu=sys_cpu, cgroup_file=no_cgroup)
    assert (whole.intra_op, whole.logical) == (4, 8)
    # two sockets: the same core id on another package is another core
    two = _fake_sysfs(tmp_path / "two", {0: (0, 0), 1: (1, 0)})
    assert physical_cores([0, 1], two) == 2
    # no readable topology: every logical CPU counts
    assert physical_cores([0, 1, 2], tmp_path / "missing") == 3


def test_thread_plan_honours_omp_num_threads_and_the_cgroup_quota(tmp_path):
    sys_cpu = _fake_sysfs(tmp_path / "cpu", {i: (0, i) for i in range(8)})
    no_cgroup = tmp_path / "none"
    aff = lambda: range(8)  # noqa: E731
    plan = thread_plan(env={"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "active"}, affinity=aff, sys_cpu=sys_cpu,
                       cgroup_file=no_cgroup)  # fmt: skip
    assert plan.intra_op == 3 and plan.source == "OMP_NUM_THREADS" and plan.wait_policy == "ACTIVE"
    for bad in ("", "0", "-2", "many"):  # not a positive integer: ignored
        assert thread_plan(env={"OMP_NUM_THREADS": bad}, affinity=aff, sys_cpu=sys_cpu,
                           cgroup_file=no_cgroup).intra_op == 8  # fmt: skip
    quota = tmp_path / "cpu.max"
    quota.write_text("250000 100000\n")  # 2.5 CPUs -> 3
    assert available_cpus(aff, quota) == [0, 1, 2]
    assert thread_plan(env={}, affinity=aff, sys_cpu=sys_cpu, cgroup_file=quota).intra_op == 3
    quota.write_text("max 100000\n")
    assert len(available_cpus(aff, quota)) == 8


def test_loader_workers_never_oversubscribe():
    smt = ThreadPlan(intra_op=4, logical=8, physical=4, source="physical cores")
    flat = ThreadPlan(intra_op=2, logical=2, physical=2, source="physical cores")
    assert loader_workers(8, "cpu", smt) == 4  # the SMT siblings the compute threads leave free
    assert loader_workers(2, "cpu", smt) == 2 and loader_workers(0, "cpu", smt) == 0
    assert loader_workers(4, "cpu", flat) == 0  # 2 cores, 2 compute threads: decode in the training process
    assert loader_workers(16, "cuda", smt) == 7 and loader_workers(16, torch.device("cuda", 0), flat) == 1


def test_apply_thread_policy_sets_torch_and_exports_absent_variables(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "7")
    try:
        plan = apply_thread_policy(ThreadPlan(intra_op=1, logical=2, physical=1, source="physical cores"))
        assert torch.get_num_threads() == 1 and plan.intra_op == 1
        import os

        assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["MKL_NUM_THREADS"] == "7"  # set ones are kept
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    finally:
        torch.set_num_threads(before)


def test_export_thread_environment_only_fills_absent_variables(monkeypatch):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    plan = export_thread_environment(ThreadPlan(3, 4, 3, "physical cores", "PASSIVE"))
    import os

    assert (os.environ["OMP_NUM_THREADS"], os.environ["MKL_NUM_THREADS"]) == ("3", "3") and plan.intra_op == 3
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"  # the user's choice stays
