"""User-facing errors: one line that says what is wrong and how to fix it.

The CLI turns any ``QSelectError`` into that line and exit code 2; everything
else is a bug and keeps its traceback.
"""


class QSelectError(ValueError):
    """Bad input or an impossible request, explained in one line."""


class ProblemTooLargeError(QSelectError, MemoryError):
    """A dense representation (cost vector, statevector) would not fit in memory."""


class BackendUnavailableError(QSelectError):
    """An optional backend (package, device, account) is missing."""
