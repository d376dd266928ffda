"""Calibration activations: what flows into and out of each layer, captured by forward hooks."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ..classical.masks import PRUNABLE_TYPES as PRUNABLE
from ..classical.train import call_or_explain
from ..devices import model_device
from ..errors import QSelectError


def prunable_layers(model: nn.Module) -> list[str]:
    """Names of the Linear/Conv2d modules in module order.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    list of str
    """
    return [name for name, m in model.named_modules() if isinstance(m, PRUNABLE)]


def resolve_layers(model: nn.Module, layers: Iterable[str] | None) -> list[str]:
    """The layer names to formulate, checked against the model.

    Parameters
    ----------
    model : torch.nn.Module
    layers : str, iterable of str, or None
        Names from ``model.named_modules()``; ``None``: every prunable layer
        (``nn.Linear`` / ``nn.Conv2d``) in module order.

    Returns
    -------
    list of str

    Raises
    ------
    QSelectError
        If a name is not a module of the model, or names a module that is
        not an ``nn.Linear`` / ``nn.Conv2d``.
    """
    modules = dict(model.named_modules())
    if layers is None:
        names = prunable_layers(model)
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
    for name in names:
        if name not in modules:
            raise QSelectError(f"model has no layer {name!r}; prunable layers: {prunable_layers(model)}")
        if not isinstance(modules[name], PRUNABLE):
            raise QSelectError(f"layer {name!r} is a {type(modules[name]).__name__}; "
                               "only nn.Linear and nn.Conv2d layers can be formulated")
    if not names:
        raise QSelectError("the model has no nn.Linear or nn.Conv2d layer to select from")
    return names


def _batches(inputs):
    if isinstance(inputs, torch.Tensor):
        yield inputs
        return
    for b in inputs:  # a DataLoader / list of batches; (x, y) pairs keep x
        yield b[0] if isinstance(b, (tuple, list)) else b


@torch.no_grad()
def collect_activations(model: nn.Module, inputs, layers: Iterable[str] | None = None
                        ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each named layer's inputs and outputs on a calibration batch.

    Run ``model`` on ``inputs`` (a tensor, or an iterable of batches / (x, y) pairs) and return ``{layer:
    (inputs_to_layer, outputs)}`` for the named layers (default every Linear/Conv2d), concatenated over batches,
    detached, on the model's device. The model runs in eval mode and is restored afterwards.

    Parameters
    ----------
    model : torch.nn.Module
    inputs : torch.Tensor or iterable
        A tensor, or batches / (x, y) pairs.
    layers : iterable of str or None

    Returns
    -------
    dict of str -> (torch.Tensor, torch.Tensor)
        Layer -> (its inputs, shape (N, in_features) or (N, C, H, W); its outputs).

    Raises
    ------
    QSelectError
        If a layer name is unknown, the input set is empty, or the forward pass fails (explained).
    """
    names = resolve_layers(model, layers)
    modules = dict(model.named_modules())
    store: dict[str, tuple[list, list]] = {n: ([], []) for n in names}

    def hook(name):
        def fn(module, args, output):
            store[name][0].append(args[0].detach())
            store[name][1].append(output.detach())
        return fn

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    was_training = model.training
    model.eval()
    device = model_device(model)
    try:
        seen = 0
        for x in _batches(inputs):
            if not isinstance(x, torch.Tensor):
                raise QSelectError(f"calibration inputs must be tensors, got {type(x).__name__}")
            if x.ndim == 0 or x.shape[0] == 0:
                continue
            _forward(model, x.to(device))
            seen += x.shape[0]
        if seen == 0:
            raise QSelectError("the calibration batch is empty; pass a non-empty tensor batch "
                               "(samples along dim 0) or a DataLoader")
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    out = {}
    for n in names:
        if not store[n][0]:
            raise QSelectError(f"layer {n!r} was never called in the forward pass; is it used by the model?")
        out[n] = (torch.cat(store[n][0]), torch.cat(store[n][1]))
    return out


def _forward(model: nn.Module, x: torch.Tensor):
    """One forward pass; a model that cannot take these inputs is a user error, said in one line."""
    return call_or_explain(lambda: model(x), lambda why: f"{type(model).__name__} cannot run on calibration "
                           f"inputs of shape {tuple(x.shape)} ({why}); pass inputs shaped like the model's "
                           "training data")


def check_finite(name: str, layer: nn.Module, inputs: torch.Tensor) -> None:
    """Refuse NaN/inf weights or calibration activations, naming the layer (before any QUBO is built).

    Parameters
    ----------
    name : str
    layer : torch.nn.Module
    inputs : torch.Tensor

    Raises
    ------
    QSelectError
        If the weights or inputs contain NaN or inf.
    """
    for what, t in (("weight", layer.weight), ("bias", getattr(layer, "bias", None)),
                    ("input activations", inputs)):
        if t is not None and not bool(torch.isfinite(t).all()):
            raise QSelectError(f"layer {name!r} has NaN or inf in its {what}; fix the model/data "
                               "(e.g. reload a good checkpoint) before selecting masks")


def as_float64_cpu(t: torch.Tensor) -> torch.Tensor:
    """QUBO math runs in float64 on CPU whatever device the model lives on.

    Parameters
    ----------
    t : torch.Tensor

    Returns
    -------
    torch.Tensor
        float64, on the CPU, detached.
    """
    return t.detach().to(device="cpu", dtype=torch.float64)


@torch.no_grad()
def call_order(model: nn.Module, inputs) -> list[str]:
    """Names of the leaf modules in the order one forward pass calls them (one sample).

    Parameters
    ----------
    model : torch.nn.Module
    inputs : torch.Tensor or iterable
        Only the first sample is run.

    Returns
    -------
    list of str
    """
    order: list[str] = []
    handles = [m.register_forward_hook(lambda mod, a, o, n=name: order.append(n))
               for name, m in model.named_modules() if not list(m.children())]
    was_training = model.training
    model.eval()
    try:
        x = next(iter(_batches(inputs)))
        _forward(model, x[:1].to(model_device(model)))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return order
