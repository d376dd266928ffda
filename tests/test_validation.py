"""Bad values at the API boundary end in one QSelectError naming the argument;
legitimate extremes (0-variable problems, sparsity 0) give the right answer."""
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from qselect.errors import QSelectError
from qselect.interop.qiskit import from_quadratic_program, to_quadratic_program
from qselect.problems import QUBO, DiagonalCost
from qselect.solvers import (
    ExactSolver,
    GreedySolver,
    MagnitudeSolver,
    RandomSolver,
    get_solver,
)
from qselect.validation import (
    check_finite_array,
    check_int,
    check_keeps_some,
    check_labels,
    check_seed,
    check_sparsity,
    max_sparsity_keeping_one,
)

ALL_SOLVERS = ["exact", "sa", "tabu", "greedy", "magnitude", "random", "qaoa"]


# ---- 0-variable problems are legitimate for every solver -------------------
@pytest.mark.parametrize("name", ALL_SOLVERS)
def test_zero_variable_qubo_gives_empty_answer_and_offset(name):
    q = QUBO(np.zeros((0, 0)), offset=1.5)
    r = get_solver(name).solve(q)
    assert r.bits.shape == (0,) and r.energy == 1.5 and r.kept == 0 and r.kept_fraction == 0.0


def test_zero_variable_qubo_with_k_zero():
    r = GreedySolver().solve(QUBO(np.zeros((0, 0)), offset=-2.0, k=0))
    assert r.bits.shape == (0,) and r.energy == -2.0


# ---- non-finite energies are refused, never returned -----------------------
def test_overflowing_qubo_is_refused_not_nan():
    # both triangles add to 2e308 = inf: the canonical form cannot hold it
    with pytest.raises(QSelectError, match="overflow"):
        QUBO([[0, 1e308], [1e308, 0]])


def test_solver_refuses_infinite_best_energy():
    # each coefficient finite, their sum -inf: the minimum itself overflows
    q = QUBO(np.diag([-1e308, -1e308]))
    for solver in (ExactSolver(), GreedySolver(), MagnitudeSolver()):
        with pytest.raises(QSelectError, match="overflow"):
            solver.solve(q)


def test_finite_optimum_next_to_overflowing_energies_is_fine():
    q = QUBO(np.diag([1e308, 1e308]))  # E(11) overflows to +inf, the optimum 00 is 0
    r = ExactSolver().solve(q)
    assert r.energy == 0.0 and r.kept == 0


# ---- constructors refuse bad values with QSelectError ----------------------
def test_diagonal_cost_refuses_complex_entries():
    with pytest.raises(QSelectError, match="real"):
        DiagonalCost([1 + 5j, 2, 3, 4])
    with pytest.raises(QSelectError, match="real"):
        QUBO(np.eye(2) * (1 + 1j))


@pytest.mark.parametrize("labels", [[[0], [1]], "ab", [{"a": 1}, 2], 5])
def test_unusable_labels_are_refused(labels):
    with pytest.raises(QSelectError, match="labels"):
        QUBO(np.eye(2), labels=labels)


def test_labels_keep_ints_and_tuples():
    q = QUBO(np.eye(3), labels=[np.int64(4), "a", (0, 1)])
    assert q.labels == (4, "a", (0, 1)) and type(q.labels[0]) is int


@pytest.mark.parametrize("kw, arg", [(dict(maxiter=-1), "maxiter"), (dict(restarts=-1), "restarts"),
                                     (dict(p="two"), "depth p"), (dict(p=None), "depth p"),
                                     (dict(p=float("nan")), "depth p"), (dict(p=1.5), "depth p"),
                                     (dict(shots=None), "shots"), (dict(seed="x"), "seed"),
                                     (dict(top=0), "top"), (dict(k=-1), "k")])
def test_qaoa_solver_settings(kw, arg):
    from qselect.solvers.qaoa import QAOASolver

    with pytest.raises(QSelectError, match=arg):
        QAOASolver(**kw)


