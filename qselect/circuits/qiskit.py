"""QAOA circuits, Aer/Statevector runners and qiskit-algorithms optimisers on qiskit.

Operator and model conversions live in :mod:`qselect.interop.qiskit`; this
module builds and runs circuits.
"""
from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------
# QAOA circuits. Angles everywhere are [γ_1..γ_p, β_1..β_p] for the
# cost divided by problem.scale(); parameters are named β[l] / γ[l] (as
# qaoa_ansatz names them) and bound by name, never by position.
# ---------------------------------------------------------------------------
from qiskit import QuantumCircuit  # noqa: E402
from qiskit.circuit import ParameterVector  # noqa: E402

from ..ansatz import dicke_gates, normalised_terms, ring_pairs  # noqa: E402
from ..errors import BackendUnavailableError, QSelectError
from ..interop.qiskit import sparse_pauli_op, to_sparse_pauli_op  # noqa: E402


def dicke_preparation(n: int, k: int) -> QuantumCircuit:
    """Circuit preparing the Dicke state |D^n_k> (exactly k ones, uniform) with O(kn) gates.

    Parameters
    ----------
    n : int
    k : int

    Returns
    -------
    qiskit.QuantumCircuit

    Raises
    ------
    QSelectError
        If ``k`` is outside [0, n].

    References
    ----------
    A. Bärtschi, S. Eidenbenz, "Deterministic Preparation of Dicke States", FCT 2019.
    """
    from qiskit.circuit.library import RYGate

    qc = QuantumCircuit(n, name=f"Dicke({n},{k})")
    for g in dicke_gates(n, k):
        if g[0] == "x":
            qc.x(*g[1])
        elif g[0] == "cx":
            qc.cx(*g[1])
        elif g[0] == "cry":
            qc.cry(g[2], *g[1])
        else:
            qc.append(RYGate(g[2]).control(2, annotated=False), list(g[1]))
    return qc


def cost_layer(qc: QuantumCircuit, terms: dict, gamma) -> None:
    """Append exp(-iγ Σ w_S Z_S) for Z terms of any order (CNOT ladder beyond order 2).

    Parameters
    ----------
    qc : qiskit.QuantumCircuit
        Appended to in place.
    terms : dict of tuple of int -> float
        Z-polynomial coefficients (normalised cost).
    gamma : float or qiskit Parameter
    """
    for qubits, w in terms.items():
        q = list(qubits)
        if len(q) == 1:
            qc.rz(2 * w * gamma, q[0])
        elif len(q) == 2:
            qc.rzz(2 * w * gamma, q[0], q[1])
        else:
            for a, b in zip(q[:-1], q[1:]):
                qc.cx(a, b)
            qc.rz(2 * w * gamma, q[-1])
            for a, b in reversed(list(zip(q[:-1], q[1:]))):
                qc.cx(a, b)


def x_mixer_layer(qc: QuantumCircuit, beta) -> None:
    """exp(-iβ Σ X_i).

    Parameters
    ----------
    qc : qiskit.QuantumCircuit
    beta : float or qiskit Parameter
    """
    for i in range(qc.num_qubits):
        qc.rx(2 * beta, i)


def xy_mixer_layer(qc: QuantumCircuit, beta, pairs) -> None:
    """exp(-iβ (XX+YY)/2) on each ring pair in order (RXX·RYY commute on one pair).

    Parameters
    ----------
    qc : qiskit.QuantumCircuit
    beta : float or qiskit Parameter
    pairs : sequence of (int, int)
        Normally ``qselect.ansatz.ring_pairs(n)``.

    References
    ----------
    S. Hadfield et al., "From the Quantum Approximate Optimization Algorithm to a Quantum
    Alternating Operator Ansatz", Algorithms 12(2):34 (2019).
    """
    for i, j in pairs:
        qc.rxx(beta, i, j)
        qc.ryy(beta, i, j)


