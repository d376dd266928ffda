"""qselect: quantum-classical neuron selection.

Subnetwork selection cast as small local problems (QUBOs or exact diagonal
costs), solved by QAOA or classical solvers, and turned into PyTorch masks.

The top-level names are the front door; each is imported on first use, so
``import qselect`` stays light (no torch, qiskit or networkx at import time):

``QUBO``, ``DiagonalCost``, ``Problem``
    Local problems (:mod:`qselect.problems`).
``get_solver``
    Exact, SA, tabu, greedy, magnitude, random and QAOA solvers (:mod:`qselect.solvers`).
``select_masks``
    Model + calibration batch → local problems → solved → masks (:mod:`qselect.formulate`).
``prune``
    One entry point for every pruning method, classical and local-problem (:mod:`qselect.app.prune`).
``compact``
    A physically smaller copy of a model whose whole units are masked (:mod:`qselect.classical.compact`).
``maxcut``
    The MaxCut QUBO of a graph.
"""
from __future__ import annotations

import importlib

from .errors import QSelectError
from .problems import QUBO, DiagonalCost, Problem

__version__ = "0.1.0"

#: lazily imported names and the module that defines each
_LAZY = {"maxcut": "qselect.problems.graphs", "get_solver": "qselect.solvers",
         "select_masks": "qselect.formulate", "prune": "qselect.app.prune", "compact": "qselect.classical.compact"}

__all__ = ["QUBO", "DiagonalCost", "Problem", "QSelectError", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qselect' has no attribute {name!r}")
