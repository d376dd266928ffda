"""Initial QAOA angles: linear ramp, random, given, or transferred from a previous solve.

Angles are always ``[γ_1..γ_p, β_1..β_p]`` for the cost divided by
``problem.scale()``, which is what lets them transfer between problems.
"""
from __future__ import annotations

import numpy as np

from ...errors import QSelectError


def linear_ramp(p: int, dt: float = 0.75) -> np.ndarray:
    """Annealing-like schedule (Zhou et al. 2020): |γ| rises, |β| falls, step dt.

    Sign: we minimise C with layers exp(-iβΣX) exp(-iγC) from |+>^n, the ground
    state of -ΣX. Trotterised annealing from -ΣX to C is exp(+i(1-s)dt ΣX)
    exp(-i s dt C), so γ > 0 and β < 0 (with β > 0 the start point raises ⟨C⟩).

    Parameters
    ----------
    p : int
        Depth.
    dt : float
        Time step of the discretised anneal.

    Returns
    -------
    numpy.ndarray of float64, shape (2p,)

    References
    ----------
    L. Zhou, S.-T. Wang, S. Choi, H. Pichler, M. D. Lukin, "Quantum
    Approximate Optimization Algorithm: Performance, Mechanism, and
    Implementation on Near-Term Devices", Phys. Rev. X 10, 021067 (2020).
    """
    f = (np.arange(p) + 0.5) / p
    return np.concatenate([f * dt, -(1 - f) * dt])


def random_angles(p: int, seed=0) -> np.ndarray:
    """Uniformly random starting angles: γ_l ∈ [0, π), β_l ∈ [0, π/2).

    Parameters
    ----------
    p : int
        QAOA depth.
    seed : int, numpy.random.Generator or None

    Returns
    -------
    numpy.ndarray of float64, shape (2p,)
        ``[γ_1..γ_p, β_1..β_p]``.
    """
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(0, np.pi, p), rng.uniform(0, np.pi / 2, p)])


def interpolate(angles, p: int) -> np.ndarray:
    """Angles for depth p from angles of another depth (INTERP, Zhou et al.).

    Parameters
    ----------
    angles : array_like, shape (2p',)
    p : int
        Target depth.

    Returns
    -------
    numpy.ndarray of float64, shape (2p,)

    References
    ----------
    L. Zhou et al., Phys. Rev. X 10, 021067 (2020) — the INTERP strategy.
    """
    a = np.asarray(angles, dtype=float).reshape(-1)
    q = a.size // 2
    if q == p:
        return a.copy()
    x_old = (np.arange(q) + 0.5) / q
    x_new = (np.arange(p) + 0.5) / p
    return np.concatenate([np.interp(x_new, x_old, a[:q]), np.interp(x_new, x_old, a[q:])])


def initial_angles(init, p: int, seed=0) -> np.ndarray:
    """Resolve ``init``: 'ramp', 'random', an array of 2·p' angles, or a result with ``.angles``.

    Parameters
    ----------
    init : {"ramp", "random"}, array_like or object with ``angles``
    p : int
    seed : int

    Returns
    -------
    numpy.ndarray of float64, shape (2p,)

    Raises
    ------
    QSelectError
        If ``init`` is not understood or has an odd length / non-finite entries.
    """
    if isinstance(init, str):
        if init == "ramp":
            return linear_ramp(p)
        if init == "random":
            return random_angles(p, seed)
        raise QSelectError(f"unknown init {init!r}; use 'ramp', 'random', an angle array or a previous QAOA result")
    if hasattr(init, "angles"):
        init = init.angles
    a = np.asarray(init, dtype=float).reshape(-1)
    if a.size == 0 or a.size % 2 or not np.all(np.isfinite(a)):
        got = f"{a.size} values" if a.size == 0 or a.size % 2 else f"non-finite values {a.tolist()}"
        raise QSelectError(f"initial angles must be 2·p finite numbers [γ_1..γ_p, β_1..β_p], got {got}")
    return interpolate(a, p)
