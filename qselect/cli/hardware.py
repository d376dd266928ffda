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

import functools
import json
import logging
from pathlib import Path

import numpy as np

from ..errors import QSelectError
from .common import QAOA_BACKENDS, Console, add_option

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
               help="stop waiting after SEC seconds in all (0 = wait); the run resumes with fetch")
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
    add_option(f, "--timeout", kind="float", default=0.0, metavar="SEC", help="stop waiting after SEC seconds in all (0 = wait)")
    f.set_defaults(func=run_fetch)

    c = subparsers.add_parser("cancel", help=HELP_CANCEL, description=HELP_CANCEL + ".")
    add_common_options(c)
    c.set_defaults(func=run_cancel)
    return p


def _redacted(handler):
    """Run a command so no exception text it prints or records can carry the IBM token."""
    @functools.wraps(handler)
    def run(args):
        from ..hardware.redact import redacted_errors

        with redacted_errors():
            return handler(args)

    return run


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
            meta[pid] = {"layer": lp.layer, "kind": lp.kind, "index": int(lp.index), "local_problem": base,
                         "local_index": i}
            continue
        for b, start in enumerate(range(0, lp.n, qubits)):
            block = list(range(start, min(start + qubits, lp.n)))
            fixed = {j: int(res.bits[j]) for j in range(lp.n) if j not in block}
            pid = f"p{i:04d}b{b:02d}"
            problems[pid] = lp.problem.fix(fixed)
            meta[pid] = {"layer": lp.layer, "kind": lp.kind, "index": int(lp.index), "local_problem": base,
                         "local_index": i, "block": f"{block[0]}-{block[-1]}", "block_start": block[0],
                         "block_stop": block[-1] + 1}
    return problems, meta


@_redacted
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
    parent, parent_info = pl.prepare_parent(cfg, data, progress=con.progress)
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

    from ..hardware.redact import redacted_errors

    run_ = Run.create("submit", cfg, run_dir, argv=getattr(args, "argv", None))
    with run_.guard(), redacted_errors():  # run.json records the error already redacted
        hw_run = HardwareRun.create(run_dir, service, hw_config, problems, meta=meta,
                                    timeout=cfg["timeout"] or None)
        save_selection_context(run_dir, parent, parent_info, cfg, sel, layers)
        _print_resources(con, hw_run)  # before anything is submitted
        report = hw_run.execute(wait=not cfg["no_wait"])
    if report is None:
        run_.write_metadata(status="submitted")
        con.result(f"submitted; collect the results with: qselect fetch --run-dir {run_dir}")
        return 0
    run_.finish(hardware=report["summary"])
    _print_report(con, report, run_dir)
    write_hardware_masks(run_dir, report, con)
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


@_redacted
def run_status(args) -> int:
    from ..hardware import api

    cfg = dict(args.resolved)
    con = Console(cfg["quiet"], cfg["verbose"])
    rows = api.status(_need_run_dir(cfg), refresh=not cfg["no_refresh"])
    con.result(api.format_status(rows))
    return 0


@_redacted
def run_fetch(args) -> int:
    from ..hardware import api

    cfg = dict(args.resolved)
    con = Console(cfg["quiet"], cfg["verbose"])
    timeout = cfg["timeout"] or None
    if cfg.get("job_id") and not cfg.get("run_dir"):
        from ..hardware.runtime import get_service

        if cfg["backend"] in QAOA_BACKENDS:
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
    write_hardware_masks(run_dir, report, con)
    return 0


@_redacted
def run_cancel(args) -> int:
    from ..hardware import api

    cfg = dict(args.resolved)
    con = Console(cfg["quiet"], cfg["verbose"])
    ids = api.cancel(_need_run_dir(cfg))
    con.result(f"cancelled {len(ids)} job(s)" + (": " + ", ".join(ids) if ids else " (none unfinished)"))
    return 0


# --------------------------------------------------------------------------- masks from the device's answers

CONTEXT_JSON = "local_problems.json"
CONTEXT_NPZ = "local_problems.npz"
MODEL_FILE = "model.pt"