def qaoa_circuit(problem, p: int, mixer: str = "x", k: int | None = None, measure: bool = True,
                 max_order: int | None = None) -> QuantumCircuit:
    """The QAOA ansatz for any qselect problem; bind with ``bind_angles``.

    ``max_order`` truncates a diagonal cost's Z-polynomial (None = exact).
    X mixer from |+>^n: qiskit's ``qaoa_ansatz`` on the normalised cost
    SparsePauliOp. XY-ring mixer: a Dicke start with exactly k ones (k from
    the argument or ``problem.k``) and RXX/RYY pairs.

    Parameters
    ----------
    problem : Problem
    p : int
        Depth.
    mixer : {"x", "xy"}
    k : int or None
        Hamming weight for the XY mixer (default ``problem.k``).
    measure : bool
        Append ``measure_all``.
    max_order : int or None

    Returns
    -------
    qiskit.QuantumCircuit
        Parameters ``γ[l]``, ``β[l]``.

    Raises
    ------
    QSelectError
        On an invalid mixer/k or depth.

    References
    ----------
    E. Farhi, J. Goldstone, S. Gutmann, "A Quantum Approximate Optimization Algorithm",
    arXiv:1411.4028 (2014).
    """
    n = problem.n
    terms, _, _ = normalised_terms(problem, max_order)
    if mixer == "x":  # k is ignored: the X mixer starts from |+>^n
        from qiskit.circuit.library import qaoa_ansatz

        qc = qaoa_ansatz(sparse_pauli_op(terms, 0.0, n), reps=p)
        if len(qc.parameters) != 2 * p:  # a constant cost has no γ: add them so binding is uniform
            qc = _custom_ansatz(n, terms, p, "x", None)
    elif mixer == "xy":
        k = problem.k if k is None else k
        if k is None:
            raise QSelectError("the XY mixer needs a cardinality: pass k=... or build the problem with k")
        qc = _custom_ansatz(n, terms, p, mixer, k, ring_pairs(n))
    else:
        raise QSelectError(f"unknown mixer {mixer!r}; use 'x' or 'xy'")
    if measure:
        qc.measure_all()
    return qc


def _custom_ansatz(n, terms, p, mixer, k, pairs=()):
    beta, gamma = ParameterVector("β", p), ParameterVector("γ", p)
    qc = QuantumCircuit(n, name="QAOA")
    if k is not None:
        qc.compose(dicke_preparation(n, k), inplace=True)
    else:
        qc.h(range(n))
    for l in range(p):
        cost_layer(qc, terms, gamma[l])
        if not terms:
            qc.rz(0 * gamma[l], 0)  # keep γ[l] a parameter of the circuit
        if mixer == "x":
            x_mixer_layer(qc, beta[l])
        else:
            xy_mixer_layer(qc, beta[l], pairs)
    return qc


def bind_angles(circuit: QuantumCircuit, angles) -> QuantumCircuit:
    """Assign [γ_1..γ_p, β_1..β_p] by parameter name (β[l], γ[l]).

    Parameters
    ----------
    circuit : qiskit.QuantumCircuit
    angles : array_like, shape (2p,)
        ``[γ_1..γ_p, β_1..β_p]`` in radians.

    Returns
    -------
    qiskit.QuantumCircuit

    Raises
    ------
    QSelectError
        If the number of angles does not match the circuit's parameters.
    """
    angles = np.asarray(angles, dtype=float).reshape(-1)
    params = {par.name: par for par in circuit.parameters}
    p = angles.size // 2
    if angles.size != 2 * p or len(params) != angles.size:
        raise QSelectError(f"the circuit has {len(params)} QAOA parameters but {angles.size} angles were given")
    try:
        values = {params[f"γ[{l}]"]: angles[l] for l in range(p)}
        values.update({params[f"β[{l}]"]: angles[p + l] for l in range(p)})
    except KeyError:
        raise QSelectError("the circuit's parameters are not named β[l]/γ[l]; build it with qaoa_circuit") from None
    return circuit.assign_parameters(values)


def aer_simulator(method: str = "automatic", seed: int | None = None, device: str = "CPU"):
    """An ``AerSimulator``.

    Parameters
    ----------
    method : str
        Aer simulation method (``"automatic"``, ``"statevector"``, ...).
    seed : int or None
        Simulator seed for reproducible shots.
    device : {"CPU", "GPU"}

    Returns
    -------
    qiskit_aer.AerSimulator

    Raises
    ------
    BackendUnavailableError
        If qiskit-aer is not installed.
    """
    try:
        from qiskit_aer import AerSimulator
    except ImportError:
        raise BackendUnavailableError("qiskit-aer is not installed; pip install qiskit-aer") from None
    return AerSimulator(method=method, seed_simulator=seed, device=device)


def transpile_circuit(circuit: QuantumCircuit, backend=None, seed: int = 0, optimization_level: int = 1):
    """Transpile once for ``backend`` (default: Aer). Classical bits keep following the original qubits.

    Parameters
    ----------
    circuit : qiskit.QuantumCircuit
    backend : qiskit backend or None
    seed : int
        Transpiler seed (recorded for reproducibility).
    optimization_level : {0, 1, 2, 3}

    Returns
    -------
    qiskit.QuantumCircuit
    """
    from qiskit.transpiler import generate_preset_pass_manager

    backend = aer_simulator() if backend is None else backend
    pm = generate_preset_pass_manager(optimization_level=optimization_level, backend=backend,
                                      seed_transpiler=seed)
    return pm.run(circuit)


