"""Executors map a function over independent local problems.

``inline`` runs in-process (tiny runs, tests), ``process`` uses a local process
pool (the default for many problems), and a Dask scheduler address (or a
``distributed.Client``) scales out. Results come back in input order, so they
are identical whichever executor ran them.
"""
from __future__ import annotations

import contextlib
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Sequence

from .errors import BackendUnavailableError, QSelectError


def progress_bar(total: int, progress, unit: str = "problem"):
    """A tqdm bar of ``total`` ``unit``s when ``progress`` is truthy (a string names it), else None.

    Parameters
    ----------
    total : int
        Items the bar counts to.
    progress : bool or str
        No bar when false; a string labels it.
    unit : str
        What one item is ("problem", "batch").

    Returns
    -------
    tqdm.tqdm or None
    """
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=progress if isinstance(progress, str) else None, unit=unit)


def _collect(results, total: int, progress, unit: str = "problem") -> list:
    """Drain an ordered iterator of results, ticking a bar as each arrives."""
    bar = progress_bar(total, progress, unit)
    out = []
    try:
        for r in results:
            out.append(r)
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    return out


class Executor:
    """Runs a function over independent items; results always come back in input order.

    Subclasses: :class:`InlineExecutor` (in this process),
    :class:`ProcessExecutor` (a local process pool), :class:`DaskExecutor`
    (a Dask cluster). The same items give the same results on any of them.
    """

    name = "executor"

    @property
    def parallelism(self) -> int:
        """How many items can run at once (1 in process; a pool's workers; a cluster's threads)."""
        return 1

    def map(self, fn: Callable, items: Sequence, progress=False, unit: str = "problem") -> list:
        """``fn`` over ``items``, results in input order; ``progress`` (bool or a label) shows a bar.

        Parameters
        ----------
        fn : callable
        items : sequence
        progress : bool or str
        unit : str
            What the bar counts (one item each).

        Returns
        -------
        list
        """
        raise NotImplementedError

    def for_workers(self, solver, tasks: int):
        """``solver`` as each of ``tasks`` concurrent tasks of this executor should run it.

        Tasks that share a machine share its CPUs: a solver with its own threads (batched QAOA)
        gets its share through ``solver.for_workers``. In process: the solver itself.

        Parameters
        ----------
        solver : Solver
            Anything with ``for_workers(workers)`` and ``solve_many(problems)``.
        tasks : int
            How many tasks this executor will run at once.

        Returns
        -------
        object with ``solve_many(problems)``
        """
        return solver

    def close(self) -> None:
        """Release what the executor opened (a Dask client it connected itself)."""


class _HostShare:
    """A solver that takes its share of the CPUs on whichever Dask worker runs it (picklable).

    ``slots`` maps each worker's address to the task threads of all workers on that worker's
    host; on a worker the solver runs as ``solver.for_workers(slots[address])``.
    """

    def __init__(self, solver, slots: dict):
        self.solver, self.slots = solver, dict(slots)

    def solve_many(self, problems):
        try:
            from distributed import get_worker

            here = get_worker().address
        except (ImportError, ValueError):  # not on a Dask worker (e.g. run locally): keep the solver's own threads
            here = None
        share = self.slots.get(here)
        return (self.solver if share is None else self.solver.for_workers(share)).solve_many(problems)


class InlineExecutor(Executor):
    """Run every item in this process, one after another (no start-up cost)."""

    name = "inline"

    def map(self, fn, items, progress=False, unit="problem"):
        """``fn`` over ``items`` in this process.

        Parameters
        ----------
        fn : callable
        items : iterable
        progress : bool or str
            Show a progress bar (a string labels it).
        unit : str
            What the bar counts (one item each).

        Returns
        -------
        list
            ``[fn(x) for x in items]``.
        """
        items = list(items)
        return _collect((fn(x) for x in items), len(items), progress, unit)


