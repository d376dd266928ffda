"""RigL: constant parameter count, drop/grow rules, cosine update fraction, ERK densities."""
import math

import numpy as np
import pytest
import torch

from qselect.classical.data import make_loader
from qselect.classical.masks import get_masks, mask_sparsity
from qselect.classical.models import build_model
from qselect.classical.train import TrainConfig
from qselect.errors import QSelectError
from qselect.methods import RigL, layer_densities, rigl_fraction, rigl_train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_update_fraction_is_cosine_decayed():
    assert rigl_fraction(0, 100, 0.3) == pytest.approx(0.3)
    assert rigl_fraction(50, 100, 0.3) == pytest.approx(0.15)
    assert rigl_fraction(25, 100, 0.3) == pytest.approx(0.15 * (1 + math.cos(math.pi / 4)))
    assert rigl_fraction(100, 100, 0.3) == pytest.approx(0.0, abs=1e-12)
    assert rigl_fraction(101, 100, 0.3) == 0.0


def test_erk_densities_match_the_budget_and_favour_small_layers():
    shapes = {"a.weight": (300, 64), "b.weight": (300, 300), "c.weight": (10, 300)}
    d = layer_densities(shapes, 0.9, "erk")
    sizes = {k: np.prod(s) for k, s in shapes.items()}
    kept = sum(d[k] * sizes[k] for k in shapes)
    assert kept == pytest.approx(0.1 * sum(sizes.values()))
    raw = {k: sum(s) / sizes[k] for k, s in shapes.items()}  # hand formula: eps * (n_in + n_out) / (n_in n_out)
    unc = [k for k in shapes if d[k] < 1]
    assert len({d[k] / raw[k] for k in unc}) == 1 or np.allclose([d[k] / raw[k] for k in unc], d[unc[0]] / raw[unc[0]])
    assert d["b.weight"] < d["a.weight"]
    assert layer_densities(shapes, 0.9, "uniform") == {k: pytest.approx(0.1) for k in shapes}


def test_parameter_count_constant_and_no_just_dropped_weight_regrown(digits):
    loader = make_loader(digits.train, 64, shuffle=True, seed=0)
    model = build_model("mlp", digits.input_shape, digits.num_classes, seed=0, hidden=(32, 32))
    out = rigl_train(model, loader, TrainConfig(epochs=4, lr=0.1, batch_size=64, device="cpu", seed=0), 0.8,
                     delta_t=5, alpha=0.5, record=True)
    updates = out["updates"]
    steps = 4 * len(loader)
    assert [u["step"] for u in updates] == list(range(5, int(0.75 * steps) + 1, 5))
    start = updates[0]["active"]
    total = sum(m.numel() for m in out["masks"].values())
    assert start == round(0.2 * 64 * 32) + round(0.2 * 32 * 32) + round(0.2 * 32 * 10)
    moved = 0
    for u in updates:
        assert u["active"] == start  # exactly the same count after every update
        for name, drop in u["dropped_indices"].items():
            grow = u["grown_indices"][name]
            assert drop.numel() == grow.numel() == u["dropped"][name]
            assert not set(drop.tolist()) & set(grow.tolist())  # never regrow what was just dropped
            moved += drop.numel()
    assert moved > 0
    # per layer: k = round(f * active) (hand check on the first update)
    first = updates[0]
    per_layer = {n: int(m.sum()) for n, m in out["masks"].items()}
    for n, k in first["dropped"].items():
        assert k == round(rigl_fraction(5, int(0.75 * steps), 0.5) * per_layer[n])
    # the masks are torch pruning masks on the model, at the target sparsity
    live = get_masks(model)
    assert all(torch.equal(live[k], out["masks"][k]) for k in out["masks"])
    assert out["sparsity"] == pytest.approx(1 - start / total)
    assert mask_sparsity(model)["layers"]["layers.0.weight"] == pytest.approx(0.8, abs=1e-3)


def test_grow_uses_the_dense_gradient_and_regrown_weights_start_at_zero():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 4, bias=False))
    rigl = RigL(model, 0.5, t_end=10, delta_t=1, alpha=0.5, init="magnitude", record=True)
    mask_before = get_masks(model)["0.weight"].clone()
    x, y = torch.randn(8, 6), torch.randn(8, 4)
    model.train()
    loss = ((model(x) - y) ** 2).sum()
    loss.backward()
    # independent reference: dL/dW of the effective weight, computed by hand
    w_eff = (model[0].weight_orig * mask_before).detach()
    dense_grad = (2 * (x @ w_eff.T - y)).T @ x
    w_before = (model[0].weight_orig.detach() * mask_before).reshape(-1).abs()
    rigl(1, model)
    rec = rigl.history[-1]
    k = rec["dropped"]["0.weight"]
    assert k == round(rigl_fraction(1, 10, 0.5) * 12) and k > 0
    inactive = torch.nonzero(mask_before.reshape(-1) == 0).reshape(-1)
    expect_grow = inactive[torch.argsort(dense_grad.reshape(-1)[inactive].abs(), descending=True)[:k]]
    assert set(rec["grown_indices"]["0.weight"].tolist()) == set(expect_grow.tolist())
    active = torch.nonzero(mask_before.reshape(-1) == 1).reshape(-1)
    expect_drop = active[torch.argsort(w_before[active])[:k]]
    assert set(rec["dropped_indices"]["0.weight"].tolist()) == set(expect_drop.tolist())
    assert bool((model[0].weight_orig.detach().reshape(-1)[rec["grown_indices"]["0.weight"]] == 0).all())
    assert int(get_masks(model)["0.weight"].sum()) == 12


@pytest.mark.parametrize("kw, match", [({"sparsity": 1.0}, "sparsity"), ({"alpha": 0.0}, "alpha"),
                                       ({"delta_t": 0}, "delta_t"), ({"init": "lottery"}, "init"),
                                       ({"layers": ["x.weight"]}, "x.weight"),
                                       ({"distribution": "normal"}, "distribution")])
def test_bad_rigl_options_raise_one_line(kw, match):
    model = build_model("mlp", (64,), 10, seed=0, hidden=(8,))
    args = {"sparsity": 0.5, "t_end": 10, **kw}
    with pytest.raises(QSelectError, match=match) as err:
        RigL(model, args.pop("sparsity"), **args)
    assert "\n" not in str(err.value)


def test_random_start_rescales_kept_weights_to_the_dense_variance():
    dense = build_model("mlp", (64,), 10, seed=0, hidden=(32,))
    for rescale, expect in ((True, 1 / math.sqrt(0.25)), (False, 1.0)):
        model = build_model("mlp", (64,), 10, seed=0, hidden=(32,))
        RigL(model, 0.75, t_end=10, init="random", rescale=rescale).finish()
        for name, mask in get_masks(model).items():
            module = model.get_submodule(name.rsplit(".", 1)[0])
            ref = dict(dense.named_parameters())[name]
            assert float(mask.mean()) == pytest.approx(0.25, abs=1e-3)
            assert torch.allclose(module.weight_orig, ref * mask * expect)