def resource_counts(circuit: QuantumCircuit) -> dict:
    """Qubits touched, depth and two-qubit gate count (measurements/barriers excluded).

    Parameters
    ----------
    circuit : qiskit.QuantumCircuit

    Returns
    -------
    dict
        ``qubits``, ``depth``, ``two_qubit_gates``.
    """
    skip = {"measure", "barrier", "save_statevector", "save_probabilities"}
    used, two, multi = set(), 0, 0
    for inst in circuit.data:
        if inst.operation.name in skip:
            continue
        qs = [circuit.find_bit(q).index for q in inst.qubits]
        used.update(qs)
        if len(qs) == 2:
            two += 1
        elif len(qs) > 2:
            multi += 1
    ops = circuit.remove_final_measurements(inplace=False) if circuit.num_clbits else circuit
    return {"qubits": len(used), "depth": int(ops.depth(lambda i: i.operation.name not in skip)),
            "two_qubit_gates": two, "multi_qubit_gates": multi}


def decompose_logical(circuit: QuantumCircuit) -> QuantumCircuit:
    """The circuit in a generic {cx, 1-qubit} basis without a device layout (counts 'before transpiling').

    Parameters
    ----------
    circuit : qiskit.QuantumCircuit

    Returns
    -------
    qiskit.QuantumCircuit
    """
    from qiskit import transpile

    return transpile(circuit, basis_gates=["cx", "rz", "rx", "ry", "h", "x", "sx", "u", "measure"],
                     optimization_level=0)


