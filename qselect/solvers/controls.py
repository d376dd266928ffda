"""Controls for sampled answers: what uniform random bitstrings achieve with the same shots.

A sampler that "finds the optimum" of a small problem says little by itself:
for a problem with ``n_opt`` optimal strings among ``N`` candidates, a
uniformly random string is optimal with probability ``n_opt / N`` per shot,
and the best of ``s`` independent shots is optimal with probability

    P_best(s) = 1 − (1 − n_opt / N)^s.

With s = 1024 shots and one optimum this is ≈ 1 for n ≤ 6 bits, 0.98 at
n = 8, 0.63 at n = 10 and 0.22 at n = 12. ``N = 2^n`` for QAOA's X mixer;
the XY mixer keeps exactly k bits set, so its uniform counterpart draws among
the ``C(n, k)`` weight-k strings. The mean-energy approximation ratio
``(max − ⟨E⟩)/(max − min)`` of uniform sampling (over the same candidates) is
the floor QAOA's own ratio must beat.

:func:`uniform_baseline` computes these exactly whenever the problem's cost
vector is at hand (the optimum is then known), and always scores a seeded
uniform draw of the same number of shots with the problem itself (the best
energy a uniform sampler would report). :func:`aggregate_baselines` combines
them over many solves (the blocks of a decomposed problem, the units of a
layer); :func:`control_fields` flattens one result into table columns.

References
----------
E. Farhi, J. Goldstone, S. Gutmann, "A Quantum Approximate Optimization
Algorithm", arXiv:1411.4028 (2014) — approximation ratio of the mean energy.
S. Hadfield et al., "From the Quantum Approximate Optimization Algorithm to a
Quantum Alternating Operator Ansatz", Algorithms 12(2):34 (2019) — the XY
mixer, which confines the search to the C(n, k) weight-k strings.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterable

import numpy as np

from ..ansatz import check_mixer
from ..errors import QSelectError
from ..problems import Problem
from ..problems.bits import bits_to_index, index_to_bits, popcounts
from .base import SolveResult, int_setting

#: without a given cost vector, the exact part is computed from ``problem.cost_vector()`` up to here
EXACT_MAX_QUBITS = 22
#: the uniform draw's own random stream, mixed with the seed so it never replays the solver's
_STREAM = 0x756E69  # "uni"


def best_of_shots(p: float | None, shots: int) -> float | None:
    """Probability that at least one of ``shots`` independent draws succeeds, each with probability ``p``.

    Parameters
    ----------
    p : float or None
        Per-shot success probability in [0, 1]; None (unknown) gives None.
    shots : int
        Number of independent draws (≥ 1).

    Returns
    -------
    float or None
        ``1 − (1 − p)^shots``, computed as ``−expm1(shots · log1p(−p))`` so tiny
        ``p`` keeps its precision.
    """
    if p is None:
        return None
    p = float(p)
    if not 0.0 <= p <= 1.0 + 1e-12:
        raise QSelectError(f"a probability must lie in [0, 1], got {p}")
    if p >= 1.0:
        return 1.0
    return float(-math.expm1(int(shots) * math.log1p(-p)))


def candidate_count(n: int, mixer: str = "x", k: int | None = None) -> int:
    """Number of bitstrings a QAOA mixer can reach: ``2^n`` (X) or ``C(n, k)`` (XY).

    Parameters
    ----------
    n : int
    mixer : {"x", "xy"}
    k : int or None
        Hamming weight (XY mixer).

    Returns
    -------
    int
    """
    check_mixer(mixer, k, need_k=True)
    return math.comb(int(n), int(k)) if mixer == "xy" else 2 ** int(n)


#: draws up to this many bytes are kept per seed: a layer's block descents reuse a few dozen block seeds
_CACHED_DRAW_BYTES = 1 << 16


def _uniform_indices(seed, shots: int, n: int, k: int | None) -> np.ndarray:
    """The indices (shots,) int64 of a seeded uniform draw of n-bit strings (weight k for the XY mixer).

    The draw of ``default_rng([seed, _STREAM])``, the same for every call with these arguments; small draws
    of an integer seed come from a cache (read-only arrays: creating a seeded generator costs more than the draw).
    """
    seed = int(seed) if seed is not None else 0
    if shots * 8 <= _CACHED_DRAW_BYTES:
        return _cached_indices(seed, shots, n, k)
    return _draw_indices(seed, shots, n, k)


def _draw_indices(seed: int, shots: int, n: int, k: int | None) -> np.ndarray:
    rng = np.random.default_rng([seed, _STREAM])
    return rng.integers(0, 1 << n, size=shots) if k is None else bits_to_index(_uniform_bits(rng, shots, n, k))


@lru_cache(maxsize=512)
def _cached_indices(seed: int, shots: int, n: int, k: int | None) -> np.ndarray:
    out = _draw_indices(seed, shots, n, k)
    out.setflags(write=False)
    return out


def _uniform_bits(rng: np.random.Generator, shots: int, n: int, k: int | None) -> np.ndarray:
    if k is None:
        if n <= 62:  # one uniform index per shot is a uniform string
            return index_to_bits(rng.integers(0, 1 << n, size=shots), n)
        return rng.integers(0, 2, size=(shots, n), dtype=np.uint8)
    keys = rng.random((shots, n))  # a uniform k-subset per row: the k smallest of n iid keys
    bits = np.zeros((shots, n), dtype=np.uint8)
    if k:
        idx = np.argpartition(keys, k - 1, axis=1)[:, :k]
        np.put_along_axis(bits, idx, 1, axis=1)
    return bits


def uniform_baseline(problem: Problem, shots: int, *, seed: int = 0, mixer: str = "x", k: int | None = None,
                     costs: np.ndarray | None = None, scale: float = 1.0, offset: float = 0.0,
                     max_exact_qubits: int = EXACT_MAX_QUBITS, energies: np.ndarray | None = None) -> dict:
    """What ``shots`` uniform random bitstrings achieve on ``problem``.

    Parameters
    ----------
    problem : Problem
        The problem the sampler solved (energies include its offset).
    shots : int
        The sampler's shot budget (≥ 1).
    seed : int
        Seed of the uniform draw (its stream is independent of a solver using the same seed).
    mixer : {"x", "xy"}
        ``"x"``: candidates are all ``2^n`` strings; ``"xy"``: the ``C(n, k)`` strings of weight k.
    k : int or None
        Weight of the XY mixer's strings (default ``problem.k``); ignored for ``"x"``.
    costs : ndarray of shape (2^n,), optional
        The cost vector already at hand, in units ``(E − offset) / scale`` (QAOA's normalised
        costs); without it the exact part uses ``problem.cost_vector()`` up to ``max_exact_qubits``.
    scale, offset : float
        Convert ``costs`` back to problem energies: ``E = costs · scale + offset``.
    max_exact_qubits : int
        Largest n whose cost vector is built here when ``costs`` is not given.
    energies : ndarray of shape (2^n,), optional
        The problem's own energies of every string (``problem.cost_vector()``, problem units,
        little-endian index): the draw is scored by looking them up instead of by
        ``problem.energy``.

    Returns
    -------
    dict
        ``shots``, ``seed``, ``mixer``, ``candidates`` (N), ``exact`` (whether the optimum is
        known); ``best_energy`` and ``sample_mean_energy`` of the seeded uniform draw (problem
        units); and, when exact (else None): ``optimum_energy``, ``optimal_strings`` (n_opt),
        ``probability_optimum`` (n_opt / N per shot), ``probability_best_of_shots``
        (1 − (1 − n_opt/N)^shots), ``mean_energy`` (uniform expectation over the N candidates),
        ``approximation_ratio`` ((max − mean)/(max − min) over the candidates, 1 when flat) and
        ``found_optimum`` (whether the seeded draw contains an optimum).

    Raises
    ------
    QSelectError
        Bad shots, mixer, k, or a cost vector of the wrong length.

    References
    ----------
    Farhi, Goldstone & Gutmann, arXiv:1411.4028 (2014); Hadfield et al., Algorithms 12(2):34 (2019).
    """
    if not isinstance(problem, Problem):
        raise QSelectError(f"uniform_baseline needs a qselect problem, got {type(problem).__name__}")
    shots = int_setting("shots", shots, 1)
    n = problem.n
    if mixer == "xy":
        k = problem.k if k is None else k
        check_mixer(mixer, k, need_k=True)
        k = problem._check_k(k)
    else:
        check_mixer(mixer)
        k = None
    N = candidate_count(n, mixer, k)
    out = {"shots": shots, "seed": seed, "mixer": mixer, "candidates": N, "exact": False,
           "optimum_energy": None, "optimal_strings": None, "probability_optimum": None,
           "probability_best_of_shots": None, "mean_energy": None, "approximation_ratio": None,
           "found_optimum": None}
    if costs is None and n <= int(max_exact_qubits):
        costs, scale, offset = problem.cost_vector(), 1.0, 0.0
    if costs is not None:
        costs = np.asarray(costs).reshape(-1)
        if costs.size != 2**n:
            raise QSelectError(f"costs must hold 2^{n} = {2**n} entries, got {costs.size}")
        out.update(_exact_parts(costs[None], n, N, shots, k, np.array([scale]), np.array([offset]))[0])
    if energies is not None:
        energies = np.asarray(energies).reshape(-1)
        if energies.size != 2**n:
            raise QSelectError(f"energies must hold 2^{n} = {2**n} entries, got {energies.size}")
    out.update(_draw(seed, shots, n, k, problem if energies is None else energies, scale, out["optimum_energy"]))
    return out


def _exact_parts(costs: np.ndarray, n: int, N: int, shots: int, k: int | None, scales, offsets,
                 optimal: np.ndarray | None = None) -> list[dict]:
    """The exact fields of :func:`uniform_baseline` for the rows of a (B, 2^n) cost array, row by row identical.

    ``optimal`` (B, 2^n) bool may pass the optimum mask of ``costs`` already at hand (off the XY
    subspace False).
    """
    # rows contiguous (fancy indexing along axis 1 lays the result out by column), so each row's mean is summed
    # as a lone row's is: the same answer in a batch of any size
    feas = np.ascontiguousarray(costs if k is None else costs[:, popcounts(n) == k])
    lo, hi = feas.min(axis=1), feas.max(axis=1)
    if optimal is None:  # feas ≥ lo, so feas − lo needs no abs
        optimal = (feas - lo[:, None]) <= 1e-9 * np.maximum(1.0, np.abs(lo))[:, None]
    n_opt = np.count_nonzero(optimal, axis=1).tolist()
    mean = np.mean(feas, axis=1, dtype=np.float64)
    scales, offsets = np.asarray(scales, dtype=np.float64), np.asarray(offsets, dtype=np.float64)
    opt_e = (lo.astype(np.float64) * scales + offsets).tolist()
    mean_e = (mean * scales + offsets).tolist()
    spread = hi - lo
    ratio = np.where(hi > lo, (hi - mean) / np.where(hi > lo, spread, 1), 1.0).tolist()
    out = []
    for i in range(costs.shape[0]):
        p = n_opt[i] / N
        out.append(dict(exact=True, optimum_energy=opt_e[i], optimal_strings=n_opt[i], probability_optimum=p,
                        probability_best_of_shots=best_of_shots(p, shots), mean_energy=mean_e[i],
                        approximation_ratio=ratio[i]))
    return out


def _draw(seed, shots: int, n: int, k: int | None, scorer, scale: float, optimum: float | None) -> dict:
    """The seeded uniform draw, scored by a problem (``.energy``) or by looking up a (2^n,) energy table."""
    if isinstance(scorer, np.ndarray):
        energies = scorer[_uniform_indices(seed, shots, n, k)].astype(np.float64)
    else:
        rng = np.random.default_rng([int(seed) if seed is not None else 0, _STREAM])
        energies = np.atleast_1d(scorer.energy(_uniform_bits(rng, shots, n, k))).astype(np.float64)
    out = {"best_energy": float(energies.min()), "sample_mean_energy": float(energies.mean())}
    if optimum is not None:
        out["found_optimum"] = _found(out["best_energy"], optimum, scale)
    return out


def _found(best: float, optimum: float, scale: float) -> bool:
    """Whether a draw's best energy reaches the optimum (to 1e-9 of the problem's scale)."""
    return bool(best <= optimum + 1e-9 * max(1.0, abs(optimum), abs(scale)))


def uniform_baselines(n: int, shots: int, seeds, costs: np.ndarray, scales, offsets, energies: np.ndarray, *,
                      mixer: str = "x", k: int | None = None, optimal: np.ndarray | None = None) -> list[dict]:
    """:func:`uniform_baseline` for many problems of one size whose cost vectors are at hand, at once.

    Parameters
    ----------
    n : int
        Bits per problem.
    shots : int
        Shots per problem (≥ 1).
    seeds : sequence of int
        One seed per problem.
    costs : ndarray, shape (B, 2^n)
        Normalised costs, ``E = costs · scale + offset``.
    scales, offsets : array_like, shape (B,)
    energies : ndarray, shape (B, 2^n)
        The problems' own energies of every string (``problem.cost_vector()``), which score the draws.
    mixer : {"x", "xy"}
    k : int or None
        Weight of the XY mixer's strings.
    optimal : ndarray of bool, shape (B, 2^n), optional
        Which strings are optimal in ``costs`` (within 1e-9 of each row's minimum; False off the
        XY subspace), when the caller has it already.

    Returns
    -------
    list of dict
        Row by row exactly what :func:`uniform_baseline` returns for that problem given its
        ``costs``, ``scale``, ``offset`` and ``energies``.
    """
    shots = int_setting("shots", shots, 1)
    k = None if mixer != "xy" else k
    check_mixer(mixer, k, need_k=True)
    N = candidate_count(n, mixer, k)
    costs = np.asarray(costs)
    B = costs.shape[0]
    parts = _exact_parts(costs, n, N, shots, k, scales, offsets, optimal)
    index = np.empty((B, shots), dtype=np.int64)
    for i in range(B):  # each problem's own seeded stream, as uniform_baseline draws it
        index[i] = _uniform_indices(seeds[i], shots, n, k)
    drawn = np.take_along_axis(np.asarray(energies), index, axis=1).astype(np.float64)
    best, mean = drawn.min(axis=1).tolist(), drawn.mean(axis=1).tolist()
    out = []
    for i, part in enumerate(parts):
        row = {"shots": shots, "seed": seeds[i], "mixer": mixer, "candidates": N, **part,
               "best_energy": best[i], "sample_mean_energy": mean[i]}
        row["found_optimum"] = _found(best[i], part["optimum_energy"], scales[i])
        out.append(row)
    return out


def aggregate_baselines(results: Iterable[SolveResult]) -> dict | None:
    """The uniform baselines of many solves (blocks of one problem, units of a layer), combined.

    Parameters
    ----------
    results : iterable of SolveResult
        Results whose ``info["uniform_baseline"]`` is set (others are skipped); each may itself
        be an aggregate (``solves`` > 1), which is weighted by its number of solves.

    Returns
    -------
    dict or None
        None when no result carries a baseline. Otherwise ``solves``, ``shots`` (per solve; None
        when they differ), ``exact_solves`` (solves whose optimum was known), means over solves of
        the uniform ``probability_optimum``, ``probability_best_of_shots`` and
        ``approximation_ratio`` and of the solver's own ``solver_probability_optimum``,
        ``solver_probability_best_of_shots`` and ``solver_approximation_ratio`` (over the solves
        where each is known), ``best_energy_gap`` (mean of uniform best − solver answer: > 0 where
        the solver beat uniform) and the counts ``solver_better``, ``ties``, ``uniform_better``.
    """
    rows = []
    for r in results:
        b = r.info.get("uniform_baseline") if r is not None else None
        if not b:
            continue
        if "solves" in b:  # already an aggregate: its means stand for b["solves"] solves
            rows.append((b, int(b["solves"]), True))
        else:
            info = r.info
            p = info.get("probability_optimum")
            rows.append(({"shots": b["shots"], "exact_solves": int(bool(b["exact"])),
                          "probability_optimum": b["probability_optimum"],
                          "probability_best_of_shots": b["probability_best_of_shots"],
                          "approximation_ratio": b["approximation_ratio"],
                          "solver_probability_optimum": p,
                          "solver_probability_best_of_shots": best_of_shots(p, b["shots"]),
                          "solver_approximation_ratio": info.get("approximation_ratio"),
                          "best_energy_gap": b["best_energy"] - float(r.energy),
                          **_verdict(b["best_energy"], float(r.energy))}, 1, False))
    if not rows:
        return None

    def wmean(key):
        pairs = [(d[key], w) for d, w, _ in rows if d.get(key) is not None]
        tot = sum(w for _, w in pairs)
        return float(sum(v * w for v, w in pairs) / tot) if tot else None

    shots = {d["shots"] for d, _, _ in rows}
    out = {"solves": sum(w for _, w, _ in rows), "shots": shots.pop() if len(shots) == 1 else None,
           "exact_solves": sum(int(d.get("exact_solves", 0)) for d, _, _ in rows)}
    for key in ("probability_optimum", "probability_best_of_shots", "approximation_ratio",
                "solver_probability_optimum", "solver_probability_best_of_shots", "solver_approximation_ratio",
                "best_energy_gap"):
        out[key] = wmean(key)
    for key in ("solver_better", "ties", "uniform_better"):
        out[key] = sum(int(d.get(key, 0)) for d, _, _ in rows)
    return out


def _verdict(uniform_best: float, solver: float) -> dict:
    tol = 1e-9 * max(1.0, abs(uniform_best), abs(solver))
    return {"solver_better": int(solver < uniform_best - tol), "ties": int(abs(solver - uniform_best) <= tol),
            "uniform_better": int(uniform_best < solver - tol)}


def control_fields(result: SolveResult) -> dict:
    """Flat table columns comparing one result with its uniform baseline ({} when it has none).

    Parameters
    ----------
    result : SolveResult
        A sampler's result (``info["uniform_baseline"]`` from :func:`uniform_baseline`, or an
        aggregate from :func:`aggregate_baselines` for decomposed problems).

    Returns
    -------
    dict
        ``p_opt`` / ``p_opt_uniform`` (per-shot probability of the optimum: the solver's, mean
        over blocks for an aggregate, and uniform's n_opt/N), ``p_best_of_shots`` /
        ``p_best_of_shots_uniform`` (chance that the best of the shots is optimal),
        ``approx_ratio`` / ``approx_ratio_uniform`` (mean-energy approximation ratios),
        ``uniform_best_gap`` (uniform's best energy − the solver's answer; > 0: the solver did
        better) and ``control_solves`` (how many solves these cover).
    """
    b = result.info.get("uniform_baseline")
    if not b:
        return {}
    if "solves" not in b:
        b = aggregate_baselines([result])
    return {"p_opt": b["solver_probability_optimum"], "p_opt_uniform": b["probability_optimum"],
            "p_best_of_shots": b["solver_probability_best_of_shots"],
            "p_best_of_shots_uniform": b["probability_best_of_shots"],
            "approx_ratio": b["solver_approximation_ratio"], "approx_ratio_uniform": b["approximation_ratio"],
            "uniform_best_gap": b["best_energy_gap"], "control_solves": b["solves"]}


__all__ = ["EXACT_MAX_QUBITS", "aggregate_baselines", "best_of_shots", "candidate_count", "control_fields",
           "uniform_baseline", "uniform_baselines"]
