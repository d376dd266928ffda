"""Sampler options, primitives, usage and budget, execution modes, cancel after 409, honest report baselines."""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
from test_hardware_ledger import Circuits, Simulator, make_service, problems  # noqa: E402

from qselect import QUBO
from qselect.errors import QSelectError
from qselect.hardware import FakeService, Ledger, api, runtime
from qselect.hardware.report import baselines
from qselect.hardware.runner import HardwareConfig, HardwareRun

TUTORIAL_OPTIONS = {"dynamical_decoupling": {"enable": True, "sequence_type": "XY4"},
                    "twirling": {"enable_gates": True, "enable_measure": False}}


def test_defaults_follow_ibm_qaoa_practice_and_reach_every_job(tmp_path):
    svc = make_service()
    config = HardwareConfig(backend=svc.backend_name, shots=16)
    assert (config.optimization_level, config.compile, config.primitive) == (3, "auto", "executor")
    HardwareRun.create(tmp_path, svc, config, problems(), circuits=Circuits(), simulator=Simulator()).execute()
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["sampler_options"] == TUTORIAL_OPTIONS
    assert plan["config"]["dynamical_decoupling"] == "XY4" and plan["config"]["twirl_gates"] is True
    assert svc.submissions and all(s["options"] == TUTORIAL_OPTIONS and s["primitive"] == "executor"
                                   for s in svc.submissions)


def test_custom_options_are_recorded_and_survive_resume(tmp_path):
    svc = make_service(polls_to_finish=5)
    config = HardwareConfig(backend=svc.backend_name, shots=16, dynamical_decoupling="XpXm", twirl_gates=False,
                            twirl_measure=True, max_execution_time=300, primitive="legacy")
    HardwareRun.create(tmp_path, svc, config, problems(), circuits=Circuits(), simulator=Simulator())
    want = {"dynamical_decoupling": {"enable": True, "sequence_type": "XpXm"},
            "twirling": {"enable_gates": False, "enable_measure": True}, "max_execution_time": 300}
    fresh = make_service()  # a new process: the options come from plan.json
    HardwareRun.load(tmp_path, service=fresh, circuits=Circuits()).execute()
    assert {json.dumps(s["options"], sort_keys=True) for s in fresh.submissions} == {json.dumps(want, sort_keys=True)}
    assert {s["primitive"] for s in fresh.submissions} == {"legacy"}
    off = HardwareConfig(backend="x", dynamical_decoupling="none").sampler_options()
    assert off["dynamical_decoupling"] == {"enable": False}


@pytest.mark.parametrize("primitive", ["executor", "legacy"])
def test_options_reach_the_real_sampler_of_either_primitive(monkeypatch, tmp_path, primitive):
    seen = []
    real = runtime.sampler_class

    def recording(name="executor"):
        cls = real(name)

        class Recording(cls):
            def __init__(self, mode=None, options=None):
                super().__init__(mode=mode, options=options)
                seen.append((name, self.options))
        return Recording

    monkeypatch.setattr(runtime, "sampler_class", recording)
    config = HardwareConfig(backend="fake_manila", shots=64, transpile_seeds=1, primitive=primitive,
                            dynamical_decoupling="XY4", twirl_measure=True, max_execution_time=120)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = api.submit({"a": QUBO.random(3, seed=1)}, "fake_manila", tmp_path, config)
    assert report["problems"][0]["hardware_shots"] >= 64
    assert [name for name, _ in seen] == [primitive]
    opts = seen[0][1]
    assert opts.dynamical_decoupling.enable is True and opts.dynamical_decoupling.sequence_type == "XY4"
    assert opts.twirling.enable_gates is True and opts.twirling.enable_measure is True
    assert opts.max_execution_time == 120 and len(opts.environment.job_tags) == 1
    deprecated = [w for w in caught if issubclass(w.category, DeprecationWarning) and "SamplerV2" in str(w.message)]
    assert bool(deprecated) == (primitive == "legacy")  # the deprecation is shown, not silenced


