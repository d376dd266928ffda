"""The real hardware path on a fake_<device> (qiskit-ibm-runtime's noisy Aer model), accounts, CLI handlers.

fake_manila (5 qubits in a line) is used because its noise simulation takes
milliseconds; fake_sherbrooke (127 qubits) runs the same path but each
transpile + noisy simulation costs seconds.
"""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from torch import nn

from qselect import QUBO
from qselect.errors import BackendUnavailableError, QSelectError
from qselect.hardware import Ledger, api
from qselect.hardware.runner import HardwareConfig, HardwareRun
from qselect.hardware.runtime import LOCAL_JOBS, get_service

BACKEND = "fake_manila"


def small_layer_problems():
    """A small trained-free layer's local problems: 3 output neurons x 4 input weights (weight formulation)."""
    from qselect.formulate import select_masks
    from qselect.hardware.masks import local_problems

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    calib = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    sel = select_masks(model, calib, formulation="weight", sparsity=0.5, solver="exact", qubits=4, layers=["0"])
    return local_problems(sel, 4)


def layout_is_nontrivial(circuit, n):
    lay = circuit.layout
    return (lay.initial_index_layout()[:n] != list(range(n))
            or lay.final_index_layout() != lay.initial_index_layout()[:n])


def marker_problem():
    """Asymmetric 4-bit QUBO whose QAOA distribution changes under any permutation of its bits."""
    Q = np.zeros((4, 4))
    Q[0, 1], Q[1, 2], Q[2, 3], Q[0, 3], Q[0, 2], Q[1, 3] = 0.5, -0.7, 0.9, 0.3, 0.4, -0.2
    return QUBO(Q, linear=[-2.0, 1.5, -0.5, -1.2])


def permuted_tvds(counts, ideal, n, shots):
    """Total variation distance between measured and ideal, for every reading order of the bits."""
    measured = np.zeros(2 ** n)
    for k, v in counts.items():
        measured[int(k, 2)] += v / shots
    out = {}
    for perm in itertools.permutations(range(n)):
        idx = np.array([sum(((i >> perm[b]) & 1) << b for b in range(n)) for i in range(2 ** n)])
        out[perm] = 0.5 * np.abs(measured[idx] - ideal).sum()
    return out


def test_small_layer_end_to_end_on_fake_device_is_scored_by_the_problem(tmp_path):
    problems, meta = small_layer_problems()
    assert len(problems) == 3 and all(p.n == 4 for p in problems.values())
    problems["marker"] = marker_problem()
    shots = 4000
    config = HardwareConfig(backend=BACKEND, shots=shots, seed=0)
    report = api.submit(problems, BACKEND, tmp_path, config, meta=meta)
    run = HardwareRun.load(tmp_path)
    assert run.service.backend_name == BACKEND
    # the device circuits really were permuted by the transpiler (dense 4-qubit QUBOs on a line)
    for pid, pr in problems.items():
        tmpl = run.circuits.template(pid, pr)
        assert tmpl.num_qubits == 5 and layout_is_nontrivial(tmpl, pr.n)
        assert report["problems"][list(problems).index(pid)]["two_qubit_gates"] > 6  # routing added SWAPs
    # independent scoring: qiskit's bit string read as a little-endian index into the cost vector
    (job_file,) = list((tmp_path / LOCAL_JOBS).glob("*.json"))
    job = json.loads(job_file.read_text())
    from qselect.circuits.qiskit import statevector_probabilities

    assert [r["problem"] for r in report["problems"]] == list(problems)
    for row, counts in zip(report["problems"], job["counts"]):
        pr = problems[row["problem"]]
        cv = pr.cost_vector()
        best_key = min(counts, key=lambda k: cv[int(k, 2)])
        assert row["hardware_energy"] == pytest.approx(cv[int(best_key, 2)])
        assert row["hardware_energy"] == pytest.approx(pr.energy(np.array([int(b) for b in row["hardware_bits"]])))
        assert row["exact_energy"] == pytest.approx(cv.min()) and row["hardware_gap"] >= -1e-12
        assert row["hardware_gap"] == pytest.approx(0.0, abs=1e-12)  # 4000 noisy shots over 16 strings
        if row["problem"] != "marker":
            assert row["layer"] == "0" and row["kind"] == "weight"
    # measured bit i is variable i: the noisy distribution matches the ideal QAOA state read in
    # qselect's order, clearly better than in any other order of the bits
    row = report["problems"][-1]
    tvd = permuted_tvds(job["counts"][-1], statevector_probabilities(problems["marker"], row["angles"], 1), 4, shots)
    correct = tvd.pop((0, 1, 2, 3))
    assert correct < 0.25 and correct < min(tvd.values()) - 0.03, (correct, min(tvd.values()))
    assert report["summary"]["hardware_optimal"] == 4
    # a rerun (fresh process, same run dir) fetches from the cache, submits nothing
    before = sorted(p.name for p in (tmp_path / LOCAL_JOBS).glob("*.json"))
    again = api.fetch(tmp_path)
    assert sorted(p.name for p in (tmp_path / LOCAL_JOBS).glob("*.json")) == before
    assert again["problems"] == json.loads(json.dumps(report["problems"]))


