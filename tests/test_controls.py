"""The uniform-sampling control every QAOA answer carries, against hand counts and Monte Carlo."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from qselect import QSelectError
from qselect.formulate import BlockSolver, select_masks
from qselect.problems import QUBO, DiagonalCost
from qselect.problems.bits import popcounts
from qselect.solvers.controls import (
    _uniform_bits,
    aggregate_baselines,
    best_of_shots,
    candidate_count,
    control_fields,
    uniform_baseline,
)
from qselect.solvers.qaoa import QAOASolver


def _tied(n, n_opt, seed):
    """A random cost with exactly ``n_opt`` optimal strings (ties at the minimum)."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(1.0, 2.0, size=2**n)
    c[rng.choice(2**n, size=n_opt, replace=False)] = 0.0
    return DiagonalCost(c)


def test_hand_computed_case():
    p = DiagonalCost([0.0, 1.0, 2.0, 3.0])  # n = 2: one optimum of 4, mean 1.5
    b = uniform_baseline(p, 2, seed=0)
    assert b["exact"] and b["candidates"] == 4 and b["optimal_strings"] == 1
    assert b["probability_optimum"] == 0.25
    assert b["probability_best_of_shots"] == pytest.approx(1 - 0.75**2)
    assert b["mean_energy"] == 1.5 and b["approximation_ratio"] == pytest.approx(0.5)
    assert b["optimum_energy"] == 0.0 and b["best_energy"] in (0.0, 1.0, 2.0, 3.0)
    xy = uniform_baseline(DiagonalCost([5.0, 1.0, 3.0, 0.0], k=1), 1, mixer="xy")  # weight 1: costs 1, 3
    assert xy["candidates"] == 2 and xy["optimum_energy"] == 1.0 and xy["probability_optimum"] == 0.5
    assert xy["mean_energy"] == 2.0 and xy["approximation_ratio"] == pytest.approx(0.5)
    assert xy["best_energy"] in (1.0, 3.0)


def test_design_figures_for_1024_shots():
    # one optimum, 1024 shots: ≈ 1 for n ≤ 6, 0.98 at n = 8, 0.63 at n = 10, 0.22 at n = 12
    got = [best_of_shots(1 / 2**n, 1024) for n in (6, 8, 10, 12)]
    assert got[0] > 0.9999999 and got[1] == pytest.approx(0.982, abs=1e-3)
    assert got[2] == pytest.approx(0.632, abs=1e-3) and got[3] == pytest.approx(0.221, abs=1e-3)
    assert best_of_shots(None, 10) is None and best_of_shots(1.0, 3) == 1.0 and best_of_shots(0.0, 3) == 0.0
    assert candidate_count(8, "x") == 256 and candidate_count(8, "xy", 3) == 56


@pytest.mark.parametrize("mixer,k", [("x", None), ("xy", 3)])
def test_probabilities_match_a_seeded_monte_carlo(mixer, k):
    n, shots, trials = 8, 48, 4000
    p = _tied(n, 3, seed=1)
    if k is not None:
        p = DiagonalCost(p.cost_vector(), k=k)
    b = uniform_baseline(p, shots, seed=0, mixer=mixer)
    # independent sampler: uniform indices over the candidate set, scored from the cost vector
    c = p.cost_vector()
    cand = np.arange(2**n) if k is None else np.flatnonzero(popcounts(n) == k)
    assert b["candidates"] == cand.size
    opt = c[cand] == c[cand].min()
    assert b["optimal_strings"] == int(opt.sum())
    rng = np.random.default_rng(123)
    draws = rng.integers(0, cand.size, size=(trials, shots))
    hit = opt[draws]
    per_shot, best = hit.mean(), hit.any(axis=1).mean()
    q = b["probability_optimum"]
    assert abs(per_shot - q) < 4 * math.sqrt(q * (1 - q) / hit.size)
    qb = b["probability_best_of_shots"]
    assert 0.1 < qb < 0.95  # a regime where the check can fail
    assert abs(best - qb) < 4 * math.sqrt(qb * (1 - qb) / trials)
    assert b["mean_energy"] == pytest.approx(c[cand].mean())


@pytest.mark.parametrize("k", [None, 3])
def test_the_uniform_draw_is_uniform_and_seeded(k):
    n, shots = 6, 60000
    bits = _uniform_bits(np.random.default_rng(5), shots, n, k)
    idx = (bits.astype(np.int64) << np.arange(n)).sum(axis=1)
    cand = np.arange(2**n) if k is None else np.flatnonzero(popcounts(n) == k)
    assert set(np.unique(idx)) == set(cand.tolist())  # never outside the mixer's strings
    freq = np.bincount(idx, minlength=2**n)[cand] / shots
    expect = 1 / cand.size
    assert np.all(np.abs(freq - expect) < 5 * math.sqrt(expect * (1 - expect) / shots))
    p = _tied(n, 1, seed=2)
    a, b = uniform_baseline(p, 16, seed=7), uniform_baseline(p, 16, seed=7)
    assert a == b
    energies = p.energy(_uniform_bits(np.random.default_rng([7, 0x756E69]), 16, n, None))
    assert a["best_energy"] == pytest.approx(float(energies.min()))  # the best of the seeded shots
    assert a["found_optimum"] == (a["best_energy"] == 0.0)


