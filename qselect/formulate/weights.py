"""Weight selection per output neuron (E(m) = ‖A·diag(w)·m − t‖² + λ(Σm − k)²), for nn.Linear and nn.Conv2d.

For neuron j with incoming weights w, calibration inputs A (rows × cols; a
conv layer's inputs unfolded so each row is one receptive field) and target t:

    E(m) = ‖A·diag(w)·m − t‖² = mᵀ(D G D)m − 2(D Aᵀt)ᵀm + ‖t‖²,   G = AᵀA, D = diag(w)

G is computed once per layer (per group), so each neuron costs O(cols²).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import QSelectError
from ..problems import QUBO
from .activations import as_float64_cpu
from .cardinality import add_cardinality, keep_count
from .local import LocalProblem, with_scores


def layer_groups(layer: nn.Module, inputs: torch.Tensor):
    """Yield (A, out_channels, W_rows) per channel group; A float64 CPU (rows × cols).

    Linear: A = inputs flattened to (…, in). Conv2d: each row of A is one
    receptive field (``F.unfold`` after the layer's own padding), columns in
    the (C, kh, kw) order of ``weight[o].reshape(-1)``.

    Parameters
    ----------
    layer : torch.nn.Linear or torch.nn.Conv2d
    inputs : torch.Tensor

    Yields
    ------
    A : torch.Tensor, float64, shape (rows, cols)
    out_channels : range or list of int
    W_rows : torch.Tensor, shape (len(out_channels), cols)
    """
    W = as_float64_cpu(layer.weight)
    if isinstance(layer, nn.Linear):
        yield as_float64_cpu(inputs).reshape(-1, layer.in_features), np.arange(layer.out_features), W
        return
    if not isinstance(layer, nn.Conv2d):
        raise QSelectError(f"cannot formulate a {type(layer).__name__}; only nn.Linear and nn.Conv2d")
    if layer.padding_mode != "zeros":
        raise QSelectError(f"conv padding_mode {layer.padding_mode!r} is not supported; use 'zeros'")
    x = F.pad(as_float64_cpu(inputs), layer._reversed_padding_repeated_twice)
    g = layer.groups
    cin, cout = layer.in_channels // g, layer.out_channels // g
    for gi in range(g):
        cols = F.unfold(x[:, gi * cin:(gi + 1) * cin], layer.kernel_size, dilation=layer.dilation,
                        stride=layer.stride)  # (B, cin·kh·kw, L)
        A = cols.transpose(1, 2).reshape(-1, cols.shape[1])
        outs = np.arange(gi * cout, (gi + 1) * cout)
        yield A, outs, W[outs].reshape(cout, -1)


def target_rows(layer: nn.Module, targets: torch.Tensor, j: int) -> torch.Tensor:
    """Output unit j's target pre-activations in the row order of ``layer_groups``' A.

    Parameters
    ----------
    layer : torch.nn.Module
    targets : torch.Tensor
        Shaped like the layer's output.
    j : int
        Output unit.

    Returns
    -------
    torch.Tensor, float64, shape (rows,)
    """
    t = as_float64_cpu(targets)
    if isinstance(layer, nn.Linear):
        return t.reshape(-1, layer.out_features)[:, j]
    return t[:, j].reshape(-1)


def weight_problems(name: str, layer: nn.Module, inputs: torch.Tensor, *, sparsity: float,
                    targets: torch.Tensor | None = None, penalty="auto",
                    neurons=None, lean="auto") -> list[LocalProblem]:
    """One QUBO per output neuron of ``layer`` (a Linear or Conv2d).

    ``targets`` None reconstructs the dense layer's own output (t = A·w);
    otherwise it is the wanted pre-activation, shaped like the layer's output
    (e.g. a teacher's), and the layer's bias is subtracted from it.
    ``neurons`` restricts to some output units (default all).
    ``lean``: True builds factored problems sharing one G per layer
    (:mod:`qselect.formulate.lean`, O(n) memory per neuron); False one dense
    n×n QUBO per neuron; "auto" (default) the dense ones while they need at
    most :data:`DENSE_LIMIT` bytes and fit in memory, else the lean ones.

    Parameters
    ----------
    name : str
        The layer's name (recorded in each problem).
    layer : torch.nn.Linear or torch.nn.Conv2d
    inputs : torch.Tensor
        The layer's inputs on the calibration batch, (N, in_features) or (N, C, H, W).
    sparsity : float
        Fraction removed, in [0, 1).
    targets : torch.Tensor or None
        Wanted pre-activations, shaped like the layer's output.
    penalty : "auto", None or float
        Cardinality penalty λ: "auto"/None = :func:`~qselect.formulate.cardinality.auto_penalty`
        (provably keeps k), a number = λ itself.
    neurons : iterable of int or None
    lean : bool or "auto"

    Returns
    -------
    list of LocalProblem
        One per output neuron; energy ‖A·diag(w)·m − t‖² in squared output units.

    Raises
    ------
    QSelectError
        On NaN/inf, a sparsity outside [0, 1), or mismatched targets.
    ProblemTooLargeError
        If even the factored problems would not fit in memory.
    """
    if lean not in (True, False, "auto"):
        raise QSelectError(f"lean must be True, False or 'auto', got {lean!r}")
    if lean is not False:
        from .lean import lean_weight_problems, weight_memory

        count = None if neurons is None else len(set(int(j) for j in neurons))
        dense_need = weight_memory(layer, tuple(inputs.shape), count)["dense"]
        if lean is True or dense_need > min(DENSE_LIMIT, 0.6 * _available()):
            return lean_weight_problems(name, layer, inputs, sparsity=sparsity, targets=targets,
                                        penalty=penalty, neurons=neurons)
    wanted = None if neurons is None else set(int(j) for j in neurons)
    bias = None if layer.bias is None else as_float64_cpu(layer.bias)
    wshape = tuple(layer.weight.shape)
    if targets is not None:
        want = (inputs.shape[0],) + tuple(_out_shape(layer, inputs))
        if tuple(targets.shape) != want:
            raise QSelectError(f"targets for layer {name!r} must have the layer output's shape {want}, "
                               f"got {tuple(targets.shape)}")
    _check_fits(name, layer, wanted)
    out = []
    for A, outs, Wg in layer_groups(layer, inputs):
        G = A.T @ A
        diagG = torch.sqrt(torch.clamp(torch.diagonal(G), min=0))
        for r, j in enumerate(outs):
            if wanted is not None and int(j) not in wanted:
                continue
            w = Wg[r]
            if targets is None:
                At, tt = G @ w, float(w @ G @ w)
            else:
                t = target_rows(layer, targets, int(j))
                if bias is not None:
                    t = t - bias[j]
                At, tt = A.T @ t, float(t @ t)
            Dw = w.numpy()
            Q = Dw[:, None] * G.numpy() * Dw[None, :]
            base = QUBO(Q, -2.0 * Dw * At.numpy(), tt, name=f"{name}[{int(j)}]")
            k = keep_count(base.n, sparsity)
            # a sum of squares: 0 is a lower bound, which keeps the automatic penalty small
            prob = add_cardinality(with_scores(base, np.abs(Dw) * diagG.numpy()), k, penalty, lower=0.0)
            pos = np.stack(np.unravel_index(np.arange(base.n), wshape[1:]), axis=1)
            pos = np.concatenate([np.full((base.n, 1), int(j)), pos], axis=1)
            out.append(LocalProblem(prob, name, "weight", int(j), pos, k))
    return out


#: "auto" switches to the lean formulation when a layer's dense QUBOs need more bytes than this
DENSE_LIMIT = 2 * 2**30


def _available() -> float:
    from ..problems import memory

    return float(memory.available_bytes())


def _check_fits(name: str, layer: nn.Module, wanted) -> None:
    """Each neuron's QUBO is a dense n×n matrix: refuse a layer whose problems would not fit."""
    from ..errors import ProblemTooLargeError
    from ..problems import memory

    n = int(np.prod(layer.weight.shape[1:]))
    count = layer.weight.shape[0] if wanted is None else len(wanted)
    need = 8.0 * n * n * (count + 4)  # the problems, plus G and temporaries
    avail = memory.available_bytes() * 0.6
    if need > avail:
        raise ProblemTooLargeError(
            f"layer {name!r}: {count} weight problems of {n} bits need {need / 2**30:.1f} GiB as dense "
            f"QUBOs but {avail / 2**30:.1f} GiB is usable; select fewer layers (layers=...) or use the "
            "'neuron' or 'nk' formulation for this layer")


def _out_shape(layer: nn.Module, inputs: torch.Tensor):
    with torch.no_grad():
        return layer(inputs[:1]).shape[1:]
