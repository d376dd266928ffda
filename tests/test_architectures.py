"""Neuron / channel / head selection on real architectures: BatchNorm, residual blocks, ViT."""
import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from qselect.classical.masks import apply_masks
from qselect.classical.models import build_model
from qselect.errors import QSelectError
from qselect.formulate import select_masks
from qselect.formulate.select import build_masks

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: extra threads only spin


def _randomise_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=g))
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.5)
    return model.eval()


class LinBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 6)
        self.bn = nn.BatchNorm1d(6)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc2(self.act(self.bn(self.fc1(x))))


def _case(kind):
    torch.manual_seed(0)
    if kind == "linear-relu":
        return build_model("mlp", (8,), 3, hidden=(6, 5)).eval(), torch.randn(32, 8), "layers.0", "layers.2"
    if kind == "linear-bn-relu":
        return _randomise_bn(LinBN()), torch.randn(32, 8), "fc1", "fc2"
    if kind == "conv-bn-relu-block":
        m = _randomise_bn(build_model("resnet18", (3, 8, 8), 4, width=4))
        return m, torch.randn(6, 3, 8, 8), "layer2.1.conv1", "layer2.1.conv2"
    v = build_model("vit", (3, 8, 8), 4, dim=8, depth=2, heads=4, mlp_ratio=2.0).eval()
    if kind == "vit-mlp":
        return v, torch.randn(6, 3, 8, 8), "blocks.1.mlp.0", "blocks.1.mlp.2"
    return v, torch.randn(6, 3, 8, 8), "blocks.0.attn", "blocks.0.attn.proj"  # heads


def _io(model, x, name):
    store = {}
    mod = model.get_submodule(name)
    h = mod.register_forward_hook(lambda m, a, o: store.update(i=a[0].detach(), o=o.detach()))
    with torch.no_grad():
        model(x)
    h.remove()
    return store["i"], store["o"]


CASES = ["linear-relu", "linear-bn-relu", "conv-bn-relu-block", "vit-mlp", "heads"]


@pytest.mark.parametrize("kind", CASES)
def test_energy_equals_next_layer_change_and_removed_units_are_zero(kind):
    model, x, layer, reader = _case(kind)
    sel = select_masks(model, x, formulation="neuron", layers=[layer], sparsity=0.5, penalty=0.0,
                       solver="magnitude")
    (lp,) = sel.problems
    _, z_dense = _io(model, x, reader)
    rng = np.random.default_rng(0)
    for _ in range(4):
        bits = rng.integers(0, 2, lp.n).astype(np.uint8)
        masks = build_masks(model, [lp], [SimpleNamespace(bits=bits)])
        masked = apply_masks(copy.deepcopy(model), masks).eval()
        a_masked, z_masked = _io(masked, x, reader)
        direct = float(((z_masked.double() - z_dense.double()) ** 2).sum())
        assert lp.problem.energy(bits) == pytest.approx(direct, rel=1e-6, abs=1e-8)
        # every removed unit reaches the reader as exactly zero (after BN and the activation)
        off = np.flatnonzero(bits == 0)
        if kind == "heads":
            hd = model.get_submodule(layer).head_dim
            cols = np.concatenate([np.arange(h * hd, (h + 1) * hd) for h in off]) if off.size else off
            assert torch.all(a_masked[..., cols] == 0)
        elif a_masked.dim() == 4:
            assert torch.all(a_masked[:, off] == 0)
        else:
            assert torch.all(a_masked[..., off] == 0)


def test_bn_scale_and_shift_are_masked_with_the_unit():
    model, x, layer, _ = _case("conv-bn-relu-block")
    sel = select_masks(model, x, formulation="neuron", layers=[layer], sparsity=0.5)
    keep = sel.masks[f"{layer}.weight"].flatten(1)[:, 0]
    assert int(keep.sum()) == 4  # 8 channels at 50 %
    for p in ("weight", "bias"):
        assert torch.equal(sel.masks[f"layer2.1.bn1.{p}"], keep)


