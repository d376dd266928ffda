"""Compiled folds and energy tables of QUBOs, with NumPy fallbacks that give the same bits.

Block descents fix the bits outside a block thousands of times per layer and tabulate every
block's 2^q energies; in NumPy each is a dozen small array calls, mostly interpreter overhead,
and with a BLAS product the rounding depended on the BLAS build. Here every sum has one
documented order (left to right), so the compiled kernels (numba, loaded on first use) and the
NumPy fallbacks agree bit for bit, on any machine:

- :func:`qubo_fold` — the QUBO over the free bits with the others at their values;
- :func:`qubo_table` — all 2^n energies by doubling (bit i on top of every assignment of the
  bits below it adds lin_i + Σ_{j<i} Q_ji x_j, a field itself built by doubling).

numba is optional: without it (:data:`AVAILABLE` False), or when it cannot be loaded, the
fallbacks run.
"""
from __future__ import annotations

import importlib.util
import warnings
from functools import lru_cache

import numpy as np


def numba_installed() -> bool:
    """Whether numba is installed (found, not imported).

    Returns
    -------
    bool
    """
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # a broken or deliberately hidden install
        return False


def load_kernels(module: str, instead: str):
    """Import a module of numba kernels (compiled, or loaded from numba's cache), or None with a warning.

    Parameters
    ----------
    module : str
        Absolute module name.
    instead : str
        What runs instead when it cannot be loaded (for the warning).

    Returns
    -------
    module or None
        None when numba is installed but cannot be imported (e.g. built for another NumPy).
    """
    try:
        return importlib.import_module(module)
    except Exception as err:  # numba raises ImportError, but a broken install can raise anything
        warnings.warn(f"numba is installed but could not be loaded ({type(err).__name__}: {err}); {instead}",
                      RuntimeWarning, stacklevel=3)
        return None


#: whether numba is installed (the kernels are compiled, or loaded from numba's cache, on first use)
AVAILABLE = numba_installed()

#: the largest table :func:`qubo_table` builds compiled: beyond, NumPy's vectorised adds are as fast
#: or faster (measured 0.5–0.6× NumPy's time at 18 bits, about even at 20, 1.1–1.2× at 22–24)
COMPILED_TABLE_BITS = 20


@lru_cache(maxsize=None)
def _compiled():
    """The numba kernels module, or None (with a warning) when numba is installed but does not load."""
    if not AVAILABLE:
        return None
    return load_kernels(f"{__package__}._kernels_numba", "QUBO folds and energy tables run in NumPy")


