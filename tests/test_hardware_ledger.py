"""Job ledger, fake service and crash-resume: no lost work, no double spend, no leaked token."""
from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from qselect import QUBO
from qselect.errors import QSelectError
from qselect.hardware import FakeService, HardwareError, Ledger, SimulatedCrash, api, redact
from qselect.hardware.jobs import JobRunner, Pub
from qselect.hardware.runner import HardwareConfig, HardwareRun, counts_to_bits, ramp_angles, score_counts
from qselect.solvers.base import make_result

N_PROBLEMS = 7  # with 2 PUBs per job: 4 jobs, the last one half full


class Circuits:
    """Circuit double: carries the problem and angles; the fake service samples from it."""

    def resources(self, pid, problem):
        return {"qubits": problem.n, "depth": 3, "two_qubit_gates": 2}

    def bound(self, pid, problem, angles):
        c = SimpleNamespace(num_clbits=problem.n, pid=pid, angles=tuple(np.round(angles, 12)))
        return c, f"{pid}:{c.angles}"


class Simulator:
    """Reference double: the exact optimum with fixed angles (the real QAOA solver is tested elsewhere)."""

    def solve(self, problem):
        cv = problem.cost_vector()
        i = int(np.argmin(cv))
        r = make_result(problem, [(i >> b) & 1 for b in range(problem.n)], "sim")
        r.angles = np.array([0.4, 0.3])
        r.expectation = float(cv.mean())
        return r


def biased_sampler(circuit, shots, rng):
    """Bitstrings biased towards ones so best bitstrings vary between problems."""
    bits = (rng.random((shots, circuit.num_clbits)) < 0.6).astype(np.uint8)
    out = {}
    for row in bits:
        k = "".join(map(str, row[::-1]))
        out[k] = out.get(k, 0) + 1
    return out


def problems():
    return {f"p{i}": QUBO.random(4, seed=10 + i) for i in range(N_PROBLEMS)}


def make_service(**kw):
    return FakeService(max_pubs_per_job=2, sampler=biased_sampler, seed=3, **kw)


class Hook:
    """Runner-side crash points: raise at the n-th time ``point`` is reached (once)."""

    def __init__(self, points=()):
        self.points = set(points)
        self.seen = {}

    def __call__(self, point):
        self.seen[point] = self.seen.get(point, 0) + 1
        if (point, self.seen[point]) in self.points:
            self.points.discard((point, self.seen[point]))
            raise SimulatedCrash(f"crash at {point} #{self.seen[point]}")


def run_to_completion(run_dir, svc, hook, config, max_restarts=30):
    """Start (or resume after each simulated crash) until the run finishes; returns (report, restarts)."""
    restarts = 0
    while True:
        try:
            if not (run_dir / "plan.json").exists():
                run = HardwareRun.create(run_dir, svc, config, problems(), circuits=Circuits(),
                                         simulator=Simulator(), crash_hook=hook)
            else:  # a fresh process: everything comes from the run directory
                run = HardwareRun.load(run_dir, service=svc, circuits=Circuits(), crash_hook=hook)
            return run.execute(), restarts
        except SimulatedCrash:
            restarts += 1
            assert restarts < max_restarts


