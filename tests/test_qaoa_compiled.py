"""The compiled QAOA path (numba): whole value-and-gradient sweeps per row, their cost phases, the
thread split of a batch, and the compiled batched L-BFGS rounds against their NumPy twin."""
import numpy as np
import pytest

from qselect.errors import QSelectError
from qselect.problems import QUBO
from qselect.solvers.qaoa import batched, kernels, optimizers
from qselect.solvers.qaoa.batched import BatchedNumpyQAOA
from qselect.solvers.qaoa.native import NumpyQAOA

needs_numba = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba not installed: no compiled path")


def _costs(n, B, seed=0):
    rows = []
    for b in range(B):
        q = QUBO.random(n, seed=seed + b)
        rows.append((q.cost_vector() - q.z_terms()[1]) / q.scale())
    return np.array(rows)


@needs_numba
def test_compiled_phases_match_libm_to_the_last_bits():
    x = np.concatenate([np.linspace(-60, 60, 200_001), np.arange(-8, 9) * np.pi / 4, [0.0, 1e-300, 2.5e3]])
    h = kernels.phases(x, 1.0)
    assert np.abs(h.real - np.cos(x)).max() <= 4.5e-16
    assert np.abs(h.imag + np.sin(x)).max() <= 4.5e-16
    np.testing.assert_allclose(kernels.phases(x[:50], -0.37), np.exp(0.37j * x[:50]), rtol=0, atol=5e-16)


@needs_numba
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_compiled_sweep_state_value_and_gradient_agree(dtype):
    """The forward kernel (states, probabilities, expectation) and the value-and-gradient kernel
    describe one state; the gradient matches finite differences of the matmul path."""
    C = _costs(7, 3, seed=5)
    x = np.random.default_rng(2).uniform(-2, 2, (3, 6))
    bat = BatchedNumpyQAOA(C, 3, dtype=dtype)
    assert bat._kernel
    val, grad = bat.value_and_grad(x)
    tol = 1e-12 if dtype == np.complex128 else 2e-6
    np.testing.assert_allclose(bat.expectation(x), val, atol=tol)
    np.testing.assert_allclose(np.linalg.norm(bat.state(x), axis=1), 1, atol=tol)
    for i in range(3):
        one = NumpyQAOA(C[i], 3, dtype=dtype)
        np.testing.assert_allclose(one.expectation(x[i]), val[i], atol=tol)
        ref = NumpyQAOA(C[i], 3, dtype=np.complex128)
        h = 1e-6
        fd = [(ref.expectation(x[i] + h * e) - ref.expectation(x[i] - h * e)) / (2 * h) for e in np.eye(6)]
        np.testing.assert_allclose(grad[i], fd, atol=1e-7 if dtype == np.complex128 else 5e-5)


@needs_numba
def test_threads_share_the_rows_without_changing_a_bit(monkeypatch):
    monkeypatch.setattr(batched, "_MIN_SPLIT_WORK", 1)  # split even this small batch
    C = _costs(6, 9, seed=1)
    x = np.random.default_rng(0).uniform(-1, 1, (9, 4))
    one = BatchedNumpyQAOA(C, 2, threads=1).value_and_grad(x)
    for t in (2, 3, 8):
        many = BatchedNumpyQAOA(C, 2, threads=t).value_and_grad(x)
        assert np.array_equal(one[0], many[0]) and np.array_equal(one[1], many[1])
    rows = [7, 2, 2, 5]
    sub = BatchedNumpyQAOA(C, 2, threads=2).value_and_grad(x[rows], rows)
    assert np.array_equal(sub[0], one[0][rows]) and np.array_equal(sub[1], one[1][rows])


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_threads_setting_is_checked(bad):
    with pytest.raises(QSelectError, match="threads"):
        BatchedNumpyQAOA(_costs(3, 2), 1, threads=bad)


