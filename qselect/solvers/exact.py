"""Exact solver: vectorised brute force over all 2^n bitstrings, chunk by chunk.

For a QUBO the energies of one chunk (the low ``chunk_bits`` bits running, the
high bits fixed) are ``E_low + field·x_low + E_high``: ``E_low`` (the low
bits' own cost vector) is built once by doubling, the high bits' field on the
low bits is a linear cost vector (another doubling pass), so memory stays at a
few vectors of 2^chunk_bits entries whatever n is. A ``DiagonalCost`` already
holds its vector and is scanned in place.
"""
from __future__ import annotations

import numpy as np

from ..errors import QSelectError
from ..problems import QUBO, Problem
from ..problems.bits import index_to_bits, popcounts
from ..problems.memory import check_dense
from .base import Solver, SolveResult, int_setting, make_result

#: 2^32 energies take minutes even vectorised; beyond that use a heuristic or decompose.
MAX_EXACT_BITS = 32
#: the package's one answer to "how large may exhaustive search be by default": 2^22 energies
#: (32 MiB as float64) take about a tenth of a second, so whole problems up to this size are
#: solved exactly and larger ones are decomposed into blocks of this size (or given to a heuristic)
EXACT_SEARCH_BITS = 22


def _linear_vector(field: np.ndarray, size_bits: int, out: np.ndarray) -> np.ndarray:
    """out[x] = Σ_i field[i]·x_i for all 2^size_bits x (little-endian), by doubling."""
    out[0] = 0.0
    for i in range(size_bits):
        s = 1 << i
        np.add(out[:s], field[i], out=out[s:2 * s])
    return out


class ExactSolver(Solver):
    """Brute-force minimum of any problem (ties: lowest index, so deterministic).

    ``respect_k`` restricts the search to bitstrings with exactly ``problem.k``
    bits set (the constraint handled natively instead of by a penalty);
    ``num_best`` keeps that many lowest-energy bitstrings as ``samples``.
    """

    name = "exact"

    def __init__(self, chunk_bits: int = 20, respect_k: bool = False, num_best: int = 1,
                 max_bits: int = MAX_EXACT_BITS):
        self.chunk_bits = int_setting("chunk_bits", chunk_bits, 1, 30)
        self.respect_k = bool(respect_k)
        self.num_best = int_setting("num_best", num_best, 1)
        self.max_bits = int_setting("max_bits", max_bits, 0)

    def _solve(self, problem: Problem) -> SolveResult:
        n = problem.n
        if n > self.max_bits:
            raise QSelectError(
                f"exact search over {n} bits (2^{n} bitstrings) is beyond its limit of {self.max_bits} bits; "
                "use a heuristic solver ('sa', 'tabu') or a smaller qubit budget so the problem is decomposed")
        k = None
        if self.respect_k:
            if problem.k is None:
                raise QSelectError("ExactSolver(respect_k=True) needs a problem with a cardinality k; "
                                   "build it with k=... or drop respect_k")
            k = problem.k
        low = min(n, self.chunk_bits)
        check_dense(low, 8, "the exact solver's chunk", copies=4)
        best_idx = np.empty(0, dtype=np.int64)
        best_e = np.empty(0, dtype=np.float64)
        # respect_k: within a chunk only the low bitstrings with k − popcount(high) bits count;
        # gather those (one index list per popcount) instead of masking the whole chunk
        pc_low = popcounts(low) if k is not None else None
        feasible: dict[int, np.ndarray] = {}
        for start, energies in self._chunks(problem, low):
            sel = None
            if k is not None:
                need = k - int(start).bit_count()
                if not 0 <= need <= low:
                    continue
                if need not in feasible:
                    feasible[need] = np.flatnonzero(pc_low == need)
                sel = feasible[need]
                energies = energies[sel]
            idx, e = _lowest(energies, self.num_best)
            if sel is not None:
                idx = sel[idx]
            best_idx = np.concatenate([best_idx, idx + start])
            best_e = np.concatenate([best_e, e])
            keep = np.lexsort((best_idx, best_e))[: self.num_best]
            best_idx, best_e = best_idx[keep], best_e[keep]
        if best_idx.size == 0:
            raise QSelectError(f"no bitstring of {n} bits has exactly k={k} bits set")
        samples = index_to_bits(best_idx, n)
        energies = np.atleast_1d(problem.energy(samples))
        return make_result(problem, samples[0], self.name, samples=samples, energies=energies,
                           counts=np.ones(len(samples), dtype=np.int64),
                           info={"evaluated": int(2**n), "respect_k": self.respect_k})

    def _chunks(self, problem: Problem, low: int):
        n = problem.n
        size = 1 << low
        if not isinstance(problem, QUBO):
            # a DiagonalCost already stores its (read-only) vector: scan it without a copy
            vec = problem.cost_view()
            for start in range(0, vec.size, size):
                yield start, vec[start:start + size]
            return
        if low == n:
            yield 0, problem.cost_vector()
            return
        base = problem.fix({i: 0 for i in range(low, n)}).cost_vector()  # includes offset
        yield 0, base
        sym = problem.quadratic
        sym = sym + sym.T
        cross = sym[:low, low:]  # field of each high bit on each low bit
        high = problem.fix({i: 0 for i in range(low)})  # the high bits alone (low bits 0)
        lin_vec = np.empty(size)
        out = np.empty(size)  # reused: the consumer is done with a chunk before the next one
        for hi in range(1, 1 << (n - low)):
            xh = index_to_bits(hi, n - low)
            _linear_vector(cross @ xh, low, lin_vec)
            np.add(base, lin_vec, out=out)
            out += high.energy(xh) - problem.offset
            yield hi << low, out


def _lowest(energies: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the m smallest entries (ties to the lowest index)."""
    if m == 1:
        i = int(np.argmin(energies))
        return np.array([i]), np.array([energies[i]], dtype=np.float64)
    m = min(m, energies.size)
    part = np.argpartition(energies, m - 1)[:m]
    # include every entry tied with the m-th value so the tie-break is by index
    cut = energies[part].max()
    cand = np.nonzero(energies <= cut)[0]
    order = np.lexsort((cand, energies[cand]))[:m]
    return cand[order], energies[cand[order]].astype(np.float64)
