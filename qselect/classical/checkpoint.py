"""Model checkpoints: atomic write, safe load (``weights_only``), masks carried along.

A pruned model's state dict holds ``weight_orig`` / ``weight_mask`` entries;
the checkpoint also records the masks so that loading into a fresh (unpruned)
model of the same architecture first re-applies them and then loads weights.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from torch import nn

from ..errors import QSelectError
from ..io import atomic_write_bytes
from .masks import _is_pruned, _split, apply_masks, get_masks

_FORMAT = "qselect-checkpoint"


def _plain(obj):
    """Meta as plain JSON types, so it loads with ``torch.load(weights_only=True)``."""
    def default(o):
        if hasattr(o, "item") and getattr(o, "ndim", 1) == 0:
            return o.item()
        if hasattr(o, "tolist"):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        if isinstance(o, (set, tuple)):
            return list(o)
        raise TypeError(f"checkpoint meta value of type {type(o).__name__} is not JSON-like")
    return json.loads(json.dumps(obj, default=default))


def save_checkpoint(path, model: nn.Module, meta: dict | None = None, optimizer=None) -> Path:
    """Write model weights (+ masks, meta, optional optimizer state) atomically to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
    model : torch.nn.Module
        Its masks (if pruned) are saved beside the weights.
    meta : dict or None
        JSON-like metadata (model name, input shape, ...).
    optimizer : torch.optim.Optimizer or None

    Returns
    -------
    pathlib.Path
    """
    try:
        meta = _plain(dict(meta or {}))
    except (TypeError, ValueError) as exc:
        raise QSelectError(f"{exc}; checkpoint meta must hold JSON-like values (numbers, strings, "
                           "lists, dicts)") from None
    if Path(path).is_dir():
        raise QSelectError(f"checkpoint path {path} is a directory; give a file name such as "
                           f"{Path(path) / 'model.pt'}")
    payload = {
        "format": _FORMAT, "version": 1,
        "model_class": type(model).__name__,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "masks": {k: v.bool() for k, v in get_masks(model).items()},
        "meta": meta,
    }
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    # through memory: torch.save to a path records that (temporary) file's name in the
    # archive, which would make identical runs write different bytes
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path, model: nn.Module | None = None, *, map_location="cpu") -> dict:
    """Read a checkpoint; with ``model``, load its weights (and masks) into it in place.

    Returns the payload dict: ``state_dict``, ``masks`` (float), ``meta``, ``model_class``
    and ``optimizer`` when saved. A missing, corrupt or foreign file, or one made for
    another architecture, raises ``QSelectError``.

    Parameters
    ----------
    path : str or os.PathLike
    model : torch.nn.Module or None
        Loaded in place when given.
    map_location : str or torch.device

    Returns
    -------
    dict

    Raises
    ------
    QSelectError
        If the file is missing, corrupt, not a qselect checkpoint, or made
        for another architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise QSelectError(f"checkpoint {path} does not exist; write one with save_checkpoint "
                           "(or train with a checkpoint path)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, garbage bytes, unpickling refusal, ...
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            # a readable file that holds pickled objects (torch.save(model)): never unpickled here
            raise QSelectError(f"{path} holds a pickled Python object (e.g. torch.save(model)), which qselect does "
                               "not load (unpickling can run code); save the weights instead: "
                               "torch.save(model.state_dict(), 'weights.pt'), or "
                               "qselect.classical.checkpoint.save_checkpoint(path, model, "
                               "meta={'model': ...})") from None
        raise QSelectError(f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__}); "
                           "delete it and re-run training to re-create it") from None
    if isinstance(payload, dict) and payload and "format" not in payload \
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload.items()):
        raise QSelectError(f"{path} is a plain state_dict (weights without an architecture); load it into the "
                           "model it came from with model.load_state_dict(torch.load(path)), or save it with "
                           "save_checkpoint(path, model, meta={'model': NAME, 'model_kwargs': {...}})")
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise QSelectError(f"{path} is not a qselect checkpoint (no {_FORMAT!r} tag); expected a "
                           "file written by save_checkpoint")
    for key, kind in (("state_dict", dict), ("masks", dict), ("meta", dict)):
        if key in payload and not isinstance(payload[key], kind):
            raise QSelectError(f"checkpoint {path} is malformed: its {key!r} is a {type(payload[key]).__name__}, "
                               "not a dict; re-create it with save_checkpoint")
    tensors = {**payload.get("masks", {}), **payload.get("state_dict", {})}
    bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise QSelectError(f"checkpoint {path} is malformed: {bad[0]!r} is not a tensor; re-create it with "
                           "save_checkpoint")
    payload["masks"] = {k: v.float() for k, v in payload.get("masks", {}).items()}
    if model is not None:
        _load_into(model, payload, path)
    return payload


def _load_into(model: nn.Module, payload: dict, path: Path) -> None:
    masks = payload["masks"]
    cls = payload.get("model_class")
    try:
        # re-create the pruning re-parametrisation the saved weights expect
        missing = {}
        for name, m in masks.items():
            mname, pname = _split(name)
            if not _is_pruned(model.get_submodule(mname), pname):
                missing[name] = m
        if missing:
            apply_masks(model, missing)
        for name in get_masks(model):
            if name not in masks:
                raise QSelectError(f"model has a mask on {name!r} but checkpoint {path} does not; "
                                   "load it into an unpruned model (remove_masks) instead")
        device = next(model.parameters(), torch.empty(0)).device
        model.load_state_dict({k: v.to(device) for k, v in payload["state_dict"].items()})
    except QSelectError as exc:
        raise QSelectError(f"checkpoint {path} (a {cls}) does not fit this "
                           f"{type(model).__name__}: {exc}") from None
    except (RuntimeError, AttributeError, KeyError) as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise QSelectError(f"checkpoint {path} (a {cls}) does not fit this {type(model).__name__}: "
                           f"{detail[:300]}; build the same architecture it was saved from") from None
