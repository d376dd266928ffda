"""Executors map a function over independent local problems.

``inline`` runs in-process (tiny runs, tests), ``process`` uses a local process
pool (the default for many problems), and a Dask scheduler address (or a
``distributed.Client``) scales out. Results come back in input order, so they
are identical whichever executor ran them.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Sequence

from .errors import BackendUnavailableError, QSelectError


class Executor:
    name = "executor"

    def map(self, fn: Callable, items: Sequence) -> list:
        raise NotImplementedError


class InlineExecutor(Executor):
    name = "inline"

    def map(self, fn, items):
        return [fn(x) for x in items]


class ProcessExecutor(Executor):
    name = "process"

    def __init__(self, workers: int | None = None):
        self.workers = workers or max(1, (os.cpu_count() or 1))

    def map(self, fn, items):
        items = list(items)
        if len(items) <= 1 or self.workers == 1:
            return [fn(x) for x in items]
        with ProcessPoolExecutor(max_workers=min(self.workers, len(items))) as pool:
            return list(pool.map(fn, items, chunksize=max(1, len(items) // (4 * self.workers))))


class DaskExecutor(Executor):
    name = "dask"

    def __init__(self, client_or_address: Any):
        try:
            from distributed import Client
        except ImportError:
            raise BackendUnavailableError(
                "Dask is not installed; install it with: pip install 'qselect[dask]'"
            ) from None
        self._own = isinstance(client_or_address, str)
        self.client = Client(client_or_address) if self._own else client_or_address

    def map(self, fn, items):
        futures = self.client.map(fn, list(items), pure=False)
        return self.client.gather(futures)


def get_executor(spec: Any = None) -> Executor:
    """None/'inline' → inline; 'process' → process pool; 'tcp://…' or a Client → Dask."""
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
    raise QSelectError(f"unknown executor {spec!r}")
