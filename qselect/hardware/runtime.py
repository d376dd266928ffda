"""IBM Quantum through qiskit-ibm-runtime (the only module that imports it).

``get_service(name, run_dir)`` returns a ``Service``:
- ``fake_<device>`` (e.g. fake_manila, fake_sherbrooke): qiskit-ibm-runtime's
  noisy Aer model of that device, run locally through the same SamplerV2 path;
  no account needed. Results are kept under ``<run dir>/local_jobs`` so jobs
  can be fetched by id and found by tag exactly like IBM's.
- a device name, or ``least_busy``: IBM Quantum (channel
  ``ibm_quantum_platform``), account from the saved Qiskit account or
  ``QISKIT_IBM_TOKEN`` / ``QISKIT_IBM_INSTANCE``; SamplerV2 in job mode for a
  single job, Batch mode for several (Open Plan accounts cannot open Sessions).

Every call into the client is wrapped so its exceptions come out as one
redacted line (the token never reaches a file, a log or an error).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from ..errors import BackendUnavailableError, QSelectError
from ..io import atomic_write_json
from .redact import redact, register_secret, sanitised_errors
from .service import Service, normalise_status

CHANNEL = "ibm_quantum_platform"
LOCAL_JOBS = "local_jobs"

NO_ACCOUNT = (
    "no IBM Quantum account found: save one once with "
    "`python -c \"from qiskit_ibm_runtime import QiskitRuntimeService as S; "
    "S.save_account(channel='ibm_quantum_platform', token='<API key>', instance='<CRN>')\"` "
    "or set QISKIT_IBM_TOKEN (and QISKIT_IBM_INSTANCE); without an account use --device fake_<device> "
    "(e.g. fake_manila, a noisy local model) or a simulator (`qselect select --solver qaoa --backend native`)"
)


def _runtime():
    try:
        import qiskit_ibm_runtime
    except ImportError:
        raise BackendUnavailableError(
            "qiskit-ibm-runtime is not installed; install it with: pip install 'qselect[ibm]'") from None
    return qiskit_ibm_runtime


#: sampler implementations: the client-side sampler built on the Executor (qiskit-ibm-runtime >= 0.50,
#: the successor) and the server-side SamplerV2 (deprecated since 0.50, kept for older clients)
PRIMITIVES = ("executor", "legacy")


def sampler_class(primitive: str = "executor"):
    """The Sampler class for ``primitive`` ("executor" or "legacy"), both taking ``(mode=, options=)``.

    The two share the option names qselect sets (``dynamical_decoupling``,
    ``twirling``, ``max_execution_time``, ``environment.job_tags``,
    ``simulator.seed_simulator``) and return the same ``PrimitiveResult``.
    The legacy class emits its own DeprecationWarning (not silenced).

    Parameters
    ----------
    primitive : {"executor", "legacy"}

    Returns
    -------
    type

    Raises
    ------
    QSelectError
        On an unknown primitive.
    """
    rt = _runtime()
    if primitive == "executor":
        try:
            from qiskit_ibm_runtime.executor_sampler import Sampler
        except ImportError:
            raise BackendUnavailableError(
                f"qiskit-ibm-runtime {getattr(rt, '__version__', '?')} has no client-side (executor) sampler; "
                "upgrade it (pip install -U 'qiskit-ibm-runtime>=0.50') or set primitive='legacy'") from None
        return Sampler
    if primitive == "legacy":
        return rt.SamplerV2
    raise QSelectError(f"unknown primitive {primitive!r}; choose one of {', '.join(PRIMITIVES)}")


def _sampler(mode, options: dict, primitive: str = "executor"):
    return sampler_class(primitive)(mode=mode, options=options)


def job_options(sampler_options: dict, tag: str) -> dict:
    """The sampler options of one job: the run's options plus its tag (a deep copy).

    Parameters
    ----------
    sampler_options : dict
    tag : str

    Returns
    -------
    dict
    """
    opts = json.loads(json.dumps(sampler_options or {}))
    opts.setdefault("environment", {})["job_tags"] = [tag]
    return opts


def _job_usage(job) -> float | None:
    """Quantum seconds the service reports for a finished job (None where it reports none)."""
    try:
        usage = job.usage()
    except Exception:  # noqa: BLE001 - usage is informative; never fail a fetch over it
        return None
    return None if usage is None else float(usage)


def _counts(pub_result) -> dict[str, int]:
    data = pub_result.data
    names = list(data.keys())
    if not names:
        raise QSelectError("a job result holds no measured bits; circuits must end in measure_all()")
    # measure_all() writes one register ("meas"); circuits with several are joined bit 0 last
    reg = getattr(data, "meas", None) or getattr(data, names[0])
    return {str(k): int(v) for k, v in reg.get_counts().items()}


def fake_backend(name: str):
    """A ``fake_<device>`` backend from qiskit_ibm_runtime.fake_provider.

    Parameters
    ----------
    name : str
        ``fake_manila``, ``fake_sherbrooke``, ...

    Returns
    -------
    qiskit backend

    Raises
    ------
    QSelectError
        Listing the available fake devices when ``name`` is unknown.
    """
    from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        provider = FakeProviderForBackendV2()
        try:
            return provider.backend(name)
        except Exception:  # noqa: BLE001 - QiskitBackendNotFoundError
            names = sorted(b.name for b in provider.backends())
    raise QSelectError(f"unknown fake backend {name!r}; valid names include {', '.join(names[:12])}, ... "
                       "(any fake_<device> of qiskit_ibm_runtime.fake_provider)")


def _median_2q_error(backend) -> float | None:
    """Median error of the device's two-qubit gates from its Target (duck-typed)."""
    try:
        target = backend.target
        errs = []
        for op_name in target.operation_names:
            props = target[op_name]
            for qargs, p in (props or {}).items():
                if qargs is not None and len(qargs) == 2 and p is not None and p.error is not None:
                    errs.append(float(p.error))
        if errs:
            errs.sort()
            return errs[len(errs) // 2]
    except Exception:  # noqa: BLE001 - properties are optional; the warning falls back to a default
        return None
    return None


class LocalService(Service):
    """A ``fake_<device>`` backend run locally (noisy Aer) with IBM-like job bookkeeping."""

    is_simulator = True
    poll_interval = 0.0

    def __init__(self, name: str, run_dir=None, seed: int = 0):
        self.backend_name = name
        self._backend = fake_backend(name)
        self.num_qubits = int(self._backend.num_qubits)
        self.seed = int(seed)
        self.store = Path(run_dir) / LOCAL_JOBS if run_dir is not None else None
        self._memory: dict[str, dict] = {}

    @property
    def backend(self):
        """The backend object circuits are transpiled for (see :meth:`Service.backend`)."""
        return self._backend

    def submit(self, circuits, shots, tag):
        """Submit one job (one PUB per circuit) tagged ``tag``; returns its job id (see :meth:`Service.submit`).

        Parameters
        ----------
        circuits : list of qiskit.QuantumCircuit
            ISA circuits, one PUB each.
        shots : int
        tag : str
            Client tag, also sent as the IBM job tag.

        Returns
        -------
        str
            The job id.
        """
        # Local jobs run to completion here, and the outcome is stored (with its
        # tag) before the id is returned: like a real service, it outlives the client.
        # seed + 1: the local runtime drops a seed of 0 (it tests the value's truthiness)
        opts = job_options(self.sampler_options, tag)
        opts["simulator"] = {"seed_simulator": self.seed + 1}
        with sanitised_errors(f"running on {self.backend_name}"):
            runnable = [self._native(c) for c in circuits]
            job = _sampler(self._backend, opts, self.primitive).run(runnable, shots=int(shots))
            result = job.result()
            record = {"job_id": job.job_id(), "tag": tag, "status": "DONE",
                      "counts": [_counts(r) for r in result], "usage": _job_usage(job)}
        self._put(record)
        return record["job_id"]

    def _native(self, circuit):
        """Rewrite fractional RZZ/RX gates in the device's native basis.

        Fractional RZZ/RX gates rewritten in the device's native basis: the fake device's noise model knows only its
        reported gates, so it cannot show the gain fractional gates bring.
        """
        names = set(self._backend.target.operation_names)
        if all(inst.operation.name in names or inst.operation.name == "barrier" for inst in circuit.data):
            return circuit
        from ..circuits.routing import to_native_basis

        return to_native_basis(circuit, self._backend)

    def usage(self, job_id):
        """Quantum seconds charged for a finished job, if reported (see :meth:`Service.usage`).

        Parameters
        ----------
        job_id : str

        Returns
        -------
        float or None
            Seconds.
        """
        return self._get(job_id).get("usage")

    def _put(self, record):
        self._memory[record["job_id"]] = record
        if self.store is not None:
            atomic_write_json(self.store / f"{record['job_id']}.json", record)

    def _get(self, job_id) -> dict:
        if job_id in self._memory:
            return self._memory[job_id]
        path = None if self.store is None else self.store / f"{job_id}.json"
        if path is not None and path.exists():
            try:
                rec = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(rec, dict) or not {"job_id", "status", "counts"} <= set(rec):
                    raise ValueError("missing job_id/status/counts")
            except ValueError as exc:
                raise QSelectError(f"local job file {path} is damaged ({exc}); delete it and run "
                                   f"`qselect hardware fetch --run-dir {self.store.parent} --resubmit-failed` to "
                                   "run that job again on the fake device") from None
            self._memory[job_id] = rec
            return rec
        raise QSelectError(f"local job {job_id} is unknown; fake backends keep their jobs in the run "
                           f"directory's {LOCAL_JOBS}/ folder")

    def status(self, job_id):
        """The job's normalised state, one of ``STATES`` (see :meth:`Service.status`).

        Parameters
        ----------
        job_id : str

        Returns
        -------
        str
        """
        return self._get(job_id)["status"]

    def result(self, job_id):
        """Counts per PUB of a finished job, bit 0 first as measured (see :meth:`Service.result`).

        Parameters
        ----------
        job_id : str

        Returns
        -------
        list of dict of str -> int
            Counts per PUB.
        """
        rec = self._get(job_id)
        if rec["status"] != "DONE":
            raise QSelectError(f"local job {job_id} is {rec['status']}")
        return rec["counts"]

    def find_jobs(self, tag):
        """Ids of the jobs tagged ``tag``, oldest first: the crash-recovery lookup (see :meth:`Service.find_jobs`).

        Parameters
        ----------
        tag : str

        Returns
        -------
        list of str
        """
        if self.store is None or not self.store.exists():
            return [j for j, r in self._memory.items() if r["tag"] == tag]
        found = []
        for f in sorted(self.store.glob("*.json")):
            try:
                rec = json.loads(f.read_text(encoding="utf-8"))
            except ValueError:
                continue
            if rec.get("tag") == tag:
                found.append(rec["job_id"])
        return found

    def cancel(self, job_id):
        """Ask for the job to be cancelled (see :meth:`Service.cancel`).

        Parameters
        ----------
        job_id : str
        """
        return None  # local jobs finish inside submit

    def two_qubit_error(self):
        """Median two-qubit gate error of the device, if its properties give one."""
        return _median_2q_error(self._backend)


class RuntimeService(Service):
    """IBM Quantum Platform through QiskitRuntimeService + SamplerV2 (job or Batch mode)."""

    poll_interval = 10.0
    # A job created just before a crash (or by a submit whose reply was lost) may be
    # listed by tag a little later; resuming waits this long after the last attempt
    # before trusting an empty lookup (only when resuming within that time).
    listing_lag = 30.0

    def __init__(self, name: str | None, min_qubits: int = 1, account_file: str | None = None,
                 fractional_gates: bool = False):
        rt = _runtime()
        from qiskit_ibm_runtime.accounts import AccountManager, AccountNotFoundError

        try:  # the saved token is a secret before the client (or its errors) ever sees it
            register_secret(AccountManager.get(filename=account_file, channel=CHANNEL).token)
        except Exception:  # noqa: BLE001 - no saved account: the constructor below says so
            pass
        missing = False
        with sanitised_errors("loading the IBM Quantum account"):
            try:
                kw = {"filename": account_file} if account_file else {}
                self.client = rt.QiskitRuntimeService(channel=CHANNEL, **kw)
            except AccountNotFoundError:
                missing = True
        if missing:
            raise BackendUnavailableError(NO_ACCOUNT)
        try:
            register_secret(self.client.active_account().get("token"))
        except Exception:  # noqa: BLE001 - only used to widen redaction
            pass
        with sanitised_errors(f"finding backend {name or 'least busy'}"):
            if name in (None, "", "least_busy"):
                # least_busy already keeps online, non-mock devices; extra filters take its slow path
                kw = {"use_fractional_gates": True} if fractional_gates else {}
                self._backend = self.client.least_busy(min_num_qubits=int(min_qubits), **kw)
            else:
                # use_fractional_gates: the Target lists RZZ(0 < θ ≤ π/2) and RX (Heron devices)
                kw = {"use_fractional_gates": True} if fractional_gates else {}
                self._backend = self.client.backend(name, **kw)
        self.backend_name = self._backend.name
        self.num_qubits = int(self._backend.num_qubits)
        # (IBMBackend.max_circuits is None since 0.4x: the Service defaults bound the packing)
        self._batch = None
        self.use_batch = False
        self.use_session = False
        self.session_max_time: int | None = None
        self.batches_opened = 0
        self.sessions_opened = 0
        self._opened_at: float | None = None
        self._jobs: dict[str, object] = {}

    @property
    def backend(self):
        """The backend object circuits are transpiled for (see :meth:`Service.backend`)."""
        return self._backend

    def open_batch(self) -> None:
        """Use Batch mode for the following submissions.

        Use Batch mode for the following submissions (created at the first one, so a resumed run with nothing left to
        submit opens none; ``close()`` ends it).
        """
        self.use_batch = True

    def open_session(self, max_time: int | None = None) -> None:
        """Use a Session for the following submissions.

        Iterative SPSA: the device stays reserved between iterations; not available on the Open Plan.

        Parameters
        ----------
        max_time : int or None
            Session time limit, seconds.
        """
        self.use_session, self.session_max_time = True, max_time

    def mode_age(self) -> float | None:
        """Seconds since the current Batch/Session was opened (``None``: none open)."""
        import time

        return None if self._opened_at is None else time.monotonic() - self._opened_at

    def submit(self, circuits, shots, tag):
        """Submit one job (one PUB per circuit) tagged ``tag``; returns its job id (see :meth:`Service.submit`).

        Parameters
        ----------
        circuits : list of qiskit.QuantumCircuit
            ISA circuits, one PUB each.
        shots : int
        tag : str
            Client tag, also sent as the IBM job tag.

        Returns
        -------
        str
            The job id.
        """
        import time

        if (self.use_session or self.use_batch) and self._batch is None:
            kind = "Session" if self.use_session else "Batch"
            with sanitised_errors(f"opening a {kind}"):
                if self.use_session:
                    self._batch = _runtime().Session(backend=self._backend, max_time=self.session_max_time)
                    self.sessions_opened += 1
                else:
                    self._batch = _runtime().Batch(backend=self._backend)
                    self.batches_opened += 1
            self._opened_at = time.monotonic()
        mode = self._batch if self._batch is not None else self._backend
        opts = job_options(self.sampler_options, tag)
        with sanitised_errors(f"submitting to {self.backend_name}"):
            job = _sampler(mode, opts, self.primitive).run(list(circuits), shots=int(shots))
            job_id = job.job_id()
        self._jobs[job_id] = job
        return job_id

    def usage(self, job_id):
        """Quantum seconds charged for a finished job, if reported (see :meth:`Service.usage`).

        Parameters
        ----------
        job_id : str

        Returns
        -------
        float or None
            Seconds.
        """
        return _job_usage(self._job(job_id))

    def _job(self, job_id):
        if job_id not in self._jobs:
            with sanitised_errors(f"retrieving job {job_id}"):
                self._jobs[job_id] = self.client.job(job_id)
        return self._jobs[job_id]

    def status(self, job_id):
        """The job's normalised state, one of ``STATES`` (see :meth:`Service.status`).

        Parameters
        ----------
        job_id : str

        Returns
        -------
        str
        """
        with sanitised_errors(f"asking the status of job {job_id}"):
            return normalise_status(self._job(job_id).status())

    def result(self, job_id):
        """Counts per PUB of a finished job, bit 0 first as measured (see :meth:`Service.result`).

        Parameters
        ----------
        job_id : str

        Returns
        -------
        list of dict of str -> int
            Counts per PUB.
        """
        with sanitised_errors(f"fetching the result of job {job_id}"):
            return [_counts(r) for r in self._job(job_id).result()]

    def find_jobs(self, tag):
        """Ids of the jobs tagged ``tag``, oldest first: the crash-recovery lookup (see :meth:`Service.find_jobs`).

        Parameters
        ----------
        tag : str

        Returns
        -------
        list of str
        """
        with sanitised_errors(f"looking up jobs tagged {tag}"):
            jobs = self.client.jobs(job_tags=[tag], limit=20, descending=False)
        return [j.job_id() for j in jobs]

    def cancel(self, job_id):
        """Ask for the job to be cancelled (see :meth:`Service.cancel`).

        Parameters
        ----------
        job_id : str
        """
        with sanitised_errors(f"cancelling job {job_id}"):
            self._job(job_id).cancel()

    def error_message(self, job_id):
        """The service's (redacted) error message for a failed job, if any.

        Parameters
        ----------
        job_id : str

        Returns
        -------
        str or None
        """
        try:
            return redact(self._job(job_id).error_message() or "")
        except Exception:  # noqa: BLE001
            return None

    def two_qubit_error(self):
        """Median two-qubit gate error of the device, if its properties give one."""
        return _median_2q_error(self._backend)

    def close(self):
        """Close an open Batch/Session; submitted jobs keep running (see :meth:`Service.close`)."""
        if self._batch is not None:
            with sanitised_errors("closing the Batch"):
                self._batch.close()  # no new jobs; submitted ones still run
            self._batch = None
            self._opened_at = None


def get_service(name: str, run_dir=None, *, min_qubits: int = 1, seed: int = 0,
                account_file: str | None = None, fractional_gates: bool = False) -> Service:
    """The service for ``--device NAME``: ``fake_<device>``, an IBM device name, or ``least_busy``.

    Parameters
    ----------
    name : str
        ``fake_<device>``, an IBM device name, or ``least_busy``.
    run_dir : str, os.PathLike or None
        Where a local fake service keeps its jobs (so they outlive the process).
    min_qubits : int
        For ``least_busy``.
    seed : int
        Simulator seed of fake devices.
    account_file : str or None
    fractional_gates : bool

    Returns
    -------
    Service

    Raises
    ------
    QSelectError
        With no IBM account (saying how to save one, and that fake devices need none).
    """
    if not name:
        raise QSelectError("no device given; use --device with an IBM device name, least_busy, "
                           "or fake_<device> (e.g. fake_manila) to run locally without an account")
    if name.startswith("fake_"):
        return LocalService(name, run_dir=run_dir, seed=seed)
    return RuntimeService(name, min_qubits=min_qubits, account_file=account_file, fractional_gates=fractional_gates)
