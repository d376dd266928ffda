"""Executor independence: the same local problems give the same answers whether
they are solved in-process, in a process pool, or on a Dask cluster."""
import numpy as np
import pytest
import torch

from qselect.classical.data import load_dataset
from qselect.classical.masks import load_masks
from qselect.classical.models import build_model
from qselect.cli import main
from qselect.executors import ProcessExecutor, get_executor
from qselect.formulate import select_masks
from qselect.problems import QUBO
from qselect.solvers import get_solver
from qselect.solvers.base import Solver, make_result, solve_in_chunks

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    # in-process workers keep the test fast on 2 cores; tasks still go through the scheduler
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="module")
def model_and_calib():
    data = load_dataset("digits", seed=0)
    model = build_model("mlp", data.input_shape, data.num_classes, seed=3, hidden=(10, 10))
    return model, data.train.tensors[0][:64]


def _fingerprint(selection):
    masks = {k: v.clone() for k, v in selection.masks.items()}
    return masks, [(r.bits.tobytes(), r.energy) for r in selection.results]


@pytest.mark.parametrize("solver", ["sa", "qaoa"])
def test_select_masks_same_on_every_executor(cluster, model_and_calib, solver):
    model, calib = model_and_calib
    kw = dict(formulation="weight", sparsity=0.5, qubits=5, layers=["layers.2"], seed=7)
    make = lambda: get_solver(solver, seed=7)  # noqa: E731
    inline = _fingerprint(select_masks(model, calib, solver=make(), executor="inline", **kw))
    assert len(inline[1]) == 10  # one local problem per output neuron, each decomposed into blocks
    with distributed.Client(cluster) as client:
        dask = _fingerprint(select_masks(model, calib, solver=make(), executor=client, **kw))
        assert client.run(lambda: 1)  # the cluster really has workers
    pool = _fingerprint(select_masks(model, calib, solver=make(), executor="process", **kw))
    for other in (dask, pool):
        assert inline[1] == other[1]
        assert inline[0].keys() == other[0].keys()
        assert all(torch.equal(inline[0][k], other[0][k]) for k in inline[0])


def test_dask_executor_maps_in_order(cluster):
    ex = get_executor(cluster.scheduler_address)
    try:
        assert ex.name == "dask"
        assert ex.map(np.square, list(range(20))) == [i * i for i in range(20)]
    finally:
        ex.client.close()


def test_cli_scheduler_address_gives_identical_masks(cluster, tmp_path, capsys):
    args = ["select", "--formulation", "weight", "--solver", "sa", "--layers", "layers.2", "--hidden", "10,10",
            "--epochs", "1", "--calib-size", "64", "--seed", "5", "-q"]
    assert main(args + ["--run-dir", str(tmp_path / "inline"), "--scheduler", "inline"]) == 0
    assert main(args + ["--run-dir", str(tmp_path / "dask"), "--scheduler", cluster.scheduler_address]) == 0
    a = load_masks(tmp_path / "inline" / "masks.pt")
    b = load_masks(tmp_path / "dask" / "masks.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "inline" / "problems.csv").read_text().count("\n") == 11  # header + 10 problems



class ThreadsProbe(Solver):
    """A batching solver that reports the worker share it ran with (module level: it pickles)."""

    name = "probe"

    def __init__(self, share=None):
        self.share = share

    def _solve(self, problem):
        return make_result(problem, np.zeros(problem.n, np.uint8), self.name, info={"share": self.share})

    def for_workers(self, workers):
        return type(self)(share=int(workers))

    def solve_many(self, problems, executor=None, progress=False):
        return solve_in_chunks(self, problems, executor, progress, lambda ps, _: [self.solve(p) for p in ps])


def test_dask_workers_on_one_host_split_its_cpus(cluster):
    """Two workers of one thread on one host: each batch runs with for_workers(2), not with every CPU."""
    probs = [QUBO.random(4, seed=s) for s in range(6)]
    with distributed.Client(cluster) as client:
        assert {r.info["share"] for r in ThreadsProbe().solve_many(probs, executor=client)} == {2}
    assert {r.info["share"] for r in ThreadsProbe().solve_many(probs, executor=ProcessExecutor(3))} == {3}
    assert {r.info["share"] for r in ThreadsProbe().solve_many(probs)} == {None}  # in process: as it is
