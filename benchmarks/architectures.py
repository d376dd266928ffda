"""Selection on real architectures: ResNet-18 and the ViT at CIFAR shape.

    python benchmarks/architectures.py [--quick] [--out FILE]

Measured, each step in a fresh process (so the peak resident memory is that
step's, imports included):

* neuron selection of every selectable layer (ResNet-18: the BasicBlock inner
  convs ``layerX.Y.conv1``; ViT: the MLP inputs ``blocks.i.mlp.0`` and the
  attention heads) with the default classical solver (exact 12-bit blocks,
  block descent): time and peak memory per model — goal: all BasicBlock inner
  convs of ResNet-18 in ≤ 2 min;
* weight selection with the lean (shared-Gram) formulation and swap descent on
  whole rows: every prunable layer timed on a sample of neurons (the
  per-layer total is extrapolated and labelled ``estimate``) and the widest
  ResNet-18 ``layer4`` conv (512 neurons × 4608 weights) in full — goal
  ≤ 5 min and ≤ 4 GB on 2 cores; the memory the dense formulation would need
  is printed beside it;
* QAOA (native simulator, p = 1) on ≤ 12-qubit blocks for one layer;
* compacted models (``qselect.classical.compact.compact`` on the neuron
  masks): parameters and inference time beside the dense and masked models.

Inputs are random (timing only; selection quality is covered by the tests and
the seed-method benchmark). The machine load (1-minute load average) is
recorded before and after each step; figures on a shared machine are upper
bounds. Results go to ``--out`` (JSON, atomic write) and a table is printed.
"""
from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
import os
import platform
import resource
import sys
import time

import numpy as np
import torch

from qselect.io import atomic_write_json

THREADS = 2


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _models(quick: bool):
    from qselect.classical.models import build_model

    shape = (3, 32, 32)
    rn = build_model("resnet18", shape, 10, seed=0, width=16 if quick else 64).eval()
    vit = build_model("vit", shape, 10, seed=0, **({"dim": 32, "depth": 2} if quick else {})).eval()
    return {"resnet18": rn, "vit": vit}


def _inputs(quick: bool, n: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n or (8 if quick else 32), 3, 32, 32, generator=g)