@pytest.mark.parametrize("make, arg", [
    (lambda: RandomSolver(seed="x"), "seed"),
    (lambda: RandomSolver(seed=-1), "seed"),
    (lambda: RandomSolver(k=1.5), "k"),
    (lambda: MagnitudeSolver(k="3"), "k"),
    (lambda: GreedySolver(max_steps=None), "max_steps"),
    (lambda: ExactSolver(chunk_bits=31), "chunk_bits"),
    (lambda: get_solver("sa", num_reads=0), "num_reads"),
    (lambda: get_solver("tabu", seed=2**40), "seed"),
])
def test_solver_settings(make, arg):
    with pytest.raises(QSelectError, match=arg):
        make()


# ---- quadratic-program names: unique, integer labels survive ---------------
def test_quadratic_program_names_unique_and_integer_labels_round_trip():
    pytest.importorskip("qiskit_optimization")
    qp = to_quadratic_program(QUBO(np.eye(2), labels=[0, "x0"]))
    names = [v.name for v in qp.variables]
    assert len(set(names)) == 2
    q = QUBO(np.array([[1.0, 2.0], [0.0, -1.0]]), labels=[5, 7])
    back = from_quadratic_program(to_quadratic_program(q))
    assert back.labels == (5, 7)
    np.testing.assert_allclose(back.cost_vector(), q.cost_vector())


def test_quadratic_program_name_rules():
    from qselect.interop.qiskit import labels_from_names, quadratic_program_names

    assert quadratic_program_names([0, "x0", "x0_1"]) == ["x0", "x0_1", "x0_1_2"]
    assert quadratic_program_names([(1, 2), "a"]) == ["x0", "a"]
    assert labels_from_names(["x3", "x-1"]) == [3, -1]
    assert labels_from_names(["x3", "y"]) == ["x3", "y"]


# ---- the validators themselves ---------------------------------------------
@pytest.mark.parametrize("bad", ["3", None, 2.5, float("nan"), float("inf"), True, [1], 1 + 0j])
def test_check_int_refuses(bad):
    with pytest.raises(QSelectError, match="width"):
        check_int(bad, "width")


def test_check_int_accepts_integral_values():
    assert check_int(np.int32(3), "a") == 3 and check_int(4.0, "a") == 4
    assert check_int(None, "a", allow_none=True) is None
    with pytest.raises(QSelectError, match=r"in \[1, 3\]"):
        check_int(4, "a", minimum=1, maximum=3)


def test_check_seed_bounds():
    assert check_seed(None) is None and check_seed(2**32 - 2) == 2**32 - 2
    for bad in (-1, 2**32 - 1, 5_000_000_000, "1", 0.5):
        with pytest.raises(QSelectError, match="seed"):
            check_seed(bad)


def test_check_finite_array():
    assert check_finite_array([1, 2], "v", ndim=1).dtype == np.float64
    for bad, msg in ((None, "None"), (["a", "b"], "numeric"), ([1, np.nan], "NaN"), ([[1, 2], [3]], "numeric"),
                     ([1j], "real")):
        with pytest.raises(QSelectError, match=msg):
            check_finite_array(bad, "v")
    with pytest.raises(QSelectError, match="1-dimensional"):
        check_finite_array([[1.0]], "v", ndim=1)


def test_check_labels():
    assert check_labels(None, 2) == (0, 1)
    with pytest.raises(QSelectError, match="unique"):
        check_labels([1, 1], 2)
    with pytest.raises(QSelectError, match="3 labels"):
        check_labels([1, 2, 3], 2)


# ---- one sparsity rule: [0, 1) ---------------------------------------------
@pytest.mark.parametrize("ok", [0.0, 0, 0.5, 0.999])
def test_sparsity_rule_accepts(ok):
    assert check_sparsity(ok) == float(ok)


@pytest.mark.parametrize("bad", [1.0, 1, 1.5, -0.1, float("nan"), "0.5", None, True])
def test_sparsity_rule_refuses(bad):
    with pytest.raises(QSelectError, match=r"sparsity must be a number in \[0, 1\)"):
        check_sparsity(bad)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))