def test_fake_backend_crash_after_submit_recovers_job_by_tag(tmp_path):
    """The local path keeps jobs by tag too: a crash between submit and the ledger line loses nothing."""
    from qselect.hardware.service import SimulatedCrash

    problems = {f"q{i}": QUBO.random(3, seed=i) for i in range(2)}
    svc = get_service(BACKEND, run_dir=tmp_path)

    def hook(point):
        if point == "after_submit":
            raise SimulatedCrash(point)

    run = HardwareRun.create(tmp_path, svc, HardwareConfig(backend=BACKEND, shots=128), problems, crash_hook=hook)
    with pytest.raises(SimulatedCrash):
        run.execute()
    assert Ledger(tmp_path).records()["qselect-%s-sample-b000" % run.run_id].job_id is None
    report = api.fetch(tmp_path)
    assert len(list((tmp_path / LOCAL_JOBS).glob("*.json"))) == 1  # found by tag, not resubmitted
    (rec,) = Ledger(tmp_path).records().values()
    assert rec.recovered and rec.has_result and len(report["problems"]) == 2


def test_spsa_strategy_on_fake_device(tmp_path):
    problems = {"a": QUBO.random(3, seed=5)}
    cfg = HardwareConfig(backend=BACKEND, strategy="spsa", spsa_iterations=3, spsa_shots=128, shots=256)
    report = api.submit(problems, BACKEND, tmp_path, cfg)
    assert len(Ledger(tmp_path).records()) == 4  # 3 iterations + final sampling, one job each
    row = report["problems"][0]
    assert row["hardware_energy"] == pytest.approx(row["exact_energy"])


def test_unknown_fake_backend_is_a_clear_error(tmp_path):
    with pytest.raises(QSelectError, match="unknown fake backend 'fake_nowhere'.*fake_"):
        get_service("fake_nowhere", run_dir=tmp_path)


def _no_account(monkeypatch, tmp_path):
    from qiskit_ibm_runtime.accounts import management

    for var in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_URL", "QISKIT_IBM_CHANNEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(management, "_DEFAULT_ACCOUNT_CONFIG_JSON_FILE", str(tmp_path / ".qiskit" / "none.json"))


