"""select_masks: model + calibration batch → local problems → solved → PyTorch masks."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..classical.masks import validate_masks
from ..errors import QSelectError
from ..solvers import Solver, SolveResult, get_solver
from ..solvers.anneal import SimulatedAnnealingSolver
from ..solvers.base import int_setting
from ..solvers.controls import aggregate_baselines, control_fields
from ..solvers.exact import EXACT_SEARCH_BITS, ExactSolver
from ..validation import check_keeps_some
from .activations import PRUNABLE, call_order, check_finite, collect_activations, resolve_layers
from .cardinality import keep_count
from .decompose import BlockSolver
from .local import LocalProblem
from .neurons import head_problem, neuron_problem, split_attention, units_of_columns
from .nk import NK_DEFAULT_K, nk_plan, nk_problems
from .refit import REFIT_BLOCK_BITS, refit_problems
from .structure import NORM_COMPANIONS, between, dependency_check, norm_companions
from .weights import weight_problems

FORMULATIONS = ("weight", "neuron", "nk", "refit")
_ACTIVATIONS = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Softplus,
                nn.Hardtanh, nn.ReLU6, nn.Identity)
#: exact search is the default inner solver up to this many bits per block
EXACT_DEFAULT_BITS = EXACT_SEARCH_BITS


@dataclass
class Selection:
    """What ``select_masks`` returns: masks, and the local problems/results behind them."""

    masks: dict[str, torch.Tensor]
    problems: list[LocalProblem]
    results: list[SolveResult]
    formulation: str = "weight"
    sparsity: float = 0.5
    info: dict = field(default_factory=dict)

    def kept_fraction(self) -> dict[str, float]:
        """Fraction of entries kept (mask = 1) in each masked parameter, keyed by parameter name."""
        return {k: float(m.float().mean()) for k, m in self.masks.items()}

    def summary(self) -> dict:
        """Per-layer kept fraction, problem count, energies and timings (JSON-ready)."""
        layers: dict[str, dict] = {}
        for lp, r in zip(self.problems, self.results):
            d = layers.setdefault(lp.layer, {"problems": 0, "bits": 0, "energy": 0.0, "wall_time": 0.0,
                                             "sweeps": 0})
            d["problems"] += 1
            d["bits"] += lp.n
            d["energy"] += float(r.energy)
            d["wall_time"] += float(r.wall_time)
            d["sweeps"] = max(d["sweeps"], int(r.info.get("sweeps", 0)))
        for name, d in layers.items():
            key = f"{name}.weight" if name else "weight"
            if key in self.masks:
                d["kept_fraction"] = float(self.masks[key].float().mean())
            # sampled answers beside uniform random strings with the same shots (empty otherwise)
            d.update(control_fields(_Pooled([r for lp, r in zip(self.problems, self.results)
                                             if lp.layer == name])))
        weights = [m for k, m in self.masks.items() if k.endswith("weight")]
        kept = sum(float(m.sum()) for m in weights)
        total = sum(m.numel() for m in weights)
        return {"formulation": self.formulation, "sparsity": self.sparsity,
                "sparsity_actual": 1.0 - kept / total if total else None,
                **control_fields(_Pooled(self.results)),
                "problems": len(self.problems), "max_bits": max((p.n for p in self.problems), default=0),
                "solver": self.results[0].solver if self.results else None,
                "wall_time": float(sum(r.wall_time for r in self.results)),
                "layers": layers, **self.info}


class _Pooled:
    """Many results seen as one: their uniform-sampling controls aggregated (for summaries)."""

    def __init__(self, results):
        base = aggregate_baselines(results)
        self.info = {} if base is None else {"uniform_baseline": base}


def _fingerprint(problem) -> tuple:
    """Identity of a problem's energy function: type, n, k and its energies on fixed seeded strings."""
    probe = np.random.default_rng(0).integers(0, 2, size=(16, problem.n), dtype=np.uint8)
    probe[0], probe[1] = 0, 1
    return (type(problem).__name__, problem.n, problem.k,
            np.asarray(problem.energy(probe), dtype=np.float64).tobytes())


