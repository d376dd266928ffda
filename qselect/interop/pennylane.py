"""Conversion of qselect problems to PennyLane Hamiltonians (wire i = bit i)."""
from __future__ import annotations

import pennylane as qml


def to_hamiltonian(problem, include_offset: bool = True, max_order: int | None = None):
    """The problem's cost as a PennyLane Hamiltonian Σ c_S Π Z_i on wires 0..n-1.

    Parameters
    ----------
    problem : qselect.problems.Problem
        A ``QUBO`` or ``DiagonalCost`` on n bits.
    include_offset : bool
        Keep the constant as an identity term.
    max_order : int or None
        For a ``DiagonalCost``, drop Walsh terms above this order (None = exact).

    Returns
    -------
    pennylane.Hamiltonian
        Same spectrum as ``problem.energy`` on computational basis states.
    """
    terms, const = problem.z_terms(max_order) if max_order is not None else problem.z_terms()
    return hamiltonian(terms, const if include_offset else 0.0, problem.n)


def hamiltonian(terms: dict, constant: float, n: int):
    """PennyLane Hamiltonian Σ c_S Π Z_i (+ constant·I) on wires 0..n-1.

    Parameters
    ----------
    terms : dict of tuple of int -> float
        Z-polynomial coefficients.
    constant : float
    n : int

    Returns
    -------
    pennylane operator
    """
    coeffs, ops = [], []
    for qubits, c in terms.items():
        op = qml.Z(qubits[0])
        for q in qubits[1:]:
            op = op @ qml.Z(q)
        coeffs.append(float(c))
        ops.append(op)
    if constant != 0.0 or not ops:
        coeffs.append(float(constant))
        ops.append(qml.Identity(wires=list(range(n))))
    return qml.Hamiltonian(coeffs, ops)
