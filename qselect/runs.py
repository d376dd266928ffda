"""Run directories: one folder per run, holding its resolved config and metadata.

``./runs/<command>-<UTC time>`` by default (``--run-dir`` to choose). The
folder gets ``config.toml`` (the resolved configuration, reusable with
``--config``) and ``run.json`` (command line, seeds, package versions, device,
status, and the pid/host/start of the process that writes it). ``run.json`` is
rewritten atomically when the run finishes or fails, so its ``status`` tells a
complete run from an interrupted one.

A command holds its run directory with an exclusive lock (``qselect.io.lock_folder``)
for its whole lifetime: a second command on the same folder fails at once, and
a killed command cannot leave the folder stuck (the kernel drops the lock).
Temp files a killed run left are removed when the next one takes the folder.
SIGTERM and SIGHUP are handled like Ctrl-C (status ``interrupted``), and
:func:`read_run` reports a ``running`` run whose process is gone as
``interrupted`` (``complete`` when its report.json, written last, is there).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import signal
import socket
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

from .config import to_toml
from .errors import QSelectError
from .io import atomic_write_json, atomic_write_text, folder_in_use, lock_folder, remove_stale_temps

DEFAULT_BASE = Path("runs")
#: packages whose versions decide the numbers a run produces
TRACKED_PACKAGES = ("qselect", "numpy", "scipy", "torch", "qiskit", "qiskit-aer", "pennylane",
                    "dimod", "dwave-samplers", "scikit-learn")


def package_versions(packages=TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed versions from package metadata (no imports, so no backend is loaded).

    Parameters
    ----------
    packages : sequence of str

    Returns
    -------
    dict of str -> str or None
    """
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if out.get("qselect") is None:  # not installed as a distribution: the package's own attribute
        out["qselect"] = getattr(sys.modules.get(__package__ or "qselect"), "__version__", None)
    return out


def device_info() -> dict[str, Any]:
    """The compute device the PyTorch side uses (CUDA when present, else CPU)."""
    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                            "python": sys.version.split()[0]}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["device"] = "cuda"
            info["device_name"] = torch.cuda.get_device_name(0)
        else:
            info["device"] = "cpu"
            info["device_name"] = platform.processor() or platform.machine()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        info["device"] = "cpu"
    return info


def check_run_dir(run_dir) -> None:
    """Refuse a folder that already holds a finished run: overwriting file by file would mix two runs' reports.

    The CLI calls this before any work starts, ``Run.create`` again.

    Parameters
    ----------
    run_dir : str or os.PathLike

    Raises
    ------
    QSelectError
        If the path is a file, or the folder holds a finished run (``report.json``).
    """
    if run_dir and Path(run_dir).exists() and not Path(run_dir).is_dir():
        raise QSelectError(f"--run-dir {run_dir} is a file, not a folder; choose a folder path (it is created)")
    if run_dir and (Path(run_dir) / "report.json").exists():
        raise QSelectError(f"run directory {run_dir} already holds a finished run (report.json); "
                           "choose a new --run-dir or remove the old one")


def _utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


