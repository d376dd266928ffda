"""Layer-by-layer pruning on a calibration batch, and the held-out layer error.

Every one-shot pruner here sees a layer as a weight matrix ``W`` (out × cols)
and its calibration inputs ``X`` (rows × cols): a Linear layer's inputs as
they are, a Conv2d layer's inputs unfolded so each row is one receptive field
(columns in the ``weight[o].reshape(-1)`` order, the layer's own zero
padding applied). Most pruners need only the Gram matrix ``H = XᵀX``.

Layers are pruned in the order the forward pass calls them, *sequentially*:
each layer's inputs come from the network whose earlier layers are already
pruned (and, for SparseGPT/OBC/refit, updated), the practice of SparseGPT and
OBC (Frantar & Alistarh 2023, §3; Frantar, Singh & Alistarh 2022, §5).
``sequential=False`` takes every layer's inputs from the dense network.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..classical.baselines import check_sparsity
from ..classical.masks import PRUNABLE_TYPES, apply_masks, remove_masks
from ..classical.train import call_or_explain
from ..devices import model_device
from ..errors import QSelectError


def keep_per_row(cols: int, sparsity: float) -> int:
    """Weights kept in a row of ``cols`` at ``sparsity`` (fraction removed), half rounding up.

    The same count the local formulations keep per output neuron, so every
    method of a comparison lands on the same real sparsity.

    Parameters
    ----------
    cols : int
    sparsity : float

    Returns
    -------
    int
    """
    return int(np.floor((1.0 - check_sparsity(sparsity)) * int(cols) + 0.5))


def calib_batches(calib_inputs) -> list[torch.Tensor]:
    """The calibration inputs as a list of tensors (a tensor, or batches / (x, y) pairs).

    Parameters
    ----------
    calib_inputs : torch.Tensor or iterable

    Returns
    -------
    list of torch.Tensor
    """
    if isinstance(calib_inputs, torch.Tensor):
        out = [calib_inputs]
    elif hasattr(calib_inputs, "__iter__") and not isinstance(calib_inputs, (str, bytes)):
        out = [b[0] if isinstance(b, (tuple, list)) else b for b in calib_inputs]
    else:
        raise QSelectError(f"calibration inputs must be a tensor or an iterable of batches, "
                           f"got {type(calib_inputs).__name__}")
    for b in out:
        if not isinstance(b, torch.Tensor):
            raise QSelectError(f"calibration batches must be tensors, got {type(b).__name__}")
    out = [b for b in out if b.ndim > 0 and b.shape[0] > 0]
    if not out:
        raise QSelectError("the calibration batch is empty; pass a non-empty tensor (samples along dim 0)")
    return out


def calib_labels(calib_inputs) -> torch.Tensor | None:
    """Labels of (x, y) calibration batches, concatenated; None for plain tensors.

    Parameters
    ----------
    calib_inputs : torch.Tensor or iterable

    Returns
    -------
    torch.Tensor or None
    """
    if isinstance(calib_inputs, torch.Tensor):
        return None
    ys = [b[1] for b in calib_inputs if isinstance(b, (tuple, list)) and len(b) > 1]
    return torch.cat([torch.as_tensor(y) for y in ys]) if ys else None


def unfold_inputs(layer: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The layer's calibration inputs as a float64 matrix X (rows × cols) with ``layer(x) = X Wᵀ + b``.

    Parameters
    ----------
    layer : nn.Linear or nn.Conv2d
        A Conv2d must have ``groups=1`` and zero padding.
    inputs : torch.Tensor
        What the layer receives, (B, ..., in) for Linear, (B, C, H, W) for Conv2d.

    Returns
    -------
    torch.Tensor
        (rows, cols) float64 on the inputs' device; rows = B (times the output
        positions for a conv), cols = ``weight[0].numel()``.
    """
    x = inputs.detach().to(torch.float64)
    if isinstance(layer, nn.Linear):
        return x.reshape(-1, layer.in_features)
    if not isinstance(layer, nn.Conv2d):
        raise QSelectError(f"cannot prune a {type(layer).__name__}; only nn.Linear and nn.Conv2d")
    if layer.groups != 1:
        raise QSelectError(f"conv layers with groups={layer.groups} are not supported by the one-shot "
                           "pruners; leave this layer out (layers=...)")
    if layer.padding_mode != "zeros":
        raise QSelectError(f"conv padding_mode {layer.padding_mode!r} is not supported; use 'zeros'")
    if isinstance(layer.padding, str):
        raise QSelectError(f"conv padding={layer.padding!r} is not supported; give explicit padding sizes")
    x = F.pad(x, layer._reversed_padding_repeated_twice)
    cols = F.unfold(x, layer.kernel_size, dilation=layer.dilation, stride=layer.stride)  # (B, C·kh·kw, L)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def weight_matrix(layer: nn.Module) -> torch.Tensor:
    """The layer's weights as a float64 (out × cols) copy.

    Parameters
    ----------
    layer : torch.nn.Linear or torch.nn.Conv2d

    Returns
    -------
    torch.Tensor, float64, shape (out, cols)
    """
    w = layer.weight.detach().to(torch.float64)
    return w.reshape(w.shape[0], -1).clone()


