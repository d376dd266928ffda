"""CUDA figures in one run (≤ 5 min on an H200): QAOA engine agreement and speed, batched
layer throughput, and the classical pipeline with mixed precision.

Needs only torch, numpy, scipy, scikit-learn and tqdm (no qiskit, PennyLane or dimod):

    PYTHONPATH=. python benchmarks/gpu_check.py --out benchmarks/results/gpu_check.json
    PYTHONPATH=. python benchmarks/gpu_check.py --cpu-smoke --out /tmp/gpu_smoke.json   # small, CPU

Without CUDA it shrinks itself to the ``--cpu-smoke`` sizes. The JSON holds:

* ``agreement``: the torch engine (complex64 and complex128, on the device) against the
  NumPy engine in complex128 at n = 12–16, X and XY mixers: |Δ⟨C⟩| and max |Δ gradient|;
* ``copy_bandwidth_GBps``: a device-to-device copy, bytes read + written per second;
* ``evaluation``: per n = 20–32, seconds per p=2 ⟨C⟩ evaluation (and ⟨C⟩+gradient where
  it fits), peak device memory, and ``ratio_to_hbm_bound`` = time ÷ (p · 20 bytes per
  amplitude ÷ copy bandwidth) — one layer must at least read and write the complex64
  state and read the float32 costs;
* ``layer``: a batch of 12-qubit QUBO blocks solved at p=2 with the batched solver on
  the device and with the batched NumPy path on the CPU (problems per second);
* ``classical``: digits MLP trained with AMP on the device (test accuracy), ResNet-18
  training images/s at CIFAR shape (3×32×32, synthetic inputs) with AMP on and off.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from qselect.io import atomic_write_json  # noqa: E402
from qselect.problems import QUBO  # noqa: E402
from qselect.solvers.qaoa.native import NumpyQAOA  # noqa: E402
from qselect.solvers.qaoa.native_torch import TorchQAOA  # noqa: E402

FULL = {"agree": [12, 14, 16], "eval": [20, 22, 24, 26, 28, 30, 32], "grad_max": 32, "layer_blocks": 256,
        "layer_bits": 12, "mlp_epochs": 20, "resnet_batch": 256, "resnet_steps": 20, "resnet_width": 64}
SMOKE = {"agree": [6, 8], "eval": [10, 12], "grad_max": 12, "layer_blocks": 4, "layer_bits": 6,
         "mlp_epochs": 1, "resnet_batch": 4, "resnet_steps": 1, "resnet_width": 8}
ANGLES = np.array([0.41, 0.23, -0.37, -0.19])  # p = 2: γ1 γ2 β1 β2


def log(*a):
    print(*a, flush=True)


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _costs(n, seed):
    q = QUBO.random(n, seed=seed)
    c = q.cost_vector()
    c -= q.z_terms()[1]
    c /= q.scale()
    return c


def agreement(sizes, dev):
    rows = []
    for n in sizes:
        c = _costs(n, n)
        for mixer, k in (("x", None), ("xy", n // 2)):
            ref = NumpyQAOA(c, 2, mixer, k, np.complex128)
            v0, g0 = ref.value_and_grad(ANGLES)
            for dt in (torch.complex64, torch.complex128):
                eng = TorchQAOA(c, 2, mixer, k, dtype=dt, device=dev)
                v, g = eng.value_and_grad(ANGLES)
                e = eng.expectation(ANGLES)
                rows.append({"n": n, "mixer": mixer, "dtype": str(dt).replace("torch.", ""),
                             "value_abs_diff": abs(v - v0), "expectation_abs_diff": abs(e - v0),
                             "gradient_max_abs_diff": float(np.abs(g - g0).max())})
                log(f"agree n={n} {mixer} {rows[-1]['dtype']}: dE={rows[-1]['value_abs_diff']:.2e} "
                    f"dgrad={rows[-1]['gradient_max_abs_diff']:.2e}")
    return rows


def copy_bandwidth(dev, nbytes):
    a = torch.empty(nbytes // 4, dtype=torch.float32, device=dev)
    b = torch.empty_like(a)
    a.fill_(1.0)
    b.copy_(a)
    _sync(dev)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        b.copy_(a)
        _sync(dev)
        best = min(best, time.perf_counter() - t)
    del a, b
    return 2 * nbytes / best / 1e9  # bytes read + written


def _free_bytes(dev):
    return torch.cuda.mem_get_info(dev)[0] if dev.type == "cuda" else 0


def evaluation(sizes, grad_max, dev, bw_GBps, budget_s):
    rows = []
    t_start = time.perf_counter()
    for n in sizes:
        N = 1 << n
        row = {"n": n, "p": 2, "dtype": "complex64"}
        need = N * 12 + (1 << 24) * 8 * 6  # state + costs + slice temporaries
        if dev.type == "cuda" and need > _free_bytes(dev) * 0.95:
            row["skipped"] = f"needs {need / 2**30:.1f} GiB, {_free_bytes(dev) / 2**30:.1f} GiB free"
            rows.append(row)
            log(f"n={n}: {row['skipped']}")
            continue
        if time.perf_counter() - t_start > budget_s:
            row["skipped"] = "time budget of the evaluation section spent"
            rows.append(row)
            continue
        g = torch.Generator(device=dev).manual_seed(n)
        costs = torch.randn(N, generator=g, device=dev, dtype=torch.float32)  # timing does not depend on values
        eng = TorchQAOA(costs, 2, "x", dtype=torch.complex64, device=dev)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        eng.expectation(ANGLES)  # warm-up
        _sync(dev)
        reps = 3 if n <= 28 else 1
        t = time.perf_counter()
        for _ in range(reps):
            eng.expectation(ANGLES)
        _sync(dev)
        row["expectation_s"] = (time.perf_counter() - t) / reps
        bound = 2 * 20 * N / (bw_GBps * 1e9)  # p layers × (state read+write 16 B + costs 4 B) per amplitude
        row["hbm_bound_s"] = bound
        row["ratio_to_hbm_bound"] = row["expectation_s"] / bound
        if dev.type == "cuda":
            row["peak_memory_GiB"] = torch.cuda.max_memory_allocated(dev) / 2**30
        if n <= grad_max:
            try:
                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(dev)
                t = time.perf_counter()
                eng.value_and_grad(ANGLES)
                _sync(dev)
                row["value_and_grad_s"] = time.perf_counter() - t
                if dev.type == "cuda":
                    row["value_and_grad_peak_memory_GiB"] = torch.cuda.max_memory_allocated(dev) / 2**30
            except torch.cuda.OutOfMemoryError as exc:  # pragma: no cover - device dependent
                row["value_and_grad_error"] = str(exc).splitlines()[0]
        rows.append(row)
        log(f"eval n={n}: {row['expectation_s'] * 1e3:.2f} ms  x{row['ratio_to_hbm_bound']:.2f} of the HBM bound  "
            f"peak {row.get('peak_memory_GiB', float('nan')):.2f} GiB  "
            f"grad {row.get('value_and_grad_s', float('nan'))}")
        del eng, costs
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def layer(blocks, bits, dev):
    from qselect.solvers.qaoa import QAOASolver

    probs = [QUBO.random(bits, seed=s) for s in range(blocks)]
    out = {"blocks": blocks, "bits": bits, "p": 2}
    runs = {"cpu_numpy_batched": QAOASolver(p=2, seed=0, engine="numpy")}
    if dev.type == "cuda":
        runs["device_torch_batched"] = QAOASolver(p=2, seed=0, engine="torch", device=str(dev))
    for name, s in runs.items():
        s.solve_batch(probs[:2])  # warm-up
        _sync(dev)
        t = time.perf_counter()
        res = s.solve_batch(probs)
        _sync(dev)
        wall = time.perf_counter() - t
        out[name] = {"wall_s": wall, "problems_per_s": blocks / wall,
                     "mean_expectation": float(np.mean([r.expectation for r in res])),
                     "mean_energy": float(np.mean([r.energy for r in res]))}
        log(f"layer {name}: {wall:.2f} s, {blocks / wall:.1f} blocks/s")
    if "device_torch_batched" in out:
        out["ratio_device_vs_cpu"] = out["cpu_numpy_batched"]["wall_s"] / out["device_torch_batched"]["wall_s"]
    return out


def classical(cfg, dev):
    from qselect.classical.data import load_dataset, make_loader
    from qselect.classical.models import build_model
    from qselect.classical.train import TrainConfig, evaluate, train

    out = {}
    data = load_dataset("digits", seed=0)
    model = build_model("mlp", data.input_shape, data.num_classes, seed=0, hidden=[64, 64])
    t = time.perf_counter()
    train(model, make_loader(data.train, 64, shuffle=True, seed=0),
          TrainConfig(epochs=cfg["mlp_epochs"], lr=0.05, device=str(dev), amp=dev.type == "cuda", seed=0))
    out["digits_mlp"] = {"epochs": cfg["mlp_epochs"], "amp": dev.type == "cuda", "train_s": time.perf_counter() - t,
                         "test_accuracy": float(evaluate(model, make_loader(data.test, 256), device=dev)["accuracy"])}
    log(f"digits MLP: {out['digits_mlp']}")
    net = build_model("resnet18", (3, 32, 32), 10, seed=0, width=cfg["resnet_width"]).to(dev)
    bs = cfg["resnet_batch"]
    x = torch.randn(bs, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (bs,), device=dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    res = {}
    for amp in ([False, True] if dev.type == "cuda" else [False]):
        scaler = torch.amp.GradScaler("cuda", enabled=amp) if dev.type == "cuda" else None

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=torch.bfloat16 if dev.type == "cpu" else torch.float16, enabled=amp):
                loss = torch.nn.functional.cross_entropy(net(x), y)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()

        step()  # warm-up (cuDNN autotuning, allocator)
        _sync(dev)
        t = time.perf_counter()
        for _ in range(cfg["resnet_steps"]):
            step()
        _sync(dev)
        dt = time.perf_counter() - t
        res["amp_on" if amp else "amp_off"] = {"batch": bs, "steps": cfg["resnet_steps"], "width": cfg["resnet_width"],
                                               "train_images_per_s": bs * cfg["resnet_steps"] / dt}
        log(f"ResNet-18 amp={amp}: {res['amp_on' if amp else 'amp_off']['train_images_per_s']:.0f} images/s")
    if "amp_on" in res:
        res["ratio_amp_on_vs_off"] = res["amp_on"]["train_images_per_s"] / res["amp_off"]["train_images_per_s"]
    out["resnet18_cifar_shape"] = res
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--cpu-smoke", action="store_true", help="small sizes on the CPU (what the tests run)")
    ap.add_argument("--eval-budget", type=float, default=120.0, help="seconds for the n = 20–32 section")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.cpu_smoke
    from qselect.devices import resolve_device

    dev = resolve_device("cuda" if cuda else "cpu")
    cfg = FULL if cuda else SMOKE
    t0 = time.perf_counter()
    out = {"benchmark": "gpu_check", "device": torch.cuda.get_device_name(dev) if cuda else "cpu",
           "smoke": not cuda, "torch": torch.__version__, "cuda": torch.version.cuda, "numpy": np.__version__,
           "machine": platform.platform(), "loadavg_before": os.getloadavg(), "sizes": cfg}
    sections = [("agreement", lambda: agreement(cfg["agree"], dev)),
                ("copy_bandwidth_GBps", lambda: copy_bandwidth(dev, (4 << 30) if cuda else (64 << 20))),
                ("evaluation", lambda: evaluation(cfg["eval"], cfg["grad_max"], dev, out["copy_bandwidth_GBps"],
                                                  args.eval_budget)),
                ("layer", lambda: layer(cfg["layer_blocks"], cfg["layer_bits"], dev)),
                ("classical", lambda: classical(cfg, dev))]
    for name, fn in sections:
        t = time.perf_counter()
        try:
            out[name] = fn()
        except Exception as exc:  # one failing section must not lose the others' figures
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"{name} failed: {exc}")
        out[f"{name}_section_s"] = time.perf_counter() - t
        atomic_write_json(args.out, out)  # partial results survive a timeout
    out["total_s"] = time.perf_counter() - t0
    out["loadavg_after"] = os.getloadavg()
    atomic_write_json(args.out, out)
    log(f"wrote {args.out} in {out['total_s']:.1f} s")
    return out


if __name__ == "__main__":
    main()