def check_run(run_dir, svc, report, config):
    """Every problem solved exactly once, no duplicate submission, no lost result, ledger parses."""
    stages = 1 if config.strategy == "sample" else config.spsa_iterations + 1
    jobs_per_stage = -(-N_PROBLEMS * (1 if config.strategy == "sample" else 2) // 2)
    final_jobs = -(-N_PROBLEMS // 2)
    expected_jobs = final_jobs + (stages - 1) * jobs_per_stage
    # zero duplicate submissions: one server-side job per job unit (tag)
    per_tag = svc.submissions_per_tag()
    assert all(v == 1 for v in per_tag.values()), per_tag
    assert len(svc.submissions) == expected_jobs
    # the ledger parses line by line, and every job unit has its result cached
    lines = (run_dir / "ledger.jsonl").read_text().splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines)
    recs = Ledger(run_dir).records()
    assert len(recs) == expected_jobs and all(r.has_result and r.job_id for r in recs.values())
    assert sorted(r.job_id for r in recs.values()) == sorted(svc.jobs)
    # every problem solved exactly once, scored from the counts the service produced
    rows = {r["problem"]: r for r in report["problems"]}
    assert sorted(rows) == sorted(problems())
    probs = problems()
    if config.strategy == "sample":
        for pid, row in rows.items():
            assert len(row["jobs"]) == 1
            job = svc.jobs[row["jobs"][0]]
            counts = job.counts[[c.pid for c in job.circuits].index(pid)]
            expect = score_counts(probs[pid], counts)
            assert row["hardware_energy"] == pytest.approx(expect["energy"])
            assert row["hardware_bits"] == expect["bits"]
            assert probs[pid].energy(np.array([int(b) for b in row["hardware_bits"]])) == pytest.approx(
                row["hardware_energy"])
            assert row["hardware_gap"] >= -1e-9


# 20 crash points over submit / wait / fetch, on both sides of every ledger write.
CRASHES = [
    ({("submit", 1, "before")}, ()),
    ({("submit", 1, "after")}, ()),  # job exists, its id never reached the ledger
    ({("submit", 3, "after")}, ()),
    ({("submit", 4, "before")}, ()),
    ({("submit", 2, "after"), ("find_jobs", 1, "before")}, ()),
    ({("submit", 2, "after"), ("find_jobs", 1, "after")}, ()),
    ({("status", 1, "before")}, ()),
    ({("status", 2, "after")}, ()),
    ({("status", 6, "before")}, ()),
    ({("result", 1, "before")}, ()),
    ({("result", 1, "after")}, ()),  # fetched, not yet cached
    ({("result", 4, "after")}, ()),
    (set(), [("after_intent", 1)]),  # intent on disk, nothing submitted
    (set(), [("after_submit", 2)]),  # submitted, ledger line not written
    (set(), [("after_submitted", 4)]),
    (set(), [("after_status", 3)]),
    (set(), [("after_result", 2)]),
    (set(), [("after_result_cached", 1)]),  # cached, ledger line not written
    (set(), [("after_result_line", 4)]),  # everything fetched, report not written
    ({("submit", 3, "after"), ("status", 3, "before")}, [("after_lookup", 1), ("after_result_cached", 2)]),
]


@pytest.mark.parametrize("service_points,hook_points", CRASHES)
def test_crash_resume_sample_strategy(tmp_path, service_points, hook_points):
    svc = make_service(crash_at=service_points)
    config = HardwareConfig(backend=svc.backend_name, shots=64)
    report, restarts = run_to_completion(tmp_path / "run", svc, Hook(hook_points), config)
    assert restarts == len(service_points) + len(hook_points)  # every crash point really fired
    assert not svc.crash_at
    check_run(tmp_path / "run", svc, report, config)
    # a rerun costs nothing: no new submissions, no service calls for results
    before = (len(svc.submissions), svc.calls.get("result", 0))
    again = HardwareRun.load(tmp_path / "run", service=svc, circuits=Circuits()).execute()
    assert (len(svc.submissions), svc.calls.get("result", 0)) == before
    assert again["problems"] == report["problems"]


@pytest.mark.parametrize("service_points,hook_points", [
    (set(), ()),
    ({("submit", 5, "after")}, [("after_result_cached", 7)]),
    ({("result", 9, "before")}, [("after_submit", 3)]),
])
def test_crash_resume_spsa_replays_without_resubmitting(tmp_path, service_points, hook_points):
    svc = make_service(crash_at=service_points)
    config = HardwareConfig(backend=svc.backend_name, strategy="spsa", spsa_iterations=3, spsa_shots=32, shots=64)
    report, restarts = run_to_completion(tmp_path / "run", svc, Hook(hook_points), config)
    assert restarts == len(service_points) + len(hook_points)
    check_run(tmp_path / "run", svc, report, config)
    # the replayed angles equal those of an uninterrupted run with the same seeds
    clean_svc = make_service()
    clean, _ = run_to_completion(tmp_path / "clean", clean_svc, Hook(), config)
    for a, b in zip(report["problems"], clean["problems"]):
        assert a["angles"] == b["angles"]  # exact replay: same seeds, same cached counts
        # SPSA moved every angle off the ramp start
        assert np.all(np.abs(np.array(a["angles"]) - ramp_angles(1)) > 1e-3)


def test_torn_last_line_is_skipped_and_next_append_starts_fresh(tmp_path):
    led = Ledger(tmp_path)
    led.append("intent", tag="t1", key="k", backend="b", problem_ids=["a"], circuit_hashes=["h"], shots=4)
    with open(led.path, "a") as fh:
        fh.write('{"event": "submitted", "tag": "t1", "job_')  # crash mid-write
    with pytest.warns(UserWarning, match="torn write"):
        assert led.records()["t1"].job_id is None
    led.append("submitted", tag="t1", key="k", job_id="J1", backend="b", problem_ids=["a"])
    with pytest.warns(UserWarning):
        rec = led.records()["t1"]
    assert rec.job_id == "J1" and rec.status == "QUEUED"


def test_pack_respects_pub_and_execution_limits():
    svc = FakeService(max_pubs_per_job=5, max_executions_per_job=3000)
    runner = JobRunner(svc, Ledger("/nonexistent"), "r")
    pubs = [Pub(str(i), lambda: (None, "")) for i in range(12)]
    assert [len(b) for b in runner.pack(pubs, 1000)] == [3, 3, 3, 3]
    assert [len(b) for b in runner.pack(pubs, 100)] == [5, 5, 2]


def test_counts_are_little_endian_and_scored_by_the_problem():
    q = QUBO(np.zeros((3, 3)), linear=[1.0, -2.0, 0.5])
    bits, cnt = counts_to_bits({"010": 5, "001": 2}, 3)  # "010" = bit 1 set
    assert bits.tolist() == [[0, 1, 0], [1, 0, 0]] and cnt.tolist() == [5, 2]
    s = score_counts(q, {"010": 5, "001": 2})
    assert s["bits"] == "010" and s["energy"] == -2.0 and s["mean_energy"] == pytest.approx((5 * -2 + 2 * 1) / 7)


def test_failed_job_raises_then_resubmits_only_on_request(tmp_path):
    svc = make_service(fail_jobs={2})
    config = HardwareConfig(backend=svc.backend_name, shots=16)
    run = HardwareRun.create(tmp_path, svc, config, problems(), circuits=Circuits(), simulator=Simulator())
    with pytest.raises(HardwareError, match="ERROR.*--resubmit-failed"):
        run.execute()
    with pytest.raises(HardwareError):  # resuming alone does not spend again
        HardwareRun.load(tmp_path, service=svc, circuits=Circuits()).execute()
    assert len(svc.submissions) == 4
    report = api.fetch(tmp_path, service=svc, circuits=Circuits(), resubmit_failed=True)
    assert len(svc.submissions) == 5 and len(report["problems"]) == N_PROBLEMS
    rows = api.status(tmp_path, service=svc)
    assert [r["status"] for r in rows].count("ERROR") == 1 and [r["cached"] for r in rows].count("yes") == 4


def test_status_cancel_and_fetch_by_job_id(tmp_path):
    svc = make_service(polls_to_finish=50)
    config = HardwareConfig(backend=svc.backend_name, shots=16)
    run = HardwareRun.create(tmp_path, svc, config, problems(), circuits=Circuits(), simulator=Simulator())
    assert run.execute(wait=False) is None
    rows = api.status(tmp_path, service=svc)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"RUNNING"}
    table = api.format_status(rows)
    assert "JOB_ID" in table and rows[0]["job_id"] in table
    # results by job id alone
    payload = api.fetch(tmp_path, service=svc, job_id=rows[0]["job_id"])
    assert payload["problem_ids"] == ["p0", "p1"] and len(payload["counts"]) == 2
    assert Ledger(tmp_path).load_result(rows[0]["job_id"]) == payload
    cancelled = api.cancel(tmp_path, service=svc)
    assert sorted(cancelled) == sorted(r["job_id"] for r in rows[1:])
    assert {svc.jobs[j].status for j in cancelled} == {"CANCELLED"}
    assert [r["status"] for r in api.status(tmp_path, service=svc)] == ["DONE"] + ["CANCELLED"] * 3
    with pytest.raises(QSelectError, match="not in"):
        api.fetch(tmp_path, service=svc, job_id="job-9999")


