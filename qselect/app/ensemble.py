"""``qselect ensemble``: low-cost ensembles and sparse-training peers from one parent, side by side.

Ensembles (``--methods``): ``independent`` (dense models trained as long as
the parent), ``snapshot`` (Snapshot Ensembles from scratch, at the epochs of a
Prune-and-Tune run: parent + children x tune epochs), ``snapshot-parent``
(cyclic fine-tuning of the parent, one cycle per child), Prune and Tune with
``antirandom`` / ``random`` / ``partition`` children or ``qselect`` children
(masks from the local problems, ``--solver``/``--qubits``/``--formulation``),
and ``mutations`` (Sparse Mutation Decompositions: mutated children selected
on validation data; ``--generations`` > 1 for the elitist evolution strategy).
Each reports accuracy, NLL, ECE, disagreement, pairwise KL, mean linear CKA
between members, and cost in epochs and FLOP-epochs.

Sparse training at ``--target-sparsity`` from the same parent and the same
``--finetune-epochs`` budget: ``one-shot``, ``ssa``, ``rigl``, ``imp``.

``--diversity`` also draws one PNG per layer (activation maximisation and
top test inputs of a few units, two members of each ensemble per row).
"""
from __future__ import annotations

import copy
import time

from ..errors import QSelectError
from . import pipeline as pl
from .console import Console
from .settings import check_choice, check_positive, check_sparsity, set_threads, validate_common

HELP = "build low-cost ensembles (PaT, Snapshot, mutated children) and sparse-training peers (SSA, RigL)"

ENSEMBLE_METHODS = ("independent", "snapshot", "snapshot-parent", "antirandom", "random", "partition", "qselect",
                    "mutations")
SPARSE_METHODS = ("one-shot", "ssa", "rigl", "imp")


def _validate(cfg: dict) -> None:
    validate_common(cfg)
    pl.validate_experiment(cfg)
    for m in cfg["methods"]:
        check_choice(m, ENSEMBLE_METHODS + SPARSE_METHODS, "method", "--methods")
    check_positive(cfg["children"], "children", "--children", minimum=2)
    check_positive(cfg["tune_epochs"], "tune epochs", "--tune-epochs")
    check_positive(cfg["generations"], "generations", "--generations")
    check_positive(cfg["finetune_epochs"], "fine-tuning epochs", "--finetune-epochs", minimum=0)
    check_sparsity(cfg["target_sparsity"], "--target-sparsity")
    if not 0.0 < float(cfg["mutation_fraction"]) <= 1.0:
        raise QSelectError(f"--mutation-fraction must be in (0, 1] (share of the weights one mutation touches), "
                           f"got {cfg['mutation_fraction']}")
    if not float(cfg["mutation_scale"]) > 0:
        raise QSelectError(f"--mutation-scale must be > 0 (Gaussian std in units of each layer's weight std), "
                           f"got {cfg['mutation_scale']}")