def gram(X: torch.Tensor) -> torch.Tensor:
    """H = XᵀX (cols × cols), float64.

    Parameters
    ----------
    X : torch.Tensor, shape (rows, cols)

    Returns
    -------
    torch.Tensor, shape (cols, cols)
    """
    return X.T @ X


def damped(H: torch.Tensor, percdamp: float) -> tuple[torch.Tensor, float]:
    """H + λI with λ = percdamp · mean(diag H) (SparseGPT's dampening); returns (H_λ, λ).

    An all-zero H (no signal at all) gets λ = 1 so the factorisations exist.

    Parameters
    ----------
    H : torch.Tensor, shape (cols, cols)
    percdamp : float

    Returns
    -------
    (torch.Tensor, float)

    References
    ----------
    E. Frantar, D. Alistarh, "SparseGPT", ICML 2023.
    """
    if not np.isfinite(percdamp) or percdamp < 0:
        raise QSelectError(f"damping must be a finite number ≥ 0 (fraction of mean diag(XᵀX)), got {percdamp!r}")
    lam = float(percdamp) * float(torch.diagonal(H).mean())
    if percdamp > 0 and lam <= 0:
        lam = 1.0
    return H + lam * torch.eye(H.shape[0], dtype=H.dtype, device=H.device), lam


