"""``qselect demo``: the whole toolkit on the embedded default, no flags, no network.

1. Train a small MLP on scikit-learn's digits.
2. Neuron selection for its hidden layers at 50% sparsity: one local problem per
   layer, solved by exact search, simulated annealing and QAOA (native
   simulator, decomposed into blocks of at most ``--qubits`` bits by block
   coordinate descent), plus the magnitude/random baselines on the same
   problems. A table per layer compares energy, gap to the exact optimum,
   kept fraction and wall time.
3. Masks from each solver against unstructured magnitude and random pruning of
   the same layers, before and after a short fine-tune.
4. A Prune-and-Tune ensemble whose children are QAOA-selected, beside an
   anti-random one.
5. Report files in the run directory (printed at the end).
"""
from __future__ import annotations

import time

from ..errors import QSelectError
from ..solvers.exact import EXACT_SEARCH_BITS
from . import pipeline as pl
from .console import Console
from .settings import check_positive, set_threads, validate_common

HELP = "run the whole toolkit on digits: train, select with QAOA/exact/SA, prune, fine-tune, ensemble"


#: presets; any of these keys set by flag or config wins over the preset
SIZES = {
    "default": dict(hidden=[20, 20], epochs=20, finetune_epochs=3, calib_size=256, qubits=8, children=4,
                    tune_epochs=3),
    "small": dict(hidden=[12, 12], epochs=10, finetune_epochs=1, calib_size=128, qubits=6, children=2,
                  tune_epochs=1),
}


#: solvers run on the same local problems; "exact" (whole problem) is the reference
#: for the gaps. "exact-blocks" is exact search under the same qubit budget and block
#: decomposition as QAOA: it separates the decomposition's gap from QAOA's own.
DEMO_SOLVERS = ("exact", "exact-blocks", "qaoa", "sa", "magnitude", "random")


BLOCKED = ("exact-blocks", "qaoa")


#: unstructured classical baselines, pruning the same layers' weights
BASELINES = ("magnitude", "random")


#: largest local problem the exact reference solves (2^n energies)
EXACT_LIMIT = EXACT_SEARCH_BITS


#: calibration inputs per ensemble child: each child draws its own small batch, so
#: the children's local problems (and masks) differ; with large batches the neuron
#: problems barely change and the children come out identical (measured: 256 → 1
#: distinct child of 4, 16 → 4 of 4)
CHILD_CALIB = 16


#: what the demo fixes (it is the embedded default): the built-in mlp on digits, neuron selection
FIXED = dict(model="mlp", dataset="digits", data_root=None, formulation="neuron", solver="qaoa", batch_size=64,
             lr=0.1, layers=None)


def preset_text(key: str) -> str:
    """The preset values of one setting, for help texts: ``"20,20 (default), 12,12 (small)"``.

    Parameters
    ----------
    key : str

    Returns
    -------
    str
    """
    def show(v):
        return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

    return ", ".join(f"{show(p[key])} ({name})" for name, p in SIZES.items())


def resolve(cfg: dict, given: set) -> dict:
    """Fill the demo's settings: fixed ones, then the ``--size`` preset where no flag was given.

    Parameters
    ----------
    cfg : dict
        The command's resolved settings.
    given : set of str
        Options set by flag or config.

    Returns
    -------
    dict
    """
    for key, value in FIXED.items():
        cfg.setdefault(key, value)
    if cfg["size"] not in SIZES:
        raise QSelectError(f"unknown size {cfg['size']!r}; valid sizes: {', '.join(SIZES)} (set it with --size)")
    for key, value in SIZES[cfg["size"]].items():
        if key not in given:
            cfg[key] = value
    validate_common(cfg)
    pl.validate_experiment(cfg)
    check_positive(cfg["children"], "children", "--children")
    check_positive(cfg["tune_epochs"], "tune-epochs", "--tune-epochs", minimum=0)
    if max(cfg["hidden"]) > EXACT_LIMIT:
        raise QSelectError(f"hidden widths above {EXACT_LIMIT} make the exact reference too slow for the demo; "
                           f"use --hidden with widths up to {EXACT_LIMIT}")
    return cfg