def _quartic_batch(B, seed=0):
    """Smooth, non-quadratic problems whose line searches extend, backtrack and stop in every way.

    Row 0 is nearly flat (its first steps are extended), row B-2 starts at its minimum (gradient
    test at the start), row B-1 is undefined (NaN) away from its start (the line search gives up).
    """
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(B, 4, 4))
    A = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(4)
    A[0] = 1e-4 * np.eye(4)
    c = rng.normal(size=(B, 4)) * 3
    c[B - 2] = 0

    def fg(X, rows):
        f, g = np.empty(len(rows)), np.empty((len(rows), 4))
        for k, (x, r) in enumerate(zip(X, rows)):
            Ax = A[r] @ x
            f[k] = 0.5 * x @ Ax - c[r] @ x + 0.25 * (1e-6 if r == 0 else 1) * np.sum(x**4)
            g[k] = Ax - c[r] + (1e-6 if r == 0 else 1) * x**3
            if r == B - 1 and np.any(x != 1):
                f[k] = np.nan
        return f, g

    return fg


@needs_numba
@pytest.mark.parametrize("maxiter", [0, 1, 3, 100])
def test_compiled_lbfgs_rounds_equal_the_numpy_rounds(monkeypatch, maxiter):
    """The compiled bookkeeping runs the NumPy state machine row by row: same points, values,
    evaluation counts and stopping messages, on QAOA problems and on non-quadratic ones."""
    C = _costs(6, 5, seed=9)
    eng = BatchedNumpyQAOA(C, 2, dtype=np.complex128)
    x0 = np.random.default_rng(1).uniform(-1, 1, (5, 4))
    x1 = np.random.default_rng(3).normal(size=(7, 4)) * 4
    x1[5], x1[6] = 0, 1
    runs = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(optimizers, "lbfgs_kernels", lambda: None)
        runs.append([optimizers.minimize_batch(eng.value_and_grad, x0, maxiter=maxiter),
                     optimizers.minimize_batch(_quartic_batch(7), x1, maxiter=maxiter, ftol=1e-12, gtol=1e-9)])
    for a, b in zip(*runs):
        np.testing.assert_allclose(a.x, b.x, rtol=0, atol=1e-9)
        np.testing.assert_allclose(a.fun, b.fun, rtol=0, atol=1e-12)
        assert np.array_equal(a.evaluations, b.evaluations)
        assert a.messages == b.messages
    if maxiter == 100:
        msgs = runs[0][1].messages
        assert msgs[5].endswith("PGTOL") and msgs[6] == "ABNORMAL_TERMINATION_IN_LNSRCH"
        assert msgs[0].startswith("CONVERGENCE") and runs[0][1].evaluations[0] > 5


def test_solver_threads_setting_is_checked_and_does_not_change_answers():
    from qselect.solvers.qaoa import QAOASolver

    with pytest.raises(QSelectError, match="threads"):
        QAOASolver(threads=0)
    probs = [QUBO.random(7, seed=s) for s in range(5)]
    one = QAOASolver(p=2, seed=3, threads=1).solve_batch(probs)
    two = QAOASolver(p=2, seed=3).set_params(threads=2).solve_batch(probs)
    assert QAOASolver(threads=2).get_params()["threads"] == 2
    for a, b in zip(one, two):
        assert np.array_equal(a.bits, b.bits) and a.energy == b.energy and np.array_equal(a.angles, b.angles)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("bad", [3.0, "C[:4]", "ones(N*64)", "ones((2, N))", "nan"])
