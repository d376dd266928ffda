"""Run directories: one folder per run, holding its resolved config and metadata.

``./runs/<command>-<UTC time>`` by default (``--run-dir`` to choose). The
folder gets ``config.toml`` (the resolved configuration, reusable with
``--config``) and ``run.json`` (command line, seeds, package versions, device,
status). ``run.json`` is rewritten atomically when the run finishes or fails,
so its ``status`` tells a complete run from an interrupted one.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .config import to_toml
from .errors import QSelectError
from .io import atomic_write_json, atomic_write_text

DEFAULT_BASE = Path("runs")
#: packages whose versions decide the numbers a run produces
TRACKED_PACKAGES = ("qselect", "numpy", "scipy", "torch", "qiskit", "qiskit-aer", "pennylane",
                    "dimod", "dwave-samplers", "scikit-learn")


def package_versions(packages=TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed versions from package metadata (no imports, so no backend is loaded)."""
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if out.get("qselect") is None:
        from . import __version__

        out["qselect"] = __version__
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
    """Refuse a folder that already holds a finished run: overwriting file by file would mix
    two runs' reports. The CLI calls this before any work starts, ``Run.create`` again."""
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
        try:
            if run_dir:
                path = Path(run_dir)
                check_run_dir(path)
                path.mkdir(parents=True, exist_ok=True)
            else:
                path = _fresh_dir(Path(base), command)
        except OSError as exc:
            raise QSelectError(
                f"cannot create run directory {path} ({exc.strerror}); choose another --run-dir"
            ) from None
        if not path.is_dir():
            raise QSelectError(f"run directory {path} is not a folder; choose another --run-dir")
        run = cls(path, command, config, argv)
        run.write_metadata(status="running")
        return run

    def file(self, name: str) -> Path:
        """Path of a file inside the run directory."""
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
            **self.meta,
        })

    def finish(self, **extra) -> None:
        """Mark the run ``complete`` (extra fields go into ``run.json``)."""
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
        """Record a failure or interruption in run.json (atomically) and re-raise it."""
        try:
            yield self
        except KeyboardInterrupt:
            self.fail("interrupted", status="interrupted")
            raise
        except BaseException as exc:
            self.fail(f"{type(exc).__name__}: {' '.join(str(exc).split())}")
            raise


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