def reference_energies(selection: Selection, max_bits: int = EXACT_DEFAULT_BITS,
                       cache: dict | None = None) -> list[float | None]:
    """Exact optimum of every local problem ``selection`` solved (None above ``max_bits`` bits).

    The reference is computed on the very problems that were solved (their
    stored objects, same K, same penalty), never rebuilt from the model, so a
    gap ``result.energy − reference`` compares like with like. Problems with a
    cardinality ``k`` are searched among weight-k strings only.

    Parameters
    ----------
    selection : Selection
        What :func:`select_masks` returned.
    max_bits : int
        Largest problem searched exhaustively (2^n energies).
    cache : dict, optional
        Shared between calls (e.g. several solvers' selections of the same problems): a problem
        with the same energies on a fixed probe set, n and k is searched once.

    Returns
    -------
    list of float or None
        One entry per problem, in ``selection.problems`` order.
    """
    max_bits = int_setting("max_bits (exact reference limit)", max_bits, 0)
    out: list[float | None] = []
    for lp in selection.problems:
        if lp.problem.n > max_bits:
            out.append(None)
            continue
        key = _fingerprint(lp.problem) if cache is not None else None
        if key is None or key not in cache:
            e = float(ExactSolver(respect_k=lp.problem.k is not None).solve(lp.problem).energy)
            if key is None:
                out.append(e)
                continue
            cache[key] = e
        out.append(cache[key])
    return out


def make_solver(solver, qubits: int, seed: int, max_sweeps: int = 10) -> BlockSolver:
    """Solver for the local problems: decomposed into ≤ ``qubits``-bit blocks when larger.

    Parameters
    ----------
    solver : str, Solver or None
        Name, instance (a ``BlockSolver`` passes through) or None (exact search
        up to 20 qubits, else simulated annealing).
    qubits : int
        Block size.
    seed : int
    max_sweeps : int

    Returns
    -------
    BlockSolver
    """
    if solver is None:
        inner = ExactSolver() if qubits <= EXACT_DEFAULT_BITS else SimulatedAnnealingSolver(seed=seed)
    elif isinstance(solver, Solver):
        inner = solver
    else:
        from ..solvers import solver_class

        params = inspect.signature(solver_class(solver).__init__).parameters
        inner = get_solver(solver, **({"seed": seed} if "seed" in params else {}))
    if isinstance(inner, BlockSolver):
        return inner
    return BlockSolver(inner, qubits=qubits, max_sweeps=max_sweeps, seed=seed)


def solve_problems(problems: list[LocalProblem], solver: Solver, executor=None,
                   progress: bool = False) -> list[SolveResult]:
    """Solve local problems with one solver, optionally through an executor.

    Parameters
    ----------
    problems : list of LocalProblem
    solver : Solver
    executor : Executor, str or None
        Where to run (see :func:`qselect.executors.get_executor`); the
        results are the same on any executor.
    progress : bool
        Show a progress bar labelled "local problems".

    Returns
    -------
    list of SolveResult
        One per problem, in order.
    """
    return solver.solve_many([lp.problem for lp in problems], executor=executor,
                             progress="local problems" if progress else False)


