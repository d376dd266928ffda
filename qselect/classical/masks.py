"""Masks: ``dict[str, torch.Tensor]`` keyed by parameter name, applied with torch pruning.

A mask for ``"layers.0.weight"`` is a float 0/1 tensor of that parameter's
shape. Masks are applied with ``torch.nn.utils.prune.custom_from_mask`` so
they compose with PyTorch's own pruning (a second mask on the same tensor is
multiplied in) and stay fixed while training: the optimiser only sees
``weight_orig``; the ``weight_mask`` buffer never changes and the forward
pre-hook recomputes ``weight = weight_orig * weight_mask`` on every call.
Parameter names are always the *unpruned* names (``weight``, not
``weight_orig``), so masks taken from a pruned model load into a fresh one.

Between forward passes the pruned attribute (``module.weight``) holds a
graph-free copy of ``weight_orig * weight_mask``: torch leaves the product of
the last forward pass there, a non-leaf tensor that ``copy.deepcopy`` refuses,
so a pruned model could not be copied once it had run with gradients.

Tied weights (one ``Parameter`` shared by several layers) are one tensor: they
get one mask, stored under the first name in module order; applying it prunes
every layer that shares the tensor, and ``remove_masks`` multiplies the shared
tensor once.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Mapping

import torch
from torch import nn
from torch.nn.utils import prune

from ..errors import QSelectError
from ..io import atomic_write_bytes

Masks = dict[str, torch.Tensor]

PRUNABLE_TYPES = (nn.Linear, nn.Conv2d)
_FORMAT = "qselect-masks"


def prunable_parameters(model: nn.Module) -> list[str]:
    """Weight names (``"<module>.weight"``) of every Linear/Conv2d layer, in module order.

    A weight tied to an earlier layer's (the same ``Parameter``) is listed once,
    under the earlier name (see :func:`tied_parameters`).

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    list of str
    """
    tied = tied_parameters(model)
    names = [f"{name}.weight" if name else "weight"
             for name, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]
    return [n for n in names if n not in tied]


def tied_parameters(model: nn.Module) -> dict[str, str]:
    """``{alias: first name}`` for every parameter that is the same tensor as an earlier one.

    Names are unpruned names in module order; untied parameters do not appear.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    dict of str -> str
    """
    first: dict[int, str] = {}
    out: dict[str, str] = {}
    for mname, module in model.named_modules():
        for pname, p in module._parameters.items():
            if p is None:
                continue
            if pname.endswith("_orig") and _is_pruned(module, pname[:-5]):
                pname = pname[:-5]
            key = f"{mname}.{pname}" if mname else pname
            if id(p) in first:
                out[key] = first[id(p)]
            else:
                first[id(p)] = key
    return out


def _merge_tied(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> tuple[Masks, dict[str, list[str]]]:
    """Masks keyed by first names, and the names that share each tied tensor.

    Masks keyed by first names, and {first name: [every name sharing it]}; refuses two different masks for one shared
    tensor.
    """
    tied = tied_parameters(model)
    groups: dict[str, list[str]] = {}
    for alias, first in tied.items():
        groups.setdefault(first, [first]).append(alias)
    out: Masks = {}
    given: dict[str, str] = {}
    for name, m in masks.items():
        key = tied.get(name, name)
        m = torch.as_tensor(m)
        if key in out and not torch.equal(out[key].to(m.dtype), m):
            raise QSelectError(f"masks {given[key]!r} and {name!r} differ but both layers share one weight "
                               f"tensor; give one mask (under {key!r})")
        out[key], given[key] = m, name
    return out, groups


def _split(name: str) -> tuple[str, str]:
    mod, _, pname = name.rpartition(".")
    return mod, pname


def _is_pruned(module: nn.Module, pname: str) -> bool:
    return hasattr(module, pname + "_mask") and (pname + "_orig") in module._parameters


def parameter_shapes(model: nn.Module) -> dict[str, torch.Size]:
    """Every parameter's shape by its unpruned name (``x.weight_orig`` reported as ``x.weight``).

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    dict of str -> torch.Size
    """
    out: dict[str, torch.Size] = {}
    for mname, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            if pname.endswith("_orig") and _is_pruned(module, pname[:-5]):
                pname = pname[:-5]
            out[f"{mname}.{pname}" if mname else pname] = p.shape
    return out


def _check_binary(name: str, m: torch.Tensor) -> None:
    if m.numel() and not bool(((m == 0) | (m == 1)).all()):
        raise QSelectError(f"mask {name!r} holds values other than 0 and 1; "
                           "masks must be binary (use (scores > t).float())")


def validate_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Raise ``QSelectError`` unless every mask names a parameter of ``model`` with its shape and holds 0/1.

    Parameters
    ----------
    model : torch.nn.Module
    masks : dict of str -> torch.Tensor
        Parameter name (``"layers.0.weight"``) -> 0/1 tensor of the parameter's shape.

    Raises
    ------
    QSelectError
        Naming the first bad mask.
    """
    if not isinstance(masks, Mapping):
        raise QSelectError(f"masks must be a dict name -> 0/1 tensor, got {type(masks).__name__}; "
                           "use get_masks(model) or load_masks(path) to obtain one")
    shapes = parameter_shapes(model)
    for name, m in masks.items():
        if name not in shapes:
            sample = ", ".join(list(shapes)[:6])
            raise QSelectError(f"mask {name!r} names no parameter of {type(model).__name__} "
                               f"(parameters include {sample}, ...); masks must be keyed by "
                               "model.named_parameters() names of the same architecture")
        m = torch.as_tensor(m)
        if tuple(m.shape) != tuple(shapes[name]):
            raise QSelectError(f"mask {name!r} has shape {tuple(m.shape)} but the parameter has "
                               f"shape {tuple(shapes[name])}; the masks were made for a different "
                               "model size")
        _check_binary(name, m)


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor] | object, *,
                strict: bool = True) -> nn.Module:
    """Prune ``model`` in place with ``masks`` (via ``prune.custom_from_mask``); returns it.

    ``masks`` may also be an object with a ``.masks`` dict (such as the ``Selection`` that
    ``qselect.formulate.select_masks`` returns).
    A parameter already pruned gets the product of its old and new mask
    (torch's PruningContainer). ``strict=False`` skips names the model lacks.

    Parameters
    ----------
    model : torch.nn.Module
    masks : dict of str -> torch.Tensor, or an object with ``.masks``
        Parameter name -> 0/1 tensor of the parameter's shape.
    strict : bool
        Refuse names that are not parameters of the model.

    Returns
    -------
    torch.nn.Module
        ``model`` itself.

    Raises
    ------
    QSelectError
        If a mask names no parameter, has the wrong shape or holds values other than 0/1.
    """
    masks = masks_from_selection(masks)
    if not strict:
        shapes = parameter_shapes(model)
        masks = {k: v for k, v in masks.items() if k in shapes}
    validate_masks(model, masks)
    masks, groups = _merge_tied(model, masks)
    for key, m in masks.items():
        for name in groups.get(key, [key]):
            mname, pname = _split(name)
            module = model.get_submodule(mname)
            ref = getattr(module, pname + "_orig") if _is_pruned(module, pname) else getattr(module, pname)
            prune.custom_from_mask(module, pname, mask=torch.as_tensor(m).detach().to(ref.device, ref.dtype))
            if not any(h is _graph_free_views for h in module._forward_hooks.values()):
                module.register_forward_hook(_graph_free_views)
            _graph_free_views(module)
    return model


