"""Device compilation of QAOA: swap strategies, seeded level-3 search, fractional gates (fake Heron devices).

Every compiled circuit is checked against an independent reference: its exact
output distribution over the classical bits (statevector of the qubits it
touches, measurements followed to their classical bits) must equal the
native simulator's |<x|γ,β>|², so both the unitary and the bit order are
exact.
"""
from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from qiskit.circuit import Measure
from qiskit.circuit.library import CZGate, RZZGate, XGate, ZGate
from qiskit.quantum_info import Operator
from qiskit.transpiler import InstructionProperties, Target

from qselect import QUBO
from qselect.circuits.qiskit import bind_angles, qaoa_circuit
from qselect.circuits.routing import (
    FRACTIONAL_RZZ_MAX,
    best_line,
    compile_qaoa,
    fold_rzz_angle,
    fractional_target,
    ideal_clbit_distribution,
    swap_strategy_qaoa,
)
from qselect.errors import QSelectError
from qselect.solvers.qaoa.native import NumpyQAOA

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from qiskit_ibm_runtime.fake_provider import FakeFez, FakeManilaV2


@pytest.fixture(scope="module")
def fez():
    return FakeFez()


def dense_qubo(n, seed):
    rng = np.random.default_rng(seed)
    quad = np.triu(rng.normal(size=(n, n)), 1)
    return QUBO(quad, rng.normal(size=n))


def native_distribution(problem, angles, p):
    """Reference: the native statevector engine, keyed like qiskit counts (clbit 0 last)."""
    probs = NumpyQAOA(problem.cost_vector() / problem.scale(), p).probabilities(np.asarray(angles, float))
    n = problem.n
    return {format(i, f"0{n}b"): float(pr) for i, pr in enumerate(probs)}


def assert_same(a, b, tol=1e-9):
    keys = set(a) | set(b)
    assert max(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in keys) < tol


@pytest.mark.parametrize("p", [1, 2, 3])
def test_swap_strategy_ansatz_equals_native_in_distribution_and_bit_order(p):
    pr = dense_qubo(6, seed=p)
    angles = np.linspace(0.2, 0.9, 2 * p)
    ref = native_distribution(pr, angles, p)
    assert_same(ideal_clbit_distribution(bind_angles(swap_strategy_qaoa(pr, p), angles)), ref)
    assert_same(ideal_clbit_distribution(bind_angles(qaoa_circuit(pr, p), angles)), ref)


def test_device_compiled_swap_circuit_keeps_bit_order_on_fake_fez(fez):
    pr = dense_qubo(7, seed=3)
    angles = [0.7, 0.35, 0.3, 0.6]  # p=2: the second layer undoes the SWAP network's permutation
    out = compile_qaoa(pr, 2, fez, method="swap", seeds=2)
    assert out.method == "swap" and len(out.layout) == 7
    got = ideal_clbit_distribution(bind_angles(out.circuit, angles))
    assert_same(got, native_distribution(pr, angles, 2))
    generic = compile_qaoa(pr, 2, fez, method="generic", seeds=1)
    assert_same(ideal_clbit_distribution(bind_angles(generic.circuit, angles)), got)


def test_dense_eight_variable_layer_on_fake_fez_meets_the_gate_budget(fez):
    pr = dense_qubo(8, seed=1)
    assert np.count_nonzero(np.triu(pr.quadratic, 1)) == 28
    before = compile_qaoa(pr, 1, fez, method="single", optimization_level=1)
    best = compile_qaoa(pr, 1, fez)  # defaults: auto (swap strategy vs generic), level 3, seeds
    assert best.two_qubit_gates <= 85 < before.two_qubit_gates
    assert best.method == "swap" and best.fidelity > before.fidelity
    assert {t["method"] for t in best.tried} == {"swap", "generic"}
    # the kept circuit is the best attempt by estimated fidelity
    assert best.fidelity == pytest.approx(max(t["estimated_fidelity"] for t in best.tried))


