"""Stochastic Subnetwork Annealing: schedules, stochastic masks, exact end mask."""
import dataclasses

import pytest
import torch

from qselect.classical.baselines import magnitude_masks, random_masks
from qselect.classical.data import make_loader
from qselect.classical.masks import get_masks, mask_sparsity
from qselect.classical.models import build_model
from qselect.classical.train import TrainConfig, evaluate
from qselect.errors import QSelectError
from qselect.methods import SCHEDULES, StochasticSubnetworkAnnealing, schedule_factor, ssa_finetune

pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp(seed=0):
    return build_model("mlp", (64,), 10, seed=seed, hidden=(32, 32))


@pytest.mark.parametrize("kind", SCHEDULES)
def test_schedules_start_at_one_end_at_zero_and_decrease(kind):
    values = [schedule_factor(kind, t / 50) for t in range(51)]
    assert values[0] == pytest.approx(1.0)
    assert values[-1] == 0.0
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert schedule_factor(kind, 2.0) == 0.0


def test_schedule_rejects_unknown_kind():
    with pytest.raises(QSelectError, match="linear"):
        schedule_factor("step", 0.5)


def test_sampled_masks_vary_during_annealing_and_end_at_the_target():
    model = _mlp()
    target = random_masks(model, 0.8, seed=1)
    ssa = StochasticSubnetworkAnnealing(model, target, duration=6, schedule="linear", initial_prob=0.9, seed=0)
    x = torch.randn(16, 64)
    model.train()
    samples = []
    for _ in range(6):
        model(x)
        samples.append(ssa.current_masks())
    # every sample keeps the whole target (targets stay at probability 1)
    for s in samples:
        for k in target:
            assert bool((s[k] >= target[k]).all())
    # consecutive samples differ while annealing
    for a, b in zip(samples, samples[1:4]):
        assert not all(torch.equal(a[k], b[k]) for k in target)
    # kept count shrinks with the schedule
    kept = [sum(float(v.sum()) for v in s.values()) for s in samples]
    assert kept[0] > kept[3] > sum(float(v.sum()) for v in target.values())
    assert ssa.done
    model(x)  # past the end: the sample is the target exactly
    assert all(torch.equal(ssa.current_masks()[k], target[k]) for k in target)
    # eval uses the expected mask: here (schedule done) that is the target too
    model.eval()
    model(x)
    assert all(torch.equal(ssa.current_masks()[k], target[k]) for k in target)
    final = ssa.finish()
    got = get_masks(model)
    assert all(torch.equal(got[k], target[k]) and torch.equal(final[k], target[k]) for k in target)
    # the deterministic mask is an ordinary torch-pruning mask now
    w = model.layers[0].weight
    assert bool((w[target["layers.0.weight"] == 0] == 0).all())


def test_eval_uses_expected_mask_mid_schedule():
    model = _mlp()
    target = random_masks(model, 0.5, seed=2)
    ssa = StochasticSubnetworkAnnealing(model, target, duration=10, schedule="cosine", initial_prob=1.0)
    model.train()
    for _ in range(5):
        model(torch.randn(4, 64))
    model.eval()
    model(torch.randn(4, 64))
    probs = ssa.probabilities()
    current = ssa.current_masks()
    assert all(torch.allclose(current[k], probs[k]) for k in target)
    mid = float(probs["layers.0.weight"][target["layers.0.weight"] == 0].unique()[0])
    assert mid == pytest.approx(schedule_factor("cosine", 0.5))


def test_random_init_and_seed_determinism():
    masks = []
    for _ in range(2):
        model = _mlp()
        target = magnitude_masks(model, 0.7)
        ssa = StochasticSubnetworkAnnealing(model, target, duration=4, init="random", seed=7)
        model.train()
        model(torch.randn(4, 64))
        masks.append(ssa.current_masks())
        p = ssa.probabilities(0)["layers.0.weight"]
        off = p[target["layers.0.weight"] == 0]
        assert float(off.max()) < 1.0 and float(off.std()) > 0.1  # spread out, below 1
    assert all(torch.equal(masks[0][k], masks[1][k]) for k in masks[0])


