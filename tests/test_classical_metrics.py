"""Every metric against a hand-computed case."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from qselect.classical.data import make_loader
from qselect.classical.metrics import (
    accuracy,
    dead_units,
    disagreement,
    ece,
    ensemble_probs,
    nll,
    output_correlation,
    pairwise_kl,
)
from qselect.errors import QSelectError

# confidences 0.70, 0.62, 0.45, 0.52 fall in four different 1/15-wide bins
P = np.array([[0.70, 0.20, 0.10],
              [0.10, 0.62, 0.28],
              [0.30, 0.25, 0.45],
              [0.52, 0.38, 0.10]])
Y = np.array([0, 2, 2, 1])          # predictions 0, 1, 2, 0 -> correct, wrong, correct, wrong


def test_accuracy_and_nll():
    assert accuracy(P, Y) == 0.5
    assert nll(P, Y) == pytest.approx(-(math.log(0.70) + math.log(0.28) + math.log(0.45) + math.log(0.38)) / 4)
    assert accuracy(torch.tensor(P), torch.tensor(Y)) == 0.5      # torch inputs too
    assert nll(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(-math.log(1e-12))  # clipped, finite
    with pytest.raises(QSelectError):
        accuracy(P, Y[:3])


def test_ece_15_bins_and_one_bin():
    # separate bins: mean of |correct - confidence|
    assert ece(P, Y) == pytest.approx((0.30 + 0.62 + 0.55 + 0.52) / 4)
    # one bin: |accuracy - mean confidence|
    assert ece(P, Y, n_bins=1) == pytest.approx(abs(0.5 - (0.70 + 0.62 + 0.45 + 0.52) / 4))
    # two samples sharing a bin (0.70 and 0.71): |1/2 - 0.705| weighted 2/3, plus |1 - 0.45| weighted 1/3
    q = np.array([[0.70, 0.30], [0.29, 0.71], [0.45, 0.55]])
    yq = np.array([0, 0, 1])      # preds 0, 1, 1 -> correct, wrong, correct; conf 0.70, 0.71, 0.55
    assert ece(q, yq) == pytest.approx(2 / 3 * abs(0.5 - 0.705) + 1 / 3 * abs(1 - 0.55))
    perfect = np.eye(3)
    assert ece(perfect, np.arange(3)) == 0.0


def test_disagreement_kl_correlation():
    a = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])   # preds 0 1 2
    b = np.array([[0.8, 0.1, 0.1], [0.1, 0.3, 0.6], [0.0, 0.2, 0.8]])   # preds 0 2 2
    c = np.array([[0.3, 0.6, 0.1], [0.3, 0.6, 0.1], [0.2, 0.2, 0.6]])   # preds 1 1 2
    assert disagreement([a, b, c]) == pytest.approx((1 / 3 + 1 / 3 + 2 / 3) / 3)
    p, q = np.array([[0.5, 0.5]]), np.array([[0.9, 0.1]])
    kl_pq = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    kl_qp = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert pairwise_kl([p, q]) == pytest.approx((kl_pq + kl_qp) / 2)
    assert pairwise_kl([p, p]) == 0.0
    m1 = np.array([[1.0, 0.0], [0.0, 1.0]])
    m2 = np.array([[0.0, 1.0], [1.0, 0.0]])
    m3 = np.array([[1.0, 0.0], [1.0, 0.0]])
    # corr(m1, m2) = -1, corr(m1, m3) = 0, corr(m2, m3) = 0
    assert output_correlation([m1, m2, m3]) == pytest.approx(-1 / 3)
    assert output_correlation(np.stack([m1, m1])) == pytest.approx(1.0)
    np.testing.assert_allclose(ensemble_probs([m1, m2]), np.full((2, 2), 0.5))
    with pytest.raises(QSelectError, match=">= 2 members"):
        disagreement([a])


def test_dead_units_hand_built_relu_net():
    lin = nn.Linear(2, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]]))
        lin.bias.zero_()
    net = nn.Sequential(lin, nn.ReLU(), nn.Linear(3, 2), nn.ReLU())
    with torch.no_grad():
        net[2].weight.copy_(torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]]))
        net[2].bias.zero_()
    # positive inputs: unit 0 always > 0, unit 1 always 0 (dead), unit 2 sometimes > 0
    x = torch.tensor([[1.0, 2.0], [3.0, 1.0], [0.5, 0.5]])
    data = torch.utils.data.TensorDataset(x, torch.zeros(3, dtype=torch.long))
    res = dead_units(net, make_loader(data, 2))
    assert res["dead"]["1"].tolist() == [False, True, False]
    assert res["dead"]["3"].tolist() == [False, True]          # second output unit never fires
    assert res["counts"] == {"1": 1, "3": 1} and res["total_units"] == 5
    assert res["total_dead"] == 2 and res["fraction"] == pytest.approx(0.4)
    assert net.training                                          # mode restored
    with pytest.raises(QSelectError, match="no nn.ReLU"):
        dead_units(nn.Linear(2, 2), make_loader(data, 2))


def test_dead_units_conv_channels():
    conv = nn.Conv2d(1, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
    net = nn.Sequential(conv, nn.ReLU())
    data = torch.utils.data.TensorDataset(torch.rand(4, 1, 3, 3) + 0.1, torch.zeros(4, dtype=torch.long))
    res = dead_units(net, make_loader(data, 4))
    assert res["dead"]["1"].tolist() == [False, True]


def test_bad_inputs_are_refused_not_silently_scored():
    # a negative label used to index the last class (nll of the wrong class); out of range crashed
    for labels in ([0, 2, 2, -1], [0, 2, 2, 3], [0, 2, 2, 1.5]):
        with pytest.raises(QSelectError, match=r"class indices in \[0, 3\)"):
            nll(P, np.array(labels))
    with pytest.raises(QSelectError, match="non-empty"):
        accuracy(np.zeros((0, 3)), np.zeros(0, dtype=np.int64))
    with pytest.raises(QSelectError, match="n_bins"):
        ece(P, Y, n_bins=0)
    with pytest.raises(QSelectError, match="same \\(N, C\\) shape"):
        disagreement([P, P[:3]])
    assert accuracy(P, Y.astype(np.float64)) == 0.5      # integral floats are fine
