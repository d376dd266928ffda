"""NK selection prunes what is asked: every solver, both ways of choosing the K weights.

Sparsity means the fraction of each row's weights removed; K (the local
problem size) is its own setting, independent of the qubit budget; a
reference energy is built on the very problems that were solved.
"""
import numpy as np
import pytest
import torch
from torch import nn

from qselect import QSelectError
from qselect.errors import ProblemTooLargeError
from qselect.formulate import BlockSolver, keep_count, nk_problems, select_masks
from qselect.formulate.nk import NK_DEFAULT_K, nk_plan
from qselect.formulate.select import reference_energies
from qselect.problems import DiagonalCost
from qselect.problems.bits import popcounts
from qselect.solvers import (
    ExactSolver,
    GreedySolver,
    MagnitudeSolver,
    RandomSolver,
    SimulatedAnnealingSolver,
    Solver,
    TabuSolver,
    make_result,
)
from qselect.solvers.qaoa import QAOASolver


def _net(fan_in=10, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(fan_in, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2)).double()


def _solvers():
    return {"exact": ExactSolver(), "sa": SimulatedAnnealingSolver(num_reads=4, num_sweeps=100, seed=0),
            "tabu": TabuSolver(num_reads=1, num_restarts=0, seed=0, timeout=5), "greedy": GreedySolver(),
            "magnitude": MagnitudeSolver(), "random": RandomSolver(seed=0),
            "qaoa": QAOASolver(p=1, seed=0, shots=64, maxiter=10)}


def _weight_sparsity(masks):
    kept = sum(float(m.sum()) for k, m in masks.items() if k.endswith("weight"))
    total = sum(m.numel() for k, m in masks.items() if k.endswith("weight"))
    return 1.0 - kept / total


@pytest.mark.parametrize("name", ["exact", "sa", "tabu", "greedy", "magnitude", "random", "qaoa"])
def test_every_solver_hits_the_asked_sparsity(name):
    net = _net()
    x = torch.randn(16, 10, dtype=torch.float64)
    cases = [("magnitude", 0.5, 4, 3),  # K=4 decided in 3-qubit blocks
             ("magnitude", 0.7, 3, 8),
             ("prune", 0.6, 4, 8)]  # rows keep round(0.4·10) = 4 ≤ K of 10 and round(0.4·5) = 2 of 5
    for rest, sparsity, K, qubits in cases:
        sel = select_masks(net, x, formulation="nk", sparsity=sparsity, solver=_solvers()[name], K=K,
                           qubits=qubits, layers=["0", "2"], nk_rest=rest)
        for layer, fan in (("0", 10), ("2", 5)):
            rows = sel.masks[f"{layer}.weight"].sum(dim=1)
            assert torch.all(rows == keep_count(fan, sparsity)), (name, rest, sparsity, layer, rows)
        assert all(lp.n == K for lp in sel.problems)  # K is the problem size, whatever the budget
        assert all(int(r.bits.sum()) == lp.k for lp, r in zip(sel.problems, sel.results))
        expect = 1 - (5 * keep_count(10, sparsity) + 4 * keep_count(5, sparsity)) / 70
        assert _weight_sparsity(sel.masks) == pytest.approx(expect)
        assert sel.summary()["sparsity_actual"] == pytest.approx(expect)
        assert abs(expect - sparsity) <= 0.5 / 5 + 1e-12  # rounding of 5- and 10-weight rows only


def test_digits_sized_layer_keeps_half_with_the_default_budget():
    # a 64-input layer at the default sparsity: the NK unit used to keep round(0.5·K) = 4 of 64 weights
    # (weight sparsity 0.94), and a classical solver's unbounded block size became K = 64 (2^64 masks)
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(64, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    x = torch.randn(20, 64, dtype=torch.float64)
    for solver, qubits in ((GreedySolver(), 1 << 20), (QAOASolver(p=1, seed=0, shots=64, maxiter=10), 8)):
        sel = select_masks(net, x, formulation="nk", sparsity=0.5, solver=solver, qubits=qubits, layers=["0"])
        assert torch.all(sel.masks["0.weight"].sum(dim=1) == 32)
        assert all(lp.n == NK_DEFAULT_K for lp in sel.problems)
        assert sel.info["K"] == NK_DEFAULT_K and sel.info["nk_rest"] == "magnitude"


def test_prune_rest_refuses_before_any_forward_pass():
    net = _net()
    calls = []
    net[0].register_forward_hook(lambda *a: calls.append(1))
    with pytest.raises(QSelectError, match=r"keeps 5 of its 10 weights.*K=4.*K ≥ 5.*rest='magnitude'"):
        select_masks(net, torch.randn(8, 10, dtype=torch.float64), formulation="nk", sparsity=0.5, K=4,
                     layers=["0"], nk_rest="prune")
    assert calls == []
    with pytest.raises(QSelectError, match="rest must be 'magnitude'"):
        nk_plan("0", net[0], K=4, sparsity=0.5, rest="all")
    plan = nk_plan("0", net[0], K=40, sparsity=0.25, rest="prune")
    assert plan == {"fan_in": 10, "K": 10, "keep": 8, "sparsity_actual": pytest.approx(0.2)}


def test_loss_table_too_large_names_K_not_the_qubit_budget(monkeypatch):
    from qselect.problems import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 2**20)
    layer = nn.Linear(40, 2).double()
    with pytest.raises(ProblemTooLargeError, match=r"2\^30 masks.*choose K ≤ \d+ weights per NK unit"):
        nk_problems("big", layer, torch.randn(6, 40, dtype=torch.float64), K=30, sparsity=0.5)


