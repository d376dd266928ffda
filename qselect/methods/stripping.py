"""Synaptic Stripping (Whitaker & Whitley): revive dead ReLUs by pruning.

Every ``frequency`` epochs an evaluation pass runs with forward hooks on each
``nn.ReLU`` module.  A ReLU call whose input is exactly the output tensor of an
``nn.Linear`` is attributed to that layer's output units (this also handles one
ReLU module reused after several layers, and the ViT's ``fc1 -> ReLU`` MLP
blocks).  A unit whose ReLU output sums to exactly zero over the whole pass is
dead; for each dead unit, the most negative ``fraction`` of its remaining
incoming weights is removed.  With non-negative-ish inputs this raises the
unit's pre-activation so it can come back to life, and the network ends
sparse.  Removals accumulate through ``qselect.classical.masks.apply_masks``
(torch.nn.utils.prune), like every other mask in the toolkit.

Only negative weights are candidates (removing a positive weight can only push
a dead unit further down); a unit with fewer negative weights than the quota
loses all of them.  The quota is ``ceil(fraction * remaining)`` so small
layers still progress.  ReLUs applied functionally (``F.relu``) are invisible to
hooks; models must use ``nn.ReLU`` modules.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from qselect.errors import QSelectError

from ._common import check_fraction, current_mask, original_param


class SynapticStripping:
    """Strip the most negative incoming weights of dead ReLU units.

    Use ``strip(loader)`` directly, or pass ``epoch_callback`` to
    ``qselect.classical.train.train(..., epoch_callback=stripper.epoch_callback)``
    with ``stripper.loader`` set (the constructor's ``loader``).
    """

    def __init__(
        self,
        model: nn.Module,
        loader=None,
        *,
        fraction: float = 0.05,
        frequency: int = 1,
        device=None,
        layers: Iterable[str] | None = None,
    ) -> None:
        check_fraction(fraction, "fraction", low_open=True)
        if int(frequency) != frequency or frequency < 1:
            raise QSelectError(f"frequency must be a positive number of epochs, got {frequency!r}")
        self.model = model
        self.loader = loader
        self.fraction = float(fraction)
        self.frequency = int(frequency)
        self.device = device
        self.layers = None if layers is None else set(layers)  # Linear module names to consider
        self.history: list[dict] = []

    # -- detection ----------------------------------------------------------------------------
    @torch.no_grad()
    def relu_activity(self, loader=None) -> dict[str, torch.Tensor]:
        """Sum of each Linear->ReLU unit's ReLU output over one eval pass of ``loader``.

        Returns ``{linear_module_name: tensor (out_features,)}``.

        Parameters
        ----------
        loader : DataLoader or None
            Default: the loader given at construction.

        Returns
        -------
        dict of str -> torch.Tensor
        """
        loader = loader if loader is not None else self.loader
        if loader is None:
            raise QSelectError("no data for the evaluation pass; pass loader= to SynapticStripping or strip()")
        model = self.model
        device = self._device()
        linears = {m: n for n, m in model.named_modules() if isinstance(m, nn.Linear)}
        relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
        live: list[tuple[torch.Tensor, str]] = []  # outputs of Linear layers in this forward
        sums: dict[str, torch.Tensor] = {}

        def on_linear(module, inputs, output):
            live.append((output, linears[module]))

        def on_relu(module, inputs, output):
            x = inputs[0]
            for tensor, name in reversed(live):
                # in-place ReLU returns its input, so identity holds either way
                if tensor is x or tensor is output:
                    if self.layers is not None and name not in self.layers:
                        return
                    s = output.detach().float().reshape(-1, output.shape[-1]).sum(0)
                    sums[name] = sums[name] + s if name in sums else s
                    return

        def on_root(module, inputs):
            live.clear()

        handles = [m.register_forward_hook(on_linear) for m in linears]
        handles += [r.register_forward_hook(on_relu) for r in relus]
        handles.append(model.register_forward_pre_hook(on_root))
        was_training = model.training
        model.eval()
        try:
            for batch in loader:
                x = batch[0] if isinstance(batch, (list, tuple)) else batch
                model(x.to(device))
                live.clear()
        finally:
            for h in handles:
                h.remove()
            model.train(was_training)
        if not sums:
            raise QSelectError(
                "no nn.ReLU module directly follows an nn.Linear in this model; "
                "synaptic stripping needs Linear -> nn.ReLU pairs (not functional F.relu)"
            )
        return {n: s.cpu() for n, s in sums.items()}

    def dead_units(self, loader=None) -> dict[str, torch.Tensor]:
        """``{linear_name: bool tensor}``: units whose ReLU output summed to zero.

        Parameters
        ----------
        loader : DataLoader or None

        Returns
        -------
        dict of str -> torch.Tensor
        """
        return {n: s == 0 for n, s in self.relu_activity(loader).items()}

    # -- stripping ----------------------------------------------------------------------------
    @torch.no_grad()
    def strip(self, loader=None, *, epoch: int | None = None) -> dict:
        """Detect dead units and strip their most negative incoming weights (one round).

        Returns (and appends to ``history``) ``{"epoch", "dead": {layer: count},
        "dead_total", "removed": {layer: count}, "removed_total", "sparsity"}``
        where ``dead`` is counted *before* this round's stripping.

        Parameters
        ----------
        loader : DataLoader or None
        epoch : int or None
            Recorded in the history.

        Returns
        -------
        dict

        References
        ----------
        T. Whitaker, D. Whitley, "Synaptic Stripping: How Pruning Can Bring Dead
        Neurons Back to Life", IJCNN 2023 (arXiv:2302.05818).
        """
        from qselect.classical.masks import apply_masks

        dead = self.dead_units(loader)
        new_masks: dict[str, torch.Tensor] = {}
        removed: dict[str, int] = {}
        for layer, is_dead in dead.items():
            pname = f"{layer}.weight" if layer else "weight"
            if not bool(is_dead.any()):
                removed[layer] = 0
                continue
            w = original_param(self.model, pname).detach().float().cpu()
            mask = current_mask(self.model, pname).cpu()
            keep = mask > 0.5
            # all dead rows at once: rank each row's negative kept weights, most negative first,
            # and remove the first ceil(fraction * remaining) of them (all of them if fewer)
            cand = keep & (w < 0) & is_dead.reshape(-1, 1)
            quota = torch.ceil(self.fraction * keep.sum(1, dtype=torch.float64)).reshape(-1, 1)
            order = torch.argsort(torch.where(cand, w, torch.inf), dim=1, stable=True)
            rank = torch.empty_like(order).scatter_(1, order, torch.arange(w.shape[1]).expand_as(order))
            strip = cand & (rank < quota)
            mask[strip] = 0.0
            count = int(strip.sum())
            removed[layer] = count
            if count:
                new_masks[pname] = mask
        if new_masks:
            apply_masks(self.model, new_masks)  # the new mask is a subset of the old one
        record = {
            "epoch": epoch,
            "dead": {n: int(d.sum()) for n, d in dead.items()},
            "dead_total": int(sum(int(d.sum()) for d in dead.values())),
            "removed": removed,
            "removed_total": int(sum(removed.values())),
            "sparsity": self.sparsity(),
        }
        self.history.append(record)
        return record

    def epoch_callback(self, epoch: int, *args, **kwargs) -> None:
        """For ``train(..., epoch_callback=...)``: strip after every ``frequency``-th epoch.

        ``epoch`` is taken as 0-based (the first epoch is 0) and stripping runs
        after epochs ``frequency-1, 2*frequency-1, ...``.

        Parameters
        ----------
        epoch : int
        *args, **kwargs
            Ignored (``train`` passes the model and history).
        """
        if (int(epoch) + 1) % self.frequency == 0:
            self.strip(epoch=int(epoch) + 1)

    def sparsity(self) -> float:
        """Fraction of masked weights over all nn.Linear layers (or only ``layers`` when given)."""
        total = kept = 0
        for n, m in self.model.named_modules():
            if isinstance(m, nn.Linear) and (self.layers is None or n in self.layers):
                mask = current_mask(self.model, f"{n}.weight" if n else "weight")
                total += mask.numel()
                kept += float(mask.sum())
        return 1.0 - kept / max(total, 1)

    def _device(self):
        if self.device is not None:
            return torch.device(self.device)
        for p in self.model.parameters():
            return p.device
        return torch.device("cpu")


def synaptic_stripping(
    model: nn.Module,
    train_loader,
    config,
    *,
    eval_loader=None,
    fraction: float = 0.05,
    frequency: int = 1,
    val_loader=None,
    layers=None,
    augment=None,
) -> dict:
    """Train ``model`` with ``config`` while stripping dead units every ``frequency`` epochs.

    ``eval_loader`` is the data of the detection pass (default: ``train_loader``).
    Extra detection passes before training and after the last round record the
    initial and final dead-unit counts.  Returns ``{"history": train history,
    "stripping": per-round records, "dead_initial", "dead_final" ({layer: count}),
    "dead_per_epoch": [{"epoch", "dead" (before that round's strip), "removed",
    "sparsity"}], "final_sparsity": float}`` (sparsity over the Linear layers).

    Parameters
    ----------
    model : torch.nn.Module
    train_loader : DataLoader or Dataset
    config : TrainConfig or dict
    eval_loader : DataLoader or None
    fraction : float
        Fraction of a dead unit's remaining incoming weights removed per round, in (0, 1].
    frequency : int
        Epochs between rounds.
    val_loader : DataLoader, Dataset or None
        Validation data (early stopping and per-epoch metrics).
    layers : sequence of str or None
    augment : callable or None
        Maps an input batch (on the device) to an augmented one.

    References
    ----------
    T. Whitaker, D. Whitley, "Synaptic Stripping: How Pruning Can Bring Dead
    Neurons Back to Life", IJCNN 2023 (arXiv:2302.05818).
    """
    from qselect.classical.train import train

    stripper = SynapticStripping(
        model, eval_loader if eval_loader is not None else train_loader,
        fraction=fraction, frequency=frequency, layers=layers,
    )
    initial = {n: int(d.sum()) for n, d in stripper.dead_units().items()}
    initial_sparsity = stripper.sparsity()
    history = train(model, train_loader, config, val_loader=val_loader, augment=augment,
                    epoch_callback=stripper.epoch_callback)
    final = {n: int(d.sum()) for n, d in stripper.dead_units().items()}
    per_epoch = [{"epoch": 0, "dead": sum(initial.values()), "removed": 0, "sparsity": initial_sparsity}]
    per_epoch += [{"epoch": r["epoch"], "dead": r["dead_total"], "removed": r["removed_total"],
                   "sparsity": r["sparsity"]} for r in stripper.history]
    return {
        "history": history,
        "stripping": stripper.history,
        "dead_initial": initial,
        "dead_final": final,
        "dead_per_epoch": per_epoch,
        "final_sparsity": stripper.sparsity(),
    }
