"""Angle optimisers: scipy methods (L-BFGS-B uses exact gradients when the engine has them)
and qiskit-algorithms' SPSA/COBYLA (names 'SPSA' or 'qiskit:NAME'), which suit noisy shot estimates."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize as _scipy_minimize

from ...errors import QSelectError

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
    """True when the optimizer uses exact gradients (so the native engine's adjoint gradients are computed)."""
    return normalise_name(name) in GRADIENT_METHODS


def minimize(value, x0, method: str = "L-BFGS-B", maxiter: int = 100, value_and_grad=None,
             seed=0, tol: float | None = None) -> Outcome:
    """Minimise ``value(x)``; gradient methods use ``value_and_grad(x) -> (f, g)`` when given
    (otherwise scipy's finite differences).

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
