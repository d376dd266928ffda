"""Shared body of the dwave-samplers solvers: sample the QUBO, score with the real problem."""
from __future__ import annotations

from ..problems import QUBO, DiagonalCost, Problem
from ..errors import QSelectError
from .base import SolveResult, make_result, summarise_samples


def qubo_surrogate(problem: Problem) -> tuple[QUBO, str | None]:
    """The QUBO a quadratic sampler sees, and a note when it is only an approximation."""
    if isinstance(problem, QUBO):
        return problem, None
    if isinstance(problem, DiagonalCost):
        q = problem.to_qubo()
        note = None if problem.order() <= 2 else (
            f"sampled the order-2 Walsh truncation of an order-{problem.order()} diagonal cost; "
            "samples re-scored with the exact cost")
        return q, note
    raise QSelectError(f"cannot sample a {type(problem).__name__}; give a QUBO or DiagonalCost")


def sample_and_score(problem: Problem, method: str, solver_name: str, **params) -> SolveResult:
    from .dwave import sample_qubo  # dimod stays out of `import qselect.solvers`

    qubo, note = qubo_surrogate(problem)
    bits, counts, info = sample_qubo(qubo, method, **params)
    samples, energies, counts = summarise_samples(problem, bits, counts)
    if note:
        info["surrogate"] = note
    info["num_reads"] = int(counts.sum())
    return make_result(problem, samples[0], solver_name, samples=samples, energies=energies,
                       counts=counts, info=info)