class Run:
    """A run directory plus its metadata; create with ``Run.create``."""

    def __init__(self, path: Path, command: str, config: dict, argv: list[str] | None = None):
        self.path = Path(path)
        self.command = command
        self.config = dict(config)
        self.argv = list(argv or [])
        self.started = _utc_now()
        self.meta: dict[str, Any] = {}
        self._lock = None

    @classmethod
    def create(cls, command: str, config: dict, run_dir=None, argv=None, base=DEFAULT_BASE) -> "Run":
        """Create (or reuse) a run directory and write its first ``run.json`` (status ``running``).

        Parameters
        ----------
        command : str
            The command name (``demo``, ``select``, ...); names the fresh folder.
        config : dict
            The resolved configuration, stored as ``config.toml``.
        run_dir : str, os.PathLike or None
            Folder to use; ``None``: a new ``<base>/<command>-<time>`` folder.
        argv : list of str or None
            The command line, recorded in ``run.json``.
        base : str or os.PathLike
            Parent of fresh folders (default ``runs/``).

        Returns
        -------
        Run

        Raises
        ------
        QSelectError
            If the folder cannot be created or already holds a finished run.
        """
        argv = list(argv or [])
        path = Path(run_dir) if run_dir else None
        try:
            if path is not None:
                check_run_dir(path)  # before anything is created or locked
                if path.exists() and not path.is_dir():
                    raise QSelectError(f"run directory {path} is not a folder; choose another --run-dir")
                path.mkdir(parents=True, exist_ok=True)
            else:
                path = _fresh_dir(Path(base), command)
        except OSError as exc:
            raise QSelectError(
                f"cannot create run directory {path} ({exc.strerror}); choose another --run-dir"
            ) from None
        words = [str(a) for a in argv]
        owner = ["qselect", *words] if words[:1] == [command] else ["qselect", command, *words]  # argv may name it
        lock = lock_folder(path, "run directory", owner=" ".join(owner))
        try:
            check_run_dir(path)  # again under the lock: another command may have finished meanwhile
            remove_stale_temps(path)
            run = cls(path, command, config, argv)
            run._lock = lock
            run.write_metadata(status="running")
        except OSError as exc:
            lock.release()
            raise QSelectError(f"cannot write to run directory {path} ({exc.strerror}); check its "
                               "permissions or choose another --run-dir") from None
        except BaseException:
            lock.release()
            raise
        return run

    @classmethod
    def open(cls, run_dir, owner: str = "") -> "Run":
        """Take over an existing run directory (to update it, e.g. after fetching results).

        Locks the folder like :meth:`create`, removes stale temp files and
        loads ``run.json``; later ``write_metadata``/``finish`` calls keep its
        command, configuration, start time and extra fields.

        Parameters
        ----------
        run_dir : str or os.PathLike
            A folder written by :meth:`create`.
        owner : str
            Recorded in the lock file for the message a concurrent command gets.

        Returns
        -------
        Run

        Raises
        ------
        QSelectError
            No readable ``run.json`` there, or another live command holds the folder.
        """
        path = Path(run_dir)
        meta = read_run(path)
        lock = lock_folder(path, "run directory", owner=owner or f"qselect {meta.get('command', '')}")
        try:
            remove_stale_temps(path)
            run = cls(path, str(meta.get("command") or "run"), dict(meta.get("config") or {}),
                      list(meta.get("argv") or []))
            try:
                run.started = _dt.datetime.fromisoformat(str(meta.get("started")))
            except ValueError:
                pass
            run.meta = {k: v for k, v in meta.items() if k not in _CORE_KEYS}
            run._lock = lock
        except BaseException:
            lock.release()
            raise
        return run

    def release(self) -> None:
        """Give the folder's lock back (it is also released when the process ends)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def file(self, name: str) -> Path:
        """Path of a file inside the run directory.

        Parameters
        ----------
        name : str

        Returns
        -------
        pathlib.Path
        """
        return self.path / name

    def seeds(self) -> dict[str, Any]:
        """The configuration's seed entries (``seed``, ``*_seed``, ``*seeds``), for ``run.json``."""
        return {k: v for k, v in self.config.items() if k == "seed" or k.endswith("seeds") or k.endswith("_seed")}

    def write_metadata(self, status: str, **extra) -> None:
        """Rewrite ``config.toml`` and ``run.json`` atomically.

        Parameters
        ----------
        status : {"running", "complete", "failed", "interrupted"}
        **extra
            Further fields merged into ``run.json`` (kept for later writes).
        """
        self.meta.update(extra)
        header = f"qselect {self.command}: resolved configuration (reuse with --config)"
        # without run-dir, so `--config config.toml` reruns into a fresh folder (this one holds a report)
        atomic_write_text(self.file("config.toml"), to_toml({**self.config, "run_dir": None}, header))
        atomic_write_json(self.file("run.json"), {
            "command": self.command,
            "argv": self.argv,
            "status": status,
            "started": self.started.isoformat(timespec="seconds"),
            "updated": _utc_now().isoformat(timespec="seconds"),
            "seeds": self.seeds(),
            "config": self.config,
            "versions": package_versions(),
            "device": device_info(),
            "process": process_info(),
            **self.meta,
        })

    def finish(self, **extra) -> None:
        """Mark the run ``complete`` (extra fields go into ``run.json``).

        Parameters
        ----------
        **extra
            Fields merged into ``run.json``.
        """
        self.write_metadata(status="complete", **extra)

    def fail(self, message: str, status: str = "failed") -> None:
        """Mark the run failed (or ``interrupted``) with a one-line error message.

        Parameters
        ----------
        message : str
        status : str
            ``"failed"`` or ``"interrupted"``.
        """
        self.write_metadata(status=status, error=message)

    @contextlib.contextmanager
    def guard(self):
        """Record a failure or interruption in run.json (atomically) and re-raise it.

        Ctrl-C, SIGTERM and SIGHUP all end as status ``interrupted`` (the
        signals are turned into ``KeyboardInterrupt`` while the guard is
        active, in the main thread, where no other handler is installed).
        """
        with terminate_as_interrupt():
            try:
                yield self
            except KeyboardInterrupt:
                self.fail("interrupted", status="interrupted")
                raise
            except BaseException as exc:
                self.fail(f"{type(exc).__name__}: {' '.join(str(exc).split())}")
                raise


