"""A QUBO kept in factored form: one shared Gram matrix, one weight vector per problem.

Weight selection for output neuron j (least-squares reconstruction) is

    E(m) = ‖A·diag(w)·m − t‖² = mᵀ D G D m − 2 (D Aᵀt)ᵀ m + ‖t‖²,   G = AᵀA, D = diag(w)

Every neuron of a layer shares G; materialising ``D G D`` per neuron costs n²
floats each (a ResNet-18 ``layer4`` conv: 512 neurons × 4608² × 8 B ≈ 87 GB).
:class:`GramQUBO` stores only a reference to G (and, after fixing bits, the
indices of the free variables into it) plus O(n) vectors, and computes
energies, single-flip and swap changes from one matrix-vector product with G.
A dense :class:`~qselect.problems.QUBO` is built only when asked for
(:meth:`GramQUBO.to_qubo`) or when :meth:`GramQUBO.fix` leaves at most
:data:`DENSE_FIX_BITS` free variables (a block for an exact/annealing/QAOA
solver).

The general form kept is

    E(m) = (w∘m)ᵀ G_S (w∘m) + cᵀm + λ(Σm − κ)² + offset,

with ``G_S = G[idx][:, idx]``; the cardinality penalty λ(Σm − κ)² stays
factored too.
"""
from __future__ import annotations

import numpy as np

from ..errors import QSelectError
from .base import Problem
from .qubo import QUBO

#: fix() returns a dense QUBO when at most this many variables stay free
DENSE_FIX_BITS = 64
#: batched energies evaluate this many bitstrings per product with G
_BATCH = 256


def _vector(a, n: int, what: str) -> np.ndarray:
    v = np.asarray(a, dtype=np.float64).reshape(-1)
    if v.shape != (n,):
        raise QSelectError(f"{what} must have length {n} (one per variable), got {v.shape[0]}")
    if not np.all(np.isfinite(v)):
        raise QSelectError(f"{what} contains NaN or inf; check the weights/activations it was built from")
    return v


