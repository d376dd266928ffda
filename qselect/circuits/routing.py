"""Device compilation of QAOA circuits: swap-strategy routing, seeded level-3 search, fractional gates.

A dense cost layer exp(-iγ Σ w_ij Z_i Z_j) is a block of commuting two-qubit
rotations. Routing it with a generic router (SABRE) on a heavy-hex device
inserts SWAPs gate by gate; a *swap strategy* instead lays the n variables on
a line of the device and applies n layers of alternating nearest-neighbour
SWAPs, during which every pair meets once, so each ZZ term is applied when
its two qubits are adjacent (Weidenfeld et al. 2023). At optimisation level
3 the transpiler fuses each RZZ with the SWAP on the same edge into one
3-CZ block. The line is chosen from the device's reported gate and readout
errors.

Bit order is kept exact: the SWAP network permutes which wire carries which
variable; the permutation is tracked gate by gate and every measurement
writes variable i into classical bit i, so bitstrings are scored by the
problem itself with no layout applied. For p > 1 the odd layers run the
routed layer in reverse gate order, which undoes the permutation (every gate
in it — RZ, RZZ, SWAP — is a symmetric matrix, so the reversed circuit is the
transpose ``D·P⁻¹`` of ``P·D``).

Fractional gates (IBM Heron: RZZ(θ) with 0 < θ ≤ π/2 and RX(θ)) need the
angles bound before transpiling; angles out of range are folded with
single-qubit X/Z gates (qiskit-ibm-runtime's ``FoldRzzAngle``).

References
----------
Weidenfeld, Hohage, Kehl, Zoufal et al. (2023), "Scaling of the quantum
approximate optimization algorithm on superconducting qubit based
hardware", Quantum 6, 870 (arXiv:2202.03459) — swap strategies for
commuting two-qubit gate blocks.
Sack & Egger (2024), "Large-scale quantum approximate optimization on
nonplanar graphs with machine learning noise mitigation", Phys. Rev.
Research 6, 013223 — line selection from error rates, SWAP-layer reversal
between QAOA layers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterVector

from ..ansatz import normalised_terms
from ..errors import QSelectError

#: compilation methods: "auto" keeps the better of "swap" and "generic" (by estimated fidelity)
COMPILE_METHODS = ("auto", "swap", "generic", "single")
FRACTIONAL_RZZ_MAX = math.pi / 2


# --------------------------------------------------------------------------- device errors

def _target(backend):
    target = getattr(backend, "target", backend)
    if target is None or not hasattr(target, "operation_names"):
        raise QSelectError("the backend has no Target; device compilation needs an IBM (or fake_<device>) backend")
    return target


def device_errors(backend) -> tuple[dict[tuple[int, int], float], dict[int, float]]:
    """Two-qubit gate error per undirected coupling and readout error per qubit, from the Target.

    Parameters
    ----------
    backend : BackendV2 or Target
        The device (its ``target`` is read).

    Returns
    -------
    edges : dict[(int, int), float]
        ``(a, b)`` with ``a < b`` -> the lowest reported error of a two-qubit
        basis gate (cz, ecr, cx) on that pair, either direction; pairs whose
        gates report error ≥ 1 (faulty) are left out.
    readout : dict[int, float]
        Qubit -> measurement error (0 when not reported).
    """
    target = _target(backend)
    edges: dict[tuple[int, int], float] = {}
    for name in ("cz", "ecr", "cx"):
        if name not in target.operation_names:
            continue
        for qargs, props in (target[name] or {}).items():
            if qargs is None or len(qargs) != 2:
                continue
            err = props.error if props is not None and props.error is not None else 0.01
            if err >= 1.0:
                continue
            a, b = sorted(int(q) for q in qargs)
            edges[(a, b)] = min(edges.get((a, b), 1.0), float(err))
    readout: dict[int, float] = {}
    if "measure" in target.operation_names:
        for qargs, props in (target["measure"] or {}).items():
            if qargs is not None and props is not None and props.error is not None:
                readout[int(qargs[0])] = float(props.error)
    return edges, readout


def best_line(backend, n: int, beam: int = 256) -> list[int]:
    """The n-qubit path of the coupling graph with the highest estimated fidelity of a swap-strategy layer.

    A line swap strategy on n qubits puts about ``1.5 n`` two-qubit gates on
    every edge of the path (RZZ+SWAP blocks of 3 CZ, n/2 per edge), so a path
    costs ``Σ_edges 1.5 n · (−log(1−e_edge)) + Σ_qubits (−log(1−e_readout))``.
    Beam search over simple paths (exact for small devices, near-optimal on
    heavy-hex devices with hundreds of qubits).

    Parameters
    ----------
    backend : BackendV2 or Target
    n : int
        Number of qubits on the line (≥ 1).
    beam : int
        Paths kept per length.

    Returns
    -------
    list[int]
        Physical qubits in line order.

    Raises
    ------
    QSelectError
        The device has no working path of n qubits.
    """
    edges, readout = device_errors(backend)
    nq = int(getattr(_target(backend), "num_qubits", 0) or 0)
    if n < 1:
        raise QSelectError(f"a line needs at least one qubit, got n={n}")
    ro = lambda q: -math.log(max(1e-12, 1.0 - min(readout.get(q, 0.0), 0.999)))
    if n == 1:
        qubits = range(nq) if nq else sorted({q for e in edges for q in e})
        return [min(qubits, key=ro)]
    adj: dict[int, list[tuple[int, float]]] = {}
    weight = 1.5 * n
    for (a, b), e in edges.items():
        c = weight * -math.log(max(1e-12, 1.0 - e))
        adj.setdefault(a, []).append((b, c))
        adj.setdefault(b, []).append((a, c))
    paths = [(ro(q), (q,)) for q in sorted(adj)]
    for _ in range(n - 1):
        grown = {}
        for cost, path in paths:
            # grow at both ends: a path is kept once per (qubits, ends), in either direction
            ends = [(nb, c, path + (nb,)) for nb, c in adj[path[-1]]]
            if len(path) > 1:
                ends += [(nb, c, (nb,) + path) for nb, c in adj[path[0]]]
            for nb, c, new in ends:
                if nb in path:
                    continue
                key = (frozenset(new), min(new[0], new[-1]), max(new[0], new[-1]))
                total = cost + c + ro(nb)
                if key not in grown or total < grown[key][0]:
                    grown[key] = (total, new)
        paths = sorted(grown.values())[:beam]
        if not paths:
            raise QSelectError(f"the device has no connected line of {n} working qubits; lower --qubits")
    return list(paths[0][1])


def estimated_fidelity(circuit: QuantumCircuit, backend) -> float:
    """Product of (1 − error) over the circuit's gates and measurements, from the device's Target.

    Parameters
    ----------
    circuit : QuantumCircuit
        An ISA circuit of ``backend`` (physical qubits).
    backend : BackendV2 or Target

    Returns
    -------
    float
        Estimated success probability in [0, 1] (gates without a reported
        error count as perfect; a 2-qubit gate missing from the Target as 1 %).
    """
    target = _target(backend)
    logf = 0.0
    for inst in circuit.data:
        name = inst.operation.name
        if name in ("barrier", "delay"):
            continue
        qargs = tuple(circuit.find_bit(q).index for q in inst.qubits)
        err = None
        if name in target.operation_names:
            props = (target[name] or {}).get(qargs)
            err = None if props is None else props.error
        if err is None and len(qargs) == 2:
            err = 0.01
        if err:
            logf += math.log(max(1e-12, 1.0 - min(float(err), 0.999)))
    return float(math.exp(logf))


# --------------------------------------------------------------------------- the swap-strategy ansatz

@dataclass
class SwapNetwork:
    """One cost layer routed by a line swap strategy (on virtual line wires 0..n-1)."""

    circuit: QuantumCircuit  # cost layer exp(-i t Σ w ZZ) with SWAPs, parameter ``t``
    time: Parameter
    permutation: list[int]  # permutation[w] = variable on wire w after the layer
    swaps: int = 0
    layers: int = 0

    @staticmethod
    def build(n: int, quadratic: dict[tuple[int, int], float]) -> "SwapNetwork":
        """Route the two-qubit cost terms on a line with a commuting-gate swap network.

        Parameters
        ----------
        n : int
            Number of qubits.
        quadratic : dict of (int, int) -> float
            ZZ coefficients of the cost.

        Returns
        -------
        SwapNetwork
            The routed circuit template and the final qubit permutation.
        """
        from qiskit.circuit.library import PauliEvolutionGate
        from qiskit.quantum_info import SparsePauliOp
        from qiskit.transpiler import PassManager
        from qiskit.transpiler.passes.routing.commuting_2q_gate_routing import (
            Commuting2qGateRouter,
            FindCommutingPauliEvolutions,
            SwapStrategy,
        )

        t = Parameter("t")
        qc = QuantumCircuit(n)
        if quadratic:
            op = SparsePauliOp.from_sparse_list([("ZZ", list(q), float(w)) for q, w in quadratic.items()],
                                                num_qubits=n)
            qc.append(PauliEvolutionGate(op, time=t), range(n))
            strategy = SwapStrategy.from_line(list(range(n)))
            # two colours: edges (i, i+1) alternate, so gates of one colour never share a qubit
            colouring = {(i, i + 1): (i + 1) % 2 for i in range(n - 1)}
            routed = PassManager([FindCommutingPauliEvolutions(),
                                  Commuting2qGateRouter(strategy, colouring)]).run(qc)
        else:
            routed = qc
        perm = list(range(n))
        swaps = 0
        for inst in routed.data:
            if inst.operation.name == "swap":
                a, b = (routed.find_bit(q).index for q in inst.qubits)
                perm[a], perm[b] = perm[b], perm[a]
                swaps += 1
        if routed.num_qubits != n:
            raise QSelectError("internal error: swap routing changed the number of qubits")
        return SwapNetwork(routed, t, perm, swaps)


def swap_strategy_qaoa(problem, p: int, max_order: int | None = None) -> QuantumCircuit:
    """The X-mixer QAOA ansatz with each cost layer routed by a line swap strategy.

    Parameters
    ----------
    problem : Problem
        Any qselect problem whose Z-polynomial has order ≤ 2 (QUBOs).
    p : int
        QAOA layers.
    max_order : int or None
        Truncation of the Z-polynomial, as in ``qaoa_circuit``.

    Returns
    -------
    QuantumCircuit
        n qubits laid out as a line (wire i next to wire i+1), n classical bits:
        classical bit i holds variable i. Parameters ``γ[l]``, ``β[l]`` bind
        with ``bind_angles``. Its ideal output distribution equals
        ``qaoa_circuit(problem, p)``'s.

    Raises
    ------
    QSelectError
        A term of order > 2 (no swap strategy applies; use the generic compilation).

    References
    ----------
    Weidenfeld et al. (2023), Quantum 6, 870; Sack & Egger (2024), PRR 6, 013223.
    """
    n = problem.n
    terms, _, _ = normalised_terms(problem, max_order)
    if any(len(q) > 2 for q in terms):
        raise QSelectError("swap-strategy routing needs a quadratic cost (Z terms of order ≤ 2); "
                           "use compile='generic' for higher-order costs")
    linear = {q[0]: w for q, w in terms.items() if len(q) == 1}
    quadratic = {tuple(sorted(q)): w for q, w in terms.items() if len(q) == 2}
    net = SwapNetwork.build(n, quadratic)
    beta, gamma = ParameterVector("β", p), ParameterVector("γ", p)
    qc = QuantumCircuit(n, n, name="QAOA-swap")
    qc.h(range(n))
    wire_of = list(range(n))  # wire_of[variable] = wire it is on now
    forward = net.circuit
    backward = net.circuit.reverse_ops()
    for l in range(p):
        for i, w in sorted(linear.items()):
            qc.rz(2 * w * gamma[l], wire_of[i])
        if not terms:
            qc.rz(0 * gamma[l], 0)  # keep γ[l] a parameter of the circuit
        layer = forward if l % 2 == 0 else backward
        qc.compose(layer.assign_parameters({net.time: gamma[l]}), inplace=True)
        if quadratic:
            if l % 2 == 0:
                # the wire w now carries variable net.permutation[w]
                wire_of = [0] * n
                for w, v in enumerate(net.permutation):
                    wire_of[v] = w
            else:
                wire_of = list(range(n))
        for w in range(n):
            qc.rx(2 * beta[l], w)
    for v in range(n):
        qc.measure(wire_of[v], v)
    return qc


# --------------------------------------------------------------------------- compilation

@dataclass
class Compiled:
    """A compiled circuit with how it was made and what it costs."""

    circuit: QuantumCircuit
    method: str
    seed: int
    two_qubit_gates: int
    two_qubit_depth: int
    depth: int
    fidelity: float
    layout: list[int] = field(default_factory=list)
    tried: list[dict] = field(default_factory=list)

    def resources(self) -> dict:
        """Counts for plan.json / the report."""
        return {"method": self.method, "seed": self.seed, "two_qubit_gates": self.two_qubit_gates,
                "two_qubit_depth": self.two_qubit_depth, "depth": self.depth,
                "estimated_fidelity": self.fidelity, "qubits": len(self.layout), "layout": list(self.layout),
                "tried": list(self.tried)}


def two_qubit_stats(circuit: QuantumCircuit) -> tuple[int, int]:
    """(two-qubit gate count, two-qubit depth) of a circuit, barriers and measurements excluded.

    Parameters
    ----------
    circuit : qiskit.QuantumCircuit

    Returns
    -------
    (int, int)
    """
    count = sum(1 for inst in circuit.data if len(inst.qubits) == 2 and inst.operation.name not in ("barrier",))
    depth = circuit.depth(lambda inst: len(inst.qubits) == 2 and inst.operation.name != "barrier")
    return int(count), int(depth)


def _used_qubits(circuit) -> list[int]:
    used = set()
    for inst in circuit.data:
        if inst.operation.name in ("barrier", "delay"):
            continue
        used.update(circuit.find_bit(q).index for q in inst.qubits)
    return sorted(used)


def _score(compiled: Compiled) -> tuple:
    # best estimated fidelity; ties (targets without errors) broken by fewer 2q gates, then depth
    return (-round(compiled.fidelity, 12), compiled.two_qubit_gates, compiled.two_qubit_depth, compiled.seed)


def _run_pm(circuit, backend, level, seed, initial_layout=None, target=None):
    from qiskit.transpiler import generate_preset_pass_manager

    kw = {"target": target} if target is not None else {"backend": backend}
    pm = generate_preset_pass_manager(optimization_level=level, seed_transpiler=int(seed),
                                      initial_layout=initial_layout, **kw)
    return pm.run(circuit)


def compile_qaoa(problem, p: int, backend, *, mixer: str = "x", k: int | None = None, method: str = "auto",
                 seeds: int | list[int] = 3, seed: int = 0, optimization_level: int = 3, target=None,
                 angles=None) -> Compiled:
    """Compile the QAOA ansatz of ``problem`` for ``backend``, keeping the best of several attempts.

    Parameters
    ----------
    problem : Problem
        The problem (its Z-polynomial is normalised by ``problem.scale()``).
    p : int
        QAOA layers.
    backend : BackendV2
        Device (or fake device) to compile for.
    mixer : {"x", "xy"}
        The swap strategy needs the X mixer (its mixer is invariant under the
        wire permutation); "xy" always compiles generically.
    k : int or None
        Cardinality for the XY mixer's Dicke start.
    method : {"auto", "swap", "generic", "single"}
        "swap": line swap strategy on the best line, level-3 optimisation with
        each seed; "generic": level-3 preset pass manager with each seed;
        "auto": both, best kept; "single": one preset pass at
        ``optimization_level`` with seed ``seed`` (no search).
        "swap"/"auto" fall back to "generic" when no swap strategy applies
        (XY mixer or cost terms of order > 2).
    seeds : int or list of int
        Transpiler seeds tried (an int m means ``seed, seed+1, …, seed+m-1``).
    seed : int
        First seed.
    optimization_level : int
        Preset level of every pass.
    target : Target or None
        Compile for this Target instead of ``backend.target`` (e.g. one with
        fractional RZZ/RX gates); error rates are read from it.
    angles : array-like or None
        ``[γ_1..γ_p, β_1..β_p]`` to bind *before* transpiling (needed for
        fractional gates, whose angle range is checked at compile time).

    Returns
    -------
    Compiled
        The circuit with the highest estimated fidelity (ties: fewest 2-qubit
        gates), its method, seed, counts and every attempt in ``tried``.

    Raises
    ------
    QSelectError
        Unknown method, or a problem wider than the device.
    """
    from .qiskit import bind_angles, qaoa_circuit

    if method not in COMPILE_METHODS:
        raise QSelectError(f"unknown compile method {method!r}; choose one of {', '.join(COMPILE_METHODS)}")
    tgt = target if target is not None else _target(backend)
    nq = int(getattr(tgt, "num_qubits", 0) or 0)
    if nq and problem.n > nq:
        raise QSelectError(f"the problem has {problem.n} variables but the device has {nq} qubits; lower --qubits")
    seed_list = list(range(seed, seed + int(seeds))) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise QSelectError("seeds must name at least one transpiler seed")
    terms, _, _ = normalised_terms(problem)
    swap_ok = mixer == "x" and all(len(q) <= 2 for q in terms)
    bind = (lambda c: bind_angles(c, angles)) if angles is not None else (lambda c: c)
    candidates: list[tuple[str, QuantumCircuit, list[int] | None, list[int]]] = []
    if method == "single":
        candidates.append(("single", bind(qaoa_circuit(problem, p, mixer=mixer, k=k, measure=True)), None, [seed]))
    else:
        if method in ("swap", "auto") and swap_ok:
            line = best_line(tgt, problem.n)
            candidates.append(("swap", bind(swap_strategy_qaoa(problem, p)), line, seed_list))
        if method == "generic" or method == "auto" or not swap_ok:
            candidates.append(("generic", bind(qaoa_circuit(problem, p, mixer=mixer, k=k, measure=True)), None,
                               seed_list))
    best: Compiled | None = None
    tried = []
    for name, circ, layout, seed_values in candidates:
        level = optimization_level
        for s in seed_values:
            out = _run_pm(circ, backend, level, s, initial_layout=layout, target=target)
            out = _fold_fractional(out, tgt)
            n2, d2 = two_qubit_stats(out)
            res = Compiled(out, name, s, n2, d2, int(out.depth()), estimated_fidelity(out, tgt),
                           _used_qubits(out))
            tried.append({"method": name, "seed": s, "two_qubit_gates": n2, "two_qubit_depth": d2,
                          "estimated_fidelity": res.fidelity})
            if best is None or _score(res) < _score(best):
                best = res
    assert best is not None
    best.tried = tried
    return best


# --------------------------------------------------------------------------- fractional gates

def fractional_target(backend):
    """The device's Target with IBM Heron's fractional gates added where they are not reported.

    Real devices opened with ``use_fractional_gates=True`` already list
    ``rzz`` (angles in (0, π/2]) and ``rx``; qiskit-ibm-runtime's fake devices
    do not, so ``rzz`` is added on every two-qubit coupling with the error and
    duration of the native gate there, and ``rx`` on every qubit with the
    properties of ``sx``.

    Parameters
    ----------
    backend : BackendV2

    Returns
    -------
    Target
    """
    import copy

    from qiskit.circuit.library import RXGate, RZZGate
    from qiskit.transpiler import InstructionProperties

    target = copy.deepcopy(_target(backend))
    names = set(target.operation_names)
    if "rzz" not in names:
        native = next((g for g in ("cz", "ecr", "cx") if g in names), None)
        if native is None:
            raise QSelectError("the device has no two-qubit gate to derive fractional RZZ from")
        props = {}
        for qargs, pr in (target[native] or {}).items():
            if qargs is None:
                continue
            props[tuple(qargs)] = InstructionProperties(duration=getattr(pr, "duration", None),
                                                        error=getattr(pr, "error", None))
        target.add_instruction(RZZGate(Parameter("θ")), props, angle_bounds=[(0.0, FRACTIONAL_RZZ_MAX)])
    if "rx" not in names:
        props = {}
        for qargs, pr in (target["sx"] or {}).items():
            if qargs is None:
                continue
            props[tuple(qargs)] = InstructionProperties(duration=getattr(pr, "duration", None),
                                                        error=getattr(pr, "error", None))
        target.add_instruction(RXGate(Parameter("θ")), props)
    return target


def fold_rzz_angle(theta: float) -> tuple[float, bool, bool]:
    """Fold an RZZ angle into (0, π/2]: returns (θ', flip, zz) with RZZ(θ) ≅ [X₀] · [Z⊗Z] · RZZ(θ') · [X₀].

    ``RZZ(θ + 2π) = −RZZ(θ)``; ``RZZ(−θ) = X₀ RZZ(θ) X₀``; ``RZZ(θ) = (Z⊗Z) RZZ(θ − π)`` up to a
    global phase. ``flip``: conjugate by X on the first qubit; ``zz``: apply Z on both qubits.
    A zero angle returns (0, False, False): the gate is the identity.

    Parameters
    ----------
    theta : float

    Returns
    -------
    (float, bool, bool)
    """
    t = math.remainder(float(theta), 2 * math.pi)  # in [-π, π]
    flip = t < 0
    t = abs(t)
    zz = t > FRACTIONAL_RZZ_MAX
    if zz:
        t = math.pi - t  # RZZ(t) = ZZ·RZZ(t−π) = ZZ·X₀RZZ(π−t)X₀
        flip = not flip
    return t, flip, zz


def _fold_fractional(circuit: QuantumCircuit, target) -> QuantumCircuit:
    """Fold every bound RZZ into the Target's range (only if the Target has angle-bounded rzz)."""
    if "rzz" not in target.operation_names or not any(i.operation.name == "rzz" for i in circuit.data):
        return circuit
    if any(i.operation.is_parameterized() for i in circuit.data if i.operation.name == "rzz"):
        raise QSelectError("fractional RZZ gates need the angles bound before transpiling")
    from qiskit.circuit.library import RZGate, RZZGate, XGate

    out = circuit.copy_empty_like()
    for inst in circuit.data:
        if inst.operation.name != "rzz":
            out.append(inst)
            continue
        t, flip, zz = fold_rzz_angle(float(inst.operation.params[0]))
        a, b = inst.qubits
        if t == 0.0:
            if zz:
                out.append(RZGate(math.pi), [a])
                out.append(RZGate(math.pi), [b])
            continue
        if flip:
            out.append(XGate(), [a])
        out.append(RZZGate(t), [a, b])
        if flip:
            out.append(XGate(), [a])
        if zz:
            out.append(RZGate(math.pi), [a])
            out.append(RZGate(math.pi), [b])
    return out


