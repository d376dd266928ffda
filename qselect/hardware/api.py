"""The four hardware operations as functions (the CLI is a thin layer over these)."""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from ..errors import QSelectError
from ..problems import Problem
from .jobs import JobRunner
from .ledger import TERMINAL, Ledger
from .runner import HardwareConfig, HardwareRun, read_plan
from .service import Service

log = logging.getLogger("qselect.hardware")


def _service_for(run_dir, plan: dict, service: Service | None) -> Service:
    if service is not None:
        return service
    from .runtime import get_service

    cfg = plan["config"]
    return get_service(cfg["backend"], run_dir=run_dir, seed=cfg.get("seed", 0),
                       fractional_gates=bool(cfg.get("fractional_gates", False)))


def submit(problems: dict[str, Problem], backend: str, run_dir, config: HardwareConfig | None = None,
           meta: dict[str, dict] | None = None, service: Service | None = None, wait: bool = True,
           timeout: float | None = None, **kw) -> dict | None:
    """Plan and run ``problems`` on ``backend``; returns the report (None with ``wait=False``).

    Parameters
    ----------
    problems : dict of str -> Problem
    backend : str
        ``fake_<device>``, an IBM device name, or ``least_busy``.
    run_dir : str or os.PathLike
    config : HardwareConfig or None
    meta : dict of str -> dict or None
        Per-problem metadata for the report.
    service : Service or None
        Default: from ``backend``.
    wait : bool
    timeout : float or None
        Seconds all waiting may take.

    Returns
    -------
    dict or None

    Raises
    ------
    QSelectError
        On bad input, no account, or a run directory that holds another run.
    """
    config = replace(config, backend=backend) if config else HardwareConfig(backend=backend)
    config.validate()  # before the service is opened or anything is written
    if service is None:
        from .runtime import get_service

        need = max((p.n for p in problems.values()), default=1)
        service = get_service(backend, run_dir=run_dir, min_qubits=need, seed=config.seed,
                              fractional_gates=config.fractional_gates)
    run = HardwareRun.create(run_dir, service, config, problems, meta=meta, timeout=timeout, **kw)
    return run.execute(wait=wait)


def fetch(run_dir, service: Service | None = None, *, job_id: str | None = None, timeout: float | None = None,
          resubmit_failed: bool = False, **kw) -> dict:
    """Resume a run: fetch every job by id (submitting only what never reached the service); the report.

    With ``job_id``: fetch just that job of the run into the result cache and return its payload.

    Parameters
    ----------
    run_dir : str or os.PathLike
    service : Service or None
    job_id : str or None
    timeout : float or None
    resubmit_failed : bool
    **kw
        Runner options.

    Returns
    -------
    dict
        The report (or the one job's payload).

    Raises
    ------
    HardwareError
        If a job failed (resubmit with ``resubmit_failed``) or the timeout expired.
    """
    run_dir = Path(run_dir)
    plan = read_plan(run_dir)
    service = _service_for(run_dir, plan, service)
    if job_id is not None:
        ledger = Ledger(run_dir)
        rec = ledger.record_for_job(job_id)
        if rec is None:
            raise QSelectError(f"job {job_id} is not in {run_dir}'s ledger; `qselect hardware status --run-dir "
                               f"{run_dir}` lists its jobs")
        return JobRunner(service, ledger, plan["run_id"], timeout=timeout).fetch(rec)
    run = HardwareRun.load(run_dir, service=service, timeout=timeout, resubmit_failed=resubmit_failed, **kw)
    return run.execute(wait=True)


def status(run_dir, service: Service | None = None, refresh: bool = True) -> list[dict]:
    """One row per job: key, job id, backend, problems, shots, state, submitted, cached.

    Parameters
    ----------
    run_dir : str or os.PathLike
    service : Service or None
    refresh : bool
        Ask the service (else the ledger only).

    Returns
    -------
    list of dict
    """
    run_dir = Path(run_dir)
    plan = read_plan(run_dir)
    ledger = Ledger(run_dir)
    if refresh and any(r.job_id and not r.has_result and r.status not in TERMINAL
                       for r in ledger.records().values()):
        try:
            JobRunner(_service_for(run_dir, plan, service), ledger, plan["run_id"]).refresh()
        except QSelectError as exc:  # offline / no account: the ledger alone still answers
            log.warning("showing the ledger without live states: %s", exc)
    return [{"key": r.key, "job_id": r.job_id or "-", "backend": r.backend, "problems": len(r.problem_ids),
             "shots": r.shots, "status": r.status, "submitted": (r.submitted_at or "-")[:19],
             "cached": "yes" if r.has_result else "no", "error": r.error or ""}
            for r in ledger.records().values()]


def cancel(run_dir, service: Service | None = None) -> list[str]:
    """Cancel the run's unfinished jobs; returns their ids.

    Parameters
    ----------
    run_dir : str or os.PathLike
    service : Service or None

    Returns
    -------
    list of str
    """
    from ..io import lock_folder

    run_dir = Path(run_dir)
    plan = read_plan(run_dir)
    with lock_folder(run_dir, "hardware run directory", owner="qselect hardware cancel"):
        return JobRunner(_service_for(run_dir, plan, service), Ledger(run_dir), plan["run_id"]).cancel_all()


def format_status(rows: list[dict]) -> str:
    """Plain-text table of :func:`status` rows (key, job id, backend, problems, shots, status, submitted, cached).

    Parameters
    ----------
    rows : list of dict

    Returns
    -------
    str
        ``"no jobs recorded yet"`` when ``rows`` is empty; error messages
        follow their job's line.
    """
    cols = ["key", "job_id", "backend", "problems", "shots", "status", "submitted", "cached"]
    if not rows:
        return "no jobs recorded yet"
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in cols)]
    for r in rows:
        lines.append("  ".join(str(r[c]).ljust(widths[c]) for c in cols))
        if r.get("error"):
            lines.append(f"    error: {r['error']}")
    return "\n".join(lines)
