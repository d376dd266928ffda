"""Per-backend QAOA evaluators: the angles → objective / distribution maps behind ``QAOASolver``.

QAOA (Farhi, Goldstone and Gutmann, "A Quantum Approximate Optimization
Algorithm", arXiv:1411.4028, 2014) prepares
``|γ, β⟩ = Π_j exp(-iβ_j B) exp(-iγ_j C) |s⟩`` and tunes the ``2p`` angles to
lower ``⟨C⟩`` (or its CVaR). An :class:`Evaluator` hides how one backend
computes that: ``QAOASolver`` only optimises :meth:`Evaluator.value` (with
:meth:`Evaluator.value_and_grad` where the backend has one) and reads the final
state through :meth:`Evaluator.final_probabilities` (exact backends) or
:meth:`Evaluator.counts` (shot-based ones).

All costs are in solver units: ``(energy − const) / scale``, little-endian
basis-state order.
"""
from __future__ import annotations

import numpy as np

from ...errors import QSelectError
from . import objectives as obj

# exact ⟨C⟩ bookkeeping (optimum probability, approximation ratio) for sampling backends up to here
INFO_MAX_QUBITS = 22
# default native runs re-evaluate the final state in complex128 up to here
EXACT_FINAL_QUBITS = 24
# the answer's samples are scored by looking up the problem's tabulated energies up to here (8 MiB)
ENERGY_TABLE_QUBITS = 20


class Evaluator:
    """One backend's QAOA objective and output distribution (Farhi et al. 2014).

    Attributes
    ----------
    label : str
        Backend name reported as ``info['backend']``.
    dtype : str or None
        Simulation dtype reported as ``info['dtype']``.
    costs : ndarray or None
        Normalised cost of every basis state, where the problem is small enough.
    energies : ndarray or None
        The problem's own energy of every basis state (``problem.cost_vector()``, float64, problem
        units) up to ``ENERGY_TABLE_QUBITS`` qubits: the answer's samples are scored from it.
    scale, const : float
        ``energy = cost * scale + const``.
    exact : bool
        True when :meth:`probabilities` gives the exact distribution; False for
        shot-based backends, which offer :meth:`counts` instead.
    value_and_grad : callable or None
        ``angles -> (value, gradient)`` where the backend has exact gradients.
    """

    label: str = ""
    dtype: str | None = None
    costs: np.ndarray | None = None
    energies: np.ndarray | None = None
    scale: float = 1.0
    const: float = 0.0
    exact: bool = True
    value_and_grad = None

    def value(self, angles) -> float:
        """Objective (⟨C⟩ or CVaR, normalised units) at ``angles``.

        Parameters
        ----------
        angles : ndarray
            ``[γ_1..γ_p, β_1..β_p]``.

        Returns
        -------
        float
        """
        raise NotImplementedError

    def probabilities(self, angles) -> np.ndarray:
        """Exact basis-state probabilities (little-endian) at ``angles``.

        Parameters
        ----------
        angles : ndarray
            ``[γ_1..γ_p, β_1..β_p]``.

        Returns
        -------
        ndarray
        """
        raise NotImplementedError

    def final_probabilities(self, angles) -> np.ndarray:
        """Probabilities used for the reported answer; by default :meth:`probabilities`.

        Parameters
        ----------
        angles : ndarray
            The optimised angles.

        Returns
        -------
        ndarray
        """
        return self.probabilities(angles)

    def counts(self, angles):
        """Seeded shot samples at ``angles`` (shot-based backends).

        Parameters
        ----------
        angles : ndarray
            ``[γ_1..γ_p, β_1..β_p]``.

        Returns
        -------
        tuple of ndarray
            ``(bits, counts)``.
        """
        raise NotImplementedError

    def _exact_value(self, objective, alpha):
        """``value`` from exact probabilities and ``costs``."""
        order = np.argsort(self.costs, kind="stable") if objective == "cvar" else None

        def value(a):
            return obj.exact_objective(self.costs, self.probabilities(a), objective, alpha, order)

        return value


