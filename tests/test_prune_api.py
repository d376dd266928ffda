"""qselect.prune: method names, refit against least squares, masks like select_masks."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from qselect.app.prune import parse_method, prune
from qselect.errors import QSelectError
from qselect.formulate import select_masks
from qselect.pruners import keep_per_row

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 4))
    x = torch.randn(64, 10) * torch.linspace(0.2, 2.0, 10)
    return model, x


def test_method_names():
    assert parse_method("wanda") == ("classical", None, None)
    assert parse_method("magnitude") == ("classical", None, None)  # the pruner, not the local solver
    assert parse_method("qubo:exact") == ("local", "weight", "exact")
    assert parse_method("refit:qaoa") == ("local", "refit", "qaoa")
    assert parse_method("sa") == ("local", "weight", "sa")
    assert parse_method("weight:magnitude") == ("local", "weight", "magnitude")
    for bad in ("wandaa", "refit:wanda", "foo:exact", ""):
        with pytest.raises(QSelectError) as e:
            parse_method(bad)
        assert "\n" not in str(e.value)


def test_unknown_method_and_option_are_refused(net):
    model, x = net
    with pytest.raises(QSelectError, match="unknown pruning method 'obs'"):
        prune(model, x, "obs", 0.5)
    with pytest.raises(QSelectError, match="no option"):
        prune(model, x, "qubo:exact", 0.5, blocksize=4)


@pytest.mark.parametrize("method", ["wanda", "qubo:exact", "refit:exact"])
def test_refit_matches_least_squares_on_the_pruned_inputs(net, method):
    model, x = net
    opts = {} if method == "wanda" else {"qubits": 10}
    res = prune(model, x, method, 0.5, refit=True, damping=0.0, **opts)
    # layer 0 sees the calibration inputs; layer 2 the outputs of the pruned, refitted layer 0
    W0 = model[0].weight.detach().double().numpy()
    X0 = x.double().numpy()
    inputs = {"0.weight": (X0, W0)}
    pruned = res.apply(copy.deepcopy(model))
    with torch.no_grad():
        X2 = torch.relu(pruned[0](x)).double().numpy()
    inputs["2.weight"] = (X2, model[2].weight.detach().double().numpy())
    for name, (X, W) in inputs.items():
        mask, new = res.masks[name].numpy(), res.weights[name].double().numpy()
        for r in range(W.shape[0]):
            S = np.flatnonzero(mask[r])
            assert S.size == keep_per_row(W.shape[1], 0.5)
            ref = np.linalg.lstsq(X[:, S], X @ W[r], rcond=None)[0]
            np.testing.assert_allclose(new[r, S], ref, rtol=1e-4, atol=1e-5)
            assert (new[r, mask[r] == 0] == 0).all()


def test_local_masks_have_select_masks_keys_and_shapes(net):
    model, x = net
    res = prune(model, x, "qubo:exact", 0.5, qubits=10, sequential=False)
    sel = select_masks(model, x, formulation="weight", sparsity=0.5, solver="exact", qubits=10)
    assert set(res.masks) == set(sel.masks)
    for k in sel.masks:
        assert res.masks[k].shape == sel.masks[k].shape
        assert torch.equal(res.masks[k], sel.masks[k].float())  # dense inputs: the same problems
    for k, w in res.weights.items():  # original weights, masked
        orig = dict(model.named_parameters())[k].detach()
        assert torch.equal(w, orig * res.masks[k])


def test_apply_gives_the_pruned_network(net):
    model, x = net
    res = prune(model, x, "obc", 0.5)
    pruned = res.apply(copy.deepcopy(model))
    assert pruned[0].weight_mask.sum() == 8 * keep_per_row(10, 0.5)
    manual = copy.deepcopy(model)
    with torch.no_grad():
        for k, w in res.weights.items():
            dict(manual.named_parameters())[k].copy_(w)
    torch.testing.assert_close(pruned(x), manual(x))
    assert res.real_sparsity() == pytest.approx(0.5)


def test_compare_cli_runs_pruners_with_layer_error(tmp_path):
    import csv

    from qselect.cli import main

    run = tmp_path / "run"
    code = main(["compare", "--methods", "magnitude,wanda,sparsegpt,obc", "--sparsities", "0.7", "--seeds", "0",
                 "--epochs", "3", "--hidden", "16,16", "--finetune-epochs", "0", "--threads", "1",
                 "--run-dir", str(run)])
    assert code == 0
    rows = {r["method"]: r for r in csv.DictReader(open(run / "results.csv"))}
    err = {m: float(r["layer_error"]) for m, r in rows.items()}
    assert err["obc"] <= err["wanda"] and err["sparsegpt"] <= err["magnitude"]
    code = main(["compare", "--methods", "wanda,obc", "--refit", "--sparsities", "0.7", "--seeds", "0",
                 "--epochs", "3", "--hidden", "16,16", "--finetune-epochs", "0", "--threads", "1",
                 "--run-dir", str(tmp_path / "refit")])
    assert code == 0
    refit = {r["method"]: r for r in csv.DictReader(open(tmp_path / "refit" / "results.csv"))}
    assert float(refit["wanda"]["layer_error"]) <= err["wanda"]  # the refit only lowers a mask's error
    assert refit["wanda"]["refit"] == "True"


def test_neuron_methods_default_to_the_layers_whose_units_vanish():
    """Without layers=, neuron selection prunes the hidden layers (the output layer has no next layer)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 12), torch.nn.ReLU(), torch.nn.Linear(12, 4))
    res = prune(model, torch.randn(64, 16), "neuron:exact", 0.5)
    assert set(res.masks) >= {"0.weight"} and "2.weight" not in res.masks


def test_calibration_inputs_of_the_wrong_shape_get_one_line():
    model = torch.nn.Sequential(torch.nn.Linear(16, 12), torch.nn.ReLU(), torch.nn.Linear(12, 4))
    with pytest.raises(QSelectError, match="calibration inputs of shape") as info:
        prune(model, torch.randn(8, 15), "wanda", 0.5)
    assert "\n" not in str(info.value)