#: run.json fields every write sets (the rest are a run's extra metadata)
_CORE_KEYS = ("command", "argv", "status", "started", "updated", "seeds", "config", "versions", "device",
              "process")
#: statuses that say the writing process is still at work
_LIVE_STATUSES = ("running",)


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot; Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_info() -> dict[str, Any]:
    """pid, host and start time of this process, recorded in run.json."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": _process_start(os.getpid())}


def _pid_alive(info: dict) -> bool | None:
    """Whether the process recorded in ``info`` still runs; None when this host cannot tell."""
    pid = info.get("pid")
    if not isinstance(pid, int) or info.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    start = info.get("start")
    return start is None or _process_start(pid) == start


def run_process_alive(run_dir, meta: dict | None = None) -> bool:
    """Whether the command that wrote ``run_dir`` is still running.

    The folder lock answers first (held = alive; a lock file nobody holds =
    the process is gone, whatever pid it had); folders from before locks
    fall back to the recorded pid, host and process start time.

    Parameters
    ----------
    run_dir : str or os.PathLike
    meta : dict or None
        The run's ``run.json`` (read when None).

    Returns
    -------
    bool
    """
    run_dir = Path(run_dir)
    if folder_in_use(run_dir):
        return True
    if (run_dir / ".qselect.lock").exists():
        return False
    alive = _pid_alive((meta or {}).get("process") or {})
    return bool(alive) if alive is not None else True  # another host, no lock: trust the record


def read_run(run_dir, *, repair: bool = False) -> dict[str, Any]:
    """``run.json`` of a run directory, with its status as it really is.

    A ``running`` run whose process is gone (killed, machine restarted) is
    reported ``interrupted``, or ``complete`` when its ``report.json`` (written
    after every other report file) exists; the recorded value is kept as
    ``status_recorded``.

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run directory.
    repair : bool
        Also rewrite ``run.json`` with the corrected status (under the folder lock).

    Returns
    -------
    dict
        The run.json fields.

    Raises
    ------
    QSelectError
        No run.json there, or it is not readable JSON.
    """
    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QSelectError(f"{run_dir} holds no run.json; pass a folder written by a qselect command") from None
    except (OSError, ValueError) as exc:
        raise QSelectError(f"{path} is unreadable ({type(exc).__name__}); the folder is not a complete "
                           "qselect run") from None
    if not isinstance(meta, dict):
        raise QSelectError(f"{path} is not a run record (expected a JSON object)")
    if meta.get("status") in _LIVE_STATUSES and not run_process_alive(run_dir, meta):
        meta["status_recorded"] = meta["status"]
        if (run_dir / "report.json").exists():
            meta["status"] = "complete"
        else:
            meta["status"] = "interrupted"
            meta.setdefault("error", "the command ended without recording how (killed or the machine stopped)")
        if repair:
            try:
                with lock_folder(run_dir, "run directory"):
                    fixed = {k: v for k, v in meta.items() if k != "status_recorded"}
                    fixed["updated"] = _utc_now().isoformat(timespec="seconds")
                    atomic_write_json(path, fixed)
            except QSelectError:
                pass  # someone took the folder meanwhile: its own record will follow
    return meta


_signal_guard = threading.Lock()


@contextlib.contextmanager
def terminate_as_interrupt(signals=("SIGTERM", "SIGHUP")):
    """Within the block, the given signals raise ``KeyboardInterrupt`` (once), like Ctrl-C.

    Only in the main thread and only for signals still at their default
    action: a handler someone else installed is left alone.

    Parameters
    ----------
    signals : sequence of str
        Signal names.

    Returns
    -------
    context manager
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum, frame):
        if fired:  # a second signal while the run records the first is ignored
            return
        fired.append(signum)
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")

    previous = {}
    with _signal_guard:
        for name in signals:
            sig = getattr(signal, name, None)
            if sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, None):
                previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        with _signal_guard:
            for sig, old in previous.items():
                signal.signal(sig, old)


def _fresh_dir(base: Path, command: str) -> Path:
    """Create and return a new folder; mkdir(exist_ok=False) makes concurrent runs safe."""
    stamp = _utc_now().strftime("%Y%m%d-%H%M%S")
    base.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10_000):
        candidate = base / (f"{command}-{stamp}" if i == 1 else f"{command}-{stamp}-{i}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise QSelectError(f"could not create a fresh run directory under {base}; pass --run-dir")
