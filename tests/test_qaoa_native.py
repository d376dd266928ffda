"""Native QAOA engines: exact gradients, torch = NumPy, XY keeps Hamming weight, memory guard."""
import numpy as np
import pytest
import torch

from qselect.ansatz import dicke_state
from qselect.errors import ProblemTooLargeError, QSelectError
from qselect.problems import QUBO, DiagonalCost
from qselect.problems.bits import popcounts
from qselect.solvers.qaoa import QAOASolver, native
from qselect.solvers.qaoa.native import NumpyQAOA, check_memory
from qselect.solvers.qaoa.native_torch import TorchQAOA
from qselect.solvers.qaoa.objectives import cvar_weights, exact_objective, sample_objective


def _costs(n, seed=0):
    q = QUBO.random(n, seed=seed)
    return (q.cost_vector() - q.z_terms()[1]) / q.scale()


def _fd(f, x, h=1e-6):
    return np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(x.size)])


@pytest.mark.parametrize("mixer,k,n", [("x", None, 7), ("x", None, 11), ("xy", 3, 6)])
def test_adjoint_gradient_matches_finite_differences(mixer, k, n):
    eng = NumpyQAOA(_costs(n), 3, mixer=mixer, k=k)
    x = np.random.default_rng(1).uniform(-1, 1, 6)
    v, g = eng.value_and_grad(x)
    assert v == pytest.approx(eng.expectation(x), abs=1e-12)
    np.testing.assert_allclose(g, _fd(eng.expectation, x), atol=1e-6)


def test_adjoint_gradient_of_cvar_observable():
    c = _costs(6, 3)
    eng = NumpyQAOA(c, 2)
    order = np.argsort(c)
    x = np.array([0.4, -0.3, 0.6, 0.2])
    _, w = cvar_weights(c, order, eng.probabilities(x), 0.3)
    f = lambda a: cvar_weights(c, order, eng.probabilities(a), 0.3)[0]
    np.testing.assert_allclose(eng.value_and_grad(x, w)[1], _fd(f, x, 1e-7), atol=1e-5)


@pytest.mark.parametrize("mixer,k", [("x", None), ("xy", 2)])
def test_torch_engine_matches_numpy(mixer, k):
    c = _costs(7, 2)
    x = np.array([0.3, 0.5, -0.2, 0.7, 0.2, 0.1])
    a = NumpyQAOA(c, 3, mixer=mixer, k=k)
    t = TorchQAOA(c, 3, mixer=mixer, k=k, dtype=torch.complex128, device="cpu")
    va, ga = a.value_and_grad(x)
    vt, gt = t.value_and_grad(x)
    assert vt == pytest.approx(va, abs=1e-10)
    np.testing.assert_allclose(gt, ga, atol=1e-9)
    np.testing.assert_allclose(t.probabilities(x), a.probabilities(x), atol=1e-12)
    t32 = TorchQAOA(c, 3, mixer=mixer, k=k, device="cpu")  # complex64 default
    assert t32.expectation(x) == pytest.approx(va, abs=1e-4)


def test_complex64_numpy_engine_close_to_complex128():
    c = _costs(12, 5)
    x = np.array([0.3, 0.5, 0.7, 0.2])
    assert NumpyQAOA(c, 2, dtype=np.complex64).expectation(x) == pytest.approx(
        NumpyQAOA(c, 2).expectation(x), abs=1e-4)


@pytest.mark.parametrize("n,k", [(5, 2), (8, 3), (9, 4)])
def test_xy_mixer_keeps_hamming_weight(n, k):
    x = np.random.default_rng(n).uniform(-2, 2, 6)
    outside = popcounts(n) != k
    for eng in (NumpyQAOA(_costs(n), 3, mixer="xy", k=k),
                TorchQAOA(_costs(n), 3, mixer="xy", k=k, dtype=torch.complex128, device="cpu")):
        pr = eng.probabilities(x)
        assert pr.sum() == pytest.approx(1.0, abs=1e-10)
        assert pr[outside].sum() < 1e-10
    # the solver's samples all have weight k, and so does its answer
    r = QAOASolver(p=2, mixer="xy", k=k, maxiter=20).solve(QUBO.random(n, seed=1))
    assert np.all(r.samples.sum(axis=1) == k) and r.kept == k