def run(cfg: dict, *, argv=None, given=(), extra=None) -> int:
    """``qselect demo``: the whole toolkit on digits, end to end.

    Train, select with QAOA/exact/SA and baselines on the same local problems, prune,
    fine-tune, ensemble.

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
    Prints the comparison tables and writes the report, ``model.pt`` and
    ``masks-<method>.pt`` into the run directory.
    """
    cfg = resolve(dict(cfg), set(given))
    con = Console(cfg["quiet"], cfg["verbose"])
    t_start = time.perf_counter()
    threads = set_threads(cfg)
    s = cfg["sparsity"]

    data = pl.load_data(cfg)
    calib = pl.calibration_inputs(data, cfg["calib_size"], cfg["seed"])
    con.info("training the parent mlp %s on %s (%d epochs)", cfg["hidden"], cfg["dataset"], cfg["epochs"])
    parent, parent_info = pl.prepare_parent(cfg, data, progress=con.progress)
    layers = pl.hidden_layers(parent, cfg["layers"])
    con.print(f"parent mlp {cfg['hidden']} on {cfg['dataset']}: test accuracy {parent_info['test']['accuracy']:.4f}")

    from ..runs import Run

    with pl.executor_for(cfg["scheduler"], cfg["formulation"]) as executor, \
            Run.create("demo", cfg, cfg["run_dir"], argv=argv).guard() as run_:
        rows, problem_rows, solver_table, ensembles, selections = _run(
            cfg, con, data, calib, parent, parent_info, layers, executor)

        from ..classical.checkpoint import save_checkpoint
        from ..classical.masks import save_masks
        from ..report.summary import write_run_report

        # model.pt beside the masks: 'qselect evaluate --model model.pt --masks masks-<method>.pt'
        meta = pl.checkpoint_meta(parent_info, cfg)
        save_checkpoint(run_.file("model.pt"), parent, meta=meta)
        for method, res in selections.items():
            save_masks(run_.file(f"masks-{method}.pt"), res.masks, meta={**meta, "method": method, "sparsity": s})
        notes = [f"Local problems: neuron selection per hidden layer ({', '.join(layers)}), keep "
                 f"{1 - s:.0%} of the units; QAOA p={cfg['p']} on the {cfg['backend']} simulator, decomposed "
                 f"into blocks of <= {cfg['qubits']} qubits (block coordinate descent from a magnitude start). "
                 "'gap to exact' = energy - exact optimum of the whole local problem (0 = optimal); "
                 "exact-blocks = exact search on the same blocks as QAOA, so qaoa - exact-blocks is QAOA's own "
                 "gap and exact-blocks - exact is the decomposition's.",
                 "Methods: magnitude/random = unstructured pruning of the same layers' weights (classical "
                 "baselines); qselect-<solver> = masks from the solved local problems (whole neurons).",
                 f"Seed {cfg['seed']}, {threads} torch thread(s); total time "
                 f"{time.perf_counter() - t_start:.1f} s."]
        write_run_report(run_, cfg, parent_info, rows, problem_rows_=problem_rows, solver_table=solver_table,
                         ensembles=ensembles, con=con, title="qselect demo", notes=notes,
                         extra={"layers": layers, "solvers": list(DEMO_SOLVERS)})
    return 0


def _run(cfg, con, data, calib, parent, parent_info, layers, executor):
    from ..report import format_table

    s, seed = cfg["sparsity"], cfg["seed"]
    # ---- local problems, solved by every solver on the same problems
    selections = {}
    for solver in DEMO_SOLVERS:
        # classical solvers take the whole local problem; QAOA (and exact-blocks) the qubit budget
        qubits = cfg["qubits"] if solver in BLOCKED else EXACT_LIMIT
        con.info("solving the local problems with %s", solver)
        selections[f"qselect-{solver}"] = pl.select(f"q:{solver.removesuffix('-blocks')}", parent, calib, cfg,
                                                    sparsity=s, seed=seed, layers=layers, executor=executor,
                                                    progress=con.progress, qubits=qubits)
    problem_rows = []
    for method, res in selections.items():
        problem_rows += pl.problem_rows(res.selection, method=method)
    exact = {r["problem"]: r["energy"] for r in problem_rows if r["method"] == "qselect-exact"}
    _check_same_problems(selections)
    for r in problem_rows:
        r.update(sparsity=s, seed=seed, reference="exact", reference_energy=exact[r["problem"]],
                 gap=r["energy"] - exact[r["problem"]])
    solver_table = sorted(_solver_table(problem_rows), key=lambda r: layers.index(r["layer"]))
    for layer in layers:
        con.print(f"\nlocal problems of {layer} ({_describe(problem_rows, layer)}):")
        con.print(format_table([r for r in solver_table if r["layer"] == layer],
                               [("solver", "solver"), ("energy", "energy"), ("gap", "gap to exact"),
                                ("kept_fraction", "kept fraction"), ("wall_time", "wall time (s)")]))

    # ---- pruning: unstructured baselines and the solvers' masks, before/after fine-tune
    methods = {m: pl.select(m, parent, calib, cfg, sparsity=s, seed=seed, layers=layers) for m in BASELINES}
    methods.update(selections)
    rows = []
    con.info("evaluating %d methods (fine-tune %d epochs each)", len(methods), cfg["finetune_epochs"])
    for name, res in methods.items():
        metrics, _ = pl.evaluate_masks(parent, res.masks, data, cfg, seed=seed,
                                       finetune_epochs=cfg["finetune_epochs"])
        rows.append({"method": name, "sparsity": s, "seed": seed, "select_seconds": res.seconds, **metrics})
    con.print("\npruning the hidden layers at sparsity {:.2f} (test accuracy; dense {:.4f}):".format(
        s, parent_info["test"]["accuracy"]))
    con.print(format_table(rows, [("method", "method"), ("sparsity_actual", "actual sparsity"),
                                  ("accuracy_pruned", "pruned"), ("accuracy_finetuned", "fine-tuned"),
                                  ("nll_finetuned", "NLL fine-tuned"), ("select_seconds", "select (s)")]))

    # ---- Prune-and-Tune ensembles: QAOA-selected children vs anti-random children
    ensembles = _ensembles(cfg, con, data, parent, parent_info, layers)
    con.print("\nPrune-and-Tune ensembles (test set):")
    con.print(format_table(ensembles, [("name", "ensemble"), ("members", "members"), ("accuracy", "accuracy"),
                                       ("nll", "NLL"), ("ece", "ECE"), ("disagreement", "disagreement"),
                                       ("distinct_children", "distinct children")]))
    return rows, problem_rows, solver_table, ensembles, selections