def test_fractional_gates_refuse_gate_twirling_and_say_why():
    with pytest.raises(QSelectError, match="not Clifford"):
        HardwareConfig(backend="fake_fez", fractional_gates=True).validate()
    HardwareConfig(backend="fake_fez", fractional_gates=True, twirl_gates=False).validate()
    with pytest.raises(QSelectError, match="dynamical decoupling"):
        HardwareConfig(backend="x", dynamical_decoupling="XY8").validate()
    with pytest.raises(QSelectError, match="Open Plan"):
        HardwareConfig(backend="x", open_plan=True, execution_mode="session").validate()


def test_fractional_run_binds_angles_before_compiling_and_runs_on_a_fake_device(tmp_path):
    config = HardwareConfig(backend="fake_manila", shots=64, transpile_seeds=1, fractional_gates=True,
                            twirl_gates=False, compile="swap")
    run = HardwareRun.create(tmp_path, runtime.get_service("fake_manila", run_dir=tmp_path), config,
                             {"a": QUBO.random(3, seed=2)})
    circ, _ = run.circuits.bound("a", run.problems["a"], run.angles["a"])
    assert not circ.parameters and "rzz" in circ.count_ops()
    assert all(0 < float(i.operation.params[0]) <= math.pi / 2 + 1e-12
               for i in circ.data if i.operation.name == "rzz")
    other, _ = run.circuits.bound("a", run.problems["a"], [2.5, 0.1])  # new angles: compiled anew
    assert [float(i.operation.params[0]) for i in other.data if i.operation.name == "rzz"] != \
        [float(i.operation.params[0]) for i in circ.data if i.operation.name == "rzz"]
    report = run.execute()  # the fake device runs the native rewrite of the fractional circuit
    assert report["problems"][0]["hardware_energy"] == pytest.approx(report["problems"][0]["exact_energy"])


def test_usage_estimate_and_cap_are_enforced_before_submitting(tmp_path):
    svc = make_service()
    config = HardwareConfig(backend=svc.backend_name, shots=100_000, max_execution_time=30)
    with pytest.raises(QSelectError, match="max_execution_time"):
        HardwareRun.create(tmp_path, svc, config, problems(), circuits=Circuits(), simulator=Simulator())
    assert not svc.submissions and not (tmp_path / "plan.json").exists()
    # 2 PUBs per job x 100k shots x (50 µs + 250 µs) + 2 s overhead = 62 s for a full job
    ok = HardwareRun.create(tmp_path, svc, HardwareConfig(backend=svc.backend_name, shots=100_000),
                            problems(), circuits=Circuits(), simulator=Simulator())
    assert ok.usage_estimate["per_job_max_s"] == pytest.approx(2 + 2 * 100_000 * 300e-6)
    assert ok.usage_estimate["jobs"] == 4
    assert json.loads((tmp_path / "plan.json").read_text())["usage_estimate"]["jobs"] == 4


def test_usage_each_job_reports_is_recorded(tmp_path):
    svc = make_service(usage_per_job=1.5)
    config = HardwareConfig(backend=svc.backend_name, shots=16)
    report = HardwareRun.create(tmp_path, svc, config, problems(), circuits=Circuits(),
                                simulator=Simulator()).execute()
    assert report["summary"]["usage_s"] == pytest.approx(1.5 * 4)
    lines = [e for e in Ledger(tmp_path).events() if e["event"] == "result"]
    assert len(lines) == 4 and all(e["usage_s"] == 1.5 for e in lines)


def test_pack_follows_todays_limits():
    from qselect.hardware.jobs import JobRunner

    svc = FakeService(max_pubs_per_job=10**9)
    runner = JobRunner(svc, Ledger("/nonexistent"), "r")
    assert runner.pubs_per_job(1024) == 10_000_000 // 1024  # executions, no PUB cap
    assert runner.pubs_per_job(1024, circuit_bytes=100_000) == 50_000_000 // 200_000  # 50 MB input
    assert FakeService.__mro__[1].max_executions_per_job == 10_000_000