def test_resnet_default_layers_are_the_block_inner_convs():
    model, x, _, _ = _case("conv-bn-relu-block")
    sel = select_masks(model, x, formulation="neuron", sparsity=0.5, solver="magnitude")
    assert sorted({p.layer for p in sel.problems}) == [f"layer{s}.{b}.conv1" for s in (1, 2, 3, 4) for b in (0, 1)]


@pytest.mark.parametrize("layer, why", [
    ("layer2.0.conv2", "residual connection"),
    ("conv1", "residual connection"),
    ("layer1.1.conv2", "residual connection"),
])
def test_residual_channels_are_refused_in_one_line(layer, why):
    model, x, _, _ = _case("conv-bn-relu-block")
    with pytest.raises(QSelectError) as e:
        select_masks(model, x, formulation="neuron", layers=[layer])
    msg = str(e.value)
    assert "\n" not in msg and repr(layer) in msg and why in msg


@pytest.mark.parametrize("layer, why", [("blocks.0.attn.proj", "residual connection"),
                                        ("patch_embed", "residual connection")])
def test_vit_stream_layers_are_refused_in_one_line(layer, why):
    model, x, _, _ = _case("vit-mlp")
    with pytest.raises(QSelectError) as e:
        select_masks(model, x, formulation="neuron", layers=[layer])
    assert "\n" not in str(e.value) and repr(layer) in str(e.value) and why in str(e.value)


def test_vit_default_neuron_layers_are_the_mlp_inputs():
    model, x, _, _ = _case("vit-mlp")
    sel = select_masks(model, x, formulation="neuron", sparsity=0.5, solver="magnitude")
    assert sorted({p.layer for p in sel.problems}) == ["blocks.0.mlp.0", "blocks.1.mlp.0"]


def test_heads_keep_k_and_mask_whole_head_rows():
    model, x, layer, _ = _case("heads")
    sel = select_masks(model, x, formulation="neuron", layers=[layer], sparsity=0.5)
    w = sel.masks[f"{layer}.qkv.weight"]
    rows = w[:, 0].reshape(3, 4, 2)  # (q/k/v, head, head_dim)
    kept = rows[2, :, 0]
    assert int(kept.sum()) == 2
    assert torch.all(rows == kept[None, :, None])  # q, k and v of a head go together
    assert torch.equal(sel.masks[f"{layer}.qkv.bias"], w[:, 0])


def test_layernorm_between_is_refused_naming_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5), nn.ReLU(), nn.Linear(5, 2)).eval()
    with pytest.raises(QSelectError) as e:
        select_masks(model, torch.randn(8, 6), formulation="neuron", layers=["0"])
    assert "\n" not in str(e.value) and "'0'" in str(e.value) and "LayerNorm" in str(e.value)


# ---- seed methods on ResNet-18 and the ViT (small sizes, image-shaped digits, CPU) -------------

@pytest.fixture(scope="module")
def image_digits():
    from qselect.classical.data import load_dataset

    return load_dataset("digits", seed=0, image=True)


def _subset(ds, n):
    from torch.utils.data import TensorDataset

    return TensorDataset(*[t[:n] for t in ds.tensors])


