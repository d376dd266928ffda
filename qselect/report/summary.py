"""Assemble a command's report: report.json, results.csv, problems.csv, plots, summary.md."""
from __future__ import annotations

from typing import Sequence

from .plots import accuracy_by_method, accuracy_vs_sparsity, energy_gap, solver_time
from .tables import markdown_table
from .writers import write_report

RESULT_COLUMNS = ["method", "sparsity", "seed", "sparsity_actual", "accuracy_pruned", "nll_pruned", "ece_pruned",
                  "accuracy_finetuned", "nll_finetuned", "ece_finetuned", "select_seconds"]
PROBLEM_COLUMNS = ["problem", "layer", "kind", "index", "n", "k", "sparsity", "seed", "method", "solver", "energy",
                   "reference", "reference_energy", "gap", "kept", "kept_fraction", "wall_time", "scale",
                   "expectation", "p_opt", "p_opt_uniform", "p_best_of_shots", "p_best_of_shots_uniform",
                   "approx_ratio", "approx_ratio_uniform", "uniform_best_gap", "control_solves"]
#: sampled answers beside uniform random bitstrings with the same shots, one row per method
CONTROL_COLUMNS = [("method", "method"), ("problems", "problems"), ("p_opt", "P(opt)/shot"),
                   ("p_opt_uniform", "uniform"), ("p_best_of_shots", "P(best of shots opt)"),
                   ("p_best_of_shots_uniform", "uniform"), ("approx_ratio", "approx. ratio"),
                   ("approx_ratio_uniform", "uniform"), ("uniform_not_worse", "uniform best ≤ answer")]
SOLVER_TABLE_COLUMNS = [("layer", "problem set"), ("solver", "solver"), ("energy", "energy"),
                        ("gap", "gap to exact"), ("kept_fraction", "kept fraction"), ("wall_time", "wall time (s)")]
ENSEMBLE_COLUMNS = [("name", "ensemble"), ("members", "members"), ("accuracy", "accuracy"), ("nll", "NLL"),
                    ("ece", "ECE"), ("disagreement", "disagreement"), ("member_mean_accuracy", "mean member acc."),
                    ("epochs", "epochs"), ("flop_epochs", "FLOP-epochs")]


def _columns(rows: Sequence[dict], preferred: Sequence[str]) -> list[str]:
    present = {k for r in rows for k, v in r.items() if v is not None}
    cols = [c for c in preferred if c in present]
    cols += sorted(present - set(cols))
    return cols


def controls_table(problem_rows_: Sequence[dict]) -> list[dict]:
    """Per method, means over its local problems of the sampled-answer controls (empty without any).

    Parameters
    ----------
    problem_rows_ : sequence of dict
        ``problems.csv`` rows; those with ``p_opt_uniform`` or ``uniform_best_gap`` (sampled
        solvers such as QAOA, see ``qselect.solvers.controls.control_fields``) count.

    Returns
    -------
    list of dict
        One row per method: ``problems``, mean ``p_opt`` / ``p_opt_uniform`` (per-shot probability
        of the optimum: the solver's and uniform's n_opt/N), ``p_best_of_shots`` /
        ``p_best_of_shots_uniform``, ``approx_ratio`` / ``approx_ratio_uniform`` (means over the
        problems where known) and ``uniform_not_worse`` ("a/b": problems where uniform's best draw
        was at least as good as the solver's answer, of those compared).
    """
    out: dict[str, dict] = {}
    for r in problem_rows_:
        if r.get("uniform_best_gap") is None and r.get("p_opt_uniform") is None:
            continue
        t = out.setdefault(r["method"], {"method": r["method"], "problems": 0, "_vals": {}, "_cmp": [0, 0]})
        t["problems"] += 1
        for key in ("p_opt", "p_opt_uniform", "p_best_of_shots", "p_best_of_shots_uniform", "approx_ratio",
                    "approx_ratio_uniform"):
            if r.get(key) is not None:
                t["_vals"].setdefault(key, []).append(float(r[key]))
        if r.get("uniform_best_gap") is not None:
            t["_cmp"][1] += 1
            t["_cmp"][0] += int(float(r["uniform_best_gap"]) <= 1e-9 * max(1.0, abs(float(r.get("energy") or 0))))
    rows = []
    for t in out.values():
        vals, (hit, seen) = t.pop("_vals"), t.pop("_cmp")
        t.update({k: sum(v) / len(v) for k, v in vals.items()})
        t["uniform_not_worse"] = f"{hit}/{seen}"
        rows.append(t)
    return rows


