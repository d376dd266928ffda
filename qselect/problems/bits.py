"""Bitstring <-> integer index, little-endian like qiskit (qubit 0 = least significant bit)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import QSelectError


def as_bits(bits, n: int, what: str = "bits") -> np.ndarray:
    """Validate 0/1 bitstrings of length n; return uint8 array (n,) or (m, n).

    Parameters
    ----------
    bits : array_like
        Bitstring(s) to check.
    n : int
        Required length.
    what : str
        Name used in the error message.

    Returns
    -------
    numpy.ndarray of uint8, shape (n,) or (m, n)

    Raises
    ------
    QSelectError
        If the shape is wrong or a value is not 0/1.
    """
    arr = np.asarray(bits)
    if arr.ndim not in (1, 2) or arr.shape[-1] != n:
        raise QSelectError(
            f"{what} must have shape ({n},) or (m, {n}) for a {n}-variable problem, got {arr.shape}"
        )
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if arr.dtype.kind in "ui":  # integers: 0/1 is a range check (one or two reductions, no temporaries)
        bad = arr.size and (arr.max() > 1 or (arr.dtype.kind == "i" and arr.min() < 0))
    else:
        bad = not np.all((arr == 0) | (arr == 1))
    if bad:
        raise QSelectError(f"{what} must contain only 0 and 1 values")
    return arr.astype(np.uint8)


def bits_to_index(bits) -> np.ndarray | int:
    """Integer index of each bitstring: sum_i bits[i] * 2**i.

    Parameters
    ----------
    bits : array_like of {0, 1}, shape (n,) or (m, n)

    Returns
    -------
    int or numpy.ndarray of int64, shape (m,)
    """
    arr = np.asarray(bits, dtype=np.int64)
    weights = np.left_shift(np.int64(1), np.arange(arr.shape[-1], dtype=np.int64))
    idx = arr @ weights
    return int(idx) if arr.ndim == 1 else idx


def popcounts(n: int) -> np.ndarray:
    """Number of set bits of every index 0 .. 2^n − 1 (uint8), built by doubling.

    Parameters
    ----------
    n : int
        Number of bits.

    Returns
    -------
    numpy.ndarray of uint8, shape (2**n,)
    """
    pc = np.zeros(1 << n, dtype=np.uint8)
    for i in range(n):
        s = 1 << i
        np.add(pc[:s], 1, out=pc[s:2 * s])
    return pc


def index_to_bits(index, n: int) -> np.ndarray:
    """Bitstring(s) for integer index/indices: bit i = (index >> i) & 1.

    Parameters
    ----------
    index : int or array_like of int, shape (m,)
    n : int
        Number of bits.

    Returns
    -------
    numpy.ndarray of uint8, shape (n,) or (m, n)
    """
    idx = np.asarray(index, dtype=np.int64)
    if 0 <= n <= BIT_TABLE_BITS and idx.ndim == 1 and idx.size > 16:
        if idx.size and (idx.min() < 0 or idx.max() >= 1 << n):  # beyond the table: n low bits, as below
            idx = idx & ((1 << n) - 1)
        return _uint8_table(n)[idx]  # a fresh array (fancy indexing copies)
    out = (idx[..., None] >> np.arange(n, dtype=np.int64)) & 1
    return out.astype(np.uint8)


@lru_cache(maxsize=4)
def _uint8_table(n: int) -> np.ndarray:
    out = ((np.arange(1 << n, dtype=np.int64)[:, None] >> np.arange(n, dtype=np.int64)) & 1).astype(np.uint8)
    out.setflags(write=False)
    return out


def bit_rows(n: int) -> np.ndarray:
    """Every bitstring of n bits as uint8 rows, row i = bits of index i (little-endian), read-only and cached.

    ``bit_rows(n)[idx]`` is ``index_to_bits(idx, n)`` for indices known to lie in ``[0, 2^n)``.

    Parameters
    ----------
    n : int
        Number of bits, at most :data:`BIT_TABLE_BITS`.

    Returns
    -------
    numpy.ndarray of uint8, shape (2**n, n)

    Raises
    ------
    QSelectError
        More than :data:`BIT_TABLE_BITS` bits.
    """
    if not 0 <= n <= BIT_TABLE_BITS:
        raise QSelectError(f"bit_rows tabulates at most {BIT_TABLE_BITS} bits, got {n}")
    return _uint8_table(n)


#: the largest n whose every bitstring :func:`bit_table` tabulates (2^16 × 16 float64 = 8 MiB)
BIT_TABLE_BITS = 16


@lru_cache(maxsize=4)
def bit_table(n: int) -> np.ndarray:
    """Every bitstring of n bits as float64 rows, row i = bits of index i (little-endian), read-only.

    Parameters
    ----------
    n : int
        Number of bits, at most :data:`BIT_TABLE_BITS`.

    Returns
    -------
    numpy.ndarray of float64, shape (2**n, n)
    """
    if not 0 <= n <= BIT_TABLE_BITS:
        raise QSelectError(f"bit_table tabulates at most {BIT_TABLE_BITS} bits, got {n}")
    out = index_to_bits(np.arange(1 << n), n).astype(np.float64)
    out.setflags(write=False)
    return out
