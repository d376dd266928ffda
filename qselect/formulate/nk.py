"""NK local selection with the exact local loss (DESIGN §2c).

Each output unit j reads only K of its inputs (an NK unit; by default its K
largest |w|, or the indices given). Its local loss over every mask m of those
K weights is evaluated exactly, nonlinearity included:

    L(m) = ‖act(A_S·(w_S ⊙ m) + b_j) − y‖²,   y = act(dense pre-activation) or act(target)

into a ``DiagonalCost`` of length 2^K — an independent K-qubit problem per unit.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from ..errors import QSelectError
from ..problems import DiagonalCost
from ..problems.bits import index_to_bits
from ..problems.memory import check_dense
from .activations import as_float64_cpu
from .cardinality import add_cardinality, keep_count
from .local import LocalProblem, with_scores
from .weights import layer_groups, target_rows


def nk_inputs(w: np.ndarray, K: int) -> np.ndarray:
    """The K inputs an NK unit reads by default: its largest |w| (ties to the lower index)."""
    return np.sort(np.argsort(-np.abs(w), kind="stable")[:K])


def _boundary(w: np.ndarray, K: int, k_total: int) -> tuple[np.ndarray, np.ndarray, int]:
    """K candidates straddling the magnitude threshold of a row keeping k_total weights.

    Returns (candidates, kept outright, how many candidates to keep).
    """
    order = np.argsort(-np.abs(w), kind="stable")
    start = max(0, min(k_total - K // 2, w.size - K))
    return np.sort(order[start:start + K]), order[:start], k_total - start


def nk_problems(name: str, layer: nn.Module, inputs: torch.Tensor, *, K: int, sparsity: float,
                activation: Callable | None = None, targets: torch.Tensor | None = None,
                unit_inputs: dict[int, np.ndarray] | None = None, penalty="auto",
                neurons=None, rest: str = "prune") -> list[LocalProblem]:
    """One ``DiagonalCost`` over K bits per output unit of ``layer``.

    ``activation`` (e.g. ``torch.relu``; None = identity) is applied to both the
    masked unit and the target. ``targets``: wanted pre-activations shaped like
    the layer output (default: the dense layer's own). ``unit_inputs[j]`` may
    give unit j's K input columns explicitly.

    ``rest="prune"`` (the NK unit of the design): k = round((1 − sparsity)·K)
    of the K are kept and the row's other weights are pruned
    (``LocalProblem.zero``), so the row keeps k/in of its weights.
    ``rest="magnitude"``: the row keeps round((1 − sparsity)·in) weights as a
    whole; the K candidates are the weights straddling the magnitude
    threshold, the larger ones stay in the unit's pre-activation (fixed on),
    the smaller ones are pruned, and the problem decides the boundary exactly.
    """
    act = activation if activation is not None else (lambda z: z)
    if rest not in ("prune", "magnitude"):
        raise QSelectError(f"rest must be 'prune' (NK unit reads only K inputs) or 'magnitude', got {rest!r}")
    if rest == "magnitude" and unit_inputs is not None:
        raise QSelectError("unit_inputs only applies with rest='prune'")
    if int(K) < 1:
        raise QSelectError(f"an NK unit must read K ≥ 1 inputs, got K={K}")
    wanted = None if neurons is None else set(int(j) for j in neurons)
    bias = None if layer.bias is None else as_float64_cpu(layer.bias)
    wshape = tuple(layer.weight.shape)
    out = []
    for A, outs, Wg in layer_groups(layer, inputs):
        cols = A.shape[1]
        Kj = min(int(K), cols)
        check_dense(Kj, 8 * max(A.shape[0], 1), f"the NK loss table of layer {name!r}", copies=3)
        masks = torch.from_numpy(index_to_bits(np.arange(2**Kj), Kj).astype(np.float64))  # (2^K, K)
        for r, j in enumerate(outs):
            j = int(j)
            if wanted is not None and j not in wanted:
                continue
            w = Wg[r]
            b = 0.0 if bias is None else float(bias[j])
            sure = np.empty(0, dtype=np.int64)
            if rest == "magnitude":
                S, sure, k = _boundary(w.numpy(), Kj, keep_count(cols, sparsity))
            else:
                S = nk_inputs(w.numpy(), Kj) if unit_inputs is None or j not in unit_inputs \
                    else np.asarray(unit_inputs[j], dtype=np.int64)
                k = keep_count(Kj, sparsity)
            if S.size != Kj or len(set(S.tolist())) != Kj or S.min() < 0 or S.max() >= cols:
                raise QSelectError(f"unit {j} of {name!r} needs {Kj} distinct input indices in [0, {cols}), got {S}")
            t = A @ w + b if targets is None else target_rows(layer, targets, j)
            y = act(t)
            fixed_on = A[:, sure] @ w[sure] + b  # weights kept outright still feed the unit
            z = (A[:, S] * w[S]) @ masks.T + fixed_on[:, None]  # (rows, 2^K) every mask at once
            costs = ((act(z) - y[:, None]) ** 2).sum(dim=0).numpy()
            base = DiagonalCost(costs, name=f"{name}[{j}]")
            scores = np.abs(w[S].numpy()) * np.sqrt((A[:, S] ** 2).sum(0).numpy())
            prob = add_cardinality(with_scores(base, scores), k, penalty)
            pruned = np.setdiff1d(np.arange(cols), np.concatenate([S, sure]))
            def entries(idx):
                pos = np.stack(np.unravel_index(idx, wshape[1:]), axis=1)
                return np.concatenate([np.full((len(idx), 1), j), pos], axis=1)
            out.append(LocalProblem(prob, name, "nk", j, entries(S), k, zero=entries(pruned),
                                    info={"K": Kj, "inputs": S.tolist(), "rest": rest,
                                          "kept_outright": sure.tolist()}))
    return out
