"""Compiled QAOA sweeps for block-sized X-mixer states, and the batched L-BFGS bookkeeping (numba).

In the rotated frame of the native engines (ψ̃ = D⁻¹ψ, D = diag(1, i)^⊗n, which
commutes with the diagonal cost) one X-mixer layer exp(-iβΣX) is the real
rotation R(β) = [[cos β, sin β], [-sin β, cos β]] on every qubit, acting on the
real and imaginary parts alike. For states of at most 2^17 amplitudes in
complex64 and 2^20 in complex128 (:data:`MAX_AMPLITUDES`; block-sized rows stay
in a core's cache) one compiled call runs a whole value and adjoint gradient per
row (:func:`value_and_grad_rows`):

- the cost phase exp(−iγc) in float64 from a branch-free sin/cos (fdlibm's
  kernels, within 2 ulp of libm's, vectorised), kept for the way back;
- the mixer three qubits per pass (a radix-8 butterfly, 4 multiply-adds per
  amplitude and qubit in float64 registers, one rounding per pass), where the
  engines' matmul path multiplies Kronecker-product matrices of ≤ 5-qubit groups;
- ⟨W⟩ and the gradient terms accumulated in float64: the p + 1 layer states are
  kept, only λ moves back, and dE/dβ is the pair sum λ·(Aψ), A = Σ_q [[0, 1], [-1, 0]]_q.
  Per row in flight that is p + 2 states and p float64 phase vectors
  (:func:`compiled_extra_bytes`, which ``native.check_memory`` counts).

Rows are independent and the GIL is released, so the batched engine shares a
batch's rows among threads without changing a bit. :func:`states_rows` and
:func:`expectations` run the same forward sweep for states and ⟨C⟩.

numba is optional: without it (:data:`AVAILABLE` False) the engines keep their
NumPy/BLAS path, which gives the same numbers to rounding, and
``minimize_batch`` its NumPy rounds. Both engines decide with
:func:`uses_row_kernel`, so a batch of one stays bit-for-bit the
single-problem engine.

References
----------
Farhi, Goldstone & Gutmann (2014), arXiv:1411.4028 (QAOA); Jones & Gacon (2020),
arXiv:2009.02823 (adjoint gradients); Nocedal & Wright, Numerical Optimization
(2006), Alg. 7.4 (L-BFGS two-loop recursion).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ...problems.kernels import load_kernels, numba_installed

#: whether numba is installed (it is imported, and the kernels compiled or loaded from numba's
#: cache, on first use; :func:`uses_row_kernel` also checks that this works)
AVAILABLE = numba_installed()

#: the largest state (amplitudes) the compiled sweeps serve, per state dtype. Measured on one thread
#: against the matmul path: 1.5–3× faster in ⟨C⟩ and gradient up to 2^17 amplitudes in both
#: precisions; beyond, where the matmuls use two threads, still 1.3–1.8× in complex128 up to 2^20 but
#: about even, ⟨C⟩ slower, in complex64
MAX_AMPLITUDES = {np.dtype(np.complex64): 1 << 17, np.dtype(np.complex128): 1 << 20}


def uses_row_kernel(mixer: str, N: int, dtype=np.complex64) -> bool:
    """Whether the engines run a 2^n-amplitude QAOA state through the compiled sweeps.

    Parameters
    ----------
    mixer : {'x', 'xy'}
    N : int
        State length 2^n.
    dtype : numpy complex dtype
        The state's precision.

    Returns
    -------
    bool
        True for the X mixer on states of at most ``MAX_AMPLITUDES[dtype]`` amplitudes when numba
        is installed and loads (the first call imports it).
    """
    limit = MAX_AMPLITUDES.get(np.dtype(dtype), 0)
    return AVAILABLE and mixer == "x" and N <= limit and _compiled() is not None


def compiled_extra_bytes(p: int, dtype) -> int:
    """Bytes per amplitude the compiled sweep of one row needs beyond a state and its adjoint state.

    The p + 1 kept layer states plus λ (instead of ψ and λ) and p float64 phase vectors:
    p·(itemsize + 16).

    Parameters
    ----------
    p : int
        QAOA depth.
    dtype : numpy complex dtype

    Returns
    -------
    int
    """
    return int(p) * (np.dtype(dtype).itemsize + 16)


def rotation_pairs(beta) -> np.ndarray:
    """(cos β_r, sin β_r) per row, shape (b, 2), float64, from ``math`` (the same bits for any batch).

    Parameters
    ----------
    beta : array_like, shape (b,)

    Returns
    -------
    numpy.ndarray of float64, shape (b, 2)
    """
    b = np.asarray(beta, dtype=np.float64).reshape(-1)
    nan = float("nan")  # cos/sin of ±inf and NaN, as NumPy gives them (math raises)
    return np.array([[math.cos(x), math.sin(x)] if math.isfinite(x) else [nan, nan]
                     for x in b.tolist()]).reshape(-1, 2)


@lru_cache(maxsize=None)
def _compiled():
    """The numba kernels module (imported, its functions compiled or loaded from cache, on first use).

    None, with a warning, when numba is installed but cannot be imported (e.g. built for
    another NumPy): the engines then keep their matmul mixer instead of failing.
    """
    return load_kernels(f"{__package__}._kernels_numba", "the QAOA engines use their matmul mixer")


def _floats(a: np.ndarray) -> np.ndarray:
    """The interleaved real view of a C-contiguous complex array, last axis doubled."""
    return a.view(a.real.dtype)


def value_and_grad_rows(psi0: np.ndarray, C: np.ndarray, W: np.ndarray, rows: np.ndarray, G: np.ndarray,
                        CS: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """⟨W⟩ and its adjoint gradient for every row, one compiled pass per row (X mixer, rotated frame).

    Per row: the forward sweep keeps its p+1 layer states, ⟨W⟩ = Σ_f W_f |ψ_f|² in float64,
    then only λ = Wψ moves back (dE/dβ_l = 2 λ·(Aψ_l), dE/dγ_l = 2 Im⟨λ|C|ψ_(l−1)⟩). The cost
    phases exp(−iγ_l c) are formed in float64 in the sweep (a branch-free sin/cos, within 2 ulp
    of libm's) and kept for the way back; every product is formed in float64 and rounded once
    into the state's dtype. Rows are independent and the GIL is released: threads may share a
    batch by calling this on slices of it.

    Parameters
    ----------
    psi0 : numpy.ndarray, complex, shape (2^n,)
        Start state in the rotated frame.
    C, W : numpy.ndarray, real, shape (B, 2^n), C-contiguous
        The phase's generator (the cost) and the observable of every problem (often one array).
    rows : numpy.ndarray of int64, shape (b,)
        The problems to evaluate.
    G : numpy.ndarray of float64, shape (b, p)
        γ_1..γ_p per row.
    CS : numpy.ndarray of float64, shape (b, p, 2)
        (cos β_l, sin β_l) per row and layer (:func:`rotation_pairs`).

    Returns
    -------
    values : numpy.ndarray of float64, shape (b,)
    grads : numpy.ndarray of float64, shape (b, 2p), ``[dγ_1..dγ_p, dβ_1..dβ_p]``

    References
    ----------
    Jones & Gacon (2020), arXiv:2009.02823 (adjoint gradients).
    """
    b, p = G.shape
    val, grad = np.empty(b), np.empty((b, 2 * p))
    fn, args = value_and_grad_call(psi0, C, W, rows, G, CS, val, grad)
    fn(*args)
    return val, grad


def value_and_grad_call(psi0, C, W, rows, G, CS, val, grad) -> tuple:
    """The compiled function of :func:`value_and_grad_rows` and its converted arguments, ``(fn, args)``.

    ``fn(*args)`` runs compiled code only (the GIL released), so a thread pool can be handed it
    directly; ``val`` (b,) and ``grad`` (b, 2p) are float64 arrays it writes into.
    """
    return _compiled()._value_and_grad_rows, (_floats(psi0), C, W, np.ascontiguousarray(rows, dtype=np.int64),
                                              np.ascontiguousarray(G, dtype=np.float64),
                                              np.ascontiguousarray(CS, dtype=np.float64), val, grad)


def lbfgs_rows_call(psi0, C, W, X, f, evals, status, memory: int, ftol: float, gtol: float, maxiter: int,
                    max_backtracks: int) -> tuple:
    """The compiled whole-row L-BFGS and its arguments, ``(fn, args)``: ``fn(*args, lo, hi)`` runs rows lo..hi-1.

    Each row goes through :func:`optimizers.minimize_batch`'s state machine (the same
    ``_start_row``/``_advance_row`` code its compiled rounds run) with its evaluations
    (:func:`value_and_grad_rows`'s per-row code, (cos β, sin β) from libm as :func:`rotation_pairs`)
    in between, never returning to Python: the same numbers as ``minimize_batch`` on the engine's
    ``value_and_grad``, bit for bit. Rows are independent and the GIL is released, so threads may
    share a batch by calling ``fn`` on disjoint ranges.

    Parameters
    ----------
    psi0 : numpy.ndarray, complex, shape (2^n,)
    C, W : numpy.ndarray, real, shape (B, 2^n), C-contiguous
    X : numpy.ndarray of float64, shape (B, 2p), C-contiguous
        Start points, overwritten with each row's best point.
    f : numpy.ndarray of float64, shape (B,)
        Out: the value at each best point.
    evals, status : numpy.ndarray of int64, shape (B,)
        Out: value-and-gradient calls per row, and the stopping reason (``optimizers`` codes 1–4).
    memory, ftol, gtol, maxiter, max_backtracks
        As :func:`optimizers.minimize_batch` (``maxiter`` ≥ 1).

    Returns
    -------
    tuple
        ``(fn, args)``.

    References
    ----------
    Nocedal & Wright, Numerical Optimization (2006), Alg. 7.4–7.5 and §3.5.
    """
    return _compiled()._lbfgs_rows, (_floats(psi0), C, W, X, f, evals, status, int(memory), float(ftol), float(gtol),
                                     int(maxiter), int(max_backtracks))


def states_rows(psi0: np.ndarray, C: np.ndarray, rows: np.ndarray, G: np.ndarray, CS: np.ndarray) -> np.ndarray:
    """The final QAOA states of :func:`value_and_grad_rows`' forward sweep, shape (b, 2^n), rotated frame.

    Parameters
    ----------
    psi0 : numpy.ndarray, complex, shape (2^n,)
    C : numpy.ndarray, real, shape (B, 2^n), C-contiguous
    rows : numpy.ndarray of int64, shape (b,)
    G : numpy.ndarray of float64, shape (b, p)
    CS : numpy.ndarray of float64, shape (b, p, 2)

    Returns
    -------
    numpy.ndarray, psi0's dtype, shape (b, 2^n)
    """
    out = np.empty((len(rows), psi0.size), psi0.dtype)
    _compiled()._states_rows(_floats(psi0), C, np.ascontiguousarray(rows, dtype=np.int64),
                             np.ascontiguousarray(G, dtype=np.float64),
                             np.ascontiguousarray(CS, dtype=np.float64), _floats(out))
    return out


def expectations(states: np.ndarray, W: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Σ_f W_(rows[r], f) |ψ_(r, f)|² per row, float64 (b,), compiled (no BLAS call).

    Parameters
    ----------
    states : numpy.ndarray, complex, shape (b, 2^n), C-contiguous
    W : numpy.ndarray, real, shape (B, 2^n), C-contiguous
        Observables of every problem.
    rows : numpy.ndarray of int64, shape (b,)
        Which observable each state is paired with.

    Returns
    -------
    numpy.ndarray of float64, shape (b,)
    """
    out = np.empty(states.shape[0])
    _compiled()._expectations(_floats(states), W, np.ascontiguousarray(rows, dtype=np.int64), out)
    return out


def phases(c: np.ndarray, gamma: float) -> np.ndarray:
    """exp(−iγc) as the compiled sweeps form it (float64 sin/cos), complex128, c's shape (1-D).

    Parameters
    ----------
    c : numpy.ndarray, real, shape (N,)
    gamma : float

    Returns
    -------
    numpy.ndarray of complex128, shape (N,)
    """
    out = np.empty(c.size, np.complex128)
    _compiled()._phases(np.ascontiguousarray(c), float(gamma), out.view(np.float64))
    return out


def cumulative_rows(P: np.ndarray) -> np.ndarray:
    """Every row's cumulative distribution, ending at exactly 1: ``np.cumsum(P, axis=1) / its last column``.

    Compiled (the GIL released) where numba loads, else NumPy; the same bits either way.

    Parameters
    ----------
    P : numpy.ndarray of float64, shape (B, N)
        Non-negative rows with a positive, finite sum.

    Returns
    -------
    numpy.ndarray of float64, shape (B, N)
    """
    P = np.ascontiguousarray(P, dtype=np.float64)
    k = _compiled() if AVAILABLE and P.size else None
    if k is not None:
        cdf = np.empty_like(P)
        k._cumulative_rows(P, cdf)
        return cdf
    cdf = np.cumsum(P, axis=1)
    cdf /= cdf[:, -1:]
    return cdf


def offered_rows(cdf: np.ndarray, U: np.ndarray, top: np.ndarray,
                 presorted: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's drawn or flagged strings and their draw counts, all rows flat.

    Row r draws string ``np.searchsorted(cdf[r], u, side="right")`` for every uniform ``u`` of
    ``U[r]`` (inverse-CDF sampling, as ``Generator.choice(N, p=...)`` does); its candidates are the
    strings drawn at least once or flagged in ``top[r]``, in index order. Compiled (one merge of the
    sorted draws with the cdf per row) where numba loads, else NumPy; the same numbers either way.

    Parameters
    ----------
    cdf : numpy.ndarray of float64, shape (B, N)
        Cumulative distributions, each row non-decreasing and ending at exactly 1.
    U : numpy.ndarray of float64, shape (B, shots)
        Uniforms in [0, 1); sorted in place row by row (NumPy's vectorised sort) unless ``presorted``.
    top : numpy.ndarray of bool, shape (B, N)
        Strings offered whether drawn or not.
    presorted : bool
        Every row of ``U`` is already in ascending order (the counts are those of any order).

    Returns
    -------
    cand : numpy.ndarray of int64, shape (total,)
        Candidate indices, row after row.
    counts : numpy.ndarray of int64, shape (total,)
        Draws of each candidate (0 for one only flagged).
    offsets : numpy.ndarray of int64, shape (B + 1,)
        Row r's candidates are ``cand[offsets[r]:offsets[r + 1]]``.
    """
    B, N = cdf.shape
    cap = B * min(N, U.shape[1] + int(np.count_nonzero(top, axis=1).max(initial=0)))
    cand, counts = np.empty(cap, np.int64), np.empty(cap, np.int64)
    offsets = np.empty(B + 1, np.int64)
    if not presorted:
        U.sort(axis=1)  # the counts do not depend on the draws' order; sorted, they merge with the cdf
    k = _compiled() if AVAILABLE else None
    if k is not None:
        k._offered_rows(np.ascontiguousarray(cdf, dtype=np.float64), U, np.ascontiguousarray(top, dtype=np.bool_),
                        cand, counts, offsets)
    else:
        o = offsets[0] = 0
        for r in range(B):
            hits = np.bincount(cdf[r].searchsorted(U[r], side="right"), minlength=N)
            c = np.flatnonzero((hits > 0) | top[r])
            cand[o:o + c.size], counts[o:o + c.size] = c, hits[c]
            o = offsets[r + 1] = o + c.size
    return cand[:offsets[-1]], counts[:offsets[-1]], offsets


def order_rows(e: np.ndarray, counts: np.ndarray, keys: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per row of flat candidates, lowest energy first; ties by most counts, then by smallest key.

    Within every row ``offsets[r]:offsets[r + 1]`` the order of ``np.lexsort((keys, -counts, e))``
    (a total order when a row's keys are distinct). Compiled where numba loads, else NumPy.

    Parameters
    ----------
    e : numpy.ndarray of float64, shape (total,)
    counts, keys : numpy.ndarray of int64, shape (total,)
    offsets : numpy.ndarray of int64, shape (B + 1,)

    Returns
    -------
    numpy.ndarray of int64, shape (total,)
        Positions into the flat arrays, row after row.
    """
    perm = np.empty(e.size, np.int64)
    k = _compiled() if AVAILABLE else None
    if k is not None:
        k._order_rows(np.ascontiguousarray(e, dtype=np.float64), np.ascontiguousarray(counts, dtype=np.int64),
                      np.ascontiguousarray(keys, dtype=np.int64), np.ascontiguousarray(offsets, dtype=np.int64), perm)
        return perm
    for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist()):
        perm[a:b] = a + np.lexsort((keys[a:b], -counts[a:b], e[a:b]))
    return perm


def lbfgs_kernels():
    """The compiled batched L-BFGS steps (``_lbfgs_start``, ``_lbfgs_advance``), or None without numba.

    Used by :func:`optimizers.minimize_batch`, which otherwise runs the same state machine in NumPy.
    """
    return _compiled() if AVAILABLE else None


__all__ = ["AVAILABLE", "MAX_AMPLITUDES", "compiled_extra_bytes", "cumulative_rows", "expectations", "lbfgs_kernels",
           "lbfgs_rows_call", "offered_rows", "order_rows", "phases", "rotation_pairs", "states_rows",
           "uses_row_kernel", "value_and_grad_call", "value_and_grad_rows"]