def save_selection_context(run_dir, parent, parent_info, cfg, sel, layers) -> None:
    """What `fetch` needs to turn device answers into masks later, without the original process:
    the parent (model.pt), every local problem, where its bits land, and its classical answer."""
    from ..classical.checkpoint import save_checkpoint
    from ..hardware.runner import save_problems
    from ..io import atomic_write_json

    meta = {"model": parent_info["model"], "model_kwargs": parent_info["model_kwargs"],
            "input_shape": parent_info["input_shape"], "num_classes": parent_info["num_classes"],
            "dataset": cfg["dataset"], "seed": cfg["seed"]}
    save_checkpoint(Path(run_dir) / MODEL_FILE, parent, meta=meta)
    save_problems(Path(run_dir) / CONTEXT_NPZ, {f"l{i:04d}": lp.problem for i, lp in enumerate(sel.problems)})
    atomic_write_json(Path(run_dir) / CONTEXT_JSON, {"layers": list(layers), "problems": [
        {"layer": lp.layer, "kind": lp.kind, "index": int(lp.index), "param": lp.param,
         "k": None if lp.k is None else int(lp.k), "positions": np.asarray(lp.positions).tolist(),
         "zero": None if lp.zero is None else np.asarray(lp.zero).tolist(),
         "classical_bits": "".join(str(int(b)) for b in res.bits)}
        for lp, res in zip(sel.problems, sel.results)]})


def assemble_local_bits(problem, classical_bits, rows) -> tuple[np.ndarray, dict]:
    """The device's answer for one local problem.

    A problem that ran whole takes the device's best bitstring. A problem run
    as blocks (each solved with the rest fixed at the classical answer) takes
    each block's device bits in turn when that does not raise the full
    problem's energy: a block-coordinate step from the classical answer.
    """
    bits = np.array([int(c) for c in classical_bits], dtype=np.uint8)
    e_classical = float(problem.energy(bits))
    accepted = 0
    for row in rows:
        hw = np.array([int(c) for c in row["hardware_bits"]], dtype=np.uint8)
        if "block_start" not in row:
            bits, accepted = hw, 1
            continue
        trial = bits.copy()
        trial[row["block_start"]:row["block_stop"]] = hw
        if problem.energy(trial) <= problem.energy(bits) + 1e-12:
            bits, accepted = trial, accepted + 1
    return bits, {"classical_energy": e_classical, "hardware_energy": float(problem.energy(bits)),
                  "blocks": len(rows), "accepted": accepted}


def write_hardware_masks(run_dir, report, con=None):
    """masks.pt from the device's answers (classical answers where a problem was not sent)."""
    from ..classical.checkpoint import load_checkpoint
    from ..classical.masks import mask_sparsity, save_masks
    from ..classical.models import build_model
    from ..formulate import LocalProblem, build_masks
    from ..hardware.runner import load_problems
    from ..io import atomic_write_json
    from ..solvers.base import make_result

    run_dir = Path(run_dir)
    if not (run_dir / CONTEXT_JSON).exists():
        return None  # a run planned from the library API: no model to mask
    ctx = json.loads((run_dir / CONTEXT_JSON).read_text(encoding="utf-8"))
    payload = load_checkpoint(run_dir / MODEL_FILE)
    meta = payload["meta"]
    model = build_model(meta["model"], tuple(meta["input_shape"]), meta["num_classes"], seed=meta.get("seed", 0),
                        **meta.get("model_kwargs", {}))
    load_checkpoint(run_dir / MODEL_FILE, model)
    ids = [f"l{i:04d}" for i in range(len(ctx["problems"]))]
    full = load_problems(run_dir / CONTEXT_NPZ, ids)
    rows_of: dict[int, list] = {}
    for row in report["problems"]:
        if "local_index" in row:
            rows_of.setdefault(int(row["local_index"]), []).append(row)
    lps, results, summary = [], [], []
    for i, (lid, info) in enumerate(zip(ids, ctx["problems"])):
        zero = None if info["zero"] is None else np.asarray(info["zero"], dtype=np.int64)
        lps.append(LocalProblem(full[lid], info["layer"], info["kind"], info["index"],
                                np.asarray(info["positions"], dtype=np.int64), info["k"], info["param"], zero))
        bits, s = assemble_local_bits(full[lid], info["classical_bits"], rows_of.get(i, []))
        results.append(make_result(full[lid], bits, "hardware" if i in rows_of else "classical"))
        summary.append({"local_problem": f"{info['layer']}#{info['index']}", "sent": i in rows_of, **s})
    masks = build_masks(model, lps, results, ctx["layers"])
    save_masks(run_dir / "masks.pt", masks, meta={**meta, "solver": f"qaoa@{report['summary']['backend']}",
                                                  "source": "hardware run " + report["run_id"]})
    sent = [r for r in summary if r["sent"]]
    atomic_write_json(run_dir / "masks_summary.json", {"problems": summary, "sent": len(sent),
                                                       "sparsity": mask_sparsity(masks)["overall"]})
    if con is not None:
        worse = sum(r["hardware_energy"] > r["classical_energy"] + 1e-9 * max(1.0, abs(r["classical_energy"]))
                    for r in sent)
        con.print(f"masks.pt: device answers for {len(sent)}/{len(summary)} local problems "
                  f"({worse} worse than the classical answer)")
    return run_dir / "masks.pt"
