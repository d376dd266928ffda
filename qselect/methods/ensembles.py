"""Prune and Tune ensembles (Whitaker & Whitley, AAAI 2022), with quantum-selected children.

Train (or load) one parent; clone it ``children`` times; prune each clone with
a child method; fine-tune each briefly with the one-cycle schedule; predict by
averaging the members' softmax.  Child methods:

* ``"random"``     - a seeded random mask per child (``random_masks``);
* ``"magnitude"``  - the parent's magnitude mask (the same topology for all;
  diversity then comes from seeds and bagging);
* ``"antirandom"`` - sibling pairs: a random 50% mask and its exact complement,
  so every parent weight lives in exactly one sibling;
* ``"partition"``  - N-way partitions (each child samples 1/N of the parent's
  weights without replacement; ``parts`` siblings per group);
* ``"qselect"``    - masks from qselect's local problems
  (``qselect.formulate.select_masks``): each child gets its own calibration
  batch and seed, plus per-child ``select_options`` (solver, penalty, k,
  formulation...), so children are distinct selections of the same parent.

Cost accounting: ``epochs`` counts every training epoch (parent + children);
``flop_epochs`` weights each child's epochs by its FLOP density (effective /
dense FLOPs of its mask, from ``qselect.classical.flops.count_flops``) and by
its share of the data when bagging — the paper's "children counted at density".
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from qselect.errors import QSelectError
from qselect.validation import check_sparsity

from ._common import check_fraction, make_generator
from .partitions import partition_children

CHILD_METHODS = ("random", "magnitude", "antirandom", "partition", "qselect")

Masks = dict[str, torch.Tensor]


@dataclass
class PaTConfig:
    """Options of a Prune and Tune ensemble.

    ``sparsity`` applies to random/magnitude/qselect children; anti-random
    children are at 50% and N-way partition children at 1 - 1/parts of the
    parent (``parts`` defaults to round(1 / (1 - sparsity))).
    ``tune`` is the children's TrainConfig (its schedule is forced to one-cycle,
    its epochs to ``tune_epochs``, its seed to one per child); None uses
    the paper's recipe (SGD Nesterov, momentum 0.9, wd 5e-4, batch 128) with
    ``lr`` and ``tune_epochs``.
    """

    children: int = 6
    method: str = "antirandom"
    sparsity: float = 0.5
    parts: int | None = None
    tune_epochs: int = 2
    lr: float = 0.05
    bagging: bool = False
    bag_fraction: float = 0.9
    parent_member: bool = False
    scope: str = "layer"
    seed: int = 0
    batch_size: int = 128
    select_options: Any = None  # dict, or list of dicts cycled over children ("qselect")
    calib_size: int = 128
    tune: Any = None  # qselect.classical.train.TrainConfig

    def __post_init__(self):
        self.validate()  # settings are checked where they are made

    def replace(self, **changes) -> "PaTConfig":
        """A copy with some fields changed, validated again (``dataclasses.replace``).

        Parameters
        ----------
        **changes
            Field name -> new value.

        Returns
        -------
        PaTConfig

        Raises
        ------
        QSelectError
            An unknown field name, or a value ``validate`` refuses.
        """
        import dataclasses

        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise QSelectError(f"PaTConfig has no field {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Check every field.

        Raises
        ------
        QSelectError
            Naming the first invalid field (unknown child method, non-positive
            ``children``, sparsity outside [0, 1), ``bag_fraction`` outside (0, 1],
            negative ``tune_epochs``, ...).
        """
        if self.method not in CHILD_METHODS:
            raise QSelectError(f"unknown child method {self.method!r}; use one of {', '.join(CHILD_METHODS)}")
        if int(self.children) != self.children or self.children < 1:
            raise QSelectError(f"children must be a positive integer, got {self.children!r}")
        check_sparsity(self.sparsity)
        check_fraction(self.bag_fraction, "bag_fraction", low_open=True)
        if self.tune_epochs < 0:
            raise QSelectError(f"tune_epochs must be >= 0, got {self.tune_epochs}")
        if self.method == "qselect" and self.calib_size < 1:
            raise QSelectError(f"calib_size must be >= 1, got {self.calib_size}")

    def resolved_parts(self) -> int:
        """Number of disjoint parts the parent's weights are split into.

        2 for anti-random children, else from ``parts`` or the sparsity.
        """
        return 2 if self.method == "antirandom" else partition_parts(self.sparsity, self.parts)


