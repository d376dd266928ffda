"""Batched NumPy QAOA: many small problems of one size as one ``(batch, 2^n)`` state.

A layer's local problems (hundreds of 8–16-qubit blocks) are each a tiny
simulation; solved one by one, per-call overhead dominates. Here every
problem is a row of one array: the cost phase is one elementwise pass with a
per-row γ, the X mixer one stacked matmul per qubit group with a per-row
rotation, and the adjoint gradient (Jones & Gacon 2020, arXiv:2009.02823)
runs on all rows at once.

Each row goes through exactly the operations :class:`native.NumpyQAOA` applies
to a single state (same groups, rotated frame, rotation matrices, dtypes and
reductions), so a batch of one reproduces the sequential engine bit for bit,
and every row of a larger batch agrees with it to rounding.

Conventions as in :mod:`native`: little-endian index, angles
``[γ_1..γ_p, β_1..β_p]`` per row, layer ``exp(-iβB) exp(-iγC)``.
"""
from __future__ import annotations

import numpy as np

from ...ansatz import check_mixer, ring_pairs
from ...errors import QSelectError
from ...problems.bits import popcounts
from .native import (
    NumpyQAOA,
    _group_generator,
    _groups,
    _hamming_cached,
    _rotation_signs,
    abs2,
    phase_into,
    real_dtype,
    single_thread_blas,
)


