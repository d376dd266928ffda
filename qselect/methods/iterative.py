"""Pruning baselines at a fixed epoch budget: one-shot and iterative magnitude pruning.

Both take the same ``TrainConfig`` (its ``epochs`` is the whole budget) so they
compare fairly against Stochastic Subnetwork Annealing:

* one-shot: prune to the final sparsity at once, fine-tune for ``epochs``;
* iterative magnitude pruning (gradual, no rewinding): ``rounds`` rounds, each
  pruning the smallest-magnitude surviving weights so the kept fraction follows
  the geometric schedule ``(1 - s) ** (r / rounds)``, then fine-tuning for its
  share of the budget (a fresh one-cycle per round).
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import torch
from torch import nn

from qselect.errors import QSelectError
from qselect.validation import check_sparsity

from ._common import current_mask, effective_weight


def round_sparsities(sparsity: float, rounds: int) -> list[float]:
    """Cumulative sparsity after each of ``rounds`` geometric pruning rounds.

    Parameters
    ----------
    sparsity : float
        Final sparsity.
    rounds : int

    Returns
    -------
    list of float
        Increasing, ending at ``sparsity``.
    """
    check_sparsity(sparsity)
    if int(rounds) != rounds or rounds < 1:
        raise QSelectError(f"rounds must be a positive integer, got {rounds!r}")
    return [1.0 - (1.0 - sparsity) ** (r / rounds) for r in range(1, rounds + 1)]


def split_epochs(epochs: int, rounds: int) -> list[int]:
    """Split an epoch budget over rounds as evenly as possible (earlier rounds get fewer).

    Parameters
    ----------
    epochs : int
    rounds : int

    Returns
    -------
    list of int
        Summing to ``epochs``.
    """
    if epochs < rounds:
        raise QSelectError(f"an epoch budget of {epochs} cannot give {rounds} rounds at least one "
                           "epoch each; use rounds <= epochs")
    base, extra = divmod(int(epochs), int(rounds))
    return [base + (1 if r >= rounds - extra else 0) for r in range(rounds)]


@torch.no_grad()
def surviving_magnitude_masks(model: nn.Module, sparsity: float, *, scope: str = "layer",
                              layers=None) -> dict[str, torch.Tensor]:
    """Magnitude masks at total ``sparsity`` that never revive an already-pruned weight.

    Unlike a plain magnitude ranking of the effective weights, pruned weights
    are ranked below every surviving one explicitly (a surviving weight can be
    exactly zero too).

    Parameters
    ----------
    model : torch.nn.Module
    sparsity : float
        Fraction of weights removed, in [0, 1).
    scope : {"layer", "global"}
        Rank within each layer, or across all chosen layers together.
    layers : sequence of str or None

    Returns
    -------
    dict of str -> torch.Tensor
    """
    from qselect.classical.masks import prunable_parameters

    if scope not in ("layer", "global"):
        raise QSelectError(f"scope must be 'layer' or 'global', got {scope!r}")
    names = list(layers) if layers is not None else prunable_parameters(model)
    scores = {}
    for n in names:
        alive = current_mask(model, n).cpu()
        w = effective_weight(model, n).abs().float().cpu()
        scores[n] = torch.where(alive > 0.5, w, torch.full_like(w, -1.0))  # pruned ranks lowest
    if scope == "layer":
        return {n: _keep_top(s, sparsity) for n, s in scores.items()}
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    keep = _keep_top(flat, sparsity)
    out, i = {}, 0
    for n, s in scores.items():
        out[n] = keep[i:i + s.numel()].reshape(s.shape)
        i += s.numel()
    return out


def _keep_top(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    n = scores.numel()
    k = n - int(round(sparsity * n))
    flat = scores.reshape(-1)
    mask = torch.zeros(n)
    if k > 0:
        # stable ordering on ties keeps the choice deterministic
        idx = torch.argsort(flat, descending=True, stable=True)[:k]
        mask[idx] = 1.0
    return mask.reshape(scores.shape)


def one_shot_pruning(model: nn.Module, masks: Mapping[str, torch.Tensor], train_loader, config, *,
                     val_loader=None, augment=None) -> dict:
    """Apply ``masks`` at once and fine-tune for ``config.epochs``.

    Parameters
    ----------
    model : torch.nn.Module
    masks : dict of str -> torch.Tensor
        Parameter name (``"layers.0.weight"``) -> 0/1 tensor of the parameter's shape.
    train_loader : DataLoader or Dataset
    config : TrainConfig or dict
    val_loader : DataLoader, Dataset or None
        Validation data (early stopping and per-epoch metrics).
    augment : callable or None
        Maps an input batch (on the device) to an augmented one.

    Returns
    -------
    dict
        The training history.
    """
    from qselect.classical.masks import apply_masks, mask_sparsity
    from qselect.classical.train import train

    apply_masks(model, dict(masks))
    history = train(model, train_loader, config, val_loader=val_loader, augment=augment)
    return {"history": history, "sparsity": mask_sparsity(model)["overall"], "epochs": config.epochs}


def iterative_magnitude_pruning(model: nn.Module, train_loader, config, sparsity: float, *,
                                rounds: int = 3, scope: str = "layer", layers=None,
                                val_loader=None, augment=None) -> dict:
    """Gradual magnitude pruning to ``sparsity`` over ``rounds`` within ``config.epochs``.

    Returns ``{"history": [per-round train history], "round_sparsity": [...],
    "sparsity": final, "epochs": total}``.

    Parameters
    ----------
    model : torch.nn.Module
    train_loader : DataLoader or Dataset
    config : TrainConfig or dict
        ``config.epochs`` is the whole budget.
    sparsity : float
        Fraction of weights removed, in [0, 1).
    rounds : int
    scope : {"layer", "global"}
        Rank within each layer, or across all chosen layers together.
    layers : sequence of str or None
    val_loader : DataLoader, Dataset or None
        Validation data (early stopping and per-epoch metrics).
    augment : callable or None
        Maps an input batch (on the device) to an augmented one.

    References
    ----------
    S. Han, J. Pool, J. Tran, W. Dally, "Learning both Weights and
    Connections for Efficient Neural Networks", NeurIPS 2015; M. Zhu,
    S. Gupta, "To prune, or not to prune", arXiv:1710.01878 (2017).
    """
    from qselect.classical.masks import apply_masks, mask_sparsity
    from qselect.classical.train import train

    targets = round_sparsities(sparsity, rounds)
    budget = split_epochs(config.epochs, rounds)
    histories, reached = [], []
    for r, (s, e) in enumerate(zip(targets, budget)):
        masks = surviving_magnitude_masks(model, s, scope=scope, layers=layers)
        apply_masks(model, masks)
        reached.append(mask_sparsity(masks)["overall"])
        cfg = dataclasses.replace(config, epochs=e, seed=config.seed + r)
        histories.append(train(model, train_loader, cfg, val_loader=val_loader, augment=augment))
    return {"history": histories, "round_sparsity": reached,
            "sparsity": mask_sparsity(model)["overall"], "epochs": sum(budget)}
