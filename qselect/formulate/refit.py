"""The ``refit`` formulation: the reconstruction error *after* the optimal refit of the kept weights.

For output neuron j with dense weights w, calibration inputs A (rows × cols,
a conv layer's unfolded) and G = AᵀA, a mask m with kept set S costs

    f(S) = min_v ‖A_S v − A w‖² + λ‖v − w_S‖²
         = E₀ + λ‖w_S‖² − b_Sᵀ (G_SS + λI)⁻¹ b_S,      b = G w + λ w,  E₀ = wᵀ G w,

the objective of the damped least-squares refit (``qselect.pruners.refit``,
λ = damping · mean diag G as in SparseGPT/OBC), so with damping 0 it is
exactly the least-squares residual ‖A_S v* − A w‖². This is the loss OBC
greedily optimises (Frantar, Singh & Alistarh 2022), and it is *not*
quadratic in m: no QUBO holds it, but for a block of q free bits (the others
fixed) a ``DiagonalCost`` over the 2^q masks does (``RefitCost.fix``).

Block tables are built with one batched solve: with F the bits fixed to 1
and B the free ones, M = G + λI, the Schur complement
M̃ = M_BB − M_BF M_FF⁻¹ M_FB and b̃ = b_B − M_BF M_FF⁻¹ b_F give

    b_Sᵀ M_SS⁻¹ b_S = b_Fᵀ M_FF⁻¹ b_F + b̃_Tᵀ M̃_TT⁻¹ b̃_T      (S = F ∪ T, T ⊆ B),

and every T is solved at once as a q × q system padded with the identity.
Exact search, QAOA (diagonal phase) and SA/tabu (through the order-2 Walsh
surrogate, rescored exactly) then all optimise the refit loss itself. The
1-in/1-out swap changes the block descent needs are closed-form rank-one
updates of M_SS⁻¹ (:meth:`RefitCost.swap_deltas`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import ProblemTooLargeError, QSelectError
from ..problems import DiagonalCost, Problem
from ..problems.bits import index_to_bits, popcounts
from .cardinality import MARGIN, keep_count
from .local import LocalProblem, with_scores
from .weights import layer_groups

#: largest row a RefitCost tabulates in full (cost_vector / z_terms); blocks are far smaller
MAX_TABLE_BITS = 20
#: select_masks caps the refit formulation's block size (its qubit budget) here: a block of q
#: bits costs 2^q batched q × q solves
REFIT_BLOCK_BITS = 12


def _chol_solve(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched SPD solve (Cholesky), least squares where a system is singular."""
    L, info = torch.linalg.cholesky_ex(A)
    x = torch.cholesky_solve(b.unsqueeze(-1), L).squeeze(-1)
    bad = info != 0
    if bool(bad.any()):
        x[bad] = torch.linalg.lstsq(A[bad], b[bad].unsqueeze(-1), driver="gelsd").solution.squeeze(-1)
    return x