def partition_parts(sparsity: float, parts: int | None = None) -> int:
    """Siblings per N-way partition: ``parts``, else the N whose 1/N share is closest to 1 - sparsity.

    Parameters
    ----------
    sparsity : float
    parts : int or None

    Returns
    -------
    int
    """
    return int(parts) if parts is not None else max(2, int(round(1.0 / (1.0 - sparsity))))


@dataclass
class PaTResult:
    """Members of a Prune and Tune ensemble and what they cost."""

    parent: nn.Module
    children: list[nn.Module]
    masks: list[Masks]
    histories: list[dict]
    config: PaTConfig
    cost: dict
    info: dict = field(default_factory=dict)

    @property
    def members(self) -> list[nn.Module]:
        """The ensemble's models: the children, preceded by the parent when ``config.parent_member``."""
        return ([self.parent] if self.config.parent_member else []) + list(self.children)

    def evaluate(self, loader, device=None) -> dict:
        """Ensemble metrics on ``loader`` (see ``evaluate_ensemble``) plus the cost.

        Parameters
        ----------
        loader : torch.utils.data.DataLoader
            Yields (inputs, labels).
        device : str, torch.device or None
            Default: the model's device.

        Returns
        -------
        dict
            ``accuracy``, ``nll``, ``ece`` of the ensemble, diversity
            (``disagreement``, ``pairwise_kl``, ``output_correlation``) and the cost in
            epochs and FLOP-weighted epochs.
        """
        out = evaluate_ensemble(self.members, loader, device=device)
        out["cost"] = dict(self.cost)
        out["method"] = self.config.method
        return out


def child_masks(parent: nn.Module, method: str, children: int, *, sparsity: float = 0.5,
                seed: int = 0, parts: int | None = None, scope: str = "layer",
                calib_inputs: torch.Tensor | None = None, calib_size: int = 128,
                select_options=None) -> tuple[list[Masks], dict]:
    """Masks for ``children`` clones of ``parent`` by ``method`` (see module docstring).

    Masks only cover the prunable weights and are relative to the full
    parameter; if the parent is already pruned, they keep only weights the
    parent keeps.  Returns ``(masks, info)``; ``info`` holds per-child details
    (e.g. the qselect summaries and how many children came out identical).

    Parameters
    ----------
    parent : torch.nn.Module
    method : {"random", "magnitude", "antirandom", "partition", "qselect"}
    children : int
    sparsity : float
    seed : int
    parts : int or None
        N of an N-way partition.
    scope : {"layer", "global"}
    calib_inputs : torch.Tensor or None
        Calibration pool for ``qselect`` children (each gets its own batch).
    calib_size : int
    select_options : dict or None
        Passed to :func:`qselect.formulate.select_masks` (solver, qubits, ...).

    Returns
    -------
    masks : list of dict
    info : dict
    """
    from qselect.classical.baselines import magnitude_masks, random_masks
    from qselect.classical.masks import get_masks, prunable_parameters

    parent_masks = get_masks(parent, include_dense=True)
    names = prunable_parameters(parent)
    info: dict = {}
    if method == "random":
        out = [random_masks(parent, sparsity, scope=scope, seed=seed + i) for i in range(children)]
    elif method == "magnitude":
        m = magnitude_masks(parent, sparsity, scope=scope)
        out = [{k: v.clone() for k, v in m.items()} for _ in range(children)]
    elif method in ("antirandom", "partition"):
        n = 2 if method == "antirandom" else partition_parts(sparsity, parts)
        out = partition_children(parent, children, n, seed=seed, layers=names)
        info["parts"] = n
    elif method == "qselect":
        out, info = _qselect_children(parent, children, sparsity=sparsity, seed=seed,
                                      calib_inputs=calib_inputs, calib_size=calib_size,
                                      options=select_options)
    else:
        raise QSelectError(f"unknown child method {method!r}; use one of {', '.join(CHILD_METHODS)}")
    # never revive a weight the parent has already pruned
    out = [{k: (v.float().cpu() * parent_masks[k].cpu()) if k in parent_masks else v.float().cpu()
            for k, v in m.items()} for m in out]
    info["identical_pairs"] = _identical_pairs(out)
    return out, info


