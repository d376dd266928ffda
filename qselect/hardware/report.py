"""Per-problem report of a hardware run: device answer beside the noiseless simulator and the exact optimum."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import atomic_write_json, atomic_write_text
from .ledger import Ledger

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
_TOL = 1e-9


def baselines(problem, angles, p: int, mixer: str, shots: int, max_bits: int = 24) -> dict | None:
    """What the noiseless simulator (at ``angles``) and uniform random sampling achieve, exactly.

    With ``N`` candidate bitstrings (``2^n``, or ``C(n, k)`` under the XY
    mixer, which never leaves weight ``k``) of which ``n_opt`` are optimal,
    uniform sampling finds an optimum in one shot with probability
    ``n_opt / N`` and at least once in ``s`` shots with ``1 − (1 − n_opt/N)^s``;
    the noiseless simulator with probability ``P = Σ_opt |ψ(x)|²`` per shot
    and ``1 − (1 − P)^s`` in ``s``. The approximation ratio of a mean energy
    ``Ē`` is ``(E_max − Ē) / (E_max − E_min)`` over the candidates (1 = every
    sample optimal, 0 = every sample worst; uniform sampling scores
    ``(E_max − mean) / (E_max − E_min)``).

    Parameters
    ----------
    problem : Problem
    angles : array-like
        ``[γ_1..γ_p, β_1..β_p]`` the device ran (for the cost divided by ``problem.scale()``).
    p : int
    mixer : {"x", "xy"}
    shots : int
    max_bits : int
        Problems above this size get no baselines (None).

    Returns
    -------
    dict or None
        ``n_candidates``, ``n_optimal``, ``e_min``, ``e_max``, ``uniform_p_optimum``,
        ``uniform_best_of_shots``, ``uniform_mean_energy``, ``uniform_ratio``,
        ``simulator_p_optimum``, ``simulator_best_of_shots``, ``simulator_mean_energy``, ``simulator_ratio``.

    References
    ----------
    Farhi, Goldstone & Gutmann (2014), arXiv:1411.4028 (approximation ratio of QAOA).
    """
    from ..problems.bits import popcounts
    from ..solvers.qaoa.native import NumpyQAOA

    n = problem.n
    if n > max_bits:
        return None
    cv = np.asarray(problem.cost_vector(), dtype=float)
    k = problem.k if mixer == "xy" else None
    feasible = np.ones(cv.size, dtype=bool) if k is None else popcounts(n) == k
    cand = cv[feasible]
    e_min, e_max = float(cand.min()), float(cand.max())
    tol = _TOL * max(1.0, abs(e_min))
    opt = feasible & (np.abs(cv - e_min) <= tol)
    n_opt, n_cand = int(opt.sum()), int(feasible.sum())
    span = e_max - e_min

    def ratio(mean):
        return 1.0 if span <= tol else float((e_max - mean) / span)

    p_uni = n_opt / n_cand
    out = {"n_candidates": n_cand, "n_optimal": n_opt, "e_min": e_min, "e_max": e_max,
           "uniform_p_optimum": p_uni, "uniform_best_of_shots": float(1.0 - (1.0 - p_uni) ** shots),
           "uniform_mean_energy": float(cand.mean()), "uniform_ratio": ratio(float(cand.mean()))}
    if angles is not None and len(angles) == 2 * p:
        engine = NumpyQAOA(cv / problem.scale(), p, mixer=mixer, k=k)
        probs = np.asarray(engine.probabilities(np.asarray(angles, dtype=float)), dtype=float)
        probs = probs / probs.sum()
        p_sim = float(min(1.0, probs[opt].sum()))
        mean = float(probs @ cv)
        out.update({"simulator_p_optimum": p_sim, "simulator_best_of_shots": float(1.0 - (1.0 - p_sim) ** shots),
                    "simulator_mean_energy": mean, "simulator_ratio": ratio(mean)})
    return out


def build_report(run, hw_counts: dict[str, list[dict]], final_angles: dict[str, list]) -> dict:
    """``hw_counts``: every counts dict measured for each problem (scored with the problem itself).

    Each problem's row puts the device's probability of an optimal sample, its
    mean-energy approximation ratio and whether the best of its shots was
    optimal beside what the noiseless simulator (same angles, same shots) and
    uniform random sampling (same shots) achieve (see ``baselines``).

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
    usage = _job_usage(run.run_dir, recs)
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
        res = run.resources.get(pid, {})
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
            **{k: res.get(k) for k in ("qubits", "depth", "two_qubit_gates", "two_qubit_depth",
                                       "estimated_fidelity", "method")},
            "two_qubit_gates_before": (res.get("before") or {}).get("two_qubit_gates"),
        }
        if exact:
            opt = exact["energy"]
            row["hardware_gap"] = best["energy"] - opt
            row["simulator_gap"] = (sim["energy"] - opt) if sim.get("energy") is not None else None
            hit = np.abs(final["energies"] - opt) <= _TOL * max(1.0, abs(opt))
            row["hardware_p_optimum"] = float(final["counts"][hit].sum() / final["counts"].sum())
            row["hardware_best_is_optimal"] = bool(hit.any())
            base = baselines(pr, final_angles.get(pid), run.config.p, run.config.mixer, final["shots"])
            if base:
                row.update(base)
                span = base["e_max"] - base["e_min"]
                row["hardware_ratio"] = (1.0 if span <= _TOL * max(1.0, abs(base["e_min"]))
                                         else float((base["e_max"] - final["mean_energy"]) / span))
        rows.append(row)
    with_exact = [r for r in rows if r.get("exact_energy") is not None]
    with_base = [r for r in rows if r.get("uniform_p_optimum") is not None]

    def mean(key, rs):
        vals = [r[key] for r in rs if r.get(key) is not None]
        return float(np.mean(vals)) if vals else None

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
        # the honest comparison: per-shot P(optimum) and approximation ratio against uniform sampling
        "with_baselines": len(with_base),
        "hardware_beats_uniform": sum(r["hardware_p_optimum"] > r["uniform_p_optimum"] for r in with_base),
        "uniform_expected_optimal": float(sum(r["uniform_best_of_shots"] for r in with_base)),
        "mean_p_optimum": {"hardware": mean("hardware_p_optimum", with_base),
                           "simulator": mean("simulator_p_optimum", with_base),
                           "uniform": mean("uniform_p_optimum", with_base)},
        "mean_ratio": {"hardware": mean("hardware_ratio", with_base), "simulator": mean("simulator_ratio", with_base),
                       "uniform": mean("uniform_ratio", with_base)},
        "usage_s": usage, "usage_estimate_s": (getattr(run, "usage_estimate", None) or {}).get("total_s"),
        "sampler_options": run.config.sampler_options() if hasattr(run.config, "sampler_options") else {},
        "simulated_device": bool(run.service.is_simulator),
    }
    return {"run_id": run.run_id, "summary": summary, "problems": rows}


