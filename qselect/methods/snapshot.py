"""Snapshot Ensembles (Huang et al., ICLR 2017): M models for the price of one.

One training run with a cyclic cosine learning rate that restarts ``cycles``
times; a snapshot of the weights is taken at the end of every cycle (where the
rate is lowest and the model sits in a local minimum); the ensemble averages
the snapshots' softmax.  The rate at step ``t`` (0-based) of ``T`` total steps
is Huang et al.'s eq. (2)::

    lr(t) = lr0 / 2 * (cos(pi * (t mod L) / L) + 1),   L = ceil(T / M)

so it is exactly ``lr0`` at every cycle start (``t mod L == 0``) and decays
towards 0 within the cycle.  The optimiser (SGD with momentum by default) is
kept across restarts, as in the paper.

Cost accounting is that of the other ensembles: ``epochs`` counts every
training epoch (dense), ``flop_epochs`` equals ``epochs`` (the members are
dense), plus ``parent_epochs`` when the run starts from a trained parent.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qselect.errors import QSelectError


def _check_cycles(cycles) -> int:
    if isinstance(cycles, bool) or not isinstance(cycles, (int, np.integer)) or cycles < 1:
        raise QSelectError(f"cycles must be a positive integer number of learning-rate restarts, got {cycles!r}")
    return int(cycles)


def cycle_length(total_steps: int, cycles: int) -> int:
    """Steps per cycle, ``ceil(total_steps / cycles)`` (Huang et al. eq. 2).

    Parameters
    ----------
    total_steps : int
    cycles : int

    Returns
    -------
    int

    Raises
    ------
    QSelectError
        If ``cycles`` < 1 or there are fewer steps than cycles.
    """
    cycles = _check_cycles(cycles)
    if int(total_steps) < cycles:
        raise QSelectError(f"{total_steps} training steps cannot hold {cycles} cycles; "
                           "train for more epochs or use fewer cycles")
    return int(math.ceil(int(total_steps) / cycles))


def snapshot_lr(step: int, total_steps: int, cycles: int, lr: float) -> float:
    """The cyclic cosine learning rate at 0-based ``step`` (Huang et al. 2017, eq. 2).

    Parameters
    ----------
    step : int
        Optimiser step, 0-based.
    total_steps : int
        Steps of the whole run (epochs x batches per epoch).
    cycles : int
        Number of cycles M (= snapshots).
    lr : float
        Restart (maximum) learning rate lr0.

    Returns
    -------
    float
        ``lr / 2 * (cos(pi * (step mod L) / L) + 1)`` with ``L = ceil(total_steps / cycles)``.

    References
    ----------
    G. Huang, Y. Li, G. Pleiss, Z. Liu, J. E. Hopcroft, K. Q. Weinberger,
    "Snapshot Ensembles: Train 1, get M for free", ICLR 2017.
    """
    length = cycle_length(total_steps, cycles)
    return float(lr) / 2.0 * (math.cos(math.pi * (int(step) % length) / length) + 1.0)


def snapshot_steps(total_steps: int, cycles: int) -> list[int]:
    """1-based step counts after which a snapshot is taken: each cycle's last step (and the run's last).

    Parameters
    ----------
    total_steps : int
    cycles : int

    Returns
    -------
    list of int
    """
    length = cycle_length(total_steps, cycles)
    return sorted({min(length * (c + 1), int(total_steps)) for c in range(cycles)})


@dataclass
class SnapshotResult:
    """Snapshots of one cyclic run and what they cost.

    Attributes
    ----------
    snapshots : list of nn.Module
        One model per cycle end, oldest first.
    lrs : list of float
        The learning rate used at every optimiser step.
    history : dict
        ``train_loss`` per epoch, ``snapshot_steps``, ``cycle_length``, ``config``.
    cost : dict
        ``epochs``, ``flop_epochs``, ``parent_epochs``, ``members``.
    """

    snapshots: list[nn.Module]
    lrs: list[float]
    history: dict
    cost: dict
    keep_last: int | None = None
    info: dict = field(default_factory=dict)

    @property
    def members(self) -> list[nn.Module]:
        """The ensemble: the last ``keep_last`` snapshots (all when None)."""
        return list(self.snapshots[-self.keep_last:]) if self.keep_last else list(self.snapshots)

    def evaluate(self, loader, device=None) -> dict:
        """Ensemble metrics on ``loader`` (``evaluate_ensemble``) plus the cost.

        Parameters
        ----------
        loader : DataLoader
        device : str, torch.device or None

        Returns
        -------
        dict
        """
        from .ensembles import evaluate_ensemble

        out = evaluate_ensemble(self.members, loader, device=device)
        out["cost"] = dict(self.cost)
        out["method"] = "snapshot"
        return out


def snapshot_ensemble(model: nn.Module, train_loader, config=None, *, cycles: int = 5,
                      keep_last: int | None = None, parent_epochs: float = 0.0,
                      augment=None) -> SnapshotResult:
    """Train ``model`` (in place) with ``cycles`` cosine restarts and keep a snapshot per cycle.

    Parameters
    ----------
    model : nn.Module
        Network to train (fresh, or a trained parent to fine-tune cyclically).
        It may carry masks; they stay fixed.
    train_loader : DataLoader or Dataset
        Training data (a Dataset is batched with ``config.batch_size``, shuffled with ``config.seed``).
    config : TrainConfig or dict, optional
        ``epochs`` is the whole run's budget; ``lr`` the restart rate lr0; the
        optimiser, momentum, weight decay, device and seed are used as in
        ``qselect.classical.train.train``; ``schedule`` is ignored (cyclic cosine).
    cycles : int
        Number of cycles M (> 0); ``epochs * batches`` must be at least M.
    keep_last : int, optional
        Ensemble only the last ``keep_last`` snapshots (Huang et al. vary this); all by default.
    parent_epochs : float
        What the starting model already cost, added to the budget.
    augment : callable, optional
        Maps an input batch (on the device) to an augmented one.

    Returns
    -------
    SnapshotResult

    Raises
    ------
    QSelectError
        Zero or negative cycles, fewer steps than cycles, ``keep_last`` outside [1, cycles],
        or a diverging run.

    References
    ----------
    G. Huang et al., "Snapshot Ensembles: Train 1, get M for free", ICLR 2017.
    """
    from qselect.classical.train import _as_loader, as_config, make_optimizer, resolve_device, seed_everything

    cycles = _check_cycles(cycles)
    if keep_last is not None and (int(keep_last) != keep_last or not 1 <= keep_last <= cycles):
        raise QSelectError(f"keep_last must be an integer in [1, cycles={cycles}] or None, got {keep_last!r}")
    config = as_config(config)
    device = resolve_device(config.device)
    use_amp = bool(config.amp) and device.type == "cuda"
    seed_everything(config.seed)
    model.to(device)
    loader = _as_loader(train_loader, config, shuffle=True)
    steps_per_epoch = len(loader)
    total = int(config.epochs) * steps_per_epoch
    if total < 1:
        raise QSelectError("snapshot ensembles need at least one training step; set epochs >= 1")
    length = cycle_length(total, cycles)
    takes = set(snapshot_steps(total, cycles))
    optimizer = make_optimizer(model.parameters(), config)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    snaps: list[nn.Module] = []
    lrs: list[float] = []
    hist = {"train_loss": [], "snapshot_steps": sorted(takes), "cycle_length": length,
            "config": dataclasses.asdict(config), "device": str(device)}
    step = 0
    for epoch in range(config.epochs):
        model.train()
        tot, seen = torch.zeros((), device=device), 0
        for x, y in loader:
            lr = snapshot_lr(step, total, cycles, config.lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            lrs.append(lr)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if augment is not None:
                x = augment(x)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                loss = F.cross_entropy(model(x), y, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            step += 1
            tot += loss.detach().float() * len(y)
            seen += len(y)
            if step in takes:
                snaps.append(copy.deepcopy(model).eval())
        if not torch.isfinite(tot):
            raise QSelectError(f"training diverged (loss {float(tot)}) in epoch {epoch}; "
                               f"lower the learning rate (lr={config.lr})")
        hist["train_loss"].append(float(tot) / max(seen, 1))
    epochs = float(config.epochs)
    cost = {"parent_epochs": float(parent_epochs), "epochs": float(parent_epochs) + epochs,
            "flop_epochs": float(parent_epochs) + epochs * _density(model, loader, device),
            "members": len(snaps[-keep_last:]) if keep_last else len(snaps)}
    return SnapshotResult(snapshots=snaps, lrs=lrs, history=hist, cost=cost, keep_last=keep_last)


def _density(model: nn.Module, loader, device) -> float:
    """FLOP density of the (possibly masked) model, 1.0 when dense."""
    from qselect.classical.masks import get_masks

    if not get_masks(model):
        return 1.0
    from .ensembles import flop_density

    x, _ = next(iter(loader))
    return flop_density(model, x[:1].to(device))

