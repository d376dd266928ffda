"""Compute devices: one policy for choosing CPU or CUDA across the package.

torch is imported lazily so that ``import qselect`` stays light; the probe
:func:`cuda_possible` answers "could a GPU be here at all?" without paying
torch's import on machines that have no NVIDIA driver.
"""
from __future__ import annotations

import os
import sys

from .errors import BackendUnavailableError, QSelectError


def cuda_possible() -> bool:
    """True when CUDA could be available, without importing torch where it cannot.

    Returns
    -------
    bool
        False on machines with no NVIDIA driver (no ``/dev/nvidiactl``) when torch
        is not yet imported; otherwise ``torch.cuda.is_available()``.
    """
    if "torch" not in sys.modules and not os.path.exists("/dev/nvidiactl"):
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device="auto"):
    """The ``torch.device`` to run on.

    Parameters
    ----------
    device : str, torch.device or None
        ``"auto"`` or None: CUDA when available, else CPU; otherwise any string
        ``torch.device`` accepts (``"cpu"``, ``"cuda"``, ``"cuda:1"``).

    Returns
    -------
    torch.device

    Raises
    ------
    QSelectError
        An unknown device string.
    BackendUnavailableError
        CUDA was asked for but is not available (a ``QSelectError`` subclass).
    """
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise QSelectError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {device!r} was asked for but CUDA is not available; "
                                      "use device='cpu' or 'auto'")
    return dev


def model_device(model):
    """The device of a module's first parameter (CPU for a module without parameters).

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    torch.device
    """
    import torch

    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def disable_onednn_unless_asked() -> None:
    """Turn off PyTorch's oneDNN (mkldnn) CPU kernels unless ``QSELECT_ONEDNN=1``.

    torch 2.13's oneDNN convolution backward aborts or hangs intermittently on
    some AMD EPYC CPUs without AVX-512 (measured: 3 of 4 ResNet training runs);
    the native ATen kernels are correct there and, at the sizes qselect trains on
    CPU, not measurably slower. CUDA is unaffected.
    """
    if os.environ.get("QSELECT_ONEDNN") == "1":
        return
    import torch

    torch.backends.mkldnn.enabled = False