def build_masks(model: nn.Module, problems: list[LocalProblem], results: list[SolveResult],
                layers: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Masks (1 = keep) for every layer named in ``layers`` or touched by a problem.

    Parameters
    ----------
    model : torch.nn.Module
    problems : list of LocalProblem
    results : list of SolveResult
        One per problem, in order (only ``bits`` is read).
    layers : list of str or None
        Layers to mask; those without a problem get all-ones masks.

    Returns
    -------
    dict of str -> torch.Tensor
        Parameter name -> float 0/1 mask of the parameter's shape and device.
    """
    modules = dict(model.named_modules())
    masks: dict[str, torch.Tensor] = {}

    def mask_for(layer: str, pname: str) -> torch.Tensor | None:
        key = f"{layer}.{pname}" if layer else pname
        if key not in masks:
            t = getattr(modules[layer], pname, None)
            if t is None:
                return None
            masks[key] = torch.ones_like(t, dtype=t.dtype if t.is_floating_point() else torch.float32)
        return masks[key]

    for name in layers or []:
        mask_for(name, "weight")
    for lp, r in zip(problems, results):
        bits = torch.as_tensor(r.bits.astype(np.float32))
        w = mask_for(lp.layer, "weight")
        if lp.kind == "neuron":
            if "groups" in lp.info:  # one bit keeps several rows (an attention head's q, k and v)
                bits = bits.repeat_interleave(torch.as_tensor([len(g) for g in lp.info["groups"]]))
                rows = torch.as_tensor(np.concatenate(lp.info["groups"]), dtype=torch.long, device=w.device)
            else:
                rows = torch.as_tensor(lp.positions, dtype=torch.long, device=w.device)
            w[rows] = bits.to(w).view(-1, *([1] * (w.dim() - 1))).expand_as(w[rows])
            b = mask_for(lp.layer, "bias")
            if b is not None:
                b[rows.to(b.device)] = bits.to(b)
            for comp in lp.info.get("companions", ()):  # BatchNorm γ and β: the unit's output is 0
                for pname in ("weight", "bias"):
                    mask_for(comp, pname)[rows] = bits.to(w)
            continue
        idx = tuple(torch.as_tensor(lp.positions[:, d], dtype=torch.long, device=w.device)
                    for d in range(lp.positions.shape[1]))
        w[idx] = bits.to(w)
        if lp.zero is not None and len(lp.zero):
            zidx = tuple(torch.as_tensor(lp.zero[:, d], dtype=torch.long, device=w.device)
                         for d in range(lp.zero.shape[1]))
            w[zidx] = 0.0
    return masks


def following_activation(model: nn.Module, layer: str, order: list[str]):
    """The activation module the forward pass calls right after ``layer``, else None (identity).

    ``order`` is :func:`call_order`'s list; functional activations (F.relu in
    ``forward``) are invisible to hooks, so pass ``activation=`` for those.

    Parameters
    ----------
    model : torch.nn.Module
    layer : str
    order : list of str
        Leaf-module call order from :func:`~qselect.formulate.activations.call_order`.

    Returns
    -------
    torch.nn.Module or None
    """
    modules = dict(model.named_modules())
    if layer in order and order.index(layer) + 1 < len(order):
        nxt = modules[order[order.index(layer) + 1]]
        if isinstance(nxt, _ACTIVATIONS):
            return nxt
    return None


def _prunable_call_order(model: nn.Module, order: list[str]) -> list[str]:
    """Linear/Conv2d layers in the order the forward pass first calls them."""
    modules = dict(model.named_modules())
    return [n for n in dict.fromkeys(order) if isinstance(modules[n], PRUNABLE)]


#: modules that may sit between a layer and the next one in neuron selection: each maps a
#: removed (all-zero) unit to zero, so the next layer's input column simply vanishes
_ZERO_PRESERVING = (nn.ReLU, nn.Tanh, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Hardtanh, nn.ReLU6,
                    nn.Identity, nn.Dropout, nn.Flatten, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)


def _next_layers(model: nn.Module, names: list[str], order: list[str], strict: bool = True,
                 deps=None) -> dict[str, str]:
    """The layer that reads each named layer's units: the next one *called*, not the next declared.

    A layer whose units reach that next layer through anything that does not keep a zero unit
    zero (LayerNorm, sigmoid, ...; a BatchNorm is zeroed with the unit, see ``structure``), or
    whose channels also feed a residual sum or another layer (``deps``, the dependency graph),
    has no exact neuron QUBO: an error when the layer was asked for (``strict``), else it is left out.
    """
    modules = dict(model.named_modules())
    prunable = _prunable_call_order(model, order)
    out = {}
    for n in names:
        if n not in prunable:
            raise QSelectError(f"layer {n!r} is never called in the forward pass; leave it out of layers=")
        i = prunable.index(n)
        if i + 1 >= len(prunable):
            raise QSelectError(f"layer {n!r} is the last Linear/Conv2d layer: neuron selection needs a next "
                               "layer reading its units; leave it out of layers=")
        nxt = prunable[i + 1]
        between = order[order.index(n) + 1:order.index(nxt)]
        bad = [b for b in between if not isinstance(modules[b], _ZERO_PRESERVING + NORM_COMPANIONS)]
        try:
            if deps is not None:  # residual sums, LayerNorm, several readers (dependency graph)
                deps.check(n, nxt)
            if bad:
                raise QSelectError(
                    f"neuron selection on layer {n!r}: its units reach {nxt!r} through {bad[0]!r} "
                    f"(a {type(modules[bad[0]]).__name__}), which does not keep a removed unit at zero; "
                    "choose layers followed only by ReLU-like activations/pooling, or use the 'weight' formulation")
            norm_companions(modules, between)  # BatchNorms masked with the unit need γ and β
            units_of_columns(modules[n], modules[nxt])  # shapes must line up unit by unit
        except QSelectError:
            if strict:
                raise
            continue
        out[n] = nxt
    return out


def _check_layers_keep_units(modules, names, formulation: str, sparsity: float, K, nk_rest: str) -> None:
    """Refuse a sparsity at which a layer would keep no unit, before any solving.

    Refuse, before any solving, a sparsity at which a layer would keep no unit (or no input of any unit): the network
    would be cut there and fall to chance accuracy.
    """
    for name in names:
        w = getattr(modules[name], "weight", None)
        if w is None or w.ndim < 2:
            continue
        if formulation == "neuron":
            check_keeps_some(int(w.shape[0]), sparsity, f"units of layer {name!r}")
        else:
            fan_in = int(w[0].numel())
            check_keeps_some(fan_in, sparsity, f"inputs of every unit of layer {name!r}")


def neuron_layers(model: nn.Module, calib_inputs) -> list[str]:
    """The layers neuron selection accepts on ``model``, in call order.

    Those whose units reach exactly one next layer as exact zeros when removed
    (through ReLU-like activations, pooling and BatchNorm, not through residual
    sums or LayerNorm): what ``select_masks(..., formulation="neuron")`` picks
    when ``layers`` is None.

    Parameters
    ----------
    model : torch.nn.Module
    calib_inputs : torch.Tensor or iterable of batches

    Returns
    -------
    list of str
    """
    order = call_order(model, calib_inputs)
    return list(_next_layers(model, _prunable_call_order(model, order)[:-1], order, strict=False,
                             deps=dependency_check(model, calib_inputs)))


def select_masks(model: nn.Module, calib_inputs, *, formulation: str = "weight", sparsity: float = 0.5,
                 solver=None, qubits: int = 12, layers=None, seed: int = 0, executor=None, penalty=None,
                 progress: bool = False, K: int | None = None, max_sweeps: int = 10,
                 activation="auto", nk_rest: str = "magnitude", damping: float = 0.01) -> Selection:
    """Select masks for ``model``'s layers by solving local problems on a calibration batch.

    Parameters
    ----------
    model : torch.nn.Module
        Any model whose prunable layers are ``nn.Linear`` / ``nn.Conv2d``; may live on CUDA
        (all problem math runs in float64 on the CPU).
    calib_inputs : torch.Tensor or iterable of batches
        Calibration inputs (a tensor, or batches / (x, y) pairs).
    formulation : {"weight", "neuron", "nk", "refit"}
        ``"weight"``: one problem per output neuron, reconstruct the dense
        output. ``"neuron"``: one problem per layer over its units, keep the
        next layer's pre-activation (only layers whose units reach the next
        called layer through zero-preserving modules — ReLU-like, pooling;
        by default the others are left out, named ones are refused).
        ``"nk"``: per unit, K weights decided with the exact local loss
        through the following activation. ``"refit"``: per output neuron, the
        reconstruction error after the damped least-squares refit of the kept
        weights (see ``qselect.formulate.refit``).
    sparsity : float
        Fraction of each row's weights (weight, nk, refit) or of the layer's
        units (neuron) removed, in [0, 1); the masks' sparsity equals it up to
        rounding for every solver, or the call refuses before any forward pass.
    solver : str, Solver or None
        A name from ``qselect.solvers.SOLVERS`` or a solver instance; default
        exact search for budgets ≤ 20 qubits, else simulated annealing.
    qubits : int
        Largest problem solved whole; larger ones are decomposed into blocks
        (:class:`~qselect.formulate.decompose.BlockSolver`).
    layers : str, iterable of str, or None
        Layer names (default: every prunable layer the formulation supports).
    seed : int
        Seed of every random choice (solver, block partitions).
    executor : Executor, str or None
        Where the local problems are solved; same results on any executor.
    penalty : "auto", None or float
        Cardinality penalty λ; "auto"/None provably keeps k bits.
    progress : bool
        Show progress bars.
    K : int or None
        NK problem size (default ``NK_DEFAULT_K`` = 10, independent of ``qubits``).
    max_sweeps : int
        Upper bound on block-descent sweeps.
    activation : "auto", torch.nn.Module, callable or None
        NK: the activation after each layer ("auto": found from the forward
        pass; pass it for functional activations such as ``F.relu``).
    nk_rest : {"magnitude", "prune"}
        NK: decide the K weights at each row's magnitude threshold, or read
        only the K largest-|w| inputs (needs K ≥ the row's keep count).
    damping : float
        Refit: damping as a fraction of mean diag(AᵀA).

    Returns
    -------
    Selection
        ``masks`` (parameter name -> float 0/1 tensor of the parameter's shape
        and device; apply with :func:`qselect.classical.masks.apply_masks`),
        ``problems``, ``results`` and ``summary()``.

    Raises
    ------
    QSelectError
        On an unknown formulation or solver, a sparsity outside [0, 1),
        layers that cannot be formulated, NaN weights or activations.
    ProblemTooLargeError
        If the problems would not fit in memory.

    References
    ----------
    E. Farhi, J. Goldstone, S. Gutmann, "A Quantum Approximate Optimization
    Algorithm", arXiv:1411.4028 (2014), for the QAOA solver; E. Frantar,
    S. P. Singh, D. Alistarh, "Optimal Brain Compression", NeurIPS 2022, for
    the refit loss.
    """
    if formulation not in FORMULATIONS:
        raise QSelectError(f"unknown formulation {formulation!r}; use one of {', '.join(FORMULATIONS)}")
    qubits = int_setting("qubit budget (qubits)", qubits, 1)
    if formulation == "refit":  # every block is tabulated by 2^q small solves: blocks of at most 12 bits
        qubits = min(qubits, REFIT_BLOCK_BITS)
    keep_count(1, sparsity)  # validates sparsity before any forward pass
    if formulation == "nk":
        K = int_setting("K (weights each NK unit decides)", NK_DEFAULT_K if K is None else K, 1)
        named = dict(model.named_modules())
        for name in resolve_layers(model, layers):  # K vs each row's keep count, before any forward pass
            nk_plan(name, named[name], K=K, sparsity=sparsity, rest=nk_rest)
        if not (activation is None or activation == "auto" or callable(activation)):
            raise QSelectError(f"activation must be 'auto', None (identity) or a callable such as "
                               f"torch.relu, got {activation!r}")
    penalty = "auto" if penalty is None else penalty
    if not isinstance(calib_inputs, torch.Tensor):
        if not hasattr(calib_inputs, "__iter__"):
            raise QSelectError(f"calibration inputs must be a tensor or an iterable of batches, "
                               f"got {type(calib_inputs).__name__}")
        if iter(calib_inputs) is calib_inputs:  # a one-shot iterator: each forward pass below reads it
            calib_inputs = list(calib_inputs)
    heads: list[str] = []  # attention modules named in layers=: their heads are the units
    if formulation == "neuron" and layers is not None:
        layers, heads = split_attention(model, layers)
    need_order = formulation == "neuron" or (formulation == "nk" and activation == "auto")
    order = call_order(model, calib_inputs) if need_order else []
    if formulation == "neuron" and layers is None:
        deps = dependency_check(model, calib_inputs)
        nxt = _next_layers(model, _prunable_call_order(model, order)[:-1], order, strict=False, deps=deps)
        names = list(nxt)
        if not names:
            raise QSelectError("neuron selection needs a Linear/Conv2d layer whose units feed the next one "
                               "directly (through ReLU-like activations or pooling only); this model has none")
    else:
        names = resolve_layers(model, layers) if layers or not heads else []
        nxt = (_next_layers(model, names, order, deps=dependency_check(model, calib_inputs))
               if formulation == "neuron" else {})
    modules = dict(model.named_modules())
    _check_layers_keep_units(modules, names, formulation, float(sparsity), K, nk_rest)
    acts = collect_activations(model, calib_inputs,
                               sorted(set(names) | set(nxt.values()) | {f"{h}.proj" for h in heads}))
    problems: list[LocalProblem] = []
    for name in names:
        layer = modules[name]
        check_finite(name, layer, acts[name][0])
        if formulation == "neuron":
            check_finite(nxt[name], modules[nxt[name]], acts[nxt[name]][0])
        if formulation == "weight":
            problems += weight_problems(name, layer, acts[name][0], sparsity=sparsity, penalty=penalty)
        elif formulation == "refit":
            problems += refit_problems(name, layer, acts[name][0], sparsity=sparsity, penalty=penalty,
                                       damping=damping, qubits=qubits)
        elif formulation == "neuron":
            problems.append(neuron_problem(name, layer, modules[nxt[name]], acts[nxt[name]][0],
                                           sparsity=sparsity, penalty=penalty))
            problems[-1].info["companions"] = norm_companions(modules, between(order, name, nxt[name]))
        else:
            act = following_activation(model, name, order) if activation == "auto" else activation
            problems += nk_problems(name, layer, acts[name][0], K=K, sparsity=sparsity,
                                    activation=act, penalty=penalty, rest=nk_rest)
    for h in heads:
        problems.append(head_problem(h, modules[h], acts[f"{h}.proj"][0], sparsity=sparsity, penalty=penalty))
    block = make_solver(solver, qubits, seed, max_sweeps)
    results = solve_problems(problems, block, executor, progress)
    masks = build_masks(model, problems, results, names)
    info = {"qubits": qubits, "seed": seed}
    if formulation == "nk":
        info.update(K=K, nk_rest=nk_rest)
    return Selection(masks, problems, results, formulation, float(sparsity), info=info)


def masks_from_solutions(model: nn.Module, problems, results, layers=None) -> dict[str, torch.Tensor]:
    """Masks from solved local problems (weight-, neuron- or NK-level) of ``qselect.formulate``.

    ``problems`` are ``LocalProblem``s, ``results`` their ``SolveResult``s (one each,
    in order; only ``.bits`` is read). Layers in ``layers`` with no problem get an
    all-ones mask. The bit -> entry bookkeeping lives with the formulations
    (``build_masks``); this is the pipeline-side entry point.

    Parameters
    ----------
    model : torch.nn.Module
    problems : list of LocalProblem
    results : list of SolveResult
    layers : list of str or None

    Returns
    -------
    dict of str -> torch.Tensor
    """
    problems, results = list(problems), list(results)
    if len(problems) != len(results):
        raise QSelectError(f"{len(problems)} local problems but {len(results)} results; pass one "
                           "result per problem, in order")
    masks = build_masks(model, problems, results, layers=layers)
    out = {k: v.detach().to("cpu", torch.float32) for k, v in masks.items()}
    validate_masks(model, out)
    return out
