"""Keep the IBM token out of everything qselect writes or raises.

Any text that may have come from the runtime client (exception messages,
job error messages) passes through ``redact`` before it reaches a file, a log
or an exception; ``redacted_errors`` masks any exception that carries a
secret (the CLI commands run inside it); ``sanitised_errors`` turns a foreign exception into a
one-line ``QSelectError`` with the secrets removed and the original chain
dropped (a chained traceback would print the raw message again).
"""
from __future__ import annotations

import contextlib
import os
import re

from ..errors import QSelectError

_MASK = "***"
_extra_secrets: set[str] = set()


class HardwareError(QSelectError):
    """The quantum service or a job failed; the message is already redacted.

    Parameters
    ----------
    message : str
        The whole one-line message.
    detail : str or None
        The message without its advice, when the advice depends on the caller
        (``sanitised_errors`` with a ``hint`` replaces it).
    """

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.detail = detail


def register_secret(value: str | None) -> None:
    """Treat ``value`` (e.g. a token read from a saved account) as a secret from now on.

    Parameters
    ----------
    value : str or None
    """
    if value and len(value) >= 4:
        _extra_secrets.add(str(value))


def _secrets() -> list[str]:
    found = set(_extra_secrets)
    for var in ("QISKIT_IBM_TOKEN", "IBM_QUANTUM_TOKEN", "QISKIT_IBM_API_KEY"):
        v = os.environ.get(var)
        if v and len(v) >= 4:
            found.add(v)
    # longest first so a secret containing another is masked whole
    return sorted(found, key=len, reverse=True)


# Things that look like credentials even when we were never told the value. A placeholder in angle
# brackets (``token='<API key>'`` in a how-to hint) is no credential and stays readable; a saved or
# environment token is masked by value above, wherever it appears.
_PLACEHOLDER = r"(?!<[^<>\n]{1,40}>(?:[\s\"',})]|$))"
_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)" + _PLACEHOLDER + r"[A-Za-z0-9._\-]+"),
    re.compile(r"(?i)((?:api[_-]?key|apikey|token|access_token|authorization)[\"']?\s*[:=]\s*[\"']?)"
               + _PLACEHOLDER + r"[^\s\"',}]+"),
]

#: What to do after a service error when no run folder holds the work (nothing to resume).
RETRY_HINT = "check the device name, your IBM Quantum account and network, then run the command again"


def resume_hint(run_dir) -> str:
    """What to do after a service error once ``run_dir`` holds a planned run: resume it with ``fetch``.

    Parameters
    ----------
    run_dir : str or os.PathLike

    Returns
    -------
    str
    """
    return (f"nothing is lost: check your IBM Quantum account and network, then resume with "
            f"`qselect hardware fetch --run-dir {run_dir}`")


def redact(text) -> str:
    """The text with every known secret (saved or environment IBM tokens, token-like patterns) masked.

    Parameters
    ----------
    text : object
        Converted with ``str``.

    Returns
    -------
    str
    """
    text = str(text)
    for s in _secrets():
        text = text.replace(s, _MASK)
    for pat in _PATTERNS:
        text = pat.sub(lambda m: m.group(1) + _MASK, text)
    return text


@contextlib.contextmanager
def redacted_errors():
    """Redact exceptions whose text holds a secret.

    Let exceptions through untouched unless their text holds a secret; those become a redacted one-line
    ``HardwareError`` (the raw one is not chained, so no traceback shows it).
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - any type may carry a client's message
        msg = redact(exc)
        if msg == str(exc):
            raise
        raise HardwareError(" ".join(msg.split())) from None


@contextlib.contextmanager
def sanitised_errors(what: str, hint: str | None = None):
    """Re-raise any non-qselect exception from the service as a redacted ``HardwareError``.

    BaseExceptions that are not Exceptions (KeyboardInterrupt, SystemExit) pass
    untouched: an interrupted run must stay interrupted so it can resume.

    Parameters
    ----------
    what : str
        What was being done (for the message).
    hint : str or None
        What the user can do next (e.g. :func:`resume_hint` of the run folder);
        default :data:`RETRY_HINT`, which assumes no run folder to resume. Given,
        it also replaces the advice of a ``HardwareError`` raised by a nested
        ``sanitised_errors`` (the service's own, which cannot know the run folder).

    Raises
    ------
    HardwareError
        Instead of any other exception, message redacted.
    """
    try:
        yield
    except QSelectError as exc:
        detail = getattr(exc, "detail", None)
        if hint is not None and isinstance(exc, HardwareError) and detail:
            raise HardwareError(f"{detail}; {hint}", detail=detail) from None
        msg = redact(exc)
        if msg == str(exc):
            raise
        raise HardwareError(msg) from None
    except Exception as exc:  # noqa: BLE001 - foreign client errors of any type
        first = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        detail = f"{what} failed ({type(exc).__name__}: {first})"
        err = HardwareError(f"{detail}; {hint or RETRY_HINT}", detail=detail)
        err.__cause__ = None
        err.__suppress_context__ = True
        raise err from None
