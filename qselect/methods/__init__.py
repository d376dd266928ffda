"""The seed methods and the pruning baselines they are compared against.

Prune and Tune ensembles, Stochastic Subnetwork Annealing, Synaptic Stripping, Snapshot Ensembles, Sparse Mutation
Decompositions, RigL, representation-level diversity.

Every mask goes through ``qselect.classical.masks.apply_masks``
(``torch.nn.utils.prune``), like the rest of the toolkit.

ensembles
    PaTConfig(children=6, method="antirandom"|"random"|"magnitude"|"partition"|"qselect",
              sparsity=0.5, parts=None, tune_epochs=2, lr=0.05, bagging=False,
              bag_fraction=0.9, parent_member=False, scope="layer", seed=0,
              batch_size=128, select_options=None, calib_size=128, tune=None)
    prune_and_tune(parent, train_data, config=None, *, parent_epochs=0, val_loader=None,
                   sample_input=None, masks=None, **overrides) -> PaTResult
        PaTResult(parent, children, masks, histories, config, cost, info);
        .members, .evaluate(loader) -> metrics + diversity + cost
    child_masks(parent, method, children, *, sparsity, seed, parts, scope,
                calib_inputs, calib_size, select_options) -> (list[Masks], info)
    evaluate_ensemble(members, loader, device=None) -> dict(accuracy, nll, ece,
        disagreement, pairwise_kl, output_correlation, member_mean, members, size)
    bagged_dataset(dataset, fraction, seed), flop_density(model, sample_input)
partitions
    partition_masks(model, parts, *, seed=0, layers=None, base_masks=None) -> list[Masks]
    anti_random_pair(model, *, seed=0, ...) -> (Masks, Masks)
    partition_children(model, children, parts=2, *, seed=0, ...) -> list[Masks]
    check_partition(parent_masks, children) -> dict(overlap, uncovered, outside)
annealing
    StochasticSubnetworkAnnealing(model, target_masks, *, duration, schedule="cosine",
        initial_prob=1.0, init="constant"|"random", decay=5.0,
        eval_mask="expected"|"target", seed=0)
        .probabilities(step=None), .current_masks(), .state(), .done, .finish() -> Masks
    schedule_factor(kind, t, *, decay=5.0); SCHEDULES
    ssa_finetune(model, target_masks, train_loader, config, *, anneal_epochs=None,
                 schedule="cosine", initial_prob=1.0, ...) -> dict(history, masks, ssa)
stripping
    SynapticStripping(model, loader=None, *, fraction=0.05, frequency=1, device=None, layers=None)
        .relu_activity(loader), .dead_units(loader), .strip(loader, epoch=None) -> record,
        .epoch_callback (for train(..., epoch_callback=...)), .history, .sparsity()
    synaptic_stripping(model, train_loader, config, *, eval_loader=None, fraction=0.05,
                       frequency=1, val_loader=None, layers=None) -> dict
iterative
    one_shot_pruning(model, masks, train_loader, config, *, val_loader=None) -> dict
    iterative_magnitude_pruning(model, train_loader, config, sparsity, *, rounds=3,
                                scope="layer", layers=None, val_loader=None) -> dict
    surviving_magnitude_masks(model, sparsity, *, scope="layer", layers=None)
    round_sparsities(sparsity, rounds), split_epochs(epochs, rounds)
snapshot
    snapshot_ensemble(model, train_loader, config=None, *, cycles=5, keep_last=None,
                      parent_epochs=0.0, augment=None) -> SnapshotResult
        SnapshotResult(snapshots, lrs, history, cost, keep_last); .members, .evaluate(loader)
    snapshot_lr(step, total_steps, cycles, lr), snapshot_steps(total_steps, cycles),
    cycle_length(total_steps, cycles)
mutations
    SparseMutation(model, *, fraction=None (0.01) | count=None, scale=0.01, relative=False,
                   subspace="random" | Masks, layers=None)
        .sample(seed, model=None) -> MutationRecord(indices, deltas, seed; .count),
        .apply(model, record, sign=1.0), __call__(model, seed) -> MutationRecord
    evolve(parent, val_loader, mutation=None, *, generations=1, population=8, children=4,
           fitness="nll"|"accuracy", elitist=True, seed=0, parent_epochs=0.0, train_size=None)
        -> EvolutionResult(parent, children, fitness, history, lineage, cost, info);
        .members, .evaluate(loader)
    mutated_children(parent, val_loader, *, children=4, population=None, generations=1, seed=0,
                     subspace="random", fraction=None, count=None, scale=0.01, ...) -> EvolutionResult
    complement_masks(masks)
rigl
    RigL(model, sparsity, *, t_end, delta_t=100, alpha=0.3, distribution="uniform"|"erk",
         init="random"|"magnitude"|Masks, layers=None, seed=0, record=False)
        __call__(step, model) (a train() step_callback), .update(), .active_counts(),
        .history, .finish() -> Masks
    rigl_train(model, train_loader, config, sparsity, *, delta_t=None, alpha=0.3,
               end_fraction=0.75, distribution="uniform", init="random", ...) -> dict
    rigl_fraction(step, t_end, alpha), layer_densities(shapes, sparsity, distribution)
diversity
    linear_cka(x, y) -> float; cka_matrices(members, inputs, layers=None) -> dict
    layer_activations(model, inputs, layers=None) -> {layer: Tensor}; default_layers(model)
    activation_maximisation(model, layer, unit, input_shape, *, steps=150, lr=0.05, l2=1e-3,
                            tv=5e-2, jitter=1, value_range=(0, 1), seed=0) -> dict(image, activation)
    top_activating(model, layer, unit, inputs, k=4) -> dict(indices, values)
    feature_grid(members: {label: model}, layer, units, inputs, path, *, top_k=3, ...) -> numbers
    image_shape(input_shape)
"""
from .annealing import SCHEDULES, StochasticSubnetworkAnnealing, schedule_factor, ssa_finetune
from .diversity import (
    activation_maximisation,
    cka_matrices,
    default_layers,
    feature_grid,
    image_shape,
    layer_activations,
    linear_cka,
    top_activating,
)
from .ensembles import (
    CHILD_METHODS,
    PaTConfig,
    PaTResult,
    bagged_dataset,
    child_masks,
    evaluate_ensemble,
    flop_density,
    prune_and_tune,
)
from .iterative import (
    iterative_magnitude_pruning,
    one_shot_pruning,
    round_sparsities,
    split_epochs,
    surviving_magnitude_masks,
)
from .mutations import EvolutionResult, MutationRecord, SparseMutation, complement_masks, evolve, mutated_children
from .partitions import anti_random_pair, check_partition, partition_children, partition_masks
from .rigl import DISTRIBUTIONS, RigL, layer_densities, rigl_fraction, rigl_train
from .snapshot import SnapshotResult, cycle_length, snapshot_ensemble, snapshot_lr, snapshot_steps
from .stripping import SynapticStripping, synaptic_stripping

__all__ = [
    "SCHEDULES", "StochasticSubnetworkAnnealing", "schedule_factor", "ssa_finetune",
    "CHILD_METHODS", "PaTConfig", "PaTResult", "bagged_dataset", "child_masks",
    "evaluate_ensemble", "flop_density", "prune_and_tune",
    "iterative_magnitude_pruning", "one_shot_pruning", "round_sparsities", "split_epochs",
    "surviving_magnitude_masks",
    "anti_random_pair", "check_partition", "partition_children", "partition_masks",
    "SynapticStripping", "synaptic_stripping",
    "SnapshotResult", "cycle_length", "snapshot_ensemble", "snapshot_lr", "snapshot_steps",
    "EvolutionResult", "MutationRecord", "SparseMutation", "complement_masks", "evolve", "mutated_children",
    "DISTRIBUTIONS", "RigL", "layer_densities", "rigl_fraction", "rigl_train",
    "activation_maximisation", "cka_matrices", "default_layers", "feature_grid", "image_shape",
    "layer_activations", "linear_cka", "top_activating",
]
