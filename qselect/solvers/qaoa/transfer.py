"""Angle transfer across a layer.

A layer yields many similar local problems. Their costs are normalised by
``problem.scale()``, so QAOA angles concentrate: optimise on the first
``n_train`` problems, then warm-start (``mode='warm'``) or simply reuse
(``mode='fixed'``, no optimisation at all) the angles on the rest. The result
reports the objective evaluations spent and saved, and — with
``compare=True`` — the quality change against solving every problem from
scratch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ...errors import QSelectError


@dataclass
class LayerQAOAResult:
    """Answers for a layer's problems solved with transferred angles (:func:`solve_layer`).

    Attributes
    ----------
    results : list of QAOAResult
        One per problem, input order.
    angles : numpy.ndarray, shape (2p,)
        The transferred angles.
    mode : {"warm", "fixed"}
    n_train : int
        Problems optimised to produce the angles.
    evaluations : int
        Objective evaluations spent on the layer.
    evaluations_independent : int
        Evaluations of cold solves of every problem (measured with
        ``compare=True``, else extrapolated from the training solves).
    estimated : bool
        Whether ``evaluations_independent`` is extrapolated.
    quality : dict
        Changes against the cold solves (``compare=True`` only).
    independent : list of QAOAResult or None
        The cold solves (``compare=True`` only).
    """

    results: list  # one QAOAResult per problem, input order
    angles: np.ndarray  # the transferred angles
    mode: str
    n_train: int
    evaluations: int  # objective evaluations actually spent on the layer
    evaluations_independent: int  # cold solves of every problem (measured, or estimated from the first)
    estimated: bool  # True when evaluations_independent is extrapolated from the training solve
    quality: dict = field(default_factory=dict)  # filled when compare=True
    independent: list | None = None

    @property
    def evaluations_saved(self) -> int:
        """Evaluations saved against solving every problem from scratch."""
        return int(self.evaluations_independent - self.evaluations)

    def summary(self) -> dict:
        """JSON-ready summary of the layer's transfer.

        Evaluations (spent, independent, saved, saved fraction), angles, mean
        energy and ⟨C⟩, plus the quality changes.
        """
        d = {"mode": self.mode, "problems": len(self.results), "n_train": self.n_train,
             "evaluations": self.evaluations, "evaluations_independent": self.evaluations_independent,
             "evaluations_saved": self.evaluations_saved,
             "saved_fraction": self.evaluations_saved / max(self.evaluations_independent, 1),
             "independent_estimated": self.estimated, "angles": [float(a) for a in self.angles],
             "mean_energy": float(np.mean([r.energy for r in self.results])),
             "mean_expectation": float(np.mean([r.expectation for r in self.results]))}
        d.update(self.quality)
        return d


def _with(solver, **changes):
    return solver.set_params(**changes)


def solve_layer(problems: Sequence, solver=None, mode: str = "warm", n_train: int = 1, compare: bool = False,
                executor=None) -> LayerQAOAResult:
    """Solve a layer's problems with QAOA angles transferred from the first ``n_train``.

    Training problems are solved in order, each warm-started from the
    previous one; the transferred angles are their mean. They initialise the
    rest of the layer, which (without an executor) is solved as one batch:
    ``QAOASolver.solve_many`` simulates same-size problems together. ``compare=True`` also
    solves every non-training problem from scratch, measuring the evaluations
    saved and the change in best energy / ⟨C⟩ / approximation ratio
    (transfer − independent; negative energy change = better).

    Parameters
    ----------
    problems : sequence of Problem
        A layer's local problems (similar costs).
    solver : QAOASolver or None
        Settings for every solve (default ``QAOASolver()``).
    mode : {"warm", "fixed"}
        Warm-start each problem from the transferred angles, or evaluate them
        as they are (one evaluation per problem).
    n_train : int
        Problems optimised to produce the angles.
    compare : bool
        Also solve every problem from scratch and measure the difference.
    executor : Executor, str or None

    Returns
    -------
    LayerQAOAResult

    Raises
    ------
    QSelectError
        If ``solver`` is not a QAOASolver, the mode is unknown, there are no
        problems, or ``n_train`` is not a positive integer.
    """
    from .solver import QAOASolver

    solver = QAOASolver() if solver is None else solver
    if not isinstance(solver, QAOASolver):
        raise QSelectError(f"angle transfer needs a QAOASolver, got {type(solver).__name__}")
    if mode not in ("warm", "fixed"):
        raise QSelectError(f"unknown transfer mode {mode!r}; use 'warm' (re-optimise from the angles) or 'fixed'")
    problems = list(problems)
    if not problems:
        raise QSelectError("solve_layer needs at least one problem")
    if int(n_train) != n_train or n_train < 1:
        raise QSelectError(f"n_train must be a positive integer (problems to optimise angles on), got {n_train!r}")
    n_train = min(int(n_train), len(problems))

    train = []
    s = solver
    for prob in problems[:n_train]:
        r = s.solve(prob)
        train.append(r)
        s = _with(solver, init=r.angles)
    angles = np.mean([r.angles for r in train], axis=0)
    rest = problems[n_train:]
    transfer_solver = _with(solver, init=angles, restarts=0, **({"maxiter": 0} if mode == "fixed" else {}))
    rest_results = transfer_solver.solve_many(rest, executor=executor) if rest else []
    results = train + list(rest_results)
    spent = sum(int(r.info["evaluations"]) for r in results)

    independent = None
    quality = {}
    if compare and rest:
        independent = solver.solve_many(rest, executor=executor)
        # the first training solve is a cold solve; later training solves were warm, count them as cold
        cold_first = int(train[0].info["evaluations"])
        indep_evals = cold_first * n_train + sum(int(r.info["evaluations"]) for r in independent)
        de = [a.energy - b.energy for a, b in zip(rest_results, independent)]
        dx = [a.expectation - b.expectation for a, b in zip(rest_results, independent)]
        quality = {"energy_change_mean": float(np.mean(de)), "energy_change_max": float(np.max(de)),
                   "expectation_change_mean": float(np.mean(dx)),
                   "same_best_fraction": float(np.mean([abs(d) <= 1e-9 * max(1.0, abs(b.energy))
                                                        for d, b in zip(de, independent)]))}
        ra = [r.info.get("approximation_ratio") for r in rest_results]
        rb = [r.info.get("approximation_ratio") for r in independent]
        if all(v is not None for v in ra + rb):
            quality["approximation_ratio_change_mean"] = float(np.mean(np.subtract(ra, rb)))
        estimated = False
    else:
        indep_evals = int(train[0].info["evaluations"]) * len(problems)
        estimated = True
    return LayerQAOAResult(results, angles, mode, n_train, spent, int(indep_evals), estimated, quality, independent)
