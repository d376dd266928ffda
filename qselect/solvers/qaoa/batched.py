"""Batched NumPy QAOA: many small problems of one size as one ``(batch, 2^n)`` state.

A layer's local problems (hundreds of 8–16-qubit blocks) are each a tiny
simulation; solved one by one, per-call overhead dominates. Here every
problem is a row of one array, evaluated all at once. For the X mixer on
block-sized states (numba installed) each row's whole value and adjoint
gradient (Jones & Gacon 2020, arXiv:2009.02823) is one compiled sweep
(:func:`kernels.value_and_grad_rows`, the code the single-problem engine runs),
and slabs of rows run on threads; :meth:`BatchedNumpyQAOA.minimize` there runs each
row's whole L-BFGS, evaluations included, as one compiled call. Otherwise the cost phase is one elementwise
pass with a per-row γ, the X mixer one stacked matmul per qubit group with a
per-row rotation (the XY ring pair by pair), and the adjoint sweep runs on
all rows at once.

Each row goes through exactly the operations :class:`native.NumpyQAOA` applies
to a single state (same sweep or groups, rotated frame, rotation matrices,
dtypes and reductions), so a batch of one reproduces the sequential engine bit
for bit (on the NumPy path: complex128, X mixer, up to 2^17 amplitudes), and
every row of a larger batch agrees with it to rounding.

Conventions as in :mod:`native`: little-endian index, angles
``[γ_1..γ_p, β_1..β_p]`` per row, layer ``exp(-iβB) exp(-iγC)``.
"""
from __future__ import annotations

from functools import lru_cache
from itertools import count

import numpy as np

from ...ansatz import check_mixer, ring_pairs
from ...errors import QSelectError
from ...problems.bits import popcounts
from ...validation import check_positive_int
from ..base import Cancelled, cancel_event
from .kernels import (
    expectations,
    lbfgs_rows_call,
    rotation_pairs,
    states_rows,
    uses_row_kernel,
    value_and_grad_call,
)
from .native import (
    NumpyQAOA,
    _cpus,
    _group_generator,
    _groups,
    _hamming_cached,
    _pool,
    _rotation_signs,
    _threads,
    abs2,
    keeps_layer_states,
    phase_into,
    real_dtype,
    single_thread_blas,
)
from .optimizers import BatchOutcome, batch_outcome, minimize_batch

#: rows per chunk: their states (and adjoint states) stay in a core's L2 through all layers
_CHUNK_BYTES = 1 << 17

#: the least work (rows × amplitudes × layers) the compiled path splits across threads: below it
#: one thread is faster than handing rows to the pool (~0.1 ms a call)
_MIN_SPLIT_WORK = 1 << 15


def _helpers(n: int):
    """A thread pool for up to ``n`` helper tasks, as large as the CPUs (at least ``n``).

    Sized by the engine's thread setting, not by a call's batch, so shrinking batches reuse one
    pool; shared by every engine in the process, so callers working at once (a block descent's
    lanes) get their helpers side by side instead of queueing on a pool sized for one of them.
    """
    return _pool(max(_cpus(), n))


