"""Append-only job ledger: no lost work, no double spend.

One JSON object per line in ``<run dir>/ledger.jsonl``, each appended and
fsynced (``qselect.io.append_line_durable``) *before* the program waits on
anything. The events of one job unit (a batch of PUBs identified by a
client-generated ``tag`` that is also sent to the service as a job tag):

``intent``     written before ``submit`` is called (tag, problem ids, circuit
               hashes, shots, backend);
``submitted``  the job id the service returned (or found by tag on resume);
``lookup``     on resume, an intent without a job id was looked up by tag (twice
               if the service may list new jobs late) and no job was found, so
               it is submitted again under the same tag;
``status``     a state change seen while waiting;
``result``     the counts were cached (atomically) under ``results/``;
``cancel``     a cancel request.

Replaying the events gives the state of every unit (``records()``). A crash
can tear at most the last line; the reader skips it and the next append
starts on a fresh line, so the file always parses.
"""
from __future__ import annotations

import json
import re
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import QSelectError
from ..io import append_line_durable, atomic_write_json

LEDGER_FILE = "ledger.jsonl"
RESULTS_DIR = "results"
TERMINAL = ("DONE", "ERROR", "CANCELLED")


def now() -> str:
    """Current UTC time as an ISO-8601 string with milliseconds (the ledger's timestamps)."""
    # milliseconds: the tag-lookup grace period is measured from these stamps
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def seconds_since(stamp: str) -> float:
    """Seconds elapsed since an ISO-8601 timestamp written by :func:`now`.

    Parameters
    ----------
    stamp : str

    Returns
    -------
    float
    """
    return (datetime.now(timezone.utc) - datetime.fromisoformat(stamp)).total_seconds()


@dataclass
class JobRecord:
    """What the ledger knows about one job unit (one tag)."""

    tag: str
    key: str
    backend: str
    problem_ids: list[str]
    circuit_hashes: list[str]
    shots: int
    job_id: str | None = None
    submitted_at: str | None = None
    status: str = "PENDING"  # PENDING = intent only, no job id known yet
    error: str | None = None
    result_file: str | None = None
    recovered: bool = False
    last_attempt: str = ""  # time of the intent or of the latest lookup: when a submit was last sent
    extra: dict = field(default_factory=dict)

    @property
    def has_result(self) -> bool:
        """True when the job's counts are cached under ``results/``."""
        return self.result_file is not None

    def to_dict(self) -> dict:
        """The record as a plain dict (JSON-ready)."""
        return asdict(self)


def _safe_name(job_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(job_id))


class Ledger:
    """The run directory's job ledger and result cache."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LEDGER_FILE

    # -- raw events -------------------------------------------------------
    def events(self) -> list[dict]:
        """Every event in the ledger, in order; a torn last line (crash mid-append) is skipped.

        Returns
        -------
        list of dict
            Each with ``event``, ``time`` and the event's fields.
        """
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        out = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
                if not isinstance(ev, dict) or "event" not in ev:
                    raise ValueError("not a ledger event")
            except ValueError:
                # Only a write cut short by a crash can leave a bad line; it
                # never held a job id that was acted on (ids are written before
                # anything waits), so skipping it loses nothing.
                warnings.warn(f"{self.path}: skipping unreadable line {i + 1} (torn write from an interrupted run)",
                              stacklevel=2)
                continue
            out.append(ev)
        return out

    def append(self, event: str, **fields) -> dict:
        """Append one event and fsync it before returning.

        Parameters
        ----------
        event : str
            ``intent``, ``submitted``, ``lookup``, ``status``, ``result`` or ``cancel``.
        **fields
            The event's data (JSON-serialisable).

        Returns
        -------
        dict
            The event as written, with its timestamp.
        """
        rec = {"event": event, "time": now(), **fields}
        line = json.dumps(rec, sort_keys=False, default=str)
        if "\n" in line:  # json.dumps never emits raw newlines; keep it that way
            raise QSelectError("internal error: ledger line contains a newline")
        # A torn last line (crash mid-append) must not swallow this one.
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb") as fh:
                fh.seek(-1, 2)
                if fh.read(1) != b"\n":
                    line = "\n" + line
        # a new ledger's folder entry is fsynced too (append_line_durable): a run that lost its
        # ledger to a power cut would submit everything again
        append_line_durable(self.path, line)
        return rec

    # -- replayed state ---------------------------------------------------
    def records(self) -> dict[str, JobRecord]:
        """State of every job unit, by tag, in order of first intent."""
        recs: dict[str, JobRecord] = {}
        for ev in self.events():
            kind = ev["event"]
            tag = ev.get("tag")
            if kind == "intent":
                if tag not in recs:
                    recs[tag] = JobRecord(tag=tag, key=ev.get("key", tag), backend=ev.get("backend", ""),
                                          problem_ids=list(ev.get("problem_ids", [])),
                                          circuit_hashes=list(ev.get("circuit_hashes", [])),
                                          shots=int(ev.get("shots", 0)),
                                          last_attempt=ev["time"], extra=dict(ev.get("extra", {})))
                continue
            rec = recs.get(tag)  # every event carries its unit's tag
            if rec is None:
                continue
            if kind == "submitted":
                rec.job_id = ev["job_id"]
                rec.submitted_at = ev.get("submitted_at", ev["time"])
                rec.status = ev.get("status", "QUEUED")
                rec.recovered = bool(ev.get("recovered", False))
            elif kind == "lookup":
                rec.last_attempt = ev["time"]
            elif kind == "status":
                if rec.status not in TERMINAL or ev.get("status") in TERMINAL:
                    rec.status = ev["status"]
                rec.error = ev.get("error", rec.error)
            elif kind == "result":
                rec.result_file = ev["file"]
                rec.status = "DONE"
            elif kind == "cancel":
                if rec.status not in TERMINAL:
                    rec.status = ev.get("status", "CANCELLED")
        return recs

    def record_for_job(self, job_id: str) -> JobRecord | None:
        """The record of the unit whose job id is ``job_id``, or ``None``.

        Parameters
        ----------
        job_id : str

        Returns
        -------
        JobRecord or None
        """
        for rec in self.records().values():
            if rec.job_id == job_id:
                return rec
        return None

    # -- result cache -----------------------------------------------------
    def result_path(self, job_id: str) -> Path:
        """Where the counts of ``job_id`` are cached: ``results/<job id>.json`` in the run directory.

        Parameters
        ----------
        job_id : str

        Returns
        -------
        pathlib.Path
        """
        return self.run_dir / RESULTS_DIR / f"{_safe_name(job_id)}.json"

    def save_result(self, job_id: str, payload: dict) -> str:
        """Cache a job's counts atomically.

        Parameters
        ----------
        job_id : str
        payload : dict
            Counts per PUB and metadata.

        Returns
        -------
        str
            The cache file's path relative to the run directory (for the ledger's ``result`` event).
        """
        path = self.result_path(job_id)
        atomic_write_json(path, payload)
        return str(path.relative_to(self.run_dir))

    def load_result(self, job_id: str) -> dict | None:
        """The cached counts of ``job_id``, or ``None`` when absent or unreadable (then they are fetched again).

        Parameters
        ----------
        job_id : str

        Returns
        -------
        dict or None
        """
        path = self.result_path(job_id)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return None  # cannot happen with atomic writes; refetch rather than trust it