def test_run_dir_mismatch_and_missing_plan_are_clear_errors(tmp_path):
    with pytest.raises(QSelectError, match="no hardware run"):
        api.status(tmp_path / "nothing")
    svc = make_service()
    config = HardwareConfig(backend=svc.backend_name, shots=16)
    HardwareRun.create(tmp_path, svc, config, problems(), circuits=Circuits(), simulator=Simulator()).execute()
    with pytest.raises(QSelectError, match="already holds a hardware run"):
        HardwareRun.create(tmp_path, svc, config, problems(), circuits=Circuits(), simulator=Simulator())


def test_token_never_reaches_files_logs_or_errors(tmp_path, monkeypatch, caplog):
    token = "SECRET-fake-token-1234567890abcdef"
    monkeypatch.setenv("QISKIT_IBM_TOKEN", token)
    svc = make_service(error_at={("status", 2, "before")},
                       error_text=f"401 Unauthorized for token {token} (Authorization: Bearer {token})")
    config = HardwareConfig(backend=svc.backend_name, shots=16)
    caplog.set_level(logging.DEBUG)
    run = HardwareRun.create(tmp_path, svc, config, problems(), circuits=Circuits(), simulator=Simulator())
    with pytest.raises(HardwareError) as info:
        run.execute()
    err = info.value
    assert token not in str(err) and "***" in str(err) and "\n" not in str(err)
    assert err.__cause__ is None and err.__suppress_context__
    # and resuming afterwards works, with nothing secret anywhere on disk or in the log
    HardwareRun.load(tmp_path, service=svc, circuits=Circuits()).execute()
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert token not in f.read_text(errors="replace"), f
    assert token not in caplog.text
    assert redact(f"x {token} y") == "x *** y"
    assert token not in redact(f"apikey={token[:-3]}XYZ")  # token-shaped values are masked too


