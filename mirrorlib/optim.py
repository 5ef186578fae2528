"""Optimisers: mirror descent under a potential, and sign-constrained gradient descent.

Mirror descent with a separable potential ``phi`` and heavy-ball momentum, per weight ``w``::

    g   = dL/dw + weight_decay * w
    buf = momentum * buf + g                       (buf = g on the first step)
    w  <- (phi')^-1( phi'(w) - lr * buf )          (the inverse map takes sign(w) where needed)

With ``phi = w^2 / 2`` (the ``"2-norm"``) this is exactly ``torch.optim.SGD`` (dampening 0, no
Nesterov). Two paths compute it and agree: a readable reference path that composes the maps
(:func:`mirror_step`) and a fast path that runs one ``torch.compile``'d fused kernel per tensor.
"""

from __future__ import annotations

import operator
import types
import warnings
from collections.abc import Callable, Iterable
from functools import cache

import torch
from torch import Tensor
from torch._dynamo.exc import TorchDynamoException
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.optim import SGD, Optimizer

from mirrorlib.potentials import HyperbolicEntropy, NegativeEntropy, PNorm, Potential, potential

__all__ = ["MirrorDescent", "SignConstrainedSGD", "mirror_descent", "mirror_step"]

PotentialLike = str | Potential


def mirror_step(w: Tensor, g: Tensor, lr: float | Tensor, potential: Potential) -> Tensor:
    """One mirror-descent step written as the composition of the maps (the ground truth).

    ``theta = phi'(w)``, ``theta' = theta - lr * g`` (as limited by
    :meth:`Potential.dual_step`), ``w' = (phi')^-1(theta', sign(w))``. Returns a new tensor.
    :meth:`Potential.step` computes the same map, possibly in closed form.
    """
    theta = potential.to_dual(w) - potential.dual_step(w, g, lr)
    return potential.from_dual(theta, torch.sign(w))


@cache
def _resolve(name: PotentialLike) -> Potential:
    return potential(name)


def _potential_spec(pot: Potential) -> str | Potential:
    """A name that :func:`potential` turns back into ``pot`` exactly (floats written in full),
    or ``pot`` itself when it is not one of the library's potentials."""
    if isinstance(pot, NegativeEntropy):
        spec = "negative_entropy"
    elif isinstance(pot, PNorm):
        spec = f"{pot.p!r}-norm"
    elif isinstance(pot, HyperbolicEntropy):
        spec = f"hypentropy(beta={pot.beta!r})"
    else:
        return pot
    return spec if potential(spec) == pot else pot


def _is_euclidean(potential: Potential) -> bool:
    return isinstance(potential, PNorm) and potential.p == 2.0


def _momentum_trace(
    w: Tensor, grad: Tensor, buf: Tensor | None, *, momentum: float, weight_decay: float
) -> tuple[Tensor, Tensor | None]:
    """``g = grad + weight_decay * w``, ``buf <- momentum * buf + g`` in place (``g`` at first).

    Returns the step direction (``buf``, or ``g`` without momentum) and the buffer.
    """
    g = grad.add(w, alpha=weight_decay) if weight_decay != 0 else grad
    if momentum == 0:
        return g, None
    if buf is None:
        buf = g.detach().clone()
    else:
        buf.mul_(momentum).add_(g)
    return buf, buf


def _reference_update(
    w: Tensor,
    grad: Tensor,
    buf: Tensor | None,
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    potential: Potential,
) -> Tensor | None:
    """Update one tensor in place, piece by piece; return its momentum buffer (None without).

    A dtype narrower than float32 (bfloat16, float16) is computed in float32 and rounded once
    into ``w`` and the buffer, as the fused kernel does.
    """
    compute = torch.promote_types(w.dtype, torch.float32)
    wide_buf = None if buf is None else buf.to(compute)
    g, wide_buf = _momentum_trace(
        w.to(compute), grad.to(compute), wide_buf, momentum=momentum, weight_decay=weight_decay
    )
    w.copy_(mirror_step(w.to(compute), g, lr, potential))
    if wide_buf is None or wide_buf.dtype == w.dtype:
        return wide_buf
    if buf is None:
        return wide_buf.to(w.dtype)
    return buf.copy_(wide_buf)


