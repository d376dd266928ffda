"""NumPy statevector engine specialised for QAOA on diagonal costs.

Why it is fast: the cost is diagonal, so the cost layer is an elementwise
phase computed chunk by chunk (no 2^n temporaries), and the X mixer
exp(-iβΣX) = ⊗ exp(-iβX) is applied to groups of m qubits at once as a small
dense 2^m×2^m matrix (one BLAS matmul per cache-sized block, written back in
place), so a layer is ~n/m passes over the state instead of n. The engine
works in a rotated frame (ψ̃ = D⁻¹ψ, D = diag(1, i) per qubit; it commutes
with the diagonal cost) where those matrices are real: half the flops of a
complex matmul, same probabilities. Large states are split across threads.
Exact gradients use the adjoint method: one forward and one backward sweep
give d⟨W⟩/dθ for all 2p angles.

Conventions: little-endian index (qubit i = bit i), angles
``[γ_1..γ_p, β_1..β_p]``, layer l = exp(-iβ_l B) exp(-iγ_l C) with C the
(normalised) cost and B = ΣX_i (or the XY ring Σ (X_iX_j+Y_iY_j)/2, applied
pair by pair in ring order (0,1), (1,2), …, (n-1,0)).
"""
from __future__ import annotations

import math
import os
import threading
from contextlib import contextmanager, nullcontext
from functools import lru_cache

import numpy as np

from ...ansatz import check_mixer, dicke_state, ring_pairs
from ...errors import QSelectError
from ...problems import check_dense
from ...problems.bits import popcounts
from .kernels import (
    compiled_extra_bytes,
    expectations,
    rotation_pairs,
    states_rows,
    uses_row_kernel,
    value_and_grad_rows,
)

_CHUNK = 1 << 17  # entries per block (1-2 MiB): stays in L2/L3 with its scratch
_GROUP = 5  # qubits per mixer matmul (32x32 matrices): best measured on 2 cores
_ROW0 = np.zeros(1, dtype=np.int64)  # the one row of a single state, for the compiled kernels


def _cpus() -> int:
    """The CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _threads(workers: int = 1) -> int:
    """Threads for one of ``workers`` processes sharing this machine: its share of the CPUs, at most 8."""
    return max(1, min(_cpus() // max(1, int(workers)), 8))


@lru_cache(maxsize=None)
def _pool(workers: int):
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qselect-qaoa")


if hasattr(os, "register_at_fork"):  # a forked worker inherits the pools but not their threads: start afresh
    os.register_at_fork(after_in_child=_pool.cache_clear)


@lru_cache(maxsize=1)
def _controller():
    try:
        from threadpoolctl import ThreadpoolController

        return ThreadpoolController()
    except Exception:  # threadpoolctl missing or broken: run with the BLAS defaults
        return None


class _BlasPin:
    """The process-wide one-thread BLAS pin: set by the first holder, undone by the last (any thread)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.holders = 0
        self.limiter = None


_pin = _BlasPin()

if hasattr(os, "register_at_fork"):  # a forked child holds nothing (its lock fresh, its count zero)
    os.register_at_fork(after_in_child=lambda: globals().update(_pin=_BlasPin()))


@contextmanager
def single_thread_blas():
    """Pin BLAS to one thread while the mixer runs.

    Context pinning BLAS to one thread: the mixer issues many small matmuls, and multi-threaded BLAS on them is up to
    40× slower on a busy (shared) machine. BLAS threads are a setting of the whole process, so the pin is counted
    across threads: the first holder sets it, the last one to leave restores the original limits (solves running in
    several threads at once never undo each other's pin). Re-entering costs a lock and a counter. A process forked
    while the pin is held starts with no holders and keeps the one-thread limit it inherited.
    """
    c = _controller()
    if c is None:
        yield
        return
    pin = _pin
    with pin.lock:
        if pin.holders == 0:
            pin.limiter = c.limit(limits=1, user_api="blas")
        pin.holders += 1
    try:
        yield
    finally:
        with pin.lock:
            pin.holders -= 1
            if pin.holders == 0:
                pin.limiter.restore_original_limits()
                pin.limiter = None


def real_dtype(dtype) -> np.dtype:
    """The real dtype matching a complex state dtype: float32 for complex64, else float64.

    Parameters
    ----------
    dtype : numpy complex dtype

    Returns
    -------
    numpy.dtype
    """
    return np.dtype(np.float32) if np.dtype(dtype) == np.complex64 else np.dtype(np.float64)


