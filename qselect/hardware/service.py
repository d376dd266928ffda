"""What qselect needs from a quantum service, and an in-process fake of it.

``Service`` is the narrow protocol the job machinery (``jobs.py``) talks to:
submit a list of ready-to-run circuits under a tag, ask a job's status, fetch
its counts, find jobs by tag, cancel. ``runtime.py`` implements it for IBM
Quantum and for the local ``fake_<device>`` backends; ``FakeService`` here
implements it in memory for tests and can fail at any chosen call, before or
after the server-side effect, which is how crash-resume is proven.

Counts are plain ``{bitstring: count}`` dicts in qiskit's order: the last
character is classical bit 0 (= problem variable 0).
"""
from __future__ import annotations

import itertools
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

#: the states qselect shows; anything a client reports is mapped onto these
STATES = ("PENDING", "QUEUED", "RUNNING", "DONE", "ERROR", "CANCELLED")

_ALIASES = {
    "INITIALIZING": "QUEUED", "VALIDATING": "QUEUED", "QUEUED": "QUEUED",
    "RUNNING": "RUNNING", "DONE": "DONE", "COMPLETED": "DONE",
    "ERROR": "ERROR", "FAILED": "ERROR", "CANCELLED": "CANCELLED", "CANCELED": "CANCELLED",
    "CANCELLED - RAN TOO LONG": "ERROR",
}


def normalise_status(status) -> str:
    """'DONE' / JobStatus.DONE / 'Completed' -> 'DONE' (see ``STATES``).

    Parameters
    ----------
    status : str or JobStatus

    Returns
    -------
    str
        One of ``STATES``.
    """
    name = getattr(status, "name", None) or str(status)
    name = name.split(".")[-1].strip().upper()
    return _ALIASES.get(name, "QUEUED")


class Service(ABC):
    """A backend that runs circuits in jobs (IBM Runtime, local fake, in-memory fake)."""

    #: backend name as the user typed it (also written to the ledger)
    backend_name: str = ""
    #: qubits on the device (problems larger than this cannot run)
    num_qubits: int = 0
    #: most PUBs (circuits) one job may carry (IBM no longer enforces a per-job PUB limit)
    max_pubs_per_job: int = 1_000_000
    #: most executions (circuits x shots) one job may carry (IBM: 10 million)
    max_executions_per_job: int = 10_000_000
    #: most bytes of circuit input one job may carry (IBM: 50 MB)
    max_job_bytes: int = 50_000_000
    #: most two-qubit gates one circuit may hold (IBM: 400 000)
    max_two_qubit_gates: int = 400_000
    #: seconds between status polls while waiting
    poll_interval: float = 5.0
    #: seconds from the start of a submit (request included) within which ``find_jobs`` may not
    #: list the job yet: a lookup that finds nothing is repeated once this has passed, before resubmitting
    listing_lag: float = 0.0
    #: whether repeated submissions are free (local simulation) -- shown in reports
    is_simulator: bool = False

    @property
    def backend(self) -> Any:
        """The backend object circuits are transpiled for (opaque to qselect)."""
        return None

    @abstractmethod
    def submit(self, circuits: list, shots: int, tag: str) -> str:
        """Submit one job running ``circuits`` (one PUB each); returns its job id.

        Parameters
        ----------
        circuits : list of qiskit.QuantumCircuit
            ISA circuits, one PUB each.
        shots : int
        tag : str
            Client tag, also sent as the IBM job tag.

        Returns
        -------
        str
            The job id.
        """

    @abstractmethod
    def status(self, job_id: str) -> str:
        """One of ``STATES`` (normalised).

        Parameters
        ----------
        job_id : str

        Returns
        -------
        str
        """

    @abstractmethod
    def result(self, job_id: str) -> list[dict[str, int]]:
        """Counts per PUB of a finished job (blocks until it finishes).

        Parameters
        ----------
        job_id : str

        Returns
        -------
        list of dict of str -> int
            Counts per PUB.
        """

    @abstractmethod
    def find_jobs(self, tag: str) -> list[str]:
        """Ids of jobs carrying ``tag`` (oldest first): the crash-recovery lookup.

        Parameters
        ----------
        tag : str

        Returns
        -------
        list of str
        """

    @abstractmethod
    def cancel(self, job_id: str) -> None:
        """Ask the service to cancel a job.

        Parameters
        ----------
        job_id : str
        """

    def error_message(self, job_id: str) -> str | None:
        """The service's error message for a failed job, if it gives one (``None`` by default).

        Parameters
        ----------
        job_id : str

        Returns
        -------
        str or None
        """
        return None

    def two_qubit_error(self) -> float | None:
        """Median two-qubit gate error of the device, if known (for depth warnings)."""
        return None

    def open_batch(self) -> None:
        """Run the following jobs in Batch mode, where the service has one."""

    def open_session(self, max_time: int | None = None) -> None:
        """Run the following jobs in a Session (iterative loops; not on the Open Plan), where the service has one.

        Parameters
        ----------
        max_time : int or None
            Session time limit, seconds.
        """
        self.open_batch()

    def mode_age(self) -> float | None:
        """Seconds since the current Batch/Session was opened (None: none open)."""
        return None

    def close(self) -> None:
        """Release client-side resources (e.g. close a Batch); jobs keep running."""

    def configure(self, *, sampler_options: dict | None = None, primitive: str | None = None) -> None:
        """Set the sampler options and implementation of the following jobs.

        Options every following job's sampler gets (dynamical decoupling, twirling, time cap) and which sampler
        implementation submits them ("executor" or "legacy").

        Parameters
        ----------
        sampler_options : dict or None
        primitive : {"executor", "legacy"} or None
        """
        if sampler_options is not None:
            self.sampler_options = dict(sampler_options)
        if primitive is not None:
            self.primitive = primitive

    #: sampler options set by ``configure`` (a plain dict of qiskit-ibm-runtime option names)
    sampler_options: dict = {}
    #: sampler implementation set by ``configure``
    primitive: str = "executor"

    def usage(self, job_id: str) -> float | None:
        """Quantum seconds the service charged for a finished job, if it reports them.

        Parameters
        ----------
        job_id : str

        Returns
        -------
        float or None
            Seconds.
        """
        return None