@pytest.mark.parametrize("mixer,k", [("x", None), ("xy", 4)])
def test_blocked_paths_match_one_block(monkeypatch, mixer, k):
    """Tiny chunks force every multi-block path (phase, X-mixer groups, XY pair tiles, gradient sums)."""
    c, x = _costs(9, 4), np.array([0.3, -0.5, 0.7, 0.2, 0.4, -0.1])
    ref = NumpyQAOA(c, 3, mixer=mixer, k=k)
    v0, g0, psi0 = *ref.value_and_grad(x), ref.state(x)
    monkeypatch.setattr(native, "_CHUNK", 64)  # the X mixer needs ≥ 2^_GROUP
    eng = NumpyQAOA(c, 3, mixer=mixer, k=k)
    assert len(eng._bufs[0]) == 64
    if mixer == "xy":  # tiles of every kind: whole leading rows, middle-axis runs, last-axis runs
        assert {len(t[0]) for i, j in eng._pairs for t in eng._pair_blocks(i, j)} == {1, 2, 3}
    v, g = eng.value_and_grad(x)
    np.testing.assert_allclose(eng.state(x), psi0, atol=1e-12)
    assert v == pytest.approx(v0, abs=1e-12)
    np.testing.assert_allclose(g, g0, atol=1e-10)


def test_x_mixer_state_is_normalised_and_uniform_at_zero_angles():
    eng = NumpyQAOA(_costs(9), 2)
    psi = eng.state(np.zeros(4))
    np.testing.assert_allclose(np.abs(psi) ** 2, np.full(512, 1 / 512), atol=1e-15)
    assert np.linalg.norm(eng.state(np.array([0.1, 0.9, 1.3, -0.4]))) == pytest.approx(1.0, abs=1e-12)


def test_dicke_state():
    d = dicke_state(6, 2)
    assert np.count_nonzero(d) == 15 and np.sum(np.abs(d) ** 2) == pytest.approx(1.0)


def test_objectives_from_samples_and_probabilities():
    e = np.array([3.0, 1.0, 2.0])
    c = np.array([1, 2, 1])
    assert sample_objective(e, c, "expectation", 0.5) == pytest.approx(7 / 4)
    assert sample_objective(e, c, "cvar", 0.5) == pytest.approx(1.0)  # lowest 2 of 4 shots are both 1.0
    assert sample_objective(e, c, "cvar", 0.75) == pytest.approx(4 / 3)
    pr = np.array([0.25, 0.5, 0.25])
    assert exact_objective(e, pr, "cvar", 0.6) == pytest.approx((0.5 * 1 + 0.1 * 2) / 0.6)
    assert exact_objective(e, pr, "cvar", 1.0) == pytest.approx(exact_objective(e, pr, "expectation", 1.0))


def test_memory_guard_raises_before_allocating(monkeypatch):
    with pytest.raises(ProblemTooLargeError, match="qubits fit"):
        check_memory(44)

    def boom(*a, **k):
        raise AssertionError("the cost vector must not be built before the memory check")

    q = QUBO.random(44, seed=0)
    monkeypatch.setattr(QUBO, "cost_vector", boom)
    with pytest.raises(ProblemTooLargeError, match="smaller qubit budget"):
        QAOASolver(p=1).solve(q)


def test_bad_inputs_give_clear_errors():
    with pytest.raises(QSelectError, match="backend"):
        QAOASolver(backend="cirq")
    with pytest.raises(QSelectError, match="k"):
        QAOASolver(mixer="xy").solve(QUBO.random(4))
    with pytest.raises(QSelectError, match="angles"):
        NumpyQAOA(_costs(3), 2).expectation([0.1, 0.2])
    with pytest.raises(QSelectError, match="optimizer"):
        QAOASolver(optimizer="adamw")
    with pytest.raises(QSelectError, match="initial angles"):
        QAOASolver(init=[0.1, 0.2, 0.3])
    with pytest.raises(QSelectError, match="dtype"):
        NumpyQAOA(_costs(3), 1, dtype=np.float32)
    with pytest.raises(QSelectError):
        DiagonalCost(np.ones(3))


def test_large_state_blocked_and_threaded_path_matches_torch():
    # 2^18 entries: several cache blocks per group, split across threads when cores allow
    c = _costs(18, 9)
    x = np.array([0.31, 0.52, 0.44, 0.17])
    a = NumpyQAOA(c, 2)
    assert len(list(a._run_blocks(17, 1, lambda idx, buf: 0))) > 1
    t = TorchQAOA(c, 2, dtype=torch.complex128, device="cpu")
    va, ga = a.value_and_grad(x)
    vt, gt = t.value_and_grad(x)
    assert va == pytest.approx(vt, abs=1e-9)
    np.testing.assert_allclose(ga, gt, atol=1e-8)