def _sgd_update(
    w: Tensor, grad: Tensor, buf: Tensor | None, *, lr: float, momentum: float, weight_decay: float
) -> Tensor | None:
    """The 2-norm's fast path: ``torch.optim.SGD``'s own in-place operations, no compile."""
    g, buf = _momentum_trace(w, grad, buf, momentum=momentum, weight_decay=weight_decay)
    w.add_(g, alpha=-lr)
    return buf


def _fused_update(potential: Potential, has_momentum: bool, has_weight_decay: bool) -> Callable:
    """The whole update of one flat tensor as a single function, for ``torch.compile``.

    Writes ``w`` (and ``buf``) in place; ``lr``, ``momentum``, ``weight_decay`` are 0-d tensors.
    """

    def update(w, grad, buf, lr, momentum, weight_decay):
        g = grad + weight_decay * w if has_weight_decay else grad
        if has_momentum:
            buf.copy_(momentum * buf + g)
            g = buf
        w.copy_(potential.step(w, g, lr))

    # Dynamo keeps compiled graphs on the code object, at most 8 variants each; closures share
    # one code object, so each key gets its own copy (its own cache) instead.
    code = update.__code__.replace()
    return types.FunctionType(code, update.__globals__, update.__name__, None, update.__closure__)


_ARGUMENTS = ("w", "grad", "buf", "lr", "momentum", "weight_decay")


class _DirectlyCalledGraph:
    """``torch.compile`` of a fused update, whose compiled graphs are then called directly.

    A call through ``torch.compile`` costs about 20 us of Python before the kernel runs
    (Dynamo's frame evaluation and guards), several times the kernel's time on a bias vector and
    about 0.5 ms per step on ResNet-18's 62 tensors. The first call for a ``(dtype, device)`` goes
    through ``torch.compile``, whose backend (inductor's ``compile_fx``) is wrapped to keep the
    compiled graph; later calls with 1-D tensors of that dtype and device, the only inputs the
    optimiser passes, call it directly. The graph's own wrapper still checks every input's size
    and stride. Anything unexpected (another graph signature, fewer than 2 elements, which
    Dynamo specialises) takes the ``torch.compile`` path, and so do CUDA tensors: the direct
    call has only been checked against the reference path on the CPU.
    """

    def __init__(self, update: Callable) -> None:
        # (dtype, device) -> (graph, positions of its inputs in (*_ARGUMENTS, numel))
        self._graphs: dict[tuple[torch.dtype, torch.device], tuple[Callable, list[int]]] = {}
        self._compiled = torch.compile(
            update, dynamic=True, fullgraph=True, backend=self._compile_and_keep
        )

    def _compile_and_keep(self, gm: torch.fx.GraphModule, example_inputs: list) -> Callable:
        from torch._inductor.compile_fx import compile_fx

        compiled = compile_fx(gm, example_inputs)
        names, w = [], None
        for node, value in zip(
            (n for n in gm.graph.nodes if n.op == "placeholder"), example_inputs, strict=True
        ):
            arg = str(node.target).removeprefix("L_").removesuffix("_")
            if isinstance(value, torch.SymInt):
                names.append("numel")
            elif isinstance(value, torch.Tensor) and arg in _ARGUMENTS:
                names.append(arg)
                w = value if arg == "w" else w
            else:
                return compiled  # a signature this class does not know: never called directly
        if names.count("numel") == 1 and w is not None and w.dim() == 1 and not w.is_cuda:
            order = [(*_ARGUMENTS, "numel").index(name) for name in names]
            self._graphs[w.dtype, w.device] = (compiled, order)
        return compiled

    def __call__(self, w, grad, buf, lr, momentum, weight_decay) -> None:
        graph = self._graphs.get((w.dtype, w.device))
        if graph is None or w.dim() != 1 or w.numel() < 2 or grad.dtype != w.dtype:
            self._compiled(w, grad, buf, lr, momentum, weight_decay)
            return
        compiled, order = graph
        args = (w, grad, buf, lr, momentum, weight_decay, w.numel())
        compiled(*[args[i] for i in order])


