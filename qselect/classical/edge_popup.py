"""Edge-popup (Ramanujan et al. 2020, "What's hidden in a randomly weighted neural network?").

The weights stay frozen at their (random) values. Every prunable layer gets a
score per weight; the forward pass uses ``w * topk(|score|)`` where the top-k
keeps the ``1 - sparsity`` fraction of the layer's weights with the largest
|score|, and the backward pass hands the gradient straight through the top-k
to the scores (the straight-through estimator). Only the scores are trained,
with the shared training loop. The result is a set of masks; the input model
is left untouched (the search runs on a copy).
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import QSelectError
from .baselines import _check, _layers
from .masks import remove_masks


class _TopK(torch.autograd.Function):
    """Binary mask of the ``keep`` largest scores; gradient passes straight through."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, keep: int):
        mask = torch.zeros_like(scores)
        if keep > 0:
            idx = torch.topk(scores.reshape(-1), keep, sorted=False).indices
            mask.view(-1)[idx] = 1.0
        return mask

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class _PopupMask(nn.Module):
    """Parametrisation ``weight -> weight * topk(|scores|)`` with trainable scores."""

    def __init__(self, shape: torch.Size, density: float):
        super().__init__()
        self.scores = nn.Parameter(torch.empty(shape))
        nn.init.kaiming_uniform_(self.scores, a=math.sqrt(5))  # the paper's score init
        self.keep = int(round(density * self.scores.numel()))

    def mask(self) -> torch.Tensor:
        return _TopK.apply(self.scores.abs(), self.keep)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask()


def edge_popup(model: nn.Module, train_loader, sparsity: float, *, config=None, epochs: int = 10,
               lr: float = 0.1, seed: int = 0, layers: Sequence[str] | None = None,
               device: str = "auto", progress: bool = False, val_loader=None,
               return_history: bool = False):
    """Learn which ``1 - sparsity`` fraction of each layer's frozen weights to keep.

    ``config`` (a ``TrainConfig``) overrides epochs/lr/seed/device/progress; the
    default is the paper's SGD (momentum 0.9, weight decay 5e-4) with a cosine
    one-cycle schedule. ``layers`` defaults to every Linear/Conv2d weight.
    Returns masks (float 0/1, keyed ``"<layer>.weight"``), or ``(masks, history)``.
    Note: only weights are searched; biases and norm layers keep their values
    (BatchNorm running statistics drift on the internal copy only).

    Parameters
    ----------
    model : torch.nn.Module
        A randomly initialised network (weights stay frozen).
    train_loader : DataLoader or Dataset
    sparsity : float
        Fraction of weights removed, in [0, 1).
    config : TrainConfig or None
    epochs : int
    lr : float
    seed : int
    layers : sequence of str or None
        Weight (or module) names; default every Linear/Conv2d weight.
    device : str
    progress : bool
    val_loader : DataLoader or None
    return_history : bool

    Returns
    -------
    dict of str -> torch.Tensor, or (dict, dict)
        Masks, and the training history when ``return_history``.

    References
    ----------
    V. Ramanujan, M. Wortsman, A. Kembhavi, A. Farhadi, M. Rastegari, "What's
    Hidden in a Randomly Weighted Neural Network?", CVPR 2020.
    """
    from .train import TrainConfig, train

    _check(sparsity, "layer")
    if sparsity >= 1.0:
        raise QSelectError("edge-popup needs sparsity < 1 (something must be kept)")
    names = _layers(model, layers)
    if config is None:
        config = TrainConfig(epochs=epochs, lr=lr, optimizer="sgd", momentum=0.9, nesterov=False,
                             weight_decay=5e-4, schedule="onecycle", seed=seed, device=device,
                             progress=progress)
    work = copy.deepcopy(model)
    remove_masks(work, make_permanent=True)   # existing masks become zeros in frozen weights
    for p in work.parameters():
        p.requires_grad_(False)
    popups: dict[str, _PopupMask] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(config.seed))
        for name in names:
            mname, _, pname = name.rpartition(".")
            module = work.get_submodule(mname)
            pm = _PopupMask(getattr(module, pname).shape, 1.0 - float(sparsity))
            parametrize.register_parametrization(module, pname, pm)
            popups[name] = pm
    hist = train(work, train_loader, config, val_loader=val_loader)
    masks = {name: pm.mask().detach().cpu().float() for name, pm in popups.items()}
    return (masks, hist) if return_history else masks