def _running_sum(a: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Left-to-right sums along ``axis`` (``np.cumsum``'s order); 0.0 for an empty axis."""
    if a.shape[axis] == 0:
        return np.zeros(a.shape[:axis] + a.shape[axis:][1:]) if a.ndim > 1 else 0.0
    return np.take(np.cumsum(a, axis=axis), -1, axis=axis)


def qubo_fold(lin: np.ndarray, quad: np.ndarray, sym: np.ndarray, free: np.ndarray,
              on: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, bool]:
    """Fold the bits outside ``free`` into a QUBO over ``free``.

    With ``on`` the set bits outside the block (every other bit is 0):

    - ``delta = Σ_{a} lin[on_a] + Σ_{a<b} quad[on_a, on_b]`` (each sum left to right, pairs row by row),
      the energy the fixed bits add to the offset;
    - ``lin_out[r] = (lin[f_r] + Σ_a sym[f_r, on_a]) + 0.0``, their field on free bit ``f_r``;
    - ``quad_out = quad[free][:, free] + 0.0`` (adding 0.0 turns −0.0 into 0.0, as the QUBO
      constructor's triangle sums do).

    Parameters
    ----------
    lin : numpy.ndarray of float64, shape (n,)
        Linear terms (diagonal folded in).
    quad : numpy.ndarray of float64, shape (n, n)
        Strictly upper-triangular couplings, C-contiguous.
    sym : numpy.ndarray of float64, shape (n, n)
        ``quad + quad.T``, C-contiguous.
    free : numpy.ndarray of int64, shape (m,)
        Free positions, sorted.
    on : numpy.ndarray of int64, shape (s,)
        Set positions outside ``free``, sorted.

    Returns
    -------
    delta : float
    lin_out : numpy.ndarray of float64, shape (m,)
    quad_out : numpy.ndarray of float64, shape (m, m)
    finite : bool
        Whether every ``lin_out`` is finite (a fold can overflow where the terms did not).
    """
    k = _compiled()
    if k is not None:
        lin_out = np.empty(free.size)
        quad_out = np.empty((free.size, free.size))
        delta, finite = k._qubo_fold(lin, quad, sym, free, on, lin_out, quad_out)
        return float(delta), lin_out, quad_out, bool(finite)
    iu, ju = np.triu_indices(on.size, 1)
    with np.errstate(over="ignore", invalid="ignore"):
        s, q = _running_sum(lin[on]), _running_sum(quad[on[iu], on[ju]])
        t = _running_sum(sym[np.ix_(free, on)], axis=1) if free.size else np.zeros(0)
        v = lin[free] + t
        delta = float(s + q)
    return delta, v + 0.0, quad[np.ix_(free, free)] + 0.0, bool(np.isfinite(v).all())


def qubo_table(lin: np.ndarray, quad: np.ndarray, offset: float, dtype=np.float64) -> np.ndarray:
    """All 2^n energies ``xᵀ(diag(lin) + quad)x + offset`` by doubling, little-endian index.

    ``c[0] = offset``; for bit i, the field ``F_i(l) = lin_i + Σ_{j<i} quad[j, i] l_j`` over the
    2^i assignments l of the lower bits is built by doubling (``F[2^j + t] = F[t] + quad[j, i]``)
    and ``c[2^i + l] = c[l] + F_i(l)``. Every entry is a chain of additions in ``dtype`` (a
    coupling added to a float32 field is summed in float64 and rounded once, under any NumPy),
    O(2^n) work; compiled up to :data:`COMPILED_TABLE_BITS` bits in float32 and float64.

    Parameters
    ----------
    lin : numpy.ndarray of float64, shape (n,)
    quad : numpy.ndarray of float64, shape (n, n)
        Strictly upper-triangular, C-contiguous.
    offset : float
    dtype : numpy floating dtype
        Precision of the table (and of its sums).

    Returns
    -------
    numpy.ndarray of ``dtype``, shape (2^n,)
    """
    n = lin.size
    c = np.empty(1 << n, dtype=dtype)
    field = np.empty(max(1 << max(n - 1, 0), 1), dtype=dtype)
    compiled = n <= COMPILED_TABLE_BITS and c.dtype in (np.float32, np.float64)  # numba has no float16, longdouble
    k = _compiled() if compiled else None
    if k is not None:
        k._qubo_table(lin, quad, float(offset), c, field)
        return c
    c[0] = offset
    for i in range(n):
        size = 1 << i
        field[0] = lin[i]
        for j in range(i):
            s = 1 << j
            np.add(field[:s], quad[j, i], out=field[s:2 * s], dtype=np.float64)  # float64 sum, one rounding
        np.add(c[:size], field[:size], out=c[size:2 * size])
    return c


def _row_and_column_sums(quad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left-to-right sums of every row and every column of a square matrix (zeros when empty)."""
    if quad.shape[0] == 0:
        return np.zeros(0), np.zeros(0)
    return np.cumsum(quad, axis=1)[:, -1], np.cumsum(quad, axis=0)[-1]


def ising_fields(lin: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The Ising fields of a QUBO (z = 1 − 2x): ``h_i = −lin_i/2 − (r_i + c_i)/4``.

    ``r_i`` and ``c_i`` are row i's and column i's sums of ``quad``, left to right (top to bottom).

    Parameters
    ----------
    lin : numpy.ndarray of float64, shape (n,)
    quad : numpy.ndarray of float64, shape (n, n)
        Strictly upper-triangular, C-contiguous.

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
    """
    k = _compiled()
    if k is not None:
        h = np.empty(lin.size)
        k._ising_fields(lin, quad, h)
        return h
    r, c = _row_and_column_sums(quad)
    return -lin / 2 - (r + c) / 4


def ising_maxima(lin: np.ndarray, quad: np.ndarray) -> tuple[float, float]:
    """``max |h_i|`` of :func:`ising_fields` (NaN if an h_i is) and ``max |quad_ij|``, 0.0 for none.

    Parameters
    ----------
    lin, quad : numpy.ndarray of float64, shapes (n,) and (n, n)
        As :func:`ising_fields` takes them.

    Returns
    -------
    (float, float)
    """
    k = _compiled()
    if k is not None:
        hm, qm = k._ising_maxima(lin, quad)
        return float(hm), float(qm)
    return float(np.abs(ising_fields(lin, quad)).max(initial=0.0)), float(np.abs(quad).max(initial=0.0))


def z_constant(lin: np.ndarray, quad: np.ndarray, offset: float) -> float:
    """The Ising constant of a QUBO: ``offset + L/2 + T/4``.

    ``L`` sums ``lin`` left to right and ``T`` sums ``quad`` row after row, each from its first entry.

    Parameters
    ----------
    lin : numpy.ndarray of float64, shape (n,)
    quad : numpy.ndarray of float64, shape (n, n)
        C-contiguous.
    offset : float

    Returns
    -------
    float
    """
    k = _compiled()
    if k is not None:
        return float(k._z_constant(lin, quad, float(offset)))
    L = _running_sum(lin)
    T = _running_sum(quad.reshape(-1))
    return float(offset + L / 2 + T / 4)


def block_positions(free: np.ndarray, x: np.ndarray, n: int) -> tuple[np.ndarray, int] | None:
    """A block descent's positions checked in one compiled call, or None without numba.

    Parameters
    ----------
    free : numpy.ndarray of int64, shape (m,)
    x : numpy.ndarray of uint8, shape (n,)
    n : int

    Returns
    -------
    (numpy.ndarray of int64, int) or None
        ``free`` sorted, and 0 when ``x`` is 0/1 and the positions are distinct and in
        ``[0, n)``; else 1 (``x`` not 0/1), 2 (a position out of range) or 3 (a position repeated).
    """
    k = _compiled()
    if k is None:
        return None
    out = np.empty(free.size, np.int64)
    return out, int(k._block_positions(free, x, n, out))


__all__ = ["AVAILABLE", "COMPILED_TABLE_BITS", "block_positions", "ising_fields", "ising_maxima", "load_kernels",
           "numba_installed", "qubo_fold", "qubo_table", "z_constant"]
