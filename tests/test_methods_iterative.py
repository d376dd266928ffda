"""Pruning baselines at a fixed epoch budget: one-shot and iterative magnitude pruning."""
import pytest
import torch

from qselect.classical.baselines import magnitude_masks
from qselect.classical.data import make_loader
from qselect.classical.masks import apply_masks, get_masks, mask_sparsity
from qselect.classical.models import build_model
from qselect.classical.train import TrainConfig
from qselect.errors import QSelectError
from qselect.methods import (
    iterative_magnitude_pruning,
    one_shot_pruning,
    round_sparsities,
    split_epochs,
    surviving_magnitude_masks,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_round_schedule_is_geometric_and_ends_at_the_target():
    s = round_sparsities(0.96, 2)
    assert s[-1] == pytest.approx(0.96)
    assert s[0] == pytest.approx(0.8)  # kept 0.2 then 0.04
    assert split_epochs(7, 3) == [2, 2, 3]
    with pytest.raises(QSelectError, match="rounds"):
        split_epochs(2, 3)
    with pytest.raises(QSelectError, match="sparsity"):
        round_sparsities(1.0, 2)


def test_surviving_magnitude_masks_never_revive_pruned_weights():
    model = build_model("mlp", (64,), 10, seed=0, hidden=(16,))
    first = magnitude_masks(model, 0.5)
    apply_masks(model, first)
    with torch.no_grad():  # make a pruned weight huge: it must stay pruned
        model.layers[0].weight_orig[first["layers.0.weight"] == 0] = 100.0
    second = surviving_magnitude_masks(model, 0.75)
    for k in first:
        assert bool((second[k] <= first[k]).all())
        assert mask_sparsity({k: second[k]})["overall"] == pytest.approx(0.75, abs=0.01)
    glob = surviving_magnitude_masks(model, 0.75, scope="global")
    assert mask_sparsity(glob)["overall"] == pytest.approx(0.75, abs=0.001)


def test_imp_and_one_shot_reach_the_same_sparsity_within_the_same_budget(digits):
    loader = make_loader(digits.train, 64, shuffle=True)
    cfg = TrainConfig(epochs=3, lr=0.1, batch_size=64, device="cpu")
    imp_model = build_model("mlp", (64,), 10, seed=0, hidden=(32,))
    imp = iterative_magnitude_pruning(imp_model, loader, cfg, 0.9, rounds=3)
    assert imp["epochs"] == 3 and len(imp["history"]) == 3
    assert imp["round_sparsity"][0] < imp["round_sparsity"][1] < imp["round_sparsity"][2]
    assert mask_sparsity(imp_model)["overall"] == pytest.approx(0.9, abs=0.01)
    shot_model = build_model("mlp", (64,), 10, seed=0, hidden=(32,))
    shot = one_shot_pruning(shot_model, magnitude_masks(shot_model, 0.9), loader, cfg)
    assert shot["epochs"] == 3 and shot["sparsity"] == pytest.approx(0.9, abs=0.01)
    assert set(get_masks(shot_model)) == set(get_masks(imp_model))
