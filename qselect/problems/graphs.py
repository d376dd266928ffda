"""Graph problems: MaxCut, the standard QAOA benchmark."""
from __future__ import annotations

import numpy as np

from ..errors import QSelectError
from .qubo import QUBO


def maxcut(graph, weight: str = "weight") -> QUBO:
    """MaxCut of a networkx graph as a QUBO whose energy is minus the cut weight.

    cut(x) = Σ_(i,j) w_ij (x_i + x_j − 2 x_i x_j); edges without the ``weight``
    attribute count 1. Variables follow ``list(graph.nodes)`` (kept as labels).

    Parameters
    ----------
    graph : networkx.Graph
        Undirected graph.
    weight : str
        Edge attribute holding the weight.

    Returns
    -------
    QUBO
        ``energy(x) = −cut(x)``; the optimum is minus the maximum cut.

    Raises
    ------
    QSelectError
        If ``graph`` is not a networkx graph, has no nodes, or an edge
        weight is not a finite number.

    References
    ----------
    E. Farhi, J. Goldstone, S. Gutmann, "A Quantum Approximate Optimization
    Algorithm", arXiv:1411.4028 (2014) — MaxCut as the first QAOA benchmark.
    """
    if not hasattr(graph, "nodes") or not hasattr(graph, "edges"):
        raise QSelectError(f"maxcut expects a networkx graph, got {type(graph).__name__}")
    nodes = list(graph.nodes)
    if not nodes:
        raise QSelectError("maxcut needs a graph with at least one node")
    pos = {v: i for i, v in enumerate(nodes)}
    n = len(nodes)
    lin = np.zeros(n)
    quad = np.zeros((n, n))
    for u, v, data in graph.edges(data=True):
        if u == v:
            continue  # a self-loop is never cut
        try:
            w = float(data.get(weight, 1.0))
        except (TypeError, ValueError):
            raise QSelectError(f"edge ({u!r}, {v!r}) has {weight}={data.get(weight)!r}; MaxCut edge weights "
                               "must be numbers") from None
        i, j = sorted((pos[u], pos[v]))
        lin[i] -= w
        lin[j] -= w
        quad[i, j] += 2 * w
    return QUBO(quad, lin, 0.0, labels=nodes, name="maxcut")
