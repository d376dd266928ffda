"""Classical solvers: exact is exact, heuristics reach the optimum on small dense problems."""
import dimod
import numpy as np
import pytest

from qselect import QUBO, DiagonalCost, QSelectError
from qselect.interop.dimod import to_bqm
from qselect.problems import Problem, index_to_bits
from qselect.solvers import (
    SOLVERS,
    ExactSolver,
    GreedySolver,
    MagnitudeSolver,
    RandomSolver,
    SimulatedAnnealingSolver,
    SolveResult,
    TabuSolver,
    get_solver,
)


def brute(problem, k=None):
    c = problem.cost_vector()
    if k is not None:
        c = np.where(index_to_bits(np.arange(c.size), problem.n).sum(1) == k, c, np.inf)
    return float(c.min()), int(np.argmin(c))


@pytest.mark.parametrize("n", [1, 2, 5, 9, 14])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_matches_dimod_exact_solver(n, seed):
    q = QUBO.random(n, density=0.7, seed=seed)
    ref = dimod.ExactSolver().sample(to_bqm(q)).first
    r = ExactSolver(chunk_bits=4).solve(q)  # several chunks for n > 4
    assert r.energy == pytest.approx(ref.energy, abs=1e-9)
    assert q.energy(r.bits) == pytest.approx(r.energy)
    assert r.bits.dtype == np.uint8 and r.bits.shape == (n,)


def test_exact_chunking_does_not_change_answer():
    q = QUBO.random(13, seed=7)
    results = [ExactSolver(chunk_bits=c, num_best=5).solve(q) for c in (1, 3, 13, 20)]
    for r in results[1:]:
        np.testing.assert_array_equal(r.samples, results[0].samples)
        np.testing.assert_allclose(r.energies, results[0].energies)
    c = np.sort(q.cost_vector())[:5]
    np.testing.assert_allclose(results[0].energies, c)


def test_exact_respects_k_and_diagonal_costs():
    rng = np.random.default_rng(3)
    d = DiagonalCost(rng.normal(size=2**8), k=3)
    r = ExactSolver(respect_k=True, chunk_bits=5).solve(d)
    assert r.kept == 3
    assert r.energy == pytest.approx(brute(d, 3)[0])
    assert ExactSolver().solve(d).energy == pytest.approx(d.cost_vector().min())
    q = QUBO.random(10, seed=4, k=4)
    rk = ExactSolver(respect_k=True, chunk_bits=6).solve(q)
    assert rk.kept == 4 and rk.energy == pytest.approx(brute(q, 4)[0])
    # many chunks, some with no feasible bitstring at all (high bits alone set > k): the k-best list
    # is exactly the k-bit energies in order
    c = q.cost_vector()
    feasible = np.sort(c[index_to_bits(np.arange(c.size), 10).sum(1) == 4])
    for chunk in (2, 3, 10):
        rb = ExactSolver(respect_k=True, chunk_bits=chunk, num_best=7).solve(q)
        np.testing.assert_allclose(rb.energies, feasible[:7])
        assert np.all(rb.samples.sum(1) == 4)


def test_exact_limits_are_clear():
    with pytest.raises(QSelectError, match="beyond its limit"):
        ExactSolver(max_bits=10).solve(QUBO.random(11))
    with pytest.raises(QSelectError, match="needs a problem with a cardinality"):
        ExactSolver(respect_k=True).solve(QUBO.random(3))
    with pytest.raises(QSelectError, match="qselect problem"):
        ExactSolver().solve(np.eye(3))


@pytest.mark.parametrize("solver_cls", [SimulatedAnnealingSolver, TabuSolver])
def test_heuristics_reach_optimum_on_small_dense(solver_cls):
    for seed in range(4):
        q = QUBO.random(16, density=1.0, seed=100 + seed)
        opt = brute(q)[0]
        r = solver_cls(seed=seed).solve(q)
        assert r.energy == pytest.approx(opt, abs=1e-9), f"{solver_cls.__name__} missed the optimum, seed {seed}"
        assert r.samples is not None and r.energies[0] == pytest.approx(r.energy)
        assert np.all(np.diff(r.energies) >= 0)


