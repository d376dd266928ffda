"""QAOA's answer from its final distribution: seeded shots plus the most probable strings.

The final state of QAOA (Farhi, Goldstone and Gutmann, arXiv:1411.4028, 2014)
is read the way hardware would read it — ``shots`` seeded samples — plus its
``top`` most probable strings, and every candidate is scored with the
problem's own energies (looked up in ``problem.cost_vector()`` where it is
tabulated, else ``problem.energy``). The bookkeeping that goes with it
(⟨C⟩, the optimum's probability, the mean-energy approximation ratio) and the
uniform-sampling control with the same shots are computed here too.

:func:`read_answers` takes a batch of problems of one size as ``(B, 2^n)``
arrays and answers every row exactly as it answers a batch of one, so
``QAOASolver.solve`` (one problem) and ``QAOASolver.solve_batch`` (a layer's
blocks together) give the same answers for the same final distributions.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ...errors import QSelectError
from ...problems.bits import BIT_TABLE_BITS, bit_rows, index_to_bits, popcounts
from ...problems.memory import check_bytes
from ..base import summarise_samples
from ..controls import _CACHED_DRAW_BYTES, uniform_baseline, uniform_baselines
from .kernels import cumulative_rows, offered_rows, order_rows

#: a string is offered among the ``top`` ones only above this probability (never one the circuit cannot produce)
MIN_TOP_PROBABILITY = 1e-9

#: bytes read_answers holds per shot and problem at its peak (float64 draws and their sort, the control's
#: int64 indices and float64 energies, the candidates' index, count, energy and bit row)
_BYTES_PER_SHOT = 64


@lru_cache(maxsize=8)
def _big_endian_keys(n: int) -> np.ndarray:
    """Index → the integer of its bits read big-endian (the order ``summarise_samples`` sorts by)."""
    key = np.zeros(1 << n, dtype=np.int64)
    idx = np.arange(1 << n, dtype=np.int64)
    for i in range(n):
        key |= ((idx >> i) & 1) << (n - 1 - i)
    key.setflags(write=False)
    return key


def _sorted_uniforms(seed, shots: int) -> np.ndarray:
    """``np.sort(default_rng(seed).random(shots))``; small draws of an integer seed cached.

    A layer reuses its block seeds. Sorted, because a string's count does not depend on the draws'
    order and sorted draws merge with the cdf (:func:`~qselect.solvers.qaoa.kernels.offered_rows`).
    Only integer seeds are cached; None (unseeded) draws afresh every time.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or shots * 8 > _CACHED_DRAW_BYTES:
        return np.sort(np.random.default_rng(seed).random(shots))  # what default_rng makes of anything else
    return _cached_sorted_uniforms(int(seed), shots)


@lru_cache(maxsize=512)
def _cached_sorted_uniforms(seed: int, shots: int) -> np.ndarray:
    out = np.sort(np.random.default_rng(seed).random(shots))
    out.setflags(write=False)
    return out


