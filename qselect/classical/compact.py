"""Compacted models: a physically smaller copy in which fully masked units are gone.

``compact(model, masks)`` folds the masks into a copy of ``model`` and then
removes every output unit / channel / attention head that the masks switched
off *as a whole*, slicing the layer's weight and bias, the BatchNorm that
follows it and the input channels of the layer that reads it. The copy
computes the same function as the masked model (in eval mode) with fewer
parameters and less compute; partially masked weights stay as zeros.

The channel surgery is Torch-Pruning's (Fang et al., "DepGraph: Towards Any
Structural Pruning", CVPR 2023): its dependency graph finds the coupled
BatchNorm and reader and keeps every index consistent (flattened conv maps
included). A unit counts as switched off when the following BatchNorm's γ and
β are both zero for that channel, or, without a BatchNorm, when its weight row
and bias are zero, *and* the reading layer's input for that channel is exactly
zero on the example input (so an activation with f(0) ≠ 0 keeps it).

Not removed (left masked, still exact):

- channels tied to a residual sum or to other layers' outputs (a ResNet
  BasicBlock's ``conv2``, shortcut convs, the stem): removing them means
  removing the channel from the whole residual stream, which the masks of
  one layer do not express;
- units read through a LayerNorm-like normalisation or tied to free
  parameters (class token, position embedding).

Attention heads are not something Torch-Pruning's graph can follow through a
fused ``qkv`` projection reshaped into heads (it sees channels, not heads), so
heads are sliced here directly: a head whose value rows (weights and bias) of
``qkv`` are all zero contributes exactly zero to ``proj``; its q/k/v rows and
``proj``'s input columns are removed and the module's ``heads`` decremented
(modules with attributes ``qkv``, ``proj`` (Linear), ``heads`` and
``head_dim``, such as :class:`qselect.classical.models.Attention`).

References
----------
Fang, G., Ma, X., Song, M., Mi, M. B., Wang, X. "DepGraph: Towards Any
Structural Pruning." CVPR 2023.
"""
from __future__ import annotations

import copy
import math
import warnings
from typing import Mapping

import torch
from torch import nn

from ..devices import model_device
from ..errors import QSelectError
from .masks import apply_masks, masks_from_selection, remove_masks

