"""Per-problem report of a hardware run: device answer beside the noiseless simulator and the exact optimum."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import atomic_write_json, atomic_write_text
from .ledger import Ledger

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
_TOL = 1e-9


def build_report(run, hw_counts: dict[str, list[dict]], final_angles: dict[str, list]) -> dict:
    """``hw_counts``: every counts dict measured for each problem (scored with the problem itself).

    Parameters
    ----------
    run : HardwareRun
    hw_counts : dict of str -> list of dict
    final_angles : dict of str -> list of float

    Returns
    -------
    dict
    """
    from .runner import exact_optimum, score_counts

    recs = Ledger(run.run_dir).records().values()
    job_of: dict[str, list[str]] = {}
    for rec in recs:
        for pid in rec.problem_ids:
            if rec.job_id:
                job_of.setdefault(pid.split("|")[0], []).append(rec.job_id)
    rows = []
    for pid, pr in run.problems.items():
        merged: dict[str, int] = {}
        for c in hw_counts[pid]:
            for k, v in c.items():
                merged[k] = merged.get(k, 0) + int(v)
        final = score_counts(pr, hw_counts[pid][0])  # the last angles' own samples
        best = score_counts(pr, merged)  # best bitstring the device produced at all
        exact = exact_optimum(pr)
        sim = run.reference.get(pid, {})
        row = {
            "problem": pid, **{k: v for k, v in run.meta.get(pid, {}).items() if isinstance(v, (str, int, float))},
            "n": pr.n, "k": pr.k, "backend": run.service.backend_name,
            "hardware_bits": best["bits"], "hardware_energy": best["energy"],
            "hardware_mean_energy": final["mean_energy"], "hardware_shots": best["shots"],
            "simulator_bits": sim.get("bits"), "simulator_energy": sim.get("energy"),
            "simulator_expectation": sim.get("expectation"),
            "exact_bits": exact["bits"] if exact else None, "exact_energy": exact["energy"] if exact else None,
            "angles": list(final_angles.get(pid, [])),
            "jobs": sorted(set(job_of.get(pid, []))),
            **{k: run.resources.get(pid, {}).get(k) for k in ("qubits", "depth", "two_qubit_gates",
                                                               "estimated_fidelity")},
        }
        if exact:
            opt = exact["energy"]
            row["hardware_gap"] = best["energy"] - opt
            row["simulator_gap"] = (sim["energy"] - opt) if sim.get("energy") is not None else None
            hit = np.abs(final["energies"] - opt) <= _TOL * max(1.0, abs(opt))
            row["hardware_p_optimum"] = float(final["counts"][hit].sum() / final["counts"].sum())
        rows.append(row)
    with_exact = [r for r in rows if r.get("exact_energy") is not None]
    summary = {
        "backend": run.service.backend_name, "strategy": run.config.strategy, "p": run.config.p,
        "shots": run.config.shots, "problems": len(rows),
        "jobs": len({j for r in rows for j in r["jobs"]}),
        "hardware_optimal": sum(r["hardware_gap"] <= _TOL * max(1.0, abs(r["exact_energy"])) for r in with_exact),
        "simulator_optimal": sum(r["simulator_gap"] is not None
                                 and r["simulator_gap"] <= _TOL * max(1.0, abs(r["exact_energy"]))
                                 for r in with_exact),
        "with_exact": len(with_exact),
        "mean_hardware_gap": float(np.mean([r["hardware_gap"] for r in with_exact])) if with_exact else None,
        "simulated_device": bool(run.service.is_simulator),
    }
    return {"run_id": run.run_id, "summary": summary, "problems": rows}


def _fmt(v, width=10):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render_markdown(report: dict) -> str:
    """The hardware report as Markdown: a summary line, then one row per problem.

    Parameters
    ----------
    report : dict
        As written to ``report.json`` (``run_id``, ``summary``, ``problems``).

    Returns
    -------
    str
    """
    s = report["summary"]
    lines = [f"# Hardware run {report['run_id']} on {s['backend']}", "",
             f"strategy {s['strategy']}, p={s['p']}, {s['shots']} shots, {s['problems']} problems in "
             f"{s['jobs']} jobs; device best = exact optimum on {s['hardware_optimal']}/{s['with_exact']}, "
             f"noiseless simulator on {s['simulator_optimal']}/{s['with_exact']}.", "",
             "| problem | n | 2q gates | depth | device bits | device E | P(opt) | simulator E | exact E |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["problems"]:
        lines.append("| " + " | ".join(_fmt(r.get(k)) for k in (
            "problem", "n", "two_qubit_gates", "depth", "hardware_bits", "hardware_energy",
            "hardware_p_optimum", "simulator_energy", "exact_energy")) + " |")
    return "\n".join(lines) + "\n"


def write_report(run_dir, report: dict) -> Path:
    """Write ``report.json`` and ``report.md`` atomically into the run directory.

    Parameters
    ----------
    run_dir : str or os.PathLike
    report : dict

    Returns
    -------
    pathlib.Path
        The path of ``report.json``.
    """
    run_dir = Path(run_dir)
    atomic_write_json(run_dir / REPORT_JSON, report)
    atomic_write_text(run_dir / REPORT_MD, render_markdown(report))
    return run_dir / REPORT_JSON