_COMPILED: dict[tuple[Potential, bool, bool], Callable] = {}
_COMPILE_FAILED: set[tuple[Potential, bool, bool]] = set()


def _compiled_update(key: tuple[Potential, bool, bool]) -> Callable | None:
    """The compiled fused update for ``(potential, has_momentum, has_weight_decay)``.

    Compiled once per process (dynamic shapes: one graph for every tensor size) and then called
    directly (:class:`_DirectlyCalledGraph`), None once compiling has failed for this key.
    """
    if key in _COMPILE_FAILED:
        return None
    if key not in _COMPILED:
        try:
            _COMPILED[key] = _DirectlyCalledGraph(_fused_update(*key))
        except RuntimeError as err:  # torch.compile unsupported on this platform
            _compile_failed(key, err)
            return None
    return _COMPILED[key]


def _compile_failed(key: tuple[Potential, bool, bool], err: Exception) -> None:
    if not _COMPILE_FAILED:
        warnings.warn(
            f"mirrorlib: torch.compile failed ({type(err).__name__}: {err}); MirrorDescent falls "
            "back to its (slower) reference path",
            RuntimeWarning,
            stacklevel=2,
        )
    _COMPILE_FAILED.add(key)


def _single_tensor_mirror_descent(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffers: list[Tensor | None],
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    potential: Potential,
) -> None:
    hyper = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay}
    for i, w in enumerate(params):
        buf = momentum_buffers[i] if momentum != 0 else None
        if _is_euclidean(potential):  # the maps are identities: torch.optim.SGD's operations
            buf = _sgd_update(w, grads[i], buf, **hyper)
        else:
            buf = _reference_update(w, grads[i], buf, **hyper, potential=potential)
        if momentum != 0:
            momentum_buffers[i] = buf


_PACK_NUMEL = 1 << 12  # CPU: tensors this small (norm and bias vectors) share compiled calls:
# a call costs ~10 us, and packing larger tensors costs more in copies than it saves
_PACK_CAP = 1 << 20  # CPU: elements per shared call (bounds the temporary copies)
_GPU_PACK_NUMEL = 1 << 26  # GPU: every tensor is packed, up to this many elements per call (a
# kernel launch per tensor costs more than the copies; the cap bounds the temporary memory)


def _units(params: list[Tensor]) -> list[list[int]]:
    """Indices per compiled call.

    On the CPU small tensors are packed by (device, dtype) and large ones go alone; on a GPU
    consecutive tensors of one (device, dtype) are packed up to ``_GPU_PACK_NUMEL`` elements, so
    that a ResNet's 62 tensors take one call, as a multi-tensor (foreach) SGD step does.
    """
    packs: dict[tuple[torch.device, torch.dtype], list[list[int]]] = {}
    filled: dict[tuple[torch.device, torch.dtype], int] = {}  # elements in the last pack
    alone = []
    for i, w in enumerate(params):
        n, device = w.numel(), w.device
        small, cap = (
            (_PACK_NUMEL, _PACK_CAP) if device.type == "cpu" else (_GPU_PACK_NUMEL, _GPU_PACK_NUMEL)
        )
        if n > small:
            alone.append([i])
            continue
        key = (device, w.dtype)
        units = packs.setdefault(key, [[]])
        if units[-1] and filled[key] + n > cap:
            units.append([])
            filled[key] = 0
        units[-1].append(i)
        filled[key] = filled.get(key, 0) + n
    return [unit for units in packs.values() for unit in units] + alone