def run(cfg: dict, *, argv=None, given=None, extra=None) -> int:
    """``qselect ensemble``: the chosen ensembles and sparse-training methods from one parent.

    Parameters
    ----------
    cfg : dict
        The resolved settings: one key per option the command declares
        (dashes as underscores), as ``qselect.cli`` resolves them from flags,
        ``--config`` and defaults.
    argv : list of str or None
        The command line, recorded in the run's ``run.json``.
    given : iterable of str or None
        Options set explicitly (unused).
    extra : list of str or None
        Arguments after ``--`` (unused).

    Returns
    -------
    int
        Process exit code (0 on success).

    Raises
    ------
    QSelectError
        On bad input, before the run directory is created.

    References
    ----------
    Whitaker & Whitley, "Prune and Tune Ensembles", AAAI 2022; Huang et al., "Snapshot Ensembles",
    ICLR 2017; Whitaker & Whitley, "Sparse Mutation Decompositions", GECCO 2023; Evci et al.,
    "Rigging the Lottery", ICML 2020; Kornblith et al., "Similarity of Neural Network Representations
    Revisited", ICML 2019.
    """
    cfg = dict(cfg)
    _validate(cfg)
    con = Console(cfg["quiet"], cfg["verbose"])
    set_threads(cfg)
    data = pl.load_data(cfg)
    parent, parent_info = pl.prepare_parent(cfg, data, progress=con.progress)

    from ..runs import Run

    run_ = Run.create("ensemble", cfg, cfg["run_dir"], argv=argv)
    with run_.guard():
        ensembles, sparse, groups = [], [], {}
        for method in cfg["methods"]:
            t0 = time.perf_counter()
            if method in SPARSE_METHODS:
                sparse.append(_sparse(method, cfg, data, parent))
                sparse[-1]["seconds"] = time.perf_counter() - t0
                con.print(f"{method:>16}: sparsity {sparse[-1]['sparsity_actual']:.3f} "
                          f"accuracy {sparse[-1]['accuracy_finetuned']:.4f}")
                continue
            row, members = _ensemble(method, cfg, data, parent, con)
            row["seconds"] = time.perf_counter() - t0
            ensembles.append(row)
            groups[method] = members
            con.print(f"{method:>16}: {row['members']} members, accuracy {row['accuracy']:.4f}, NLL {row['nll']:.4f}, "
                      f"disagreement {row['disagreement']:.3f}, CKA {row['cka']:.3f}, "
                      f"cost {row['epochs']:g} epochs / {row['flop_epochs']:.1f} FLOP-epochs")
        ensembles.insert(0, {"name": "parent (dense)", "members": 1,
                             **{k: parent_info["test"][k] for k in ("accuracy", "nll", "ece")},
                             "epochs": cfg["epochs"], "flop_epochs": cfg["epochs"]})
        figures = _figures(cfg, data, parent, groups, run_.path) if cfg["diversity"] and groups else {}
        cka = [{"ensemble": r["name"], "mean CKA": r["cka"], "pairwise KL": r.get("pairwise_kl")}
               for r in ensembles if r.get("cka") is not None]
        from ..report.summary import write_run_report
        from ..report.tables import markdown_table

        sections = []
        if cka:
            sections.append(("Representation similarity between members (linear CKA, 1 = identical)",
                             markdown_table(cka, [("ensemble", "ensemble"), ("mean CKA", "mean CKA"),
                                                  ("pairwise KL", "pairwise KL")])))
        if figures:
            sections.append(("Feature visualisations", "\n".join(f"- `{p}` ({layer})" for layer, p in figures.items())))
        write_run_report(run_, cfg, parent_info, sparse, ensembles=ensembles, con=con, title="qselect ensemble",
                         extra={"diversity_figures": figures}, sections=sections)
    return 0


def _ensemble(method: str, cfg: dict, data, parent, con):
    from ..classical.data import make_loader
    from ..classical.models import build_model
    from ..classical.train import train
    from ..methods import cka_matrices, evaluate_ensemble, mutated_children, prune_and_tune, snapshot_ensemble

    test = make_loader(data.test, 512)
    M, P, T, seed = cfg["children"], cfg["epochs"], cfg["tune_epochs"], cfg["seed"]
    loader = lambda s: make_loader(data.train, cfg["batch_size"], shuffle=True, seed=s)  # noqa: E731
    tcfg = lambda epochs, s: pl.train_config(cfg, epochs, s, con.progress)  # noqa: E731
    if method == "independent":
        members = [parent]
        for i in range(1, M):
            kwargs = {"hidden": tuple(cfg["hidden"])} if cfg["model"] == "mlp" else {}
            m = build_model(parent_name(cfg, parent), data.input_shape, data.num_classes, seed=seed * 1000 + i,
                            **kwargs)
            train(m, loader(seed * 100 + i), tcfg(P, seed * 100 + i))
            members.append(m)
        ev, cost = evaluate_ensemble(members, test), {"epochs": P * M, "flop_epochs": P * M}
    elif method in ("snapshot", "snapshot-parent"):
        if method == "snapshot":
            kwargs = {"hidden": tuple(cfg["hidden"])} if cfg["model"] == "mlp" else {}
            start = build_model(parent_name(cfg, parent), data.input_shape, data.num_classes, seed=seed, **kwargs)
            res = snapshot_ensemble(start, loader(seed), tcfg(P + M * T, seed), cycles=M)
        else:
            res = snapshot_ensemble(copy.deepcopy(parent), loader(seed + 1), tcfg(M * T, seed), cycles=M,
                                    parent_epochs=P)
        members, ev, cost = res.members, res.evaluate(test), res.cost
    elif method == "mutations":
        res = mutated_children(parent, make_loader(data.val, 512), children=M, population=2 * M,
                               generations=cfg["generations"], seed=seed, fraction=cfg["mutation_fraction"],
                               scale=cfg["mutation_scale"], relative=True, parent_epochs=P,
                               train_size=len(data.train))
        members, ev, cost = res.members, res.evaluate(test), res.cost
    else:  # Prune and Tune
        opts = {}
        if method == "qselect":
            layers = pl.hidden_layers(parent, cfg.get("layers"))
            opts = dict(calib_size=cfg["calib_size"], select_options={
                "formulation": cfg["formulation"], "qubits": cfg["qubits"], "layers": layers,
                "solver": pl.make_solver(cfg["solver"], seed=seed, backend=cfg["backend"], p=cfg["p"])})
        res = prune_and_tune(parent, data.train, children=M, method=method, sparsity=cfg["sparsity"], tune_epochs=T,
                             seed=seed, batch_size=cfg["batch_size"], lr=cfg["lr"], parent_epochs=P, **opts)
        members, ev, cost = res.members, res.evaluate(test), res.cost
    cka = cka_matrices(members, data.test.tensors[0][:256])
    row = {"name": method, "members": len(members), "accuracy": ev["accuracy"], "nll": ev["nll"], "ece": ev["ece"],
           "disagreement": ev["disagreement"], "pairwise_kl": ev["pairwise_kl"], "cka": cka["mean"],
           "cka_by_layer": cka["mean_offdiag"], "member_mean_accuracy": ev["member_mean"]["accuracy"],
           "epochs": float(cost["epochs"]), "flop_epochs": float(cost["flop_epochs"])}
    return row, members


