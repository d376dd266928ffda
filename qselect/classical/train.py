"""The one training loop every method uses, plus evaluation and prediction.

Device ``"auto"`` picks CUDA when present (with mixed precision unless
``amp=False``), else CPU (always full precision). On CPU a run is
deterministic: the same seed, model seed and loader seed give bit-identical
weights. The one-cycle schedule is ``torch.optim.lr_scheduler.OneCycleLR``
set to the Prune-and-Tune recipe: warm up over 10% of the steps from
max_lr/100 to max_lr, then cosine down to 1e-7 * max_lr.
"""
from __future__ import annotations

import copy
import dataclasses
import random
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..devices import model_device, resolve_device  # noqa: F401  (re-exported)
from ..errors import QSelectError
from . import metrics as _metrics
from .checkpoint import load_checkpoint, save_checkpoint  # noqa: F401  (re-exported)

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "step", "constant")


@dataclass
class TrainConfig:
    """Training settings. ``lr`` is the peak (max) learning rate for one-cycle.

    ``step`` schedule: multiply the rate by ``gamma`` every ``step_size`` epochs
    (default epochs // 3), or at ``milestones`` (epochs) when given.
    Early stop watches validation NLL and restores the best weights.
    """

    epochs: int = 10
    lr: float = 0.1
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    step_size: int | None = None
    gamma: float = 0.1
    milestones: tuple | None = None
    pct_start: float = 0.1
    div_factor: float = 100.0          # start lr = lr / div_factor
    final_div_factor: float = 1e5      # end lr = start lr / final_div_factor = 1e-7 lr
    batch_size: int = 128
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    progress: bool = False
    early_stop_patience: int | None = None
    grad_clip: float | None = None
    label_smoothing: float = 0.0
    extra: dict = field(default_factory=dict)  # free-form notes kept in the history

    def __post_init__(self):
        self.validate()  # settings are checked where they are made

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed, validated again (``dataclasses.replace``).

        Parameters
        ----------
        **changes
            Field name -> new value.

        Returns
        -------
        TrainConfig

        Raises
        ------
        QSelectError
            An unknown field name, or a value ``validate`` refuses.
        """
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise QSelectError(f"TrainConfig has no field {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def validate(self) -> "TrainConfig":
        """Check every field; returns ``self`` so it chains.

        Returns
        -------
        TrainConfig

        Raises
        ------
        QSelectError
            Naming the first field with a wrong type or value (e.g. a negative
            learning rate or an unknown optimizer/schedule name).
        """
        for name in ("epochs", "batch_size", "seed"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise QSelectError(f"TrainConfig.{name} must be an integer, got {v!r}")
        for name in ("lr", "momentum", "weight_decay", "gamma", "pct_start", "label_smoothing"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(v) or v < 0:
                raise QSelectError(f"TrainConfig.{name} must be a finite number ≥ 0, got {v!r}")
        if self.optimizer not in OPTIMIZERS:
            raise QSelectError(f"optimizer {self.optimizer!r} unknown; choose {' or '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise QSelectError(f"schedule {self.schedule!r} unknown; choose one of {', '.join(SCHEDULES)}")
        if self.epochs < 0 or self.lr <= 0 or self.batch_size < 1:
            raise QSelectError(f"need epochs >= 0, lr > 0 and batch_size >= 1 (got {self.epochs}, "
                               f"{self.lr}, {self.batch_size})")
        if self.early_stop_patience is not None and self.early_stop_patience < 1:
            raise QSelectError("early_stop_patience must be >= 1 or None")
        return self


def as_config(config) -> TrainConfig:
    """A validated ``TrainConfig`` from a ``TrainConfig``, a dict of its fields, or None (defaults).

    Parameters
    ----------
    config : TrainConfig, dict or None

    Returns
    -------
    TrainConfig

    Raises
    ------
    QSelectError
        On an unknown field or invalid value.
    """
    if config is None:
        return TrainConfig().validate()
    if isinstance(config, dict):
        fields = set(TrainConfig.__dataclass_fields__)
        unknown = sorted(set(config) - fields)
        if unknown:
            raise QSelectError(f"unknown TrainConfig field(s) {unknown}; valid: {', '.join(sorted(fields))}")
        return TrainConfig(**config).validate()
    if not isinstance(config, TrainConfig):
        raise QSelectError(f"config must be a TrainConfig or a dict of its fields, got {type(config).__name__}")
    return config.validate()


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) global generators.

    Parameters
    ----------
    seed : int
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _as_loader(data, config: TrainConfig, shuffle: bool) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, Dataset):
        from .data import make_loader

        if len(data) == 0:
            raise QSelectError("the dataset is empty; nothing to train or evaluate on")
        return make_loader(data, config.batch_size, shuffle=shuffle, seed=config.seed)
    raise QSelectError(f"expected a DataLoader or Dataset, got {type(data).__name__}")


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer a :class:`TrainConfig` asks for, over the trainable parameters.

    Parameters
    ----------
    params : iterable of torch.nn.Parameter
        Parameters without ``requires_grad`` are skipped.
    config : TrainConfig
        ``optimizer`` ``"sgd"`` (momentum, Nesterov when momentum > 0) or
        ``"adamw"``; ``lr``, ``weight_decay``.

    Returns
    -------
    torch.optim.Optimizer

    Raises
    ------
    QSelectError
        If no parameter requires a gradient.
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise QSelectError("nothing to train: no parameter requires grad")
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0,
                               weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(optimizer, config: TrainConfig, steps_per_epoch: int):
    """(scheduler, per_step) for the configured schedule; (None, False) for constant.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
    config : TrainConfig
    steps_per_epoch : int

    Returns
    -------
    (scheduler or None, bool)
        The scheduler and whether it steps per batch (else per epoch).
    """
    if config.schedule == "onecycle":
        total = max(1, config.epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total, pct_start=config.pct_start,
            anneal_strategy="cos", div_factor=config.div_factor,
            final_div_factor=config.final_div_factor, cycle_momentum=False), True
    if config.schedule == "step":
        if config.milestones:
            return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.milestones),
                                                        gamma=config.gamma), False
        step = config.step_size or max(1, config.epochs // 3)
        return torch.optim.lr_scheduler.StepLR(optimizer, step, gamma=config.gamma), False
    return None, False


def train(model: nn.Module, train_loader, config: TrainConfig | None = None, val_loader=None, *,
          augment: Callable | None = None, epoch_callback: Callable | None = None,
          step_callback: Callable | None = None, loss_fn: Callable | None = None) -> dict:
    """Train ``model`` in place; returns the history dict.

    ``config`` is a ``TrainConfig`` or a dict of its fields (None: defaults).
    ``train_loader``/``val_loader`` may be DataLoaders or Datasets (then batched
    with ``config.batch_size``, shuffled with ``config.seed``). ``augment`` maps an
    input batch (already on the device) to an augmented one. Only parameters
    with ``requires_grad`` are optimised (edge-popup freezes weights this way).
    ``step_callback(step, model)`` runs after each optimiser step;
    ``epoch_callback(epoch, model, history)`` after each epoch, and stops training
    when it returns True. Masks applied with torch pruning stay fixed.
    The python/numpy/torch global generators are seeded with ``config.seed``.

    History: ``train_loss``, ``train_accuracy``, ``lr`` (per epoch, lr at epoch end),
    ``val_accuracy``, ``val_nll``, ``val_ece`` (when ``val_loader``), ``epochs_run``,
    ``stopped_early``, ``best_epoch``, ``device``, ``amp``, ``config``.

    Parameters
    ----------
    model : torch.nn.Module
    train_loader : DataLoader or Dataset
    config : TrainConfig, dict or None
        Training settings (epochs, lr, batch size, schedule, seed).
    val_loader : DataLoader, Dataset or None
        Validation data (early stopping and per-epoch metrics).
    augment : callable or None
        Maps an input batch (on the device) to an augmented one.
    epoch_callback : callable or None
        ``epoch_callback(epoch, model, history)``; returning True stops training.
    step_callback : callable or None
        ``step_callback(step, model)`` after each optimiser step.
    loss_fn : callable or None
        ``loss_fn(logits, labels)``; default cross-entropy.

    Returns
    -------
    dict
        The training history.

    Raises
    ------
    QSelectError
        On invalid settings, or a model that does not fit its inputs (explained).
    """
    config = as_config(config)
    if config.early_stop_patience is not None and val_loader is None:
        raise QSelectError("early_stop_patience watches validation NLL: pass val_loader=..., "
                           "or leave early_stop_patience=None")
    device = resolve_device(config.device)
    use_amp = bool(config.amp) and device.type == "cuda"
    seed_everything(config.seed)
    model.to(device)
    loader = _as_loader(train_loader, config, shuffle=True)
    vloader = _as_loader(val_loader, config, shuffle=False) if val_loader is not None else None
    steps = len(loader)
    if steps == 0:
        raise QSelectError("the training loader yields no batches (empty dataset, or drop_last with "
                           "fewer samples than batch_size)")
    optimizer = make_optimizer(model.parameters(), config)
    scheduler, per_step = make_scheduler(optimizer, config, steps)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    loss_fn = loss_fn or (lambda logits, y: F.cross_entropy(logits, y, label_smoothing=config.label_smoothing))
    hist = {"train_loss": [], "train_accuracy": [], "lr": [], "val_accuracy": [], "val_nll": [],
            "val_ece": [], "epochs_run": 0, "stopped_early": False, "best_epoch": None,
            "device": str(device), "amp": use_amp, "config": asdict(config)}
    best, best_state, bad = float("inf"), None, 0

    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs * steps, desc="train", unit="batch", leave=False)
    step = 0
    try:
        for epoch in range(config.epochs):
            model.train()
            tot_loss = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen = 0
            for x, y in loader:
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                if augment is not None:
                    x = augment(x)
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                    if step == 0:
                        logits, loss = _first_step(model, loss_fn, x, y)
                    else:
                        logits = model(x)
                        loss = loss_fn(logits, y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if config.grad_clip:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                if per_step:
                    scheduler.step()
                step += 1
                tot_loss += loss.detach().float() * len(y)
                correct += (logits.detach().argmax(1) == y).sum()
                seen += len(y)
                if step_callback is not None:
                    step_callback(step, model)
                if bar is not None:
                    bar.update(1)
            if not torch.isfinite(tot_loss):  # checked once per epoch: no per-step GPU sync
                raise QSelectError(f"training diverged (loss {float(tot_loss)}) in epoch {epoch}; "
                                   f"lower the learning rate (lr={config.lr})")
            hist["lr"].append(optimizer.param_groups[0]["lr"])
            if scheduler is not None and not per_step:
                scheduler.step()
            hist["train_loss"].append(float(tot_loss) / max(seen, 1))
            hist["train_accuracy"].append(float(correct) / max(seen, 1))
            hist["epochs_run"] = epoch + 1
            if vloader is not None:
                ev = evaluate(model, vloader, device)
                hist["val_accuracy"].append(ev["accuracy"])
                hist["val_nll"].append(ev["nll"])
                hist["val_ece"].append(ev["ece"])
                if bar is not None:
                    bar.set_postfix(loss=f"{hist['train_loss'][-1]:.3f}", val_acc=f"{ev['accuracy']:.3f}")
                if config.early_stop_patience is not None:
                    if ev["nll"] < best - 1e-6:
                        best, bad, hist["best_epoch"] = ev["nll"], 0, epoch
                        best_state = copy.deepcopy(model.state_dict())
                    else:
                        bad += 1
                        if bad >= config.early_stop_patience:
                            hist["stopped_early"] = True
            elif bar is not None:
                bar.set_postfix(loss=f"{hist['train_loss'][-1]:.3f}")
            if epoch_callback is not None and epoch_callback(epoch, model, hist):
                break
            if hist["stopped_early"]:
                break
    finally:
        if bar is not None:
            bar.close()
    if best_state is not None and hist["stopped_early"]:
        model.load_state_dict(best_state)  # restore the best validation weights
    return hist


def _first_step(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor):
    """The first forward + loss: a model that does not fit the data fails here, said in one line."""
    logits = call_or_explain(lambda: model(x), lambda why: f"{type(model).__name__} cannot run on batches of "
                             f"inputs {tuple(x.shape)} ({why}); build the model with the data's input_shape")
    classes = logits.shape[-1] if logits.ndim >= 2 else None
    if classes is not None and y.dtype in (torch.int64, torch.int32) and y.numel() \
            and (int(y.min()) < 0 or int(y.max()) >= classes):
        raise QSelectError(f"labels run from {int(y.min())} to {int(y.max())} but must lie in 0..{classes - 1} "
                           f"for the model's {classes} outputs; check the dataset's labels (or, if they are "
                           f"right, build the model with num_classes={int(y.max()) + 1})")
    return logits, call_or_explain(lambda: loss_fn(logits, y), lambda why: f"the loss cannot use labels of "
                                   f"shape {tuple(y.shape)} for outputs {tuple(logits.shape)} ({why})")


def call_or_explain(fn: Callable, explain: Callable[[str], str]):
    """Call ``fn()``, turning a shape error into one explained line.

    ``fn()``; a RuntimeError/IndexError it raises (a model that does not fit its inputs) becomes one
    ``QSelectError(explain(first line of torch's message))``.

    Parameters
    ----------
    fn : callable
        Called without arguments.
    explain : callable
        Maps torch's first error line to the one-line explanation.

    Returns
    -------
    object
        What ``fn`` returns.

    Raises
    ------
    QSelectError
        Instead of a RuntimeError/IndexError from ``fn``.
    """
    try:
        return fn()
    except torch.cuda.OutOfMemoryError:
        raise  # a RuntimeError too, but not a shape problem: keep torch's own advice
    except (RuntimeError, IndexError) as exc:
        raise QSelectError(explain(first_line(exc))) from None


def first_line(exc: BaseException) -> str:
    """The first line of a library error, to quote inside a one-line QSelectError.

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    str
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@torch.no_grad()
def predict_proba(model: nn.Module, loader, device=None) -> tuple[np.ndarray, np.ndarray]:
    """Softmax outputs (N, C) float64 and labels (N,) int64 over ``loader`` (model in eval mode).

    Parameters
    ----------
    model : torch.nn.Module
    loader : torch.utils.data.DataLoader
        Yields (inputs, labels).
    device : str, torch.device or None
        Default: the model's device.

    Returns
    -------
    probs : numpy.ndarray of float64, shape (N, C)
    labels : numpy.ndarray of int64, shape (N,)
    """
    if isinstance(loader, Dataset) and not isinstance(loader, DataLoader):
        from .data import make_loader

        loader = make_loader(loader, 512)
    dev = model_device(model) if device is None else resolve_device(device)
    if dev != model_device(model):
        model.to(dev)
    was_training = model.training
    model.eval()
    probs, labels = [], []
    try:
        for x, y in loader:
            logits = model(x.to(dev, non_blocking=True))
            probs.append(torch.softmax(logits.float(), dim=1).double().cpu())
            labels.append(y.cpu())
    finally:
        model.train(was_training)
    if not probs:
        raise QSelectError("the evaluation loader yields no batches")
    return torch.cat(probs).numpy(), torch.cat(labels).numpy().astype(np.int64)


def evaluate(model: nn.Module, loader, device=None) -> dict:
    """``{"accuracy", "nll", "ece"}`` of ``model`` on ``loader`` (ECE with 15 bins).

    Parameters
    ----------
    model : torch.nn.Module
    loader : torch.utils.data.DataLoader
        Yields (inputs, labels).
    device : str, torch.device or None
        Default: the model's device.

    Returns
    -------
    dict
    """
    probs, labels = predict_proba(model, loader, device)
    return {"accuracy": _metrics.accuracy(probs, labels), "nll": _metrics.nll(probs, labels),
            "ece": _metrics.ece(probs, labels)}
