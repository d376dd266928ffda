"""Models accept masks; mask apply/get/save/load/validation; sparsity, parameter and FLOP counts."""
import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from qselect.classical.baselines import magnitude_masks, random_masks
from qselect.classical.flops import count_flops, count_parameters
from qselect.classical.masks import (
    apply_masks,
    get_masks,
    load_masks,
    mask_sparsity,
    masks_from_selection,
    neuron_masks,
    prunable_parameters,
    remove_masks,
    save_masks,
)
from qselect.classical.models import build_model
from qselect.errors import QSelectError

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"mlp": {"hidden": (16, 8)}, "lenet5": {}, "resnet18": {"width": 4},
         "vit": {"dim": 16, "depth": 2, "heads": 2}}


@pytest.mark.parametrize("name,shape", [("mlp", (64,)), ("mlp", (1, 8, 8)), ("lenet5", (1, 8, 8)),
                                        ("lenet5", (1, 28, 28)), ("lenet5", (3, 32, 32)),
                                        ("resnet18", (3, 32, 32)), ("vit", (3, 32, 32)),
                                        ("vit", (1, 8, 8))])
def test_models_build_seeded_and_forward(name, shape):
    m = build_model(name, shape, 7, seed=3, **SMALL[name])
    x = torch.randn(2, *shape)
    m.eval()
    assert m(x).shape == (2, 7)
    m2 = build_model(name, shape, 7, seed=3, **SMALL[name])
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
    m3 = build_model(name, shape, 7, seed=4, **SMALL[name])
    assert not all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m3.state_dict().values()))


def test_build_model_errors_and_rng_untouched():
    torch.manual_seed(0)
    a = torch.rand(1)
    torch.manual_seed(0)
    build_model("mlp", (64,), 10)
    assert torch.equal(torch.rand(1), a)
    with pytest.raises(QSelectError, match="unknown model"):
        build_model("alexnet", (64,), 10)
    with pytest.raises(QSelectError, match="bad option"):
        build_model("mlp", (64,), 10, widths=3)
    with pytest.raises(QSelectError, match="init"):
        build_model("mlp", (64,), 10, init="xavier")
    with pytest.raises(QSelectError, match="image"):
        build_model("lenet5", (10,), 10)
    for kw, match in ((dict(name=None), "model name"), (dict(num_classes=0), "num_classes"),
                      (dict(input_shape=(0,)), "input_shape"), (dict(hidden=(8, 0)), "hidden"),
                      (dict(hidden=64), "hidden")):
        args = {"name": "mlp", "input_shape": (64,), "num_classes": 10, **kw}
        with pytest.raises(QSelectError, match=match):
            build_model(args.pop("name"), args.pop("input_shape"), args.pop("num_classes"), **args)
    assert build_model("mlp", 64, 10, hidden=(4,))(torch.zeros(1, 64)).shape == (1, 10)  # an int shape
    sc = build_model("mlp", (64,), 10, init="signed_constant", hidden=(32,))
    assert torch.allclose(sc.layers[0].weight.abs(), torch.full((32, 64), (2 / 64) ** 0.5))


@pytest.mark.parametrize("name,shape", [("mlp", (64,)), ("lenet5", (1, 8, 8)),
                                        ("resnet18", (3, 16, 16)), ("vit", (3, 16, 16))])
def test_masks_take_effect_in_every_model(name, shape):
    """A masked model computes exactly what the same model with those weights zeroed computes."""
    m = build_model(name, shape, 5, seed=0, **SMALL[name]).eval()
    masks = random_masks(m, 0.6, seed=1)
    assert set(masks) == set(prunable_parameters(m))
    ref = copy.deepcopy(m)
    with torch.no_grad():
        for k, v in masks.items():
            ref.get_parameter(k).mul_(v)
    apply_masks(m, masks)
    x = torch.randn(3, *shape)
    assert torch.allclose(m(x), ref(x), atol=1e-5)
    assert not torch.allclose(m(x), build_model(name, shape, 5, seed=0, **SMALL[name]).eval()(x), atol=1e-3)


def test_apply_get_compose_remove():
    m = build_model("mlp", (6,), 3, hidden=(4,))
    assert prunable_parameters(m) == ["layers.0.weight", "layers.2.weight"]
    a = {"layers.0.weight": (torch.arange(24).reshape(4, 6) % 2).float()}
    b = {"layers.0.weight": (torch.arange(24).reshape(4, 6) % 3 != 0).float(),
         "layers.0.bias": torch.tensor([1.0, 0.0, 1.0, 1.0])}
    apply_masks(m, a)
    assert set(get_masks(m)) == {"layers.0.weight"}
    apply_masks(m, b)   # composes with the existing mask (torch's PruningContainer)
    got = get_masks(m)
    assert torch.equal(got["layers.0.weight"], a["layers.0.weight"] * b["layers.0.weight"])
    assert torch.equal(got["layers.0.bias"], b["layers.0.bias"])
    assert float(m.layers[0].bias.detach()[1]) == 0.0
    dense = get_masks(m, include_dense=True)
    assert torch.equal(dense["layers.2.weight"], torch.ones(3, 4))
    # torch's own pruning composes too and shows up in get_masks
    prune.l1_unstructured(m.layers[2], "weight", amount=6)
    assert int(get_masks(m)["layers.2.weight"].sum()) == 6
    orig = m.layers[0].weight_orig.detach().clone()
    remove_masks(m, make_permanent=False)
    assert get_masks(m) == {} and torch.equal(m.layers[0].weight, orig)
    apply_masks(m, a)
    remove_masks(m)
    assert get_masks(m) == {} and float(m.layers[0].weight.detach()[0, 0]) == 0.0
    assert isinstance(m.layers[0].weight, nn.Parameter)