def test_deep_circuits_warn_before_submitting(tmp_path, caplog):
    svc = make_service()
    config = HardwareConfig(backend=svc.backend_name, shots=16, fidelity_warning=0.99)  # 2 gates at 1% error
    with caplog.at_level(logging.WARNING, logger="qselect.hardware"):
        run = HardwareRun.create(tmp_path, svc, config, problems(), circuits=Circuits(), simulator=Simulator())
    assert not svc.submissions and caplog.text.count("likely mostly noise") == N_PROBLEMS
    assert run.resources["p0"]["estimated_fidelity"] == pytest.approx(0.99 ** 2)


def test_status_without_service_shows_the_ledger(tmp_path, caplog):
    svc = make_service(polls_to_finish=50)
    run = HardwareRun.create(tmp_path, svc, HardwareConfig(backend=svc.backend_name, shots=16), problems(),
                             circuits=Circuits(), simulator=Simulator())
    run.execute(wait=False)

    class Offline(FakeService):
        def status(self, job_id):
            raise HardwareError("network unreachable")

    rows = api.status(tmp_path, service=Offline())
    assert [r["status"] for r in rows] == ["QUEUED"] * 4 and "without live states" in caplog.text


@pytest.mark.parametrize("service_points", [
    {("submit", 1, "after")},  # crash: the job exists, its id never reached the ledger
    {("submit", 1, "before"), ("submit", 2, "after")},  # resubmitted after a lookup, then crashed again
])
def test_lookup_waits_for_a_lagging_job_listing_before_resubmitting(tmp_path, service_points):
    """The service lists a new job only after a delay: an empty first lookup is not trusted."""
    svc = make_service(crash_at=service_points, listing_lag=0.4, listing_delay=0.3)
    config = HardwareConfig(backend=svc.backend_name, shots=16)
    report, restarts = run_to_completion(tmp_path / "run", svc, Hook(), config)
    assert restarts == len(service_points)
    check_run(tmp_path / "run", svc, report, config)
    assert [r for r in Ledger(tmp_path / "run").records().values() if r.recovered]
    # the same crash against a service that does not declare its lag double-submits: the wait is what helps
    careless = make_service(crash_at={("submit", 1, "after")}, listing_delay=0.3)
    run_to_completion(tmp_path / "careless", careless, Hook(), config)
    assert max(careless.submissions_per_tag().values()) == 2


