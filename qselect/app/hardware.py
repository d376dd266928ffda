"""``qselect hardware submit | status | fetch | cancel``: QAOA on IBM Quantum (or fake_<device>) with a job ledger.

submit  builds the local problems exactly as ``qselect select`` does, plans the
        circuits (angles from the native simulator by default), records every
        job in <run dir>/ledger.jsonl before waiting, and writes report.json/.md;
status  prints the table of the run's jobs and their states;
fetch   resumes an interrupted run (fetching jobs by id, never resubmitting) or
        fetches one job by id (--job-id);
cancel  cancels the run's unfinished jobs.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

from ..errors import QSelectError
from ..hardware.masks import local_problems, save_selection_context
from ..solvers.exact import EXACT_SEARCH_BITS
from . import pipeline as pl
from . import settings as cm
from .console import Console

HELP_SUBMIT = "run the local problems' QAOA on an IBM backend or fake_<device>, with a resumable job ledger"


HELP_STATUS = "show the jobs of a hardware run and their states"


HELP_FETCH = "collect (resume) a hardware run: fetch its jobs by id and write the report"


HELP_CANCEL = "cancel the unfinished jobs of a hardware run"


log = logging.getLogger("qselect")


def _redacted(handler):
    """Run a command so no exception text it prints or records can carry the IBM token."""
    @functools.wraps(handler)
    def run(*args, **kwargs):
        from ..hardware.redact import redacted_errors

        with redacted_errors():
            return handler(*args, **kwargs)

    return run


def _need_run_dir(cfg) -> str:
    if not cfg.get("run_dir"):
        raise QSelectError("--run-dir is required: the hardware run's folder (the one given to "
                           "`qselect hardware submit`)")
    return cfg["run_dir"]


def _config(cfg):
    from ..hardware.runner import HardwareConfig

    return HardwareConfig(backend=cfg["device"], strategy=cfg["strategy"], p=int(cfg["p"]), shots=int(cfg["shots"]),
                          angles=cfg["angles"], seed=int(cfg["seed"]),
                          optimization_level=int(cfg["optimization_level"]),
                          spsa_iterations=int(cfg["spsa_iterations"]), spsa_shots=int(cfg["spsa_shots"]),
                          compile=cfg["compile"], transpile_seeds=int(cfg["transpile_seeds"]),
                          fractional_gates=bool(cfg["fractional_gates"]),
                          dynamical_decoupling=cfg["dynamical_decoupling"],
                          twirl_gates=not cfg["no_twirl_gates"], twirl_measure=bool(cfg["twirl_measure"]),
                          primitive=cfg["primitive"], execution_mode=cfg["execution_mode"],
                          max_execution_time=int(cfg["max_execution_time"]) or None,
                          open_plan=bool(cfg["open_plan"])).validate()


def validate_submit(cfg: dict) -> dict:
    """Check ``hardware submit`` settings: a device (not a simulator name) and the selection options.

    Parameters
    ----------
    cfg : dict

    Returns
    -------
    dict

    Raises
    ------
    QSelectError
        If no ``--device`` is given, a simulator name is given as device, or
        another option is invalid.
    """
    if not cfg.get("device"):
        raise QSelectError("no device given; use --device with an IBM device name, least_busy, or fake_<device> "
                           "(e.g. fake_manila, no account needed); for simulators use `qselect select --solver qaoa`")
    if cfg["device"] in cm.QAOA_BACKENDS:
        raise QSelectError(f"submit runs on a device, not the {cfg['device']!r} simulator: use --device with an "
                           "IBM device name, least_busy, or fake_<device> (e.g. fake_manila, no account needed); "
                           "for simulators use `qselect select --solver qaoa`")
    _refuse_hardware_run(cfg.get("run_dir"))  # before the generic "finished run" check: say how to resume it
    # sparsity, formulation, qubit budget (the simulator's references too), seed, model, weights, dataset, run dir
    cm.validate_common(cfg, solver_needed=False)
    if cfg["max_problems"] < 0:
        raise QSelectError("--max-problems must be 0 (all) or a positive number")
    _check_timeout(cfg)
    if int(cfg.get("threads") or 0) < 0:
        raise QSelectError(f"threads must be 0 (auto) or positive, got {cfg['threads']}; set it with --threads")
    _config(cfg)
    return pl.validate_experiment(cfg)


def _refuse_hardware_run(run_dir) -> None:
    from ..hardware.runner import PLAN_FILE

    if run_dir and (Path(run_dir) / PLAN_FILE).exists():
        raise QSelectError(f"{run_dir} already holds a hardware run; resume it with `qselect hardware fetch --run-dir "
                           f"{run_dir}` or choose a new --run-dir")


def _check_timeout(cfg: dict) -> None:
    """--timeout: 0 (wait as long as it takes) or a positive number of seconds."""
    from ..validation import check_float

    check_float(cfg["timeout"], "timeout (--timeout, seconds; 0 = wait)", minimum=0.0)


@_redacted
def run_submit(cfg: dict, *, argv=None, given=(), extra=None) -> int:
    """``qselect hardware submit``: run a model's local problems as QAOA circuits on a device, through the job ledger.

    Parameters
    ----------
    cfg : dict
        The resolved settings: one key per option the command declares
        (dashes as underscores), as ``qselect.cli`` resolves them from flags,
        ``--config`` and defaults.
    argv : list of str or None
        The command line, recorded in the run's ``run.json``.
    given : iterable of str
        Options set explicitly (by flag or config) rather than by default.
    extra : list of str or None
        Arguments after ``--`` (passed on where the command supports it).

    Returns
    -------
    int
        Process exit code (0 on success).

    Raises
    ------
    QSelectError
        On bad input, before the run directory is created.
    """
    cfg = validate_submit(dict(cfg))
    con = Console(cfg["quiet"], cfg["verbose"])
    run_dir = _need_run_dir(cfg)
    hw_config = _config(cfg)
    from ..hardware.runtime import get_service

    # Account/backend problems surface before any training starts.
    service = get_service(cfg["device"], run_dir=run_dir, min_qubits=int(cfg["qubits"]), seed=cfg["seed"],
                          fractional_gates=hw_config.fractional_gates)
    from ..hardware.runner import HardwareRun, check_fits_device

    check_fits_device(service, int(cfg["qubits"]), "the qubit budget (--qubits) asks for")
    cm.set_threads(cfg)
    data = pl.load_data(cfg)
    calib = pl.calibration_inputs(data, cfg["calib_size"], cfg["seed"])
    con.info("preparing the model (%s)", cfg["model"])
    parent, parent_info = pl.prepare_parent(cfg, data, progress=con.progress)
    layers = pl.hidden_layers(parent, cfg["layers"])
    from ..formulate import select_masks

    # The classical solution is the reference (and the fixed context of blocks).
    sel = select_masks(parent, calib, formulation=cfg["formulation"], sparsity=cfg["sparsity"], solver="exact"
                       if cfg["qubits"] <= EXACT_SEARCH_BITS else "sa", qubits=cfg["qubits"], layers=layers,
                       seed=cfg["seed"],
                       **({"K": int(cfg["qubits"])} if cfg["formulation"] == "nk" else {}))  # NK: K is --qubits
    problems, meta = local_problems(sel, int(cfg["qubits"]))
    if cfg["max_problems"]:
        keep = list(problems)[: cfg["max_problems"]]
        problems, meta = {k: problems[k] for k in keep}, {k: meta[k] for k in keep}
    con.info("%d problems for %s (strategy %s)", len(problems), service.backend_name, hw_config.strategy)
    # planned in memory first: a problem wider than the device, the gate limit or the time cap
    # refuse the run before its folder exists
    hw_run = HardwareRun.plan(run_dir, service, hw_config, problems, meta=meta, timeout=cfg["timeout"] or None,
                              console=con)
    from ..hardware.redact import redacted_errors
    from ..runs import Run

    run_ = Run.create("submit", cfg, run_dir, argv=argv)
    with run_.guard(), redacted_errors():  # run.json records the error already redacted
        # the context first: a submit killed after plan.json must still be able to build masks.pt
        save_selection_context(run_dir, parent, parent_info, cfg, sel, layers)
        hw_run.save()
        _print_resources(con, hw_run)  # before anything is submitted
        report = hw_run.execute(wait=not cfg["no_wait"])
    if report is None:
        run_.write_metadata(status="submitted")
        con.result(f"submitted; collect the results with: qselect hardware fetch --run-dir {run_dir}")
        return 0
    run_.finish(hardware=report["summary"])
    _print_report(con, report, run_dir)  # masks.pt was written by the run, before report.json
    return 0


def _print_resources(con, hw_run):
    """Per-problem circuit size on the device, printed before submitting."""
    con.print(f"{'problem':<12} {'qubits':>6} {'depth':>6} {'2q gates':>8} {'(1 pass)':>8} {'2q depth':>8} "
              f"{'method':>8} {'est. fidelity':>13}")
    for pid, r in hw_run.resources.items():
        before = (r.get("before") or {}).get("two_qubit_gates", "-")
        con.print(f"{pid:<12} {r.get('qubits', 0):>6} {r.get('depth', 0):>6} {r.get('two_qubit_gates', 0):>8} "
                  f"{before:>8} {r.get('two_qubit_depth', '-'):>8} {r.get('method', '-'):>8} "
                  f"{r.get('estimated_fidelity', 0.0):>13.2g}")
    est = getattr(hw_run, "usage_estimate", None) or {}
    if est:
        con.print(f"estimated quantum time: {est['total_s']:.1f} s in {est['jobs']} jobs")


def _print_report(con, report, run_dir):
    s = report["summary"]
    m, r = s.get("mean_p_optimum") or {}, s.get("mean_ratio") or {}
    fmt = lambda v: "-" if v is None else f"{v:.3g}"  # noqa: E731
    con.print(f"{s['problems']} problems on {s['backend']} in {s['jobs']} jobs: P(optimum) per shot device "
              f"{fmt(m.get('hardware'))}, noiseless simulator {fmt(m.get('simulator'))}, uniform sampling "
              f"{fmt(m.get('uniform'))}; approximation ratio device {fmt(r.get('hardware'))}, simulator "
              f"{fmt(r.get('simulator'))}, uniform {fmt(r.get('uniform'))}; device beats uniform on "
              f"{s.get('hardware_beats_uniform', 0)}/{s.get('with_baselines', 0)}")
    con.result(f"report: {run_dir}/report.md")


@_redacted
def run_status(cfg: dict, *, argv=None, given=(), extra=None) -> int:
    """``qselect hardware status``: the table of a hardware run's jobs and their states.

    Parameters
    ----------
    cfg : dict
        The resolved settings: one key per option the command declares
        (dashes as underscores), as ``qselect.cli`` resolves them from flags,
        ``--config`` and defaults.
    argv : list of str or None
        The command line, recorded in the run's ``run.json``.
    given : iterable of str
        Options set explicitly (by flag or config) rather than by default.
    extra : list of str or None
        Arguments after ``--`` (passed on where the command supports it).

    Returns
    -------
    int
        Process exit code (0 on success).

    Raises
    ------
    QSelectError
        On bad input, before the run directory is created.
    """
    from ..hardware import api

    cfg = dict(cfg)
    con = Console(cfg["quiet"], cfg["verbose"])
    rows = api.status(_need_run_dir(cfg), refresh=not cfg["no_refresh"])
    con.result(api.format_status(rows))
    return 0


@_redacted
def run_fetch(cfg: dict, *, argv=None, given=(), extra=None) -> int:
    """``qselect hardware fetch``: resume a hardware run: collect its jobs, then write the report and masks.

    Parameters
    ----------
    cfg : dict
        The resolved settings: one key per option the command declares
        (dashes as underscores), as ``qselect.cli`` resolves them from flags,
        ``--config`` and defaults.
    argv : list of str or None
        The command line, recorded in the run's ``run.json``.
    given : iterable of str
        Options set explicitly (by flag or config) rather than by default.
    extra : list of str or None
        Arguments after ``--`` (passed on where the command supports it).

    Returns
    -------
    int
        Process exit code (0 on success).

    Raises
    ------
    QSelectError
        On bad input, before the run directory is created.
    """
    from ..hardware import api

    cfg = dict(cfg)
    _check_timeout(cfg)
    con = Console(cfg["quiet"], cfg["verbose"])
    timeout = cfg["timeout"] or None
    if cfg.get("job_id") and not cfg.get("run_dir"):
        from ..hardware.runtime import get_service

        if not cfg.get("device"):
            raise QSelectError("fetching a job by id without --run-dir needs --device NAME (the IBM device it ran on)")
        counts = get_service(cfg["device"]).result(cfg["job_id"])
        for i, c in enumerate(counts):
            top = sorted(c.items(), key=lambda kv: -kv[1])[:5]
            con.result(f"PUB {i}: {sum(c.values())} shots, most frequent " + ", ".join(f"{k}:{v}" for k, v in top))
        return 0
    run_dir = _need_run_dir(cfg)
    if cfg.get("job_id"):
        payload = api.fetch(run_dir, job_id=cfg["job_id"], timeout=timeout)
        con.result(f"job {payload['job_id']}: {len(payload['counts'])} results cached for problems "
                   + ", ".join(payload["problem_ids"]))
        return 0
    from ..runs import Run

    if not (Path(run_dir) / "run.json").exists():  # a run planned from the library API: no run.json to update
        report = api.fetch(run_dir, timeout=timeout, resubmit_failed=cfg["resubmit_failed"], console=con)
    else:
        with Run.open(run_dir, owner="qselect hardware fetch") as run_, run_.guard():
            report = api.fetch(run_dir, timeout=timeout, resubmit_failed=cfg["resubmit_failed"], console=con)
            run_.finish(hardware=report["summary"])  # run.json: status finished, the summary
    _print_report(con, report, run_dir)  # masks.pt was written by the run, before report.json
    return 0


@_redacted
def run_cancel(cfg: dict, *, argv=None, given=(), extra=None) -> int:
    """``qselect hardware cancel``: cancel a hardware run's unfinished jobs.

    Parameters
    ----------
    cfg : dict
        The resolved settings: one key per option the command declares
        (dashes as underscores), as ``qselect.cli`` resolves them from flags,
        ``--config`` and defaults.
    argv : list of str or None
        The command line, recorded in the run's ``run.json``.
    given : iterable of str
        Options set explicitly (by flag or config) rather than by default.
    extra : list of str or None
        Arguments after ``--`` (passed on where the command supports it).

    Returns
    -------
    int
        Process exit code (0 on success).

    Raises
    ------
    QSelectError
        On bad input, before the run directory is created.
    """
    from ..hardware import api

    cfg = dict(cfg)
    con = Console(cfg["quiet"], cfg["verbose"])
    ids = api.cancel(_need_run_dir(cfg))
    con.result(f"cancelled {len(ids)} job(s)" + (": " + ", ".join(ids) if ids else " (none unfinished)"))
    return 0