def _worker_start() -> None:
    """Run in each pool worker before its first item: torch on one thread there.

    The workers share the machine's CPUs, and a forked child must not reuse the intra-op thread pool it inherited
    from a parent that had started one (OpenMP is not fork-safe: the child's first parallel operation waits on
    threads that do not exist). It acts on a torch the worker already holds (a forked child of a process that
    imported it); a worker that imports torch later keeps torch's default.
    """
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


class ProcessExecutor(Executor):
    """A local process pool.

    Parameters
    ----------
    workers : int or None
        Number of processes; default the CPU count. With one worker or one
        item it runs inline.
    """

    name = "process"

    def __init__(self, workers: int | None = None):
        self.workers = workers or max(1, (os.cpu_count() or 1))

    @property
    def parallelism(self) -> int:
        """The pool's worker processes."""
        return int(self.workers)

    def for_workers(self, solver, tasks: int):
        """``solver.for_workers(tasks)``: the ``tasks`` worker processes share this machine's CPUs.

        Parameters
        ----------
        solver : Solver
        tasks : int
            Worker processes that run at once.

        Returns
        -------
        Solver
        """
        return solver.for_workers(tasks)

    def map(self, fn, items, progress=False, unit="problem"):
        """``fn`` over ``items`` in worker processes (``fn`` and items must pickle).

        Parameters
        ----------
        fn : callable
        items : iterable
        progress : bool or str
            Show a progress bar.
        unit : str
            What the bar counts (one item each).

        Returns
        -------
        list
            Results in input order.
        """
        items = list(items)
        if len(items) <= 1 or self.workers == 1:
            return InlineExecutor().map(fn, items, progress, unit)
        with ProcessPoolExecutor(max_workers=min(self.workers, len(items)), initializer=_worker_start) as pool:
            chunk = max(1, len(items) // (4 * self.workers))
            return _collect(pool.map(fn, items, chunksize=chunk), len(items), progress, unit)


#: seconds to wait for a Dask scheduler before giving up with a clear error
DASK_CONNECT_TIMEOUT = 20


class DaskExecutor(Executor):
    """Run items on a Dask cluster.

    Parameters
    ----------
    client_or_address : distributed.Client or str
        An existing client (left open by :meth:`close`) or a scheduler
        address such as ``"tcp://host:8786"`` (connected here, closed by
        :meth:`close`).
    timeout : float or None
        Seconds to wait for the scheduler when connecting.

    Raises
    ------
    BackendUnavailableError
        If dask.distributed is not installed.
    QSelectError
        If the scheduler cannot be reached within ``timeout``.
    """

    name = "dask"

    def __init__(self, client_or_address: Any, timeout: float | None = None):
        try:
            from distributed import Client
        except ImportError:
            raise BackendUnavailableError(
                "Dask is not installed; install it with: pip install 'qselect[dask]'"
            ) from None
        self._own = isinstance(client_or_address, str)
        if not self._own:
            self.client = client_or_address
            return
        check_scheduler_address(client_or_address)
        timeout = DASK_CONNECT_TIMEOUT if timeout is None else timeout
        try:
            self.client = Client(client_or_address, timeout=timeout)
        except (OSError, TimeoutError) as exc:  # distributed raises OSError (or TimeoutError) on no answer
            raise QSelectError(
                f"cannot reach the Dask scheduler at {client_or_address} ({' '.join(str(exc).split())}); "
                "start it (dask scheduler) or use --scheduler process to solve on this machine"
            ) from None

    @property
    def parallelism(self) -> int:
        """The cluster's worker threads (at least 1)."""
        try:
            return max(1, int(sum(self.client.nthreads().values())))
        except Exception:  # a client that cannot say: treat it as one worker
            return 1

    def for_workers(self, solver, tasks: int):
        """``solver`` sharing each worker's host: on a worker, ``solver.for_workers(k)``.

        ``k`` counts the task threads of every worker on that worker's host (from the scheduler),
        so several workers on one machine split its CPUs instead of each taking all of them.

        Parameters
        ----------
        solver : Solver
        tasks : int
            Unused: the cluster's own layout decides.

        Returns
        -------
        object with ``solve_many(problems)``
            The solver itself when the scheduler cannot say.
        """
        try:
            workers = self.client.scheduler_info(n_workers=-1)["workers"]
        except Exception:  # a client that cannot say: the solver as it is
            return solver
        per_host: dict = {}
        for w in workers.values():
            per_host[w.get("host")] = per_host.get(w.get("host"), 0) + int(w.get("nthreads") or 1)
        return _HostShare(solver, {addr: per_host[w.get("host")] for addr, w in workers.items()})

    def map(self, fn, items, progress=False, unit="problem"):
        """``fn`` over ``items`` as Dask futures (``pure=False``: every item runs).

        Parameters
        ----------
        fn : callable
        items : iterable
        progress : bool or str
            Show a progress bar while gathering.
        unit : str
            What the bar counts (one item each).

        Returns
        -------
        list
            Results in input order.
        """
        futures = self.client.map(fn, list(items), pure=False)
        if not progress:
            return self.client.gather(futures)
        return _collect((f.result() for f in futures), len(futures), progress, unit)

    def close(self) -> None:
        """Close the client if this executor connected it; a client passed in stays open."""
        if self._own:
            self.client.close()


#: the transports a Dask scheduler address may name
DASK_SCHEMES = ("tcp", "tls", "ucx", "ws", "wss", "inproc")


def check_scheduler_address(address: str) -> str:
    """A Dask scheduler address checked for form (scheme, host, port) without contacting it.

    Parameters
    ----------
    address : str
        E.g. ``tcp://10.0.0.5:8786`` (a missing port means Dask's default).

    Returns
    -------
    str
        The address unchanged.

    Raises
    ------
    QSelectError
        An unknown scheme, no host, or a port outside 1–65535: at once, not after the connect timeout.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(address)
    if parts.scheme not in DASK_SCHEMES:
        raise QSelectError(f"Dask scheduler address {address!r} has scheme {parts.scheme!r}; "
                           f"use one of {', '.join(s + '://' for s in DASK_SCHEMES)}, e.g. tcp://host:8786")
    if parts.scheme == "inproc":
        return address
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port == -1 or port == 0:
        raise QSelectError(f"Dask scheduler address {address!r} needs a host and a port in 1-65535, "
                           "e.g. tcp://host:8786")
    return address


@contextlib.contextmanager
def executor_scope(spec: Any = None):
    """:func:`get_executor` as a context: an executor made here (e.g. connected from an address) is closed on exit.

    Parameters
    ----------
    spec : None, str, Executor or distributed.Client
        As for :func:`get_executor`; an ``Executor`` or a client passed in stays open.

    Returns
    -------
    context manager yielding Executor
    """
    ex = get_executor(spec)
    try:
        yield ex
    finally:
        if ex is not spec:
            ex.close()


def get_executor(spec: Any = None) -> Executor:
    """None/'inline' → inline; 'process' → process pool; 'tcp://…' or a Client → Dask.

    Parameters
    ----------
    spec : None, str, Executor or distributed.Client

    Returns
    -------
    Executor

    Raises
    ------
    QSelectError
        On an unknown spec or an unreachable Dask scheduler.
    """
    if spec is None or spec == "inline":
        return InlineExecutor()
    if isinstance(spec, Executor):
        return spec
    if spec == "process":
        return ProcessExecutor()
    if isinstance(spec, str):
        if "://" in spec:
            return DaskExecutor(spec)
        raise QSelectError(f"unknown executor {spec!r}; use 'inline', 'process' or a Dask scheduler address tcp://host:port")
    if hasattr(spec, "gather") and hasattr(spec, "map"):
        return DaskExecutor(spec)
    raise QSelectError(f"unknown executor {spec!r}; use 'inline', 'process', a Dask scheduler address "
                       "tcp://host:port, a distributed.Client or a qselect Executor")
