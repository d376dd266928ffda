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
