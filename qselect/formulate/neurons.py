"""Neuron selection for one layer: keep k of its h output units (Q = (HᵀH) ⊙ (VᵀV)).

Unit u's outputs reach the next layer through the columns c of the next
layer's (unfolded) input A that belong to u; its contribution to the next
pre-activation is Y_u = Σ_{c∈u} A_c V_cᵀ. Then ‖Z(m) − Z(1)‖² with
Z(m) = Σ_u m_u Y_u is the QUBO mᵀGm − 2mᵀG1 + 1ᵀG1 with
G = P((AᵀA) ⊙ (VᵀV))Pᵀ, P pooling columns into units; for Linear → Linear,
P = I and G = (HᵀH) ⊙ (VᵀV) as in the design.

Masking a unit zeroes its weight row and bias, so its output is act(0): exact
for ReLU/tanh/GELU-like activations (act(0) = 0). Across a BatchNorm the unit's
γ and β are masked too (``qselect.formulate.structure``), so the normalised
output is 0 as well; A is the next layer's input, i.e. the post-BN, post-
activation values, so the QUBO is exact there too.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import QSelectError
from ..problems import QUBO
from .cardinality import add_cardinality, keep_count
from .local import LocalProblem, with_scores
from .weights import layer_groups


def units_of_columns(layer: nn.Module, next_layer: nn.Module) -> np.ndarray:
    """For each input column of ``next_layer``'s A, the unit of ``layer`` it comes from.

    Parameters
    ----------
    layer : torch.nn.Module
        Linear or Conv2d whose units are selected.
    next_layer : torch.nn.Module
        The layer reading them.

    Returns
    -------
    numpy.ndarray of int, shape (columns,)
    """
    h = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    if isinstance(next_layer, nn.Linear):
        cols = next_layer.in_features
        if cols == h:
            return np.arange(h)
        if isinstance(layer, nn.Conv2d) and cols % h == 0:  # flattened (C, H, W) feature map
            return np.repeat(np.arange(h), cols // h)
    elif isinstance(next_layer, nn.Conv2d) and next_layer.groups == 1 and next_layer.in_channels == h:
        kk = int(np.prod(next_layer.kernel_size))
        return np.repeat(np.arange(h), kk)
    raise QSelectError(f"cannot match the {h} units of a {type(layer).__name__} to the inputs of the "
                       f"following {type(next_layer).__name__}; neuron selection needs the next layer to "
                       "read this layer's units directly (Linear→Linear, Conv→Conv, Conv→flatten→Linear)")


def neuron_problem(name: str, layer: nn.Module, next_layer: nn.Module, next_inputs: torch.Tensor, *,
                   sparsity: float, penalty="auto") -> LocalProblem:
    """The layer-wide QUBO over ``layer``'s output units (one bit per unit).

    Parameters
    ----------
    name : str
        The layer's name.
    layer : torch.nn.Module
        Linear or Conv2d whose output units are the bits.
    next_layer : torch.nn.Module
        The next layer called, which reads those units.
    next_inputs : torch.Tensor
        ``next_layer``'s inputs on the calibration batch.
    sparsity : float
        Fraction removed, in [0, 1).
    penalty : "auto", None or float
        Cardinality penalty λ: "auto"/None = :func:`~qselect.formulate.cardinality.auto_penalty`
        (provably keeps k), a number = λ itself.

    Returns
    -------
    LocalProblem
        Energy ‖Z(m) − Z(1)‖² of the next layer's pre-activation, Q = (HᵀH)⊙(VᵀV).

    Raises
    ------
    QSelectError
        If the layers do not connect or the inputs contain NaN/inf.
    """
    unit = units_of_columns(layer, next_layer)
    (A, _, V), = list(layer_groups(next_layer, next_inputs))
    h = int(unit.max()) + 1
    M = (A.T @ A).numpy() * (V.T @ V).numpy()
    P = np.zeros((h, unit.size))
    P[unit, np.arange(unit.size)] = 1.0
    G = P @ M @ P.T
    G = (G + G.T) / 2  # exact symmetry against round-off
    ones = np.ones(h)
    base = QUBO(G, -2.0 * G @ ones, float(ones @ G @ ones), name=f"{name}[units]")
    k = keep_count(h, sparsity)
    prob = add_cardinality(with_scores(base, np.sqrt(np.clip(np.diag(G), 0, None))), k, penalty, lower=0.0)
    return LocalProblem(prob, name, "neuron", 0, np.arange(h), k)


def attention_parts(module: nn.Module):
    """(qkv, proj, heads, head_dim) of a fused-qkv attention module, else None.

    The module must own ``qkv`` (Linear dim → 3·heads·head_dim, rows ordered
    q, k, v, each head-major), ``proj`` (Linear heads·head_dim → dim) and int
    attributes ``heads`` and ``head_dim`` (as :class:`qselect.classical.models.Attention`).

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    tuple or None
    """
    qkv, proj, heads = getattr(module, "qkv", None), getattr(module, "proj", None), getattr(module, "heads", None)
    hd = getattr(module, "head_dim", None)
    if (isinstance(qkv, nn.Linear) and isinstance(proj, nn.Linear) and isinstance(heads, int)
            and isinstance(hd, int) and qkv.out_features == 3 * heads * hd and proj.in_features == heads * hd):
        return qkv, proj, heads, hd
    return None


def head_problem(name: str, module: nn.Module, proj_inputs: torch.Tensor, *, sparsity: float,
                 penalty="auto") -> LocalProblem:
    """Attention-head selection for one attention module: one bit per head.

    Removing head h zeroes its q, k and v rows (and biases) of ``qkv``; its
    value vectors are then 0, so its attention output — the ``head_dim``
    input columns of ``proj`` that belong to it — is exactly 0 whatever the
    attention weights. As in neuron selection (§2b), with A the inputs of
    ``proj`` and V its weight, the change of ``proj``'s pre-activation is the
    QUBO with G = P((AᵀA) ⊙ (VᵀV))Pᵀ, P pooling each head's columns.

    Parameters
    ----------
    name : str
        The attention module's name (e.g. ``"blocks.0.attn"``); the masks go
        to ``f"{name}.qkv"``.
    module : nn.Module
        An attention module (see :func:`attention_parts`).
    proj_inputs : torch.Tensor
        Calibration inputs of ``proj``, (..., heads·head_dim).
    sparsity : float
        Fraction of heads removed.
    penalty : "auto" or float

    Returns
    -------
    LocalProblem
        ``kind="neuron"`` on layer ``f"{name}.qkv"``; ``info["groups"][h]`` are
        the rows of ``qkv`` that bit h keeps.

    Raises
    ------
    QSelectError
        ``module`` is not a fused-qkv attention module.

    References
    ----------
    Michel, Levy, Neubig, "Are Sixteen Heads Really Better than One?", NeurIPS 2019.
    """
    parts = attention_parts(module)
    if parts is None:
        raise QSelectError(f"{name!r} is not an attention module with fused 'qkv' and 'proj' Linear layers "
                           "and 'heads'/'head_dim' attributes; head selection needs one")
    qkv, proj, heads, hd = parts
    unit = np.repeat(np.arange(heads), hd)
    (A, _, V), = list(layer_groups(proj, proj_inputs))
    prob, k = _pooled_qubo(f"{name}[heads]", unit, A, V, heads, sparsity, penalty)
    inner = heads * hd
    groups = [np.concatenate([np.arange(h * hd, (h + 1) * hd) + s * inner for s in range(3)])
              for h in range(heads)]
    return LocalProblem(prob, f"{name}.qkv", "neuron", 0, np.arange(heads), k,
                        info={"groups": groups, "heads": heads})


def _pooled_qubo(label: str, unit: np.ndarray, A: torch.Tensor, V: torch.Tensor, h: int, sparsity: float,
                 penalty):
    M = (A.T @ A).numpy() * (V.T @ V).numpy()
    P = np.zeros((h, unit.size))
    P[unit, np.arange(unit.size)] = 1.0
    G = P @ M @ P.T
    G = (G + G.T) / 2
    ones = np.ones(h)
    base = QUBO(G, -2.0 * G @ ones, float(ones @ G @ ones), name=label)
    k = keep_count(h, sparsity)
    return add_cardinality(with_scores(base, np.sqrt(np.clip(np.diag(G), 0, None))), k, penalty, lower=0.0), k


def split_attention(model: nn.Module, layers) -> tuple[list[str], list[str]]:
    """Split requested layer names into (ordinary layers, attention modules whose heads are selected).

    Parameters
    ----------
    model : torch.nn.Module
    layers : iterable of str

    Returns
    -------
    (list of str, list of str)
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    mods = dict(model.named_modules())
    heads = [n for n in names if n in mods and attention_parts(mods[n]) is not None]
    return [n for n in names if n not in heads], heads