def _graph_free_views(module: nn.Module, *_args) -> None:
    """Replace each pruned attribute by ``orig * mask`` computed without autograd.

    Runs after every forward pass (the pass itself used torch's differentiable
    product, so gradients reach ``weight_orig`` as before) and keeps the module
    deep-copyable.
    """
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, prune.BasePruningMethod):
            with torch.no_grad():
                setattr(module, hook._tensor_name, hook.apply_mask(module))


def get_masks(model: nn.Module, *, include_dense: bool = False) -> Masks:
    """Current masks of ``model`` (copies, float32 on CPU).

    Only pruned parameters appear, unless ``include_dense`` adds an all-ones
    mask for every unpruned prunable weight (handy for sparsity accounting).
    A tied weight appears once, under its first name.

    Parameters
    ----------
    model : torch.nn.Module
    include_dense : bool

    Returns
    -------
    dict of str -> torch.Tensor
    """
    out: Masks = {}
    tied = tied_parameters(model)
    for mname, module in model.named_modules():
        for bname, buf in module.named_buffers(recurse=False):
            if bname.endswith("_mask") and _is_pruned(module, bname[:-5]):
                key = f"{mname}.{bname[:-5]}" if mname else bname[:-5]
                if key in tied:
                    continue
                out[key] = buf.detach().to("cpu", torch.float32).clone()
    if include_dense:
        shapes = parameter_shapes(model)
        for name in prunable_parameters(model):
            if name not in out:
                out[name] = torch.ones(shapes[name])
    return out