_UNITS_CACHE: dict[tuple[int, ...], tuple[tuple, list[list[int]]]] = {}
_LAYOUT = operator.attrgetter("dtype", "device")


def _cached_units(params: list[Tensor]) -> list[list[int]]:
    """:func:`_units`, remembered for the last few parameter lists (it costs ~60 us of Python
    for ResNet-18's 62 tensors, each step). A list is recognised by its tensors' ids, and the
    grouping reused only if every position still has the same dtype and device, which is all
    a grouping needs to be valid (a tensor that changed size is at worst packed suboptimally).
    """
    key = tuple(map(id, params))
    layout = tuple(map(_LAYOUT, params))
    hit = _UNITS_CACHE.get(key)
    if hit is not None and hit[0] == layout:
        return hit[1]
    units = _units(params)
    if len(_UNITS_CACHE) >= 16:
        _UNITS_CACHE.pop(next(iter(_UNITS_CACHE)))
    _UNITS_CACHE[key] = (layout, units)
    return units


def _memory_order_views(tensors: tuple[Tensor, ...]) -> list[Tensor] | None:
    """1-D views of each tensor's elements in memory order, when they are all dense (contiguous,
    or channels-last: how convolutions run fastest on a CPU) with one layout, so that the i-th
    element of every view is the same weight; None otherwise."""
    first = tensors[0]
    moving = [d for d in range(first.dim()) if first.shape[d] > 1]
    layout = [first.stride(d) for d in moving]
    views = []
    for t in tensors:
        dense = t.is_contiguous() or (
            (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last))
            or (t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d))
        )
        if not dense or [t.stride(d) for d in moving] != layout:
            return None
        views.append(t.detach().as_strided((t.numel(),), (1,)))
    return views


def _run_compiled(
    update: Callable,
    ws: list[Tensor],
    grads: list[Tensor],
    bufs: list[Tensor] | None,
    scalars: tuple[Tensor, ...],
) -> None:
    """Run the compiled update once over the tensors ``ws`` (and ``bufs``) laid end to end.

    A dense tensor (contiguous or channels-last) whose gradient and buffer share its strides is
    updated in place through flat views of its memory (the update is elementwise); several
    tensors (or one laid out otherwise) are flattened into one buffer, updated, and copied back.
    """
    if len(ws) == 1:
        tensors = (ws[0], grads[0], *(bufs or []))
        if all(t.is_contiguous() for t in tensors):
            flats = [t.detach().view(-1) for t in tensors]
        else:
            flats = _memory_order_views(tensors)
        if flats is not None:
            update(flats[0], flats[1], None if bufs is None else flats[2], *scalars)
            return
    flat_w = _flatten_dense_tensors(ws)
    flat_buf = None if bufs is None else _flatten_dense_tensors(bufs)
    update(flat_w, _flatten_dense_tensors(grads), flat_buf, *scalars)
    torch._foreach_copy_(ws, _unflatten_dense_tensors(flat_w, ws))
    if bufs is not None:
        torch._foreach_copy_(bufs, _unflatten_dense_tensors(flat_buf, bufs))


_SCALARS: dict[tuple[torch.device, torch.dtype], tuple[tuple[float, ...], tuple[Tensor, ...]]] = {}


def _scalar_tensors(
    device: torch.device, dtype: torch.dtype, values: tuple[float, ...]
) -> tuple[Tensor, ...]:
    """``lr, momentum, weight_decay`` as 0-d tensors for the compiled update.

    Tensors, not floats: a new lr (a scheduler) must not trigger a recompile. At least float32,
    like eager's scalars (0-d tensors do not promote ``w``'s dtype). The last ones made per
    ``(device, dtype)`` are reused while the values stay the same (three fewer allocations per
    step); they are never written to, so a kernel still reading them is safe.
    """
    kept = _SCALARS.get((device, dtype))
    if kept is None or kept[0] != values:
        scalar_dtype = torch.promote_types(dtype, torch.float32)
        tensors = tuple(torch.full((), v, dtype=scalar_dtype, device=device) for v in values)
        kept = _SCALARS[device, dtype] = (values, tensors)
    return kept[1]


