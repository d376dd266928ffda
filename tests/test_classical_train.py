"""Training loop: accuracy on digits, determinism, schedules, masks fixed, checkpoints, early stop."""
import copy
import math

import pytest
import torch

from qselect.classical.augment import CifarAugment
from qselect.classical.baselines import magnitude_masks
from qselect.classical.checkpoint import load_checkpoint, save_checkpoint
from qselect.classical.data import load_dataset, make_loader
from qselect.classical.masks import apply_masks, get_masks
from qselect.classical.models import build_model
from qselect.classical.train import TrainConfig, evaluate, predict_proba, resolve_device, train
from qselect.errors import QSelectError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(digits, train_digits_mlp):
    return train_digits_mlp(digits, TrainConfig(epochs=12, lr=0.1), val_loader=make_loader(digits.val, 512))


def test_mlp_beats_90_percent_on_digits(trained, digits):
    model, hist = trained
    ev = evaluate(model, make_loader(digits.test, 512))
    assert ev["accuracy"] > 0.90, ev
    assert ev["nll"] < 0.5 and 0.0 <= ev["ece"] < 0.1
    assert hist["epochs_run"] == 12 and len(hist["val_accuracy"]) == 12
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert hist["device"] == str(resolve_device("auto")) and hist["config"]["lr"] == 0.1
    if hist["device"] == "cpu":
        assert hist["amp"] is False  # mixed precision only on CUDA


def test_predict_proba_matches_model(trained, digits):
    model, _ = trained
    probs, labels = predict_proba(model, digits.test)           # a Dataset works too
    assert probs.shape == (len(digits.test), 10) and labels.tolist() == digits.test.tensors[1].tolist()
    assert abs(probs.sum(1) - 1).max() < 1e-6
    with torch.no_grad():
        ref = torch.softmax(model.eval()(digits.test.tensors[0][:5]), 1).double().numpy()
    assert abs(probs[:5] - ref).max() < 1e-6


def _run(digits, seed=0, model_seed=0, epochs=2, **cfg):
    m = build_model("mlp", digits.input_shape, 10, seed=model_seed, hidden=(32,))
    train(m, make_loader(digits.train, 64, shuffle=True, seed=seed), TrainConfig(epochs=epochs, seed=seed, **cfg))
    return m


def test_same_seed_gives_identical_weights(digits):
    a, b = _run(digits), _run(digits)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = _run(digits, seed=1)
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))
    d1, d2 = _run(digits, optimizer="adamw", lr=1e-2), _run(digits, optimizer="adamw", lr=1e-2)
    assert all(torch.equal(x, y) for x, y in zip(d1.state_dict().values(), d2.state_dict().values()))


def test_onecycle_schedule_matches_prune_and_tune_recipe(digits, monkeypatch):
    m = build_model("mlp", digits.input_shape, 10, hidden=(8,))
    loader = make_loader(digits.train, 130)                      # 10 steps per epoch
    lrs = []
    orig = torch.optim.SGD.step

    def spy(self, *a, **k):   # the lr each optimiser step actually uses
        lrs.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    train(m, loader, TrainConfig(epochs=10, lr=0.4, schedule="onecycle"))
    monkeypatch.undo()
    assert len(lrs) == 100
    assert math.isclose(lrs[0], 0.4 / 100, rel_tol=1e-9)            # start max_lr/100
    assert math.isclose(max(lrs), 0.4, rel_tol=1e-9) and lrs.index(max(lrs)) in (9, 10)  # peak at 10%
    assert lrs[-1] < 1e-3 * 0.4 and all(x >= y for x, y in zip(lrs[10:], lrs[11:]))   # cosine down
    # the scheduler's final value is max_lr * 1e-7
    sched = torch.optim.lr_scheduler.OneCycleLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.4),
                                                max_lr=0.4, total_steps=100, pct_start=0.1, div_factor=100,
                                                final_div_factor=1e5)
    for _ in range(99):
        sched.optimizer.step()
        sched.step()
    assert math.isclose(sched.get_last_lr()[0], 0.4e-7, rel_tol=1e-6)


def test_step_and_constant_schedules(digits):
    loader = make_loader(digits.train, 512)
    h = train(build_model("mlp", (64,), 10, hidden=(8,)), loader,
              TrainConfig(epochs=4, lr=0.2, schedule="step", step_size=2, gamma=0.5))
    assert h["lr"] == pytest.approx([0.2, 0.2, 0.1, 0.1])
    h = train(build_model("mlp", (64,), 10, hidden=(8,)), loader,
              TrainConfig(epochs=3, lr=0.2, schedule="step", milestones=(1,), gamma=0.1))
    assert h["lr"] == pytest.approx([0.2, 0.02, 0.02])
    h = train(build_model("mlp", (64,), 10, hidden=(8,)), loader,
              TrainConfig(epochs=2, lr=0.05, schedule="constant", optimizer="adamw", progress=True))
    assert h["lr"] == [0.05, 0.05]


