"""Shared body of the dwave-samplers solvers: sample the QUBO, score with the real problem.

With a cardinality ``problem.k`` the answer keeps exactly k bits. A sampler
cannot promise that: a higher-order cost is sampled through its order-2
surrogate, whose minima need not lie at weight k (measured on NK problems of
a digits MLP: 8 of 600 SA answers and 10 of 600 tabu answers kept the wrong
number of bits, 16 and 33 were worse than the magnitude mask). So the best
k-bit sample (exact cost) and the magnitude mask are each improved by exact
1-in/1-out swaps, and the lower of the two is the answer: never off weight k,
never worse than magnitude.
"""
from __future__ import annotations

import numpy as np

from ..problems import QUBO, Problem
from .base import SolveResult, make_result, summarise_samples


def qubo_surrogate(problem: Problem) -> tuple[QUBO, str | None]:
    """The QUBO a quadratic sampler sees, and a note when it is only an approximation."""
    return problem.quadratic_surrogate()


def best_with_k(problem: Problem, samples: np.ndarray, k: int) -> tuple[np.ndarray, dict]:
    """The best k-bit answer: samples and the magnitude mask, each swap-polished.

    The lowest-energy k-bit answer from the samples (sorted by energy) and the magnitude mask, each polished by
    exact-cost swaps; returns (bits, info).
    """
    from .baselines import MagnitudeSolver, swap_descent

    starts = []
    ok = np.flatnonzero(samples.sum(axis=1) == k)
    if ok.size:
        starts.append(("sample", samples[ok[0]]))
    starts.append(("magnitude", MagnitudeSolver(k=k).solve(problem).bits))
    best = None
    for source, x in starts:
        e0 = float(problem.energy(x))
        x, e, steps = swap_descent(problem, x)
        if best is None or e < best[1]:  # ties keep the sample
            best = (x, e, {"source": source, "start_energy": e0, "swaps": steps})
    info = best[2]
    info["k_samples"] = int(ok.size)
    return best[0], info


def sample_and_score(problem: Problem, method: str, solver_name: str, enforce_k: bool = True,
                     **params) -> SolveResult:
    from ..interop.dimod import sample_qubo  # dimod stays out of `import qselect.solvers`

    qubo, note = qubo_surrogate(problem)
    bits, counts, info = sample_qubo(qubo, method, **params)
    samples, energies, counts = summarise_samples(problem, bits, counts)
    if note:
        info["surrogate"] = note
    info["num_reads"] = int(counts.sum())
    best = samples[0]
    if enforce_k and problem.k is not None:
        best, info["k_polish"] = best_with_k(problem, samples, int(problem.k))
    return make_result(problem, best, solver_name, samples=samples, energies=energies,
                       counts=counts, info=info)
