"""Accuracy, calibration and ensemble-diversity metrics; dead ReLU units.

Probability inputs are (N, C) arrays of softmax outputs (numpy or torch);
ensemble metrics take a list of them (or an (M, N, C) array), one per member.
Pairwise metrics average over all member pairs.
"""
from __future__ import annotations

from itertools import combinations, permutations

import numpy as np
import torch
from torch import nn

from ..errors import QSelectError

_EPS = 1e-12


def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _check(probs, labels=None):
    p = _np(probs)
    if p.ndim != 2 or p.shape[0] == 0:
        raise QSelectError(f"probabilities must be a non-empty (N, C) array, got shape {p.shape}")
    if labels is None:
        return p, None
    raw = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if len(raw) != len(p):
        raise QSelectError(f"{len(p)} predictions but {len(raw)} labels; pass one class index per row")
    y = raw.astype(np.int64)
    # a negative index would silently score another class; a fractional one would be truncated
    if not np.array_equal(y, raw) or y.min() < 0 or y.max() >= p.shape[1]:
        raise QSelectError(f"labels must be class indices in [0, {p.shape[1]}) for {p.shape[1]}-class "
                           f"probabilities, got values from {raw.min()} to {raw.max()}")
    return p, y


def _members(probs_list) -> np.ndarray:
    if isinstance(probs_list, np.ndarray):
        arr = _np(probs_list)
    else:
        members = [_np(p) for p in probs_list]
        if len({m.shape for m in members}) > 1:
            raise QSelectError(f"ensemble members must all have the same (N, C) shape, got "
                               f"{sorted({m.shape for m in members})}; predict on the same data")
        arr = np.stack(members) if members else np.empty((0,))
    if arr.ndim != 3 or arr.shape[0] < 2:
        raise QSelectError(f"ensemble metrics need >= 2 members of shape (N, C), got {arr.shape}")
    return arr


def accuracy(probs, labels) -> float:
    """Fraction of samples whose arg-max class is the label.

    Parameters
    ----------
    probs : array_like, shape (N, C)
        Predicted class probabilities.
    labels : array_like of int, shape (N,)

    Returns
    -------
    float
    """
    p, y = _check(probs, labels)
    return float((p.argmax(1) == y).mean())


def nll(probs, labels) -> float:
    """Mean negative log-likelihood of the true class (probabilities clipped at 1e-12).

    Parameters
    ----------
    probs : array_like, shape (N, C)
        Predicted class probabilities.
    labels : array_like of int, shape (N,)

    Returns
    -------
    float
        In nats.
    """
    p, y = _check(probs, labels)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], _EPS, None)).mean())


