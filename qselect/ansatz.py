"""The QAOA ansatz specification shared by every engine and circuit builder.

One home for what a QAOA circuit *is*, independent of how it is simulated or
compiled: the mixer names, the XY-ring pair order, the Dicke-state start, the
normalised cost terms and the angle layout ``[γ_1..γ_p, β_1..β_p]``.

References
----------
Farhi, Goldstone & Gutmann (2014), "A Quantum Approximate Optimization
Algorithm", arXiv:1411.4028 — the alternating operator ansatz
``|γ,β⟩ = Π_l exp(-iβ_l B) exp(-iγ_l C) |+⟩^n``.
Hadfield et al. (2019), "From the Quantum Approximate Optimization Algorithm
to a Quantum Alternating Operator Ansatz", Algorithms 12(2):34 — the XY-ring
mixer that preserves Hamming weight.
Bärtschi & Eidenbenz (2019), "Deterministic Preparation of Dicke States",
FCT 2019 — the O(kn) Dicke-state circuit.
"""
from __future__ import annotations

from math import acos, comb, sqrt

import numpy as np

from .errors import QSelectError
from .problems.bits import popcounts

#: mixer names: ``"x"`` (transverse field ΣX_i) and ``"xy"`` (XY ring, keeps Hamming weight)
MIXERS = ("x", "xy")


def check_mixer(mixer, k=None, *, need_k: bool = False) -> str:
    """Validate a mixer name (and, for ``"xy"``, its cardinality ``k``).

    Parameters
    ----------
    mixer : str
        ``"x"`` or ``"xy"``.
    k : int or None
        Number of ones the XY mixer's Dicke start holds.
    need_k : bool
        When True, ``"xy"`` without ``k`` is an error.

    Returns
    -------
    str
        The mixer name.

    Raises
    ------
    QSelectError
        Unknown mixer, or ``"xy"`` without the ``k`` it needs.
    """
    if not isinstance(mixer, str) or mixer not in MIXERS:
        raise QSelectError(f"unknown mixer {mixer!r}; use 'x' or the cardinality-preserving 'xy'")
    if need_k and mixer == "xy" and k is None:
        raise QSelectError("the XY mixer needs a cardinality k (problem.k or k=...) for its Dicke start")
    return mixer


def split_angles(angles, p: int) -> tuple[np.ndarray, np.ndarray]:
    """``(γ, β)`` from the flat layout ``[γ_1..γ_p, β_1..β_p]`` (float64, shape ``(p,)`` each).

    Parameters
    ----------
    angles : array_like, shape (2p,)
        ``[γ_1..γ_p, β_1..β_p]`` in radians.
    p : int

    Returns
    -------
    gamma, beta : numpy.ndarray of float64, shape (p,)

    Raises
    ------
    QSelectError
        If there are not 2p finite angles.
    """
    a = np.asarray(angles, dtype=np.float64).reshape(-1)
    if a.size != 2 * p:
        raise QSelectError(f"QAOA of depth p={p} takes {2 * p} angles [γ_1..γ_p, β_1..β_p], got {a.size}")
    return a[:p], a[p:]


def normalised_terms(problem, max_order: int | None = None) -> tuple[dict, float, float]:
    """(terms / scale, scale, constant): the Z-polynomial QAOA angles act on.

    Dividing by ``problem.scale()`` makes angles transfer between problems; the
    constant is dropped (a global phase) and added back to reported energies.

    Parameters
    ----------
    problem : Problem
    max_order : int or None
        Truncate a diagonal cost's terms to this order.

    Returns
    -------
    terms : dict
    scale : float
    constant : float
    """
    terms, const = (problem.z_terms(max_order) if max_order is not None else problem.z_terms())
    scale = problem.scale()
    return {tuple(q): c / scale for q, c in terms.items() if c != 0.0}, scale, const


def dicke_gates(n: int, k: int) -> list[tuple]:
    """Gates preparing the Dicke state |D^n_k> from |0…0> (Bärtschi & Eidenbenz 2019).

    Returns ("x", (q,)), ("cx", (c, t)), ("cry", (c, t), θ), ("ccry", (c1, c2, t), θ)
    with O(kn) gates: split-and-cyclic-shift blocks SCS_{l,k} for l = n…k+1 and
    SCS_{l,l-1} for l = k…2, starting from k ones on the last qubits.

    Parameters
    ----------
    n : int
    k : int
        Number of ones, in [0, n].

    Returns
    -------
    list of tuple

    Raises
    ------
    QSelectError
        If ``k`` is outside [0, n].

    References
    ----------
    A. Bärtschi, S. Eidenbenz, "Deterministic Preparation of Dicke States", FCT 2019.
    """
    if not 0 <= k <= n:
        raise QSelectError(f"a Dicke state needs 0 ≤ k ≤ n, got k={k} for n={n}")
    q = lambda i: i - 1  # the paper numbers qubits 1..n
    gates: list[tuple] = [("x", (q(i),)) for i in range(n - k + 1, n + 1)]
    if k in (0, n):
        return gates

    def scs(l, kk):
        gates.append(("cx", (q(l - 1), q(l))))
        gates.append(("cry", (q(l), q(l - 1)), 2 * acos(sqrt(1 / l))))
        gates.append(("cx", (q(l - 1), q(l))))
        for j in range(2, kk + 1):
            gates.append(("cx", (q(l - j), q(l))))
            gates.append(("ccry", (q(l), q(l - j + 1), q(l - j)), 2 * acos(sqrt(j / l))))
            gates.append(("cx", (q(l - j), q(l))))

    for l in range(n, k, -1):
        scs(l, k)
    for l in range(k, 1, -1):
        scs(l, l - 1)
    return gates


def ring_pairs(n: int) -> list[tuple[int, int]]:
    """XY-ring pairs ``(i, i+1 mod n)`` in the order the mixer applies them (list of int pairs).

    Parameters
    ----------
    n : int

    Returns
    -------
    list of (int, int)

    References
    ----------
    S. Hadfield et al., "From the Quantum Approximate Optimization Algorithm to a Quantum
    Alternating Operator Ansatz", Algorithms 12(2):34 (2019).
    """
    if n < 2:
        return []
    if n == 2:
        return [(0, 1)]
    return [(i, (i + 1) % n) for i in range(n)]


def dicke_state(n: int, k: int, dtype=np.complex128) -> np.ndarray:
    """Dicke state: the uniform superposition of the C(n, k) bitstrings with k ones.

    Parameters
    ----------
    n : int
    k : int
    dtype : numpy complex dtype

    Returns
    -------
    numpy.ndarray
        Shape ``(2**n,)``, ``dtype``; little-endian index (qubit i = bit i).

    Raises
    ------
    QSelectError
        ``k`` outside ``[0, n]``.

    References
    ----------
    A. Bärtschi, S. Eidenbenz, "Deterministic Preparation of Dicke States", FCT 2019.
    """
    if not 0 <= k <= n:
        raise QSelectError(f"a Dicke state needs 0 ≤ k ≤ n, got k={k} for n={n}")
    psi = (popcounts(n) == k).astype(dtype)
    psi /= np.sqrt(comb(n, k))
    return psi
