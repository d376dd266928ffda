"""NK local selection with the exact local loss.

Each output unit j decides K of its incoming weights exactly (an NK unit,
after the NK landscapes of Kauffman & Weinberger and Whitley's NK echo-state
networks). Its local loss over every mask m of those K weights is evaluated
exactly, nonlinearity included:

    L(m) = ‖act(A_S·(w_S ⊙ m) + A_F·w_F + b_j) − y‖²,   y = act(dense pre-activation) or act(target)

into a ``DiagonalCost`` of length 2^K — an independent K-qubit problem per unit
(S: the K decided inputs, F: the inputs kept outright, all others pruned).

Sparsity has one meaning for every formulation: the fraction of each row's
weights removed. Every unit keeps ``keep_count(fan_in, sparsity)`` weights,
whatever K is, so the layer's weight sparsity equals the asked one up to
rounding. K (the local problem size) is a formulation setting, not a solver's
qubit budget: a K-bit problem larger than the budget is decomposed like any
other. Two ways to pick the K decided weights (``rest``):

- ``"magnitude"`` (default): the K weights straddling the row's magnitude
  threshold; the larger ones are kept outright (F, they stay in the unit's
  pre-activation), the smaller ones pruned, and the problem decides the
  boundary exactly. Works for every K ≥ 1.
- ``"prune"``: the unit reads only its K largest-|w| inputs (or the given
  ones) and keeps the row's count among them; every other input is pruned.
  Needs K ≥ the row's keep count, and refuses otherwise.

References
----------
S. A. Kauffman, E. D. Weinberger, "The NK model of rugged fitness landscapes
and its application to maturation of the immune response", J. Theor. Biol.
141(2):211–245 (1989).
D. Whitley et al., NK echo-state networks (NK landscapes as sparse recurrent
reservoirs), see e.g. D. Whitley, "Mk landscapes, NK landscapes, MAX-kSAT",
Proc. FOGA (2015).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from ..errors import ProblemTooLargeError, QSelectError
from ..problems import DiagonalCost
from ..problems.bits import index_to_bits
from ..problems.memory import check_dense, max_qubits
from .activations import as_float64_cpu
from .cardinality import add_cardinality, keep_count
from .local import LocalProblem, with_scores
from .weights import layer_groups, target_rows

#: how the K decided weights of a unit are chosen (see the module doc)
NK_RESTS = ("magnitude", "prune")
#: default K (weights each NK unit decides exactly) when none is given: 2^10 masks per unit
NK_DEFAULT_K = 10


def nk_inputs(w: np.ndarray, K: int) -> np.ndarray:
    """The K inputs an NK unit reads by default: its largest |w| (ties to the lower index).

    Parameters
    ----------
    w : ndarray of shape (fan_in,)
        The unit's incoming weights.
    K : int
        How many inputs the unit reads.

    Returns
    -------
    ndarray of int64, shape (min(K, fan_in),)
        Input indices, sorted ascending.
    """
    return np.sort(np.argsort(-np.abs(w), kind="stable")[:K])


def _boundary(w: np.ndarray, K: int, k_total: int) -> tuple[np.ndarray, np.ndarray, int]:
    """K candidates straddling the magnitude threshold of a row keeping k_total weights.

    Returns (candidates, kept outright, how many candidates to keep); the last is in [0, K].
    """
    order = np.argsort(-np.abs(w), kind="stable")
    start = max(0, min(k_total - K // 2, w.size - K))
    return np.sort(order[start:start + K]), order[:start], k_total - start


def fan_in(layer: nn.Module) -> int:
    """Incoming weights per output unit (in_features, or C/groups·kh·kw for a conv).

    Parameters
    ----------
    layer : torch.nn.Module

    Returns
    -------
    int
    """
    w = getattr(layer, "weight", None)
    if w is None or w.ndim < 2:
        raise QSelectError(f"cannot formulate a {type(layer).__name__}; only nn.Linear and nn.Conv2d")
    return int(w[0].numel())


def nk_plan(name: str, layer: nn.Module, *, K: int, sparsity: float, rest: str = "magnitude") -> dict:
    """What the NK problems of ``layer`` will be, checked before any activation is collected.

    Parameters
    ----------
    name : str
        The layer's module name (for messages).
    layer : nn.Linear or nn.Conv2d
        The layer.
    K : int
        Weights each unit decides exactly (≥ 1; capped at the fan-in).
    sparsity : float
        Fraction of each row's weights removed, in (0, 1).
    rest : {"magnitude", "prune"}
        How the K decided weights are chosen (see the module doc).

    Returns
    -------
    dict
        ``fan_in``, ``K`` (the effective K = min(K, fan_in)), ``keep`` (weights every row keeps)
        and ``sparsity_actual`` (1 − keep / fan_in: the layer's weight sparsity).

    Raises
    ------
    QSelectError
        Unknown ``rest``, K < 1, or ``rest="prune"`` with K below the row's keep count.
    """
    if rest not in NK_RESTS:
        raise QSelectError(f"rest must be 'magnitude' (decide the K weights at each row's magnitude threshold) "
                           f"or 'prune' (each unit reads only K inputs), got {rest!r}")
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or int(K) < 1:
        raise QSelectError(f"an NK unit must decide K ≥ 1 weights (an integer), got K={K!r}")
    cols = fan_in(layer)
    Kj = min(int(K), cols)
    keep = keep_count(cols, sparsity)
    if rest == "prune" and keep > Kj:
        raise QSelectError(
            f"at sparsity {sparsity} every unit of layer {name!r} keeps {keep} of its {cols} weights, but an NK "
            f"unit with rest='prune' reads only K={Kj} of them; use K ≥ {keep}, a sparsity ≥ {1 - Kj / cols:.3f}, "
            f"or rest='magnitude' (keeps {keep} and decides the K at the magnitude threshold)")
    return {"fan_in": cols, "K": Kj, "keep": keep, "sparsity_actual": 1.0 - keep / cols}


def _check_table(name: str, K: int, rows: int) -> None:
    """Refuse an NK loss table (2^K masks × rows) that does not fit, naming K as the fix."""
    per = 8 * max(rows, 1)
    try:
        check_dense(K, per, f"the NK loss table of layer {name!r}", copies=3)
    except ProblemTooLargeError:
        fit = max_qubits(per, 3)
        raise ProblemTooLargeError(
            f"the NK loss table of layer {name!r} (2^{K} masks × {rows} calibration rows) does not fit in "
            f"memory; choose K ≤ {fit} weights per NK unit (the K setting; it is independent of the "
            f"qubit budget)") from None


def nk_problems(name: str, layer: nn.Module, inputs: torch.Tensor, *, K: int = NK_DEFAULT_K, sparsity: float,
                activation: Callable | None = None, targets: torch.Tensor | None = None,
                unit_inputs: dict[int, np.ndarray] | None = None, penalty="auto",
                neurons=None, rest: str = "magnitude") -> list[LocalProblem]:
    """One ``DiagonalCost`` over K bits per output unit of ``layer``.

    Parameters
    ----------
    name : str
        The layer's module name.
    layer : nn.Linear or nn.Conv2d
        The layer to prune.
    inputs : Tensor
        The layer's calibration inputs (batch first).
    K : int
        Weights each unit decides exactly (the local problem size; capped at the fan-in).
    sparsity : float
        Fraction of each row's weights removed: every unit keeps ``keep_count(fan_in, sparsity)``.
    activation : callable or None
        Applied to both the masked unit and the target (e.g. ``torch.relu``; None = identity).
    targets : Tensor, optional
        Wanted pre-activations shaped like the layer output (default: the dense layer's own).
    unit_inputs : dict[int, array], optional
        Unit j's K input columns, explicitly (``rest="prune"`` only).
    penalty : "auto", None or float
        Cardinality penalty weight (see ``add_cardinality``); 0 = only the k hint.
    neurons : iterable of int, optional
        Only these output units.
    rest : {"magnitude", "prune"}
        How the K decided weights are chosen (see the module doc).

    Returns
    -------
    list of LocalProblem
        One per unit, kind "nk": bits = the K decided weights (``positions``), ``k`` of them to
        keep; ``zero`` = the pruned entries; ``info`` = K, inputs, rest, kept_outright.

    Raises
    ------
    QSelectError
        See :func:`nk_plan`; bad ``unit_inputs``; a loss table that does not fit in memory
        (``ProblemTooLargeError``, naming the largest K that fits).

    References
    ----------
    Kauffman & Weinberger, J. Theor. Biol. 141(2) (1989): NK landscapes.
    """
    act = activation if activation is not None else (lambda z: z)
    plan = nk_plan(name, layer, K=K, sparsity=sparsity, rest=rest)
    if rest == "magnitude" and unit_inputs is not None:
        raise QSelectError("unit_inputs only applies with rest='prune'")
    wanted = None if neurons is None else set(int(j) for j in neurons)
    bias = None if layer.bias is None else as_float64_cpu(layer.bias)
    wshape = tuple(layer.weight.shape)
    Kj, k_total = plan["K"], plan["keep"]
    out = []
    for A, outs, Wg in layer_groups(layer, inputs):
        cols = A.shape[1]
        _check_table(name, Kj, A.shape[0])
        masks = torch.from_numpy(index_to_bits(np.arange(2**Kj), Kj).astype(np.float64))  # (2^K, K)
        for r, j in enumerate(outs):
            j = int(j)
            if wanted is not None and j not in wanted:
                continue
            w = Wg[r]
            b = 0.0 if bias is None else float(bias[j])
            sure = np.empty(0, dtype=np.int64)
            if rest == "magnitude":
                S, sure, k = _boundary(w.numpy(), Kj, k_total)
            else:
                S = nk_inputs(w.numpy(), Kj) if unit_inputs is None or j not in unit_inputs \
                    else np.asarray(unit_inputs[j], dtype=np.int64)
                k = k_total
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
                                          "kept_outright": sure.tolist(), "keep": k_total}))
    return out
