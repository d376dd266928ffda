"""Representation diversity: linear CKA properties, activations, feature visualisation, figures."""
import copy

import numpy as np
import pytest
import torch

from qselect.classical.models import build_model
from qselect.errors import QSelectError
from qselect.methods import (
    activation_maximisation,
    cka_matrices,
    feature_grid,
    layer_activations,
    linear_cka,
    top_activating,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _reference_cka(x, y):
    """CKA from the HSIC definition with an explicit centring matrix (Kornblith et al. eq. 3-4)."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h)  # noqa: E731
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def test_cka_with_itself_is_one_and_invariant_to_orthogonal_maps_and_scaling():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8))
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, x @ q) == pytest.approx(1.0)
    assert linear_cka(x, 3.7 * x + 2.0) == pytest.approx(1.0)  # isotropic scaling (and translation)
    y = rng.normal(size=(50, 5))
    ref = _reference_cka(x, y)
    assert linear_cka(x, y) == pytest.approx(ref)
    assert linear_cka(x @ q * 0.3, y) == pytest.approx(ref)
    assert linear_cka(y, x) == pytest.approx(ref)
    assert 0 < ref < 1
    # not invariant to an anisotropic scaling (a check that the test can fail)
    assert linear_cka(x, x * np.arange(1, 9)) < 0.99
    # more features than samples: the Gram form gives the same numbers
    wide = rng.normal(size=(20, 40))
    assert linear_cka(wide, wide @ np.linalg.qr(rng.normal(size=(40, 40)))[0]) == pytest.approx(1.0)
    assert linear_cka(wide, wide[:, :7]) == pytest.approx(_reference_cka(wide, wide[:, :7]))


def test_cka_rejects_mismatched_samples():
    with pytest.raises(QSelectError, match="same inputs"):
        linear_cka(np.ones((5, 2)), np.ones((6, 2)))


def test_member_cka_matrix_from_real_activations():
    a = build_model("lenet5", (1, 8, 8), 10, seed=0)
    b = copy.deepcopy(a)
    c = build_model("lenet5", (1, 8, 8), 10, seed=1)
    x = torch.rand(64, 1, 8, 8)
    acts = layer_activations(a, x)
    assert list(acts) == ["relu1", "relu2", "relu3", "relu4"] and acts["relu1"].shape == (64, 6, 8, 8)
    out = cka_matrices([a, b, c], x)
    m = np.asarray(out["matrices"]["relu3"])
    assert m.shape == (3, 3) and m[0, 1] == pytest.approx(1.0) and m[0, 2] < 0.999
    assert m[0, 2] == pytest.approx(linear_cka(acts["relu3"], layer_activations(c, x, ["relu3"])["relu3"]))
    assert out["mean"] == pytest.approx(np.mean(list(out["mean_offdiag"].values())))


def test_activation_maximisation_beats_real_inputs_and_top_inputs_are_sorted():
    model = build_model("mlp", (64,), 10, seed=0, hidden=(16,))
    x = torch.rand(200, 64)
    top = top_activating(model, "layers.1", 3, x, k=5)
    vals = layer_activations(model, x, ["layers.1"])["layers.1"][:, 3]
    assert top["indices"][0] == int(vals.argmax()) and top["values"] == sorted(top["values"], reverse=True)
    am = activation_maximisation(model, "layers.1", 3, (64,), steps=80, lr=0.1, seed=0)
    assert am["image"].shape == (1, 8, 8)
    assert float(am["image"].min()) >= 0 and float(am["image"].max()) <= 1
    assert am["activation"] > top["values"][0]  # the optimised input excites the unit more than any real one
    again = activation_maximisation(model, "layers.1", 3, (64,), steps=80, lr=0.1, seed=0)
    assert torch.equal(am["image"], again["image"])


def test_unit_beyond_a_layer_raises_one_line(tmp_path):
    model = build_model("mlp", (64,), 10, seed=0, hidden=(16,))
    x = torch.rand(10, 64)
    for call in (lambda: top_activating(model, "layers.1", 16, x),
                 lambda: activation_maximisation(model, "layers.1", 99, (64,), steps=1),
                 lambda: feature_grid({"m": model}, "layers.1", [0, 16], x, tmp_path / "f.png", steps=1)):
        with pytest.raises(QSelectError, match="beyond layer 'layers.1', which has 16 units") as err:
            call()
        assert "\n" not in str(err.value)
    with pytest.raises(QSelectError, match="no module"):
        layer_activations(model, x, ["nope"])


def test_feature_grid_writes_a_png_and_its_numbers(tmp_path):
    a = build_model("lenet5", (1, 8, 8), 10, seed=0)
    members = {"child 1": a, "child 2": build_model("lenet5", (1, 8, 8), 10, seed=1)}
    x = torch.rand(30, 1, 8, 8)
    path = tmp_path / "grid.png"
    nums = feature_grid(members, "relu1", [0, 2], x, path, top_k=2, steps=5)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(nums) == {"child 1", "child 2"} and set(nums["child 1"]) == {"0", "2"}
    assert nums["child 1"]["2"]["top_indices"] == top_activating(a, "relu1", 2, x, k=2)["indices"]