def remove_masks(model: nn.Module, *, make_permanent: bool = True) -> nn.Module:
    """Drop the pruning re-parametrisation from every parameter.

    ``make_permanent=True`` is ``prune.remove`` (masked weights stay zero in a
    plain parameter); ``False`` restores the unmasked ``weight_orig`` values.
    The original ``Parameter`` object is kept (zeroed in place), so optimisers
    and tied layers still hold it; a tensor shared by several layers is
    multiplied by its mask once.

    Parameters
    ----------
    model : torch.nn.Module
    make_permanent : bool

    Returns
    -------
    torch.nn.Module
        ``model`` itself.
    """
    masked: set[int] = set()
    for module in model.modules():
        for key, hook in list(module._forward_pre_hooks.items()):
            if not isinstance(hook, prune.BasePruningMethod):
                continue
            pname = hook._tensor_name
            orig = module._parameters.pop(pname + "_orig")
            mask = module._buffers.pop(pname + "_mask")
            if make_permanent and id(orig) not in masked:
                with torch.no_grad():
                    orig.mul_(mask.to(orig.dtype))
            masked.add(id(orig))
            if pname in module.__dict__:
                delattr(module, pname)
            module.register_parameter(pname, orig)
            del module._forward_pre_hooks[key]
        for key, hook in list(module._forward_hooks.items()):
            if hook is _graph_free_views:
                del module._forward_hooks[key]
    return model


def mask_sparsity(model_or_masks: nn.Module | Mapping[str, torch.Tensor]) -> dict:
    """Fraction of zeros, per masked tensor and overall.

    For a model: over all prunable weights (unpruned ones count as dense) plus any
    other pruned parameter. Returns ``{"overall", "layers": {name: sparsity},
    "kept", "total"}`` (kept/total count entries).

    Parameters
    ----------
    model_or_masks : torch.nn.Module or dict of str -> torch.Tensor

    Returns
    -------
    dict
    """
    if isinstance(model_or_masks, nn.Module):
        masks = get_masks(model_or_masks, include_dense=True)
    else:
        masks = masks_from_selection(model_or_masks)
    layers, kept, total = {}, 0, 0
    for name, m in masks.items():
        m = torch.as_tensor(m)
        n, k = m.numel(), int((m != 0).sum())
        layers[name] = 1.0 - k / n if n else 0.0
        kept += k
        total += n
    return {"overall": 1.0 - kept / total if total else 0.0, "layers": layers,
            "kept": kept, "total": total}


def save_masks(path, masks: Mapping[str, torch.Tensor], meta: dict | None = None) -> Path:
    """Write masks (with their names and shapes) atomically; loadable with ``load_masks``.

    Parameters
    ----------
    path : str or os.PathLike
    masks : dict of str -> torch.Tensor
        Parameter name (``"layers.0.weight"``) -> 0/1 tensor of the parameter's shape.
    meta : dict or None

    Returns
    -------
    pathlib.Path
    """
    masks = masks_from_selection(masks)
    for name, m in masks.items():  # stored as bool: anything but 0/1 would silently become 1
        _check_binary(name, m)
    if Path(path).is_dir():
        raise QSelectError(f"mask path {path} is a directory; give a file name such as {Path(path) / 'masks.pt'}")
    payload = {"format": _FORMAT, "version": 1,
               "masks": {k: torch.as_tensor(v).detach().cpu().bool() for k, v in masks.items()},
               "meta": dict(meta or {})}
    # through memory: torch.save to a path records that (temporary) file's name in the
    # archive, which would make identical runs write different bytes
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_masks(path, model: nn.Module | None = None) -> Masks:
    """Read masks written by ``save_masks``; with ``model``, check names and shapes against it.

    Parameters
    ----------
    path : str or os.PathLike
    model : torch.nn.Module or None
        Checked against when given.

    Returns
    -------
    dict of str -> torch.Tensor

    Raises
    ------
    QSelectError
        If the file is missing, corrupt, or does not fit ``model``.
    """
    path = Path(path)
    if not path.is_file():
        raise QSelectError(f"mask file {path} does not exist; write one with save_masks(path, masks) "
                           "or take the masks.pt a 'qselect select' run wrote into its run directory")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a truncated/garbled file
        raise QSelectError(f"mask file {path} is unreadable ({type(exc).__name__}); expected a "
                           "qselect masks file written by save_masks — re-create it") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise QSelectError(f"{path} is not a qselect masks file (missing format tag "
                           f"{_FORMAT!r}); expected a file written by save_masks")
    raw = payload.get("masks")
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                            for k, v in raw.items()):
        raise QSelectError(f"{path} has no masks dict (parameter name -> 0/1 tensor); expected a file "
                           "written by save_masks — re-create it")
    masks = {k: v.float() for k, v in raw.items()}
    if model is not None:
        validate_masks(model, masks)
    return masks