def _counts_to_bits(counts: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    keys = list(counts)
    # qiskit keys print c_{n-1}…c_0; reverse to bit 0 first
    bits = np.array([[ch == "1" for ch in key.replace(" ", "")[::-1][:n]] for key in keys], dtype=np.uint8)
    return bits.reshape(-1, n), np.array([counts[k] for k in keys], dtype=np.int64)


class AerQAOARunner:
    """Build once, transpile once, bind per evaluation (qiskit Aer).

    ``exact=True`` returns the statevector's probabilities (save_statevector);
    otherwise ``shots`` measurements. Probabilities come back little-endian.
    """

    def __init__(self, problem, p, mixer="x", k=None, shots=1024, seed=0, exact=False,
                 method="statevector", max_order=None):
        self.n, self.shots, self.exact = problem.n, int(shots), bool(exact)
        self.sim = aer_simulator(method=method, seed=seed)
        qc = qaoa_circuit(problem, p, mixer, k, measure=not exact, max_order=max_order)
        if exact:
            qc.save_statevector()
        self.circuit = transpile_circuit(qc, self.sim, seed=seed)
        self.seed = seed
        self._calls = 0

    def probabilities(self, angles) -> np.ndarray:
        """Exact probabilities from Aer's statevector for ``angles``.

        Parameters
        ----------
        angles : array_like, shape (2p,)
            ``[γ_1..γ_p, β_1..β_p]``.

        Returns
        -------
        numpy.ndarray of float64, shape (2**n,)
            Little-endian index, as qiskit.
        """
        res = self.sim.run(bind_angles(self.circuit, angles), shots=1).result()
        sv = np.asarray(res.get_statevector())
        return np.abs(sv) ** 2

    def counts(self, angles, shots=None) -> tuple[np.ndarray, np.ndarray]:
        """Sample the QAOA circuit for ``angles``.

        Each call uses its own simulator seed derived from the runner's seed, so
        a seeded solve repeats exactly.

        Parameters
        ----------
        angles : array_like, shape (2p,)
        shots : int or None
            Default: the runner's ``shots``.

        Returns
        -------
        bits : numpy.ndarray of uint8, shape (m, n)
            Distinct measured bitstrings, bit 0 first.
        counts : numpy.ndarray of int64, shape (m,)

        Raises
        ------
        QSelectError
            If the runner was built with ``exact=True`` (statevector only).
        """
        if self.exact:
            raise QSelectError("this runner simulates the statevector; build it with exact=False to sample")
        self._calls += 1
        # a different simulator seed per call, reproducible from the solver seed
        res = self.sim.run(bind_angles(self.circuit, angles), shots=shots or self.shots,
                           seed_simulator=None if self.seed is None else self.seed + self._calls).result()
        return _counts_to_bits(res.get_counts(), self.n)


def statevector_probabilities(problem, angles, p, mixer="x", k=None, max_order=None) -> np.ndarray:
    """Exact probabilities from qiskit's reference ``Statevector`` (little-endian).

    Parameters
    ----------
    problem : Problem
    angles : array_like, shape (2p,)
        ``[γ_1..γ_p, β_1..β_p]`` in radians.
    p : int
    mixer : {"x", "xy"}
    k : int or None
    max_order : int or None

    Returns
    -------
    numpy.ndarray of float64, shape (2**n,)
    """
    return StatevectorQAOARunner(problem, p, mixer, k, max_order).probabilities(angles)


class StatevectorQAOARunner:
    """qiskit reference path: ansatz built once, bound per evaluation, simulated by ``Statevector``."""

    def __init__(self, problem, p, mixer="x", k=None, max_order=None):
        self.circuit = qaoa_circuit(problem, p, mixer, k, measure=False, max_order=max_order)

    def probabilities(self, angles) -> np.ndarray:
        """Exact probabilities from qiskit's reference ``Statevector`` for ``angles``.

        Parameters
        ----------
        angles : array_like, shape (2p,)

        Returns
        -------
        numpy.ndarray of float64, shape (2**n,)
        """
        from qiskit.quantum_info import Statevector

        return Statevector(bind_angles(self.circuit, angles)).probabilities()


# ---- qiskit-algorithms optimisers (SPSA/COBYLA suit noisy shot estimates) ----
def qiskit_minimize(name: str, fun, x0, maxiter: int = 100, seed: int | None = 0, jac=None):
    """Minimise with a qiskit-algorithms optimiser; returns (x, fun, nfev).

    Parameters
    ----------
    name : str
        A qiskit-algorithms optimiser (``COBYLA``, ``SPSA``, ...).
    fun : callable
    x0 : array_like
    maxiter : int
    seed : int or None
    jac : callable or None

    Returns
    -------
    x : numpy.ndarray
    fun : float
    nfev : int

    Raises
    ------
    QSelectError
        If the optimiser is unknown.
    """
    try:
        from qiskit_algorithms import optimizers
        from qiskit_algorithms.utils import algorithm_globals
    except ImportError:
        raise BackendUnavailableError("qiskit-algorithms is not installed; pip install qiskit-algorithms") from None
    cls = {n.lower(): getattr(optimizers, n) for n in ("SPSA", "COBYLA", "NELDER_MEAD", "ADAM", "QNSPSA",
                                                     "L_BFGS_B", "POWELL", "SLSQP")
           if hasattr(optimizers, n)}.get(name.lower().replace("-", "_"))
    if cls is None:
        raise QSelectError(f"unknown qiskit-algorithms optimizer {name!r}; try 'qiskit:SPSA' or 'qiskit:COBYLA'")
    if seed is not None:
        algorithm_globals.random_seed = seed  # SPSA's perturbations come from here
    opt = cls(maxiter=maxiter)
    res = opt.minimize(fun, np.asarray(x0, dtype=float), jac=jac)
    return np.asarray(res.x, dtype=float), float(res.fun), int(res.nfev or 0)


# ---- reference: the stock qiskit-algorithms QAOA (benchmarks only) ------------
def qiskit_algorithms_qaoa(problem, p: int = 1, maxiter: int = 100, shots: int = 1024, seed: int = 0) -> dict:
    """Solve with qiskit_algorithms.QAOA + Aer SamplerV2 + a transpiler (COBYLA).

    Passing ``transpiler=`` is required (without it Aer rejects the 'QAOA'
    instruction). The best measured bitstring is re-scored with the problem.

    Parameters
    ----------
    problem : QUBO
    p : int
    maxiter : int
    shots : int
    seed : int

    Returns
    -------
    dict
        Best bitstring and energy, ⟨C⟩, evaluations, wall time.

    References
    ----------
    E. Farhi, J. Goldstone, S. Gutmann, "A Quantum Approximate Optimization Algorithm",
    arXiv:1411.4028 (2014).
    """
    import time

    from qiskit_aer.primitives import SamplerV2
    from qiskit_algorithms import QAOA
    from qiskit_algorithms.optimizers import COBYLA
    from qiskit_algorithms.utils import algorithm_globals

    algorithm_globals.random_seed = seed
    sim = aer_simulator(seed=seed)
    from qiskit.transpiler import generate_preset_pass_manager

    pm = generate_preset_pass_manager(optimization_level=1, backend=sim, seed_transpiler=seed)
    sampler = SamplerV2(default_shots=shots, seed=seed)
    qaoa = QAOA(sampler, COBYLA(maxiter=maxiter), reps=p, transpiler=pm)
    op = to_sparse_pauli_op(problem, include_offset=False)
    terms, const = problem.z_terms()
    t0 = time.perf_counter()
    res = qaoa.compute_minimum_eigenvalue(op)
    wall = time.perf_counter() - t0
    best = res.best_measurement
    bits = np.array([c == "1" for c in best["bitstring"][::-1]], dtype=np.uint8)
    return {"wall_time": wall, "bits": bits, "energy": float(problem.energy(bits)),
            "expectation": float(np.real(res.eigenvalue)) + const,
            "evaluations": int(res.cost_function_evals)}
