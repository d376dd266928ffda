"""One solver protocol, one result type (in the spirit of dimod's Sampler).

A solver holds its settings in the constructor; ``solve(problem)`` validates
the input, times the work and returns a ``SolveResult``. A new solver
implements ``_solve`` only (returning a ``SolveResult`` without timing) and
gets validation, timing, ``solve_many`` and executor support for free.
"""
from __future__ import annotations

import inspect
import threading
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import QSelectError
from ..problems import Problem
from ..validation import MAX_SEED, check_finite_energy, check_int  # noqa: F401  (MAX_SEED re-exported)


@dataclass
class SolveResult:
    """What every solver returns.

    ``bits`` is a uint8 array with bit 0 first (= qubit 0); ``energy`` is the
    problem's own energy of ``bits``, offset included. ``samples`` /
    ``energies`` / ``counts`` hold the distinct bitstrings a sampler saw,
    sorted by energy (lowest first), when the solver samples.
    """

    bits: np.ndarray
    energy: float
    solver: str
    samples: np.ndarray | None = None
    energies: np.ndarray | None = None
    counts: np.ndarray | None = None
    wall_time: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_variables(self) -> int:
        """Number of variables of the solved problem (length of ``bits``)."""
        return int(self.bits.shape[0])

    @property
    def kept(self) -> int:
        """Number of bits set (weights / neurons kept)."""
        return int(self.bits.sum())

    @property
    def kept_fraction(self) -> float:
        """Fraction of bits set, in [0, 1] (0 for an empty problem)."""
        return self.kept / max(self.num_variables, 1)

    def gap_to(self, optimum: float) -> float:
        """Energy above ``optimum``: energy − optimum (≥ 0 when it is the true minimum).

        Parameters
        ----------
        optimum : float
            Reference energy (e.g. the exact optimum).

        Returns
        -------
        float
        """
        return float(self.energy - optimum)

    def to_dict(self) -> dict:
        """JSON-ready summary (no large arrays beyond the best bitstring)."""
        d = {
            "solver": self.solver,
            "bits": "".join(str(int(b)) for b in self.bits),
            "energy": float(self.energy),
            "kept": self.kept,
            "wall_time": float(self.wall_time),
        }
        scalar = (int, float, str, bool, type(None))
        d.update({k: v for k, v in self.info.items() if isinstance(v, scalar)})
        if isinstance(self.info.get("uniform_baseline"), dict):  # the uniform-sampling control travels too
            d["uniform_baseline"] = {k: v for k, v in self.info["uniform_baseline"].items() if isinstance(v, scalar)}
        return d


def summarise_samples(problem: Problem, bitstrings: np.ndarray, counts: np.ndarray | None = None,
                      distinct: bool = False, energies: np.ndarray | None = None):
    """Deduplicate sampled bitstrings, score them with the problem, sort by energy.

    Returns (samples, energies, counts). Scoring with the problem itself is
    what keeps every backend honest: no solver reports its own energy.

    Parameters
    ----------
    problem : Problem
    bitstrings : array_like of {0, 1}, shape (m, n)
    counts : array_like of int, shape (m,), or None
        Multiplicity of each row (default 1).
    distinct : bool
        The caller guarantees the rows are already distinct (e.g. built from distinct
        basis-state indices): deduplication is skipped, the answer is the same.
    energies : array_like of float, shape (m,), optional
        The problem's own energies of the rows, already at hand (with ``distinct``), e.g. looked
        up in its tabulated ``problem.cost_vector()``; default: scored with ``problem.energy``.

    Returns
    -------
    samples : numpy.ndarray of uint8, shape (u, n)
        Distinct bitstrings, lowest energy first (ties: most counts first).
    energies : numpy.ndarray of float64, shape (u,)
    counts : numpy.ndarray of int64, shape (u,)
    """
    bitstrings = np.asarray(bitstrings, dtype=np.uint8).reshape(-1, problem.n)
    if counts is None:
        counts = np.ones(len(bitstrings), dtype=np.int64)
    n = bitstrings.shape[1]
    if 0 < n <= 62 and len(bitstrings):  # rows as big-endian integers: same order as unique(axis=0), ~10× faster
        keys = bitstrings.astype(np.int64) @ (np.int64(1) << np.arange(n - 1, -1, -1, dtype=np.int64))
        if distinct:  # already unique: only the sort unique() would do
            first = np.argsort(keys, kind="stable")
            uniq = bitstrings[first]
            tot = np.asarray(counts, dtype=np.int64)[first]
            if energies is None:
                energies = np.atleast_1d(problem.energy(uniq))
            else:
                energies = np.asarray(energies, dtype=np.float64).reshape(-1)[first]
            order = np.lexsort((-tot, energies))
            return uniq[order], energies[order], tot[order]
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        uniq = bitstrings[first]
    else:
        uniq, inverse = np.unique(bitstrings, axis=0, return_inverse=True)
    tot = np.zeros(len(uniq), dtype=np.int64)
    np.add.at(tot, inverse.reshape(-1), np.asarray(counts, dtype=np.int64))
    energies = np.atleast_1d(problem.energy(uniq))
    order = np.lexsort((-tot, energies))
    return uniq[order], energies[order], tot[order]


