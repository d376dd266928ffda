"""Baselines: magnitude / random (per layer, global), anti-random, edge-popup on a random MLP."""
import copy

import pytest
import torch

from qselect.classical.baselines import anti_random_masks, edge_popup, magnitude_masks, random_masks
from qselect.classical.data import load_dataset, make_loader
from qselect.classical.masks import apply_masks, mask_sparsity
from qselect.classical.models import build_model
from qselect.classical.train import TrainConfig, evaluate
from qselect.errors import QSelectError

pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp(seed=0, **kw):
    return build_model("mlp", (64,), 10, seed=seed, hidden=kw.pop("hidden", (32, 16)), **kw)


def test_magnitude_per_layer_keeps_the_largest():
    m = _mlp()
    masks = magnitude_masks(m, 0.25)
    for name, mask in masks.items():
        w = m.get_parameter(name).detach().abs()
        assert int((mask == 0).sum()) == round(0.25 * w.numel())
        assert w[mask == 1].min() >= w[mask == 0].max()
    assert set(magnitude_masks(m, 0.5, layers=["layers.2"])) == {"layers.2.weight"}


def test_magnitude_global_uses_one_threshold():
    m = _mlp()
    with torch.no_grad():
        m.layers[4].weight.add_(10.0)      # the last layer is much larger: global keeps it all
    masks = magnitude_masks(m, 0.5, scope="global")
    s = mask_sparsity(masks)
    assert s["kept"] == s["total"] - round(0.5 * s["total"])
    assert s["layers"]["layers.4.weight"] == 0.0
    kept = torch.cat([m.get_parameter(k).detach().abs()[v == 1] for k, v in masks.items()])
    gone = torch.cat([m.get_parameter(k).detach().abs()[v == 0] for k, v in masks.items()])
    assert kept.min() >= gone.max()


def test_magnitude_on_an_already_masked_model_keeps_pruned_weights_out():
    m = _mlp()
    first = random_masks(m, 0.3, seed=0)
    apply_masks(m, first)
    second = magnitude_masks(m, 0.5)
    for k in first:
        assert bool((second[k][first[k] == 0] == 0).all())


def test_random_masks_exact_seeded_and_global_rng_untouched():
    m = _mlp()
    torch.manual_seed(123)
    probe = torch.rand(1)
    torch.manual_seed(123)
    a = random_masks(m, 0.4, seed=7)
    assert torch.equal(torch.rand(1), probe)
    b = random_masks(m, 0.4, seed=7)
    c = random_masks(m, 0.4, seed=8)
    assert all(torch.equal(a[k], b[k]) for k in a) and any(not torch.equal(a[k], c[k]) for k in a)
    for k, v in a.items():
        assert int((v == 0).sum()) == round(0.4 * v.numel())
    g = random_masks(m, 0.4, scope="global", seed=7)
    s = mask_sparsity(g)
    assert s["total"] - s["kept"] == round(0.4 * s["total"])
    assert len({round(v, 6) for v in s["layers"].values()}) > 1   # layers differ under a global draw


def test_anti_random_siblings_partition_the_weights():
    m = _mlp()
    a, b = anti_random_masks(m, 0.5, seed=1)
    for k in a:
        assert torch.equal(a[k] + b[k], torch.ones_like(a[k]))
    assert mask_sparsity(a)["overall"] == pytest.approx(0.5, abs=1e-3)


def test_baseline_errors():
    m = _mlp()
    with pytest.raises(QSelectError, match="sparsity"):
        magnitude_masks(m, 1.5)
    with pytest.raises(QSelectError, match="scope"):
        random_masks(m, 0.5, scope="channel")
    with pytest.raises(QSelectError, match="not prunable"):
        magnitude_masks(m, 0.5, layers=["layers.1"])
    assert all(int(v.sum()) == v.numel() for v in magnitude_masks(m, 0.0).values())
    with pytest.raises(QSelectError, match="sparsity must be a number"):
        random_masks(m, "half")
    assert set(random_masks(m, 0.5, layers="layers.2")) == {"layers.2.weight"}   # one name, not its letters
    with torch.no_grad():
        m.layers[2].weight[0, 0] = float("nan")    # torch's top-k would rank NaN first and keep it
    with pytest.raises(QSelectError, match="layers.2.weight holds NaN"):
        magnitude_masks(m, 0.5)


def test_edge_popup_finds_a_good_subnetwork_in_a_random_mlp():
    d = load_dataset("digits", seed=0)
    random_net = build_model("mlp", d.input_shape, 10, seed=1, hidden=(128, 128), init="kaiming_normal")
    before = copy.deepcopy(random_net.state_dict())
    loader = make_loader(d.train, 64, shuffle=True, seed=0)
    masks, hist = edge_popup(random_net, loader, 0.5, epochs=8, lr=0.1, seed=0, return_history=True)
    # the input model is untouched
    assert all(torch.equal(before[k], v) for k, v in random_net.state_dict().items())
    for k, v in masks.items():
        assert int(v.sum()) == round(0.5 * v.numel())
    test = make_loader(d.test, 512)
    chance = evaluate(random_net, test)["accuracy"]
    rnd = copy.deepcopy(random_net)
    apply_masks(random_net, masks)
    acc = evaluate(random_net, test)["accuracy"]
    assert acc > 0.6 and acc > chance + 0.4, (chance, acc)        # chance is ~0.1
    assert hist["train_accuracy"][-1] > 0.6
    # a random mask of the same sparsity on the same weights is near chance
    apply_masks(rnd, random_masks(rnd, 0.5, seed=0))
    assert evaluate(rnd, test)["accuracy"] < acc - 0.3
    # seeded: the same call gives the same masks
    again = edge_popup(build_model("mlp", d.input_shape, 10, seed=1, hidden=(128, 128), init="kaiming_normal"),
                       make_loader(d.train, 64, shuffle=True, seed=0), 0.5, epochs=1, lr=0.1, seed=0)
    again2 = edge_popup(build_model("mlp", d.input_shape, 10, seed=1, hidden=(128, 128), init="kaiming_normal"),
                        make_loader(d.train, 64, shuffle=True, seed=0), 0.5,
                        config=TrainConfig(epochs=1, lr=0.1, nesterov=False, seed=0))
    assert all(torch.equal(again[k], again2[k]) for k in again)
    with pytest.raises(QSelectError):
        edge_popup(random_net, loader, 1.0)