@pytest.mark.parametrize("name", ["sa", "tabu", "random", "greedy", "magnitude", "exact"])
def test_same_seed_same_result(name):
    q = QUBO.random(12, seed=5, k=6)
    a, b = get_solver(name).solve(q), get_solver(name).solve(q)
    np.testing.assert_array_equal(a.bits, b.bits)
    if a.samples is not None:
        np.testing.assert_array_equal(a.samples, b.samples)
        np.testing.assert_array_equal(a.counts, b.counts)


def test_sa_different_seeds_sample_differently():
    q = QUBO.random(20, seed=9)
    a = SimulatedAnnealingSolver(num_reads=8, num_sweeps=5, seed=1).solve(q)
    b = SimulatedAnnealingSolver(num_reads=8, num_sweeps=5, seed=2).solve(q)
    assert not np.array_equal(a.samples, b.samples) or not np.array_equal(a.counts, b.counts)


def test_higher_order_diagonal_is_rescored_with_exact_cost():
    rng = np.random.default_rng(0)
    d = DiagonalCost(rng.normal(size=2**6))
    assert d.order() > 2
    r = SimulatedAnnealingSolver(seed=0).solve(d)
    assert "surrogate" in r.info
    np.testing.assert_allclose(r.energies, d.energy(r.samples))
    assert r.energy == pytest.approx(d.energy(r.bits))


def test_baselines_keep_k():
    q = QUBO.random(10, seed=2, k=4)
    for s in (GreedySolver(), RandomSolver(seed=3), MagnitudeSolver()):
        assert s.solve(q).kept == 4
    draws = {tuple(RandomSolver(seed=s).solve(q).bits) for s in range(8)}
    assert len(draws) > 1


def test_magnitude_uses_attached_scores_then_single_bit_gain():
    q = QUBO(np.zeros((4, 4)), linear=[-1.0, -3.0, 0.5, -2.0], k=2)
    assert MagnitudeSolver().solve(q).bits.tolist() == [0, 1, 0, 1]  # gains 1, 3, -0.5, 2
    q.scores = np.array([5.0, 0.0, 4.0, 0.0])
    assert MagnitudeSolver().solve(q).bits.tolist() == [1, 0, 1, 0]
    with pytest.raises(QSelectError, match="scores"):  # refused where it is set, not later in a solver
        q.scores = np.array([1.0, 2.0])
    with pytest.raises(QSelectError, match="scores"):
        q.scores = np.array([1.0, np.nan, 0.0, 0.0])


def test_greedy_descends_to_local_minimum_without_k():
    q = QUBO.random(8, seed=11)
    r = GreedySolver().solve(q)
    flips = np.repeat(r.bits[None], 8, axis=0)
    flips[np.arange(8), np.arange(8)] ^= 1
    assert np.all(q.energy(flips) >= r.energy - 1e-12)


def test_greedy_with_swaps_is_a_swap_local_optimum_and_beats_random():
    gaps = []
    for seed in range(3):
        q = QUBO.random(12, seed=seed).with_cardinality_penalty(5, 0.0)  # k=5 as a hint only
        r = GreedySolver().solve(q)
        g = r.energy
        assert r.kept == 5
        assert g <= RandomSolver(seed=seed).solve(q).energy + 1e-12
        # a 1-in/1-out swap local optimum
        on, off = np.flatnonzero(r.bits), np.flatnonzero(r.bits == 0)
        for i in on:
            for j in off:
                y = r.bits.copy()
                y[i], y[j] = 0, 1
                assert q.energy(y) >= g - 1e-9
        gaps.append(g - brute(q, 5)[0])
    assert min(gaps) >= -1e-12