def test_config_errors(digits):
    with pytest.raises(QSelectError, match="optimizer"):
        TrainConfig(optimizer="rmsprop").validate()
    with pytest.raises(QSelectError, match="schedule"):
        TrainConfig(schedule="poly").validate()
    if not torch.cuda.is_available():
        with pytest.raises(QSelectError, match="CUDA is not available"):
            resolve_device("cuda")
    m = build_model("mlp", (64,), 10, hidden=(8,))
    for p in m.parameters():
        p.requires_grad_(False)
    with pytest.raises(QSelectError, match="nothing to train"):
        train(m, digits.train, TrainConfig(epochs=1))
    m = build_model("mlp", (64,), 10, hidden=(8,))
    with pytest.raises(QSelectError, match="diverged"):
        train(m, digits.train, TrainConfig(epochs=3, lr=1e6, optimizer="sgd"))


def test_user_errors_are_one_clear_line(digits):
    """Each mistake gives a QSelectError naming the fix, not a torch/numpy traceback."""
    m = build_model("mlp", (64,), 10, hidden=(8,))
    one = TrainConfig(epochs=1)
    cases = [
        (lambda: resolve_device("bogus"), "unknown device 'bogus'"),
        (lambda: train(m, digits.train, TrainConfig(epochs=1, lr="0.1")), "lr must be a finite number"),
        (lambda: train(m, digits.train, TrainConfig(epochs=1.5)), "epochs must be an integer"),
        (lambda: train(m, digits.train, {"epochs": 1, "learning_rate": 0.1}), "unknown TrainConfig field"),
        (lambda: train(m, digits.train, [1]), "TrainConfig or a dict"),
        (lambda: train(m, torch.utils.data.TensorDataset(torch.zeros(0, 64), torch.zeros(0, dtype=torch.long)),
                       one), "dataset is empty"),
        (lambda: train(build_model("mlp", (32,), 10), digits.train, one), r"inputs \(128, 64\).*input_shape"),
        (lambda: train(build_model("mlp", (64,), 5), digits.train, one), r"labels run from 0 to 9 .*num_classes=10"),
        (lambda: train(m, digits.train, TrainConfig(epochs=1, early_stop_patience=1)), "pass val_loader"),
    ]
    for fn, match in cases:
        with pytest.raises(QSelectError, match=match):
            fn()
    assert train(m, digits.val, {"epochs": 1, "lr": 0.05})["config"]["lr"] == 0.05  # a dict config works


def test_masks_stay_fixed_during_fine_tuning(trained, digits):
    model = copy.deepcopy(trained[0])
    masks = magnitude_masks(model, 0.5)
    apply_masks(model, masks)
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.endswith("_mask")}
    train(model, make_loader(digits.train, 64, shuffle=True, seed=5), TrainConfig(epochs=2, lr=0.05))
    after = get_masks(model)
    assert set(after) == set(masks) and all(torch.equal(after[k], masks[k]) for k in masks)
    for k, m in masks.items():
        w = model.get_submodule(k.rsplit(".", 1)[0]).weight
        assert bool((w[m == 0] == 0).all())
        assert not torch.equal(before[k + "_orig"], model.state_dict()[k + "_orig"])  # it did train


def test_magnitude_pruning_keeps_accuracy_and_fine_tune_recovers(trained, digits):
    model = trained[0]
    test = make_loader(digits.test, 512)
    base = evaluate(model, test)["accuracy"]
    for scope in ("layer", "global"):
        pruned = copy.deepcopy(model)
        apply_masks(pruned, magnitude_masks(pruned, 0.5, scope=scope))
        acc = evaluate(pruned, test)["accuracy"]
        assert acc > base - 0.04, (scope, base, acc)
    train(pruned, make_loader(digits.train, 64, shuffle=True), TrainConfig(epochs=3, lr=0.02))
    assert evaluate(pruned, test)["accuracy"] > base - 0.03