def _fused_mirror_descent(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffers: list[Tensor | None],
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    potential: Potential,
) -> None:
    hyper = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay}
    if _is_euclidean(potential):
        for i, w in enumerate(params):
            buf = _sgd_update(w, grads[i], momentum_buffers[i] if momentum != 0 else None, **hyper)
            if momentum != 0:
                momentum_buffers[i] = buf
        return
    key = (potential, momentum != 0, weight_decay != 0)
    update = _compiled_update(key)
    if update is not None and momentum != 0:
        for i, w in enumerate(params):
            if momentum_buffers[i] is None:  # momentum * 0 + g = g: SGD's first buffer
                # w's own layout when dense (channels-last stays so: no copies in the update)
                dense = _memory_order_views((w,)) is not None
                layout = torch.preserve_format if dense else torch.contiguous_format
                momentum_buffers[i] = torch.zeros_like(w, memory_format=layout)
    for unit in _cached_units(params):
        if update is not None:
            w = params[unit[0]]
            scalars = _scalar_tensors(w.device, w.dtype, tuple(hyper.values()))
            ws, gs = [params[i] for i in unit], [grads[i] for i in unit]
            bufs = [momentum_buffers[i] for i in unit] if momentum != 0 else None
            try:
                _run_compiled(update, ws, gs, bufs, scalars)
                continue
            except TorchDynamoException as err:  # compile errors surface on the first call
                _compile_failed(key, err)
                update = None
        for i in unit:
            buf = momentum_buffers[i] if momentum != 0 else None
            buf = _reference_update(params[i], grads[i], buf, **hyper, potential=potential)
            if momentum != 0:
                momentum_buffers[i] = buf


@torch.no_grad()
def mirror_descent(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffers: list[Tensor | None],
    *,
    lr: float,
    potential: PotentialLike = "2-norm",
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    fast: bool = True,
) -> None:
    """Functional mirror descent: update ``params`` in place (see :class:`MirrorDescent`).

    ``momentum_buffers`` holds one buffer per parameter when ``momentum != 0`` (None entries are
    created, on the first step, equal to the gradient) and is updated in place; it is ignored
    otherwise. ``grads`` are never modified. ``fast=False`` runs the reference path.
    """
    pot = _resolve(potential)
    impl = _fused_mirror_descent if fast else _single_tensor_mirror_descent
    impl(
        params,
        grads,
        momentum_buffers,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        potential=pot,
    )


def _check_hyperparameters(group: dict) -> None:
    for name in ("lr", "momentum", "weight_decay"):
        if not group[name] >= 0.0:
            raise ValueError(f"invalid {name}: {group[name]!r} (must be >= 0)")
    _resolve(group["potential"])


