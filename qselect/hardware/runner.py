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
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..ansatz import check_mixer
from ..errors import QSelectError
from ..io import atomic_write_json, atomic_write_with
from ..problems import QUBO, DiagonalCost, Problem
from ..solvers.base import summarise_samples
from ..validation import check_float, check_int, check_seed
from .jobs import JobRunner, Pub, circuit_hash
from .ledger import Ledger
from .service import Service

log = logging.getLogger("qselect.hardware")

PLAN_FILE = "plan.json"
PROBLEMS_FILE = "problems.npz"
STRATEGIES = ("sample", "spsa")
ANGLE_MODES = ("each", "transfer")
#: dynamical-decoupling sequences of IBM's sampler ("none" turns DD off)
DD_SEQUENCES = ("none", "XX", "XpXm", "XY4")
#: how jobs are grouped on IBM Quantum: "auto" = Batch for several jobs (Session for SPSA when asked)
EXECUTION_MODES = ("auto", "batch", "session", "job")
#: a Batch on the Open Plan lives this long (seconds)
OPEN_PLAN_BATCH_S = 600.0
#: Open Plan quantum time per 28 days (seconds)
OPEN_PLAN_BUDGET_S = 600.0
#: what plan.json records for keys absent from plans written before they existed (same circuits as then)
LEGACY_DEFAULTS = {"compile": "single", "transpile_seeds": 1, "dynamical_decoupling": "none",
                   "twirl_gates": False, "twirl_measure": False, "primitive": "legacy"}


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
    optimization_level: int = 3
    #: "auto" (swap strategy and generic, best kept), "swap", "generic", "single" (one pass, one seed)
    compile: str = "auto"
    #: transpiler seeds tried per circuit (the best by estimated fidelity is kept)
    transpile_seeds: int = 5
    #: Heron fractional gates (RZZ, RX): angles bound before transpiling; excludes gate twirling
    fractional_gates: bool = False
    #: error suppression on the sampler (IBM's QAOA tutorial: XY4 dynamical decoupling + gate twirling)
    dynamical_decoupling: str = "XY4"
    twirl_gates: bool = True
    twirl_measure: bool = False
    #: "executor" (client-side sampler, qiskit-ibm-runtime >= 0.50) or "legacy" (server-side SamplerV2)
    primitive: str = "executor"
    execution_mode: str = "auto"
    #: seconds of quantum time one job may use (passed to the service; checked against the estimate first)
    max_execution_time: int | None = None
    #: Open Plan account: no Sessions, Batches live 10 minutes, 10 quantum minutes per 28 days
    open_plan: bool = False
    spsa_iterations: int = 20
    spsa_shots: int = 256
    spsa_step: float = 0.2
    spsa_perturbation: float = 0.15
    fidelity_warning: float = 0.05

    @classmethod
    def from_plan(cls, config: dict) -> "HardwareConfig":
        """The config stored in plan.json; keys a plan predates take the values that planned it.

        Parameters
        ----------
        config : dict

        Returns
        -------
        HardwareConfig
        """
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(config) - known)
        if unknown:
            raise QSelectError(f"plan.json's config has unknown keys {unknown}; it was written by a newer "
                               "qselect: upgrade qselect to resume this run")
        return cls(**{**LEGACY_DEFAULTS, **config})

    def sampler_options(self) -> dict:
        """qiskit-ibm-runtime sampler options (the same names for the executor and legacy samplers)."""
        opts: dict = {
            "dynamical_decoupling": {"enable": self.dynamical_decoupling != "none",
                                     **({"sequence_type": self.dynamical_decoupling}
                                        if self.dynamical_decoupling != "none" else {})},
            "twirling": {"enable_gates": bool(self.twirl_gates), "enable_measure": bool(self.twirl_measure)},
        }
        if self.max_execution_time:
            opts["max_execution_time"] = int(self.max_execution_time)
        return opts

    def validate(self) -> "HardwareConfig":
        """Check every field; returns ``self``.

        Raises
        ------
        QSelectError
            Naming the first invalid field and its command-line option.
        """
        from ..circuits.routing import COMPILE_METHODS

        for name in ("p", "shots", "spsa_shots", "spsa_iterations", "transpile_seeds", "optimization_level"):
            check_int(getattr(self, name), f"{name} (--{name.replace('_', '-')})")  # the type; bounds below
        check_int(self.max_execution_time, "max_execution_time (--max-execution-time)", allow_none=True)
        for name in ("spsa_step", "spsa_perturbation"):
            check_float(getattr(self, name), name, minimum=0.0, low_open=True)
        check_float(self.fidelity_warning, "fidelity_warning", minimum=0.0, maximum=1.0)
        if self.compile not in COMPILE_METHODS:
            raise QSelectError(f"unknown compile method {self.compile!r}; choose one of {', '.join(COMPILE_METHODS)}"
                               " (--compile)")
        if int(self.transpile_seeds) < 1:
            raise QSelectError(f"transpile_seeds must be at least 1, got {self.transpile_seeds} (--transpile-seeds)")
        if self.optimization_level not in (0, 1, 2, 3):
            raise QSelectError(f"optimization_level must be 0-3, got {self.optimization_level} (--optimization-level)")
        if self.dynamical_decoupling not in DD_SEQUENCES:
            raise QSelectError(f"unknown dynamical decoupling sequence {self.dynamical_decoupling!r}; choose one of "
                               f"{', '.join(DD_SEQUENCES)} (--dynamical-decoupling)")
        if self.primitive not in ("executor", "legacy"):
            raise QSelectError(f"unknown primitive {self.primitive!r}; choose 'executor' (client-side sampler) "
                               "or 'legacy' (server-side SamplerV2) (--primitive)")
        if self.execution_mode not in EXECUTION_MODES:
            raise QSelectError(f"unknown execution mode {self.execution_mode!r}; choose one of "
                               f"{', '.join(EXECUTION_MODES)} (--execution-mode)")
        if self.fractional_gates and self.twirl_gates:
            raise QSelectError("fractional gates cannot be combined with gate twirling: twirling wraps each "
                               "2-qubit gate in random Paulis that only a Clifford gate (CZ/ECR) maps back to "
                               "Paulis, and RZZ(θ) is not Clifford (IBM rejects the job); pass --no-twirl-gates "
                               "with --fractional-gates")
        if self.fractional_gates and self.mixer == "xy":
            raise QSelectError("fractional gates are supported for the X mixer only; use --mixer x or drop "
                               "--fractional-gates")
        if self.execution_mode == "session" and self.open_plan:
            raise QSelectError("Open Plan accounts cannot open Sessions; use --execution-mode batch (or auto)")
        if self.max_execution_time is not None and int(self.max_execution_time) < 1:
            raise QSelectError(f"max_execution_time must be a positive number of seconds, got "
                               f"{self.max_execution_time} (--max-execution-time)")
        if self.strategy not in STRATEGIES:
            raise QSelectError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)} "
                               "(--strategy sample optimises angles on the simulator and only samples on the device)")
        if self.angles not in ANGLE_MODES:
            raise QSelectError(f"unknown angle mode {self.angles!r}; choose 'each' or 'transfer' (--angles)")
        check_mixer(self.mixer)
        check_seed(self.seed, "seed (--seed)", allow_none=False)
        for name in ("p", "shots", "spsa_shots"):
            if int(getattr(self, name)) < 1:
                raise QSelectError(f"{name} must be at least 1, got {getattr(self, name)}; "
                                   f"set it with --{name.replace('_', '-')}")
        if self.strategy == "spsa" and self.spsa_iterations < 1:
            raise QSelectError("spsa_iterations must be at least 1 (--spsa-iterations)")
        return self


