"""What every local problem offers solvers and circuits, whatever its representation."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..errors import QSelectError
from .bits import as_bits


def _is_int(v) -> bool:
    """An integral number (int, numpy integer, bool, or a float like 3.0), not a string."""
    return isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and float(v).is_integer())


class Problem(ABC):
    """A cost over n binary variables. Energies always include the offset.

    ``k`` is an optional cardinality hint (feasible masks keep exactly k bits):
    solvers that support the constraint natively (QAOA's XY mixer, exact
    search restricted to weight k) use it; the others rely on the penalty a
    formulation folds into the cost.
    """

    labels: tuple
    k: int | None
    name: str | None

    @property
    @abstractmethod
    def num_variables(self) -> int:
        """Number of binary variables n (qubits for QAOA)."""
        ...

    @property
    def n(self) -> int:
        """Number of binary variables; short for :attr:`num_variables`."""
        return self.num_variables

    @abstractmethod
    def energy(self, bits) -> float | np.ndarray:
        """Energy of one bitstring (n,) -> float, or a batch (m, n) -> (m,)."""

    @abstractmethod
    def cost_vector(self, dtype=np.float64) -> np.ndarray:
        """Energies of all 2^n bitstrings, little-endian index."""

    @abstractmethod
    def z_terms(self) -> tuple[dict[tuple[int, ...], float], float]:
        """Cost as a Z-polynomial: ({qubits: coeff}, constant), with z = 1 - 2x."""

    @abstractmethod
    def fix(self, assignment: dict[int, int]) -> "Problem":
        """The problem over the remaining variables with some bits fixed (by position)."""

    def scale(self) -> float:
        """Largest |coefficient| of the Z-polynomial (constant excluded); 1 if none.

        Dividing the cost by it makes QAOA angles transfer between problems.
        """
        terms, _ = self.z_terms()
        m = max((abs(v) for v in terms.values()), default=0.0)
        return float(m) if m > 0 else 1.0

    def _check_bits(self, bits) -> np.ndarray:
        return as_bits(bits, self.n)

    def _check_assignment(self, assignment: dict[int, int]) -> tuple[list[int], list[int]]:
        if not hasattr(assignment, "items"):
            raise QSelectError(f"fix() takes a dict {{position: 0 or 1}}, got {type(assignment).__name__}")
        for i, v in assignment.items():
            if not _is_int(i) or not 0 <= i < self.n:
                raise QSelectError(f"cannot fix variable {i!r}: positions are integers in [0, {self.n})")
            if not _is_int(v) or v not in (0, 1):
                raise QSelectError(f"variable {i} can only be fixed to 0 or 1, got {v!r}")
        fixed = sorted(int(i) for i in assignment)
        free = [i for i in range(self.n) if i not in assignment]
        return fixed, free

    def _check_k(self, k):
        if k is None:
            return None
        if not _is_int(k) or not 0 <= k <= self.n:
            raise QSelectError(f"cardinality k must be an integer in [0, {self.n}], got {k!r}")
        return int(k)

    # Conversions to circuit backends: one adapter module per library.
    def to_sparse_pauli_op(self, include_offset: bool = True):
        """qiskit ``SparsePauliOp`` whose eigenvalue on |x> is energy(x) (offset as identity)."""
        from ..circuits.qiskit import sparse_pauli_op

        terms, const = self.z_terms()
        return sparse_pauli_op(terms, const if include_offset else 0.0, self.n)

    def to_pennylane(self, include_offset: bool = True):
        """PennyLane Hamiltonian on wires 0..n-1 with the same spectrum as energy()."""
        from ..circuits.pennylane import hamiltonian

        terms, const = self.z_terms()
        return hamiltonian(terms, const if include_offset else 0.0, self.n)