def read_answers(problems, probs, costs, energies, scales, consts, seeds, *, shots: int, top: int,
                 mixer: str = "x", k: int | None = None) -> list[dict]:
    """Samples, scores and bookkeeping of B problems of one size from their final distributions.

    Parameters
    ----------
    problems : sequence of Problem
        The problems (scored with ``problem.energy`` where ``energies`` is None).
    probs : ndarray, shape (B, 2^n)
        Final probabilities (clipped at 0 and renormalised here, in float64).
    costs : ndarray, shape (B, 2^n)
        Normalised costs, ``E = costs · scale + const``.
    energies : ndarray, shape (B, 2^n), or None
        The problems' tabulated energies (``problem.cost_vector()``).
    scales, consts : array_like, shape (B,)
    seeds : sequence of int
        Seed of each problem's shots (and of its uniform control).
    shots, top : int
        Samples per problem, and how many most probable strings join them.
    mixer : {"x", "xy"}
    k : int or None
        The XY mixer's Hamming weight.

    Returns
    -------
    list of dict
        Per problem: ``samples`` (u, n) uint8 lowest energy first (ties: most counts, then
        big-endian value), ``energies`` (u,), ``counts`` (u,) (0 for a string offered only as
        one of the ``top``), ``probabilities`` (2^n,) float64, ``expectation`` (⟨C⟩ in problem
        units) and ``info`` (``optimum_energy``, ``probability_optimum``,
        ``approximation_ratio``, ``uniform_baseline``).

    Raises
    ------
    QSelectError
        A row of ``probs`` that is NaN, infinite or all zero.
    ProblemTooLargeError
        When the shots of the batch would not fit in memory (checked before they are drawn).
    """
    P = np.clip(np.asarray(probs, dtype=np.float64), 0, None)
    total = P.sum(axis=1, keepdims=True)
    bad = np.flatnonzero(~(np.isfinite(total[:, 0]) & (total[:, 0] > 0)))
    if bad.size:
        raise QSelectError(f"the final QAOA distribution of problem {int(bad[0])} is not a probability distribution "
                           "(NaN, infinite or all zero): check that the angles and the costs are finite")
    P /= total
    B, N = P.shape
    n = N.bit_length() - 1
    cdf = cumulative_rows(P)
    # per shot and row: the draw and its sorted copy, the control's index and energy, candidate bookkeeping
    check_bytes(B * int(shots) * _BYTES_PER_SHOT, f"reading {shots} shots of {B} problem(s)",
                "ask for fewer shots (QAOASolver(shots=...))")
    U = np.empty((B, shots))
    for i in range(B):  # exactly Generator.choice(N, shots, p=P[i]): inverse-CDF of seeded uniforms (sorted)
        U[i] = _sorted_uniforms(seeds[i], shots)
    flagged = np.zeros((B, N), dtype=bool)
    t = min(int(top), N)
    if t > 0:
        best = np.argpartition(P, -t, axis=1)[:, -t:]
        rows = np.repeat(np.arange(B), t)
        flagged[rows, best.ravel()] = P[rows, best.ravel()] > MIN_TOP_PROBABILITY
    # every row's drawn and flagged strings with their counts, flat (counting does not depend on the draws' order)
    cand, hits, offsets = offered_rows(cdf, U, flagged, presorted=True)
    if k is None:
        feas = costs
        lo, hi = feas.min(axis=1), feas.max(axis=1)  # finite costs: what nanmin/nanmax give
    else:
        feas = np.where(popcounts(n) == k, costs, np.nan)
        lo, hi = np.nanmin(feas, axis=1), np.nanmax(feas, axis=1)
    # feas ≥ lo, so feas − lo needs no abs (NaN, off the XY subspace, compares False)
    optimal = (feas - lo[:, None]) <= 1e-9 * np.maximum(1.0, np.abs(lo))[:, None]
    # summed per contiguous row (einsum sums a lone row of ≥ 2^14 entries in another order than a row of a batch)
    mean = (P * costs).sum(axis=1)
    if energies is not None:
        controls = uniform_baselines(n, shots, seeds, costs, scales, consts, energies, mixer=mixer, k=k,
                                     optimal=optimal)
    else:
        controls = [uniform_baseline(prob, shots, seed=sd, mixer=mixer, k=k, costs=c, scale=sc, offset=co)
                    for prob, sd, c, sc, co in zip(problems, seeds, costs, scales, consts)]
    scales, consts = np.asarray(scales, dtype=np.float64), np.asarray(consts, dtype=np.float64)
    optimum = (lo * scales + consts).tolist()
    # (max − ⟨C⟩)/(max − min): 1 at the optimum, 0 at the worst; for MaxCut = ⟨cut⟩/max cut
    ratio = np.where(hi > lo, (hi - mean) / np.where(hi > lo, hi - lo, 1), 1.0).tolist()
    expectation = (mean * scales + consts).tolist()
    bounds = offsets.tolist()
    if energies is not None:  # rank every row's candidates at once: lowest energy, most counts, big-endian value
        flat_e = energies[np.repeat(np.arange(B), np.diff(offsets)), cand]
        order = order_rows(flat_e, hits, _big_endian_keys(n)[cand], offsets)
        cand, hits, flat_e = cand[order], hits[order], flat_e[order]
        flat_samples = bit_rows(n)[cand] if n <= BIT_TABLE_BITS else index_to_bits(cand, n)
    # each row's probability of its optimal strings: most rows have one, read directly
    p_opt = P[np.arange(B), optimal.argmax(axis=1)] * optimal.any(axis=1)
    for i in np.flatnonzero(np.count_nonzero(optimal, axis=1) > 1).tolist():
        p_opt[i] = P[i][optimal[i]].sum()
    p_opt = p_opt.tolist()
    out = []
    for i in range(B):
        a, b = bounds[i], bounds[i + 1]
        if energies is not None:
            samples, e, cnt = flat_samples[a:b].copy(), flat_e[a:b].copy(), hits[a:b].copy()
        else:
            samples, e, cnt = summarise_samples(problems[i], index_to_bits(cand[a:b], n), hits[a:b], distinct=True)
        info = {"optimum_energy": optimum[i], "probability_optimum": p_opt[i],
                "approximation_ratio": ratio[i], "uniform_baseline": controls[i]}
        out.append({"samples": samples, "energies": e, "counts": cnt, "probabilities": P[i],
                    "expectation": expectation[i], "info": info})
    return out


__all__ = ["MIN_TOP_PROBABILITY", "read_answers"]
