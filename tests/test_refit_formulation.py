"""The refit formulation: diagonal costs equal to direct least squares after the refit."""
import itertools

import numpy as np
import pytest
import torch
from torch import nn

from qselect.errors import QSelectError
from qselect.formulate import select_masks
from qselect.formulate.decompose import BlockSolver
from qselect.formulate.refit import RefitCost, refit_problems
from qselect.problems import DiagonalCost
from qselect.problems.bits import index_to_bits
from qselect.solvers import ExactSolver

pytestmark = pytest.mark.usefixtures("one_thread")


def _layer(rows=60, cols=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, cols)) * rng.uniform(0.3, 2.0, size=cols)
    return X, X.T @ X, rng.normal(size=cols)


def _direct(X, w, S, lam):
    """min_v ‖X_S v − Xw‖² + λ‖v − w_S‖² by a stacked least-squares solve."""
    S = np.asarray(S)
    t = X @ w
    if S.size == 0:
        return float(t @ t)
    A = np.vstack([X[:, S], np.sqrt(lam) * np.eye(S.size)])
    y = np.concatenate([t, np.sqrt(lam) * w[S]])
    v = np.linalg.lstsq(A, y, rcond=None)[0]
    return float(np.sum((X[:, S] @ v - t) ** 2) + lam * np.sum((v - w[S]) ** 2))


@pytest.mark.parametrize("lam", [0.0, 0.7])
def test_energies_equal_direct_least_squares_for_random_masks(lam):
    X, G, w = _layer()
    cost = RefitCost(G, w, k=4, lam=lam, penalty=0.0)
    rng = np.random.default_rng(1)
    masks = (rng.random((25, 10)) < 0.45).astype(np.uint8)
    got = cost.energy(masks)
    for m, e in zip(masks, got):
        S = np.flatnonzero(m)
        ref = _direct(X, w, S, lam)
        assert e == pytest.approx(ref, rel=1e-9, abs=1e-9)
        if lam == 0 and S.size:  # plain least squares residual
            v = np.linalg.lstsq(X[:, S], X @ w, rcond=None)[0]
            assert e == pytest.approx(float(np.sum((X[:, S] @ v - X @ w) ** 2)), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_block_tables_equal_full_energies(lam):
    X, G, w = _layer(cols=12, seed=2)
    cost = RefitCost(G, w, k=5, lam=lam, penalty=2.5)
    x = np.zeros(12, np.uint8)
    x[[0, 2, 4, 9, 11]] = 1
    block = [1, 2, 6, 9, 10]
    sub = cost.fix({i: int(x[i]) for i in range(12) if i not in block})
    assert isinstance(sub, DiagonalCost) and sub.n == 5 and sub.k == 2
    full = np.repeat(x[None], 32, axis=0)
    full[:, block] = index_to_bits(np.arange(32), 5)
    np.testing.assert_allclose(sub.cost_vector(), cost.energy(full), rtol=1e-9, atol=1e-9)
    for row, e in zip(full, sub.cost_vector()):  # and the penalty is what it says
        d = int(row.sum()) - 5
        assert e == pytest.approx(_direct(X, w, np.flatnonzero(row), lam) + 2.5 * d * d, rel=1e-9, abs=1e-9)


def test_swap_deltas_are_exact():
    X, G, w = _layer(cols=9, seed=3)
    cost = RefitCost(G, w, k=4, lam=0.2)
    x = np.array([1, 0, 1, 1, 0, 0, 1, 0, 0], np.uint8)
    on, off = np.flatnonzero(x), np.flatnonzero(x == 0)
    d = cost.swap_deltas(x, on, off)
    e0 = cost.energy(x)
    for a, i in enumerate(on):
        for b, j in enumerate(off):
            y = x.copy()
            y[i], y[j] = 0, 1
            assert d[a, b] == pytest.approx(cost.energy(y) - e0, rel=1e-8, abs=1e-9)


def test_auto_penalty_makes_the_optimum_keep_k():
    X, G, w = _layer(cols=8, seed=4)
    cost = RefitCost(G, w, k=3, lam=0.0)
    r = ExactSolver().solve(cost.table())
    assert r.bits.sum() == 3
    best = min(_direct(X, w, S, 0.0) for S in itertools.combinations(range(8), 3))
    assert r.energy == pytest.approx(best, rel=1e-9)


def test_select_masks_refit_finds_the_best_refit_mask_per_row():
    torch.manual_seed(0)
    layer = nn.Linear(8, 3).double()
    x = torch.randn(40, 8, dtype=torch.float64)
    model = nn.Sequential(layer)
    sel = select_masks(model, x, formulation="refit", sparsity=0.5, qubits=8, damping=0.0)
    X = x.numpy()
    for j in range(3):
        w = layer.weight[j].detach().numpy()
        errs = {S: _direct(X, w, S, 0.0) for S in itertools.combinations(range(8), 4)}
        got = tuple(np.flatnonzero(sel.masks["0.weight"][j].numpy()))
        assert errs[got] == pytest.approx(min(errs.values()), rel=1e-9)


def test_block_descent_on_long_rows_keeps_k_and_beats_wanda():
    torch.manual_seed(1)
    layer = nn.Linear(16, 2).double()
    x = torch.randn(80, 16, dtype=torch.float64) * torch.linspace(0.2, 2.0, 16, dtype=torch.float64)
    probs = refit_problems("fc", layer, x, sparsity=0.75, damping=0.01, qubits=6)
    assert all(isinstance(p.problem, RefitCost) for p in probs)
    for p in probs:
        r = BlockSolver(ExactSolver(), qubits=6, max_sweeps=6).solve(p.problem)
        assert r.bits.sum() == 4
        start = np.zeros(16, np.uint8)
        start[np.argsort(-p.problem.scores, kind="stable")[:4]] = 1  # the Wanda mask
        assert r.energy <= p.problem.energy(start) + 1e-9


def test_fewer_calibration_rows_than_kept_weights_is_refused():
    layer = nn.Linear(10, 2)
    with pytest.raises(QSelectError, match="calibration rows") as e:
        refit_problems("fc", layer, torch.randn(3, 10), sparsity=0.5)
    assert "\n" not in str(e.value)
