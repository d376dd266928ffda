"""Faults known from neighbouring libraries, retried on qselect: pruned models copy,
tied weights stay one tensor, problem labels survive conversions; and a
property-based sweep: public constructors answer bad values with QSelectError only."""
import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import TensorDataset

from qselect.classical.baselines import magnitude_masks, random_masks
from qselect.classical.flops import count_flops, count_parameters
from qselect.classical.masks import apply_masks, get_masks, remove_masks, tied_parameters
from qselect.errors import QSelectError


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))


def _pruned_after_backward():
    m = _mlp()
    apply_masks(m, magnitude_masks(m, 0.5, scope="global"))
    m(torch.randn(4, 8)).sum().backward()
    return m


# ---- (a) a pruned model deep-copies after forward + backward --------------
def test_pruned_model_deep_copies_after_backward():
    m = _pruned_after_backward()
    c = copy.deepcopy(m)
    x = torch.randn(5, 8)
    torch.testing.assert_close(c(x), m(x))
    assert c[0].weight_orig is not m[0].weight_orig
    assert torch.equal(get_masks(c)["0.weight"], get_masks(m)["0.weight"])


def test_pruned_weights_still_train_through_the_mask():
    m = _pruned_after_backward()
    g = m[0].weight_orig.grad
    mask = m[0].weight_mask
    assert g is not None and bool((g[mask == 0] == 0).all()) and bool((g[mask == 1] != 0).any())
    # between passes the pruned attribute is the masked value, without a graph
    assert m[0].weight.grad_fn is None
    torch.testing.assert_close(m[0].weight, m[0].weight_orig.detach() * mask)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    opt.step()
    with torch.no_grad():
        y = m(torch.ones(1, 8))  # the forward pass sees the updated weight_orig
    torch.testing.assert_close(m[0].weight, m[0].weight_orig.detach() * mask)
    assert torch.isfinite(y).all()


def test_deepcopy_after_remove_and_reapply():
    m = _pruned_after_backward()
    remove_masks(m)
    assert not m[0]._forward_hooks and isinstance(m[0].weight, nn.Parameter)
    copy.deepcopy(m)


def test_edge_popup_and_prune_and_tune_on_a_pruned_parent():
    from qselect.classical.baselines import edge_popup
    from qselect.methods.ensembles import prune_and_tune

    m = _pruned_after_backward()
    before = get_masks(m)
    torch.manual_seed(1)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    loader = torch.utils.data.DataLoader(TensorDataset(x, y), batch_size=32)
    masks = edge_popup(m, loader, 0.5, epochs=1, device="cpu")
    assert set(masks) >= {"0.weight", "2.weight"}
    res = prune_and_tune(m, TensorDataset(x, y), children=2, method="random", tune_epochs=1, sparsity=0.5)
    assert len(res.members) == 2
    assert all(torch.equal(v, before[k]) for k, v in get_masks(m).items())  # the parent is unchanged


# ---- (b) tied weights: one tensor, one mask ---------------------------------
def _tied(bias=True):
    torch.manual_seed(0)
    a, b = nn.Linear(6, 6, bias=bias), nn.Linear(6, 6, bias=bias)
    b.weight = a.weight
    return nn.Sequential(a, nn.ReLU(), b)


def test_tied_weights_count_once():
    t = _tied()
    assert tied_parameters(t) == {"2.weight": "0.weight"}
    assert count_parameters(t)["dense"] == 36 + 6 + 6  # not 72 + 12
    assert sum(p.numel() for p in t.parameters()) == 48  # torch's own count agrees


def test_tied_weights_get_one_mask_and_remove_masks_multiplies_once():
    t = _tied(bias=False)
    masks = random_masks(t, 0.5, seed=3)
    assert list(masks) == ["0.weight"]  # one mask for the shared tensor
    apply_masks(t, masks)
    assert torch.equal(t[0].weight_mask, t[2].weight_mask)
    assert t[0].weight_orig is t[2].weight_orig
    x = torch.randn(4, 6)
    before = t(x)
    counts = count_parameters(t)
    assert counts["dense"] == 36 and counts["effective"] == 18
    shared = t[0].weight_orig
    remove_masks(t)
    assert t[0].weight is t[2].weight is shared  # still tied, same Parameter object
    torch.testing.assert_close(t(x), before)
    assert int((shared == 0).sum()) == 18


