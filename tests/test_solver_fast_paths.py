"""Shortcuts on the solve path give the same answers as the general code they skip."""
import numpy as np
import pytest

from qselect.errors import QSelectError
from qselect.problems import QUBO, DiagonalCost
from qselect.problems.gram import DENSE_FIX_BITS, GramQUBO
from qselect.solvers.base import summarise_samples
from qselect.solvers.exact import ExactSolver
from qselect.solvers.qaoa import QAOASolver


def _qubo(n=9, seed=0, k=None):
    rng = np.random.default_rng(seed)
    return QUBO(rng.normal(size=(n, n)), rng.normal(size=n), offset=0.7, labels=[f"v{i}" for i in range(n)], k=k)


def test_fix_equals_constructor_built_qubo():
    q = _qubo(k=4)
    assignment = {0: 1, 3: 0, 7: 1, 8: 1}
    sub = q.fix(assignment)
    free = [i for i in range(q.n) if i not in assignment]
    # independent reference: every free assignment's energy against the full problem's
    for idx in range(2 ** len(free)):
        x = np.zeros(q.n, dtype=np.uint8)
        for i, v in assignment.items():
            x[i] = v
        y = (idx >> np.arange(len(free))) & 1
        x[free] = y
        assert sub.energy(y) == pytest.approx(q.energy(x), abs=1e-12)
    assert sub.labels == tuple(q.labels[i] for i in free)
    assert sub.k == 1 and sub.n == len(free)
    np.testing.assert_array_equal(sub.quadratic, np.triu(sub.quadratic, 1))  # canonical: strictly upper
    rebuilt = QUBO(sub.Q, offset=sub.offset, labels=sub.labels, k=sub.k)
    np.testing.assert_array_equal(rebuilt.linear, sub.linear)
    np.testing.assert_array_equal(rebuilt.quadratic, sub.quadratic)


@pytest.mark.parametrize("bad", [{0: 2}, {-1: 0}, {9: 1}, {1.5: 0}, {"a": 1}])
def test_fix_still_refuses_bad_assignments(bad):
    with pytest.raises(QSelectError):
        _qubo().fix(bad)


def test_fix_accepts_numpy_and_float_values_like_before():
    q = _qubo()
    a = q.fix({np.int64(2): np.uint8(1), 4: 0.0})
    b = q.fix({2: 1, 4: 0})
    assert a.offset == b.offset
    np.testing.assert_array_equal(a.linear, b.linear)


def _gram(n=40, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(3 * n, n))
    G = A.T @ A
    w = rng.normal(size=n)
    return GramQUBO(G, w, -2 * w * (G @ w), float(w @ G @ w), penalty=0.7, k=n // 2)


def _same_problem(a, b):
    """Two problems built by fix and fix_outside: the same type and the very same numbers."""
    assert type(a) is type(b) and a.n == b.n and a.k == b.k and a.labels == b.labels
    if isinstance(a, QUBO):
        np.testing.assert_array_equal(a.linear, b.linear)
        np.testing.assert_array_equal(a.quadratic, b.quadratic)
        assert a.offset == b.offset
    np.testing.assert_array_equal(a.cost_vector() if a.n <= 12 else a.energy(np.eye(a.n)),
                                  b.cost_vector() if b.n <= 12 else b.energy(np.eye(b.n)))
    if a.scores is not None or b.scores is not None:
        np.testing.assert_array_equal(a.scores, b.scores)


@pytest.mark.parametrize("make, nfree", [(lambda: _qubo(n=12, k=5), 7), (lambda: _gram(), 9),
                                         (lambda: _gram(n=DENSE_FIX_BITS + 20), DENSE_FIX_BITS + 4),
                                         (lambda: DiagonalCost(np.random.default_rng(2).normal(size=2**8), k=3), 5)])
def test_fix_outside_is_fix_of_every_other_bit(make, nfree):
    """The descent's array form of fix: the same problem as fixing the complement from a dict, any order of free."""
    prob = make()
    rng = np.random.default_rng(1)
    prob.scores = rng.uniform(size=prob.n)
    for _ in range(3):
        x = rng.integers(0, 2, prob.n).astype(np.uint8)
        free = rng.choice(prob.n, nfree, replace=False)  # unsorted
        rest = np.setdiff1d(np.arange(prob.n), free)
        want = prob.fix(dict(zip(rest.tolist(), x[rest].tolist())))
        _same_problem(prob.fix_outside(free, x), want)
        flipped = x.copy()
        flipped[free] ^= 1  # the free bits' values in x are ignored
        _same_problem(prob.fix_outside(free.tolist(), flipped.astype(bool)), want)


@pytest.mark.parametrize("free, x, match", [
    ([0, 0, 3], np.zeros(9, int), "distinct"),
    ([1, 9], np.zeros(9, int), r"\[0, 9\)"),
    ([-1, 2], np.zeros(9, int), r"\[0, 9\)"),
    ([0.5, 2], np.zeros(9, int), "integer positions"),
    ([[0, 1]], np.zeros(9, int), "1-D"),
    ([0, 1], np.zeros(8, int), r"one assignment of shape \(9,\)"),
    ([0, 1], [[0, 1], [1]], "ragged"),
    (np.array([2**63 + 1], np.uint64), np.zeros(9, int), "9223372036854775809"),
    ([0, 1], np.full(9, 2), "0 and 1"),
    ([0, 1], np.zeros((2, 9), int), "one assignment"),
])
def test_fix_outside_refuses_bad_blocks_in_one_line(free, x, match):
    for prob in (_qubo(), DiagonalCost(np.arange(2.0**9))):
        with pytest.raises(QSelectError, match=match) as err:
            prob.fix_outside(free, x)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("free, x, match", [
    ([3, 3], np.zeros(9, np.uint8), "distinct"),
    ([1, 9], np.zeros(9, np.uint8), r"\[0, 9\)"),
    ([-1, 2], np.zeros(9, np.uint8), r"\[0, 9\)"),
    ([0, 1], np.full(9, 2, np.uint8), "0 and 1"),
])
def test_fix_outside_refuses_bad_blocks_of_a_descents_own_arrays(free, x, match):
    """int64 positions and uint8 bits (what a block descent passes) are checked in one compiled call: the
    same refusals, and a good block the same problem as through the NumPy checks."""
    for prob in (_qubo(), DiagonalCost(np.arange(2.0**9))):
        with pytest.raises(QSelectError, match=match) as err:
            prob.fix_outside(np.array(free, np.int64), x)
        assert "\n" not in str(err.value)
        x_ok = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1], np.uint8)
        _same_problem(prob.fix_outside(np.array([7, 2, 4], np.int64), x_ok), prob.fix_outside([2, 4, 7], x_ok.tolist()))


