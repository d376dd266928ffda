"""The one module that imports dimod and dwave-samplers."""
from __future__ import annotations

import dimod
import numpy as np

from ..errors import QSelectError


def qubo_to_bqm(qubo) -> "dimod.BinaryQuadraticModel":
    labels = list(qubo.labels)
    quad = qubo.quadratic
    iu, ju = np.nonzero(quad)
    return dimod.BinaryQuadraticModel(
        {labels[i]: float(v) for i, v in enumerate(qubo.linear)},
        {(labels[i], labels[j]): float(quad[i, j]) for i, j in zip(iu, ju)},
        float(qubo.offset),
        dimod.BINARY,
    )


def bqm_to_arrays(bqm):
    if not isinstance(bqm, dimod.BinaryQuadraticModel):
        raise QSelectError(f"expected a dimod.BinaryQuadraticModel, got {type(bqm).__name__}")
    b = bqm.change_vartype(dimod.BINARY, inplace=False)
    labels = list(b.variables)
    pos = {v: i for i, v in enumerate(labels)}
    n = len(labels)
    lin = np.array([b.get_linear(v) for v in labels], dtype=float)
    quad = np.zeros((n, n))
    for (u, v), bias in b.quadratic.items():
        i, j = sorted((pos[u], pos[v]))
        quad[i, j] += bias
    return quad, lin, float(b.offset), labels
