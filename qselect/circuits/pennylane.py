"""QAOA circuits on PennyLane (``lightning.qubit``); Hamiltonians come from :mod:`qselect.interop.pennylane`."""
from __future__ import annotations

# ---------------------------------------------------------------------------
# QAOA on PennyLane: same angles [γ_1..γ_p, β_1..β_p] and layer order
# as the native engine and the qiskit circuits.
# ---------------------------------------------------------------------------
import numpy as np  # noqa: E402
import pennylane as qml

from ..ansatz import dicke_gates, normalised_terms, ring_pairs  # noqa: E402
from ..errors import BackendUnavailableError, QSelectError  # noqa: E402
from ..interop.pennylane import hamiltonian  # noqa: E402


def dicke_preparation(n: int, k: int) -> None:
    """Queue the Dicke-state preparation |D^n_k> (exactly k ones) inside a QNode.

    Parameters
    ----------
    n : int
    k : int

    References
    ----------
    A. Bärtschi, S. Eidenbenz, "Deterministic Preparation of Dicke States", FCT 2019.
    """
    for g in dicke_gates(n, k):
        if g[0] == "x":
            qml.PauliX(g[1][0])
        elif g[0] == "cx":
            qml.CNOT(wires=list(g[1]))
        elif g[0] == "cry":
            qml.CRY(g[2], wires=list(g[1]))
        else:
            qml.ctrl(qml.RY, control=list(g[1][:2]))(g[2], wires=g[1][2])


def cost_layer(terms: dict, gamma) -> None:
    """exp(-iγ Σ w_S Z_S): one MultiRZ(2γw) per term, any order.

    Parameters
    ----------
    terms : dict of tuple of int -> float
        Z-polynomial coefficients (normalised cost).
    gamma : float
        Cost angle γ.
    """
    for qubits, w in terms.items():
        qml.MultiRZ(2 * w * gamma, wires=list(qubits))


def x_mixer_layer(n: int, beta) -> None:
    """Queue the transverse-field mixer exp(−iβ ΣX_i) as ``RX(2β)`` on every wire.

    Parameters
    ----------
    n : int
        Number of wires.
    beta : float or autograd/torch scalar
        Mixer angle β.
    """
    for i in range(n):
        qml.RX(2 * beta, wires=i)


def xy_mixer_layer(beta, pairs) -> None:
    """Queue the XY mixer exp(−iβ (XX + YY)/2) on each pair, in the given order.

    Parameters
    ----------
    beta : float
        Mixer angle β.
    pairs : sequence of (int, int)
        Wire pairs, normally ``qselect.ansatz.ring_pairs(n)``.

    References
    ----------
    Hadfield et al., "From the Quantum Approximate Optimization Algorithm to a
    Quantum Alternating Operator Ansatz", Algorithms 12(2):34 (2019).
    """
    for i, j in pairs:
        qml.IsingXX(beta, wires=[i, j])
        qml.IsingYY(beta, wires=[i, j])


def qaoa_ansatz(n: int, terms: dict, angles, p: int, mixer: str = "x", k: int | None = None) -> None:
    """Queue the full QAOA circuit (initial state + p layers).

    Parameters
    ----------
    n : int
    terms : dict of tuple of int -> float
        Z-polynomial coefficients (normalised cost).
    angles : array_like, shape (2p,)
        ``[γ_1..γ_p, β_1..β_p]`` in radians.
    p : int
    mixer : {"x", "xy"}
    k : int or None
        Hamming weight of the XY mixer's Dicke start.

    References
    ----------
    E. Farhi, J. Goldstone, S. Gutmann, "A Quantum Approximate Optimization Algorithm",
    arXiv:1411.4028 (2014).
    """
    if mixer == "xy":
        dicke_preparation(n, k)
    else:
        for i in range(n):
            qml.Hadamard(wires=i)
    pairs = ring_pairs(n)
    for l in range(p):
        cost_layer(terms, angles[l])
        if mixer == "x":
            x_mixer_layer(n, angles[p + l])
        else:
            xy_mixer_layer(angles[p + l], pairs)


class PennyLaneQAOARunner:
    """QAOA QNodes on ``lightning.qubit``: ⟨H⟩ of the problem's (normalised) Hamiltonian and probabilities."""

    def __init__(self, problem, p: int, mixer: str = "x", k: int | None = None, device: str = "lightning.qubit",
                 max_order: int | None = None):
        n = problem.n
        if mixer == "xy" and k is None:
            raise QSelectError("the XY mixer needs a cardinality: pass k=... or build the problem with k")
        terms, self.scale, self.constant = normalised_terms(problem, max_order)
        self.hamiltonian = hamiltonian(terms, 0.0, n)
        try:
            dev = qml.device(device, wires=n)
        except Exception as exc:  # unknown/uninstalled device plugin
            raise BackendUnavailableError(f"PennyLane device {device!r} is unavailable ({exc}); "
                                          "install pennylane-lightning or pass device='default.qubit'") from None

        @qml.qnode(dev)
        def energy(angles):
            qaoa_ansatz(n, terms, angles, p, mixer, k)
            return qml.expval(self.hamiltonian)

        @qml.qnode(dev)
        def probs(angles):
            qaoa_ansatz(n, terms, angles, p, mixer, k)
            return qml.probs(wires=list(range(n)))

        self._energy, self._probs, self.n = energy, probs, n

    def expectation(self, angles) -> float:
        """⟨C⟩/scale without the constant (the normalised cost the angles act on).

        Parameters
        ----------
        angles : array_like, shape (2p,)
            ``[γ_1..γ_p, β_1..β_p]`` in radians.

        Returns
        -------
        float
        """
        return float(self._energy(np.asarray(angles, dtype=float)))

    def probabilities(self, angles) -> np.ndarray:
        """Exact probabilities of the QAOA state for ``angles``.

        Parameters
        ----------
        angles : array_like, shape (2p,)
            ``[γ_1..γ_p, β_1..β_p]``.

        Returns
        -------
        numpy.ndarray of float64, shape (2**n,)
            Little-endian index (qubit 0 = least significant bit), converted from
            PennyLane's wire-0-first order.
        """
        pr = np.asarray(self._probs(np.asarray(angles, dtype=float)), dtype=float)
        # PennyLane orders wire 0 as the most significant bit; qselect is little-endian
        return pr.reshape((2,) * self.n).transpose(tuple(range(self.n))[::-1]).reshape(-1)
