"""Lean weight selection: one Gram matrix per layer (per channel group), no dense matrix per neuron.

The weight formulation for output neuron j is ``mᵀ D G D m − 2 (D Aᵀt)ᵀ m + ‖t‖²``
with one ``G = AᵀA`` shared by every neuron of the layer (Kuzmin et al.'s
reconstruction objective, the same as :mod:`qselect.formulate.weights`). Here
each neuron becomes a :class:`~qselect.problems.gram.GramQUBO`: a reference to
G plus its weight row and linear terms, O(n) memory instead of n². Energies,
flip and swap changes come from products with G; a dense QUBO appears only for
a block being solved (``fix`` down to a few bits) or a circuit.

Memory for a layer (stated by :func:`weight_memory` before anything is built):

- dense: ``8·n²·(neurons + 4)`` bytes (one n×n QUBO per neuron, G and temporaries);
- lean:  ``8·(rows·n + 2·n² + 6·n·neurons)`` bytes (the unfolded inputs A, G and
  a temporary, and O(n) vectors per neuron).

A ResNet-18 ``layer4`` conv (512 neurons × 4608 inputs) needs ≈ 87 GB dense and
≈ 0.5 GB lean at a 128-image calibration batch.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from ..errors import ProblemTooLargeError, QSelectError
from ..problems import memory
from ..problems.gram import GramQUBO
from .cardinality import MARGIN, keep_count
from .local import LocalProblem
from .weights import layer_groups, target_rows

#: usable fraction of the available memory for a layer's weight problems
USABLE = 0.6

log = logging.getLogger("qselect")


def _rows_cols(layer: nn.Module, inputs_shape) -> tuple[int, int, int]:
    """(rows of A, inputs per neuron n, neurons) without unfolding anything."""
    w = layer.weight
    n, count = int(np.prod(w.shape[1:])), int(w.shape[0])
    if isinstance(layer, nn.Linear):
        rows = int(np.prod(inputs_shape)) // layer.in_features
    else:
        h, wd = inputs_shape[-2:]
        ph, pw = layer.padding if isinstance(layer.padding, tuple) else (0, 0)
        kh, kw = layer.kernel_size
        sh, sw = layer.stride
        dh, dw = layer.dilation
        oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        rows = int(inputs_shape[0]) * max(oh, 0) * max(ow, 0)
    return rows, n, count


def weight_memory(layer: nn.Module, inputs_shape, neurons: int | None = None) -> dict:
    """Bytes the weight problems of ``layer`` need, dense and lean (see the module doc).

    Parameters
    ----------
    layer : nn.Linear or nn.Conv2d
    inputs_shape : tuple
        Shape of the calibration inputs to the layer (batch first).
    neurons : int, optional
        Number of output neurons formulated (default all).

    Returns
    -------
    dict
        ``{"dense": bytes, "lean": bytes, "n": inputs per neuron, "neurons": count, "rows": rows of A}``.
    """
    rows, n, count = _rows_cols(layer, tuple(inputs_shape))
    count = count if neurons is None else int(neurons)
    return {"dense": 8.0 * n * n * (count + 4), "lean": 8.0 * (rows * n + 2 * n * n + 6 * n * count),
            "n": n, "neurons": count, "rows": rows}


def check_memory(name: str, need: float, what: str) -> None:
    """Refuse before building when ``need`` bytes exceed the usable share of available memory.

    Parameters
    ----------
    name : str
        Layer name (for the message).
    need : float
        Bytes required.
    what : str

    Raises
    ------
    ProblemTooLargeError
        Saying how much memory is needed and available.
    """
    avail = memory.available_bytes() * USABLE
    if need > avail:
        raise ProblemTooLargeError(
            f"layer {name!r}: {what} need {memory._fmt(need)} but {memory._fmt(avail)} is usable; "
            "select fewer layers (layers=...), use a smaller calibration batch, or use the 'neuron' "
            "formulation for this layer")


def lean_weight_problems(name: str, layer: nn.Module, inputs: torch.Tensor, *, sparsity: float,
                         targets: torch.Tensor | None = None, penalty="auto",
                         neurons=None) -> list[LocalProblem]:
    """One :class:`GramQUBO` per output neuron of ``layer``, all sharing one G per channel group.

    Parameters
    ----------
    name : str
        The layer's module name (for masks and messages).
    layer : nn.Linear or nn.Conv2d
    inputs : torch.Tensor
        Calibration inputs to the layer (batch first).
    sparsity : float
        Fraction of each neuron's weights removed (k = kept count, rounded).
    targets : torch.Tensor, optional
        Wanted pre-activations shaped like the layer's output (bias subtracted);
        None reconstructs the dense output (t = A·w).
    penalty : "auto" or float
        λ of the cardinality penalty; "auto" = ``MARGIN·U`` with U the
        magnitude mask's energy (the objective is a sum of squares, L = 0,
        so every optimum keeps exactly k bits; :mod:`qselect.formulate.cardinality`).
    neurons : iterable of int, optional
        Only these output units (default all).

    Returns
    -------
    list of LocalProblem
        ``kind="weight"``, ``info["memory"]`` = :func:`weight_memory`'s dict.

    Raises
    ------
    ProblemTooLargeError
        The lean formulation itself does not fit (A and G of the layer).

    References
    ----------
    Kuzmin et al., "Pruning vs quantization" / the layer-wise reconstruction
    objective; Frantar & Alistarh, "Optimal Brain Compression" (NeurIPS 2022)
    for the shared Hessian G = AᵀA.
    """
    wanted = None if neurons is None else sorted({int(j) for j in neurons})
    mem = weight_memory(layer, tuple(inputs.shape), None if wanted is None else len(wanted))
    log.info("layer %s: %d weight problems of %d bits need %s as dense QUBOs, %s lean (stated before "
             "building)", name, mem["neurons"], mem["n"], memory._fmt(mem["dense"]), memory._fmt(mem["lean"]))
    check_memory(name, mem["lean"], f"{mem['neurons']} lean weight problems of {mem['n']} bits (one shared G)")
    bias = None if layer.bias is None else layer.bias.detach().to("cpu", torch.float64)
    wshape = tuple(layer.weight.shape)
    if targets is not None:
        from .weights import _out_shape

        want = (inputs.shape[0],) + tuple(_out_shape(layer, inputs))
        if tuple(targets.shape) != want:
            raise QSelectError(f"targets for layer {name!r} must have the layer output's shape {want}, "
                               f"got {tuple(targets.shape)}")
    out = []
    for A, outs, Wg in layer_groups(layer, inputs):
        sel = [r for r, j in enumerate(outs) if wanted is None or int(j) in wanted]
        if not sel:
            continue
        G = (A.T @ A).numpy()
        G += G.T.copy()
        G *= 0.5  # exact symmetry: flip/swap closed forms assume it
        if targets is None:
            del A  # only G is needed to reconstruct the layer's own output
        Wn = Wg.numpy()[sel]  # (count, n)
        GW = G @ Wn.T  # (n, count): one product for every neuron's A^T(Aw)
        diag = np.sqrt(np.clip(np.diagonal(G), 0, None))
        for c, r in enumerate(sel):
            j = int(outs[r])
            w = Wn[c]
            if targets is None:
                At, tt = GW[:, c], float(w @ GW[:, c])
            else:
                t = target_rows(layer, targets, j)
                if bias is not None:
                    t = t - bias[j]
                At, tt = (A.T @ t).numpy(), float(t @ t)
            k = keep_count(w.size, sparsity)
            base = GramQUBO(G, w, -2.0 * w * At, tt, k=k, name=f"{name}[{j}]")
            scores = np.abs(w) * diag
            if penalty is None or penalty == "auto":
                top = np.zeros(w.size, np.uint8)
                top[np.argsort(-scores, kind="stable")[:k]] = 1
                U = float(base.energy(top))
                lam = MARGIN * max(U, 0.0) + 1e-9 * max(1.0, abs(U))
            elif isinstance(penalty, str):
                raise QSelectError(f"penalty must be 'auto' or a number ≥ 0, got {penalty!r}")
            else:
                lam = float(penalty)
                if not np.isfinite(lam) or lam < 0:
                    raise QSelectError(f"penalty must be a finite number ≥ 0, got {penalty!r}")
            prob = GramQUBO(G, w, base.linear, tt, penalty=lam, k=k, name=base.name)
            prob.scores = scores
            pos = np.stack(np.unravel_index(np.arange(w.size), wshape[1:]), axis=1)
            pos = np.concatenate([np.full((w.size, 1), j), pos], axis=1)
            out.append(LocalProblem(prob, name, "weight", j, pos, k, info={"memory": mem, "lean": True}))
    return out

