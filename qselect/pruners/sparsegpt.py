"""SparseGPT: one-shot pruning with OBS updates through the inverse-Hessian Cholesky factor.

Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately
Pruned in One-Shot", ICML 2023, Algorithm 1: H = XᵀX + λI (λ = percdamp ·
mean diag), U the upper Cholesky factor of H⁻¹; columns are processed left to
right in blocks of ``blocksize``; at the start of a block each row's mask in
that block is chosen by w²/U_jj² (adaptive mask selection, §3.3); every
pruned weight's error is spread over the row's later columns through row j
of U (the OBS update with earlier columns frozen), the updates of later
blocks applied lazily once per block.

Per-row sparsity: each row prunes exactly ``cols − keep`` weights; a block
gets the row's share ``round(c₂·p/cols) − round(c₁·p/cols)`` of them. With
``blocksize ≥ cols`` (the default for layers up to 128 inputs) the whole row is
one block and its mask is chosen adaptively in full.
"""
from __future__ import annotations

import torch

from .layerwise import LayerTask, damped


def sparsegpt_prune(W: torch.Tensor, H: torch.Tensor, keep: int, *, blocksize: int = 128,
                    percdamp: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """Prune every row of ``W`` to ``keep`` weights with SparseGPT.

    Parameters
    ----------
    W : torch.Tensor
        (out, cols) dense weights.
    H : torch.Tensor
        (cols, cols) XᵀX of the calibration inputs.
    keep : int
        Weights kept per row.
    blocksize : int
        Columns per lazy-update block (128 in the paper).
    percdamp : float
        Dampening as a fraction of mean diag(H) (0.01 in the paper).

    Returns
    -------
    (mask, weights)
        (out, cols) float64 0/1 mask and updated weights (zero where pruned).

    References
    ----------
    Frantar & Alistarh, "SparseGPT", ICML 2023.
    """
    W = W.to(torch.float64).clone()
    rows, cols = W.shape
    Hd, _ = damped(H.to(W), percdamp)
    Hinv = torch.cholesky_inverse(torch.linalg.cholesky(Hd))
    U = torch.linalg.cholesky(Hinv, upper=True)
    prune_total = cols - int(keep)
    mask = torch.ones_like(W)
    bs = max(1, int(blocksize))
    for i1 in range(0, cols, bs):
        i2 = min(i1 + bs, cols)
        count = i2 - i1
        n_prune = round(i2 * prune_total / cols) - round(i1 * prune_total / cols)
        W1 = W[:, i1:i2].clone()
        U1 = U[i1:i2, i1:i2]
        Err1 = torch.zeros_like(W1)
        if n_prune > 0:
            score = W1 ** 2 / torch.diagonal(U1)[None, :] ** 2
            low = torch.argsort(score, dim=1, stable=True)[:, :n_prune]
            mask[:, i1:i2].scatter_(1, low, 0.0)
        m1 = mask[:, i1:i2]
        for i in range(count):
            d = U1[i, i]
            err = W1[:, i] * (1.0 - m1[:, i]) / d  # the pruned weights' OBS error
            W1[:, i:] -= err[:, None] * U1[i, i:][None, :]
            W1[:, i] *= m1[:, i]  # exactly zero where pruned
            Err1[:, i] = err
        W[:, i1:i2] = W1
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return mask, W * mask


def sparsegpt_layer(task: LayerTask, blocksize: int = 128, percdamp: float = 0.01, **_) -> tuple:
    """:data:`~qselect.pruners.layerwise.LayerFn` for SparseGPT.

    Parameters
    ----------
    task : LayerTask
        The layer, its calibration inputs and ``keep`` per row.
    blocksize : int
    percdamp : float
    **_
        Other pruner options, ignored.

    Returns
    -------
    (mask, weights)

    References
    ----------
    E. Frantar, D. Alistarh, "SparseGPT: Massive Language Models Can Be Accurately
    Pruned in One-Shot", ICML 2023.
    """
    return sparsegpt_prune(task.weight, task.H, task.keep, blocksize=blocksize, percdamp=percdamp)
