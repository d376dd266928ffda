"""QAOASolver: one solver protocol, four backends (native NumPy/torch, Aer, Statevector, PennyLane).

QAOA after Farhi, Goldstone and Gutmann, "A Quantum Approximate Optimization
Algorithm", arXiv:1411.4028 (2014). Each backend is an evaluator
(:mod:`qselect.solvers.qaoa.evaluators`); the solver optimises its objective and
reads the answer from its final distribution.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...ansatz import check_mixer
from ...errors import QSelectError
from ...validation import check_nonnegative_int, check_positive_int, check_seed
from ..base import Solver, SolveResult, problem_list, solve_in_chunks, summarise_samples
from . import objectives as obj
from .angles import initial_angles, random_angles
from .answer import read_answers
from .evaluators import (
    ENERGY_TABLE_QUBITS,
    EXACT_FINAL_QUBITS,
    AerEvaluator,
    Evaluator,
    NativeEvaluator,
    PennyLaneEvaluator,
    StatevectorEvaluator,
)
from .optimizers import minimize, normalise_name, uses_gradient

BACKENDS = ("native", "aer", "statevector", "pennylane")


@dataclass
class QAOAResult(SolveResult):
    """SolveResult plus the optimised ⟨C⟩ (problem units, offset included) and the angles.

    ``angles`` = [γ_1..γ_p, β_1..β_p] for the cost divided by ``info['scale']``.
    """

    expectation: float = float("nan")
    angles: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def to_dict(self) -> dict:
        """JSON-ready summary: the base fields plus ``expectation`` and ``angles``."""
        d = super().to_dict()
        d["expectation"] = float(self.expectation)
        d["angles"] = [float(a) for a in self.angles]
        return d


#: ``_info``'s default: the solver's own seed (a batch passes each problem's, None included)
_OWN = object()


def _restart_seed(seed, r: int):
    """The seed of random restart ``r``: (seed, r) for a seeded solve; None (fresh entropy) for an unseeded one."""
    return None if seed is None else (seed, r)


class QAOASolver(Solver):
    """QAOA of depth ``p`` on any qselect problem (Farhi, Goldstone and Gutmann 2014, arXiv:1411.4028).

    backend: 'native' (statevector specialised for diagonal costs; NumPy, or
    torch with ``engine='torch'`` / when ``device`` is given or CUDA is
    present), 'aer' (qiskit Aer: shots, or ``exact=True`` for its
    statevector), 'statevector' (qiskit's reference ``Statevector``),
    'pennylane' (``lightning.qubit``).
    optimizer: a scipy method ('L-BFGS-B' uses exact adjoint/autograd
    gradients on 'native'), 'SPSA' or 'qiskit:COBYLA' (qiskit-algorithms);
    default L-BFGS-B, or COBYLA for shot-based Aer.
    init: 'ramp' | 'random' | angles | a previous QAOAResult (transfer).
    objective: 'expectation' or 'cvar' (with ``alpha``).
    mixer: 'x', or 'xy' (XY ring from a Dicke state with exactly k ones;
    k from ``k=`` or ``problem.k``).
    The answer is the lowest-energy bitstring among ``shots`` seeded samples
    of the final state and its ``top`` most probable bitstrings, scored by the
    problem itself.
    batch: None (solve_many batches same-size problems when it can), True, or
    False (one problem after another). threads: CPU threads that share a
    batch's simulation (default: the CPUs this process may use, at most 8);
    the numbers do not depend on it.
    """

    name = "qaoa"

    def __init__(self, backend: str = "native", p: int = 1, seed: int = 0, optimizer: str | None = None,
                 shots: int = 1024, objective: str = "expectation", alpha: float = 0.25, mixer: str = "x",
                 init="ramp", device=None, dtype=None, *, k: int | None = None, maxiter: int = 100,
                 restarts: int = 0, top: int = 8, exact: bool = False, engine: str | None = None,
                 max_order: int | None = None, batch: bool | None = None, threads: int | None = None):
        if backend not in BACKENDS:
            raise QSelectError(f"unknown QAOA backend {backend!r}; use one of {', '.join(BACKENDS)}")
        p = check_positive_int(p, "QAOA depth p")
        check_mixer(mixer)
        obj.check_objective(objective, alpha)
        shots = check_positive_int(shots, "shots")
        seed, k = check_seed(seed), check_nonnegative_int(k, "k", allow_none=True)
        maxiter, restarts = check_nonnegative_int(maxiter, "maxiter"), check_nonnegative_int(restarts, "restarts")
        top, max_order = check_positive_int(top, "top"), check_positive_int(max_order, "max_order", allow_none=True)
        if engine not in (None, "numpy", "torch"):
            raise QSelectError(f"unknown native engine {engine!r}; use 'numpy' or 'torch'")
        if optimizer is not None:
            normalise_name(optimizer)
        if not isinstance(init, str) or init not in ("ramp", "random"):
            initial_angles(init, int(p))  # validate early
        self.backend, self.p, self.seed = backend, int(p), seed
        self.optimizer, self.shots, self.objective, self.alpha = optimizer, int(shots), objective, float(alpha)
        self.mixer, self.init, self.device, self.dtype, self.k = mixer, init, device, dtype, k
        self.maxiter, self.restarts, self.top, self.exact = int(maxiter), int(restarts), int(top), bool(exact)
        self.engine, self.max_order = engine, max_order
        if batch not in (None, True, False):
            raise QSelectError(f"batch must be None (automatic), True or False, got {batch!r}")
        self.batch = batch
        self.threads = check_positive_int(threads, "threads", allow_none=True)

    # ---- setup --------------------------------------------------------------
    def _optimizer_name(self) -> str:
        if self.optimizer is not None:
            return normalise_name(self.optimizer)
        return "COBYLA" if self.backend == "aer" and not self.exact else "L-BFGS-B"

    def _engine_kind(self) -> str:
        if self.engine:
            return self.engine
        if self.device is not None:
            return "torch"
        from ...devices import cuda_possible

        return "torch" if cuda_possible() else "numpy"

    # ---- solve --------------------------------------------------------------
    def _solve(self, problem) -> QAOAResult:
        from .native import single_thread_blas

        # many tiny BLAS calls (the optimiser's own, the engine's matmuls): threaded BLAS only
        # adds synchronisation, and on a busy machine makes them tens of times slower
        with single_thread_blas():
            return self._solve_inner(problem)

    # ---- many problems at once -------------------------------------------------
    def batchable(self) -> bool:
        """Whether :meth:`solve_batch` simulates problems together.

        True when :meth:`solve_batch` simulates problems together (native engine, NumPy or torch, exact ⟨C⟩ objective,
        L-BFGS-B) rather than one after another; ``batch=False`` turns it off.
        """
        return (self.batch is not False and self.backend == "native" and self.objective == "expectation"
                and self._optimizer_name() == "L-BFGS-B")

    def lanes(self) -> list:
        """The solvers of the lock-step lanes a block descent runs its batches in: two where they overlap.

        A batch on the NumPy engine with the X mixer and numba spends its optimisation in code
        that releases the GIL (the compiled L-BFGS of :meth:`BatchedNumpyQAOA.minimize
        <qselect.solvers.qaoa.batched.BatchedNumpyQAOA.minimize>` on block-sized states, BLAS
        beyond), while building the cost vectors and reading the answers is Python. With two or
        more threads, :class:`~qselect.formulate.decompose.BlockSolver` then advances two halves of
        its problems on two threads, each with its own copy of this solver holding half the
        threads (⌊t/2⌋ and ⌈t/2⌉), so one half's Python work runs while the other half is
        simulated. The answers do not depend on it: a problem's answer depends neither on its
        batch nor on the thread count.

        Returns
        -------
        list of QAOASolver
            Two copies with the threads split, or ``[self]``: not :meth:`batchable`, the torch
            engine, the XY mixer, no numba, or one thread.
        """
        from .kernels import AVAILABLE
        from .native import _threads

        if not (AVAILABLE and self.batchable() and self.mixer == "x" and self._engine_kind() == "numpy"):
            return [self]
        threads = self.threads if self.threads is not None else _threads()
        if threads < 2:
            return [self]
        return [self.set_params(threads=threads // 2), self.set_params(threads=threads - threads // 2)]

    def solve_many(self, problems, executor=None, progress=False) -> list:
        """Solve independent problems, same-size ones as one batch.

        Where :meth:`batchable`, same-size problems run as one batch (:meth:`solve_batch`), whatever their number, so
        a problem's answer does not depend on the others; with an executor, each worker batches a contiguous share
        (:func:`~qselect.solvers.base.solve_in_chunks`), with the same answers. Otherwise one by one as
        ``Solver.solve_many``. A batched answer agrees with :meth:`solve`'s (scipy's L-BFGS-B) to about 1e-6 in
        ⟨C⟩, not bit for bit.

        Parameters
        ----------
        problems : sequence of Problem
        executor : Executor, str or None
        progress : bool or str

        Returns
        -------
        list of QAOAResult

        Raises
        ------
        QSelectError
            An item that is not a qselect problem.
        """
        if not self.batchable():
            return super().solve_many(problems, executor=executor, progress=progress)
        return solve_in_chunks(self, problems, executor, progress, self._batch_here)

    def _batch_here(self, problems: list, progress) -> list:
        """:meth:`solve_batch` in this process, with a bar when ``progress`` asks for one."""
        from ...executors import progress_bar

        bar = progress_bar(len(problems), progress)
        try:
            out = self.solve_batch(problems)
            if bar is not None:
                bar.update(len(out))
        finally:
            if bar is not None:
                bar.close()
        return out

    def fork_safe(self) -> bool:
        """False for the torch engine, else True.

        The torch engine stays in this process: on CUDA a forked child cannot use the device, and on CPU its sums
        depend on torch's thread count, which pool workers set to one.

        Returns
        -------
        bool
        """
        return not (self.backend == "native" and self._engine_kind() == "torch")

    def for_workers(self, workers: int) -> "QAOASolver":
        """The solver with its batch threads shared among ``workers`` local processes.

        Parameters
        ----------
        workers : int
            Worker processes sharing this machine.

        Returns
        -------
        QAOASolver
            Itself when ``threads`` is set; else a copy with ``threads`` = the CPUs this process
            may use divided among the workers (at least 1, at most 8 as by default).
        """
        if self.threads is not None:
            return self
        from .native import _threads

        return self.set_params(threads=_threads(workers))

    def solve_batch(self, problems, seeds=None, inits=None) -> list:
        """Solve many problems together, each size group as one batched simulation.

        Solve many problems together: each group of equal size simulated as one ``(batch, 2^n)`` state
        (``BatchedNumpyQAOA``) and optimised by a batched L-BFGS in which every problem keeps its own line search and
        stopping test (``minimize_batch``); the answer of each problem (samples, ⟨C⟩, bookkeeping) is then built exactly
        as in :meth:`solve`.

        Parameters
        ----------
        problems : sequence of Problem
        seeds : sequence of int, optional
            One seed per problem (sampling and random starts), default this solver's seed.
        inits : sequence, optional
            One start per problem (anything ``init`` accepts, e.g. a previous result whose angles
            transfer; None keeps this solver's ``init``).

        Returns
        -------
        list of QAOAResult
            In input order. ``wall_time`` is the group's time shared equally among its problems;
            ``info['batch']`` is the group size.

        Notes
        -----
        Start angles (``init``: ramp, random per seed, given or transferred angles) initialise
        every problem of the batch. The batched optimiser follows scipy's L-BFGS-B stopping rules
        but its own line search, so optimised ⟨C⟩ agree with :meth:`solve` to about 1e-6 on
        typical problems rather than bit for bit. Solvers that are not :meth:`batchable` solve the
        problems one by one.
        """
        problems = problem_list(self, problems, "solve_batch")
        seeds = [self.seed] * len(problems) if seeds is None else list(seeds)
        inits = [None] * len(problems) if inits is None else list(inits)
        if len(seeds) != len(problems) or len(inits) != len(problems):
            raise QSelectError(f"solve_batch got {len(problems)} problems but {len(seeds)} seeds and {len(inits)} "
                               "starts; pass one per problem")
        if not self.batchable():
            return [(self.set_params(seed=sd) if a is None else self.set_params(seed=sd, init=a)).solve(prob)
                    for sd, a, prob in zip(seeds, inits, problems)]
        # (seed, start angles) per problem, checked as the constructor checks them
        own = {}  # this solver's own start per seed: a layer's blocks share a few seeds

        def start(sd, a):
            if a is not None or sd is None:  # given angles, or an unseeded random start: drawn for each problem
                return initial_angles(self.init if a is None else a, self.p, sd)
            if sd not in own:
                own[sd] = initial_angles(self.init, self.p, sd)
            return own[sd]

        solvers = [(check_seed(sd), start(sd, a)) for sd, a in zip(seeds, inits)]
        groups: dict = {}
        for i, prob in enumerate(problems):
            k = self.k if self.k is not None else prob.k
            groups.setdefault((prob.n, k if self.mixer == "xy" else None), []).append(i)
        out = [None] * len(problems)
        from .native import single_thread_blas

        with single_thread_blas():
            for idx in groups.values():
                res = self._solve_group([problems[i] for i in idx], [solvers[i] for i in idx])
                for i, r in zip(idx, res):
                    out[i] = r
        return out

    def _solve_group(self, problems, solvers) -> list:
        """One size group of :meth:`solve_batch`; ``solvers`` holds each problem's (seed, start angles)."""
        import time

        from .batched import BatchedNumpyQAOA
        from .kernels import uses_row_kernel
        from .native import _threads, check_memory, cost_dtype_for
        from .optimizers import Outcome, minimize_batch

        t0 = time.perf_counter()
        n, B = problems[0].n, len(problems)
        k = self._check_k(problems[0])
        kind = self._engine_kind()
        if self.dtype is None:
            dtype = np.dtype(np.complex64)
        else:
            dtype = np.dtype(str(self.dtype).replace("torch.", ""))
        cost_dtype = cost_dtype_for(n, dtype, EXACT_FINAL_QUBITS)
        compiled = kind == "numpy" and uses_row_kernel(self.mixer, 1 << n, dtype)
        check_memory(n, dtype, gradient=True, cost_dtype=cost_dtype, batch=B, layers=self.p if compiled else 0,
                     rows_in_flight=self.threads or _threads())
        costs = np.empty((B, 1 << n), dtype=cost_dtype)
        tables = np.empty((B, 1 << n)) if n <= ENERGY_TABLE_QUBITS else None  # the problems' own energies
        scales, consts = np.empty(B), np.empty(B)
        for i, prob in enumerate(problems):
            scales[i], consts[i] = prob.scale(), prob.z_constant()
            c = costs[i]
            c[:] = prob.cost_vector(cost_dtype)
            if tables is not None:
                tables[i] = c
            c -= consts[i]  # (c − const) / scale with scalars, as solve() forms it (the same casts under any NumPy)
            c /= scales[i]
        if kind == "numpy":
            engine = BatchedNumpyQAOA(costs, self.p, self.mixer, k, dtype, threads=self.threads)
            run = engine.minimize  # minimize_batch on its value_and_grad, each row's whole run compiled where it can
        else:
            from .native_torch import TorchQAOA

            engine = TorchQAOA(costs, self.p, self.mixer, k, dtype=dtype, device=self.device)

            def fg(X, rows):
                return engine.subset(rows).value_and_grad(X)

            def run(x0, maxiter):
                return minimize_batch(fg, x0, maxiter=maxiter)
        best_x = best_f = None
        evals = np.zeros(B, dtype=np.int64)
        msgs = [""] * B
        starts = [np.stack([x0 for _, x0 in solvers])]
        starts += [np.stack([random_angles(self.p, _restart_seed(sd, r)) for sd, _ in solvers])
                   for r in range(1, self.restarts + 1)]
        for x0 in starts:
            res = run(x0, maxiter=self.maxiter)
            evals += res.evaluations
            if best_x is None:
                best_x, best_f, msgs = res.x.copy(), res.fun.copy(), list(res.messages)
            else:
                better = res.fun < best_f
                best_x[better], best_f[better] = res.x[better], res.fun[better]
                msgs = [m2 if b else m1 for m1, m2, b in zip(msgs, res.messages, better)]
        angles = best_x.copy()
        if self.mixer == "x":
            angles[:, self.p:] = (angles[:, self.p:] + np.pi / 2) % np.pi - np.pi / 2
        if kind == "numpy" and self.dtype is None and n <= EXACT_FINAL_QUBITS:
            # the reported states in double precision, as solve() does
            probs = BatchedNumpyQAOA(costs, self.p, self.mixer, k, np.complex128).probabilities(angles)
        else:
            probs = engine.probabilities(angles)
        seeds = [sd for sd, _ in solvers]
        answers = read_answers(problems, probs, costs, tables, scales, consts, seeds,
                               shots=self.shots, top=self.top, mixer=self.mixer, k=k)
        results = []
        label, dtype_name = f"native-{kind}", str(dtype)
        for i, ans in enumerate(answers):
            g = int(evals[i]) if self.maxiter > 0 else 0
            outcome = Outcome(best_x[i], float(best_f[i]), int(evals[i]), g, msgs[i])
            info = self._info(label, dtype_name, "L-BFGS-B", int(evals[i]), g, float(scales[i]), msgs[i], k,
                              seed=seeds[i])
            results.append(self._result(ans, info, outcome, angles[i]))
        share = (time.perf_counter() - t0) / B
        for r in results:
            r.wall_time = share
            r.info["batch"] = B
        return results

    def _check_k(self, problem):
        """The XY mixer's Hamming weight (``k=`` or ``problem.k``, checked); None for the X mixer."""
        k = self.k if self.k is not None else problem.k
        if self.mixer != "xy":
            return None
        if k is None:
            raise QSelectError("the XY mixer keeps exactly k bits set: pass QAOASolver(k=...) "
                               "or give the problem k")
        return problem._check_k(k)

    def _evaluator(self, problem, k) -> Evaluator:
        """The solver's backend as an :class:`~qselect.solvers.qaoa.evaluators.Evaluator`."""
        if self.backend == "native":
            return NativeEvaluator(problem, self.p, self.mixer, k, self._engine_kind(), self.dtype, self.device,
                                   uses_gradient(self._optimizer_name()), self.objective, self.alpha)
        if self.backend == "aer":
            return AerEvaluator(problem, self.p, self.mixer, k, self.shots, self.seed, self.exact, self.max_order,
                                self.objective, self.alpha)
        if self.backend == "statevector":
            return StatevectorEvaluator(problem, self.p, self.mixer, k, self.max_order, self.objective, self.alpha)
        return PennyLaneEvaluator(problem, self.p, self.mixer, k, self.max_order, self.objective, self.alpha)

    def _optimise(self, ev: Evaluator, method: str):
        """Minimise ``ev.value`` from the ``init`` start and ``restarts`` random ones.

        Returns the best outcome and the total (gradient) evaluation counts.
        """
        best = None
        evals = gevals = 0
        starts = [initial_angles(self.init, self.p, self.seed)]
        starts += [random_angles(self.p, _restart_seed(self.seed, r)) for r in range(1, self.restarts + 1)]
        for x0 in starts:
            out = minimize(ev.value, x0, method, self.maxiter, ev.value_and_grad if uses_gradient(method) else None,
                           seed=self.seed)
            evals += out.evaluations
            gevals += out.gradient_evaluations
            if best is None or out.fun < best.fun:
                best = out
        return best, evals, gevals

    def _solve_inner(self, problem) -> QAOAResult:
        """Build the evaluator, optimise, then answer from the final distribution."""
        n = problem.n
        k = self._check_k(problem)
        method = self._optimizer_name()
        ev = self._evaluator(problem, k)
        best, evals, gevals = self._optimise(ev, method)
        costs, scale, const = ev.costs, ev.scale, ev.const
        angles = np.array(best.x, dtype=float)
        if self.mixer == "x":  # exp(-iβΣX) has period π in β (up to a global phase)
            angles[self.p:] = (angles[self.p:] + np.pi / 2) % np.pi - np.pi / 2

        # ---- final answer: seeded samples + most probable bitstrings ------------
        info = self._info(ev.label, ev.dtype, method, evals, gevals, scale, best.message, k)
        if ev.exact:
            ans = read_answers([problem], ev.final_probabilities(angles)[None], ev.costs[None],
                               None if ev.energies is None else ev.energies[None], [scale], [const], [self.seed],
                               shots=self.shots, top=self.top, mixer=self.mixer, k=k)[0]
            return self._result(ans, info, best, angles)
        from ...problems.bits import popcounts

        bits, counts = ev.counts(angles)
        expectation = float(np.dot(problem.energy(bits), counts) / counts.sum())
        samples, energies, counts = summarise_samples(problem, bits, counts)
        info["expectation_objective"] = float(best.fun)
        if costs is not None:
            feas = costs if k is None else np.where(popcounts(n) == k, costs, np.nan)
            lo, hi = np.nanmin(feas), np.nanmax(feas)
            info["optimum_energy"] = float(lo * scale + const)
            info["probability_optimum"] = float(
                counts[np.abs(energies - info["optimum_energy"]) <= 1e-9 * max(1.0, abs(lo * scale))].sum()
                / counts.sum())
            mean_norm = (expectation - const) / scale
            # (max − ⟨C⟩)/(max − min): 1 at the optimum, 0 at the worst; for MaxCut = ⟨cut⟩/max cut
            info["approximation_ratio"] = float((hi - mean_norm) / (hi - lo)) if hi > lo else 1.0
        from ..controls import uniform_baseline  # the control: uniform strings, same shots, same problem

        info["uniform_baseline"] = uniform_baseline(problem, self.shots, seed=self.seed, mixer=self.mixer, k=k,
                                                    costs=costs, scale=scale, offset=const)
        return QAOAResult(bits=samples[0].copy(), energy=float(energies[0]), solver=self.name, samples=samples,
                          energies=energies, counts=counts, info=info, expectation=expectation,
                          angles=np.asarray(angles, dtype=float))

    def _info(self, label, dtype, method, evals, gevals, scale, message, k, seed=_OWN) -> dict:
        """The bookkeeping every answer carries (backend, settings, optimiser counts and message)."""
        info = {"backend": label, "p": self.p, "dtype": dtype, "optimizer": method, "evaluations": evals,
                "gradient_evaluations": gevals, "objective": self.objective, "mixer": self.mixer, "shots": self.shots,
                "scale": scale, "seed": self.seed if seed is _OWN else seed, "optimizer_message": message}
        if self.objective == "cvar":
            info["alpha"] = self.alpha
        if k is not None:
            info["k"] = k
        return info

    def _result(self, ans: dict, info: dict, best, angles) -> QAOAResult:
        """A QAOAResult from :func:`~qselect.solvers.qaoa.answer.read_answers`' answer for one problem."""
        info["expectation_objective"] = float(best.fun)
        info.update(ans["info"])
        samples = ans["samples"]
        return QAOAResult(bits=samples[0].copy(), energy=float(ans["energies"][0]), solver=self.name,
                          samples=samples, energies=ans["energies"], counts=ans["counts"], info=info,
                          expectation=ans["expectation"], angles=np.asarray(angles, dtype=float))