@dataclass
class ModeService(FakeService):
    """Counts Batch openings and closings; each Batch looks nearly 10 minutes old."""

    opened: int = 0
    closed: int = 0
    age: float = 599.0

    def open_batch(self):
        self.opened += 1

    def mode_age(self):
        return self.age if self.opened > self.closed else None

    def close(self):
        self.closed += 1


def test_open_plan_splits_spsa_stages_so_no_batch_outlives_ten_minutes(tmp_path):
    svc = ModeService(max_pubs_per_job=20, seed=3)
    config = HardwareConfig(backend=svc.backend_name, strategy="spsa", spsa_iterations=3, spsa_shots=8, shots=8,
                            open_plan=True)
    HardwareRun.create(tmp_path, svc, config, problems(), circuits=Circuits(), simulator=Simulator()).execute()
    assert svc.opened == 1 + 3 and svc.closed == 3 + 1  # a fresh Batch before each SPSA stage, closed at the end
    long = ModeService(max_pubs_per_job=20, seed=3)
    config = HardwareConfig(backend=long.backend_name, strategy="spsa", spsa_iterations=2, spsa_shots=200_000,
                            shots=8, open_plan=True)
    with pytest.raises(QSelectError, match="Open Plan Batch"):
        HardwareRun.create(tmp_path / "long", long, config, problems(), circuits=Circuits(),
                           simulator=Simulator()).execute()


def test_cancel_goes_on_past_a_job_that_already_finished(tmp_path):
    svc = make_service(polls_to_finish=50, conflict_on_finished=True)
    config = HardwareConfig(backend=svc.backend_name, shots=16)
    run = HardwareRun.create(tmp_path, svc, config, problems(), circuits=Circuits(), simulator=Simulator())
    run.execute(wait=False)
    ids = [r.job_id for r in Ledger(tmp_path).records().values()]
    assert len(ids) == 4
    svc._finish(svc.jobs[ids[0]])  # finished on the server; the ledger does not know yet
    with pytest.raises(RuntimeError, match="409"):
        svc.cancel(ids[0])  # the stand-in answers like IBM
    cancelled = api.cancel(tmp_path, service=svc)
    assert sorted(cancelled) == sorted(ids[1:])
    assert {svc.jobs[j].status for j in ids[1:]} == {"CANCELLED"}
    assert [r["status"] for r in api.status(tmp_path, service=svc, refresh=False)] == ["DONE"] + ["CANCELLED"] * 3


def test_report_baselines_are_exact_for_known_optima():
    # E = -x0 - x1: optimum -2 at x0 = x1 = 1 (x2 free): 2 of 8 bitstrings; mean -1; worst 0
    pr = QUBO(np.zeros((3, 3)), np.array([-1.0, -1.0, 0.0]))
    b = baselines(pr, [0.4, 0.3], p=1, mixer="x", shots=10)
    assert (b["n_candidates"], b["n_optimal"]) == (8, 2)
    assert b["uniform_p_optimum"] == pytest.approx(0.25)
    assert b["uniform_best_of_shots"] == pytest.approx(1 - 0.75 ** 10)
    assert b["uniform_mean_energy"] == pytest.approx(-1.0) and b["uniform_ratio"] == pytest.approx(0.5)
    # noiseless simulator at the same angles: qiskit's reference statevector
    from qiskit.quantum_info import Statevector

    from qselect.circuits.qiskit import bind_angles, qaoa_circuit

    probs = Statevector(bind_angles(qaoa_circuit(pr, 1, measure=False), [0.4, 0.3])).probabilities()
    energies = np.array([pr.energy(np.array([(i >> j) & 1 for j in range(3)])) for i in range(8)])
    assert b["simulator_p_optimum"] == pytest.approx(probs[[3, 7]].sum())
    assert b["simulator_mean_energy"] == pytest.approx(probs @ energies)
    assert b["simulator_best_of_shots"] == pytest.approx(1 - (1 - probs[[3, 7]].sum()) ** 10)
    # XY mixer keeps weight k = 2: candidates 110, 101, 011 -> one optimum among C(3, 2) = 3
    prk = QUBO(np.zeros((3, 3)), np.array([-1.0, -1.0, 0.0]), k=2)
    bk = baselines(prk, [0.4, 0.3], p=1, mixer="xy", shots=4)
    assert (bk["n_candidates"], bk["n_optimal"]) == (3, 1)
    # energies -2, -1, -1: mean -4/3, worst -1 -> ratio (-1 + 4/3) / 1 = 1/3
    assert bk["uniform_p_optimum"] == pytest.approx(1 / 3) and bk["uniform_ratio"] == pytest.approx(1 / 3)


