"""qselect: quantum-classical neuron selection.

Subnetwork selection cast as small local problems (QUBOs or exact diagonal
costs), solved by QAOA or classical solvers, and turned into PyTorch masks.
"""
from .errors import QSelectError
from .problems import QUBO, DiagonalCost, Problem

__version__ = "0.1.0"

__all__ = ["QUBO", "DiagonalCost", "Problem", "QSelectError", "maxcut", "__version__"]


def __getattr__(name):
    # Lazy: keeps `import qselect` light (no networkx/qiskit/torch at import time).
    if name == "maxcut":
        from .problems.graphs import maxcut

        return maxcut
    raise AttributeError(f"module 'qselect' has no attribute {name!r}")
