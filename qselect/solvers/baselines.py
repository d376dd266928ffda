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
from ..validation import check_nonnegative_int, check_seed
from .base import Solver, SolveResult, int_setting, make_result

#: generic (non-QUBO, non-diagonal) problems score this many candidate states per energy call
_BATCH = 4096


def variable_scores(problem: Problem) -> np.ndarray:
    """``problem.scores`` if a formulation attached them, else the single-bit gains ``E(0) − E(e_i)``.

    Parameters
    ----------
    problem : Problem

    Returns
    -------
    numpy.ndarray
        float64, shape ``(n,)``; larger = keep first.
    """
    if problem.scores is not None:
        return np.asarray(problem.scores, dtype=np.float64)
    n = problem.n
    states = np.vstack([np.zeros((1, n), np.uint8), np.eye(n, dtype=np.uint8)])
    e = np.atleast_1d(problem.energy(states))
    return e[0] - e[1:]


def flip_deltas(problem: Problem, x: np.ndarray) -> np.ndarray:
    """E(x ⊕ e_i) − E(x) for every bit i (``problem.flip_deltas``: closed forms per representation).

    Parameters
    ----------
    problem : Problem
    x : array_like of {0, 1}, shape (n,)
        The current bitstring.

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
    """
    return problem.flip_deltas(np.asarray(x, dtype=np.uint8))


def swap_deltas(problem: Problem, x: np.ndarray, on: np.ndarray, off: np.ndarray) -> np.ndarray:
    """(len(on), len(off)) matrix of E(x with on[a] cleared and off[b] set) − E(x) (``problem.swap_deltas``).

    Parameters
    ----------
    problem : Problem
    x : array_like of {0, 1}, shape (n,)
        The current bitstring.
    on : array_like of int, shape (a,)
        Set bits to clear.
    off : array_like of int, shape (b,)
        Unset bits to set.

    Returns
    -------
    numpy.ndarray of float64, shape (a, b)
    """
    return problem.swap_deltas(np.asarray(x, dtype=np.uint8), on, off)


def swap_descent(problem: Problem, x: np.ndarray, max_steps: int = 10_000) -> tuple[np.ndarray, float, int]:
    """Best-improvement 1-in/1-out swaps on the problem's own energy until none helps.

    Keeps the number of set bits; every step is re-scored exactly, so the
    energy strictly decreases. Returns (bits, energy, steps); ties go to the
    lowest (set bit, unset bit) pair.

    Parameters
    ----------
    problem : Problem
    x : array_like of {0, 1}, shape (n,)
        Starting bitstring (its weight is kept).
    max_steps : int
        Upper bound on the number of swaps.

    Returns
    -------
    bits : numpy.ndarray of uint8, shape (n,)
    energy : float
    steps : int
    """
    x = np.asarray(x, dtype=np.uint8).copy()
    e = float(problem.energy(x))
    steps = 0
    while steps < max_steps:
        on, off = np.flatnonzero(x), np.flatnonzero(x == 0)
        if not on.size or not off.size:
            break
        d = swap_deltas(problem, x, on, off)
        a = int(np.argmin(d))
        y = x.copy()
        y[on[a // off.size]], y[off[a % off.size]] = 0, 1
        ey = float(problem.energy(y))
        if not ey < e - 1e-12 * max(1.0, abs(e)):
            break
        x, e, steps = y, ey, steps + 1
    return x, e, steps


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
        self.k = check_nonnegative_int(k, "k", allow_none=True)

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
        self.seed = check_seed(seed)
        self.k = check_nonnegative_int(k, "k", allow_none=True)

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
    improving 1-in/1-out swaps until none helps (:func:`swap_descent`).
    Without k: steepest descent by single bit flips from all zeros. Each
    construction step scores all candidates in one batched ``energy`` call.
    """

    name = "greedy"

    def __init__(self, k: int | None = None, swaps: bool = True, max_steps: int = 10_000):
        self.k = check_nonnegative_int(k, "k", allow_none=True)
        self.swaps = bool(swaps)
        self.max_steps = check_nonnegative_int(max_steps, "max_steps")

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
            if self.swaps:
                x, e, steps = swap_descent(problem, x, self.max_steps)
        return make_result(problem, x, self.name, info={"k": k, "steps": steps})