_MIXING = (nn.LayerNorm, nn.GroupNorm)


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters of ``model``.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    int
    """
    return int(sum(p.numel() for p in model.parameters()))


def example_input(model: nn.Module, example_inputs=None) -> torch.Tensor:
    """One input sample for tracing: ``example_inputs[:1]``, else from the model's own input shape.

    Parameters
    ----------
    model : torch.nn.Module
    example_inputs : torch.Tensor or None

    Returns
    -------
    torch.Tensor, shape (1, ...)
    """
    if example_inputs is not None:
        x = example_inputs[0] if isinstance(example_inputs, (list, tuple)) else example_inputs
        if not isinstance(x, torch.Tensor) or x.ndim == 0 or x.shape[0] == 0:
            raise QSelectError("example_inputs must be a non-empty tensor batch shaped like the model's inputs")
        return x[:1].to(model_device(model))
    shape = getattr(model, "_in_shape", None)
    if shape is None:
        first = next((m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))), None)
        if isinstance(first, nn.Linear):
            shape = (first.in_features,)
    if shape is None:
        raise QSelectError(f"cannot tell the input shape of a {type(model).__name__}; pass example_inputs=")
    return torch.zeros(1, *shape, device=model_device(model))


def _attention_parts(m: nn.Module):
    qkv, proj, heads = getattr(m, "qkv", None), getattr(m, "proj", None), getattr(m, "heads", None)
    if (isinstance(qkv, nn.Linear) and isinstance(proj, nn.Linear) and isinstance(heads, int)
            and hasattr(m, "head_dim") and qkv.out_features == 3 * heads * m.head_dim
            and proj.in_features == heads * m.head_dim):
        return qkv, proj, heads, int(m.head_dim)
    return None


@torch.no_grad()
def _drop_heads(model: nn.Module) -> int:
    """Remove attention heads whose value projection is all zero; returns how many."""
    removed = 0
    for m in model.modules():
        parts = _attention_parts(m)
        if parts is None:
            continue
        qkv, proj, heads, hd = parts
        inner = heads * hd
        v = qkv.weight[2 * inner:].reshape(heads, hd, -1)
        dead = (v == 0).flatten(1).all(dim=1)
        if qkv.bias is not None:
            dead &= (qkv.bias[2 * inner:].reshape(heads, hd) == 0).all(dim=1)
        if not bool(dead.any()) or bool(dead.all()):
            continue  # nothing to drop, or keep one head so the module still runs
        keep = torch.nonzero(~dead).flatten()
        cols = (keep[:, None] * hd + torch.arange(hd, device=keep.device)).flatten()
        rows = torch.cat([cols + s * inner for s in range(3)])
        qkv.weight = nn.Parameter(qkv.weight[rows].clone())
        if qkv.bias is not None:
            qkv.bias = nn.Parameter(qkv.bias[rows].clone())
        qkv.out_features = rows.numel()
        proj.weight = nn.Parameter(proj.weight[:, cols].clone())
        proj.in_features = cols.numel()
        m.heads = int(keep.numel())
        removed += int(dead.sum())
    return removed


def _reader_inputs(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    store: dict[str, torch.Tensor] = {}
    mods = dict(model.named_modules())
    def hook(name):
        def fn(mod, args, out):
            store.setdefault(name, args[0].detach())  # returns None: the output is left alone
        return fn

    hs = [mods[n].register_forward_hook(hook(n)) for n in names]
    try:
        model(x)
    finally:
        for h in hs:
            h.remove()
    return store


@torch.no_grad()
def compact(model: nn.Module, masks: Mapping[str, torch.Tensor] | object | None = None, *,
            example_inputs=None, check: bool = True) -> nn.Module:
    """A smaller copy of ``model`` with every fully masked unit, channel or head removed.

    Parameters
    ----------
    model : nn.Module
        The network (left untouched; masks already applied to it with
        ``torch.nn.utils.prune`` are folded in too).
    masks : dict name -> 0/1 tensor, or a Selection, optional
        Masks keyed by parameter name (``"layer2.1.conv1.weight"``,
        ``"layer2.1.bn1.weight"``, ...); None uses only the model's own.
    example_inputs : torch.Tensor, optional
        A batch shaped like the model's inputs (one sample is used to trace
        the dependency graph). Default: zeros of the model's ``_in_shape``.
    check : bool
        Compare the compacted and masked models on the example input and
        raise if they differ (relative 1e-5).

    Returns
    -------
    nn.Module
        A plain module (no pruning hooks), same training/eval flag as ``model``,
        with attribute ``compact_info`` = ``{"removed": {layer: units}, "heads":
        removed heads, "skipped": {layer: reason}, "parameters": (before, after)}``.

    Raises
    ------
    QSelectError
        Bad masks, an untraceable model, or (``check``) a compacted model that
        does not match the masked one.

    References
    ----------
    Fang et al., "DepGraph: Towards Any Structural Pruning", CVPR 2023 (Torch-Pruning).
    """
    import torch_pruning as tp  # third-party, only needed here

    was_training = model.training
    m = copy.deepcopy(model)
    remove_masks(m, make_permanent=True)
    if masks is not None:
        masks = masks_from_selection(masks)
        apply_masks(m, masks)
        remove_masks(m, make_permanent=True)
    m.eval()
    x = example_input(m, example_inputs)
    before = count_parameters(m)
    reference = m(x).detach().clone()
    heads = _drop_heads(m)
    names = {mod: n for n, mod in m.named_modules()}
    attn_skip = set()
    for mod in m.modules():
        parts = _attention_parts(mod)
        if parts is not None:
            attn_skip.add(parts[0])  # qkv channels are heads, handled above
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.enable_grad():  # Torch-Pruning traces through autograd
                DG = tp.DependencyGraph().build_dependency(m, example_inputs=x)
        except Exception as exc:  # noqa: BLE001 - report any tracing failure in one line
            raise QSelectError(f"cannot trace {type(model).__name__} to compact it ({type(exc).__name__}: "
                               f"{exc}); pass example_inputs shaped like its inputs") from None
    removed: dict[str, int] = {}
    skipped: dict[str, str] = {}
    layers = [(n, mod) for n, mod in m.named_modules()
              if isinstance(mod, (nn.Linear, nn.Conv2d)) and mod not in attn_skip]
    for name, layer in layers:
        fn = tp.prune_conv_out_channels if isinstance(layer, nn.Conv2d) else tp.prune_linear_out_channels
        units = layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features
        if isinstance(layer, nn.Conv2d) and layer.groups != 1:
            continue
        group = DG.get_pruning_group(layer, fn, idxs=[0])
        readers, norms, blocked = [], [], None
        for dep, _ in group:
            t = dep.target.module
            if t is layer:
                continue
            if isinstance(t, (nn.Linear, nn.Conv2d)):
                if getattr(dep.handler, "__name__", "") == "prune_in_channels":
                    readers.append(t)
                else:
                    blocked = blocked or f"its channels are summed with {names.get(t)!r}'s (residual connection)"
            elif isinstance(t, nn.modules.batchnorm._BatchNorm):
                norms.append(t)
            elif isinstance(t, _MIXING):
                blocked = blocked or f"its units pass through {names.get(t)!r} (a {type(t).__name__})"
            elif isinstance(t, nn.Parameter):
                blocked = blocked or "its units are tied to a free parameter (class token / embedding)"
        dead = _dead_units(layer, norms)
        if not dead:
            continue
        if blocked:
            skipped[name] = blocked
            continue
        if not readers:
            skipped[name] = "no layer reads its units (the network's output)"
            continue
        # the reader must see exactly zero for those channels (f(0) = 0 after the activation)
        ins = _reader_inputs(m, x, [names[r] for r in readers])
        ok = []
        for c in dead:
            zero = True
            for r in readers:
                a = ins[names[r]]
                if isinstance(r, nn.Conv2d) and a.shape[1] == units:
                    zero &= bool((a[:, c] == 0).all())
                elif isinstance(r, nn.Linear) and a.shape[-1] == units:
                    zero &= bool((a[..., c] == 0).all())
            if zero:
                ok.append(c)
        if len(ok) >= units:
            ok = ok[1:]  # keep one unit so every layer still has an output
        if not ok:
            skipped[name] = "its switched-off units do not reach the next layer as zero"
            continue
        g = DG.get_pruning_group(layer, fn, idxs=ok)
        if not DG.check_pruning_group(g):
            skipped[name] = "Torch-Pruning refuses this group"
            continue
        g.prune()
        removed[name] = len(ok)
    m.train(was_training)
    after = count_parameters(m)
    m.compact_info = {"removed": removed, "heads": heads, "skipped": skipped, "parameters": (before, after)}
    if check:
        m.eval()
        out = m(x)
        m.train(was_training)
        scale = max(float(reference.abs().max()), 1e-12)
        err = float((out - reference).abs().max())
        if out.shape != reference.shape or not math.isfinite(err) or err > 1e-5 * scale:
            raise QSelectError(f"the compacted {type(model).__name__} differs from the masked one by "
                               f"{err:.3g} (relative to {scale:.3g}); compact with check=False to inspect it")
    return m


def _dead_units(layer: nn.Module, norms: list[nn.Module]) -> list[int]:
    """Output units whose value after the layer (and its BatchNorm, if any) is zero for every input."""
    if norms:
        bn = norms[0]
        if bn.weight is None or bn.bias is None:
            return []
        dead = (bn.weight == 0) & (bn.bias == 0)
    else:
        dead = (layer.weight.flatten(1) == 0).all(dim=1)
        if layer.bias is not None:
            dead &= layer.bias == 0
    return [int(i) for i in torch.nonzero(dead).flatten()]
