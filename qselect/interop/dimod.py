"""Conversions to and from dimod's ``BinaryQuadraticModel``, and dwave-samplers' SA and tabu.

The one module that imports dimod and dwave-samplers.
"""
from __future__ import annotations

import dimod
import numpy as np

from ..errors import QSelectError
from ..problems import QUBO


def to_bqm(qubo) -> "dimod.BinaryQuadraticModel":
    """A ``dimod.BinaryQuadraticModel`` (BINARY vartype) with the QUBO's labels, same energies.

    Parameters
    ----------
    qubo : QUBO

    Returns
    -------
    dimod.BinaryQuadraticModel
    """
    return qubo_to_bqm(qubo)


def from_bqm(bqm, **kw) -> QUBO:
    """A ``QUBO`` from a ``dimod.BinaryQuadraticModel`` (SPIN models are converted; labels kept).

    Parameters
    ----------
    bqm : dimod.BinaryQuadraticModel
    **kw
        ``k``, ``name``.

    Returns
    -------
    QUBO

    Raises
    ------
    QSelectError
        ``bqm`` is not a BinaryQuadraticModel.
    """
    quad, lin, offset, labels = bqm_to_arrays(bqm)
    kw.setdefault("labels", labels)
    return QUBO(quad, lin, offset, **kw)


def qubo_to_bqm(qubo) -> "dimod.BinaryQuadraticModel":
    """The QUBO as a ``dimod.BinaryQuadraticModel`` (BINARY vartype, same energies).

    Parameters
    ----------
    qubo : QUBO
        Its ``labels`` become the model's variables.

    Returns
    -------
    dimod.BinaryQuadraticModel
    """
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
    """Dense arrays of a binary quadratic model (a SPIN model is converted to BINARY).

    Parameters
    ----------
    bqm : dimod.BinaryQuadraticModel

    Returns
    -------
    quad : numpy.ndarray, shape (n, n)
        Upper-triangular couplings.
    lin : numpy.ndarray, shape (n,)
    offset : float
    labels : list
        The model's variables, in the order of the arrays.

    Raises
    ------
    QSelectError
        If ``bqm`` is not a ``dimod.BinaryQuadraticModel``.
    """
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


# ---- sampling helpers (used by SimulatedAnnealingSolver and TabuSolver) ----------

def _index_bqm(qubo) -> "dimod.BinaryQuadraticModel":
    """BQM over integer labels 0..n-1 (positions), so samples map back by index."""
    quad = qubo.quadratic
    iu, ju = np.nonzero(quad)
    return dimod.BinaryQuadraticModel.from_numpy_vectors(
        qubo.linear, (iu, ju, quad[iu, ju]), float(qubo.offset), dimod.BINARY)


def _sampleset_arrays(sampleset, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(bitstrings (m, n) uint8 in position order, occurrence counts (m,))."""
    rec = sampleset.record
    order = np.argsort(np.asarray(list(sampleset.variables), dtype=np.int64))
    bits = np.asarray(rec.sample, dtype=np.uint8)[:, order].reshape(-1, n)
    return bits, np.asarray(rec.num_occurrences, dtype=np.int64)


def sample_qubo(qubo, method: str, **params) -> tuple[np.ndarray, np.ndarray, dict]:
    """Sample a QUBO with dwave-samplers' ``"sa"`` or ``"tabu"``; returns (bits, counts, info).

    ``params`` go straight to the sampler's ``sample`` (num_reads, seed, ...);
    None values are dropped so the library's defaults apply.

    Parameters
    ----------
    qubo : QUBO
    method : {"sa", "tabu"}
    **params
        Sampler arguments.

    Returns
    -------
    bits : numpy.ndarray of uint8, shape (m, n)
    counts : numpy.ndarray of int64, shape (m,)
    info : dict

    References
    ----------
    S. Kirkpatrick, C. D. Gelatt, M. P. Vecchi, "Optimization by Simulated
    Annealing", Science 220 (1983); F. Glover, "Tabu Search", ORSA J. Comput. 1 (1989).
    """
    from dwave.samplers import SimulatedAnnealingSampler, TabuSampler

    samplers = {"sa": SimulatedAnnealingSampler, "tabu": TabuSampler}
    if method not in samplers:
        raise QSelectError(f"unknown dwave-samplers method {method!r}; use one of {sorted(samplers)}")
    sampler = samplers[method]()
    params = {k: v for k, v in params.items() if v is not None or k == "timeout"}
    unknown = set(params) - set(sampler.parameters)
    if unknown:
        raise QSelectError(f"{method} sampler does not take {sorted(unknown)}; "
                           f"valid parameters: {sorted(sampler.parameters)}")
    ss = sampler.sample(_index_bqm(qubo), **params)
    bits, counts = _sampleset_arrays(ss, qubo.n)
    info = {k: v for k, v in ss.info.items() if isinstance(v, (int, float, str, bool))}
    if "beta_range" in ss.info:
        info["beta_range"] = [float(b) for b in ss.info["beta_range"]]
    return bits, counts, info