class BatchedNumpyQAOA:
    """Statevector QAOA for ``B`` cost vectors of one length ``2^n``, all rows at once.

    Parameters
    ----------
    costs : array_like, shape (B, 2^n)
        One (normalised) diagonal cost per row.
    p : int
        QAOA depth.
    mixer : {'x', 'xy'}
        Transverse-field mixer, or the XY ring from a Dicke state (then ``k``
        bits set, the same ``k`` for every row).
    k : int, optional
        Hamming weight for the XY mixer.
    dtype : numpy complex dtype
        ``complex64`` or ``complex128``.

    Notes
    -----
    Memory: ``B · 2^n`` amplitudes for the state, twice that (plus one
    scratch state) for the adjoint gradient, and ``B · 2^n`` real costs —
    the solver checks it with :func:`native.check_memory` (``batch=B``)
    before building the engine. Meant for block-sized problems (n ≲ 20).

    References
    ----------
    Farhi, Goldstone & Gutmann (2014), arXiv:1411.4028 (QAOA); Hadfield et al.
    (2019), arXiv:1709.03489 (XY mixer); Jones & Gacon (2020),
    arXiv:2009.02823 (adjoint gradients).
    """

    def __init__(self, costs, p: int, mixer: str = "x", k: int | None = None, dtype=np.complex128):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.complex64, np.complex128):
            raise QSelectError(f"native engine dtype must be complex64 or complex128, got {dtype}")
        self.rdtype = real_dtype(self.dtype)
        costs = np.asarray(costs)
        if costs.ndim != 2 or costs.shape[0] < 1:
            raise QSelectError(f"batched costs must have shape (batch, 2^n), got {costs.shape}")
        B, N = costs.shape
        n = N.bit_length() - 1
        if N != 1 << n:
            raise QSelectError(f"cost vectors must have length 2^n, got {N}")
        check_mixer(mixer, k, need_k=True)
        self.B, self.n, self.N, self.p, self.mixer, self.k = B, n, N, int(p), mixer, k
        self.costs = np.ascontiguousarray(costs, dtype=self.rdtype)
        self._groups = _groups(n)
        self._gen = {m: _group_generator(m, self.rdtype) for _, m in self._groups}
        self._rot = {m: (_rotation_signs(m), _hamming_cached(m)) for _, m in self._groups}
        self._frame = mixer == "x"
        self._pairs = ring_pairs(n)
        # the start state of one row, built exactly as the sequential engine builds it
        self._psi0 = NumpyQAOA(np.zeros(N, self.rdtype), 1, mixer, k, self.dtype).initial_state()

    # ---- building blocks (each row: the sequential engine's operations) ------
    def _rows(self, rows):
        if rows is None:
            return np.arange(self.B)
        r = np.asarray(rows, dtype=np.int64).reshape(-1)
        if r.size and (r.min() < 0 or r.max() >= self.B):
            raise QSelectError(f"row indices must lie in [0, {self.B}), got {r.min()}..{r.max()}")
        return r

    def _split(self, angles, b: int):
        a = np.asarray(angles, dtype=np.float64)
        if a.ndim == 1:
            a = np.broadcast_to(a, (b, a.size))
        if a.shape != (b, 2 * self.p):
            raise QSelectError(f"batched QAOA at p={self.p} needs angles of shape ({b}, {2 * self.p}) "
                               f"[γ_1..γ_p, β_1..β_p] per row, got {a.shape}")
        return a[:, :self.p], a[:, self.p:]

    def _phase(self, states, costs, gamma):
        """states[i] *= exp(-iγ_r c_r) row by row (γ of shape (b,)); one phase array for all states."""
        f = np.empty(costs.shape, self.rdtype)
        np.multiply(costs, -gamma[:, None], out=f)
        h = np.empty(costs.shape, self.dtype)
        phase_into(f, h)
        for s in states:
            s *= h

    def _rotations(self, m: int, beta, low: bool):
        """Per-row ⊗^m [[c, s], [-s, c]] (b, 2^m, 2^m) — and its kron(·, I2)ᵀ for the lowest group."""
        c, s = np.cos(np.abs(beta)), np.sin(np.abs(beta))
        sign, d = self._rot[m]
        j = np.arange(m + 1)
        pw = c[:, None] ** (m - j) * s[:, None] ** j
        M = (sign * pw[:, d]).astype(self.rdtype)
        neg = beta < 0
        M[neg] = M[neg].transpose(0, 2, 1)
        if not low:
            return M
        K = 1 << m
        out = np.zeros((M.shape[0], K, 2, K, 2), dtype=self.rdtype)
        out[:, :, 0, :, 0] = M.transpose(0, 2, 1)
        out[:, :, 1, :, 1] = M.transpose(0, 2, 1)
        return out.reshape(M.shape[0], 2 * K, 2 * K)

    def _x_mixer(self, states, beta):
        """exp(-iβ_r ΣX) per row in the rotated frame (real matrices, see ``NumpyQAOA._x_mixer``)."""
        b = beta.shape[0]
        for q0, m in self._groups:
            M = self._rotations(m, beta, q0 == 0)
            for s in states:
                v = s.view(self.rdtype).reshape(b, -1, 1 << m, 1 << (q0 + 1))
                if q0 == 0:
                    flat = v.reshape(b, v.shape[1], -1)
                    flat[...] = np.matmul(flat, M)
                else:
                    v[...] = np.matmul(M[:, None], v)

    def _pair_views(self, s, i, j):
        lo, hi = min(i, j), max(i, j)
        v = s.reshape(s.shape[0], self.N >> (hi + 1), 2, 1 << (hi - lo - 1), 2, 1 << lo)
        return v[:, :, 0, :, 1, :], v[:, :, 1, :, 0, :]

    def _xy_pair(self, states, i, j, beta):
        c = np.cos(beta)[:, None, None, None]
        s = (-1j * np.sin(beta))[:, None, None, None]
        for st in states:
            x, y = self._pair_views(st, i, j)
            sy = np.multiply(y, s, out=np.empty(y.shape, self.dtype))
            sx = np.multiply(x, s, out=np.empty(x.shape, self.dtype))
            x *= c
            x += sy
            y *= c
            y += sx

    def _mixer(self, states, beta):
        if self.mixer == "x":
            self._x_mixer(states, beta)
        else:
            for i, j in self._pairs:
                self._xy_pair(states, i, j, beta)

    def _state(self, angles, rows):
        gam, bet = self._split(angles, rows.size)
        psi = np.repeat(self._psi0[None], rows.size, axis=0)
        costs = self.costs[rows]
        for l in range(self.p):
            self._phase((psi,), costs, gam[:, l])
            self._mixer((psi,), bet[:, l])
        return psi, costs, gam, bet

    def _expect(self, psi, w) -> np.ndarray:
        pr = abs2(psi).astype(np.float64, copy=False)
        out = np.empty(psi.shape[0])
        for r in range(psi.shape[0]):  # the sequential reduction, row by row (bit-for-bit equal)
            out[r] = float(np.dot(pr[r], w[r]))
        return out

    # ---- public API ---------------------------------------------------------
    def state(self, angles, rows=None) -> np.ndarray:
        """QAOA states, shape (b, 2^n), computational basis (little-endian).

        Parameters
        ----------
        angles : array_like, shape (b, 2p) or (2p,)
            Angles per row (one vector is shared by all rows).
        rows : array_like of int, optional
            Which problems (default: all ``B``).
        """
        rows = self._rows(rows)
        with single_thread_blas():
            psi = self._state(angles, rows)[0]
        if self._frame:
            psi *= np.array([1, 1j, -1, -1j], dtype=self.dtype)[popcounts(self.n) & 3]
        return psi

    def probabilities(self, angles, rows=None) -> np.ndarray:
        """|ψ_r|² per row, shape (b, 2^n), in the engine's real dtype.

        Parameters
        ----------
        angles : array_like, shape (2p,) or (B, 2p)
            ``[γ_1..γ_p, β_1..β_p]`` per problem.
        rows : array_like of int or None
            Problems of the batch to evaluate (default all).

        Returns
        -------
        numpy.ndarray, shape (b, 2**n)
        """
        rows = self._rows(rows)
        with single_thread_blas():
            psi = self._state(angles, rows)[0]
        return abs2(psi)

    def expectation(self, angles, rows=None) -> np.ndarray:
        """⟨C_r⟩ per row, shape (b,), float64.

        Parameters
        ----------
        angles : array_like, shape (2p,) or (B, 2p)
            ``[γ_1..γ_p, β_1..β_p]`` per problem.
        rows : array_like of int or None
            Problems of the batch to evaluate (default all).

        Returns
        -------
        numpy.ndarray of float64, shape (b,)
        """
        rows = self._rows(rows)
        with single_thread_blas():
            psi, costs, _, _ = self._state(angles, rows)
            return self._expect(psi, costs)

    def value_and_grad(self, angles, rows=None) -> tuple[np.ndarray, np.ndarray]:
        """⟨C_r⟩ (b,) and the exact gradients (b, 2p) by the adjoint method, all rows at once.

        Memory: three (b, 2^n) complex arrays (state, adjoint state, scratch).

        Parameters
        ----------
        angles : array_like, shape (2p,) or (B, 2p)
            ``[γ_1..γ_p, β_1..β_p]`` per problem.
        rows : array_like of int or None
            Problems of the batch to evaluate (default all).

        Returns
        -------
        values : numpy.ndarray, shape (b,)
        grads : numpy.ndarray, shape (b, 2p)
        """
        rows = self._rows(rows)
        with single_thread_blas():
            return self._value_and_grad(angles, rows)

    def _value_and_grad(self, angles, rows):
        psi, w, gam, bet = self._state(angles, rows)
        b = rows.size
        value = self._expect(psi, w)
        lam = psi * w
        states = (psi, lam)
        g_gam = np.zeros((b, self.p))
        g_bet = np.zeros((b, self.p))
        for l in range(self.p - 1, -1, -1):
            acc = [0.0] * b
            if self.mixer == "x":
                # in the frame the group generator is iA (A real): dE/dβ = 2 Re<λ|Aψ> = 2 λ_f·(Aψ)_f
                for q0, m in self._groups:
                    A, AkT = self._gen[m]
                    vp = psi.view(self.rdtype).reshape(b, -1, 1 << m, 1 << (q0 + 1))
                    vl = lam.view(self.rdtype).reshape(b, -1, 1 << m, 1 << (q0 + 1))
                    if q0 == 0:
                        u = np.matmul(vp.reshape(b, vp.shape[1], -1), AkT).reshape(vp.shape)
                    else:
                        u = np.matmul(A, vp)
                    for r in range(b):
                        acc[r] += float(np.vdot(vl[r], u[r]))
                g_bet[:, l] = 2 * np.asarray(acc)
                self._x_mixer(states, -bet[:, l])
            else:
                acc = [0.0] * b
                for i, j in reversed(self._pairs):
                    pa, pb = self._pair_views(psi, i, j)
                    la, lb = self._pair_views(lam, i, j)
                    for r in range(b):
                        acc[r] += np.vdot(la[r], pb[r]) + np.vdot(lb[r], pa[r])
                    self._xy_pair(states, i, j, -bet[:, l])
                g_bet[:, l] = 2 * np.imag(np.asarray(acc, dtype=complex))
            out = np.multiply(psi, w, out=np.empty(psi.shape, self.dtype))
            for r in range(b):
                g_gam[r, l] = 2 * np.imag(0.0 + np.vdot(lam[r], out[r]))
            self._phase(states, w, -gam[:, l])
        return value, np.concatenate([g_gam, g_bet], axis=1)


__all__ = ["BatchedNumpyQAOA"]
