"""Simulated annealing via dwave-samplers (never rewritten here)."""
from __future__ import annotations

import numpy as np

from ..errors import QSelectError
from ..problems import Problem
from ._sampling import sample_and_score
from .base import MAX_SEED, Solver, SolveResult, int_setting

#: dwave-samplers' schedules that need no extra input ("custom" needs a beta_schedule array)
BETA_SCHEDULES = ("geometric", "linear")


def sampler_seed(seed: int | None) -> int | None:
    """Map a seed into dwave-samplers' range.

    dwave's SA takes seeds below 2^31 only; larger ones (up to MAX_SEED) map there by a hash.

    Parameters
    ----------
    seed : int or None

    Returns
    -------
    int or None
    """
    if seed is None or seed < 2**31:
        return seed
    return int(np.random.SeedSequence(int(seed)).generate_state(1)[0] >> 1)


class SimulatedAnnealingSolver(Solver):
    """``dwave.samplers.SimulatedAnnealingSampler`` on the problem's QUBO.

    Same seed, same result. A higher-order ``DiagonalCost`` is sampled through
    its least-squares order-2 QUBO and every sample is re-scored with the exact
    cost (``info['surrogate']`` says so). With ``problem.k`` set and
    ``enforce_k`` (default) the answer keeps exactly k bits: the best k-bit
    sample or the magnitude mask, polished by exact-cost 1-in/1-out swaps
    (``info['k_polish']``); ``samples`` stay what the sampler saw.
    """

    name = "sa"

    def __init__(self, num_reads: int = 32, num_sweeps: int = 500, seed: int | None = 0,
                 beta_range=None, beta_schedule_type: str = "geometric", enforce_k: bool = True):
        self.num_reads = int_setting("num_reads", num_reads, 1)
        self.num_sweeps = int_setting("num_sweeps", num_sweeps, 1)
        if beta_schedule_type not in BETA_SCHEDULES:
            raise QSelectError(f"beta_schedule_type must be one of {', '.join(BETA_SCHEDULES)}, "
                               f"got {beta_schedule_type!r}")
        if beta_range is not None:
            try:
                lo, hi = (float(b) for b in beta_range)
            except (TypeError, ValueError):
                lo = hi = -1.0
            if not (0 < lo <= hi < np.inf):
                raise QSelectError(f"beta_range must be two inverse temperatures 0 < hot ≤ cold, "
                                   f"got {beta_range!r}")
            beta_range = (lo, hi)
        self.seed = None if seed is None else int_setting("seed", seed, 0, MAX_SEED)
        self.beta_range = beta_range
        self.beta_schedule_type = beta_schedule_type
        self.enforce_k = bool(enforce_k)

    def _solve(self, problem: Problem) -> SolveResult:
        return sample_and_score(problem, "sa", self.name, num_reads=self.num_reads,
                                num_sweeps=self.num_sweeps, seed=sampler_seed(self.seed),
                                beta_range=self.beta_range, beta_schedule_type=self.beta_schedule_type,
                                enforce_k=self.enforce_k)
