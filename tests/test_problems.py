"""Every representation of a problem agrees with every other on random bitstrings."""
import numpy as np
import pennylane as qml
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qselect import QUBO, DiagonalCost, QSelectError
from qselect.errors import ProblemTooLargeError
from qselect.interop.dimod import from_bqm, to_bqm
from qselect.interop.pennylane import to_hamiltonian
from qselect.interop.qiskit import (
    from_quadratic_program,
    from_sparse_pauli_op,
    to_quadratic_program,
    to_sparse_pauli_op,
)
from qselect.problems import bits_to_index, index_to_bits, memory

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def qubos(draw, max_n=6):
    n = draw(st.integers(1, max_n))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    symmetric = draw(st.booleans())
    Q = rng.normal(size=(n, n))
    if symmetric:
        Q = (Q + Q.T) / 2
    lin = rng.normal(size=n) if draw(st.booleans()) else None
    return QUBO(Q, lin, float(rng.normal())), Q, lin, rng


def direct_energy(Q, lin, offset, x):
    x = x.astype(float)
    e = np.einsum("mi,ij,mj->m", x, Q, x) + offset
    return e + (x @ lin if lin is not None else 0.0)


def all_bits(n):
    return index_to_bits(np.arange(2**n), n)


@SETTINGS
@given(qubos())
def test_energy_matches_definition_and_cost_vector(case):
    q, Q, lin, _ = case
    x = all_bits(q.n)
    e = q.energy(x)
    np.testing.assert_allclose(e, direct_energy(Q, lin, q.offset, x), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(q.cost_vector(), e, rtol=1e-10, atol=1e-10)
    assert q.energy(x[3 % len(x)]) == pytest.approx(e[3 % len(x)])


@SETTINGS
@given(qubos())
def test_ising_agrees_and_round_trips(case):
    q, *_ = case
    h, J, c = q.to_ising()
    z = 1 - 2 * all_bits(q.n).astype(float)
    e_ising = np.einsum("mi,ij,mj->m", z, J, z) + z @ h + c
    np.testing.assert_allclose(e_ising, q.cost_vector(), rtol=1e-10, atol=1e-10)
    back = QUBO.from_ising(h, J, c)
    np.testing.assert_allclose(back.Q, q.Q, rtol=1e-12, atol=1e-12)
    assert back.offset == pytest.approx(q.offset, abs=1e-12)


@SETTINGS
@given(qubos())
def test_sparse_pauli_op_diagonal_is_cost_vector(case):
    q, *_ = case
    op = to_sparse_pauli_op(q)
    diag = np.real(op.to_matrix(sparse=True).diagonal())  # qiskit index = Σ bit_i 2^i
    np.testing.assert_allclose(diag, q.cost_vector(), rtol=1e-10, atol=1e-10)
    back = from_sparse_pauli_op(op)
    np.testing.assert_allclose(back.cost_vector(), q.cost_vector(), rtol=1e-10, atol=1e-10)


@SETTINGS
@given(qubos())
def test_bqm_agrees_and_round_trips(case):
    q, *_ = case
    bqm = to_bqm(q)
    x = all_bits(q.n)
    np.testing.assert_allclose(bqm.energies((x, list(q.labels))), q.cost_vector(), rtol=1e-10, atol=1e-10)
    back = from_bqm(bqm)
    np.testing.assert_array_equal(back.Q, q.Q)
    assert back.offset == q.offset


@SETTINGS
@given(qubos(max_n=5))
def test_quadratic_program_agrees_and_round_trips(case):
    q, *_ = case
    qp = to_quadratic_program(q)
    for x in all_bits(q.n):
        assert qp.objective.evaluate(x.astype(float)) == pytest.approx(q.energy(x), abs=1e-10)
    back = from_quadratic_program(qp)
    np.testing.assert_array_equal(back.Q, q.Q)
    assert back.offset == q.offset


@SETTINGS
@given(qubos(max_n=5))
def test_pennylane_hamiltonian_spectrum(case):
    q, *_ = case
    n = q.n
    H = to_hamiltonian(q)
    diag = np.real(np.diag(qml.matrix(H, wire_order=list(range(n)))))
    # PennyLane puts wire 0 first (most significant): reverse bits to compare.
    x = all_bits(n)
    idx_pl = x[:, ::-1] @ (1 << np.arange(n))
    np.testing.assert_allclose(diag[idx_pl], q.energy(x), rtol=1e-10, atol=1e-10)


@SETTINGS
@given(st.integers(1, 7), st.integers(0, 2**31 - 1))
def test_diagonal_walsh_round_trip(n, seed):
    c = np.random.default_rng(seed).normal(size=2**n)
    d = DiagonalCost(c)
    terms, const = d.z_terms()
    z = 1 - 2 * all_bits(n).astype(float)
    e = np.full(2**n, const)
    for qubits, w in terms.items():
        e += w * np.prod(z[:, list(qubits)], axis=1)
    np.testing.assert_allclose(e, c, rtol=1e-10, atol=1e-10)
    diag = np.real(to_sparse_pauli_op(d).to_matrix(sparse=True).diagonal())
    np.testing.assert_allclose(diag, c, rtol=1e-10, atol=1e-10)
    # the fast overrides agree with the generic definitions
    assert d.scale() == max(abs(v) for v in terms.values())
    assert d.z_terms(max_order=2)[0] == {q: v for q, v in terms.items() if len(q) <= 2}
    assert d.order() == max(len(q) for q in terms)


@SETTINGS
@given(qubos())
def test_qubo_through_diagonal_is_exact(case):
    q, *_ = case
    d = q.to_diagonal()
    assert d.order() <= 2
    back = d.to_qubo()
    np.testing.assert_allclose(back.cost_vector(), q.cost_vector(), rtol=1e-10, atol=1e-10)


def test_diagonal_to_qubo_is_least_squares_best():
    rng = np.random.default_rng(1)
    n = 5
    d = DiagonalCost(rng.normal(size=2**n))
    approx = d.to_qubo().cost_vector()
    err = np.sum((approx - d.cost_vector()) ** 2)
    # any other QUBO (perturbations of the truncation) fits worse
    for s in range(5):
        other = QUBO.random(n, seed=s).scaled(0.05)
        alt = approx + other.cost_vector()
        assert np.sum((alt - d.cost_vector()) ** 2) >= err - 1e-9


@SETTINGS
@given(qubos(), st.data())
def test_fix_folds_fixed_bits(case, data):
    q, _, _, rng = case
    n = q.n
    fixed = data.draw(st.sets(st.integers(0, n - 1), max_size=n - 1)) if n > 1 else set()
    assignment = {i: int(rng.integers(0, 2)) for i in fixed}
    sub = q.fix(assignment)
    free = [i for i in range(n) if i not in assignment]
    assert sub.n == len(free)
    d = q.to_diagonal().fix(assignment) if free else None
    for y in all_bits(len(free)):
        x = np.zeros(n, np.uint8)
        x[free] = y
        for i, v in assignment.items():
            x[i] = v
        assert sub.energy(y) == pytest.approx(q.energy(x), abs=1e-9)
        assert d.energy(y) == pytest.approx(q.energy(x), abs=1e-9)


def test_fix_updates_cardinality_hint():
    q = QUBO.random(5, seed=0, k=3)
    assert q.fix({0: 1, 1: 0}).k == 2
    assert q.fix({0: 1, 1: 1, 2: 1, 3: 1}).k is None  # infeasible: hint dropped


def test_index_bits_round_trip_little_endian():
    assert index_to_bits(6, 4).tolist() == [0, 1, 1, 0]
    assert bits_to_index([0, 1, 1, 0]) == 6
    idx = np.arange(64)
    np.testing.assert_array_equal(bits_to_index(index_to_bits(idx, 6)), idx)


def test_cardinality_penalty_expansion():
    q = QUBO.random(5, seed=3)
    p = q.with_cardinality_penalty(2, 1.7)
    x = all_bits(5)
    np.testing.assert_allclose(p.energy(x), q.energy(x) + 1.7 * (x.sum(1) - 2) ** 2)


@pytest.mark.parametrize("bad, match", [
    (lambda: QUBO([[1.0, np.nan], [0, 1]]), "NaN or inf"),
    (lambda: QUBO([[1.0, np.inf], [0, 1]]), "NaN or inf"),
    (lambda: QUBO(np.ones((2, 3))), "square"),
    (lambda: QUBO(np.ones(3)), "2-dimensional"),
    (lambda: QUBO(np.eye(2), linear=[1, 2, 3]), "length 2"),
    (lambda: QUBO(np.eye(2), offset=np.nan), "offset must be finite"),
    (lambda: QUBO(np.eye(2), labels=["a"]), "labels"),
    (lambda: QUBO(np.eye(2), labels=["a", "a"]), "unique"),
    (lambda: QUBO(np.eye(2), k=3), "cardinality"),
    (lambda: QUBO([["a", "b"], ["c", "d"]]), "numeric"),
    (lambda: DiagonalCost(np.ones(6)), "length 2\\^n"),
    (lambda: DiagonalCost([0.0, np.nan]), "NaN or inf"),
    (lambda: QUBO.from_ising(np.zeros(2), np.zeros((3, 3))), "shape"),
    (lambda: QUBO(np.eye(2)).energy([0, 1, 1]), "shape"),
    (lambda: QUBO(np.eye(2)).energy([0, 2]), "only 0 and 1"),
    (lambda: QUBO(np.eye(2)).fix({5: 1}), "cannot fix"),
    (lambda: QUBO(np.eye(2)).fix({0: 3}), "fixed to 0 or 1"),
    (lambda: QUBO(np.eye(2)).fix({0.5: 1}), "cannot fix variable 0.5"),
    (lambda: QUBO(np.eye(2)).fix([0, 1]), "takes a dict"),
    (lambda: QUBO(np.eye(2), k="1"), "cardinality k must be an integer"),
    (lambda: QUBO(np.eye(2), offset=None), "offset must be numeric"),
    (lambda: QUBO(np.eye(2), offset="x"), "offset must be numeric"),
    (lambda: QUBO(np.eye(2) * 1j), "must be real"),
    (lambda: QUBO([[1, 2], [3]]), "numeric"),
    (lambda: QUBO.from_z_terms({(0, 5): 1.0}, 0.0, 3), "outside the 3 qubits"),
    (lambda: QUBO(np.eye(2)).cost_vector(np.int32), "floating dtype"),
    (lambda: DiagonalCost(np.ones(4)).cost_vector(int), "floating dtype"),
    (lambda: DiagonalCost(np.ones(4), labels=["a", "a"]), "unique"),
    (lambda: QUBO(np.eye(2)).scaled(np.nan), "scale factor must be finite"),
    (lambda: DiagonalCost(np.ones(4)).scaled(np.inf), "scale factor must be finite"),
    (lambda: QUBO(np.eye(2)).with_cardinality_penalty(1, -1.0), "strength must be ≥ 0"),
    (lambda: QUBO.random(-1), "n must be an integer ≥ 0"),
])
def test_validation_messages(bad, match):
    with pytest.raises(QSelectError, match=match):
        bad()


def test_higher_order_terms_refused_by_qubo():
    with pytest.raises(QSelectError, match="DiagonalCost"):
        QUBO.from_z_terms({(0, 1, 2): 1.0}, 0.0, 3)


def test_non_diagonal_operator_refused():
    from qiskit.quantum_info import SparsePauliOp

    with pytest.raises(QSelectError, match="non-diagonal"):
        from_sparse_pauli_op(SparsePauliOp(["XZ"]))


def test_memory_guard_refuses_before_allocating(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 64 * 2**20)  # 64 MiB
    q = QUBO(np.zeros((26, 26)))  # 2^26 float64 = 512 MiB
    with pytest.raises(ProblemTooLargeError, match=r"at most \d+ qubits fit"):
        q.cost_vector()
    fit = memory.max_qubits(8, 1.5)
    assert QUBO(np.zeros((fit, fit))).cost_vector().size == 2**fit


def test_diagonal_size_limit():
    with pytest.raises(QSelectError, match="too large"):
        DiagonalCost(np.broadcast_to(0.0, (2**31,)))  # a view: nothing is allocated


def test_scores_survive_fix_scale_copy_and_drive_the_magnitude_start():
    """Declared fields travel with every transformation: with scores 0..5 and bit 0 fixed on, the
    magnitude mask keeps the two highest-scoring free bits (not the best single-bit gains)."""
    from qselect.formulate.cardinality import add_cardinality
    from qselect.formulate.decompose import BlockSolver
    from qselect.solvers import MagnitudeSolver

    base = QUBO.random(6, seed=3).with_scores(np.arange(6.0))
    prob = add_cardinality(base, 3)
    assert prob.penalty is not None and np.array_equal(prob.scores, np.arange(6.0))
    sub = prob.fix({0: 1})
    assert sub.k == 2 and np.array_equal(sub.scores, [1.0, 2, 3, 4, 5]) and sub.penalty == prob.penalty
    assert list(MagnitudeSolver().solve(sub).bits) == [0, 0, 0, 1, 1]
    for q in (sub.scaled(2.0), sub.copy(offset=1.0), sub.to_diagonal(), sub.to_diagonal().fix({0: 0})):
        assert q.scores is not None and q.penalty == prob.penalty
    # inside block decomposition, the blocks' magnitude starts rank by the same scores
    res = BlockSolver(MagnitudeSolver(), qubits=3, max_sweeps=1, seed=0).solve(prob)
    assert list(res.bits) == [0, 0, 0, 1, 1, 1]


def test_local_moves_agree_across_representations():
    q = QUBO.random(7, seed=5)
    d = q.to_diagonal()
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.integers(0, 2, 7).astype(np.uint8)
        on, off = np.flatnonzero(x), np.flatnonzero(x == 0)
        generic = super(QUBO, q)
        for p in (q, d):
            assert np.allclose(p.flip_deltas(x), generic.flip_deltas(x))
            assert np.allclose(p.swap_deltas(x, on, off), generic.swap_deltas(x, on, off))
    assert q.lower_bound() <= d.cost_vector().min() + 1e-9
    assert np.isclose(q.max_flip_change(), super(QUBO, q).max_flip_change())


def test_z_constant_is_the_z_polynomial_constant():
    from qselect.problems import QUBO, DiagonalCost

    q = QUBO.random(7, seed=3)
    d = DiagonalCost(q.cost_vector())
    for prob in (q, d, q.fix({0: 1, 3: 0})):
        assert prob.z_constant() == pytest.approx(prob.z_terms()[1], abs=1e-12)


@pytest.mark.parametrize("n", [0, 1, 2, 6, 7, 13, 16, 17])
def test_cost_vector_tables_agree_with_the_energies_on_both_sides_of_the_table_limit(n):
    """Block-sized vectors (n ≤ 16) come from half-size tables, larger ones by doubling: both are
    the energies of every string, in float64 and float32."""
    from qselect.problems.bits import BIT_TABLE_BITS

    q = QUBO.random(n, seed=n) if n else QUBO(np.zeros((0, 0)), offset=0.25)
    idx = np.arange(1 << n) if n <= 13 else np.random.default_rng(n).integers(0, 1 << n, 4000)
    bits = index_to_bits(idx, n)
    e = q.energy(bits) if n else np.array([q.energy(np.zeros(0, np.uint8))])
    c = q.cost_vector()
    assert c.shape == (1 << n,) and c.dtype == np.float64
    np.testing.assert_allclose(c[idx], e, rtol=0, atol=1e-12 * max(1.0, np.abs(e).max()))
    np.testing.assert_allclose(q.cost_vector(np.float32)[idx], e, rtol=1e-6, atol=1e-6 * np.abs(e).max())
    assert (n <= BIT_TABLE_BITS) == (n < 17)


def test_index_to_bits_table_path_equals_the_shifts():
    from qselect.problems.bits import BIT_TABLE_BITS

    rng = np.random.default_rng(0)
    for n in (0, 1, 3, 11, BIT_TABLE_BITS, BIT_TABLE_BITS + 1):
        idx = rng.integers(-5, (1 << n) + 5, 200)
        ref = ((idx[:, None] >> np.arange(n)) & 1).astype(np.uint8)
        out = index_to_bits(idx, n)
        assert out.dtype == np.uint8 and out.flags.writeable and np.array_equal(out, ref)
        assert np.array_equal(index_to_bits(idx[:3], n), ref[:3])  # short inputs: the shifts themselves


def test_available_memory_is_read_again_after_its_short_lifetime(monkeypatch):
    import qselect.problems.memory as memory

    reads = iter([10 * 2**30, 3 * 2**30])
    monkeypatch.setattr(memory, "_read_available", lambda: next(reads))
    monkeypatch.setattr(memory, "_reading", (-1.0, 0))
    clock = [100.0]
    monkeypatch.setattr(memory.time, "monotonic", lambda: clock[0])
    assert memory.available_bytes() == 10 * 2**30
    clock[0] += 0.05
    assert memory.available_bytes() == 10 * 2**30  # reused within the lifetime
    clock[0] += memory._READING_TTL
    assert memory.available_bytes() == 3 * 2**30


def test_fixing_bits_carries_the_scores_of_the_free_ones():
    q = QUBO.random(6, seed=2).with_scores(np.arange(6.0))
    sub = q.fix({0: 1, 3: 0})
    np.testing.assert_array_equal(sub.scores, [1.0, 2.0, 4.0, 5.0])
    x = np.array([1, 0, 1, 0, 1, 1], dtype=np.uint8)
    assert abs(sub.energy(x[[1, 2, 4, 5]]) - q.energy(x)) < 1e-12


def _fold_and_table(q, free, x, dtype):
    from qselect.problems import kernels

    lin, quad = q._lin, q._quad
    on = np.flatnonzero(x * (~np.isin(np.arange(q.n), free)))
    with np.errstate(over="ignore", invalid="ignore"):
        return kernels.qubo_fold(lin, quad, quad + quad.T, free, on), kernels.qubo_table(lin, quad, q.offset, dtype)


@pytest.mark.skipif(not __import__("qselect.problems.kernels", fromlist=["AVAILABLE"]).AVAILABLE,
                    reason="numba is not installed")
def test_compiled_qubo_folds_and_tables_are_the_numpy_fallbacks_bit_for_bit(monkeypatch):
    """Folds and energy tables sum in one documented order: compiled and NumPy agree to the bit (−0.0, huge and
    tiny coefficients, empty blocks and surroundings, float32 tables), and the tables are the energies."""
    from qselect.problems import kernels
    from qselect.problems.bits import bit_table

    rng = np.random.default_rng(11)
    cases = []
    for t in range(300):
        n = int(rng.integers(1, 15))
        Q = rng.normal(size=(n, n)) * [1.0, 1e-300, 1e300, 1e-8][t % 4]
        if t % 5 == 0:
            Q[rng.random((n, n)) < 0.5] = -0.0
        q = QUBO(Q, offset=float(rng.normal()))
        free = np.sort(rng.permutation(n)[:int(rng.integers(0, n + 1))]).astype(np.int64)
        cases.append((q, free, (rng.random(n) < 0.5).astype(np.uint8), [np.float64, np.float32][t % 2]))
    for n in (17, 18):  # beyond the float64 block tables: summed in float32 (each coupling rounded once)
        q = QUBO(rng.normal(size=(n, n)), offset=0.25)
        cases.append((q, np.arange(3, dtype=np.int64), np.ones(n, np.uint8), np.float32))
    compiled = [_fold_and_table(*c) for c in cases]
    monkeypatch.setattr(kernels, "_compiled", lambda: None)
    for (q, free, x, dtype), ((d1, l1, q1, f1), t1) in zip(cases, compiled):
        (d2, l2, q2, f2), t2 = _fold_and_table(q, free, x, dtype)
        assert np.float64(d1).tobytes() == np.float64(d2).tobytes() and f1 == f2
        assert l1.tobytes() == l2.tobytes() and q1.tobytes() == q2.tobytes() and t1.tobytes() == t2.tobytes()
        if dtype is np.float64 and np.abs(q.Q).max() < 1e100:
            want = q.energy(bit_table(q.n))
            assert np.allclose(t1, want, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(want).max()))