def test_normalised_costs_give_the_same_control_and_large_problems_only_sample():
    p = _tied(7, 2, seed=3)
    scale, off = 2.5, -1.0
    given = uniform_baseline(p, 32, seed=1, costs=(p.cost_vector() - off) / scale, scale=scale, offset=off)
    own = uniform_baseline(p, 32, seed=1)
    for key in ("optimal_strings", "probability_optimum", "probability_best_of_shots", "best_energy"):
        assert given[key] == pytest.approx(own[key])
    assert given["mean_energy"] == pytest.approx(own["mean_energy"])
    big = uniform_baseline(p, 32, seed=1, max_exact_qubits=6)
    assert not big["exact"] and big["probability_optimum"] is None and big["best_energy"] == own["best_energy"]
    with pytest.raises(QSelectError, match="XY mixer needs a cardinality"):
        uniform_baseline(p, 4, mixer="xy")
    with pytest.raises(QSelectError, match="shots must be"):
        uniform_baseline(p, 0)


@pytest.mark.parametrize("mixer", ["x", "xy"])
def test_every_qaoa_answer_carries_its_control(mixer):
    rng = np.random.default_rng(4)
    n = 6
    q = QUBO(rng.normal(size=(n, n)), rng.normal(size=n), k=3)
    r = QAOASolver(p=1, seed=2, shots=128, mixer=mixer, maxiter=20).solve(q)
    b = r.info["uniform_baseline"]
    c = q.cost_vector()
    cand = c if mixer == "x" else c[popcounts(n) == 3]
    n_opt = int(np.sum(np.abs(cand - cand.min()) <= 1e-9 * max(1, abs(cand.min()))))
    assert b["shots"] == 128 and b["candidates"] == cand.size and b["optimal_strings"] == n_opt
    assert b["probability_optimum"] == pytest.approx(n_opt / cand.size)
    assert b["optimum_energy"] == pytest.approx(r.info["optimum_energy"])
    f = control_fields(r)
    assert f["p_opt"] == r.info["probability_optimum"] and f["p_opt_uniform"] == b["probability_optimum"]
    assert f["p_best_of_shots"] == pytest.approx(1 - (1 - r.info["probability_optimum"]) ** 128)
    assert f["approx_ratio"] == r.info["approximation_ratio"]
    assert f["approx_ratio_uniform"] == pytest.approx((cand.max() - cand.mean()) / (cand.max() - cand.min()))
    assert f["uniform_best_gap"] == pytest.approx(b["best_energy"] - r.energy)
    assert r.to_dict()["uniform_baseline"]["probability_optimum"] == b["probability_optimum"]


def test_block_results_aggregate_their_controls():
    rng = np.random.default_rng(6)
    n = 8
    q = QUBO(rng.normal(size=(n, n)), rng.normal(size=n), k=4)
    r = BlockSolver(QAOASolver(p=1, seed=0, shots=32, mixer="xy", maxiter=10), qubits=4, max_sweeps=4).solve(q)
    agg = r.info["uniform_baseline"]
    assert agg["solves"] == r.info["inner_solves"] > 1 and agg["shots"] == 32
    assert agg["exact_solves"] == agg["solves"]
    assert agg["solver_better"] + agg["ties"] + agg["uniform_better"] == agg["solves"]
    for key in ("probability_optimum", "probability_best_of_shots", "solver_probability_optimum"):
        assert 0.0 <= agg[key] <= 1.0
    # two hand-made results: means and counts
    from qselect.solvers import make_result

    def res(e, p, ub, pu):
        out = make_result(DiagonalCost([0.0, e, 9.0, 9.0]), [1, 0], "s")  # bits 10 → index 1 → energy e
        out.info.update(probability_optimum=p, approximation_ratio=0.5,
                        uniform_baseline={"shots": 10, "exact": True, "probability_optimum": pu,
                                          "probability_best_of_shots": best_of_shots(pu, 10),
                                          "approximation_ratio": 0.25, "best_energy": ub})
        return out
    a = aggregate_baselines([res(1.0, 0.5, 2.0, 0.25), res(3.0, 0.1, 1.0, 0.25), res(2.0, 0.3, 2.0, 0.5)])
    assert a["solves"] == 3 and a["solver_better"] == 1 and a["uniform_better"] == 1 and a["ties"] == 1
    assert a["probability_optimum"] == pytest.approx((0.25 + 0.25 + 0.5) / 3)
    assert a["solver_probability_optimum"] == pytest.approx(0.3)
    assert a["best_energy_gap"] == pytest.approx((1.0 - 2.0 + 0.0) / 3)
    assert aggregate_baselines([]) is None


def test_selection_summary_shows_qaoa_beside_uniform():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    x = torch.randn(10, 8, dtype=torch.float64)
    sel = select_masks(net, x, formulation="nk", sparsity=0.5, K=4, qubits=4, layers=["0"],
                       solver=QAOASolver(p=1, seed=0, shots=16, maxiter=10))
    s = sel.summary()
    assert s["control_solves"] == 3 and s["layers"]["0"]["control_solves"] == 3
    ps = [r.info["probability_optimum"] for r in sel.results]
    assert s["p_opt"] == pytest.approx(np.mean(ps))
    us = [r.info["uniform_baseline"]["probability_optimum"] for r in sel.results]
    assert s["p_opt_uniform"] == pytest.approx(np.mean(us))
    exact = select_masks(net, x, formulation="nk", sparsity=0.5, K=4, qubits=4, layers=["0"], solver="exact")
    assert "p_opt" not in exact.summary()
