"""Diagonal (higher-order) cost: an exact local loss over all 2^n masks."""
from __future__ import annotations

import numpy as np

from ..errors import QSelectError
from ..validation import check_finite_array, check_labels
from .base import Problem
from .bits import bits_to_index, index_to_bits, popcounts
from .memory import check_dense

_MAX_DIAGONAL_QUBITS = 30


def walsh_hadamard(vec: np.ndarray) -> np.ndarray:
    """Unnormalised fast Walsh–Hadamard transform along the last axis (copy).

    Parameters
    ----------
    vec : numpy.ndarray, shape (..., 2**n)

    Returns
    -------
    numpy.ndarray, same shape
        ``H^{⊗n} vec`` without the 2^{−n/2} normalisation.
    """
    out = np.array(vec, dtype=np.float64, copy=True)
    n = out.shape[-1].bit_length() - 1
    for i in range(n):
        v = out.reshape(-1, 2, 1 << i)  # axis 1 is bit i
        a = v[:, 0, :].copy()
        v[:, 0, :] += v[:, 1, :]
        np.subtract(a, v[:, 1, :], out=v[:, 1, :])
    return out


class DiagonalCost(Problem):
    """Cost given by its value on every bitstring (length 2^n, little-endian).

    Its Z-polynomial is the Walsh–Hadamard transform of the vector: with
    z_i = 1 − 2x_i, C(x) = Σ_S w_S Π_{i∈S} z_i, w = H·c / 2^n. Truncating to
    order ≤ 2 gives the least-squares best QUBO (the Walsh basis is orthogonal).
    """

    def __init__(self, costs, labels=None, *, k: int | None = None, name: str | None = None):
        arr = check_finite_array(costs, "diagonal cost vector", ndim=None)
        if arr.ndim != 1 or arr.size < 2 or arr.size & (arr.size - 1):
            raise QSelectError(
                f"a diagonal cost needs a 1-D vector of length 2^n (n ≥ 1), got shape {arr.shape}"
            )
        n = arr.size.bit_length() - 1
        if n > _MAX_DIAGONAL_QUBITS:
            raise QSelectError(f"a diagonal cost over {n} bits is too large; at most {_MAX_DIAGONAL_QUBITS}")
        self._c = arr.copy()
        self._c.setflags(write=False)
        self._walsh = None
        self.labels = check_labels(labels, n, "diagonal cost")
        self.k = self._check_k(k)
        self.name = name

    @property
    def num_variables(self) -> int:
        """Number of binary variables n; the cost vector has 2^n entries."""
        return self._c.size.bit_length() - 1

    @property
    def offset(self) -> float:
        """Mean cost over all bitstrings (the Z-polynomial's constant)."""
        return float(self._c.mean())

    def __repr__(self) -> str:
        nm = f" {self.name!r}" if self.name else ""
        return f"DiagonalCost{nm}(n={self.n}, order={self.order()})"

    def energy(self, bits):
        """Energy of one bitstring or of a batch, looked up in the cost vector.

        Parameters
        ----------
        bits : array_like of {0, 1}, shape (n,) or (m, n)
            Bitstrings, bit 0 (= qubit 0) first.

        Returns
        -------
        float or numpy.ndarray of float64, shape (m,)
            The cost of each bitstring (offset included).

        Raises
        ------
        QSelectError
            If ``bits`` has the wrong length or holds values other than 0/1.
        """
        x = self._check_bits(bits)
        idx = bits_to_index(x)
        return float(self._c[idx]) if x.ndim == 1 else self._c[idx].copy()

    def cost_vector(self, dtype=np.float64) -> np.ndarray:
        """A copy of the 2^n cost vector, little-endian index (qubit 0 = least significant bit).

        Parameters
        ----------
        dtype : numpy floating dtype, default float64
            ``float32`` halves the memory of large vectors.

        Returns
        -------
        numpy.ndarray, shape (2**n,)

        Raises
        ------
        QSelectError
            If ``dtype`` is not a floating type.
        """
        from .qubo import _float_dtype

        return self._c.astype(_float_dtype(dtype), copy=True)

    @classmethod
    def from_function(cls, fn, n: int, **kw) -> "DiagonalCost":
        """Evaluate ``fn(bits) -> costs`` on all 2^n bitstrings at once ((2^n, n) uint8).

        Parameters
        ----------
        fn : callable
            Maps a (2^n, n) uint8 array of bitstrings (bit 0 first) to 2^n costs.
        n : int
            Number of bits.
        **kw
            ``labels``, ``k``, ``name``.

        Returns
        -------
        DiagonalCost

        Raises
        ------
        ProblemTooLargeError
            If the 2^n vector would not fit in memory.
        """
        check_dense(n, 8 + n, "evaluating a cost on every bitstring")
        return cls(np.asarray(fn(index_to_bits(np.arange(2**n), n)), dtype=np.float64), **kw)

    # ---- Z-polynomial ------------------------------------------------------
    def walsh_coefficients(self) -> np.ndarray:
        """w[S] for every subset S encoded as a bitmask index (read-only)."""
        if self._walsh is None:
            w = walsh_hadamard(self._c) / self._c.size
            w.setflags(write=False)
            self._walsh = w
        return self._walsh

    def order(self, tol: float = 1e-12) -> int:
        """Highest order of a non-negligible Z term.

        Parameters
        ----------
        tol : float
            Z terms with ``|coefficient| <= tol`` count as zero.

        Returns
        -------
        int
            0 for a constant, 2 for a QUBO-representable cost, up to n.
        """
        w = self.walsh_coefficients()
        scale = max(np.abs(w).max(), 1e-300)
        nz = np.nonzero(np.abs(w) > tol * scale)[0]
        nz = nz[nz > 0]
        return int(popcounts(self.n)[nz].max()) if nz.size else 0

    def z_constant(self) -> float:
        """The constant Walsh coefficient (the cost vector's mean): z_terms' constant without the dict."""
        return float(self.walsh_coefficients()[0])

    def scale(self) -> float:
        """Largest |Walsh coefficient| (constant excluded): Problem.scale without building the dict."""
        m = float(np.abs(self.walsh_coefficients()[1:]).max())
        return m if m > 0 else 1.0

    def z_terms(self, max_order: int | None = None, tol: float = 0.0):
        """The cost as a Z-polynomial, from its Walsh–Hadamard coefficients.

        Parameters
        ----------
        max_order : int or None
            Keep only terms on at most this many qubits (``None``: all orders).
        tol : float
            Drop terms with ``|coefficient| <= tol``.

        Returns
        -------
        terms : dict of tuple of int -> float
            Coefficient of each product Π z_i (z = 1 − 2x) over the sorted qubit tuple.
        constant : float
            The constant term (mean of the cost vector).
        """
        w = self.walsh_coefficients()
        keep = np.abs(w) > tol
        keep[0] = False
        if max_order is not None:  # filter before the per-term Python loop (order 2: n² of 2^n terms)
            keep &= popcounts(self.n) <= max_order
        idx = np.flatnonzero(keep)
        bits = index_to_bits(idx, self.n)
        terms = {tuple(int(i) for i in np.flatnonzero(b)): float(w[s]) for s, b in zip(idx, bits)}
        return terms, float(w[0])

    def to_qubo(self):
        """Least-squares best QUBO: the Z-polynomial truncated to order 2."""
        from .qubo import QUBO

        terms, const = self.z_terms(max_order=2)
        return self._carry(QUBO.from_z_terms(terms, const, self.n, labels=self.labels, k=self.k, name=self.name))

    def fix(self, assignment: dict[int, int]) -> "DiagonalCost":
        """The cost over the remaining variables with some bits fixed.

        Parameters
        ----------
        assignment : dict of int -> {0, 1}
            Bit position -> value for each fixed bit.

        Returns
        -------
        DiagonalCost
            Over the free bits in their original order, with ``k`` reduced by
            the fixed ones (``None`` when no longer feasible).

        Raises
        ------
        QSelectError
            If a position is out of range, a value is not 0/1, or every bit is fixed.
        """
        fixed, free = self._check_assignment(assignment)
        v = self._c.reshape((2,) * self.n)  # axis (n-1-i) is bit i
        index = tuple(assignment[self.n - 1 - a] if (self.n - 1 - a) in assignment else slice(None)
                      for a in range(self.n))
        sub = np.ascontiguousarray(v[index]).reshape(-1)
        k = None
        if self.k is not None:
            k = self.k - sum(assignment[i] for i in fixed)
            k = k if 0 <= k <= len(free) else None
        if not free:
            raise QSelectError("cannot fix every variable of a diagonal cost")
        return self._carry(DiagonalCost(sub, [self.labels[i] for i in free], k=k, name=self.name), free)

    def scaled(self, factor: float) -> "DiagonalCost":
        """The cost multiplied by ``factor`` (offset included).

        Parameters
        ----------
        factor : float
            Finite scale factor.

        Returns
        -------
        DiagonalCost

        Raises
        ------
        QSelectError
            If ``factor`` is NaN or infinite.
        """
        from .qubo import _finite_array

        factor = float(_finite_array(factor, "scale factor", 0))
        return self._carry(DiagonalCost(self._c * factor, self.labels, k=self.k, name=self.name))

    # ---- local moves by lookup ---------------------------------------------
    def flip_deltas(self, x) -> np.ndarray:
        """``E(x ⊕ e_i) − E(x)`` by n lookups in the stored cost vector.

        Parameters
        ----------
        x : array_like of {0, 1}, shape (n,)
            The current bitstring.

        Returns
        -------
        numpy.ndarray of float64, shape (n,)
        """
        idx = bits_to_index(self._check_bits(x))
        return self._c[idx ^ (np.int64(1) << np.arange(self.n, dtype=np.int64))] - self._c[idx]

    def swap_deltas(self, x, on, off) -> np.ndarray:
        """1-in/1-out swap changes by lookups in the stored cost vector.

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
            Entry (i, j): energy change of clearing ``on[i]`` and setting ``off[j]``.
        """
        idx = bits_to_index(self._check_bits(x))
        on, off = np.asarray(on, dtype=np.int64), np.asarray(off, dtype=np.int64)
        one = np.int64(1)
        return self._c[idx - (one << on)[:, None] + (one << off)[None, :]] - self._c[idx]

    def cost_view(self) -> np.ndarray:
        """The stored (read-only) cost vector, without a copy."""
        return self._c

    def quadratic_surrogate(self):
        """The order-2 Walsh truncation as a QUBO (exact when the cost has order ≤ 2), with a note if not."""
        note = None if self.order() <= 2 else (
            f"sampled the order-2 Walsh truncation of an order-{self.order()} diagonal cost; "
            "samples re-scored with the exact cost")
        return self.to_qubo(), note

    def with_cardinality_penalty(self, k: int, strength: float) -> "DiagonalCost":
        """The cost plus ``strength·(popcount(x) − k)²`` on every entry, with ``k`` as its hint.

        Parameters
        ----------
        k : int
            Number of set bits the penalty favours, in [0, n].
        strength : float
            Penalty weight λ ≥ 0.

        Returns
        -------
        DiagonalCost

        Raises
        ------
        QSelectError
            ``k`` outside ``[0, n]`` or a negative/non-finite strength.
        """
        k = self._check_k(k)
        strength = float(strength)
        if not np.isfinite(strength) or strength < 0:
            raise QSelectError(f"cardinality penalty strength must be a finite number ≥ 0, got {strength}")
        d = popcounts(self.n).astype(np.float64) - k
        out = self._carry(DiagonalCost(self._c + strength * d * d, self.labels, k=k, name=self.name))
        out.penalty = strength
        return out