def test_prune_and_tune_with_selected_children_on_resnet18(image_digits):
    from qselect.classical.masks import mask_sparsity
    from qselect.methods import prune_and_tune

    parent = build_model("resnet18", image_digits.input_shape, image_digits.num_classes, seed=0, width=4)
    data = _subset(image_digits.train, 96)
    res = prune_and_tune(parent, data, children=2, method="qselect", sparsity=0.5, tune_epochs=1,
                         batch_size=48, calib_size=32,
                         select_options={"formulation": "neuron", "solver": "magnitude",
                                         "layers": ["layer2.1.conv1", "layer3.0.conv1"]})
    assert len(res.children) == 2
    for m in res.masks:
        assert set(m) >= {"layer2.1.conv1.weight", "layer2.1.bn1.weight", "layer2.1.bn1.bias"}
        keep = m["layer2.1.conv1.weight"].flatten(1)[:, 0]
        assert int(keep.sum()) == 4 and torch.equal(m["layer2.1.bn1.weight"], keep)
    child = res.children[0].eval()
    x = image_digits.test.tensors[0][:16]
    store = {}
    h = child.layer2[1].conv2.register_forward_hook(lambda mod, a, o: store.update(a=a[0]))
    with torch.no_grad():
        child(x)
    h.remove()
    off = torch.nonzero(res.masks[0]["layer2.1.conv1.weight"].flatten(1)[:, 0] == 0).flatten()
    assert torch.all(store["a"][:, off] == 0)  # removed channels stay removed after tuning
    assert 0 < mask_sparsity(res.masks[0])["overall"] < 1


def test_ssa_on_resnet18_reaches_the_selected_channels(image_digits):
    from qselect.classical.data import make_loader
    from qselect.classical.masks import get_masks
    from qselect.classical.train import TrainConfig
    from qselect.methods import ssa_finetune

    model = build_model("resnet18", image_digits.input_shape, image_digits.num_classes, seed=0, width=4)
    x = image_digits.train.tensors[0][:32]
    sel = select_masks(model, x, formulation="neuron", layers=["layer2.1.conv1"], sparsity=0.5,
                       solver="magnitude")
    loader = make_loader(_subset(image_digits.train, 64), 32, shuffle=True, seed=0)
    out = ssa_finetune(model, sel.masks, loader, TrainConfig(epochs=2, lr=0.05, batch_size=32, device="cpu"),
                       seed=0)
    final = get_masks(model)
    for k, v in sel.masks.items():
        assert torch.equal(final[k], v.float())
    assert set(out["masks"]) == set(sel.masks)


def test_synaptic_stripping_on_the_vit_mlp_units(image_digits):
    from qselect.classical.data import make_loader
    from qselect.classical.train import TrainConfig
    from qselect.methods import synaptic_stripping

    model = build_model("vit", image_digits.input_shape, image_digits.num_classes, seed=0, dim=16, depth=2,
                        heads=2)
    loader = make_loader(_subset(image_digits.train, 64), 32, shuffle=True, seed=0)
    out = synaptic_stripping(model, loader, TrainConfig(epochs=1, lr=0.05, batch_size=32, device="cpu"),
                             fraction=0.2, layers=["blocks.0.mlp.0", "blocks.1.mlp.0"])
    assert set(out["dead_initial"]) == {"blocks.0.mlp.0", "blocks.1.mlp.0"}
    assert 0.0 <= out["final_sparsity"] < 1.0


@pytest.mark.slow
def test_cli_select_neuron_on_a_resnet18_checkpoint(tmp_path):
    from qselect.classical.checkpoint import save_checkpoint
    from qselect.classical.masks import load_masks
    from qselect.cli import main

    model = build_model("resnet18", (1, 8, 8), 10, seed=0, width=4)
    ckpt = tmp_path / "rn.pt"
    save_checkpoint(ckpt, model, meta={"model": "resnet18", "model_kwargs": {"width": 4},
                                       "input_shape": [1, 8, 8], "num_classes": 10})
    run = tmp_path / "run"
    argv = ["select", "--model", str(ckpt), "--formulation", "neuron", "--sparsity", "0.5",
            "--calib-size", "16", "--run-dir", str(run), "-q", "--solver", "exact"]
    assert main(argv) == 0
    masks = load_masks(run / "masks.pt")
    assert {"layer2.1.conv1.weight", "layer2.1.bn1.weight", "layer2.1.bn1.bias"} <= set(masks)
    assert not any(k.startswith("layer2.0.conv2") for k in masks)  # residual convs left out