class SimulatedCrash(BaseException):
    """Raised by ``FakeService`` at a chosen point: the process 'dies' there.

    A BaseException (like KeyboardInterrupt) so no ``except Exception`` on the
    way up can swallow it: exactly what a real crash looks like to the code.
    """


@dataclass
class _FakeJob:
    job_id: str
    tag: str
    circuits: list
    shots: int
    polls_left: int
    status: str = "QUEUED"
    counts: list | None = None
    error: str | None = None
    created: float = 0.0  # time.monotonic() at submit


def uniform_counts(circuit, shots: int, rng: np.random.Generator) -> dict[str, int]:
    """Default fake sampler: uniform bitstrings over the circuit's classical bits.

    Parameters
    ----------
    circuit : qiskit.QuantumCircuit
    shots : int
    rng : numpy.random.Generator

    Returns
    -------
    dict of str -> int
    """
    width = int(getattr(circuit, "num_clbits", 0) or getattr(circuit, "width", 0) or 1)
    draws = rng.integers(0, 2, size=(shots, width), dtype=np.uint8)
    keys = ["".join(map(str, row[::-1])) for row in draws]
    out: dict[str, int] = {}
    for k in keys:
        out[k] = out.get(k, 0) + 1
    return out


@dataclass
class FakeService(Service):
    """In-memory service for tests: records every submission, fails on demand.

    ``crash_at`` holds ``(operation, n, phase)`` triples: the n-th call (1-based,
    counted over the service's whole life, which outlives the crashed runs just
    as IBM's servers do) of ``operation`` in {"submit", "status", "result",
    "find_jobs", "cancel"} raises ``SimulatedCrash`` either ``"before"`` the
    server acts or ``"after"`` it acted (for submit: the job exists, but the
    client never learns its id). Each point fires once. ``error_at`` does the
    same with an ordinary exception carrying ``error_text`` (to test that
    foreign messages are sanitised). ``fail_jobs`` makes the n-th submitted job
    end in ERROR. ``listing_delay`` (seconds; default: the declared
    ``listing_lag``) hides a new job from ``find_jobs`` for that long.
    """

    backend_name: str = "fake_inmemory"
    num_qubits: int = 127
    max_pubs_per_job: int = 3
    max_executions_per_job: int = 10_000_000
    poll_interval: float = 0.0
    #: answer a cancel of a finished job as IBM does (HTTP 409 Conflict) instead of ignoring it
    conflict_on_finished: bool = False
    #: quantum seconds each finished job reports (None: no usage reported)
    usage_per_job: float | None = None
    listing_lag: float = 0.0
    listing_delay: float | None = None
    polls_to_finish: int = 2
    sampler: Callable[[Any, int, np.random.Generator], dict[str, int]] = uniform_counts
    seed: int = 0
    crash_at: set = field(default_factory=set)
    error_at: set = field(default_factory=set)
    error_text: str = "service failure"
    fail_jobs: set = field(default_factory=set)
    jobs: dict = field(default_factory=dict)
    submissions: list = field(default_factory=list)
    calls: dict = field(default_factory=dict)
    is_simulator: bool = True

    def __post_init__(self):
        self._ids = itertools.count(1)
        self.crash_at = set(self.crash_at)
        self.error_at = set(self.error_at)

    # -- failure injection --------------------------------------------------
    def _tick(self, op: str, phase: str) -> None:
        if phase == "before":
            self.calls[op] = self.calls.get(op, 0) + 1
        point = (op, self.calls.get(op, 0), phase)
        if point in self.crash_at:
            self.crash_at.discard(point)
            raise SimulatedCrash(f"simulated crash at {point}")
        if point in self.error_at:
            self.error_at.discard(point)
            raise RuntimeError(f"{op} failed: {self.error_text}")

    # -- protocol -------------------------------------------------------------
    def submit(self, circuits, shots, tag):
        """Submit one job (one PUB per circuit) tagged ``tag``; returns its job id (see :meth:`Service.submit`).

        Parameters
        ----------
        circuits : list of qiskit.QuantumCircuit
            ISA circuits, one PUB each.
        shots : int
        tag : str
            Client tag, also sent as the IBM job tag.

        Returns
        -------
        str
            The job id.
        """
        self._tick("submit", "before")
        job_id = f"job-{next(self._ids):04d}"
        job = _FakeJob(job_id, tag, list(circuits), int(shots), self.polls_to_finish, created=time.monotonic())
        if len(self.submissions) + 1 in self.fail_jobs:
            job.error = "job failed on the device"
        self.jobs[job_id] = job
        self.submissions.append({"job_id": job_id, "tag": tag, "pubs": len(circuits), "shots": shots,
                                 "options": dict(self.sampler_options), "primitive": self.primitive})
        self._tick("submit", "after")
        return job_id

    def _advance(self, job: _FakeJob) -> None:
        if job.status in ("DONE", "ERROR", "CANCELLED"):
            return
        job.polls_left -= 1
        if job.polls_left > 0:
            job.status = "RUNNING"
            return
        self._finish(job)

    def _finish(self, job: _FakeJob) -> None:
        if job.error:
            job.status = "ERROR"
            return
        # Seeded per job so a test can recompute what the 'device' measured.
        rng = np.random.default_rng([self.seed, int(job.job_id.split("-")[1])])
        job.counts = [self.sampler(c, job.shots, rng) for c in job.circuits]
        job.status = "DONE"

    def status(self, job_id):
        """The job's normalised state, one of ``STATES`` (see :meth:`Service.status`).

        Parameters
        ----------
        job_id : str

        Returns
        -------
        str
        """
        self._tick("status", "before")
        job = self._job(job_id)
        self._advance(job)
        self._tick("status", "after")
        return job.status

    def result(self, job_id):
        """Counts per PUB of a finished job, bit 0 first as measured (see :meth:`Service.result`).

        Parameters
        ----------
        job_id : str

        Returns
        -------
        list of dict of str -> int
            Counts per PUB.
        """
        self._tick("result", "before")
        job = self._job(job_id)
        if job.status not in ("DONE", "ERROR", "CANCELLED"):
            self._finish(job)  # result() blocks until the job ends
        if job.status != "DONE":
            raise RuntimeError(f"job {job_id} ended in {job.status}: {job.error or 'cancelled'}")
        counts = [dict(c) for c in job.counts]
        self._tick("result", "after")
        return counts

    def find_jobs(self, tag):
        """Ids of the jobs tagged ``tag``, oldest first: the crash-recovery lookup (see :meth:`Service.find_jobs`).

        Parameters
        ----------
        tag : str

        Returns
        -------
        list of str
        """
        self._tick("find_jobs", "before")
        delay = self.listing_lag if self.listing_delay is None else self.listing_delay
        listed_before = time.monotonic() - delay
        found = [j.job_id for j in self.jobs.values() if j.tag == tag and j.created <= listed_before]
        self._tick("find_jobs", "after")
        return found

    def cancel(self, job_id):
        """Ask for the job to be cancelled (see :meth:`Service.cancel`).

        Parameters
        ----------
        job_id : str
        """
        self._tick("cancel", "before")
        job = self._job(job_id)
        if job.status in ("DONE", "ERROR", "CANCELLED") and self.conflict_on_finished:
            raise RuntimeError(f"409 Client Error: Conflict for url: https://quantum.cloud.ibm.com/api/v1/jobs/"
                               f"{job_id}/cancel: job cannot be cancelled in state {job.status}")
        if job.status not in ("DONE", "ERROR"):
            job.status = "CANCELLED"
        self._tick("cancel", "after")

    def usage(self, job_id):
        """Quantum seconds charged for a finished job, if reported (see :meth:`Service.usage`).

        Parameters
        ----------
        job_id : str

        Returns
        -------
        float or None
            Seconds.
        """
        return self.usage_per_job if self._job(job_id).status == "DONE" else None

    def error_message(self, job_id):
        """The service's (redacted) error message for a failed job, if any.

        Parameters
        ----------
        job_id : str

        Returns
        -------
        str or None
        """
        return self._job(job_id).error

    def _job(self, job_id):
        try:
            return self.jobs[job_id]
        except KeyError:
            raise RuntimeError(f"job {job_id} not found") from None

    # -- test helpers ---------------------------------------------------------
    def submissions_per_tag(self) -> dict[str, int]:
        """How many times each tag was submitted (tests assert 1: no double submission)."""
        out: dict[str, int] = {}
        for s in self.submissions:
            out[s["tag"]] = out.get(s["tag"], 0) + 1
        return out
