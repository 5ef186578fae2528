"""MirrorDescent and SignConstrainedSGD: the reference path is ground truth.

The compiled fast path runs in a few configurations only (float64 with momentum and weight
decay, plus negative entropy without weight decay in float32 and float64), so the whole file
compiles a handful of graphs.
"""

from __future__ import annotations

import dataclasses
import io
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch._dynamo.exc import TorchDynamoException
from torch._dynamo.utils import counters

import mirrorlib
from mirrorlib import MirrorDescent, SignConstrainedSGD, mirror_step
from mirrorlib import optim as optim_module

SHAPES = [(6, 5), (7,), (3, 4, 2), (4, 3), (257, 256)]
BIG = (256, 257)  # more than optim._PACK_NUMEL elements
LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 1e-2
COMPILED_POTENTIALS = ["ne", "1.5-norm", "3-norm", "hypentropy"]


def make_params(seed: int = 0, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    """Weights away from 0 (the p < 2 maps are steep there).

    The small ones share one compiled call; two are large enough to get one each, and one of
    those is non-contiguous (a transposed view).
    """
    gen = torch.Generator().manual_seed(seed)
    params = []
    for shape in SHAPES:
        w = torch.randn(shape, generator=gen, dtype=dtype)
        params.append(w + 0.1 * torch.sign(w))
    params.append((torch.rand(BIG, generator=gen, dtype=dtype) + 0.1).t())
    return [torch.nn.Parameter(p) for p in params]


def clone_params(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [torch.nn.Parameter(p.detach().clone()) for p in params]


def set_grads(params: list[torch.Tensor], step: int) -> None:
    gen = torch.Generator().manual_seed(1000 + step)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)


def run(optimizer, params, steps: int, start: int = 0, scheduler=None) -> None:
    for step in range(start, start + steps):
        set_grads(params, step)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


def buffers(optimizer, params) -> list[torch.Tensor]:
    return [optimizer.state[p]["momentum_buffer"] for p in params]


def assert_all_close(a: list[torch.Tensor], b: list[torch.Tensor], exact: bool = False) -> None:
    for x, y in zip(a, b, strict=True):
        if exact:
            assert torch.equal(x, y)
        else:
            torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)


# --- 2-norm is torch.optim.SGD ------------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.9, 1e-2)])
def test_two_norm_equals_sgd(fast, momentum, weight_decay):
    params, reference = make_params(), make_params()
    md = MirrorDescent(params, lr=LR, momentum=momentum, weight_decay=weight_decay, fast=fast)
    sgd = torch.optim.SGD(reference, lr=LR, momentum=momentum, weight_decay=weight_decay)
    run(md, params, 5)
    run(sgd, reference, 5)
    assert_all_close(params, reference, exact=fast)
    if momentum:
        assert_all_close(buffers(md, params), buffers(sgd, reference), exact=fast)
    else:
        assert all("momentum_buffer" not in md.state[p] for p in params)


# --- the reference path ---------------------------------------------------------------------


def potentials_under_test() -> list[mirrorlib.Potential]:
    names = ["ne", "1.5-norm", "2-norm", "3-norm", "hypentropy", "hypentropy(beta=0.1)"]
    return [mirrorlib.potential(name) for name in names]


@pytest.mark.parametrize("pot", potentials_under_test(), ids=str)
def test_mirror_step_is_potential_step(pot):
    w = torch.cat([torch.linspace(-2, -1e-3, 50), torch.linspace(1e-3, 2, 50)]).double()
    g = torch.sin(torch.arange(100.0)).double()
    torch.testing.assert_close(mirror_step(w, g, 0.1, pot), pot.step(w, g, 0.1))


