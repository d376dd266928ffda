"""Low-cost ensembles side by side, sparse training peers, and representation-level diversity.

    python benchmarks/ensembles.py [--quick] [--out FILE] [--data-dir DIR]
    python benchmarks/ensembles.py --table FILE   # tables and summary figure from a results JSON

* Ensembles (per model and seed, from one trained parent): independent dense
  models; Snapshot Ensembles from scratch at Prune-and-Tune's FLOP-epoch
  budget, and from the parent (cycles of the children's length); Prune and
  Tune with anti-random and quantum-selected (qselect local problems)
  children; mutated-children ensembles (Sparse Mutation Decompositions: one
  generation with a random subspace, one with the qselect-selected weights as
  subspace, and a 3-generation elitist run).  Accuracy, NLL, ECE,
  disagreement, pairwise KL, mean linear CKA between members, and cost in
  epochs and FLOP-epochs.
* Sparse mutations vs dense mutations at several strengths (member accuracy
  and disagreement of one-generation children).
* Sparse fine-tuning at 80-95% sparsity from the same parent and the same
  epoch budget: one-shot magnitude pruning, SSA (cosine, p0 = 0.3), RigL
  (magnitude start), IMP (3 rounds); RigL from scratch at the parent's plus the
  fine-tuning budget.
* Diversity figures: for seed 0, one PNG per layer with the parent, snapshots,
  PaT children and mutated children (activation maximisation + top real
  inputs), and the member x member CKA per layer in the JSON.

Digits (scikit-learn) with an MLP and LeNet-5 by default; ``--data-dir DIR``
reads CIFAR-10 from DIR (python batches) with ResNet-18 (GPU advised).
Writes the JSON, ``FILE`` with .png (summary figure) and
``<FILE stem>_diversity_<model>_<layer>.png`` atomically.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from qselect.classical.baselines import magnitude_masks
from qselect.classical.data import load_dataset, make_loader
from qselect.classical.masks import mask_sparsity, prunable_parameters
from qselect.classical.models import build_model
from qselect.classical.train import TrainConfig, evaluate, train
from qselect.devices import resolve_device
from qselect.io import atomic_write_json, atomic_write_with
from qselect.methods import (
    PaTConfig,
    SparseMutation,
    cka_matrices,
    evaluate_ensemble,
    evolve,
    feature_grid,
    iterative_magnitude_pruning,
    layer_activations,
    mutated_children,
    one_shot_pruning,
    prune_and_tune,
    rigl_train,
    snapshot_ensemble,
    ssa_finetune,
)

DEVICE = "auto"
AUGMENT = None


def settings(args) -> dict:
    if args.data_dir is not None:
        s = dict(dataset="cifar10", models={"resnet18": {}}, seeds=[0, 1, 2], parent_epochs=30, lr=0.1,
                 batch=128, children=4, tune_epochs=3, ft_epochs=6, sparsities=[0.8, 0.9, 0.95],
                 qselect=dict(qubits=12, solver="greedy"), qselect_last_layers=1, calib=128,
                 mutation=dict(fraction=0.01, scale=0.3), population=8, generations=3,
                 cka_samples=256, viz_layers={"resnet18": ["relu", "layer2.1.relu2", "layer4.1.relu2"]},
                 viz_units=3, viz_steps=200, rigl_scratch=True, mutation_sweep=True)
        if args.quick:
            s.update(seeds=[0], parent_epochs=10, tune_epochs=2, ft_epochs=3, sparsities=[0.9],
                     rigl_scratch=False, generations=2, viz_steps=100)
    else:
        s = dict(dataset="digits", models={"mlp": {"hidden": [64, 64]}, "lenet5": {}}, seeds=[0, 1, 2],
                 parent_epochs=15, lr=0.1, batch=64, children=4, tune_epochs=4, ft_epochs=8,
                 sparsities=[0.8, 0.9, 0.95], qselect=dict(qubits=8), qselect_last_layers=1, calib=64,
                 mutation=dict(fraction=0.1, scale=1.0), population=8, generations=3, cka_samples=300,
                 viz_layers=None, viz_units=3, viz_steps=120, rigl_scratch=True, mutation_sweep=True,
                 tune_lr_by_model={"mlp": 0.2, "lenet5": 0.05}, snapshot_lr_by_model={"lenet5": 0.05})
        # qselect children solve local problems of the last layer only (the rest stays dense): local
        # problems for every layer cost ~25 s (MLP) / ~75 s (LeNet-5) per child on one core
        if args.quick:
            s.update(seeds=[0, 1], sparsities=[0.8, 0.95], qselect_last_layers=1, rigl_scratch=False,
                     generations=2, viz_steps=40, seeds_by_model={"lenet5": [0]})
    if args.seeds:
        s["seeds"] = list(range(args.seeds))
        s.pop("seeds_by_model", None)
    if args.no_qselect:
        s["qselect"] = None
    return s


def cfg(s, epochs, seed, lr=None, model=None):
    lr = lr or s.get("lr_by_model", {}).get(model, s["lr"])
    return TrainConfig(epochs=int(epochs), lr=lr, batch_size=s["batch"], seed=seed, device=DEVICE)


def tune_lr(s, model):
    """Children's (one-cycle) peak rate: twice the parent's on the digits MLP, as in the seed-methods
    benchmark; LeNet-5 on 8x8 digits: 0.05 (children tuned at 0.1-0.2 often collapse to chance)."""
    return s.get("tune_lr_by_model", {}).get(model, s["lr"])


def restart_lr(s, model):
    """Snapshot Ensembles' restart rate: the parent's, except LeNet-5 on 8x8 digits, which collapses to
    chance when SGD restarts at 0.1 without a warm-up; 0.05 there."""
    return s.get("snapshot_lr_by_model", {}).get(model, s["lr"])


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def summarise(rows, keys, metrics):
    """Mean and std over seeds of ``metrics`` for each group of ``keys``."""
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, rs in groups.items():
        d = dict(zip(keys, key))
        d["seeds"] = len(rs)
        for m in metrics:
            vals = [r[m] for r in rs if r.get(m) is not None]
            if vals:
                d[m] = float(np.mean(vals))
                d[m + "_std"] = float(np.std(vals))
        out.append(d)
    return out


def _ens(ev):
    return dict(accuracy=ev["accuracy"], nll=ev["nll"], ece=ev["ece"], disagreement=ev["disagreement"],
                pairwise_kl=ev["pairwise_kl"], member_accuracy=ev["member_mean"]["accuracy"],
                member_nll=ev["member_mean"]["nll"])


def qselect_options(s, model):
    opts = dict(s["qselect"])
    if s.get("qselect_last_layers"):
        opts["layers"] = [n.rsplit(".", 1)[0] for n in prunable_parameters(model)[-s["qselect_last_layers"]:]]
    return opts


# ----------------------------------------------------------------------------------- ensembles
def run_ensembles(s, name, kw, data, seed, parent, pstats, test, cka_x):
    """Every ensemble for one model and seed; returns (rows, members by group, CKA by group)."""
    rows, groups, cka = [], {}, {}
    M, P = s["children"], s["parent_epochs"]
    tl = lambda sd: make_loader(data.train, s["batch"], shuffle=True, seed=sd)  # noqa: E731
    val = make_loader(data.val, 512)

    def record(method, members, ev, epochs, flop_epochs, t, **extra):
        cpu = time.process_time() - clock[0]
        c = cka_matrices(members, cka_x)
        cka[method] = c
        groups[method] = members
        rows.append(dict(model=name, seed=seed, method=method, **_ens(ev), cka=c["mean"], epochs=float(epochs),
                         flop_epochs=float(flop_epochs), members=len(members), wall=time.time() - t, cpu=cpu,
                         **extra))
        clock[0] = time.process_time()
        log(f"[{name} s{seed}] {method:>22} acc={ev['accuracy']:.4f} nll={ev['nll']:.4f} ece={ev['ece']:.4f} "
            f"dis={ev['disagreement']:.3f} cka={c['mean']:.3f} cost={epochs:.0f}/{flop_epochs:.1f} "
            f"({time.time() - t:.1f}s wall, {cpu:.1f}s cpu)")

    clock = [time.process_time()]
    rows.append(dict(model=name, seed=seed, method="parent", **pstats["eval"], epochs=float(P),
                     flop_epochs=float(P), members=1, wall=pstats["wall"]))
    # independent dense models, each as long as the parent
    t = time.time()
    members = [parent]
    for i in range(1, M):
        m = build_model(name, data.input_shape, data.num_classes, seed=1000 * seed + i, **kw)
        train(m, tl(seed * 100 + i), cfg(s, P, seed * 100 + i, model=name), augment=AUGMENT)
        members.append(m)
    record("independent", members, evaluate_ensemble(members, test), P * M, P * M, t)
    # Prune and Tune: anti-random and quantum-selected children
    pat = {}
    for method in ["antirandom"] + (["qselect"] if s["qselect"] is not None else []):
        t = time.time()
        opts = qselect_options(s, parent) if method == "qselect" else None
        pcfg = PaTConfig(children=M, method=method, sparsity=0.5, tune_epochs=s["tune_epochs"],
                         lr=tune_lr(s, name), batch_size=s["batch"], seed=seed, calib_size=s["calib"],
                         select_options=opts)
        pcfg.tune = cfg(s, s["tune_epochs"], seed, lr=pcfg.lr)
        res = prune_and_tune(parent, data.train, pcfg, parent_epochs=P, augment=AUGMENT)
        pat[method] = res
        record(f"pat-{method}", res.members, res.evaluate(test), res.cost["epochs"], res.cost["flop_epochs"], t,
               identical_pairs=res.info["identical_pairs"])
    # Snapshot Ensembles: from scratch at PaT's FLOP-epoch budget, and cyclic fine-tuning of the parent
    t = time.time()
    budget = max(M, int(round(pat["antirandom"].cost["flop_epochs"])))
    snap = snapshot_ensemble(build_model(name, data.input_shape, data.num_classes, seed=seed, **kw), tl(seed),
                             cfg(s, budget, seed, lr=restart_lr(s, name)), cycles=M, augment=AUGMENT)
    record("snapshot", snap.members, snap.evaluate(test), snap.cost["epochs"], snap.cost["flop_epochs"], t)
    t = time.time()
    snap_p = snapshot_ensemble(copy.deepcopy(parent), tl(seed + 1),
                               cfg(s, M * s["tune_epochs"], seed, lr=restart_lr(s, name)),
                               cycles=M, parent_epochs=P, augment=AUGMENT)
    record("snapshot-from-parent", snap_p.members, snap_p.evaluate(test), snap_p.cost["epochs"],
           snap_p.cost["flop_epochs"], t)
    # mutated children (Sparse Mutation Decompositions)
    mopts = dict(s["mutation"], relative=True)
    t = time.time()
    mut = mutated_children(parent, val, children=M, population=s["population"], seed=seed, parent_epochs=P,
                           train_size=len(data.train), **mopts)
    record("mutated-random", mut.members, mut.evaluate(test), mut.cost["epochs"], mut.cost["flop_epochs"], t,
           evaluations=mut.cost["evaluations"])
    if "qselect" in pat:
        t = time.time()
        sub = pat["qselect"].masks[0]  # the weights one local-problem selection keeps
        mutq = mutated_children(parent, val, children=M, population=s["population"], seed=seed, parent_epochs=P,
                                train_size=len(data.train), subspace=sub, **mopts)
        record("mutated-qselect-subspace", mutq.members, mutq.evaluate(test), mutq.cost["epochs"],
               mutq.cost["flop_epochs"], t, evaluations=mutq.cost["evaluations"])
    t = time.time()
    evo = evolve(parent, val, SparseMutation(parent, **mopts), generations=s["generations"],
                 population=s["population"], children=M, seed=seed, parent_epochs=P, train_size=len(data.train))
    record(f"mutated-{s['generations']}gen", evo.members, evo.evaluate(test), evo.cost["epochs"],
           evo.cost["flop_epochs"], t, evaluations=evo.cost["evaluations"])
    groups["_pat"] = pat
    return rows, groups, cka


def mutation_sweep(s, parent, data, seed, test):
    """One-generation children: dense vs sparse mutations at several strengths (relative scale)."""
    val = make_loader(data.val, 512)
    out = []
    for fraction in (1.0, 0.1, 0.01):
        for scale in (0.05, 0.15, 0.5, 1.5):
            res = mutated_children(parent, val, children=4, population=8, fraction=fraction, scale=scale,
                                   relative=True, seed=seed)
            ev = res.evaluate(test)
            out.append(dict(fraction=fraction, scale=scale, **_ens(ev)))
    return out


# ----------------------------------------------------------------------------------- sparse training
def run_sparse(s, name, kw, data, seed, parent, test):
    rows = []
    tl = lambda: make_loader(data.train, s["batch"], shuffle=True, seed=seed)  # noqa: E731
    budget = cfg(s, s["ft_epochs"], seed, model=name)
    for sp in s["sparsities"]:
        target = magnitude_masks(parent, sp)
        runs = {}
        t = time.time()
        m = copy.deepcopy(parent)
        one_shot_pruning(m, target, tl(), budget, augment=AUGMENT)
        runs["one-shot"] = (m, time.time() - t)
        t = time.time()
        m = copy.deepcopy(parent)
        ssa_finetune(m, target, tl(), budget, schedule="cosine", initial_prob=0.3,
                     anneal_epochs=s["ft_epochs"] * 0.25, augment=AUGMENT)
        runs["ssa-cosine-p0.3"] = (m, time.time() - t)
        t = time.time()
        m = copy.deepcopy(parent)
        out = rigl_train(m, tl(), budget, sp, init="magnitude", augment=AUGMENT)
        runs["rigl"] = (m, time.time() - t)
        t = time.time()
        m = copy.deepcopy(parent)
        iterative_magnitude_pruning(m, tl(), budget, sp, rounds=3, augment=AUGMENT)
        runs["imp-3"] = (m, time.time() - t)
        extra = {"rigl": {"updates": len(out["updates"])}}
        if s["rigl_scratch"]:
            t = time.time()
            m = build_model(name, data.input_shape, data.num_classes, seed=seed, **kw)
            out = rigl_train(m, tl(), cfg(s, s["parent_epochs"] + s["ft_epochs"], seed, model=name), sp, init="random",
                             distribution="erk", augment=AUGMENT)
            runs["rigl-scratch-erk"] = (m, time.time() - t)
        for method, (m, wall) in runs.items():
            epochs = s["ft_epochs"] if method != "rigl-scratch-erk" else s["parent_epochs"] + s["ft_epochs"]
            rows.append(dict(model=name, seed=seed, sparsity=sp, method=method, **evaluate(m, test),
                             final_sparsity=mask_sparsity(m)["overall"],
                             epochs_after_parent=epochs if method != "rigl-scratch-erk" else 0,
                             total_epochs=epochs + (s["parent_epochs"] if method != "rigl-scratch-erk" else 0),
                             wall=wall, **extra.get(method, {})))
        log(f"[{name} s{seed}] sparsity {sp:.2f}: " + " ".join(f"{r['method']}={r['accuracy']:.3f}"
                                                             for r in rows if r["sparsity"] == sp))
    return rows


# ----------------------------------------------------------------------------------- diversity figures
def diversity_figures(s, name, data, parent, groups, out_stem):
    x = data.test.tensors[0]
    layers = (s["viz_layers"] or {}).get(name)
    acts = layer_activations(parent, x[:256], layers)
    figures, numbers = {}, {}
    members = {"parent": parent}
    for label, key in (("snapshot", "snapshot"), ("PaT anti-random", "pat-antirandom"),
                       ("mutated", "mutated-random")):
        for i, m in enumerate(groups[key][:2]):
            members[f"{label} {i + 1}"] = m
    for layer, a in acts.items():
        v = a.reshape(a.shape[0], a.shape[1], -1).mean(2).mean(0)  # mean activation per unit in the parent
        units = [int(u) for u in torch.argsort(v, descending=True)[: s["viz_units"]]]
        path = Path(f"{out_stem}_diversity_{name}_{layer.replace('.', '-')}.png")
        numbers[layer] = {"units": units, "members": feature_grid(
            members, layer, units, x, path, top_k=3, steps=s["viz_steps"], seed=0, mean=data.mean or None,
            std=data.std or None, title=f"{name} {layer}: activation maximisation (red frame) and top-3 test "
                                        f"inputs per unit, parent vs its ensemble members")}
        figures[layer] = str(path)
    return {"figures": figures, "numbers": numbers, "rows": list(members)}


# ----------------------------------------------------------------------------------- plot
def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(results["config"]["models"])
    fig, ax = plt.subplots(len(models), 3, figsize=(17, 5.2 * len(models)), squeeze=False)
    colors = {}
    for r_i, name in enumerate(models):
        ens = [r for r in results["ensembles"]["summary"] if r["model"] == name]
        for r in ens:
            c = colors.setdefault(r["method"], plt.cm.tab10(len(colors) % 10))
            ax[r_i, 0].errorbar([r["flop_epochs"]], [r["nll"]], yerr=[r.get("nll_std", 0)], marker="o", ms=8,
                                capsize=3, color=c, linestyle="none", label=r["method"])
            ax[r_i, 0].annotate(f"{r['accuracy']:.3f}", (r["flop_epochs"], r["nll"]), fontsize=7,
                                xytext=(4, 4), textcoords="offset points")
        ax[r_i, 0].set(xlabel="training cost (FLOP-epochs)", ylabel="ensemble test NLL",
                       title=f"{name}: ensembles (labels: accuracy)")
        ax[r_i, 0].legend(fontsize=7)
        cka = results["diversity"].get(name, {}).get("cka", {})
        methods = [m for m in cka if m != "parent"]
        if methods:
            layers = cka[methods[0]]["layers"]
            width = 0.8 / len(methods)
            for j, m in enumerate(methods):
                ax[r_i, 1].bar(np.arange(len(layers)) + j * width, [cka[m]["mean_offdiag"][L] for L in layers],
                               width, label=m, color=colors.get(m, plt.cm.tab10(j)))
            ax[r_i, 1].set_xticks(np.arange(len(layers)) + 0.4 - width / 2)
            ax[r_i, 1].set_xticklabels(layers, fontsize=8)
            lo = min(min(cka[m]["mean_offdiag"].values()) for m in methods)
            ax[r_i, 1].set_ylim(max(0.0, lo - 0.05), 1.0)
        ax[r_i, 1].set(ylabel="mean pairwise linear CKA (seed 0)", title=f"{name}: representation similarity "
                                                                         "(lower = more diverse)")
        ax[r_i, 1].legend(fontsize=6, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.07), frameon=False)
        sp = [r for r in results["sparse"]["summary"] if r["model"] == name]
        for method in sorted({r["method"] for r in sp}):
            pts = sorted((r["sparsity"], r["accuracy"], r.get("accuracy_std", 0)) for r in sp if r["method"] == method)
            xs, ys, es = zip(*pts)
            ax[r_i, 2].errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=method)
        ax[r_i, 2].set(xlabel="final sparsity", ylabel="test accuracy",
                       title=f"{name}: sparse fine-tuning at the same budget")
        ax[r_i, 2].legend(fontsize=7)
    fig.tight_layout()
    atomic_write_with(path, lambda p: fig.savefig(p, dpi=100, format="png"))
    plt.close(fig)


def tables(results) -> str:
    """Markdown tables of the summaries (mean ± std over seeds)."""
    def pm(r, k):
        return f"{r[k]:.3f} ± {r.get(k + '_std', 0):.3f}" if k in r else "–"

    out = ["| model | ensemble | accuracy | NLL | ECE | disagreement | pairwise KL | CKA | epochs / FLOP-epochs |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results["ensembles"]["summary"], key=lambda r: (r["model"], r["nll"])):
        div = " | ".join(f"{r[k]:.3f}" if k in r else "–" for k in ("disagreement", "pairwise_kl", "cka"))
        out.append(f"| {r['model']} | {r['method']} | {pm(r, 'accuracy')} | {pm(r, 'nll')} | {r['ece']:.3f} | "
                   f"{div} | {r['epochs']:.0f} / {r['flop_epochs']:.1f} |")
    out += ["", "| model | sparsity | " + " | ".join(SPARSE_METHODS) + " |",
            "|---|---|" + "---|" * len(SPARSE_METHODS)]
    sp = results["sparse"]["summary"]
    for model, s in sorted({(r["model"], r["sparsity"]) for r in sp}):
        rows = {r["method"]: r for r in sp if r["model"] == model and r["sparsity"] == s}
        out.append(f"| {model} | {s:.2f} | " + " | ".join(pm(rows[m], "accuracy") if m in rows else "–"
                                                         for m in SPARSE_METHODS) + " |")
    if results.get("mutation_sweep"):
        out += ["", "| mutated fraction | relative scale | member accuracy | ensemble accuracy | disagreement |",
                "|---|---|---|---|---|"]
        for r in results["mutation_sweep"]:
            out.append(f"| {r['fraction']:g} | {r['scale']:g} | {r['member_accuracy']:.3f} | {r['accuracy']:.3f} | "
                       f"{r['disagreement']:.3f} |")
    return "\n".join(out)


SPARSE_METHODS = ["one-shot", "ssa-cosine-p0.3", "rigl", "imp-3", "rigl-scratch-erk"]


# ----------------------------------------------------------------------------------- main
def main(argv=None):
    global DEVICE, AUGMENT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="benchmarks/results/ensembles.json", help="JSON output (figure: .png)")
    ap.add_argument("--quick", action="store_true", help="fewer seeds and sparsities (a few minutes on a CPU)")
    ap.add_argument("--data-dir", default=None, help="folder with CIFAR-10 python batches (else digits)")
    ap.add_argument("--seeds", type=int, default=None, help="number of seeds (overrides the preset)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-qselect", action="store_true", help="skip quantum-selected children")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: 1 on digits, where the models are tiny; torch's on CIFAR)")
    ap.add_argument("--table", default=None, metavar="JSON",
                    help="only print the tables of an existing results JSON and redraw its summary figure")
    args = ap.parse_args(argv)
    if args.table:
        import json

        results = json.loads(Path(args.table).read_text())
        plot(results, Path(args.table).with_suffix(".png"))
        print(tables(results))
        return results
    DEVICE = args.device
    s = settings(args)
    if args.threads or s["dataset"] == "digits":
        torch.set_num_threads(args.threads or 1)
    t0 = time.time()
    load_before = os.getloadavg()
    out = Path(args.out)
    stem = str(out.with_suffix(""))
    results = {"config": {**s, "quick": args.quick, "device": str(resolve_device(DEVICE)),
                          "command": " ".join(["python", "benchmarks/ensembles.py", *(argv if argv is not None
                                                                                     else sys.argv[1:])])},
               "environment": {"python": platform.python_version(), "torch": torch.__version__,
                               "machine": platform.machine(), "cpus": os.cpu_count(),
                               "threads": torch.get_num_threads(), "load_average_start": load_before}}
    ens_rows, sparse_rows, diversity = [], [], {}
    for name, kw in s["models"].items():
        data = load_dataset(s["dataset"], root=args.data_dir, seed=0, image=name != "mlp")
        if s["dataset"] == "cifar10":
            from qselect.classical.augment import CifarAugment

            AUGMENT = CifarAugment(seed=0)
        test = make_loader(data.test, 512)
        cka_x = data.test.tensors[0][: s["cka_samples"]]
        for seed in s.get("seeds_by_model", {}).get(name, s["seeds"]):
            t = time.time()
            parent = build_model(name, data.input_shape, data.num_classes, seed=seed, **kw)
            train(parent, make_loader(data.train, s["batch"], shuffle=True, seed=seed),
                  cfg(s, s["parent_epochs"], seed, model=name), augment=AUGMENT)
            pstats = {"eval": evaluate(parent, test), "wall": time.time() - t}
            log(f"[{name} s{seed}] parent {pstats['eval']} ({pstats['wall']:.1f}s)")
            rows, groups, cka = run_ensembles(s, name, kw, data, seed, parent, pstats, test, cka_x)
            ens_rows += rows
            sparse_rows += run_sparse(s, name, kw, data, seed, parent, test)
            if seed == s.get("seeds_by_model", {}).get(name, s["seeds"])[0]:
                t = time.time()
                diversity[name] = {"seed": seed, "cka": cka,
                                   **diversity_figures(s, name, data, parent, groups, stem)}
                log(f"[{name}] diversity figures in {time.time() - t:.1f}s")
                if s["mutation_sweep"] and name == next(iter(s["models"])):
                    results["mutation_sweep"] = mutation_sweep(s, parent, data, seed, test)
    ens_metrics = ["accuracy", "nll", "ece", "disagreement", "pairwise_kl", "cka", "member_accuracy", "member_nll",
                   "epochs", "flop_epochs", "wall"]
    results["ensembles"] = {"runs": ens_rows, "summary": summarise(ens_rows, ["model", "method"], ens_metrics)}
    results["sparse"] = {"runs": sparse_rows, "summary": summarise(sparse_rows, ["model", "sparsity", "method"],
                                                                   ["accuracy", "nll", "ece", "wall"])}
    results["diversity"] = diversity
    results["environment"]["load_average_end"] = os.getloadavg()
    results["wall_time"] = time.time() - t0
    results["cpu_time"] = time.process_time()
    atomic_write_json(out, results)
    plot(results, out.with_suffix(".png"))
    log(f"wrote {out}, {out.with_suffix('.png')} and {sum(len(d['figures']) for d in diversity.values())} "
        f"diversity figures in {results['wall_time']:.0f}s")
    print(tables(results))
    return results


if __name__ == "__main__":
    main()