def test_checkpoint_roundtrip_with_masks(tmp_path, trained, digits):
    model = copy.deepcopy(trained[0])
    apply_masks(model, magnitude_masks(model, 0.7))
    p = save_checkpoint(tmp_path / "ck" / "a.pt", model, meta={"epoch": 3, "acc": torch.tensor(0.5),
                                                                "path": tmp_path})
    fresh = build_model("mlp", digits.input_shape, 10, seed=9, hidden=(64, 64))
    payload = load_checkpoint(p, fresh)
    assert payload["meta"]["epoch"] == 3 and payload["meta"]["acc"] == 0.5
    x = digits.test.tensors[0][:20]
    assert torch.equal(fresh.eval()(x), model.eval()(x))
    assert all(torch.equal(get_masks(fresh)[k], v) for k, v in get_masks(model).items())
    # a second load into an already-pruned model also works
    load_checkpoint(p, fresh)
    assert torch.equal(fresh(x), model(x))
    # payload only
    assert set(load_checkpoint(p)["masks"]) == set(get_masks(model))


def test_checkpoint_errors(tmp_path, digits):
    model = build_model("mlp", (64,), 10, hidden=(16,))
    p = save_checkpoint(tmp_path / "a.pt", model)
    raw = p.read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(QSelectError, match="cut.pt is corrupt"):
        load_checkpoint(tmp_path / "cut.pt", model)
    with pytest.raises(QSelectError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"state": 1}, tmp_path / "foreign.pt")
    with pytest.raises(QSelectError, match="not a qselect checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(QSelectError, match="does not fit"):
        load_checkpoint(p, build_model("mlp", (64,), 10, hidden=(17,)))
    with pytest.raises(QSelectError, match="does not fit"):
        load_checkpoint(p, build_model("lenet5", (1, 8, 8), 10))
    pruned = build_model("mlp", (64,), 10, hidden=(16,))
    apply_masks(pruned, magnitude_masks(pruned, 0.5))
    with pytest.raises(QSelectError, match="mask on"):
        load_checkpoint(p, pruned)
    with pytest.raises(QSelectError, match="JSON-like"):
        save_checkpoint(tmp_path / "b.pt", model, meta={"fn": print})
    with pytest.raises(QSelectError, match="is a directory"):
        save_checkpoint(tmp_path, model)


def test_early_stop_restores_best(digits):
    # validation labels shuffled: the model's val NLL worsens as it fits, so it must stop
    g = torch.Generator().manual_seed(0)
    x, y = digits.val.tensors
    bad_val = torch.utils.data.TensorDataset(x, y[torch.randperm(len(y), generator=g)])
    m = build_model("mlp", (64,), 10, hidden=(32,))
    h = train(m, digits.train, TrainConfig(epochs=30, lr=0.1, batch_size=64, early_stop_patience=2),
              val_loader=bad_val)
    assert h["stopped_early"] and h["epochs_run"] < 30
    best = h["best_epoch"]
    assert h["val_nll"][best] == min(h["val_nll"]) and h["epochs_run"] == best + 3
    assert evaluate(m, bad_val)["nll"] == pytest.approx(h["val_nll"][best], rel=1e-6)


def test_epoch_callback_stops_and_augment_runs():
    d = load_dataset("digits", image=True)
    m = build_model("lenet5", d.input_shape, 10)
    seen, augmented = [], []
    aug = CifarAugment(pad=1, seed=0)
    h = train(m, d.train, TrainConfig(epochs=5, lr=0.05, batch_size=256),
              augment=lambda x: augmented.append(x.shape[0]) or aug(x),
              epoch_callback=lambda e, model, hist: seen.append(e) or e == 1)
    assert seen == [0, 1] and h["epochs_run"] == 2
    assert sum(augmented) == 2 * len(d.train)   # every training batch went through the augmentation


@pytest.mark.parametrize("name,kw", [("resnet18", {"width": 4}), ("vit", {"dim": 16, "depth": 1, "heads": 2})])
def test_conv_and_vit_train_with_masks_and_augmentation(name, kw):
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(48, 3, 16, 16, generator=g),
                                          torch.randint(0, 4, (48,), generator=g))
    m = build_model(name, (3, 16, 16), 4, **kw)
    masks = magnitude_masks(m, 0.5)
    apply_masks(m, masks)
    h = train(m, data, TrainConfig(epochs=2, lr=1e-3, optimizer="adamw", batch_size=16),
              augment=CifarAugment(seed=0))
    assert h["epochs_run"] == 2 and math.isfinite(h["train_loss"][-1])
    assert all(torch.equal(get_masks(m)[k], v) for k, v in masks.items())


def test_train_config_validates_where_made_and_changed_copies_revalidate():
    with pytest.raises(QSelectError, match="lr"):
        TrainConfig(lr=-1.0)
    c = TrainConfig(epochs=2)
    d = c.replace(lr=0.5)
    assert d.lr == 0.5 and c.lr == 0.1 and d.epochs == 2
    with pytest.raises(QSelectError, match="optimizer"):
        c.replace(optimizer="nadam")
    with pytest.raises(QSelectError, match="no field"):
        c.replace(learning_rate=0.1)
