"""User-facing circuit resources: what a QAOA circuit costs before and after transpiling."""
from __future__ import annotations


def qaoa_resources(problem, p: int = 1, mixer: str = "x", k: int | None = None, backend=None,
                   optimization_level: int = 1, seed: int = 0, max_order: int | None = None) -> dict:
    """{'before': counts, 'after': counts} for the QAOA circuit of ``problem``.

    'before' is the logical circuit in a generic {cx, 1-qubit} basis (no
    device layout); 'after' is transpiled for ``backend`` (default: Aer; pass
    e.g. a qiskit-ibm-runtime fake backend to see routing overhead). Each has
    qubits, depth, two_qubit_gates (and multi_qubit_gates).

    Parameters
    ----------
    problem : Problem
    p : int
    mixer : {"x", "xy"}
    k : int or None
    backend : qiskit backend or None
    optimization_level : int
    seed : int
    max_order : int or None

    Returns
    -------
    dict
    """
    from .qiskit import decompose_logical, qaoa_circuit, resource_counts, transpile_circuit

    qc = qaoa_circuit(problem, p, mixer, k, measure=True, max_order=max_order)
    before = resource_counts(decompose_logical(qc))
    after = resource_counts(transpile_circuit(qc, backend, seed=seed, optimization_level=optimization_level))
    return {"before": before, "after": after, "p": p, "mixer": mixer, "variables": problem.n}