def test_fix_outside_folds_to_the_same_energies_with_or_without_numba(monkeypatch):
    """A block's energies are the full problem's with the outside bits fixed, through either fold."""
    from qselect.problems import kernels
    from qselect.problems.bits import bit_table

    rng = np.random.default_rng(5)
    q = QUBO(rng.normal(size=(20, 20)), offset=0.5, k=9)
    x = np.zeros(20, np.uint8)
    x[rng.permutation(20)[:9]] = 1
    free = np.array([3, 7, 8, 15, 19])
    got = [q.fix_outside(free, x)]
    monkeypatch.setattr(kernels, "_compiled", lambda: None)
    got.append(q.fix_outside(free, x))
    for sub in got:
        for y in bit_table(5):
            full = x.copy()
            full[free] = y
            assert sub.energy(y) == pytest.approx(q.energy(full), abs=1e-12)
        assert sub.k == 9 - int(x[np.setdiff1d(np.arange(20), free)].sum())
    assert got[0].cost_vector().tobytes() == got[1].cost_vector().tobytes()
    with pytest.raises(QSelectError, match="only 0 and 1"):
        q.fix_outside(free, np.full(20, 2, np.uint8))


@pytest.mark.skipif(not __import__("qselect.problems.kernels", fromlist=["AVAILABLE"]).AVAILABLE,
                    reason="numba is not installed")
