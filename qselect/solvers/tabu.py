"""Multistart tabu search via dwave-samplers."""
from __future__ import annotations

from ..problems import Problem
from ._sampling import sample_and_score
from .base import MAX_SEED, Solver, SolveResult, int_setting


class TabuSolver(Solver):
    """``dwave.samplers.TabuSampler`` on the problem's QUBO.

    ``timeout`` (ms per read) defaults to None so the search is bounded by
    ``num_restarts`` only: with a clock limit the same seed could give
    different results on a busy machine. A higher-order ``DiagonalCost`` is
    searched through its order-2 QUBO and re-scored exactly; with
    ``problem.k`` set and ``enforce_k`` the answer keeps exactly k bits, as
    for :class:`~qselect.solvers.SimulatedAnnealingSolver`.
    """

    name = "tabu"

    def __init__(self, num_reads: int = 4, num_restarts: int = 4, seed: int | None = 0,
                 tenure: int | None = None, timeout: int | None = None, enforce_k: bool = True):
        self.num_reads = int_setting("num_reads", num_reads, 1)
        self.num_restarts = int_setting("num_restarts", num_restarts, 0)
        self.seed = None if seed is None else int_setting("seed", seed, 0, MAX_SEED)
        self.tenure = None if tenure is None else int_setting("tenure", tenure, 0)
        self.timeout = None if timeout is None else int_setting("timeout", timeout, 0)
        self.enforce_k = bool(enforce_k)

    def _solve(self, problem: Problem) -> SolveResult:
        tenure = None if self.tenure is None else min(int(self.tenure), max(problem.n - 1, 0))
        return sample_and_score(problem, "tabu", self.name, num_reads=self.num_reads,
                                num_restarts=self.num_restarts, seed=self.seed, tenure=tenure,
                                timeout=self.timeout, enforce_k=self.enforce_k)
