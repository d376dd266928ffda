"""Cheap baselines: greedy, magnitude and random masks, scored like every other solver.

Per-variable scores: a formulation may attach ``problem.scores`` (one float per
variable, larger = more important; qselect.formulate attaches |w|·‖a‖ for
weights and the unit's contribution norm for neurons). Without it the score is
the *single-bit gain* ``E(0) − E(e_i)``: how much switching bit i on alone
lowers the energy (a cardinality penalty shifts every gain equally, so the
ranking is unchanged).
"""
from __future__ import annotations

import zlib

import numpy as np

from ..errors import QSelectError
from ..problems import Problem
from .base import Solver, SolveResult, int_setting, make_result


def variable_scores(problem: Problem) -> np.ndarray:
    """``problem.scores`` if a formulation attached them, else the single-bit gains."""
    s = getattr(problem, "scores", None)
    if s is not None:
        s = np.asarray(s, dtype=np.float64).reshape(-1)
        if s.shape != (problem.n,) or not np.all(np.isfinite(s)):
            raise QSelectError(f"problem.scores must be {problem.n} finite numbers, got shape {s.shape}")
        return s
    n = problem.n
    states = np.vstack([np.zeros((1, n), np.uint8), np.eye(n, dtype=np.uint8)])
    e = np.atleast_1d(problem.energy(states))
    return e[0] - e[1:]


def _resolve_k(k, problem: Problem) -> int | None:
    k = problem.k if k is None else k
    if k is None:
        return None
    if int_setting("k", k) > problem.n:
        raise QSelectError(f"k={k} is outside [0, {problem.n}] for a {problem.n}-variable problem")
    return int(k)


class MagnitudeSolver(Solver):
    """Keep the k highest-scoring variables (see module doc for the score).

    ``k`` defaults to ``problem.k``; without either, keeps every variable whose
    score is positive. Ties go to the lower index.
    """

    name = "magnitude"

    def __init__(self, k: int | None = None):
        self.k = k

    def _solve(self, problem: Problem) -> SolveResult:
        s = variable_scores(problem)
        k = _resolve_k(self.k, problem)
        bits = np.zeros(problem.n, np.uint8)
        if k is None:
            bits[s > 0] = 1
        else:
            bits[np.argsort(-s, kind="stable")[:k]] = 1
        return make_result(problem, bits, self.name, info={"k": k})


class RandomSolver(Solver):
    """A uniformly random k-subset (k from ``problem.k``), or fair coin flips when k is unknown.

    The draw depends on ``seed`` and ``problem.name``, so the neurons of a layer
    get independent masks and a rerun gets the same ones.
    """

    name = "random"

    def __init__(self, seed: int | None = 0, k: int | None = None):
        self.seed = seed
        self.k = k

    def _solve(self, problem: Problem) -> SolveResult:
        # Mix the problem's name into the seed: the neurons of one layer must not all
        # get the same random pattern, yet the same run must repeat exactly.
        tag = [zlib.crc32(str(problem.name).encode())] if problem.name else []
        rng = np.random.default_rng(None if self.seed is None else [int(self.seed), *tag])
        k = _resolve_k(self.k, problem)
        bits = np.zeros(problem.n, np.uint8)
        if k is None:
            bits = rng.integers(0, 2, problem.n).astype(np.uint8)
        else:
            bits[rng.choice(problem.n, size=k, replace=False)] = 1
        return make_result(problem, bits, self.name, info={"k": k, "seed": self.seed})


class GreedySolver(Solver):
    """Greedy construction and descent on the problem's own energy.

    With k known: start empty and repeatedly add the bit whose addition gives
    the lowest energy until k are set, then (``swaps=True``) apply best
    improving 1-in/1-out swaps until none helps. Without k: steepest descent
    by single bit flips from all zeros. Each step scores all candidates in one
    batched ``energy`` call.
    """

    name = "greedy"

    def __init__(self, k: int | None = None, swaps: bool = True, max_steps: int = 10_000):
        self.k = k
        self.swaps = bool(swaps)
        self.max_steps = int(max_steps)

    def _solve(self, problem: Problem) -> SolveResult:
        n = problem.n
        k = _resolve_k(self.k, problem)
        x = np.zeros(n, np.uint8)
        e = float(problem.energy(x))
        steps = 0
        if k is None:
            while steps < self.max_steps:
                cand = np.repeat(x[None], n, axis=0)
                cand[np.arange(n), np.arange(n)] ^= 1
                ce = np.atleast_1d(problem.energy(cand))
                i = int(np.argmin(ce))
                if ce[i] >= e:
                    break
                x, e, steps = cand[i], float(ce[i]), steps + 1
        else:
            for _ in range(k):
                off = np.nonzero(x == 0)[0]
                cand = np.repeat(x[None], off.size, axis=0)
                cand[np.arange(off.size), off] = 1
                ce = np.atleast_1d(problem.energy(cand))
                i = int(np.argmin(ce))
                x, e = cand[i], float(ce[i])
            while self.swaps and 0 < k < n and steps < self.max_steps:
                on, off = np.nonzero(x == 1)[0], np.nonzero(x == 0)[0]
                ii, jj = np.repeat(on, off.size), np.tile(off, on.size)
                cand = np.repeat(x[None], ii.size, axis=0)
                cand[np.arange(ii.size), ii] = 0
                cand[np.arange(ii.size), jj] = 1
                ce = np.atleast_1d(problem.energy(cand))
                i = int(np.argmin(ce))
                if ce[i] >= e - 1e-12 * max(1.0, abs(e)):
                    break
                x, e, steps = cand[i], float(ce[i]), steps + 1
        return make_result(problem, x, self.name, info={"k": k, "steps": steps})
