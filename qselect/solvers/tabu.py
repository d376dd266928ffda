"""Multistart tabu search via dwave-samplers."""
from __future__ import annotations

from ..errors import QSelectError
from ..problems import Problem
from ._sampling import sample_and_score
from .base import Solver, SolveResult


class TabuSolver(Solver):
    """``dwave.samplers.TabuSampler`` on the problem's QUBO.

    ``timeout`` (ms per read) defaults to None so the search is bounded by
    ``num_restarts`` only: with a clock limit the same seed could give
    different results on a busy machine.
    """

    name = "tabu"

    def __init__(self, num_reads: int = 4, num_restarts: int = 4, seed: int | None = 0,
                 tenure: int | None = None, timeout: int | None = None):
        if int(num_reads) < 1 or int(num_restarts) < 0:
            raise QSelectError(f"num_reads must be ≥ 1 and num_restarts ≥ 0, got {num_reads}, {num_restarts}")
        self.num_reads = int(num_reads)
        self.num_restarts = int(num_restarts)
        self.seed = seed
        self.tenure = tenure
        self.timeout = timeout

    def _solve(self, problem: Problem) -> SolveResult:
        tenure = None if self.tenure is None else min(int(self.tenure), max(problem.n - 1, 0))
        return sample_and_score(problem, "tabu", self.name, num_reads=self.num_reads,
                                num_restarts=self.num_restarts, seed=self.seed, tenure=tenure,
                                timeout=self.timeout)
