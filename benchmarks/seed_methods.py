"""Seed methods against their baselines, over seeds and sparsities.

    python benchmarks/seed_methods.py [--out FILE] [--quick] [--data-dir DIR]
    python benchmarks/seed_methods.py --table FILE   # the README tables from a results JSON

* Prune and Tune: ensembles of anti-random, random, magnitude, N-way partition
  and quantum-selected (qselect local problems) children vs the parent alone
  and vs independently trained dense models; accuracy, NLL, ECE, diversity and
  training cost (epochs, FLOP-weighted epochs).
* Stochastic Subnetwork Annealing (magnitude / random / qselect targets) vs
  one-shot pruning and iterative magnitude pruning at the same final sparsity
  and the same fine-tuning epoch budget, from the same trained parent.
* Synaptic Stripping vs plain training (same epochs): dead units per epoch,
  final sparsity and accuracy, on a plain MLP and on one with half the first
  layer's units forced dead by a negative bias.

Digits (bundled with scikit-learn) by default; ``--data-dir DIR`` uses CIFAR-10
from DIR (python pickle batches) with ResNet-18 (a GPU is strongly advised).
Writes JSON and a PNG plot (``FILE`` with .png) atomically via qselect.io.
"""
from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from qselect.classical.baselines import magnitude_masks, random_masks
from qselect.classical.data import load_dataset, make_loader
from qselect.classical.masks import mask_sparsity
from qselect.classical.models import build_model
from qselect.classical.train import TrainConfig, evaluate, train
from qselect.devices import resolve_device
from qselect.io import atomic_write_json, atomic_write_with
from qselect.methods import (
    PaTConfig,
    SynapticStripping,
    evaluate_ensemble,
    iterative_magnitude_pruning,
    one_shot_pruning,
    prune_and_tune,
    ssa_finetune,
)


def settings(args) -> dict:
    cifar = args.data_dir is not None
    if cifar:
        # ResNet-18 has no Linear->ReLU pairs (conv-BN-ReLU), so stripping runs on the small ViT
        s = dict(dataset="cifar10", model="resnet18", model_kw={}, ss_model="vit",
                 ss_model_kw={"patch": 4, "dim": 64, "depth": 4}, parent_epochs=30, lr=0.1, batch=128,
                 children=6, tune_epochs=3, ft_epochs=6, ss_epochs=15, seeds=[0, 1, 2],
                 pat_sparsities=[0.5, 0.75, 0.9], ssa_sparsities=[0.8, 0.9, 0.95, 0.98],
                 ssa=[("linear", 0.5), ("cosine", 0.3), ("cosine", 1.0), ("exponential", 1.0)],
                 anneal_fraction=0.25, qselect=dict(qubits=12, solver="greedy"),
                 qselect_last_layers=1, calib=128)
    else:
        s = dict(dataset="digits", model="mlp", model_kw={"hidden": [64, 64]}, ss_model="mlp",
                 ss_model_kw={"hidden": [64, 64]}, parent_epochs=15, lr=0.1,
                 batch=64, children=6, tune_epochs=4, ft_epochs=8, ss_epochs=12, seeds=[0, 1, 2],
                 pat_sparsities=[0.5, 0.75, 0.9], ssa_sparsities=[0.8, 0.9, 0.95, 0.98],
                 ssa=[("linear", 0.5), ("cosine", 0.3), ("cosine", 1.0), ("exponential", 1.0)],
                 anneal_fraction=0.25, qselect=dict(qubits=8), qselect_last_layers=None, calib=64)
    if args.quick:
        s.update(seeds=[0, 1], children=4, pat_sparsities=[0.5, 0.75, 0.9], ssa_sparsities=[0.9, 0.95, 0.98],
                 ssa=[("cosine", 0.3), ("exponential", 1.0)], ss_epochs=8)
        if cifar:
            s.update(parent_epochs=10, tune_epochs=2, ft_epochs=3, ss_epochs=4, seeds=[0],
                     children=4, ssa_sparsities=[0.9, 0.98])
    if args.seeds:
        s["seeds"] = list(range(args.seeds))
    if args.model:
        s.update(model=args.model, model_kw={}, ss_model=args.model, ss_model_kw={})
    if args.epochs:
        s["parent_epochs"] = args.epochs
    if args.anneal_fraction is not None:
        s["anneal_fraction"] = args.anneal_fraction
    if args.qselect_last_layers is not None:
        s["qselect_last_layers"] = args.qselect_last_layers or None
    return s


