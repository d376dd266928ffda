"""QUBO: E(x) = xᵀQx + linear·x + offset over x ∈ {0,1}^n, with exact conversions."""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from ..errors import ProblemTooLargeError, QSelectError
from ..validation import check_finite_array, check_fraction, check_labels, check_nonnegative_int, check_seed
from .base import Problem
from .bits import BIT_TABLE_BITS
from .kernels import ising_fields, ising_maxima, qubo_fold, qubo_table, z_constant
from .memory import available_bytes, check_dense


def _finite_array(a, what: str, ndim: int) -> np.ndarray:
    return check_finite_array(a, what, ndim=ndim)


def _float_dtype(dtype) -> np.dtype:
    """Cost vectors hold real energies: refuse integer/complex dtypes up front."""
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        raise QSelectError(f"a cost vector needs a floating dtype (float32/float64), got {dtype!r}") from None
    if dt.kind != "f":
        raise QSelectError(f"a cost vector needs a floating dtype (float32/float64), got {dt}")
    return dt


class QUBO(Problem):
    """Quadratic unconstrained binary optimisation problem.

    ``Q`` may be any square matrix: the energy is xᵀQx, so a symmetric matrix
    counts each pair through both triangles and an upper-triangular one through
    one. Internally the problem is kept canonical (diagonal = linear terms,
    strictly upper triangle = pair couplings), which every conversion reads.
    """

    def __init__(self, Q, linear=None, offset: float = 0.0, labels: Iterable | None = None,
                 *, k: int | None = None, name: str | None = None):
        Q = _finite_array(Q, "QUBO matrix Q", 2)
        if Q.shape[0] != Q.shape[1]:
            raise QSelectError(f"QUBO matrix Q must be square, got shape {Q.shape}")
        n = Q.shape[0]
        lin = np.diag(Q).copy()
        if linear is not None:
            linear = _finite_array(linear, "QUBO linear terms", 1)
            if linear.shape != (n,):
                raise QSelectError(f"QUBO linear terms must have length {n} (one per variable), got {linear.shape[0]}")
            with np.errstate(over="ignore", invalid="ignore"):
                lin += linear
        offset = _finite_array(offset, "QUBO offset", 0)
        with np.errstate(over="ignore", invalid="ignore"):
            quad = np.triu(Q, 1) + np.tril(Q, -1).T
        if not (np.all(np.isfinite(quad)) and np.all(np.isfinite(lin))):
            raise QSelectError("QUBO coefficients overflow float64 when the two triangles of Q (or the "
                               "diagonal and linear terms) are added; rescale the problem (e.g. divide Q by 1e6)")
        self._lin = lin
        self._quad = quad
        self.offset = float(offset)
        self.labels = check_labels(labels, n, "QUBO")
        self.k = self._check_k(k)
        self.name = name

    # ---- accessors -------------------------------------------------------
    @property
    def num_variables(self) -> int:
        """Number of binary variables n."""
        return self._lin.shape[0]

    @property
    def linear(self) -> np.ndarray:
        """Coefficient of each x_i (diagonal folded in)."""
        return self._lin.copy()

    @property
    def quadratic(self) -> np.ndarray:
        """Strictly upper-triangular coupling matrix (coefficient of x_i x_j, i<j)."""
        return self._quad.copy()

    @property
    def Q(self) -> np.ndarray:
        """Canonical upper-triangular matrix: E = xᵀQx + offset."""
        return self._quad + np.diag(self._lin)

    def __repr__(self) -> str:
        nnz = int(np.count_nonzero(self._quad))
        k = f", k={self.k}" if self.k is not None else ""
        nm = f" {self.name!r}" if self.name else ""
        return f"QUBO{nm}(n={self.n}, couplings={nnz}, offset={self.offset:.6g}{k})"

    def copy(self, **changes) -> "QUBO":
        """A copy with some fields changed (validated like a new QUBO).

        Parameters
        ----------
        **changes
            Any of ``offset``, ``labels``, ``k``, ``name``, ``linear`` (added to
            the diagonal).

        Returns
        -------
        QUBO
        """
        kw = dict(linear=None, offset=self.offset, labels=self.labels, k=self.k, name=self.name)
        kw.update(changes)
        return self._carry(QUBO(self.Q, **kw))

    # ---- energies --------------------------------------------------------
    def energy(self, bits):
        """Energy xᵀQx + offset of one bitstring or of a batch.

        Parameters
        ----------
        bits : array_like of {0, 1}, shape (n,) or (m, n)
            Bitstrings, bit 0 (= qubit 0) first.

        Returns
        -------
        float or numpy.ndarray of float64, shape (m,)

        Raises
        ------
        QSelectError
            If ``bits`` has the wrong length or holds values other than 0/1.
        """
        x = self._check_bits(bits).astype(np.float64)
        e = x @ self._lin + np.einsum("...i,ij,...j->...", x, self._quad, x) + self.offset
        return float(e) if x.ndim == 1 else e

    def cost_vector(self, dtype=np.float64) -> np.ndarray:
        """All 2^n energies.

        By doubling (:func:`~qselect.problems.kernels.qubo_table`, O(2^n) work, compiled where
        numba loads, the same bits either way): setting bit i on top of every assignment of
        bits < i adds lin_i + sum_{j<i} Q_ji x_j; that field over the 2^i lower assignments is
        itself built by doubling, so no 2^n × n bit matrix is ever formed. Up to 16 bits
        (block-sized problems, built thousands of times by block descents) the sums run in
        float64 whatever ``dtype`` asks; beyond, in ``dtype``.

        Parameters
        ----------
        dtype : numpy floating dtype, default float64
            ``float32`` halves the memory.

        Returns
        -------
        numpy.ndarray, shape (2**n,)
            Little-endian index.

        Raises
        ------
        ProblemTooLargeError
            If the vector would not fit in memory.
        QSelectError
            If ``dtype`` is not a floating type.
        """
        n = self.n
        dtype = _float_dtype(dtype)
        check_dense(n, dtype.itemsize, "the dense cost vector", copies=1.5)
        if n <= BIT_TABLE_BITS:  # block-sized: summed in float64 whatever the dtype asked
            return qubo_table(self._lin, self._quad, self.offset).astype(dtype, copy=False)
        return qubo_table(self._lin, self._quad, self.offset, dtype)

    # ---- structure -------------------------------------------------------
    def z_terms(self):
        """The cost as a Z-polynomial of order ≤ 2 (z = 1 − 2x).

        Returns
        -------
        terms : dict of tuple of int -> float
            ``{(i,): h_i, (i, j): J_ij}`` for the non-zero Ising coefficients.
        constant : float
            The constant term, offset included.
        """
        h, J, const = self.to_ising()
        terms = {(i,): float(h[i]) for i in range(self.n) if h[i] != 0.0}
        iu, ju = np.nonzero(J)
        terms.update({(int(i), int(j)): float(J[i, j]) for i, j in zip(iu, ju)})
        return terms, const

    def z_constant(self) -> float:
        """The Ising constant (:meth:`to_ising`'s offset): :meth:`z_terms`' constant without the dictionary.

        Returns
        -------
        float
        """
        return z_constant(self._lin, self._quad, self.offset)  # to_ising's offset, term for term

    def scale(self) -> float:
        """Largest |coefficient| of the Z-polynomial (constant excluded); 1 if none.

        The same value as :meth:`Problem.scale`, read from :meth:`to_ising`'s numbers without
        building them (its J = quad / 4, so max |J| = max |quad| / 4).

        Returns
        -------
        float
        """
        hmax, qmax = ising_maxima(self._lin, self._quad)
        m = max(hmax, qmax / 4)
        return m if m > 0 else 1.0

    def fix(self, assignment: dict[int, int]) -> "QUBO":
        """Fold fixed bits into the remaining variables' linear terms and the offset.

        Parameters
        ----------
        assignment : dict of int -> {0, 1}
            Bit position -> value of each fixed bit.

        Returns
        -------
        QUBO
            Over the free bits in order; same energies with the fixed bits set.

        Raises
        ------
        QSelectError
            If a position is out of range or a value is not 0/1.
        """
        fixed, free = self._check_assignment(assignment)
        x = np.zeros(self.n)
        x[fixed] = [assignment[i] for i in fixed]
        return self._fold(x, np.asarray(free, dtype=np.int64))

    def _fix_outside(self, free: np.ndarray, x: np.ndarray) -> "QUBO":
        """:meth:`fix_outside`'s fold from arrays: ``fix``'s numbers without the dictionary."""
        xf = x.astype(np.float64)
        xf[free] = 0.0
        return self._fold(xf, free)

    def _symmetric(self) -> np.ndarray:
        """S = Q + Qᵀ of the couplings (read-only), formed once per problem (descents ask it thousands of times)."""
        sym = self.__dict__.get("_sym")
        if sym is None:
            sym = self._quad + self._quad.T
            sym.setflags(write=False)
            self._sym = sym
        return sym

    def _fold(self, x: np.ndarray, fr: np.ndarray) -> "QUBO":
        """The QUBO over the sorted positions ``fr`` with every other bit at its value in ``x`` (0 at ``fr``)."""
        free = fr.tolist()
        sym = self._symmetric()
        on = np.flatnonzero(x)  # x is 0 at the free bits
        delta, lin, quad, finite = qubo_fold(self._lin, self._quad, sym, fr, on)
        offset = self.offset + delta
        k = None
        if self.k is not None:
            k = self.k - on.size
            k = k if 0 <= k <= len(free) else None
        labels = tuple(map(self.labels.__getitem__, free))
        if not (finite and math.isfinite(offset)):  # what the constructor would refuse
            return self._carry(QUBO(quad, lin, offset, labels, k=k, name=self.name), fr)
        # free positions are sorted, so quad stays strictly upper-triangular and the QUBO is already
        # canonical; qubo_fold added 0.0, which normalises -0.0 exactly as the constructor's triangle sums do
        out = QUBO.__new__(QUBO)
        out._lin = lin
        out._quad = quad
        out.offset = float(offset)
        out.labels = labels
        out.k = k
        out.name = self.name
        return self._carry(out, fr)

    def scaled(self, factor: float) -> "QUBO":
        """Energies multiplied by ``factor`` (labels and k kept).

        Parameters
        ----------
        factor : float
            Finite scale factor.

        Returns
        -------
        QUBO

        Raises
        ------
        QSelectError
            If ``factor`` is NaN or infinite.
        """
        factor = float(_finite_array(factor, "scale factor", 0))
        return self._carry(QUBO(self._quad * factor, self._lin * factor, self.offset * factor,
                                self.labels, k=self.k, name=self.name))

    def with_cardinality_penalty(self, k: int, strength: float) -> "QUBO":
        """Add strength·(Σx − k)²: linear (1−2k)·s, pairs 2s, offset s·k².

        Parameters
        ----------
        k : int
            Number of set bits the penalty favours, in [0, n].
        strength : float
            Penalty weight λ ≥ 0.

        Returns
        -------
        QUBO
        """
        if k is None:
            raise QSelectError("with_cardinality_penalty needs the number of kept bits k (an integer), got None")
        k = self._check_k(k)
        strength = float(_finite_array(strength, "cardinality penalty strength", 0))
        if strength < 0:
            raise QSelectError(f"cardinality penalty strength must be ≥ 0, got {strength}")
        n = self.n
        lin = self._lin + strength * (1 - 2 * k)
        quad = self._quad + 2 * strength * np.triu(np.ones((n, n)), 1)
        out = self._carry(QUBO(quad, lin, self.offset + strength * k * k, self.labels, k=k, name=self.name))
        out.penalty = strength
        return out

    # ---- local moves in closed form --------------------------------------
    def flip_deltas(self, x) -> np.ndarray:
        """``E(x ⊕ e_i) − E(x)`` in closed form: ``(1 − 2x_i)(b_i + (S x)_i)``, S = Q + Qᵀ off-diagonal.

        Parameters
        ----------
        x : array_like of {0, 1}, shape (n,)
            The current bitstring.

        Returns
        -------
        numpy.ndarray of float64, shape (n,)
        """
        x = self._check_bits(x)
        return (1.0 - 2.0 * x) * (self._lin + self._symmetric() @ x)

    def swap_deltas(self, x, on, off) -> np.ndarray:
        """1-in/1-out swap changes in closed form, ``d_i + d_j − S_ij`` (d the flip changes).

        Parameters
        ----------
        x : array_like of {0, 1}, shape (n,)
            The current bitstring.
        on : array_like of int, shape (a,)
            Set bits to clear.
        off : array_like of int, shape (b,)
            Unset bits to set.

        Returns
        -------
        numpy.ndarray of float64, shape (a, b)
        """
        x = self._check_bits(x)
        on, off = np.asarray(on, dtype=np.int64), np.asarray(off, dtype=np.int64)
        sym = self._symmetric()
        d = (1.0 - 2.0 * x) * (self._lin + sym @ x)
        return d[on][:, None] + d[off][None, :] - sym[on[:, None], off]

    def quadratic_surrogate(self):
        """The QUBO itself (exact), and no note."""
        return self, None

    def lower_bound(self) -> float:
        """Termwise bound: offset + Σ min(b_i, 0) + Σ min(Q_ij, 0) (no 2^n scan)."""
        return float(self.offset + np.minimum(self._lin, 0).sum() + np.minimum(self._quad, 0).sum())

    def max_flip_change(self) -> float:
        """Largest ``|E(x ⊕ e_i) − E(x)|`` over all x and i, exact in closed form (no 2^n scan)."""
        s = self._symmetric()
        up = self._lin + np.clip(s, 0, None).sum(axis=1)
        down = -(self._lin + np.clip(s, None, 0).sum(axis=1))
        return float(max(up.max(initial=0.0), down.max(initial=0.0)))

    # ---- Ising -----------------------------------------------------------
    def to_ising(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(h, J, offset) with E = Σ J_ij z_i z_j + Σ h_i z_i + offset, x = (1 − z)/2.

        J is strictly upper-triangular.
        """
        h = ising_fields(self._lin, self._quad)  # sums in one order (qselect.problems.kernels)
        return h, self._quad / 4, z_constant(self._lin, self._quad, self.offset)

    @classmethod
    def from_ising(cls, h, J, offset: float = 0.0, labels=None, **kw) -> "QUBO":
        """Inverse of to_ising (J may be any square matrix; both triangles count).

        Parameters
        ----------
        h : array_like, shape (n,)
            Fields of the spins z = 1 − 2x.
        J : array_like, shape (n, n)
            Couplings.
        offset : float
        labels : sequence or None
        **kw
            ``k``, ``name``.

        Returns
        -------
        QUBO
            With the same energy on every bitstring.
        """
        h = _finite_array(h, "Ising field h", 1)
        J = _finite_array(J, "Ising coupling J", 2)
        n = h.shape[0]
        if J.shape != (n, n):
            raise QSelectError(f"Ising coupling J must have shape ({n}, {n}), got {J.shape}")
        Jc = np.triu(J, 1) + np.tril(J, -1).T
        diag_const = float(np.trace(J))  # z_i² = 1
        # z_i = 1 − 2x_i ; z_i z_j = 1 − 2x_i − 2x_j + 4 x_i x_j
        quad = 4 * Jc
        lin = -2 * h - 2 * (Jc.sum(axis=1) + Jc.sum(axis=0))
        off = float(offset) + h.sum() + Jc.sum() + diag_const
        return cls(quad, lin, off, labels, **kw)

    @classmethod
    def from_z_terms(cls, terms: dict, constant: float, n: int, **kw) -> "QUBO":
        """Build a QUBO from a Z-polynomial of order ≤ 2.

        Parameters
        ----------
        terms : dict of tuple of int -> float
            Coefficient of z_i (one qubit) or z_i z_j (two qubits).
        constant : float
            Constant term.
        n : int
            Number of qubits.
        **kw
            ``labels``, ``k``, ``name``.

        Returns
        -------
        QUBO
            With the same energy on every bitstring.

        Raises
        ------
        QSelectError
            If a term names a qubit outside 0..n−1 or has order above 2.
        """
        h = np.zeros(n)
        J = np.zeros((n, n))
        for qubits, coeff in terms.items():
            q = tuple(sorted(qubits))
            if q and not (0 <= q[0] and q[-1] < n):
                raise QSelectError(f"Z term on qubits {q} is outside the {n} qubits 0..{n - 1}; "
                                   "pass the right n")
            if len(q) == 1:
                h[q[0]] += coeff
            elif len(q) == 2:
                J[q[0], q[1]] += coeff
            elif len(q) > 2:
                raise QSelectError(f"a QUBO holds Z terms of order ≤ 2, got a term on qubits {q}; "
                                   "use DiagonalCost for higher-order costs")
        return cls.from_ising(h, J, constant, **kw)

    def to_diagonal(self):
        """The same problem as a :class:`DiagonalCost` (dense 2^n vector).

        Returns
        -------
        DiagonalCost

        Raises
        ------
        QSelectError
            If the 2^n vector would not fit in memory.
        """
        from .diagonal import DiagonalCost

        return self._carry(DiagonalCost(self.cost_vector(), labels=self.labels, k=self.k, name=self.name))

    # ---- constructors ------------------------------------------------------
    @classmethod
    def random(cls, n: int, density: float = 1.0, seed: int | None = 0, **kw) -> "QUBO":
        """Dense-ish random QUBO with normal couplings (tests and benchmarks).

        Parameters
        ----------
        n : int
            Number of variables.
        density : float
            Fraction of non-zero couplings, in (0, 1].
        seed : int or None
        **kw
            ``k``, ``name``, ``labels``.

        Returns
        -------
        QUBO
        """
        n = check_nonnegative_int(n, "QUBO.random n")
        density = check_fraction(density, "QUBO.random density")
        seed = check_seed(seed)
        if 4 * 8 * n * n > available_bytes():  # a few n×n float64 matrices
            raise ProblemTooLargeError(f"QUBO.random(n={n}) needs {n}×{n} matrices (about 2^"
                                       f"{(32 * n * n).bit_length() - 1} bytes), more than the memory available; "
                                       "use a smaller n")
        rng = np.random.default_rng(seed)
        Q = np.triu(rng.normal(size=(n, n)))
        if density < 1.0:
            Q *= np.triu(rng.random((n, n)) < density, 1) + np.eye(n)
        return cls(Q, offset=float(rng.normal()), **kw)
