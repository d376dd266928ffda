"""The one module that imports qiskit (and qiskit-aer / qiskit-optimization).

Conversions between qselect's Z-polynomials and qiskit objects live here, so
qiskit types never leak into the rest of the package.
"""
from __future__ import annotations

import numpy as np
from qiskit.quantum_info import SparsePauliOp

from ..errors import BackendUnavailableError, QSelectError


def sparse_pauli_op(terms: dict, constant: float, n: int) -> SparsePauliOp:
    """SparsePauliOp Σ c_S Z_S (+ constant·I) on n qubits (qubit i = bit i)."""
    sparse = [("Z" * len(q), list(q), float(c)) for q, c in terms.items()]
    if constant != 0.0 or not sparse:
        sparse.append(("", [], float(constant)))
    return SparsePauliOp.from_sparse_list(sparse, num_qubits=n).simplify(atol=0.0)


def z_terms_from_sparse_pauli_op(op) -> tuple[dict, float, int]:
    """({qubits: coeff}, constant, n) from a diagonal (I/Z only) SparsePauliOp."""
    if not isinstance(op, SparsePauliOp):
        raise QSelectError(f"expected a qiskit SparsePauliOp, got {type(op).__name__}")
    coeffs = np.asarray(op.coeffs)
    if np.any(np.abs(coeffs.imag) > 1e-12):
        raise QSelectError("the operator has complex coefficients; a cost Hamiltonian must be real")
    terms: dict[tuple[int, ...], float] = {}
    const = 0.0
    for pauli, c in zip(op.paulis, coeffs.real):
        if np.any(pauli.x):
            raise QSelectError(f"the operator has a non-diagonal term {pauli.to_label()}; only I and Z are allowed")
        qubits = tuple(int(i) for i in np.nonzero(pauli.z)[0])
        if qubits:
            terms[qubits] = terms.get(qubits, 0.0) + float(c)
        else:
            const += float(c)
    return terms, const, op.num_qubits


def _qiskit_optimization():
    try:
        from qiskit_optimization import QuadraticProgram
    except ImportError:
        raise BackendUnavailableError(
            "qiskit-optimization is not installed; install it with: pip install 'qselect[optimization]'"
        ) from None
    return QuadraticProgram


def qubo_to_quadratic_program(qubo, name: str = "qselect"):
    QuadraticProgram = _qiskit_optimization()
    qp = QuadraticProgram(name)
    names = [f"x{i}" if not isinstance(lbl, str) else lbl for i, lbl in enumerate(qubo.labels)]
    for nm in names:
        qp.binary_var(nm)
    quad = qubo.quadratic
    iu, ju = np.nonzero(quad)
    qp.minimize(constant=qubo.offset,
                linear={names[i]: float(v) for i, v in enumerate(qubo.linear) if v != 0},
                quadratic={(names[i], names[j]): float(quad[i, j]) for i, j in zip(iu, ju)})
    return qp


def quadratic_program_to_arrays(qp):
    _qiskit_optimization()
    if qp.linear_constraints or qp.quadratic_constraints:
        raise QSelectError("the QuadraticProgram has constraints; convert it to a QUBO first "
                           "(qiskit_optimization.converters.QuadraticProgramToQubo)")
    for v in qp.variables:
        if v.vartype.name != "BINARY":
            raise QSelectError(f"variable {v.name} is {v.vartype.name}; only binary variables map to a QUBO")
    sign = 1.0 if qp.objective.sense.name == "MINIMIZE" else -1.0
    n = qp.get_num_vars()
    lin = sign * qp.objective.linear.to_array()
    quad = sign * qp.objective.quadratic.to_array(symmetric=False)
    labels = [v.name for v in qp.variables]
    return np.asarray(quad, dtype=float).reshape(n, n), np.asarray(lin, dtype=float), sign * qp.objective.constant, labels