def test_ising_fields_scale_and_constant_are_the_same_bits_compiled_or_not(monkeypatch):
    """h, the scale and the Ising constant sum in one order: compiled and NumPy agree to the bit, and ``scale()``
    / ``z_constant()`` are exactly what ``to_ising`` / ``z_terms`` give."""
    from qselect.problems import kernels
    from qselect.problems.base import Problem

    rng = np.random.default_rng(2)
    qubos = [QUBO(rng.normal(size=(n, n)) * [1.0, 1e-300, 1e300, 1e-8][n % 4], offset=float(rng.normal()))
             for n in range(0, 15)] + [QUBO(np.zeros((3, 3))), QUBO(-0.0 * np.ones((4, 4)))]

    def numbers(q):
        h, J, c = q.to_ising()
        return h.tobytes(), J.tobytes(), np.float64(c).tobytes(), np.float64(q.scale()).tobytes(), q.z_constant()

    compiled = [numbers(q) for q in qubos]
    for q, got in zip(qubos, compiled):
        assert q.scale() == Problem.scale(q) and q.z_constant() == q.z_terms()[1]
    monkeypatch.setattr(kernels, "_compiled", lambda: None)
    assert [numbers(q) for q in qubos] == compiled


def test_a_numba_that_fails_to_load_leaves_qubo_folds_and_tables_to_numpy(unloadable_kernels):
    """A broken numba warns once and the same numbers come from the NumPy fallbacks."""
    from qselect.problems import kernels

    q = QUBO(np.random.default_rng(3).normal(size=(9, 9)), offset=1.5)
    want = q.cost_vector().tobytes(), q.fix_outside([1, 4], np.ones(9, np.uint8)).cost_vector().tobytes()
    unloadable_kernels(kernels)
    with pytest.warns(RuntimeWarning, match="run in NumPy"):
        got = q.cost_vector().tobytes()
    assert (got, q.fix_outside([1, 4], np.ones(9, np.uint8)).cost_vector().tobytes()) == want


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble])
def test_cost_vectors_in_other_float_dtypes_are_built_in_numpy(dtype):
    """float16 and long double tables (which numba does not compile) still come out, at any size."""
    for n in (3, 17):
        q = QUBO.random(n, seed=n)
        c = q.cost_vector(dtype)
        assert c.dtype == np.dtype(dtype) and c.shape == (1 << n,)
        want = q.cost_vector()
        tol = 1e-2 if dtype is np.float16 else 1e-12
        assert np.allclose(c.astype(np.float64), want, rtol=tol, atol=tol * np.abs(want).max())
