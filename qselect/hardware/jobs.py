"""Crash-safe job execution: ledger first, then the service; fetch by id, never resubmit.

``JobRunner.run_stage(stage, pubs, shots)`` is the one primitive both
hardware strategies use. The PUBs are packed into jobs within the backend's
limits; each job unit gets a deterministic key (stage + batch number) and a
tag derived from the run id, so a rerun of the same stage maps onto the same
ledger records:

- result cached            -> read it (a rerun costs nothing);
- job id known             -> wait for it and fetch it by id;
- intent only (the process died around ``submit``, or ``submit`` failed) ->
  look the tag up in the service's job list, a second time once the service's
  ``listing_lag`` has passed since the last attempt (a job created just before
  the crash may not be listed yet); found -> adopt that job; not found ->
  submit again under the same tag (so a later lookup still sees both);
- nothing                  -> write the intent line, then submit.

Every line is on disk before anything waits on the service.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import QSelectError
from .ledger import TERMINAL, JobRecord, Ledger, now, seconds_since
from .redact import HardwareError, redact, resume_hint, sanitised_errors
from .service import Service, normalise_status

log = logging.getLogger("qselect.hardware")


@dataclass
class Pub:
    """One circuit to run for one problem; the circuit is built only if it must be submitted."""

    problem_id: str
    build: Callable[[], tuple[Any, str]]  # -> (circuit, circuit hash)


def _no_hook(point: str) -> None:
    return None


class JobRunner:
    """Submits, waits for and fetches job units through a :class:`Service`, keeping the ledger first.

    Every service call is preceded by the ledger line that makes it
    recoverable (``intent`` before submit, ``submitted`` before waiting,
    ``result`` after the counts are cached), so a resumed run never submits a
    unit twice and never loses a result.

    Parameters
    ----------
    service : Service
    ledger : Ledger
    run_id : str
        Part of every job tag.
    timeout : float or None
        Seconds all the waiting of this runner may take in total.
    poll_interval : float or None
        Seconds between status polls (default: the service's).
    resubmit_failed : bool
        Submit again units whose job ended in ERROR or CANCELLED.
    crash_hook : callable or None
        Test hook called at named points to simulate crashes.
    pack_size : int or None
        Largest number of PUBs per job.
    """

    def __init__(self, service: Service, ledger: Ledger, run_id: str, *, timeout: float | None = None,
                 poll_interval: float | None = None, resubmit_failed: bool = False,
                 crash_hook: Callable[[str], None] | None = None, pack_size: int | None = None):
        self.service = service
        self.pack_size = pack_size
        self.ledger = ledger
        self.run_id = run_id
        self.timeout = timeout
        self.poll_interval = service.poll_interval if poll_interval is None else poll_interval
        self.resubmit_failed = resubmit_failed
        self._deadline: float | None = None  # the timeout covers all waiting, from the first wait
        self._bar = None  # progress bar while a stage waits (status shown as its postfix)
        # Test hook: called at named points between the runner's own steps.
        self._hook = crash_hook or _no_hook

    def _resume(self) -> str:
        """Advice after a service error: the run folder holds the plan and ledger, so fetch resumes it."""
        return resume_hint(self.ledger.run_dir)

    # -- packing -----------------------------------------------------------
    def pubs_per_job(self, shots: int, circuit_bytes: int | None = None) -> int:
        """Most PUBs one job may carry.

        Most PUBs one job may carry: executions (circuits x shots, IBM: 10 million), the input size (IBM: 50 MB, from
        ``circuit_bytes`` of the largest circuit with a 2x margin for encoding) and any PUB limit the service declares
        (IBM enforces none).

        Parameters
        ----------
        shots : int
        circuit_bytes : int or None

        Returns
        -------
        int
        """
        limits = [int(self.service.max_pubs_per_job), int(self.service.max_executions_per_job) // max(int(shots), 1)]
        if circuit_bytes:
            limits.append(int(getattr(self.service, "max_job_bytes", 50_000_000)) // (2 * int(circuit_bytes)))
        return max(1, min(limits))

    def pack(self, pubs: list[Pub], shots: int) -> list[list[Pub]]:
        """Pack PUBs into jobs of consecutive chunks.

        The size is frozen in the plan (``pack_size``) so a resumed run, even under changed backend limits, rebuilds
        exactly the job units its ledger holds.

        Parameters
        ----------
        pubs : list of Pub
        shots : int

        Returns
        -------
        list of list of Pub
        """
        per_job = self.pack_size or self.pubs_per_job(shots)
        return [pubs[i:i + per_job] for i in range(0, len(pubs), per_job)]

    def tag_for(self, key: str, attempt: int = 0) -> str:
        """The job tag of unit ``key``: ``qselect-<run id>-<key>`` (``-r<attempt>`` for resubmitted failed jobs).

        Parameters
        ----------
        key : str
        attempt : int

        Returns
        -------
        str
        """
        base = f"qselect-{self.run_id}-{key}"
        return base if attempt == 0 else f"{base}-r{attempt}"

    # -- the primitive -----------------------------------------------------
    def run_stage(self, stage: str, pubs: list[Pub], shots: int, wait: bool = True) -> dict[str, dict] | None:
        """Run ``pubs`` (submitting only what the ledger lacks); counts by problem id.

        Parameters
        ----------
        stage : str
            Name of the stage (part of the unit keys).
        pubs : list of Pub
        shots : int
        wait : bool

        Returns
        -------
        dict of str -> dict or None
            Counts by problem id (None when not waiting).
        """
        units = []
        for b, batch in enumerate(self.pack(pubs, shots)):
            units.append((self.ensure_submitted(f"{stage}-b{b:03d}", batch, shots), batch))
        if not wait:
            return None
        out: dict[str, dict] = {}
        from tqdm.auto import tqdm

        # disable=None: a bar on a terminal, silent in logs and tests
        with tqdm(total=len(units), desc=f"{stage}: waiting for jobs", unit="job", disable=None) as bar:
            self._bar = bar
            try:
                for rec, _ in units:
                    payload = self.fetch(rec)
                    for pid, counts in zip(payload["problem_ids"], payload["counts"]):
                        out[pid] = counts
                    bar.update()
            finally:
                self._bar = None
        return out

    def _latest(self, key: str) -> tuple[JobRecord | None, int]:
        recs = [r for r in self.ledger.records().values() if r.key == key]
        return (recs[-1], len(recs) - 1) if recs else (None, -1)

    def ensure_submitted(self, key: str, batch: list[Pub], shots: int) -> JobRecord:
        """Make sure the job unit ``key`` has been submitted exactly once; returns its record.

        A unit with a job id in the ledger is not resubmitted; an intent without
        one is first looked up by tag in the service (twice when the service
        may list new jobs late) and only then submitted again, under the same tag.

        Parameters
        ----------
        key : str
            The unit's key within the run.
        batch : list of Pub
            The circuits (one per problem) of the unit.
        shots : int

        Returns
        -------
        JobRecord

        Raises
        ------
        QSelectError
            If the ledger's unit covers other problems or shots than this run
            plans (the run directory belongs to a different run).
        """
        ids = [p.problem_id for p in batch]
        rec, attempt = self._latest(key)
        if rec is not None:
            if rec.problem_ids != ids or rec.shots != int(shots):
                raise QSelectError(
                    f"the ledger's job {key} covers problems {rec.problem_ids[:3]}... with {rec.shots} shots, "
                    f"but this run plans {ids[:3]}... with {shots}; the run directory belongs to a different "
                    f"run: resume it with `qselect hardware fetch --run-dir {self.ledger.run_dir}` (its own "
                    "settings), or choose a new --run-dir")
            if rec.job_id is not None:
                if rec.status in ("ERROR", "CANCELLED") and not rec.has_result and self.resubmit_failed:
                    return self._submit(key, batch, shots, attempt + 1)
                return rec
            # Intent without a job id: the process died around submit. Ask the
            # service before ever submitting again.
            found = self._find_by_tag(rec)
            if found:
                if len(found) > 1:
                    log.warning("%d jobs carry tag %s; using %s", len(found), rec.tag, found[0])
                self._adopt(rec, found[0])
                log.info("recovered job %s for %s from its tag", found[0], key)
                return self.ledger.records()[rec.tag]
            circuits, _ = self._build(batch)  # before the lookup line: it stamps the new attempt
            self.ledger.append("lookup", tag=rec.tag, key=key, found=0)
            return self._send(rec.tag, key, batch, shots, circuits)
        return self._submit(key, batch, shots, 0)

    def _find_by_tag(self, rec: JobRecord) -> list[str]:
        """Job ids carrying ``rec``'s tag, asking twice while the listing may lag.

        Jobs carrying ``rec``'s tag; an empty answer counts only once the listing has caught up with the last submit
        attempt (``Service.listing_lag``), so it is asked twice if need be.
        """
        with sanitised_errors(f"looking up job tag {rec.tag}", self._resume()):
            found = list(self.service.find_jobs(rec.tag))
        self._hook("after_lookup")
        lag = float(self.service.listing_lag)
        lag = min(lag, lag - seconds_since(rec.last_attempt))  # min: a ledger stamped by a clock ahead of ours
        if not found and lag > 0:
            log.info("no job tagged %s listed yet; looking again in %.0f s before submitting", rec.tag, lag)
            time.sleep(lag)
            with sanitised_errors(f"looking up job tag {rec.tag}", self._resume()):
                found = list(self.service.find_jobs(rec.tag))
            self._hook("after_lookup")
        return found

    def _adopt(self, rec: JobRecord, job_id: str) -> None:
        self.ledger.append("submitted", tag=rec.tag, key=rec.key, job_id=job_id, backend=rec.backend,
                           problem_ids=rec.problem_ids, submitted_at=now(), status="QUEUED", recovered=True)

    def _build(self, batch):
        circuits, hashes = [], []
        for p in batch:
            c, h = p.build()
            circuits.append(c)
            hashes.append(h)
        return circuits, hashes

    def _submit(self, key, batch, shots, attempt) -> JobRecord:
        tag = self.tag_for(key, attempt)
        circuits, hashes = self._build(batch)
        self.ledger.append("intent", tag=tag, key=key, backend=self.service.backend_name,
                           problem_ids=[p.problem_id for p in batch], circuit_hashes=hashes, shots=int(shots))
        self._hook("after_intent")
        return self._send(tag, key, batch, shots, circuits)

    def _send(self, tag, key, batch, shots, circuits) -> JobRecord:
        with sanitised_errors(f"submitting job {key} to {self.service.backend_name}", self._resume()):
            job_id = self.service.submit(circuits, int(shots), tag)
        self._hook("after_submit")
        self.ledger.append("submitted", tag=tag, key=key, job_id=str(job_id), backend=self.service.backend_name,
                           problem_ids=[p.problem_id for p in batch], submitted_at=now(), status="QUEUED")
        log.info("submitted %s as job %s (%d PUBs x %d shots)", key, job_id, len(batch), shots)
        self._hook("after_submitted")
        return self.ledger.records()[tag]

    # -- waiting and fetching ------------------------------------------------
    def fetch(self, rec: JobRecord) -> dict:
        """The cached counts of a job, waiting for and fetching it by id if needed.

        Parameters
        ----------
        rec : JobRecord

        Returns
        -------
        dict
        """
        if rec.job_id is None:
            raise QSelectError(f"job unit {rec.key} was never submitted; run `qselect hardware fetch --run-dir "
                               f"{self.ledger.run_dir}` to resume it")
        cached = self.ledger.load_result(rec.job_id)
        if cached is not None:
            if not rec.has_result:  # died between caching and the ledger line
                self.ledger.append("result", tag=rec.tag, job_id=rec.job_id,
                                   file=str(self.ledger.result_path(rec.job_id).relative_to(self.ledger.run_dir)))
            return cached
        self.wait(rec)
        with sanitised_errors(f"fetching the result of job {rec.job_id}", self._resume()):
            counts = self.service.result(rec.job_id)
        self._hook("after_result")
        if len(counts) != len(rec.problem_ids):
            raise HardwareError(f"job {rec.job_id} returned {len(counts)} results for {len(rec.problem_ids)} circuits")
        try:
            usage = self.service.usage(rec.job_id)
        except Exception:  # noqa: BLE001 - usage is informative; the counts matter
            usage = None
        payload = {"job_id": rec.job_id, "tag": rec.tag, "backend": rec.backend, "shots": rec.shots,
                   "problem_ids": rec.problem_ids, "circuit_hashes": rec.circuit_hashes,
                   "counts": [{str(k): int(v) for k, v in c.items()} for c in counts], "fetched_at": now(),
                   "usage_s": usage}
        path = self.ledger.save_result(rec.job_id, payload)
        self._hook("after_result_cached")
        self.ledger.append("result", tag=rec.tag, job_id=rec.job_id, file=path,
                           **({"usage_s": usage} if usage is not None else {}))
        self._hook("after_result_line")
        return payload

    def wait(self, rec: JobRecord) -> str:
        """Poll the job until it is done; state changes are written to the ledger.

        Parameters
        ----------
        rec : JobRecord

        Returns
        -------
        str
            ``"DONE"``.

        Raises
        ------
        HardwareError
            If the job ended in ERROR or CANCELLED, or the runner's timeout
            expired (nothing is lost: the run resumes with ``fetch``).
        """
        if self._deadline is None and self.timeout is not None:
            self._deadline = time.monotonic() + self.timeout
        last = rec.status
        err = rec.error
        polls = 0
        while True:
            with sanitised_errors(f"asking the status of job {rec.job_id}", self._resume()):
                st = normalise_status(self.service.status(rec.job_id))
            if self._bar is not None:
                self._bar.set_postfix_str(f"{rec.job_id}: {st}", refresh=True)
            if st != last:
                if st == "ERROR":
                    with sanitised_errors(f"reading the error of job {rec.job_id}", self._resume()):
                        err = self.service.error_message(rec.job_id)
                    err = redact(err) if err else None
                self.ledger.append("status", tag=rec.tag, job_id=rec.job_id, status=st,
                                   **({"error": err} if err else {}))
                self._hook("after_status")
                last = st
            if st == "DONE":
                return st
            if st in ("ERROR", "CANCELLED"):
                raise HardwareError(
                    f"job {rec.job_id} ({rec.key}) ended in {st}"
                    + (f": {redact(err)}" if st == "ERROR" and err else "")
                    + f"; run `qselect hardware fetch --run-dir {self.ledger.run_dir} --resubmit-failed` to run "
                    "those problems again")
            if self._deadline is not None and time.monotonic() > self._deadline:
                raise HardwareError(f"job {rec.job_id} is still {st} after waiting {self.timeout:g} s in all; "
                                    f"nothing is lost: run `qselect hardware fetch --run-dir {self.ledger.run_dir}` "
                                    "later to collect it")
            polls += 1  # back off: quick jobs return fast, long queues are not hammered
            time.sleep(min(self.poll_interval, 0.25 * 2 ** min(polls, 20)))  # capped: 2**1024 overflows float

    # -- status / cancel -----------------------------------------------------
    def refresh(self) -> dict[str, JobRecord]:
        """Ask the service for the state of every unfinished job; record changes."""
        for rec in self.ledger.records().values():
            if rec.job_id is None or rec.status in TERMINAL:
                continue
            with sanitised_errors(f"asking the status of job {rec.job_id}"):
                st = normalise_status(self.service.status(rec.job_id))
            if st != rec.status:
                self.ledger.append("status", tag=rec.tag, job_id=rec.job_id, status=st)
        return self.ledger.records()

    def cancel_all(self) -> list[str]:
        """Cancel every job of the run that has not finished; returns the ids cancelled.

        A job that finished meanwhile (IBM answers its cancel with HTTP 409 Conflict) is
        recorded in its final state and the remaining jobs are still cancelled; any other
        failure is reported after every job has been tried.
        """
        cancelled, failed = [], []
        for rec in self.ledger.records().values():
            if rec.has_result or rec.status in TERMINAL:
                continue
            ids = [rec.job_id] if rec.job_id else []
            if not ids:  # intent only: the job may exist under its tag
                ids = self._find_by_tag(rec)
                for jid in ids[:1]:
                    self._adopt(rec, jid)
            for jid in ids:
                try:
                    with sanitised_errors(f"cancelling job {jid}"):
                        self.service.cancel(jid)
                except HardwareError as exc:
                    final = self._final_state(jid)
                    if final is not None:  # finished before the cancel arrived: nothing to cancel
                        log.info("job %s had already ended in %s; not cancelled", jid, final)
                        self.ledger.append("status", tag=rec.tag, job_id=jid, status=final)
                        continue
                    failed.append(f"{jid}: {exc.detail or exc}")
                    continue
                self.ledger.append("cancel", tag=rec.tag, job_id=jid, status="CANCELLED")
                cancelled.append(jid)
        if failed:
            raise HardwareError(f"could not cancel {len(failed)} job(s) (the others were cancelled): "
                                + "; ".join(failed) + "; check your IBM Quantum account and network, then run "
                                f"`qselect hardware cancel --run-dir {self.ledger.run_dir}` again")
        return cancelled

    def _final_state(self, job_id: str) -> str | None:
        """The job's state if it is final (DONE/ERROR/CANCELLED), else None (also when unknown)."""
        try:
            with sanitised_errors(f"asking the status of job {job_id}"):
                st = normalise_status(self.service.status(job_id))
        except HardwareError:
            return None
        return st if st in TERMINAL else None


def circuit_hash(circuit) -> str:
    """Stable fingerprint of a circuit's instructions (operation, parameters, qubits, clbits).

    Duck-typed on QuantumCircuit's public attributes so qiskit stays imported
    only in ``qselect/circuits/qiskit.py``.

    Parameters
    ----------
    circuit : qiskit.QuantumCircuit

    Returns
    -------
    str
    """
    h = hashlib.sha256()
    if hasattr(circuit, "data") and hasattr(circuit, "find_bit"):
        h.update(f"{circuit.num_qubits}/{circuit.num_clbits}".encode())
        for inst in circuit.data:
            op = inst.operation
            params = ",".join(f"{float(p):.12g}" if _is_number(p) else str(p) for p in op.params)
            qs = ",".join(str(circuit.find_bit(q).index) for q in inst.qubits)
            cs = ",".join(str(circuit.find_bit(c).index) for c in inst.clbits)
            h.update(f"{op.name}({params})[{qs}][{cs}];".encode())
    else:
        h.update(repr(circuit).encode())
    return h.hexdigest()[:16]


def _is_number(p) -> bool:
    try:
        float(p)
        return True
    except (TypeError, ValueError):
        return False
