"""Simulated annealing via dwave-samplers (never rewritten here)."""
from __future__ import annotations

from ..errors import QSelectError
from ..problems import Problem
from ._sampling import sample_and_score
from .base import Solver, SolveResult


class SimulatedAnnealingSolver(Solver):
    """``dwave.samplers.SimulatedAnnealingSampler`` on the problem's QUBO.

    Same seed, same result. A higher-order ``DiagonalCost`` is sampled through
    its least-squares order-2 QUBO and every sample is re-scored with the exact
    cost (``info['surrogate']`` says so).
    """

    name = "sa"

    def __init__(self, num_reads: int = 32, num_sweeps: int = 500, seed: int | None = 0,
                 beta_range=None, beta_schedule_type: str = "geometric"):
        if int(num_reads) < 1 or int(num_sweeps) < 1:
            raise QSelectError(f"num_reads and num_sweeps must be ≥ 1, got {num_reads} and {num_sweeps}")
        self.num_reads = int(num_reads)
        self.num_sweeps = int(num_sweeps)
        self.seed = seed
        self.beta_range = beta_range
        self.beta_schedule_type = beta_schedule_type

    def _solve(self, problem: Problem) -> SolveResult:
        return sample_and_score(problem, "sa", self.name, num_reads=self.num_reads,
                                num_sweeps=self.num_sweeps, seed=self.seed,
                                beta_range=self.beta_range, beta_schedule_type=self.beta_schedule_type)
