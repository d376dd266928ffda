"""Problems larger than the qubit budget: blocks of ≤ q bits, block coordinate descent.

Start from the magnitude mask (the k highest-scoring bits); each sweep splits
the bits into blocks, fixes every other bit at its current value
(``problem.fix_outside`` folds their couplings into the block's linear term and
offset, so the block's energy *is* the full energy) and lets the inner solver
pick the block's bits. A block's answer is taken only if it lowers the energy
(and, with ``problem.k`` set, keeps the block's number of set bits), so the
trace never goes up and the mask keeps exactly k bits.

Why the partition changes every sweep: with a cardinality constraint the
only moves are swaps *inside* a block, so a fixed partition can never move a
kept bit into another block (the demo's second hidden layer stayed at the
magnitude mask, 331 above the optimum, for want of one swap across two
blocks). The sweeps cycle through :data:`PARTITIONS`: contiguous blocks; the
*swap-gain* partition, whose first block holds a greedy compound move (the
best 1-in/1-out swap, then the best swap given it, ...) and the rest follow
by their best single swap; *mixed* blocks, each with its share
of set and unset bits (seeded shuffles); and a seeded random permutation. The
run stops when one sweep of every kind in a row changed nothing, or at
``max_sweeps``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import QSelectError
from ..problems import Problem
from ..solvers._sampling import best_with_k
from ..solvers.base import MAX_SEED, Cancelled, Solver, SolveResult, cancel_scope, make_result, solve_in_chunks
from ..solvers.baselines import MagnitudeSolver, flip_deltas, swap_deltas
from ..solvers.controls import aggregate_baselines

#: the partition kinds the sweeps cycle through (see the module doc)
PARTITIONS = ("contiguous", "swap-gain", "mixed", "random")


def blocks_of(order: np.ndarray, qubits: int) -> list[np.ndarray]:
    """Split ``order`` into ceil(n/q) nearly equal consecutive blocks (each ≤ q).

    Parameters
    ----------
    order : numpy.ndarray of int, shape (n,)
    qubits : int

    Returns
    -------
    list of numpy.ndarray of int
    """
    nb = -(-order.size // qubits)
    size, extra = divmod(order.size, max(nb, 1))  # np.array_split's sizes: the first `extra` blocks one longer
    cuts = [i * size + min(i, extra) for i in range(nb + 1)]
    return [order[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


def gain_order(problem: Problem, x: np.ndarray, first: int | None = None) -> np.ndarray:
    """All bits, most promising moves first.

    With a k to keep: the first ``first`` bits are a greedy compound move —
    the best 1-in/1-out swap, then the best swap *given* the ones taken, and
    so on (exact energies), so the first block can hold a multi-swap whose
    single swaps are each uphill; the other bits follow in order of their best
    single swap. Without k: bits by their single-flip change.

    Parameters
    ----------
    problem : Problem
    x : numpy.ndarray of uint8, shape (n,)
    first : int or None
        Length of the greedy compound move (default: one block).

    Returns
    -------
    numpy.ndarray of int, shape (n,)
    """
    on, off = np.flatnonzero(x), np.flatnonzero(x == 0)
    if problem.k is None or not on.size or not off.size:
        return np.argsort(flip_deltas(problem, x), kind="stable")
    y, head = x.copy(), []
    rem_on, rem_off = on, off
    for _ in range(min((first or 0) // 2, on.size, off.size)):
        d = swap_deltas(problem, y, rem_on, rem_off)
        a = int(np.argmin(d))
        i, j = rem_on[a // rem_off.size], rem_off[a % rem_off.size]
        y[i], y[j] = 0, 1
        head += [i, j]
        rem_on, rem_off = rem_on[rem_on != i], rem_off[rem_off != j]
    d = swap_deltas(problem, x, on, off)
    flat = np.argsort(d, axis=None, kind="stable")
    pairs = np.concatenate([np.asarray(head, dtype=np.int64),
                            np.stack([on[flat // off.size], off[flat % off.size]], axis=1).ravel()])
    _, firsts = np.unique(pairs, return_index=True)
    return pairs[np.sort(firsts)]


def mixed_order(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Set and unset bits (each shuffled) interleaved so every block gets its share of both.

    Parameters
    ----------
    x : numpy.ndarray of uint8, shape (n,)
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray of int, shape (n,)
    """
    on, off = rng.permutation(np.flatnonzero(x)), rng.permutation(np.flatnonzero(x == 0))
    key = np.concatenate([(np.arange(on.size) + 0.5) / max(on.size, 1),
                          (np.arange(off.size) + 0.5) / max(off.size, 1)])
    return np.concatenate([on, off])[np.argsort(key, kind="stable")]


