"""``qselect submit | status | fetch | cancel``: QAOA on IBM Quantum (or fake_<device>) with a job ledger.

submit  builds the local problems exactly as ``qselect select`` does, plans the
        circuits (angles from the native simulator by default), records every
        job in <run dir>/ledger.jsonl before waiting, and writes report.json/.md;
status  prints the table of the run's jobs and their states;
fetch   resumes an interrupted run (fetching jobs by id, never resubmitting) or
        fetches one job by id (--job-id);
cancel  cancels the run's unfinished jobs.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..errors import QSelectError
from .common import Console, add_option

log = logging.getLogger("qselect")

HELP_SUBMIT = "run the local problems' QAOA on an IBM backend or fake_<device>, with a resumable job ledger"
HELP_STATUS = "show the jobs of a hardware run and their states"
HELP_FETCH = "collect (resume) a hardware run: fetch its jobs by id and write the report"
HELP_CANCEL = "cancel the unfinished jobs of a hardware run"


def register(subparsers, add_common_options):
    from . import pipeline as pl

    p = subparsers.add_parser("submit", help=HELP_SUBMIT, description=HELP_SUBMIT + ". --backend takes an IBM "
                              "device name, least_busy, or fake_<device> (e.g. fake_manila) which runs locally "
                              "with the device's noise model and needs no account.")
    add_common_options(p)
    pl.add_experiment_options(p, finetune_epochs=0)
    g = p.add_argument_group("hardware options")
    add_option(g, "--strategy", kind="str", default="sample", metavar="S",
               help="sample: optimise angles on the simulator, only sample on the device (cheap); "
                    "spsa: the whole variational loop on the device")
    add_option(g, "--shots", kind="int", default=1024, metavar="N", help="shots per problem for the final samples")
    add_option(g, "--angles", kind="str", default="each", metavar="MODE",
               help="each: optimise angles per problem; transfer: one problem per layer donates its angles")
    add_option(g, "--spsa-iterations", kind="int", default=20, metavar="N", help="SPSA iterations (strategy spsa)")
    add_option(g, "--spsa-shots", kind="int", default=256, metavar="N", help="shots per SPSA evaluation")
    add_option(g, "--optimization-level", kind="int", default=1, metavar="L", help="transpiler optimisation level")
    add_option(g, "--max-problems", kind="int", default=0, metavar="N",
               help="send only the first N local problems to the device (0 = all)")
    add_option(g, "--no-wait", kind="bool", default=False,
               help="submit and return; collect later with `qselect fetch --run-dir DIR`")
    add_option(g, "--timeout", kind="float", default=0.0, metavar="SEC",
               help="stop waiting after SEC seconds (0 = wait); the run resumes with fetch")
    p.set_defaults(func=run_submit)

    s = subparsers.add_parser("status", help=HELP_STATUS, description=HELP_STATUS + ".")
    add_common_options(s)
    add_option(s, "--no-refresh", kind="bool", default=False, help="show the ledger only, without asking the service")
    s.set_defaults(func=run_status)

    f = subparsers.add_parser("fetch", help=HELP_FETCH, description=HELP_FETCH + ".")
    add_common_options(f)
    add_option(f, "--job-id", kind="str", default=None, metavar="ID",
               help="fetch only this job (of the run dir's ledger, or with --backend and no run dir: print its counts)")
    add_option(f, "--resubmit-failed", kind="bool", default=False,
               help="submit again the problems of jobs that ended in ERROR or CANCELLED")
    add_option(f, "--timeout", kind="float", default=0.0, metavar="SEC", help="stop waiting after SEC seconds (0 = wait)")
    f.set_defaults(func=run_fetch)

    c = subparsers.add_parser("cancel", help=HELP_CANCEL, description=HELP_CANCEL + ".")
    add_common_options(c)
    c.set_defaults(func=run_cancel)
    return p


def _need_run_dir(cfg) -> str:
    if not cfg.get("run_dir"):
        raise QSelectError("--run-dir is required: the hardware run's folder (the one given to `qselect submit`)")
    return cfg["run_dir"]


def _config(cfg):
    from ..hardware.runner import HardwareConfig

    return HardwareConfig(backend=cfg["backend"], strategy=cfg["strategy"], p=int(cfg["p"]), shots=int(cfg["shots"]),
                          angles=cfg["angles"], seed=int(cfg["seed"]), optimization_level=int(cfg["optimization_level"]),
                          spsa_iterations=int(cfg["spsa_iterations"]), spsa_shots=int(cfg["spsa_shots"])).validate()


def validate_submit(cfg: dict) -> dict:
    from . import common as cm
    from . import pipeline as pl

    if cfg["backend"] in cm.QAOA_BACKENDS:
        raise QSelectError(f"submit runs on a device, not the {cfg['backend']!r} simulator: use --backend with an "
                           "IBM device name, least_busy, or fake_<device> (e.g. fake_manila, no account needed); "
                           "for simulators use `qselect select --solver qaoa`")
    cm.check_sparsity(cfg["sparsity"])
    cm.check_choice(cfg["formulation"], cm.FORMULATIONS, "formulation", "--formulation")
    cm.check_positive(cfg["qubits"], "the qubit budget", "--qubits")
    if cfg["seed"] < 0:
        raise QSelectError(f"seed must be a non-negative integer, got {cfg['seed']}; set it with --seed")
    cm.check_model(cfg["model"])
    cfg["dataset"] = cm.check_dataset(cfg["dataset"], cfg.get("data_root"))
    if cfg["max_problems"] < 0:
        raise QSelectError("--max-problems must be 0 (all) or a positive number")
    _config(cfg)
    return pl.validate_experiment(cfg)


def local_problems(selection, qubits: int) -> tuple[dict, dict]:
    """Hardware problems from a Selection: each local problem, or ≤ ``qubits``-bit blocks of it.

    A local problem larger than the budget is split into consecutive blocks,
    each with the other bits fixed at the classical solution (one block
    coordinate step from it), so every hardware problem fits the budget.
    """
    problems, meta = {}, {}
    for i, (lp, res) in enumerate(zip(selection.problems, selection.results)):
        base = f"{lp.layer}#{lp.index}"
        if lp.n <= qubits:
            pid = f"p{i:04d}"
            problems[pid] = lp.problem
            meta[pid] = {"layer": lp.layer, "kind": lp.kind, "index": int(lp.index), "local_problem": base}
            continue
        for b, start in enumerate(range(0, lp.n, qubits)):
            block = list(range(start, min(start + qubits, lp.n)))
            fixed = {j: int(res.bits[j]) for j in range(lp.n) if j not in block}
            pid = f"p{i:04d}b{b:02d}"
            problems[pid] = lp.problem.fix(fixed)
            meta[pid] = {"layer": lp.layer, "kind": lp.kind, "index": int(lp.index), "local_problem": base,
                         "block": f"{block[0]}-{block[-1]}"}
    return problems, meta


def run_submit(args) -> int:
    from . import pipeline as pl
    cfg = validate_submit(dict(args.resolved))
    con = Console(cfg["quiet"], cfg["verbose"])
    run_dir = _need_run_dir(cfg)
    from ..hardware.runner import PLAN_FILE

    if (Path(run_dir) / PLAN_FILE).exists():
        raise QSelectError(f"{run_dir} already holds a hardware run; resume it with `qselect fetch --run-dir "
                           f"{run_dir}` or choose a new --run-dir")
    hw_config = _config(cfg)
    from ..hardware.runtime import get_service

    # Account/backend problems surface before any training starts.
    service = get_service(cfg["backend"], run_dir=run_dir, min_qubits=int(cfg["qubits"]), seed=cfg["seed"])
    data = pl.load_data(cfg)
    calib = pl.calibration_inputs(data, cfg["calib_size"], cfg["seed"])
    con.info("preparing the model (%s)", cfg["model"])
    parent, _ = pl.prepare_parent(cfg, data, progress=con.progress)
    layers = pl.hidden_layers(parent, cfg["layers"])
    from ..formulate import select_masks

    # The classical solution is the reference (and the fixed context of blocks).
    sel = select_masks(parent, calib, formulation=cfg["formulation"], sparsity=cfg["sparsity"], solver="exact"
                       if cfg["qubits"] <= 20 else "sa", qubits=cfg["qubits"], layers=layers, seed=cfg["seed"])
    problems, meta = local_problems(sel, int(cfg["qubits"]))
    if cfg["max_problems"]:
        keep = list(problems)[: cfg["max_problems"]]
        problems, meta = {k: problems[k] for k in keep}, {k: meta[k] for k in keep}
    con.info("%d problems for %s (strategy %s)", len(problems), service.backend_name, hw_config.strategy)
    from ..hardware.runner import HardwareRun
    from ..runs import Run

    run_ = Run.create("submit", cfg, run_dir, argv=getattr(args, "argv", None))
    try:
        hw_run = HardwareRun.create(run_dir, service, hw_config, problems, meta=meta,
                                    timeout=cfg["timeout"] or None)
        _print_resources(con, hw_run)  # before anything is submitted
        report = hw_run.execute(wait=not cfg["no_wait"])
    except BaseException as exc:
        run_.fail(f"{type(exc).__name__}: {exc}")
        raise
    if report is None:
        run_.write_metadata(status="submitted")
        con.result(f"submitted; collect the results with: qselect fetch --run-dir {run_dir}")
        return 0
    run_.finish(hardware=report["summary"])
    _print_report(con, report, run_dir)
    return 0


def _print_resources(con, hw_run):
    """Per-problem circuit size on the device, printed before submitting."""
    con.print(f"{'problem':<12} {'qubits':>6} {'depth':>6} {'2q gates':>8} {'est. fidelity':>13}")
    for pid, r in hw_run.resources.items():
        con.print(f"{pid:<12} {r.get('qubits', 0):>6} {r.get('depth', 0):>6} {r.get('two_qubit_gates', 0):>8} "
                  f"{r.get('estimated_fidelity', 0.0):>13.2g}")


def _print_report(con, report, run_dir):
    s = report["summary"]
    con.print(f"{s['problems']} problems on {s['backend']} in {s['jobs']} jobs: device best = exact optimum on "
              f"{s['hardware_optimal']}/{s['with_exact']}, noiseless simulator on {s['simulator_optimal']}/"
              f"{s['with_exact']}")
    con.result(f"report: {run_dir}/report.md")


def run_status(args) -> int:
    from ..hardware import api

    cfg = dict(args.resolved)
    con = Console(cfg["quiet"], cfg["verbose"])
    rows = api.status(_need_run_dir(cfg), refresh=not cfg["no_refresh"])
    con.result(api.format_status(rows))
    return 0


def run_fetch(args) -> int:
    from ..hardware import api

    cfg = dict(args.resolved)
    con = Console(cfg["quiet"], cfg["verbose"])
    timeout = cfg["timeout"] or None
    if cfg.get("job_id") and not cfg.get("run_dir"):
        from ..hardware.runtime import get_service

        if cfg["backend"] in ("native", "aer", "statevector", "pennylane"):
            raise QSelectError("fetching a job by id without --run-dir needs --backend NAME (the IBM backend it ran on)")
        counts = get_service(cfg["backend"]).result(cfg["job_id"])
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
    report = api.fetch(run_dir, timeout=timeout, resubmit_failed=cfg["resubmit_failed"])
    _print_report(con, report, run_dir)
    return 0


def run_cancel(args) -> int:
    from ..hardware import api

    cfg = dict(args.resolved)
    con = Console(cfg["quiet"], cfg["verbose"])
    ids = api.cancel(_need_run_dir(cfg))
    con.result(f"cancelled {len(ids)} job(s)" + (": " + ", ".join(ids) if ids else " (none unfinished)"))
    return 0