def test_registry():
    assert {"exact", "sa", "tabu", "greedy", "random", "magnitude", "qaoa"} <= set(SOLVERS)
    assert isinstance(get_solver("sa", num_reads=3, seed=4), SimulatedAnnealingSolver)
    assert get_solver("sa", num_reads=3).num_reads == 3
    s = ExactSolver()
    assert get_solver(s) is s
    with pytest.raises(QSelectError, match="unknown solver 'bogus'; valid names: .*exact.*tabu"):
        get_solver("bogus")
    with pytest.raises(QSelectError, match="bad settings for solver 'exact'"):
        get_solver("exact", nonsense=1)
    with pytest.raises(QSelectError):
        get_solver("sa", num_reads=0)


@pytest.mark.parametrize("make, match", [
    (lambda: SimulatedAnnealingSolver(num_reads="8"), "num_reads must be an integer"),
    (lambda: SimulatedAnnealingSolver(beta_schedule_type="cosine"), "beta_schedule_type must be one of"),
    (lambda: SimulatedAnnealingSolver(beta_range=(1.0,)), "beta_range must be two"),
    (lambda: SimulatedAnnealingSolver(beta_range=(2.0, 1.0)), "beta_range must be two"),
    (lambda: TabuSolver(tenure=-1), "tenure must be an integer ≥ 0"),
    (lambda: SimulatedAnnealingSolver(seed=2**32 - 1), r"seed must be an integer in \[0, 4294967294\]"),
    (lambda: TabuSolver(seed=-1), "seed must be an integer in"),
    (lambda: ExactSolver(chunk_bits="a"), "chunk_bits must be an integer"),
    (lambda: ExactSolver(num_best=0), "num_best must be an integer ≥ 1"),
    (lambda: GreedySolver(k=1.5).solve(QUBO.random(3)), "k must be an integer"),
    (lambda: RandomSolver(k=-1).solve(QUBO.random(3)), "k must be an integer ≥ 0"),
])
def test_settings_are_checked_up_front(make, match):
    """Bad settings fail with a QSelectError naming the setting, not deep inside dwave-samplers."""
    with pytest.raises(QSelectError, match=match):
        make()


def test_lazy_registry_entry_loads_on_demand(monkeypatch):
    from qselect import solvers

    monkeypatch.setitem(solvers.SOLVERS, "lazy_exact", "qselect.solvers.exact:ExactSolver")
    assert isinstance(get_solver("lazy_exact", chunk_bits=3), ExactSolver)
    monkeypatch.setitem(solvers.SOLVERS, "broken", "qselect.no_such_module:Thing")
    with pytest.raises(QSelectError, match="not available"):
        get_solver("broken")