def partition(kind: str, problem: Problem, x: np.ndarray, qubits: int,
              rng: np.random.Generator) -> list[np.ndarray]:
    """The blocks (each ≤ ``qubits`` bits, together all bits once) of one sweep.

    Parameters
    ----------
    kind : {"contiguous", "swap-gain", "mixed", "random"}
    problem : Problem
    x : numpy.ndarray of uint8, shape (n,)
        Current bitstring.
    qubits : int
        Largest block.
    rng : numpy.random.Generator

    Returns
    -------
    list of numpy.ndarray of int
    """
    if kind == "contiguous":
        order = np.arange(problem.n)
    elif kind == "swap-gain":
        order = gain_order(problem, x, first=-(-problem.n // -(-problem.n // qubits)))  # first block's size
    elif kind == "mixed":
        order = mixed_order(x, rng)
    elif kind == "random":
        order = rng.permutation(problem.n)
    else:
        raise QSelectError(f"unknown partition {kind!r}; use one of {', '.join(PARTITIONS)}")
    return blocks_of(order, qubits)


def block_seed(inner: Solver, *parts: int) -> int | None:
    """The seed of ``inner`` on one block: its own seed mixed with ``parts`` (sweep, block); None if unseeded.

    Independent draws per block instead of one stream replayed in every block.

    Parameters
    ----------
    inner : Solver
        The inner solver; its ``seed`` (an int) is mixed, anything else means unseeded.
    *parts : int
        Sweep and block numbers mixed into the seed.

    Returns
    -------
    int or None
        In ``[0, MAX_SEED]``; None for an unseeded solver.
    """
    seed = getattr(inner, "seed", None)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        return None
    return _mixed_seed((int(seed), *(int(p) for p in parts)))


@lru_cache(maxsize=4096)
def _mixed_seed(entropy: tuple[int, ...]) -> int:
    """SeedSequence(entropy)'s first word in [0, MAX_SEED]; cached (every descent of a layer asks the same few)."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0]) % (MAX_SEED + 1)


def block_answer(r: SolveResult, need: int | None) -> tuple[np.ndarray, float] | None:
    """The inner result's best bitstring with ``need`` bits set (any when None), or None.

    Parameters
    ----------
    r : SolveResult
    need : int or None
        Required number of set bits.

    Returns
    -------
    (numpy.ndarray, float) or None
    """
    no_samples = r.samples is None or r.energies is None or len(r.samples) == 0
    bits = np.asarray(r.bits)
    if (need is None or int(bits.sum()) == need) and (no_samples or r.energy <= np.asarray(r.energies).min()):
        return bits.astype(np.uint8), float(r.energy)  # what the scan below picks: the first lowest
    if no_samples:
        cands, energies = r.bits[None], np.array([r.energy])
    else:
        cands = np.vstack([r.bits[None], r.samples])
        energies = np.concatenate([[r.energy], r.energies])
    ok = np.ones(len(cands), bool) if need is None else cands.sum(axis=1) == need
    if not ok.any():
        return None
    i = np.flatnonzero(ok)[int(np.argmin(energies[ok]))]
    return cands[i].astype(np.uint8), float(energies[i])


def keep_k(problem: Problem, r: SolveResult) -> SolveResult:
    """``r`` itself when it keeps ``problem.k`` bits (or k is unset); else its best k-bit answer.

    A sampler's lowest-energy string need not keep k bits (QAOA's X mixer samples every
    weight; a user-given penalty may be too weak), and a mask that keeps another count
    misses the asked sparsity. The repair takes the best k-bit sample and the magnitude
    mask, each polished by exact 1-in/1-out swaps (``best_with_k``), and records
    ``info["k_repair"]`` with the energy the off-k answer had.

    Parameters
    ----------
    problem : Problem
    r : SolveResult

    Returns
    -------
    SolveResult
    """
    if problem.k is None or int(r.bits.sum()) == int(problem.k):
        return r
    samples = r.bits[None] if r.samples is None or len(r.samples) == 0 else r.samples
    bits, how = best_with_k(problem, np.asarray(samples, dtype=np.uint8), int(problem.k))
    how.update(off_k_energy=float(r.energy), off_k_kept=int(r.bits.sum()))
    r.bits = np.asarray(bits, dtype=np.uint8)
    r.energy = float(problem.energy(r.bits))
    r.info["k_repair"] = how
    return r


class BlockSolver(Solver):
    """Block coordinate descent with ``inner`` on blocks of at most ``qubits`` bits.

    Problems that fit the budget go straight to ``inner``. A seeded inner
    solver (one with a ``seed`` attribute read at solve time) gets a seed
    derived from its own, this solver's ``seed``, the sweep and the block.
    ``info`` records ``sweeps``, ``energy_trace`` (after the start and after
    every sweep), ``partitions`` (the kind of each sweep), ``blocks`` (their
    number, per sweep), ``max_block`` (largest block, ≤ ``qubits``),
    ``inner_solves``, ``inner`` and ``converged`` (a full set of partition
    kinds changed nothing).

    With ``warm_start`` every block after a problem's first starts the inner solver from the
    angles optimised on that problem's previous block (parameter transfer between similar
    QAOA problems; inner solvers without ``angles`` in their results are unaffected). Off by
    default: it changes which local optimum the descent reaches.

    References
    ----------
    A. Galda, X. Liu, D. Lykov, Y. Alexeev, I. Safro, "Transferability of optimal QAOA
    parameters between random graphs", IEEE QCE 2021, arXiv:2106.07531 — parameter transfer.
    """

    name = "block"

    def __init__(self, inner: Solver, qubits: int = 12, max_sweeps: int = 10, seed: int = 0,
                 warm_start: bool = False):
        if int(qubits) < 1:
            raise QSelectError(f"qubit budget must be ≥ 1, got {qubits}")
        if int(max_sweeps) < 1:
            raise QSelectError(f"max_sweeps must be ≥ 1, got {max_sweeps}")
        if not isinstance(inner, Solver):
            raise QSelectError(f"BlockSolver needs a Solver as inner solver, got {type(inner).__name__}")
        self.inner = inner
        self.qubits = int(qubits)
        self.max_sweeps = int(max_sweeps)
        self.seed = seed
        if not isinstance(warm_start, (bool, np.bool_)):
            raise QSelectError(f"warm_start must be True or False, got {warm_start!r}")
        self.warm_start = bool(warm_start)

    def _solve(self, problem: Problem) -> SolveResult:
        steps = self._descent(problem)
        request = next(steps)
        while True:
            sub, seed, init = request
            changes = {k: v for k, v in (("seed", seed), ("init", init)) if v is not None}
            solver = self.inner.set_params(**changes) if changes else self.inner
            try:
                request = steps.send(solver.solve(sub))
            except StopIteration as done:
                return done.value

    def solve_many(self, problems, executor=None, progress=False) -> list[SolveResult]:
        """Solve independent problems, the blocks of all of them batched together where possible.

        Solve independent problems; with an inner solver that solves many problems at once (a ``solve_batch(problems,
        seeds)`` method, e.g. native QAOA), the block descents of all problems advance in lock-step and each round's
        blocks go to the inner solver as one batch. Every problem still sees its blocks in its own order
        (Gauss–Seidel), so the answers are those of solving the problems one by one with that inner solver's batch
        results. Any number of problems, even one, goes through the batch, so a problem's answer does not depend on
        the others. With an executor, each worker runs the lock-step descents of a contiguous share of the problems
        (:func:`~qselect.solvers.base.solve_in_chunks`); the answers are the same.

        Parameters
        ----------
        problems : sequence of Problem
        executor : Executor, str or None
        progress : bool or str

        Returns
        -------
        list of SolveResult

        Raises
        ------
        QSelectError
            An item that is not a qselect problem.
        """
        batch = getattr(self.inner, "solve_batch", None)
        ready = getattr(self.inner, "batchable", lambda: True)
        if batch is None or not ready():
            return super().solve_many(problems, executor=executor, progress=progress)
        return solve_in_chunks(self, problems, executor, progress, self._lockstep_here)

    def _lockstep_here(self, problems: list, progress) -> list[SolveResult]:
        """The descents of ``problems`` in lock-step in this process, each round's blocks one inner batch.

        With an inner solver that offers several lanes (:meth:`QAOASolver.lanes
        <qselect.solvers.qaoa.QAOASolver.lanes>`: two when its batches run compiled code that
        releases the GIL, on two or more threads), contiguous shares of the problems advance in
        lock-step on that many threads, one lane's Python bookkeeping running while another's
        batch is simulated. A problem's answer does not depend on which problems share its batch,
        so the answers are those of one lane.
        """
        import time

        from ..executors import progress_bar

        if not problems:
            return []
        lanes = self.inner.lanes() if hasattr(self.inner, "lanes") else [self.inner]
        lanes = lanes[:len(problems)]
        t0 = time.perf_counter()
        out: list = [None] * len(problems)
        live = {}
        for i, prob in enumerate(problems):
            gen = self._descent(prob)
            live[i] = (gen, next(gen))
        bar = progress_bar(len(problems), progress)
        try:
            if len(lanes) < 2:
                self._lockstep(live, out, lanes[0], None if bar is None else bar.update)
            else:
                self._lanes(live, out, lanes, bar)
        finally:
            if bar is not None:
                bar.close()
        share = (time.perf_counter() - t0) / len(problems)
        for r in out:
            r.wall_time = share
        return out

    def _lanes(self, live: dict, out: list, lanes: list, bar) -> None:
        """:meth:`_lockstep` on contiguous shares of ``live``, one lane solver and one thread each.

        The first error (or interrupt) stops the other lanes at their next round, or within
        their batch where it checks :func:`~qselect.solvers.base.cancel_scope`'s event, and is
        raised here.
        """
        import threading
        from concurrent.futures import ThreadPoolExecutor

        keys = list(live)
        cuts = [len(keys) * k // len(lanes) for k in range(len(lanes) + 1)]
        shares = [{i: live[i] for i in keys[a:b]} for a, b in zip(cuts[:-1], cuts[1:])]
        stop = threading.Event()
        lock = threading.Lock()

        def tick():
            with lock:
                bar.update()

        def run(share, inner):
            try:
                with cancel_scope(stop):  # a long compiled stretch of this lane stops early too
                    self._lockstep(share, out, inner, None if bar is None else tick, stop)
            except Cancelled:
                if not stop.is_set():
                    raise
            except BaseException:
                stop.set()
                raise

        with ThreadPoolExecutor(len(lanes) - 1, thread_name_prefix="qselect-lane") as pool:
            futs = [pool.submit(run, share, inner) for share, inner in zip(shares[1:], lanes[1:])]
            try:
                run(shares[0], lanes[0])
            finally:
                errors = [f.exception() for f in futs]  # waits for every lane
        for err in errors:
            if err is not None:
                raise err

    def _lockstep(self, live: dict, out: list, inner, tick, stop=None) -> None:
        """Advance the descents in ``live`` together until all are done (or ``stop`` is set), results into ``out``.

        Each round's blocks go to ``inner.solve_batch`` as one batch; ``tick()`` (a progress bar's
        ``update`` or None) is called per finished problem.
        """
        default = getattr(inner, "seed", None)
        while live and not (stop is not None and stop.is_set()):
            keys = list(live)
            requests = [live[i][1] for i in keys]  # (block problem, seed, start angles)
            extra = {"inits": [r[2] for r in requests]} if self.warm_start else {}
            answers = inner.solve_batch([r[0] for r in requests],
                                        seeds=[default if r[1] is None else r[1] for r in requests], **extra)
            for i, r in zip(keys, answers):
                gen = live[i][0]
                try:
                    live[i] = (gen, gen.send(r))
                except StopIteration as done:
                    out[i] = done.value
                    del live[i]
                    if tick is not None:
                        tick()

    def fork_safe(self) -> bool:
        """Whether forked worker processes can run the inner solver (see :meth:`Solver.fork_safe`).

        Returns
        -------
        bool
        """
        return self.inner.fork_safe()

    def for_workers(self, workers: int) -> "BlockSolver":
        """The descent with its inner solver as each of ``workers`` local processes should run it.

        Parameters
        ----------
        workers : int
            Worker processes sharing this machine.

        Returns
        -------
        BlockSolver
        """
        inner = self.inner.for_workers(workers)
        return self if inner is self.inner else self.set_params(inner=inner)

    def _descent(self, problem: Problem):
        """Run the block descent as a coroutine.

        Yields (block problem, seed, start angles) — the inner solver's settings for that block, None where
        its own apply — receives its result, and returns the final SolveResult.
        """
        if problem.n <= self.qubits:
            res = keep_k(problem, (yield problem, None, None))
            res.info.setdefault("sweeps", 0)
            return res
        rng = np.random.default_rng(self.seed)
        x = MagnitudeSolver().solve(problem).bits.copy()
        e = float(problem.energy(x))
        trace, kinds, sizes = [e], [], []
        sweeps, stale, converged, inner_time, solves, biggest = 0, 0, False, 0.0, 0, 0
        inner_results = []  # for the aggregated uniform-sampling control
        tried: set[bytes] = set()  # (block, outside bits) already solved, as x with the block marked
        warm = None  # the previous block's optimised angles (warm_start)
        while sweeps < self.max_sweeps:
            kind = PARTITIONS[sweeps % len(PARTITIONS)]
            blocks = partition(kind, problem, x, self.qubits, rng)
            changed = False
            for b, blk in enumerate(blocks):
                free = np.sort(blk)  # fix_outside() keeps free variables in index order
                around = x.copy()
                around[free] = 2  # the bits outside the block, the block's positions marked
                key = around.tobytes()
                if key in tried:  # same block, same surroundings: already had its chance
                    continue
                tried.add(key)
                sub = problem.fix_outside(free, x)
                r = yield sub, block_seed(self.inner, int(self.seed or 0), sweeps, b), \
                    warm if self.warm_start else None
                if self.warm_start and getattr(r, "angles", None) is not None and len(r.angles):
                    warm = np.asarray(r.angles, dtype=float)
                if "uniform_baseline" in r.info:
                    inner_results.append(r)
                inner_time += r.wall_time
                solves += 1
                ans = block_answer(r, None if problem.k is None else int(x[free].sum()))
                if ans is None or not ans[1] < e - 1e-12 * max(1.0, abs(e)):
                    continue
                y = x.copy()
                y[free] = ans[0]
                ey = float(problem.energy(y))  # the full energy decides, not the block's report
                if ey < e - 1e-12 * max(1.0, abs(e)):
                    x, e, changed = y, ey, True
            sweeps += 1
            trace.append(e)
            kinds.append(kind)
            sizes.append(len(blocks))
            biggest = max(biggest, max(b.size for b in blocks))
            stale = 0 if changed else stale + 1
            if stale >= len(PARTITIONS):
                converged = True
                break
        info = {"sweeps": sweeps, "energy_trace": trace, "converged": converged,
                "partitions": kinds, "blocks": sizes, "max_block": biggest, "inner_solves": solves,
                "qubits": self.qubits, "inner": self.inner.name, "inner_time": inner_time}
        control = aggregate_baselines(inner_results)
        if control is not None:  # every block solve beside uniform strings with the same shots
            info["uniform_baseline"] = control
        return make_result(problem, x, f"block({self.inner.name})", info=info)
