"""QAOA reproduces published MaxCut facts, finds optima in most seeds, transfers angles across a layer."""
import networkx as nx
import numpy as np
import pytest

import qselect
from qselect.problems import QUBO
from qselect.solvers import get_solver
from qselect.solvers.qaoa import QAOASolver, interpolate, linear_ramp, solve_layer
from qselect.solvers.qaoa.native import NumpyQAOA


def _cut_fraction_grid_max(q, edges, m=61):
    """Best p=1 expected cut fraction over a γ×β grid (independent of any optimiser)."""
    costs = q.cost_vector() / q.scale()
    eng = NumpyQAOA(costs, 1)
    best = -np.inf
    for g in np.linspace(0, np.pi, m):
        for b in np.linspace(-np.pi / 2, np.pi / 2, m):
            best = max(best, -eng.expectation([g, b]) * q.scale() / edges)
    return best


def test_maxcut_qubo_energy_is_minus_the_cut():
    g = nx.petersen_graph()
    nx.set_edge_attributes(g, {e: 1.0 + i for i, e in enumerate(g.edges)}, "weight")
    q = qselect.maxcut(g)
    rng = np.random.default_rng(0)
    for x in rng.integers(0, 2, (20, 10)):
        s = {v for v, b in zip(g.nodes, x) if b}
        assert q.energy(x) == pytest.approx(-nx.cut_size(g, s, weight="weight"))
    assert q.labels == tuple(g.nodes)


def test_ring_p1_reaches_three_quarters():
    g = nx.cycle_graph(7)
    q = qselect.maxcut(g)
    r = QAOASolver(p=1, restarts=3, seed=0).solve(q)
    frac = -r.expectation / g.number_of_edges()
    assert frac == pytest.approx(0.75, abs=1e-6)
    # no p=1 angles do better (grid, independent of the optimiser)
    assert _cut_fraction_grid_max(q, 7) <= 0.75 + 1e-9
    assert r.energy == pytest.approx(-6)  # best sampled cut of an odd ring is n-1


def test_triangle_free_cubic_p1_reaches_known_value():
    g = nx.petersen_graph()  # 3-regular, girth 5
    assert all(d == 3 for _, d in g.degree) and sum(nx.triangles(g).values()) == 0
    q = qselect.maxcut(g)
    r = QAOASolver(p=1, restarts=3, seed=1).solve(q)
    target = 0.5 + 1 / (3 * np.sqrt(3))
    assert -r.expectation / 15 == pytest.approx(target, abs=1e-6)
    assert _cut_fraction_grid_max(q, 15, 41) <= target + 1e-9


def test_converged_p3_finds_the_optimum_in_most_seeds():
    hits = 0
    seeds = range(10)
    for s in seeds:
        q = QUBO.random(8, seed=100 + s)
        r = QAOASolver(p=3, seed=s, shots=256).solve(q)
        hits += abs(r.energy - q.cost_vector().min()) < 1e-9
        assert r.info["optimizer"] == "L-BFGS-B" and r.info["gradient_evaluations"] > 0
    assert hits >= 8


def test_deeper_circuits_improve_expectation_and_seed_is_deterministic():
    q = QUBO.random(8, seed=3)
    e1 = QAOASolver(p=1).solve(q)
    e3 = QAOASolver(p=3, init=e1).solve(q)  # transfer: interpolated from p=1
    assert e3.expectation < e1.expectation - 1e-3
    a, b = QAOASolver(p=2, seed=5, init="random").solve(q), QAOASolver(p=2, seed=5, init="random").solve(q)
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_array_equal(a.counts, b.counts)


def test_cvar_objective_and_spsa_optimizer():
    q = QUBO.random(7, seed=2)
    r = QAOASolver(p=2, objective="cvar", alpha=0.2).solve(q)
    assert r.info["expectation_objective"] <= (r.expectation - q.z_terms()[1]) / q.scale() + 1e-9
    assert r.info["probability_optimum"] > QAOASolver(p=2, maxiter=0).solve(q).info["probability_optimum"] * 0.5
    s = QAOASolver(backend="aer", p=1, optimizer="SPSA", maxiter=15, shots=256).solve(QUBO.random(4, seed=1))
    assert s.info["optimizer"] == "qiskit:SPSA" and s.info["evaluations"] > 15
    c = QAOASolver(p=1, optimizer="qiskit:COBYLA", maxiter=30).solve(QUBO.random(4, seed=1))
    assert c.info["evaluations"] <= 31


