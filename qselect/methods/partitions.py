"""Anti-random and N-way partition masks for Prune and Tune children.

An anti-random pair is a random 50% mask and its complement: every weight the
parent keeps lives in exactly one sibling.  The N-way generalisation shuffles
each layer's kept weights once and deals them into N equal piles (sampling 1/N
without replacement per child), so the N children's masks are pairwise
disjoint and their sum is exactly the parent's mask.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import torch
from torch import nn

from qselect.errors import QSelectError

from ._common import current_mask, make_generator

Masks = dict[str, torch.Tensor]


def partition_masks(
    model: nn.Module,
    parts: int,
    *,
    seed: int = 0,
    layers: Iterable[str] | None = None,
    base_masks: Mapping[str, torch.Tensor] | None = None,
) -> list[Masks]:
    """Split the parent's kept weights into ``parts`` disjoint masks that cover it.

    ``layers`` are parameter names (default: ``prunable_parameters(model)``).
    ``base_masks`` is the parent's own mask (default: the mask already applied
    to ``model``, or all ones); only weights it keeps are dealt out.  Layer by
    layer, a seeded permutation of the kept positions is cut into ``parts``
    near-equal chunks (sizes differ by at most one; the extra weights go to a
    different child in each layer so no child is systematically larger).

    Parameters
    ----------
    model : torch.nn.Module
    parts : int
    seed : int
    layers : iterable of str or None
    base_masks : dict of str -> torch.Tensor or None

    Returns
    -------
    list of dict
        ``parts`` disjoint masks whose union is the parent's mask.

    References
    ----------
    T. Whitaker, D. Whitley, "Prune and Tune Ensembles", AAAI 2022.
    """
    if int(parts) != parts or parts < 2:
        raise QSelectError(f"parts must be an integer >= 2, got {parts!r}; use parts=2 for anti-random pairs")
    parts = int(parts)
    names = _layer_names(model, layers)
    gen = make_generator(seed)
    out: list[Masks] = [{} for _ in range(parts)]
    for li, name in enumerate(names):
        base = _base(model, name, base_masks)
        flat = base.reshape(-1)
        kept = torch.nonzero(flat > 0.5, as_tuple=False).reshape(-1)
        if kept.numel() < parts:
            raise QSelectError(
                f"layer {name!r} keeps only {kept.numel()} weights, fewer than parts={parts}; "
                "use fewer parts or leave that layer out with layers=[...]"
            )
        order = kept[torch.randperm(kept.numel(), generator=gen)]
        chunks = torch.tensor_split(order, parts)
        shift = li % parts  # rotate which child gets the larger chunks
        for c in range(parts):
            m = torch.zeros_like(flat)
            m[chunks[(c + shift) % parts]] = 1.0
            out[c][name] = m.reshape(base.shape)
    return out


def anti_random_pair(model: nn.Module, *, seed: int = 0, layers=None, base_masks=None) -> tuple[Masks, Masks]:
    """A random 50% mask of the parent's kept weights and its exact complement.

    Parameters
    ----------
    model : torch.nn.Module
    seed : int
    layers : iterable of str or None
    base_masks : dict or None

    Returns
    -------
    (dict, dict)
    """
    a, b = partition_masks(model, 2, seed=seed, layers=layers, base_masks=base_masks)
    return a, b


def partition_children(
    model: nn.Module, children: int, parts: int = 2, *, seed: int = 0, layers=None, base_masks=None
) -> list[Masks]:
    """Masks for ``children`` siblings drawn from successive ``parts``-way partitions.

    Children ``g*parts .. g*parts+parts-1`` form group ``g`` (partition seeded
    ``seed + g``); a last incomplete group takes the first members of its
    partition.  With ``parts=2`` this is the paper's anti-random pairing.

    Parameters
    ----------
    model : torch.nn.Module
    children : int
    parts : int
    seed : int
    layers : iterable of str or None
    base_masks : dict or None

    Returns
    -------
    list of dict
    """
    if children < 1:
        raise QSelectError(f"children must be >= 1, got {children}")
    masks: list[Masks] = []
    group = 0
    while len(masks) < children:
        masks.extend(partition_masks(model, parts, seed=seed + group, layers=layers, base_masks=base_masks))
        group += 1
    return masks[:children]


def check_partition(parent_masks: Mapping[str, torch.Tensor], children: list[Mapping[str, torch.Tensor]]) -> dict:
    """How far ``children`` are from an exact disjoint cover of ``parent_masks``.

    Returns ``{"overlap": weights kept by >1 child, "uncovered": parent weights
    kept by no child, "outside": child weights the parent does not keep}``; all
    zero for an exact partition.

    Parameters
    ----------
    parent_masks : dict of str -> torch.Tensor
    children : list of dict of str -> torch.Tensor

    Returns
    -------
    dict of str -> int
    """
    overlap = uncovered = outside = 0
    for name, base in parent_masks.items():
        total = sum(c[name].float() for c in children)
        b = base.float() > 0.5
        overlap += int((total > 1.5).sum())
        uncovered += int((b & (total < 0.5)).sum())
        outside += int((~b & (total > 0.5)).sum())
    return {"overlap": overlap, "uncovered": uncovered, "outside": outside}


def _layer_names(model: nn.Module, layers) -> list[str]:
    if layers is not None:
        names = list(layers)
    else:
        from qselect.classical.masks import prunable_parameters

        names = list(prunable_parameters(model))
    if not names:
        raise QSelectError("the model has no prunable Linear/Conv2d weights; pass layers=[parameter names]")
    return names


def _base(model: nn.Module, name: str, base_masks) -> torch.Tensor:
    if base_masks is not None and name in base_masks:
        return base_masks[name].detach().float().cpu()
    return current_mask(model, name).cpu()
