"""Atomic file writes: a temp file in the same folder, fsync, then rename.

A reader (or an interrupted run) sees either the old file or the new one,
never half of one. Every file qselect writes goes through here.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write bytes atomically: temp file in the same folder, fsync, rename, fsync the folder.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; its folder is created if missing.
    data : bytes

    Returns
    -------
    pathlib.Path
        The written path. A reader sees the old file or the new one, never a
        partial write; the file keeps the umask's permissions.
    """
    return _atomic(path, lambda fh: fh.write(data), "wb")


def atomic_write_text(path, text: str) -> Path:
    """Write UTF-8 text atomically (see :func:`atomic_write_bytes`).

    Parameters
    ----------
    path : str or os.PathLike
    text : str

    Returns
    -------
    pathlib.Path
    """
    return _atomic(path, lambda fh: fh.write(text), "w")


def atomic_write_json(path, obj: Any, **kw) -> Path:
    """Write an object as JSON atomically (see :func:`atomic_write_bytes`).

    NumPy scalars and arrays and ``pathlib.Path`` objects are converted.

    Parameters
    ----------
    path : str or os.PathLike
    obj : object
        Anything ``json.dumps`` accepts after that conversion.
    **kw
        Passed to ``json.dumps`` (default ``indent=2``).

    Returns
    -------
    pathlib.Path
    """
    kw.setdefault("indent", 2)
    kw.setdefault("sort_keys", False)
    text = json.dumps(obj, default=_json_default, **kw) + "\n"
    return atomic_write_text(path, text)


def atomic_write_with(path, writer: Callable[[str], None]) -> Path:
    """For libraries that write to a path themselves (torch.save, savefig)."""
    return _replace_atomically(path, writer)


def append_line_durable(path, line: str) -> None:
    """Append one line and fsync (append-only logs such as the job ledger).

    When the append creates the file, its folder is fsynced too: otherwise a
    power loss could drop the new file's entry although its data was synced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line.rstrip("\n") + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    if created:
        fsync_dir(path.parent)


def _atomic(path, write, mode) -> Path:
    def writer(tmp: str) -> None:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            write(fh)

    return _replace_atomically(path, writer)


def _replace_atomically(path, writer: Callable[[str], None]) -> Path:
    """Let ``writer`` fill a temp file beside ``path``, fsync it, rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def fsync_dir(folder) -> None:
    """Persist a folder's entries (a rename or a new file) across power loss; best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories
    finally:
        os.close(fd)


def _unlink(p) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def _json_default(o):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
