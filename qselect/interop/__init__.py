"""Adapters to other libraries, one module per library (each imports its library lazily on first use).

qiskit
    ``to_sparse_pauli_op(problem, include_offset=True, max_order=None)``,
    ``from_sparse_pauli_op(op, offset=0.0, **kw)``,
    ``to_quadratic_program(qubo, name)``, ``from_quadratic_program(qp, **kw)``
pennylane
    ``to_hamiltonian(problem, include_offset=True, max_order=None)``
dimod
    ``to_bqm(qubo)``, ``from_bqm(bqm, **kw)``, and ``sample_qubo`` (dwave-samplers SA/tabu)

The functions are also importable from this package; the library behind one is
imported only when it is first used.
"""
from __future__ import annotations

import importlib

_WHERE = {"to_sparse_pauli_op": "qiskit", "from_sparse_pauli_op": "qiskit", "to_quadratic_program": "qiskit",
          "from_quadratic_program": "qiskit", "to_hamiltonian": "pennylane", "to_bqm": "dimod",
          "from_bqm": "dimod"}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
