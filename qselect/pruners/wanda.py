"""Wanda: prune by |W_ij|·‖X_j‖₂ within each output row, no weight update.

Sun, Liu, Bair & Kolter, "A Simple and Effective Pruning Approach for Large
Language Models" (2023), Eq. 1 and the per-output comparison group of §3.
"""
from __future__ import annotations

import torch

from .layerwise import LayerTask, topk_mask


def wanda_mask(W: torch.Tensor, H: torch.Tensor, keep: int) -> torch.Tensor:
    """Keep the ``keep`` largest |W_ij|·‖X_j‖₂ of each row.

    Parameters
    ----------
    W : torch.Tensor
        (out, cols) weights.
    H : torch.Tensor
        (cols, cols) XᵀX; only its diagonal (‖X_j‖₂²) is read.
    keep : int
        Weights kept per row.

    Returns
    -------
    torch.Tensor
        (out, cols) float64 0/1 mask (ties to the lower column).

    References
    ----------
    Sun et al., "A Simple and Effective Pruning Approach for Large Language Models", ICLR 2024.
    """
    norms = torch.sqrt(torch.clamp(torch.diagonal(H), min=0)).to(W)
    return topk_mask(W.abs() * norms[None, :], keep)


def wanda_layer(task: LayerTask, **_) -> tuple:
    """:data:`~qselect.pruners.layerwise.LayerFn` for Wanda (original weights kept).

    Parameters
    ----------
    task : LayerTask
        The layer, its calibration inputs and ``keep`` per row.
    **_
        Other pruner options, ignored.

    Returns
    -------
    (mask, weights)

    References
    ----------
    M. Sun, Z. Liu, A. Bair, J. Z. Kolter, "A Simple and Effective Pruning Approach
    for Large Language Models", ICLR 2024.
    """
    return wanda_mask(task.weight, task.H, task.keep), None


def magnitude_layer(task: LayerTask, **_) -> tuple:
    """Per-row magnitude pruning: keep the ``keep`` largest |W_ij| of each row.

    Parameters
    ----------
    task : LayerTask
        The layer, its calibration inputs and ``keep`` per row.
    **_
        Other pruner options, ignored.

    Returns
    -------
    (mask, weights)
    """
    return topk_mask(task.weight.abs(), task.keep), None


def random_layer(task: LayerTask, seed: int = 0, **_) -> tuple:
    """A uniformly random ``keep``-subset of each row, seeded by ``seed`` and the layer name.

    Parameters
    ----------
    task : LayerTask
        The layer, its calibration inputs and ``keep`` per row.
    seed : int
    **_
        Other pruner options, ignored.

    Returns
    -------
    (mask, weights)
    """
    import zlib

    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + zlib.crc32(task.name.encode()))
    scores = torch.rand(task.weight.shape, generator=g, dtype=torch.float64)
    return topk_mask(scores, task.keep), None
