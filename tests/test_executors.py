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