def test_ssa_finetune_on_digits_reaches_target_sparsity(digits, train_digits_mlp):
    base = TrainConfig(epochs=8, lr=0.3, batch_size=64, device="cpu", seed=0)
    model, _ = train_digits_mlp(digits, base, hidden=(32, 32))  # the same network _mlp() builds
    target = magnitude_masks(model, 0.8)
    cfg = dataclasses.replace(base, epochs=4, lr=0.1, seed=1)
    out = ssa_finetune(model, target, make_loader(digits.train, 64, shuffle=True, seed=1), cfg,
                       anneal_epochs=2, schedule="exponential")
    got = get_masks(model)
    assert all(torch.equal(got[k], target[k]) for k in target)
    assert mask_sparsity(got)["overall"] == pytest.approx(0.8, abs=0.01)
    assert out["ssa"]["factor"] == 0.0
    assert evaluate(model, make_loader(digits.test, 256))["accuracy"] > 0.7


def test_bad_arguments_are_one_line_errors():
    model = _mlp()
    target = random_masks(model, 0.5)
    with pytest.raises(QSelectError, match="duration"):
        StochasticSubnetworkAnnealing(model, target, duration=0)
    with pytest.raises(QSelectError, match="eval_mask"):
        StochasticSubnetworkAnnealing(model, target, duration=3, eval_mask="mean")
    bad = {"layers.0.weight": torch.ones(3, 3)}
    with pytest.raises(QSelectError, match="shape"):
        StochasticSubnetworkAnnealing(_mlp(), bad, duration=3)


def test_qselect_selection_is_a_valid_target():
    from qselect.formulate import select_masks

    model = build_model("mlp", (64,), 10, seed=2, hidden=(16,))
    sel = select_masks(model, torch.rand(32, 64), sparsity=0.75, qubits=6, layers=["layers.2"])
    ssa = StochasticSubnetworkAnnealing(model, sel.masks, duration=3, schedule="exponential")
    model.train()
    for _ in range(4):
        model(torch.rand(8, 64))
    target = {k: v.float().cpu() for k, v in sel.masks.items()}
    assert all(torch.equal(ssa.current_masks()[k], target[k]) for k in target)
    ssa.finish()
    assert torch.equal(get_masks(model)["layers.2.weight"], target["layers.2.weight"])
    assert float(target["layers.2.weight"].sum()) == 10 * 4  # k = 4 of 16 inputs per neuron


def test_samples_are_bernoulli_of_the_probabilities_and_eval_never_sees_a_stale_sample():
    model = _mlp()
    target = random_masks(model, 0.5, seed=3, layers=["layers.0"])
    target["layers.2.weight"] = torch.ones(32, 32)  # nothing to anneal here: never sampled
    ssa = StochasticSubnetworkAnnealing(model, target, duration=1000, schedule="linear", initial_prob=0.6)
    model.train()
    model(torch.randn(4, 64))
    s = ssa.current_masks()
    free = target["layers.0.weight"] == 0
    assert bool((s["layers.0.weight"][~free] == 1).all())
    assert float(s["layers.0.weight"][free].mean()) == pytest.approx(0.6, abs=0.06)  # 1024 draws
    assert bool(((s["layers.0.weight"] == 0) | (s["layers.0.weight"] == 1)).all())
    assert torch.equal(s["layers.2.weight"], target["layers.2.weight"])
    for step in (1, 2):  # eval after a sample shows the expected mask and does not advance the schedule
        model.eval()
        for _ in range(2):
            model(torch.randn(4, 64))
            probs = ssa.probabilities()
            assert ssa.step == step and all(torch.equal(ssa.current_masks()[k], probs[k]) for k in target)
        model.train()
        model(torch.randn(4, 64))
