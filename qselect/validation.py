"""Argument checks shared by every public constructor and function.

Each check returns the normalised value or raises :class:`~qselect.errors.QSelectError`
with one line that names the argument, what it got and what to pass instead, so
no raw ``ValueError``/``TypeError`` from NumPy or ``int()`` reaches a user.
This module sits at the bottom of the package (it imports only
``qselect.errors`` and NumPy): problems, solvers, the PyTorch side and the
command line all validate through it, so one rule holds everywhere.

Sparsity rule (one for the whole toolkit): the fraction of weights or units
removed is a number in ``[0, 1)``. ``0`` keeps everything (a dense
reference); ``1`` is refused, it would remove every weight.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from .errors import QSelectError

#: seeds are drawn into NumPy's and dwave-samplers' 32-bit generators
MAX_SEED = 2**32 - 2
#: the one sparsity rule: sparsity in [SPARSITY_MIN, SPARSITY_MAX)
SPARSITY_MIN = 0.0
SPARSITY_MAX = 1.0
SPARSITY_RULE = "a number in [0, 1) (the fraction removed; 0 keeps everything, 1 is not allowed)"


def _is_integral(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (numbers.Integral, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer()


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None,
              allow_none: bool = False) -> int | None:
    """``value`` as an ``int`` (an integral float such as ``3.0`` is accepted).

    Parameters
    ----------
    value : object
        The user's value.
    name : str
        Argument name used in the message.
    minimum, maximum : int, optional
        Inclusive bounds.
    allow_none : bool
        Return ``None`` for ``None`` instead of refusing it.

    Returns
    -------
    int or None

    Raises
    ------
    QSelectError
        Not an integer (strings, ``None``, NaN, booleans, fractions) or out of bounds.
    """
    if value is None and allow_none:
        return None
    if not _is_integral(value) or (minimum is not None and value < minimum) \
            or (maximum is not None and value > maximum):
        if minimum is not None and maximum is not None:
            bound = f"an integer in [{minimum}, {maximum}]"
        elif minimum is not None:
            bound = f"an integer ≥ {minimum}"
        elif maximum is not None:
            bound = f"an integer ≤ {maximum}"
        else:
            bound = "an integer"
        extra = " (or None)" if allow_none else ""
        raise QSelectError(f"{name} must be {bound}{extra}, got {value!r}")
    return int(value)


def check_positive_int(value, name: str, *, maximum: int | None = None, allow_none: bool = False) -> int | None:
    """An integer ≥ 1 (see :func:`check_int`).

    Parameters
    ----------
    value : int
    name : str
        The argument's name, quoted in the error message.
    maximum : int or None
    allow_none : bool

    Returns
    -------
    int or None

    Raises
    ------
    QSelectError
        Naming the argument, with what was wrong.
    """
    return check_int(value, name, minimum=1, maximum=maximum, allow_none=allow_none)


def check_nonnegative_int(value, name: str, *, maximum: int | None = None, allow_none: bool = False) -> int | None:
    """An integer ≥ 0 (see :func:`check_int`).

    Parameters
    ----------
    value : int
    name : str
        The argument's name, quoted in the error message.
    maximum : int or None
    allow_none : bool

    Returns
    -------
    int or None

    Raises
    ------
    QSelectError
        Naming the argument, with what was wrong.
    """
    return check_int(value, name, minimum=0, maximum=maximum, allow_none=allow_none)


def check_seed(value, name: str = "seed", *, allow_none: bool = True) -> int | None:
    """A random seed: an integer in ``[0, MAX_SEED]`` (``None`` = fresh entropy when allowed).

    Parameters
    ----------
    value : int or None
    name : str
        The argument's name, quoted in the error message.
    allow_none : bool

    Returns
    -------
    int or None

    Raises
    ------
    QSelectError
        A string, a float with a fraction, a negative or too large number.
    """
    return check_int(value, name, minimum=0, maximum=MAX_SEED, allow_none=allow_none)


def check_float(value, name: str, *, minimum: float | None = None, maximum: float | None = None,
                low_open: bool = False, high_open: bool = False, allow_none: bool = False) -> float | None:
    """A finite real number within optional bounds (``low_open``/``high_open`` exclude a bound).

    Parameters
    ----------
    value : float
    name : str
        The argument's name, quoted in the error message.
    minimum, maximum : float or None
    low_open, high_open : bool
    allow_none : bool

    Returns
    -------
    float or None

    Raises
    ------
    QSelectError
        Not a real number, NaN/inf, complex, or out of bounds.
    """
    if value is None and allow_none:
        return None
    ok = isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, bool)
    x = float(value) if ok else float("nan")
    if ok and math.isfinite(x):
        lo_ok = minimum is None or (x > minimum if low_open else x >= minimum)
        hi_ok = maximum is None or (x < maximum if high_open else x <= maximum)
        if lo_ok and hi_ok:
            return x
    lo = "" if minimum is None else ("(" if low_open else "[") + f"{minimum:g}"
    hi = "" if maximum is None else f"{maximum:g}" + (")" if high_open else "]")
    bound = f" in {lo or '(-inf'}, {hi or 'inf)'}" if (minimum is not None or maximum is not None) else ""
    raise QSelectError(f"{name} must be a finite number{bound}, got {value!r}")


def check_fraction(value, name: str, *, low_open: bool = False, high_open: bool = False) -> float:
    """A number in [0, 1] (either end excluded on request).

    Parameters
    ----------
    value : float
    name : str
        The argument's name, quoted in the error message.
    low_open, high_open : bool

    Returns
    -------
    float

    Raises
    ------
    QSelectError
        Naming the argument, with what was wrong.
    """
    return check_float(value, name, minimum=0.0, maximum=1.0, low_open=low_open, high_open=high_open)


def check_sparsity(sparsity, name: str = "sparsity", flag: str | None = None) -> float:
    """The toolkit's one sparsity rule: a number in ``[0, 1)`` (fraction removed).

    Parameters
    ----------
    sparsity : float
        Fraction of weights/units removed.
    name : str
        How the message names the argument.
    flag : str, optional
        The command-line flag that sets it (``"--sparsity"``), for the example in the message.

    Returns
    -------
    float

    Raises
    ------
    QSelectError
        Not a number, NaN, below 0, or 1 and above (every weight removed).
    """
    ok = isinstance(sparsity, (numbers.Real, np.floating, np.integer)) and not isinstance(sparsity, bool)
    value = float(sparsity) if ok else float("nan")
    if not SPARSITY_MIN <= value < SPARSITY_MAX:
        raise QSelectError(f"{name} must be {SPARSITY_RULE}, got {sparsity!r}; e.g. {flag + ' ' if flag else ''}0.5")
    return value


def max_sparsity_keeping_one(n: int) -> float:
    """Largest sparsity at which rounding ``(1 − s)·n`` (half up) still keeps one of ``n``.

    Parameters
    ----------
    n : int

    Returns
    -------
    float
    """
    if n <= 0:
        return 0.0
    s = 1.0 - 0.5 / n
    while math.floor((1.0 - s) * n + 0.5) < 1:  # float round-off at the boundary
        s = float(np.nextafter(s, 0.0))
    return s


def check_keeps_some(n: int, sparsity: float, what: str, *, warn: bool = False) -> bool:
    """Refuse (or warn about) a sparsity that would remove all ``n`` units/weights of ``what``.

    Keeping ``floor((1 − s)·n + 0.5)`` of ``n`` (the toolkit's rounding) is zero
    exactly when ``s > 1 − 0.5/n``. A layer with no unit left cuts the network:
    its output is constant and accuracy falls to chance.

    Parameters
    ----------
    n : int
        Units (or weights) of the group.
    sparsity : float
        Fraction removed.
    what : str
        The group, e.g. ``"units of layer 'layers.0'"``.
    warn : bool
        Emit a ``UserWarning`` instead of raising.

    Returns
    -------
    bool
        True when at least one is kept.

    Raises
    ------
    QSelectError
        Nothing would be kept (unless ``warn``).
    """
    if n <= 0 or math.floor((1.0 - sparsity) * n + 0.5) >= 1:
        return True
    msg = (f"sparsity {sparsity:g} would remove all {n} {what}, disconnecting the network; "
           f"use a sparsity ≤ {math.floor(max_sparsity_keeping_one(n) * 1e4) / 1e4:g}")
    if warn:
        warnings.warn(msg, UserWarning, stacklevel=3)
        return False
    raise QSelectError(msg)


def check_finite_array(a, name: str, *, ndim: int | None = None, allow_complex: bool = False) -> np.ndarray:
    """``a`` as a float64 array (complex128 if allowed) with only finite entries.

    Parameters
    ----------
    a : array_like
    name : str
        The argument's name, quoted in the error message.
    ndim : int or None
    allow_complex : bool

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    QSelectError
        ``None``, non-numeric or ragged input, complex values (unless allowed),
        the wrong number of dimensions, NaN or inf.
    """
    if a is None:
        raise QSelectError(f"{name} must be numeric, got None")
    try:
        raw = np.asarray(a)
        if np.iscomplexobj(raw) and not allow_complex:
            raise QSelectError(f"{name} must be real, got complex values; pass the real part if that is meant")
        if raw.dtype.kind not in "biufc":
            raise TypeError(f"dtype {raw.dtype}")
        arr = raw.astype(np.complex128 if np.iscomplexobj(raw) else np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, QSelectError):
            raise
        raise QSelectError(f"{name} must be numeric: {' '.join(str(exc).split())}") from None
    if ndim is not None and arr.ndim != ndim:
        raise QSelectError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if arr.ndim == 0 and not np.isfinite(arr):
        raise QSelectError(f"{name} must be finite, got {arr.item()}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise QSelectError(f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)}); "
                           "check the weights/activations it was built from")
    return arr


def check_finite_energy(value: float, what: str = "energy") -> float:
    """Refuse an energy that overflowed to inf or became NaN (couplings near the float64 limit).

    Parameters
    ----------
    value : float
    what : str

    Returns
    -------
    float

    Raises
    ------
    QSelectError
        If ``value`` is NaN or infinite.
    """
    v = float(value)
    if not math.isfinite(v):
        raise QSelectError(f"{what} is {v}: the problem's coefficients overflow float64 arithmetic; "
                           "rescale the problem (problem.scaled(1e-6)) so energies stay finite")
    return v


def check_labels(labels, n: int, what: str = "problem") -> tuple:
    """Variable labels: ``n`` unique hashable labels (defaults to ``0..n-1``).

    NumPy integers become ``int`` so labels survive JSON and round trips.

    Parameters
    ----------
    labels : iterable or None
    n : int
    what : str

    Returns
    -------
    tuple

    Raises
    ------
    QSelectError
        Not iterable, a bare string, the wrong length, unhashable (lists) or repeated labels.
    """
    if labels is None:
        return tuple(range(n))
    if isinstance(labels, (str, bytes)):
        raise QSelectError(f"{what} labels must be a list of {n} labels, got the string {labels!r}")
    try:
        out = tuple(labels)
    except TypeError:
        raise QSelectError(f"{what} labels must be a list of {n} labels, got {type(labels).__name__}") from None
    if len(out) != n:
        raise QSelectError(f"{what} has {n} variables but {len(out)} labels were given")
    for lab in out:
        try:
            hash(lab)
        except TypeError:
            raise QSelectError(f"{what} labels must be hashable (int, str or tuple), got {lab!r} "
                               f"({type(lab).__name__}); e.g. labels=[0, 1] not [[0], [1]]") from None
    out = tuple(int(lab) if isinstance(lab, np.integer) else lab for lab in out)
    if len(set(out)) != n:
        raise QSelectError(f"{what} variable labels must be unique")
    return out


def check_choice(value, valid, name: str):
    """``value`` if it is one of ``valid``, else one line listing the choices.

    Parameters
    ----------
    value : object
    valid : iterable
    name : str
        The argument's name, quoted in the error message.

    Returns
    -------
    object

    Raises
    ------
    QSelectError
        Listing the valid choices.
    """
    valid = tuple(valid)
    try:
        ok = value in valid
    except TypeError:
        ok = False
    if not ok:
        raise QSelectError(f"{name} must be one of {', '.join(map(repr, valid))}, got {value!r}")
    return value


__all__ = ["MAX_SEED", "SPARSITY_RULE", "check_int", "check_positive_int", "check_nonnegative_int",
           "check_seed", "check_float", "check_fraction", "check_sparsity", "max_sparsity_keeping_one",
           "check_keeps_some", "check_finite_array", "check_finite_energy", "check_labels", "check_choice"]
