"""Problems larger than the qubit budget: blocks of ≤ q bits, block coordinate descent.

Start from the magnitude mask (the k highest-scoring bits); each sweep visits
the blocks in turn, fixes every other bit at its current value (``problem.fix``
folds their couplings into the block's linear term and offset, so the block's
energy *is* the full energy) and lets the inner solver pick the block's bits.
A block's answer is taken only if it lowers the energy, so the trace never
goes up; the run stops after a sweep that changes nothing or at
``max_sweeps``. Block boundaries shift every sweep (a seeded permutation after
the first) so bits in different blocks eventually meet.
"""
from __future__ import annotations

import numpy as np

from ..errors import QSelectError
from ..problems import Problem
from ..solvers.base import Solver, SolveResult, make_result
from ..solvers.baselines import MagnitudeSolver


def blocks_of(order: np.ndarray, qubits: int) -> list[np.ndarray]:
    """Split ``order`` into ceil(n/q) nearly equal consecutive blocks (each ≤ q)."""
    nb = -(-order.size // qubits)
    return [b for b in np.array_split(order, nb)]


class BlockSolver(Solver):
    """Block coordinate descent with ``inner`` on blocks of at most ``qubits`` bits.

    Problems that fit the budget go straight to ``inner``. ``info`` records
    ``sweeps``, ``energy_trace`` (after the start and after every sweep),
    ``blocks`` per sweep, ``inner`` and ``converged``.
    """

    name = "block"

    def __init__(self, inner: Solver, qubits: int = 12, max_sweeps: int = 10, seed: int = 0):
        if int(qubits) < 1:
            raise QSelectError(f"qubit budget must be ≥ 1, got {qubits}")
        if int(max_sweeps) < 1:
            raise QSelectError(f"max_sweeps must be ≥ 1, got {max_sweeps}")
        if not isinstance(inner, Solver):
            raise QSelectError(f"BlockSolver needs a Solver as inner solver, got {type(inner).__name__}")
        self.inner = inner
        self.qubits = int(qubits)
        self.max_sweeps = int(max_sweeps)
        self.seed = seed

    def _solve(self, problem: Problem) -> SolveResult:
        if problem.n <= self.qubits:
            res = self.inner.solve(problem)
            res.info.setdefault("sweeps", 0)
            return res
        rng = np.random.default_rng(self.seed)
        n = problem.n
        x = MagnitudeSolver().solve(problem).bits.copy()
        e = float(problem.energy(x))
        trace = [e]
        sweeps, converged, inner_time = 0, False, 0.0
        order = np.arange(n)
        while sweeps < self.max_sweeps:
            changed = False
            blocks = blocks_of(order, self.qubits)
            for blk in blocks:
                rest = np.setdiff1d(np.arange(n), blk)
                sub = problem.fix({int(i): int(x[i]) for i in rest})
                free = np.setdiff1d(np.arange(n), rest)  # fix() keeps free variables in index order
                r = self.inner.solve(sub)
                inner_time += r.wall_time
                if r.energy < e - 1e-12 * max(1.0, abs(e)):
                    x[free] = r.bits
                    e = float(problem.energy(x))
                    changed = True
            sweeps += 1
            trace.append(e)
            if not changed:
                converged = True
                break
            order = rng.permutation(n)
        return make_result(problem, x, f"block({self.inner.name})",
                           info={"sweeps": sweeps, "energy_trace": trace, "converged": converged,
                                 "blocks": len(blocks_of(order, self.qubits)), "qubits": self.qubits,
                                 "inner": self.inner.name, "inner_time": inner_time})
