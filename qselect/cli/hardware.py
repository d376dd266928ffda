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

from ..app import hardware as app
from .common import (
    add_model_options,
    add_option,
    add_output_options,
    add_run_options,
    add_selection_options,
)


def register(subparsers):
    """``qselect hardware {submit,status,fetch,cancel}``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction

    Returns
    -------
    argparse.ArgumentParser
    """
    hw = subparsers.add_parser("hardware", help="QAOA on IBM Quantum devices (or fake_<device>) with a job ledger",
                               description=__doc__.split("\n\n", 1)[1])
    verbs = hw.add_subparsers(dest="verb", metavar="VERB", parser_class=type(hw))

    p = verbs.add_parser("submit", help=app.HELP_SUBMIT, description=app.HELP_SUBMIT + ". --device takes an IBM "
                         "device name, least_busy, or fake_<device> (e.g. fake_manila) which runs locally "
                         "with the device's noise model and needs no account.")
    add_model_options(p)
    add_selection_options(p, solver=False, simulator=False)
    g = p.add_argument_group("device")
    add_option(g, "--device", kind="str", default=None, metavar="NAME",
               help="IBM device name, least_busy, or fake_<device> (e.g. fake_manila, no account needed)")
    add_option(g, "--strategy", kind="str", default="sample", metavar="S",
               help="sample: optimise angles on the simulator, only sample on the device (cheap); "
                    "spsa: the whole variational loop on the device")
    add_option(g, "--shots", kind="int", default=1024, metavar="N", help="shots per problem for the final samples")
    add_option(g, "--angles", kind="str", default="each", metavar="MODE",
               help="each: optimise angles per problem; transfer: one problem per layer donates its angles")
    add_option(g, "--spsa-iterations", kind="int", default=20, metavar="N", help="SPSA iterations (strategy spsa)")
    add_option(g, "--spsa-shots", kind="int", default=256, metavar="N", help="shots per SPSA evaluation")
    add_option(g, "--optimization-level", kind="int", default=3, metavar="L", help="transpiler optimisation level")
    c = p.add_argument_group("compilation and error suppression")
    add_option(c, "--compile", kind="str", default="auto", metavar="M", choices=("auto", "swap", "generic", "single"),
               help="auto: keep the better of a swap strategy on the best line of the device and generic routing; "
                    "swap; generic; single (one pass, one seed)")
    add_option(c, "--transpile-seeds", kind="int", default=5, metavar="N",
               help="transpiler seeds tried per circuit (the best by estimated fidelity is kept)")
    add_option(c, "--fractional-gates", kind="bool", default=False,
               help="use Heron fractional RZZ/RX gates (angles bound before transpiling; needs --no-twirl-gates)")
    add_option(c, "--dynamical-decoupling", kind="str", default="XY4", metavar="SEQ",
               choices=("none", "XX", "XpXm", "XY4"), help="dynamical decoupling sequence: XY4, XpXm, XX or none")
    add_option(c, "--no-twirl-gates", kind="bool", default=False, help="turn off Pauli twirling of 2-qubit gates")
    add_option(c, "--twirl-measure", kind="bool", default=False, help="twirl measurements too")
    add_option(c, "--primitive", kind="str", default="executor", metavar="P", choices=("executor", "legacy"),
               help="executor: client-side sampler (qiskit-ibm-runtime >= 0.50); legacy: server-side SamplerV2")
    add_option(c, "--execution-mode", kind="str", default="auto", metavar="M",
               choices=("auto", "batch", "session", "job"),
               help="auto: Batch for several jobs; session: a Session for --strategy spsa (not on the Open Plan)")
    add_option(c, "--max-execution-time", kind="int", default=0, metavar="SEC",
               help="cap on each job's quantum seconds (checked against the estimate before submitting; 0 = none)")
    add_option(c, "--open-plan", kind="bool", default=False,
               help="Open Plan account: no Sessions, Batches split so none outlives 10 minutes, budget warning")
    add_option(g, "--max-problems", kind="int", default=0, metavar="N",
               help="send only the first N local problems to the device (0 = all)")
    add_option(g, "--no-wait", kind="bool", default=False,
               help="submit and return; collect later with `qselect hardware fetch --run-dir DIR`")
    add_option(g, "--timeout", kind="float", default=0.0, metavar="SEC",
               help="stop waiting after SEC seconds in all (0 = wait); the run resumes with fetch")
    add_run_options(p, run_dir_help="the hardware run's folder (required)")
    add_output_options(p)
    p.set_defaults(func=app.run_submit)

    s = verbs.add_parser("status", help=app.HELP_STATUS, description=app.HELP_STATUS + ".")
    add_option(s, "--no-refresh", kind="bool", default=False, help="show the ledger only, without asking the service")
    add_run_options(s, seed=False, threads=False, run_dir_help="the hardware run's folder (required)")
    add_output_options(s)
    s.set_defaults(func=app.run_status)

    f = verbs.add_parser("fetch", help=app.HELP_FETCH, description=app.HELP_FETCH + ".")
    add_option(f, "--job-id", kind="str", default=None, metavar="ID",
               help="fetch only this job (of the run dir's ledger, or with --device and no run dir: print its counts)")
    add_option(f, "--device", kind="str", default=None, metavar="NAME",
               help="the IBM device a job ran on (only with --job-id and no --run-dir)")
    add_option(f, "--resubmit-failed", kind="bool", default=False,
               help="submit again the problems of jobs that ended in ERROR or CANCELLED")
    add_option(f, "--timeout", kind="float", default=0.0, metavar="SEC",
               help="stop waiting after SEC seconds in all (0 = wait)")
    add_run_options(f, seed=False, threads=False, run_dir_help="the hardware run's folder")
    add_output_options(f)
    f.set_defaults(func=app.run_fetch)

    c = verbs.add_parser("cancel", help=app.HELP_CANCEL, description=app.HELP_CANCEL + ".")
    add_run_options(c, seed=False, threads=False, run_dir_help="the hardware run's folder (required)")
    add_output_options(c)
    c.set_defaults(func=app.run_cancel)
    return hw
