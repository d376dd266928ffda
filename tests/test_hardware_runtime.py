"""RuntimeService (the IBM path) against a stand-in QiskitRuntimeService: no network, real SamplerV2/Batch.

The stand-in hands out a fake device, so SamplerV2 and Batch run in
qiskit-ibm-runtime's local mode: every line of RuntimeService except the
HTTP calls inside the client runs for real.
"""
from __future__ import annotations

import pytest
import qiskit_ibm_runtime as rt
from qiskit_ibm_runtime import (
    QiskitRuntimeService,  # the real class, before the stub replaces it
    executor_sampler,
)
from qiskit_ibm_runtime.fake_provider import FakeManilaV2

from qselect import QUBO
from qselect.hardware import HardwareError, Ledger, api
from qselect.hardware.runner import HardwareConfig
from qselect.hardware.runtime import CHANNEL, RuntimeService, get_service

TOKEN = "tok-SECRET-0123456789abcdefXYZ"


class StubClient:
    """QiskitRuntimeService stand-in: one fake device, jobs known by id and tags (the 'server')."""

    server_jobs: dict = {}
    created: list = []

    def __init__(self, channel=None, **kw):
        assert channel == CHANNEL
        StubClient.created.append(kw)
        self._backend = FakeManilaV2()

    def backend(self, name, **kw):
        if name != "ibm_manila":
            raise RuntimeError(f"backend {name} not found (request with token {TOKEN})")
        return self._backend

    def least_busy(self, min_num_qubits=None, **kw):
        assert min_num_qubits <= self._backend.num_qubits
        return self._backend

    def job(self, job_id):
        return StubClient.server_jobs[job_id][0]

    def jobs(self, job_tags=None, limit=10, descending=True, **kw):
        return [j for j, tags in StubClient.server_jobs.values() if set(job_tags or []) <= set(tags)]

    def active_account(self):
        return {"channel": CHANNEL, "token": TOKEN}


class ServerJob:
    """A job as the server keeps it: its result can be read any number of times (the local-mode job
    of the executor sampler post-processes twirled results in place, so a second read would fail)."""

    def __init__(self, job):
        self._job, self._result = job, None

    def result(self):
        if self._result is None:
            self._result = self._job.result()
        return self._result

    def __getattr__(self, name):
        return getattr(self._job, name)


@pytest.fixture
def stub(monkeypatch):
    StubClient.server_jobs = {}
    StubClient.created = []
    monkeypatch.setattr(rt, "QiskitRuntimeService", StubClient)
    # The server side: every job either sampler creates is registered with its tags and options.
    StubClient.options = {}

    def recording(real_sampler):
        class RecordingSampler(real_sampler):
            def run(self, pubs, *, shots=None, dry_run=False):
                job = ServerJob(super().run(pubs, shots=shots))
                StubClient.server_jobs[job.job_id()] = (job, list(self.options.environment.job_tags or []))
                StubClient.options[job.job_id()] = (real_sampler, self.options)
                return job
        return RecordingSampler

    monkeypatch.setattr(rt, "SamplerV2", recording(rt.SamplerV2))
    monkeypatch.setattr(executor_sampler, "Sampler", recording(executor_sampler.Sampler))
    return StubClient


def problems():
    return {f"p{i}": QUBO.random(3, seed=20 + i) for i in range(3)}