# --------------------------------------------------------------------------- problems on disk

def save_problems(path, problems: dict[str, Problem]) -> None:
    """Problems as arrays (npz): a QUBO by its canonical matrices, a DiagonalCost by its cost vector.

    Parameters
    ----------
    path : str or os.PathLike
    problems : dict of str -> Problem
    """
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

    Raises
    ------
    QSelectError
        The file is missing, damaged (e.g. truncated) or lacks a problem: one line, nothing rewritten.
    """
    try:
        return _load_problems(path, ids)
    except FileNotFoundError:
        raise QSelectError(f"{path} is missing; the run directory is incomplete (the submit that planned it "
                           "was interrupted): start the run again in a new --run-dir") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        what = f"problem {exc.args[0]!r} is missing" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise QSelectError(f"{path} is damaged ({what}); nothing was changed: restore it from a copy or start "
                           "the run again in a new --run-dir") from None


def _load_problems(path, ids: list[str]) -> dict[str, Problem]:
    out: dict[str, Problem] = {}
    with np.load(path) as z:
        for pid in ids:
            if f"{pid}/qubo_quadratic" in z:
                off, k = z[f"{pid}/qubo_offset_k"]
                out[pid] = QUBO(z[f"{pid}/qubo_quadratic"], z[f"{pid}/qubo_linear"], float(off),
                                k=None if k < 0 else int(k), name=pid)
            elif f"{pid}/diag_costs" in z:
                k = z[f"{pid}/diag_k"][0]
                out[pid] = DiagonalCost(z[f"{pid}/diag_costs"], k=None if k < 0 else int(k), name=pid)
            else:
                raise KeyError(pid)
    return out


# --------------------------------------------------------------------------- circuits

class QAOACircuits:
    """Compiled QAOA circuits per problem, bound per evaluation.

    Without fractional gates a template is compiled once per problem (with
    free parameters) and bound for each evaluation. With fractional gates the
    RZZ angles must be known at compile time (the device accepts 0 < θ ≤ π/2
    only, out-of-range angles are folded), so each evaluation's angles are
    bound first and the bound circuit is compiled (cached per angle vector).
    The backend object is passed through opaque.
    """

    def __init__(self, backend, p: int, mixer: str = "x", seed: int = 0, optimization_level: int = 3,
                 method: str = "auto", seeds: int = 5, fractional: bool = False):
        self.backend = backend
        self.p, self.mixer, self.seed, self.optimization_level = p, mixer, seed, optimization_level
        self.method, self.seeds, self.fractional = method, int(seeds), bool(fractional)
        self._templates: dict[str, Any] = {}
        self._bound: dict[tuple, Any] = {}
        self._target = None
        #: problem id -> the angles its circuit will mostly run at (fractional gates compile at these)
        self.angles_hint: dict[str, list] = {}

    @classmethod
    def for_config(cls, backend, config: "HardwareConfig") -> "QAOACircuits":
        """Circuit builder for a backend with the depth, mixer, seed, level and compile options of ``config``.

        Parameters
        ----------
        backend : qiskit backend
        config : HardwareConfig

        Returns
        -------
        QAOACircuits
        """
        return cls(backend, config.p, config.mixer, config.seed, config.optimization_level,
                   method=config.compile, seeds=config.transpile_seeds, fractional=config.fractional_gates)

    @property
    def target(self):
        """The Target circuits are compiled for (with fractional RZZ/RX when asked)."""
        if self._target is None:
            from ..circuits.routing import fractional_target

            self._target = (fractional_target(self.backend) if self.fractional
                            else getattr(self.backend, "target", None))
        return self._target

    def _compile(self, problem: Problem, angles=None):
        from ..circuits.routing import compile_qaoa

        k = problem.k if self.mixer == "xy" else None
        return compile_qaoa(problem, self.p, self.backend, mixer=self.mixer, k=k, method=self.method,
                            seeds=self.seeds, seed=self.seed, optimization_level=self.optimization_level,
                            target=self.target if self.fractional else None, angles=angles)

    def template(self, pid: str, problem: Problem):
        """The compiled circuit of ``pid`` (parameters free; with fractional gates: bound at its ``angles_hint``).

        Parameters
        ----------
        pid : str
        problem : Problem

        Returns
        -------
        qiskit.QuantumCircuit
        """
        return self.compiled(pid, problem).circuit

    def compiled(self, pid: str, problem: Problem):
        """The ``Compiled`` record of ``pid``: circuit, method, seed, counts, every attempt.

        Parameters
        ----------
        pid : str
        problem : Problem

        Returns
        -------
        Compiled
        """
        if pid not in self._templates:
            angles = None
            if self.fractional:
                angles = self.angles_hint.get(pid) or ramp_angles(self.p)
            self._templates[pid] = self._compile(problem, angles)
        return self._templates[pid]

    def resources(self, pid: str, problem: Problem) -> dict:
        """Compiled resources: method, seed, 2-qubit gates and depth, estimated fidelity, layout, attempts.

        Parameters
        ----------
        pid : str
        problem : Problem

        Returns
        -------
        dict
        """
        return dict(self.compiled(pid, problem).resources())

    def baseline(self, pid: str, problem: Problem) -> dict:
        """Resources of the plain compilation (one level-1 pass, one seed): the "before" of a report.

        Parameters
        ----------
        pid : str
        problem : Problem

        Returns
        -------
        dict
        """
        from ..circuits.routing import compile_qaoa

        k = problem.k if self.mixer == "xy" else None
        c = compile_qaoa(problem, self.p, self.backend, mixer=self.mixer, k=k, method="single", seed=self.seed,
                         optimization_level=1)
        return {"two_qubit_gates": c.two_qubit_gates, "two_qubit_depth": c.two_qubit_depth, "depth": c.depth,
                "estimated_fidelity": c.fidelity}

    def circuit_bytes(self, pid: str, problem: Problem) -> int:
        """Size of the compiled circuit serialised with QPY (what a job's input grows by per PUB).

        Parameters
        ----------
        pid : str
        problem : Problem

        Returns
        -------
        int
        """
        import io

        from qiskit import qpy

        buf = io.BytesIO()
        qpy.dump(self.template(pid, problem), buf)
        return len(buf.getvalue())

    def duration(self, pid: str, problem: Problem) -> float | None:
        """Estimated duration of one shot of the compiled circuit (seconds), from the Target's gate times.

        Parameters
        ----------
        pid : str
        problem : Problem

        Returns
        -------
        float or None
        """
        try:
            circ = self.template(pid, problem)
            if circ.parameters:
                from ..circuits.qiskit import bind_angles

                circ = bind_angles(circ, ramp_angles(self.p))
            return float(circ.estimate_duration(self.target, unit="s"))
        except Exception:  # noqa: BLE001 - a Target without durations: the estimate falls back
            return None

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
        angles = np.asarray(angles, dtype=float)
        if self.fractional:
            key = (pid, tuple(np.round(angles, 12)))
            hint = self.angles_hint.get(pid)
            if key not in self._bound and hint is not None and np.allclose(hint, angles, rtol=0, atol=1e-12):
                self._bound[key] = self.template(pid, problem)
            if key not in self._bound:
                self._bound[key] = self._compile(problem, angles).circuit
            circ = self._bound[key]
        else:
            from ..circuits.qiskit import bind_angles

            circ = bind_angles(self.template(pid, problem), angles)
        return circ, circuit_hash(circ)


# --------------------------------------------------------------------------- scoring

def counts_to_bits(counts: dict[str, int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """{bitstring: count} (qiskit order, clbit 0 last) -> (m, n) uint8 bits (bit i = variable i), counts.

    Parameters
    ----------
    counts : dict of str -> int
    n : int

    Returns
    -------
    bits : numpy.ndarray of uint8, shape (m, n)
    counts : numpy.ndarray of int64, shape (m,)
    """
    keys = list(counts)
    bits = np.zeros((len(keys), n), dtype=np.uint8)
    for r, key in enumerate(keys):
        key = key.replace(" ", "")
        if len(key) < n:
            raise QSelectError(f"a measured bitstring has {len(key)} bits but the problem has {n} variables")
        bits[r] = np.frombuffer(key[::-1][:n].encode(), dtype=np.uint8) - ord("0")
    return bits, np.array([counts[k] for k in keys], dtype=np.int64)


def score_counts(problem: Problem, counts: dict[str, int]) -> dict:
    """Best bitstring, its energy, and the sampled mean energy — all from the problem itself.

    Parameters
    ----------
    problem : Problem
    counts : dict of str -> int

    Returns
    -------
    dict
    """
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

def _refuse_existing_plan(run_dir: Path) -> None:
    if (Path(run_dir) / PLAN_FILE).exists():
        raise QSelectError(f"{run_dir} already holds a hardware run; resume it with `qselect hardware fetch "
                           f"--run-dir {run_dir}` or choose a new --run-dir")


def check_fits_device(service, qubits: int, what: str = "a local problem needs") -> None:
    """Refuse problems wider than the device, before anything is created.

    Parameters
    ----------
    service : Service
        Its ``num_qubits`` (0: unknown, nothing is checked) and ``backend_name``.
    qubits : int
        The widest problem (or the per-problem qubit budget).
    what : str
        The subject of the message (``"... needs"``).

    Raises
    ------
    QSelectError
        If ``qubits`` exceeds the device, naming both sizes and the fix.
    """
    have = int(getattr(service, "num_qubits", 0) or 0)
    if have and int(qubits) > have:
        raise QSelectError(f"{what} {int(qubits)} qubits but {service.backend_name} has {have}; use --qubits "
                           f"{have} or less, or a larger device (--device)")


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
    usage_estimate: dict = field(default_factory=dict)
    console: Any = None  # where masks.pt's one-line summary is printed (a qselect.app Console), if anywhere

    # -- creation / loading ---------------------------------------------------
    @classmethod
    def create(cls, run_dir, service: Service, config: HardwareConfig, problems: dict[str, Problem],
               meta: dict[str, dict] | None = None, circuits=None, **kw) -> "HardwareRun":
        """Plan a new run (simulator angles, circuit resources) and write it to ``run_dir``.

        The same as :meth:`plan` followed by :meth:`save`: every check runs before
        ``run_dir`` is created, so a refused run leaves nothing behind.

        Parameters
        ----------
        run_dir : str or os.PathLike
        service : Service
        config : HardwareConfig
        problems : dict of str -> Problem
        meta : dict or None
        circuits : QAOACircuits or None
        **kw
            Runner options.

        Returns
        -------
        HardwareRun

        Raises
        ------
        QSelectError
            If the folder already holds a hardware run or a problem exceeds the device.
        """
        return cls.plan(run_dir, service, config, problems, meta=meta, circuits=circuits, **kw).save()

    @classmethod
    def plan(cls, run_dir, service: Service, config: HardwareConfig, problems: dict[str, Problem],
             meta: dict[str, dict] | None = None, circuits=None, **kw) -> "HardwareRun":
        """Plan a new run in memory (checks, simulator angles, compiled resources, usage); writes nothing.

        Everything that can refuse the run (configuration, problem ids, problem
        width against the device, the device's gate limit, the quantum-time cap)
        is checked here, so a caller can refuse bad input before it creates any
        folder; :meth:`save` then writes the plan.

        Parameters
        ----------
        run_dir : str or os.PathLike
            Where :meth:`save` will write the run (not created here).
        service : Service
        config : HardwareConfig
        problems : dict of str -> Problem
        meta : dict or None
        circuits : QAOACircuits or None
        **kw
            Runner options.

        Returns
        -------
        HardwareRun
            Not yet saved.

        Raises
        ------
        QSelectError
            If the folder already holds a hardware run, the configuration is
            invalid, or a problem does not fit the device.
        """
        config.validate()
        run_dir = Path(run_dir)
        _refuse_existing_plan(run_dir)
        if not problems:
            raise QSelectError("no local problems to run; check the selection options (--formulation, --qubits)")
        bad = [pid for pid in problems if not isinstance(pid, str) or not pid or "|" in pid]
        if bad:  # ids name the SPSA PUBs ("<id>|+") and survive plan.json only as strings
            raise QSelectError(f"problem ids must be non-empty strings without '|', got {bad[0]!r}; "
                               "rename the keys of the problems dict")
        widths = [int(pr.n) for pr in problems.values()]
        wide = sum(w > int(getattr(service, "num_qubits", 0) or 0) for w in widths)
        check_fits_device(service, max(widths), f"{wide} local problems need up to" if wide > 1
                          else "a local problem needs")
        run = cls(run_dir=run_dir, service=service, config=config, problems=dict(problems),
                  meta=dict(meta or {}), run_id=secrets.token_hex(4), circuits=circuits, **kw)
        if run.circuits is None:
            run.circuits = QAOACircuits.for_config(service.backend, config)
        service.configure(sampler_options=config.sampler_options(), primitive=config.primitive)
        run._simulate()
        run._check_resources()
        size = getattr(run.circuits, "circuit_bytes", None)
        run.pack_size = JobRunner(service, Ledger(run_dir), run.run_id).pubs_per_job(
            max(config.shots, config.spsa_shots if config.strategy == "spsa" else 1),
            max((size(pid, pr) for pid, pr in run.problems.items()), default=0) if size else None)
        run._estimate_usage()
        return run

    def save(self) -> "HardwareRun":
        """Write a planned run (its problems, then ``plan.json``) into ``run_dir``, under the folder's lock.

        Returns
        -------
        HardwareRun
            ``self``.

        Raises
        ------
        QSelectError
            If the folder already holds a hardware run or is in use by another command.
        """
        from ..io import lock_folder

        with lock_folder(self.run_dir, "hardware run directory", owner="qselect hardware submit"):
            _refuse_existing_plan(self.run_dir)  # again under the lock
            save_problems(self.run_dir / PROBLEMS_FILE, self.problems)
            self._write_plan()
        return self

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
        config = HardwareConfig.from_plan(plan["config"])
        if service is None:
            from .runtime import get_service

            service = get_service(config.backend, run_dir=run_dir, seed=config.seed,
                                  fractional_gates=config.fractional_gates)
        service.configure(sampler_options=plan.get("sampler_options", config.sampler_options()),
                          primitive=config.primitive)
        ids = list(plan["problem_ids"])
        run = cls(run_dir=run_dir, service=service, config=config,
                  problems=load_problems(run_dir / PROBLEMS_FILE, ids), meta=plan.get("meta", {}),
                  run_id=plan["run_id"], angles=plan.get("angles", {}), reference=plan.get("reference", {}),
                  resources=plan.get("resources", {}), circuits=circuits, pack_size=plan.get("pack_size"),
                  usage_estimate=plan.get("usage_estimate", {}), **kw)
        if run.circuits is None:
            run.circuits = QAOACircuits.for_config(service.backend, config)
        return run

    def _write_plan(self) -> None:
        atomic_write_json(self.run_dir / PLAN_FILE, {
            "run_id": self.run_id, "config": asdict(self.config), "backend": self.service.backend_name,
            "problem_ids": list(self.problems), "meta": self.meta, "angles": self.angles,
            "reference": self.reference, "resources": self.resources, "pack_size": self.pack_size,
            "sampler_options": self.config.sampler_options(), "usage_estimate": self.usage_estimate,
            # saved before the plan by a submit from a model: masks.pt must then be built from it
            "selection_context": (self.run_dir / "local_problems.json").exists()})

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
        """Compiled resources per problem, with the device limits and fidelity warnings.

        Compiled resources per problem ("before": one level-1 pass, as a reference), the device limit of 2-qubit gates
        per circuit, and a warning where the estimated fidelity is low.
        """
        e2q = self.service.two_qubit_error() or 1e-2
        if hasattr(self.circuits, "angles_hint"):
            self.circuits.angles_hint = dict(self.angles)
        limit = int(getattr(self.service, "max_two_qubit_gates", 400_000))
        for pid, pr in self.problems.items():
            r = dict(self.circuits.resources(pid, pr))
            if r.get("estimated_fidelity") is None:  # a circuit source without a Target: median 2q error
                r["estimated_fidelity"] = float((1.0 - e2q) ** int(r.get("two_qubit_gates", 0)))
            before = getattr(self.circuits, "baseline", None)
            if before is not None:
                r["before"] = before(pid, pr)
            self.resources[pid] = r
            if int(r.get("two_qubit_gates", 0)) > limit:
                raise QSelectError(f"problem {pid} compiles to {r['two_qubit_gates']} two-qubit gates, above the "
                                   f"device limit of {limit} per circuit; lower --qubits or --p")
            fid = float(r["estimated_fidelity"])
            if fid < self.config.fidelity_warning:
                log.warning("problem %s: %d two-qubit gates, depth %d on %s: estimated circuit fidelity %.2g, "
                            "so its samples are likely mostly noise; use a smaller --qubits or p=1",
                            pid, r.get("two_qubit_gates", 0), r.get("depth", 0), self.service.backend_name, fid)

    def _estimate_usage(self) -> None:
        """Estimate the quantum seconds the run will use, before submitting anything.

        Quantum seconds the run will use, from circuit durations × shots (plus the repetition delay and a per-job
        overhead), before anything is submitted; enforces ``max_execution_time`` and, on the Open Plan, warns above its
        10 minutes per 28 days.
        """
        cfg = self.config
        durations = {pid: self.circuits.duration(pid, pr) if hasattr(self.circuits, "duration") else None
                     for pid, pr in self.problems.items()}
        est = estimate_usage(durations, cfg, self.pack_size or len(self.problems),
                             rep_delay=float(getattr(self.service.backend, "default_rep_delay", None) or 250e-6))
        self.usage_estimate = est
        if cfg.max_execution_time and est["per_job_max_s"] > cfg.max_execution_time:
            raise QSelectError(f"a job is estimated to use {est['per_job_max_s']:.0f} s of quantum time, above "
                               f"max_execution_time={cfg.max_execution_time} s; raise --max-execution-time or "
                               "lower --shots / the number of problems")
        if cfg.open_plan and est["total_s"] > OPEN_PLAN_BUDGET_S:
            log.warning("estimated quantum time %.0f s exceeds the Open Plan's %.0f s per 28 days",
                        est["total_s"], OPEN_PLAN_BUDGET_S)
        log.info("estimated quantum time: %.1f s in %d jobs", est["total_s"], est["jobs"])

    # -- execution -------------------------------------------------------------
    def runner(self) -> JobRunner:
        """A :class:`JobRunner` over this run's service and ledger."""
        return JobRunner(self.service, Ledger(self.run_dir), self.run_id, timeout=self.timeout,
                         resubmit_failed=self.resubmit_failed, crash_hook=self.crash_hook, pack_size=self.pack_size)

    def _pub(self, pub_id: str, pid: str, angles) -> Pub:
        problem = self.problems[pid]
        return Pub(pub_id, lambda: self.circuits.bound(pid, problem, angles))

    def execute(self, wait: bool = True) -> dict | None:
        """Submit what the ledger lacks, wait, fetch, score; returns the report (None if not waiting).

        Holds the run directory's exclusive lock throughout, so two processes resuming the
        same run (two ``fetch``) can never both find a job unit unsubmitted and submit it twice:
        the second is refused at once with the first one's pid and command.

        Parameters
        ----------
        wait : bool

        Returns
        -------
        dict or None
        """
        from ..io import lock_folder

        with lock_folder(self.run_dir, "hardware run directory", owner="qselect hardware (submit/fetch)"):
            return self._execute(wait)

    def _execute(self, wait: bool) -> dict | None:
        jobs = self.runner()
        self._open_mode()
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
        from .masks import write_hardware_masks
        from .report import build_report, write_report

        report = build_report(self, hw, final_angles)
        # masks.pt (for runs planned from a model) before report.json: report.json is written last,
        # so its presence means every output of the run is complete
        write_hardware_masks(self.run_dir, report, self.console)
        write_report(self.run_dir, report)
        return report

    def _open_mode(self) -> None:
        """Choose the execution mode: Batch, Session or plain jobs.

        Batch for several independent jobs; a Session for the SPSA loop when asked (not on the Open Plan, which cannot
        open Sessions); plain job mode for a single job or when asked.
        """
        cfg = self.config
        mode = cfg.execution_mode
        several = cfg.strategy == "spsa" or len(self.problems) > (self.pack_size or 1)
        if mode == "session":
            self.service.open_session(cfg.max_execution_time and int(cfg.max_execution_time)
                                      * max(1, int(self.usage_estimate.get("jobs", 1))) or None)
        elif mode == "batch" or (mode == "auto" and several):
            self.service.open_batch()
        if cfg.open_plan and mode != "job" and several:
            log.warning("Open Plan: a Batch lives %.0f s, so the run is split into Batches that each end "
                        "before that (estimated %.0f s of quantum time in all)", OPEN_PLAN_BATCH_S,
                        float(self.usage_estimate.get("total_s", 0.0)))

    def _renew_batch(self, stage_s: float) -> None:
        """Renew the Batch before a stage that would outlast it (Open Plan).

        Open Plan: close the current Batch and let the next job open a fresh one when the next stage would end after the
        Batch's 10 minutes (a stage longer than that alone cannot be run).
        """
        if not self.config.open_plan:
            return
        if stage_s > OPEN_PLAN_BATCH_S:
            raise QSelectError(f"one SPSA stage is estimated at {stage_s:.0f} s of quantum time, longer than an "
                               f"Open Plan Batch lives ({OPEN_PLAN_BATCH_S:.0f} s); lower --spsa-shots or the "
                               "number of problems")
        age = self.service.mode_age()
        if age is not None and age + stage_s > OPEN_PLAN_BATCH_S:
            log.info("Open Plan: Batch is %.0f s old; the next stage (%.0f s) starts a new one", age, stage_s)
            self.service.close()
            self.service.open_batch()

    def _spsa(self, jobs: JobRunner):
        """Lockstep SPSA over all problems (Spall's gains); replayable from cached counts.

        Not qiskit-algorithms' SPSA: its ``minimize`` owns the loop (no ask/tell), draws from
        the global ``algorithm_globals.random`` and evaluates extra points, so it cannot run
        many problems in lockstep at one job per iteration (see README, Strategies).
        """
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
            self._renew_batch(float(self.usage_estimate.get("spsa_stage_s", 0.0)))
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


#: per-job overhead assumed by the usage estimate (seconds): loading, calibration checks, result upload
JOB_OVERHEAD_S = 2.0
#: duration assumed for a shot of a circuit whose Target reports no gate times (seconds)
DEFAULT_SHOT_S = 50e-6


def estimate_usage(durations: dict[str, float | None], config: HardwareConfig, pack_size: int,
                   rep_delay: float = 250e-6) -> dict:
    """Estimated quantum seconds of a run.

    Each shot costs the circuit's duration plus the repetition delay; each
    job adds ``JOB_OVERHEAD_S``. Strategy "sample": one stage of one PUB per
    problem; "spsa": ``spsa_iterations`` stages of two PUBs per problem at
    ``spsa_shots``, then a final stage at ``shots``.

    Parameters
    ----------
    durations : dict[str, float or None]
        Problem id -> duration of one shot (s); None falls back to ``DEFAULT_SHOT_S``.
    config : HardwareConfig
    pack_size : int
        PUBs per job.
    rep_delay : float
        Repetition delay between shots (s).

    Returns
    -------
    dict
        ``total_s``, ``jobs``, ``per_job_max_s``, ``per_stage_s`` (the largest stage), ``spsa_stage_s``
        (one SPSA iteration), ``shot_s`` (per problem), ``rep_delay_s``, ``job_overhead_s``.
    """
    shot = {pid: (d if d is not None else DEFAULT_SHOT_S) + rep_delay for pid, d in durations.items()}
    ids = list(shot)
    pack = max(1, int(pack_size))

    def stage(pub_ids: list[str], shots: int) -> tuple[float, int, float]:
        chunks = [pub_ids[i:i + pack] for i in range(0, len(pub_ids), pack)]
        per_job = [JOB_OVERHEAD_S + shots * sum(shot[p] for p in c) for c in chunks]
        return sum(per_job), len(per_job), max(per_job, default=0.0)

    stages = []
    if config.strategy == "spsa":
        pubs = [p for p in ids for _ in (0, 1)]
        stages += [stage(pubs, config.spsa_shots)] * int(config.spsa_iterations)
    stages.append(stage(ids, config.shots))
    return {"total_s": float(sum(s[0] for s in stages)), "jobs": int(sum(s[1] for s in stages)),
            "per_job_max_s": float(max(s[2] for s in stages)), "per_stage_s": float(max(s[0] for s in stages)),
            "spsa_stage_s": float(stages[0][0]) if config.strategy == "spsa" else 0.0,
            "shot_s": {pid: float(v) for pid, v in shot.items()}, "rep_delay_s": float(rep_delay),
            "job_overhead_s": JOB_OVERHEAD_S}


def ramp_angles(p: int) -> list[float]:
    """Linear-ramp (annealing-like) start: γ rises, β falls over the p layers.

    Parameters
    ----------
    p : int

    Returns
    -------
    list of float, length 2p
    """
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
                           f"`qselect hardware submit --device NAME --run-dir {run_dir}`")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise QSelectError(f"{path} is not valid JSON ({exc}); the run directory is damaged") from None