def check_memory(n: int, dtype=np.complex128, gradient: bool = True, what: str = "the QAOA statevector",
                 cost_dtype=np.float64, batch: int = 1, layers: int = 0, rows_in_flight: int = 1) -> None:
    """Refuse a QAOA simulation that would not fit in memory, before allocating.

    Refuse before allocating: state (+ adjoint state) + the engine's real cost vector, plus the problem's cost vector
    where it is built in another precision and its half-size build scratch. ``batch`` problems simulated together
    (``batched.BatchedNumpyQAOA``) need all of it per problem, plus one more state each (the batched adjoint's scratch).
    ``layers`` = p where the compiled sweep runs the gradient (``kernels.uses_row_kernel``): its kept layer states and
    phases, :func:`kernels.compiled_extra_bytes`, for each of ``rows_in_flight`` rows (one per thread).

    Parameters
    ----------
    n : int
    dtype : numpy complex dtype
    gradient : bool
        Count the adjoint state too.
    what : str
    cost_dtype : numpy floating dtype
    batch : int
    layers : int
    rows_in_flight : int

    Raises
    ------
    ProblemTooLargeError
        Saying how many qubits fit.
    """
    c = np.dtype(dtype).itemsize
    r = real_dtype(dtype).itemsize
    b = np.dtype(cost_dtype).itemsize
    per = (2 * c + 2 * r) if gradient else (c + r)
    per += (0 if b == r else b) + b / 2
    if batch > 1:
        per += c
    per *= max(1, int(batch))
    if gradient and layers > 0:
        per += compiled_extra_bytes(layers, dtype) * max(1, min(int(rows_in_flight), int(batch)))
    check_dense(n, math.ceil(per), what)


def cost_dtype_for(n: int, dtype, exact_final_qubits: int) -> np.dtype:
    """Precision to build the cost vector in.

    Precision to build the cost vector in: float64 where the final state is re-evaluated in double precision (small n)
    or the engine runs in complex128, else the engine's float32, which saves the transient 8-byte copy (what lets n = 30
    fit in 24 GB).

    Parameters
    ----------
    n : int
    dtype : numpy complex dtype
    exact_final_qubits : int

    Returns
    -------
    numpy.dtype
    """
    if np.dtype(dtype) == np.complex128 or n <= exact_final_qubits:
        return np.dtype(np.float64)
    return real_dtype(dtype)


