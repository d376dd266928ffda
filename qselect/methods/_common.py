"""Small helpers shared by the seed methods (not public API).

Masks follow the toolkit contract: ``dict[str, Tensor]`` keyed by the names in
``model.named_parameters()`` of the *unpruned* model (``"layers.0.weight"``),
float 0/1 tensors of the parameter's shape.  A module pruned through
``torch.nn.utils.prune`` keeps ``weight_orig`` and a ``weight_mask`` buffer, so
we read the live mask from there.
"""
from __future__ import annotations

import torch
from torch import nn

from qselect.errors import QSelectError
from qselect.validation import check_fraction as _check_fraction


def split_name(name: str) -> tuple[str, str]:
    """``"layers.0.weight"`` -> (``"layers.0"``, ``"weight"``)."""
    module_name, _, attr = name.rpartition(".")
    return module_name, attr


def module_of(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    module_name, attr = split_name(name)
    try:
        module = model.get_submodule(module_name) if module_name else model
    except AttributeError as exc:
        raise QSelectError(
            f"mask key {name!r} names no module of this model; use names from model.named_parameters()"
        ) from exc
    return module, attr


def original_param(model: nn.Module, name: str) -> torch.Tensor:
    """The trainable tensor behind ``name`` (``weight_orig`` when pruned)."""
    module, attr = module_of(model, name)
    orig = getattr(module, attr + "_orig", None)
    if orig is not None:
        return orig
    value = getattr(module, attr, None)
    if not isinstance(value, torch.Tensor):
        raise QSelectError(f"{name!r} is not a tensor of this model; use names from model.named_parameters()")
    return value


def current_mask(model: nn.Module, name: str) -> torch.Tensor:
    """The mask torch.nn.utils.prune currently applies to ``name`` (ones if unpruned), float, detached."""
    module, attr = module_of(model, name)
    mask = getattr(module, attr + "_mask", None)
    if mask is None:
        return torch.ones_like(original_param(model, name), dtype=torch.float32).detach()
    return mask.detach().float().clone()


def effective_weight(model: nn.Module, name: str) -> torch.Tensor:
    w = original_param(model, name).detach()
    return w * current_mask(model, name).to(w.device)


def make_generator(seed: int, device="cpu") -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def check_fraction(value: float, what: str, *, low_open=False, high_open=False) -> float:
    return _check_fraction(value, what, low_open=low_open, high_open=high_open)
