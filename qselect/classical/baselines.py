"""Classical pruning baselines: model + target sparsity -> masks (the model is not changed).

Masks are computed with torch's own pruning methods (``L1Unstructured``,
``RandomUnstructured``) on the current *effective* weights, so a weight that is
already masked has magnitude 0 and stays pruned. ``scope="global"`` ranks all
chosen layers together, exactly as ``prune.global_unstructured`` does
(concatenate, prune the smallest, split back).
"""
from __future__ import annotations

import warnings
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils import prune

from ..errors import QSelectError
from ..validation import check_keeps_some, check_seed, check_sparsity
from .masks import Masks, prunable_parameters

SCOPES = ("layer", "global")


def _layers(model: nn.Module, layers: Sequence[str] | None) -> list[str]:
    names = prunable_parameters(model)
    if layers is None:
        return names
    try:
        layers = [layers] if isinstance(layers, str) else [str(n) for n in layers]
    except TypeError:
        raise QSelectError(f"layers must be a layer name or a list of names, got {layers!r}; "
                           f"choose from {names}") from None
    layers = [n if n.endswith((".weight", ".bias")) else f"{n}.weight" for n in layers]
    bad = [n for n in layers if n not in names]
    if bad:
        raise QSelectError(f"not prunable weights of this model: {bad}; choose from {names}")
    return layers


def _check(sparsity: float, scope: str) -> None:
    check_sparsity(sparsity)
    if scope not in SCOPES:
        raise QSelectError(f"scope {scope!r} unknown; choose 'layer' or 'global'")


def _weights(model: nn.Module, names: list[str]) -> list[torch.Tensor]:
    # getattr gives weight_orig * weight_mask when pruned (the hook keeps it current)
    out = []
    for n in names:
        mname, _, pname = n.rpartition(".")
        module = model.get_submodule(mname)
        w = getattr(module, pname)
        mask = getattr(module, pname + "_mask", None)
        if mask is not None:
            w = getattr(module, pname + "_orig") * mask
        w = w.detach().float().cpu()
        if not bool(torch.isfinite(w).all()):  # torch's top-k would rank NaN as the largest
            raise QSelectError(f"{n} holds NaN or inf; fix the model (e.g. reload a good checkpoint) "
                               "before pruning it")
        out.append(w)
    return out


def _compute(method_cls, tensors: list[torch.Tensor], sparsity: float, scope: str,
             names: list[str]) -> list[torch.Tensor]:
    if scope == "layer":
        for n, t in zip(names, tensors):  # a layer with no weight left disconnects the network
            check_keeps_some(t.numel(), sparsity, f"weights of {n}")
        return [method_cls(amount=int(round(sparsity * t.numel()))).compute_mask(t, torch.ones_like(t))
                for t in tensors]
    flat = torch.cat([t.reshape(-1) for t in tensors])
    mask = method_cls(amount=int(round(sparsity * flat.numel()))).compute_mask(flat, torch.ones_like(flat))
    out = [m.reshape(t.shape) for m, t in zip(mask.split([t.numel() for t in tensors]), tensors)]
    for n, m in zip(names, out):
        if m.numel() and not bool(m.any()):
            warnings.warn(f"global pruning at sparsity {sparsity:g} removes every weight of {n}, "
                          "disconnecting the network; use a lower sparsity or scope='layer'",
                          UserWarning, stacklevel=3)
    return out


