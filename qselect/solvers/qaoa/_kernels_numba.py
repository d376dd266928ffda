"""The numba kernels behind :mod:`qselect.solvers.qaoa.kernels` (imported on first use only).

Module-level functions, so numba's on-disk cache (``cache=True``) keeps them compiled between
processes. Arrays are the interleaved real views (re, im, re, im, ...) of complex states in the
rotated frame; ``h`` counts floats, so the lowest qubit's pairs are ``h = 2`` apart.
"""
import numpy as np
from numba import njit, uint64


@njit(inline="always")
def _rot(a, b, c, s):
    return c * a + s * b, c * b - s * a


@njit(boundscheck=False, cache=True)
def _one_qubit(g, h, c, s):
    L = uint64(g.size)
    base = uint64(0)
    while base < L:
        for k in range(h):
            i0 = base + k
            i1 = i0 + h
            a0, a1 = _rot(np.float64(g[i0]), np.float64(g[i1]), c, s)
            g[i0] = a0
            g[i1] = a1
        base += uint64(2) * h


@njit(boundscheck=False, cache=True)
def _two_qubits(g, h, c, s):
    L = uint64(g.size)
    base = uint64(0)
    while base < L:
        for k in range(h):
            i0 = base + k
            i1 = i0 + h
            i2 = i1 + h
            i3 = i2 + h
            a0, a1 = _rot(np.float64(g[i0]), np.float64(g[i1]), c, s)
            a2, a3 = _rot(np.float64(g[i2]), np.float64(g[i3]), c, s)
            a0, a2 = _rot(a0, a2, c, s)
            a1, a3 = _rot(a1, a3, c, s)
            g[i0] = a0
            g[i1] = a1
            g[i2] = a2
            g[i3] = a3
        base += uint64(4) * h


@njit(boundscheck=False, cache=True)
def _three_qubits(g, h, c, s):
    L = uint64(g.size)
    base = uint64(0)
    while base < L:
        for k in range(h):
            i0 = base + k
            i1 = i0 + h
            i2 = i1 + h
            i3 = i2 + h
            i4 = i3 + h
            i5 = i4 + h
            i6 = i5 + h
            i7 = i6 + h
            a0, a1 = _rot(np.float64(g[i0]), np.float64(g[i1]), c, s)
            a2, a3 = _rot(np.float64(g[i2]), np.float64(g[i3]), c, s)
            a4, a5 = _rot(np.float64(g[i4]), np.float64(g[i5]), c, s)
            a6, a7 = _rot(np.float64(g[i6]), np.float64(g[i7]), c, s)
            a0, a2 = _rot(a0, a2, c, s)
            a1, a3 = _rot(a1, a3, c, s)
            a4, a6 = _rot(a4, a6, c, s)
            a5, a7 = _rot(a5, a7, c, s)
            a0, a4 = _rot(a0, a4, c, s)
            a1, a5 = _rot(a1, a5, c, s)
            a2, a6 = _rot(a2, a6, c, s)
            a3, a7 = _rot(a3, a7, c, s)
            g[i0] = a0
            g[i1] = a1
            g[i2] = a2
            g[i3] = a3
            g[i4] = a4
            g[i5] = a5
            g[i6] = a6
            g[i7] = a7
        base += uint64(8) * h


@njit(boundscheck=False, cache=True)
def _rotate_rows(F, CS):
    rows = F.shape[0]
    L = uint64(F.shape[1])
    for r in range(rows):
        g = F[r]
        c = CS[r, 0]
        s = CS[r, 1]
        h = uint64(2)  # floats per half-block of the lowest qubit (one complex amplitude)
        while h * uint64(8) <= L:
            _three_qubits(g, h, c, s)
            h = h * uint64(8)
        if h * uint64(4) <= L:
            _two_qubits(g, h, c, s)
            h = h * uint64(4)
        if h < L:
            _one_qubit(g, h, c, s)


@njit(fastmath={"reassoc"}, boundscheck=False, cache=True)
def _pair_sum(lam, psi, h):
    # Σ over the pairs (i, i+h) of one qubit: λ_i ψ_{i+h} − λ_{i+h} ψ_i, in float64 (vectorised sum)
    L = uint64(lam.size)
    two_h = uint64(2) * h
    acc = 0.0
    base = uint64(0)
    while base < L:
        for k in range(h):
            i = base + k
            j = i + h
            acc += np.float64(lam[i]) * np.float64(psi[j]) - np.float64(lam[j]) * np.float64(psi[i])
        base += two_h
    return acc


@njit(fastmath={"reassoc"}, boundscheck=False, cache=True)
def _quad_sum(lam, psi, h):
    # the pair sums of two qubits (pairs at distance h and 2h) in one pass over the blocks of 4h
    L = uint64(lam.size)
    four_h = uint64(4) * h
    acc = 0.0
    base = uint64(0)
    while base < L:
        for k in range(h):
            i0 = base + k
            i1 = i0 + h
            i2 = i1 + h
            i3 = i2 + h
            l0 = np.float64(lam[i0])
            l1 = np.float64(lam[i1])
            l2 = np.float64(lam[i2])
            l3 = np.float64(lam[i3])
            p0 = np.float64(psi[i0])
            p1 = np.float64(psi[i1])
            p2 = np.float64(psi[i2])
            p3 = np.float64(psi[i3])
            acc += (l0 * p1 - l1 * p0) + (l2 * p3 - l3 * p2) + (l0 * p2 - l2 * p0) + (l1 * p3 - l3 * p1)
        base += four_h
    return acc


@njit(fastmath=False, boundscheck=False, cache=True)
def _generator_dots(Lm, P, out):
    rows = Lm.shape[0]
    L = uint64(Lm.shape[1])
    for r in range(rows):
        lam = Lm[r]
        psi = P[r]
        acc = 0.0
        h = uint64(2)
        while h * uint64(4) <= L:
            acc += _quad_sum(lam, psi, h)
            h = h * uint64(4)
        if h < L:
            acc += _pair_sum(lam, psi, h)
        out[r] = acc
