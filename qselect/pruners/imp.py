"""Iterative magnitude pruning with weight rewinding, at a fixed epoch budget.

Frankle & Carbin, "The Lottery Ticket Hypothesis", ICLR 2019 (train, prune
the smallest-magnitude surviving weights, reset the rest, retrain, repeat),
with rewinding to an early iterate instead of the initialisation (Frankle,
Dziugaite, Roy & Carbin, "Linear Mode Connectivity and the Lottery Ticket
Hypothesis", ICML 2020).

Budget: ``epochs`` in total over ``rounds + 1`` training runs (each round's
run, then the final run of the last mask), split as evenly as possible. The
first run continues from the model's current weights; the rewind point is the
iterate after ``rewind_fraction`` of that run's optimiser steps (from a
trained model it lies close to the model itself). After round r the kept
fraction per row is ``(1 − s)^(r/rounds)`` (geometric schedule), so the last
round reaches the asked per-row count exactly.
"""
from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from ..classical.baselines import check_sparsity
from ..classical.masks import apply_masks, remove_masks
from ..errors import QSelectError
from .layerwise import PruneResult, keep_per_row, layer_order, topk_mask


def split_budget(epochs: int, runs: int) -> list[int]:
    """``epochs`` over ``runs`` training runs, later runs first to get the remainder.

    Parameters
    ----------
    epochs : int
    runs : int

    Returns
    -------
    list of int
    """
    if int(epochs) < runs:
        raise QSelectError(f"imp: an epoch budget of {epochs} cannot give {runs} training runs one epoch each; "
                           "raise epochs= or lower rounds=")
    base, extra = divmod(int(epochs), int(runs))
    return [base + (1 if r >= runs - extra else 0) for r in range(runs)]


def _surviving_topk(w: torch.Tensor, alive: torch.Tensor, keep: int) -> torch.Tensor:
    flat_w = w.reshape(w.shape[0], -1).abs().double()
    flat_a = alive.reshape(w.shape[0], -1)
    score = torch.where(flat_a > 0.5, flat_w, torch.full_like(flat_w, -1.0))  # pruned ranks lowest
    return topk_mask(score, keep).reshape(w.shape)


def imp_prune(model: nn.Module, train_loader, sparsity: float, *, epochs: int = 4, rounds: int = 2,
              rewind_fraction: float = 0.1, config=None, layers=None, seed: int = 0) -> PruneResult:
    """IMP with rewinding; returns masks and the retrained weights.

    Parameters
    ----------
    model : nn.Module
        Not changed (a copy is trained).
    train_loader : DataLoader or Dataset
        Labelled training data.
    sparsity : float
        Final fraction removed from every output row.
    epochs : int
        Total training epochs over all ``rounds + 1`` runs.
    rounds : int
        Pruning rounds.
    rewind_fraction : float
        Rewind to the iterate after this fraction of the first run's steps (0 = its start).
    config : TrainConfig or dict, optional
        Training settings (its ``epochs`` and ``seed`` are replaced per run).
    layers : list of str, optional
        Module names (default every Linear/Conv2d).
    seed : int
        Training seed.

    Returns
    -------
    PruneResult
        ``weights`` and ``other`` (biases etc.) are those of the final run;
        ``info["epochs"]`` the budget spent.

    References
    ----------
    Frankle & Carbin, ICLR 2019; Frankle, Dziugaite, Roy & Carbin, ICML 2020.
    """
    from ..classical.train import as_config, train

    sparsity = check_sparsity(sparsity)
    if int(rounds) != rounds or rounds < 1:
        raise QSelectError(f"imp rounds must be a positive integer, got {rounds!r}")
    if not 0.0 <= float(rewind_fraction) < 1.0:
        raise QSelectError(f"imp rewind_fraction must be in [0, 1), got {rewind_fraction!r}")
    if train_loader is None:
        raise QSelectError("imp trains the network: pass train_loader=... (labelled data)")
    cfg = as_config(config)
    budget = split_budget(epochs, int(rounds) + 1)
    work = copy.deepcopy(model)
    remove_masks(work, make_permanent=True)
    from torch.utils.data import DataLoader

    if isinstance(train_loader, DataLoader):
        first = next(iter(train_loader))
        sample = first[0] if isinstance(first, (tuple, list)) else first
        steps_per_epoch = len(train_loader)
    else:
        try:
            first = train_loader[0]
            steps_per_epoch = -(-len(train_loader) // cfg.batch_size)
        except (TypeError, IndexError, KeyError):
            raise QSelectError(f"imp: train_loader must be a DataLoader or a Dataset of (x, y) pairs, "
                               f"got {type(train_loader).__name__}") from None
        sample = (first[0] if isinstance(first, (tuple, list)) else first)[None]
    names = layer_order(work, sample, layers)
    keys = [f"{n}.weight" for n in names]
    alive = {k: torch.ones_like(dict(work.named_parameters())[k]) for k in keys}
    rewind: dict = {}

    def remember(step, m):
        if not rewind and step >= target_step:
            rewind.update({k: v.detach().clone() for k, v in _plain_state(m).items()})

    target_step = int(round(rewind_fraction * budget[0] * steps_per_epoch))
    if target_step == 0:
        rewind.update({k: v.detach().clone() for k, v in _plain_state(work).items()})
    history = []
    for r in range(int(rounds) + 1):
        run = dataclasses.replace(cfg, epochs=budget[r], seed=int(seed) + r)
        history.append(train(work, train_loader, run, step_callback=remember if r == 0 else None))
        if r == int(rounds):
            break
        kept_frac = (1.0 - sparsity) ** ((r + 1) / int(rounds))
        params = _plain_state(work)
        for k in keys:
            w = params[k]
            cols = w[0].numel()
            keep = keep_per_row(cols, sparsity) if r + 1 == int(rounds) else \
                max(keep_per_row(cols, sparsity), int(round(kept_frac * cols)))
            alive[k] = _surviving_topk(w, alive[k], keep).to(w)
        remove_masks(work, make_permanent=True)
        with torch.no_grad():
            for k, v in dict(work.named_parameters()).items():
                v.copy_(rewind[k].to(v))
        apply_masks(work, {k: m.float() for k, m in alive.items()})
    remove_masks(work, make_permanent=True)
    final = {k: v.detach().cpu().clone() for k, v in work.named_parameters()}
    masks = {k: alive[k].detach().to("cpu", torch.float32) for k in keys}
    weights = {k: final[k] * masks[k].to(final[k].dtype) for k in keys}
    other = {k: v for k, v in final.items() if k not in masks}
    res = PruneResult(masks, weights, "imp", sparsity, other=other)
    res.info.update({"real_sparsity": res.real_sparsity(), "epochs": int(sum(budget)),
                     "runs": budget, "rewind_step": target_step,
                     "train_loss": [h["train_loss"][-1] if h["train_loss"] else None for h in history]})
    return res


def _plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters by unpruned name; for a pruned one the effective (masked) value."""
    out = {}
    for mname, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            key = pname
            if pname.endswith("_orig") and hasattr(module, pname[:-5] + "_mask"):
                key = pname[:-5]
                p = getattr(module, key)
            out[f"{mname}.{key}" if mname else key] = p
    return out
