"""Shortcuts on the solve path give the same answers as the general code they skip."""
import numpy as np
import pytest

from qselect.errors import QSelectError
from qselect.problems import QUBO
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
