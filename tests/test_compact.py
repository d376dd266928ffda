"""compact(model, masks): physically smaller models computing the masked model's function."""
import copy

import pytest
import torch
from torch import nn

from qselect.classical.compact import compact, count_parameters
from qselect.classical.masks import apply_masks
from qselect.classical.models import build_model
from qselect.errors import QSelectError
from qselect.formulate import select_masks

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: extra threads only spin


def _bn_stats(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.5)
    return model.eval()


def _same(compacted, model, masks, x):
    masked = apply_masks(copy.deepcopy(model), masks).eval()
    with torch.no_grad():
        ref, out = masked(x), compacted.eval()(x)
    assert out.shape == ref.shape
    assert float((out - ref).abs().max()) <= 1e-5 * float(ref.abs().max())


def test_resnet_block_channels_are_removed_with_bn_and_reader():
    torch.manual_seed(0)
    model = _bn_stats(build_model("resnet18", (3, 8, 8), 4, width=4))
    x = torch.randn(6, 3, 8, 8)
    sel = select_masks(model, x, formulation="neuron", sparsity=0.5, solver="magnitude")
    c = compact(model, sel.masks, example_inputs=x)
    _same(c, model, sel.masks, x)
    assert count_parameters(c) < count_parameters(model)
    blk = c.layer2[1]
    assert blk.conv1.out_channels == 4 and blk.bn1.num_features == 4 and blk.conv2.in_channels == 4
    assert model.layer2[1].conv1.out_channels == 8  # the original is untouched
    assert c.compact_info["removed"]["layer2.1.conv1"] == 4


def test_residual_channels_stay_masked_and_exact():
    torch.manual_seed(0)
    model = _bn_stats(build_model("resnet18", (3, 8, 8), 4, width=4))
    x = torch.randn(4, 3, 8, 8)
    masks = {"layer1.0.conv2.weight": torch.ones(4, 4, 3, 3), "layer1.0.bn2.weight": torch.ones(4),
             "layer1.0.bn2.bias": torch.ones(4)}
    for k in masks:
        masks[k][1] = 0  # channel 1 of a conv feeding the residual sum
    c = compact(model, masks, example_inputs=x)
    _same(c, model, masks, x)
    assert "layer1.0.conv2" in c.compact_info["skipped"]
    assert "residual" in c.compact_info["skipped"]["layer1.0.conv2"]
    assert c.layer1[0].conv2.out_channels == 4


def test_vit_mlp_units_and_heads_are_removed():
    torch.manual_seed(0)
    model = build_model("vit", (3, 8, 8), 4, dim=8, depth=2, heads=4).eval()
    x = torch.randn(5, 3, 8, 8)
    sel = select_masks(model, x, formulation="neuron", sparsity=0.5, solver="magnitude",
                       layers=["blocks.0.attn", "blocks.1.mlp.0"])
    c = compact(model, sel.masks, example_inputs=x)
    _same(c, model, sel.masks, x)
    assert c.blocks[0].attn.heads == 2 and c.blocks[0].attn.qkv.out_features == 12
    assert c.blocks[0].attn.proj.in_features == 4
    assert c.blocks[1].mlp[0].out_features == 8 and c.blocks[1].mlp[2].in_features == 8
    assert count_parameters(c) < count_parameters(model)


def test_mlp_partial_masks_stay_as_zeros_dead_units_go():
    torch.manual_seed(0)
    model = build_model("mlp", (6,), 3, hidden=(5, 4)).eval()
    x = torch.randn(7, 6)
    w = torch.ones(5, 6)
    w[0, 1] = 0  # unstructured: stays
    w[2] = 0  # unit 2 is dead once its bias goes too
    b = torch.ones(5)
    b[2] = 0
    masks = {"layers.0.weight": w, "layers.0.bias": b}
    c = compact(model, masks, example_inputs=x)
    _same(c, model, masks, x)
    assert c.layers[0].out_features == 4 and c.layers[2].in_features == 4
    assert float(c.layers[0].weight.detach()[0, 1]) == 0.0
    assert count_parameters(c) == count_parameters(model) - 6 - 1 - 4


def test_unit_with_nonzero_bias_is_kept():
    torch.manual_seed(0)
    model = build_model("mlp", (6,), 3, hidden=(5,)).eval()
    x = torch.randn(4, 6)
    w = torch.ones(5, 6)
    w[1] = 0  # the bias still drives unit 1: it is not dead
    c = compact(model, {"layers.0.weight": w}, example_inputs=x)
    _same(c, model, {"layers.0.weight": w}, x)
    assert c.layers[0].out_features == 5


def test_bad_masks_are_refused():
    model = build_model("mlp", (6,), 3, hidden=(5,))
    with pytest.raises(QSelectError):
        compact(model, {"nope.weight": torch.ones(2)})
