"""Sparse Mutation Decompositions (Whitaker & Whitley): evolution strategies in sparse subspaces.

Instead of adding dense Gaussian noise to every parameter of a trained
network, a *sparse* mutation perturbs only ``count`` parameters (or a
``fraction`` of a subspace) drawn at random from a low-dimensional subspace:

* ``subspace="random"``: the subspace is every live (unmasked) weight of the
  chosen layers; each mutation samples its own positions from it;
* a masks dict (toolkit contract, e.g. ``magnitude_masks``, the complement of
  a Prune-and-Tune child mask, or ``qselect.formulate.select_masks(...).masks``)
  restricts the mutations to the weights whose mask is 1 — this is how
  qselect's local-problem selections become mutation subspaces.

Children are mutated copies of the parent, scored on validation data and
selected; one generation already gives diverse children (the decomposition's
point: sparse mutations allow stronger perturbations at the same performance),
several generations make an elitist (mu + lambda) evolution strategy.  The
selected children form an ensemble that averages their softmax.

Cost: mutations need no gradients; evaluating one child is a forward pass over
the validation set.  ``flop_epochs`` counts it as ``len(val) / len(train) / 3``
of a training epoch (a training step is about three forward passes: forward,
and a backward of twice the cost), plus the parent's training.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from qselect.errors import QSelectError

from ._common import current_mask, make_generator, original_param

FITNESS = ("nll", "accuracy")

Masks = dict[str, torch.Tensor]


@dataclass
class MutationRecord:
    """What one mutation did: flat indices and added values per parameter name (CPU tensors)."""

    indices: dict[str, torch.Tensor]
    deltas: dict[str, torch.Tensor]
    seed: int

    @property
    def count(self) -> int:
        """Number of parameters the mutation touched."""
        return int(sum(int(v.numel()) for v in self.indices.values()))


class SparseMutation:
    """A sparse Gaussian mutation operator restricted to a subspace of the weights.

    Parameters
    ----------
    model : nn.Module
        Reference network: fixes the layers and their shapes (and which weights
        are live, if it carries masks). Mutations may be applied to any copy.
    fraction : float, optional
        The mutation's sparsity: fraction of the subspace's parameters one
        mutation touches, in (0, 1] (1 = dense mutation of the whole subspace).
        Give exactly one of ``fraction`` and ``count``; default fraction 0.01.
    count : int, optional
        Exact number of parameters one mutation touches (>= 1, at most the subspace size).
    scale : float
        Standard deviation of the Gaussian added to each touched parameter (> 0).
    relative : bool
        Multiply ``scale`` by each layer's weight standard deviation (scale-free across layers).
    subspace : "random" or masks dict
        "random": all live weights of ``layers``; a masks dict: only weights whose
        mask is 1 (and that are live). Names follow ``model.named_parameters()``.
    layers : sequence of str, optional
        Parameter names to mutate; default all Linear/Conv2d weights (or the mask keys).

    Raises
    ------
    QSelectError
        ``fraction`` outside (0, 1], a bad ``count`` or ``scale``, unknown layers,
        mask shapes that differ from the parameters, or an empty subspace.

    References
    ----------
    T. Whitaker, D. Whitley, "Sparse Mutation Decompositions: Fine Tuning Deep
    Neural Networks with Subspace Evolution", GECCO 2023 (companion).
    """

    def __init__(self, model: nn.Module, *, fraction: float | None = None, count: int | None = None,
                 scale: float = 0.01, relative: bool = False, subspace="random",
                 layers: Sequence[str] | None = None) -> None:
        from qselect.classical.masks import masks_from_selection, prunable_parameters

        if fraction is not None and count is not None:
            raise QSelectError("give either fraction= or count= for a sparse mutation, not both")
        if count is None:
            fraction = 0.01 if fraction is None else fraction
            try:
                fraction = float(fraction)
            except (TypeError, ValueError):
                fraction = float("nan")
            if not 0.0 < fraction <= 1.0:
                raise QSelectError(f"mutation fraction (its sparsity: share of the subspace mutated) must be "
                                   f"in (0, 1], got {fraction!r}; e.g. fraction=0.01")
        elif isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise QSelectError(f"mutation count must be a positive integer, got {count!r}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating)) \
                or not np.isfinite(scale) or scale <= 0:
            raise QSelectError(f"mutation scale must be a finite number > 0, got {scale!r}")
        masks = None
        if isinstance(subspace, str):
            if subspace != "random":
                raise QSelectError(f"subspace must be 'random' or a masks dict, got {subspace!r}")
        else:
            masks = masks_from_selection(subspace)
        names = list(layers) if layers is not None else (
            [k for k in masks if k in dict(_shapes(model))] if masks is not None else prunable_parameters(model))
        shapes = dict(_shapes(model))
        bad = [n for n in names if n not in shapes]
        if bad:
            raise QSelectError(f"cannot mutate {bad}: not parameters of {type(model).__name__}; "
                               f"use names from model.named_parameters() such as {list(shapes)[:3]}")
        self.names = names
        self.fraction, self.count_arg = fraction, count
        self.scale, self.relative = float(scale), bool(relative)
        self.kind = "random" if masks is None else "masks"
        # the subspace: flat indices of live weights (inside the masks) per parameter
        self.support: dict[str, torch.Tensor] = {}
        for n in names:
            live = current_mask(model, n).reshape(-1) > 0.5
            if masks is not None and n in masks:
                m = masks[n]
                if tuple(m.shape) != tuple(shapes[n]):
                    raise QSelectError(f"subspace mask {n!r} has shape {tuple(m.shape)}, the parameter "
                                       f"{tuple(shapes[n])}; build masks for this model")
                live = live & (m.reshape(-1).cpu() > 0.5)
            self.support[n] = torch.nonzero(live).reshape(-1)
        self.size = int(sum(int(v.numel()) for v in self.support.values()))
        if self.size == 0:
            raise QSelectError("the mutation subspace is empty (no live weight inside the masks); "
                               "pass masks with ones, or subspace='random'")
        self.per_mutation = int(count) if count is not None else max(1, int(round(fraction * self.size)))
        if self.per_mutation > self.size:
            raise QSelectError(f"count={self.per_mutation} exceeds the subspace size {self.size}; "
                               "ask for fewer parameters")
        self._offsets = np.cumsum([0] + [int(v.numel()) for v in self.support.values()])

    @torch.no_grad()
    def sample(self, seed: int, model: nn.Module | None = None) -> MutationRecord:
        """Draw a mutation (positions and Gaussian values) from ``seed`` without applying it.

        ``model`` (default: none) supplies the layer standard deviations when ``relative``.

        Parameters
        ----------
        seed : int
        model : torch.nn.Module or None

        Returns
        -------
        MutationRecord
        """
        gen = make_generator(seed)
        pick = torch.randperm(self.size, generator=gen)[: self.per_mutation].sort().values
        noise = torch.randn(self.per_mutation, generator=gen, dtype=torch.float64) * self.scale
        indices, deltas = {}, {}
        for i, n in enumerate(self.names):
            lo, hi = int(self._offsets[i]), int(self._offsets[i + 1])
            sel = (pick >= lo) & (pick < hi)
            if not bool(sel.any()):
                continue
            d = noise[sel]
            if self.relative:
                if model is None:
                    raise QSelectError("relative mutations need the model to read layer scales from")
                d = d * float(original_param(model, n).detach().double().std())
            indices[n] = self.support[n][pick[sel] - lo]
            deltas[n] = d.float()
        return MutationRecord(indices=indices, deltas=deltas, seed=int(seed))

    @torch.no_grad()
    def apply(self, model: nn.Module, record: MutationRecord, *, sign: float = 1.0) -> nn.Module:
        """Add ``sign * record`` to ``model``'s trainable tensors in place (``weight_orig`` when pruned).

        Parameters
        ----------
        model : torch.nn.Module
        record : MutationRecord
        sign : float
            -1 undoes a mutation.

        Returns
        -------
        torch.nn.Module
            ``model`` itself.
        """
        for n, idx in record.indices.items():
            p = original_param(model, n)
            flat = p.data.view(-1)
            flat.index_add_(0, idx.to(p.device), (sign * record.deltas[n]).to(p.device, p.dtype))
        return model

    def __call__(self, model: nn.Module, seed: int) -> MutationRecord:
        """Mutate ``model`` in place with the mutation drawn from ``seed``; returns its record."""
        record = self.sample(seed, model)
        self.apply(model, record)
        return record


def _shapes(model: nn.Module):
    from qselect.classical.masks import parameter_shapes

    return parameter_shapes(model).items()


@dataclass
class EvolutionResult:
    """Children of a sparse-mutation evolution strategy, their fitness and what they cost.

    Attributes
    ----------
    children : list of nn.Module
        The selected children (best first) - the ensemble.
    fitness : list of float
        Their validation fitness (lower is better: NLL, or 1 - accuracy).
    history : list of dict
        Per generation: ``best``, ``mean``, ``parent_fitness`` (the best of the previous generation).
    lineage : list of list of int
        Seeds of the mutations that built each child (composition of sparse mutations).
    cost : dict
        ``parent_epochs``, ``evaluations``, ``epochs`` (training epochs: the parent's),
        ``flop_epochs`` (parent + evaluations in training-epoch FLOP units), ``members``.
    """

    parent: nn.Module
    children: list[nn.Module]
    fitness: list[float]
    history: list[dict]
    lineage: list[list[int]]
    cost: dict
    info: dict = field(default_factory=dict)

    @property
    def members(self) -> list[nn.Module]:
        """The ensemble's models (the selected children)."""
        return list(self.children)

    def evaluate(self, loader, device=None) -> dict:
        """Ensemble metrics on ``loader`` (``evaluate_ensemble``) plus the cost.

        Parameters
        ----------
        loader : DataLoader
        device : str, torch.device or None

        Returns
        -------
        dict
        """
        from .ensembles import evaluate_ensemble

        out = evaluate_ensemble(self.members, loader, device=device)
        out["cost"] = dict(self.cost)
        out["method"] = "mutations"
        return out


def _fitness(model: nn.Module, loader, kind: str) -> float:
    from qselect.classical.train import evaluate

    ev = evaluate(model, loader)
    return ev["nll"] if kind == "nll" else 1.0 - ev["accuracy"]


def evolve(parent: nn.Module, val_loader, mutation: SparseMutation | None = None, *, generations: int = 1,
           population: int = 8, children: int = 4, fitness: str = "nll", elitist: bool = True,
           seed: int = 0, parent_epochs: float = 0.0, train_size: int | None = None,
           **mutation_options) -> EvolutionResult:
    """Fine-tune ``parent`` by sparse-mutation evolution and keep the best ``children``.

    Each generation makes ``population`` children: child ``i`` is a copy of the
    ``i mod len(elite)``-th member of the current elite (the parent at first)
    plus one sparse mutation seeded by (``seed``, generation, ``i``).  Children
    are scored on ``val_loader``; the best ``children`` of them (joined by the
    previous elite when ``elitist``, a (mu + lambda) strategy) form the next elite.
    After ``generations`` the elite is the ensemble.  With ``generations=1``
    and ``elitist=False`` this is the paper's one-generation mutated-children
    ensemble.

    Parameters
    ----------
    parent : nn.Module
        Trained network; it is not modified.
    val_loader : DataLoader
        Selection data (held out from training).
    mutation : SparseMutation, optional
        The operator; default ``SparseMutation(parent, **mutation_options)``.
    generations, population, children : int
        Evolution length (>= 1), children per generation (>= 1), elite / ensemble size
        (1 <= children <= population).
    fitness : "nll" or "accuracy"
        Selection criterion on the validation data (NLL is smoother).
    elitist : bool
        Keep the previous elite in the selection pool ((mu + lambda)); the
        parent itself is never returned as a child.
    seed : int
        Seeds every mutation.
    parent_epochs : float
        Training epochs the parent cost (added to the budget).
    train_size : int, optional
        Training-set size, to express the evaluations in training-epoch FLOPs.

    Returns
    -------
    EvolutionResult

    Raises
    ------
    QSelectError
        Non-positive counts, ``children > population`` or an unknown ``fitness``.

    References
    ----------
    T. Whitaker, D. Whitley, "Sparse Mutation Decompositions: Fine Tuning Deep
    Neural Networks with Subspace Evolution", GECCO 2023 (companion).
    """
    for what, v in (("generations", generations), ("population", population), ("children", children)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise QSelectError(f"{what} must be a positive integer, got {v!r}")
    if children > population:
        raise QSelectError(f"children={children} cannot exceed population={population}; "
                           "select at most as many children as are made")
    if fitness not in FITNESS:
        raise QSelectError(f"fitness must be one of {', '.join(FITNESS)}, got {fitness!r}")
    if mutation is None:
        mutation = SparseMutation(parent, **mutation_options)
    elif mutation_options:
        raise QSelectError("pass mutation options either in a SparseMutation or as keywords, not both")
    base = copy.deepcopy(parent).eval()
    parent_fit = _fitness(base, val_loader, fitness)
    elite: list[tuple[float, nn.Module, list[int]]] = [(parent_fit, base, [])]
    history, evaluations = [], 0
    for g in range(int(generations)):
        pool = []
        for i in range(int(population)):
            fit0, source, lineage = elite[i % len(elite)]
            child = copy.deepcopy(source)
            s = int(seed) * 1_000_003 + g * 10_007 + i
            mutation(child, s)
            pool.append((_fitness(child, val_loader, fitness), child, lineage + [s]))
            evaluations += 1
        fits = [p[0] for p in pool]
        if elitist and g > 0:
            pool += elite
        pool.sort(key=lambda t: t[0])
        elite = pool[: int(children)]
        before = parent_fit if g == 0 else history[-1]["elite_best"]
        history.append({"generation": g, "best": float(min(fits)), "mean": float(np.mean(fits)),
                        "worst": float(max(fits)), "parent_fitness": float(before),
                        "elite_best": float(elite[0][0])})
    n_val = len(val_loader.dataset) if hasattr(val_loader, "dataset") else None
    eval_epochs = (evaluations * n_val / train_size / 3.0) if (n_val and train_size) else None
    cost = {"parent_epochs": float(parent_epochs), "epochs": float(parent_epochs), "evaluations": evaluations,
            "evaluation_epochs": eval_epochs,
            "flop_epochs": float(parent_epochs) + (eval_epochs or 0.0), "members": len(elite)}
    info = {"subspace": mutation.kind, "subspace_size": mutation.size, "per_mutation": mutation.per_mutation,
            "scale": mutation.scale, "relative": mutation.relative, "parent_fitness": float(parent_fit),
            "fitness": fitness}
    return EvolutionResult(parent=parent, children=[e[1] for e in elite], fitness=[float(e[0]) for e in elite],
                           history=history, lineage=[e[2] for e in elite], cost=cost, info=info)


def mutated_children(parent: nn.Module, val_loader, *, children: int = 4, population: int | None = None,
                     generations: int = 1, seed: int = 0, subspace="random", fraction: float | None = None,
                     count: int | None = None, scale: float = 0.01, relative: bool = False,
                     layers: Sequence[str] | None = None, fitness: str = "nll", parent_epochs: float = 0.0,
                     train_size: int | None = None) -> EvolutionResult:
    """A mutated-children ensemble in one call (``SparseMutation`` + ``evolve``).

    ``population`` defaults to ``2 * children`` (half of the mutants are
    selected). ``subspace`` is "random" or a masks dict (e.g. qselect's
    selected weights). See ``SparseMutation`` and ``evolve`` for the rest.

    Parameters
    ----------
    parent : torch.nn.Module
    val_loader : DataLoader
        Fitness data.
    children : int
    population : int or None
    generations : int
    seed : int
    subspace : "random" or dict of str -> torch.Tensor
    fraction, count : float or int or None
        Size of each mutation.
    scale : float
        Standard deviation of the Gaussian values.
    relative : bool
        Scale by each layer's weight standard deviation.
    layers : sequence of str or None
    fitness : {"nll", "accuracy"}
    parent_epochs : float
        Cost of the parent, for the budget.
    train_size : int or None
        Training-set size, to express the evaluations in training-epoch FLOPs.

    Returns
    -------
    EvolutionResult

    References
    ----------
    T. Whitaker, D. Whitley, "Sparse Mutation Decompositions: Fine Tuning Deep
    Neural Networks with Subspace Evolution", GECCO 2023 (companion).
    """
    op = SparseMutation(parent, fraction=fraction, count=count, scale=scale, relative=relative,
                        subspace=subspace, layers=layers)
    return evolve(parent, val_loader, op, generations=generations,
                  population=population if population is not None else 2 * children, children=children,
                  fitness=fitness, elitist=generations > 1, seed=seed, parent_epochs=parent_epochs,
                  train_size=train_size)


def complement_masks(masks: Mapping[str, torch.Tensor]) -> Masks:
    """1 - masks: the weights a selection removed (a natural mutation subspace: explore what was dropped).

    Parameters
    ----------
    masks : dict of str -> torch.Tensor

    Returns
    -------
    dict of str -> torch.Tensor
    """
    from qselect.classical.masks import masks_from_selection

    return {k: 1.0 - v for k, v in masks_from_selection(masks).items()}