def test_angle_helpers():
    r = linear_ramp(4)
    assert np.all(np.diff(r[:4]) > 0) and np.all(np.diff(np.abs(r[4:])) < 0) and np.all(r[4:] < 0)
    # the ramp starts downhill: its ⟨C⟩ is below the |+> average (0 for the normalised cost)
    q = QUBO.random(10, seed=4)
    c = (q.cost_vector() - q.z_terms()[1]) / q.scale()
    assert NumpyQAOA(c, 4).expectation(r) < -0.5
    np.testing.assert_allclose(interpolate(r, 4), r)
    assert interpolate(r, 7).shape == (14,)


def test_result_and_registry():
    q = QUBO.random(6, seed=1)
    solver = get_solver("qaoa", p=2, seed=3)
    assert isinstance(solver, QAOASolver)
    r = solver.solve(q)
    d = r.to_dict()
    assert d["expectation"] == pytest.approx(r.expectation) and len(d["angles"]) == 4
    assert d["p"] == 2 and d["backend"] == "native-numpy"
    assert r.counts.sum() == 1024
    assert qselect.solvers.QAOASolver is QAOASolver


@pytest.mark.parametrize("mode", ["warm", "fixed"])
def test_angle_transfer_across_a_layer(mode):
    rng = np.random.default_rng(0)
    base = QUBO.random(8, seed=0)
    # a layer: similar problems (same structure, perturbed weights)
    layer = [QUBO(base.Q + 0.1 * np.triu(rng.normal(size=(8, 8))), offset=0.0) for _ in range(5)]
    out = solve_layer(layer, QAOASolver(p=2), mode=mode, n_train=1, compare=True)
    s = out.summary()
    assert len(out.results) == 5 and not out.estimated
    assert out.evaluations < out.evaluations_independent and s["evaluations_saved"] > 0
    if mode == "fixed":
        assert all(r.info["evaluations"] == 1 for r in out.results[1:])
        assert s["expectation_change_mean"] < 0.1 * np.mean([abs(r.expectation) for r in out.independent])
    else:
        assert abs(s["expectation_change_mean"]) < 1e-3
    assert s["same_best_fraction"] >= 0.75
    assert out.evaluations == sum(r.info["evaluations"] for r in out.results)
    assert out.evaluations_independent == out.results[0].info["evaluations"] + sum(
        r.info["evaluations"] for r in out.independent)


def test_angle_transfer_without_compare_estimates_and_rejects_bad_input():
    layer = [QUBO.random(6, seed=s) for s in range(3)]
    out = solve_layer(layer, QAOASolver(p=1), mode="fixed")
    assert out.estimated and out.independent is None
    assert out.evaluations_independent == 3 * out.results[0].info["evaluations"]
    np.testing.assert_allclose(out.angles, out.results[0].angles)  # one training problem: its angles
    assert all(np.array_equal(r.angles, out.angles) for r in out.results[1:])
    for bad in (0, -1, 1.5):
        with pytest.raises(qselect.QSelectError, match="n_train must be a positive integer"):
            solve_layer(layer, QAOASolver(), n_train=bad)
    with pytest.raises(qselect.QSelectError, match="transfer mode"):
        solve_layer(layer, QAOASolver(), mode="cold")


def test_maxcut_rejects_non_numeric_weights_and_nan_angles_are_named():
    g = nx.Graph([(0, 1, {"weight": "heavy"})])
    with pytest.raises(qselect.QSelectError, match=r"edge \(0, 1\) has weight='heavy'"):
        qselect.maxcut(g)
    with pytest.raises(qselect.QSelectError, match="non-finite values"):
        QAOASolver(p=1, init=[np.nan, 0.1])