@pytest.mark.parametrize("k", [0, 1, 4])
def test_xy_answer_never_leaves_the_weight_k_subspace(k):
    # the most-probable candidates must not include zero-probability states of another weight
    q = QUBO.random(4, seed=0, k=k)
    r = QAOASolver(p=1, mixer="xy").solve(q)
    assert r.kept == k and np.all(r.samples.sum(axis=1) == k)
    feasible = q.cost_vector()[popcounts(4) == k]
    assert np.any(np.isclose(feasible, r.energy))  # the answer's energy is that of a weight-k mask


def test_n30_complex64_fits_24gb_only_with_float32_costs(monkeypatch):
    """The complex64 engine builds its costs in float32 above 24 qubits: at n = 30 that is the
    difference between fitting a 24 GB machine and being refused."""
    import qselect.problems.memory as memory
    from qselect.errors import ProblemTooLargeError
    from qselect.solvers.qaoa.native import check_memory, cost_dtype_for

    monkeypatch.setattr(memory, "available_bytes", lambda: 22 * 2**30)
    assert cost_dtype_for(30, np.complex64, 24) == np.float32
    assert cost_dtype_for(20, np.complex64, 24) == np.float64  # small: final state re-evaluated in double
    assert cost_dtype_for(30, np.complex128, 24) == np.float64
    check_memory(30, np.complex64, gradient=False, cost_dtype=np.float32)
    with pytest.raises(ProblemTooLargeError, match="qubits fit"):
        check_memory(30, np.complex64, gradient=False, cost_dtype=np.float64)


@pytest.mark.parametrize("dtype,tol", [(np.complex128, 1e-12), (np.complex64, 1e-5)])
def test_kept_layer_states_give_the_gradient_of_moving_psi_back(monkeypatch, dtype, tol):
    """Block-sized X-mixer states keep the layer states (only λ moves back); larger ones move ψ back
    beside λ. Both ways, in both engines, give the same value and gradient."""
    from qselect.solvers.qaoa import batched
    from qselect.solvers.qaoa.batched import BatchedNumpyQAOA

    C = np.stack([_costs(9, seed=s) for s in range(3)])
    x = np.random.default_rng(4).uniform(-1, 1, (3, 6))
    assert native.keeps_layer_states("x", C.shape[1]) and not native.keeps_layer_states("xy", C.shape[1])
    assert not native.keeps_layer_states("x", 2 * native._CHUNK)

    def run():
        one = [NumpyQAOA(C[i], 3, dtype=dtype).value_and_grad(x[i]) for i in range(3)]
        return one, BatchedNumpyQAOA(C, 3, dtype=dtype).value_and_grad(x)

    kept, kept_b = run()
    from qselect.solvers.qaoa import kernels

    monkeypatch.setattr(kernels, "AVAILABLE", False)  # the compiled sweeps always keep their layer states
    kept_np, kept_np_b = run()
    for mod in (native, batched):
        monkeypatch.setattr(mod, "keeps_layer_states", lambda mixer, N: False)
    moved, moved_b = run()
    for i in range(3):
        assert abs(kept[i][0] - kept_np[i][0]) < tol and np.abs(kept[i][1] - kept_np[i][1]).max() < tol
        assert abs(kept_b[0][i] - kept_np_b[0][i]) < tol and np.abs(kept_b[1][i] - kept_np_b[1][i]).max() < tol
    for i in range(3):
        assert abs(kept[i][0] - moved[i][0]) < tol and np.abs(kept[i][1] - moved[i][1]).max() < tol
        assert abs(kept_b[0][i] - moved_b[0][i]) < tol and np.abs(kept_b[1][i] - moved_b[1][i]).max() < tol
        np.testing.assert_allclose(kept[i][1], _fd(NumpyQAOA(C[i], 3).expectation, x[i]),
                                   rtol=0 if dtype == np.complex128 else 1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 11, 12])
def test_compiled_mixer_kernel_agrees_with_the_group_matmuls(monkeypatch, n):
    """Block-sized X-mixer states go through the numba per-qubit kernel; the matmul path (the one
    used without numba) gives the same states, values and gradients, in both engines."""
    from qselect.solvers.qaoa import kernels
    from qselect.solvers.qaoa.batched import BatchedNumpyQAOA

    if not kernels.AVAILABLE:
        pytest.skip("numba not installed: the matmul path is the only one")
    C = np.stack([_costs(n, seed=s) for s in range(3)])
    x = np.random.default_rng(n).uniform(-3, 3, (3, 4))  # negative β included

    def run():
        one = [NumpyQAOA(C[i], 2).value_and_grad(x[i]) for i in range(3)]
        bat = BatchedNumpyQAOA(C, 2)
        assert bat._kernel == kernels.AVAILABLE
        return one, bat.value_and_grad(x), bat.state(x)

    one_k, bat_k, st_k = run()
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    one_m, bat_m, st_m = run()
    np.testing.assert_allclose(st_k, st_m, atol=1e-13)
    for i in range(3):
        assert abs(one_k[i][0] - one_m[i][0]) < 1e-12 and np.abs(one_k[i][1] - one_m[i][1]).max() < 1e-12
        np.testing.assert_allclose(bat_k[1][i], bat_m[1][i], atol=1e-12)
        assert abs(one_k[i][0] - bat_k[0][i]) < 1e-12 and np.abs(one_k[i][1] - bat_k[1][i]).max() < 1e-12