def test_tied_alias_mask_applies_to_every_layer_and_conflicts_are_refused():
    t = _tied(bias=False)
    m = torch.ones(6, 6)
    m[0] = 0
    apply_masks(t, {"2.weight": m})  # given under the second name: still one mask for both layers
    assert torch.equal(t[0].weight_mask, m) and torch.equal(t[2].weight_mask, m)
    assert list(get_masks(t)) == ["0.weight"]
    t2 = _tied(bias=False)
    with pytest.raises(QSelectError, match="share one weight tensor"):
        apply_masks(t2, {"0.weight": m, "2.weight": torch.ones(6, 6)})


def test_tied_flops_use_the_shared_mask():
    t = _tied(bias=False)
    m = torch.ones(6, 6)
    m[:3] = 0
    apply_masks(t, {"0.weight": m})
    f = count_flops(t, torch.randn(2, 6))
    assert f["layers"]["0"]["density"] == f["layers"]["2"]["density"] == 0.5


# ---- (c) labels through the quadratic-program conversion ---------------------
def test_mixed_labels_give_distinct_variables_and_integer_labels_survive():
    pytest.importorskip("qiskit_optimization")
    from qselect.interop import from_quadratic_program, to_quadratic_program
    from qselect.problems import QUBO

    q = QUBO(np.array([[1.0, -2.0], [0.0, 3.0]]), labels=[0, "x0"])
    qp = to_quadratic_program(q)
    assert len({v.name for v in qp.variables}) == 2
    back = from_quadratic_program(qp)
    np.testing.assert_allclose(back.cost_vector(), q.cost_vector())
    g = QUBO(np.eye(3), labels=[10, 3, 7])
    assert from_quadratic_program(to_quadratic_program(g)).labels == (10, 3, 7)


# ---- property-based: bad values -> QSelectError, never a raw exception --------
_BAD = st.one_of(st.none(), st.text(max_size=4), st.floats(allow_nan=True, allow_infinity=True),
                 st.integers(min_value=-10**12, max_value=10**12), st.booleans(),
                 st.lists(st.integers(), max_size=2), st.complex_numbers(allow_nan=False, max_magnitude=10))


def _keep_count(n, s):
    from qselect.formulate.cardinality import keep_count

    return keep_count(n, s)


def _get_solver(name):
    from qselect.solvers import get_solver

    return get_solver(name)


def _neuron_masks(model, layer, keep):
    from qselect.classical.masks import neuron_masks

    return neuron_masks(model, layer, keep)


def _constructors():
    from qselect.problems import QUBO, DiagonalCost
    from qselect.solvers import ExactSolver, GreedySolver, MagnitudeSolver, RandomSolver
    from qselect.solvers.anneal import SimulatedAnnealingSolver
    from qselect.solvers.tabu import TabuSolver
    from qselect.validation import check_sparsity

    out = {
        "QUBO.Q": lambda v: QUBO(v),
        "QUBO.offset": lambda v: QUBO(np.eye(2), offset=v),
        "QUBO.labels": lambda v: QUBO(np.eye(2), labels=v),
        "QUBO.k": lambda v: QUBO(np.eye(2), k=v),
        "DiagonalCost": lambda v: DiagonalCost(v),
        "DiagonalCost.k": lambda v: DiagonalCost([0.0, 1.0], k=v),
        "ExactSolver.chunk_bits": lambda v: ExactSolver(chunk_bits=v),
        "ExactSolver.num_best": lambda v: ExactSolver(num_best=v),
        "SA.num_reads": lambda v: SimulatedAnnealingSolver(num_reads=v),
        "SA.seed": lambda v: SimulatedAnnealingSolver(seed=v),
        "SA.beta_range": lambda v: SimulatedAnnealingSolver(beta_range=v),
        "Tabu.num_restarts": lambda v: TabuSolver(num_restarts=v),
        "Tabu.seed": lambda v: TabuSolver(seed=v),
        "Random.seed": lambda v: RandomSolver(seed=v),
        "Random.k": lambda v: RandomSolver(k=v),
        "Magnitude.k": lambda v: MagnitudeSolver(k=v),
        "Greedy.k": lambda v: GreedySolver(k=v),
        "Greedy.max_steps": lambda v: GreedySolver(max_steps=v),
        "sparsity": check_sparsity,
        "magnitude_masks.sparsity": lambda v: magnitude_masks(_mlp(), v),
        "random_masks.seed": lambda v: random_masks(_mlp(), 0.5, seed=v),
        "magnitude_masks.layers": lambda v: magnitude_masks(_mlp(), 0.5, layers=v),
        "QUBO.random.n": lambda v: QUBO.random(v),
        "QUBO.random.density": lambda v: QUBO.random(3, density=v),
        "QUBO.random.seed": lambda v: QUBO.random(3, seed=v),
        "QUBO.cost_vector.dtype": lambda v: QUBO(np.eye(2)).cost_vector(v),
        "QUBO.with_cardinality_penalty.k": lambda v: QUBO(np.eye(2)).with_cardinality_penalty(v, 1.0),
        "keep_count.n": lambda v: _keep_count(v, 0.5),
        "get_solver.name": lambda v: _get_solver(v),
        "neuron_masks.keep": lambda v: _neuron_masks(_mlp(), "0", v),
        "count_parameters.masks": lambda v: count_parameters(_mlp(), v),
    }
    try:
        from qselect.solvers.qaoa import QAOASolver
    except ImportError:  # pragma: no cover - qiskit is a dependency
        return out
    for arg in ("p", "shots", "maxiter", "restarts", "top", "seed", "k"):
        out[f"QAOASolver.{arg}"] = lambda v, arg=arg: QAOASolver(**{arg: v})
    return out


