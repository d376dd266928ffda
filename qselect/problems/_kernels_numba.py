"""The numba kernels behind :mod:`qselect.problems.kernels` (imported on first use only).

Module-level functions, so numba's on-disk cache (``cache=True``) keeps them compiled between
processes. Every sum runs left to right in the order :mod:`~qselect.problems.kernels` documents,
which its NumPy fallbacks reproduce bit for bit; the entry points release the GIL.
"""
import numpy as np
from numba import njit


@njit(nogil=True, boundscheck=False, cache=True)
def _qubo_fold(lin, quad, sym, fr, on, lin_out, quad_out):
    m = on.size
    s = lin[on[0]] if m else 0.0
    for a in range(1, m):
        s += lin[on[a]]
    q = 0.0
    first = True
    for a in range(m):
        i = on[a]
        for b in range(a + 1, m):
            if first:
                q = quad[i, on[b]]
                first = False
            else:
                q += quad[i, on[b]]
    finite = True
    for r in range(fr.size):
        f = fr[r]
        t = sym[f, on[0]] if m else 0.0
        for a in range(1, m):
            t += sym[f, on[a]]
        v = lin[f] + t
        finite &= np.isfinite(v)
        lin_out[r] = v + 0.0
        for c in range(fr.size):
            quad_out[r, c] = quad[f, fr[c]] + 0.0
    return s + q, finite


@njit(nogil=True, boundscheck=False, cache=True)
def _qubo_table(lin, quad, offset, c, field):
    c[0] = offset
    for i in range(lin.size):
        size = 1 << i
        field[0] = lin[i]
        for j in range(i):
            s = 1 << j
            qji = quad[j, i]
            for t in range(s):
                field[s + t] = field[t] + qji
        for t in range(size):
            c[size + t] = c[t] + field[t]


@njit(inline="always")
def _field(lin, quad, i):
    # h_i = -lin_i/2 - (r_i + c_i)/4, row i's and column i's sums of quad left to right
    r = quad[i, 0]
    c = quad[0, i]
    for j in range(1, lin.size):
        r += quad[i, j]
        c += quad[j, i]
    return -lin[i] / 2 - (r + c) / 4


@njit(nogil=True, boundscheck=False, cache=True)
def _ising_fields(lin, quad, h):
    for i in range(lin.size):
        h[i] = _field(lin, quad, i)


@njit(nogil=True, boundscheck=False, cache=True)
def _ising_maxima(lin, quad):
    # (max |h_i| (NaN if any h_i is), max |quad_ij|), h as _ising_fields forms it; 0.0 when empty
    n = lin.size
    hm = 0.0
    qm = 0.0
    nan = False
    for i in range(n):
        a = abs(_field(lin, quad, i))
        if a != a:
            nan = True
        elif a > hm:
            hm = a
        for j in range(n):
            b = abs(quad[i, j])
            if b > qm:
                qm = b
    return (np.nan if nan else hm), qm


@njit(nogil=True, boundscheck=False, cache=True)
def _z_constant(lin, quad, offset):
    n = lin.size
    if n == 0:
        return offset + 0.0 / 2 + 0.0 / 4
    s = lin[0]
    for i in range(1, n):
        s += lin[i]
    t = quad[0, 0]
    for i in range(n):
        for j in range(n):
            if i or j:
                t += quad[i, j]
    return offset + s / 2 + t / 4


@njit(nogil=True, boundscheck=False, cache=True)
def _block_positions(free, x, n, out):
    # out = sorted free; 0 when x is 0/1 and the positions are distinct and in [0, n); else 1 (x not 0/1),
    # 2 (out of range) or 3 (repeated)
    for i in range(x.size):
        if x[i] > 1:
            return 1
    out[:] = np.sort(free)
    m = out.size
    if m and (out[0] < 0 or out[m - 1] >= n):
        return 2
    for i in range(1, m):
        if out[i] == out[i - 1]:
            return 3
    return 0