def test_mask_validation_errors():
    m = build_model("mlp", (6,), 3, hidden=(4,))
    with pytest.raises(QSelectError, match="names no parameter"):
        apply_masks(m, {"layers.9.weight": torch.ones(4, 6)})
    with pytest.raises(QSelectError, match=r"shape \(6, 4\).*\(4, 6\)"):
        apply_masks(m, {"layers.0.weight": torch.ones(6, 4)})
    with pytest.raises(QSelectError, match="other than 0 and 1"):
        apply_masks(m, {"layers.0.weight": torch.full((4, 6), 0.5)})
    with pytest.raises(QSelectError, match="masks dict"):
        apply_masks(m, [1, 2])
    apply_masks(m, {"layers.9.weight": torch.ones(4, 6), "layers.2.weight": torch.zeros(3, 4)}, strict=False)
    assert set(get_masks(m)) == {"layers.2.weight"}


def test_save_load_masks(tmp_path):
    m = build_model("mlp", (6,), 3, hidden=(4,))
    masks = random_masks(m, 0.5, seed=2)
    p = save_masks(tmp_path / "sub" / "m.pt", masks, meta={"method": "random"})
    back = load_masks(p, m)
    assert set(back) == set(masks) and all(torch.equal(back[k], masks[k]) for k in masks)
    assert back["layers.0.weight"].dtype == torch.float32
    other = build_model("mlp", (6,), 3, hidden=(5,))
    with pytest.raises(QSelectError, match="shape"):
        load_masks(p, other)
    with pytest.raises(QSelectError, match="does not exist"):
        load_masks(tmp_path / "nope.pt")
    (tmp_path / "bad.pt").write_bytes(b"\x00garbage")
    with pytest.raises(QSelectError, match="bad.pt.*unreadable"):
        load_masks(tmp_path / "bad.pt")
    torch.save({"x": torch.ones(1)}, tmp_path / "foreign.pt")
    with pytest.raises(QSelectError, match="not a qselect masks file"):
        load_masks(tmp_path / "foreign.pt")
    assert not list((tmp_path / "sub").glob(".*tmp"))   # atomic write left no temp file
    # masks are stored as bool: a non-binary mask must be refused, not saved as all ones
    with pytest.raises(QSelectError, match="other than 0 and 1"):
        save_masks(tmp_path / "half.pt", {"layers.0.weight": torch.full((4, 6), 0.5)})
    assert not (tmp_path / "half.pt").exists()
    with pytest.raises(QSelectError, match="is a directory"):
        save_masks(tmp_path, masks)


def test_sparsity_accounting_hand_computed():
    m = build_model("mlp", (6,), 3, hidden=(4,))      # weights 4x6=24 and 3x4=12
    masks = {"layers.0.weight": torch.zeros(4, 6)}
    masks["layers.0.weight"][:, :3] = 1.0              # 12 of 24 kept
    s = mask_sparsity(masks)
    assert s == {"overall": 0.5, "layers": {"layers.0.weight": 0.5}, "kept": 12, "total": 24}
    apply_masks(m, masks)
    s = mask_sparsity(m)                               # dense layers.2 counts: 24 of 36 kept
    assert s["layers"] == {"layers.0.weight": 0.5, "layers.2.weight": 0.0}
    assert s["kept"] == 24 and s["total"] == 36 and abs(s["overall"] - 1 / 3) < 1e-12
    # parameters: 24+4+12+3 = 43 dense, 12 removed
    assert count_parameters(m) == {"dense": 43, "effective": 31, "density": 31 / 43}


