"""Prune and Tune ensembles: NLL gain over the parent, child methods, bagging, cost accounting."""
import numpy as np
import pytest
import torch

from qselect.classical.data import make_loader
from qselect.classical.masks import get_masks, mask_sparsity
from qselect.classical.models import build_model
from qselect.classical.train import TrainConfig, evaluate
from qselect.errors import QSelectError
from qselect.methods import PaTConfig, bagged_dataset, check_partition, child_masks, evaluate_ensemble, prune_and_tune

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def parent(digits, train_digits_mlp):
    return train_digits_mlp(digits, TrainConfig(epochs=8, lr=0.1, batch_size=64, device="cpu", seed=0))[0]


def test_anti_random_ensemble_beats_the_parent_nll(digits, parent):
    test = make_loader(digits.test, 512)
    before = {k: v.clone() for k, v in parent.state_dict().items()}
    res = prune_and_tune(parent, digits.train, PaTConfig(children=6, method="antirandom", tune_epochs=4,
                                                         lr=0.2, batch_size=64, seed=0), parent_epochs=8)
    ens = res.evaluate(test)
    alone = evaluate(parent, test)
    assert ens["nll"] < alone["nll"]
    assert ens["accuracy"] > 0.9
    assert 0 < ens["disagreement"] < 0.5 and ens["pairwise_kl"] > 0 and ens["output_correlation"] < 1
    # siblings 2i, 2i+1 are exact complements inside the parent
    full = get_masks(parent, include_dense=True)
    for i in (0, 2, 4):
        assert check_partition(full, res.masks[i:i + 2]) == {"overlap": 0, "uncovered": 0, "outside": 0}
    # the children really are pruned at 50%, the parent is untouched
    for child in res.children:
        assert mask_sparsity(child)["overall"] == pytest.approx(0.5, abs=0.01)
    assert all(torch.equal(before[k], v) for k, v in parent.state_dict().items())
    # cost: parent dense + 6 children x 4 epochs at about half the FLOPs
    assert res.cost["epochs"] == 8 + 24
    assert all(0.45 < d < 0.55 for d in res.cost["child_flop_density"])
    assert res.cost["flop_epochs"] == pytest.approx(8 + 4 * sum(res.cost["child_flop_density"]))


def test_child_methods_give_masks_at_the_requested_sparsity(parent):
    for method, sparsity, expect in [("random", 0.7, 0.7), ("magnitude", 0.7, 0.7), ("partition", 0.75, 0.75)]:
        masks, info = child_masks(parent, method, 4, sparsity=sparsity, seed=1)
        assert len(masks) == 4
        for m in masks:
            assert mask_sparsity(m)["overall"] == pytest.approx(expect, abs=0.01)
        if method == "magnitude":
            assert info["identical_pairs"] == 6  # one topology; diversity comes from seeds/bagging
        else:
            assert info["identical_pairs"] == 0
    masks, info = child_masks(parent, "partition", 4, sparsity=0.75, seed=1)
    assert info["parts"] == 4
    assert check_partition(get_masks(parent, include_dense=True), masks)["overlap"] == 0


def test_quantum_selected_children_are_distinct_local_problem_solutions(digits):
    model = build_model("mlp", (64,), 10, seed=1, hidden=(16,))
    opts = [{"qubits": 6, "layers": ["layers.2"]}, {"qubits": 6, "layers": ["layers.2"], "solver": "greedy"}]
    res = prune_and_tune(model, digits.train, PaTConfig(children=3, method="qselect", sparsity=0.5,
                                                        tune_epochs=1, calib_size=48, select_options=opts,
                                                        batch_size=64))
    assert res.info["identical_pairs"] == 0
    assert len(res.info["selections"]) == 3 and res.info["selections"][0]["problems"] == 10
    for m in res.masks:
        assert set(m) == {"layers.2.weight"}
        # weight formulation keeps k = half of each neuron's 16 inputs
        assert torch.equal(m["layers.2.weight"].sum(1), torch.full((10,), 8.0))
    ens = res.evaluate(make_loader(digits.test, 512))
    assert ens["size"] == 3 and np.isfinite(ens["nll"])


def test_bagging_and_parent_membership(digits, parent):
    bag = bagged_dataset(digits.train, 0.9, seed=3)
    assert len(bag) == round(0.9 * len(digits.train))
    again = bagged_dataset(digits.train, 0.9, seed=3)
    assert torch.equal(bag.tensors[1], again.tensors[1])
    res = prune_and_tune(parent, digits.train, PaTConfig(children=2, method="random", tune_epochs=1,
                                                         bagging=True, parent_member=True, batch_size=64))
    assert len(res.members) == 3 and res.members[0] is parent
    # bagged (90%) children, 1 epoch each, counted at their ~50% FLOP density and their data share
    assert all(0.45 < d < 0.55 for d in res.cost["child_flop_density"])
    share = len(bag) / len(digits.train)
    assert res.cost["flop_epochs"] == pytest.approx(share * sum(res.cost["child_flop_density"]))
    assert res.cost["epochs"] == 2
    ens = evaluate_ensemble([parent], make_loader(digits.test, 512))
    assert ens["disagreement"] == 0.0 and ens["size"] == 1


def test_bad_options_are_one_line_errors(digits, parent):
    with pytest.raises(QSelectError, match="child method"):
        prune_and_tune(parent, digits.train, method="lottery")
    with pytest.raises(QSelectError, match="children"):
        prune_and_tune(parent, digits.train, children=0)


def test_same_seed_same_children(digits, parent):
    runs = [prune_and_tune(parent, digits.train, PaTConfig(children=2, method="antirandom", tune_epochs=1,
                                                           bagging=True, batch_size=64, seed=4))
            for _ in range(2)]
    for a, b in zip(runs[0].children, runs[1].children):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    other = prune_and_tune(parent, digits.train, PaTConfig(children=2, method="antirandom", tune_epochs=1,
                                                           batch_size=64, seed=5))
    assert not torch.equal(other.masks[0]["layers.0.weight"], runs[0].masks[0]["layers.0.weight"])


def test_flop_density_explains_shape_errors_and_keeps_cuda_out_of_memory():
    from torch import nn

    from qselect.methods import flop_density

    class OutOfMemory(nn.Linear):
        def forward(self, x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(torch.cuda.OutOfMemoryError, match="Tried to allocate"):  # torch's own advice
        flop_density(OutOfMemory(4, 2), torch.zeros(1, 4))
    with pytest.raises(QSelectError, match=r"sample input of shape \(1, 5\)"):
        flop_density(nn.Linear(4, 2), torch.zeros(1, 5))