def cfg(s, epochs, seed, lr=None):
    return TrainConfig(epochs=epochs, lr=lr or s["lr"], batch_size=s["batch"], seed=seed, device=DEVICE)


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


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------- PaT
def run_pat(s, data, parents, test):
    rows = []
    for seed, (parent, pstats) in parents.items():
        rows.append(dict(seed=seed, method="parent", sparsity=0.0, **pstats["eval"],
                         epochs=s["parent_epochs"], flop_epochs=s["parent_epochs"], wall=pstats["wall"]))
        # independent dense models, each trained as long as the parent
        t = time.time()
        members = [parent]
        for i in range(1, s["children"]):
            m = build_model(s["model"], data.input_shape, data.num_classes, seed=1000 * seed + i, **s["model_kw"])
            train(m, make_loader(data.train, s["batch"], shuffle=True, seed=seed * 100 + i),
                  cfg(s, s["parent_epochs"], seed * 100 + i), augment=AUGMENT)
            members.append(m)
        ev = evaluate_ensemble(members, test)
        cost = s["parent_epochs"] * len(members)
        rows.append(dict(seed=seed, method="independent", sparsity=0.0, **_ens(ev), epochs=cost,
                         flop_epochs=cost, wall=time.time() - t))
        log(f"PaT seed={seed} parent nll={pstats['eval']['nll']:.4f}; {len(members)} independent models "
            f"acc={ev['accuracy']:.4f} nll={ev['nll']:.4f}")
        for sp in s["pat_sparsities"]:
            # at 50% a 2-way partition is exactly the anti-random pairing
            methods = ["random", "magnitude"] + (["antirandom"] if sp == 0.5 else ["partition"])
            if sp == 0.5 and s["qselect"] is not None:
                methods.append("qselect")
            for method in methods:
                t = time.time()
                opts = qselect_options(s, parent) if method == "qselect" else None
                pcfg = PaTConfig(children=s["children"], method=method, sparsity=sp, tune_epochs=s["tune_epochs"],
                                 lr=s["lr"] * 2 if s["dataset"] == "digits" else s["lr"], batch_size=s["batch"],
                                 seed=seed, calib_size=s["calib"], select_options=opts)
                pcfg.tune = cfg(s, s["tune_epochs"], seed, lr=pcfg.lr)
                res = prune_and_tune(parent, data.train, pcfg, parent_epochs=s["parent_epochs"], augment=AUGMENT)
                ev = res.evaluate(test)
                rows.append(dict(seed=seed, method=method, sparsity=sp, **_ens(ev), epochs=res.cost["epochs"],
                                 flop_epochs=res.cost["flop_epochs"], identical_pairs=res.info["identical_pairs"],
                                 wall=time.time() - t))
                log(f"PaT seed={seed} {method:>10} s={sp:.2f} acc={ev['accuracy']:.4f} nll={ev['nll']:.4f} "
                    f"ece={ev['ece']:.4f} dis={ev['disagreement']:.3f} ({time.time() - t:.1f}s)")
    metrics = ["accuracy", "nll", "ece", "disagreement", "pairwise_kl", "output_correlation",
               "member_accuracy", "member_nll", "epochs", "flop_epochs", "wall"]
    return {"runs": rows, "summary": summarise(rows, ["method", "sparsity"], metrics)}


def _ens(ev):
    return dict(accuracy=ev["accuracy"], nll=ev["nll"], ece=ev["ece"], disagreement=ev["disagreement"],
                pairwise_kl=ev["pairwise_kl"], output_correlation=ev["output_correlation"],
                member_accuracy=ev["member_mean"]["accuracy"], member_nll=ev["member_mean"]["nll"])


# ----------------------------------------------------------------------------------- SSA
def qselect_options(s, model):
    """select_masks options; on big models only the last layers get local problems."""
    from qselect.classical.masks import prunable_parameters

    opts = dict(s["qselect"])
    if s.get("qselect_last_layers"):
        opts["layers"] = [n.rsplit(".", 1)[0] for n in prunable_parameters(model)[-s["qselect_last_layers"]:]]
    return opts


def qselect_target(s, model, data, sparsity, seed):
    from qselect.formulate import select_masks

    x = data.train.tensors[0]
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[: s["calib"]]
    sel = select_masks(model, x[idx].to(next(model.parameters()).device), sparsity=sparsity, seed=seed,
                       **qselect_options(s, model))
    return {k: v.float().cpu() for k, v in sel.masks.items()}