def test_without_numba_the_kernels_report_unavailable(monkeypatch):
    import sys

    from qselect.solvers.qaoa import kernels

    costs = _costs(6)  # built first: a hidden numba cannot compile anything new
    monkeypatch.setitem(sys.modules, "numba", None)  # how a hidden or broken install looks to importlib
    assert kernels.numba_installed() is False
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    assert not kernels.uses_row_kernel("x", 1 << 10) and not NumpyQAOA(costs, 1)._kernel


def test_a_numba_that_fails_to_load_falls_back_to_the_matmul_mixer(unloadable_kernels):
    from qselect.solvers.qaoa import kernels

    unloadable_kernels(kernels)
    with pytest.warns(RuntimeWarning, match="matmul mixer"):
        assert not kernels.uses_row_kernel("x", 1 << 8)
    eng = NumpyQAOA(_costs(6), 1)
    assert not eng._kernel and np.isfinite(eng.value_and_grad([0.3, -0.4])[0])


@pytest.mark.parametrize("n", [18])
def test_compiled_sweeps_serve_states_beyond_one_chunk(monkeypatch, n):
    """Up to 2^20 amplitudes the compiled sweep runs the gradient (keeping its own layer states), also
    where the NumPy path would move ψ back; both give the same numbers."""
    from qselect.solvers.qaoa import kernels

    if not kernels.AVAILABLE:
        pytest.skip("numba not installed")
    assert kernels.MAX_AMPLITUDES[np.dtype(np.complex128)] >= 1 << n > native._CHUNK
    assert not native.keeps_layer_states("x", 1 << n)
    assert not kernels.uses_row_kernel("x", 1 << n, np.complex64)  # there the threaded matmuls are as fast
    c = _costs(n, seed=1)
    x = np.array([0.4, -0.3, 0.7, 0.2])
    eng = NumpyQAOA(c, 2)
    assert eng._kernel and not NumpyQAOA(c, 2, dtype=np.complex64)._kernel
    v, g = eng.value_and_grad(x)
    e = eng.expectation(x)
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    ref = NumpyQAOA(c, 2)
    assert not ref._kernel
    v0, g0 = ref.value_and_grad(x)
    assert abs(v - v0) < 1e-12 and np.abs(g - g0).max() < 1e-11 and abs(e - v0) < 1e-12


def test_memory_guard_counts_the_compiled_sweeps_layer_states(monkeypatch):
    import qselect.problems.memory as memory
    from qselect.errors import ProblemTooLargeError
    from qselect.solvers.qaoa import kernels

    assert kernels.compiled_extra_bytes(3, np.complex128) == 3 * 32
    need = lambda layers: (2 * 16 + 2 * 8 + 4) * 2**20 + kernels.compiled_extra_bytes(layers, np.complex128) * 2**20
    monkeypatch.setattr(memory, "available_bytes", lambda: int(need(2) / memory._USABLE_FRACTION) + 1)
    native.check_memory(20, np.complex128, layers=2)
    with pytest.raises(ProblemTooLargeError):
        native.check_memory(20, np.complex128, layers=4)
    with pytest.raises(ProblemTooLargeError):  # two rows in flight (threads) need the extra twice
        native.check_memory(20, np.complex128, layers=2, batch=2, rows_in_flight=2)


def test_the_blas_pin_holds_until_its_last_holder_leaves():
    """Solves in several threads overlap their pins: the first to leave must not unpin the others."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from qselect.solvers.qaoa.native import single_thread_blas

    def blas_threads():
        return [m["num_threads"] for m in threadpoolctl.threadpool_info() if m["user_api"] == "blas"]

    before = blas_threads()
    if not before or max(before) == 1:
        pytest.skip("BLAS runs one thread anyway: nothing to pin")
    first, second = single_thread_blas(), single_thread_blas()
    first.__enter__()
    second.__enter__()
    assert max(blas_threads()) == 1
    first.__exit__(None, None, None)  # the first holder leaves while the second still runs
    assert max(blas_threads()) == 1
    second.__exit__(None, None, None)
    assert blas_threads() == before
