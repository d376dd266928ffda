"""Solvers: one protocol (``Solver.solve(problem) -> SolveResult``), many implementations."""
from .base import Solver, SolveResult, make_result, summarise_samples

__all__ = ["Solver", "SolveResult", "make_result", "summarise_samples"]
