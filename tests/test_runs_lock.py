"""Run folders tell the truth: one command per folder at a time, no folder stuck
after a kill, no stray temp files, no "running" record for a process that is gone."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from qselect.errors import QSelectError
from qselect.io import atomic_write_json, folder_in_use, lock_folder, remove_stale_temps
from qselect.runs import Run, read_run, run_process_alive

ROOT = Path(__file__).resolve().parents[1]


def _default_signals():
    """The child starts with SIGTERM and SIGHUP at their default action, whatever the test runner
    inherited (under ``nohup`` SIGHUP is ignored, and a run rightly leaves an ignored signal alone)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _child(run_dir: Path, body: str = "", *, guard: bool = True) -> subprocess.Popen:
    """A process that creates a run in ``run_dir``, prints 'ready', runs ``body`` and sleeps."""
    code = textwrap.dedent(f"""
        import sys, time
        import qselect.runs
        from qselect.runs import Run
        qselect.runs.device_info = lambda: {{"device": "cpu"}}  # no torch import: keeps the child quick
        run = Run.create("select", {{"seed": 1}}, {str(run_dir)!r}, argv=["select", "--seed", "1"])
        ctx = run.guard() if {guard!r} else open("/dev/null")
        with ctx:
    """) + textwrap.indent(textwrap.dedent(body).strip() or "pass", "    ") + "\n" + textwrap.indent(
        'print("ready", flush=True)\ntime.sleep(60)\n', "    ")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env, cwd=ROOT, preexec_fn=_default_signals)
    line = p.stdout.readline()
    if line.strip() != "ready":
        p.kill()
        pytest.fail(f"child did not start: {line!r} {p.stderr.read()}")
    return p


def _status(run_dir: Path) -> str:
    return json.loads((run_dir / "run.json").read_text())["status"]


def test_second_command_on_a_held_folder_fails_at_once_and_a_kill_frees_it(tmp_path):
    d = tmp_path / "run"
    p = _child(d)
    try:
        assert folder_in_use(d) and read_run(d)["status"] == "running"
        t0 = time.monotonic()
        with pytest.raises(QSelectError) as info:
            Run.create("compare", {}, d, argv=["compare"])
        msg = str(info.value)
        assert time.monotonic() - t0 < 2.0  # at once, no waiting
        assert "in use by another qselect command" in msg and f"pid {p.pid}" in msg and "\n" not in msg
        assert _status(d) == "running"  # the refused command wrote nothing
    finally:
        p.kill()
        p.wait()
    # SIGKILL: no handler ran, run.json still says running on disk ...
    assert _status(d) == "running"
    # ... but nobody holds the folder, so a reader knows the process is gone
    assert not folder_in_use(d) and not run_process_alive(d)
    meta = read_run(d)
    assert meta["status"] == "interrupted" and meta["status_recorded"] == "running"
    # and the next command takes the folder at once
    with Run.create("select", {"seed": 2}, d) as run:
        assert _status(d) == "running" and json.loads(run.file("run.json").read_text())["process"]["pid"] == os.getpid()
        run.finish()
    assert _status(d) == "complete" and not folder_in_use(d)


def test_kill_between_report_and_final_record_reads_complete(tmp_path):
    d = tmp_path / "run"
    p = _child(d, body="""
        from qselect.io import atomic_write_json
        atomic_write_json(run.file("report.json"), {"results": []})
    """)
    p.kill()
    p.wait()
    assert _status(d) == "running"
    meta = read_run(d, repair=True)
    assert meta["status"] == "complete" and meta["status_recorded"] == "running"
    assert _status(d) == "complete"  # repaired on disk
    with pytest.raises(QSelectError, match="already holds a finished run"):
        Run.create("select", {}, d)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_are_recorded_like_ctrl_c(tmp_path, sig):
    d = tmp_path / "run"
    p = _child(d)
    p.send_signal(sig)
    p.wait(timeout=20)
    assert p.returncode != 0
    meta = json.loads((d / "run.json").read_text())
    assert meta["status"] == "interrupted" and meta["error"] == "interrupted"
    assert read_run(d)["status"] == "interrupted" and not folder_in_use(d)