def _step(kind: str, quick: bool, arg=None) -> dict:
    """One measurement; runs in a fresh process."""
    torch.set_num_threads(THREADS)
    from qselect.formulate import select_masks

    out: dict = {"load_before": os.getloadavg()[0]}
    models = _models(quick)
    x = _inputs(quick)
    t0 = time.perf_counter()
    if kind == "neuron":
        model = models[arg]
        layers = None
        if arg == "vit":
            layers = [f"blocks.{i}.mlp.0" for i in range(len(model.blocks))] + \
                     [f"blocks.{i}.attn" for i in range(len(model.blocks))]
        sel = select_masks(model, x, formulation="neuron", sparsity=0.5, layers=layers, qubits=12, seed=0)
        out["layers"] = sorted({p.layer for p in sel.problems})
        out["bits"] = {p.layer: int(p.n) for p in sel.problems}
        out["energy"] = float(sum(r.energy for r in sel.results))
        out["masks_kept"] = {k: float(v.float().mean()) for k, v in sel.masks.items() if k.endswith(".weight")}
    elif kind == "weight-sample":
        from qselect.formulate.activations import collect_activations, prunable_layers
        from qselect.formulate.lean import weight_memory
        from qselect.formulate.weights import weight_problems
        from qselect.solvers.swap import SwapDescentSolver

        model_name, per_layer = arg
        model = models[model_name]
        names = prunable_layers(model)
        acts = collect_activations(model, x, names)
        solver = SwapDescentSolver()
        rows = []
        for name in names:
            layer = model.get_submodule(name)
            count = int(layer.weight.shape[0])
            pick = np.linspace(0, count - 1, min(per_layer, count)).round().astype(int)
            mem = weight_memory(layer, tuple(acts[name][0].shape))
            # the formulation the whole layer would get ("auto" decides on all its neurons, not the sample)
            from qselect.formulate.weights import DENSE_LIMIT

            whole_lean = mem["dense"] > DENSE_LIMIT
            t = time.perf_counter()
            probs = weight_problems(name, layer, acts[name][0], sparsity=0.5, neurons=pick, lean=whole_lean)
            tb = time.perf_counter() - t
            t = time.perf_counter()
            res = [solver.solve(p.problem) for p in probs]
            ts = time.perf_counter() - t
            lean = bool(probs[0].info.get("lean", False))
            rows.append({"layer": name, "neurons": count, "bits": int(probs[0].n), "sampled": len(pick),
                         "lean": lean, "build_s": tb, "solve_s": ts,
                         "estimate_layer_s": (ts / len(pick)) * count + tb * (1 if lean else count / len(pick)),
                         "dense_gib": mem["dense"] / 2**30, "lean_gib": mem["lean"] / 2**30,
                         "kept": float(np.mean([r.kept_fraction for r in res]))})
        out["rows"] = rows
        out["estimate_total_s"] = float(sum(r["estimate_layer_s"] for r in rows))
    elif kind == "weight-widest":
        from qselect.formulate.lean import weight_memory
        from qselect.solvers.swap import SwapDescentSolver

        model = models["resnet18"]
        name = "layer4.1.conv2"
        layer = model.get_submodule(name)
        from qselect.formulate.activations import collect_activations
        from qselect.formulate.select import build_masks
        from qselect.formulate.weights import weight_problems

        t = time.perf_counter()
        a = collect_activations(model, x, [name])[name][0]
        out["memory_stated"] = {k: (v / 2**30 if k in ("dense", "lean") else v)
                                for k, v in weight_memory(layer, tuple(a.shape)).items()}
        problems = weight_problems(name, layer, a, sparsity=0.5)  # lean: the dense ones do not fit
        out["build_s"] = time.perf_counter() - t
        # whole rows, the layer's neurons on both cores (forked workers share the one G)
        results = SwapDescentSolver(workers=THREADS).solve_many([lp.problem for lp in problems])
        masks = build_masks(model, problems, results, [name])
        out["select_s"] = time.perf_counter() - t
        out["neurons"] = len(problems)
        out["bits"] = int(problems[0].n)
        out["lean"] = bool(problems[0].info.get("lean", False))
        out["kept"] = float(masks[f"{name}.weight"].mean())
        out["swap_moves_median"] = float(np.median([r.info.get("moves", 0) for r in results]))
        out["peak_rss_children_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        e_mag = []
        from qselect.solvers.baselines import MagnitudeSolver

        for lp, r in list(zip(problems, results))[:32]:
            e_mag.append(float(MagnitudeSolver().solve(lp.problem).energy) / max(r.energy, 1e-300))
        out["magnitude_over_swap_energy_median"] = float(np.median(e_mag))
    elif kind == "qaoa":
        from qselect.solvers import get_solver

        model = models["vit"]
        layer = "blocks.0.mlp.0"
        sel = select_masks(model, x, formulation="neuron", sparsity=0.5, layers=[layer], qubits=12,
                           solver=get_solver("qaoa", p=1, seed=0), max_sweeps=2, seed=0)
        ref = select_masks(model, x, formulation="neuron", sparsity=0.5, layers=[layer], qubits=12, seed=0,
                           max_sweeps=2)
        out.update(layer=layer, bits=int(sel.problems[0].n), energy_qaoa=float(sel.results[0].energy),
                   energy_exact_blocks=float(ref.results[0].energy),
                   inner_solves=int(sel.results[0].info.get("inner_solves", 0)))
    elif kind == "compact":
        from qselect.classical.compact import compact, count_parameters
        from qselect.classical.masks import apply_masks

        model = models[arg]
        layers = None
        if arg == "vit":
            layers = [f"blocks.{i}.mlp.0" for i in range(len(model.blocks))] + \
                     [f"blocks.{i}.attn" for i in range(len(model.blocks))]
        sel = select_masks(model, x, formulation="neuron", sparsity=0.5, layers=layers, qubits=12,
                           solver="magnitude", seed=0)
        masked = apply_masks(copy.deepcopy(model), sel.masks).eval()
        small = compact(model, sel.masks, example_inputs=x).eval()
        xb = _inputs(quick, 64)

        def speed(m):
            with torch.no_grad():
                m(xb)
                ts = []
                for _ in range(3 if quick else 5):
                    t = time.perf_counter()
                    m(xb)
                    ts.append(time.perf_counter() - t)
            return float(np.median(ts))

        with torch.no_grad():
            err = float((small(xb) - masked(xb)).abs().max() / masked(xb).abs().max())
        out.update(params_dense=count_parameters(model), params_compact=count_parameters(small),
                   infer_dense_s=speed(model), infer_masked_s=speed(masked), infer_compact_s=speed(small),
                   max_rel_diff=err, removed=small.compact_info["removed"], heads=small.compact_info["heads"])
    out["wall_s"] = time.perf_counter() - t0
    out["peak_rss_mb"] = _peak_mb()
    out["load_after"] = os.getloadavg()[0]
    return out


def _worker(q, kind, quick, arg):
    try:
        q.put(_step(kind, quick, arg))
    except Exception as exc:  # noqa: BLE001 - reported in the results
        q.put({"error": f"{type(exc).__name__}: {exc}"})


def run(kind: str, quick: bool, arg=None) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_worker, args=(q, kind, quick, arg))
    p.start()
    res = q.get()
    p.join()
    print(f"  {kind} {arg if arg is not None else ''}: {res.get('wall_s', float('nan')):.1f} s, "
          f"peak {res.get('peak_rss_mb', float('nan')):.0f} MB, load {res.get('load_before', 0):.1f}"
          f"{'  ERROR ' + res['error'] if 'error' in res else ''}", flush=True)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small widths, few neurons (a smoke run)")
    ap.add_argument("--out", default=None, help="JSON results file")
    ap.add_argument("--sample", type=int, default=None, help="neurons timed per layer (weight formulation)")
    ap.add_argument("--skip-widest", action="store_true", help="skip the full widest-conv weight run")
    ap.add_argument("--widest-only", action="store_true",
                    help="rerun only the widest-conv weight run and update it in --out")
    ap.add_argument("--sample-only", action="store_true",
                    help="rerun only the sampled weight runs and update them in --out")
    args = ap.parse_args(argv)
    q = args.quick
    if args.sample_only:
        import json

        sample = args.sample or (2 if q else 8)
        res = json.load(open(args.out)) if args.out and os.path.exists(args.out) else {}
        res["weight_sample"] = {m: run("weight-sample", q, (m, sample)) for m in ("resnet18", "vit")}
        if args.out:
            atomic_write_json(args.out, res, indent=2)
        return 0
    if args.widest_only:
        import json

        res = json.load(open(args.out)) if args.out and os.path.exists(args.out) else {}
        if "weight_widest" in res and "weight_widest_one_process" not in res and "build_s" not in res["weight_widest"]:
            res["weight_widest_one_process"] = res["weight_widest"]  # the earlier run through select_masks
        res["weight_widest"] = run("weight-widest", q)
        if args.out:
            atomic_write_json(args.out, res, indent=2)
        return 0
    sample = args.sample or (2 if q else 8)
    res: dict = {"quick": q, "threads": THREADS,
                 "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                             "torch": torch.__version__, "load_start": os.getloadavg()}}
    print("neuron selection (default solver, 12-bit exact blocks)")
    res["neuron"] = {m: run("neuron", q, m) for m in ("resnet18", "vit")}
    print("weight selection, lean formulation + swap descent, sampled neurons per layer")
    res["weight_sample"] = {m: run("weight-sample", q, (m, sample)) for m in ("resnet18", "vit")}
    if not args.skip_widest:
        print("weight selection of the widest ResNet-18 conv (layer4.1.conv2), every neuron")
        res["weight_widest"] = run("weight-widest", q)
    print("QAOA p=1 on 12-qubit blocks (ViT blocks.0.mlp.0, 2 sweeps)")
    res["qaoa"] = run("qaoa", q)
    print("compacted models")
    res["compact"] = {m: run("compact", q, m) for m in ("resnet18", "vit")}
    res["machine"]["load_end"] = os.getloadavg()
    print()
    print("| step | model | wall (s) | peak RSS (MB) | load (1 min) |")
    print("|---|---|---|---|---|")
    for key in ("neuron", "weight_sample", "compact"):
        for m, r in res[key].items():
            print(f"| {key} | {m} | {r.get('wall_s', float('nan')):.1f} | {r.get('peak_rss_mb', float('nan')):.0f} | "
                  f"{r.get('load_before', float('nan')):.1f} |")
    if "weight_widest" in res:
        r = res["weight_widest"]
        print(f"| weight (all {r.get('neurons')} neurons, {r.get('bits')} bits) | resnet18 layer4.1.conv2 | "
              f"{r.get('wall_s', float('nan')):.1f} | {r.get('peak_rss_mb', float('nan')):.0f} | "
              f"{r.get('load_before', float('nan')):.1f} |")
        if "memory_stated" in r:
            print(f"  stated memory: dense {r['memory_stated']['dense']:.1f} GiB, "
                  f"lean {r['memory_stated']['lean']:.2f} GiB")
    for m, r in res["compact"].items():
        if "params_dense" in r:
            print(f"  {m}: params {r['params_dense']} -> {r['params_compact']} "
                  f"({r['params_compact'] / r['params_dense']:.2f}x), inference dense/masked/compact "
                  f"{r['infer_dense_s'] * 1e3:.1f}/{r['infer_masked_s'] * 1e3:.1f}/{r['infer_compact_s'] * 1e3:.1f} ms"
                  f" (batch 64), max rel diff {r['max_rel_diff']:.1e}")
    for m, r in res["weight_sample"].items():
        if "estimate_total_s" in r:
            print(f"  weight, {m}: every prunable layer, estimate {r['estimate_total_s']:.0f} s "
                  f"(from {sample} sampled neurons per layer)")
    if args.out:
        atomic_write_json(args.out, res, indent=2)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
