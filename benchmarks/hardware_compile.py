"""Two-qubit gate counts of a dense QAOA cost layer on fake IBM Heron devices (README "## Hardware").

    python benchmarks/hardware_compile.py --out FILE [--quick]

For a dense random QUBO (every pair coupled: n(n-1)/2 ZZ terms, plus
linear terms), p=1, on fake_fez and fake_torino at n=8 and n=16, compiles
the QAOA circuit four ways and counts two-qubit gates, two-qubit depth,
estimated duration and estimated fidelity (product of 1 − error over the
Target's reported gate and readout errors):

* ``single_level1``: one level-1 pass, seed 0 (the plain preset compilation);
* ``generic_level3``: level 3, best of ``--seeds`` seeds (SABRE routing);
* ``swap_strategy``: line swap strategy on the best line of the device
  (from its error rates), level 3, best of the seeds;
* ``fractional``: the same with fractional RZZ/RX (angles bound first, RZZ
  folded into (0, π/2]).

Every circuit's ideal output distribution over its classical bits is checked
against the native statevector engine's (max |Δp| reported), so the counts
belong to circuits that compute the right thing in the right bit order.
Only compilation: nothing is run on a (fake) device.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qselect.circuits.qiskit import bind_angles  # noqa: E402
from qselect.circuits.routing import compile_qaoa, fractional_target, ideal_clbit_distribution  # noqa: E402
from qselect.io import atomic_write_json  # noqa: E402
from qselect.problems import QUBO  # noqa: E402
from qselect.solvers.qaoa.native import NumpyQAOA  # noqa: E402

ANGLES = [0.45, 0.35]  # γ, β (for the cost divided by problem.scale())


def dense_qubo(n: int, seed: int) -> QUBO:
    rng = np.random.default_rng(seed)
    return QUBO(np.triu(rng.normal(size=(n, n)), 1), rng.normal(size=n))


def check(problem, circuit) -> float:
    """max |p_circuit(x) − p_native(x)| over all bitstrings (qiskit key order, clbit 0 last)."""
    probs = NumpyQAOA(problem.cost_vector() / problem.scale(), 1).probabilities(np.asarray(ANGLES))
    got = ideal_clbit_distribution(circuit)
    n = problem.n
    return float(max(abs(got.get(format(i, f"0{n}b"), 0.0) - float(p)) for i, p in enumerate(probs)))


def measure(backend, problem, seeds: int, verify: bool) -> dict:
    target = backend.target
    frac = fractional_target(backend)
    rows = {}
    cases = [("single_level1", dict(method="single", optimization_level=1)),
             ("generic_level3", dict(method="generic", seeds=seeds)),
             ("swap_strategy", dict(method="swap", seeds=seeds)),
             ("fractional", dict(method="swap", seeds=seeds, target=frac, angles=ANGLES))]
    for name, kw in cases:
        t = time.perf_counter()
        out = compile_qaoa(problem, 1, backend, **kw)
        secs = time.perf_counter() - t
        circ = out.circuit if not out.circuit.parameters else bind_angles(out.circuit, ANGLES)
        ops = circ.count_ops()
        row = {"two_qubit_gates": out.two_qubit_gates, "two_qubit_depth": out.two_qubit_depth,
               "rzz": int(ops.get("rzz", 0)), "cz": int(ops.get("cz", 0)),
               "duration_us": 1e6 * float(circ.estimate_duration(frac if name == "fractional" else target, unit="s")),
               "estimated_fidelity": out.fidelity, "seed": out.seed, "compile_s": secs}
        if verify and len(out.layout) <= 20:  # statevector of the touched qubits only
            row["max_abs_dp"] = check(problem, circ)
        rows[name] = row
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="benchmarks/results/hardware_compile.json")
    ap.add_argument("--quick", action="store_true", help="fake_fez at n=8 only, 3 seeds")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1, help="seed of the random dense QUBO")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*(CSC|splu|spsolve).*")  # scipy, inside qiskit's synthesis
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from qiskit_ibm_runtime.fake_provider import FakeFez, FakeTorino
    devices = {"fake_fez": FakeFez} if args.quick else {"fake_fez": FakeFez, "fake_torino": FakeTorino}
    sizes = [8] if args.quick else [8, 16]
    seeds = 3 if args.quick else args.seeds
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    results = {"angles": ANGLES, "seeds": seeds, "qubo_seed": args.seed, "load_average": load, "cases": []}
    print(f"{'device':12s} {'n':>3s} | {'level 1':>8s} | {'L3 best':>8s} | {'swap':>8s} | {'fractional':>14s} | "
          "2q depth L1/swap/frac | max|Δp|")
    for dev_name, cls in devices.items():
        backend = cls()
        for n in sizes:
            pr = dense_qubo(n, args.seed)
            rows = measure(backend, pr, seeds, verify=n <= 16)
            results["cases"].append({"device": dev_name, "n": n, "zz_terms": n * (n - 1) // 2, **rows})
            f = rows["fractional"]
            print(f"{dev_name:12s} {n:3d} | {rows['single_level1']['two_qubit_gates']:8d} | "
                  f"{rows['generic_level3']['two_qubit_gates']:8d} | {rows['swap_strategy']['two_qubit_gates']:8d} | "
                  f"{f['two_qubit_gates']:4d} ({f['rzz']} RZZ) | "
                  f"{rows['single_level1']['two_qubit_depth']}/{rows['swap_strategy']['two_qubit_depth']}/"
                  f"{f['two_qubit_depth']} | {max(r.get('max_abs_dp', 0.0) for r in rows.values()):.1e}",
                  flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, results)
    print(f"wrote {args.out} (load average {load})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