def test_flops_hand_computed():
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    f = count_flops(m, torch.zeros(5, 4))              # per sample regardless of batch
    # 2*4*3 + 3 (bias) = 27 ; 2*3*2 + 2 = 14
    assert f["layers"]["0"]["dense"] == 27 and f["layers"]["2"]["dense"] == 14 and f["dense"] == 41
    mask = {"0.weight": torch.tensor([[1.0, 0, 1, 0]] * 3)}
    f = count_flops(m, torch.zeros(1, 4), masks=mask)  # density 0.5 -> 12 + 3 ; 14
    assert f["effective"] == 29 and f["layers"]["0"]["density"] == 0.5
    apply_masks(m, mask)
    assert count_flops(m, torch.zeros(1, 4))["effective"] == 29
    with pytest.raises(QSelectError, match=r"sample input of shape \(1, 5\)"):
        count_flops(m, torch.zeros(1, 5))
    c = nn.Conv2d(1, 2, 3, padding=1)                  # 32 outputs * 9 MACs * 2 + 32 bias
    assert count_flops(c, torch.zeros(1, 1, 4, 4))["dense"] == 2 * 32 * 9 + 32
    vit = build_model("vit", (1, 8, 8), 10, dim=16, depth=1, heads=2, patch=4)
    fv = count_flops(vit, torch.zeros(1, 1, 8, 8))
    # qkv Linear on 5 tokens (4 patches + cls): 5 * (2*16*48 + 48)
    assert fv["layers"]["blocks.0.attn.qkv"]["dense"] == 5 * (2 * 16 * 48 + 48)


def test_neuron_masks_and_selection_duck_type():
    m = build_model("mlp", (6,), 3, hidden=(4,))
    nm = neuron_masks(m, "layers.0", [0, 2])
    assert nm["layers.0.weight"].sum(1).tolist() == [6, 0, 6, 0]
    assert nm["layers.0.bias"].tolist() == [1, 0, 1, 0]
    nv = neuron_masks(m, "layers.0", torch.tensor([0, 1, 1, 0]), bias=False)
    assert set(nv) == {"layers.0.weight"} and nv["layers.0.weight"].sum(1).tolist() == [0, 6, 6, 0]
    with pytest.raises(QSelectError, match="no layer"):
        neuron_masks(m, "layers.7", [0])
    with pytest.raises(QSelectError, match="out of range"):
        neuron_masks(m, "layers.0", [4])
    with pytest.raises(QSelectError, match="0/1 vector"):
        neuron_masks(m, "layers.0", torch.tensor([0.0, 2.0, 1.0, 1.0]))
    c = build_model("lenet5", (1, 8, 8), 10)
    cm = neuron_masks(c, "conv2", [1])
    assert cm["conv2.weight"].shape == (16, 6, 5, 5) and int(cm["conv2.weight"].sum()) == 150

    class Selection:   # what select_masks returns: an object with .masks
        masks = {"layers.0.weight": torch.ones(4, 6, dtype=torch.bool)}

    assert masks_from_selection(Selection())["layers.0.weight"].dtype == torch.float32
    apply_masks(m, Selection())
    assert set(get_masks(m)) == {"layers.0.weight"}
    with pytest.raises(QSelectError, match="expected a masks dict"):
        masks_from_selection(3)


def test_masks_from_solved_local_problems():
    from types import SimpleNamespace

    import numpy as np

    from qselect.formulate import masks_from_solutions
    from qselect.formulate.local import LocalProblem
    from qselect.problems import QUBO

    m = build_model("mlp", (6,), 3, hidden=(4,))
    q2, q3 = QUBO(np.zeros((2, 2))), QUBO(np.zeros((3, 3)))
    weight = LocalProblem(q3, "layers.2", "weight", 1, np.array([[1, 0], [1, 2], [1, 3]]), 2)
    neuron = LocalProblem(q2, "layers.0", "neuron", 0, np.array([1, 3]), 1)
    res = [SimpleNamespace(bits=np.array([1, 0, 1], np.uint8)), SimpleNamespace(bits=np.array([0, 1], np.uint8))]
    masks = masks_from_solutions(m, [weight, neuron], res)
    assert masks["layers.2.weight"][1].tolist() == [1, 1, 0, 1] and int(masks["layers.2.weight"].sum()) == 11
    assert masks["layers.0.weight"].sum(1).tolist() == [6, 0, 6, 6]
    assert masks["layers.0.bias"].tolist() == [1, 0, 1, 1]
    apply_masks(m, masks)
    assert mask_sparsity(m)["kept"] == 11 + 18 + 3          # weights of both layers + the bias mask
    with pytest.raises(QSelectError, match="one result per problem"):
        masks_from_solutions(m, [weight], res)


def test_saved_masks_and_checkpoints_are_byte_identical_across_runs(tmp_path):
    """Same content → same bytes, whatever the file is called (reproducible run dirs)."""
    from qselect.classical.checkpoint import save_checkpoint
    from qselect.classical.models import build_model

    model = build_model("mlp", (64,), 10, seed=0, hidden=(8,))
    masks = magnitude_masks(model, 0.5)
    save_masks(tmp_path / "a.pt", masks)
    save_masks(tmp_path / "sub" / "b.pt", masks)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "sub" / "b.pt").read_bytes()
    save_checkpoint(tmp_path / "m1.pt", model, {"k": 1})
    save_checkpoint(tmp_path / "m2.pt", model, {"k": 1})
    assert (tmp_path / "m1.pt").read_bytes() == (tmp_path / "m2.pt").read_bytes()