class RefitCost(Problem):
    """f(S) + P·(|S| − k)² for one output neuron (see the module doc), never tabulated whole.

    Parameters
    ----------
    G : array (cols, cols)
        AᵀA of the calibration inputs (float64).
    w : array (cols,)
        The neuron's dense weights.
    k : int
        Weights to keep.
    lam : float
        Absolute dampening λ ≥ 0.
    penalty : float or "auto"
        Cardinality weight P; "auto" = 1.25 × f(Wanda mask) (f ≥ 0, so every
        state off weight k costs more than that mask and no optimum leaves k).
    name : str, optional
    """

    def __init__(self, G, w, k: int, lam: float = 0.0, penalty="auto", name: str | None = None):
        self.G = torch.as_tensor(np.asarray(G, dtype=np.float64))
        self.w = torch.as_tensor(np.asarray(w, dtype=np.float64)).reshape(-1)
        n = self.w.numel()
        if self.G.shape != (n, n):
            raise QSelectError(f"refit cost: G must be ({n}, {n}) for {n} weights, got {tuple(self.G.shape)}")
        self.lam = float(lam)
        self.M = self.G + self.lam * torch.eye(n, dtype=torch.float64)
        self.b = self.G @ self.w + self.lam * self.w
        self.E0 = float(self.w @ self.G @ self.w)
        self.labels = tuple(range(n))
        self.name = name
        self.k = self._check_k(k)
        if penalty is None or penalty == "auto":
            norms = torch.sqrt(torch.clamp(torch.diagonal(self.G), min=0))
            top = torch.argsort(-(self.w.abs() * norms), stable=True)[: self.k]
            x = np.zeros(n, np.uint8)
            x[top.numpy()] = 1
            U = float(self.objective(x[None])[0])
            penalty = MARGIN * U + 1e-9 * max(1.0, U, self.E0)
        elif isinstance(penalty, str) or not np.isfinite(float(penalty)) or float(penalty) < 0:
            raise QSelectError(f"penalty must be 'auto' or a finite number ≥ 0, got {penalty!r}")
        self.penalty = float(penalty)

    @property
    def num_variables(self) -> int:
        """Number of candidate weights (bits)."""
        return self.w.numel()

    def __repr__(self) -> str:
        nm = f" {self.name!r}" if self.name else ""
        return f"RefitCost{nm}(n={self.n}, k={self.k}, damping λ={self.lam:.3g})"

    # ---- exact values ------------------------------------------------------
    def objective(self, bits) -> np.ndarray:
        """f(S) for a batch of masks (m, n) (no cardinality penalty), by direct batched solves.

        Parameters
        ----------
        bits : array_like of {0, 1}, shape (m, n)

        Returns
        -------
        numpy.ndarray of float64, shape (m,)
        """
        x = np.atleast_2d(self._check_bits(bits))
        out = np.empty(len(x))
        sizes = x.sum(axis=1)
        w2 = (self.w ** 2).numpy()
        for s in np.unique(sizes):
            rows = np.flatnonzero(sizes == s)
            base = self.E0 + self.lam * (x[rows] * w2).sum(axis=1)
            if s == 0:
                out[rows] = base
                continue
            chunk = max(1, int(4_000_000 // (s * s)))
            for c0 in range(0, rows.size, chunk):
                r = rows[c0:c0 + chunk]
                idx = torch.as_tensor(np.nonzero(x[r])[1].reshape(r.size, s))
                A = self.M[idx[:, :, None], idx[:, None, :]]
                bs = self.b[idx]
                u = _chol_solve(A, bs)
                out[r] = base[c0:c0 + chunk] - (bs * u).sum(dim=1).numpy()
        return out

    def energy(self, bits):
        """Refit loss plus cardinality penalty, for one mask or a batch.

        Parameters
        ----------
        bits : array_like of {0, 1}, shape (n,) or (m, n)

        Returns
        -------
        float or numpy.ndarray of float64, shape (m,)
        """
        x = self._check_bits(bits)
        xs = np.atleast_2d(x)
        d = xs.sum(axis=1).astype(np.float64) - (self.k or 0)
        e = self.objective(xs) + self.penalty * d * d
        return float(e[0]) if x.ndim == 1 else e

    def _table(self, fixed_on: np.ndarray, free: np.ndarray) -> np.ndarray:
        """Tabulate f over every mask of the ``free`` bits with ``fixed_on`` kept (little-endian over ``free``)."""
        q = free.size
        F = torch.as_tensor(fixed_on, dtype=torch.long)
        B = torch.as_tensor(free, dtype=torch.long)
        MBB, bB = self.M[B][:, B], self.b[B]
        base = self.E0 + self.lam * float((self.w[F] ** 2).sum())
        if F.numel():
            MFF, MFB, bF = self.M[F][:, F], self.M[F][:, B], self.b[F]
            L, info = torch.linalg.cholesky_ex(MFF)
            if int(info) != 0:  # singular without damping: pseudo-inverse
                P = torch.linalg.pinv(MFF, hermitian=True)
                a, C = P @ bF, P @ MFB
            else:
                a = torch.cholesky_solve(bF[:, None], L)[:, 0]
                C = torch.cholesky_solve(MFB, L)
            base -= float(bF @ a)
            Mt = MBB - MFB.T @ C
            bt = bB - MFB.T @ a
        else:
            Mt, bt = MBB, bB
        m = torch.as_tensor(index_to_bits(np.arange(2**q), q).astype(np.float64))  # (2^q, q)
        A = m[:, :, None] * Mt[None] * m[:, None, :] + torch.diag_embed(1.0 - m)
        r = m * bt[None]
        u = _chol_solve(A, r)
        w2 = (self.w[B] ** 2)[None]
        return (base + self.lam * (m * w2).sum(dim=1) - (r * u).sum(dim=1)).numpy()

    def fix(self, assignment: dict[int, int]) -> DiagonalCost:
        """The ``DiagonalCost`` over the free bits (penalty included), built by one batched solve.

        Parameters
        ----------
        assignment : dict of int -> {0, 1}

        Returns
        -------
        DiagonalCost

        Raises
        ------
        ProblemTooLargeError
            If the free bits' table would not fit in memory.
        """
        fixed, free = self._check_assignment(assignment)
        if not free:
            raise QSelectError("cannot fix every variable of a refit cost")
        if len(free) > MAX_TABLE_BITS:
            raise ProblemTooLargeError(f"a refit cost block of {len(free)} bits is too large to tabulate "
                                       f"(at most {MAX_TABLE_BITS}); use a smaller qubit budget")
        on = np.array([i for i in fixed if assignment[i]], dtype=np.int64)
        free = np.asarray(free, dtype=np.int64)
        f = self._table(on, free)
        d = popcounts(free.size).astype(np.float64) + on.size - (self.k or 0)
        k = None
        if self.k is not None and 0 <= self.k - on.size <= free.size:
            k = self.k - on.size
        out = DiagonalCost(f + self.penalty * d * d, [self.labels[i] for i in free], k=k, name=self.name)
        out.penalty = self.penalty
        return out

    def table(self) -> DiagonalCost:
        """The whole row as a ``DiagonalCost`` (at most :data:`MAX_TABLE_BITS` bits)."""
        out = self.fix({})
        if getattr(self, "scores", None) is not None:
            out.scores = self.scores
        return out

    def cost_vector(self, dtype=np.float64) -> np.ndarray:
        """All 2^n energies (tabulates the cost; small n only).

        Parameters
        ----------
        dtype : numpy floating dtype

        Returns
        -------
        numpy.ndarray, shape (2**n,)
        """
        return self.table().cost_vector(dtype)

    def z_terms(self, max_order: int | None = None, tol: float = 0.0):
        """The Z-polynomial of the tabulated cost (see :meth:`DiagonalCost.z_terms`).

        Parameters
        ----------
        max_order : int or None
        tol : float

        Returns
        -------
        (dict, float)
        """
        return self.table().z_terms(max_order, tol)

    def scale(self) -> float:
        """Scale of the cost, for normalising QAOA angles.

        Largest |Z coefficient| of the tabulated row, or for rows too long to tabulate the dense output energy wᵀGw (the
        refit loss lies in [0, wᵀGw + λ‖w‖²]).

        Returns
        -------
        float
        """
        if self.n <= MAX_TABLE_BITS:
            return self.table().scale()
        return self.E0 if self.E0 > 0 else 1.0

    # ---- moves -------------------------------------------------------------
    def swap_deltas(self, x, on, off) -> np.ndarray:
        """E(x − on[a] + off[b]) − E(x) for all pairs, by rank-one updates of M_SS⁻¹ (exact).

        Parameters
        ----------
        x : array_like of {0, 1}, shape (n,)
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
        S = np.flatnonzero(x)
        if not on.size or not off.size:
            return np.zeros((on.size, off.size))
        St = torch.as_tensor(S)
        L, info = torch.linalg.cholesky_ex(self.M[St][:, St])
        if int(info) != 0:  # singular (no damping): exact energies instead
            return self._generic_swaps(x, on, off)
        Ainv = torch.cholesky_inverse(L)
        y = Ainv @ self.b[St]
        pos = torch.as_tensor(np.searchsorted(S, on))
        offt = torch.as_tensor(off)
        P = self.M[St][:, offt]  # (s, o)
        Z = Ainv @ P
        Aii = torch.diagonal(Ainv)[pos][:, None]
        yi = y[pos][:, None]
        Zi = Z[pos]  # (a, o)
        num = self.b[offt][None] - (P.T @ y)[None] + (yi / Aii) * Zi
        den = torch.diagonal(self.M)[offt][None] - (P * Z).sum(dim=0)[None] + Zi ** 2 / Aii
        dq = -(yi ** 2) / Aii + num ** 2 / den  # q(S − i + j) − q(S)
        w2 = self.w ** 2
        dlam = self.lam * (w2[offt][None] - w2[torch.as_tensor(on)][:, None])
        return (dlam - dq).numpy()

    def _generic_swaps(self, x, on, off) -> np.ndarray:
        cand = np.repeat(x[None], on.size * off.size, axis=0)
        r = np.arange(cand.shape[0])
        cand[r, np.repeat(on, off.size)] = 0
        cand[r, np.tile(off, on.size)] = 1
        return (self.energy(cand) - float(self.energy(x))).reshape(on.size, off.size)


def refit_problems(name: str, layer: nn.Module, inputs: torch.Tensor, *, sparsity: float,
                   penalty="auto", damping: float = 0.01, qubits: int | None = None,
                   neurons=None) -> list[LocalProblem]:
    """One refit-loss problem per output neuron of ``layer`` (Linear or Conv2d).

    Parameters
    ----------
    name : str
        Layer name.
    layer : nn.Linear or nn.Conv2d
    inputs : torch.Tensor
        The layer's calibration inputs.
    sparsity : float
        Fraction of each row removed (k = round((1 − s)·cols) kept).
    penalty : "auto" or float
        Cardinality weight (see :class:`RefitCost`).
    damping : float
        λ as a fraction of mean diag(AᵀA) (0 = plain least squares).
    qubits : int, optional
        A row with at most this many weights comes as a full ``DiagonalCost``
        (any solver takes it directly); longer rows as a :class:`RefitCost`,
        which block descent splits into ``DiagonalCost`` blocks.
    neurons : iterable of int, optional
        Only these output units.

    Returns
    -------
    list of LocalProblem
        kind "refit" (bits are weight entries, like the weight formulation).

    Raises
    ------
    QSelectError
        Fewer calibration rows than weights kept per row, or a bad damping.

    References
    ----------
    Frantar, Singh & Alistarh, "Optimal Brain Compression", NeurIPS 2022 (the loss).
    """
    if not np.isfinite(damping) or damping < 0:
        raise QSelectError(f"damping must be a finite number ≥ 0 (fraction of mean diag(AᵀA)), got {damping!r}")
    wanted = None if neurons is None else set(int(j) for j in neurons)
    wshape = tuple(layer.weight.shape)
    out = []
    for A, outs, Wg in layer_groups(layer, inputs):
        cols = A.shape[1]
        k = keep_count(cols, sparsity)
        if A.shape[0] < k:
            raise QSelectError(f"refit formulation on layer {name!r}: each row keeps {k} weights but there are "
                               f"only {A.shape[0]} calibration rows (underdetermined least squares); pass more "
                               "calibration inputs or use the 'weight' formulation")
        G = A.T @ A
        lam = float(damping) * float(torch.diagonal(G).mean())
        if damping > 0 and lam <= 0:
            lam = 1.0
        scores_base = torch.sqrt(torch.clamp(torch.diagonal(G), min=0)).numpy()
        for r, j in enumerate(outs):
            if wanted is not None and int(j) not in wanted:
                continue
            w = Wg[r].numpy()
            prob = RefitCost(G.numpy(), w, k, lam, penalty, name=f"{name}[{int(j)}]")
            with_scores(prob, np.abs(w) * scores_base)
            if qubits is not None and cols <= int(qubits) and cols <= MAX_TABLE_BITS:
                prob = prob.table()
            pos = np.stack(np.unravel_index(np.arange(cols), wshape[1:]), axis=1)
            pos = np.concatenate([np.full((cols, 1), int(j)), pos], axis=1)
            out.append(LocalProblem(prob, name, "refit", int(j), pos, k,
                                    info={"damping": float(damping), "lambda": lam}))
    return out
