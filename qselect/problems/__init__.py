"""Problem model: QUBOs and exact diagonal costs, with exact conversions between representations."""
from .base import Problem
from .bits import bits_to_index, index_to_bits
from .diagonal import DiagonalCost, walsh_hadamard
from .memory import check_dense, max_qubits
from .qubo import QUBO

__all__ = ["Problem", "QUBO", "DiagonalCost", "walsh_hadamard", "bits_to_index",
           "index_to_bits", "check_dense", "max_qubits"]
