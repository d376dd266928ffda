"""Executors: same results in the same order whichever runs them, with or without a bar."""
import pytest

from qselect import QUBO
from qselect.errors import QSelectError
from qselect.executors import InlineExecutor, ProcessExecutor, get_executor
from qselect.solvers import get_solver


def _square(x):
    return x * x


@pytest.mark.parametrize("spec", [None, "inline", "process"])
def test_results_in_input_order_with_and_without_progress(spec, capsys):
    items = list(range(7))
    ex = get_executor(spec)
    assert ex.map(_square, items) == [x * x for x in items]
    assert ex.map(_square, items, progress="squares") == [x * x for x in items]
    assert "squares" in capsys.readouterr().err  # the bar was drawn


def test_solve_many_same_answers_inline_and_process_with_progress(capsys):
    probs = [QUBO.random(8, seed=s) for s in range(4)]
    sa = get_solver("sa", seed=3)
    a = sa.solve_many(probs)
    b = sa.solve_many(probs, executor=ProcessExecutor(2), progress="local problems")
    assert [r.bits.tolist() for r in a] == [r.bits.tolist() for r in b]
    assert [r.energy for r in a] == [r.energy for r in b]
    assert "local problems" in capsys.readouterr().err


def test_unknown_executor_is_one_clear_error():
    with pytest.raises(QSelectError, match="inline.*process.*tcp://"):
        get_executor("threads")
    assert isinstance(get_executor(InlineExecutor()), InlineExecutor)