def _qselect_children(parent, children, *, sparsity, seed, calib_inputs, calib_size, options):
    from qselect.formulate import select_masks

    if calib_inputs is None:
        raise QSelectError("qselect children need calibration inputs; pass the training data "
                           "(prune_and_tune does) or calib_inputs=")
    if options is None:
        options = [{}]
    elif isinstance(options, dict):
        options = [options]
    options = list(options)
    gen = make_generator(seed)
    device = next(parent.parameters()).device
    out, summaries = [], []
    for i in range(children):
        opts = dict(options[i % len(options)])
        opts.setdefault("sparsity", sparsity)
        opts.setdefault("seed", seed + i)
        # each child sees its own calibration batch: distinct local problems -> distinct masks
        n = min(int(calib_size), calib_inputs.shape[0])
        idx = torch.randperm(calib_inputs.shape[0], generator=gen)[:n]
        selection = select_masks(parent, calib_inputs[idx].to(device), **opts)
        out.append({k: torch.as_tensor(v).float().cpu() for k, v in selection.masks.items()})
        try:
            summaries.append(selection.summary())
        except Exception as exc:  # a summary is informative only; never fail a run on it
            summaries.append({"summary_error": f"{type(exc).__name__}: {exc}"})
    return out, {"selections": summaries, "options": options}


def _identical_pairs(masks: list[Masks]) -> int:
    count = 0
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            if masks[i].keys() == masks[j].keys() and all(torch.equal(masks[i][k], masks[j][k]) for k in masks[i]):
                count += 1
    return count


def bagged_dataset(dataset: TensorDataset, fraction: float, seed: int) -> TensorDataset:
    """A seeded random ``fraction`` of ``dataset`` (without replacement).

    Parameters
    ----------
    dataset : torch.utils.data.TensorDataset
    fraction : float
        In (0, 1].
    seed : int

    Returns
    -------
    torch.utils.data.TensorDataset
    """
    n = len(dataset)
    k = max(1, int(round(fraction * n)))
    idx = torch.randperm(n, generator=make_generator(seed))[:k].sort().values
    return TensorDataset(*[t[idx] for t in dataset.tensors])


def tune_config(config: PaTConfig, child: int):
    """The children's TrainConfig: one-cycle, seeded per child.

    Parameters
    ----------
    config : PaTConfig
    child : int
        Child index (offsets the seed).

    Returns
    -------
    TrainConfig
    """
    from qselect.classical.train import TrainConfig

    base = config.tune if config.tune is not None else TrainConfig(
        epochs=config.tune_epochs, lr=config.lr, optimizer="sgd", momentum=0.9, nesterov=True,
        weight_decay=5e-4, schedule="onecycle", batch_size=config.batch_size)
    return dataclasses.replace(base, epochs=config.tune_epochs, schedule="onecycle",
                               seed=config.seed * 1000 + child)


