"""Neuron selection for one layer (DESIGN §2b): keep k of its h output units.

Unit u's outputs reach the next layer through the columns c of the next
layer's (unfolded) input A that belong to u; its contribution to the next
pre-activation is Y_u = Σ_{c∈u} A_c V_cᵀ. Then ‖Z(m) − Z(1)‖² with
Z(m) = Σ_u m_u Y_u is the QUBO mᵀGm − 2mᵀG1 + 1ᵀG1 with
G = P((AᵀA) ⊙ (VᵀV))Pᵀ, P pooling columns into units; for Linear → Linear,
P = I and G = (HᵀH) ⊙ (VᵀV) as in the design.

Masking a unit zeroes its weight row and bias, so its output is act(0): exact
for ReLU/tanh/GELU-like activations (act(0) = 0), not across a BatchNorm.
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
    """For each input column of ``next_layer``'s A, the unit of ``layer`` it comes from."""
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
    """The layer-wide QUBO over ``layer``'s output units (one bit per unit)."""
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
