"""Run local problems' QAOA on a quantum service, resumably.

Strategy ``"sample"`` (1, default, cheapest): optimise the angles on the native
simulator (each problem, or one per layer transferred to the rest — angles
are for the cost divided by ``problem.scale()``, so they transfer), then only
sample on the device: one PUB per problem, packed into few jobs.

Strategy ``"spsa"`` (2): the variational loop on the device. All problems
step in lockstep, so each SPSA iteration is one stage of jobs carrying two
PUBs (θ+cΔ, θ−cΔ) per problem; a final stage samples the last angles. The
perturbations come from a seeded generator and the loss only from cached
counts, so a resumed run replays the finished iterations from the cache and
submits nothing twice.

Energies always come from scoring the measured bitstrings with the problem
itself: measured classical bit i is virtual qubit i is variable i, whatever
layout the transpiler chose, so nothing is ever mapped through a layout.
"""
from __future__ import annotations

import json
import logging
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..ansatz import check_mixer
from ..errors import QSelectError
from ..io import atomic_write_json, atomic_write_with
from ..problems import DiagonalCost, Problem, QUBO
from ..solvers.base import summarise_samples
from .jobs import JobRunner, Pub, circuit_hash
from .ledger import Ledger
from .service import Service

log = logging.getLogger("qselect.hardware")

PLAN_FILE = "plan.json"
PROBLEMS_FILE = "problems.npz"
STRATEGIES = ("sample", "spsa")
ANGLE_MODES = ("each", "transfer")


@dataclass
class HardwareConfig:
    """Everything that decides which circuits are run (stored in plan.json)."""

    backend: str
    strategy: str = "sample"
    p: int = 1
    shots: int = 1024
    mixer: str = "x"
    angles: str = "each"
    seed: int = 0
    optimization_level: int = 1
    spsa_iterations: int = 20
    spsa_shots: int = 256
    spsa_step: float = 0.2
    spsa_perturbation: float = 0.15
    fidelity_warning: float = 0.05

    def validate(self) -> "HardwareConfig":
        """Check every field; returns ``self``.

        Raises
        ------
        QSelectError
            Naming the first invalid field and its command-line option.
        """
        if self.strategy not in STRATEGIES:
            raise QSelectError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)} "
                               "(--strategy sample optimises angles on the simulator and only samples on the device)")
        if self.angles not in ANGLE_MODES:
            raise QSelectError(f"unknown angle mode {self.angles!r}; choose 'each' or 'transfer' (--angles)")
        check_mixer(self.mixer)
        for name in ("p", "shots", "spsa_shots"):
            if int(getattr(self, name)) < 1:
                raise QSelectError(f"{name} must be at least 1, got {getattr(self, name)}; "
                                   f"set it with --{name.replace('_', '-')}")
        if self.strategy == "spsa" and self.spsa_iterations < 1:
            raise QSelectError("spsa_iterations must be at least 1 (--spsa-iterations)")
        return self


# --------------------------------------------------------------------------- problems on disk

def save_problems(path, problems: dict[str, Problem]) -> None:
    """Problems as arrays (npz): a QUBO by its canonical matrices, a DiagonalCost by its cost vector."""
    arrays: dict[str, np.ndarray] = {}
    for pid, pr in problems.items():
        k = -1 if pr.k is None else int(pr.k)
        if isinstance(pr, QUBO):
            arrays[f"{pid}/qubo_quadratic"] = pr.quadratic
            arrays[f"{pid}/qubo_linear"] = pr.linear
            arrays[f"{pid}/qubo_offset_k"] = np.array([pr.offset, k], dtype=float)
        elif isinstance(pr, DiagonalCost):
            arrays[f"{pid}/diag_costs"] = pr.cost_vector()
            arrays[f"{pid}/diag_k"] = np.array([k], dtype=float)
        else:
            raise QSelectError(f"problem {pid} is a {type(pr).__name__}; hardware runs take QUBO or DiagonalCost")
    atomic_write_with(path, lambda tmp: _savez(tmp, arrays))