def magnitude_masks(model: nn.Module, sparsity: float, scope: str = "layer",
                    layers: Sequence[str] | None = None) -> Masks:
    """Remove the ``sparsity`` fraction of smallest-|w| weights, per layer or globally.

    ``layers``: weight names (or module names) to prune; default all Linear/Conv2d.

    Parameters
    ----------
    model : torch.nn.Module
    sparsity : float
        Fraction of weights removed, in [0, 1).
    scope : {"layer", "global"}
        Rank within each layer, or across all chosen layers together.
    layers : sequence of str or None
        Weight (or module) names; default every Linear/Conv2d weight.

    Returns
    -------
    dict of str -> torch.Tensor
        Float 0/1 masks; already-pruned weights stay pruned.

    Raises
    ------
    QSelectError
        On a sparsity outside [0, 1), an unknown scope or layer.
    """
    _check(sparsity, scope)
    names = _layers(model, layers)
    masks = _compute(prune.L1Unstructured, _weights(model, names), float(sparsity), scope, names)
    return {n: m.float() for n, m in zip(names, masks)}


def random_masks(model: nn.Module, sparsity: float, scope: str = "layer", seed: int = 0,
                 layers: Sequence[str] | None = None) -> Masks:
    """Remove a uniformly random ``sparsity`` fraction of weights (exact count), seeded.

    Per layer: that fraction of each layer; global: of all chosen weights together
    (so layers end up with different sparsities). Global RNG state is untouched.

    Parameters
    ----------
    model : torch.nn.Module
    sparsity : float
        Fraction of weights removed, in [0, 1).
    scope : {"layer", "global"}
        Rank within each layer, or across all chosen layers together.
    seed : int
    layers : sequence of str or None
        Weight (or module) names; default every Linear/Conv2d weight.

    Returns
    -------
    dict of str -> torch.Tensor

    Raises
    ------
    QSelectError
        On a sparsity outside [0, 1), an unknown scope or layer.
    """
    _check(sparsity, scope)
    seed = check_seed(seed, allow_none=False)
    names = _layers(model, layers)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        masks = _compute(prune.RandomUnstructured, _weights(model, names), float(sparsity), scope, names)
    return {n: m.float() for n, m in zip(names, masks)}


def anti_random_masks(model: nn.Module, sparsity: float = 0.5, seed: int = 0, scope: str = "layer",
                      layers: Sequence[str] | None = None) -> tuple[Masks, Masks]:
    """A random mask and its complement (Prune-and-Tune's anti-random siblings).

    Every weight lives in exactly one of the two; with sparsity 0.5 both are 50%.
    Not ``methods.anti_random_pair``: this draws over all weights (an already
    pruned one can land in the complement) at any sparsity and scope; that one
    splits only the weights the parent still keeps, 50/50.

    Parameters
    ----------
    model : torch.nn.Module
    sparsity : float
        Fraction of weights removed, in [0, 1).
    seed : int
    scope : {"layer", "global"}
        Rank within each layer, or across all chosen layers together.
    layers : sequence of str or None
        Weight (or module) names; default every Linear/Conv2d weight.

    Returns
    -------
    (dict, dict)
        The random mask and its complement.

    References
    ----------
    T. Whitaker, D. Whitley, "Prune and Tune Ensembles: Low-Cost Ensemble
    Learning with Sparse Independent Subnetworks", AAAI 2022.
    """
    a = random_masks(model, sparsity, scope=scope, seed=seed, layers=layers)
    return a, {k: 1.0 - v for k, v in a.items()}


def edge_popup(model: nn.Module, train_loader, sparsity: float, **kw) -> Masks:
    """Edge-popup masks (Ramanujan et al. 2020); see ``qselect.classical.edge_popup.edge_popup``.

    Parameters
    ----------
    model : torch.nn.Module
    train_loader : DataLoader or Dataset
    sparsity : float
        Fraction of weights removed, in [0, 1).
    **kw
        Passed to :func:`qselect.classical.edge_popup.edge_popup`.

    Returns
    -------
    dict of str -> torch.Tensor

    References
    ----------
    V. Ramanujan, M. Wortsman, A. Kembhavi, A. Farhadi, M. Rastegari, "What's
    Hidden in a Randomly Weighted Neural Network?", CVPR 2020.
    """
    from .edge_popup import edge_popup as _ep

    return _ep(model, train_loader, sparsity, **kw)
