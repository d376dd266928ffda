"""Solvers: one protocol (``Solver.solve(problem) -> SolveResult``), many implementations.

``get_solver(name, **kw)`` builds one by its CLI name. Registry entries are
either classes or lazy ``"module:Class"`` strings, so backends with heavy
imports (qiskit for "qaoa") load only when asked for.
"""
from __future__ import annotations

import importlib

from ..errors import QSelectError
from .anneal import SimulatedAnnealingSolver
from .base import Solver, SolveResult, make_result, summarise_samples
from .baselines import GreedySolver, MagnitudeSolver, RandomSolver
from .exact import ExactSolver
from .tabu import TabuSolver

#: CLI name -> Solver class, or "module:Class" imported on first use.
SOLVERS: dict[str, type | str] = {
    "exact": ExactSolver,
    "sa": SimulatedAnnealingSolver,
    "tabu": TabuSolver,
    "greedy": GreedySolver,
    "random": RandomSolver,
    "magnitude": MagnitudeSolver,
    "qaoa": "qselect.solvers.qaoa:QAOASolver",
    "swap": "qselect.solvers.swap:SwapDescentSolver",
}


def solver_class(name: str) -> type:
    """The class registered under ``name`` (importing a lazy entry).

    Parameters
    ----------
    name : str

    Returns
    -------
    type

    Raises
    ------
    QSelectError
        Listing the valid names.
    """
    if not isinstance(name, str) or name not in SOLVERS:
        raise QSelectError(f"unknown solver {name!r}; valid names: {', '.join(sorted(SOLVERS))}")
    entry = SOLVERS[name]
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        try:
            entry = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise QSelectError(f"solver {name!r} is not available ({entry}: {exc})") from None
    return entry


def get_solver(name, **kw) -> Solver:
    """Build a solver by registry name (a Solver instance passes through unchanged).

    Parameters
    ----------
    name : str or Solver
        ``exact``, ``sa``, ``tabu``, ``greedy``, ``magnitude``, ``random``, ``qaoa``.
    **kw
        The solver's constructor arguments.

    Returns
    -------
    Solver

    Raises
    ------
    QSelectError
        If the name is unknown or an argument invalid.
    """
    if isinstance(name, Solver):
        if kw:
            raise QSelectError("settings can only be given with a solver name, not with a solver object")
        return name
    if not isinstance(name, str):
        raise QSelectError(f"solver must be a name ({', '.join(sorted(SOLVERS))}) or a Solver, got {name!r}")
    cls = solver_class(name)
    try:
        return cls(**kw)
    except TypeError as exc:
        raise QSelectError(f"bad settings for solver {name!r}: {exc}") from None


def __getattr__(name):
    # QAOASolver imports qiskit: load it only when asked for.
    if name == "QAOASolver":
        return solver_class("qaoa")
    raise AttributeError(f"module 'qselect.solvers' has no attribute {name!r}")


__all__ = ["Solver", "SolveResult", "make_result", "summarise_samples", "ExactSolver",
           "SimulatedAnnealingSolver", "TabuSolver", "GreedySolver", "RandomSolver",
           "MagnitudeSolver", "SOLVERS", "get_solver", "solver_class"]
