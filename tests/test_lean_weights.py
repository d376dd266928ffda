"""Lean (factored, shared-Gram) weight problems agree with the dense per-neuron QUBOs."""
import numpy as np
import pytest
import torch
from torch import nn

from qselect.errors import QSelectError
from qselect.formulate.decompose import BlockSolver
from qselect.formulate.lean import lean_weight_problems, weight_memory
from qselect.formulate.weights import weight_problems
from qselect.problems import QUBO
from qselect.problems.gram import DENSE_FIX_BITS, GramQUBO
from qselect.solvers import ExactSolver
from qselect.solvers.baselines import flip_deltas, swap_deltas
from qselect.solvers.swap import SwapDescentSolver


def _layers():
    torch.manual_seed(0)
    lin = nn.Linear(7, 3)
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
    return [(lin, torch.randn(20, 7)), (conv, torch.randn(4, 2, 5, 5))]


@pytest.mark.parametrize("which", [0, 1])
def test_lean_energies_and_deltas_equal_dense(which):
    layer, x = _layers()[which]
    dense = weight_problems("l", layer, x, sparsity=0.5, lean=False)
    lean = weight_problems("l", layer, x, sparsity=0.5, lean=True)
    assert len(dense) == len(lean)
    rng = np.random.default_rng(1)
    for d, g in zip(dense, lean):
        assert isinstance(g.problem, GramQUBO) and isinstance(d.problem, QUBO)
        assert g.k == d.k and np.array_equal(g.positions, d.positions)
        # same objective: compare with λ equalised (the dense penalty is λ_d, the lean one λ_g)
        lam = g.problem.penalty
        dq = dense_without_penalty(d.problem).with_cardinality_penalty(d.k, lam)
        X = rng.integers(0, 2, size=(30, g.n))
        np.testing.assert_allclose(g.problem.energy(X), dq.energy(X), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(g.problem.to_qubo().energy(X), dq.energy(X), rtol=1e-9, atol=1e-9)
        for x0 in X[:5]:
            np.testing.assert_allclose(flip_deltas(g.problem, x0), flip_deltas(dq, x0), rtol=1e-9, atol=1e-9)
            on, off = np.flatnonzero(x0), np.flatnonzero(x0 == 0)
            if on.size and off.size:
                np.testing.assert_allclose(swap_deltas(g.problem, x0, on, off), swap_deltas(dq, x0, on, off),
                                           rtol=1e-9, atol=1e-9)


def dense_without_penalty(q):
    """The dense weight QUBO with its automatic penalty taken out again."""
    lam, k, n = q.penalty, q.k, q.n
    quad = q.quadratic - 2 * lam * np.triu(np.ones((n, n)), 1)
    return QUBO(quad, q.linear - lam * (1 - 2 * k), q.offset - lam * k * k, k=k)


def test_energy_is_the_reconstruction_error():
    layer, x = _layers()[0]
    (lp, *_) = lean_weight_problems("l", layer, x, sparsity=0.5, penalty=0.0)
    m = np.array([1, 0, 1, 1, 0, 0, 1], np.uint8)
    w = layer.weight.detach().double()[0]
    xd = x.double()
    direct = float(((xd @ (w * torch.as_tensor(m).double()) - xd @ w) ** 2).sum())
    assert lp.problem.energy(m) == pytest.approx(direct, rel=1e-10)


def test_fix_matches_dense_fix_both_ways():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(200, 90))
    G = A.T @ A
    w = rng.normal(size=90)
    g = GramQUBO(G, w, -2 * w * (G @ w), float(w @ G @ w), penalty=0.7, k=40)
    q = g.to_qubo()
    x = rng.integers(0, 2, 90)
    for nfree in (10, DENSE_FIX_BITS + 5):  # dense block and a factored sub-problem
        free = rng.choice(90, nfree, replace=False)
        assign = {i: int(x[i]) for i in range(90) if i not in set(free)}
        gs, qs = g.fix(assign), q.fix(assign)
        assert isinstance(gs, QUBO) == (nfree <= DENSE_FIX_BITS)
        assert gs.k == qs.k
        Y = rng.integers(0, 2, (10, nfree))
        np.testing.assert_allclose(gs.energy(Y), qs.energy(Y), rtol=1e-9)
        if not isinstance(gs, QUBO):  # a second level of fixing stays consistent
            a2 = {0: 1, 3: 0}
            np.testing.assert_allclose(gs.fix(a2).energy(Y[:, [i for i in range(nfree) if i not in a2]]),
                                       qs.fix(a2).energy(Y[:, [i for i in range(nfree) if i not in a2]]),
                                       rtol=1e-9)