class GramQUBO(Problem):
    """E(m) = (w∘m)ᵀ G_S (w∘m) + linear·m + penalty·(Σm − target)² + offset.

    Parameters
    ----------
    G : ndarray (N, N), float64
        Symmetric Gram matrix AᵀA shared by all problems of a layer; it is
        referenced, never copied (do not modify it afterwards).
    w : array (n,)
        Per-variable weights (the neuron's incoming weights).
    linear : array (n,)
        Linear coefficients c (for reconstruction of the neuron's own output,
        ``−2 w ∘ (G w)``).
    offset : float
        Constant (``wᵀGw`` for that target).
    idx : array (n,) of int, optional
        Rows/columns of G the variables use (default ``arange(N)``, n = N).
    penalty : float
        λ ≥ 0 of the factored cardinality penalty.
    target : float, optional
        κ of the penalty (default ``k``, else 0).
    labels, k, name
        As for :class:`~qselect.problems.QUBO`.

    Raises
    ------
    QSelectError
        G not square, vectors of the wrong length or not finite, λ < 0.

    Notes
    -----
    Memory: the problem itself holds O(n) floats; energies need one product
    with G per bitstring (O(N²) time, O(N) memory). Solvers use
    :meth:`flip_deltas` / :meth:`swap_deltas` (closed forms from the field
    ``f = G_S (w∘x)``) and :meth:`field`/:meth:`coupling_row` for
    incremental local search.
    """

    def __init__(self, G, w, linear, offset: float = 0.0, *, idx=None, penalty: float = 0.0,
                 target: float | None = None, labels=None, k: int | None = None, name: str | None = None):
        G = np.asarray(G)
        if G.ndim != 2 or G.shape[0] != G.shape[1] or G.dtype != np.float64:
            raise QSelectError(f"Gram matrix G must be a square float64 array, got shape {G.shape}, "
                               f"dtype {G.dtype}")
        self._G = G
        if idx is None:
            self._idx = None
            n = G.shape[0]
        else:
            self._idx = np.asarray(idx, dtype=np.int64).reshape(-1)
            n = self._idx.size
            if n and (self._idx.min() < 0 or self._idx.max() >= G.shape[0]):
                raise QSelectError(f"idx must index rows of G (0..{G.shape[0] - 1})")
            if n == G.shape[0] and np.array_equal(self._idx, np.arange(n)):
                self._idx = None
        self.w = _vector(w, n, "weights w")
        self._lin = _vector(linear, n, "linear terms")
        self.offset = float(offset)
        self.penalty = float(penalty)
        if not np.isfinite(self.penalty) or self.penalty < 0:
            raise QSelectError(f"penalty must be a finite number ≥ 0, got {penalty!r}")
        self.labels = tuple(range(n)) if labels is None else tuple(labels)
        if len(self.labels) != n:
            raise QSelectError(f"GramQUBO has {n} variables but {len(self.labels)} labels were given")
        self.k = self._check_k(k)
        self.target = float(self.k if target is None and self.k is not None else (target or 0.0))
        self.name = name
        self._diag = None

    # ---- accessors -------------------------------------------------------
    @property
    def num_variables(self) -> int:
        """Number of binary variables (the length of the weight vector)."""
        return self.w.size

    @property
    def linear(self) -> np.ndarray:
        """Coefficient c_i of m_i (the quadratic diagonal and penalty excluded)."""
        return self._lin.copy()

    @property
    def index(self) -> np.ndarray:
        """Rows of G used by the variables."""
        return np.arange(self._G.shape[0]) if self._idx is None else self._idx.copy()

    def gram_diagonal(self) -> np.ndarray:
        """diag(G_S), (n,)."""
        if self._diag is None:
            d = np.diagonal(self._G)
            self._diag = d.copy() if self._idx is None else d[self._idx]
        return self._diag

    def nbytes(self) -> int:
        """Bytes this problem holds beyond the shared G."""
        return int(self.w.nbytes + self._lin.nbytes + (0 if self._idx is None else self._idx.nbytes))

    def __repr__(self) -> str:
        k = f", k={self.k}" if self.k is not None else ""
        nm = f" {self.name!r}" if self.name else ""
        return f"GramQUBO{nm}(n={self.n}, G={self._G.shape[0]}, penalty={self.penalty:.6g}{k})"

    # ---- products with G -------------------------------------------------
    def _gs_times(self, v: np.ndarray) -> np.ndarray:
        """G_S @ v for v (n,) or (n, m)."""
        if self._idx is None:
            return self._G @ v
        if self._idx.size * 4 < self._G.shape[0]:  # few variables: slice G's rows
            return self._G[self._idx][:, self._idx] @ v
        full = np.zeros((self._G.shape[0],) + v.shape[1:])
        full[self._idx] = v
        return (self._G @ full)[self._idx]

    def field(self, x) -> np.ndarray:
        """The field f = G_S (w∘x) that every closed-form change reads.

        f = G_S (w∘x), (n,): the quantity every closed-form change reads.

        Parameters
        ----------
        x : array_like of {0, 1}, shape (n,)
            The current bitstring.

        Returns
        -------
        numpy.ndarray of float64, shape (n,)
        """
        return self._gs_times(self.w * np.asarray(x, dtype=np.float64))

    def coupling_row(self, i: int) -> np.ndarray:
        """Row i of G_S (n,) — ``field`` changes by ±w_i times it when bit i flips.

        Parameters
        ----------
        i : int
            Variable index.

        Returns
        -------
        numpy.ndarray of float64, shape (n,)
        """
        r = self._G[i if self._idx is None else self._idx[i]]
        return r if self._idx is None else r[self._idx]

    def gram_rows(self, rows) -> np.ndarray:
        """G_S[rows] (len(rows), n): whole rows of G, read contiguously.

        Parameters
        ----------
        rows : array_like of int, shape (r,)

        Returns
        -------
        numpy.ndarray of float64, shape (r, n)
        """
        rows = np.asarray(rows, np.int64)
        if self._idx is None:
            return self._G[rows]
        return self._G[self._idx[rows]][:, self._idx]

    def gram_block(self, rows, cols) -> np.ndarray:
        """G_S[rows][:, cols] without forming G_S.

        Parameters
        ----------
        rows : array_like of int, shape (r,)
        cols : array_like of int, shape (c,)

        Returns
        -------
        numpy.ndarray of float64, shape (r, c)
        """
        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        if self._idx is not None:
            rows, cols = self._idx[rows], self._idx[cols]
        return self._G[np.ix_(rows, cols)]

    # ---- energies --------------------------------------------------------
    def energy(self, bits):
        """Energy of one bitstring or of a batch, from products with the shared Gram matrix.

        Parameters
        ----------
        bits : array_like of {0, 1}, shape (n,) or (m, n)
            Masks, bit 0 first.

        Returns
        -------
        float or numpy.ndarray of float64, shape (m,)
            (w∘m)ᵀ G_S (w∘m) + linear·m + penalty·(Σm − target)² + offset.

        Raises
        ------
        QSelectError
            If ``bits`` has the wrong length or holds values other than 0/1.
        """
        x = self._check_bits(bits).astype(np.float64)
        X = np.atleast_2d(x)
        out = np.empty(X.shape[0])
        for s in range(0, X.shape[0], _BATCH):
            Y = X[s:s + _BATCH] * self.w
            quad = np.einsum("ij,ji->i", Y, self._gs_times(Y.T))
            c = X[s:s + _BATCH].sum(axis=1) - self.target
            out[s:s + _BATCH] = quad + X[s:s + _BATCH] @ self._lin + self.penalty * c * c + self.offset
        return float(out[0]) if x.ndim == 1 else out

    def flip_deltas(self, x, field=None) -> np.ndarray:
        """E(x ⊕ e_i) − E(x) for every i, (n,): one product with G (or none given ``field``).

        With s_i = 1 − 2x_i and c = Σx − κ:
        ``s_i (2 w_i f_i + c_i + 2λc) + w_i² G_ii + λ``.

        Parameters
        ----------
        x : array_like of {0, 1}, shape (n,)
            The current bitstring.
        field : numpy.ndarray, shape (n,), or None
            ``self.field(x)`` if already computed.

        Returns
        -------
        numpy.ndarray of float64, shape (n,)
        """
        x = np.asarray(x, dtype=np.float64).reshape(self.n)
        f = self.field(x) if field is None else field
        s = 1.0 - 2.0 * x
        c = x.sum() - self.target
        return s * (2.0 * self.w * f + self._lin + 2.0 * self.penalty * c) \
            + self.w * self.w * self.gram_diagonal() + self.penalty

    def swap_deltas(self, x, on, off, field=None) -> np.ndarray:
        """Energy changes of every 1-in/1-out swap.

        Entry (a, b) clears on[a] and sets off[b]: ``d_i + d_j − 2 w_i w_j G_ij − 2λ`` (d the flip changes).

        Parameters
        ----------
        x : array_like of {0, 1}, shape (n,)
            The current bitstring.
        on : array_like of int, shape (a,)
            Set bits to clear.
        off : array_like of int, shape (b,)
            Unset bits to set.
        field : numpy.ndarray, shape (n,), or None
            ``self.field(x)`` if already computed.

        Returns
        -------
        numpy.ndarray of float64, shape (a, b)
        """
        on, off = np.asarray(on, dtype=np.int64), np.asarray(off, dtype=np.int64)
        d = self.flip_deltas(x, field)
        return (d[on][:, None] + d[off][None, :]
                - 2.0 * np.outer(self.w[on], self.w[off]) * self.gram_block(on, off) - 2.0 * self.penalty)

    # ---- conversions -----------------------------------------------------
    def to_qubo(self) -> QUBO:
        """The same energy as a dense QUBO (n² floats; for blocks, circuits and tests)."""
        from ..errors import ProblemTooLargeError
        from .memory import _USABLE_FRACTION, _fmt, available_bytes

        need = 3.0 * 8 * self.n * self.n
        if need > available_bytes() * _USABLE_FRACTION:
            raise ProblemTooLargeError(f"a dense QUBO of {self.n} variables needs {_fmt(need)}; solve the "
                                       "factored problem (swap descent) or fix bits down to a block first")
        Gs = self._G if self._idx is None else self._G[np.ix_(self._idx, self._idx)]
        Q = self.w[:, None] * Gs * self.w[None, :] + self.penalty
        lin = self._lin - 2.0 * self.penalty * self.target
        return QUBO(Q, lin, self.offset + self.penalty * self.target ** 2, self.labels, k=self.k,
                    name=self.name)

    def cost_vector(self, dtype=np.float64) -> np.ndarray:
        """Energies of all 2^n masks (builds the dense QUBO first; small n only).

        Parameters
        ----------
        dtype : numpy floating dtype, default float64

        Returns
        -------
        numpy.ndarray, shape (2**n,)
        """
        return self.to_qubo().cost_vector(dtype)

    def z_terms(self):
        """The cost as a Z-polynomial ``({qubits: coeff}, constant)``, via the dense QUBO."""
        return self.to_qubo().z_terms()

    def fix(self, assignment: dict[int, int]) -> Problem:
        """The problem over the free variables: fixed bits fold into c and the offset.

        A dense ``QUBO`` when at most :data:`DENSE_FIX_BITS` stay free (a block),
        else a ``GramQUBO`` on the same G. Cost: one product with G.

        Parameters
        ----------
        assignment : dict of int -> {0, 1}
            Bit position -> value of each fixed bit.

        Returns
        -------
        QUBO or GramQUBO

        Raises
        ------
        QSelectError
            If a position is out of range or a value is not 0/1.
        """
        fixed, free = self._check_assignment(assignment)
        x = np.zeros(self.n)
        for i in fixed:
            x[i] = assignment[i]
        return self._fold(x, np.asarray(fixed, np.int64), np.asarray(free, np.int64))

    def _fix_outside(self, free: np.ndarray, x: np.ndarray) -> Problem:
        """:meth:`fix_outside`'s fold from arrays: ``fix``'s numbers without the dictionary."""
        xf = x.astype(np.float64)
        xf[free] = 0.0
        return self._fold(xf, self._outside(free), free)

    def _fold(self, x: np.ndarray, fixed_a: np.ndarray, free_a: np.ndarray) -> Problem:
        """The problem over the sorted positions ``free_a``, the bits ``fixed_a`` at their values in ``x``."""
        free = free_a.tolist()
        f = self.field(x)  # G_S (w∘x) with the free bits at 0
        wx = self.w * x
        lin = self._lin[free_a] + 2.0 * self.w[free_a] * f[free_a]
        offset = self.offset + float(wx @ f) + float(self._lin[fixed_a] @ x[fixed_a])
        k = None
        if self.k is not None:
            k = self.k - int(x.sum())
            k = k if 0 <= k <= len(free) else None
        target = self.target - float(x.sum())
        labels = [self.labels[i] for i in free]
        sub = GramQUBO(self._G, self.w[free_a], lin, offset, idx=self.index[free_a], penalty=self.penalty,
                       target=target, labels=labels, k=k, name=self.name)
        if getattr(self, "scores", None) is not None:
            sub.scores = np.asarray(self.scores)[free_a]
        if len(free) <= DENSE_FIX_BITS:
            q = sub.to_qubo()
            if getattr(sub, "scores", None) is not None:
                q.scores = sub.scores
            return q
        return sub