# --------------------------------------------------------------------------- checks

def ideal_clbit_distribution(circuit: QuantumCircuit) -> dict[str, float]:
    """Exact output distribution over the classical bits of a bound circuit ending in measurements.

    The circuit may live on a whole device: only the qubits it touches are
    simulated (statevector), and each measured qubit's probability is written
    to the classical bit it is measured into — so this checks bit order too.

    Parameters
    ----------
    circuit : QuantumCircuit
        Bound, measurements only at the end, at most ~20 active qubits.

    Returns
    -------
    dict[str, float]
        Bitstring (qiskit order: clbit 0 last) -> probability.
    """
    from qiskit.quantum_info import Statevector

    used = _used_qubits(circuit)
    index = {q: i for i, q in enumerate(used)}
    small = QuantumCircuit(len(used), global_phase=circuit.global_phase)
    meas: dict[int, int] = {}
    for inst in circuit.data:
        name = inst.operation.name
        qs = [circuit.find_bit(q).index for q in inst.qubits]
        if name in ("barrier", "delay"):
            continue
        if name == "measure":
            meas[circuit.find_bit(inst.clbits[0]).index] = index[qs[0]]
            continue
        if any(circuit.find_bit(q).index in meas.values() for q in inst.qubits) and False:
            pass
        small.append(inst.operation, [index[q] for q in qs])
    probs = Statevector(small).probabilities()
    nc = circuit.num_clbits
    out: dict[str, float] = {}
    for state, pr in enumerate(probs):
        if pr < 1e-15:
            continue
        bits = ["0"] * nc
        for c, q in meas.items():
            if (state >> q) & 1:
                bits[nc - 1 - c] = "1"
        key = "".join(bits)
        out[key] = out.get(key, 0.0) + float(pr)
    return out


def to_native_basis(circuit: QuantumCircuit, backend) -> QuantumCircuit:
    """An ISA circuit of a fractional-gate Target rewritten in ``backend``'s reported basis.

    Keeps every qubit where it is (the layout is the identity on the device's
    wires): each RZZ/RX becomes native two-/one-qubit gates on the same
    physical qubits, so measured classical bits are unchanged.

    Parameters
    ----------
    circuit : QuantumCircuit
        A bound circuit on the device's physical qubits.
    backend : BackendV2
        The device whose Target lacks the fractional gates.

    Returns
    -------
    QuantumCircuit
    """
    from qiskit.circuit.equivalence_library import SessionEquivalenceLibrary
    from qiskit.transpiler import PassManager
    from qiskit.transpiler.passes import BasisTranslator, Optimize1qGatesDecomposition

    target = _target(backend)
    pm = PassManager([BasisTranslator(SessionEquivalenceLibrary, target_basis=None, target=target),
                      Optimize1qGatesDecomposition(target=target)])
    return pm.run(circuit)