def prune_and_tune(parent: nn.Module, train_data: TensorDataset, config: PaTConfig | None = None, *,
                   parent_epochs: float = 0.0, val_loader=None, sample_input: torch.Tensor | None = None,
                   masks: Sequence[Masks] | None = None, augment=None, **overrides) -> PaTResult:
    """Build a Prune and Tune ensemble from a trained ``parent``.

    ``train_data`` is the training TensorDataset (children fine-tune on it, or
    on a 90% bag each with ``bagging``).  ``parent_epochs`` is what the parent
    cost (counted dense in the budget).  ``masks`` overrides the child method
    with explicit per-child masks.  ``augment`` is passed to ``train`` (e.g.
    ``CifarAugment``).  Keyword ``overrides`` replace PaTConfig
    fields (``prune_and_tune(p, data, children=4, method="random")``).
    The parent itself is not modified.

    Parameters
    ----------
    parent : torch.nn.Module
        A trained model (not modified).
    train_data : torch.utils.data.TensorDataset
    config : PaTConfig or None
    parent_epochs : float
    val_loader : DataLoader or None
    sample_input : torch.Tensor or None
        For FLOP counting (default: the first training sample).
    masks : sequence of dict or None
    augment : callable or None
    **overrides
        PaTConfig fields.

    Returns
    -------
    PaTResult

    Raises
    ------
    QSelectError
        On invalid settings.

    References
    ----------
    T. Whitaker, D. Whitley, "Prune and Tune Ensembles: Low-Cost Ensemble
    Learning with Sparse Independent Subnetworks", AAAI 2022 (arXiv:2202.11782).
    """
    from qselect.classical.data import make_loader
    from qselect.classical.masks import apply_masks
    from qselect.classical.train import train

    config = dataclasses.replace(config or PaTConfig(), **overrides)
    config.validate()
    if not isinstance(train_data, TensorDataset):
        raise QSelectError("train_data must be a TensorDataset (e.g. load_dataset(...).train)")
    x_all = train_data.tensors[0]
    info: dict = {}
    if masks is None:
        masks, info = child_masks(parent, config.method, config.children, sparsity=config.sparsity,
                                  seed=config.seed, parts=config.resolved_parts(), scope=config.scope,
                                  calib_inputs=x_all, calib_size=config.calib_size,
                                  select_options=config.select_options)
    masks = list(masks)
    if len(masks) != config.children:
        raise QSelectError(f"got {len(masks)} child masks for children={config.children}")
    sample = sample_input if sample_input is not None else x_all[:1]
    children, histories, densities, fractions = [], [], [], []
    for i, m in enumerate(masks):
        child = copy.deepcopy(parent)
        apply_masks(child, m)
        data = bagged_dataset(train_data, config.bag_fraction, config.seed * 1000 + i) if config.bagging else train_data
        cfg = tune_config(config, i)
        loader = make_loader(data, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed)
        histories.append(train(child, loader, cfg, val_loader=val_loader, augment=augment) if cfg.epochs > 0 else {})
        children.append(child)
        densities.append(flop_density(child, sample))
        fractions.append(len(data) / len(train_data))
    child_epochs = [h.get("epochs_run", 0) for h in histories]  # what each child really ran (early stop)
    cost = {
        "parent_epochs": float(parent_epochs),
        "child_epochs": float(sum(child_epochs)),
        "epochs": float(parent_epochs) + float(sum(child_epochs)),
        "child_flop_density": densities,
        "flop_epochs": float(parent_epochs)
        + float(sum(e * d * f for e, d, f in zip(child_epochs, densities, fractions))),
        "members": len(children) + (1 if config.parent_member else 0),
    }
    return PaTResult(parent=parent, children=children, masks=masks, histories=histories,
                     config=config, cost=cost, info=info)


def flop_density(model: nn.Module, sample_input: torch.Tensor) -> float:
    """Effective / dense FLOPs of ``model`` under its current masks.

    Parameters
    ----------
    model : torch.nn.Module
    sample_input : torch.Tensor

    Returns
    -------
    float
        In (0, 1].
    """
    from qselect.classical.flops import count_flops
    from qselect.classical.masks import get_masks

    device = next(model.parameters()).device
    counts = count_flops(model, sample_input.to(device), masks=get_masks(model))
    dense = float(counts["dense"])
    return float(counts["effective"]) / dense if dense else 1.0


def evaluate_ensemble(members: Sequence[nn.Module], loader, device=None) -> dict:
    """Average-softmax ensemble metrics plus diversity and per-member metrics.

    Returns ``accuracy``, ``nll``, ``ece`` of the ensemble; ``disagreement``,
    ``pairwise_kl``, ``output_correlation`` between members (0 for a single
    member); ``member_mean`` (mean of members' own accuracy/nll/ece) and
    ``members`` (each member's metrics).

    Parameters
    ----------
    members : sequence of torch.nn.Module
    loader : torch.utils.data.DataLoader
        Yields (inputs, labels).
    device : str, torch.device or None
        Default: the model's device.

    Returns
    -------
    dict
    """
    from qselect.classical import metrics as M
    from qselect.classical.train import predict_proba

    if not members:
        raise QSelectError("an ensemble needs at least one member")
    probs, labels = [], None
    for m in members:
        p, y = predict_proba(m, loader, device=device)
        probs.append(np.asarray(p, dtype=np.float64))
        labels = np.asarray(y)
    ens = M.ensemble_probs(probs) if len(probs) > 1 else probs[0]
    per = [{"accuracy": M.accuracy(p, labels), "nll": M.nll(p, labels), "ece": M.ece(p, labels)} for p in probs]
    out = {"accuracy": M.accuracy(ens, labels), "nll": M.nll(ens, labels), "ece": M.ece(ens, labels),
           "size": len(members)}
    if len(probs) > 1:
        out.update(disagreement=float(M.disagreement(probs)), pairwise_kl=float(M.pairwise_kl(probs)),
                   output_correlation=float(M.output_correlation(probs)))
    else:
        out.update(disagreement=0.0, pairwise_kl=0.0, output_correlation=1.0)
    out["member_mean"] = {k: float(np.mean([d[k] for d in per])) for k in per[0]}
    out["members"] = per
    return out
