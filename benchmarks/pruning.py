"""Classical one-shot pruners against local-problem selection (QUBO and refit formulations).

    python benchmarks/pruning.py [--quick] [--out FILE]
    python benchmarks/pruning.py --models mlp --seeds 0 --sparsities 0.7 --skip refit-tabu --out FILE  # a subset

Digits (bundled with scikit-learn): an MLP 64-128-128-10 and LeNet-5, seeds
0-2, per-row sparsity 0.5/0.7/0.9, layers pruned one after another on the
pruned network's own calibration activations (512 training images), metrics on
the held-out test split:

* layer error: ‖Y_pruned − Y_dense‖² / ‖Y_dense‖² per pruned layer (mean over layers);
* one-shot and fine-tuned (2 epochs) accuracy and NLL;
* selection time (seconds) and the real weight sparsity of every row.

Methods: magnitude, wanda, sparsegpt, obc, snip, imp (2 rounds with rewinding
in a 3-epoch budget, before the common fine-tuning), the QUBO weight
formulation (exact search on blocks, tabu) and the refit formulation (exact
search on blocks, tabu), each without and with the least-squares refit of the
kept weights. QAOA solves the refit formulation on one layer (its blocks),
beside exact search on the very same blocks, OBC and Wanda.

``--quick`` (≈ 3 min on 2 idle cores): one seed, sparsity 0.7, a narrower MLP
64-32-32-10 and no LeNet-5, smaller blocks. Writes JSON (``--out``) and a PNG
beside it atomically via qselect.io; prints the tables and who wins where.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import torch

from qselect.app.prune import prune
from qselect.classical.data import load_dataset, make_loader
from qselect.classical.models import build_model
from qselect.classical.train import TrainConfig, evaluate, train
from qselect.io import atomic_write_json, atomic_write_with
from qselect.pruners import layer_error


def settings(quick: bool) -> dict:
    s = dict(models=[("mlp", {"hidden": (128, 128)}), ("lenet5", {})], seeds=[0, 1, 2],
             sparsities=[0.5, 0.7, 0.9], calib=512, parent_epochs=15, ft_epochs=2, lr=0.05, batch=64,
             imp=dict(epochs=3, rounds=2), local=dict(qubo_q=12, refit_q=10, max_sweeps=3, refit_tabu=True),
             qaoa=dict(model="lenet5", layer="conv1", q=10, p=2, shots=1024, max_sweeps=2))
    if quick:
        s.update(models=[("mlp", {"hidden": (32, 32)})], seeds=[0], sparsities=[0.7], calib=256,
                 parent_epochs=10, local=dict(qubo_q=8, refit_q=8, max_sweeps=2, refit_tabu=False),
                 qaoa=dict(model="mlp", layer="layers.4", q=6, p=1, shots=256, max_sweeps=1))
    return s


def methods(s: dict) -> list[tuple[str, str, dict]]:
    loc = s["local"]
    out = [("magnitude", "magnitude", {}), ("wanda", "wanda", {}), ("sparsegpt", "sparsegpt", {}),
            ("obc", "obc", {}), ("snip", "snip", {}), ("imp", "imp", {}),
            ("qubo-exact", "qubo:exact", dict(qubits=loc["qubo_q"], max_sweeps=loc["max_sweeps"])),
            # tabu searches a row's whole QUBO (one call per row: dwave's tabu costs ~0.1 s a call)
            ("qubo-tabu", "qubo:tabu", dict(qubits=4096)),
            ("refit-exact", "refit:exact", dict(qubits=loc["refit_q"], max_sweeps=loc["max_sweeps"]))]
    if loc["refit_tabu"]:  # the refit cost is tabulated per block only: tabu on its order-2 surrogate per block
        out.append(("refit-tabu", "refit:tabu", dict(qubits=loc["refit_q"], max_sweeps=loc["max_sweeps"])))
    return [m for m in out if m[0] not in s.get("skip", ())]


def metrics(model, loader) -> dict:
    e = evaluate(model, loader)
    return {"accuracy": e["accuracy"], "nll": e["nll"]}


def run_model(name, kw, s, seed, data, log) -> tuple[list[dict], dict]:
    image = name == "lenet5"
    model = build_model(name, data["shape_img" if image else "shape"], data["classes"], seed=seed, **kw)
    tr = data["train_img" if image else "train"]
    te = data["test_img" if image else "test"]
    cfg = TrainConfig(epochs=s["parent_epochs"], lr=s["lr"], batch_size=s["batch"], amp=False, seed=seed)
    t0 = time.perf_counter()
    train(model, make_loader(tr, s["batch"], shuffle=True, seed=seed), cfg)
    test_loader = make_loader(te, 512)
    parent = metrics(model, test_loader)
    log(f"{name} seed {seed}: parent {parent['accuracy']:.4f} ({time.perf_counter() - t0:.1f} s)")
    g = torch.Generator().manual_seed(1000 + seed)
    idx = torch.randperm(len(tr), generator=g)[: s["calib"]]
    calib_x, calib_y = tr.tensors[0][idx], tr.tensors[1][idx]
    held = te.tensors[0]
    rows = []
    for sp, (label, method, opts) in [(sp, m) for sp in s["sparsities"] for m in methods(s)]:
        for refit in (False, True):
            o = dict(opts)
            if method == "snip":
                calib = [(calib_x, calib_y)]
            else:
                calib = calib_x
            if method == "imp":
                o.update(train_loader=make_loader(tr, s["batch"], shuffle=True, seed=seed), **s["imp"],
                         config={"lr": s["lr"], "amp": False, "batch_size": s["batch"]})
            t = time.perf_counter()
            res = prune(model, calib, method, sp, refit=refit, seed=seed, **o)
            secs = time.perf_counter() - t
            le = layer_error(model, res, held)
            pruned = res.apply(copy.deepcopy(model))
            one = metrics(pruned, test_loader)
            ft_cfg = TrainConfig(epochs=s["ft_epochs"], lr=s["lr"] / 5, batch_size=s["batch"], amp=False, seed=seed)
            train(pruned, make_loader(tr, s["batch"], shuffle=True, seed=seed + 7), ft_cfg)
            ft = metrics(pruned, test_loader)
            rows.append({"model": name, "seed": seed, "sparsity": sp, "method": label, "refit": refit,
                         "real_sparsity": res.real_sparsity(), "layer_error": le["mean"],
                         "layer_errors": le["layers"], "oneshot": one, "finetuned": ft, "seconds": secs,
                         "imp_epochs": res.info.get("epochs") or res.info.get("mask_info", {}).get("epochs")})
            log(f"  s={sp} {label:12s} refit={int(refit)} s={res.real_sparsity():.4f} layer_err={le['mean']:.5f} "
                f"one-shot {one['accuracy']:.4f} ft {ft['accuracy']:.4f} ({secs:.1f} s)")
    return rows, {"model": name, "seed": seed, **parent}



def qaoa_layer(s, data, log) -> list[dict]:
    """QAOA vs exact search on the same blocks of one layer's refit problems, beside OBC and Wanda."""
    q = s["qaoa"]
    name = q["model"]
    image = name == "lenet5"
    kw = dict(s["models"][0][1]) if name == "mlp" else {}
    model = build_model(name, data["shape_img" if image else "shape"], data["classes"], seed=0, **kw)
    tr = data["train_img" if image else "train"]
    train(model, make_loader(tr, s["batch"], shuffle=True, seed=0),
          TrainConfig(epochs=s["parent_epochs"], lr=s["lr"], batch_size=s["batch"], amp=False, seed=0))
    calib = tr.tensors[0][: s["calib"]]
    held = data["test_img" if image else "test"].tensors[0]
    out = []
    for sp in s["sparsities"]:
        for label, method, opts in [
                ("wanda", "wanda", {}), ("obc", "obc", {}),
                ("refit-exact", "refit:exact", dict(qubits=q["q"], max_sweeps=q["max_sweeps"])),
                ("refit-qaoa", "refit:qaoa", dict(qubits=q["q"], max_sweeps=q["max_sweeps"],
                                                  solver_options={"p": q["p"], "shots": q["shots"]}))]:
            t = time.perf_counter()
            res = prune(model, calib, method, sp, layers=[q["layer"]], refit=True, **opts)
            secs = time.perf_counter() - t
            le = layer_error(model, res, held)
            local = next(iter(((res.info.get("local") or {}).get("layers") or {}).values()), {})
            control = _control(local.get("uniform_baseline"))
            out.append({"model": name, "layer": q["layer"], "sparsity": sp, "method": label, "refit": True,
                        "real_sparsity": res.real_sparsity(), "layer_error": le["mean"], "seconds": secs,
                        "energy": local.get("energy"), "uniform_baseline": control})
            extra = ""
            if control:
                extra = (f" P(opt)/shot QAOA {control['solver_probability_optimum']:.3g} vs uniform "
                         f"{control['probability_optimum']:.3g}; best of shots optimal: QAOA "
                         f"{control['solver_probability_best_of_shots']:.3f}, "
                         f"uniform {control['probability_best_of_shots']:.3f}")
            log(f"  one layer {name}.{q['layer']} s={sp}: {label:12s} +refit layer_err={le['mean']:.5f} "
                f"energy={local.get('energy', float('nan')):.6g} ({secs:.1f} s){extra}")
    return out


