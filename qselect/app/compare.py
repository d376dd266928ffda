"""``qselect compare``: many selectors × sparsities × seeds → one table and plots.

Each seed trains its own parent (data split, initialisation, calibration batch
and solvers all follow the seed), so the spread over seeds is the honest one.
For every (seed, sparsity) the local problems are the same for all solvers; the
QAOA (and every other solver's) energy gap is measured against the exact
optimum of each problem when it has at most ``--exact-limit`` bits, else
against the best energy any solver found ("best-found").
"""
from __future__ import annotations

import statistics
import time

from ..errors import QSelectError
from ..solvers.exact import EXACT_SEARCH_BITS  # noqa: F401  (the --exact-limit default)
from ..validation import check_seed
from . import pipeline as pl
from .console import Console
from .settings import check_sparsity, set_threads, valid_solvers, validate_common

HELP = "compare selectors over sparsities and seeds (table + plots)"


AGG_COLUMNS = [("method", "method"), ("sparsity", "sparsity"), ("sparsity_actual", "actual"), ("runs", "seeds"),
               ("layer_error", "layer error"), ("accuracy_pruned", "pruned"),
               ("accuracy_pruned_std", "±"), ("accuracy_finetuned", "fine-tuned"), ("accuracy_finetuned_std", "±"),
               ("select_seconds", "select (s)")]


GAP_COLUMNS = [("solver", "solver"), ("reference", "reference"), ("problems", "problems"), ("optimal", "optimal"),
               ("mean_gap", "mean gap"), ("wall_time", "total time (s)")]


def validate(cfg: dict) -> dict:
    """Check the compare-specific settings (methods, sparsities, seeds, exact limit) and the common ones.

    Parameters
    ----------
    cfg : dict

    Returns
    -------
    dict
        ``cfg``, validated.

    Raises
    ------
    QSelectError
        Naming the first bad value and its option.
    """
    if not cfg["methods"]:
        raise QSelectError("no methods given; e.g. --methods magnitude,random,sa,qaoa")
    solvers = valid_solvers()
    valid = list(pl.CLASSICAL_METHODS) + list(pl.PRUNER_METHODS) + \
        [s for s in solvers if s not in pl.CLASSICAL_METHODS] + [f"q:{s}" for s in pl.CLASSICAL_METHODS]
    for m in cfg["methods"]:
        if m not in valid:
            raise QSelectError(f"unknown method {m!r}; valid methods: {', '.join(valid)} (set them with --methods)")
    if len(set(cfg["methods"])) != len(cfg["methods"]):
        raise QSelectError("a method is listed twice in --methods; list each once")
    for sp in cfg["sparsities"]:
        check_sparsity(sp, "--sparsities")
    if not cfg["seeds"]:
        raise QSelectError(f"seeds must be non-negative integers, got {cfg['seeds']}; e.g. --seeds 0,1,2")
    for s in cfg["seeds"]:
        check_seed(s, "each seed (--seeds)", allow_none=False)
    from ..solvers.exact import MAX_EXACT_BITS

    if cfg["exact_limit"] > MAX_EXACT_BITS:
        raise QSelectError(f"exact-limit {cfg['exact_limit']} is beyond exact search's limit of {MAX_EXACT_BITS} "
                           f"bits (2^n energies); use --exact-limit {MAX_EXACT_BITS} or less (0 = no exact "
                           "reference, gaps to the best energy found)")
    qs = [m for m in cfg["methods"] if m not in pl.CLASSICAL_METHODS and m not in pl.PRUNER_METHODS]
    cfg["solver"] = qs[0].removeprefix("q:") if qs else "exact"
    if "qaoa" in qs:
        cfg["solver"] = "qaoa"  # the qubit budget is checked against the most demanding solver
    validate_common(cfg)
    return pl.validate_experiment(cfg)


def run(cfg: dict, *, argv=None, given=(), extra=None) -> int:
    """``qselect compare``: methods × sparsities × seeds (one parent per seed) into one table and plots.

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

    Notes
    -----
    Writes ``results.csv`` (one row per method × sparsity × seed),
    ``problems.csv``, plots, ``summary.md`` and ``report.json`` into the run directory.
    """
    cfg = validate(dict(cfg))
    con = Console(cfg["quiet"], cfg["verbose"])
    threads = set_threads(cfg)
    from ..runs import Run

    # bad input (names, sizes, paths) fails above; data/model problems fail before the run dir exists
    first = _prepare(cfg, cfg["seeds"][0], con)
    with pl.executor_for(cfg["scheduler"], cfg["formulation"]) as executor, \
            Run.create("compare", cfg, cfg["run_dir"], argv=argv).guard() as run_:
        _compare(cfg, con, run_, first, threads, executor)
    return 0


