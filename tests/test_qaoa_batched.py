"""Batched QAOA: engine agreement with the single-problem engine, batched L-BFGS, solver and
block-descent batching."""
import numpy as np
import pytest

from qselect.errors import ProblemTooLargeError, QSelectError
from qselect.formulate.decompose import BlockSolver
from qselect.problems import QUBO
from qselect.solvers.qaoa import QAOASolver
from qselect.solvers.qaoa.angles import initial_angles
from qselect.solvers.qaoa.batched import BatchedNumpyQAOA
from qselect.solvers.qaoa.native import NumpyQAOA, check_memory
from qselect.solvers.qaoa.optimizers import minimize, minimize_batch


def _mixed_costs(n, B, seed=0):
    """Different kinds of problems in one batch: random QUBOs of several scales and a random diagonal."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(B):
        if b % 3 == 2:
            rows.append(rng.normal(size=1 << n) * (b + 1))
        else:
            q = QUBO.random(n, seed=seed + b)
            c = q.cost_vector() - q.z_terms()[1]
            rows.append(c / q.scale())
    return np.array(rows)


@pytest.mark.parametrize("mixer,k", [("x", None), ("xy", 3)])
def test_batched_engine_matches_single_engine_per_row(mixer, k):
    n, B, p = 7, 5, 2
    C = _mixed_costs(n, B)
    A = np.random.default_rng(1).normal(size=(B, 2 * p))
    eng = BatchedNumpyQAOA(C, p, mixer, k, np.complex128)
    v, g = eng.value_and_grad(A)
    e = eng.expectation(A)
    P = eng.probabilities(A)
    for r in range(B):
        one = NumpyQAOA(C[r], p, mixer, k, np.complex128)
        vs, gs = one.value_and_grad(A[r])
        assert abs(v[r] - vs) < 1e-6 and np.abs(g[r] - gs).max() < 1e-6
        assert abs(e[r] - one.expectation(A[r])) < 1e-10
        np.testing.assert_allclose(P[r], one.probabilities(A[r]), atol=1e-12)
    # a subset of rows gives the same rows
    v2, g2 = eng.value_and_grad(A[[3, 1]], rows=[3, 1])
    np.testing.assert_allclose(v2, v[[3, 1]], atol=1e-12)
    np.testing.assert_allclose(g2, g[[3, 1]], atol=1e-12)


def test_batched_gradient_matches_finite_differences():
    C = _mixed_costs(6, 3, seed=4)
    eng = BatchedNumpyQAOA(C, 2, "x", None, np.complex128)
    A = np.random.default_rng(2).normal(size=(3, 4))
    _, g = eng.value_and_grad(A)
    h = 1e-6
    for j in range(4):
        d = np.zeros(4)
        d[j] = h
        fd = (eng.expectation(A + d) - eng.expectation(A - d)) / (2 * h)
        np.testing.assert_allclose(g[:, j], fd, atol=1e-6)


@pytest.mark.parametrize("mixer,k,a", [("x", None, [0.3, -0.8, 0.55, 0.2]), ("x", None, [-0.4, 0.7, -0.35, 0.9]),
                                        ("xy", 2, [0.3, -0.8, 0.55, 0.2])])
@pytest.mark.parametrize("kernel", [True, False])
@pytest.mark.parametrize("n", [3, 5, 8])
def test_batch_of_one_is_the_single_engine_bit_for_bit(monkeypatch, mixer, k, a, kernel, n):
    from qselect.solvers.qaoa import kernels

    if kernel and not kernels.AVAILABLE:
        pytest.skip("numba not installed")
    monkeypatch.setattr(kernels, "AVAILABLE", kernel and kernels.AVAILABLE)
    p = 2
    C = _mixed_costs(n, 1, seed=7)
    a = np.array(a)
    one = NumpyQAOA(C[0], p, mixer, k, np.complex128)
    bat = BatchedNumpyQAOA(C, p, mixer, k, np.complex128)
    v, g = bat.value_and_grad(a[None])
    vs, gs = one.value_and_grad(a)
    assert v[0] == vs and np.array_equal(g[0], gs)
    assert np.array_equal(bat.state(a[None])[0], one.state(a))
    assert np.array_equal(bat.probabilities(a[None])[0], one.probabilities(a))
    assert bat.expectation(a[None])[0] == one.expectation(a)


def test_batched_engine_rejects_bad_input():
    with pytest.raises(QSelectError, match="batch, 2"):
        BatchedNumpyQAOA(np.zeros(8), 1)
    with pytest.raises(QSelectError, match="length 2"):
        BatchedNumpyQAOA(np.zeros((2, 6)), 1)
    eng = BatchedNumpyQAOA(np.zeros((2, 8)), 1)
    with pytest.raises(QSelectError, match="shape"):
        eng.value_and_grad(np.zeros((3, 2)))
    with pytest.raises(QSelectError, match="row indices"):
        eng.expectation(np.zeros((1, 2)), rows=[5])


def test_memory_guard_counts_the_batch(monkeypatch):
    import qselect.problems.memory as memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 64 * 2**20)
    check_memory(16, np.complex64, batch=1)  # ~2.5 MiB for one problem
    with pytest.raises(ProblemTooLargeError):
        check_memory(16, np.complex64, batch=100)


def test_minimize_batch_matches_scipy_on_a_quadratic_and_stops_each_problem():
    rng = np.random.default_rng(0)
    Q = [np.diag(rng.uniform(0.5, 5, 3)) for _ in range(4)]
    c = rng.normal(size=(4, 3))

    def fg(X, rows):
        f = np.array([0.5 * x @ Q[r] @ x - c[r] @ x for x, r in zip(X, rows)])
        g = np.array([Q[r] @ x - c[r] for x, r in zip(X, rows)])
        return f, g

    out = minimize_batch(fg, np.zeros((4, 3)), maxiter=50, ftol=1e-14, gtol=1e-9)
    for r in range(4):
        np.testing.assert_allclose(out.x[r], np.linalg.solve(Q[r], c[r]), atol=1e-6)
    assert all(m.startswith("CONVERGENCE") for m in out.messages)
    one = minimize_batch(fg, np.zeros((4, 3)), maxiter=0)
    assert np.all(one.evaluations == 1) and np.array_equal(one.x, np.zeros((4, 3)))
    it1 = minimize_batch(fg, np.zeros((4, 3)), maxiter=1)
    assert all(m.startswith("STOP") or m.startswith("CONVERGENCE") for m in it1.messages)


def test_minimize_batch_reaches_scipy_values_on_qaoa():
    C = _mixed_costs(8, 6, seed=3)[[0, 1, 3, 4]]
    eng = BatchedNumpyQAOA(C, 2, "x", None, np.complex128)
    x0 = np.tile([0.2, 0.5, -0.5, -0.2], (4, 1))
    out = minimize_batch(eng.value_and_grad, x0)
    for r in range(4):
        one = NumpyQAOA(C[r], 2, "x", None, np.complex128)
        ref = minimize(one.expectation, x0[r], "L-BFGS-B", 100, one.value_and_grad)
        assert out.fun[r] <= ref.fun + 1e-5


@pytest.mark.parametrize("mixer", ["x", "xy"])
def test_solver_batch_gives_the_sequential_answers(mixer):
    probs = [QUBO.random(8, seed=s) for s in range(4)]
    for q in probs:
        q.k = 3
    s = QAOASolver(p=2, seed=5, mixer=mixer, shots=256)
    seq = [s.solve(q) for q in probs]
    bat = s.solve_batch(probs)
    assert s.batchable()
    for a, b in zip(seq, bat):
        assert b.info["batch"] == 4
        assert abs(a.expectation - b.expectation) <= 1e-5 * max(1.0, abs(a.expectation))
        assert b.energy <= a.energy + 1e-9
        assert b.bits.size == 8 and abs(b.energy - float(q_energy(probs, a, b))) < 1e-9


def q_energy(probs, a, b):
    for q in probs:
        if np.isclose(q.energy(b.bits), b.energy):
            return q.energy(b.bits)
    raise AssertionError("batched answer is not scored by its own problem")


def test_solver_batch_seeds_and_fallbacks():
    probs = [QUBO.random(6, seed=s) for s in range(3)] + [QUBO.random(5, seed=9)]
    s = QAOASolver(p=1, seed=0, shots=64)
    out = s.solve_batch(probs, seeds=[1, 2, 3, 4])
    assert [r.info["seed"] for r in out] == [1, 2, 3, 4]
    assert out[3].info["batch"] == 1 or out[3].num_variables == 5  # its own size group
    assert all(r.num_variables == q.n for r, q in zip(out, probs))
    with pytest.raises(QSelectError, match="seeds"):
        s.solve_batch(probs, seeds=[1])
    assert not QAOASolver(batch=False).batchable()
    assert not QAOASolver(objective="cvar").batchable()
    with pytest.raises(QSelectError, match="batch"):
        QAOASolver(batch="yes")
    # a solver that does not batch solves one by one, same answers as solve()
    seq = QAOASolver(p=1, seed=0, shots=64, batch=False)
    r = seq.solve_many(probs[:2])
    assert "batch" not in r[0].info and r[0].energy == seq.solve(probs[0]).energy


def test_batch_start_angles_are_drawn_per_problem_when_unseeded_and_shared_per_seed():
    """A seeded random start is the same for every problem with that seed; an unseeded one is drawn anew for each."""
    probs = [QUBO.random(5, seed=s) for s in range(3)]
    fresh = QAOASolver(p=2, maxiter=0, init="random", seed=None, shots=16).solve_batch(probs)
    assert len({tuple(r.angles.round(12)) for r in fresh}) == 3
    seeded = QAOASolver(p=2, maxiter=0, init="random", seed=4, shots=16).solve_batch(probs, seeds=[4, 4, 5])
    assert np.array_equal(seeded[0].angles, seeded[1].angles)
    assert not np.array_equal(seeded[0].angles, seeded[2].angles)
    # unseeded restarts draw fresh angles (no seed tuple with None), and each row reports the seed it used
    for solver in (QAOASolver(p=1, seed=None, restarts=1, maxiter=3, shots=16),):
        assert solver.solve(probs[0]).info["seed"] is None
        mixed = solver.set_params(seed=0).solve_batch(probs[:2], seeds=[0, None])
        assert [r.info["seed"] for r in mixed] == [0, None]
        assert solver.solve_batch(probs[:1])[0].info["seed"] is None


def test_block_solver_lockstep_batch_equals_one_by_one_with_batch_answers():
    big = [QUBO.random(20, seed=s) for s in range(3)]
    inner = QAOASolver(p=1, seed=1, shots=128)
    block = BlockSolver(inner, qubits=7, max_sweeps=2, seed=0)
    bat = block.solve_many(big)
    # the sequential reference: the same descent, each block solved by a batch of one
    calls = []

    class OneByOne(QAOASolver):
        def solve(self, problem):  # a batch of one through the batched engine and optimiser
            calls.append(problem.n)
            return self._solve_group([problem], [(self.seed, initial_angles(self.init, self.p, self.seed))])[0]

    ref_inner = OneByOne(p=1, seed=1, shots=128)
    ref = [BlockSolver(ref_inner, qubits=7, max_sweeps=2, seed=0).solve(q) for q in big]
    for a, b in zip(ref, bat):
        assert abs(a.energy - b.energy) <= 1e-9 * max(1.0, abs(a.energy))
        assert a.info["inner_solves"] == b.info["inner_solves"]
        assert a.info["energy_trace"][-1] <= a.info["energy_trace"][0]
    assert calls and max(calls) <= 7


@pytest.mark.parametrize("mixer,k", [("x", None), ("xy", 3)])
@pytest.mark.parametrize("chunk", [1 << 24, 64])
def test_torch_engine_in_place_batched_paths_match_numpy(mixer, k, chunk):
    """The lean torch engine (in-place phase/mixers in slices of ``chunk`` amplitudes, adjoint
    gradient) against the NumPy engine in complex128, batched and single, large and tiny slices."""
    import torch

    from qselect.solvers.qaoa.native_torch import TorchQAOA

    n, B, p = 9, 3, 2  # chunk 64: groups with K·L > 64 and XY pairs wider than 64 take the sliced paths
    C = _mixed_costs(n, B, seed=5)
    A = np.random.default_rng(6).normal(size=(B, 2 * p))
    eng = TorchQAOA(C, p, mixer, k, dtype=torch.complex128, device="cpu", chunk=chunk)
    v, g = eng.value_and_grad(A)
    e = eng.expectation(A)
    P = eng.probabilities(A)
    for r in range(B):
        one = NumpyQAOA(C[r], p, mixer, k, np.complex128)
        vs, gs = one.value_and_grad(A[r])
        assert abs(v[r] - vs) < 1e-10 and np.abs(g[r] - gs).max() < 1e-10 and abs(e[r] - vs) < 1e-10
        np.testing.assert_allclose(P[r], one.probabilities(A[r]), atol=1e-12)
    single = TorchQAOA(C[1], p, mixer, k, dtype=torch.complex128, device="cpu", chunk=chunk)
    vs, gs = single.value_and_grad(A[1])
    assert isinstance(vs, float) and gs.shape == (2 * p,) and abs(vs - v[1]) < 1e-12
    vsub, gsub = eng.subset([2, 0]).value_and_grad(A[[2, 0]])
    np.testing.assert_allclose(vsub, v[[2, 0]], atol=1e-12)
    np.testing.assert_allclose(gsub, g[[2, 0]], atol=1e-12)
    with pytest.raises(QSelectError, match="angles"):
        eng.expectation(np.zeros((2, 2 * p)))


def test_solver_batch_with_the_torch_engine():
    probs = [QUBO.random(7, seed=s) for s in range(3)]
    s = QAOASolver(p=1, seed=2, shots=128, engine="torch", dtype="complex128")
    bat = s.solve_batch(probs)
    seq = [s.solve(q) for q in probs]
    for a, b in zip(seq, bat):
        assert b.info["backend"] == "native-torch" and b.info["batch"] == 3
        assert abs(a.expectation - b.expectation) <= 1e-5 * max(1.0, abs(a.expectation))


def test_torch_engine_at_zero_mixer_angle_is_finite():
    """β = 0 makes the mixer the identity; complex 0**0 must not turn the group matrix into NaN."""
    import torch

    from qselect.solvers.qaoa.native_torch import TorchQAOA

    c = _mixed_costs(6, 1, seed=8)[0]
    a = np.array([0.3, 0.0])
    v, g = TorchQAOA(c, 1, dtype=torch.complex128, device="cpu").value_and_grad(a)
    vs, gs = NumpyQAOA(c, 1, dtype=np.complex128).value_and_grad(a)
    assert abs(v - vs) < 1e-12 and np.abs(g - gs).max() < 1e-10


def _answer_inputs(n: int, B: int, first_seed: int):
    """B random n-bit QUBOs and what read_answers takes of them: energies, normalised costs, scales, offsets."""
    probs = [QUBO.random(n, seed=first_seed + b) for b in range(B)]
    E = np.stack([q.cost_vector() for q in probs])
    sc = np.array([q.scale() for q in probs])
    co = np.array([q.z_terms()[1] for q in probs])
    return probs, E, (E - co[:, None]) / sc[:, None], sc, co


def test_read_answers_rows_do_not_depend_on_the_batch_and_are_scored_by_the_problem():
    from qselect.solvers.qaoa.answer import read_answers

    n, B = 7, 4
    probs, E, C, sc, co = _answer_inputs(n, B, first_seed=30)
    P = np.random.default_rng(3).random((B, 1 << n)) ** 6
    seeds = [11, 12, 13, 14]
    both = read_answers(probs, P, C, E, sc, co, seeds, shots=200, top=8)
    for i in range(B):
        one = read_answers(probs[i:i + 1], P[i:i + 1], C[i:i + 1], E[i:i + 1], sc[i:i + 1], co[i:i + 1],
                           seeds[i:i + 1], shots=200, top=8)[0]
        for key in ("samples", "energies", "counts"):
            assert np.array_equal(one[key], both[i][key])
        assert one["expectation"] == both[i]["expectation"] and one["info"] == both[i]["info"]
        # scored by the problem itself, lowest energy first
        np.testing.assert_allclose(both[i]["energies"], probs[i].energy(both[i]["samples"]), atol=1e-9)
        assert np.all(np.diff(both[i]["energies"]) >= 0)
        # the shots are Generator.choice's draws for that seed
        Pi = P[i] / P[i].sum()
        draw = np.random.default_rng(seeds[i]).choice(1 << n, size=200, p=Pi)
        hits = np.bincount(draw, minlength=1 << n)
        idx = both[i]["samples"].astype(np.int64) @ (1 << np.arange(n))
        assert np.array_equal(both[i]["counts"], hits[idx]) and both[i]["counts"].sum() == 200
    # without tabulated energies the same answers come from problem.energy
    scored = read_answers(probs, P, C, None, sc, co, seeds, shots=200, top=8)
    for a, b in zip(both, scored):
        assert np.array_equal(a["samples"], b["samples"]) and np.allclose(a["energies"], b["energies"])


def test_uniform_baselines_equal_the_single_control_row_by_row():
    from qselect.solvers.controls import uniform_baseline, uniform_baselines

    n = 6
    probs = [QUBO.random(n, seed=40 + b) for b in range(3)]
    E = np.stack([q.cost_vector() for q in probs])
    sc, co = np.array([q.scale() for q in probs]), np.array([q.z_terms()[1] for q in probs])
    C = (E - co[:, None]) / sc[:, None]
    many = uniform_baselines(n, 64, [1, 2, 3], C, sc, co, E)
    for i, q in enumerate(probs):
        one = uniform_baseline(q, 64, seed=i + 1, costs=C[i], scale=sc[i], offset=co[i], energies=E[i])
        assert one == many[i]
        assert one["best_energy"] >= one["optimum_energy"] - 1e-9


@pytest.mark.parametrize("batch", [True, False])
def test_block_warm_start_passes_each_problem_its_previous_angles(batch):
    big = [QUBO.random(16, seed=s) for s in range(3)]
    seen = []

    class Recorder(QAOASolver):
        def solve_batch(self, problems, seeds=None, inits=None):
            seen.extend(a for a in (inits or []) if a is not None and not isinstance(a, str))
            return super().solve_batch(problems, seeds=seeds, inits=inits)

        def solve(self, problem):
            if not isinstance(self.init, str):
                seen.append(self.init)
            return super().solve(problem)

    inner = Recorder(p=1, seed=1, shots=64, batch=batch)
    warm = BlockSolver(inner, qubits=6, max_sweeps=2, seed=0, warm_start=True).solve_many(big)
    assert seen and all(np.shape(a) == (2,) for a in seen)
    cold = BlockSolver(QAOASolver(p=1, seed=1, shots=64, batch=batch), qubits=6, max_sweeps=2, seed=0).solve_many(big)
    assert all(r.info["energy_trace"][-1] <= r.info["energy_trace"][0] for r in warm + cold)


def test_read_answers_counts_are_generator_choice_counts():
    """The shots are drawn as Generator.choice(N, shots, p=P) draws them (sorted uniforms, inverse CDF)."""
    from qselect.solvers.qaoa.answer import read_answers

    rng = np.random.default_rng(7)
    probs = [QUBO.random(6, seed=s) for s in range(4)]
    E = np.stack([q.cost_vector() for q in probs])
    P = rng.random((4, 64)) ** 4
    P[1, :60] = 0  # mass on a few strings
    seeds = [3, 11, 12345, 2**40]
    out = read_answers(probs, P, E, E, np.ones(4), np.zeros(4), seeds, shots=500, top=1)
    for i, ans in enumerate(out):
        p = P[i] / P[i].sum()
        want = np.bincount(np.random.default_rng(seeds[i]).choice(64, 500, p=p), minlength=64)
        got = np.zeros(64, dtype=np.int64)
        idx = ans["samples"] @ (1 << np.arange(6))
        got[idx] = ans["counts"]
        assert np.array_equal(got, want)


def _same_answers(a, b):
    """Equal results but for timing and the batch size they were solved in."""
    assert np.array_equal(a.bits, b.bits) and a.energy == b.energy
    assert np.array_equal(a.samples, b.samples) and np.array_equal(a.counts, b.counts)
    skip = {"batch", "inner_time"}
    assert {k: v for k, v in a.info.items() if k not in skip} == {k: v for k, v in b.info.items() if k not in skip}


def test_an_executor_batches_each_workers_share_with_the_same_answers():
    from qselect.executors import ProcessExecutor

    small = [QUBO.random(7, seed=s) for s in range(5)]
    s = QAOASolver(p=1, seed=2, shots=64)
    here = s.solve_many(small)
    there = s.solve_many(small, executor=ProcessExecutor(2))
    # contiguous shares 3 + 2, each solved as one batch in its worker
    assert [r.info["batch"] for r in there] == [3, 3, 3, 2, 2]
    for a, b in zip(here, there):
        assert a.expectation == b.expectation and np.array_equal(a.angles, b.angles)
        _same_answers(a, b)
    # a worker's share of one problem is still a batch (of one): the same answers as in the whole batch
    three = s.solve_many(small[:3], executor=ProcessExecutor(2))
    assert [r.info["batch"] for r in three] == [2, 2, 1]
    for a, b in zip(here, three):
        assert a.expectation == b.expectation
        _same_answers(a, b)
    many = s.solve_many(small[:3], executor=ProcessExecutor(8))  # more workers than problems
    assert [r.info["batch"] for r in many] == [1, 1, 1] and [r.energy for r in many] == [r.energy for r in three]
    assert s.solve_many([small[0]])[0].info["batch"] == 1  # one problem alone is a batch too
    # block descents: every worker runs the lock-step descents of its problems, even of one
    big = [QUBO.random(16, seed=s) for s in range(3)]
    block = BlockSolver(QAOASolver(p=1, seed=1, shots=64), qubits=6, max_sweeps=2, seed=0)
    a, b = block.solve_many(big), block.solve_many(big, executor=ProcessExecutor(2))
    for x, y in zip(a, b):
        assert x.info["energy_trace"] == y.info["energy_trace"]
        _same_answers(x, y)
    # an executor of one worker batches in this process
    assert [r.info["batch"] for r in s.solve_many(small, executor=ProcessExecutor(1))] == [5] * 5


def test_bad_input_is_refused_before_any_worker_starts():
    from qselect.executors import ProcessExecutor

    for solver in (QAOASolver(p=1), BlockSolver(QAOASolver(p=1), qubits=4)):
        with pytest.raises(QSelectError, match="expects qselect problems"):
            solver.solve_many([QUBO.random(5, seed=0), "not a problem"], executor=ProcessExecutor(2))


def test_the_torch_engine_runs_its_batch_in_this_process():
    """Its sums depend on torch's thread count (pool workers run one), so a pool would change its answers."""
    from qselect.executors import ProcessExecutor

    probs = [QUBO.random(7, seed=s) for s in range(3)]
    s = QAOASolver(p=1, seed=1, shots=32, engine="torch", device="cpu")
    assert not s.fork_safe() and not BlockSolver(s, qubits=4).fork_safe()
    here, pool = s.solve_many(probs), s.solve_many(probs, executor=ProcessExecutor(2))
    assert [r.info["batch"] for r in pool] == [3, 3, 3]
    for a, b in zip(here, pool):
        assert a.expectation == b.expectation
        _same_answers(a, b)


