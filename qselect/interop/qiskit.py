"""Conversions between qselect problems and qiskit objects (``SparsePauliOp``, ``QuadraticProgram``).

Bit order is qiskit's little-endian one: qubit i is bit i of a bitstring's
integer index, so ``energy(x)`` equals the operator's eigenvalue on ``|x⟩``.
"""
from __future__ import annotations

import re

import numpy as np
from qiskit.quantum_info import SparsePauliOp

from ..errors import BackendUnavailableError, QSelectError
from ..problems import QUBO


def to_sparse_pauli_op(problem, include_offset: bool = True, max_order: int | None = None) -> SparsePauliOp:
    """The problem's cost as a qiskit ``SparsePauliOp`` of I/Z terms.

    Parameters
    ----------
    problem : qselect.problems.Problem
        A ``QUBO`` or ``DiagonalCost`` on n bits.
    include_offset : bool
        Keep the constant as an identity term (else the operator is shifted by it).
    max_order : int or None
        For a ``DiagonalCost``, drop Walsh terms above this order (None = exact).

    Returns
    -------
    qiskit.quantum_info.SparsePauliOp
        On n qubits; its eigenvalue on ``|x⟩`` is ``problem.energy(x)``.
    """
    terms, const = problem.z_terms(max_order) if max_order is not None else problem.z_terms()
    return sparse_pauli_op(terms, const if include_offset else 0.0, problem.n)


def from_sparse_pauli_op(op, offset: float = 0.0, **kw) -> QUBO:
    """A ``QUBO`` from a qiskit ``SparsePauliOp`` of I/Z terms of order ≤ 2 (identity → offset).

    Parameters
    ----------
    op : qiskit.quantum_info.SparsePauliOp
    offset : float
        Added to the identity coefficient.
    **kw
        ``labels``, ``k``, ``name``.

    Returns
    -------
    QUBO

    Raises
    ------
    QSelectError
        Not a SparsePauliOp, complex coefficients, X/Y terms, or terms of order > 2.
    """
    terms, const, n = z_terms_from_sparse_pauli_op(op)
    return QUBO.from_z_terms(terms, const + offset, n, **kw)


def to_quadratic_program(qubo, name: str = "qselect"):
    """A ``qiskit_optimization.QuadraticProgram`` minimising the QUBO (needs the 'optimization' extra).

    Integer labels become variables ``x<i>``; names never collide (see :func:`quadratic_program_names`).

    Parameters
    ----------
    qubo : QUBO
    name : str

    Returns
    -------
    qiskit_optimization.QuadraticProgram

    Raises
    ------
    BackendUnavailableError
        If qiskit-optimization is not installed.
    """
    return qubo_to_quadratic_program(qubo, name)


def from_quadratic_program(qp, **kw) -> QUBO:
    """A ``QUBO`` from an unconstrained binary ``QuadraticProgram`` (labels from its variable names).

    Parameters
    ----------
    qp : qiskit_optimization.QuadraticProgram
    **kw
        ``k``, ``name``.

    Returns
    -------
    QUBO

    Raises
    ------
    QSelectError
        If the program has constraints or non-binary variables.
    """
    quad, lin, offset, labels = quadratic_program_to_arrays(qp)
    kw.setdefault("labels", labels)
    return QUBO(quad, lin, offset, **kw)


def sparse_pauli_op(terms: dict, constant: float, n: int) -> SparsePauliOp:
    """SparsePauliOp Σ c_S Z_S (+ constant·I) on n qubits (qubit i = bit i).

    Parameters
    ----------
    terms : dict of tuple of int -> float
        Z-polynomial coefficients.
    constant : float
    n : int

    Returns
    -------
    qiskit.quantum_info.SparsePauliOp
    """
    sparse = [("Z" * len(q), list(q), float(c)) for q, c in terms.items()]
    if constant != 0.0 or not sparse:
        sparse.append(("", [], float(constant)))
    return SparsePauliOp.from_sparse_list(sparse, num_qubits=n).simplify(atol=0.0)


def z_terms_from_sparse_pauli_op(op) -> tuple[dict, float, int]:
    """({qubits: coeff}, constant, n) from a diagonal (I/Z only) SparsePauliOp.

    Parameters
    ----------
    op : qiskit.quantum_info.SparsePauliOp

    Returns
    -------
    (dict, float, int)

    Raises
    ------
    QSelectError
        If the operator has X/Y terms or complex coefficients.
    """
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
    """The QUBO as a qiskit-optimization ``QuadraticProgram`` (minimisation, binary variables).

    Parameters
    ----------
    qubo : QUBO
    name : str
        Program name.

    Returns
    -------
    qiskit_optimization.QuadraticProgram
        Variable names derived from the labels, made unique.

    Raises
    ------
    BackendUnavailableError
        If qiskit-optimization is not installed.
    """
    QuadraticProgram = _qiskit_optimization()
    qp = QuadraticProgram(name)
    names = quadratic_program_names(qubo.labels)
    for nm in names:
        qp.binary_var(nm)
    quad = qubo.quadratic
    iu, ju = np.nonzero(quad)
    qp.minimize(constant=qubo.offset,
                linear={names[i]: float(v) for i, v in enumerate(qubo.linear) if v != 0},
                quadratic={(names[i], names[j]): float(quad[i, j]) for i, j in zip(iu, ju)})
    return qp


_INT_NAME = re.compile(r"x(-?[0-9]+)")


def quadratic_program_names(labels) -> list[str]:
    """Unique variable names for a QuadraticProgram: integer label i -> ``x<i>``, strings kept.

    A name already taken (``[0, "x0"]``) gets ``_<position>`` appended, so two
    variables never share a name; all-integer labels come back as integers
    through :func:`labels_from_names`.

    Parameters
    ----------
    labels : sequence

    Returns
    -------
    list of str
    """
    names, used = [], set()
    for pos, lbl in enumerate(labels):
        nm = lbl if isinstance(lbl, str) else f"x{lbl}" if isinstance(lbl, (int, np.integer)) else f"x{pos}"
        base, i = nm, pos
        while nm in used:
            nm, i = f"{base}_{i}", i + 1
        used.add(nm)
        names.append(nm)
    return names


def labels_from_names(names) -> list:
    """Inverse of :func:`quadratic_program_names` where it is one: all ``x<int>`` names -> ints.

    Parameters
    ----------
    names : sequence of str

    Returns
    -------
    list
    """
    matches = [_INT_NAME.fullmatch(nm) for nm in names]
    if names and all(matches):
        ints = [int(m.group(1)) for m in matches]
        if len(set(ints)) == len(ints):
            return ints
    return list(names)


def quadratic_program_to_arrays(qp):
    """Dense arrays of an unconstrained binary ``QuadraticProgram`` (maximisation negated).

    Parameters
    ----------
    qp : qiskit_optimization.QuadraticProgram

    Returns
    -------
    quad : numpy.ndarray, shape (n, n)
    lin : numpy.ndarray, shape (n,)
    offset : float
    labels : list of str
        Variable names.

    Raises
    ------
    QSelectError
        If the program has constraints or a non-binary variable.
    BackendUnavailableError
        If qiskit-optimization is not installed.
    """
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
    labels = labels_from_names([v.name for v in qp.variables])
    return (np.asarray(quad, dtype=float).reshape(n, n), np.asarray(lin, dtype=float), sign * qp.objective.constant,
            labels)
