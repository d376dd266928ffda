"""QAOA objectives: expectation ⟨C⟩ or CVaR(α), from exact probabilities or from shots.

CVaR(α) (Barkoutsos et al. 2020) is the mean of the lowest α fraction of the
energy distribution; α = 1 is the expectation.
"""
from __future__ import annotations

import numpy as np

from ...errors import QSelectError


def check_objective(objective: str, alpha: float) -> None:
    """Validate an objective name and CVaR level.

    Parameters
    ----------
    objective : {"expectation", "cvar"}
    alpha : float
        CVaR fraction in (0, 1].

    Raises
    ------
    QSelectError
        If either is invalid.

    References
    ----------
    P. Kl. Barkoutsos et al., "Improving Variational Quantum Optimization
    using CVaR", Quantum 4, 256 (2020).
    """
    if objective not in ("expectation", "cvar"):
        raise QSelectError(f"unknown objective {objective!r}; use 'expectation' or 'cvar'")
    if not 0 < alpha <= 1:
        raise QSelectError(f"CVaR alpha must be in (0, 1], got {alpha}")


def cvar_weights(costs: np.ndarray, order: np.ndarray, probs: np.ndarray, alpha: float):
    """(CVaR, w) with w the diagonal observable whose ⟨w⟩ has CVaR's gradient at these probabilities.

    ``order`` sorts ``costs`` ascending. CVaR = (1/α) Σ_tail c_x q_x + boundary
    part; its derivative w.r.t. q_x is (c_x − c_b)/α in the tail (c_b = cost at
    the α-quantile) and 0 beyond.

    Parameters
    ----------
    costs : numpy.ndarray, shape (2**n,)
    order : numpy.ndarray of int
    probs : numpy.ndarray, shape (2**n,)
    alpha : float

    Returns
    -------
    (float, numpy.ndarray)

    References
    ----------
    P. Kl. Barkoutsos et al., "Improving Variational Quantum Optimization using
    CVaR", Quantum 4, 256 (2020).
    """
    q = probs[order]
    cum = np.cumsum(q)
    b = min(int(np.searchsorted(cum, alpha)), q.size - 1)
    cs = costs[order]
    before = cum[b - 1] if b > 0 else 0.0
    value = (float(np.dot(cs[:b], q[:b])) + cs[b] * (alpha - before)) / alpha
    w = np.zeros_like(costs)
    w[order[:b]] = (cs[:b] - cs[b]) / alpha
    return value, w


def exact_objective(costs, probs, objective: str, alpha: float, order=None) -> float:
    """The objective of an exact distribution: ⟨C⟩, or CVaR_α (mean of the lowest-cost α of the mass).

    Parameters
    ----------
    costs : numpy.ndarray, shape (2**n,)
    probs : numpy.ndarray, shape (2**n,)
        Probabilities of each bitstring.
    objective : {"expectation", "cvar"}
    alpha : float
        CVaR fraction in (0, 1]; 1 is the expectation.
    order : numpy.ndarray of int or None
        ``argsort(costs)``, if already computed.

    Returns
    -------
    float

    References
    ----------
    P. Kl. Barkoutsos et al., "Improving Variational Quantum Optimization
    using CVaR", Quantum 4, 256 (2020).
    """
    if objective == "expectation" or alpha >= 1:
        return float(np.dot(probs, costs))
    order = np.argsort(costs, kind="stable") if order is None else order
    return cvar_weights(costs, order, probs, alpha)[0]


def sample_objective(energies, counts, objective: str, alpha: float) -> float:
    """Objective from sampled energies (each with its count).

    Parameters
    ----------
    energies : array_like, shape (m,)
    counts : array_like of int, shape (m,)
    objective : {"expectation", "cvar"}
    alpha : float

    Returns
    -------
    float
    """
    e = np.asarray(energies, dtype=float)
    c = np.asarray(counts, dtype=float)
    if objective == "expectation" or alpha >= 1:
        return float(np.dot(e, c) / c.sum())
    o = np.argsort(e, kind="stable")
    e, c = e[o], c[o]
    need = alpha * c.sum()
    take = np.minimum(c, np.maximum(0.0, need - (np.cumsum(c) - c)))
    return float(np.dot(e, take) / need)