def test_problems_do_not_depend_on_the_solver_or_its_block_size():
    # the compare command's exact reference used to be built at K = its block size, not the solved K
    net = _net(seed=3)
    x = torch.randn(12, 10, dtype=torch.float64)
    a = select_masks(net, x, formulation="nk", sparsity=0.5, solver=ExactSolver(), K=6, qubits=10, layers=["0"])
    b = select_masks(net, x, formulation="nk", sparsity=0.5, solver=GreedySolver(), K=6, qubits=3, layers=["0"])
    for pa, pb in zip(a.problems, b.problems):
        assert pa.n == pb.n == 6 and pa.k == pb.k
        assert np.array_equal(pa.problem.cost_vector(), pb.problem.cost_vector())


def test_reference_is_built_on_the_solved_problems():
    net = _net(seed=4)
    x = torch.randn(12, 10, dtype=torch.float64)
    sel = select_masks(net, x, formulation="nk", sparsity=0.5, solver=RandomSolver(seed=1), K=5, qubits=5,
                       layers=["0", "2"])
    refs = reference_energies(sel, max_bits=10)
    assert len(refs) == len(sel.problems)
    for lp, r, ref in zip(sel.problems, sel.results, refs):
        c = lp.problem.cost_vector()
        brute = c[popcounts(lp.n) == lp.k].min()  # independent: min over the weight-k strings
        assert ref == pytest.approx(brute, rel=1e-12, abs=1e-12)
        assert r.energy >= ref - 1e-9  # every gap ≥ 0: same problem, same K
    assert reference_energies(sel, max_bits=4) == [None] * len(sel.problems)


class _AllOnes(Solver):
    """Answers every bit set, as an unconstrained sampler might."""

    name = "ones"

    def _solve(self, problem):
        return make_result(problem, np.ones(problem.n, np.uint8), self.name)


def test_block_solver_repairs_an_answer_off_k():
    rng = np.random.default_rng(0)
    p = DiagonalCost(rng.normal(size=2**5), k=2)
    r = BlockSolver(_AllOnes(), qubits=8).solve(p)
    assert r.kept == 2 and r.info["k_repair"]["off_k_kept"] == 5
    assert r.energy == pytest.approx(p.energy(r.bits))
    assert r.energy <= MagnitudeSolver(k=2).solve(p).energy + 1e-12


def test_cli_compare_nk_hits_sparsity_and_measures_gaps_on_the_solved_problems(tmp_path):
    import csv

    from qselect.cli import main

    out = tmp_path / "cmp"
    # --qubits is K for every solver; the exact reference (--exact-limit 6) must not rebuild at another K
    assert main(["compare", "--formulation", "nk", "--qubits", "4", "--exact-limit", "6", "--methods",
                 "qaoa,magnitude", "--sparsities", "0.5", "--seeds", "0", "--hidden", "8,6", "--epochs", "1",
                 "--finetune-epochs", "0", "--calib-size", "24", "--scheduler", "inline", "--run-dir", str(out),
                 "-q"]) == 0
    with open(out / "results.csv") as fh:
        results = list(csv.DictReader(fh))
    expect = 1 - (8 * keep_count(64, 0.5) + 6 * keep_count(8, 0.5)) / (8 * 64 + 6 * 8)
    assert {r["method"] for r in results} == {"qaoa", "magnitude"}
    for r in results:
        assert float(r["sparsity_actual"]) == pytest.approx(expect)
    with open(out / "problems.csv") as fh:
        problems = list(csv.DictReader(fh))
    assert problems and all(p["n"] == "4" and p["reference"] == "exact" for p in problems)
    assert all(float(p["gap"]) >= -1e-9 for p in problems)
    qaoa = [p for p in problems if p["method"] == "qaoa"]
    assert qaoa and all(0 <= float(p["p_opt_uniform"]) <= 1 and p["p_opt"] for p in qaoa)
    assert "against uniform random bitstrings" in (out / "summary.md").read_text()