def _control(items):
    """Mean of the per-problem uniform-sampling controls of QAOA's block solves (None without)."""
    if not items:
        return None
    keys = ("probability_optimum", "probability_best_of_shots", "solver_probability_optimum",
            "solver_probability_best_of_shots", "approximation_ratio", "solver_approximation_ratio")
    out = {}
    for k in keys:
        vals = [float(c[k]) for c in items if isinstance(c, dict) and c.get(k) is not None]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    out["problems"] = len(items)
    return out


def paired(rows) -> dict:
    """Per (model, seed, sparsity) cell, without and with refit: in how many cells method A's held-out
    layer error (or fine-tuned NLL) is below B's, and above it: ``[wins, losses]``."""
    cells: dict = {}
    for r in rows:
        cells.setdefault((r["model"], r["seed"], r["sparsity"], r["refit"]), {})[r["method"]] = r
    names = sorted({r["method"] for r in rows})
    wins = {}
    for a, b in combinations(names, 2):
        for metric in ("layer_error", "finetuned"):
            for refit in (False, True):
                w = l = 0
                for key, cell in cells.items():
                    if key[3] == refit and a in cell and b in cell:
                        va, vb = _value(cell[a], metric), _value(cell[b], metric)
                        w += va < vb
                        l += va > vb
                wins[f"{a} vs {b} [{metric}, refit={int(refit)}]"] = [int(w), int(l)]
    return wins


