"""Run-folder integrity of the hardware path: one process at a time, damaged files named before any rewrite."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_hardware_ledger import Circuits, Simulator, make_service, problems  # noqa: E402

from qselect.errors import QSelectError
from qselect.hardware import Ledger, api
from qselect.hardware import report as report_mod
from qselect.hardware.masks import CONTEXT_JSON, MODEL_FILE, check_selection_context
from qselect.hardware.runner import HardwareConfig, HardwareRun

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, b'{"pid": %d, "owner": "qselect hardware fetch"}' % os.getpid())
print("ready", flush=True)
time.sleep(60)
"""


def planned_run(tmp_path, **kw):
    svc = make_service(**kw)
    run = HardwareRun.create(tmp_path, svc, HardwareConfig(backend=svc.backend_name, shots=16), problems(),
                             circuits=Circuits(), simulator=Simulator())
    return svc, run


def test_a_second_fetch_on_a_busy_run_is_refused_and_submits_nothing(tmp_path):
    pytest.importorskip("fcntl")
    svc, _ = planned_run(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / ".qselect.lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(QSelectError, match="in use by another qselect command"):
            api.fetch(tmp_path, service=svc, circuits=Circuits())
        with pytest.raises(QSelectError, match="in use"):
            api.cancel(tmp_path, service=svc)
        assert svc.submissions == [] and Ledger(tmp_path).events() == []
    finally:
        holder.kill()
        holder.wait()
    report = api.fetch(tmp_path, service=svc, circuits=Circuits())  # the holder is gone: the kernel dropped its lock
    assert len(report["problems"]) == len(problems()) and len(svc.submissions) == 4


def test_truncated_problems_file_is_one_line_and_nothing_is_rewritten(tmp_path):
    svc, _ = planned_run(tmp_path)
    npz = tmp_path / "problems.npz"
    npz.write_bytes(npz.read_bytes()[:200])
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(QSelectError) as info:
        api.fetch(tmp_path, service=svc, circuits=Circuits())
    msg = str(info.value)
    assert "problems.npz is damaged" in msg and "\n" not in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == before and svc.submissions == []


def test_corrupt_local_job_file_is_named(tmp_path):
    from qselect.hardware.runtime import LOCAL_JOBS, LocalService

    svc = LocalService("fake_manila", run_dir=tmp_path)
    (tmp_path / LOCAL_JOBS).mkdir()
    (tmp_path / LOCAL_JOBS / "job-1.json").write_text('{"job_id": "job-1", "stat')
    with pytest.raises(QSelectError, match="local job file .*job-1.json is damaged"):
        svc.status("job-1")
    (tmp_path / LOCAL_JOBS / "job-2.json").write_text('{"job_id": "job-2"}')
    with pytest.raises(QSelectError, match="job-2.json is damaged .*missing"):
        svc.result("job-2")


def model_rows(n=2):
    return {"problems": [{"problem": f"p{i}", "local_index": i, "hardware_bits": "01"} for i in range(n)]}


def test_missing_selection_context_of_a_model_run_is_an_error_not_a_silent_skip(tmp_path):
    assert check_selection_context(tmp_path, model_rows()) is None  # planned without a model: nothing to mask
    (tmp_path / "plan.json").write_text(json.dumps({"selection_context": True}))
    with pytest.raises(QSelectError, match="local_problems.json is missing"):
        check_selection_context(tmp_path, model_rows())


def test_plan_records_a_context_saved_before_it(tmp_path):
    (tmp_path / CONTEXT_JSON).write_text("{}")
    svc, _ = planned_run(tmp_path)
    assert json.loads((tmp_path / "plan.json").read_text())["selection_context"] is True


def test_wrong_shaped_context_and_truncated_model_are_named(tmp_path):
    (tmp_path / CONTEXT_JSON).write_text(json.dumps({"layers": ["fc1"], "problems": [{"layer": "fc1"}]}))
    with pytest.raises(QSelectError, match="wrong shape"):
        check_selection_context(tmp_path, model_rows())
    good = {"layer": "fc1", "kind": "neuron", "index": 0, "param": "w", "k": 1, "positions": [0, 1], "zero": None,
            "classical_bits": "01"}
    (tmp_path / CONTEXT_JSON).write_text(json.dumps({"layers": ["fc1"], "problems": [good]}))
    with pytest.raises(QSelectError, match="wrong shape"):  # the report has 2 local problems, the context 1
        check_selection_context(tmp_path, model_rows(2))
    (tmp_path / CONTEXT_JSON).write_text(json.dumps({"layers": ["fc1"], "problems": [good, good]}))
    (tmp_path / MODEL_FILE).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(QSelectError, match="model.pt"):
        check_selection_context(tmp_path, model_rows(2))
    (tmp_path / CONTEXT_JSON).write_text('{"layers": [')
    with pytest.raises(QSelectError, match="not valid JSON"):
        check_selection_context(tmp_path, model_rows(2))


def test_report_json_is_written_last(tmp_path, monkeypatch):
    order = []
    monkeypatch.setattr(report_mod, "atomic_write_json", lambda p, obj, **kw: order.append(p.name))
    monkeypatch.setattr(report_mod, "atomic_write_text", lambda p, text, **kw: order.append(p.name))
    report_mod.write_report(tmp_path, {"run_id": "r", "summary": {"backend": "b", "strategy": "sample", "p": 1,
                                                                    "shots": 1, "problems": 0, "jobs": 0},
                                       "problems": []})
    assert order == ["report.md", "report.json"]
