"""Stochastic Subnetwork Annealing (Whitaker & Whitley, 2024).

Every prunable weight has an inclusion probability.  Weights in the target
subnetwork stay at probability 1; the others start at ``initial_prob`` (or at a
random value below it with ``init="random"``) and anneal to exactly 0 over
``duration`` training steps on a linear, cosine or exponential schedule.  Each
training forward pass samples a fresh Bernoulli mask, so the network slides
into the target instead of losing the weights at once.

Mechanism: the weights are pruned with the toolkit's own masks
(``qselect.classical.masks.apply_masks`` -> ``torch.nn.utils.prune``), which
gives every layer ``weight_orig`` and a ``weight_mask`` buffer and a pruning
pre-hook computing ``weight = weight_orig * weight_mask``.  SSA adds one
forward pre-hook on the root model that, before the layers run, writes the
mask for this pass into those buffers in place:

* training mode: a Bernoulli sample of the current probabilities (and the
  step counter advances: one training forward pass = one step);
* eval mode: the **expected** mask (the probabilities themselves, so the eval
  weights are E[W]) by default, or the target mask with ``eval_mask="target"``.

Once ``step >= duration`` every probability is exactly 0 or 1, so samples equal
the target.  ``finish()`` removes the hook and installs the deterministic
target through ``apply_masks`` (composed with whatever mask the model had
before SSA), after which the model is an ordinary pruned model.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

from qselect.errors import QSelectError

from ._common import check_fraction, current_mask, make_generator, module_of

SCHEDULES = ("linear", "cosine", "exponential")


def schedule_factor(kind: str, t: float, *, decay: float = 5.0) -> float:
    """Fraction of the initial probability left at progress ``t`` in [0, 1].

    1 at t=0 and exactly 0 at t>=1 for every kind.  ``exponential`` is
    ``(exp(-decay t) - exp(-decay)) / (1 - exp(-decay))`` (an exponential decay
    shifted so it reaches 0 at the end).

    Parameters
    ----------
    kind : {"linear", "cosine", "exponential"}
    t : float
        Progress in [0, 1].
    decay : float
        Rate of the exponential schedule.

    Returns
    -------
    float

    References
    ----------
    T. Whitaker, D. Whitley, "Stochastic Subnetwork Annealing: A
    Regularization Technique for Fine Tuning Pruned Subnetworks",
    arXiv:2401.08830 (2024).
    """
    if kind not in SCHEDULES:
        raise QSelectError(f"unknown annealing schedule {kind!r}; use one of {', '.join(SCHEDULES)}")
    t = min(max(float(t), 0.0), 1.0)
    if t >= 1.0:
        return 0.0
    if kind == "linear":
        return 1.0 - t
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if decay <= 0:
        raise QSelectError(f"exponential decay must be > 0, got {decay}")
    end = math.exp(-decay)
    return (math.exp(-decay * t) - end) / (1.0 - end)


class StochasticSubnetworkAnnealing:
    """Anneal a model's weights into ``target_masks`` with stochastic masks.

    Parameters
    ----------
    model : the network (trained or not); may already carry masks.
    target_masks : masks (toolkit contract) of the final subnetwork, e.g. from
        ``magnitude_masks``, ``random_masks`` or ``select_masks(...).masks``.
        Only the named parameters are annealed; others are left alone.
    duration : number of training steps (training forward passes) the anneal
        takes; ``epochs * len(train_loader)`` for an epoch budget.
    schedule : "linear" | "cosine" | "exponential".
    initial_prob : starting inclusion probability of non-target weights (the
        initial temperature); 1.0 starts from the dense network.
    init : "constant" (all non-target weights start at ``initial_prob``) or
        "random" (each draws U(0, initial_prob) once, seeded).
    eval_mask : "expected" (eval forward uses E[mask] = probabilities) or
        "target" (eval forward uses the final target mask).
    seed : seeds the initial probabilities and every Bernoulli sample.
    """

    def __init__(
        self,
        model: nn.Module,
        target_masks: Mapping[str, torch.Tensor],
        *,
        duration: int,
        schedule: str = "cosine",
        initial_prob: float = 1.0,
        init: str = "constant",
        decay: float = 5.0,
        eval_mask: str = "expected",
        seed: int = 0,
    ) -> None:
        if not target_masks:
            raise QSelectError("target_masks is empty; pass masks for the layers to anneal")
        if int(duration) != duration or duration < 1:
            raise QSelectError(f"duration must be a positive number of training steps, got {duration!r}")
        schedule_factor(schedule, 0.0, decay=decay)  # validates kind/decay
        check_fraction(initial_prob, "initial_prob")
        if init not in ("constant", "random"):
            raise QSelectError(f"init must be 'constant' or 'random', got {init!r}")
        if eval_mask not in ("expected", "target"):
            raise QSelectError(f"eval_mask must be 'expected' or 'target', got {eval_mask!r}")
        self.model = model
        self.duration = int(duration)
        self.schedule = schedule
        self.decay = float(decay)
        self.eval_mask = eval_mask
        self.seed = int(seed)
        self.step = 0
        self._handle = None
        self._finished = False
        from qselect.classical.masks import apply_masks

        # Masks in force before SSA (weights already pruned stay pruned).
        self.base = {n: current_mask(model, n) for n in target_masks}
        self.target = {}
        for name, tgt in target_masks.items():
            base = self.base[name]
            if tuple(tgt.shape) != tuple(base.shape):
                raise QSelectError(
                    f"target mask for {name!r} has shape {tuple(tgt.shape)}, parameter has {tuple(base.shape)}"
                )
            self.target[name] = (tgt.detach().float().cpu() > 0.5).float() * base
        # Install (or keep) torch pruning on each annealed layer via the shared mechanism,
        # so the live mask sits in a ``weight_mask`` buffer we can rewrite each pass.
        apply_masks(model, {n: b.clone() for n, b in self.base.items()})
        device = self._buffer(next(iter(self.target))).device
        gen = make_generator(seed)
        # p(step) = target + delta * factor(step); delta (the starting probability of the weights
        # to anneal) is kept only for layers that have some, and only those are sampled per pass.
        self._delta = {}
        for name in self.target:
            free = (self.base[name] - self.target[name]).clamp(min=0)  # annealed weights
            if init == "random":
                p0 = torch.rand(free.shape, generator=gen) * initial_prob
            else:
                p0 = torch.full(free.shape, float(initial_prob))
            self.target[name] = self.target[name].to(device)
            if bool((free * p0).any()):
                self._delta[name] = (free * p0).to(device)
        self._noise = {n: torch.empty_like(d) for n, d in self._delta.items()}  # reused per sample
        self._gen = make_generator(seed + 1, device=device)
        self._written = None  # what the buffers hold: ("expected", step) or "target" (a sample: None)
        self._install(("expected", 0))  # non-annealed layers now hold their target for good
        self.attach()

    # -- schedule -----------------------------------------------------------------------------
    def factor(self, step: int | None = None) -> float:
        """The schedule's factor at ``step`` (default: the current step), from 1 at the start to 0 at ``duration``.

        Parameters
        ----------
        step : int or None
            Training forward passes since the start.

        Returns
        -------
        float
            Multiplies each non-target weight's initial keep-probability.
        """
        step = self.step if step is None else step
        return schedule_factor(self.schedule, step / self.duration, decay=self.decay)

    def probabilities(self, step: int | None = None) -> dict[str, torch.Tensor]:
        """Inclusion probabilities at ``step`` (default: now). Target weights are 1.

        Parameters
        ----------
        step : int or None

        Returns
        -------
        dict of str -> torch.Tensor
            Parameter name -> probabilities of the parameter's shape.
        """
        f = self.factor(step)
        return {n: torch.add(t, self._delta[n], alpha=f) if n in self._delta else t.clone()
                for n, t in self.target.items()}

    @property
    def done(self) -> bool:
        """True once ``duration`` steps have passed (every sample now equals the target)."""
        return self.step >= self.duration

    # -- hooks --------------------------------------------------------------------------------
    def attach(self) -> None:
        """Install the forward pre-hook that samples masks (idempotent).

        Raises
        ------
        QSelectError
            If :meth:`finish` has already been called.
        """
        if self._finished:
            raise QSelectError("this annealer has finished; create a new StochasticSubnetworkAnnealing")
        if self._handle is None:
            self._written = None  # the buffers may have been changed while detached
            self._handle = self.model.register_forward_pre_hook(self._pre_forward, prepend=True)

    def detach(self) -> None:
        """Remove the sampling hook; the mask buffers keep their last values (idempotent)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _buffer(self, name: str) -> torch.Tensor:
        module, attr = module_of(self.model, name)
        return getattr(module, attr + "_mask")

    def _follow_device(self) -> None:
        # train() may move the model (e.g. to CUDA) after construction.
        device = self._buffer(next(iter(self.target))).device
        if self.target[next(iter(self.target))].device != device:
            self.target = {n: t.to(device) for n, t in self.target.items()}
            self._delta = {n: t.to(device) for n, t in self._delta.items()}
            self._noise = {n: torch.empty_like(d) for n, d in self._delta.items()}
            self._gen = make_generator(self.seed + 1 + self.step, device=device)
            self._written = None

    @torch.no_grad()
    def _pre_forward(self, module, inputs):
        self._follow_device()
        if not module.training:
            done = self.done or self.eval_mask == "target"
            self._install("target" if done else ("expected", self.step))
            return None
        if self.done:
            self._install("target")
        else:
            f = self.factor()
            for name, delta in self._delta.items():
                # u < p with u ~ U[0, 1) is an exact Bernoulli(p) draw (p = 0 and 1 stay exact),
                # several times faster than torch.bernoulli on CPU
                p = torch.add(self.target[name], delta, alpha=f)
                self._buffer(name).copy_(self._noise[name].uniform_(generator=self._gen) < p)
            self._written = None
        self.step += 1
        return None

    def _install(self, key) -> None:
        """Write the target or the expected mask into every buffer, unless they already hold it."""
        if key == self._written:
            return
        source = self.target if key == "target" else self.probabilities(key[1])
        for name, m in source.items():
            self._buffer(name).copy_(m)
        self._written = key

    def current_masks(self) -> dict[str, torch.Tensor]:
        """The masks used by the last forward pass (a sample in training)."""
        return {n: self._buffer(n).detach().clone() for n in self.target}

    # -- end ----------------------------------------------------------------------------------
    @torch.no_grad()
    def finish(self) -> dict[str, torch.Tensor]:
        """Remove the stochastic hook and install the deterministic target masks.

        Resets each buffer to the pre-SSA mask, then applies the target through
        ``apply_masks`` (torch.nn.utils.prune composes it with the old mask).
        Returns the target masks (CPU).
        """
        from qselect.classical.masks import apply_masks

        self.detach()
        for name in self.target:
            self._buffer(name).copy_(self.base[name].to(self._buffer(name).device))
        target = {n: t.detach().cpu().clone() for n, t in self.target.items()}
        apply_masks(self.model, target)
        self._finished = True
        return target

    def state(self) -> dict:
        """Progress summary: step, duration, schedule factor and expected density."""
        probs = self.probabilities()
        kept = sum(float(p.sum()) for p in probs.values())
        total = sum(p.numel() for p in probs.values())
        return {
            "step": self.step,
            "duration": self.duration,
            "factor": self.factor(),
            "expected_density": kept / max(total, 1),
            "target_density": sum(float(t.sum()) for t in self.target.values()) / max(total, 1),
        }