def test_runtime_service_batch_submit_fetch_resume(stub, tmp_path):
    svc = get_service("ibm_manila", run_dir=tmp_path)
    assert isinstance(svc, RuntimeService) and svc.backend_name == "fake_manila"
    svc.max_pubs_per_job = 2  # two jobs: Batch mode
    report = api.submit(problems(), "ibm_manila", tmp_path, HardwareConfig(backend="ibm_manila", shots=256),
                        service=svc)
    assert svc.batches_opened == 1 and svc._batch is None  # closed after the run; jobs keep running
    recs = list(Ledger(tmp_path).records().values())
    assert len(recs) == 2 and all(r.has_result for r in recs)
    # job tags reached the service, so a lost id can be found again
    for r in recs:
        assert StubClient.server_jobs[r.job_id][1] == [r.tag]
        assert svc.find_jobs(r.tag) == [r.job_id]
    assert all(row["hardware_energy"] == pytest.approx(row["exact_energy"]) for row in report["problems"])
    # a new process (new client) resumes from the ledger without touching the service
    n_jobs = len(StubClient.server_jobs)
    resumed = get_service("least_busy", run_dir=tmp_path)
    again = api.fetch(tmp_path, service=resumed)
    assert len(StubClient.server_jobs) == n_jobs and again["problems"] == report["problems"]
    assert resumed.batches_opened == 0  # nothing left to submit: no Batch opened
    # one job fits everything: job mode, no Batch
    single = get_service("ibm_manila", run_dir=tmp_path / "one")
    api.submit({"x": QUBO.random(3, seed=1)}, "ibm_manila", tmp_path / "one",
               HardwareConfig(backend="ibm_manila", shots=64), service=single)
    assert single.batches_opened == 0
    # results by job id alone, through a fresh client
    fresh = get_service("ibm_manila")
    counts = fresh.result(recs[0].job_id)
    assert len(counts) == 2 and sum(counts[0].values()) == 256
    assert fresh.status(recs[0].job_id) == "DONE"


def test_runtime_errors_are_redacted(stub, tmp_path, monkeypatch):
    monkeypatch.setenv("QISKIT_IBM_TOKEN", "env-token-should-not-leak-42")
    with pytest.raises(HardwareError) as info:
        get_service("ibm_nowhere", run_dir=tmp_path)
    msg = str(info.value)
    assert TOKEN not in msg and "***" in msg and "ibm_nowhere" in msg
    assert info.value.__cause__ is None

    class Exploding(StubClient):
        def __init__(self, channel=None, **kw):
            raise ConnectionError("handshake failed for apikey=env-token-should-not-leak-42")

    monkeypatch.setattr(rt, "QiskitRuntimeService", Exploding)
    with pytest.raises(HardwareError) as info:
        get_service("ibm_manila")
    assert "env-token-should-not-leak-42" not in str(info.value) and "ConnectionError" in str(info.value)


def test_saved_account_file_is_passed_through(stub, tmp_path):
    get_service("ibm_manila", account_file=str(tmp_path / "acct.json"))
    assert StubClient.created[-1] == {"filename": str(tmp_path / "acct.json")}


def test_saved_account_token_is_masked_even_in_errors_raised_while_loading_it(stub, tmp_path, monkeypatch):
    """The saved token is registered before the client exists, so even a bare token in its error is masked."""
    saved = "savedTok3n0123456789abcdefXYZ"
    acct = str(tmp_path / "acct.json")
    QiskitRuntimeService.save_account(channel=CHANNEL, token=saved, filename=acct,
                                      instance="crn:v1:bluemix:public:quantum-computing:us-east:a/x:y::")

    class Refusing(StubClient):
        def __init__(self, channel=None, **kw):
            raise PermissionError(f"could not authenticate {saved}")

    monkeypatch.setattr(rt, "QiskitRuntimeService", Refusing)
    with pytest.raises(HardwareError) as info:
        get_service("ibm_manila", account_file=acct)
    assert saved not in str(info.value) and "***" in str(info.value) and "PermissionError" in str(info.value)


def test_spsa_runs_in_a_session_when_asked(stub, tmp_path):
    svc = get_service("ibm_manila", run_dir=tmp_path)
    config = HardwareConfig(backend="ibm_manila", strategy="spsa", spsa_iterations=1, spsa_shots=32, shots=32,
                            execution_mode="session", transpile_seeds=1)
    report = api.submit({"a": QUBO.random(3, seed=4)}, "ibm_manila", tmp_path, config, service=svc)
    assert svc.sessions_opened == 1 and svc.batches_opened == 0 and svc._batch is None
    assert len(report["problems"][0]["jobs"]) == 2  # one SPSA stage, one final stage