CONSTRUCTORS = _constructors()


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_BAD)
def test_public_constructors_raise_only_qselect_error(name, value):
    try:
        CONSTRUCTORS[name](value)
    except QSelectError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg
    except Exception as exc:  # anything else is a bug
        pytest.fail(f"{name}({value!r}) raised {type(exc).__name__}: {exc}")


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 5), seed=st.integers(0, 2**32 - 2), offset=st.floats(-1e6, 1e6))
def test_every_classical_solver_returns_a_consistent_answer(n, seed, offset):
    from qselect.problems import QUBO
    from qselect.solvers import get_solver

    q = QUBO(np.random.default_rng(seed).normal(size=(n, n)), offset=offset)
    best = float(q.cost_vector().min()) if n else offset
    for name in ("exact", "greedy", "magnitude", "random"):
        r = get_solver(name).solve(q)
        assert r.bits.shape == (n,) and math.isfinite(r.energy)
        assert r.energy == pytest.approx(float(q.energy(r.bits)))
        assert r.energy >= best - 1e-9 * max(1.0, abs(best))
    assert get_solver("exact").solve(q).energy == pytest.approx(best)


# ---- a closed stdout does not lose the run ------------------------------------
def test_console_survives_a_closed_pipe():
    from qselect.app.console import Console

    class ClosedPipe:
        writes = 0

        def write(self, _text):
            ClosedPipe.writes += 1
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    con = Console(stream=ClosedPipe())
    con.print("table row")  # `qselect compare ... | head -2`: the reader has gone
    con.result("report written")
    con.print("more", flush=True)
    assert ClosedPipe.writes == 1  # stopped writing after the first failure, and raised nothing


# ---- data files that lie about themselves --------------------------------------
def test_idx_header_whose_size_product_overflows_int64(tmp_path):
    import struct

    from qselect.classical.data import read_idx

    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(struct.pack(">BBBB", 0, 0, 8, 4) + struct.pack(">IIII", 65536, 65536, 65536, 65536))
    with pytest.raises(QSelectError, match="truncated"):  # 2^64 bytes, not 0 after wrapping
        read_idx(f)


def test_corrupt_gzip_stream_is_one_line(tmp_path):
    from qselect.classical.data import read_idx

    f = tmp_path / "train-images-idx3-ubyte.gz"
    f.write_bytes(b"\x1f\x8b\x08\x00" + b"garbage" * 20)
    with pytest.raises(QSelectError, match="not readable"):
        read_idx(f)


def test_cifar_batch_with_string_labels(tmp_path):
    import pickle

    from qselect.classical.data import read_cifar_batch

    f = tmp_path / "data_batch_1"
    f.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": ["cat", "dog"]}))
    with pytest.raises(QSelectError, match="labels are not integers"):
        read_cifar_batch(f)