def test_a_lone_problem_is_answered_as_in_a_batch_at_every_size():
    """Reductions over rows of 2^14 and more entries must not depend on how many rows there are."""
    probs = [QUBO.random(14, seed=s) for s in range(3)]
    s = QAOASolver(p=1, seed=0, shots=32, maxiter=5)
    together = s.solve_many(probs)
    alone = s.solve_many(probs[1:2])[0]
    assert alone.expectation == together[1].expectation
    _same_answers(alone, together[1])


def test_workers_share_the_batch_threads(monkeypatch):
    from qselect.solvers.qaoa import native

    s = QAOASolver(p=1)
    assert s.for_workers(2).threads == max(1, min(native._cpus() // 2, 8)) and s.threads is None
    monkeypatch.setattr(native, "_cpus", lambda: 32)  # a big host: 4 workers get 8 threads each, not 8 ÷ 4
    assert s.for_workers(4).threads == 8 and s.for_workers(16).threads == 2 and s.for_workers(1).threads == 8
    assert QAOASolver(threads=3).for_workers(4).threads == 3
    block = BlockSolver(s, qubits=6)
    assert block.for_workers(64).inner.threads == 1 and block.inner.threads is None
    exact = BlockSolver(QAOASolver(p=1, threads=1), qubits=6)
    assert exact.for_workers(2) is exact


def _batched_value_in_a_child(costs):
    return BatchedNumpyQAOA(costs, 1, threads=2).value_and_grad(np.full((len(costs), 2), 0.3), np.arange(len(costs)))


def test_a_forked_worker_gets_thread_pools_of_its_own():
    """A process forked after the batch's thread pool started must not wait on the parent's threads."""
    import multiprocessing as mp

    costs = _mixed_costs(12, 16, seed=4)  # enough work for the batch to be shared among threads
    f, g = _batched_value_in_a_child(costs)  # the parent's pool is running now
    with mp.get_context("fork").Pool(1) as pool:
        f2, g2 = pool.apply_async(_batched_value_in_a_child, (costs,)).get(timeout=120)
    assert np.array_equal(f, f2) and np.array_equal(g, g2)


def _answer_kernels(compiled: bool, monkeypatch):
    """The kernels module with its compiled answer kernels on (skipped without numba) or forced off (NumPy)."""
    from qselect.solvers.qaoa import kernels

    if compiled and not kernels.uses_row_kernel("x", 4):
        pytest.skip("numba not available")
    monkeypatch.setattr(kernels, "AVAILABLE", compiled)
    return kernels


@pytest.mark.parametrize("compiled", [True, False])
def test_answer_order_is_energy_then_counts_then_big_endian_value_with_and_without_ties(compiled, monkeypatch):
    """Ranking every row's candidates at once equals a three-key sort of each row (compiled and NumPy)."""
    kernels = _answer_kernels(compiled, monkeypatch)
    rng = np.random.default_rng(7)
    for ties in (False, True):
        sizes = [300, 0, 1, 57, 2]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        e = rng.normal(size=offsets[-1])
        if ties:
            e = np.round(e, 1)  # many equal energies: counts, then the key decide
        cnt = rng.integers(0, 4, size=e.size)
        keys = np.concatenate([rng.permutation(4096)[:m] for m in sizes])
        want = np.concatenate([a + np.lexsort((keys[a:b], -cnt[a:b], e[a:b]))
                               for a, b in zip(offsets[:-1], offsets[1:])])
        assert np.array_equal(kernels.order_rows(e, cnt, keys, offsets), want)


@pytest.mark.parametrize("compiled", [True, False])
def test_long_runs_of_equal_energies_rank_by_counts_then_key(compiled, monkeypatch):
    """A flat cost ties every candidate: the ranking is still lexsort's (counts, then key)."""
    kernels = _answer_kernels(compiled, monkeypatch)
    rng = np.random.default_rng(5)
    m = 5000
    e = np.zeros(m)
    e[::7] = 1.0  # two long runs
    cnt = rng.integers(0, 5, size=m)
    keys = rng.permutation(1 << 16)[:m]
    got = kernels.order_rows(e, cnt, keys, np.array([0, m], np.int64))
    assert np.array_equal(got, np.lexsort((keys, -cnt, e)))


def test_shot_draws_take_seeds_as_default_rng_does():
    """Integer seeds (cached or not) draw default_rng's uniforms, sorted; other seeds are refused as default_rng
    refuses."""
    from qselect.solvers.qaoa.answer import _sorted_uniforms

    for shots in (100, 20_000):  # cached, and too large to cache
        want = np.sort(np.random.default_rng(3).random(shots))
        assert np.array_equal(_sorted_uniforms(np.int64(3), shots), want)
        assert np.array_equal(_sorted_uniforms(3, shots), want)
        with pytest.raises(TypeError):
            _sorted_uniforms(2.7, shots)


@pytest.mark.parametrize("compiled", [True, False])
def test_cumulative_rows_are_cumsum_over_the_last_entry(compiled, monkeypatch):
    """Every row's cdf is np.cumsum's running sum divided by its last entry, bit for bit, compiled or not."""
    kernels = _answer_kernels(compiled, monkeypatch)
    rng = np.random.default_rng(4)
    P = rng.random((5, 300)) ** 6
    P[1, 100:] = 0.0
    P[2] = 0.0
    P[2, 0] = 1e-300
    want = np.cumsum(P, axis=1)
    want /= want[:, -1:]
    got = kernels.cumulative_rows(P)
    assert got.tobytes() == want.tobytes() and got[:, -1].tolist() == [1.0] * 5


@pytest.mark.parametrize("compiled", [True, False])
def test_shots_are_counted_as_searchsorted_and_bincount_count_them(compiled, monkeypatch):
    """Counting every row's draws at once equals searchsorted + bincount row by row, flagged strings included."""
    kernels = _answer_kernels(compiled, monkeypatch)
    rng = np.random.default_rng(3)
    B, N, shots = 6, 64, 500
    P = rng.random((B, N)) ** 4
    P[1, 10:] = 0.0  # a tail of impossible strings: cdf reaches 1 early
    P[2] = 0.0
    P[2, 5] = 1.0  # one certain string
    P /= P.sum(axis=1, keepdims=True)
    cdf = np.cumsum(P, axis=1)
    cdf /= cdf[:, -1:]
    U = rng.random((B, shots))
    U[0, :3] = [0.0, cdf[0, 4], np.nextafter(1.0, 0.0)]  # on a boundary: the next string (side="right")
    top = rng.random((B, N)) < 0.05
    want = [np.bincount(cdf[r].searchsorted(U[r], side="right"), minlength=N) for r in range(B)]
    for draws, presorted in ((U.copy(), False), (np.sort(U, axis=1), True)):  # sorted here, or by the caller
        cand, counts, offsets = kernels.offered_rows(cdf, draws, top, presorted=presorted)
        for r in range(B):
            c = np.flatnonzero((want[r] > 0) | top[r])
            assert np.array_equal(cand[offsets[r]:offsets[r + 1]], c)
            assert np.array_equal(counts[offsets[r]:offsets[r + 1]], want[r][c])
        assert counts.sum() == B * shots


def test_bit_rows_is_index_to_bits():
    from qselect.problems.bits import bit_rows, index_to_bits

    idx = np.array([0, 5, 31, 17, 8] * 5)
    assert np.array_equal(bit_rows(5)[idx], index_to_bits(idx, 5)) and bit_rows(5).dtype == np.uint8
    with pytest.raises(QSelectError, match="at most 16 bits"):
        bit_rows(17)


@pytest.mark.parametrize("mixer,k", [("x", None), ("xy", 3)])
def test_the_batch_control_is_the_single_uniform_baseline(mixer, k):
    from qselect.solvers.controls import uniform_baseline
    from qselect.solvers.qaoa.answer import read_answers

    n, B = 7, 3
    probs, E, C, sc, co = _answer_inputs(n, B, first_seed=50)
    P = np.random.default_rng(4).random((B, 1 << n))
    out = read_answers(probs, P, C, E, sc, co, [5, 6, 7], shots=50, top=4, mixer=mixer, k=k)
    for i, q in enumerate(probs):
        one = uniform_baseline(q, 50, seed=5 + i, mixer=mixer, k=k, costs=C[i], scale=sc[i], offset=co[i],
                               energies=E[i])
        assert out[i]["info"]["uniform_baseline"] == one


def test_shots_that_cannot_fit_are_refused_before_they_are_drawn(monkeypatch):
    """A shot count beyond memory is one ProblemTooLargeError line, not an out-of-memory kill."""
    from qselect.errors import ProblemTooLargeError
    from qselect.problems import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 1 << 30)  # 1 GiB available
    want = r"reading 100000000 shots of 1 problem\(s\) needs .* fewer shots"
    with pytest.raises(ProblemTooLargeError, match=want) as e:
        QAOASolver(p=1, shots=10**8, maxiter=2).solve(QUBO.random(5, seed=0))
    assert "\n" not in str(e.value)
    assert QAOASolver(p=1, shots=10**5, maxiter=2).solve(QUBO.random(5, seed=0)).counts.sum() == 10**5


def _same_outcome(a, b):
    assert np.array_equal(a.x, b.x) and np.array_equal(a.fun, b.fun)
    assert np.array_equal(a.evaluations, b.evaluations) and a.messages == b.messages


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("p", [1, 2, 3])
def test_engine_minimize_is_minimize_batch_bit_for_bit(dtype, p):
    from qselect.solvers.qaoa import kernels

    if not kernels.AVAILABLE:
        pytest.skip("the whole-row compiled L-BFGS needs numba")
    n, B = 6, 7
    costs = _mixed_costs(n, B, seed=p)
    costs[3] = 0.0  # a flat cost: zero gradient, stops at its start (status 2)
    x0 = np.random.default_rng(p).uniform(-1, 1, (B, 2 * p))
    x0[5, p:] = 40.0  # large angles: the rows' (cos β, sin β) come from libm as in rotation_pairs
    for threads in (1, 2, 3):
        eng = BatchedNumpyQAOA(costs, p, "x", None, dtype, threads=threads)
        assert eng._kernel
        seen = set()
        for kw in ({}, {"maxiter": 2}, {"ftol": 0.0, "max_backtracks": 0}):  # converged, iteration limit, line search
            ref = minimize_batch(eng.value_and_grad, x0, **kw)
            _same_outcome(eng.minimize(x0, **kw), ref)
            seen.update(m.split(":")[0] for m in ref.messages)
        assert seen == {"CONVERGENCE", "STOP", "ABNORMAL_TERMINATION_IN_LNSRCH"}
        assert "NORM_OF_PROJECTED_GRADIENT" in ref.messages[3] and ref.evaluations[3] == 1
        zero = eng.minimize(x0, maxiter=0)
        assert zero.messages == ["no optimisation (maxiter=0)"] * B and np.array_equal(zero.x, x0)
    with pytest.raises(QSelectError, match=rf"start angles of shape \(7, {2 * p}\)"):
        eng.minimize(x0[:3])


def test_engine_minimize_without_the_row_kernel_is_minimize_batch():
    n, B = 5, 4
    costs = _mixed_costs(n, B)
    x0 = np.random.default_rng(0).uniform(-1, 1, (B, 2))
    eng = BatchedNumpyQAOA(costs, 1, "xy", 2, np.complex128)
    _same_outcome(eng.minimize(x0), minimize_batch(eng.value_and_grad, x0))


def test_qaoa_lanes_split_the_threads_and_only_where_batches_release_the_gil():
    from qselect.solvers.qaoa import kernels

    s = QAOASolver(p=1, seed=3, threads=4)
    if not kernels.AVAILABLE:
        assert s.lanes() == [s]
        return
    lanes = s.lanes()
    assert [x.threads for x in lanes] == [2, 2] and lanes[0] is not lanes[1] and s.threads == 4
    assert all(x.seed == 3 and x.p == 1 for x in lanes)
    assert [x.threads for x in QAOASolver(threads=3).lanes()] == [1, 2]
    for one in (QAOASolver(threads=1), QAOASolver(threads=4, batch=False), QAOASolver(threads=4, mixer="xy", k=2),
                QAOASolver(threads=4, engine="torch")):
        assert one.lanes() == [one]


@pytest.mark.parametrize("threads", [1, 2])
def test_an_interrupt_stops_the_compiled_minimisation_after_the_rows_in_hand(monkeypatch, threads):
    import threading

    from qselect.solvers.qaoa import batched, kernels

    if not kernels.AVAILABLE:
        pytest.skip("the whole-row compiled L-BFGS needs numba")
    B = 60
    eng = BatchedNumpyQAOA(_mixed_costs(10, B), 2, "x", None, np.complex128, threads=threads)
    done = []
    main = threading.get_ident()

    def fake_call(*a, **k):
        fn, args = kernels.lbfgs_rows_call(*a, **k)

        def rows(*xs):
            if threading.get_ident() == main and done:
                raise KeyboardInterrupt  # Ctrl-C during the main thread's second chunk
            fn(*xs)
            done.extend(range(xs[-2], xs[-1]))

        return rows, args

    monkeypatch.setattr(batched, "lbfgs_rows_call", fake_call)
    with pytest.raises(KeyboardInterrupt):
        eng.minimize(np.zeros((B, 4)) + 0.1)
    assert 0 < len(done) <= B // 2  # the helper stopped taking rows as well


def test_block_descent_lanes_give_the_one_lane_answers(monkeypatch):
    big = [QUBO.random(14, seed=s) for s in range(5)]

    def solve(threads):
        return BlockSolver(QAOASolver(p=1, seed=1, shots=64, threads=threads), qubits=6, max_sweeps=3,
                           seed=0).solve_many(big)

    lanes_used = []
    real = BlockSolver._lanes

    def spy(self, live, out, lanes, bar):
        lanes_used.append((sorted(live), len(lanes)))
        return real(self, live, out, lanes, bar)

    monkeypatch.setattr(BlockSolver, "_lanes", spy)
    one, two = solve(1), solve(2)
    from qselect.solvers.qaoa import kernels

    assert lanes_used == ([([0, 1, 2, 3, 4], 2)] if kernels.AVAILABLE else [])
    for a, b in zip(one, two):
        assert a.info["energy_trace"] == b.info["energy_trace"]
        _same_answers(a, b)


def test_an_error_in_one_lane_stops_the_others_and_is_raised():
    class Lanes(QAOASolver):
        def lanes(self):
            return [self, self.set_params(seed=self.seed)]

    class Failing(Lanes):
        def solve_batch(self, problems, seeds=None, inits=None):
            if any(p.name == "bad" for p in problems):
                raise QSelectError("a block could not be solved")
            return super().solve_batch(problems, seeds, inits)

    big = [QUBO.random(12, seed=s) for s in range(4)]
    big[3].name = "bad"  # in the second lane
    with pytest.raises(QSelectError, match="could not be solved"):
        BlockSolver(Failing(p=1, seed=0, shots=32, threads=1), qubits=5, max_sweeps=2).solve_many(big)
    # a lane solver of this kind works, and a progress bar counts every problem once
    done = BlockSolver(Lanes(p=1, seed=0, shots=32, threads=1), qubits=5, max_sweeps=2).solve_many(
        big[:3], progress=True)
    assert len(done) == 3 and all(r is not None for r in done)


def test_a_cancel_scope_stops_the_compiled_minimisation():
    import threading

    from qselect.solvers.base import Cancelled, cancel_event, cancel_scope
    from qselect.solvers.qaoa import kernels

    if not kernels.AVAILABLE:
        pytest.skip("the whole-row compiled L-BFGS needs numba")
    eng = BatchedNumpyQAOA(_mixed_costs(6, 8), 1, "x", None, np.complex128, threads=2)
    x0 = np.zeros((8, 2)) + 0.1
    ev = threading.Event()
    assert cancel_event() is None
    with cancel_scope(ev):
        assert cancel_event() is ev
        ok = eng.minimize(x0)  # not set: the usual answer
        ev.set()
        with pytest.raises(Cancelled):
            eng.minimize(x0)
    assert cancel_event() is None
    _same_outcome(ok, minimize_batch(eng.value_and_grad, x0))