def test_swap_descent_reaches_a_swap_local_minimum_keeping_k():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(300, 120)) @ rng.normal(size=(120, 120)) * 0.1
    G = A.T @ A
    w = rng.normal(size=120)
    g = GramQUBO(G, w, -2 * w * (G @ w), float(w @ G @ w), penalty=0.0, k=60)
    g.scores = np.abs(w) * np.sqrt(np.diag(G))
    r = SwapDescentSolver(candidates=4).solve(g)
    assert r.kept == 60
    on, off = np.flatnonzero(r.bits), np.flatnonzero(r.bits == 0)
    assert swap_deltas(g.to_qubo(), r.bits, on, off).min() >= -1e-9 * abs(r.energy)
    assert r.energy <= g.energy(_magnitude(g)) + 1e-9  # never worse than its magnitude start


def _magnitude(g):
    x = np.zeros(g.n, np.uint8)
    x[np.argsort(-g.scores, kind="stable")[:g.k]] = 1
    return x


def test_small_lean_problem_solved_exactly_like_dense():
    rng = np.random.default_rng(5)
    A = rng.normal(size=(40, 10))
    G = A.T @ A
    w = rng.normal(size=10)
    g = GramQUBO(G, w, -2 * w * (G @ w), float(w @ G @ w), penalty=3.0, k=5)
    exact = ExactSolver().solve(g.to_qubo())
    assert ExactSolver().solve(g).energy == pytest.approx(exact.energy)
    blk = BlockSolver(ExactSolver(), qubits=4).solve(g)  # blocks come out of fix() as dense QUBOs
    assert blk.energy >= exact.energy - 1e-9


def test_memory_statement_and_auto_switch():
    conv = nn.Conv2d(512, 512, 3, padding=1, bias=False)  # a ResNet-18 layer4 conv
    mem = weight_memory(conv, (128, 512, 4, 4))
    assert mem["n"] == 4608 and mem["neurons"] == 512 and mem["rows"] == 128 * 16
    assert mem["dense"] == 8.0 * 4608 ** 2 * 516  # ≈ 87 GB: dense refuses
    assert mem["lean"] < 1 * 2**30


def test_bad_lean_flag():
    layer, x = _layers()[0]
    with pytest.raises(QSelectError, match="lean"):
        weight_problems("l", layer, x, sparsity=0.5, lean="yes")


def test_swap_descent_on_a_dense_qubo_matches_generic_swap_descent_quality():
    from qselect.solvers.baselines import MagnitudeSolver

    q = QUBO.random(40, seed=2).with_cardinality_penalty(15, 0.0)
    q.scores = np.arange(40, dtype=float)
    r = SwapDescentSolver(candidates=2).solve(q)
    assert r.kept == 15 and r.energy == pytest.approx(q.energy(r.bits))
    on, off = np.flatnonzero(r.bits), np.flatnonzero(r.bits == 0)
    assert swap_deltas(q, r.bits, on, off).min() >= -1e-9  # a 1-swap local minimum
    start = MagnitudeSolver().solve(q).bits
    assert r.energy <= q.energy(start) + 1e-12


def test_forked_workers_give_the_same_answers():
    layer, x = _layers()[1]
    probs = [lp.problem for lp in lean_weight_problems("l", layer, x, sparsity=0.5)]
    one = SwapDescentSolver().solve_many(probs)
    two = SwapDescentSolver(workers=2).solve_many(probs)
    for a, b in zip(one, two):
        assert np.array_equal(a.bits, b.bits) and a.energy == b.energy