def _savez(tmp, arrays):
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_problems(path, ids: list[str]) -> dict[str, Problem]:
    """Load problems saved in a run's ``problems.npz``.

    Parameters
    ----------
    path : str or os.PathLike
    ids : list of str
        Problem ids to load.

    Returns
    -------
    dict of str -> Problem
        ``QUBO`` or ``DiagonalCost`` as saved, with ``k``.
    """
    out: dict[str, Problem] = {}
    with np.load(path) as z:
        for pid in ids:
            if f"{pid}/qubo_quadratic" in z:
                off, k = z[f"{pid}/qubo_offset_k"]
                out[pid] = QUBO(z[f"{pid}/qubo_quadratic"], z[f"{pid}/qubo_linear"], float(off),
                                k=None if k < 0 else int(k), name=pid)
            else:
                k = z[f"{pid}/diag_k"][0]
                out[pid] = DiagonalCost(z[f"{pid}/diag_costs"], k=None if k < 0 else int(k), name=pid)
    return out


# --------------------------------------------------------------------------- circuits

class QAOACircuits:
    """Transpiled QAOA templates per problem (built once), bound per evaluation.

    Uses team B's qiskit adapter; the backend object is passed through opaque.
    """

    def __init__(self, backend, p: int, mixer: str = "x", seed: int = 0, optimization_level: int = 1):
        self.backend = backend
        self.p, self.mixer, self.seed, self.optimization_level = p, mixer, seed, optimization_level
        self._templates: dict[str, Any] = {}

    def template(self, pid: str, problem: Problem):
        if pid not in self._templates:
            from ..circuits.qiskit import qaoa_circuit, transpile_circuit

            k = problem.k if self.mixer == "xy" else None
            circ = qaoa_circuit(problem, self.p, mixer=self.mixer, k=k, measure=True)
            self._templates[pid] = transpile_circuit(circ, self.backend, seed=self.seed,
                                                     optimization_level=self.optimization_level)
        return self._templates[pid]

    def resources(self, pid: str, problem: Problem) -> dict:
        from ..circuits.qiskit import resource_counts

        return dict(resource_counts(self.template(pid, problem)))

    def bound(self, pid: str, problem: Problem, angles) -> tuple[Any, str]:
        """The device-ready circuit of problem ``pid`` with ``angles`` bound.

        Parameters
        ----------
        pid : str
            Problem id (caches the transpiled template per problem).
        problem : Problem
        angles : array_like, shape (2p,)
            ``[γ_1..γ_p, β_1..β_p]``.

        Returns
        -------
        circuit : qiskit.QuantumCircuit
            An ISA circuit for the backend.
        digest : str
            Hash of the circuit, recorded in the ledger's ``intent``.
        """
        from ..circuits.qiskit import bind_angles

        circ = bind_angles(self.template(pid, problem), np.asarray(angles, dtype=float))
        return circ, circuit_hash(circ)


# --------------------------------------------------------------------------- scoring