def test_stray_temp_files_of_a_killed_run_are_removed_by_the_next(tmp_path):
    d = tmp_path / "run"
    (d / "jobs").mkdir(parents=True)
    stale = [d / ".report.json.k2j4x9ab.tmp", d / "jobs" / ".counts.json.abcdefgh.tmp"]
    keep = [d / "notes.tmp", d / "model.pt"]
    for f in stale + keep:
        f.write_text("x")
    run = Run.create("select", {}, d)
    try:
        assert not any(f.exists() for f in stale) and all(f.exists() for f in keep)
        assert not list(d.rglob(".*.tmp"))
    finally:
        run.release()


def test_remove_stale_temps_only_matches_atomic_write_temps(tmp_path):
    (tmp_path / ".a.json.xyz.tmp").write_text("x")
    (tmp_path / "a.tmp").write_text("x")
    (tmp_path / ".hidden").write_text("x")
    removed = remove_stale_temps(tmp_path)
    assert [p.name for p in removed] == [".a.json.xyz.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "a.tmp"]


def test_lock_is_reentrant_in_one_process_and_released_by_the_outermost(tmp_path):
    a = lock_folder(tmp_path)
    b = lock_folder(tmp_path)  # e.g. a command that then fetches into its own folder
    b.release()
    assert folder_in_use(tmp_path)
    a.release()
    a.release()  # idempotent
    assert not folder_in_use(tmp_path)


def test_fetch_style_lock_refuses_a_second_process(tmp_path):
    d = tmp_path / "run"
    p = _child(d)
    try:
        with pytest.raises(QSelectError, match="in use"):
            lock_folder(d, "hardware run")
    finally:
        p.kill()
        p.wait()
    with lock_folder(d, "hardware run"):
        assert folder_in_use(d)


def test_reopen_updates_the_record_and_keeps_the_configuration(tmp_path):
    d = tmp_path / "run"
    run = Run.create("hardware-submit", {"seed": 7, "shots": 64}, d, argv=["hardware", "submit"])
    run.write_metadata(status="submitted", jobs=2)
    run.release()
    again = Run.open(d)
    again.finish(fetched=True)
    again.release()
    meta = read_run(d)
    assert meta["status"] == "complete" and meta["config"] == {"seed": 7, "shots": 64}
    assert meta["jobs"] == 2 and meta["fetched"] is True and meta["command"] == "hardware-submit"
    with pytest.raises(QSelectError, match="holds no run.json"):
        Run.open(tmp_path / "empty")


def test_record_without_lock_file_falls_back_to_pid(tmp_path):
    import socket

    from qselect.runs import process_info

    (tmp_path / "run.json").write_text(json.dumps({"status": "running", "process": process_info()}))
    assert read_run(tmp_path)["status"] == "running"  # this very process: alive
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    info = {"pid": dead.pid, "host": socket.gethostname(), "start": "1"}
    (tmp_path / "run.json").write_text(json.dumps({"status": "running", "process": info}))
    assert read_run(tmp_path)["status"] == "interrupted"
    info["start"] = "0"  # pid reused by another process: a different start time
    info["pid"] = os.getpid()
    (tmp_path / "run.json").write_text(json.dumps({"status": "running", "process": info}))
    assert read_run(tmp_path)["status"] == "interrupted"


def test_unusable_run_dirs_fail_with_one_line(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(QSelectError, match="not a folder"):
        Run.create("select", {}, f)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.json").write_text("{not json")
    with pytest.raises(QSelectError, match="unreadable"):
        read_run(tmp_path / "bad")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return  # root ignores permission bits
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(QSelectError, match="ro"):
            Run.create("select", {}, ro)
    finally:
        ro.chmod(0o700)


def test_atomic_writes_leave_no_temp_on_failure(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "x.json", {"a": object()})
    assert not list(tmp_path.iterdir())


def test_the_lock_names_its_command_once(tmp_path):
    """The lock's owner reads like the command line, whether or not argv starts with the command."""
    import json

    from qselect.io import LOCK_NAME

    for argv in (["select", "--solver", "qaoa"], ["--solver", "qaoa"]):
        d = tmp_path / argv[0].strip("-")
        run = Run.create("select", {"seed": 1}, d, argv=argv)
        try:
            owner = json.loads((d / LOCK_NAME).read_text())["owner"]
            assert owner == "qselect select --solver qaoa"
        finally:
            run._lock.release()
