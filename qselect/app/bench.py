"""``qselect bench``: run the benchmark scripts and print their headline ratios.

Runs ``benchmarks/qaoa_sim.py`` (native simulator vs Aer / qiskit-algorithms)
and ``benchmarks/seed_methods.py`` (seed methods vs their baselines) from the
source checkout, each in quick mode unless ``--full``, writing their JSON into
the run directory. Arguments after ``--`` go to the scripts unchanged.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ..errors import QSelectError
from .console import Console

HELP = "run the benchmarks (quick mode by default) and print their ratios"


BENCHMARKS = ("qaoa_sim", "seed_methods", "angle_transfer", "qaoa_layer", "pruning", "ensembles", "architectures",
              "hardware_compile")
#: what `qselect bench` runs without --only (the quick ones; the others take minutes even with --quick)
DEFAULT_BENCHMARKS = ("qaoa_sim", "seed_methods")


def benchmarks_dir() -> Path:
    """The ``benchmarks/`` folder of the source checkout (or of the current directory).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    QSelectError
        If no ``benchmarks/`` folder is found (qselect installed without its sources).
    """
    here = Path(__file__).resolve().parents[2] / "benchmarks"
    for cand in (here, Path.cwd() / "benchmarks"):
        if cand.is_dir():
            return cand
    raise QSelectError("the benchmarks/ folder was not found; run qselect bench from a source checkout of qselect")


def _quick_flag(script: Path) -> list[str]:
    """Scripts advertise their quick mode in --help; pass it when they have one."""
    try:
        text = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                              timeout=120).stdout
    except subprocess.TimeoutExpired:
        return []
    return ["--quick"] if "--quick" in text else []


def ratios(obj, prefix="") -> dict:
    """Every numeric entry whose key mentions 'ratio', searched through nested dicts.

    Parameters
    ----------
    obj : dict
    prefix : str

    Returns
    -------
    dict of str -> float
    """
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = f"{prefix}{k}"
            if isinstance(v, (int, float)) and not isinstance(v, bool) and "ratio" in str(k).lower():
                out[key] = float(v)
            elif isinstance(v, dict):
                out.update(ratios(v, key + "."))
    return out


def run(cfg: dict, *, argv=None, given=(), extra=None) -> int:
    """``qselect bench``: run the benchmark scripts (``--quick`` unless ``full``) and print every ``ratio*`` figure.

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
    cfg = dict(cfg)
    con = Console(cfg["quiet"], cfg["verbose"])
    unknown = [b for b in cfg["only"] if b not in BENCHMARKS]
    if unknown:
        raise QSelectError(f"unknown benchmark {unknown[0]!r}; valid: {', '.join(BENCHMARKS)} (set with --only)")
    folder = benchmarks_dir()
    scripts = {b: folder / f"{b}.py" for b in cfg["only"]}
    missing = [str(p) for p in scripts.values() if not p.is_file()]
    if missing:
        raise QSelectError(f"benchmark script {missing[0]} is missing; update the checkout or choose others "
                           f"with --only")
    extra = [a for a in (extra or []) if a != "--"]

    from ..report.writers import write_report
    from ..runs import Run

    with Run.create("bench", cfg, cfg["run_dir"], argv=argv).guard() as run_:
        results = {name: _run_one(name, script, run_, cfg, extra, con) for name, script in scripts.items()}
        found = {f"{name}: {key}": value for name, data in results.items() for key, value in ratios(data).items()}
        con.print("\nratios:" if found else "\n(no ratios reported)")
        for key, value in found.items():
            con.result(f"{key} = {value:.3g}")
        write_report(run_.path, {"command": "bench", "ratios": found}, files=[f"{n}.json" for n in results])
        run_.finish(report="report.json")
    con.result(f"report written to {run_.path}")
    return 0


def _run_one(name, script, run_, cfg, extra, con) -> dict:
    """Run one benchmark script into the run directory; returns the JSON it wrote."""
    out = run_.file(f"{name}.json")
    cmd = [sys.executable, str(script), "--out", str(out)] + ([] if cfg["full"] else _quick_flag(script)) + extra
    con.print(f"$ {' '.join(cmd)}")
    proc = subprocess.run(cmd, stdout=None if not cfg["quiet"] else subprocess.DEVNULL)
    if proc.returncode != 0:
        raise QSelectError(f"benchmark {name} failed (exit code {proc.returncode}); its output is above — "
                           f"rerun it directly: python {script} --help")
    try:
        return json.loads(out.read_text())
    except (OSError, ValueError) as exc:
        raise QSelectError(f"benchmark {name} wrote no readable JSON to {out} ({exc}); check the script") from None
