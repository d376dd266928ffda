"""Same angles -> same ⟨C⟩ (1e-6) from every simulator, and every backend solves through one protocol."""
import numpy as np
import pytest
import torch

from qselect.ansatz import normalised_terms
from qselect.circuits import qiskit as qk
from qselect.circuits.pennylane import PennyLaneQAOARunner
from qselect.problems import QUBO, DiagonalCost
from qselect.solvers.qaoa import QAOAResult, QAOASolver
from qselect.solvers.qaoa.native import NumpyQAOA
from qselect.solvers.qaoa.native_torch import TorchQAOA


def _higher_order(n, seed):
    # a genuine order-3+ cost: products of bits plus noise
    rng = np.random.default_rng(seed)
    return DiagonalCost.from_function(
        lambda x: 2.0 * x[:, 0] * x[:, 1] * x[:, 2] - x[:, 1] * x[:, 3] + rng.normal(size=len(x)) * 0.3, n)


CASES = [(QUBO.random(n, seed=n), "x", None) for n in (2, 3, 5, 7, 10)]
CASES += [(_higher_order(4, 0), "x", None), (_higher_order(6, 1), "x", None),
          (QUBO.random(6, seed=11, k=2), "xy", 2)]


@pytest.mark.parametrize("problem,mixer,k", CASES,
                         ids=lambda c: repr(c) if not isinstance(c, (str, type(None))) else str(c))
def test_same_angles_same_expectation_across_simulators(problem, mixer, k):
    p = 2
    x = np.array([0.41, -0.23, 0.67, 0.29])
    terms, scale, const = normalised_terms(problem)
    costs = (problem.cost_vector() - const) / scale
    values = {
        "numpy": NumpyQAOA(costs, p, mixer, k).expectation(x),
        "torch": TorchQAOA(costs, p, mixer, k, dtype=torch.complex128, device="cpu").expectation(x),
        "statevector": qk.StatevectorQAOARunner(problem, p, mixer, k).probabilities(x) @ costs,
        "aer": qk.AerQAOARunner(problem, p, mixer, k, exact=True).probabilities(x) @ costs,
        "pennylane": PennyLaneQAOARunner(problem, p, mixer, k).expectation(x),
    }
    if isinstance(problem, DiagonalCost):
        assert problem.order() >= 3
    ref = values["numpy"]
    for name, v in values.items():
        assert v == pytest.approx(ref, abs=1e-6), name
    # in problem units the constant comes back
    assert ref * scale + const == pytest.approx(np.dot(NumpyQAOA(costs, p, mixer, k).probabilities(x),
                                                        problem.cost_vector()), abs=1e-9)


def test_aer_shot_estimate_close_to_exact():
    q = QUBO.random(5, seed=4)
    x = np.array([0.3, 0.6])
    terms, scale, const = normalised_terms(q)
    costs = (q.cost_vector() - const) / scale
    exact = NumpyQAOA(costs, 1).expectation(x) * scale + const
    bits, counts = qk.AerQAOARunner(q, 1, shots=20000, seed=3).counts(x)
    est = np.dot(q.energy(bits), counts) / counts.sum()
    spread = np.sqrt(np.dot(NumpyQAOA(costs, 1).probabilities(x), (q.cost_vector() - exact) ** 2))
    assert abs(est - exact) < 5 * spread / np.sqrt(20000)


@pytest.mark.parametrize("backend,kw", [("native", {}), ("native", {"engine": "torch"}), ("statevector", {}),
                                        ("aer", {}), ("aer", {"exact": True}), ("pennylane", {})])
def test_every_backend_solves_and_scores_with_the_problem(backend, kw):
    q = QUBO.random(5, seed=7)
    r = QAOASolver(backend=backend, p=1, seed=1, maxiter=30, **kw).solve(q)
    assert isinstance(r, QAOAResult)
    assert r.energy == pytest.approx(q.energy(r.bits))
    np.testing.assert_allclose(r.energies, q.energy(r.samples))
    assert np.all(np.diff(r.energies) >= 0)
    assert r.angles.shape == (2,)
    assert r.info["evaluations"] > 0 and r.info["backend"].startswith(backend)
    lo = q.cost_vector().min()
    assert r.info["optimum_energy"] == pytest.approx(lo)
    assert lo - 1e-9 <= r.expectation <= q.cost_vector().max() + 1e-9
    assert 0 <= r.info["approximation_ratio"] <= 1 and 0 <= r.info["probability_optimum"] <= 1
    assert r.energy <= r.expectation + 1e-9


def test_exact_backends_reach_the_same_optimum():
    q = QUBO.random(5, seed=8)
    ex = [QAOASolver(backend=b, p=1, seed=0, **kw).solve(q).expectation
          for b, kw in [("native", {}), ("statevector", {}), ("pennylane", {}), ("aer", {"exact": True})]]
    np.testing.assert_allclose(ex, ex[0], atol=1e-4)
