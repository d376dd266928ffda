"""Bad input and honest messages on the hardware path.

Everything checkable about ``qselect hardware submit`` is refused before its
run folder exists (one line, exit code 2, nothing written); the token redactor
masks secrets but leaves the how-to hints readable; a service error says what
the user can do (rerun, or resume a run folder that exists); identical runs
write identical ``masks.pt`` bytes.
"""
from __future__ import annotations

import importlib
import json

import pytest
import qiskit_ibm_runtime as rt

from qselect import QUBO
from qselect.cli import main
from qselect.errors import QSelectError
from qselect.hardware import api
from qselect.hardware.jobs import JobRunner
from qselect.hardware.ledger import Ledger
from qselect.hardware.redact import HardwareError, register_secret, resume_hint, sanitised_errors
from qselect.hardware.runner import HardwareConfig, HardwareRun
from qselect.hardware.runtime import NO_ACCOUNT, get_service

redact = importlib.import_module("qselect.hardware.redact")  # the module (the package exports its function)
DEVICE = "fake_manila"  # 5 qubits
SMALL = ["--hidden", "4", "--epochs", "1", "--formulation", "neuron", "--qubits", "4", "--shots", "256",
         "--calib-size", "32", "-q"]


def refused(capsys, argv):
    """Run the CLI; assert exit code 2 and one ``qselect: error:`` line without a traceback; return it."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0 and err.startswith("qselect: error: "), err
    assert "Traceback" not in captured.err + captured.out
    return err


def no_account(monkeypatch, tmp_path):
    from qiskit_ibm_runtime.accounts import management

    for var in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_URL", "QISKIT_IBM_CHANNEL",
                "IBM_QUANTUM_TOKEN", "QISKIT_IBM_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(management, "_DEFAULT_ACCOUNT_CONFIG_JSON_FILE", str(tmp_path / ".qiskit" / "none.json"))


# --------------------------------------------------------------------------- 1. refused before any folder

def test_qubit_budget_wider_than_the_device_is_refused_before_the_run_folder(tmp_path, capsys):
    run = tmp_path / "r"
    err = refused(capsys, ["hardware", "submit", "--device", DEVICE, "--run-dir", str(run), "--qubits", "8"])
    assert "8 qubits" in err and f"{DEVICE} has 5" in err and "--qubits 5" in err
    assert not run.exists()


def test_problem_wider_than_the_device_is_refused_by_the_api_before_the_run_folder(tmp_path):
    run = tmp_path / "r"
    with pytest.raises(QSelectError, match=f"8 qubits but {DEVICE} has 5"):
        api.submit({"wide": QUBO.random(8, seed=0), "ok": QUBO.random(3, seed=1)}, DEVICE, run)
    assert not run.exists()
    svc = get_service(DEVICE, run_dir=run)
    with pytest.raises(QSelectError, match=f"2 local problems need up to 7 qubits but {DEVICE} has 5"):
        HardwareRun.create(run, svc, HardwareConfig(backend=DEVICE),
                           {"a": QUBO.random(6, seed=0), "b": QUBO.random(7, seed=0)})
    assert not run.exists()


@pytest.mark.parametrize("flag, value, named", [
    ("--optimization-level", "7", "--optimization-level"),
    ("--optimization-level", "-1", "--optimization-level"),
    ("--transpile-seeds", "0", "--transpile-seeds"),
    ("--shots", "0", "--shots"),
    ("--p", "0", "--p"),
    ("--spsa-shots", "0", "--spsa-shots"),
    ("--max-execution-time", "-3", "--max-execution-time"),
    ("--strategy", "magic", "--strategy"),
    ("--angles", "some", "--angles"),
    ("--seed", "5000000000", "--seed"),
    ("--seed", "-1", "--seed"),
    ("--timeout", "-1", "--timeout"),
    ("--timeout", "nan", "--timeout"),
    ("--threads", "-2", "--threads"),
    ("--max-problems", "-1", "--max-problems"),
    ("--weights", "/nonexistent/w.pt", "--weights"),
])
def test_bad_submit_settings_are_one_line_and_leave_no_folder(tmp_path, capsys, flag, value, named):
    run = tmp_path / "r"
    err = refused(capsys, ["hardware", "submit", "--device", DEVICE, "--run-dir", str(run), "--qubits", "4",
                           flag, value])
    assert named in err
    assert not run.exists()


@pytest.mark.parametrize("field, value", [("shots", "x"), ("p", None), ("p", 1.5), ("optimization_level", 7),
                                          ("seed", -1), ("seed", "a"), ("seed", 2**40), ("max_execution_time", 2.5),
                                          ("spsa_step", float("nan")), ("fidelity_warning", 2.0)])
def test_bad_api_config_is_a_qselect_error_naming_the_field_and_writes_nothing(tmp_path, field, value):
    run = tmp_path / "r"
    config = HardwareConfig(backend=DEVICE, **{field: value})
    with pytest.raises(QSelectError, match=field):
        api.submit({"a": QUBO.random(3, seed=0)}, DEVICE, run, config)
    assert not run.exists()


def test_a_quantum_time_cap_the_plan_exceeds_is_refused_before_the_run_folder(tmp_path, capsys):
    """Checks that need the compiled circuits (time cap, gate limit) run before the folder is created too."""
    run = tmp_path / "r"
    err = refused(capsys, ["hardware", "submit", "--device", DEVICE, "--run-dir", str(run), *SMALL,
                           "--max-execution-time", "1"])
    assert "max_execution_time=1" in err and "--max-execution-time" in err
    assert not run.exists()


def test_fetch_refuses_a_negative_timeout(tmp_path, capsys):
    err = refused(capsys, ["hardware", "fetch", "--run-dir", str(tmp_path / "r"), "--timeout", "-5"])
    assert "--timeout" in err and not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- 2. redaction keeps the hints

def test_the_no_account_hint_survives_redaction_intact():
    assert redact.redact(NO_ACCOUNT) == NO_ACCOUNT
    assert "token='<API key>'" in NO_ACCOUNT and "instance='<CRN>'" in NO_ACCOUNT
    for hint in ("token='<API key>'", 'token="<API key>"', "api_key: <your key>", "Bearer <token>"):
        assert redact.redact(hint) == hint


def test_real_secrets_are_still_masked_everywhere(monkeypatch):
    env, saved = "envTok-0123456789abcdefXYZ", "savedTok-0123456789abcdefXYZ"
    monkeypatch.setenv("QISKIT_IBM_TOKEN", env)
    monkeypatch.setattr(redact, "_extra_secrets", set())
    register_secret(saved)
    text = (f"{NO_ACCOUNT} | token='{env}' | bare {saved} | apikey={saved} | Bearer {env} | "
            f"token=<{env}> | token=unknownSecretValue123")
    out = redact.redact(text)
    assert env not in out and saved not in out and "unknownSecretValue123" not in out
    assert out.startswith(NO_ACCOUNT + " | ")  # the hint in front is untouched
    assert out.count("***") == 6


def test_cli_prints_the_no_account_hint_intact(tmp_path, monkeypatch, capsys):
    no_account(monkeypatch, tmp_path)
    err = refused(capsys, ["hardware", "submit", "--device", "ibm_torino", "--run-dir", str(tmp_path / "r")])
    assert err == "qselect: error: " + NO_ACCOUNT
    assert "token='<API key>'" in err and "--device fake_<device>" in err and "***" not in err
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- 3. advice the user can follow

class Unreachable:
    """QiskitRuntimeService stand-in whose service cannot be reached."""

    def __init__(self, channel=None, **kw):
        raise ConnectionError("HTTP 503 from the quantum service")


class NoSuchDevice:
    """QiskitRuntimeService stand-in that knows no device."""

    def __init__(self, channel=None, **kw):
        pass

    def active_account(self):
        return {}

    def backend(self, name, **kw):
        raise RuntimeError(f"backend {name} not found")

    def job(self, job_id):
        raise RuntimeError(f"job {job_id} not found")


@pytest.mark.parametrize("client, what", [(Unreachable, "loading the IBM Quantum account"),
                                          (NoSuchDevice, "finding backend ibm_nowhere")])
def test_service_error_before_the_run_folder_says_to_rerun_not_to_fetch(tmp_path, monkeypatch, capsys,
                                                                         client, what):
    no_account(monkeypatch, tmp_path)
    monkeypatch.setattr(rt, "QiskitRuntimeService", client)
    run = tmp_path / "r"
    err = refused(capsys, ["hardware", "submit", "--device", "ibm_nowhere", "--run-dir", str(run)])
    assert what in err and "run the command again" in err
    assert "fetch" not in err and "--run-dir" not in err and "DIR" not in err
    assert not run.exists()


def test_fetch_of_a_job_without_run_folder_does_not_point_to_one(tmp_path, monkeypatch, capsys):
    no_account(monkeypatch, tmp_path)
    monkeypatch.setattr(rt, "QiskitRuntimeService", NoSuchDevice)
    err = refused(capsys, ["hardware", "fetch", "--job-id", "abc", "--device", "ibm_nowhere"])
    assert "run the command again" in err and "--run-dir" not in err


class FailingService:
    """A service whose every call fails the way a network outage does."""

    backend_name = "ibm_test"
    poll_interval = 0.0
    listing_lag = 0.0
    num_qubits = 5

    def __init__(self, nested: bool):
        self.nested = nested

    def _fail(self, what):
        if self.nested:  # the real RuntimeService wraps its own calls: the runner must replace its advice
            with sanitised_errors(what):
                raise TimeoutError("read timed out")
        raise TimeoutError("read timed out")

    def find_jobs(self, tag):
        return []

    def submit(self, circuits, shots, tag):
        self._fail("submitting to ibm_test")

    def status(self, job_id):
        self._fail(f"asking the status of job {job_id}")


@pytest.mark.parametrize("nested", [False, True])
def test_service_error_inside_a_run_folder_names_the_folder_to_resume(tmp_path, nested):
    from qselect.hardware.jobs import Pub

    runner = JobRunner(FailingService(nested), Ledger(tmp_path), "rid")
    with pytest.raises(HardwareError) as info:
        runner.ensure_submitted("sample-b000", [Pub("p0", lambda: (None, "hash"))], 16)
    msg = str(info.value)
    assert "submitting job sample-b000" in msg or "submitting to ibm_test" in msg
    assert msg.endswith(resume_hint(tmp_path)) and f"qselect hardware fetch --run-dir {tmp_path}" in msg
    assert "run the command again" not in msg and "DIR" not in msg and msg.count("fetch") == 1


def test_no_message_points_to_a_command_that_does_not_exist(tmp_path):
    with pytest.raises(QSelectError) as info:
        api.status(tmp_path / "empty")
    msg = str(info.value)
    assert "`qselect hardware submit --device NAME" in msg and "--backend" not in msg


# --------------------------------------------------------------------------- 4. reproducible masks.pt

def test_identical_hardware_runs_write_identical_masks(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for run in (a, b):
        assert main(["hardware", "submit", "--device", DEVICE, "--run-dir", str(run), "--seed", "3", *SMALL]) == 0
    ids = [json.loads((run / "report.json").read_text())["run_id"] for run in (a, b)]
    assert ids[0] != ids[1]  # each run keeps its own id in report.json ...
    assert (a / "masks.pt").read_bytes() == (b / "masks.pt").read_bytes()  # ... but not in masks.pt
    from qselect.classical.masks import load_masks

    masks = load_masks(a / "masks.pt")
    assert masks and all(set(m.unique().tolist()) <= {0, 1} for m in masks.values())