def counts_to_bits(counts: dict[str, int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """{bitstring: count} (qiskit order, clbit 0 last) -> (m, n) uint8 bits (bit i = variable i), counts."""
    keys = list(counts)
    bits = np.zeros((len(keys), n), dtype=np.uint8)
    for r, key in enumerate(keys):
        key = key.replace(" ", "")
        if len(key) < n:
            raise QSelectError(f"a measured bitstring has {len(key)} bits but the problem has {n} variables")
        bits[r] = np.frombuffer(key[::-1][:n].encode(), dtype=np.uint8) - ord("0")
    return bits, np.array([counts[k] for k in keys], dtype=np.int64)


def score_counts(problem: Problem, counts: dict[str, int]) -> dict:
    """Best bitstring, its energy, and the sampled mean energy — all from the problem itself."""
    bits, cnt = counts_to_bits(counts, problem.n)
    samples, energies, tot = summarise_samples(problem, bits, cnt)
    return {"bits": "".join(map(str, samples[0])), "energy": float(energies[0]),
            "mean_energy": float(np.dot(energies, tot) / tot.sum()), "shots": int(tot.sum()),
            "distinct": int(len(samples)), "samples": samples, "energies": energies, "counts": tot}


def exact_optimum(problem: Problem, max_bits: int = 24) -> dict | None:
    """Exact optimum of a small problem by its cost vector, for the report.

    Parameters
    ----------
    problem : Problem
    max_bits : int
        Larger problems are skipped.

    Returns
    -------
    dict or None
        ``{"bits": "0101…" (bit 0 first), "energy": float}``, or ``None`` above ``max_bits``.
    """
    if problem.n > max_bits:
        return None
    cv = problem.cost_vector()
    i = int(np.argmin(cv))
    return {"bits": "".join(str((i >> b) & 1) for b in range(problem.n)), "energy": float(cv[i])}


# --------------------------------------------------------------------------- the run

@dataclass
class HardwareRun:
    """One resumable hardware run living in ``run_dir``."""

    run_dir: Path
    service: Service
    config: HardwareConfig
    problems: dict[str, Problem]
    meta: dict[str, dict] = field(default_factory=dict)
    run_id: str = ""
    angles: dict[str, list] = field(default_factory=dict)
    reference: dict[str, dict] = field(default_factory=dict)
    resources: dict[str, dict] = field(default_factory=dict)
    circuits: Any = None  # QAOACircuits or a test double with bound/resources
    simulator: Any = None  # Solver giving the noiseless reference + angles (default: native QAOASolver)
    pack_size: int | None = None  # PUBs per job, fixed when the run is planned
    crash_hook: Callable[[str], None] | None = None
    timeout: float | None = None
    resubmit_failed: bool = False

    # -- creation / loading ---------------------------------------------------
    @classmethod
    def create(cls, run_dir, service: Service, config: HardwareConfig, problems: dict[str, Problem],
               meta: dict[str, dict] | None = None, circuits=None, **kw) -> "HardwareRun":
        """Plan a new run (simulator angles, circuit resources) and write it to ``run_dir``."""
        config.validate()
        run_dir = Path(run_dir)
        if (run_dir / PLAN_FILE).exists():
            raise QSelectError(f"{run_dir} already holds a hardware run; resume it with `qselect fetch --run-dir "
                               f"{run_dir}` or choose a new --run-dir")
        if not problems:
            raise QSelectError("no local problems to run; check the selection options (--formulation, --qubits)")
        bad = [pid for pid in problems if not isinstance(pid, str) or not pid or "|" in pid]
        if bad:  # ids name the SPSA PUBs ("<id>|+") and survive plan.json only as strings
            raise QSelectError(f"problem ids must be non-empty strings without '|', got {bad[0]!r}; "
                               "rename the keys of the problems dict")
        too_big = [pid for pid, pr in problems.items() if service.num_qubits and pr.n > service.num_qubits]
        if too_big:
            raise QSelectError(f"{len(too_big)} problems need more qubits than {service.backend_name} has "
                               f"({service.num_qubits}); lower --qubits or pick a larger backend")
        run = cls(run_dir=run_dir, service=service, config=config, problems=dict(problems),
                  meta=dict(meta or {}), run_id=secrets.token_hex(4), circuits=circuits, **kw)
        if run.circuits is None:
            run.circuits = QAOACircuits(service.backend, config.p, config.mixer, config.seed,
                                        config.optimization_level)
        run.pack_size = JobRunner(service, Ledger(run_dir), run.run_id).pubs_per_job(
            max(config.shots, config.spsa_shots if config.strategy == "spsa" else 1))
        run._simulate()
        run._check_resources()
        save_problems(run_dir / PROBLEMS_FILE, run.problems)
        run._write_plan()
        return run

    @classmethod
    def load(cls, run_dir, service: Service | None = None, circuits=None, **kw) -> "HardwareRun":
        """Reopen a hardware run from its directory (``plan.json``), to resume, fetch or cancel.

        Parameters
        ----------
        run_dir : str or os.PathLike
        service : Service or None
            Default: the service the plan names (IBM Runtime or a local fake device).
        circuits : QAOACircuits or None
            Default: rebuilt from the plan's config.
        **kw
            Runner options (timeout, resubmit_failed, ...).

        Returns
        -------
        HardwareRun

        Raises
        ------
        QSelectError
            If the folder holds no hardware run or its plan is damaged.
        """
        run_dir = Path(run_dir)
        plan = read_plan(run_dir)
        config = HardwareConfig(**plan["config"])
        if service is None:
            from .runtime import get_service

            service = get_service(config.backend, run_dir=run_dir, seed=config.seed)
        ids = list(plan["problem_ids"])
        run = cls(run_dir=run_dir, service=service, config=config,
                  problems=load_problems(run_dir / PROBLEMS_FILE, ids), meta=plan.get("meta", {}),
                  run_id=plan["run_id"], angles=plan.get("angles", {}), reference=plan.get("reference", {}),
                  resources=plan.get("resources", {}), circuits=circuits, pack_size=plan.get("pack_size"), **kw)
        if run.circuits is None:
            run.circuits = QAOACircuits(service.backend, config.p, config.mixer, config.seed,
                                        config.optimization_level)
        return run

    def _write_plan(self) -> None:
        atomic_write_json(self.run_dir / PLAN_FILE, {
            "run_id": self.run_id, "config": asdict(self.config), "backend": self.service.backend_name,
            "problem_ids": list(self.problems), "meta": self.meta, "angles": self.angles,
            "reference": self.reference, "resources": self.resources, "pack_size": self.pack_size})

    def _simulate(self) -> None:
        """Noiseless reference (native simulator) per problem; its angles for strategy 1.

        ``angles="transfer"``: per layer, the first problem's optimised angles are
        reused unchanged on the others (as ``qselect.solvers.qaoa.solve_layer`` does in mode "fixed"),
        and each reference is the noiseless run at exactly the angles the device gets.
        """
        cfg = self.config
        solver = self.simulator
        if solver is None:
            from ..solvers import get_solver

            solver = get_solver("qaoa", backend="native", p=cfg.p, seed=cfg.seed, shots=cfg.shots, mixer=cfg.mixer)
        results = {}
        if cfg.angles == "transfer" and cfg.strategy == "sample" and self.simulator is None:
            from ..solvers.qaoa import solve_layer

            layers: dict[str, list[str]] = {}
            for pid in self.problems:
                layers.setdefault(str(self.meta.get(pid, {}).get("layer", "")), []).append(pid)
            for ids in layers.values():
                out = solve_layer([self.problems[i] for i in ids], solver, mode="fixed")
                results.update(zip(ids, out.results))
        else:
            results = {pid: solver.solve(pr) for pid, pr in self.problems.items()}
        for pid, res in results.items():
            self.reference[pid] = {"bits": "".join(map(str, res.bits)), "energy": float(res.energy),
                                   "expectation": float(getattr(res, "expectation", np.nan))}
            # strategy spsa: the device does the whole optimisation, from the linear ramp
            self.angles[pid] = ramp_angles(cfg.p) if cfg.strategy == "spsa" else [float(a) for a in res.angles]

    def _check_resources(self) -> None:
        e2q = self.service.two_qubit_error() or 1e-2
        for pid, pr in self.problems.items():
            r = self.circuits.resources(pid, pr)
            fid = float((1.0 - e2q) ** int(r.get("two_qubit_gates", 0)))
            r["estimated_fidelity"] = fid
            self.resources[pid] = r
            if fid < self.config.fidelity_warning:
                log.warning("problem %s: %d two-qubit gates, depth %d on %s: estimated circuit fidelity %.2g, "
                            "so its samples are likely mostly noise; use a smaller --qubits or p=1",
                            pid, r.get("two_qubit_gates", 0), r.get("depth", 0), self.service.backend_name, fid)

    # -- execution -------------------------------------------------------------
    def runner(self) -> JobRunner:
        """A :class:`JobRunner` over this run's service and ledger."""
        return JobRunner(self.service, Ledger(self.run_dir), self.run_id, timeout=self.timeout,
                         resubmit_failed=self.resubmit_failed, crash_hook=self.crash_hook, pack_size=self.pack_size)

    def _pub(self, pub_id: str, pid: str, angles) -> Pub:
        problem = self.problems[pid]
        return Pub(pub_id, lambda: self.circuits.bound(pid, problem, angles))

    def execute(self, wait: bool = True) -> dict | None:
        """Submit what the ledger lacks, wait, fetch, score; returns the report (None if not waiting)."""
        jobs = self.runner()
        if self.config.strategy == "spsa" or len(self.problems) > (self.pack_size or 1):
            self.service.open_batch()  # several jobs: Batch mode (Open Plan cannot open Sessions)
        try:
            if self.config.strategy == "sample":
                pubs = [self._pub(pid, pid, self.angles[pid]) for pid in self.problems]
                counts = jobs.run_stage("sample", pubs, self.config.shots, wait=wait)
                if counts is None:
                    return None
                hw = {pid: [counts[pid]] for pid in self.problems}
                final_angles = self.angles
            else:
                if not wait:
                    raise QSelectError("--no-wait works with --strategy sample only: the SPSA loop needs each "
                                       "iteration's results before submitting the next")
                hw, final_angles = self._spsa(jobs)
        finally:
            self.service.close()
        from .report import build_report, write_report

        report = build_report(self, hw, final_angles)
        write_report(self.run_dir, report)
        return report

    def _spsa(self, jobs: JobRunner):
        """Lockstep SPSA over all problems (Spall's gains); replayable from cached counts.

        Not qiskit-algorithms' SPSA: its ``minimize`` owns the loop (no ask/tell), draws from
        the global ``algorithm_globals.random`` and evaluates extra points, so it cannot run
        many problems in lockstep at one job per iteration (see README, Strategies)."""
        cfg = self.config
        ids = list(self.problems)
        theta = {pid: np.asarray(self.angles[pid], dtype=float) for pid in ids}
        a_gain: dict[str, float] = {}
        seen: dict[str, list] = {pid: [] for pid in ids}
        A = 0.1 * cfg.spsa_iterations
        for t in range(cfg.spsa_iterations):
            ck = cfg.spsa_perturbation / (t + 1) ** 0.101
            deltas, pubs = {}, []
            for j, pid in enumerate(ids):
                rng = np.random.default_rng([cfg.seed, j, t])
                deltas[pid] = rng.choice([-1.0, 1.0], size=theta[pid].shape)
                pubs.append(self._pub(f"{pid}|+", pid, theta[pid] + ck * deltas[pid]))
                pubs.append(self._pub(f"{pid}|-", pid, theta[pid] - ck * deltas[pid]))
            counts = jobs.run_stage(f"spsa{t:03d}", pubs, cfg.spsa_shots)
            for pid in ids:
                pr = self.problems[pid]
                lp, lm = (score_counts(pr, counts[f"{pid}|{s}"])["mean_energy"] / pr.scale() for s in "+-")
                seen[pid] += [counts[f"{pid}|+"], counts[f"{pid}|-"]]
                if pid not in a_gain:  # calibrate: the first step moves each angle by spsa_step
                    a_gain[pid] = cfg.spsa_step * (A + 1) ** 0.602 * 2 * ck / max(abs(lp - lm), 1e-9)
                ak = a_gain[pid] / (t + 1 + A) ** 0.602
                theta[pid] = theta[pid] - ak * (lp - lm) / (2 * ck) * deltas[pid]
        final = jobs.run_stage("final", [self._pub(pid, pid, theta[pid]) for pid in ids], cfg.shots)
        hw = {pid: [final[pid]] + seen[pid] for pid in ids}
        return hw, {pid: [float(x) for x in theta[pid]] for pid in ids}


def ramp_angles(p: int) -> list[float]:
    """Linear-ramp (annealing-like) start: γ rises, β falls over the p layers."""
    from ..solvers.qaoa.angles import linear_ramp

    return [float(x) for x in linear_ramp(p)]


def read_plan(run_dir) -> dict:
    """The run's ``plan.json``.

    Parameters
    ----------
    run_dir : str or os.PathLike

    Returns
    -------
    dict

    Raises
    ------
    QSelectError
        If there is no plan (not a hardware run) or it is not valid JSON.
    """
    path = Path(run_dir) / PLAN_FILE
    if not path.exists():
        raise QSelectError(f"{run_dir} holds no hardware run (no {PLAN_FILE}); start one with "
                           "`qselect submit --backend NAME --run-dir DIR`")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise QSelectError(f"{path} is not valid JSON ({exc}); the run directory is damaged") from None