def test_mlp_widths_that_cannot_fit_are_refused_before_anything_runs():
    from qselect.app.pipeline import validate_experiment

    with pytest.raises(QSelectError, match="narrower layers"):
        validate_experiment({"hidden": [10_000_000, 10_000_000]})
    assert validate_experiment({"hidden": [32, 32]}) == {"hidden": [32, 32]}


def test_config_path_that_is_a_folder_says_so(tmp_path):
    from qselect.config import load_config

    (tmp_path / "config.toml").write_text("seed = 1\n")
    with pytest.raises(QSelectError, match="is a folder; give the TOML file itself") as info:
        load_config(tmp_path, {}, "select")
    assert "config.toml" in str(info.value)


def test_sparsity_that_empties_a_hidden_layer_is_refused_before_any_folder(tmp_path, capsys):
    from qselect.cli import main

    out = tmp_path / "run"
    rc = main(["select", "--sparsity", "0.99", "--hidden", "8,8", "--run-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "would remove all 8 units" in err and "use a sparsity ≤ 0.9375" in err
    assert not out.exists()


@pytest.mark.parametrize("payload", [{"format": "qselect-masks", "version": 1},
                                     {"format": "qselect-masks", "masks": ["0.weight"]},
                                     {"format": "qselect-masks", "masks": {"0.weight": "ones"}},
                                     {"format": "qselect-masks", "masks": {"0.weight": [[1.0]]}}])
def test_masks_file_without_usable_masks_is_one_line(tmp_path, payload):
    from qselect.classical.masks import load_masks

    f = tmp_path / "masks.pt"
    torch.save(payload, f)
    with pytest.raises(QSelectError, match="has no masks dict"):
        load_masks(f)


def test_missing_masks_file_names_no_flag_that_does_not_exist(tmp_path):
    from qselect.classical.masks import load_masks

    with pytest.raises(QSelectError) as info:
        load_masks(tmp_path / "nope.pt")
    assert "--save-masks" not in str(info.value) and "save_masks" in str(info.value)


# ---- checkpoints that are not what they claim ------------------------------------
@pytest.mark.parametrize("payload, msg", [
    ({"format": "qselect-checkpoint", "version": 1, "state_dict": {}, "masks": ["a"]}, "'masks' is a list"),
    ({"format": "qselect-checkpoint", "version": 1, "state_dict": {}, "meta": "mlp"}, "'meta' is a str"),
    ({"format": "qselect-checkpoint", "version": 1, "state_dict": {"w": "x"}}, "'w' is not a tensor"),
    ({"weight": torch.zeros(2, 2), "bias": torch.zeros(2)}, "plain state_dict"),
])
def test_malformed_checkpoints_are_one_line(tmp_path, payload, msg):
    from qselect.classical.checkpoint import _FORMAT, load_checkpoint

    if "format" in payload:
        payload["format"] = _FORMAT
    f = tmp_path / "model.pt"
    torch.save(payload, f)
    with pytest.raises(QSelectError, match=msg):
        load_checkpoint(f)


def test_whole_module_pickle_gets_the_state_dict_steps(tmp_path):
    from qselect.classical.checkpoint import load_checkpoint

    f = tmp_path / "model.pt"
    torch.save(_mlp(), f)  # the whole module, pickled
    with pytest.raises(QSelectError) as info:
        load_checkpoint(f)
    msg = str(info.value)
    assert "pickled" in msg and "state_dict" in msg and "corrupt" not in msg and "\n" not in msg


def test_evaluate_without_model_is_refused_not_run_on_a_fresh_parent(tmp_path, capsys):
    from qselect.classical.masks import save_masks
    from qselect.cli import main

    masks = tmp_path / "masks.pt"
    save_masks(masks, {"layers.0.weight": torch.ones(8, 64)})
    out = tmp_path / "run"
    rc = main(["evaluate", "--masks", str(masks), "--run-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "needs the model the masks were selected on" in err and "--model" in err
    assert not out.exists()


def test_digits_with_data_root_explains_digits_needs_no_files(tmp_path):
    from qselect.app.settings import check_dataset

    with pytest.raises(QSelectError, match="digits dataset ships with scikit-learn"):
        check_dataset("digits", str(tmp_path))


def test_out_of_range_labels_blame_the_labels():
    from qselect.classical.train import TrainConfig, train

    x, y = torch.randn(16, 8), torch.arange(16) % 5 + 10  # labels 10..14 for a 3-class model
    loader = torch.utils.data.DataLoader(TensorDataset(x, y), batch_size=8)
    with pytest.raises(QSelectError, match=r"labels run from 10 to 14 but must lie in 0\.\.2") as info:
        train(_mlp(), loader, TrainConfig(epochs=1, device="cpu"))
    assert "check the dataset's labels" in str(info.value)


def test_training_options_with_a_checkpoint_are_refused_and_not_recorded(tmp_path, capsys):
    from qselect.app.pipeline import drop_unused_model_options
    from qselect.classical.checkpoint import save_checkpoint
    from qselect.classical.models import build_model
    from qselect.cli import main

    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, build_model("mlp", (64,), 10, hidden=(8,)),
                    meta={"model": "mlp", "model_kwargs": {"hidden": [8]}, "input_shape": [64], "num_classes": 10})
    out = tmp_path / "run"
    rc = main(["select", "--model", str(ckpt), "--hidden", "8,8", "--epochs", "50", "--run-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "--hidden and --epochs do not apply here" in err and not out.exists()
    cfg = drop_unused_model_options({"model": str(ckpt), "hidden": [32, 32], "epochs": 20, "lr": 0.1}, given={"model"})
    assert cfg == {"model": str(ckpt), "lr": 0.1}  # defaults that were not used are not recorded
    assert drop_unused_model_options({"model": "lenet5", "hidden": [32], "epochs": 3}, given=()) == \
        {"model": "lenet5", "epochs": 3}


# ---- what the user sees --------------------------------------------------------
def test_energy_gap_plot_keeps_a_reference_method_that_missed_the_optimum(tmp_path):
    from qselect.report.plots import energy_gap

    rows = [dict(problem=f"layers.0#{i}", method="exact", gap=0.5 if i == 1 else 0.0, scale=1.0,
                 reference="best-found") for i in range(3)]
    assert energy_gap(rows, tmp_path / "gap.png") is not None  # exact on blocks missed one optimum: shown
    assert (tmp_path / "gap.png").stat().st_size > 0
    for r in rows:
        r["gap"] = 0.0
    assert energy_gap(rows, tmp_path / "none.png") is None  # the reference alone, all zero: nothing to show
    zero = [dict(problem=f"p{i}", method=m, gap=0.0, scale=1.0) for i in range(3) for m in ("sa", "qaoa")]
    assert energy_gap(zero, tmp_path / "zero.png") is not None


def test_evaluate_save_writes_the_pruned_fine_tuned_model(tmp_path):
    from qselect.classical.checkpoint import load_checkpoint, save_checkpoint
    from qselect.classical.masks import get_masks, save_masks
    from qselect.classical.models import build_model
    from qselect.cli import main

    parent = build_model("mlp", (64,), 10, hidden=(8,), seed=0)
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, parent, meta={"model": "mlp", "model_kwargs": {"hidden": [8]}, "input_shape": [64],
                                        "num_classes": 10})
    m = torch.ones(8, 64)
    m[:, ::2] = 0
    save_masks(tmp_path / "masks.pt", {"layers.0.weight": m})
    out = tmp_path / "ev"
    assert main(["evaluate", "--model", str(ckpt), "--masks", str(tmp_path / "masks.pt"), "--finetune-epochs", "1",
                 "--save", "--run-dir", str(out), "-q"]) == 0
    child = build_model("mlp", (64,), 10, hidden=(8,), seed=1)
    payload = load_checkpoint(out / "model-pruned.pt", child)
    assert torch.equal(get_masks(child)["layers.0.weight"], m)  # pruned ...
    assert not torch.equal(child.layers[0].weight_orig.detach() * m, parent.layers[0].weight.detach() * m)  # ... tuned
    assert payload["meta"]["model"] == "mlp" and payload["meta"]["finetune_epochs"] == 1


# ---- a user's own architecture and weights through select and evaluate -------------
USER_MODULE = '''
from torch import nn


def small(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], 8), nn.ReLU(), nn.Linear(8, num_classes))


def not_a_model():
    return 42
'''


def test_user_factory_and_state_dict_run_through_select_and_evaluate(tmp_path, monkeypatch, capsys):
    import importlib
    import sys

    from qselect.classical.checkpoint import load_checkpoint
    from qselect.classical.masks import get_masks, load_masks
    from qselect.cli import main

    pkg = tmp_path / "userpkg"
    pkg.mkdir()
    (pkg / "qsel_user_models.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(pkg))
    importlib.invalidate_caches()
    mod = importlib.import_module("qsel_user_models")
    torch.manual_seed(3)
    trained = mod.small((64,), 10)
    weights = tmp_path / "weights.pt"
    torch.save(trained.state_dict(), weights)

    sel = tmp_path / "sel"
    assert main(["select", "--model", "qsel_user_models:small", "--weights", str(weights), "--solver", "exact",
                 "--calib-size", "32", "--qubits", "8", "--run-dir", str(sel), "-q"]) == 0
    masks = load_masks(sel / "masks.pt", mod.small((64,), 10))
    assert set(masks) == {"1.weight", "1.bias"}  # the user's layer names
    ev = tmp_path / "ev"
    assert main(["evaluate", "--model", "qsel_user_models:small", "--weights", str(weights), "--masks",
                 str(sel / "masks.pt"), "--finetune-epochs", "1", "--save", "--run-dir", str(ev), "-q"]) == 0
    fresh = mod.small((64,), 10)
    payload = load_checkpoint(ev / "model-pruned.pt", fresh)
    assert payload["meta"]["model"] == "qsel_user_models:small"
    assert torch.equal(get_masks(fresh)["1.weight"], masks["1.weight"])
    capsys.readouterr()

    def refused(argv):
        out = tmp_path / "bad"
        rc = main(argv + ["--run-dir", str(out)])
        err = capsys.readouterr().err
        assert rc == 2 and not out.exists(), err
        return err

    assert "has no callable 'nosuch'" in refused(["select", "--model", "qsel_user_models:nosuch", "--weights",
                                                   str(weights)])
    assert "cannot import 'no_such_pkg_xyz'" in refused(["select", "--model", "no_such_pkg_xyz:make"])
    assert "--epochs does not apply here" in refused(["select", "--model", "qsel_user_models:small", "--weights",
                                                        str(weights), "--epochs", "5"])
    pickled = tmp_path / "whole.pt"
    torch.save(trained, pickled)
    assert "torch.save(model.state_dict()" in refused(["select", "--model", "qsel_user_models:small", "--weights",
                                                       str(pickled), "--solver", "exact", "--calib-size", "32"])
    sys.modules.pop("qsel_user_models", None)


# ---- property-based: bad command-line values -> one line, exit 2, nothing written ----
_INT_BAD = st.one_of(st.integers(max_value=0).map(str), st.sampled_from(["abc", "1.5", "", "nan", "1e3x"]))
_CLI_BAD = {
    "--sparsity": st.one_of(st.floats(min_value=1.0, allow_infinity=True).map(repr),
                            st.floats(max_value=-1e-9, allow_infinity=True).map(repr),
                            st.sampled_from(["nan", "half", ""])),
    "--qubits": _INT_BAD,
    "--calib-size": _INT_BAD,
    "--batch-size": _INT_BAD,
    "--p": _INT_BAD,
    "--epochs": st.one_of(st.integers(max_value=-1).map(str), st.sampled_from(["x", "2.5"])),
    "--seed": st.one_of(st.integers(max_value=-1).map(str), st.integers(min_value=2**32 - 1).map(str)),
    "--lr": st.one_of(st.floats(max_value=0.0).map(repr), st.sampled_from(["nan", "inf", "fast"])),
    "--hidden": st.one_of(st.lists(st.integers(max_value=0), min_size=1, max_size=3)
                          .map(lambda v: ",".join(map(str, v))), st.sampled_from(["a,b", "8,x", ""])),
}


@pytest.mark.parametrize("flag", sorted(_CLI_BAD))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bad_command_line_values_give_one_line_and_write_nothing(flag, data, tmp_path_factory, capsys):
    from qselect.cli import main

    value = data.draw(_CLI_BAD[flag])
    out = tmp_path_factory.mktemp("cli") / "run"
    rc = main(["select", f"{flag}={value}", "--run-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("qselect: error: ")]
    assert len(lines) == 1 and err.strip().splitlines()[-1] == lines[0], err
    assert not out.exists()
