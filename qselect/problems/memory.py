"""Memory guards for dense 2^n objects: refuse before allocating, say what fits."""
from __future__ import annotations

import os
import time

from ..errors import ProblemTooLargeError

# Of the memory the OS reports as available, leave a quarter for the rest of the
# process (imports, temporaries, torch, qiskit).
_USABLE_FRACTION = 0.75


#: how long a reading of the available memory is reused (seconds): block descents check the
#: memory of thousands of small objects a second, and each /proc read costs tens of µs
_READING_TTL = 0.1
_reading = (-1.0, 0)


def available_bytes() -> int:
    """Physical memory available to this process (Linux /proc, else sysconf), re-read every 0.1 s."""
    global _reading
    now = time.monotonic()
    if now - _reading[0] < _READING_TTL:
        return _reading[1]
    _reading = (now, _read_available())
    return _reading[1]


def _read_available() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def max_qubits(bytes_per_entry: int, copies: float = 1.0, budget: int | None = None) -> int:
    """Largest n such that ``copies`` dense vectors of 2^n entries fit the budget.

    Parameters
    ----------
    bytes_per_entry : int
        8 for float64 / complex64, 16 for complex128.
    copies : float
        How many such vectors must coexist.
    budget : int or None
        Bytes available; default: a safe share of the available memory.

    Returns
    -------
    int
    """
    budget = int((available_bytes() if budget is None else budget) * _USABLE_FRACTION)
    n = 0
    while (2 ** (n + 1)) * bytes_per_entry * copies <= budget:
        n += 1
    return n


def check_dense(n: int, bytes_per_entry: int, what: str, copies: float = 1.0) -> None:
    """Raise ProblemTooLargeError if ``copies`` vectors of 2^n entries do not fit.

    Parameters
    ----------
    n : int
        Number of qubits / bits.
    bytes_per_entry : int
    what : str
        What would be allocated (for the message).
    copies : float

    Raises
    ------
    ProblemTooLargeError
        Saying how many qubits fit.
    """
    # exact integer arithmetic (copies in quarters): 2^n as a float overflows beyond n ≈ 1000
    need = (2**int(n) * int(bytes_per_entry) * max(round(copies * 4), 1)) // 4
    avail = available_bytes()
    if need > avail * _USABLE_FRACTION:
        fit = max_qubits(bytes_per_entry, copies, avail)
        raise ProblemTooLargeError(
            f"{what} for {n} qubits needs {_fmt(need)} but only {_fmt(avail)} of memory is "
            f"available (at most {fit} qubits fit); use a smaller qubit budget (--qubits) "
            f"so the problem is decomposed into blocks"
        )


def check_bytes(need: int, what: str, fix: str) -> None:
    """Raise ProblemTooLargeError if ``need`` bytes do not fit in a safe share of the available memory.

    Parameters
    ----------
    need : int
        Bytes about to be allocated.
    what : str
        What they are for (for the message).
    fix : str
        How to ask for less (for the message).

    Raises
    ------
    ProblemTooLargeError
        Saying how much is needed and how much is available.
    """
    avail = available_bytes()
    usable = int(avail * _USABLE_FRACTION)
    if int(need) > usable:
        raise ProblemTooLargeError(f"{what} needs {_fmt(int(need))}, more than the {_fmt(usable)} it may use of the "
                                   f"{_fmt(avail)} of memory available; {fix}")


def _fmt(b) -> str:
    """Bytes for a message; sizes beyond PiB (2^n for large n, an exact int) as a power of two."""
    if b >= 1024**6:  # never turned into a float: 2^1100 would overflow it
        return f"about 2^{int(b).bit_length() - 1} bytes"
    b = float(b)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if b < 1024 or unit == "PiB":
            return f"{b:.1f} {unit}"
        b /= 1024
    return f"{b:.1f} PiB"
