"""RigL, "Rigging the Lottery" (Evci et al., ICML 2020): sparse training at a fixed parameter count.

The network starts sparse (a random or magnitude mask at the target
sparsity, per layer uniform or Erdos-Renyi-Kernel) and stays exactly that
sparse.  Every ``delta_t`` optimiser steps until ``t_end``, in each layer:

1. drop the ``k`` active weights of smallest magnitude;
2. regrow ``k`` weights where the *dense* gradient ``|dL/dW|`` is largest,
   among the weights that were inactive before this update (a weight dropped
   in this update is never regrown in it); regrown weights start at 0;

with ``k = f(t) * active`` and the cosine-decayed update fraction
``f(t) = alpha / 2 * (1 + cos(pi * t / t_end))`` (Evci et al., eq. 1).

Mechanism: masks go through ``qselect.classical.masks.apply_masks``
(``torch.nn.utils.prune``), so each layer has ``weight_orig`` and a
``weight_mask`` buffer; RigL rewrites that buffer in place at every update.
The dense gradient is read from the effective weight ``W = W_orig * M``
(``dL/dW`` is dense even where ``M`` is 0) by a tensor hook installed, from a
forward pre-hook that runs after the pruning one, only on the forward pass
just before an update step.  Use the ``RigL`` object as the
``step_callback`` of ``qselect.classical.train.train`` (``rigl_train`` does).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from qselect.errors import QSelectError

from ._common import check_fraction, current_mask, effective_weight, make_generator, module_of, original_param

DISTRIBUTIONS = ("uniform", "erk")


def rigl_fraction(step: int, t_end: int, alpha: float) -> float:
    """Update fraction ``alpha / 2 * (1 + cos(pi * step / t_end))`` (0 after ``t_end``).

    Parameters
    ----------
    step : int
    t_end : int
        Step after which the topology is frozen.
    alpha : float
        Initial update fraction.

    Returns
    -------
    float

    References
    ----------
    U. Evci, T. Gale, J. Menick, P. S. Castro, E. Elsen, "Rigging the Lottery:
    Making All Tickets Winners", ICML 2020, eq. (1).
    """
    if step > t_end:
        return 0.0
    return float(alpha) / 2.0 * (1.0 + math.cos(math.pi * step / t_end))


def layer_densities(shapes: Mapping[str, Sequence[int]], sparsity: float, distribution: str = "uniform") -> dict:
    """Per-layer density (kept fraction) for a global ``sparsity``.

    "uniform": every layer at ``1 - sparsity``. "erk" (Erdos-Renyi-Kernel,
    Evci et al. sec. 3): density proportional to
    ``(n_in + n_out + k_h + k_w) / (n_in n_out k_h k_w)`` (``(n_in + n_out) / (n_in n_out)``
    for Linear), scaled so the total kept count matches; layers that would exceed
    density 1 are dense and the rest re-scaled.

    Parameters
    ----------
    shapes : mapping of str -> sequence of int
    sparsity : float
    distribution : {"uniform", "erk"}

    Returns
    -------
    dict of str -> float

    Raises
    ------
    QSelectError
        ``sparsity`` outside [0, 1) or an unknown distribution.
    """
    check_fraction(sparsity, "sparsity", high_open=True)
    if distribution not in DISTRIBUTIONS:
        raise QSelectError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}, got {distribution!r}")
    if distribution == "uniform":
        return {n: 1.0 - sparsity for n in shapes}
    sizes = {n: int(np.prod(s)) for n, s in shapes.items()}
    raw = {n: float(sum(s)) / sizes[n] for n, s in shapes.items()}
    dense: set[str] = set()
    budget = (1.0 - sparsity) * sum(sizes.values())
    while True:
        rest = [n for n in shapes if n not in dense]
        free = budget - sum(sizes[n] for n in dense)
        eps = free / sum(raw[n] * sizes[n] for n in rest)
        over = [n for n in rest if eps * raw[n] > 1.0]
        if not over:
            return {n: 1.0 if n in dense else eps * raw[n] for n in shapes}
        dense.update(over)


class RigL:
    """Dynamic sparse training with RigL's drop/grow updates.

    Parameters
    ----------
    model : nn.Module
        Network to train sparsely (RigL owns the masks of ``layers`` from now on).
    sparsity : float
        Fraction of the layers' weights kept at zero, in [0, 1).
    t_end : int
        Last step with mask updates (Evci et al. use 75% of training).
    delta_t : int
        Steps between mask updates (> 0).
    alpha : float
        Initial update fraction, in (0, 1].
    distribution : "uniform" or "erk"
        Per-layer sparsity (see ``layer_densities``).
    init : "random", "magnitude" or masks dict
        Starting mask: seeded random, the largest-magnitude weights (from a
        trained parent), or given masks (their per-layer counts are kept).
    layers : sequence of str, optional
        Weight names; default every Linear/Conv2d weight.
    seed : int
        Seeds the random start mask.
    rescale : bool
        With ``init="random"`` (sparse training from scratch), multiply each layer's kept
        weights by ``1 / sqrt(density)`` so every unit's pre-activation keeps the variance of
        the dense initialisation (sparsity-aware initialisation; without it a sparse
        LeNet-5 at 80% stays at chance). Ignored for other starts (trained weights).
    record : bool
        Keep the dropped and grown flat indices of every update in ``history``.

    Raises
    ------
    QSelectError
        Bad sparsity, alpha, delta_t, t_end, init or layer names.

    References
    ----------
    U. Evci, T. Gale, J. Menick, P. S. Castro, E. Elsen, "Rigging the Lottery:
    Making All Tickets Winners", ICML 2020.
    """

    def __init__(self, model: nn.Module, sparsity: float, *, t_end: int, delta_t: int = 100, alpha: float = 0.3,
                 distribution: str = "uniform", init="random", layers: Sequence[str] | None = None,
                 seed: int = 0, rescale: bool = True, record: bool = False) -> None:
        from qselect.classical.masks import apply_masks, masks_from_selection, parameter_shapes, prunable_parameters

        check_fraction(sparsity, "sparsity", high_open=True)
        check_fraction(alpha, "alpha", low_open=True)
        for what, v in (("delta_t", delta_t), ("t_end", t_end)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise QSelectError(f"{what} must be a positive number of optimiser steps, got {v!r}")
        shapes = parameter_shapes(model)
        names = list(layers) if layers is not None else prunable_parameters(model)
        bad = [n for n in names if n not in shapes]
        if bad:
            raise QSelectError(f"RigL layers {bad} are not parameters of {type(model).__name__}; "
                               f"choose from {prunable_parameters(model)}")
        self.model, self.names = model, names
        self.sparsity, self.alpha = float(sparsity), float(alpha)
        self.delta_t, self.t_end = int(delta_t), int(t_end)
        self.record = bool(record)
        self.step = 0
        self.history: list[dict] = []
        self._grads: dict[str, torch.Tensor] = {}
        if isinstance(init, str):
            if init not in ("random", "magnitude"):
                raise QSelectError(f"init must be 'random', 'magnitude' or a masks dict, got {init!r}")
            dens = layer_densities({n: tuple(shapes[n]) for n in names}, sparsity, distribution)
            gen = make_generator(seed)
            masks = {}
            for n in names:
                numel = int(np.prod(shapes[n]))
                keep = int(round(dens[n] * numel))
                if init == "random":
                    score = torch.rand(numel, generator=gen)
                else:
                    alive = current_mask(model, n).reshape(-1).cpu() > 0.5
                    score = torch.where(alive, effective_weight(model, n).abs().reshape(-1).float().cpu(),
                                        torch.full((numel,), -1.0))
                m = torch.zeros(numel)
                m[torch.argsort(score, descending=True, stable=True)[:keep]] = 1.0
                masks[n] = m.reshape(shapes[n])
        else:
            given = masks_from_selection(init)
            missing = [n for n in names if n not in given]
            if missing:
                raise QSelectError(f"init masks lack {missing}; give a mask for every RigL layer or pass layers=")
            masks = {n: given[n] for n in names}
        # a fresh mask, not a product with any earlier one: RigL owns these layers' masks
        for n in names:
            module, attr = module_of(model, n)
            if hasattr(module, attr + "_mask"):
                getattr(module, attr + "_mask").fill_(1.0)
        apply_masks(model, masks)
        with torch.no_grad():  # inactive weights start at zero, so a regrown weight starts at 0
            for n in names:
                w, m = original_param(model, n), self._mask(n)
                factor = 1.0
                if rescale and isinstance(init, str) and init == "random":
                    density = float(m.float().mean())
                    factor = 1.0 / math.sqrt(density) if density > 0 else 1.0
                w.mul_(m.to(w.dtype) * factor)
        # a pre-hook registered after torch's pruning pre-hook sees the differentiable ``orig * mask``
        # the forward pass is about to use (other hooks may swap it for a graph-free view afterwards)
        self._handles = [module_of(model, n)[0].register_forward_pre_hook(self._capture(n)) for n in names]

    # -- internals ----------------------------------------------------------------------------
    def _mask(self, name: str) -> torch.Tensor:
        module, attr = module_of(self.model, name)
        return getattr(module, attr + "_mask")

    def _capture(self, name: str):
        attr = name.rpartition(".")[2]

        def hook(module, _inp):
            nxt = self.step + 1
            if module.training and torch.is_grad_enabled() and nxt % self.delta_t == 0 and nxt <= self.t_end:
                w = getattr(module, attr)
                if isinstance(w, torch.Tensor) and w.requires_grad:
                    w.register_hook(lambda g: self._grads.__setitem__(name, g.detach().clone()))
            return None
        return hook

    def active_counts(self) -> dict[str, int]:
        """Active (mask 1) weights per layer."""
        return {n: int(self._mask(n).sum()) for n in self.names}

    # -- the update ---------------------------------------------------------------------------
    def __call__(self, step: int, model: nn.Module | None = None) -> None:
        """``step_callback`` for ``train``: after optimiser step ``step`` (1-based), update when due."""
        self.step = int(step)
        if self.step % self.delta_t == 0 and self.step <= self.t_end:
            self.update()

    @torch.no_grad()
    def update(self) -> dict:
        """One drop/grow update at the current step with the last captured dense gradients.

        Returns the history record: ``step``, ``fraction``, ``dropped``/``grown`` per layer,
        ``active`` (total active weights after the update).
        """
        frac = rigl_fraction(self.step, self.t_end, self.alpha)
        rec = {"step": self.step, "fraction": frac, "dropped": {}, "grown": {}}
        if self.record:
            rec["dropped_indices"], rec["grown_indices"] = {}, {}
        for n in self.names:
            grad = self._grads.get(n)
            if grad is None:
                continue  # no gradient captured (e.g. the layer was not used)
            buf = self._mask(n)
            w = original_param(self.model, n)
            mask = buf.reshape(-1) > 0.5
            active, inactive = int(mask.sum()), int((~mask).sum())
            k = min(int(round(frac * active)), inactive, active)
            if k <= 0:
                rec["dropped"][n] = rec["grown"][n] = 0
                continue
            mag = w.detach().abs().reshape(-1).float()
            drop_score = torch.where(mask, mag, torch.full_like(mag, float("inf")))
            drop = torch.argsort(drop_score, stable=True)[:k]
            g = grad.abs().reshape(-1).float().to(mag.device)
            # candidates: inactive *before* this update, so nothing dropped now comes back now
            grow_score = torch.where(mask, torch.full_like(g, -float("inf")), g)
            grow = torch.argsort(grow_score, descending=True, stable=True)[:k]
            flat = buf.view(-1)
            flat[drop] = 0
            flat[grow] = 1
            wflat = w.data.view(-1)
            wflat[drop] = 0
            wflat[grow] = 0  # regrown connections start at zero (Evci et al. sec. 3)
            rec["dropped"][n] = rec["grown"][n] = int(k)
            if self.record:
                rec["dropped_indices"][n] = drop.cpu().clone()
                rec["grown_indices"][n] = grow.cpu().clone()
        self._grads.clear()
        rec["active"] = int(sum(self.active_counts().values()))
        self.history.append(rec)
        return rec

    def finish(self) -> dict[str, torch.Tensor]:
        """Stop updating (remove the hooks); the model keeps its current masks. Returns them (CPU)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        return {n: self._mask(n).detach().float().cpu().clone() for n in self.names}


