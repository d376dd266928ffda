"""Swap descent on whole rows: a classical local solver that needs no dense matrix.

Start from the magnitude mask (the k highest-scoring bits), then take
improving 1-in/1-out swaps (single flips when no k is set) until none is
left. On a :class:`~qselect.problems.gram.GramQUBO` the field f = G(w∘x) is
kept up to date incrementally (one row of G per move), each step scores a
short list of candidates exactly (the ``candidates`` most promising set and
unset bits by their flip change), and when the short list has no improving
swap the full swap matrix is checked once; so the answer is a true 1-swap
local minimum at O(n) work per move. Other problems go through
:func:`qselect.solvers.baselines.swap_descent`.
"""
from __future__ import annotations

import multiprocessing as mp

import numpy as np

from ..problems import QUBO, Problem
from ..problems.gram import GramQUBO
from .base import Solver, SolveResult, int_setting, make_result, problem_list
from .baselines import MagnitudeSolver, flip_deltas, swap_descent

#: (solver, problems) seen by forked workers of ``solve_many``
_SHARED = None
#: recompute the field from scratch after this many incremental updates (round-off)
_REFRESH = 256
#: largest short list (per side) scored before the full check over every swap
_WIDEST = 512


class SwapDescentSolver(Solver):
    """Magnitude start + best-improvement swaps (or flips), exact on the problem's own energy.

    Parameters
    ----------
    candidates : int
        Set and unset bits scored exactly per step (the most promising by
        their single-flip change); a full check confirms a local minimum.
    max_steps : int
        Moves at most.

    Notes
    -----
    Deterministic (no seed needed). ``info``: ``steps``, ``full_checks``.
    """

    name = "swap"

    def __init__(self, candidates: int = 8, max_steps: int = 100_000, workers: int = 1):
        self.candidates = int_setting("candidates", candidates, 1)
        self.max_steps = int_setting("max_steps", max_steps, 0)
        self.workers = int_setting("workers", workers, 1)

    def solve_many(self, problems, executor=None, progress=False):
        """Solve independent problems; with ``workers`` > 1 and no executor, in forked processes.

        Forked workers inherit the problems (and the one Gram matrix they share)
        instead of receiving pickled copies, so a layer's neurons run on every
        core without copying G per problem. Same results as one process.
        """
        problems = problem_list(self, problems)
        if executor is not None or self.workers == 1 or len(problems) < 2 or "fork" not in mp.get_all_start_methods():
            return super().solve_many(problems, executor=executor, progress=progress)
        global _SHARED
        _SHARED = (self, problems)
        try:
            with mp.get_context("fork").Pool(self.workers) as pool:
                chunk = max(1, len(problems) // (8 * self.workers))
                out = pool.map(_solve_shared, range(len(problems)), chunksize=chunk)
        finally:
            _SHARED = None
        results = []
        for p, (bits, info, wall) in zip(problems, out):
            r = make_result(p, bits, self.name, info=info)
            r.wall_time = wall
            results.append(r)
        return results

    def _solve(self, problem: Problem) -> SolveResult:
        x = MagnitudeSolver().solve(problem).bits.copy()
        if isinstance(problem, QUBO) and problem.n > 1:
            # a dense QUBO is a GramQUBO with w = 1 and G = the symmetric couplings / 2 (zero diagonal)
            quad = problem.quadratic
            view = GramQUBO((quad + quad.T) / 2.0, np.ones(problem.n), problem.linear, problem.offset,
                            k=problem.k, name=problem.name)
            r = self._gram(view, x)
            return make_result(problem, r.bits, self.name, info=r.info)
        if not isinstance(problem, GramQUBO):
            if problem.k is not None:
                x, _, steps = swap_descent(problem, x, self.max_steps)
            else:
                steps = 0
                while steps < self.max_steps:
                    d = flip_deltas(problem, x)
                    i = int(np.argmin(d))
                    if not d[i] < -1e-12 * max(1.0, abs(float(problem.energy(x)))):
                        break
                    x[i] ^= 1
                    steps += 1
            return make_result(problem, x, self.name, info={"steps": steps, "moves": steps, "full_checks": 0})
        return self._gram(problem, x)

    def _gram(self, p: GramQUBO, x: np.ndarray) -> SolveResult:
        w, lam, gd = p.w, p.penalty, p.gram_diagonal()
        lin = p.linear
        xf = x.astype(np.float64)
        f = p.field(xf)
        e = float(p.energy(x))
        steps, moves, checks, since = 0, 0, 0, 0
        s_cand = self.candidates
        amp = np.abs(w) * np.sqrt(np.clip(gd, 0, None))  # |w_i|·√G_ii

        def move(i: int, sign: float):
            nonlocal f
            f = f + sign * w[i] * p.coupling_row(i)

        def flip(i: int, c: float) -> float:  # exact single-flip change of bit i from the current f
            s = 1.0 - 2.0 * xf[i]
            return s * (2.0 * w[i] * f[i] + lin[i] + 2.0 * lam * c) + w[i] * w[i] * gd[i] + lam

        c = float(xf.sum()) - p.target
        while moves < self.max_steps:
            tol = 1e-12 * max(1.0, abs(e))
            d = p.flip_deltas(xf, field=f)
            if p.k is None:
                i = int(np.argmin(d))
                if not d[i] < -tol:
                    break
                sign = 1.0 - 2.0 * xf[i]
                xf[i] += sign
                c += sign
                move(i, sign)
                e += float(d[i])
                moves += 1
            else:
                on, off = np.flatnonzero(xf > 0.5), np.flatnonzero(xf < 0.5)
                if not on.size or not off.size:
                    break
                size, pairs = s_cand, None
                while True:  # rows of the most promising bits, more of them while stuck
                    ca = on if on.size <= size else on[np.argpartition(d[on], size - 1)[:size]]
                    cb = off if off.size <= size else off[np.argpartition(d[off], size - 1)[:size]]
                    v1, i1, j1 = _scan(p, d, ca, off, lam)  # each promising set bit, its best partner
                    v2, j2, i2 = _scan(p, d, cb, on, lam)  # each promising unset bit, its best partner
                    vals, ii, jj = (np.concatenate(a) for a in ((v1, v2), (i1, i2), (j1, j2)))
                    if vals.min() < -tol:
                        pairs = np.argsort(vals, kind="stable")
                        pairs = [(int(ii[a]), int(jj[a])) for a in pairs if vals[a] < -tol]
                        break
                    if ca.size == on.size and cb.size == off.size:
                        break
                    if size < _WIDEST:
                        size *= 8
                        continue
                    checks += 1
                    best, i, j = _best_swap(p, d, on, off, amp, lam, tol)
                    pairs = [(i, j)] if best < -tol else None
                    break
                if not pairs:
                    break
                used: set[int] = set()
                for i, j in pairs:  # disjoint swaps, each re-scored exactly after the ones taken
                    if i in used or j in used or moves >= self.max_steps:
                        continue
                    delta = flip(i, c) + flip(j, c) - 2.0 * w[i] * w[j] * p.gram_block([i], [j])[0, 0] - 2.0 * lam
                    if not delta < -tol:
                        continue
                    xf[i], xf[j] = 0.0, 1.0
                    move(i, -1.0)
                    move(j, 1.0)
                    e += delta
                    used.update((i, j))
                    moves += 1
            steps += 1
            since += 1
            if since >= _REFRESH:
                f, e, since = p.field(xf), float(p.energy(xf.astype(np.uint8))), 0
        return make_result(p, xf.astype(np.uint8), self.name,
                           info={"steps": steps, "moves": moves, "full_checks": checks})


def _best_swap(p: GramQUBO, d: np.ndarray, on: np.ndarray, off: np.ndarray, amp: np.ndarray,
               lam: float, tol: float) -> tuple[float, int, int]:
    """The best swap over all (on, off) pairs, reading G only where one could improve.

    G is positive semi-definite, so |G_ij| ≤ √(G_ii G_jj) (Cauchy–Schwarz) and a
    swap's change is at least ``d_i + d_j − 2 a_i a_j − 2λ`` with a = |w|·√diag(G):
    pairs whose bound is ≥ −tol cannot improve and are never looked up.
    """
    best, bi, bj = np.inf, -1, -1
    rows = max(1, (1 << 22) // max(off.size, 1))  # bound matrix in slabs of ~4M entries
    for s in range(0, on.size, rows):
        o = on[s:s + rows]
        lb = d[o][:, None] + d[off][None, :] - 2.0 * np.outer(amp[o], amp[off]) - 2.0 * lam
        ii, jj = np.nonzero(lb < -tol)
        if not ii.size:
            continue
        gi, gj = o[ii], off[jj]
        idx = p.index
        vals = d[gi] + d[gj] - 2.0 * p.w[gi] * p.w[gj] * p._G[idx[gi], idx[gj]] - 2.0 * lam
        a = int(np.argmin(vals))
        if vals[a] < best:
            best, bi, bj = float(vals[a]), int(gi[a]), int(gj[a])
    return best, bi, bj


def _scan(p: GramQUBO, d: np.ndarray, rows: np.ndarray, cols: np.ndarray, lam: float):
    """Each of ``rows`` with its best partner in ``cols`` (reads whole rows of G: contiguous).

    Returns (values, rows, partners) of the swap changes.
    """
    R = p.gram_rows(rows)[:, cols]
    S = d[rows][:, None] + d[cols][None, :] - 2.0 * (p.w[rows][:, None] * R) * p.w[cols][None, :] - 2.0 * lam
    b = np.argmin(S, axis=1)
    return S[np.arange(rows.size), b], rows, cols[b]


def _solve_shared(i: int):
    solver, problems = _SHARED
    r = solver.solve(problems[i])
    return r.bits, r.info, r.wall_time