def test_unreachable_dask_scheduler_is_one_clear_error():
    pytest.importorskip("distributed")
    from qselect.executors import DaskExecutor

    with pytest.raises(QSelectError,
                       match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:1 .*--scheduler process"):
        DaskExecutor("tcp://127.0.0.1:1", timeout=1)


def test_parallelism_says_how_many_items_run_at_once():
    assert InlineExecutor().parallelism == 1
    assert ProcessExecutor(3).parallelism == 3
    assert get_solver("sa").for_workers(4).get_params() == get_solver("sa").get_params()


def test_batched_solves_show_progress_in_problems_or_batches(capsys):
    from qselect.formulate.decompose import BlockSolver
    from qselect.solvers.qaoa import QAOASolver

    probs = [QUBO.random(10, seed=s) for s in range(3)]
    block = BlockSolver(QAOASolver(p=1, seed=0, shots=32), qubits=5, max_sweeps=1)
    block.solve_many(probs, progress="local problems")
    err = capsys.readouterr().err
    assert "local problems" in err and "3/3" in err and "problem" in err
    block.solve_many(probs, executor=ProcessExecutor(2), progress="local problems")
    err = capsys.readouterr().err
    assert "2/2" in err and "batch" in err
    QAOASolver(p=1, shots=32).solve_many([QUBO.random(5, seed=s) for s in range(3)], progress="qaoa")
    assert "3/3" in capsys.readouterr().err


def test_an_executor_made_from_an_address_is_closed_after_the_solve(monkeypatch):
    import qselect.executors as ex_mod

    made = []

    class FakeDask(InlineExecutor):  # stands in for a connection opened from an address
        def __init__(self, address, timeout=None):
            self.closed = False
            made.append(self)

        @property
        def parallelism(self):
            return 2

        def close(self):
            self.closed = True

    monkeypatch.setattr(ex_mod, "DaskExecutor", FakeDask)
    from qselect.formulate.decompose import BlockSolver
    from qselect.solvers.qaoa import QAOASolver

    probs = [QUBO.random(6, seed=s) for s in range(3)]
    for solver in (get_solver("sa", seed=0), QAOASolver(p=1, shots=16), BlockSolver(QAOASolver(p=1, shots=16), 4)):
        solver.solve_many(probs, executor="tcp://scheduler:8786")
        assert made[-1].closed
    kept = ProcessExecutor(2)
    with ex_mod.executor_scope(kept) as ex:  # an executor passed in stays the caller's
        assert ex is kept


def test_solvers_that_cannot_fork_stay_in_this_process():
    import os

    from qselect.formulate.decompose import BlockSolver
    from qselect.solvers.base import make_result
    from qselect.solvers.exact import ExactSolver
    from qselect.solvers.qaoa import QAOASolver

    class OnThisDevice(ExactSolver):  # e.g. a solver holding a CUDA context
        def fork_safe(self):
            return False

        def _solve(self, problem):
            return make_result(problem, super()._solve(problem).bits, "here", info={"pid": os.getpid()})

    probs = [QUBO.random(6, seed=s) for s in range(3)]
    out = OnThisDevice().solve_many(probs, executor=ProcessExecutor(2))
    assert {r.info["pid"] for r in out} == {os.getpid()}
    assert get_solver("sa").fork_safe() and QAOASolver(engine="numpy").fork_safe()
    assert BlockSolver(QAOASolver(engine="numpy")).fork_safe()
    assert not QAOASolver(engine="torch", device="cpu").fork_safe()  # on CUDA, and thread-count-dependent sums
    assert not BlockSolver(QAOASolver(engine="torch")).fork_safe()


_TORCH_POOL = """
import torch
from qselect.executors import ProcessExecutor


def work(i):
    return float(torch.exp(torch.rand(4_000_000)).sum()) > 0, torch.get_num_threads()


if __name__ == "__main__":
    torch.set_num_threads(2)
    torch.exp(torch.rand(4_000_000)).sum()  # the parent's intra-op threads are running now
    print(ProcessExecutor(2).map(work, [0, 1]))
"""


def test_pool_workers_run_torch_on_one_thread_of_their_own(tmp_path):
    """A forked worker must not wait on the torch threads of a parent that had started them."""
    import subprocess
    import sys

    pytest.importorskip("torch")
    script = tmp_path / "pool.py"
    script.write_text(_TORCH_POOL)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[(True, 1), (True, 1)]"


def test_bad_items_are_refused_before_a_pool_starts():
    from qselect.formulate.decompose import BlockSolver

    for solver in (get_solver("sa"), BlockSolver(get_solver("sa"), qubits=4)):
        with pytest.raises(QSelectError, match=r"solve_many expects qselect problems .* got function at position 1"):
            solver.solve_many([QUBO.random(5, seed=0), lambda: 0], executor=ProcessExecutor(2))
    with pytest.raises(QSelectError, match="unknown executor 3; use 'inline', 'process'"):
        get_executor(3)


def test_one_problem_instead_of_a_list_is_one_clear_error():
    """solve_many(problem) (a common slip) names the fix instead of failing inside list()."""
    from qselect.formulate.decompose import BlockSolver
    from qselect.solvers.qaoa import QAOASolver

    q = QUBO.random(5, seed=0)
    for solver in (get_solver("exact"), get_solver("sa"), QAOASolver(p=1), BlockSolver(QAOASolver(p=1), qubits=4),
                   get_solver("swap")):
        with pytest.raises(QSelectError, match=r"takes a list of problems, got one QUBO; use solve\(problem\)") as e:
            solver.solve_many(q)
        assert "\n" not in str(e.value)
    with pytest.raises(QSelectError, match=r"QAOASolver.solve_batch takes a list of problems, got int"):
        QAOASolver(p=1).solve_batch(3)


@pytest.mark.parametrize("address, match", [("tcp://127.0.0.1:99999", "port in 1-65535"), ("tcp://:8786", "a host"),
                                            ("http://host:8786", "scheme 'http'")])
def test_malformed_dask_addresses_are_refused_at_once(address, match, tmp_path, capsys):
    """A malformed address is one line before any connect attempt (which would wait the full timeout)."""
    from qselect.cli import main

    with pytest.raises(QSelectError, match=match):
        get_executor(address)
    code = main(["select", "--solver", "exact", "--hidden", "4,4", "--epochs", "1", "--run-dir",
                 str(tmp_path / "run"), "--scheduler", address])
    err = capsys.readouterr().err
    assert code == 2 and match.split()[0] in err and "--scheduler" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # refused before anything is written
