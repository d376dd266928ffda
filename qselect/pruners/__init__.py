"""One-shot classical pruners, layer by layer on a calibration batch.

Methods (per output row, every one keeping the same count per row):

``magnitude``  |W_ij| (per row)
``random``     a seeded uniform subset of each row
``wanda``      |W_ij|·‖X_j‖₂ (Sun et al. 2023)
``sparsegpt``  OBS updates through the inverse-Hessian Cholesky factor (Frantar & Alistarh 2023)
``obc``        exact greedy OBS with its weight updates (Frantar, Singh & Alistarh 2022)
``snip``       |∂L/∂w ⊙ w| on the calibration batch (Lee et al. 2019)
``imp``        iterative magnitude pruning with rewinding, fixed epoch budget (Frankle et al. 2019/2020)

Any mask can be followed by the damped least-squares refit of each row's kept
weights (``refit=True``, :func:`~qselect.pruners.refit.refit_rows`).
:func:`prune_classical` runs one of them; :func:`layer_error` measures held-out
layer outputs. ``qselect.prune`` adds the local-problem (QUBO / refit
formulation) methods on top.
"""
from __future__ import annotations

from ..errors import QSelectError
from .imp import imp_prune
from .layerwise import LayerTask, PruneResult, keep_per_row, layer_error, prune_layers, unfold_inputs
from .obc import obc_layer, obc_prune
from .refit import refit_rows
from .snip import snip_prune, snip_scores
from .sparsegpt import sparsegpt_layer, sparsegpt_prune
from .wanda import magnitude_layer, random_layer, wanda_layer, wanda_mask

#: method -> the options it accepts (besides layers, refit, seed, damping, sequential)
PRUNERS: dict[str, tuple[str, ...]] = {
    "magnitude": (),
    "random": (),
    "wanda": (),
    "sparsegpt": ("blocksize", "percdamp"),
    "obc": ("percdamp", "max_cols"),
    "snip": ("labels", "scope"),
    "imp": ("train_loader", "epochs", "rounds", "rewind_fraction", "config"),
}
_LAYER_FNS = {"magnitude": magnitude_layer, "random": random_layer, "wanda": wanda_layer,
              "sparsegpt": sparsegpt_layer, "obc": obc_layer}


def fixed_masks_fn(masks: dict):
    """A layer function that returns the given masks (original weights): for refitting any mask.

    Parameters
    ----------
    masks : dict of str -> torch.Tensor

    Returns
    -------
    callable
        A ``LayerFn``.
    """
    def fn(task: LayerTask):
        key = f"{task.name}.weight" if task.name else "weight"
        if key not in masks:
            raise QSelectError(f"no mask for layer {task.name!r}; masks cover {sorted(masks)}")
        return masks[key].reshape(task.weight.shape[0], -1), None
    return fn


def prune_classical(model, calib_inputs, method: str, sparsity: float, *, layers=None, refit: bool = False,
                    seed: int = 0, damping: float = 0.01, sequential: bool = True, **options) -> PruneResult:
    """Prune ``model`` (not changed) with a classical one-shot method.

    Parameters
    ----------
    model : nn.Module
    calib_inputs : torch.Tensor or iterable of batches / (x, y) pairs
        Calibration batch (SNIP reads labels from (x, y) pairs).
    method : str
        One of :data:`PRUNERS`.
    sparsity : float
        Fraction of every output row's weights removed.
    layers : list of str, optional
        Module names; default every Linear/Conv2d.
    refit : bool
        Refit every row's kept weights (damped least squares) after the mask.
    seed : int
        For ``random`` and ``imp``.
    damping : float
        Refit dampening (fraction of mean diag XᵀX).
    sequential : bool
        Layers see the already-pruned network's activations.
    **options
        Method options (see :data:`PRUNERS`).

    Returns
    -------
    PruneResult

    Raises
    ------
    QSelectError
        Unknown method or option, or bad input for the method.
    """
    if method not in PRUNERS:
        raise QSelectError(f"unknown pruning method {method!r}; choose one of {', '.join(PRUNERS)}")
    bad = sorted(set(options) - set(PRUNERS[method]))
    if bad:
        allowed = ", ".join(PRUNERS[method]) or "none"
        raise QSelectError(f"method {method!r} takes no option(s) {bad}; its options: {allowed}")
    if method in _LAYER_FNS:
        fn = _LAYER_FNS[method]
        opts = dict(options, seed=seed) if method == "random" else options
        res = prune_layers(model, calib_inputs, lambda t: fn(t, **opts), sparsity, layers=layers,
                           refit=refit, damping=damping, sequential=sequential, method=method)
    else:
        if method == "snip":
            res = snip_prune(model, calib_inputs, sparsity, layers=layers, **options)
        else:
            res = imp_prune(model, options.pop("train_loader", None), sparsity, layers=layers, seed=seed, **options)
        if refit:  # refit the kept weights of the given model to its own dense outputs
            mask_res = res
            res = prune_layers(model, calib_inputs, fixed_masks_fn(mask_res.masks), sparsity,
                               layers=[k[:-len(".weight")] for k in mask_res.masks],
                               refit=True, damping=damping, sequential=sequential, method=method)
            res.info["mask_info"] = {k: v for k, v in mask_res.info.items() if k != "layers"}
    res.method, res.refit = method, bool(refit)
    return res


__all__ = ["PRUNERS", "PruneResult", "LayerTask", "prune_classical", "prune_layers", "layer_error",
           "keep_per_row", "unfold_inputs", "refit_rows", "wanda_mask", "sparsegpt_prune", "obc_prune",
           "snip_scores", "snip_prune", "imp_prune", "fixed_masks_fn"]