def test_importing_solvers_does_not_import_backends():
    import subprocess
    import sys

    code = ("import sys, qselect.solvers, qselect.formulate; "
            "bad = [m for m in ('dimod', 'qiskit', 'pennylane') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_solve_many_and_result_dict():
    probs = [QUBO.random(6, seed=s) for s in range(3)]
    res = ExactSolver().solve_many(probs)
    assert all(isinstance(r, SolveResult) for r in res)
    assert [r.energy for r in res] == pytest.approx([brute(p)[0] for p in probs])
    d = res[0].to_dict()
    assert d["solver"] == "exact" and len(d["bits"]) == 6 and d["wall_time"] >= 0


def test_random_masks_differ_between_named_problems_but_repeat():
    a = QUBO(np.zeros((20, 20)), k=10, name="layer[0]")
    b = QUBO(np.zeros((20, 20)), k=10, name="layer[1]")
    r = RandomSolver(seed=0)
    assert r.solve(a).bits.tolist() != r.solve(b).bits.tolist()
    assert r.solve(a).bits.tolist() == RandomSolver(seed=0).solve(a).bits.tolist()


# ---- exact-cost swaps, and k kept by the samplers -------------------------------------------

class Opaque(Problem):
    """A problem known only through ``energy`` (exercises the generic, batched path)."""

    def __init__(self, inner):
        self.inner, self.labels, self.k, self.name = inner, inner.labels, inner.k, "opaque"

    num_variables = property(lambda self: self.inner.n)

    def energy(self, bits):
        return self.inner.energy(bits)

    def cost_vector(self, dtype=np.float64):
        return self.inner.cost_vector(dtype)

    def z_terms(self):
        return self.inner.z_terms()

    def fix(self, assignment):
        return self.inner.fix(assignment)


@pytest.mark.parametrize("kind", ["qubo", "diagonal", "opaque"])
def test_flip_and_swap_deltas_equal_energy_differences(kind):
    from qselect.solvers.baselines import flip_deltas, swap_deltas

    rng = np.random.default_rng(3)
    n = 9
    q = QUBO.random(n, density=0.8, seed=4)
    p = {"qubo": q, "diagonal": DiagonalCost(rng.normal(size=2**n)), "opaque": Opaque(q)}[kind]
    for x in rng.integers(0, 2, size=(5, n)).astype(np.uint8):
        e = p.energy(x)
        flips = np.repeat(x[None], n, axis=0)
        flips[np.arange(n), np.arange(n)] ^= 1
        np.testing.assert_allclose(flip_deltas(p, x), p.energy(flips) - e, atol=1e-9)
        on, off = np.flatnonzero(x), np.flatnonzero(x == 0)
        d = swap_deltas(p, x, on, off)
        assert d.shape == (on.size, off.size)
        for a, i in enumerate(on):
            for b, j in enumerate(off):
                y = x.copy()
                y[i], y[j] = 0, 1
                assert d[a, b] == pytest.approx(p.energy(y) - e, abs=1e-9)


@pytest.mark.parametrize("solver_cls", [SimulatedAnnealingSolver, TabuSolver])
def test_samplers_keep_k_on_higher_order_costs(solver_cls):
    # a cost (order 7, k hint 2, no penalty) whose low states keep about 5 bits: the sampled
    # answers keep 5-6 bits unless k is enforced
    rng = np.random.default_rng(0)
    n, k = 7, 2
    pc = index_to_bits(np.arange(2**n), n).sum(1).astype(np.int64)
    c = rng.normal(size=2**n) + 10.0 * np.abs(pc - 5)
    d = DiagonalCost(c, k=k)
    assert d.order() > 2 and int(pc[np.argmin(c)]) != k
    r = solver_cls(seed=1).solve(d)
    assert r.kept == k and r.energy == pytest.approx(brute(d, k)[0])  # small: swaps reach the k-optimum
    assert r.energy <= MagnitudeSolver().solve(d).energy
    assert r.info["k_polish"]["source"] in ("sample", "magnitude")
    off = solver_cls(seed=1, enforce_k=False).solve(d)  # the raw sampler answer, for contrast
    assert off.kept != k and off.energy == pytest.approx(off.energies[0])
    plain = solver_cls(seed=1).solve(DiagonalCost(c))  # no k: unchanged behaviour
    assert "k_polish" not in plain.info and plain.energy == pytest.approx(plain.energies[0])


def test_sa_accepts_every_documented_seed():
    q = QUBO.random(6, seed=1)
    for seed in (0, 2**31 - 1, 2**31, 2**32 - 2):  # dwave's SA itself takes < 2^31 only
        r = SimulatedAnnealingSolver(num_reads=2, num_sweeps=10, seed=seed).solve(q)
        assert r.bits.shape == (6,)
    a = SimulatedAnnealingSolver(num_reads=4, num_sweeps=10, seed=2**32 - 2).solve(q)
    b = SimulatedAnnealingSolver(num_reads=4, num_sweeps=10, seed=2**32 - 2).solve(q)
    np.testing.assert_array_equal(a.samples, b.samples)


@pytest.mark.parametrize("name", ["exact", "sa", "tabu", "greedy", "magnitude", "random", "qaoa"])
def test_settings_round_trip_and_changed_copies_revalidate(name):
    from qselect.solvers import get_solver

    s = get_solver(name)
    params = s.get_params()
    assert type(s)(**params).get_params() == params
    if "seed" in params:
        t = s.set_params(seed=7)
        assert t.seed == 7 and s.seed == params["seed"] and t is not s  # a copy; the original is untouched
        with pytest.raises(QSelectError, match="seed"):
            s.set_params(seed=-1)  # validated again, like a new solver
    with pytest.raises(QSelectError, match="no setting"):
        s.set_params(not_a_setting=1)
