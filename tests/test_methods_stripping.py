"""Synaptic Stripping: dead-unit detection, weight stripping, revival, ViT MLP blocks."""
import pytest
import torch
from torch import nn

from qselect.classical.data import make_loader
from qselect.classical.masks import get_masks
from qselect.classical.models import build_model
from qselect.classical.train import TrainConfig
from qselect.errors import QSelectError
from qselect.methods import SynapticStripping, synaptic_stripping

pytestmark = pytest.mark.usefixtures("one_thread")


# ``digits`` (tests/conftest.py) has pixels in [0, 1]: removing negative weights raises pre-activations.


def _forced_dead_mlp(bias=-1.0):
    model = build_model("mlp", (64,), 10, seed=0, hidden=(32, 32))
    with torch.no_grad():
        model.layers[0].bias[:16] = bias  # strongly negative: these units never fire
    return model


def test_dead_units_are_the_ones_with_zero_relu_output(digits):
    model = _forced_dead_mlp(bias=-50.0)
    dead = SynapticStripping(model, make_loader(digits.train, 512)).dead_units()
    assert set(dead) == {"layers.0", "layers.2"}
    assert bool(dead["layers.0"][:16].all())  # every forced unit is dead
    # a live unit really fires: check against a direct computation
    h = torch.relu(model.layers[0](digits.train.tensors[0]))
    assert torch.equal(dead["layers.0"], h.sum(0) == 0)


def test_one_round_strips_the_most_negative_incoming_weights(digits):
    model = _forced_dead_mlp()
    stripper = SynapticStripping(model, make_loader(digits.train, 512), fraction=0.1)
    dead = stripper.dead_units()["layers.0"]
    w = model.layers[0].weight.detach().clone()
    record = stripper.strip(epoch=0)
    mask = get_masks(model)["layers.0.weight"]
    for j in range(32):
        removed = mask[j] == 0
        if not dead[j]:
            assert not bool(removed.any())  # live units keep everything
            continue
        quota = min(-(-64 // 10), int((w[j] < 0).sum()))  # ceil(0.1 * 64) capped at negatives
        assert int(removed.sum()) == quota
        # the removed ones are the most negative of the row
        assert float(w[j][removed].max()) <= float(w[j][~removed].min())
    assert record["removed"]["layers.0"] == int((mask == 0).sum())
    # masks accumulate: a second round keeps every earlier removal
    stripper.strip(epoch=1)
    assert bool((get_masks(model)["layers.0.weight"] <= mask).all())


def test_stripping_lowers_the_dead_unit_count_over_epochs(digits):
    model = _forced_dead_mlp(bias=-1.0)
    out = synaptic_stripping(model, make_loader(digits.train, 64, shuffle=True),
                             TrainConfig(epochs=5, lr=0.1, batch_size=64, device="cpu", seed=0),
                             eval_loader=make_loader(digits.train, 512), fraction=0.2)
    counts = [d["dead"] for d in out["dead_per_epoch"]]
    assert counts[0] >= 16
    assert sum(out["dead_final"].values()) < counts[0] - 5
    sparsity = [d["sparsity"] for d in out["dead_per_epoch"]]
    assert all(a <= b for a, b in zip(sparsity, sparsity[1:]))
    assert 0 < out["final_sparsity"] < 0.5


def test_frequency_strips_every_nth_epoch(digits):
    model = _forced_dead_mlp()
    out = synaptic_stripping(model, make_loader(digits.train, 128, shuffle=True),
                             TrainConfig(epochs=4, lr=0.05, device="cpu"), frequency=2,
                             eval_loader=make_loader(digits.train, 512))
    assert [r["epoch"] for r in out["stripping"]] == [2, 4]


def test_vit_mlp_blocks_are_stripped():
    model = build_model("vit", (1, 8, 8), 10, seed=0, patch=4, dim=16, depth=2, heads=2)
    with torch.no_grad():
        model.blocks[0].mlp[0].bias.fill_(-100.0)
    x = torch.rand(64, 1, 8, 8)
    stripper = SynapticStripping(model, [(x, torch.zeros(64))])
    dead = stripper.dead_units()
    assert set(dead) == {"blocks.0.mlp.0", "blocks.1.mlp.0"}
    assert bool(dead["blocks.0.mlp.0"].all())
    record = stripper.strip()
    assert record["removed"]["blocks.0.mlp.0"] > 0
    assert "blocks.0.mlp.0.weight" in get_masks(model)


def test_shared_relu_module_is_attributed_per_layer():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.relu = nn.Linear(4, 3), nn.Linear(3, 2), nn.ReLU()

        def forward(self, x):
            return self.relu(self.b(self.relu(self.a(x))))

    model = Shared()
    with torch.no_grad():
        model.b.bias.fill_(-100.0)
    activity = SynapticStripping(model, [(torch.rand(5, 4), None)]).relu_activity()
    assert activity["a"].shape == (3,) and activity["b"].shape == (2,)
    assert bool((activity["b"] == 0).all())


def test_model_without_relu_modules_is_a_clear_error():
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    with pytest.raises(QSelectError, match="nn.ReLU"):
        SynapticStripping(model, [(torch.rand(2, 4), None)]).dead_units()
    with pytest.raises(QSelectError, match="fraction"):
        SynapticStripping(model, fraction=0.0)