def check_observable(weights, N: int, dtype) -> np.ndarray:
    """A diagonal observable of 2^n finite entries, C-contiguous in ``dtype`` (what ``weights=`` takes).

    Parameters
    ----------
    weights : array_like, shape (N,)
    N : int
        State length 2^n.
    dtype : numpy floating dtype

    Returns
    -------
    numpy.ndarray, shape (N,)

    Raises
    ------
    QSelectError
        Another shape, or entries that are not finite numbers.
    """
    try:
        w = np.ascontiguousarray(weights, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise QSelectError(f"weights must be {N} real numbers (one per basis state), got {type(weights).__name__}"
                           ) from err
    if w.shape != (N,):
        raise QSelectError(f"weights must be {N} real numbers (one per basis state), got shape {w.shape}")
    if not np.isfinite(w).all():
        raise QSelectError("weights must be finite numbers; got inf or NaN")
    return w


def keeps_layer_states(mixer: str, N: int) -> bool:
    """Whether the adjoint gradient keeps the p+1 states between layers instead of moving ψ back.

    For the X mixer on states of at most one chunk (n ≤ 17; ≤ 2 MiB each in complex128): the
    backward sweep then moves only λ: 3p mixer passes per value and gradient instead of 4p, for
    p+1 extra block-sized states. Larger states, where memory is what limits n, are moved back beside λ
    (no extra state); so is the XY ring, whose pair rotations do not commute and need ψ at
    every pair. The batched engine decides by the same rule, so both stay bit-identical.

    Parameters
    ----------
    mixer : {'x', 'xy'}
    N : int
        State length 2^n.

    Returns
    -------
    bool
    """
    # one chunk: the kept path's scratch is the engine's chunk buffer (the compiled sweeps,
    # kernels.value_and_grad_rows, keep their layer states up to their own limit)
    return mixer == "x" and N <= _CHUNK


def abs2(z: np.ndarray, out: np.ndarray | None = None, scratch: np.ndarray | None = None) -> np.ndarray:
    """|z|² elementwise as re·re + im·im, into ``out`` (real, z's shape; ``scratch`` the same).

    Plain elementwise arithmetic (einsum over the re/im pair is ~20× slower on small
    inner axes), identical for a single state and for the rows of a batch, so the
    batched engine reproduces this one bit for bit.

    Parameters
    ----------
    z : numpy.ndarray, complex
    out : numpy.ndarray or None
    scratch : numpy.ndarray or None

    Returns
    -------
    numpy.ndarray, real
    """
    f = z.view(z.real.dtype)
    re, im = f[..., 0::2], f[..., 1::2]
    out = np.multiply(re, re, out=out)
    out += np.multiply(im, im, out=scratch)
    return out


def phase_into(f: np.ndarray, h: np.ndarray) -> None:
    """Write the phase cos f + i sin f into ``h`` elementwise.

    h = cos f + i sin f elementwise (f real, h complex of f's shape).

    float64 goes through torch's vectorised (SLEEF) kernels, on one thread: NumPy's float64
    sin/cos are scalar libm calls on CPUs without AVX-512, which made the cost phase the
    main loss of the complex128 path (measured ~4× slower than torch's for 2^17 entries;
    float32 is vectorised in NumPy). Every engine calls this one function, so batched and
    single states keep the same bits.

    Parameters
    ----------
    f : numpy.ndarray, real
    h : numpy.ndarray, complex
        Written in place.
    """
    if f.dtype == np.float64 and f.size >= 4096:
        import torch

        tf = torch.from_numpy(f)
        threads = torch.get_num_threads()
        if threads != 1:  # the engine's own threads split the state; torch's pool would only spin
            torch.set_num_threads(1)
        try:
            torch.cos(tf, out=torch.from_numpy(h.real))
            torch.sin(tf, out=torch.from_numpy(h.imag))
        finally:
            if threads != 1:
                torch.set_num_threads(threads)
        return
    np.cos(f, out=h.real)
    np.sin(f, out=h.imag)


def _groups(n: int, m: int | None = None) -> list[tuple[int, int]]:
    """Qubit groups (first qubit, size) of the X mixer: ceil(n/m) groups of nearly equal size, smaller ones first.

    Balanced rather than m, m, ..., remainder: the same number of passes over the state, fewer
    flops per pass (n = 12 is 4+4+4, not 5+5+2), and the lowest group — applied as a kron(M, I2)
    matmul on the interleaved re/im view, twice the flops of the others — is never the largest.
    """
    m = m or _GROUP
    if n <= 0:
        return []
    k = -(-n // m)
    base, extra = divmod(n, k)
    out, q = [], 0
    for size in [base] * (k - extra) + [base + 1] * extra:
        out.append((q, size))
        q += size
    return out


def _hamming(m: int) -> np.ndarray:
    i = np.arange(1 << m)
    x = i[:, None] ^ i[None, :]
    return popcounts(m)[x].astype(np.int64)


def _group_view(row: np.ndarray, q0: int, m: int) -> np.ndarray:
    """View a state row as (A, 2^m, 2^q0): axis 1 indexes qubits q0..q0+m-1 (a view, never a copy)."""
    return row.reshape(-1, 1 << m, 1 << q0)


def _apply_real(M: np.ndarray, MkT, blk: np.ndarray, buf: np.ndarray) -> np.ndarray:
    """Real M acting on axis 1 of a float block (ca, 2^m, 2B) of interleaved complex numbers.

    Lowest group (last axis = re/im pair): one (rows × 2^{m+1}) @ kron(M, I2)ᵀ gemm.
    """
    if blk.shape[2] == 2:
        b2 = blk.reshape(blk.shape[0], -1)
        return np.matmul(b2, MkT, out=buf[:b2.size].reshape(b2.shape)).reshape(blk.shape)
    return np.matmul(M, blk, out=buf[:blk.size].reshape(blk.shape))


@lru_cache(maxsize=None)
def _group_generator(m: int, rdtype) -> tuple[np.ndarray, np.ndarray]:
    """(A, kron(A, I2)ᵀ) with Σ_{t<m} -Y_t = i·A on a group of m qubits (read-only)."""
    a1 = np.array([[0.0, 1.0], [-1.0, 0.0]])
    A = sum(_kron_at(a1, t, m) for t in range(m)).astype(rdtype)
    out = (A, _kron_eye2_T(A))
    for a in out:
        a.setflags(write=False)
    return out


@lru_cache(maxsize=None)
def _rotation_signs(m: int) -> np.ndarray:
    """Sign of entry (j, k) of ⊗[[c, s], [-s, c]]: (-1)^popcount(j & ~k)."""
    i = np.arange(1 << m)
    down = popcounts(m)[i[:, None] & ~i[None, :] & ((1 << m) - 1)]
    out = np.where(down % 2, -1.0, 1.0)
    out.setflags(write=False)
    return out


def _kron_eye2_T(M: np.ndarray) -> np.ndarray:
    """kron(M, I2)ᵀ without np.kron's overhead (it dominates small problems)."""
    K = M.shape[0]
    out = np.zeros((K, 2, K, 2), dtype=M.dtype)
    out[:, 0, :, 0] = M.T
    out[:, 1, :, 1] = M.T
    return out.reshape(2 * K, 2 * K)


def _kron_at(a: np.ndarray, t: int, m: int) -> np.ndarray:
    """Kronecker product with ``a`` on factor t of an m-fold tensor product (identity elsewhere)."""
    out = np.ones((1, 1))
    for i in range(m):
        out = np.kron(out, a if i == t else np.eye(2))
    return out


@lru_cache(maxsize=None)
def _hamming_cached(m: int) -> np.ndarray:
    h = _hamming(m)
    h.setflags(write=False)
    return h


def _tiles(shape: tuple[int, int, int], ch: int):
    """Index tuples covering an (A, M, L) array in blocks of ≤ ch entries (ch a power of two)."""
    A, M, L = shape
    if M * L <= ch:
        step = ch // (M * L)
        for a0 in range(0, A, step):
            yield (slice(a0, a0 + step),)
    elif L <= ch:
        step = ch // L
        for a in range(A):
            for m0 in range(0, M, step):
                yield (a, slice(m0, m0 + step))
    else:
        for a in range(A):
            for m in range(M):
                for l0 in range(0, L, ch):
                    yield (a, m, slice(l0, l0 + ch))


def _blocks(size: int, q0: int, m: int, ch: int):
    """Index tuples into row.reshape(A, 2^m, 2^q0) covering it in cache-sized blocks."""
    K, B = 1 << m, 1 << q0
    A = size // (K * B)
    if K * B <= ch:
        ca = max(1, ch // (K * B))
        for a0 in range(0, A, ca):
            yield (slice(a0, a0 + ca), slice(None), slice(None))
    else:
        cb = max(1, ch // K)
        for a in range(A):
            for b0 in range(0, B, cb):
                yield (slice(a, a + 1), slice(None), slice(b0, b0 + cb))


class NumpyQAOA:
    """Statevector QAOA for one cost vector; reusable across angle evaluations."""

    def __init__(self, costs: np.ndarray, p: int, mixer: str = "x", k: int | None = None,
                 dtype=np.complex128):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.complex64, np.complex128):
            raise QSelectError(f"native engine dtype must be complex64 or complex128, got {dtype}")
        self.rdtype = real_dtype(self.dtype)
        costs = np.asarray(costs)
        N = costs.size
        n = N.bit_length() - 1
        if costs.ndim != 1 or N != 1 << n:
            raise QSelectError(f"cost vector must have length 2^n, got shape {costs.shape}")
        self.n, self.N, self.p = n, N, int(p)
        check_mixer(mixer, k, need_k=True)
        self.mixer, self.k = mixer, k
        self.costs = np.ascontiguousarray(costs, dtype=self.rdtype)
        self._ham = {m: _hamming_cached(m) for _, m in _groups(n)}
        # X mixer in the rotated frame (see _x_mixer): generator of a group = i·A, A real antisymmetric
        self._gen = {m: _group_generator(m, self.rdtype) for m in self._ham}
        self._frame = mixer == "x"
        self._kernel = uses_row_kernel(mixer, N, self.dtype)  # compiled sweeps (kernels), else NumPy/BLAS
        self._rot = {m: (_rotation_signs(m), h) for m, h in self._ham.items()}
        self._psi0 = None
        self._rot_cache: dict = {}
        self._chunk = _CHUNK
        self._block_cache: dict = {}
        threads = _threads() if N >= 2 * _CHUNK else 1
        self._bufs = [np.empty(_CHUNK, dtype=self.dtype) for _ in range(threads)]
        self._buf = self._bufs[0]
        self._fbufs = [np.empty(_CHUNK, dtype=self.rdtype) for _ in range(threads)]
        self._pairs = ring_pairs(n)

    # ---- building blocks ----------------------------------------------------
    def initial_state(self) -> np.ndarray:
        """Start state in the engine's frame (|+>^n rotated by D^-1 for the X mixer); a fresh copy."""
        if self._psi0 is None:
            self._psi0 = self._initial_state()
        return self._psi0.copy()

    def _initial_state(self) -> np.ndarray:
        if self.mixer == "xy":
            return dicke_state(self.n, self.k, self.dtype)
        table = (np.array([1, -1j, -1, 1j]) / np.sqrt(self.N)).astype(self.dtype)  # (-i)^popcount / √N
        return table[popcounts(self.n) & 3]

    def _chunked(self, fn) -> list:
        """fn(c0, complex scratch, float scratch) per chunk of _CHUNK entries, across threads."""
        starts = range(0, self.N, _CHUNK)
        t = len(self._bufs)
        if t == 1 or len(starts) < 2:
            return [fn(c0, self._bufs[0], self._fbufs[0]) for c0 in starts]
        futs = [_pool(t).submit(lambda part, b, fb: [fn(c0, b, fb) for c0 in part], starts[k::t],
                                self._bufs[k], self._fbufs[k]) for k in range(t)]
        return [x for f in futs for x in f.result()]

    def _phase(self, rows, gamma: float, weights=None):
        """Multiply the rows by exp(-iγ c) chunk by chunk (weights default to the cost)."""
        c = self.costs if weights is None else weights

        def step(c0, buf, fbuf):
            cs = c[c0:c0 + _CHUNK]
            f = fbuf[:cs.size]
            np.multiply(cs, -gamma, out=f)
            h = buf[:cs.size]
            phase_into(f, h)
            for r in rows:
                r[c0:c0 + _CHUNK] *= h

        self._chunked(step)

    def _run_blocks(self, q0: int, m: int, fn, float_view: bool = False) -> list:
        """Apply ``fn(idx, scratch)`` to every block of a qubit group, threads sharing large states.

        fn(idx, scratch) for every block of a qubit group; blocks are disjoint, so large states are split across threads
        (numpy releases the GIL in matmul). With ``float_view`` the row is the interleaved real view (2N floats, q0
        shifted by one).
        """
        key = (q0, m, float_view)
        if key not in self._block_cache:
            size, ch = (2 * self.N, 2 * self._chunk) if float_view else (self.N, self._chunk)
            self._block_cache[key] = list(_blocks(size, q0, m, ch))
        blocks = self._block_cache[key]
        if len(self._bufs) == 1 or len(blocks) < 2:
            return [fn(idx, self._bufs[0]) for idx in blocks]
        t = len(self._bufs)
        futs = [_pool(t).submit(lambda part, buf: [fn(i, buf) for i in part], blocks[k::t], self._bufs[k])
                for k in range(t)]
        return [x for f in futs for x in f.result()]

    def _rotation(self, m: int, beta: float, low: bool):
        """The real mixer matrix of a qubit group at β, cached.

        (⊗^m [[c, s], [-s, c]], its kron(·, I2)ᵀ for the lowest group), cached per |β|: the matrix at -β (the
        backward sweep's inverse) is the transpose, cached as a contiguous copy.
        """
        key = (m, float(abs(beta)), low)
        hit = self._rot_cache.get(key)
        if hit is None:
            c, s = np.cos(abs(beta)), np.sin(abs(beta))
            sign, d = self._rot[m]
            j = np.arange(m + 1)
            # entry (j, k) = ± c^(m-d) s^d, d = popcount(j ^ k), sign (-1)^popcount(j & ~k)
            M = (sign * (c ** (m - j) * s ** j)[d]).astype(self.rdtype)
            MkT = _kron_eye2_T(M) if low else None
            # both orientations contiguous: BLAS rounds a transposed operand differently, and the
            # batched engine, whose rows must match this engine bit for bit, multiplies copies
            hit = ((M, MkT), (np.ascontiguousarray(M.T), None if MkT is None else np.ascontiguousarray(MkT.T)))
            if len(self._rot_cache) > 64:
                self._rot_cache.clear()
            self._rot_cache[key] = hit
        return hit[1] if beta < 0 else hit[0]

    def _x_mixer(self, rows, beta: float):
        """exp(-iβΣX) in the rotated frame.

        With D = diag(1, i) per qubit, exp(-iβX) = D R'(β) D⁻¹ where R' = [[c, s], [-s, c]]
        is REAL. D commutes with the diagonal cost, so all inner D's cancel: the engine keeps
        ψ̃ = D⁻¹ψ (same probabilities) and applies real rotations — a real matmul on the
        interleaved float view, half the flops of a complex one. Block-sized states take the
        compiled sweeps instead (:mod:`kernels`), which rotate qubit by qubit.
        """
        for q0, m in _groups(self.n):
            M, MkT = self._rotation(m, beta, q0 == 0)
            for r in rows:
                v = _group_view(r.view(self.rdtype), q0 + 1, m)

                def step(idx, buf, v=v, M=M, MkT=MkT):
                    blk = v[idx]
                    blk[...] = _apply_real(M, MkT, blk, buf.view(self.rdtype))

                self._run_blocks(q0 + 1, m, step, float_view=True)

    def _pair_views(self, r, i, j):
        lo, hi = min(i, j), max(i, j)
        v = r.reshape(self.N >> (hi + 1), 2, 1 << (hi - lo - 1), 2, 1 << lo)
        return v[:, 0, :, 1, :], v[:, 1, :, 0, :]  # (x_hi, x_lo) = (0,1) and (1,0)

    def _pair_blocks(self, i, j) -> list:
        """Block indices and scratch buffers of a pair view, cached.

        (index, scratch, scratch) per block of ≤ _CHUNK/2 entries of a pair view (A, M, L), cached; the two scratches
        are disjoint halves of self._buf shaped like the block.
        """
        key = ("xy", i, j)
        if key not in self._block_cache:
            lo, hi = min(i, j), max(i, j)
            shape, h = (self.N >> (hi + 1), 1 << (hi - lo - 1), 1 << lo), _CHUNK // 2
            blocks = []
            for idx in _tiles(shape, h):
                bshape = np.broadcast_to(np.empty((), dtype=bool), shape)[idx].shape  # no allocation
                size = int(np.prod(bshape))
                blocks.append((idx, self._buf[:size].reshape(bshape), self._buf[h:h + size].reshape(bshape)))
            self._block_cache[key] = blocks
        return self._block_cache[key]

    def _xy_pair(self, rows, i, j, beta):
        """Apply exp(-iβ(XX+YY)/2) to one qubit pair in place.

        exp(-iβ(XX+YY)/2) on pair (i, j): a rotation of the |01>, |10> amplitudes, in place block by block through
        cache-sized scratch (no quarter-state temporaries).
        """
        c, s = np.cos(beta), -1j * np.sin(beta)
        for r in rows:
            a, b = self._pair_views(r, i, j)
            for idx, sy, sx in self._pair_blocks(i, j):
                x, y = a[idx], b[idx]
                np.multiply(y, s, out=sy)
                np.multiply(x, s, out=sx)
                x *= c
                x += sy
                y *= c
                y += sx

    def _mixer(self, rows, beta):
        if self.mixer == "x":
            self._x_mixer(rows, beta)
        else:
            for i, j in self._pairs:
                self._xy_pair(rows, i, j, beta)

    # ---- public API ---------------------------------------------------------
    def _split(self, angles):
        a = np.asarray(angles, dtype=np.float64).reshape(-1)
        if a.size != 2 * self.p:
            raise QSelectError(f"QAOA at p={self.p} needs {2 * self.p} angles [γ_1..γ_p, β_1..β_p], got {a.size}")
        return a[:self.p], a[self.p:]

    def state(self, angles) -> np.ndarray:
        """The QAOA state |γ,β> (computational basis, little-endian).

        Parameters
        ----------
        angles : array_like, shape (2p,)
            ``[γ_1..γ_p, β_1..β_p]`` in radians.

        Returns
        -------
        numpy.ndarray, complex, shape (2**n,)
        """
        with self._blas():
            psi = self._state(angles)
        if self._frame:  # back from the rotated frame: ψ = D ψ̃, D = i^popcount
            psi *= np.array([1, 1j, -1, -1j], dtype=self.dtype)[popcounts(self.n) & 3]
        return psi

    def _blas(self):
        """:func:`single_thread_blas` for the matmul path; the compiled path calls no BLAS."""
        return nullcontext() if self._kernel else single_thread_blas()

    def _start(self) -> np.ndarray:
        if self._psi0 is None:
            self._psi0 = self._initial_state()
        return self._psi0

    def _state(self, angles) -> np.ndarray:
        gam, bet = self._split(angles)
        if self._kernel:  # the compiled forward sweep (kernels.states_rows), as value_and_grad runs it
            return states_rows(self._start(), self.costs[None], _ROW0, gam[None],
                               rotation_pairs(bet).reshape(1, self.p, 2))[0]
        psi = self.initial_state()
        for g, b in zip(gam, bet):
            self._phase((psi,), g)
            self._mixer((psi,), b)
        return psi

    def probabilities(self, angles=None, psi=None) -> np.ndarray:
        """Probabilities |ψ_x|² of the QAOA state, little-endian index.

        Parameters
        ----------
        angles : array_like, shape (2p,)
            ``[γ_1..γ_p, β_1..β_p]`` in radians.
            Ignored when ``psi`` is given.
        psi : numpy.ndarray or None
            A state already computed by this engine (rotated frame is fine:
            probabilities do not change).

        Returns
        -------
        numpy.ndarray, shape (2**n,)
            In the engine's real dtype (float32 for complex64 states).
        """
        if psi is None:
            with self._blas():
                psi = self._state(angles)  # the frame does not change probabilities
        return abs2(psi)

    def _expect(self, psi, w) -> float:
        def part(c0, buf, fbuf):
            # |ψ|² per entry, then a float64 dot: a float32-accumulated dot (3× faster) adds ~1e-6
            # noise that made L-BFGS-B take 2-4× more evaluations
            z = psi[c0:c0 + _CHUNK]
            pr = abs2(z, out=fbuf[:z.size], scratch=buf.view(self.rdtype)[:z.size])
            return float(np.dot(pr.astype(np.float64, copy=False), w[c0:c0 + _CHUNK]))

        return sum(self._chunked(part))

    def expectation(self, angles, weights=None) -> float:
        """⟨ψ(θ)|W|ψ(θ)⟩ for the diagonal observable W (default: the cost).

        Parameters
        ----------
        angles : array_like, shape (2p,)
            ``[γ_1..γ_p, β_1..β_p]`` in radians.
        weights : numpy.ndarray, shape (2**n,), or None
            A diagonal observable (default: the cost).

        Returns
        -------
        float

        Raises
        ------
        QSelectError
            ``weights`` of another shape or not finite.
        """
        w = self._weights(weights)
        if self._kernel:
            return float(expectations(self._state(angles)[None], w[None], _ROW0)[0])
        with single_thread_blas():
            return self._expect(self._state(angles), w)

    def value_and_grad(self, angles, weights=None) -> tuple[float, np.ndarray]:
        """⟨W⟩ and its exact gradient by the adjoint method (one forward, one backward sweep).

        Parameters
        ----------
        angles : array_like, shape (2p,)
            ``[γ_1..γ_p, β_1..β_p]`` in radians.
        weights : numpy.ndarray, shape (2**n,), or None
            A diagonal observable (default: the cost; the phase is always the cost's).

        Returns
        -------
        value : float
        grad : numpy.ndarray of float64, shape (2p,)

        Raises
        ------
        QSelectError
            ``weights`` of another shape or not finite.

        References
        ----------
        T. Jones, J. Gacon, "Efficient calculation of gradients in classical
        simulations of variational quantum algorithms", arXiv:2009.02823 (2020) —
        the adjoint method.
        """
        with self._blas():
            return self._value_and_grad(angles, weights)

    def _weights(self, weights) -> np.ndarray:
        """The observable's diagonal: the cost, or ``weights`` checked (2^n finite numbers) in the real dtype."""
        if weights is None:
            return self.costs
        return check_observable(weights, self.N, self.rdtype)

    def _value_and_grad(self, angles, weights=None) -> tuple[float, np.ndarray]:
        w = self._weights(weights)
        gam, bet = self._split(angles)
        if self._kernel:  # the whole sweep compiled, one call (kernels.value_and_grad_rows)
            val, grad = value_and_grad_rows(self._start(), self.costs[None], w[None], _ROW0,
                                            gam[None], rotation_pairs(bet).reshape(1, self.p, 2))
            return float(val[0]), grad[0]
        if keeps_layer_states(self.mixer, self.N):
            return self._value_and_grad_kept(gam, bet, w)
        psi = self._state(angles)
        value = self._expect(psi, w)
        lam = psi * w
        rows = (psi, lam)
        g_gam = np.zeros(self.p)
        g_bet = np.zeros(self.p)
        for l in range(self.p - 1, -1, -1):
            # mixer: dE/dβ = 2 Im <λ|B|ψ>, then undo the mixer on both
            if self.mixer == "x":
                # in the frame the generator is H = iA (A real): 2 Im<λ|iA|ψ> = 2 Re<λ|Aψ> = 2 λ_f·(Aψ)_f
                g_bet[l] = 2 * self._x_generator_dot(lam, psi)
                self._x_mixer(rows, -bet[l])
            else:
                acc = 0.0
                for i, j in reversed(self._pairs):
                    pa, pb = self._pair_views(psi, i, j)
                    la, lb = self._pair_views(lam, i, j)
                    # <λ|(XX+YY)/2|ψ> on the pair = Σ conj(λ01) ψ10 + conj(λ10) ψ01; blockwise vdot
                    # copies at most a cache-sized block, never a quarter state
                    acc += sum(np.vdot(la[t], pb[t]) + np.vdot(lb[t], pa[t]) for t, _, _ in self._pair_blocks(i, j))
                    self._xy_pair(rows, i, j, -bet[l])
                g_bet[l] = 2 * np.imag(acc)
            # cost: dE/dγ = 2 Im <λ|C|ψ>, then undo the phase on both
            acc = 0.0
            for c0 in range(0, self.N, _CHUNK):
                sl = slice(c0, c0 + _CHUNK)
                out = self._buf[:min(_CHUNK, self.N - c0)]
                np.multiply(psi[sl], self.costs[sl], out=out)
                acc += np.vdot(lam[sl], out)
            g_gam[l] = 2 * np.imag(acc)
            self._phase(rows, -gam[l])
        return value, np.concatenate([g_gam, g_bet])

    def _x_generator_dot(self, lam, psi) -> float:
        """λ_f·(Aψ)_f summed over the X mixer's qubit groups (rotated frame, A real): ½ dE/dβ."""
        acc = 0.0
        for q0, m in _groups(self.n):
            A, AkT = self._gen[m]
            vp = _group_view(psi.view(self.rdtype), q0 + 1, m)
            vl = _group_view(lam.view(self.rdtype), q0 + 1, m)

            def term(idx, buf, vp=vp, vl=vl, A=A, AkT=AkT if q0 == 0 else None):
                u = _apply_real(A, AkT, vp[idx], buf.view(self.rdtype))
                return float(np.vdot(vl[idx], u))

            acc += sum(self._run_blocks(q0 + 1, m, term, float_view=True))
        return acc

    def _value_and_grad_kept(self, gam, bet, w) -> tuple[float, np.ndarray]:
        """Adjoint gradient that keeps the states between layers (see :func:`keeps_layer_states`).

        Only λ travels back: dE/dβ_l pairs it with the kept state after layer l, dE/dγ_l (after
        λ has passed the layer's phase) with the kept state before it — a quarter fewer mixer
        passes than moving ψ back beside λ.
        """
        psi = self.initial_state()
        kept = [psi.copy()]
        for l in range(self.p):
            self._phase((psi,), gam[l])
            self._mixer((psi,), bet[l])
            kept.append(psi if l == self.p - 1 else psi.copy())
        value = self._expect(psi, w)
        lam = psi * w
        g_gam, g_bet = np.zeros(self.p), np.zeros(self.p)
        out = self._buf[:self.N]
        for l in range(self.p - 1, -1, -1):
            g_bet[l] = 2 * self._x_generator_dot(lam, kept[l + 1])
            self._x_mixer((lam,), -bet[l])
            self._phase((lam,), -gam[l])
            np.multiply(kept[l], self.costs, out=out)  # the phase's generator C, whatever the observable
            g_gam[l] = 2 * np.imag(np.vdot(lam, out))
        return value, np.concatenate([g_gam, g_bet])