#: constructor parameter names per solver class (get_params)
_PARAM_NAMES: dict[type, tuple[str, ...]] = {}


class Solver(ABC):
    """Base class: subclasses set ``name`` and implement ``_solve``."""

    name: str = "solver"
    #: largest problem (bits) the solver accepts; None = no limit of its own
    max_variables: int | None = None

    @abstractmethod
    def _solve(self, problem: Problem) -> SolveResult:
        """Solve a validated problem; timing is added by ``solve``."""

    # ---- settings: validated once, in the constructor ------------------------
    def get_params(self) -> dict:
        """The constructor's settings by name (each is stored under its parameter's name).

        Returns
        -------
        dict
            ``{parameter: value}``; ``type(self)(**solver.get_params())`` builds an equal solver.
        """
        cls = type(self)
        names = _PARAM_NAMES.get(cls)
        if names is None:  # inspect.signature is slow: read each class's constructor once
            sig = inspect.signature(cls.__init__)
            names = tuple(name for name, p in sig.parameters.items()
                          if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
            _PARAM_NAMES[cls] = names
        return {name: getattr(self, name) for name in names}

    def set_params(self, **changes) -> "Solver":
        """A new solver with some settings changed, validated again by the constructor.

        The solver itself is not modified (in the spirit of scikit-learn's
        ``clone`` + ``set_params``, without mutation).

        Parameters
        ----------
        **changes
            Constructor parameters and their new values.

        Returns
        -------
        Solver
            Same class, same other settings.

        Raises
        ------
        QSelectError
            A name the constructor does not take, or a value it refuses.
        """
        params = self.get_params()
        unknown = sorted(set(changes) - set(params))
        if unknown:
            raise QSelectError(f"{type(self).__name__} has no setting {', '.join(unknown)}; "
                               f"its settings: {', '.join(params)}")
        return type(self)(**{**params, **changes})

    def solve(self, problem: Problem) -> SolveResult:
        """Solve one problem.

        Parameters
        ----------
        problem : Problem
            A ``QUBO``, ``DiagonalCost`` or any other :class:`~qselect.problems.Problem`.

        Returns
        -------
        SolveResult
            ``bits`` (uint8, shape (n,), bit 0 first), ``energy`` (the problem's
            own energy of ``bits``, offset included), ``wall_time`` in seconds,
            and solver-specific ``samples``/``info``.

        Raises
        ------
        QSelectError
            If ``problem`` is not a qselect problem, or has more variables than
            the solver accepts (``max_variables``).
        ProblemTooLargeError
            If the solver's memory guard refuses the problem.
        """
        if not isinstance(problem, Problem):
            raise QSelectError(
                f"{type(self).__name__}.solve expects a qselect problem (QUBO or DiagonalCost), "
                f"got {type(problem).__name__}; build one with qselect.QUBO(...)"
            )
        if self.max_variables is not None and problem.n > self.max_variables:
            raise QSelectError(
                f"{self.name} handles at most {self.max_variables} variables, the problem has {problem.n}; "
                "use a smaller qubit budget (--qubits) so it is decomposed into blocks"
            )
        t0 = time.perf_counter()
        if problem.n == 0:
            # nothing to choose: every solver answers the empty bitstring at the offset
            result = make_result(problem, np.zeros(0, np.uint8), self.name,
                                 samples=np.zeros((1, 0), np.uint8),
                                 energies=np.array([float(problem.energy(np.zeros(0, np.uint8)))]),
                                 counts=np.ones(1, dtype=np.int64), info={"empty": True})
        else:
            result = self._solve(problem)
        check_finite_energy(result.energy, f"{self.name} solver's best energy")
        result.wall_time = time.perf_counter() - t0
        return result

    def solve_many(self, problems: Sequence[Problem], executor=None, progress=False) -> list[SolveResult]:
        """Solve independent problems, optionally through an executor (same results either way).

        ``progress`` (bool, or a label) shows a bar whichever executor runs them.

        Parameters
        ----------
        problems : sequence of Problem
        executor : Executor, str or None
            See :func:`qselect.executors.get_executor`; one made here from a string is closed afterwards.
            A solver that is not :meth:`fork_safe` runs in this process instead of a local pool.
        progress : bool or str

        Returns
        -------
        list of SolveResult
            In input order.
        """
        from ..executors import InlineExecutor, ProcessExecutor, executor_scope

        problems = problem_list(self, problems)  # before a pool starts or a cluster is reached
        with executor_scope(executor) as ex:
            if isinstance(ex, ProcessExecutor) and not self.fork_safe():
                ex = InlineExecutor()
            return ex.map(self.solve, problems, progress=progress)

    def fork_safe(self) -> bool:
        """Whether forked worker processes (:class:`~qselect.executors.ProcessExecutor`) give this solver's answers.

        True unless it computes on a device a forked child cannot use (CUDA) or with sums that depend on the thread
        count the pool's workers run at (one torch thread each); such solvers run in this process instead.

        Returns
        -------
        bool
        """
        return True

    def for_workers(self, workers: int) -> "Solver":
        """The solver as each of ``workers`` local worker processes should run it.

        The default is the solver itself; solvers that start threads of their own give each
        worker its share of the CPUs.

        Parameters
        ----------
        workers : int
            Worker processes sharing this machine.

        Returns
        -------
        Solver
        """
        return self

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class Cancelled(Exception):
    """A solve stopped because the event of its thread's :func:`cancel_scope` was set."""


_cancel = threading.local()


@contextmanager
def cancel_scope(event: threading.Event):
    """Let long solves in this thread stop early once ``event`` is set.

    Solvers that run long compiled stretches (the batched QAOA optimisation) check the event
    of their thread's innermost scope between stretches and raise :class:`Cancelled` once it
    is set. A block descent's lanes use it: when one lane fails or is interrupted, the
    others stop within a stretch instead of finishing their round.

    Parameters
    ----------
    event : threading.Event
    """
    prev = getattr(_cancel, "event", None)
    _cancel.event = event
    try:
        yield
    finally:
        _cancel.event = prev


def cancel_event() -> threading.Event | None:
    """The event of this thread's innermost :func:`cancel_scope`, or None outside any.

    Returns
    -------
    threading.Event or None
    """
    return getattr(_cancel, "event", None)


def check_problems(solver: "Solver", problems: list) -> None:
    """Refuse, in one line, an item of ``solver.solve_many``'s list that is not a qselect problem.

    Parameters
    ----------
    solver : Solver
    problems : list

    Raises
    ------
    QSelectError
        Naming the first item that is not a :class:`~qselect.problems.Problem`.
    """
    for i, prob in enumerate(problems):
        if not isinstance(prob, Problem):
            raise QSelectError(f"{type(solver).__name__}.solve_many expects qselect problems (QUBO or DiagonalCost), "
                               f"got {type(prob).__name__} at position {i}; build one with qselect.QUBO(...)")


def problem_list(solver: "Solver", problems, method: str = "solve_many") -> list:
    """``problems`` as a list for ``solver.<method>``, every item checked (:func:`check_problems`).

    Parameters
    ----------
    solver : Solver
    problems : iterable of Problem
    method : str
        The method named in the message.

    Returns
    -------
    list of Problem

    Raises
    ------
    QSelectError
        One problem instead of a list of them, something that is not iterable, or an item that is not a problem.
    """
    name = f"{type(solver).__name__}.{method}"
    if isinstance(problems, Problem):
        raise QSelectError(f"{name} takes a list of problems, got one {type(problems).__name__}; "
                           f"use solve(problem) or {method}([problem])")
    try:
        out = list(problems)
    except TypeError:
        raise QSelectError(f"{name} takes a list of problems, got {type(problems).__name__}") from None
    check_problems(solver, out)
    return out


def _solve_chunk(solver: "Solver", problems: list) -> list:
    """``solver.solve_many(problems)`` in this process: a worker's share of :func:`solve_in_chunks`."""
    return solver.solve_many(problems)


def solve_in_chunks(solver: "Solver", problems: Sequence[Problem], executor, progress, in_process) -> list:
    """``solve_many`` of a solver that batches: in this process, or through an executor one chunk per worker.

    With no executor, an inline one, a local process pool the solver is not :meth:`~Solver.fork_safe` for, or
    no problems, ``in_process(problems, progress)`` solves them all here as one batch. Otherwise the problems
    go in contiguous chunks, one per worker, and every worker batches its own share by ``solver.solve_many``
    (rather than the executor solving the problems one by one). A problem's answer does not depend on which
    other problems share its batch, so the results are those of one batch in this process.

    Parameters
    ----------
    solver : Solver
        A solver whose ``solve_many`` batches (each worker calls it on its chunk with no executor).
    problems : sequence of Problem
    executor : Executor, str or None
        As for :func:`~qselect.executors.get_executor` (one made here is closed afterwards). It runs
        ``executor.parallelism`` chunks (at most one per problem; one still goes to the executor, e.g. to a
        Dask cluster that is starting its workers). Every worker runs ``executor.for_workers(solver, chunks)``:
        local worker processes ``solver.for_workers(workers)``, a Dask worker its share of its host's CPUs.
    progress : bool or str
        A bar: per problem in process (as ``in_process`` draws it), per worker's batch through an executor.
    in_process : callable
        ``(problems, progress) -> list of SolveResult``: the batch in this process.

    Returns
    -------
    list of SolveResult
        In input order.

    Raises
    ------
    QSelectError
        An item that is not a qselect problem (before a pool starts or a cluster is reached).
    """
    from functools import partial

    from ..executors import InlineExecutor, ProcessExecutor, executor_scope

    problems = problem_list(solver, problems)
    if executor is not None and problems:
        with executor_scope(executor) as ex:
            local = isinstance(ex, ProcessExecutor)
            if not (isinstance(ex, InlineExecutor) or (local and not solver.fork_safe())):
                parts = max(1, min(len(problems), int(ex.parallelism)))
                solver = ex.for_workers(solver, parts)  # tasks on one machine share its CPUs
                size, extra = divmod(len(problems), parts)  # as np.array_split: the first ``extra`` one longer
                bounds = np.cumsum([0] + [size + (i < extra) for i in range(parts)])
                chunks = [problems[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
                done = ex.map(partial(_solve_chunk, solver), chunks, progress=progress, unit="batch")
                return [r for chunk in done for r in chunk]
    return in_process(problems, progress)


def int_setting(name: str, value, minimum: int = 0, maximum: int | None = None) -> int:
    """A solver's integer setting, checked at construction: ``QSelectError`` names it otherwise.

    Parameters
    ----------
    name : str
        The setting's name (for the message).
    value : int or integral float
    minimum : int
    maximum : int or None

    Returns
    -------
    int

    Raises
    ------
    QSelectError
        If ``value`` is not an integer in range (bools refused).
    """
    return check_int(value, name, minimum=minimum, maximum=maximum)


def make_result(problem: Problem, bits, solver: str, **kw) -> SolveResult:
    """SolveResult for ``bits`` with the energy computed by the problem itself.

    Parameters
    ----------
    problem : Problem
    bits : array_like of {0, 1}, shape (n,)
    solver : str
        Solver name recorded in the result.
    **kw
        Other :class:`SolveResult` fields (``samples``, ``info``, ...).

    Returns
    -------
    SolveResult
    """
    bits = np.asarray(bits, dtype=np.uint8).reshape(problem.n)
    return SolveResult(bits=bits, energy=float(problem.energy(bits)), solver=solver, **kw)


__all__ = ["Cancelled", "Solver", "SolveResult", "cancel_event", "cancel_scope", "int_setting", "make_result",
           "problem_list", "summarise_samples"]
