"""Keep exactly k bits: a penalty λ(Σm − k)² whose weight comes from the problem itself.

The automatic λ is MARGIN × min(Δ, U − L); each of the two bounds alone
makes every optimum keep exactly k bits, so their minimum does too.

Bound 1 (U − L). L ≤ the objective everywhere (0 for the least-squares
formulations, else a termwise bound), U = the objective of the magnitude
mask (k bits). A state off weight k pays λ ≥ λ·d² on top of at least L, i.e.
more than U ≥ the best k-bit energy, so it cannot be optimal; nor can block
descent from that magnitude mask ever accept it, since every accepted state
is below U. This bound is usually far smaller than Δ, which keeps the
barrier between k-bit masks low for single-flip samplers (SA).

Bound 2 (Δ). Let Δ be the largest change of the objective that
flipping one bit can cause, over all states (for a QUBO,
``max_i max(lin_i + Σ_j S⁺_ij, −lin_i − Σ_j S⁻_ij)`` with S the symmetric
couplings; for a diagonal cost the largest single-flip difference of its
vector). At a state with Σm = k + d, d ≥ 1, dropping a set bit lowers the
penalty by λ(2d − 1) ≥ λ and raises the objective by at most Δ; so with
λ > Δ no state off weight k is even a single-flip local minimum, let alone
optimal (same for d ≤ −1 by adding a bit). Fixing bits (decomposition) only
shrinks Δ, so the blocks inherit the guarantee.
"""
from __future__ import annotations

import numpy as np

from ..errors import QSelectError
from ..problems import Problem
from ..validation import check_nonnegative_int, check_sparsity

#: λ = MARGIN · min(Δ, U − L) (+ a tiny floor so a zero objective still gets a penalty)
MARGIN = 1.25


def max_flip_change(problem: Problem) -> float:
    """Largest |E(x ⊕ e_i) − E(x)| over all x and i (``problem.max_flip_change()``).

    Parameters
    ----------
    problem : Problem

    Returns
    -------
    float
    """
    return problem.max_flip_change()


def lower_bound(problem: Problem) -> float:
    """A value ≤ the problem's energy everywhere (``problem.lower_bound()``).

    Parameters
    ----------
    problem : Problem

    Returns
    -------
    float
    """
    return problem.lower_bound()


def auto_penalty(problem: Problem, k: int, lower: float | None = None) -> float:
    """The penalty weight that provably makes every optimum keep exactly k bits.

    ``lower``: a known lower bound of the objective (e.g. 0 for a sum of
    squares); tighter than the generic one, so λ is smaller.

    Parameters
    ----------
    problem : Problem
        The objective without penalty.
    k : int
        Bits to keep.
    lower : float or None
        A known lower bound of the objective.

    Returns
    -------
    float
        λ = 1.25 · min(Δ, U − L) (plus a tiny floor), Δ the largest single-flip
        change, U the magnitude mask's objective, L the lower bound.
    """
    from ..solvers.baselines import MagnitudeSolver

    delta = max_flip_change(problem)
    L = lower_bound(problem) if lower is None else float(lower)
    U = MagnitudeSolver(k=k).solve(problem).energy
    gap = max(U - L, 0.0)
    bound = min(delta, gap)
    return MARGIN * bound + 1e-9 * max(1.0, abs(U), abs(L))


def add_cardinality(problem: Problem, k: int, penalty: float | str | None = "auto",
                    lower: float | None = None) -> Problem:
    """``problem`` + λ(Σm − k)², with ``problem.k = k`` (per-variable ``scores`` carried over).

    ``penalty``: "auto"/None = :func:`auto_penalty` (``lower`` passed on); a
    number = λ itself; 0 = no penalty (only the k hint, for solvers that
    enforce k natively).

    Parameters
    ----------
    problem : Problem
    k : int
        Bits to keep, in [0, n].
    penalty : "auto", None or float
        "auto"/None: :func:`auto_penalty`; a number ≥ 0: λ itself; 0: only the
        k hint (for solvers that enforce k natively).
    lower : float or None
        Lower bound passed to :func:`auto_penalty`.

    Returns
    -------
    Problem
        With ``k`` and ``penalty`` set.

    Raises
    ------
    QSelectError
        If ``k`` is outside [0, n] or ``penalty`` is negative, non-finite or an unknown string.
    """
    if not 0 <= int(k) <= problem.n:
        raise QSelectError(f"cannot keep k={k} of {problem.n} bits; k must be in [0, {problem.n}]")
    k = int(k)
    if penalty is None or penalty == "auto":
        lam = auto_penalty(problem, k, lower)
    elif isinstance(penalty, str):
        raise QSelectError(f"penalty must be 'auto' or a number ≥ 0, got {penalty!r}")
    else:
        lam = float(penalty)
        if not np.isfinite(lam) or lam < 0:
            raise QSelectError(f"penalty must be a finite number ≥ 0, got {penalty!r}")
    return problem.with_cardinality_penalty(k, lam)  # carries scores, records the penalty


def keep_count(n: int, sparsity: float) -> int:
    """Bits to keep out of n at the given sparsity (fraction removed), rounded.

    Parameters
    ----------
    n : int
    sparsity : float
        Fraction removed, in [0, 1).

    Returns
    -------
    int
        round((1 − sparsity)·n), halves rounded up.
    """
    n = check_nonnegative_int(n, "n (bits to choose from)")
    return int(np.floor((1.0 - check_sparsity(sparsity)) * n + 0.5))  # half rounds up, not to even
