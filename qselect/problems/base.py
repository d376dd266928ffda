"""What every local problem offers solvers and circuits, whatever its representation."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..errors import QSelectError
from .bits import as_bits
from .kernels import block_positions


def _is_int(v) -> bool:
    """An integral number (int, numpy integer, bool, or a float like 3.0), not a string."""
    return isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and float(v).is_integer())


class Problem(ABC):
    """A cost over n binary variables. Energies always include the offset.

    ``k`` is an optional cardinality hint (feasible masks keep exactly k bits):
    solvers that support the constraint natively (QAOA's XY mixer, exact
    search restricted to weight k) use it; the others rely on the penalty a
    formulation folds into the cost.
    """

    labels: tuple
    k: int | None
    name: str | None

    @property
    @abstractmethod
    def num_variables(self) -> int:
        """Number of binary variables n (qubits for QAOA)."""
        ...

    @property
    def n(self) -> int:
        """Number of binary variables; short for :attr:`num_variables`."""
        return self.num_variables

    @abstractmethod
    def energy(self, bits) -> float | np.ndarray:
        """Energy of one bitstring (n,) -> float, or a batch (m, n) -> (m,).

        Parameters
        ----------
        bits : array_like of {0, 1}, shape (n,) or (m, n)
            One bitstring or a batch, bit 0 (= qubit 0) first.

        Returns
        -------
        float or numpy.ndarray of float64, shape (m,)
            Offset included.

        Raises
        ------
        QSelectError
            If the bitstrings have the wrong length or values other than 0/1.
        """

    @abstractmethod
    def cost_vector(self, dtype=np.float64) -> np.ndarray:
        """Energies of all 2^n bitstrings, little-endian index.

        Parameters
        ----------
        dtype : numpy floating dtype, default float64
            ``float32`` halves the memory.

        Returns
        -------
        numpy.ndarray, shape (2**n,)
            Entry i is the energy of the bitstring with bit b = (i >> b) & 1.

        Raises
        ------
        ProblemTooLargeError
            If the vector would not fit in memory.
        """

    @abstractmethod
    def z_terms(self) -> tuple[dict[tuple[int, ...], float], float]:
        """Cost as a Z-polynomial: ({qubits: coeff}, constant), with z = 1 - 2x."""

    @abstractmethod
    def fix(self, assignment: dict[int, int]) -> "Problem":
        """The problem over the remaining variables with some bits fixed (by position).

        Parameters
        ----------
        assignment : dict of int -> {0, 1}
            Bit position -> value of each fixed bit.

        Returns
        -------
        Problem
            Over the free bits in their original order; the energy of a free
            assignment equals the full problem's energy with the fixed bits set.
            ``k`` is reduced by the fixed ones; ``scores`` follow the free bits.

        Raises
        ------
        QSelectError
            If a position is out of range or a value is not 0/1.
        """

    def fix_outside(self, free, x) -> "Problem":
        """The problem over the positions ``free``, every other bit held at its value in ``x``.

        The block of a block coordinate descent: the same problem as
        ``fix({i: x[i] for i not in free})``, the same numbers, built from arrays
        (QUBO and GramQUBO fold them without a dictionary).

        Parameters
        ----------
        free : array_like of int, shape (m,)
            Distinct integer positions that stay free, any order (the result keeps
            index order).
        x : array_like of {0, 1}, shape (n,)
            Full assignment; its entries at ``free`` are not used (but must be 0 or 1).

        Returns
        -------
        Problem
            Over the ``free`` bits in index order, as :meth:`fix` returns it (with
            ``free`` empty, what ``fix`` makes of every bit fixed: a 0-bit QUBO).

        Raises
        ------
        QSelectError
            If ``x`` is not an n-bit 0/1 vector, or ``free`` is not a 1-D array of
            distinct integer positions in range; and whatever :meth:`fix` raises for
            this representation (a diagonal cost cannot fix every bit; a refit cost
            refuses more free bits than it tabulates, ``ProblemTooLargeError``).
        """
        free, x = self._check_outside(free, x)
        return self._fix_outside(free, x)

    def _fix_outside(self, free: np.ndarray, x: np.ndarray) -> "Problem":
        """:meth:`fix_outside` on checked arrays (``free`` sorted int64, ``x`` uint8).

        This default folds through :meth:`fix`; representations override it with an array fold.
        """
        rest = self._outside(free)
        return self.fix(dict(zip(rest.tolist(), x[rest].tolist())))

    def _outside(self, free: np.ndarray) -> np.ndarray:
        """The positions not in ``free`` (checked, sorted), in index order, int64."""
        keep = np.ones(self.n, dtype=bool)
        keep[free] = False
        return np.flatnonzero(keep)

    def _check_outside(self, free, x) -> tuple[np.ndarray, np.ndarray]:
        """(free sorted as int64, x as uint8) for :meth:`fix_outside`, checked."""
        own_bits = isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.shape == (self.n,)
        if own_bits and isinstance(free, np.ndarray) and free.dtype == np.int64 and free.ndim == 1:
            checked = block_positions(free, x, self.n)  # a descent's own arrays: one compiled call
            if checked is not None and checked[1] == 0:
                return checked[0], x
        if own_bits:
            if x.size and x.max() > 1:
                raise QSelectError("x must contain only 0 and 1 values")
        else:
            try:
                shape = np.shape(x)
            except ValueError:  # ragged nesting
                shape = "ragged"
            if shape != (self.n,):
                raise QSelectError(f"x must be one assignment of shape ({self.n},), got shape {shape}")
            x = as_bits(x, self.n, "x")
        f = np.asarray(free)
        if f.ndim != 1 or (f.size and f.dtype.kind not in "iu"):
            raise QSelectError(f"free must be a 1-D array of integer positions, got {f.dtype} of shape {f.shape}")
        f = np.sort(f)
        if f.size and (f[0] < 0 or f[-1] >= self.n):  # in its own dtype: no wrap-around before the check
            raise QSelectError(f"free positions must lie in [0, {self.n}), got {f[0]}..{f[-1]}")
        f = f.astype(np.int64, copy=False)
        if f.size > 1 and not (f[1:] != f[:-1]).all():
            raise QSelectError("free positions must be distinct")
        return f, x

    def z_constant(self) -> float:
        """The constant term of :meth:`z_terms` (offset included), without building the term dictionary.

        Returns
        -------
        float
        """
        return float(self.z_terms()[1])

    def scale(self) -> float:
        """Largest |coefficient| of the Z-polynomial (constant excluded); 1 if none.

        Dividing the cost by it makes QAOA angles transfer between problems.
        """
        terms, _ = self.z_terms()
        m = max((abs(v) for v in terms.values()), default=0.0)
        return float(m) if m > 0 else 1.0

    def _check_bits(self, bits) -> np.ndarray:
        return as_bits(bits, self.n)

    def _check_assignment(self, assignment: dict[int, int]) -> tuple[list[int], list[int]]:
        if not hasattr(assignment, "items"):
            raise QSelectError(f"fix() takes a dict {{position: 0 or 1}}, got {type(assignment).__name__}")
        n = self.n
        if all(type(i) is int and type(v) is int and 0 <= i < n and (v == 0 or v == 1)
               for i, v in assignment.items()):  # the common case, checked without _is_int per item
            fixed = sorted(assignment)
            return fixed, [i for i in range(n) if i not in assignment]
        for i, v in assignment.items():
            if not _is_int(i) or not 0 <= i < self.n:
                raise QSelectError(f"cannot fix variable {i!r}: positions are integers in [0, {self.n})")
            if not _is_int(v) or v not in (0, 1):
                raise QSelectError(f"variable {i} can only be fixed to 0 or 1, got {v!r}")
        fixed = sorted(int(i) for i in assignment)
        free = [i for i in range(self.n) if i not in assignment]
        return fixed, free

    def _check_k(self, k):
        if k is None:
            return None
        if not _is_int(k) or not 0 <= k <= self.n:
            raise QSelectError(f"cardinality k must be an integer in [0, {self.n}], got {k!r}")
        return int(k)

    # ---- declared fields every transformation carries ------------------------
    #: the cardinality-penalty weight λ folded into the cost by a formulation, or None
    penalty: float | None = None

    @property
    def scores(self) -> np.ndarray | None:
        """Per-variable importance, float64 ``(n,)``, larger = keep first, or None.

        Formulations attach |w|·‖a‖ for weights and a unit's contribution norm
        for neurons; without scores, solvers rank by single-bit energy gains.
        Setting it validates the length and finiteness (``QSelectError``).
        """
        return getattr(self, "_scores", None)

    @scores.setter
    def scores(self, value) -> None:
        if value is None:
            self._scores = None
            return
        s = np.asarray(value, dtype=np.float64).reshape(-1)
        if s.shape != (self.n,) or not np.all(np.isfinite(s)):
            raise QSelectError(f"problem.scores must be {self.n} finite numbers (one per variable), "
                               f"got shape {s.shape}")
        self._scores = s

    def with_scores(self, scores) -> "Problem":
        """Attach per-variable importance scores (in place; returns ``self``).

        Parameters
        ----------
        scores : array_like of float, shape ``(n,)``
            Finite importance of each variable; larger means keep first.

        Returns
        -------
        Problem
            ``self``, so the call chains.

        Raises
        ------
        QSelectError
            Wrong length or non-finite values.
        """
        self.scores = scores
        return self

    def _carry(self, out: "Problem", free=None) -> "Problem":
        """Copy the declared fields onto a transformed problem (``free``: kept positions after ``fix``)."""
        if self.scores is not None:  # validated when set here; a subset of valid scores is valid
            out._scores = self.scores[np.asarray(free, dtype=np.int64)] if free is not None else self.scores
        if self.penalty is not None:
            out.penalty = self.penalty
        return out

    # ---- local moves: solvers ask the problem, whatever its representation ----
    def flip_deltas(self, x) -> np.ndarray:
        """``E(x ⊕ e_i) − E(x)`` for every bit i.

        Parameters
        ----------
        x : array_like of {0, 1}, shape ``(n,)``

        Returns
        -------
        numpy.ndarray
            float64, shape ``(n,)``. Subclasses give closed forms; this default
            evaluates the n flipped states in one batched ``energy`` call.
        """
        x = self._check_bits(x)
        cand = np.repeat(x[None], self.n, axis=0)
        cand[np.arange(self.n), np.arange(self.n)] ^= 1
        return np.atleast_1d(self.energy(cand)) - float(self.energy(x))

    def swap_deltas(self, x, on, off) -> np.ndarray:
        """Energy changes of 1-in/1-out swaps (the moves of a search that keeps k bits set).

        Parameters
        ----------
        x : array_like of {0, 1}, shape ``(n,)``
        on : array_like of int, shape ``(a,)``
            Set bits to clear.
        off : array_like of int, shape ``(b,)``
            Clear bits to set.

        Returns
        -------
        numpy.ndarray
            float64, shape ``(a, b)``: ``E(x with on[i] cleared and off[j] set) − E(x)``.
        """
        x = self._check_bits(x)
        on, off = np.asarray(on, dtype=np.int64), np.asarray(off, dtype=np.int64)
        e0 = float(self.energy(x))
        ii, jj = np.repeat(on, off.size), np.tile(off, on.size)
        out = np.empty(ii.size)
        for s in range(0, ii.size, 4096):
            cand = np.repeat(x[None], min(4096, ii.size - s), axis=0)
            rows = np.arange(cand.shape[0])
            cand[rows, ii[s:s + 4096]] = 0
            cand[rows, jj[s:s + 4096]] = 1
            out[s:s + 4096] = np.atleast_1d(self.energy(cand)) - e0
        return out.reshape(on.size, off.size)

    def cost_view(self) -> np.ndarray:
        """All 2^n energies (little-endian index), read-only where the problem stores them already.

        Returns
        -------
        numpy.ndarray
            float64, shape ``(2**n,)``; may be a read-only view (do not write to it).
        """
        return self.cost_vector()

    # ---- bounds (for penalty weights) --------------------------------------
    def lower_bound(self) -> float:
        """A value ≤ ``energy(x)`` for every x (exact here, from all 2^n energies; subclasses may be cheaper)."""
        return float(self.cost_view().min())

    def max_flip_change(self) -> float:
        """Largest ``|E(x ⊕ e_i) − E(x)|`` over all x and i (exact here, from all 2^n energies)."""
        c = self.cost_view()
        idx = np.arange(c.size)
        return float(max((np.abs(c[idx ^ (1 << i)] - c)).max(initial=0.0) for i in range(self.n))) if self.n else 0.0

    def quadratic_surrogate(self):
        """The QUBO a quadratic sampler (SA, tabu, a QUBO circuit) sees, and a note when it is approximate.

        Returns
        -------
        tuple of (QUBO, str or None)

        Raises
        ------
        QSelectError
            The representation has no quadratic form.
        """
        raise QSelectError(f"a {type(self).__name__} has no quadratic form; give a QUBO or DiagonalCost")

    def with_cardinality_penalty(self, k: int, strength: float) -> "Problem":
        """The problem plus ``strength·(Σx − k)²``, with ``k`` as its cardinality hint.

        Parameters
        ----------
        k : int
            Number of set bits the penalty favours, in [0, n].
        strength : float
            Penalty weight λ ≥ 0.

        Returns
        -------
        Problem

        Raises
        ------
        QSelectError
            The representation cannot hold the penalty.
        """
        raise QSelectError(f"no cardinality penalty for a {type(self).__name__}")