class NativeEvaluator(Evaluator):
    """qselect's own statevector engine (NumPy or torch), with exact adjoint/autograd gradients.

    Parameters
    ----------
    problem : Problem
    p : int
        QAOA depth.
    mixer : str
        ``'x'`` or ``'xy'``.
    k : int or None
        Hamming weight kept by the XY mixer.
    kind : str
        ``'numpy'`` or ``'torch'``.
    dtype : dtype or None
        Simulation dtype; default complex64 (and a complex128 final state up to
        ``EXACT_FINAL_QUBITS`` qubits on NumPy).
    device : str or None
        torch device.
    gradient : bool
        Whether the optimiser will ask for gradients (memory check).
    objective : str
        ``'expectation'`` or ``'cvar'``.
    alpha : float
        CVaR fraction.
    """

    def __init__(self, problem, p, mixer, k, kind, dtype, device, gradient, objective, alpha):
        from .kernels import uses_row_kernel
        from .native import NumpyQAOA, check_memory, cost_dtype_for

        if kind == "numpy":
            # default: optimise in complex64 (float32 phases are SIMD: ~5× faster), and re-evaluate
            # the final state in complex128 where it is small (see final_probabilities)
            sim_dtype = np.dtype(dtype or np.complex64)
        else:
            sim_dtype = (np.dtype(str(dtype).replace("torch.", "")) if dtype is not None
                         else np.dtype(np.complex64))
        cost_dtype = cost_dtype_for(problem.n, sim_dtype, EXACT_FINAL_QUBITS)
        compiled = kind == "numpy" and uses_row_kernel(mixer, 1 << problem.n, sim_dtype)
        check_memory(problem.n, sim_dtype, gradient=gradient, cost_dtype=cost_dtype, layers=p if compiled else 0)
        self.scale, self.const = problem.scale(), problem.z_constant()
        costs = problem.cost_vector(cost_dtype)
        if problem.n <= ENERGY_TABLE_QUBITS:
            self.energies = costs.astype(np.float64)  # a copy: the problem's own energies, for scoring
        costs -= self.const  # in place: no extra 2^n temporaries
        costs /= self.scale
        self.costs = costs
        if kind == "numpy":
            engine = NumpyQAOA(costs, p, mixer, k, sim_dtype)
        else:
            from .native_torch import TorchQAOA

            engine = TorchQAOA(costs, p, mixer, k, dtype=sim_dtype, device=device)
        self.engine, self.label = engine, f"native-{kind}"
        self.dtype = str(engine.dtype).replace("torch.", "")
        self.probabilities = engine.probabilities
        self._final = None
        if kind == "numpy" and dtype is None and problem.n <= EXACT_FINAL_QUBITS:
            # the reported state (samples, ⟨C⟩, optimum probability) in double precision
            self._final = NumpyQAOA(costs, p, mixer, k, np.complex128).probabilities
        if objective == "cvar":
            order = np.argsort(costs, kind="stable")

            def value(a):
                return obj.cvar_weights(costs, order, self.probabilities(a), alpha)[0]

            def value_and_grad(a):
                v, w = obj.cvar_weights(costs, order, self.probabilities(a), alpha)
                return v, engine.value_and_grad(a, w)[1]

            self.value, self.value_and_grad = value, value_and_grad
        else:
            self.value, self.value_and_grad = engine.expectation, engine.value_and_grad

    def final_probabilities(self, angles) -> np.ndarray:
        """The final state's probabilities, in complex128 where the default run allows it.

        Parameters
        ----------
        angles : ndarray
            The optimised angles.

        Returns
        -------
        ndarray
        """
        return (self._final or self.probabilities)(angles)


class _CircuitEvaluator(Evaluator):
    """Shared setup of the circuit backends: normalised Hamiltonian terms and exact costs."""

    def __init__(self, problem, max_order):
        from ...ansatz import normalised_terms

        _, self.scale, self.const = normalised_terms(problem, max_order)
        self.costs = None
        if problem.n <= INFO_MAX_QUBITS:
            table = problem.cost_vector()
            self.costs = (table - self.const) / self.scale
            self.energies = table if problem.n <= ENERGY_TABLE_QUBITS else None

    def _check_exact(self):
        if self.costs is None:
            raise QSelectError(f"the {self.label} statevector path scores the full distribution and is "
                               f"limited to {INFO_MAX_QUBITS} qubits; use backend='native' or shots on 'aer'")

    def probabilities(self, angles) -> np.ndarray:
        """Exact probabilities of all 2^n bitstrings from the backend's statevector.

        Parameters
        ----------
        angles : ndarray
            ``[γ_1..γ_p, β_1..β_p]``.

        Returns
        -------
        ndarray
            float64, shape ``(2**n,)``.
        """
        return self.runner.probabilities(angles)


class AerEvaluator(_CircuitEvaluator):
    """qiskit Aer: seeded shots, or its exact statevector with ``exact=True``.

    Parameters
    ----------
    problem : Problem
    p : int
    mixer : str
    k : int or None
    shots : int
    seed : int
    exact : bool
    max_order : int or None
    objective : str
    alpha : float
    """

    label = "aer"

    def __init__(self, problem, p, mixer, k, shots, seed, exact, max_order, objective, alpha):
        from ...circuits.qiskit import AerQAOARunner

        super().__init__(problem, max_order)
        self.runner = AerQAOARunner(problem, p, mixer, k, shots, seed, exact=exact, max_order=max_order)
        self.exact = bool(exact)
        if self.exact:
            self._check_exact()
            self.value = self._exact_value(objective, alpha)
        else:
            scale, const = self.scale, self.const

            def value(a):
                bits, cnt = self.counts(a)
                return obj.sample_objective((problem.energy(bits) - const) / scale, cnt, objective, alpha)

            self.value = value


    def counts(self, angles):
        """Seeded Aer shots.

        Parameters
        ----------
        angles : ndarray

        Returns
        -------
        tuple of ndarray
            ``(bits, counts)``.
        """
        return self.runner.counts(angles)


class StatevectorEvaluator(_CircuitEvaluator):
    """qiskit's reference ``Statevector``.

    Parameters
    ----------
    problem : Problem
    p : int
    mixer : str
    k : int or None
    max_order : int or None
    objective : str
    alpha : float
    """

    label = "statevector"

    def __init__(self, problem, p, mixer, k, max_order, objective, alpha):
        from ...circuits.qiskit import StatevectorQAOARunner

        super().__init__(problem, max_order)
        self.runner = StatevectorQAOARunner(problem, p, mixer, k, max_order)
        self._check_exact()
        self.value = self._exact_value(objective, alpha)


class PennyLaneEvaluator(_CircuitEvaluator):
    """PennyLane ``lightning.qubit``; ⟨H⟩ of the problem's own Hamiltonian for the expectation objective.

    Parameters
    ----------
    problem : Problem
    p : int
    mixer : str
    k : int or None
    max_order : int or None
    objective : str
    alpha : float
    """

    label = "pennylane"

    def __init__(self, problem, p, mixer, k, max_order, objective, alpha):
        from ...circuits.pennylane import PennyLaneQAOARunner

        super().__init__(problem, max_order)
        self.runner = PennyLaneQAOARunner(problem, p, mixer, k, max_order=max_order)
        self._check_exact()
        self.value = self.runner.expectation if objective == "expectation" else self._exact_value(objective, alpha)