def ece(probs, labels, n_bins: int = 15) -> float:
    """Expected calibration error (Guo et al. 2017): equal-width confidence bins (lo, hi].

    ECE = sum_b |B_b|/N * |accuracy(B_b) - mean confidence(B_b)|.

    Parameters
    ----------
    probs : array_like, shape (N, C)
        Predicted class probabilities.
    labels : array_like of int, shape (N,)
    n_bins : int

    Returns
    -------
    float

    References
    ----------
    C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger, "On Calibration of Modern
    Neural Networks", ICML 2017.
    """
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise QSelectError(f"ece needs n_bins ≥ 1 (15 is standard), got {n_bins!r}")
    p, y = _check(probs, labels)
    conf = p.max(1)
    correct = (p.argmax(1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin b holds conf in (edges[b], edges[b+1]]; conf == 0 goes to the first bin
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        sel = idx == b
        if sel.any():
            total += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(total)


def ensemble_probs(probs_list) -> np.ndarray:
    """The ensemble prediction: members' softmax outputs averaged.

    Parameters
    ----------
    probs_list : sequence of array_like, each shape (N, C)
        Members' softmax outputs on the same samples.

    Returns
    -------
    numpy.ndarray, shape (N, C)
    """
    return _members(probs_list).mean(0)


def disagreement(probs_list) -> float:
    """Mean over member pairs of the fraction of samples where their arg-max classes differ.

    Parameters
    ----------
    probs_list : sequence of array_like, each shape (N, C)
        Members' softmax outputs on the same samples.

    Returns
    -------
    float
        0 for a single member.
    """
    arr = _members(probs_list)
    pred = arr.argmax(2)
    return float(np.mean([(pred[i] != pred[j]).mean() for i, j in combinations(range(len(arr)), 2)]))


def pairwise_kl(probs_list) -> float:
    """Mean over ordered member pairs (i != j) of the per-sample mean KL(p_i || p_j).

    Parameters
    ----------
    probs_list : sequence of array_like, each shape (N, C)
        Members' softmax outputs on the same samples.

    Returns
    -------
    float
        In nats; 0 for a single member.
    """
    arr = np.clip(_members(probs_list), _EPS, None)
    logs = np.log(arr)
    vals = [(arr[i] * (logs[i] - logs[j])).sum(1).mean() for i, j in permutations(range(len(arr)), 2)]
    return float(np.mean(vals))


def output_correlation(probs_list) -> float:
    """Mean over member pairs of the Pearson correlation of their flattened (N*C) softmax outputs.

    Parameters
    ----------
    probs_list : sequence of array_like, each shape (N, C)
        Members' softmax outputs on the same samples.

    Returns
    -------
    float
    """
    arr = _members(probs_list).reshape(len(probs_list), -1)
    vals = []
    for i, j in combinations(range(len(arr)), 2):
        a, b = arr[i] - arr[i].mean(), arr[j] - arr[j].mean()
        den = np.sqrt((a * a).sum() * (b * b).sum())
        vals.append(float((a * b).sum() / den) if den > 0 else 1.0 if np.allclose(a, b) else 0.0)
    return float(np.mean(vals))


def _unit_sums(out: torch.Tensor) -> torch.Tensor:
    """Sum a ReLU output over everything but its unit axis: channels for (B, C, H, W), else the last axis."""
    out = out.detach().float()
    if out.ndim == 4:
        return out.sum(dim=(0, 2, 3))
    return out.reshape(-1, out.shape[-1]).sum(0)


@torch.no_grad()
def dead_units(model: nn.Module, loader, device=None, max_batches: int | None = None) -> dict:
    """Count ReLU units whose output is exactly zero over a whole evaluation pass.

    Hooks every ``nn.ReLU`` module (a unit is a channel of a 4-D activation, else
    the last axis). Returns ``{"dead": {relu_name: bool tensor (units,)},
    "counts": {relu_name: int}, "units": {relu_name: int}, "total_dead",
    "total_units", "fraction"}``. A ReLU module reused at several places is
    counted over all its calls.

    Parameters
    ----------
    model : torch.nn.Module
    loader : torch.utils.data.DataLoader
        Yields (inputs, labels).
    device : str, torch.device or None
        Default: the model's device.
    max_batches : int or None

    Returns
    -------
    dict
    """
    from ..devices import model_device, resolve_device

    dev = model_device(model) if device is None else resolve_device(device)
    relus = {n: m for n, m in model.named_modules() if isinstance(m, nn.ReLU)}
    if not relus:
        raise QSelectError(f"{type(model).__name__} has no nn.ReLU modules to watch")
    sums: dict[str, torch.Tensor] = {}

    def hook(name):
        def fn(_m, _inp, out):
            s = _unit_sums(out)
            sums[name] = s if name not in sums else sums[name] + s
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in relus.items()]
    was_training = model.training
    model.eval()
    try:
        for b, (x, _y) in enumerate(loader):
            if max_batches is not None and b >= max_batches:
                break
            model(x.to(dev))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    dead = {n: (s == 0).cpu() for n, s in sums.items()}
    counts = {n: int(d.sum()) for n, d in dead.items()}
    units = {n: int(d.numel()) for n, d in dead.items()}
    tot, tot_units = sum(counts.values()), sum(units.values())
    return {"dead": dead, "counts": counts, "units": units, "total_dead": tot,
            "total_units": tot_units, "fraction": tot / tot_units if tot_units else 0.0}