def _describe(rows, layer) -> str:
    r = next(r for r in rows if r["layer"] == layer)
    return f"{r['n']} units, keep {r['k']}"


def _check_same_problems(selections) -> None:
    """Every solver must have seen the very same problems, or the gaps mean nothing."""
    import numpy as np

    ref = selections["qselect-exact"].selection.problems
    rng = np.random.default_rng(0)
    for method, res in selections.items():
        for a, b in zip(ref, res.selection.problems):
            bits = rng.integers(0, 2, size=(8, a.problem.n), dtype=np.uint8)
            if a.problem.n != b.problem.n or not np.allclose(a.problem.energy(bits), b.problem.energy(bits)):
                raise RuntimeError(f"{method} solved a different local problem for {a.layer}; "
                                   "problem construction is not deterministic")


def _solver_table(problem_rows) -> list[dict]:
    """Per problem set (layer) and solver: summed energy/gap/time, overall kept fraction."""
    table: dict[tuple, dict] = {}
    for r in problem_rows:
        key = (r["layer"], r["method"])
        t = table.setdefault(key, {"layer": r["layer"], "solver": r["method"].removeprefix("qselect-"),
                                   "energy": 0.0, "gap": 0.0, "kept": 0, "bits": 0, "wall_time": 0.0,
                                   "problems": 0})
        t["energy"] += r["energy"]
        t["gap"] += r["gap"]
        t["kept"] += r["kept"]
        t["bits"] += r["n"]
        t["wall_time"] += r["wall_time"]
        t["problems"] += 1
    for t in table.values():
        t["kept_fraction"] = t["kept"] / t["bits"]
    return list(table.values())


def _ensembles(cfg, con, data, parent, parent_info, layers) -> list[dict]:
    from ..classical.data import make_loader
    from ..methods import prune_and_tune

    test = make_loader(data.test, 512)
    qaoa = pl.make_solver("qaoa", seed=cfg["seed"], backend=cfg["backend"], p=cfg["p"])
    common = dict(children=cfg["children"], sparsity=cfg["sparsity"], tune_epochs=cfg["tune_epochs"],
                  seed=cfg["seed"], batch_size=cfg["batch_size"], lr=cfg["lr"], parent_epochs=cfg["epochs"])
    out = []
    for name, kw in (("qaoa-selected", dict(method="qselect", calib_size=min(CHILD_CALIB, cfg["calib_size"]),
                                            select_options={"formulation": "neuron", "solver": qaoa,
                                                            "qubits": cfg["qubits"], "layers": layers})),
                     ("anti-random", dict(method="antirandom"))):
        con.info("Prune-and-Tune ensemble: %d %s children", cfg["children"], name)
        t0 = time.perf_counter()
        pat = prune_and_tune(parent, data.train, **common, **kw)
        m = pat.evaluate(test)
        distinct = len(pat.masks) - _duplicates(pat.masks)
        out.append({"name": name, "members": len(pat.members), "accuracy": m["accuracy"], "nll": m["nll"],
                    "ece": m["ece"], "disagreement": m.get("disagreement"),
                    "member_mean_accuracy": (m.get("member_mean") or {}).get("accuracy"),
                    "epochs": m["cost"]["epochs"], "flop_epochs": m["cost"]["flop_epochs"],
                    "distinct_children": distinct, "seconds": time.perf_counter() - t0})
    out.insert(0, {"name": "parent (dense)", "members": 1, **{k: parent_info["test"][k] for k in
                                                               ("accuracy", "nll", "ece")},
                   "epochs": cfg["epochs"], "flop_epochs": cfg["epochs"], "distinct_children": None})
    return out


def _duplicates(masks) -> int:
    import torch

    seen, dup = [], 0
    for m in masks:
        if any(m.keys() == o.keys() and all(torch.equal(m[k], o[k]) for k in m) for o in seen):
            dup += 1
        else:
            seen.append(m)
    return dup