def run_ssa(s, data, parents, test, with_qselect):
    rows = []
    train_loader = lambda seed: make_loader(data.train, s["batch"], shuffle=True, seed=seed)  # noqa: E731
    for seed, (parent, _) in parents.items():
        for sp in s["ssa_sparsities"]:
            targets = {"magnitude": magnitude_masks(parent, sp), "random": random_masks(parent, sp, seed=seed)}
            if with_qselect and sp == s["ssa_sparsities"][0]:
                t = time.time()
                targets["qselect"] = qselect_target(s, parent, data, sp, seed)
                log(f"qselect target s={sp} in {time.time() - t:.1f}s")
            budget = cfg(s, s["ft_epochs"], seed)
            for tname, target in targets.items():
                t = time.time()
                m = copy.deepcopy(parent)
                one_shot_pruning(m, target, train_loader(seed), budget, augment=AUGMENT)
                rows.append(dict(seed=seed, sparsity=sp, target=tname, method="one-shot",
                                 **evaluate(m, test), wall=time.time() - t))
                for sched, p0 in s["ssa"]:
                    t = time.time()
                    m = copy.deepcopy(parent)
                    out = ssa_finetune(m, target, train_loader(seed), budget, schedule=sched, initial_prob=p0,
                                       anneal_epochs=s["ft_epochs"] * s["anneal_fraction"], augment=AUGMENT)
                    assert abs(mask_sparsity(out["masks"])["overall"] - mask_sparsity(target)["overall"]) < 1e-9
                    rows.append(dict(seed=seed, sparsity=sp, target=tname, method=f"ssa-{sched}-p{p0:g}",
                                     **evaluate(m, test), wall=time.time() - t))
            t = time.time()
            m = copy.deepcopy(parent)
            iterative_magnitude_pruning(m, train_loader(seed), budget, sp, rounds=3, augment=AUGMENT)
            rows.append(dict(seed=seed, sparsity=sp, target="magnitude", method="imp-3",
                             **evaluate(m, test), wall=time.time() - t))
            mine = [r for r in rows if r["seed"] == seed and r["sparsity"] == sp]
            log(f"SSA seed={seed} s={sp:.2f} " + " ".join(f"{r['target'][:3]}/{r['method']}={r['accuracy']:.3f}"
                                                        for r in mine))
    return {"runs": rows, "summary": summarise(rows, ["target", "method", "sparsity"],
                                               ["accuracy", "nll", "ece", "wall"])}