def results_markdown(rows: Sequence[dict]) -> str:
    """Markdown table of per-method results (only columns some row fills).

    Parameters
    ----------
    rows : sequence of dict
        Rows with keys such as ``method``, ``sparsity``, ``seed``,
        ``accuracy_pruned``, ``accuracy_finetuned``, ``nll_finetuned``,
        ``select_seconds``.

    Returns
    -------
    str
    """
    cols = [("method", "method"), ("sparsity", "target sparsity"), ("seed", "seed"),
            ("sparsity_actual", "actual sparsity"), ("accuracy_pruned", "acc. pruned"),
            ("accuracy_finetuned", "acc. fine-tuned"), ("nll_finetuned", "NLL fine-tuned"),
            ("select_seconds", "select time (s)")]
    cols = [c for c in cols if any(r.get(c[0]) is not None for r in rows)]
    return markdown_table(rows, cols)


def write_run_report(run, cfg: dict, parent_info: dict, rows: Sequence[dict], *,
                     problem_rows_: Sequence[dict] | None = None, solver_table: Sequence[dict] | None = None,
                     ensembles: Sequence[dict] | None = None, con=None, title: str = "qselect",
                     extra: dict | None = None, notes: Sequence[str] = (),
                     sections: Sequence[tuple[str, str]] = ()) -> dict:
    """Write every report file of ``run`` and mark the run complete; returns {name: path}.

    Parameters
    ----------
    run : Run
    cfg : dict
        The resolved settings.
    parent_info : dict
    rows : sequence of dict
        Result rows (``results.csv``).
    problem_rows_ : sequence of dict or None
        ``problems.csv`` rows.
    solver_table : sequence of dict or None
    ensembles : sequence of dict or None
    con : Console or None
    title : str
    extra : dict or None
    notes : sequence of str
    sections : sequence or None
        Extra Markdown sections for ``summary.md``.

    Returns
    -------
    dict of str -> pathlib.Path
    """
    problem_rows_ = list(problem_rows_ or [])
    chance = 1.0 / parent_info["num_classes"] if parent_info.get("num_classes") else None
    dense = (parent_info.get("test") or {}).get("accuracy")
    plots = {}
    if len({r["sparsity"] for r in rows}) > 1:
        plots["accuracy_vs_sparsity.png"] = lambda p: accuracy_vs_sparsity(rows, p, chance=chance, dense=dense)
    elif rows:
        plots["accuracy.png"] = lambda p: accuracy_by_method(rows, p, chance=chance, dense=dense)
    if any(r.get("gap") is not None for r in problem_rows_):
        plots["energy_gap.png"] = lambda p: energy_gap(problem_rows_, p)
    if problem_rows_:
        plots["solver_time.png"] = lambda p: solver_time(problem_rows_, p)

    md = [f"# {title}", "", f"Run directory: `{run.path}`", ""]
    model = parent_info.get("model")
    if dense is not None:
        seeds = parent_info.get("seeds")
        md += [f"Parent: {model} on {cfg.get('dataset')}, test accuracy {dense:.4f}"
               + (f" (mean over {seeds} seeds)" if seeds else "") + f"; chance {chance:.3f}.", ""]
    for heading, text in sections:
        md += [f"## {heading}", "", text, ""]
    if solver_table:
        md += ["## Solvers on the same local problems", "", markdown_table(solver_table, SOLVER_TABLE_COLUMNS), ""]
    controls = controls_table(problem_rows_)
    if controls:
        md += ["## Sampled answers against uniform random bitstrings (same shots, same problems)", "",
               markdown_table(controls, CONTROL_COLUMNS), ""]
    if rows:
        md += ["## Pruning results (test set)", "", results_markdown(rows), ""]
    if ensembles:
        md += ["## Prune-and-Tune ensembles (test set)", "", markdown_table(ensembles, ENSEMBLE_COLUMNS), ""]
    md += [f"- {n}" for n in notes]
    if notes:
        md.append("")
    md += ["Files: report.json (everything), results.csv (one row per method x sparsity x seed)"
           + (", problems.csv (one row per local problem and solver)" if problem_rows_ else "")
           + ", config.toml (rerun with --config), run.json (versions, device, seeds), PNG plots.", ""]

    report = {"command": run.command, "config": cfg, "parent": parent_info, "results": list(rows),
              "problems": problem_rows_, **(extra or {})}
    if solver_table is not None:
        report["solver_table"] = list(solver_table)
    if ensembles is not None:
        report["ensembles"] = list(ensembles)
    tables = {"results.csv": _ordered(rows, RESULT_COLUMNS)}
    if problem_rows_:
        tables["problems.csv"] = _ordered(problem_rows_, PROBLEM_COLUMNS)
    written = write_report(run.path, report, tables=tables, plots=plots, summary="\n".join(md))
    run.finish(report="report.json")
    if con is not None:
        con.result(f"report written to {run.path} (summary.md, report.json, results.csv"
                   + (", problems.csv" if problem_rows_ else "") + ", plots)")
    return written


def _ordered(rows, preferred):
    cols = _columns(rows, preferred)
    return [{c: r.get(c) for c in cols} for r in rows]