def test_first_two_steps_by_hand():
    """Negative entropy with momentum and weight decay, written out."""
    lr, m, wd = 0.1, 0.9, 0.01
    w0 = torch.tensor([0.5, -2.0, 1.0], dtype=torch.float64)
    g0 = torch.tensor([1.0, 1.0, -3.0], dtype=torch.float64)
    g1 = torch.tensor([-0.5, 2.0, 0.25], dtype=torch.float64)
    b0 = g0 + wd * w0
    w1 = w0 * torch.exp(-lr * torch.sign(w0) * b0)
    b1 = m * b0 + g1 + wd * w1
    w2 = w1 * torch.exp(-lr * torch.sign(w1) * b1)
    w = torch.nn.Parameter(w0.clone())
    opt = MirrorDescent([w], lr=lr, potential="ne", momentum=m, weight_decay=wd, fast=False)
    for g, expected_w, expected_b in [(g0, w1, b0), (g1, w2, b1)]:
        w.grad = g.clone()
        opt.step()
        torch.testing.assert_close(w.detach(), expected_w)
        torch.testing.assert_close(opt.state[w]["momentum_buffer"], expected_b)


# --- the fast path agrees with it -----------------------------------------------------------


@pytest.mark.parametrize("name", COMPILED_POTENTIALS)
def test_fast_path_matches_reference(name):
    fast_params, ref_params = make_params(), make_params()
    kwargs = {"lr": LR, "potential": name, "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY}
    fast = MirrorDescent(fast_params, **kwargs, fast=True)
    ref = MirrorDescent(ref_params, **kwargs, fast=False)
    run(fast, fast_params, 5)
    run(ref, ref_params, 5)
    assert_all_close(fast_params, ref_params)
    assert_all_close(buffers(fast, fast_params), buffers(ref, ref_params))
    assert [len(unit) for unit in optim_module._units(fast_params)] == [4, 1, 1]  # all paths ran
    assert not fast_params[-1].is_contiguous()  # copied back in place, layout kept


def test_after_the_first_step_the_compiled_graph_is_called_directly():
    # torch.compile's per-call overhead (~20 us) is paid once per dtype; later steps call the
    # kept inductor graph directly, and still agree with the reference path.
    kwargs = {"lr": LR, "potential": "ne", "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY}
    fast_params, ref_params = make_params(), make_params()
    fast = MirrorDescent(fast_params, **kwargs, fast=True)
    ref = MirrorDescent(ref_params, **kwargs, fast=False)
    run(fast, fast_params, 1)
    update = optim_module._COMPILED[optim_module._resolve("ne"), True, True]
    assert (torch.float64, torch.device("cpu")) in update._graphs

    def through_dynamo(*args):
        raise AssertionError("a later step went through torch.compile's frame evaluation")

    update._compiled, kept = through_dynamo, update._compiled
    try:
        run(fast, fast_params, 4, start=1)
    finally:
        update._compiled = kept
    run(ref, ref_params, 5)
    assert_all_close(fast_params, ref_params)
    assert_all_close(buffers(fast, fast_params), buffers(ref, ref_params))


@pytest.mark.parametrize("name", ["ne", "3-norm"])
def test_channels_last_weights_are_updated_in_place_without_copies(name, monkeypatch):
    # Convolutions run fastest channels-last on a CPU; the fast path then updates the weights
    # through views of their memory, keeping the layout, with no flatten/copy-back.
    gen = torch.Generator().manual_seed(3)
    shapes = [(32, 16, 3, 3), (64, 80, 1, 1)]  # each alone in its compiled call
    layout = torch.channels_last

    def weights():
        return [
            torch.nn.Parameter(torch.rand(s, generator=gen, dtype=torch.float64) + 0.1)
            for s in shapes
        ]

    fast_params = [
        torch.nn.Parameter(w.detach().contiguous(memory_format=layout)) for w in weights()
    ]
    ref_params = [torch.nn.Parameter(w.detach().clone()) for w in fast_params]
    kwargs = {"lr": LR, "potential": name, "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY}
    fast = MirrorDescent(fast_params, **kwargs, fast=True)
    ref = MirrorDescent(ref_params, **kwargs, fast=False)
    pointers = [w.data_ptr() for w in fast_params]

    def no_copies(*args):
        raise AssertionError("a dense channels-last tensor was flattened and copied")

    monkeypatch.setattr(optim_module, "_flatten_dense_tensors", no_copies)
    for _ in range(4):
        grads = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
        for w, g in zip(fast_params, grads, strict=True):
            w.grad = g.contiguous(memory_format=layout)
        for w, g in zip(ref_params, grads, strict=True):
            w.grad = g.clone()
        fast.step()
        ref.step()
    assert_all_close(fast_params, ref_params)
    assert_all_close(buffers(fast, fast_params), buffers(ref, ref_params))
    assert [w.data_ptr() for w in fast_params] == pointers
    for w, buf in zip(fast_params, buffers(fast, fast_params), strict=True):
        assert w.is_contiguous(memory_format=layout) and buf.stride() == w.stride()


def test_cpu_packs_small_tensors_up_to_the_cap_and_remembers_the_grouping(monkeypatch):
    monkeypatch.setattr(optim_module, "_PACK_NUMEL", 10)
    monkeypatch.setattr(optim_module, "_PACK_CAP", 20)
    monkeypatch.setattr(optim_module, "_UNITS_CACHE", {})
    params = [torch.zeros(n) for n in (8, 8, 50, 8, 3)]
    params.insert(1, torch.zeros(4, dtype=torch.float64))
    assert optim_module._units(params) == [[0, 2], [4, 5], [1], [3]]
    first = optim_module._cached_units(params)
    assert first == optim_module._units(params)
    assert optim_module._cached_units(params) is first  # same tensors: remembered
    params[0].data = params[0].data.double()  # same object, new dtype: grouped again
    again = optim_module._cached_units(params)
    assert again is not first and again == [[0, 1], [2, 4, 5], [3]]


def test_gpu_tensors_are_packed_up_to_the_cap(monkeypatch):
    # Off the CPU every tensor joins a pack (one call for a whole ResNet), packs capped in size.
    monkeypatch.setattr(optim_module, "_GPU_PACK_NUMEL", 100)
    sizes = [60, 30, 20, 150, 5, 90]
    params = [torch.empty(n, device="meta") for n in sizes]
    params.insert(2, torch.empty(10, device="meta", dtype=torch.float64))
    units = optim_module._units(params)
    assert units == [[0, 1], [3, 5], [6], [2], [4]]
    assert all(sum(params[i].numel() for i in unit) <= 100 for unit in units if len(unit) > 1)


def test_param_groups_equal_separate_optimisers():
    weights, biases = make_params(1), make_params(2)
    groups = MirrorDescent(
        [{"params": weights, "potential": "ne"}, {"params": biases, "lr": 0.01}],
        lr=LR,
        potential="2-norm",
        momentum=MOMENTUM,
        weight_decay=WEIGHT_DECAY,
    )
    sep_w, sep_b = clone_params(weights), clone_params(biases)
    kwargs = {"momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY}
    alone_w = MirrorDescent(sep_w, lr=LR, potential="ne", **kwargs)
    alone_b = MirrorDescent(sep_b, lr=0.01, potential="2-norm", **kwargs)
    for step in range(4):
        set_grads(weights + biases, step)
        for p, q in zip(weights + biases, sep_w + sep_b, strict=True):
            q.grad = p.grad.clone()
        for opt in (groups, alone_w, alone_b):
            opt.step()
    assert_all_close(weights + biases, sep_w + sep_b, exact=True)
    assert_all_close(buffers(groups, weights), buffers(alone_w, sep_w), exact=True)


@pytest.mark.parametrize("fast", [True, False])
def test_state_dict_save_load_continues_identically(fast):
    kwargs = {"lr": LR, "potential": "ne", "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY}
    params = make_params()
    opt = MirrorDescent(params, **kwargs, fast=fast)
    run(opt, params, 3)
    saved = io.BytesIO()
    torch.save(opt.state_dict(), saved)
    saved.seek(0)

    resumed_params = clone_params(params)
    resumed = MirrorDescent(resumed_params, lr=1.0, fast=fast)  # every setting comes from the file
    resumed.load_state_dict(torch.load(saved, weights_only=True))
    run(opt, params, 3, start=3)
    run(resumed, resumed_params, 3, start=3)
    assert_all_close(resumed_params, params, exact=True)
    assert_all_close(buffers(resumed, resumed_params), buffers(opt, params), exact=True)


def test_scheduler_changes_lr_without_recompiling():
    kwargs = {"potential": "ne", "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY}
    fast_params, ref_params = make_params(), make_params()
    fast = MirrorDescent(fast_params, lr=LR, **kwargs, fast=True)
    ref = MirrorDescent(ref_params, lr=LR, **kwargs, fast=False)
    fast_sched = torch.optim.lr_scheduler.CosineAnnealingLR(fast, T_max=6)
    ref_sched = torch.optim.lr_scheduler.CosineAnnealingLR(ref, T_max=6)
    run(fast, fast_params, 1, scheduler=fast_sched)  # compiles (or loads) the graph
    graphs = counters["stats"]["unique_graphs"]
    with torch._dynamo.config.patch(error_on_recompile=True):
        run(fast, fast_params, 5, start=1, scheduler=fast_sched)
    assert counters["stats"]["unique_graphs"] == graphs
    run(ref, ref_params, 6, scheduler=ref_sched)
    assert fast.param_groups[0]["lr"] != LR
    assert_all_close(fast_params, ref_params)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_negative_entropy_never_flips_a_sign(fast, dtype):
    w0 = torch.tensor([1e-3, -1e-3, 0.5, -0.5, 0.0, 3.0, -3.0, 1e-30], dtype=dtype)
    w = torch.nn.Parameter(w0.clone())
    opt = MirrorDescent([w], lr=1e6, potential="ne", momentum=MOMENTUM, fast=fast)
    for step in range(4):
        w.grad = torch.tensor([1, -1, -1, 1, 1, -2, 2, -1], dtype=dtype) * (-1) ** step
        opt.step()
        assert torch.isfinite(w).all()
        assert not (torch.sign(w) * torch.sign(w0) < 0).any()
        assert w[4] == 0


# --- inputs, outputs and side effects -------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False])
def test_none_grads_are_skipped(fast):
    params = make_params()
    before = [p.detach().clone() for p in params]
    kwargs = {"potential": "ne", "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY}
    opt = MirrorDescent(params, lr=LR, **kwargs, fast=fast)
    set_grads(params, 0)
    params[1].grad = None
    opt.step()
    assert torch.equal(params[1], before[1])
    assert "momentum_buffer" not in opt.state[params[1]]
    assert not torch.equal(params[0], before[0])


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("name", ["2-norm", "ne"])
def test_grad_is_left_untouched(fast, name):
    params = make_params()
    kwargs = {"potential": name, "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY}
    opt = MirrorDescent(params, lr=LR, **kwargs, fast=fast)
    set_grads(params, 0)
    grads = [p.grad for p in params]
    copies = [g.clone() for g in grads]
    opt.step()
    opt.step()
    assert all(p.grad is g for p, g in zip(params, grads, strict=True))
    assert_all_close(grads, copies, exact=True)


def test_closure_is_evaluated_with_grad_enabled():
    w = torch.nn.Parameter(torch.tensor([0.5, -1.0], dtype=torch.float64))
    opt = MirrorDescent([w], lr=0.1, potential="ne", fast=False)

    def closure():
        opt.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == pytest.approx(1.25)
    w0 = torch.tensor([0.5, -1.0], dtype=torch.float64)
    torch.testing.assert_close(w.detach(), w0 * torch.exp(-0.1 * 2 * w0.abs()))  # g = 2w


BAD_SETTINGS = [
    ({"lr": -0.1}, ValueError, r"invalid lr: -0\.1"),
    ({"lr": math.nan}, ValueError, r"invalid lr: nan"),
    ({"momentum": -0.9}, ValueError, r"invalid momentum: -0\.9"),
    ({"weight_decay": -1e-4}, ValueError, r"invalid weight_decay: -0\.0001"),
    ({"potential": "banana"}, ValueError, r"unknown potential 'banana'"),
    ({"potential": "1-norm"}, ValueError, r"p > 1"),
]


@pytest.mark.parametrize("settings, error, message", BAD_SETTINGS)
def test_invalid_hyperparameters_raise(settings, error, message):
    kwargs = {"lr": LR, **settings}
    with pytest.raises(error, match=message):
        MirrorDescent(make_params(), **kwargs)
    group = {"params": make_params(), **settings}
    with pytest.raises(error, match=message):
        MirrorDescent([{"params": make_params()}, group], lr=LR)


def test_sparse_gradients_are_refused():
    w = torch.nn.Parameter(torch.ones(3))
    w.grad = torch.ones(3).to_sparse()
    with pytest.raises(RuntimeError, match="sparse gradients"):
        MirrorDescent([w], lr=LR, potential="ne").step()


def test_failed_compile_warns_once_and_falls_back(monkeypatch):
    calls = []

    def broken_compile(fn, **kwargs):
        def compiled(*args):
            calls.append(1)
            raise TorchDynamoException("no working C++ compiler")

        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(optim_module, "_COMPILED", {})
    monkeypatch.setattr(optim_module, "_COMPILE_FAILED", set())
    kwargs = {"lr": LR, "potential": "3-norm", "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY}
    fast_params, ref_params = make_params(), make_params()
    fast = MirrorDescent(fast_params, **kwargs, fast=True)
    ref = MirrorDescent(ref_params, **kwargs, fast=False)
    with pytest.warns(RuntimeWarning, match="falls back to its .*reference path"):
        run(fast, fast_params, 1)
    run(fast, fast_params, 2, start=1)
    run(ref, ref_params, 3)
    assert calls == [1]
    assert_all_close(fast_params, ref_params, exact=True)
    assert_all_close(buffers(fast, fast_params), buffers(ref, ref_params), exact=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", [*COMPILED_POTENTIALS, "2-norm"])
def test_cuda_fast_path_matches_cpu_reference(name):
    cpu = make_params()
    gpu = [torch.nn.Parameter(p.detach().cuda()) for p in cpu]
    kwargs = {"lr": LR, "potential": name, "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY}
    opt_cpu = MirrorDescent(cpu, **kwargs, fast=False)
    opt_gpu = MirrorDescent(gpu, **kwargs, fast=True)
    for step in range(3):
        set_grads(cpu, step)
        for c, g in zip(cpu, gpu, strict=True):
            g.grad = c.grad.cuda()
        opt_cpu.step()
        opt_gpu.step()
    assert_all_close([g.detach().cpu() for g in gpu], [c.detach() for c in cpu])


# --- sign-constrained gradient descent ------------------------------------------------------


def test_sign_constrained_sgd_clips_flips_to_zero_and_regrows_with_the_initial_sign():
    w0 = torch.tensor([0.3, -0.3, 1e-3, -1e-3, 0.0], dtype=torch.float64)
    s0 = torch.sign(w0)
    w = torch.nn.Parameter(w0.clone())
    opt = SignConstrainedSGD([w], lr=1.0)
    zero = torch.zeros(5, dtype=torch.float64)
    for grad, expected in [
        (s0 + torch.tensor([0, 0, 0, 0, 1.0]), zero),  # every step would flip (or leave 0)
        (s0 - torch.tensor([0, 0, 0, 0, 3.0]), zero),  # at 0, pushed to the other side: stays
        (-2 * s0 - torch.tensor([0, 0, 0, 0, 3.0]), 2 * s0),  # regrows with its initial sign
    ]:
        w.grad = grad
        opt.step()
        torch.testing.assert_close(w.detach(), expected)


def test_sign_constrained_sgd_is_sgd_while_no_sign_flips():
    params, reference = make_params(), make_params()
    kwargs = {"lr": 1e-3, "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY}
    constrained = SignConstrainedSGD(params, **kwargs)
    sgd = torch.optim.SGD(reference, **kwargs)
    run(constrained, params, 4)
    run(sgd, reference, 4)
    assert_all_close(params, reference, exact=True)
    assert_all_close([constrained.state[p]["sign"] for p in params], [p.sign() for p in params])


def test_sign_constrained_sgd_random_walk_keeps_signs():
    params = make_params(dtype=torch.float32)
    signs = [p.detach().sign() for p in params]
    opt = SignConstrainedSGD(params, lr=0.5, momentum=MOMENTUM)
    for step in range(20):
        set_grads(params, step)
        opt.step()
        for p, s in zip(params, signs, strict=True):
            assert not (p.sign() * s < 0).any()


# --- saving: the state dict holds no objects ------------------------------------------------


SAVED_POTENTIALS = [mirrorlib.PNorm(1.2345678901234), mirrorlib.HyperbolicEntropy(0.1)]


@pytest.mark.parametrize("pot", [*SAVED_POTENTIALS, mirrorlib.NegativeEntropy()], ids=str)
def test_state_dict_of_a_potential_object_loads_with_weights_only(pot):
    params = make_params()
    opt = MirrorDescent(params, lr=LR, potential=pot, momentum=MOMENTUM, fast=False)
    run(opt, params, 2)
    saved = io.BytesIO()
    torch.save(opt.state_dict(), saved)
    saved.seek(0)
    resumed_params = clone_params(params)
    resumed = MirrorDescent(resumed_params, lr=1.0, fast=False)
    resumed.load_state_dict(torch.load(saved))  # weights_only=True: the default
    assert resumed.param_groups[0]["potential"] == pot  # rebuilt exactly (p in full)
    run(opt, params, 2, start=2)
    run(resumed, resumed_params, 2, start=2)
    assert_all_close(resumed_params, params, exact=True)


def test_a_potential_the_library_does_not_know_is_saved_as_itself():
    @dataclasses.dataclass(frozen=True)
    class Quartic(mirrorlib.PNorm):
        p: float = 4.0

    opt = MirrorDescent(make_params(), lr=LR, potential=Quartic())
    assert opt.state_dict()["param_groups"][0]["potential"] == Quartic()


# --- the extremes: both paths do the same, documented thing ---------------------------------


def both_paths(w0, grads, name, **kwargs) -> list[torch.Tensor]:
    """The weights after one step per gradient, from the fast and the reference path."""
    out = []
    for fast in (True, False):
        w = torch.nn.Parameter(w0.clone())
        opt = MirrorDescent([w], potential=name, fast=fast, **{"lr": 1.0, **kwargs})
        for g in grads:
            w.grad = g.clone()
            opt.step()
        out.append(w.detach())
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_negative_entropy_steps_are_capped_at_sqrt_max_on_both_paths(dtype):
    # The exponent -lr sign(w) g is capped at log(max)/2 on both paths (it used to be 1.8e19
    # on the fast path against 3.4e38 on the reference path for float32), and below the cap a
    # step is the exact multiplicative update, however small the weight.
    info = torch.finfo(dtype)
    w0 = torch.tensor([1.0, -1.0, 1e-20, 2.0, 0.0, 1e-3], dtype=dtype)
    g = torch.tensor([-1e6, 1e6, -30.0, -30.0, -1e6, 1e6], dtype=dtype)
    fast, reference = both_paths(w0, [g], "ne")
    factor = torch.exp(torch.tensor(0.5 * math.log(info.max), dtype=dtype))
    exponent = torch.where(w0 > 0, -g, g).clamp(max=0.5 * math.log(info.max))
    expected = w0 * torch.exp(exponent)
    torch.testing.assert_close(fast, expected, rtol=8 * info.eps, atol=0)
    torch.testing.assert_close(reference, expected, rtol=64 * info.eps, atol=0)
    assert torch.equal(fast[:2], w0[:2] * factor) and fast[4] == reference[4] == 0


@pytest.mark.parametrize("name", ["ne", "1.5-norm", "3-norm", "hypentropy"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_subnormal_weights_are_updated_alike_on_both_paths(name, dtype):
    # Subnormal weights are weights: negative entropy's reference path used to floor |w| at
    # the smallest normal number (a weight of 1e-40 grew to 1.2e-38 in one tiny step).
    info = torch.finfo(dtype)
    sub = info.tiny * info.eps  # the smallest subnormal number
    w0 = torch.tensor([sub, -sub, 300 * sub, -1e5 * sub, info.tiny / 2, 1.0], dtype=dtype)
    grads = [torch.full_like(w0, 0.1), torch.full_like(w0, -0.05)]
    fast, reference = both_paths(w0, grads, name, lr=0.1)
    # the reference path's log and exp lose ~eps |log w| relative accuracy; subnormals have an
    # absolute resolution of one smallest subnormal
    rtol = 4 * info.eps * -math.log(sub)
    torch.testing.assert_close(fast, reference, rtol=rtol, atol=4 * sub)
    if name == "ne":  # the exact multiplicative update, to the dtype's resolution
        exact = (w0.double() * torch.exp(-0.1 * torch.sign(w0.double()) * 0.05)).to(dtype)
        torch.testing.assert_close(reference, exact, rtol=rtol, atol=4 * sub)
        assert (reference[:4] != 0).all()


@pytest.mark.parametrize("name", ["ne", "1.5-norm", "3-norm", "hypentropy"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_narrow_dtypes_are_computed_in_float32_on_both_paths(name, dtype):
    # bfloat16 drifted 1.6 % in 20 zero-gradient steps on the reference path (each map rounded
    # to bfloat16); both paths now compute in float32 and round once per step.
    gen = torch.Generator().manual_seed(5)
    w0 = (torch.randn(500, generator=gen) + 0.1).to(dtype)
    zero = [torch.zeros_like(w0)] * 20
    for w in both_paths(w0, zero, name, lr=0.01, momentum=MOMENTUM, weight_decay=0.0):
        assert torch.equal(w, w0)
    grads = [torch.randn(500, generator=gen).to(dtype) for _ in range(5)]
    fast, reference = both_paths(w0, grads, name, lr=0.01, momentum=MOMENTUM)
    ulp = torch.finfo(dtype).eps
    torch.testing.assert_close(fast, reference, rtol=2 * ulp, atol=ulp)


def test_three_norm_weights_beyond_the_dual_range_are_brought_to_its_bound():
    # |w|^2 overflows float32 above sqrt(max) = 1.8e19: both paths used to send 1e20 to
    # 3.4e38 with a zero gradient; the inverse map now saturates its argument, so such a
    # weight comes back to sqrt(max) and a weight inside the range stays put.
    w0 = torch.tensor([1e20, -1e20, 1e19, -2.0, 3.4e38])
    bound = torch.tensor(torch.finfo(torch.float32).max).sqrt()
    for w in both_paths(w0, [torch.zeros(5)], "3-norm"):
        assert torch.equal(w, torch.stack([bound, -bound, w0[2], w0[3], bound]))


@pytest.mark.parametrize("fast", [True, False])
def test_complex_parameters_are_refused_with_a_clear_error(fast):
    w = torch.nn.Parameter(torch.tensor([1 + 1j, 2 - 1j]))
    with pytest.raises(TypeError, match="real floating-point parameters, got one of .*complex"):
        MirrorDescent([w], lr=LR, potential="3-norm", fast=fast)
    opt = MirrorDescent([torch.nn.Parameter(torch.ones(2))], lr=LR)
    with pytest.raises(TypeError, match="real floating-point"):
        opt.add_param_group({"params": [w]})


# --- property: the fast path is the reference path ------------------------------------------

LAYOUTS = ["contiguous", "transposed", "strided", "channels_last"]
PROPERTY_POTENTIALS = ["ne", "1.5-norm", "2-norm", "3-norm", "hypentropy(beta=0.5)"]
PROPERTY_DTYPES = [torch.float32, torch.float64, torch.bfloat16]
PROPERTY_EXAMPLES = 40


def laid_out(values: torch.Tensor, layout: str) -> torch.Tensor:
    """``values`` (same shape and numbers) in the given memory layout."""
    if layout == "transposed":
        dims = list(reversed(range(values.dim())))
        return values.permute(*dims).contiguous().permute(*dims)
    if layout == "strided":  # every other element of a larger buffer: not dense
        wide = torch.zeros((*values.shape[:-1], 2 * values.shape[-1]), dtype=values.dtype)
        wide[..., ::2] = values
        return wide[..., ::2]
    if layout == "channels_last":
        return values.contiguous(memory_format=torch.channels_last)
    return values.contiguous()


@st.composite
def parameter_lists(draw) -> tuple[list[torch.Tensor], list[str], int]:
    """1-4 tensors of one dtype, each with its shape and layout (and its gradients' layout);
    |w| in [0.5, 2] so that no step crosses zero, where the p-norms' maps are steep."""
    dtype = draw(st.sampled_from(PROPERTY_DTYPES))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    params, grad_layouts = [], []
    for _ in range(draw(st.integers(1, 4))):
        layout = draw(st.sampled_from(LAYOUTS))
        ndim = 4 if layout == "channels_last" else draw(st.integers(1, 3))
        shape = [draw(st.integers(1, 7)) for _ in range(ndim)]
        if draw(st.booleans()):  # more than optim._PACK_NUMEL elements: updated alone
            shape[0] *= 5000 // math.prod(shape) + 1
        if layout == "transposed" and ndim == 1:
            layout = "contiguous"
        magnitude = 0.5 + 1.5 * torch.rand(shape, generator=gen, dtype=torch.float64)
        sign = torch.randint(0, 2, shape, generator=gen) * 2 - 1
        params.append(laid_out((sign * magnitude).to(dtype), layout))
        grad_layouts.append(draw(st.sampled_from([layout, "contiguous"])))
    return params, grad_layouts, seed


@settings(max_examples=PROPERTY_EXAMPLES, deadline=None, derandomize=True)
@given(
    tensors=parameter_lists(),
    name=st.sampled_from(PROPERTY_POTENTIALS),
    lr=st.floats(1e-4, 0.05),
    momentum=st.one_of(st.just(0.0), st.floats(0.1, 0.99)),
    weight_decay=st.floats(1e-4, 0.05),
)
def test_property_fast_path_equals_reference_path(tensors, name, lr, momentum, weight_decay):
    """Over shapes, dtypes, layouts and hyperparameters (weight decay is never 0 here: each
    compiled variant costs a compile, and the no-decay variant is tested above)."""
    values, grad_layouts, seed = tensors
    fast_params = [torch.nn.Parameter(v) for v in values]
    ref_params = [  # the same layout: torch's own bfloat16 arithmetic depends on it
        torch.nn.Parameter(torch.empty_strided(v.shape, v.stride(), dtype=v.dtype).copy_(v))
        for v in values
    ]
    kwargs = {"lr": lr, "potential": name, "momentum": momentum, "weight_decay": weight_decay}
    fast = MirrorDescent(fast_params, **kwargs, fast=True)
    ref = MirrorDescent(ref_params, **kwargs, fast=False)
    gen = torch.Generator().manual_seed(seed + 1)
    for _ in range(3):
        for w, v, layout in zip(fast_params, ref_params, grad_layouts, strict=True):
            g = (2 * torch.rand(w.shape, generator=gen, dtype=torch.float64) - 1).to(w.dtype)
            w.grad, v.grad = laid_out(g, layout), laid_out(g, layout)
        fast.step()
        ref.step()
    dtype = values[0].dtype
    exact = name == "2-norm"  # both paths run torch.optim.SGD's operations
    eps = torch.finfo(dtype).eps
    rtol = {torch.float64: 1e-10, torch.float32: 1e-5}.get(dtype, 4 * eps)
    results = [(fast_params, ref_params)]
    if momentum:
        results.append((buffers(fast, fast_params), buffers(ref, ref_params)))
    for fast_tensors, ref_tensors in results:
        for x, y in zip(fast_tensors, ref_tensors, strict=True):
            if exact:
                assert torch.equal(x, y)
            else:
                torch.testing.assert_close(x, y, rtol=rtol, atol=rtol)
    for w, v in zip(fast_params, values, strict=True):
        assert w.stride() == v.stride()  # updated in place, layout kept