def ssa_finetune(
    model: nn.Module,
    target_masks: Mapping[str, torch.Tensor],
    train_loader,
    config,
    *,
    anneal_epochs: float | None = None,
    schedule: str = "cosine",
    initial_prob: float = 1.0,
    init: str = "constant",
    decay: float = 5.0,
    eval_mask: str = "expected",
    val_loader=None,
    seed: int | None = None,
    augment=None,
) -> dict:
    """Fine-tune ``model`` for ``config.epochs`` while annealing into ``target_masks``.

    The anneal spans ``anneal_epochs`` (default: half of ``config.epochs``);
    the remaining epochs train the fixed target subnetwork.  The total epoch
    budget is ``config.epochs``, the same as one-shot pruning with that config.
    Returns ``{"history": train history, "masks": target, "ssa": state}``.

    Parameters
    ----------
    model : torch.nn.Module
    target_masks : dict of str -> torch.Tensor
        The final subnetwork.
    train_loader : DataLoader or Dataset
    config : TrainConfig or dict
    anneal_epochs : float or None
    schedule : {"linear", "cosine", "exponential"}
    initial_prob : float
        Keep-probability of non-target weights at the start, in (0, 1].
    init : {"constant", "random"}
        Every non-target weight starts at ``initial_prob``, or at U(0, initial_prob).
    decay : float
        Rate of the exponential schedule.
    eval_mask : {"expected", "target"}
        Mask used in eval mode during the anneal.
    val_loader : DataLoader, Dataset or None
        Validation data (early stopping and per-epoch metrics).
    seed : int or None
        Default ``config.seed``.
    augment : callable or None
        Maps an input batch (on the device) to an augmented one.

    Returns
    -------
    dict

    References
    ----------
    T. Whitaker, D. Whitley, "Stochastic Subnetwork Annealing: A
    Regularization Technique for Fine Tuning Pruned Subnetworks",
    arXiv:2401.08830 (2024).
    """
    from qselect.classical.train import train

    epochs = config.epochs
    anneal_epochs = epochs / 2 if anneal_epochs is None else anneal_epochs
    if not 0 < anneal_epochs <= epochs:
        raise QSelectError(f"anneal_epochs must be in (0, epochs={epochs}], got {anneal_epochs}")
    steps = max(1, int(round(anneal_epochs * len(train_loader))))
    ssa = StochasticSubnetworkAnnealing(
        model,
        target_masks,
        duration=steps,
        schedule=schedule,
        initial_prob=initial_prob,
        init=init,
        decay=decay,
        eval_mask=eval_mask,
        seed=config.seed if seed is None else seed,
    )
    try:
        history = train(model, train_loader, config, val_loader=val_loader, augment=augment)
    finally:
        state = ssa.state()
        masks = ssa.finish()
    return {"history": history, "masks": masks, "ssa": state}