def _job_usage(run_dir, recs) -> float | None:
    """Quantum seconds the service reported, summed over the run's cached jobs (None if none reported)."""
    led = Ledger(run_dir)
    total, seen = 0.0, False
    for rec in recs:
        if not rec.job_id or not rec.has_result:
            continue
        payload = led.load_result(rec.job_id) or {}
        if payload.get("usage_s") is not None:
            total += float(payload["usage_s"])
            seen = True
    return total if seen else None


def _fmt(v, width=10):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render_markdown(report: dict) -> str:
    """Render the hardware report as Markdown.

    Parameters
    ----------
    report : dict

    Returns
    -------
    str
    """
    s = report["summary"]
    m, r = s.get("mean_p_optimum", {}), s.get("mean_ratio", {})
    lines = [f"# Hardware run {report['run_id']} on {s['backend']}", "",
             f"strategy {s['strategy']}, p={s['p']}, {s['shots']} shots, {s['problems']} problems in "
             f"{s['jobs']} jobs" + (" (a noisy local model of the device, not the device)"
                                    if s.get("simulated_device") else "") + ".", ""]
    if s.get("with_baselines"):
        lines += [f"Per-shot probability of an optimal sample, mean over {s['with_baselines']} problems: device "
                  f"{_fmt(m.get('hardware'))}, noiseless simulator {_fmt(m.get('simulator'))}, uniform random "
                  f"sampling {_fmt(m.get('uniform'))}; mean-energy approximation ratio: device "
                  f"{_fmt(r.get('hardware'))}, simulator {_fmt(r.get('simulator'))}, uniform {_fmt(r.get('uniform'))}. "
                  f"The device's P(opt) beats uniform sampling on {s['hardware_beats_uniform']}/{s['with_baselines']}. "
                  f"(Best-of-shots: the device's best sample is optimal on {s['hardware_optimal']}/{s['with_exact']}, "
                  f"which uniform sampling with the same shots would achieve on "
                  f"{s['uniform_expected_optimal']:.1f} on average.)", ""]
    if s.get("usage_s") is not None or s.get("usage_estimate_s") is not None:
        lines += [f"Quantum time: estimated {_fmt(s.get('usage_estimate_s'))} s, reported {_fmt(s.get('usage_s'))} s.",
                  ""]
    lines += ["| problem | n | 2q gates (before) | 2q depth | P(opt) device | P(opt) simulator | P(opt) uniform | "
              "ratio device | ratio simulator | ratio uniform | device E | exact E |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["problems"]:
        gates = f"{_fmt(row.get('two_qubit_gates'))} ({_fmt(row.get('two_qubit_gates_before'))})"
        cells = [_fmt(row.get("problem")), _fmt(row.get("n")), gates] + [_fmt(row.get(k)) for k in (
            "two_qubit_depth", "hardware_p_optimum", "simulator_p_optimum", "uniform_p_optimum", "hardware_ratio",
            "simulator_ratio", "uniform_ratio", "hardware_energy", "exact_energy")]
        lines.append("| " + " | ".join(cells) + " |")
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
    # report.json last: its presence means the whole report (and everything before it) is on disk
    atomic_write_text(run_dir / REPORT_MD, render_markdown(report))
    atomic_write_json(run_dir / REPORT_JSON, report)
    return run_dir / REPORT_JSON
