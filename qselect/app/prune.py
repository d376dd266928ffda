"""``qselect.prune``: one entry point for classical pruners and local-problem selection.

Method names
------------
Classical one-shot pruners (``qselect.pruners``): ``magnitude``, ``random``,
``wanda``, ``sparsegpt``, ``obc``, ``snip``, ``imp``.

Local problems (``qselect.formulate.select_masks``) are named
``"<formulation>:<solver>"``: the formulation is one of ``weight`` (alias
``qubo``: the quadratic reconstruction QUBO), ``refit`` (the exact
reconstruction error after the least-squares refit, a diagonal cost per block),
``nk`` or ``neuron``; the solver any name of ``qselect.solvers.SOLVERS``
(``exact``, ``sa``, ``tabu``, ``greedy``, ``magnitude``, ``random``, ``qaoa``).
Examples: ``"qubo:exact"``, ``"qubo:tabu"``, ``"refit:exact"``, ``"refit:qaoa"``.
A bare solver name that is not a classical pruner (``"sa"``, ``"exact"``,
``"tabu"``, ``"qaoa"``, ``"greedy"``) means ``"weight:<solver>"``; ``magnitude``
and ``random`` always name the classical pruners (the local solver of that
name is ``"weight:magnitude"``, which ranks by |w|·‖a‖ — Wanda's score).

Every method prunes layer after layer in forward order, each layer on the
already-pruned network's calibration activations, keeping the same number of
weights in every output row, and ``refit=True`` follows any mask by the damped
least-squares refit of each row's kept weights.
"""
from __future__ import annotations

import time

from ..errors import QSelectError
from ..pruners import PRUNERS, PruneResult, prune_classical, prune_layers

#: formulation names accepted before the colon (``qubo`` is the ``weight`` QUBO)
LOCAL_FORMULATIONS = {"weight": "weight", "qubo": "weight", "refit": "refit", "nk": "nk", "neuron": "neuron"}
#: options the local-problem methods accept (passed to ``select_masks``), besides damping/sequential
LOCAL_OPTIONS = ("qubits", "penalty", "max_sweeps", "K", "nk_rest", "activation", "executor", "solver_options")


def parse_method(method: str) -> tuple[str, str | None, str | None]:
    """``("classical", None, None)`` or ``("local", formulation, solver)`` for a method name.

    Parameters
    ----------
    method : str

    Raises
    ------
    QSelectError
        An unknown method, formulation or solver name.
    """
    from ..solvers import SOLVERS

    if not isinstance(method, str) or not method:
        raise QSelectError(f"method must be a name such as 'wanda' or 'refit:exact', got {method!r}")
    if method in PRUNERS:
        return "classical", None, None
    form, sep, solver = method.partition(":")
    if not sep:
        form, solver = "weight", method
    if form not in LOCAL_FORMULATIONS or solver not in SOLVERS:
        raise QSelectError(f"unknown pruning method {method!r}; use one of {', '.join(PRUNERS)}, or "
                           f"'<formulation>:<solver>' with formulation in {', '.join(LOCAL_FORMULATIONS)} and "
                           f"solver in {', '.join(sorted(SOLVERS))} (e.g. 'refit:exact')")
    return "local", LOCAL_FORMULATIONS[form], solver