def topk_mask(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """0/1 mask keeping the ``keep`` highest scores of each row (ties to the lower column).

    Parameters
    ----------
    scores : torch.Tensor, shape (out, cols)
    keep : int

    Returns
    -------
    torch.Tensor, shape (out, cols)
    """
    mask = torch.zeros_like(scores, dtype=torch.float64)
    if keep > 0:
        idx = torch.argsort(-scores, dim=1, stable=True)[:, :keep]
        mask.scatter_(1, idx, 1.0)
    return mask


@dataclass
class LayerTask:
    """One layer handed to a pruner by :func:`prune_layers`.

    Attributes
    ----------
    name : str
        Module name of the layer.
    module : nn.Module
        The layer in the working copy (its weights still dense).
    weight : torch.Tensor
        (out, cols) float64 dense weights.
    X : torch.Tensor
        (rows, cols) float64 unfolded calibration inputs (from the already-pruned network).
    keep : int
        Weights to keep per output row.
    model : nn.Module
        The working copy (earlier layers pruned), for methods that run the model.
    calib : list of torch.Tensor
        The calibration batches.
    """

    name: str
    module: nn.Module
    weight: torch.Tensor
    X: torch.Tensor
    keep: int
    model: nn.Module
    calib: list

    @property
    def H(self) -> torch.Tensor:
        """The layer inputs' Gram matrix XᵀX (computed once, cached), shape (in_features, in_features)."""
        if not hasattr(self, "_H"):
            self._H = gram(self.X)
        return self._H


#: a layer pruner: task -> (mask (out, cols) 0/1, new weights (out, cols) or None = unchanged,
#: optionally extra masks for other parameters, e.g. a bias, keyed by full parameter name)
LayerFn = Callable[[LayerTask], tuple]


@dataclass
class PruneResult:
    """Masks and weights from a pruning run.

    Attributes
    ----------
    masks : dict[str, torch.Tensor]
        Parameter name -> float 0/1 mask (CPU), the keys and shapes of
        ``qselect.formulate.select_masks``.
    weights : dict[str, torch.Tensor]
        Parameter name -> weight tensor after pruning (masked entries zero): new
        weights for methods that update them (sparsegpt, obc, refit, imp), the
        original ones otherwise.
    method, sparsity, refit : str, float, bool
        What was asked.
    other : dict[str, torch.Tensor]
        Other parameters a method changed (IMP retrains biases), applied too.
    info : dict
        ``real_sparsity`` (over the pruned weights), per-layer ``layers``
        (kept fraction, seconds), ``seconds`` (wall time of the selection).
    """

    masks: dict
    weights: dict
    method: str = ""
    sparsity: float = 0.0
    refit: bool = False
    other: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def apply(self, model: nn.Module) -> nn.Module:
        """Load the weights (and ``other``) into ``model`` and prune it with the masks; returns it.

        Parameters
        ----------
        model : nn.Module
            The same architecture the masks were made for (pruned or not).

        Returns
        -------
        nn.Module
            ``model``, changed in place, with ``torch.nn.utils.prune`` masks.
        """
        with torch.no_grad():
            for name, t in {**self.other, **self.weights}.items():
                mname, _, pname = name.rpartition(".")
                try:
                    module = model.get_submodule(mname)
                except AttributeError:
                    raise QSelectError(f"model has no module {mname!r} for {name!r}; apply the result "
                                       "to the architecture it was computed on") from None
                target = getattr(module, pname + "_orig", None)
                if target is None:
                    target = getattr(module, pname, None)
                if not isinstance(target, torch.Tensor) or tuple(target.shape) != tuple(t.shape):
                    raise QSelectError(f"parameter {name!r} is missing or has another shape in this model; "
                                       "apply the result to the architecture it was computed on")
                target.copy_(t.to(target.device, target.dtype))
        return apply_masks(model, self.masks)

    def real_sparsity(self) -> float:
        """Fraction of zeros over the masked weights."""
        kept = sum(int(m.sum()) for k, m in self.masks.items() if k.endswith("weight"))
        total = sum(m.numel() for k, m in self.masks.items() if k.endswith("weight"))
        return 1.0 - kept / total if total else 0.0


def _modules(model: nn.Module) -> dict[str, nn.Module]:
    return dict(model.named_modules())


@torch.no_grad()
def layer_order(model: nn.Module, batch: torch.Tensor, layers=None) -> list[str]:
    """Linear/Conv2d module names in the order one forward pass calls them (optionally only ``layers``).

    Parameters
    ----------
    model : torch.nn.Module
    batch : torch.Tensor
    layers : iterable of str or None

    Returns
    -------
    list of str
    """
    modules = _modules(model)
    names = [n for n, m in modules.items() if isinstance(m, PRUNABLE_TYPES)]
    if layers is not None:
        wanted = [layers] if isinstance(layers, str) else list(layers)
        wanted = [w[:-len(".weight")] if w.endswith(".weight") else w for w in wanted]
        for w in wanted:
            if w not in modules:
                raise QSelectError(f"model has no layer {w!r}; prunable layers: {names}")
            if not isinstance(modules[w], PRUNABLE_TYPES):
                raise QSelectError(f"layer {w!r} is a {type(modules[w]).__name__}; only nn.Linear and "
                                   "nn.Conv2d layers can be pruned")
        names = [n for n in names if n in wanted]
    if not names:
        raise QSelectError("the model has no nn.Linear or nn.Conv2d layer to prune")
    seen: list[str] = []
    handles = [modules[n].register_forward_hook(lambda mod, a, o, n=n: seen.append(n)) for n in names]
    was = model.training
    model.eval()
    try:
        call_or_explain(lambda: model(batch[:1].to(model_device(model))),
                        lambda why: f"the model cannot run on calibration inputs of shape {tuple(batch.shape[1:])} "
                                    f"({why}); pass inputs shaped like the model's training data")
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    order = list(dict.fromkeys(seen))
    missing = [n for n in names if n not in order]
    if missing:
        raise QSelectError(f"layer(s) {missing} are never called in the forward pass; leave them out of the "
                           "layers to prune")
    return order


@torch.no_grad()
def capture_inputs(model: nn.Module, batches: list[torch.Tensor], names: list[str]) -> dict[str, torch.Tensor]:
    """What each named layer receives on ``batches`` (concatenated over batches), in eval mode.

    Parameters
    ----------
    model : torch.nn.Module
    batches : list of torch.Tensor
    names : list of str

    Returns
    -------
    dict of str -> torch.Tensor
    """
    modules = _modules(model)
    store: dict[str, list] = {n: [] for n in names}
    handles = [modules[n].register_forward_hook(lambda mod, a, o, n=n: store[n].append(a[0].detach()))
               for n in names]
    was = model.training
    model.eval()
    dev = model_device(model)
    try:
        for x in batches:
            try:
                model(x.to(dev))
            except RuntimeError as exc:
                raise QSelectError(f"{type(model).__name__} cannot run on calibration inputs of shape "
                                   f"{tuple(x.shape)} ({str(exc).splitlines()[0]}); pass inputs shaped "
                                   "like the model's training data") from None
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return {n: torch.cat(v) for n, v in store.items()}


def working_copy(model: nn.Module) -> nn.Module:
    """A deep copy with any torch pruning made permanent (effective weights as plain parameters).

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    torch.nn.Module
    """
    work = copy.deepcopy(model)
    remove_masks(work, make_permanent=True)
    return work


def _check_finite(name: str, W: torch.Tensor, X: torch.Tensor) -> None:
    for what, t in (("weights", W), ("calibration inputs", X)):
        if not bool(torch.isfinite(t).all()):
            raise QSelectError(f"layer {name!r} has NaN or inf in its {what}; fix the model/data "
                               "(e.g. reload a good checkpoint) before pruning")


def prune_layers(model: nn.Module, calib_inputs, layer_fn: LayerFn, sparsity: float, *, layers=None,
                 refit: bool = False, damping: float = 0.01, sequential: bool = True,
                 method: str = "") -> PruneResult:
    """Prune the Linear/Conv2d layers of ``model`` one after another with ``layer_fn``.

    Parameters
    ----------
    model : nn.Module
        Not changed (a working copy is pruned).
    calib_inputs : torch.Tensor or iterable of batches / (x, y) pairs
        The calibration batch.
    layer_fn : callable
        ``LayerTask -> (mask, new_weights or None[, extra_masks])`` (see :data:`LayerFn`).
    sparsity : float
        Fraction of each row's weights to remove.
    layers : list of str, optional
        Module (or ``.weight``) names; default every Linear/Conv2d.
    refit : bool
        Follow each layer's mask by the damped least-squares refit of every row's
        kept weights (:func:`qselect.pruners.refit.refit_rows`) before the next layer.
    damping : float
        Refit dampening, a fraction of mean diag(XᵀX).
    sequential : bool
        True: each layer's inputs come from the already-pruned network; False: from the dense one.

    Returns
    -------
    PruneResult
    """
    from .refit import refit_rows

    sparsity = check_sparsity(sparsity)
    batches = calib_batches(calib_inputs)
    work = working_copy(model)
    order = layer_order(work, batches[0], layers)
    dense_inputs = None if sequential else capture_inputs(work, batches, order)
    modules = _modules(work)
    masks, weights, per_layer = {}, {}, {}
    t_all = time.perf_counter()
    for name in order:
        layer = modules[name]
        raw = capture_inputs(work, batches, [name])[name] if sequential else dense_inputs[name]
        X = unfold_inputs(layer, raw)
        W = weight_matrix(layer)
        _check_finite(name, W, X)
        keep = keep_per_row(W.shape[1], sparsity)
        t0 = time.perf_counter()
        task = LayerTask(name, layer, W, X, keep, work, batches)
        out = layer_fn(task)
        mask, new = out[0], out[1]
        extra = out[2] if len(out) > 2 else {}
        mask = torch.as_tensor(mask).to(W.device, torch.float64).reshape(W.shape)
        new = W.clone() if new is None else torch.as_tensor(new).to(W.device, torch.float64).reshape(W.shape)
        if refit:
            new = refit_rows(W, task.H, mask, damping=damping, rows=X.shape[0], name=name)
        new = new * mask
        secs = time.perf_counter() - t0
        key = f"{name}.weight" if name else "weight"
        with torch.no_grad():
            layer.weight.copy_(new.reshape(layer.weight.shape).to(layer.weight.dtype))
            for pname, m in extra.items():  # e.g. a neuron's bias: zero it in the working copy too
                _, _, leaf = pname.rpartition(".")
                p = getattr(layer, leaf)
                p.mul_(torch.as_tensor(m).to(p.device, p.dtype))
        masks[key] = mask.reshape(layer.weight.shape).to("cpu", torch.float32)
        weights[key] = new.reshape(layer.weight.shape).to("cpu", layer.weight.dtype)
        for pname, m in extra.items():
            masks[pname] = torch.as_tensor(m).detach().to("cpu", torch.float32)
        per_layer[key] = {"kept_fraction": float(mask.mean()), "keep_per_row": keep,
                          "calib_rows": int(X.shape[0]), "seconds": secs}
    info = {"layers": per_layer, "seconds": time.perf_counter() - t_all, "sequential": bool(sequential)}
    res = PruneResult(masks, weights, method, sparsity, bool(refit), info=info)
    res.info["real_sparsity"] = res.real_sparsity()
    return res


@torch.no_grad()
def layer_error(model: nn.Module, result, inputs, *, sequential: bool = True) -> dict:
    """Held-out relative output error of every pruned layer.

    For each pruned layer, with X its inputs in the pruned network (``sequential``;
    else in the dense one): ``‖Y_pruned − Y_dense‖² / ‖Y_dense‖²`` where
    ``Y_pruned = layer(X)`` with the pruned weights and ``Y_dense`` with the
    model's own weights, biases included.

    Parameters
    ----------
    model : nn.Module
        The dense model (not changed).
    result : PruneResult or dict
        A :class:`PruneResult`, or a masks dict (the model's weights, masked).
    inputs : torch.Tensor or iterable of batches
        Held-out inputs.

    Returns
    -------
    dict
        ``{"layers": {weight name: error}, "mean": mean over layers}``.
    """
    batches = calib_batches(inputs)
    if isinstance(result, PruneResult):
        masks, weights, other = result.masks, result.weights, result.other
    else:
        masks, weights, other = dict(result), {}, {}
    dense = working_copy(model)
    pruned = PruneResult(masks, weights, other=other).apply(working_copy(model))
    remove_masks(pruned, make_permanent=True)
    names = [k[:-len(".weight")] for k in masks if k.endswith(".weight")]
    src = pruned if sequential else dense
    acts = capture_inputs(src, batches, names)
    dm, pm = _modules(dense), _modules(pruned)
    out = {}
    for n in names:
        x = acts[n]
        yd = dm[n](x).double()
        yp = pm[n](x).double()
        den = float((yd ** 2).sum())
        out[f"{n}.weight"] = float(((yp - yd) ** 2).sum()) / den if den > 0 else 0.0
    return {"layers": out, "mean": float(np.mean(list(out.values()))) if out else 0.0}