@pytest.mark.parametrize("entry", ["select_masks", "magnitude", "random", "keep_count", "rounds", "ensemble"])
@pytest.mark.parametrize("bad", [1.0, -0.5, float("nan")])
def test_every_entry_point_uses_the_one_sparsity_rule(entry, bad):
    from qselect.classical.baselines import magnitude_masks, random_masks
    from qselect.formulate import select_masks
    from qselect.formulate.cardinality import keep_count
    from qselect.methods.iterative import round_sparsities

    calls = {"select_masks": lambda s: select_masks(_mlp(), torch.randn(4, 8), sparsity=s),
             "magnitude": lambda s: magnitude_masks(_mlp(), s),
             "random": lambda s: random_masks(_mlp(), s),
             "keep_count": lambda s: keep_count(10, s),
             "rounds": lambda s: round_sparsities(s, 3),
             "ensemble": _ensemble_config}
    with pytest.raises(QSelectError, match=r"sparsity must be a number in \[0, 1\)"):
        calls[entry](bad)


def _ensemble_config(s):
    from qselect.methods import ensembles

    cfg_cls = next(v for k, v in vars(ensembles).items() if isinstance(v, type) and hasattr(v, "validate")
                   and "sparsity" in getattr(v, "__dataclass_fields__", {}))
    cfg_cls(sparsity=s).validate()


def test_sparsity_zero_keeps_everything():
    from qselect.classical.baselines import magnitude_masks
    from qselect.formulate import select_masks

    assert all(bool(v.all()) for v in magnitude_masks(_mlp(), 0.0).values())
    sel = select_masks(_mlp(), torch.randn(16, 8), sparsity=0.0, qubits=8, solver="exact")
    assert all(bool(v.all()) for v in sel.masks.values())


# ---- a layer that would lose every unit is refused (or warned about) -------
def test_max_sparsity_keeping_one_matches_rounding():
    from qselect.formulate.cardinality import keep_count

    for n in range(1, 40):
        s = max_sparsity_keeping_one(n)
        assert keep_count(n, s) >= 1 and keep_count(n, min(s + 1e-9, 0.999999999)) == 0


@pytest.mark.parametrize("formulation, what", [("weight", "inputs of every unit"), ("neuron", "units of layer"),
                                               ("nk", "inputs of every unit")])
def test_select_masks_refuses_emptying_a_layer(formulation, what):
    from qselect.formulate import select_masks

    with pytest.raises(QSelectError, match=what):
        select_masks(_mlp(), torch.randn(8, 8), formulation=formulation, sparsity=0.99, qubits=8)


def test_layer_scope_baseline_refuses_emptying_a_layer_global_warns():
    from qselect.classical.baselines import magnitude_masks

    with pytest.raises(QSelectError, match="would remove all 48 weights"):
        magnitude_masks(_mlp(), 0.99)
    m = _mlp()
    with torch.no_grad():
        m[2].weight.mul_(1e-6)  # the small layer goes first under a global threshold
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        masks = magnitude_masks(m, 0.7, scope="global")
    assert int(masks["2.weight"].sum()) == 0
    assert any("removes every weight of 2.weight" in str(w.message) for w in rec)


def test_check_keeps_some_warn_mode():
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        assert check_keeps_some(4, 0.9, "units", warn=True) is False
    assert rec and "all 4 units" in str(rec[0].message)
    assert check_keeps_some(4, 0.5, "units") and math.isclose(max_sparsity_keeping_one(4), 0.875)


# ---- memory guard at absurd sizes: one line, no OverflowError -----------------
@pytest.mark.parametrize("n", [100, 1000, 1100, 100_000])
def test_memory_guard_handles_any_qubit_count(n):
    from qselect.errors import ProblemTooLargeError
    from qselect.problems.memory import check_dense

    with pytest.raises(ProblemTooLargeError) as info:
        check_dense(n, 8, "a QAOA state vector", copies=3)
    msg = str(info.value)
    assert f"about 2^{n + 4} bytes" in msg and len(msg) < 300 and "\n" not in msg