def prune(model, calib_inputs, method: str, sparsity: float, layers=None, refit: bool = False, seed: int = 0,
          **options) -> PruneResult:
    """Prune ``model``'s Linear/Conv2d layers with ``method``; the model itself is not changed.

    Parameters
    ----------
    model : torch.nn.Module
    calib_inputs : torch.Tensor or iterable of batches / (x, y) pairs
        Calibration batch (samples along dim 0).
    method : str
        A classical pruner or a ``"<formulation>:<solver>"`` local-problem method (module doc).
    sparsity : float
        Fraction of every output row's weights removed, in [0, 1).
    layers : list of str, optional
        Module names to prune; default every Linear/Conv2d.
    refit : bool
        Refit each row's kept weights by damped least squares after the mask.
    seed : int
        Seed for every random choice (random pruner, IMP training, SA/tabu/QAOA).
    **options
        ``damping`` (refit dampening, fraction of mean diag XᵀX, default 0.01),
        ``sequential`` (default True); classical method options
        (``qselect.pruners.PRUNERS``); for local methods ``qubits`` (block size,
        default 12), ``penalty``, ``max_sweeps``, ``K``, ``nk_rest``,
        ``activation``, ``executor``, ``solver_options`` (dict for the solver).

    Returns
    -------
    PruneResult
        ``.masks`` (the keys/shapes of ``select_masks``), ``.weights`` (weights after
        pruning), ``.apply(model)``, ``.info`` (real sparsity, per-layer seconds; for
        local methods the summed local-problem energies and solver).

    Raises
    ------
    QSelectError
        Unknown method or option, or input a method cannot take (one line).

    References
    ----------
    Sun et al. 2023 (Wanda); Frantar & Alistarh 2023 (SparseGPT); Frantar, Singh &
    Alistarh 2022 (OBC); Lee et al. 2019 (SNIP); Frankle & Carbin 2019 and Frankle
    et al. 2020 (IMP with rewinding).
    """
    kind, formulation, solver = parse_method(method)
    damping = options.pop("damping", 0.01)
    sequential = bool(options.pop("sequential", True))
    if kind == "classical":
        return prune_classical(model, calib_inputs, method, sparsity, layers=layers, refit=refit, seed=seed,
                               damping=damping, sequential=sequential, **options)
    bad = sorted(set(options) - set(LOCAL_OPTIONS))
    if bad:
        raise QSelectError(f"method {method!r} takes no option(s) {bad}; its options: "
                           f"{', '.join(LOCAL_OPTIONS)}, damping, sequential")
    if layers is None and formulation == "neuron":
        from ..formulate.select import neuron_layers

        layers = neuron_layers(model, calib_inputs)  # the layers whose units vanish exactly when removed
    fn, stats = _local_layer_fn(formulation, solver, sparsity, seed, damping, dict(options))
    res = prune_layers(model, calib_inputs, fn, sparsity, layers=layers, refit=refit, damping=damping,
                       sequential=sequential, method=method)
    res.info["local"] = stats
    return res


def _local_layer_fn(formulation: str, solver: str, sparsity: float, seed: int, damping: float, options: dict):
    from ..formulate import select_masks
    from ..solvers import get_solver, solver_class

    solver_options = dict(options.pop("solver_options", None) or {})
    if solver_options:
        import inspect

        params = inspect.signature(solver_class(solver).__init__).parameters
        if "seed" in params:
            solver_options.setdefault("seed", seed)
        solver_obj = get_solver(solver, **solver_options)
    else:
        solver_obj = solver
    kw = dict(options)
    if formulation == "refit":
        kw["damping"] = damping
    stats = {"formulation": formulation, "solver": solver, "layers": {}}

    def fn(task):
        t0 = time.perf_counter()
        sel = select_masks(task.model, task.calib, formulation=formulation, sparsity=sparsity, solver=solver_obj,
                           layers=[task.name], seed=seed, **kw)
        key = f"{task.name}.weight" if task.name else "weight"
        mask = sel.masks[key].reshape(task.weight.shape[0], -1)
        extra = {k: v for k, v in sel.masks.items() if k != key}
        stats["layers"][key] = {"energy": float(sum(r.energy for r in sel.results)),
                                "problems": len(sel.problems),
                                "max_bits": max((p.n for p in sel.problems), default=0),
                                "solve_seconds": float(sum(r.wall_time for r in sel.results)),
                                "seconds": time.perf_counter() - t0}
        controls = [r.info["uniform_baseline"] for r in sel.results if "uniform_baseline" in r.info]
        if controls:  # QAOA's answers beside uniform random strings with the same shots
            stats["layers"][key]["uniform_baseline"] = controls
        return mask, None, extra

    return fn, stats
