"""The one module that imports PennyLane."""
from __future__ import annotations

import pennylane as qml


def hamiltonian(terms: dict, constant: float, n: int):
    """PennyLane Hamiltonian Σ c_S Π Z_i (+ constant·I) on wires 0..n-1."""
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