def optimal_sampler(circuit, shots, rng):
    """Every shot measures the problem's optimum (the test double's circuit carries the problem id)."""
    return {OPT[circuit.pid]: shots}


OPT: dict = {}


def test_report_puts_device_beside_simulator_and_uniform(tmp_path):
    probs = problems()
    for pid, pr in probs.items():
        i = int(np.argmin(pr.cost_vector()))
        OPT[pid] = format(i, f"0{pr.n}b")
    svc = FakeService(max_pubs_per_job=2, sampler=optimal_sampler)
    config = HardwareConfig(backend=svc.backend_name, shots=32)
    report = HardwareRun.create(tmp_path, svc, config, probs, circuits=Circuits(), simulator=Simulator()).execute()
    s = report["summary"]
    assert s["hardware_beats_uniform"] == len(probs) == s["with_baselines"]
    assert s["mean_p_optimum"]["hardware"] == 1.0 and s["mean_ratio"]["hardware"] == 1.0
    for row in report["problems"]:
        assert row["uniform_p_optimum"] == pytest.approx(row["n_optimal"] / 16)
        assert 0 < row["simulator_p_optimum"] < 1
    md = (tmp_path / "report.md").read_text()
    assert "uniform random sampling" in md and "P(opt) simulator" in md
    assert "device best = exact optimum" not in md


def test_plans_written_before_the_new_keys_resume_with_their_old_circuits():
    old = {"backend": "fake_manila", "strategy": "sample", "p": 1, "shots": 64, "mixer": "x", "angles": "each",
           "seed": 0, "optimization_level": 1, "spsa_iterations": 20, "spsa_shots": 256, "spsa_step": 0.2,
           "spsa_perturbation": 0.15, "fidelity_warning": 0.05}
    cfg = HardwareConfig.from_plan(old)
    assert (cfg.compile, cfg.transpile_seeds, cfg.optimization_level) == ("single", 1, 1)
    assert cfg.sampler_options()["dynamical_decoupling"] == {"enable": False}
    with pytest.raises(QSelectError, match="newer"):
        HardwareConfig.from_plan({**old, "warp_drive": True})


def test_cli_offers_and_validates_the_compilation_and_suppression_options(tmp_path, capsys):
    from qselect.cli import main

    with pytest.raises(SystemExit):
        main(["hardware", "submit", "--help"])
    text = capsys.readouterr().out
    for flag in ("--dynamical-decoupling", "--no-twirl-gates", "--twirl-measure", "--fractional-gates", "--compile",
                 "--transpile-seeds", "--primitive", "--execution-mode", "--max-execution-time", "--open-plan"):
        assert flag in text
    assert main(["hardware", "submit", "--device", "fake_manila", "--run-dir", str(tmp_path / "r"),
                 "--fractional-gates"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "gate twirling" in err and "--no-twirl-gates" in err
    assert not (tmp_path / "r").exists()
