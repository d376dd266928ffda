"""Angle transfer across a layer: evaluations saved and quality change (README "## QAOA").

    python benchmarks/angle_transfer.py --out FILE

Two layers, each solved by ``solve_layer(..., compare=True)`` in both modes
(``warm`` and ``fixed``), so the savings and quality changes are measured
against cold solves of the same problems, not estimated:

* similar: 8 10-bit QUBOs at p=3, one random base matrix plus 20% Gaussian
  noise on every coefficient (what a layer's local problems look like);
* unrelated: 6 independent random 8-bit QUBOs at p=2 (a worst case).

Everything is seeded, so repeated runs print the same figures. Writes JSON
(atomically, via qselect.io) and prints a one-line summary per case.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qselect.io import atomic_write_json  # noqa: E402
from qselect.problems import QUBO  # noqa: E402
from qselect.solvers.qaoa import QAOASolver, solve_layer  # noqa: E402


def similar_layer(count: int = 8, n: int = 10, noise: float = 0.2, seed: int = 0) -> list:
    base = QUBO.random(n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    return [QUBO(base.Q * (1 + noise * rng.normal(size=(n, n))), offset=base.offset) for _ in range(count)]


def unrelated_layer(count: int = 6, n: int = 8, seed: int = 100) -> list:
    return [QUBO.random(n, seed=seed + i) for i in range(count)]


def measure(name: str, problems: list, p: int) -> dict:
    out = {"problems": len(problems), "n": problems[0].n, "p": p}
    for mode in ("warm", "fixed"):
        t = time.perf_counter()
        res = solve_layer(problems, QAOASolver(p=p, seed=0), mode=mode, n_train=1, compare=True)
        s = res.summary()
        # ⟨C⟩ change relative to the cold solves' mean |⟨C⟩|
        s["expectation_change_relative"] = s["expectation_change_mean"] / float(
            np.mean([abs(r.expectation) for r in res.independent]))
        s["cold_evaluations_mean"] = float(np.mean([r.info["evaluations"] for r in res.independent]))
        s["seconds"] = time.perf_counter() - t
        out[mode] = s
        print(f"{name:9s} {len(problems)}×{problems[0].n}-bit p={p} {mode:5s}: "
              f"{s['saved_fraction']:.0%} fewer evaluations ({s['evaluations']} vs {s['evaluations_independent']}; "
              f"cold solves {s['cold_evaluations_mean']:.1f} each), "
              f"⟨C⟩ change {s['expectation_change_mean']:+.3f} ({s['expectation_change_relative']:+.1%}), "
              f"same best bitstring {s['same_best_fraction']:.0%}", flush=True)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON file to write")
    args = ap.parse_args(argv)
    result = {"similar": measure("similar", similar_layer(), p=3),
              "unrelated": measure("unrelated", unrelated_layer(), p=2)}
    atomic_write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