def _value(row, metric):
    return row["layer_error"] if metric == "layer_error" else row["finetuned"]["nll"]


def summary(rows) -> list[str]:
    lines = []
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["model"], r["sparsity"], r["refit"], r["method"]), []).append(r)
    for model in sorted({r["model"] for r in rows}):
        for sp in sorted({r["sparsity"] for r in rows}):
            for refit in (False, True):
                cell = {m: g for (mo, s_, rf, m), g in groups.items() if mo == model and s_ == sp and rf == refit}
                if not cell:
                    continue
                ranked = sorted(cell, key=lambda m: np.mean([g["layer_error"] for g in cell[m]]))
                lines.append(f"{model} s={sp} refit={int(refit)}: layer error best→worst " + ", ".join(
                    f"{m} {100 * np.mean([g['layer_error'] for g in cell[m]]):.3g}%" for m in ranked))
                ft = sorted(cell, key=lambda m: -np.mean([g["finetuned"]["accuracy"] for g in cell[m]]))
                lines.append(f"{model} s={sp} refit={int(refit)}: fine-tuned acc best→worst " + ", ".join(
                    f"{m} {100 * np.mean([g['finetuned']['accuracy'] for g in cell[m]]):.2f}" for m in ft))
    return lines


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    models = sorted({r["model"] for r in rows})
    fig, axes = plt.subplots(len(models), 2, figsize=(12, 4 * len(models)), squeeze=False)
    names = [m[0] for m in methods(result["settings_full"])]
    for i, model in enumerate(models):
        for j, refit in enumerate((False, True)):
            ax = axes[i][j]
            for sp in sorted({r["sparsity"] for r in rows}):
                vals = [np.mean([r["layer_error"] for r in rows if r["model"] == model and r["sparsity"] == sp
                                 and r["refit"] == refit and r["method"] == m] or [np.nan]) for m in names]
                ax.plot(range(len(names)), vals, "o-", label=f"sparsity {sp}")
            ax.set_yscale("log")
            ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
            ax.set_ylabel("held-out layer error (mean over layers)")
            ax.set_title(f"{model}, {'with' if refit else 'without'} least-squares refit")
            ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_with(path, lambda p: fig.savefig(p, dpi=100, format="png"))
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/pruning[_quick].json)")
    ap.add_argument("--models", default=None, help="subset of the models, e.g. mlp")
    ap.add_argument("--seeds", default=None, help="subset of the seeds, e.g. 0")
    ap.add_argument("--sparsities", default=None, help="subset of the sparsities, e.g. 0.7")
    ap.add_argument("--skip", default="", help="methods to leave out, e.g. refit-tabu")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # tiny models: intra-op threads only contend on a shared machine
    s = settings(args.quick)
    if args.models:
        s["models"] = [m for m in s["models"] if m[0] in args.models.split(",")]
    if args.seeds:
        s["seeds"] = [int(v) for v in args.seeds.split(",")]
    if args.sparsities:
        s["sparsities"] = [float(v) for v in args.sparsities.split(",")]
    s["skip"] = [m for m in args.skip.split(",") if m]
    out = Path(args.out or f"benchmarks/results/pruning{'_quick' if args.quick else ''}.json")
    load_before = os.getloadavg()
    t_all = time.perf_counter()
    flat, img = load_dataset("digits", seed=0), load_dataset("digits", seed=0, image=True)
    data = {"train": flat.train, "test": flat.test, "train_img": img.train, "test_img": img.test,
            "shape": flat.input_shape, "shape_img": img.input_shape, "classes": flat.num_classes}
    log = lambda m: print(m, flush=True)  # noqa: E731
    rows, parents = [], []
    for name, kw in s["models"]:
        for seed in s["seeds"]:
            r, p = run_model(name, kw, s, seed, data, log)
            rows += r
            parents.append(p)
    one_layer = qaoa_layer(s, data, log)
    result = {"quick": args.quick, "settings": {k: v for k, v in s.items()},
              "settings_full": s, "rows": rows, "parents": parents, "qaoa_one_layer": one_layer,
              "paired_wins": paired(rows), "summary": summary(rows),
              "seconds": time.perf_counter() - t_all,
              "machine": {"platform": platform.platform(), "python": sys.version.split()[0],
                          "torch": torch.__version__, "cpus": os.cpu_count(), "torch_threads": 1,
                          "loadavg_before": load_before, "loadavg_after": os.getloadavg()}}
    atomic_write_json(out, result)
    plot(result, out.with_suffix(".png"))
    print("\n".join(result["summary"]))
    print("paired wins/losses on held-out layer error (cells where the first is lower / higher):")
    for key, (w, l) in result["paired_wins"].items():
        if "[layer_error" in key and ("qubo" in key or "refit-" in key):
            print(f"  {key.replace('layer_error, ', '')}: {w}/{l}")
    print(f"total {result['seconds']:.0f} s; load average before {load_before[0]:.1f}, "
          f"after {result['machine']['loadavg_after'][0]:.1f} on {os.cpu_count()} cores; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