# ----------------------------------------------------------------------------------- SS
def run_ss(s, data, test):
    rows, curves = [], []
    eval_loader = make_loader(data.train, 512)
    for seed in s["seeds"]:
        for variant in ("plain", "forced-dead"):
            for strip in (False, True):
                model = build_model(s["ss_model"], data.input_shape, data.num_classes, seed=seed, **s["ss_model_kw"])
                stripper = SynapticStripping(model, eval_loader, fraction=0.05, frequency=1)
                if variant == "forced-dead":  # half the units of the first Linear->ReLU layer
                    first = model.get_submodule(next(iter(stripper.relu_activity())))
                    with torch.no_grad():
                        first.bias[: first.out_features // 2] = -1.0
                dead = [int(sum(int(d.sum()) for d in stripper.dead_units().values()))]

                def callback(epoch, model, hist, stripper=stripper, dead=dead, strip=strip):
                    if strip:
                        stripper.epoch_callback(epoch)
                    dead.append(int(sum(int(d.sum()) for d in stripper.dead_units().values())))

                t = time.time()
                train(model, make_loader(data.train, s["batch"], shuffle=True, seed=seed), cfg(s, s["ss_epochs"], seed),
                      epoch_callback=callback, augment=AUGMENT)
                ev = evaluate(model, test)
                rows.append(dict(seed=seed, variant=variant, method="stripping" if strip else "plain",
                                 **ev, dead_start=dead[0], dead_end=dead[-1], sparsity=stripper.sparsity(),
                                 wall=time.time() - t))
                curves.append(dict(seed=seed, variant=variant, method=rows[-1]["method"], dead=dead))
                log(f"SS seed={seed} {variant:>11} {rows[-1]['method']:>9} acc={ev['accuracy']:.4f} "
                    f"dead {dead[0]}->{dead[-1]} sparsity={rows[-1]['sparsity']:.3f}")
    return {"runs": rows, "dead_per_epoch": curves,
            "summary": summarise(rows, ["variant", "method"],
                                 ["accuracy", "nll", "ece", "dead_start", "dead_end", "sparsity", "wall"])}


# ----------------------------------------------------------------------------------- plot
def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(16, 4.5))
    pat = results["pat"]["summary"]
    base = {r["method"]: r for r in pat if r["sparsity"] == 0.0}
    for method in ("random", "magnitude", "partition"):
        pts = sorted((r["sparsity"], r["nll"], r.get("nll_std", 0)) for r in pat if r["method"] == method)
        if pts:
            x, y, e = zip(*pts)
            ax[0].errorbar(x, y, yerr=e, marker="o", capsize=3, label=f"PaT {method}")
    for method, mk in (("antirandom", "s"), ("qselect", "*")):
        pts = [r for r in pat if r["method"] == method]
        for r in pts:
            ax[0].errorbar([r["sparsity"]], [r["nll"]], yerr=[r.get("nll_std", 0)], marker=mk, ms=10,
                           capsize=3, linestyle="none", label=f"PaT {method}")
    for name, ls in (("parent", "--"), ("independent", ":")):
        if name in base:
            ax[0].axhline(base[name]["nll"], color="k", linestyle=ls, label=name)
    ax[0].set(xlabel="child sparsity", ylabel="ensemble test NLL (log)", title="Prune and Tune", yscale="log")
    ax[0].legend(fontsize=7)
    ssa = results["ssa"]["summary"]
    styles = {"magnitude": "-", "random": "--", "qselect": "none"}
    for i, (target, method) in enumerate(sorted({(r["target"], r["method"]) for r in ssa})):
        pts = sorted((r["sparsity"], r["accuracy"], r.get("accuracy_std", 0)) for r in ssa
                     if r["target"] == target and r["method"] == method)
        x, y, e = zip(*pts)
        ax[1].errorbar(x, y, yerr=e, marker="*" if target == "qselect" else "o", capsize=3,
                       label=f"{target}: {method}", color=plt.cm.tab20(i % 20),
                       linestyle=styles.get(target, ":"))
    ax[1].set(xlabel="final sparsity", ylabel="test accuracy", title="SSA vs one-shot vs IMP (same budget)")
    ax[1].legend(fontsize=7)
    for c in results["ss"]["dead_per_epoch"]:
        if c["seed"] != results["ss"]["dead_per_epoch"][0]["seed"]:
            continue
        ax[2].plot(range(len(c["dead"])), c["dead"], marker=".",
                   linestyle="-" if c["method"] == "stripping" else "--",
                   label=f"{c['variant']} / {c['method']}")
    ax[2].set(xlabel="epoch", ylabel="dead ReLU units", title="Synaptic Stripping")
    ax[2].legend(fontsize=7)
    fig.tight_layout()
    atomic_write_with(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


# ----------------------------------------------------------------------------------- README tables
def tables(results) -> str:
    """The README's three tables (markdown) from a results JSON: mean (± std) over seeds."""
    def pm(r, k, nd=3):
        return f"{r[k]:.{nd}f} ± {r.get(k + '_std', 0):.{nd}f}"

    def num(r, k):
        return f"{r[k]:.3f}" if k in r else "–"  # the parent alone has no diversity

    pat = results["pat"]["summary"]
    out = ["| ensemble | child sparsity | accuracy | NLL | ECE | disagreement | pairwise KL | cost (ep / FLOP-ep) |",
           "|---|---|---|---|---|---|---|---|"]
    for r in sorted(pat, key=lambda r: (r["sparsity"], r["nll"])):
        out.append(f"| {r['method']} | {r['sparsity']:g} | {r['accuracy']:.3f} | {pm(r, 'nll')} | {r['ece']:.3f} | "
                   f"{num(r, 'disagreement')} | {num(r, 'pairwise_kl')} | {r['epochs']:g} / {r['flop_epochs']:.1f} |")
    ssa = results["ssa"]["summary"]
    out += ["", "| final sparsity | target | one-shot | SSA cosine p₀=0.3 | best SSA variant | IMP-3 |",
            "|---|---|---|---|---|---|"]
    for sp, target in sorted({(r["sparsity"], r["target"]) for r in ssa}):
        rows = {r["method"]: r for r in ssa if r["sparsity"] == sp and r["target"] == target}
        if "one-shot" not in rows:
            continue
        best = max((r for m, r in rows.items() if m.startswith("ssa-")), key=lambda r: r["accuracy"])
        imp = rows.get("imp-3")  # magnitude targets only
        cos = rows.get("ssa-cosine-p0.3")
        out.append(f"| {sp:.2f} | {target} | {pm(rows['one-shot'], 'accuracy')} | "
                   f"{pm(cos, 'accuracy') if cos else '–'} | "
                   f"{pm(best, 'accuracy')} ({best['method']}) | {pm(imp, 'accuracy') if imp else '–'} |")
    out += ["", "| variant | training | dead units start → end | final sparsity | accuracy |", "|---|---|---|---|---|"]
    for r in results["ss"]["summary"]:
        out.append(f"| {r['variant']} | {r['method']} | {r['dead_start']:.1f} → {r['dead_end']:.1f} | "
                   f"{r['sparsity']:.3f} | {pm(r, 'accuracy')} |")
    return "\n".join(out)


# ----------------------------------------------------------------------------------- main
DEVICE = "auto"
AUGMENT = None


def main(argv=None):
    global DEVICE, AUGMENT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="benchmarks/results/seed_methods.json", help="JSON output (plot: .png)")
    ap.add_argument("--quick", action="store_true", help="fewer seeds/sparsities/schedules (minutes on a CPU)")
    ap.add_argument("--data-dir", default=None, help="folder with CIFAR-10 python batches (else digits)")
    ap.add_argument("--seeds", type=int, default=None, help="number of seeds (overrides the preset)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-qselect", action="store_true", help="skip quantum-selected children/targets")
    ap.add_argument("--model", default=None, help="override the model (mlp, lenet5, resnet18, vit)")
    ap.add_argument("--epochs", type=int, default=None, help="override the parent's epochs")
    ap.add_argument("--anneal-fraction", type=float, default=None,
                    help="share of the fine-tuning budget SSA anneals over (preset 0.25)")
    ap.add_argument("--qselect-last-layers", type=int, default=None,
                    help="local problems only for the last N prunable layers (0: all; CIFAR default 1)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--table", default=None, metavar="JSON",
                    help="only print the README tables from an existing results JSON")
    args = ap.parse_args(argv)
    if args.table:
        import json

        print(tables(json.loads(Path(args.table).read_text())))
        return None
    DEVICE = args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    s = settings(args)
    if args.no_qselect:
        s["qselect"] = None
    t0 = time.time()
    data = load_dataset(s["dataset"], root=args.data_dir, seed=0, image=s["model"] != "mlp")
    if s["dataset"] == "cifar10":
        from qselect.classical.augment import CifarAugment

        AUGMENT = CifarAugment(seed=0)
    test = make_loader(data.test, 512)
    parents = {}
    for seed in s["seeds"]:
        t = time.time()
        parent = build_model(s["model"], data.input_shape, data.num_classes, seed=seed, **s["model_kw"])
        train(parent, make_loader(data.train, s["batch"], shuffle=True, seed=seed), cfg(s, s["parent_epochs"], seed),
              augment=AUGMENT)
        parents[seed] = (parent, {"eval": evaluate(parent, test), "wall": time.time() - t})
        log(f"parent seed={seed}: {parents[seed][1]['eval']} ({time.time() - t:.1f}s)")
    results = {"config": {**s, "quick": args.quick, "device": str(resolve_device(DEVICE)),
                          "command": " ".join(["python", "benchmarks/seed_methods.py", *(argv or sys.argv[1:])])},
               "environment": {"python": platform.python_version(), "torch": torch.__version__,
                               "machine": platform.machine(), "threads": torch.get_num_threads()}}
    results["pat"] = run_pat(s, data, parents, test)
    results["ssa"] = run_ssa(s, data, parents, test, with_qselect=s["qselect"] is not None)
    results["ss"] = run_ss(s, data, test)
    results["wall_time"] = time.time() - t0
    out = Path(args.out)
    atomic_write_json(out, results)
    plot(results, out.with_suffix(".png"))
    log(f"wrote {out} and {out.with_suffix('.png')} in {results['wall_time']:.0f}s")
    print(tables(results))
    return results


if __name__ == "__main__":
    main()