def test_observable_weights_are_checked_on_both_paths(monkeypatch, compiled, bad):
    """A wrong-sized observable once read past its end on the compiled path; both paths refuse it."""
    if compiled and not kernels.AVAILABLE:
        pytest.skip("numba not installed")
    monkeypatch.setattr(kernels, "AVAILABLE", compiled and kernels.AVAILABLE)
    C = _costs(4, 1)[0]
    N = C.size
    w = {"C[:4]": C[:4], "ones(N*64)": np.ones(N * 64), "ones((2, N))": np.ones((2, N)),
         "nan": np.full(N, np.nan)}.get(bad, bad)
    eng = NumpyQAOA(C, 1)
    assert eng._kernel == compiled
    for call in (eng.expectation, eng.value_and_grad):
        with pytest.raises(QSelectError, match="weights"):
            call([0.3, 0.7], weights=w)
    v, g = eng.value_and_grad([0.3, 0.7], weights=np.full(N, 3.0))  # W = 3·I: ⟨W⟩ = 3, no gradient
    assert abs(v - 3) < 1e-6 and np.abs(g).max() < 1e-6


@needs_numba
def test_compiled_phases_stay_exact_for_huge_arguments():
    x = np.array([1e3, 1.6e6, 1.7e6, 2.0**23 + 0.3, 1e8, 1e12, 1e16, 1e18, -1e18])
    h = kernels.phases(x, 1.0)
    np.testing.assert_allclose(h, np.exp(-1j * x), rtol=0, atol=1e-15)
    assert np.all(np.isnan(kernels.phases(np.array([np.inf, np.nan]), 1.0)))
    C = _costs(6, 1)
    for gamma in (1e12, 1e20):
        e = BatchedNumpyQAOA(C, 1, dtype=np.complex128)
        assert abs(np.linalg.norm(e.state([gamma, 0.3])) - 1) < 1e-12


@needs_numba
@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_non_finite_angles_give_nan_not_an_exception(monkeypatch):
    C = _costs(5, 2)
    for compiled in (True, False):
        monkeypatch.setattr(kernels, "AVAILABLE", compiled)
        v, g = NumpyQAOA(C[0], 1).value_and_grad([0.1, np.inf])
        assert np.isnan(v) and np.isnan(g).all()
        vb, _ = BatchedNumpyQAOA(C, 1).value_and_grad([[0.1, np.inf], [0.1, 0.2]])
        assert np.isnan(vb[0]) and np.isfinite(vb[1])


def test_a_distribution_that_is_not_one_is_refused():
    from qselect.solvers.qaoa.answer import read_answers

    q = QUBO.random(3, seed=0)
    E = q.cost_vector()[None]
    for P in (np.full((1, 8), np.nan), np.zeros((1, 8))):
        with pytest.raises(QSelectError, match="not a probability distribution"):
            read_answers([q], P, E, E, [1.0], [0.0], [0], shots=16, top=2)


@pytest.mark.parametrize("compiled", [True, False])
def test_nan_gradients_are_not_convergence(monkeypatch, compiled):
    if compiled and not kernels.AVAILABLE:
        pytest.skip("numba not installed")
    if not compiled:
        monkeypatch.setattr(optimizers, "lbfgs_kernels", lambda: None)
    out = optimizers.minimize_batch(lambda X, r: (np.sum(X**2, 1), np.full_like(X, np.nan)), np.ones((2, 2)))
    assert out.messages == ["ABNORMAL_TERMINATION_IN_LNSRCH"] * 2
    with pytest.raises(QSelectError, match="d ≥ 1"):
        optimizers.minimize_batch(lambda X, r: (np.zeros(len(r)), X), np.ones((2, 0)))


@needs_numba
def test_shrinking_batches_reuse_one_thread_pool(monkeypatch):
    import threading

    monkeypatch.setattr(batched, "_MIN_SPLIT_WORK", 1)
    C = _costs(5, 12)
    e = BatchedNumpyQAOA(C, 1, threads=6)
    x = np.random.default_rng(0).uniform(-1, 1, (12, 2))
    before = threading.active_count()
    for b in range(12, 1, -1):  # each size splits into min(6, b) slabs: one pool of 5 helpers serves them all
        e.value_and_grad(x[:b], np.arange(b))
    assert threading.active_count() <= before + 5