def masks_from_selection(selection) -> Masks:
    """Masks from a ``Selection`` (its ``.masks``), or a masks dict passed through.

    Values become float 0/1 tensors. Duck-typed so ``qselect.formulate`` is not
    imported here.

    Parameters
    ----------
    selection : Selection or dict of str -> tensor

    Returns
    -------
    dict of str -> torch.Tensor
    """
    masks = getattr(selection, "masks", selection)
    if not isinstance(masks, Mapping):
        raise QSelectError(f"expected a masks dict or an object with .masks, got "
                           f"{type(selection).__name__}")
    return {k: torch.as_tensor(v).detach().float() for k, v in masks.items()}


def neuron_masks(model: nn.Module, layer: str, keep: Iterable[int] | torch.Tensor, *,
                 bias: bool = True) -> Masks:
    """Neuron-level selection -> weight masks: keep output units ``keep`` of ``layer``.

    ``keep`` is a list of unit indices or a 0/1 tensor/array over the layer's outputs
    (rows of a Linear weight, output channels of a Conv2d). The unit's whole
    incoming row (and its bias, when ``bias``) is masked.

    Parameters
    ----------
    model : torch.nn.Module
    layer : str
        Module name of a Linear or Conv2d.
    keep : iterable of int, or 0/1 tensor of shape (out_features,)
    bias : bool
        Also mask the bias of removed units.

    Returns
    -------
    dict of str -> torch.Tensor

    Raises
    ------
    QSelectError
        If the layer is not a Linear/Conv2d or ``keep`` is out of range.
    """
    try:
        module = model.get_submodule(layer)
    except AttributeError:
        raise QSelectError(f"model has no layer {layer!r}; pick one of "
                           f"{[n.rsplit('.', 1)[0] for n in prunable_parameters(model)]}") from None
    if not isinstance(module, PRUNABLE_TYPES):
        raise QSelectError(f"layer {layer!r} is a {type(module).__name__}; neuron masks need "
                           "a Linear or Conv2d layer")
    shape = parameter_shapes(model)[f"{layer}.weight"]
    n_out = shape[0]
    bad_keep = QSelectError(f"neuron selection for {layer!r} must be a list of unit indices or a 0/1 vector "
                            f"over its {n_out} units, got {keep!r:.80}")
    if isinstance(keep, (list, tuple, range, set)):
        try:
            idx = torch.as_tensor(sorted(keep), dtype=torch.long).reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            raise bad_keep from None
        if idx.numel() and (idx.min() < 0 or idx.max() >= n_out):
            raise QSelectError(f"neuron index out of range for {layer!r} with {n_out} units")
        unit = torch.zeros(n_out)
        unit[idx] = 1.0
    else:  # a 0/1 vector (tensor or array) over the units
        try:
            unit = torch.as_tensor(keep).float().reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            raise bad_keep from None
        if unit.numel() != n_out or not bool(((unit == 0) | (unit == 1)).all()):
            raise QSelectError(f"neuron mask for {layer!r} must be a 0/1 vector over its {n_out} units "
                               f"(got {unit.numel()} entries) or a list of unit indices")
    view = (n_out,) + (1,) * (len(shape) - 1)
    out = {f"{layer}.weight": unit.reshape(view).expand(shape).clone()}
    if bias and getattr(module, "bias", None) is not None:
        out[f"{layer}.bias"] = unit.clone()
    return out