def _rowdot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Σ conj(x_r)·y_r for every row r of two (b, ...) arrays, shape (b,).

    One row goes through ``np.vdot``, the single-state engine's own reduction (so a batch of
    one reproduces it bit for bit); more rows through one stacked BLAS dot (``matmul`` of
    (b, 1, K) by (b, K, 1): the same precision, another summation order).
    """
    b = x.shape[0]
    if b == 1:
        return np.array([np.vdot(x[0], y[0])])
    x2, y2 = x.reshape(b, 1, -1), y.reshape(b, -1, 1)
    if np.iscomplexobj(x2):
        x2 = np.conjugate(x2)
    return np.matmul(x2, y2).reshape(b)


def _kron_eye2_T_batch(M: np.ndarray) -> np.ndarray:
    """kron(M_r, I2)ᵀ for every row of a (b, K, K) stack, shape (b, 2K, 2K)."""
    b, K = M.shape[0], M.shape[1]
    out = np.zeros((b, K, 2, K, 2), dtype=M.dtype)
    Mt = M.transpose(0, 2, 1)
    out[:, :, 0, :, 0] = Mt
    out[:, :, 1, :, 1] = Mt
    return out.reshape(b, 2 * K, 2 * K)


@lru_cache(maxsize=None)
def _signs_both(m: int) -> np.ndarray:
    """(2, 2^m, 2^m): the rotation signs at β ≥ 0 and their transpose (β < 0), read-only."""
    sign = _rotation_signs(m)
    out = np.ascontiguousarray(np.stack([sign, sign.T]))
    out.setflags(write=False)
    return out


def _start_state(N: int, mixer: str, k, dtype) -> np.ndarray:
    """The start state of one row, built exactly as the sequential engine builds it.

    Block-sized states (at most 2^16 amplitudes) are cached, since a layer's descents build two
    engines per round, and shared: the engines only read them (left writeable, so the compiled
    sweeps keep the one signature they are compiled for).
    """
    if N <= 1 << 16:
        return _cached_start_state(N, mixer, k, np.dtype(dtype))
    return NumpyQAOA(np.zeros(N, real_dtype(dtype)), 1, mixer, k, dtype).initial_state()


@lru_cache(maxsize=64)
def _cached_start_state(N: int, mixer: str, k, dtype) -> np.ndarray:
    return NumpyQAOA(np.zeros(N, real_dtype(dtype)), 1, mixer, k, dtype).initial_state()


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
    threads : int, optional
        Threads that share the rows of a value-and-gradient call on the compiled path (default:
        the CPUs this process may use, at most 8). Rows are independent: the numbers do not
        depend on it.

    Notes
    -----
    Memory: ``B · 2^n`` amplitudes for the state, twice that (plus one
    scratch state) for the adjoint gradient, and ``B · 2^n`` real costs; the
    compiled sweep adds p + 2 states and p float64 phase vectors per row in
    flight (one per thread) — the solver checks it with
    :func:`native.check_memory` (``batch=B``, ``layers=p``) before building the
    engine. Meant for block-sized problems (n ≲ 20).

    References
    ----------
    Farhi, Goldstone & Gutmann (2014), arXiv:1411.4028 (QAOA); Hadfield et al.
    (2019), arXiv:1709.03489 (XY mixer); Jones & Gacon (2020),
    arXiv:2009.02823 (adjoint gradients).
    """

    def __init__(self, costs, p: int, mixer: str = "x", k: int | None = None, dtype=np.complex128,
                 threads: int | None = None):
        self.dtype = np.dtype(dtype)
        self.threads = _threads() if threads is None else check_positive_int(threads, "threads")
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
        self._frame = mixer == "x"
        self._kernel = uses_row_kernel(mixer, N, self.dtype)  # compiled sweeps (kernels), else NumPy/BLAS
        self._pairs = ring_pairs(n)
        self._psi0 = _start_state(N, mixer, k, self.dtype)

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

    def _phase(self, S, costs, gamma):
        """S[..., r, :] *= exp(-iγ_r c_r) for every row r (γ of shape (b,)); returns the phase array.

        ``S`` is (b, N) or (2, b, N) (state and adjoint state share one phase array).
        """
        f = np.empty(costs.shape, self.rdtype)
        np.multiply(costs, -gamma[:, None], out=f)
        h = np.empty(costs.shape, self.dtype)
        phase_into(f, h)
        S *= h
        return h

    def _rotations(self, m: int, beta) -> np.ndarray:
        """Per-row ⊗^m [[c, s], [-s, c]] at β_r, shape (b, 2^m, 2^m).

        Entry (j, k) is ±c^(m−d) s^d with d = popcount(j ^ k) (symmetric) and sign
        (-1)^popcount(j & ~k); the matrix at -β is the transpose of the one at β. Every entry is
        exactly the sequential engine's.
        """
        c, s = np.cos(np.abs(beta)), np.sin(np.abs(beta))
        j = np.arange(m + 1)
        G = (c[:, None] ** (m - j) * s[:, None] ** j)[:, _hamming_cached(m)]
        G *= _signs_both(m)[(beta < 0).view(np.int8)]
        return G.astype(self.rdtype)

    def _x_rotations(self, beta) -> list:
        """The group matrices of one X-mixer layer: (forward, transposed) (b, ·, ·) stacks per qubit group.

        The transposes (the layer undone) are contiguous copies, as the single-problem engine
        multiplies them (BLAS rounds a transposed view differently). Groups of one size share their matrices
        (balanced groups are mostly of one size); the lowest group gets them as kron(·, I2)ᵀ for
        the interleaved re/im view.
        """
        made: dict = {}
        out = []
        for q0, m in self._groups:
            if m not in made:
                made[m] = self._rotations(m, beta)
            M = _kron_eye2_T_batch(made[m]) if q0 == 0 else made[m]
            out.append((M, np.ascontiguousarray(M.transpose(0, 2, 1))))
        return out

    def _x_mixer(self, S, mats, scratch=None):
        """exp(-iβ_r ΣX) per row in the rotated frame (real matrices, see ``NumpyQAOA._x_mixer``).

        ``S`` is (b, N) or (2, b, N) (state and adjoint state, the same matrices); ``mats`` the
        group matrices of :meth:`_x_rotations` (their transposes undo the layer). The groups'
        matmuls alternate between ``S`` and ``scratch`` (an array like ``S``; allocated when
        None) instead of copying every product back: the same products, one copy at most.
        """
        lead = S.shape[:-1]
        src, dst = S, (np.empty_like(S) if scratch is None else scratch)
        for (q0, m), M in zip(self._groups, mats):
            shape = (*lead, -1, 1 << m, 1 << (q0 + 1))
            v, o = src.view(self.rdtype).reshape(shape), dst.view(self.rdtype).reshape(shape)
            if q0 == 0:
                np.matmul(v.reshape(*lead, v.shape[-3], -1), M, out=o.reshape(*lead, o.shape[-3], -1))
            else:
                np.matmul(M[:, None], v, out=o)
            src, dst = dst, src
        if src is not S:
            S[...] = src

    def _pair_views(self, s, i, j):
        lo, hi = min(i, j), max(i, j)
        v = s.reshape(*s.shape[:-1], self.N >> (hi + 1), 2, 1 << (hi - lo - 1), 2, 1 << lo)
        return v[..., 0, :, 1, :], v[..., 1, :, 0, :]

    def _xy_pair(self, S, i, j, beta):
        c = np.cos(beta)[:, None, None, None]
        s = (-1j * np.sin(beta))[:, None, None, None]
        x, y = self._pair_views(S, i, j)
        sy = np.multiply(y, s, out=np.empty(y.shape, self.dtype))
        sx = np.multiply(x, s, out=np.empty(x.shape, self.dtype))
        x *= c
        x += sy
        y *= c
        y += sx

    def _mixer(self, S, beta, mats=None):
        if self.mixer == "x":
            self._x_mixer(S, [M for M, _ in self._x_rotations(beta)] if mats is None else mats)
        else:
            for i, j in self._pairs:
                self._xy_pair(S, i, j, beta)

    def _chunks(self, rows):
        """Row positions in cache-sized chunks: each chunk's states stay in L2 across its layers."""
        step = max(1, _CHUNK_BYTES // (self.N * self.dtype.itemsize))
        return [slice(a, a + step) for a in range(0, rows.size, step)]

    def _layer_mats(self, bet) -> list:
        """Per layer, the X mixer's group matrices for all rows at once (None for the XY mixer)."""
        return [self._x_rotations(bet[:, l]) if self.mixer == "x" else None for l in range(self.p)]

    def _state(self, gam, bet, rows, mats, keep: bool = False):
        """Forward sweep for the rows; with ``keep`` also the per-layer phases."""
        psi = np.repeat(self._psi0[None], rows.size, axis=0)
        costs = self.costs[rows]
        phases = []
        for l in range(self.p):
            phases.append(self._phase(psi, costs, gam[:, l]))
            self._mixer(psi, bet[:, l], mats[l])
        return (psi, costs, phases) if keep else psi

    def _sweeps(self, angles, rows, inverse: bool = False):
        """(γ, β, mixer matrices, chunk) for each cache-sized chunk of the rows.

        With ``inverse`` the matrices come as pairs (forward, transposed for the backward sweep).
        """
        gam, bet = self._split(angles, rows.size)
        mats = self._layer_mats(bet)
        for sl in self._chunks(rows):
            if inverse:
                part = [None if m is None else [(M[sl], Mt[sl]) for M, Mt in m] for m in mats]
            else:
                part = [None if m is None else [M[sl] for M, _ in m] for m in mats]
            yield gam[sl], bet[sl], part, sl

    def _forward(self, angles, rows):
        """Final states of the rows, (b, N), computed chunk by chunk."""
        if self._kernel:  # the compiled forward sweep (kernels.states_rows), as value_and_grad runs it
            gam, bet = self._split(angles, rows.size)
            return states_rows(self._psi0, self.costs, rows, gam, rotation_pairs(bet).reshape(rows.size, self.p, 2))
        out = np.empty((rows.size, self.N), self.dtype)
        for gam, bet, mats, sl in self._sweeps(angles, rows):
            out[sl] = self._state(gam, bet, rows[sl], mats)
        return out

    def _expect(self, psi, w) -> np.ndarray:
        pr = abs2(psi).astype(np.float64, copy=False)
        return _rowdot(pr, w)

    # ---- public API ---------------------------------------------------------
    def state(self, angles, rows=None) -> np.ndarray:
        """QAOA states, shape (b, 2^n), computational basis (little-endian).

        Parameters
        ----------
        angles : array_like, shape (b, 2p) or (2p,)
            Angles per row (one vector is shared by all rows).
        rows : array_like of int, optional
            Which problems (default: all ``B``).

        Returns
        -------
        numpy.ndarray, complex, shape (b, 2**n)
        """
        rows = self._rows(rows)
        with single_thread_blas():
            psi = self._forward(angles, rows)
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
            return abs2(self._forward(angles, rows))

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
        if self._kernel:
            return expectations(self._forward(angles, rows), self.costs, rows)
        out = np.empty(rows.size)
        with single_thread_blas():
            for gam, bet, mats, sl in self._sweeps(angles, rows):
                out[sl] = self._expect(self._state(gam, bet, rows[sl], mats), self.costs[rows[sl]])
        return out

    def value_and_grad(self, angles, rows=None) -> tuple[np.ndarray, np.ndarray]:
        """⟨C_r⟩ (b,) and the exact gradients (b, 2p) by the adjoint method, all rows at once.

        Rows run in cache-sized chunks; per chunk the memory is the state and adjoint state,
        one scratch state, and the forward sweep's ``p`` phase arrays (reused, conjugated, on
        the way back).

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
        if self._kernel:  # as the single engine decides
            return self._value_and_grad_compiled(angles, rows)
        value, grad = np.empty(rows.size), np.empty((rows.size, 2 * self.p))
        with single_thread_blas():
            for gam, bet, mats, sl in self._sweeps(angles, rows, inverse=True):
                value[sl], grad[sl] = self._value_and_grad(gam, bet, rows[sl], mats)
        return value, grad

    def _value_and_grad_compiled(self, angles, rows):
        """The compiled path (:func:`kernels.value_and_grad_rows`): slabs of rows on threads.

        Rows are independent, so the numbers do not depend on how the rows are split.
        """
        gam, bet = self._split(angles, rows.size)
        CS = rotation_pairs(bet).reshape(rows.size, self.p, 2)
        b = rows.size
        value, grad = np.empty(b), np.empty((b, 2 * self.p))

        def slab(lo, hi):  # arguments converted here, so the pool's threads only run compiled code
            return value_and_grad_call(self._psi0, self.costs, self.costs, rows[lo:hi], gam[lo:hi], CS[lo:hi],
                                       value[lo:hi], grad[lo:hi])

        t = min(self.threads, b)
        if t < 2 or b * self.N * self.p < _MIN_SPLIT_WORK:
            fn, args = slab(0, b)
            fn(*args)
            return value, grad
        cuts = [b * k // t for k in range(t + 1)]
        calls = [slab(lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:])]
        futs = [_helpers(self.threads - 1).submit(fn, *args) for fn, args in calls[1:]]
        try:
            fn, args = calls[0]  # this thread's share
            fn(*args)
        finally:
            for fut in futs:
                fut.result()
        return value, grad

    def minimize(self, x0, maxiter: int = 100, ftol: float = 1e-6, gtol: float = 1e-5, memory: int = 10,
                 max_backtracks: int = 20) -> BatchOutcome:
        """Minimise every row's ⟨C⟩ over its angles: :func:`optimizers.minimize_batch` on :meth:`value_and_grad`.

        On the compiled path each row's whole optimisation is one compiled call
        (:func:`kernels.lbfgs_rows_call`: the same state machine and evaluations, no return to
        Python between them), and the threads take chunks of rows as they finish one, so rows
        that need many iterations do not hold up a round of the others; an interrupt (Ctrl-C)
        is seen after the rows in hand (a quarter of a thread's share at most), and so is the
        event of this thread's :func:`~qselect.solvers.base.cancel_scope`. The results are
        those of ``minimize_batch(self.value_and_grad, x0, ...)`` bit for bit; elsewhere it is
        that call.

        Parameters
        ----------
        x0 : array_like, shape (B, 2p)
            Start angles ``[γ_1..γ_p, β_1..β_p]`` per row.
        maxiter, ftol, gtol, memory, max_backtracks
            As :func:`optimizers.minimize_batch`.

        Returns
        -------
        optimizers.BatchOutcome

        Raises
        ------
        QSelectError
            If ``x0`` is not of shape (B, 2p).
        Cancelled
            If the event of this thread's ``cancel_scope`` is set during the optimisation.
        """
        X = np.array(x0, dtype=np.float64, order="C")
        if X.shape != (self.B, 2 * self.p):
            raise QSelectError(f"batched QAOA at p={self.p} needs start angles of shape ({self.B}, {2 * self.p}) "
                               f"[γ_1..γ_p, β_1..β_p] per row, got {X.shape}")
        if not self._kernel or maxiter <= 0:
            return minimize_batch(self.value_and_grad, X, maxiter=maxiter, ftol=ftol, gtol=gtol, memory=memory,
                                  max_backtracks=max_backtracks)
        f, evals, status = np.empty(self.B), np.empty(self.B, np.int64), np.empty(self.B, np.int64)
        fn, args = lbfgs_rows_call(self._psi0, self.costs, self.costs, X, f, evals, status, max(1, int(memory)),
                                   ftol, gtol, maxiter, max_backtracks)
        t = min(self.threads, self.B)
        # rows in chunks, a quarter of a thread's share: few returns to Python (each waits for the GIL, which
        # another lane may hold) and still a balanced finish; an interrupt is seen after the chunk in hand
        size = max(1, self.B // (4 * t))
        nxt = count(0, size)  # the next chunk's first row; next() is atomic under the GIL
        stop = []  # set when this thread is interrupted: the helpers take no further chunk
        cancel = cancel_event()  # set from outside (another lane failed): stop after the chunks in hand

        def work():
            for r in nxt:
                if r >= self.B or stop or (cancel is not None and cancel.is_set()):
                    return
                fn(*args, r, min(r + size, self.B))

        futs = [_helpers(self.threads - 1).submit(work) for _ in range(t - 1)]
        try:
            work()
        except BaseException:
            stop.append(True)
            raise
        finally:
            for fut in futs:
                fut.result()
        if cancel is not None and cancel.is_set():
            raise Cancelled("the batched optimisation was cancelled (cancel_scope's event set)")
        return batch_outcome(X, f, evals, status)

    def _x_generator_dot(self, lam, psi) -> np.ndarray:
        """Per row, λ_f·(Aψ)_f summed over the X mixer's qubit groups (rotated frame, A real): ½ dE/dβ."""
        b = lam.shape[0]
        acc = np.zeros(b)
        for q0, m in self._groups:
            A, AkT = self._gen[m]
            vp = psi.view(self.rdtype).reshape(b, -1, 1 << m, 1 << (q0 + 1))
            vl = lam.view(self.rdtype).reshape(b, -1, 1 << m, 1 << (q0 + 1))
            if q0 == 0:
                u = np.matmul(vp.reshape(b, vp.shape[1], -1), AkT).reshape(vp.shape)
            else:
                u = np.matmul(A, vp)
            acc += _rowdot(vl, u)
        return acc

    def _value_and_grad_kept(self, gam, bet, rows, pairs):
        """Adjoint gradient keeping the states between layers (``native.keeps_layer_states``): only λ moves back."""
        b = rows.size
        w = self.costs[rows]
        psi = np.repeat(self._psi0[None], b, axis=0)
        out = np.empty((b, self.N), self.dtype)  # mixer scratch, then C·ψ
        kept = [self._psi0[None]]
        phases = []
        for l in range(self.p):
            phases.append(self._phase(psi, w, gam[:, l]))
            self._x_mixer(psi, [M for M, _ in pairs[l]], out)
            kept.append(psi if l == self.p - 1 else psi.copy())
        value = self._expect(psi, w)
        lam = psi * w
        g_gam, g_bet = np.zeros((b, self.p)), np.zeros((b, self.p))
        for l in range(self.p - 1, -1, -1):
            g_bet[:, l] = 2 * self._x_generator_dot(lam, kept[l + 1])
            self._x_mixer(lam, [Mt for _, Mt in pairs[l]], out)  # exp(+iβΣX): the transposed matrices
            lam *= np.conjugate(phases[l])  # exp(+iγc): the forward phase conjugated (cos even, sin odd)
            np.multiply(kept[l], w, out=out)
            g_gam[:, l] = 2 * np.imag(0.0 + _rowdot(lam, out))
        return value, np.concatenate([g_gam, g_bet], axis=1)

    def _value_and_grad(self, gam, bet, rows, pairs):
        if keeps_layer_states(self.mixer, self.N):
            return self._value_and_grad_kept(gam, bet, rows, pairs)
        fwd = [None if m is None else [M for M, _ in m] for m in pairs]
        psi, w, phases = self._state(gam, bet, rows, fwd, keep=True)
        b = rows.size
        value = self._expect(psi, w)
        S = np.empty((2, b, self.N), self.dtype)  # state and adjoint state, moved back together
        S[0] = psi
        np.multiply(psi, w, out=S[1])
        psi, lam = S[0], S[1]
        g_gam = np.zeros((b, self.p))
        g_bet = np.zeros((b, self.p))
        out = np.empty((b, self.N), self.dtype)
        for l in range(self.p - 1, -1, -1):
            if self.mixer == "x":
                # in the frame the group generator is iA (A real): dE/dβ = 2 Re<λ|Aψ> = 2 λ_f·(Aψ)_f
                g_bet[:, l] = 2 * self._x_generator_dot(lam, psi)
                self._x_mixer(S, [Mt for _, Mt in pairs[l]])  # exp(+iβΣX): the transposed matrices
            else:
                acc = np.zeros(b, dtype=complex)
                for i, j in reversed(self._pairs):
                    pa, pb = self._pair_views(psi, i, j)
                    la, lb = self._pair_views(lam, i, j)
                    acc += _rowdot(la, pb) + _rowdot(lb, pa)
                    self._xy_pair(S, i, j, -bet[:, l])
                g_bet[:, l] = 2 * np.imag(acc)
            np.multiply(psi, w, out=out)
            g_gam[:, l] = 2 * np.imag(0.0 + _rowdot(lam, out))
            S *= np.conjugate(phases[l])  # exp(+iγc): the forward phase conjugated (cos even, sin odd)
        return value, np.concatenate([g_gam, g_bet], axis=1)


__all__ = ["BatchedNumpyQAOA"]