def line_target(n, errors, readout=0.0):
    """A ring of n qubits with CZ errors per edge (i, i+1 mod n)."""
    t = Target(num_qubits=n)
    cz = {}
    for i in range(n):
        j = (i + 1) % n
        cz[(i, j)] = InstructionProperties(error=errors[i], duration=1e-7)
    t.add_instruction(CZGate(), cz)
    t.add_instruction(Measure(), {(q,): InstructionProperties(error=readout) for q in range(n)})
    return t


def test_best_line_matches_brute_force_on_a_small_device():
    errors = [0.01, 0.2, 0.005, 0.004, 0.03, 0.002, 0.5, 0.001]
    target = line_target(8, errors)
    cost = {tuple(sorted((i, (i + 1) % 8))): -math.log(1 - e) for i, e in enumerate(errors)}
    for n in (3, 4, 5):
        line = best_line(target, n)
        assert len(set(line)) == n
        pairs = [tuple(sorted(p)) for p in zip(line, line[1:])]
        assert all(p in cost for p in pairs)  # a path of the coupling graph
        # brute force over all simple paths of the ring
        best = min(sum(cost[tuple(sorted(p))] for p in zip(path, path[1:]))
                   for path in itertools.permutations(range(8), n)
                   if all(tuple(sorted(p)) in cost for p in zip(path, path[1:])))
        assert sum(cost[p] for p in pairs) == pytest.approx(best)


def test_best_line_is_a_path_on_fake_manila():
    be = FakeManilaV2()
    line = best_line(be, 5)
    edges = {tuple(sorted(e)) for e in be.coupling_map.get_edges()}
    assert sorted(line) == list(range(5)) and all(tuple(sorted(p)) in edges for p in zip(line, line[1:]))
    with pytest.raises(QSelectError, match="no connected line"):
        best_line(line_target(4, [0.01, 0.01, 0.01, 1.0]), 5)


@pytest.mark.parametrize("theta", [0.3, -0.3, 1.2, -1.2, 2.0, -2.0, math.pi, 3.5, -5.0, 7.0, 0.0, math.pi / 2])
def test_rzz_angle_folding_is_exact_up_to_global_phase(theta):
    t, flip, zz = fold_rzz_angle(theta)
    assert 0.0 <= t <= FRACTIONAL_RZZ_MAX + 1e-12
    x0 = Operator(np.kron(np.eye(2), XGate().to_matrix()))  # X on qubit 0 (little-endian)
    u = Operator(RZZGate(t))
    if flip:
        u = x0.compose(u).compose(x0)
    if zz:
        u = u.compose(Operator(np.kron(ZGate().to_matrix(), ZGate().to_matrix())))
    assert u.equiv(Operator(RZZGate(theta)))


def test_fractional_gates_bind_fold_and_keep_the_distribution(fez):
    pr = dense_qubo(5, seed=7)
    angles = [2.9, 0.4]  # large γ: several RZZ angles fall outside (0, π/2] and must be folded
    target = fractional_target(fez)
    assert "rzz" in target.operation_names and "rx" in target.operation_names
    out = compile_qaoa(pr, 1, fez, method="swap", seeds=2, target=target, angles=angles)
    rzz = [float(i.operation.params[0]) for i in out.circuit.data if i.operation.name == "rzz"]
    assert rzz and all(0.0 < a <= FRACTIONAL_RZZ_MAX + 1e-12 for a in rzz)
    assert not out.circuit.parameters  # bound before transpiling
    assert_same(ideal_clbit_distribution(out.circuit), native_distribution(pr, angles, 1))
    plain = compile_qaoa(pr, 1, fez, method="swap", seeds=2)
    assert out.two_qubit_gates < plain.two_qubit_gates


def test_swap_strategy_refuses_higher_order_costs_and_auto_falls_back():
    from qselect.problems import DiagonalCost

    rng = np.random.default_rng(0)
    cubic = DiagonalCost(rng.normal(size=16))  # a generic diagonal cost has order-3/4 terms
    with pytest.raises(QSelectError, match="quadratic"):
        swap_strategy_qaoa(cubic, 1)
    out = compile_qaoa(cubic, 1, FakeManilaV2(), method="swap", seeds=1)
    assert out.method == "generic"
    with pytest.raises(QSelectError, match="compile method"):
        compile_qaoa(cubic, 1, FakeManilaV2(), method="sabre")
