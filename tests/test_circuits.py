"""QAOA circuits: binding order, Dicke preparation, higher-order cost layers, transpiling, resources."""
import networkx as nx
import numpy as np
import pennylane as qml
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import Operator, Statevector
from qiskit_aer import AerSimulator

import qselect
from qselect.ansatz import dicke_state, normalised_terms
from qselect.circuits import pennylane as qpl
from qselect.circuits import qiskit as qk
from qselect.circuits.resources import qaoa_resources
from qselect.errors import QSelectError
from qselect.problems import QUBO, DiagonalCost


def test_bind_angles_uses_gamma_then_beta_by_name():
    q = QUBO.random(4, seed=1)
    angles = [0.3, 0.8, 0.5, 0.1]  # γ1 γ2 β1 β2
    terms, _, _ = normalised_terms(q)
    manual = QuantumCircuit(4)
    manual.h(range(4))
    for g, b in [(0.3, 0.5), (0.8, 0.1)]:
        qk.cost_layer(manual, terms, g)
        qk.x_mixer_layer(manual, b)
    circ = qk.qaoa_circuit(q, 2, measure=False)
    assert sorted(p.name for p in circ.parameters) == ["β[0]", "β[1]", "γ[0]", "γ[1]"]
    a = Statevector(qk.bind_angles(circ, angles)).data
    b = Statevector(manual).data
    assert abs(np.vdot(a, b)) == pytest.approx(1.0, abs=1e-10)
    with pytest.raises(QSelectError, match="angles"):
        qk.bind_angles(circ, [0.1, 0.2])


@pytest.mark.parametrize("n,k", [(3, 1), (4, 2), (6, 3), (5, 4), (7, 2)])
def test_dicke_preparation_qiskit_and_pennylane(n, k):
    want = dicke_state(n, k)
    got = Statevector(qk.dicke_preparation(n, k)).data
    np.testing.assert_allclose(got, want, atol=1e-10)
    dev = qml.device("default.qubit", wires=n)

    @qml.qnode(dev)
    def prep():
        qpl.dicke_preparation(n, k)
        return qml.state()

    st = np.asarray(prep()).reshape((2,) * n).transpose(tuple(range(n))[::-1]).reshape(-1)
    np.testing.assert_allclose(st, want, atol=1e-10)


def test_higher_order_cost_layer_is_the_diagonal_phase():
    rng = np.random.default_rng(0)
    d = DiagonalCost(rng.normal(size=16))
    assert d.order() == 4
    terms, scale, const = normalised_terms(d)
    qc = QuantumCircuit(4)
    qk.cost_layer(qc, terms, 0.7)
    want = np.exp(-1j * 0.7 * (d.cost_vector() - const) / scale)
    got = np.diag(Operator(qc).data)
    ratio = got / want  # equal up to a global phase
    np.testing.assert_allclose(ratio, ratio[0], atol=1e-10)
    assert np.allclose(Operator(qc).data, np.diag(got))


def test_transpiled_onto_a_device_layout_keeps_bit_order():
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    q = QUBO.random(4, seed=2)
    x = [0.9, 0.35]
    circ = qk.transpile_circuit(qk.qaoa_circuit(q, 1), FakeManilaV2(), seed=1)
    counts = AerSimulator(seed_simulator=5).run(qk.bind_angles(circ, x), shots=8000).result().get_counts()
    bits, cnt = qk._counts_to_bits(counts, 4)
    from qselect.problems import bits_to_index

    emp = np.zeros(16)
    np.add.at(emp, bits_to_index(bits), cnt / cnt.sum())
    exact = qk.statevector_probabilities(q, x, 1)
    assert 0.5 * np.abs(emp - exact).sum() < 0.05
    # the check can fail: every wrong qubit order is further than 0.05 from the exact distribution
    import itertools

    wrong = [0.5 * np.abs(exact.reshape((2,) * 4).transpose(perm).reshape(-1) - exact).sum()
             for perm in itertools.permutations(range(4)) if perm != (0, 1, 2, 3)]
    assert min(wrong) > 0.06


def test_resource_counts_before_and_after():
    g = nx.cycle_graph(5)
    r = qaoa_resources(qselect.maxcut(g), p=2)
    assert r["before"]["qubits"] == 5 and r["after"]["qubits"] == 5
    assert r["before"]["two_qubit_gates"] == 2 * 2 * 5  # cx·rz·cx per edge per layer
    assert r["after"]["two_qubit_gates"] <= r["before"]["two_qubit_gates"]
    assert r["after"]["depth"] > 0
    xy = qaoa_resources(QUBO.random(5, seed=1, k=2), p=1, mixer="xy")
    assert xy["before"]["two_qubit_gates"] > 0
    counts = qk.resource_counts(qk.qaoa_circuit(QUBO.random(3), 1))
    assert set(counts) >= {"qubits", "depth", "two_qubit_gates"}
