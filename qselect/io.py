"""Atomic file writes (a temp file in the same folder, fsync, then rename) and folder locks.

A reader (or an interrupted run) sees either the old file or the new one,
never half of one. Every file qselect writes goes through here.

A folder that a command writes into (a run directory) is held with
:func:`lock_folder`: an exclusive ``flock`` on ``<folder>/.qselect.lock``.
The kernel drops the lock when its process ends, however it ends (SIGKILL
included), so a dead command never leaves a folder stuck; a second command on
the same folder fails at once with one line. Temp files left by a killed
write (``.<name>.<random>.tmp``) are removed by :func:`remove_stale_temps`,
which the lock holder calls on taking the folder.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from .errors import QSelectError

try:  # POSIX; elsewhere folder locks are best effort (none)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


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
    """For libraries that write to a path themselves (torch.save, savefig).

    Parameters
    ----------
    path : str or os.PathLike
    writer : callable
        ``writer(temp_path)`` writes the whole file.

    Returns
    -------
    pathlib.Path
    """
    return _replace_atomically(path, writer)


def append_line_durable(path, line: str) -> None:
    """Append one line and fsync (append-only logs such as the job ledger).

    When the append creates the file, its folder is fsynced too: otherwise a
    power loss could drop the new file's entry although its data was synced.

    Parameters
    ----------
    path : str or os.PathLike
    line : str
        Without a newline (one is added).
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
    """Persist a folder's entries (a rename or a new file) across power loss; best effort.

    Parameters
    ----------
    folder : str or os.PathLike
    """
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


# ---------------------------------------------------------------------------
# Folder locks
# ---------------------------------------------------------------------------
LOCK_NAME = ".qselect.lock"
#: temp files written by _replace_atomically: ".<name>.<mkstemp suffix>.tmp"
_TEMP_RE = re.compile(r"^\..+\.tmp$")
_held: dict[str, list] = {}  # real folder path -> [fd, depth]: locks this process holds
_held_guard = threading.Lock()


class FolderLock:
    """An exclusive lock on a folder, held until :meth:`release` (or the process ends).

    Re-entrant within one process (a command that takes the lock twice, e.g.
    a run that then fetches hardware results, nests); another process is
    refused at once. Use :func:`lock_folder` to take one.
    """

    def __init__(self, folder: Path, key: str):
        self.folder = folder
        self._key = key
        self._released = False

    def release(self) -> None:
        """Give the lock back (the outermost release of this process unlocks the folder)."""
        if self._released:
            return
        self._released = True
        with _held_guard:
            entry = _held.get(self._key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del _held[self._key]
        try:
            if fcntl is not None:
                fcntl.flock(entry[0], fcntl.LOCK_UN)
        finally:
            os.close(entry[0])

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _lock_key(folder: Path) -> str:
    return os.path.realpath(folder)


def lock_folder(folder, what: str = "run directory", *, owner: str = "") -> FolderLock:
    """Take the exclusive lock of ``folder`` (created if missing) or fail at once.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to hold (a run directory).
    what : str
        How the message names the folder.
    owner : str
        Recorded in the lock file (e.g. the command line) for the refusal message.

    Returns
    -------
    FolderLock
        Held until ``release()`` or the end of the process, whichever comes first.

    Raises
    ------
    QSelectError
        Another live process holds the folder (the message names its pid and
        command), or the folder cannot be created or locked.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QSelectError(f"cannot create {what} {folder} ({exc.strerror}); choose another folder") from None
    key = _lock_key(folder)
    with _held_guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
            return FolderLock(folder, key)
        path = folder / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        except OSError as exc:
            raise QSelectError(f"cannot lock {what} {folder} ({exc.strerror}); check its permissions "
                               "or choose another folder") from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_holder(fd)
                os.close(fd)
                raise QSelectError(f"{what} {folder} is in use by another qselect command{holder}; wait for "
                                   "it to finish or choose another folder") from None
        try:  # who holds it, for the message another process gets
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "owner": owner}).encode() + b"\n", 0)
        except OSError:
            pass
        _held[key] = [fd, 1]
    return FolderLock(folder, key)


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return ""
    pid, owner = info.get("pid"), " ".join(str(info.get("owner") or "").split())
    if not pid:
        return ""
    return f" (pid {pid}" + (f": {owner[:120]}" if owner else "") + ")"


def folder_in_use(folder) -> bool:
    """Whether a live process (this one included) holds ``folder``'s lock.

    A lock file left by a process that is gone does not count: the kernel
    released its lock when it ended.

    Parameters
    ----------
    folder : str or os.PathLike

    Returns
    -------
    bool
    """
    folder = Path(folder)
    if _lock_key(folder) in _held:
        return True
    path = folder / LOCK_NAME
    if fcntl is None or not path.exists():
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def remove_stale_temps(folder, recursive: bool = True) -> list[Path]:
    """Delete temp files a killed atomic write left behind (``.<name>.<random>.tmp``).

    Call it only while holding the folder's lock (no other writer can be
    mid-write then). Returns the removed paths.

    Parameters
    ----------
    folder : str or os.PathLike
    recursive : bool

    Returns
    -------
    list of pathlib.Path
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    removed = []
    for p in found:
        if _TEMP_RE.match(p.name) and p.is_file() and not p.is_symlink():
            _unlink(p)
            removed.append(p)
    return removed
