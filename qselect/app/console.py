"""Console output of application runs: results on stdout, progress on stderr logging."""
from __future__ import annotations

import logging
import sys

log = logging.getLogger("qselect")


class Console:
    """stdout for results (tables, report path), stderr logging for progress."""

    def __init__(self, quiet: bool = False, verbose: bool = False, stream=None):
        self.quiet = quiet
        self.verbose = verbose
        self.stream = stream

    @property
    def progress(self) -> bool:
        """Progress bars: not when quiet; on a terminal, or always with --verbose."""
        return not self.quiet and (self.verbose or sys.stderr.isatty())

    def print(self, *args, **kw) -> None:
        """Print a result to stdout (or the console's stream) unless quiet.

        Parameters
        ----------
        *args, **kw
            As for ``print``.
        """
        if not self.quiet:
            self._write(args, kw)

    def result(self, *args) -> None:
        """Always printed (the report location), even with --quiet.

        Parameters
        ----------
        *args
            As for ``print``.
        """
        self._write(args, {})

    def _write(self, args, kw) -> None:
        # A reader that closed the pipe (`qselect compare ... | head -2`) must not lose the run:
        # stop printing, keep working; the report files are the result.
        if getattr(self, "_closed", False):
            return
        stream = self.stream or sys.stdout
        try:
            print(*args, file=stream, **kw)
            if kw.get("flush"):
                stream.flush()
        except BrokenPipeError:
            self._closed = True
            _silence_stdout(stream)

    def info(self, msg: str, *args) -> None:
        """Log a progress message on stderr (``qselect: ...``), hidden by ``--quiet``.

        Parameters
        ----------
        msg : str
            ``%``-format string.
        *args
        """
        log.info(msg, *args)


def setup_logging(quiet: bool, verbose: bool) -> None:
    """Configure the ``qselect`` logger once: stderr, ``qselect: <message>``.

    Parameters
    ----------
    quiet : bool
        Warnings and errors only.
    verbose : bool
        Debug messages too.
    """
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logger = logging.getLogger("qselect")
    logger.setLevel(level)
    if not any(getattr(h, "_qselect", False) for h in logger.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("qselect: %(message)s"))
        h._qselect = True
        logger.addHandler(h)
        logger.propagate = False
    for h in logger.handlers:
        if getattr(h, "_qselect", False):
            h.stream = sys.stderr  # tests swap sys.stderr between calls


def _silence_stdout(stream) -> None:
    """Point a closed stdout at /dev/null so the interpreter's final flush stays quiet."""
    import os

    if stream is not sys.stdout:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
