"""Representation-level diversity of ensemble members that share a parent.

Output-level metrics (disagreement, pairwise KL) say *that* members differ;
this module says *where*:

* ``linear_cka`` - linear centred kernel alignment (Kornblith et al. 2019)
  between two representations of the same inputs,
  ``CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with
  column-centred ``Xc, Yc``; 1 for identical representations, invariant to
  orthogonal transforms and isotropic scaling of either.
* ``layer_activations`` / ``cka_matrices`` - members' activations at named
  layers (forward hooks; conv maps flattened) and the member x member CKA per layer.
* ``activation_maximisation`` - an input that maximises one unit (a neuron, or
  the mean of a channel) by gradient ascent under a simple image prior
  (L2 decay, total-variation smoothing, random jitter, clamped to the data
  range), as in Olah et al.'s feature visualisation; ``top_activating`` - the
  real inputs that excite the unit most.
* ``feature_grid`` - one labelled PNG per layer: a row per member, for each
  chosen unit its activation-maximising image and its top real inputs.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from qselect.errors import QSelectError

from ._common import make_generator


def _as2d(x, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or x.shape[0] < 2:
        raise QSelectError(f"{what} must be an (n_samples >= 2, features...) array, got shape {x.shape}")
    return x.reshape(x.shape[0], -1)


def linear_cka(x, y) -> float:
    """Linear CKA between two representations of the same ``n`` inputs.

    Parameters
    ----------
    x : array or tensor, shape (n, p1, ...)
        First representation (trailing axes are flattened).
    y : array or tensor, shape (n, p2, ...)
        Second representation of the same inputs in the same order.

    Returns
    -------
    float
        In [0, 1]; 1 when ``y`` is ``x`` up to an orthogonal transform and
        isotropic scaling (and translation). 0 when either is constant.

    Raises
    ------
    QSelectError
        Different numbers of samples, or fewer than 2.

    References
    ----------
    S. Kornblith, M. Norouzi, H. Lee, G. Hinton, "Similarity of Neural Network
    Representations Revisited", ICML 2019 (eq. for linear CKA).
    """
    a, b = _as2d(x, "x"), _as2d(y, "y")
    if a.shape[0] != b.shape[0]:
        raise QSelectError(f"CKA compares representations of the same inputs: got {a.shape[0]} and "
                           f"{b.shape[0]} samples")
    a = a - a.mean(0, keepdims=True)
    b = b - b.mean(0, keepdims=True)
    # the feature-space form is cheaper when features < samples, else the Gram (sample-space) form
    if max(a.shape[1], b.shape[1]) <= a.shape[0]:
        cross = np.linalg.norm(b.T @ a) ** 2
        den = np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)
    else:
        ka, kb = a @ a.T, b @ b.T
        cross = float((ka * kb).sum())
        den = np.linalg.norm(ka) * np.linalg.norm(kb)
    return float(cross / den) if den > 0 else 0.0


def default_layers(model: nn.Module) -> list[str]:
    """Names of the model's ``nn.ReLU`` modules (post-activation representations), in module order.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    list of str
    """
    names = [n for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    if not names:
        raise QSelectError(f"{type(model).__name__} has no nn.ReLU modules; pass layers= with module names")
    return names


def _module(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise QSelectError(f"{type(model).__name__} has no module {name!r}; pick from "
                           f"{[n for n, _ in model.named_modules() if n][:8]}") from None


@torch.no_grad()
def layer_activations(model: nn.Module, inputs: torch.Tensor, layers: Sequence[str] | None = None,
                      batch_size: int = 512) -> dict[str, torch.Tensor]:
    """Outputs of the named modules for ``inputs`` (eval mode), float32 on CPU.

    Parameters
    ----------
    model : nn.Module
    inputs : Tensor, shape (n, ...)
        A batch of model inputs.
    layers : sequence of str, optional
        Module names; default ``default_layers(model)`` (the ReLUs).
    batch_size : int
        Forward pass chunk size.

    Returns
    -------
    dict of str -> Tensor
        ``(n, units, ...)`` per layer: (n, features) for Linear, (n, C, H, W) for conv.
        A module called several times keeps its last call.
    """
    from qselect.devices import model_device

    layers = list(layers) if layers is not None else default_layers(model)
    store: dict[str, list] = {n: [] for n in layers}
    current: dict[str, torch.Tensor] = {}

    def hook(name):
        def fn(_m, _inp, out):
            current[name] = out.detach().float().cpu()
        return fn

    handles = [_module(model, n).register_forward_hook(hook(n)) for n in layers]
    was = model.training
    model.eval()
    dev = model_device(model)
    try:
        for i in range(0, inputs.shape[0], batch_size):
            current.clear()
            model(inputs[i:i + batch_size].to(dev))
            for n in layers:
                if n not in current:
                    raise QSelectError(f"module {n!r} was not called in the forward pass; pick a used module")
                store[n].append(current[n])
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return {n: torch.cat(v) for n, v in store.items()}


def cka_matrices(members: Sequence[nn.Module], inputs: torch.Tensor,
                 layers: Sequence[str] | None = None) -> dict:
    """Member x member linear CKA at every layer.

    Parameters
    ----------
    members : sequence of nn.Module
        Models of one architecture (e.g. children of one parent).
    inputs : Tensor, shape (n, ...)
        The same inputs for every member (a few hundred test samples suffice).
    layers : sequence of str, optional
        Module names; default the ReLUs of the first member.

    Returns
    -------
    dict
        ``{"layers": [...], "matrices": {layer: (M, M) list}, "mean_offdiag": {layer: float},
        "mean": float}`` - ``mean_offdiag`` is the mean CKA over member pairs (1 = identical
        representations; lower = more diverse), ``mean`` averages it over layers.

    References
    ----------
    S. Kornblith et al., "Similarity of Neural Network Representations Revisited", ICML 2019.
    """
    if len(members) < 2:
        raise QSelectError("CKA diversity needs at least 2 members")
    layers = list(layers) if layers is not None else default_layers(members[0])
    acts = [layer_activations(m, inputs, layers) for m in members]
    out = {"layers": layers, "matrices": {}, "mean_offdiag": {}}
    for name in layers:
        k = len(members)
        mat = np.eye(k)
        for i in range(k):
            for j in range(i + 1, k):
                mat[i, j] = mat[j, i] = linear_cka(acts[i][name], acts[j][name])
        out["matrices"][name] = mat.tolist()
        out["mean_offdiag"][name] = float(mat[~np.eye(k, dtype=bool)].mean())
    out["mean"] = float(np.mean(list(out["mean_offdiag"].values())))
    return out


def _unit_count(model: nn.Module, layer: str, sample: torch.Tensor) -> int:
    out = layer_activations(model, sample[:2] if sample.shape[0] >= 2 else sample, [layer])[layer]
    return int(out.shape[1])


def _check_unit(model, layer, unit, sample) -> None:
    n = _unit_count(model, layer, sample)
    if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or not 0 <= unit < n:
        raise QSelectError(f"unit index {unit!r} is beyond layer {layer!r}, which has {n} units (0..{n - 1})")


def _unit_value(out: torch.Tensor, unit: int) -> torch.Tensor:
    """Per-sample activation of ``unit``: the value for (n, units), the channel mean for (n, C, H, W)."""
    v = out[:, unit]
    return v.reshape(v.shape[0], -1).mean(1)


def top_activating(model: nn.Module, layer: str, unit: int, inputs: torch.Tensor, k: int = 4) -> dict:
    """The ``k`` inputs (of ``inputs``) that activate ``unit`` of ``layer`` most.

    Parameters
    ----------
    model : torch.nn.Module
    layer : str
        Name of a ReLU module.
    unit : int
    inputs : torch.Tensor
    k : int

    Returns
    -------
    dict
        ``{"indices": [k ints into inputs], "values": [k floats]}``, strongest first.

    Raises
    ------
    QSelectError
        ``unit`` beyond the layer, or ``k`` < 1.
    """
    if int(k) < 1:
        raise QSelectError(f"k must be >= 1, got {k}")
    _check_unit(model, layer, unit, inputs)
    vals = _unit_value(layer_activations(model, inputs, [layer])[layer], unit)
    top = torch.argsort(vals, descending=True, stable=True)[: int(k)]
    return {"indices": [int(i) for i in top], "values": [float(vals[i]) for i in top]}


def activation_maximisation(model: nn.Module, layer: str, unit: int, input_shape, *, steps: int = 150,
                            lr: float = 0.05, l2: float = 1e-3, tv: float = 5e-2, jitter: int = 1,
                            value_range: tuple[float, float] = (0.0, 1.0), seed: int = 0) -> dict:
    """An input that maximises ``unit`` of ``layer`` under a simple image prior.

    Gradient ascent (Adam) on ``activation - l2 * ||x||^2 - tv * TV(x)`` (for a ReLU
    module, its pre-activation, which has the same maximiser and no dead gradient) from a
    seeded grey image plus small noise; every step the image is rolled by a
    random shift of up to ``jitter`` pixels (robustness prior) and clamped to
    ``value_range`` (the data's range).

    Parameters
    ----------
    model : nn.Module
    layer : str
        Module name (e.g. a ReLU); conv channels are maximised by their spatial mean.
    unit : int
        Neuron / channel index in the layer's output.
    input_shape : tuple
        Shape of one model input, e.g. (64,) for flat 8x8 digits or (1, 8, 8).
        Flat square inputs are optimised as square images.
    steps, lr, l2, tv, jitter : optimisation and prior settings.
    value_range : (float, float)
        Clamp range of the image.
    seed : int
        Seeds the start image and the jitter.

    Returns
    -------
    dict
        ``{"image": (C, H, W) float tensor, "activation": float}`` (activation at the final image).

    Raises
    ------
    QSelectError
        ``unit`` beyond the layer, or an input shape that is not an image.

    References
    ----------
    D. Erhan, Y. Bengio, A. Courville, P. Vincent, "Visualizing Higher-Layer Features of a
    Deep Network", 2009; C. Olah, A. Mordvintsev, L. Schubert, "Feature Visualization", Distill 2017.
    """
    shape = tuple(int(v) for v in input_shape)
    img_shape = image_shape(shape)
    dev = next(model.parameters()).device
    sample = torch.zeros((2,) + shape)
    _check_unit(model, layer, unit, sample)
    gen = make_generator(seed)
    lo, hi = float(value_range[0]), float(value_range[1])
    x = (0.5 * (lo + hi) + 0.01 * (hi - lo) * torch.randn((1,) + img_shape, generator=gen)).to(dev)
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    captured = {}
    module = _module(model, layer)
    relu = isinstance(module, nn.ReLU)

    def grab(_m, inp, out):
        captured["out"] = out
        # ascend a ReLU's pre-activation: the same maximiser, but no zero gradient from an inactive start
        captured["objective"] = inp[0] if relu else out

    handle = module.register_forward_hook(grab)
    was = model.training
    model.eval()
    try:
        for _ in range(int(steps)):
            dy, dx = (torch.randint(-jitter, jitter + 1, (2,), generator=gen).tolist() if jitter else (0, 0))
            xs = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            model(xs.reshape((1,) + shape))
            act = _unit_value(captured["objective"], unit).mean()
            tv_term = (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
            loss = -act + l2 * (x ** 2).mean() + tv * tv_term
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(lo, hi)
        with torch.no_grad():
            model(x.reshape((1,) + shape))
            final = float(_unit_value(captured["out"], unit).mean())
    finally:
        handle.remove()
        model.train(was)
        model.zero_grad(set_to_none=True)
    return {"image": x.detach().cpu()[0], "activation": final}


def image_shape(input_shape) -> tuple[int, int, int]:
    """(C, H, W) for an image input shape, or (1, s, s) for a flat square one (digits' (64,)).

    Parameters
    ----------
    input_shape : tuple of int

    Returns
    -------
    (int, int, int)
    """
    shape = tuple(int(v) for v in input_shape)
    if len(shape) == 3:
        return shape
    if len(shape) == 2:
        return (1,) + shape
    if len(shape) == 1:
        side = int(round(np.sqrt(shape[0])))
        if side * side == shape[0]:
            return (1, side, side)
    raise QSelectError(f"feature visualisation needs image inputs (C, H, W) or a flat square image, got "
                       f"input shape {shape}")


def _to_rgb(img: torch.Tensor, mean=None, std=None) -> np.ndarray:
    a = img.detach().cpu().float()
    if mean is not None and std is not None and len(mean) == a.shape[0]:
        a = a * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
    a = a.numpy()
    a = (a - a.min()) / (a.max() - a.min() + 1e-12)
    return a[0] if a.shape[0] == 1 else np.transpose(a[:3], (1, 2, 0))


def feature_grid(members: Mapping[str, nn.Module], layer: str, units: Sequence[int], inputs: torch.Tensor,
                 path, *, top_k: int = 3, input_shape=None, steps: int = 150, seed: int = 0,
                 title: str | None = None, mean=None, std=None, value_range=None) -> dict:
    """Draw one labelled PNG for ``layer``, a row per member.

    Per unit: its activation-maximising image, then its ``top_k`` top-activating real inputs.

    Parameters
    ----------
    members : mapping of str -> nn.Module
        Row label -> model (e.g. ``{"snapshot 1": m1, "PaT child 1": c1, ...}``).
    layer : str
        Module name visualised.
    units : sequence of int
        Units (neurons / channels) shown; each must exist in the layer.
    inputs : Tensor, shape (n, ...)
        Real inputs to rank (e.g. test images).
    path : str or Path
        PNG written atomically.
    top_k : int
        Real inputs shown per unit.
    input_shape : tuple, optional
        One input's shape (default ``inputs.shape[1:]``).
    steps, seed : activation-maximisation settings.
    title : str, optional
    mean, std : per-channel normalisation to undo for display (CIFAR).
    value_range : (lo, hi), optional
        Clamp range for the optimised image (default: the inputs' min and max).

    Returns
    -------
    dict
        Numbers behind the figure: per member label and unit, ``activation`` (of the
        optimised image), ``top_indices``, ``top_values``.

    Raises
    ------
    QSelectError
        A unit index beyond the layer, or an empty member mapping.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qselect.io import atomic_write_with

    if not members:
        raise QSelectError("feature_grid needs at least one member")
    units = [int(u) for u in units]
    shape = tuple(inputs.shape[1:]) if input_shape is None else tuple(input_shape)
    img_shape = image_shape(shape)
    vr = value_range if value_range is not None else (float(inputs.min()), float(inputs.max()))
    labels = list(members)
    cols_per_unit = 1 + int(top_k)
    ncols, nrows = len(units) * cols_per_unit, len(labels)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(6.0, 1.05 * ncols + 1.8), 1.25 * nrows + 1.0),
                             squeeze=False)
    numbers: dict = {}
    cmap = "gray" if img_shape[0] == 1 else None
    for r, label in enumerate(labels):
        model = members[label]
        numbers[label] = {}
        for u_i, unit in enumerate(units):
            am = activation_maximisation(model, layer, unit, shape, steps=steps, seed=seed + unit,
                                         value_range=vr)
            top = top_activating(model, layer, unit, inputs, k=top_k)
            numbers[label][str(unit)] = {"activation": am["activation"], "top_indices": top["indices"],
                                         "top_values": top["values"]}
            c0 = u_i * cols_per_unit
            ax = axes[r, c0]
            ax.imshow(_to_rgb(am["image"], mean, std), cmap=cmap, interpolation="nearest")
            ax.set_title(f"unit {unit}\nmax {am['activation']:.2f}", fontsize=7, color="tab:red")
            for spine in ax.spines.values():
                spine.set_edgecolor("tab:red")
                spine.set_linewidth(1.5)
            for j, (idx, val) in enumerate(zip(top["indices"], top["values"])):
                ax = axes[r, c0 + 1 + j]
                ax.imshow(_to_rgb(inputs[idx].reshape(img_shape), mean, std), cmap=cmap, interpolation="nearest")
                ax.set_title(f"top {j + 1}: {val:.2f}", fontsize=6)
            if u_i == 0:
                axes[r, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or f"layer {layer}: activation maximisation (red) and top real inputs", fontsize=10)
    fig.tight_layout()
    atomic_write_with(path, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)
    return numbers