def test_bits_check_refuses_out_of_range_integers_of_every_kind():
    from qselect.problems.bits import as_bits

    for bad in (np.array([0, 2, 1], np.uint8), np.array([0, -1, 1]), np.array([0, 1, 256], np.int16), [0, 0.5, 1]):
        with pytest.raises(QSelectError, match="only 0 and 1"):
            as_bits(bad, 3)
    for good in (np.array([0, 1, 1], np.uint64), np.array([1, 0, 1], np.int8), [1.0, 0.0, 1.0], [True, False, True]):
        out = as_bits(good, 3)
        assert out.dtype == np.uint8 and set(out.tolist()) <= {0, 1}


def test_qubo_scale_matches_the_z_polynomial():
    for seed in range(3):
        q = _qubo(seed=seed)
        terms, _ = q.z_terms()
        assert q.scale() == max(abs(v) for v in terms.values())
    assert QUBO(np.zeros((3, 3))).scale() == 1.0


def test_summarise_distinct_equals_general_path():
    q = _qubo(n=6)
    rng = np.random.default_rng(3)
    idx = rng.permutation(64)[:40]
    bits = ((idx[:, None] >> np.arange(6)) & 1).astype(np.uint8)
    counts = rng.integers(0, 4, size=40)
    s1, e1, c1 = summarise_samples(q, bits, counts)
    s2, e2, c2 = summarise_samples(q, bits, counts, distinct=True)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(e1, e2)
    np.testing.assert_array_equal(c1, c2)
    assert np.all(np.diff(e2) >= 0)


def test_get_params_cached_per_class_still_builds_equal_solvers():
    a = QAOASolver(p=2, seed=5, shots=64)
    b = a.set_params(seed=6)
    assert b.get_params() == {**a.get_params(), "seed": 6}
    assert ExactSolver().set_params().get_params() == ExactSolver().get_params()
    with pytest.raises(QSelectError):
        a.set_params(nope=1)


def test_block_answer_takes_any_sequence_of_sample_energies():
    """An inner solver may report samples and energies as lists: the descent reads them as before."""
    from qselect.formulate.decompose import BlockSolver
    from qselect.solvers.base import Solver, make_result

    class ListSolver(Solver):
        name = "lists"

        def _solve(self, p):
            x = np.zeros(p.n, np.uint8)
            return make_result(p, x, self.name, samples=[x.tolist()], energies=[float(p.energy(x))])

    q = QUBO.random(10, seed=1)
    res = BlockSolver(ListSolver(), qubits=4, max_sweeps=2, seed=0).solve(q)
    assert res.energy == pytest.approx(float(q.energy(res.bits)))
