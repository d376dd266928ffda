"""SNIP: connection sensitivity |∂L/∂w ⊙ w| from one labelled batch.

Lee, Ajanthan & Torr, "SNIP: Single-shot Network Pruning based on Connection
Sensitivity", ICLR 2019, Eq. 6: the saliency of weight j is |g_j w_j| with g
the gradient of the loss on a batch (the paper ranks it globally at
initialisation and then trains the sparse network). Here the saliency is taken
at the model's current weights (initial or trained) and ranked per output row
by default, so every method of a comparison lands on the same per-row sparsity;
``scope="layer"`` or ``"global"`` give the paper's wider groups.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..classical.baselines import check_sparsity
from ..devices import model_device
from ..errors import QSelectError
from .layerwise import PruneResult, calib_batches, calib_labels, keep_per_row, layer_order, topk_mask

SCOPES = ("row", "layer", "global")


def snip_scores(model: nn.Module, inputs, labels=None, layers=None) -> dict[str, torch.Tensor]:
    """|∂L/∂w ⊙ w| for every Linear/Conv2d weight (cross-entropy on ``inputs``).

    Parameters
    ----------
    model : nn.Module
        Not changed (gradients are taken on a copy).
    inputs : torch.Tensor or iterable of batches / (x, y) pairs
        The batch; labels from (x, y) pairs when ``labels`` is None.
    labels : torch.Tensor, optional
        (N,) int64 class labels. Without any, the model's own predicted classes
        are the targets (data-free of labels, as a self-distillation loss).
    layers : list of str, optional
        Module names (default every Linear/Conv2d).

    Returns
    -------
    dict[str, torch.Tensor]
        Weight name -> saliency (float64, CPU), the weight's shape.

    References
    ----------
    Lee, Ajanthan & Torr, "SNIP", ICLR 2019.
    """
    from .layerwise import working_copy

    batches = calib_batches(inputs)
    y = labels if labels is not None else calib_labels(inputs)
    work = working_copy(model)
    names = layer_order(work, batches[0], layers)
    x = torch.cat(batches).to(model_device(work))
    work.eval()
    work.zero_grad(set_to_none=True)
    logits = work(x)
    if y is None:
        y = logits.detach().argmax(dim=1)
    y = torch.as_tensor(y).to(logits.device).long().reshape(-1)
    if y.shape[0] != logits.shape[0]:
        raise QSelectError(f"snip: {y.shape[0]} labels for {logits.shape[0]} inputs; give one label per input")
    F.cross_entropy(logits, y).backward()
    modules = dict(work.named_modules())
    out = {}
    for n in names:
        w = modules[n].weight
        g = torch.zeros_like(w) if w.grad is None else w.grad
        out[f"{n}.weight"] = (g * w).abs().detach().to("cpu", torch.float64)
    return out


def snip_prune(model: nn.Module, inputs, sparsity: float, *, labels=None, layers=None,
               scope: str = "row") -> PruneResult:
    """SNIP masks at ``sparsity`` (weights unchanged).

    ``scope``: "row" (keep the per-row count of every other method), "layer"
    or "global" (the paper). Returns a :class:`PruneResult`.

    Parameters
    ----------
    model : torch.nn.Module
    inputs : torch.Tensor or iterable
    sparsity : float
    labels : torch.Tensor or None
    layers : iterable of str or None
    scope : {"row", "layer", "global"}

    Returns
    -------
    PruneResult

    References
    ----------
    N. Lee, T. Ajanthan, P. Torr, "SNIP: Single-shot Network Pruning based on
    Connection Sensitivity", ICLR 2019.
    """
    sparsity = check_sparsity(sparsity)
    if scope not in SCOPES:
        raise QSelectError(f"snip scope {scope!r} unknown; use one of {', '.join(SCOPES)}")
    scores = snip_scores(model, inputs, labels, layers)
    from .layerwise import working_copy

    params = dict(working_copy(model).named_parameters())  # effective weights of a pruned model
    masks = {}
    if scope == "row":
        for n, s in scores.items():
            flat = s.reshape(s.shape[0], -1)
            masks[n] = topk_mask(flat, keep_per_row(flat.shape[1], sparsity)).reshape(s.shape).float()
    else:
        groups = [[n] for n in scores] if scope == "layer" else [list(scores)]
        for group in groups:
            flat = torch.cat([scores[n].reshape(-1) for n in group])
            m = topk_mask(flat[None], keep_per_row(flat.numel(), sparsity))[0]
            i = 0
            for n in group:
                masks[n] = m[i:i + scores[n].numel()].reshape(scores[n].shape).float()
                i += scores[n].numel()
    weights = {}
    for n, m in masks.items():
        p = params[n]
        weights[n] = (p.detach().cpu() * m.to(p.dtype)).clone()
    res = PruneResult(masks, weights, "snip", sparsity)
    res.info["real_sparsity"] = res.real_sparsity()
    res.info["scope"] = scope
    return res
