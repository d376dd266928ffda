"""Compiled per-qubit kernels for the X mixer of block-sized QAOA states (numba).

In the rotated frame of the native engines (ψ̃ = D⁻¹ψ, D = diag(1, i)^⊗n, which
commutes with the diagonal cost) one X-mixer layer exp(-iβΣX) is the real
rotation R(β) = [[cos β, sin β], [-sin β, cos β]] on every qubit, acting on the
real and imaginary parts alike. The engines otherwise apply it as a few
Kronecker-product matrices (BLAS matmuls over groups of ≤ 5 qubits, 2^m
multiply-adds per amplitude and group); here it is applied three qubits per
pass (a radix-8 butterfly, 4 multiply-adds per amplitude and qubit, in
float64 registers, one rounding per pass) while a row of ≤ 2^17 amplitudes
stays in cache: 2–3× faster at n = 10–12, and more accurate in complex64
than the matmuls. The adjoint gradient's generator term λ·(Aψ),
A = Σ_q [[0, 1], [-1, 0]]_q, is a pair sum per qubit, accumulated in float64.

numba is optional: without it (:data:`AVAILABLE` False) the engines keep
their matmul path, which gives the same numbers to rounding. Both engines
decide with :func:`uses_row_kernel`, so a batch of one stays bit-for-bit the
single-problem engine.

References
----------
Farhi, Goldstone & Gutmann (2014), arXiv:1411.4028 (QAOA); Jones & Gacon (2020),
arXiv:2009.02823 (adjoint gradients).
"""
from __future__ import annotations

import importlib.util
import math
import warnings
from functools import lru_cache

import numpy as np


def _numba_installed() -> bool:
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # a broken or deliberately hidden install
        return False


#: whether numba is installed (it is imported, and the kernels compiled or loaded from numba's
#: cache, on first use; :func:`uses_row_kernel` also checks that this works)
AVAILABLE = _numba_installed()

#: the largest state (amplitudes) the kernels serve: one that stays in a core's cache
MAX_AMPLITUDES = 1 << 17


def uses_row_kernel(mixer: str, N: int) -> bool:
    """Whether the engines apply the X mixer of a 2^n-amplitude state with these kernels.

    Parameters
    ----------
    mixer : {'x', 'xy'}
    N : int
        State length 2^n.

    Returns
    -------
    bool
        True for the X mixer on states of at most :data:`MAX_AMPLITUDES` amplitudes when numba
        is installed and loads (the first call imports it).
    """
    return AVAILABLE and mixer == "x" and N <= MAX_AMPLITUDES and _compiled() is not None


def rotation_pairs(beta) -> np.ndarray:
    """(cos β_r, sin β_r) per row, shape (b, 2), float64, from ``math`` (the same bits for any batch).

    Parameters
    ----------
    beta : array_like, shape (b,)

    Returns
    -------
    numpy.ndarray of float64, shape (b, 2)
    """
    b = np.asarray(beta, dtype=np.float64).reshape(-1)
    return np.array([[math.cos(x), math.sin(x)] for x in b.tolist()]).reshape(-1, 2)


@lru_cache(maxsize=None)
def _compiled():
    """The numba kernels module (imported, its functions compiled or loaded from cache, on first use).

    None, with a warning, when numba is installed but cannot be imported (e.g. built for
    another NumPy): the engines then keep their matmul mixer instead of failing.
    """
    try:
        from . import _kernels_numba
    except Exception as err:  # numba raises ImportError, but a broken install can raise anything
        warnings.warn(f"numba is installed but could not be loaded ({type(err).__name__}: {err}); "
                      "the QAOA engines use their matmul mixer", RuntimeWarning, stacklevel=3)
        return None
    return _kernels_numba


def rotate_rows(S: np.ndarray, CS: np.ndarray) -> None:
    """Apply ⊗_q R(β_r) to every row of ``S`` in place (rotated frame, all qubits).

    Parameters
    ----------
    S : numpy.ndarray, complex64 or complex128, shape (b, 2^n), C-contiguous
        States in the rotated frame (little-endian index).
    CS : numpy.ndarray of float64, shape (b, 2)
        (cos β_r, sin β_r) per row (:func:`rotation_pairs`); (cos β, −sin β) undoes the layer.
    """
    F = S.view(S.real.dtype).reshape(S.shape[0], -1)
    _compiled()._rotate_rows(F, np.ascontiguousarray(CS, dtype=np.float64))


def generator_dots(lam: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """λ_f·(Aψ)_f per row, float64 (b,): ½ dE/dβ of the adjoint gradient in the rotated frame.

    Parameters
    ----------
    lam, psi : numpy.ndarray, complex, shape (b, 2^n), C-contiguous
        Adjoint state and state at the same point of the circuit.

    Returns
    -------
    numpy.ndarray of float64, shape (b,)
    """
    b = lam.shape[0]
    out = np.empty(b)
    _compiled()._generator_dots(lam.view(lam.real.dtype).reshape(b, -1), psi.view(psi.real.dtype).reshape(b, -1), out)
    return out


__all__ = ["AVAILABLE", "MAX_AMPLITUDES", "generator_dots", "rotate_rows", "rotation_pairs", "uses_row_kernel"]
