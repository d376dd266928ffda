"""Snapshot Ensembles: the cyclic cosine schedule, one snapshot per cycle, cost accounting."""
import math

import pytest
import torch

from qselect.classical.data import make_loader
from qselect.classical.models import build_model
from qselect.classical.train import TrainConfig
from qselect.errors import QSelectError
from qselect.methods import cycle_length, snapshot_ensemble, snapshot_lr, snapshot_steps

pytestmark = pytest.mark.usefixtures("one_thread")


def test_schedule_restarts_exactly_at_cycle_boundaries():
    total, cycles, lr0 = 100, 4, 0.2
    L = cycle_length(total, cycles)
    assert L == 25
    lrs = [snapshot_lr(t, total, cycles, lr0) for t in range(total)]
    # eq. (2) by hand at a few points
    assert lrs[0] == pytest.approx(lr0)
    assert lrs[10] == pytest.approx(lr0 / 2 * (math.cos(math.pi * 10 / 25) + 1))
    rises = [t for t in range(1, total) if lrs[t] > lrs[t - 1]]
    assert rises == [25, 50, 75]  # the rate only goes up at a cycle start...
    assert all(lrs[t] == pytest.approx(lr0) for t in rises)  # ...and back to lr0 exactly
    assert all(lrs[t] < lrs[t - 1] for t in range(1, total) if t not in rises)
    assert snapshot_steps(total, cycles) == [25, 50, 75, 100]
    # a length that does not divide: ceil(T / M), the last cycle ends with the run
    assert cycle_length(10, 3) == 4 and snapshot_steps(10, 3) == [4, 8, 10]


def test_one_snapshot_per_cycle_and_the_lrs_used(digits):
    loader = make_loader(digits.train, 256, shuffle=True, seed=0)  # 5 batches per epoch
    model = build_model("mlp", digits.input_shape, digits.num_classes, seed=0, hidden=(16,))
    cfg = TrainConfig(epochs=6, lr=0.1, batch_size=256, device="cpu", seed=0)
    res = snapshot_ensemble(model, loader, cfg, cycles=3, parent_epochs=2)
    steps = 6 * len(loader)
    assert len(res.snapshots) == 3 and len(res.members) == 3
    assert res.lrs == pytest.approx([snapshot_lr(t, steps, 3, 0.1) for t in range(steps)])
    # each snapshot is a separate copy; the last equals the trained model
    last = dict(res.snapshots[-1].named_parameters())
    assert all(torch.equal(last[k], p) for k, p in model.named_parameters())
    assert not torch.equal(res.snapshots[0].layers[0].weight, res.snapshots[1].layers[0].weight)
    assert res.cost == {"parent_epochs": 2.0, "epochs": 8.0, "flop_epochs": 8.0, "members": 3}
    ev = res.evaluate(make_loader(digits.test, 512))
    assert ev["size"] == 3 and ev["accuracy"] > 0.6 and ev["disagreement"] > 0
    assert ev["nll"] <= ev["member_mean"]["nll"] + 1e-12  # Jensen: averaging softmax never hurts NLL
    kept = snapshot_ensemble(build_model("mlp", digits.input_shape, 10, seed=0, hidden=(16,)), loader, cfg,
                             cycles=3, keep_last=2)
    assert len(kept.members) == 2 and kept.cost["members"] == 2


@pytest.mark.parametrize("kw, match", [({"cycles": 0}, "cycles must be a positive integer"),
                                       ({"cycles": 2.5}, "cycles"),
                                       ({"cycles": 2, "keep_last": 3}, "keep_last")])
def test_bad_cycles_raise_one_line(digits, kw, match):
    model = build_model("mlp", digits.input_shape, 10, seed=0, hidden=(8,))
    with pytest.raises(QSelectError, match=match) as err:
        snapshot_ensemble(model, make_loader(digits.train, 256), TrainConfig(epochs=1, device="cpu"), **kw)
    assert "\n" not in str(err.value)
    with pytest.raises(QSelectError, match="cannot hold"):
        cycle_length(3, 5)