def _compare(cfg, con, run_, first, threads, executor):
    t0 = time.perf_counter()
    rows, problem_rows, parents = [], [], []
    for i, seed in enumerate(cfg["seeds"]):
        data, parent, info, calib, layers = first if i == 0 else _prepare(cfg, seed, con)
        parents.append({"seed": seed, **info})
        for sp in cfg["sparsities"]:
            r, p = _one(cfg, con, data, parent, calib, layers, seed, sp, executor)
            rows += r
            problem_rows += p

    from ..report import format_table
    from ..report.summary import write_run_report

    table = aggregate(rows)
    con.print("\nmean test accuracy over seeds (± std):")
    con.print(format_table(table, AGG_COLUMNS))
    gaps = [r for r in problem_rows if r.get("gap") is not None]
    if gaps:
        con.print("\nenergy gap to the reference per solver (mean over problems; 0 = optimal):")
        con.print(format_table(_gap_table(gaps), GAP_COLUMNS))
    from ..report.summary import CONTROL_COLUMNS, controls_table

    if controls_table(problem_rows):  # sampled answers beside uniform random bitstrings, same shots
        con.print("\nagainst uniform random bitstrings with the same shots (mean over local problems):")
        con.print(format_table(controls_table(problem_rows), CONTROL_COLUMNS))
    parent_info = dict(parents[0])
    parent_info["test"] = {"accuracy": statistics.mean(p["test"]["accuracy"] for p in parents)}
    parent_info["seeds"] = len(parents)
    from ..report import markdown_table

    sections = [("Mean over seeds (± std)", markdown_table(table, AGG_COLUMNS))]
    if gaps:
        sections.append(("Energy gap to the reference per solver", markdown_table(_gap_table(gaps), GAP_COLUMNS)))
    write_run_report(run_, cfg, parent_info, rows, problem_rows_=problem_rows, con=con, title="qselect compare",
                     extra={"parents": parents, "aggregate": table}, sections=sections,
                     notes=[f"{len(cfg['seeds'])} seed(s), {threads} torch thread(s), "
                            f"{time.perf_counter() - t0:.1f} s."])


def _prepare(cfg, seed, con):
    c = dict(cfg, seed=seed)
    data = pl.load_data(c)
    calib = pl.calibration_inputs(data, c["calib_size"], seed)
    con.info("seed %d: preparing the parent (%s)", seed, c["model"])
    parent, info = pl.prepare_parent(c, data, progress=con.progress)
    layers = pl.hidden_layers(parent, c["layers"])
    return data, parent, info, calib, layers


def _one(cfg, con, data, parent, calib, layers, seed, sparsity, executor):
    rows, problem_rows, selections = [], [], {}
    for method in cfg["methods"]:
        con.info("seed %d, sparsity %.2f: %s", seed, sparsity, method)
        res = pl.select(method, parent, calib, cfg, sparsity=sparsity, seed=seed, layers=layers,
                        executor=executor, progress=con.progress, data=data)
        if cfg.get("refit"):  # least-squares refit of every method's kept weights
            res = pl.refit_weights(res, parent, calib, sparsity)
        weights = {**res.info.get("other", {}), **res.info.get("weights", {})}
        metrics, _ = pl.evaluate_masks(parent, res.masks, data, cfg, seed=seed,
                                       finetune_epochs=cfg["finetune_epochs"], weights=weights)
        rows.append({"method": method, "sparsity": sparsity, "seed": seed, "select_seconds": res.seconds,
                     "refit": bool(cfg.get("refit")),
                     "layer_error": pl.held_out_layer_error(parent, res.masks, data, weights), **metrics})
        for r in pl.problem_rows(res.selection, method=method):
            r.update(sparsity=sparsity, seed=seed)
            problem_rows.append(r)
        selections[method] = res.selection
    _add_references(cfg, problem_rows, selections)
    return rows, problem_rows


def _add_references(cfg, problem_rows, selections):
    """Energy gap of every solver to the exact optimum of the problem it solved.

    Up to --exact-limit bits (identical problems are searched once); larger problems are compared with the best energy
    found.
    """
    if not problem_rows:
        return
    from ..formulate.select import reference_energies

    exact, cache = {}, {}
    for method, sel in selections.items():
        if sel is None:
            continue
        for lp, e in zip(sel.problems, reference_energies(sel, cfg["exact_limit"], cache=cache)):
            if e is not None:
                exact[(method, f"{lp.layer}#{lp.index}")] = e
    best: dict[str, float] = {}
    for r in problem_rows:
        best[r["problem"]] = min(best.get(r["problem"], float("inf")), r["energy"])
    for r in problem_rows:
        if (r["method"], r["problem"]) in exact:
            r.update(reference="exact", reference_energy=exact[(r["method"], r["problem"])])
        else:
            r.update(reference="best-found", reference_energy=best[r["problem"]])
        r["gap"] = r["energy"] - r["reference_energy"]


def aggregate(rows) -> list[dict]:
    """Mean and standard deviation over seeds, per (method, sparsity).

    Parameters
    ----------
    rows : iterable of dict
        One per method × sparsity × seed, with ``accuracy_pruned``,
        ``accuracy_finetuned``, ``nll_finetuned``, ``sparsity_actual``,
        ``select_seconds`` where measured.

    Returns
    -------
    list of dict
        ``method``, ``sparsity``, ``runs``, and ``<key>`` / ``<key>_std`` for each measured key
        (sample standard deviation; 0 for a single seed).
    """
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["sparsity"]), []).append(r)
    out = []
    for (method, sp), rs in groups.items():
        a = {"method": method, "sparsity": sp, "runs": len(rs)}
        for key in ("accuracy_pruned", "accuracy_finetuned", "nll_finetuned", "sparsity_actual", "layer_error",
                    "select_seconds"):
            vals = [r[key] for r in rs if r.get(key) is not None]
            if vals:
                a[key] = statistics.mean(vals)
                a[key + "_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out.append(a)
    return out


def _gap_table(rows) -> list[dict]:
    out: dict[str, dict] = {}
    for r in rows:
        t = out.setdefault(r["method"], {"solver": r["method"], "reference": set(), "problems": 0, "optimal": 0,
                                         "gap_sum": 0.0, "wall_time": 0.0})
        t["reference"].add(r["reference"])
        t["problems"] += 1
        scale = r.get("scale") or 1.0
        t["optimal"] += int(r["gap"] <= 1e-9 * max(1.0, abs(r["reference_energy"])) or r["gap"] / scale < 1e-9)
        t["gap_sum"] += r["gap"]
        t["wall_time"] += r["wall_time"]
    for t in out.values():
        t["reference"] = "/".join(sorted(t["reference"]))
        t["mean_gap"] = t.pop("gap_sum") / t["problems"]
    return list(out.values())