def parent_name(cfg: dict, parent) -> str:
    """The built-in architecture name of the parent (from the checkpoint when ``--model`` is a file).

    Parameters
    ----------
    cfg : dict
    parent : torch.nn.Module

    Returns
    -------
    str
    """
    from ..classical.models import MODELS

    if cfg["model"] in MODELS:
        return cfg["model"]
    return {"MLP": "mlp", "LeNet5": "lenet5", "ResNet18": "resnet18", "ViT": "vit"}.get(type(parent).__name__, "mlp")


def _sparse(method: str, cfg: dict, data, parent) -> dict:
    from ..classical.baselines import magnitude_masks
    from ..classical.data import make_loader
    from ..classical.masks import mask_sparsity
    from ..classical.train import evaluate
    from ..methods import iterative_magnitude_pruning, one_shot_pruning, rigl_train, ssa_finetune

    sp, seed = float(cfg["target_sparsity"]), cfg["seed"]
    budget = pl.train_config(cfg, cfg["finetune_epochs"], seed, False)
    loader = make_loader(data.train, cfg["batch_size"], shuffle=True, seed=seed)
    model = copy.deepcopy(parent)
    if method == "one-shot":
        one_shot_pruning(model, magnitude_masks(parent, sp), loader, budget)
    elif method == "ssa":
        ssa_finetune(model, magnitude_masks(parent, sp), loader, budget, schedule="cosine", initial_prob=0.3,
                     anneal_epochs=max(budget.epochs * 0.25, 1.0 / max(1, len(loader))))
    elif method == "rigl":
        rigl_train(model, loader, budget, sp, init="magnitude")
    else:
        iterative_magnitude_pruning(model, loader, budget, sp, rounds=min(3, budget.epochs))
    ev = evaluate(model, make_loader(data.test, 512))
    return {"method": method, "sparsity": sp, "seed": seed, "sparsity_actual": mask_sparsity(model)["overall"],
            "accuracy_finetuned": ev["accuracy"], "nll_finetuned": ev["nll"], "ece_finetuned": ev["ece"]}


def _figures(cfg: dict, data, parent, groups: dict, folder) -> dict:
    from ..methods import default_layers, feature_grid, layer_activations

    x = data.test.tensors[0]
    members = {"parent": parent}
    for name, ms in groups.items():
        for i, m in enumerate(ms[:2]):
            members[f"{name} {i + 1}"] = m
    out = {}
    for layer in default_layers(parent)[:6]:
        a = layer_activations(parent, x[:256], [layer])[layer]
        units = a.reshape(a.shape[0], a.shape[1], -1).mean(2).mean(0).argsort(descending=True)[:3].tolist()
        path = folder / f"diversity_{layer.replace('.', '-')}.png"
        feature_grid(members, layer, units, x, path, steps=80, mean=data.mean or None, std=data.std or None)
        out[layer] = path.name
    return out
