"""MirrorDescent and SignConstrainedSGD: the reference path is ground truth.

The compiled fast path runs in a few configurations only (float64 with momentum and weight
decay, plus negative entropy without weight decay in float32 and float64), so the whole file
compiles a handful of graphs.
"""

from __future__ import annotations

import io
import math

import pytest
import torch
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
@pytest.mark.parametrize("name", ["ne", "2-norm"])
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
