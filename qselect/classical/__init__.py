"""The classical PyTorch pipeline: data, models, training, masks, baselines, metrics.

Public API (import from the submodules; this package imports nothing heavy):

data
    load_dataset(name="digits", root=None, seed=0, *, val_fraction=0.1, test_fraction=0.2,
                 image=False, normalize=None) -> DataSplits(train, val, test, num_classes,
                 input_shape, name, mean, std, normalized)  # TensorDatasets (float32 x, int64 y)
        names: "digits" (embedded sklearn, no download), "mnist", "fashion_mnist"
        (IDX files, .gz or not), "cifar10", "cifar100" (python pickle batches)
        under ``root``. ``image=True`` gives digits as (1, 8, 8); default (64,).
    make_loader(dataset, batch_size=128, shuffle=False, seed=0, drop_last=False)
        -> DataLoader yielding (x, y) batches (seeded shuffling; loader.batch_size is None)
    read_idx(path) / read_cifar_batch(path) -> numpy arrays (raw parsers)
augment
    CifarAugment(mean=None, std=None, pad=4, flip=True, seed=0)  # callable on (B,C,H,W) batches
        (pass as train(..., augment=CifarAugment()); CIFAR data is standardised by default)
    random_crop(x, pad, generator), random_hflip(x, generator), normalize(x, mean, std)
models
    build_model(name, input_shape, num_classes, seed=0, *, init="default", **kw) -> nn.Module
        init: "default" | "kaiming_normal" | "signed_constant" (Linear/Conv2d weights)
        "mlp" (hidden=(64, 64)), "lenet5", "resnet18" (CIFAR variant, width=64),
        "vit" (patch=4, dim=64, depth=4, heads=4, mlp_ratio=2; ReLU MLP blocks)
train
    TrainConfig(epochs=10, lr=0.1, optimizer="sgd"|"adamw", momentum=0.9,
                nesterov=True, weight_decay=5e-4, schedule="onecycle"|"step"|"constant",
                step_size=None, gamma=0.1, batch_size=128, device="auto", amp=True,
                seed=0, progress=False, early_stop_patience=None, grad_clip=None,
                milestones=None, pct_start=0.1, div_factor=100, final_div_factor=1e5,
                label_smoothing=0.0)
    train(model, train_loader, config, val_loader=None, *, augment=None,
          epoch_callback=None, step_callback=None, loss_fn=None) -> history dict
          config may be a TrainConfig or a dict of its fields; early_stop_patience needs val_loader;
          loaders may be Datasets (batched with config.batch_size, shuffled by config.seed);
          only requires_grad params are optimised; epoch_callback(epoch, model, hist) -> True stops;
          step_callback(step, model) after each optimiser step
          (train_loss, train_accuracy, val_accuracy, val_nll, lr, epochs_run, stopped_early, best_epoch)
    evaluate(model, loader, device=None) -> dict(accuracy, nll, ece)
    predict_proba(model, loader, device=None) -> (probs ndarray (N, C), labels ndarray (N,))
    resolve_device(device="auto") -> torch.device; seed_everything(seed)
checkpoint
    save_checkpoint(path, model, meta=None, optimizer=None)   # atomic; keeps masks
    load_checkpoint(path, model=None) -> dict(state_dict, masks, meta, ...)  (loads into model)
    (also re-exported from train)
masks   (Masks = dict[str, torch.Tensor] keyed by named_parameters() names, float 0/1)
    prunable_parameters(model) -> list[str]       # "<module>.weight" of Linear/Conv2d
    apply_masks(model, masks, *, strict=True)     # torch.nn.utils.prune.custom_from_mask
    get_masks(model, *, include_dense=False) -> Masks
    remove_masks(model, *, make_permanent=True)   # prune.remove
    save_masks(path, masks, meta=None) / load_masks(path, model=None) -> Masks
    validate_masks(model, masks)                  # names/shapes/0-1 check, QSelectError
    mask_sparsity(model_or_masks) -> dict(overall, layers={name: sparsity}, kept, total)
    masks_from_selection(selection) -> Masks      # a Selection (anything with .masks) or a masks dict
    neuron_masks(model, layer, keep_neurons) -> Masks  # neuron-level -> weight (+bias) masks
flops
    count_parameters(model, masks=None) -> dict(dense, effective, density)
    count_flops(model, sample_input, masks=None) -> dict(dense, effective, layers)
baselines (model + sparsity -> masks; nothing is applied to the model)
    magnitude_masks(model, sparsity, scope="layer"|"global", layers=None)
    random_masks(model, sparsity, scope="layer"|"global", seed=0, layers=None)
    anti_random_masks(model, sparsity=0.5, seed=0, scope="layer") -> (masks, complement)
edge_popup
    edge_popup(model, train_loader, sparsity, *, config=None, epochs=10, lr=0.1, seed=0,
               layers=None, device="auto", progress=False, val_loader=None,
               return_history=False) -> Masks   # also baselines.edge_popup
        (use a model built with init="kaiming_normal"/"signed_constant", as the paper does)
metrics (numpy in, floats out; probs are (N, C) softmax outputs)
    accuracy(probs, labels), nll(probs, labels), ece(probs, labels, n_bins=15),
    disagreement(probs_list), pairwise_kl(probs_list), output_correlation(probs_list),
    ensemble_probs(probs_list),
    dead_units(model, loader, device=None, max_batches=None) -> dict(dead={relu_name: bool (units,)},
        counts, units, total_dead, total_units, fraction)   # hooks on every nn.ReLU module
baseline_report
    python -m qselect.classical.baseline_report [--seed 0] [--json out.json]  # README figures
"""

from ..devices import disable_onednn_unless_asked as _cpu_safety

_cpu_safety()
