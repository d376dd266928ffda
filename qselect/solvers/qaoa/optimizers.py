"""Angle optimisers for QAOA.

Angle optimisers: scipy methods (L-BFGS-B uses exact gradients when the engine has them) and qiskit-algorithms'
SPSA/COBYLA (names 'SPSA' or 'qiskit:NAME'), which suit noisy shot estimates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize as _scipy_minimize

from ...errors import QSelectError
from .kernels import lbfgs_kernels

GRADIENT_METHODS = {"L-BFGS-B", "BFGS", "CG", "SLSQP", "TNC", "NEWTON-CG", "TRUST-CONSTR"}
SCIPY_METHODS = GRADIENT_METHODS | {"COBYLA", "COBYQA", "NELDER-MEAD", "POWELL"}


@dataclass
class Outcome:
    """Result of one angle optimisation.

    Attributes
    ----------
    x : numpy.ndarray, shape (2p,)
        Best angles found.
    fun : float
        Objective at ``x``.
    evaluations : int
        Objective evaluations (a value-and-gradient call counts once).
    gradient_evaluations : int
    message : str
        The optimiser's termination message.
    """

    x: np.ndarray
    fun: float
    evaluations: int  # objective evaluations (a value+gradient call counts once)
    gradient_evaluations: int
    message: str


def normalise_name(name: str) -> str:
    """Canonical optimizer name: an upper-case scipy method, or ``"qiskit:NAME"``.

    Parameters
    ----------
    name : str
        A ``scipy.optimize.minimize`` method (``"L-BFGS-B"``, ``"COBYLA"``, ...),
        ``"SPSA"``, or ``"qiskit:<optimizer>"``.

    Returns
    -------
    str

    Raises
    ------
    QSelectError
        If the name is unknown (the message lists the valid ones).
    """
    up = name.upper()
    if up.startswith("QISKIT:") or up == "SPSA":
        return "qiskit:" + (up.split(":", 1)[1] if ":" in up else up)
    if up not in SCIPY_METHODS:
        raise QSelectError(f"unknown optimizer {name!r}; use a scipy method ({', '.join(sorted(SCIPY_METHODS))}), "
                           "'SPSA' or 'qiskit:COBYLA'")
    return up


def uses_gradient(name: str) -> bool:
    """True when the optimizer uses exact gradients (so the native engine's adjoint gradients are computed).

    Parameters
    ----------
    name : str

    Returns
    -------
    bool
    """
    return normalise_name(name) in GRADIENT_METHODS


def minimize(value, x0, method: str = "L-BFGS-B", maxiter: int = 100, value_and_grad=None,
             seed=0, tol: float | None = None) -> Outcome:
    """Minimise ``value(x)``.

    Gradient methods use ``value_and_grad(x) -> (f, g)`` when given (otherwise scipy's finite differences).

    Parameters
    ----------
    value : callable
        ``value(x) -> float``.
    x0 : array_like, shape (d,)
    method : str
        A scipy method, ``"SPSA"`` or ``"qiskit:<name>"``.
    maxiter : int
        0 evaluates ``x0`` only.
    value_and_grad : callable or None
        ``value_and_grad(x) -> (float, ndarray (d,))``.
    seed : int
        For stochastic optimisers.
    tol : float or None

    Returns
    -------
    Outcome

    Raises
    ------
    QSelectError
        If the method is unknown.
    """
    m = normalise_name(method)
    x0 = np.asarray(x0, dtype=float)
    calls = {"f": 0, "g": 0}

    def f(x):
        calls["f"] += 1
        return value(x)

    def fg(x):
        calls["f"] += 1
        calls["g"] += 1
        return value_and_grad(x)

    if maxiter <= 0:
        return Outcome(x0, float(f(x0)), calls["f"], 0, "no optimisation (maxiter=0)")
    if m.startswith("qiskit:"):
        from ...circuits.qiskit import qiskit_minimize

        x, fun, _ = qiskit_minimize(m.split(":", 1)[1], f, x0, maxiter=maxiter, seed=seed)
        return Outcome(x, fun, calls["f"], 0, f"qiskit-algorithms {m[7:]}")
    opts = {"maxiter": int(maxiter)}
    if m == "L-BFGS-B" and tol is None:
        # stop at a 1e-6 relative change of ⟨C⟩: far below what matters for the sampled answer, and
        # above the float32 noise of the default complex64 engine (scipy's 2e-9 wastes 2-4× evaluations)
        opts["ftol"] = 1e-6
    if m in GRADIENT_METHODS and value_and_grad is not None:
        res = _scipy_minimize(fg, x0, jac=True, method=m, tol=tol, options=opts)
    else:
        res = _scipy_minimize(f, x0, method=m, tol=tol, options=opts)
    return Outcome(np.asarray(res.x, dtype=float), float(res.fun), calls["f"], calls["g"], str(res.message))


@dataclass
class BatchOutcome:
    """Per-problem results of :func:`minimize_batch` (arrays over the batch)."""

    x: np.ndarray  # (B, d)
    fun: np.ndarray  # (B,)
    evaluations: np.ndarray  # (B,) value+gradient calls per problem
    messages: list


def _two_loop(g, S, Y, rho, count):
    """L-BFGS direction −H·g for every row (Nocedal & Wright 2006, Alg. 7.4), rows with their own history.

    ``S``, ``Y`` (b, m, d) and ``rho`` (b, m) hold each row's curvature pairs newest first;
    ``count`` (b,) how many of them are in use.
    """
    q = g.copy()
    T = int(count.max(initial=0))
    alpha = np.zeros((g.shape[0], T))
    for t in range(T):  # newest to oldest
        a = np.where(t < count, rho[:, t] * np.einsum("ij,ij->i", S[:, t], q), 0.0)
        alpha[:, t] = a
        q -= a[:, None] * Y[:, t]
    yy = np.einsum("ij,ij->i", Y[:, 0], Y[:, 0])
    gamma = np.where((count > 0) & (yy > 0), np.einsum("ij,ij->i", S[:, 0], Y[:, 0]) / np.where(yy > 0, yy, 1.0), 1.0)
    r = gamma[:, None] * q
    for t in range(T - 1, -1, -1):  # oldest to newest
        bcoef = rho[:, t] * np.einsum("ij,ij->i", Y[:, t], r)
        r += np.where(t < count, alpha[:, t] - bcoef, 0.0)[:, None] * S[:, t]
    return -r


_STATUS = ("", "CONVERGENCE: REL_REDUCTION_OF_F_<=_FACTR*EPSMCH", "CONVERGENCE: NORM_OF_PROJECTED_GRADIENT_<=_PGTOL",
           "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT", "ABNORMAL_TERMINATION_IN_LNSRCH")


def _minimize_batch_compiled(k, value_and_grad, X, f, G, S, Y, rho, count, it, evals, maxiter, ftol, gtol,
                             max_backtracks) -> BatchOutcome:
    """:func:`minimize_batch`'s rounds with each row's bookkeeping compiled (``kernels.lbfgs_kernels``).

    The same state machine as the NumPy rounds (directions, Armijo test, extension, backtracking,
    stopping tests), row by row, so a round costs a few array operations besides the evaluation.
    """
    B, d = X.shape
    status = np.zeros(B, dtype=np.int64)
    D, slope, step = np.zeros((B, d)), np.zeros(B), np.zeros(B)
    backtracks, extended = np.zeros(B, dtype=np.int64), np.zeros(B, dtype=np.int64)
    has_lo = np.zeros(B, dtype=bool)
    X_lo, f_lo, G_lo = np.zeros((B, d)), np.zeros(B), np.zeros((B, d))
    k._lbfgs_start(G, S, Y, rho, count, status, D, slope, step, backtracks, float(gtol))
    idx = np.flatnonzero(status == 0)
    while idx.size:
        Xt = X[idx] + step[idx, None] * D[idx]
        ft, Gt = value_and_grad(Xt.copy(), idx)
        evals[idx] += 1
        k._lbfgs_advance(idx, Xt, np.ascontiguousarray(ft, dtype=float), np.ascontiguousarray(Gt, dtype=float), X, f, G,
                         S, Y, rho, count, it, status, D, slope, step, backtracks, has_lo, X_lo, f_lo, G_lo, extended,
                         float(ftol), float(gtol), int(maxiter), int(max_backtracks))
        idx = np.flatnonzero(status == 0)
    return batch_outcome(X, f, evals, status)


def batch_outcome(X, f, evals, status) -> BatchOutcome:
    """A :class:`BatchOutcome` from the compiled state machine's arrays (``status``: its codes 1–4, per row).

    Parameters
    ----------
    X : numpy.ndarray of float64, shape (B, d)
    f : numpy.ndarray of float64, shape (B,)
    evals, status : numpy.ndarray of int64, shape (B,)

    Returns
    -------
    BatchOutcome
    """
    return BatchOutcome(X, f, evals, [_STATUS[s] for s in np.asarray(status).tolist()])


def minimize_batch(value_and_grad, x0, maxiter: int = 100, ftol: float = 1e-6, gtol: float = 1e-5,
                   memory: int = 10, max_backtracks: int = 20) -> BatchOutcome:
    """Minimise B independent smooth functions at once with L-BFGS, each with its own line search.

    Every round evaluates one trial point per unfinished problem in a single
    ``value_and_grad(X, rows)`` call (X of shape (b, d) for the problems
    ``rows``; returns values (b,) and gradients (b, d)), so a batched
    simulator advances all of them together. Each problem keeps its own
    curvature history, step length (Armijo backtracking with quadratic
    interpolation) and stopping test — scipy L-BFGS-B's: a relative decrease
    of f below ``ftol``, a gradient max-norm below ``gtol``, or ``maxiter``
    iterations — and drops out of the batch when it stops. With numba the per-row
    bookkeeping of a round runs compiled (``kernels.lbfgs_kernels``), else in NumPy: the same
    state machine, the same results to rounding.

    Parameters
    ----------
    value_and_grad : callable
        ``(X (b, d) float64, rows (b,) int) -> (f (b,), g (b, d))``.
    x0 : array_like, shape (B, d)
        Start points.
    maxiter : int
        Iterations per problem (0: evaluate the start only).
    ftol, gtol : float
        Stopping tolerances (as scipy's L-BFGS-B ``ftol``/``pgtol``).
    memory : int
        Curvature pairs kept per problem.
    max_backtracks : int
        Step halvings before a problem's line search gives up (it keeps its best point).

    Returns
    -------
    BatchOutcome

    References
    ----------
    Nocedal & Wright, Numerical Optimization (2006), Alg. 7.4–7.5 and §3.5.
    """
    X = np.array(x0, dtype=float)
    if X.ndim != 2 or X.shape[1] < 1:
        raise QSelectError(f"batched start points must have shape (batch, d) with d ≥ 1, got {X.shape}")
    B, d = X.shape
    m = max(1, int(memory))
    f, G = value_and_grad(X.copy(), np.arange(B))
    f, G = np.asarray(f, float).copy(), np.asarray(G, float).copy()
    evals = np.ones(B, dtype=np.int64)
    msgs = [""] * B
    if maxiter <= 0:
        return BatchOutcome(X, f, evals, ["no optimisation (maxiter=0)"] * B)
    S, Y = np.zeros((B, m, d)), np.zeros((B, m, d))  # curvature pairs per problem, newest first
    rho = np.zeros((B, m))
    count = np.zeros(B, dtype=np.int64)
    it = np.zeros(B, dtype=np.int64)
    compiled = lbfgs_kernels()
    if compiled is not None:
        return _minimize_batch_compiled(compiled, value_and_grad, X, f, G, S, Y, rho, count, it, evals, maxiter, ftol,
                                        gtol, max_backtracks)
    active = np.ones(B, dtype=bool)
    for i in np.flatnonzero(np.max(np.abs(G), axis=1) <= gtol):
        active[i], msgs[i] = False, "CONVERGENCE: NORM_OF_PROJECTED_GRADIENT_<=_PGTOL"
    D = np.zeros((B, d))
    slope = np.zeros(B)
    step = np.zeros(B)
    backtracks = np.zeros(B, dtype=np.int64)

    def new_direction(idx):
        Dn = _two_loop(G[idx], S[idx], Y[idx], rho[idx], count[idx])
        sl = np.einsum("ij,ij->i", Dn, G[idx])
        bad = ~(sl < 0)  # not a descent direction: restart from steepest descent
        if bad.any():
            Dn[bad] = -G[idx][bad]
            count[idx[bad]] = 0
            sl[bad] = -np.einsum("ij,ij->i", G[idx][bad], G[idx][bad])
        D[idx], slope[idx] = Dn, sl
        first = count[idx] == 0
        norm = np.linalg.norm(Dn, axis=1)
        step[idx] = np.where(first, np.minimum(1.0, 1.0 / np.maximum(norm, 1e-300)), 1.0)
        backtracks[idx] = 0

    # best Armijo point of the current line search, kept while the step is being extended
    has_lo = np.zeros(B, dtype=bool)
    X_lo, f_lo, G_lo = np.zeros((B, d)), np.zeros(B), np.zeros((B, d))
    extended = np.zeros(B, dtype=np.int64)

    def accept(rows, Xn, fn, Gn):
        s = Xn - X[rows]
        y = Gn - G[rows]
        sy = np.einsum("ij,ij->i", s, y)
        keep = sy > 1e-10 * np.einsum("ij,ij->i", y, y)
        upd = rows[keep]
        if upd.size:
            S[upd, 1:], Y[upd, 1:], rho[upd, 1:] = S[upd, :-1], Y[upd, :-1], rho[upd, :-1]
            S[upd, 0], Y[upd, 0], rho[upd, 0] = s[keep], y[keep], 1.0 / sy[keep]
            count[upd] = np.minimum(count[upd] + 1, m)
        f_old = f[rows].copy()
        X[rows], f[rows], G[rows] = Xn, fn, Gn
        it[rows] += 1
        has_lo[rows] = False
        extended[rows] = 0
        rel = (f_old - f[rows]) <= ftol * np.maximum(np.maximum(np.abs(f_old), np.abs(f[rows])), 1.0)
        small = np.max(np.abs(G[rows]), axis=1) <= gtol
        done = it[rows] >= maxiter
        for a, r1, r2, r3 in zip(rows, rel, small, done):
            if r1 or r2 or r3:
                active[a] = False
                msgs[a] = ("CONVERGENCE: REL_REDUCTION_OF_F_<=_FACTR*EPSMCH" if r1 else
                           "CONVERGENCE: NORM_OF_PROJECTED_GRADIENT_<=_PGTOL" if r2 else
                           "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT")
        cont = rows[~(rel | small | done)]
        if cont.size:
            new_direction(cont)

    new_direction(np.flatnonzero(active))
    while active.any():
        idx = np.flatnonzero(active)
        Xt = X[idx] + step[idx, None] * D[idx]
        ft, Gt = value_and_grad(Xt.copy(), idx)
        ft, Gt = np.asarray(ft, float), np.asarray(Gt, float)
        evals[idx] += 1
        armijo = np.isfinite(ft) & (ft <= f[idx] + 1e-4 * step[idx] * slope[idx])
        worse = armijo & has_lo[idx] & (ft >= f_lo[idx])
        bad = ~armijo | worse
        steep = np.einsum("ij,ij->i", Gt, D[idx]) < 0.9 * slope[idx]  # curvature condition not met yet
        grow = ~bad & steep & (extended[idx] < 10)
        take = ~bad & ~grow
        back_lo = bad & has_lo[idx]  # an extension overshot: take the best point seen
        shrink = bad & ~has_lo[idx]
        if take.any():
            accept(idx[take], Xt[take], ft[take], Gt[take])
        if back_lo.any():
            r = idx[back_lo]
            accept(r, X_lo[r].copy(), f_lo[r].copy(), G_lo[r].copy())
        if grow.any():
            r = idx[grow]
            has_lo[r] = True
            X_lo[r], f_lo[r], G_lo[r] = Xt[grow], ft[grow], Gt[grow]
            extended[r] += 1
            step[r] *= 4.0
        if shrink.any():
            rej = idx[shrink]
            backtracks[rej] += 1
            t = step[rej]
            fr = ft[shrink]
            # minimiser of the quadratic through f(0), f'(0), f(t), kept in [0.1 t, 0.5 t]
            den = 2.0 * (fr - f[rej] - slope[rej] * t)
            tq = np.where(np.isfinite(fr) & (den > 0), -slope[rej] * t * t / np.where(den > 0, den, 1.0), 0.5 * t)
            step[rej] = np.clip(tq, 0.1 * t, 0.5 * t)
            for a in rej[backtracks[rej] > max_backtracks]:
                active[a], msgs[a] = False, "ABNORMAL_TERMINATION_IN_LNSRCH"
    return BatchOutcome(X, f, evals, msgs)