def test_failed_submit_reply_is_recovered_by_tag_not_resubmitted(tmp_path):
    """submit raised (reply lost) although the service created the job: resuming adopts it."""
    svc = make_service(error_at={("submit", 2, "after")}, error_text="read timed out", listing_lag=0.3,
                       listing_delay=0.2)
    config = HardwareConfig(backend=svc.backend_name, shots=16)
    run = HardwareRun.create(tmp_path, svc, config, problems(), circuits=Circuits(), simulator=Simulator())
    with pytest.raises(HardwareError, match="read timed out"):
        run.execute()
    report = api.fetch(tmp_path, service=svc, circuits=Circuits())
    check_run(tmp_path, svc, report, config)


def test_waiting_on_a_very_long_queue_does_not_overflow(tmp_path):
    svc = make_service(polls_to_finish=1100)  # > 1024 polls: 2 ** polls no longer fits a float
    runner = JobRunner(svc, Ledger(tmp_path), "r")
    rec = runner.ensure_submitted("k", [Pub("a", lambda: (SimpleNamespace(num_clbits=2), "h"))], 8)
    assert runner.wait(rec) == "DONE" and svc.calls["status"] == 1100


def test_timeout_bounds_all_waiting_not_each_job(tmp_path):
    svc = make_service(poll_interval=0.05, polls_to_finish=4)  # each of the 4 jobs takes >= 0.15 s
    config = HardwareConfig(backend=svc.backend_name, shots=16)
    run = HardwareRun.create(tmp_path, svc, config, problems(), circuits=Circuits(), simulator=Simulator(),
                             timeout=0.25)
    with pytest.raises(HardwareError, match="0.25 s in all.*qselect hardware fetch --run-dir"):
        run.execute()
    assert 1 <= sum(r.has_result for r in Ledger(tmp_path).records().values()) < 4
    report = api.fetch(tmp_path, service=svc, circuits=Circuits())
    check_run(tmp_path, svc, report, config)


def test_spsa_first_step_moves_each_angle_by_spsa_step(tmp_path):
    svc = make_service()
    config = HardwareConfig(backend=svc.backend_name, strategy="spsa", spsa_iterations=1, spsa_shots=32,
                            shots=16, spsa_step=0.05)
    report = HardwareRun.create(tmp_path, svc, config, problems(), circuits=Circuits(),
                                simulator=Simulator()).execute()
    for row in report["problems"]:
        assert np.abs(np.array(row["angles"]) - ramp_angles(1)) == pytest.approx([0.05, 0.05])


def test_problem_ids_that_would_clash_with_pub_ids_are_refused(tmp_path):
    svc = make_service()
    with pytest.raises(QSelectError, match="without '\\|'.*'a\\|b'"):
        HardwareRun.create(tmp_path, svc, HardwareConfig(backend=svc.backend_name), {"a|b": QUBO.random(3, seed=0)},
                           circuits=Circuits(), simulator=Simulator())
