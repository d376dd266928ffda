"""Optimal Brain Compression: exact greedy OBS pruning of every row.

Frantar, Singh & Alistarh, "Optimal Brain Compression: A Framework for
Accurate Post-Training Quantization and Pruning", NeurIPS 2022, Algorithm 1
(ExactOBS). For each row with H⁻¹ = (XᵀX + λI)⁻¹, repeat until ``keep``
weights remain:

    p = argmin_q w_q² / [H⁻¹]_qq                 (the OBS saliency)
    w ← w − (w_p / [H⁻¹]_pp) · H⁻¹[:, p]           (optimal update of the rest; w_p → 0)
    H⁻¹ ← H⁻¹ − H⁻¹[:, p] H⁻¹[p, :] / [H⁻¹]_pp    (eliminate p)

Every step is the exact optimum of the row's reconstruction error given the
weights removed so far. Each row carries its own cols × cols inverse, so time
is O(cols³) per row: small layers only (``max_cols``).
"""
from __future__ import annotations

import torch

from ..errors import QSelectError
from .layerwise import LayerTask, damped

#: default largest row length (inputs per output) OBC accepts
MAX_COLS = 1024


def obc_prune(W: torch.Tensor, H: torch.Tensor, keep: int, *, percdamp: float = 0.01,
              max_cols: int = MAX_COLS, row_batch: int | None = None,
              name: str = "layer") -> tuple[torch.Tensor, torch.Tensor]:
    """Prune every row of ``W`` to ``keep`` weights by exact greedy OBS.

    Parameters
    ----------
    W : torch.Tensor
        (out, cols) dense weights.
    H : torch.Tensor
        (cols, cols) XᵀX of the calibration inputs.
    keep : int
        Weights kept per row.
    percdamp : float
        Dampening as a fraction of mean diag(H).
    max_cols : int
        Refuse rows longer than this (time O(cols³) per row).
    row_batch : int, optional
        Rows processed together (memory rows·cols²·8 bytes); default keeps it under ~256 MiB.
    name : str
        Layer name for messages.

    Returns
    -------
    (mask, weights)
        (out, cols) float64 0/1 mask and updated weights (zero where pruned).

    Raises
    ------
    QSelectError
        A row longer than ``max_cols``.

    References
    ----------
    Frantar, Singh & Alistarh, "Optimal Brain Compression", NeurIPS 2022.
    """
    rows, cols = W.shape
    if cols > int(max_cols):
        raise QSelectError(f"obc: layer {name!r} has {cols} inputs per output row, above the limit of "
                           f"{int(max_cols)} (exact OBS costs O(cols³) per row); raise max_cols=... or use "
                           "'sparsegpt' for this layer")
    W = W.to(torch.float64).clone()
    Hd, _ = damped(H.to(W), percdamp)
    Hinv0 = torch.cholesky_inverse(torch.linalg.cholesky(Hd))
    steps = cols - int(keep)
    mask = torch.ones_like(W)
    if row_batch is None:
        row_batch = max(1, int(2**25 // max(cols * cols, 1)))
    for r0 in range(0, rows, row_batch):
        r1 = min(rows, r0 + row_batch)
        w = W[r0:r1]  # (r, cols), a view updated in place
        m = mask[r0:r1]
        Hinv = Hinv0.expand(r1 - r0, cols, cols).clone()
        ar = torch.arange(r1 - r0, device=W.device)
        for _ in range(steps):
            diag = torch.diagonal(Hinv, dim1=1, dim2=2)
            score = torch.where(m > 0, w ** 2 / diag, torch.full_like(w, float("inf")))
            p = torch.argmin(score, dim=1)  # ties: lowest column
            hp = Hinv[ar, :, p]  # (r, cols) column p of each row's inverse
            dpp = hp[ar, p]
            w -= (w[ar, p] / dpp)[:, None] * hp
            w[ar, p] = 0.0
            m[ar, p] = 0.0
            Hinv.baddbmm_(hp.unsqueeze(2), (hp / dpp[:, None]).unsqueeze(1), alpha=-1.0)  # rank-one downdate
    return mask, W * mask


def obc_layer(task: LayerTask, percdamp: float = 0.01, max_cols: int = MAX_COLS, **_) -> tuple:
    """:data:`~qselect.pruners.layerwise.LayerFn` for OBC.

    Parameters
    ----------
    task : LayerTask
        The layer, its calibration inputs and ``keep`` per row.
    percdamp : float
    max_cols : int
        Largest row length handled exactly.
    **_
        Other pruner options, ignored.

    Returns
    -------
    (mask, weights)

    References
    ----------
    E. Frantar, S. P. Singh, D. Alistarh, "Optimal Brain Compression", NeurIPS 2022.
    """
    return obc_prune(task.weight, task.H, task.keep, percdamp=percdamp, max_cols=max_cols, name=task.name)