def test_no_account_gives_one_clear_message(monkeypatch, tmp_path):
    _no_account(monkeypatch, tmp_path)
    with pytest.raises(BackendUnavailableError) as info:
        get_service("ibm_torino", run_dir=tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and "no IBM Quantum account" in msg
    assert "save_account" in msg and "QISKIT_IBM_TOKEN" in msg and "fake_" in msg and "simulator" in msg
    assert info.value.__cause__ is None


def _drive(argv):
    """What qselect.cli.main does for ``qselect hardware VERB ...``: parse, resolve defaults, call the
    application function (QSelectError propagates instead of becoming exit code 2)."""
    from qselect.cli import build_parser
    from qselect.cli.common import option_specs
    from qselect.config import resolve

    parser, commands = build_parser()
    args = parser.parse_args(["hardware"] + argv)
    schema = option_specs(commands[f"hardware {args.verb}"])
    cfg = resolve(schema, {}, {k: v for k, v in vars(args).items() if k in schema})
    return args.func(cfg, argv=argv)


def test_cli_submit_status_fetch_cancel(tmp_path, capsys):
    d = str(tmp_path / "run")
    assert _drive(["submit", "--device", BACKEND, "--run-dir", d, "--hidden", "4", "--epochs", "1",
                   "--formulation", "neuron", "--qubits", "4", "--shots", "256", "--calib-size", "32", "-q"]) == 0
    out = capsys.readouterr().out
    assert "report:" in out and (tmp_path / "run" / "report.md").exists()
    # masks.pt carries the device's answer: neuron bit i keeps unit i of the hidden layer
    from qselect.classical.masks import load_masks

    report = json.loads((tmp_path / "run" / "report.json").read_text())
    (row,) = report["problems"]
    masks = load_masks(tmp_path / "run" / "masks.pt")
    w = masks[f"{row['layer']}.weight"]
    assert [int(w[i].all()) for i in range(w.shape[0])] == [int(b) for b in row["hardware_bits"]]
    assert [int(w[i].any()) for i in range(w.shape[0])] == [int(b) for b in row["hardware_bits"]]
    assert _drive(["status", "--run-dir", d]) == 0
    table = capsys.readouterr().out
    assert "sample-b000" in table and "DONE" in table
    assert _drive(["fetch", "--run-dir", d, "-q"]) == 0
    assert _drive(["cancel", "--run-dir", d]) == 0
    assert "none unfinished" in capsys.readouterr().out
    with pytest.raises(QSelectError, match="already holds a hardware run"):
        _drive(["submit", "--device", BACKEND, "--run-dir", d, "--hidden", "4", "--epochs", "1",
                "--formulation", "neuron", "--qubits", "4"])


def test_cli_user_errors(tmp_path, monkeypatch):
    with pytest.raises(QSelectError, match="--run-dir is required"):
        _drive(["status"])
    with pytest.raises(QSelectError, match="fake_<device>"):
        _drive(["submit", "--device", "native", "--run-dir", str(tmp_path)])
    with pytest.raises(QSelectError, match="strategy"):
        _drive(["submit", "--device", BACKEND, "--run-dir", str(tmp_path), "--strategy", "magic"])
    _no_account(monkeypatch, tmp_path)
    with pytest.raises(QSelectError, match="no IBM Quantum account"):
        _drive(["submit", "--device", "ibm_torino", "--run-dir", str(tmp_path / "r")])


def test_main_no_account_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    from qselect.cli import main

    _no_account(monkeypatch, tmp_path)
    assert main(["hardware", "submit", "--device", "ibm_torino", "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("qselect: error: no IBM Quantum account")
    assert not (tmp_path / "r" / "plan.json").exists()


def test_transferred_angles_are_shared_within_a_layer(tmp_path):
    problems, meta = small_layer_problems()
    problems["other"] = marker_problem()
    meta["other"] = {"layer": "2", "kind": "weight", "index": 0}
    cfg = HardwareConfig(backend=BACKEND, shots=256, angles="transfer")
    report = api.submit(problems, BACKEND, tmp_path, cfg, meta=meta)
    angles = {r["problem"]: tuple(r["angles"]) for r in report["problems"]}
    layer0 = {angles[pid] for pid in problems if pid != "other"}
    assert len(layer0) == 1 and angles["other"] not in layer0
    # the noiseless reference is the simulator at exactly the transferred angles
    from qselect.solvers import get_solver

    pid = [p for p in problems if p != "other"][-1]
    fixed = get_solver("qaoa", backend="native", p=1, seed=0, shots=256, init=np.array(angles[pid]),
                       maxiter=0, restarts=0).solve(problems[pid])
    row = next(r for r in report["problems"] if r["problem"] == pid)
    assert row["simulator_expectation"] == pytest.approx(fixed.expectation)


def test_blocked_local_problems_take_device_blocks_only_when_not_worse():
    from qselect.hardware.masks import assemble_local_bits

    q = QUBO(np.zeros((4, 4)), linear=[-1.0, 1.0, -1.0, 1.0])
    rows = [{"hardware_bits": "10", "block_start": 0, "block_stop": 2},  # better: taken
            {"hardware_bits": "01", "block_start": 2, "block_stop": 4}]  # worse: refused
    bits, info = assemble_local_bits(q, "0000", rows)
    assert bits.tolist() == [1, 0, 0, 0] and info["accepted"] == 1
    assert info["hardware_energy"] == -1.0 and info["classical_energy"] == 0.0
    bits, info = assemble_local_bits(q, "0000", [{"hardware_bits": "0101"}])  # whole problem: as measured
    assert bits.tolist() == [0, 1, 0, 1] and info["hardware_energy"] == 2.0


def test_fake_device_runs_are_deterministic_per_seed(tmp_path):
    def counts(d, seed):
        api.submit({"a": QUBO.random(3, seed=0)}, BACKEND, d, HardwareConfig(backend=BACKEND, shots=512, seed=seed))
        (f,) = list((d / LOCAL_JOBS).glob("*.json"))
        return json.loads(f.read_text())["counts"]

    first = counts(tmp_path / "a", 0)
    assert counts(tmp_path / "b", 0) == first
    assert counts(tmp_path / "c", 1) != first


def test_cli_masks_the_token_in_foreign_errors_and_run_json(tmp_path, monkeypatch):
    """An error the hardware path did not wrap still reaches neither the terminal nor run.json with the token."""
    token = "cli-SECRET-token-0123456789abcdef"
    monkeypatch.setenv("QISKIT_IBM_TOKEN", token)

    def explode(self, wait=True):
        raise RuntimeError(f"upstream said:\n 403 for {token}")

    monkeypatch.setattr(HardwareRun, "execute", explode)
    d = tmp_path / "run"
    with pytest.raises(QSelectError) as info:
        _drive(["submit", "--device", BACKEND, "--run-dir", str(d), "--hidden", "4", "--epochs", "1",
                "--formulation", "neuron", "--qubits", "4", "--calib-size", "32", "-q"])
    assert token not in str(info.value) and "403 for ***" in str(info.value) and "\n" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    run_json = json.loads((d / "run.json").read_text())
    assert run_json["status"] == "failed" and "403 for ***" in run_json["error"]
    for f in d.rglob("*"):
        if f.is_file():
            assert token.encode() not in f.read_bytes(), f
    # errors without a secret keep their type (and traceback): they are bugs to see, not to hide
    monkeypatch.setattr(HardwareRun, "execute", lambda self, wait=True: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        _drive(["submit", "--device", BACKEND, "--run-dir", str(tmp_path / "r2"), "--hidden", "4", "--epochs", "1",
                "--formulation", "neuron", "--qubits", "4", "--calib-size", "32", "-q"])