class MirrorDescent(Optimizer):
    r"""Mirror descent with heavy-ball momentum, a potential per parameter group.

    For each parameter ``w`` with gradient ``dL/dw``:

    .. math::
        g = \frac{\partial L}{\partial w} + \lambda w, \qquad
        b \leftarrow \mu b + g \ (b = g \text{ on the first step}), \qquad
        w \leftarrow (\nabla\phi)^{-1}\big(\nabla\phi(w) - \eta\, b\big).

    With the ``"2-norm"`` this is ``torch.optim.SGD(lr, momentum, weight_decay)`` (dampening 0,
    Nesterov off), state ``"momentum_buffer"`` included; with ``"ne"`` (negative entropy) it is
    exponentiated gradient, ``w <- w exp(-lr sign(w) b)``, which never changes a sign.

    Both paths do the same at the extremes. Negative entropy's step multiplies a weight by at
    most ``sqrt(max)`` of its dtype (:meth:`Potential.dual_step`); a p-norm's inverse map
    saturates (:class:`PNorm`: for ``p > 2`` a weight beyond ``max^(1/(p-1))``, whose dual
    overflows, comes back to that bound). Subnormal weights are updated like any other.
    bfloat16 and float16 parameters are computed in float32 and rounded once per step (the
    2-norm: ``torch.optim.SGD``'s operations in the parameter's dtype). Complex parameters
    raise ``TypeError``. ``state_dict()`` stores each potential by name, so the file loads
    with ``torch.load``'s default ``weights_only=True``.

    Args:
        params: parameters or parameter groups; a group may set its own ``"potential"``
            (a name such as ``"ne"``, ``"3-norm"``, or a :class:`Potential`), ``lr``, ...
        lr: learning rate ``eta >= 0`` (read from the group at each step: schedulers work).
        potential: the default potential ``phi``.
        momentum: heavy-ball factor ``mu >= 0`` on the raw gradient.
        weight_decay: ``lambda >= 0``, added to the gradient (``p.grad`` is left untouched).
        fast: run the fused ``torch.compile``'d kernel (compiled once per process and
            potential; falls back to the reference path, with a warning, if compiling fails);
            ``False`` runs the readable reference path that composes the maps.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float,
        potential: PotentialLike = "2-norm",
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        *,
        fast: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "potential": potential,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "fast": fast,
        }
        _check_hyperparameters(defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        _check_hyperparameters({**self.defaults, **param_group})
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not p.is_floating_point():
                raise TypeError(
                    f"MirrorDescent updates real floating-point parameters, got one of {p.dtype} "
                    "(the potentials' maps are defined on real weights)"
                )
        super().add_param_group({**param_group, "params": params})

    def state_dict(self) -> dict:
        """``Optimizer.state_dict`` with each group's potential stored as its name (floats in
        full), so that ``torch.load``'s default ``weights_only=True`` can read the file. A
        potential that is not one of the library's is stored as the object itself."""
        state = super().state_dict()
        for group in state["param_groups"]:
            if isinstance(group["potential"], Potential):
                group["potential"] = _potential_spec(group["potential"])
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """``Optimizer.load_state_dict``; each group's potential is rebuilt from its stored name
        (a :class:`Potential` after loading; an unknown name raises ``ValueError`` here)."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["potential"] = potential(group["potential"])

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Take one step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("MirrorDescent does not support sparse gradients")
            has_momentum = group["momentum"] != 0
            buffers = [self.state[p].get("momentum_buffer") for p in params] if has_momentum else []
            mirror_descent(
                params,
                [p.grad for p in params],
                buffers,
                lr=float(group["lr"]),
                potential=group["potential"],
                momentum=group["momentum"],
                weight_decay=group["weight_decay"],
                fast=group["fast"],
            )
            if has_momentum:
                for p, buf in zip(params, buffers, strict=True):
                    self.state[p]["momentum_buffer"] = buf
        return loss


class SignConstrainedSGD(SGD):
    r"""Projected gradient descent that keeps every weight's initial sign (a baseline).

    Each step is a ``torch.optim.SGD`` step followed by the Euclidean projection onto the orthant
    of the initial signs ``s = sign(w_0)``:

    .. math:: w \leftarrow s \max(s\, w, 0),

    so a weight whose sign would flip is set to 0, and a weight at 0 can regrow only with its
    original sign. ``s`` is taken when a parameter is first updated and kept in the state as
    ``"sign"``; a weight that is exactly 0 then has no sign to keep and stays at 0.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Take an SGD step, then project onto the initial signs' orthant."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        for p in params:
            if "sign" not in self.state[p]:
                self.state[p]["sign"] = torch.sign(p).detach()
        super().step()
        for p in params:
            sign = self.state[p]["sign"]
            p.copy_(sign * (sign * p).clamp_min(0))
        return loss
