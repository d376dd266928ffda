"""Dense-equivalent parameter and FLOP counts, and what is left of them after masking.

FLOPs are counted for Linear and Conv2d layers only (they dominate every model
here; attention's matmuls, norms and activations are left out), measured with
forward hooks on a sample input so every spatial size is the real one. One
multiply-add is 2 FLOPs; a bias add is 1 FLOP per output. A masked layer's
FLOPs scale with the density of its weight mask (what sparse kernels could save).
"""
from __future__ import annotations

import torch
from torch import nn

from .masks import PRUNABLE_TYPES, get_masks, masks_from_selection, parameter_shapes, tied_parameters


def _density(masks, name: str) -> float:
    m = masks.get(name)
    return 1.0 if m is None else float((torch.as_tensor(m) != 0).float().mean())


def count_parameters(model: nn.Module, masks=None) -> dict:
    """``{"dense", "effective", "density"}``: all parameters, and those the masks keep.

    ``masks`` defaults to the model's own (``get_masks``); pass masks to count a
    selection before applying it.

    Parameters
    ----------
    model : torch.nn.Module
    masks : dict of str -> torch.Tensor or None

    Returns
    -------
    dict
        ``dense`` and ``effective`` counts (int) and ``density`` (float).
    """
    masks = get_masks(model) if masks is None else masks_from_selection(masks)
    tied = tied_parameters(model)  # a tensor shared by several layers counts once
    shapes = {k: s for k, s in parameter_shapes(model).items() if k not in tied}
    dense = sum(int(torch.Size(s).numel()) for s in shapes.values())
    once = {}
    for k, m in masks.items():
        once.setdefault(tied.get(k, k), m)
    removed = sum(int((torch.as_tensor(m) == 0).sum()) for k, m in once.items() if k in shapes)
    eff = dense - removed
    return {"dense": dense, "effective": eff, "density": eff / dense if dense else 1.0}


@torch.no_grad()
def count_flops(model: nn.Module, sample_input: torch.Tensor, masks=None) -> dict:
    """FLOPs per sample of Linear/Conv2d layers: ``{"dense", "effective", "layers"}``.

    ``layers`` maps module name -> ``{"dense", "effective", "density"}``. Runs one
    forward pass on ``sample_input`` (any batch size; counts are divided by it).

    Parameters
    ----------
    model : torch.nn.Module
    sample_input : torch.Tensor
        A batch of inputs of any size.
    masks : dict of str -> torch.Tensor or None

    Returns
    -------
    dict
        FLOPs per sample (a multiply-add counts 2).
    """
    masks = get_masks(model) if masks is None else masks_from_selection(masks)
    batch = sample_input.shape[0] if sample_input.ndim > 0 else 1
    tied = tied_parameters(model)
    layers: dict[str, dict] = {}

    def hook(name):
        def fn(m, _inp, out):
            if isinstance(m, nn.Linear):
                outputs = out.numel() / batch             # per sample, over tokens too
                macs = outputs * m.in_features
            else:                                         # Conv2d
                outputs = out.numel() / batch
                kh, kw = m.kernel_size
                macs = outputs * (m.in_channels // m.groups) * kh * kw
            w_flops = 2.0 * macs
            b_flops = float(outputs) if m.bias is not None else 0.0
            d = _density(masks, tied.get(f"{name}.weight", f"{name}.weight"))  # a tied layer uses the shared mask
            db = _density(masks, tied.get(f"{name}.bias", f"{name}.bias"))
            prev = layers.get(name, {"dense": 0.0, "effective": 0.0})
            layers[name] = {"dense": prev["dense"] + w_flops + b_flops,
                            "effective": prev["effective"] + w_flops * d + b_flops * db,
                            "density": d}
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if isinstance(m, PRUNABLE_TYPES)]
    was_training = model.training
    model.eval()
    try:
        from .train import call_or_explain, model_device

        x = sample_input.to(model_device(model))
        # the same explainer as training: shape errors -> one line, CUDA out-of-memory unchanged
        call_or_explain(lambda: model(x), lambda why: f"count_flops: {type(model).__name__} cannot run on a "
                        f"sample input of shape {tuple(sample_input.shape)} ({why}); pass a batch shaped "
                        "like the model's data")
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    dense = sum(v["dense"] for v in layers.values())
    eff = sum(v["effective"] for v in layers.values())
    return {"dense": dense, "effective": eff, "density": eff / dense if dense else 1.0,
            "layers": layers}
