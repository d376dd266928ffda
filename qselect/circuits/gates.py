"""Backend-neutral gate recipes shared by the qiskit and PennyLane adapters."""
from __future__ import annotations

from math import acos, sqrt

from ..errors import QSelectError


def normalised_terms(problem, max_order: int | None = None) -> tuple[dict, float, float]:
    """(terms / scale, scale, constant): the Z-polynomial QAOA angles act on.

    Dividing by ``problem.scale()`` makes angles transfer between problems; the
    constant is dropped (a global phase) and added back to reported energies.
    """
    terms, const = (problem.z_terms(max_order) if max_order is not None else problem.z_terms())
    scale = problem.scale()
    return {tuple(q): c / scale for q, c in terms.items() if c != 0.0}, scale, const


def dicke_gates(n: int, k: int) -> list[tuple]:
    """Gates preparing the Dicke state |D^n_k> from |0…0> (Bärtschi & Eidenbenz 2019).

    Returns ("x", (q,)), ("cx", (c, t)), ("cry", (c, t), θ), ("ccry", (c1, c2, t), θ)
    with O(kn) gates: split-and-cyclic-shift blocks SCS_{l,k} for l = n…k+1 and
    SCS_{l,l-1} for l = k…2, starting from k ones on the last qubits.
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