def rigl_train(model: nn.Module, train_loader, config, sparsity: float, *, delta_t: int | None = None,
               alpha: float = 0.3, end_fraction: float = 0.75, distribution: str = "uniform", init="random",
               layers: Sequence[str] | None = None, seed: int | None = None, val_loader=None,
               augment=None, rescale: bool = True, record: bool = False) -> dict:
    """Train ``model`` for ``config.epochs`` with RigL at ``sparsity``.

    Parameters
    ----------
    model : nn.Module
        Fresh network (``init="random"``, sparse training from scratch) or a
        trained parent (``init="magnitude"``: RigL as a sparse fine-tune, the same
        budget as one-shot / IMP / SSA).
    train_loader : DataLoader
    config : TrainConfig
        The budget and optimiser (``qselect.classical.train.train``).
    sparsity : float
        Target (and constant) sparsity of the chosen layers.
    delta_t : int, optional
        Steps between updates; default ``max(1, t_end // 10)`` (ten updates).
    alpha, distribution, init, layers, rescale : see ``RigL``.
    end_fraction : float
        ``t_end`` as a fraction of all steps (Evci et al.: 0.75), in (0, 1].
    seed : int, optional
        Start-mask seed (default ``config.seed``).
    val_loader, augment : passed to ``train``.
    record : bool
        Keep dropped/grown indices per update.

    Returns
    -------
    dict
        ``{"history": train history, "masks": final masks, "updates": RigL history,
        "sparsity": final overall sparsity of the layers, "epochs": config.epochs}``.

    References
    ----------
    U. Evci et al., "Rigging the Lottery: Making All Tickets Winners", ICML 2020.
    """
    from qselect.classical.masks import mask_sparsity
    from qselect.classical.train import as_config, train

    config = as_config(config)
    check_fraction(end_fraction, "end_fraction", low_open=True)
    steps = max(1, config.epochs * len(train_loader))
    t_end = max(1, int(end_fraction * steps))
    delta_t = max(1, t_end // 10) if delta_t is None else delta_t
    rigl = RigL(model, sparsity, t_end=t_end, delta_t=delta_t, alpha=alpha, distribution=distribution,
                init=init, layers=layers, seed=config.seed if seed is None else seed, rescale=rescale,
                record=record)
    try:
        history = train(model, train_loader, config, val_loader=val_loader, augment=augment, step_callback=rigl)
    finally:
        masks = rigl.finish()
    return {"history": history, "masks": masks, "updates": rigl.history,
            "sparsity": mask_sparsity(masks)["overall"], "epochs": config.epochs}
