"""One-shot pruners against hand-computed cases and brute-force OBS references."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from qselect.errors import QSelectError
from qselect.pruners import (
    keep_per_row,
    layer_error,
    obc_prune,
    prune_classical,
    refit_rows,
    snip_scores,
    sparsegpt_prune,
    unfold_inputs,
    wanda_mask,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _data(rows=40, cols=6, out=3, seed=0):
    rng = np.random.default_rng(seed)
    X = torch.as_tensor(rng.normal(size=(rows, cols)) * rng.uniform(0.3, 2.0, size=cols))
    W = torch.as_tensor(rng.normal(size=(out, cols)))
    return W, X, X.T @ X


def test_wanda_keeps_top_k_of_abs_w_times_input_norm_per_row():
    W = torch.tensor([[1.0, -2.0, 3.0], [4.0, 0.5, -1.0]], dtype=torch.float64)
    H = torch.diag(torch.tensor([9.0, 1.0, 0.25], dtype=torch.float64))  # ‖X_j‖ = 3, 1, 0.5
    # scores: row 0 = 3, 2, 1.5 -> keep 0, 1; row 1 = 12, 0.5, 0.5 -> keep 0 and the tie's lower column 1
    assert wanda_mask(W, H, 2).tolist() == [[1, 1, 0], [1, 1, 0]]
    assert wanda_mask(W, H, 1).tolist() == [[1, 0, 0], [1, 0, 0]]


def _sparsegpt_reference(W, H, keep, blocksize, lam):
    """Column-by-column OBS with earlier columns frozen, every update solved directly."""
    Hd = H.numpy() + lam * np.eye(H.shape[0])
    W = W.numpy().copy()
    rows, cols = W.shape
    mask = np.ones_like(W)
    prune_total = cols - keep
    d = np.array([np.linalg.inv(Hd[j:, j:])[0, 0] for j in range(cols)])
    for i1 in range(0, cols, blocksize):
        i2 = min(cols, i1 + blocksize)
        n_prune = round(i2 * prune_total / cols) - round(i1 * prune_total / cols)
        for r in range(rows):
            score = W[r, i1:i2] ** 2 / d[i1:i2]
            low = np.argsort(score, kind="stable")[:n_prune]
            mask[r, i1 + low] = 0
        for j in range(i1, i2):
            for r in range(rows):
                if mask[r, j] == 0:
                    # minimise δᵀ Hd[j:, j:] δ with δ_0 = −w_j: δ_rest = −Hd_rest⁻¹ Hd_rest,j δ_0
                    delta0 = -W[r, j]
                    if j + 1 < cols:
                        W[r, j + 1:] += -np.linalg.solve(Hd[j + 1:, j + 1:], Hd[j + 1:, j]) * delta0
                    W[r, j] = 0.0
    return mask, W


@pytest.mark.parametrize("blocksize", [128, 2])
def test_sparsegpt_matches_sequential_obs_reference(blocksize):
    W, X, H = _data(cols=6, out=4)
    lam = 0.01 * float(torch.diagonal(H).mean())
    mask, Wn = sparsegpt_prune(W, H, keep=3, blocksize=blocksize, percdamp=0.01)
    rm, rw = _sparsegpt_reference(W, H, 3, blocksize, lam)
    assert mask.numpy().tolist() == rm.tolist()
    assert (mask.sum(dim=1) == 3).all()
    np.testing.assert_allclose(Wn.numpy(), rw, rtol=1e-9, atol=1e-9)


def _obs_greedy_reference(W, H, keep, lam):
    """Greedy exact OBS: remove the weight whose removal (with the optimal update of the rest,
    min (v−w)ᵀHd(v−w) s.t. v_removed = 0) costs least, by direct solves."""
    Hd = H.numpy() + lam * np.eye(H.shape[0])
    out_m, out_w = [], []
    for w in W.numpy():
        S = list(range(w.size))
        v = w.copy()
        while len(S) > keep:
            best = None
            for p in S:
                R = [q for q in S if q != p]
                P = [q for q in range(w.size) if q not in R]
                vv = np.zeros_like(w)
                # v_R = w_R + Hd_RR⁻¹ Hd_RP w_P  (the optimal correction for the removed set P)
                vv[R] = w[R] + np.linalg.solve(Hd[np.ix_(R, R)], Hd[np.ix_(R, P)] @ w[P])
                cost = (vv - w) @ Hd @ (vv - w)
                if best is None or cost < best[0] - 1e-12:
                    best = (cost, p, vv)
            S.remove(best[1])
            v = best[2]
        m = np.zeros_like(w)
        m[S] = 1
        out_m.append(m)
        out_w.append(v)
    return np.array(out_m), np.array(out_w)


@pytest.mark.parametrize("percdamp", [0.0, 0.05])
def test_obc_greedy_choice_and_update_match_brute_force_obs(percdamp):
    W, X, H = _data(cols=6, out=3, seed=1)
    lam = percdamp * float(torch.diagonal(H).mean())
    mask, Wn = obc_prune(W, H, keep=2, percdamp=percdamp)
    rm, rw = _obs_greedy_reference(W, H, 2, lam)
    assert mask.numpy().tolist() == rm.tolist()
    np.testing.assert_allclose(Wn.numpy(), rw, rtol=1e-8, atol=1e-9)
    if percdamp == 0:  # undamped OBS = least squares on the kept columns
        for r in range(W.shape[0]):
            S = np.flatnonzero(rm[r])
            ls = np.linalg.lstsq(X.numpy()[:, S], X.numpy() @ W.numpy()[r], rcond=None)[0]
            np.testing.assert_allclose(Wn.numpy()[r, S], ls, rtol=1e-8, atol=1e-9)


def test_refit_equals_lstsq_on_kept_columns():
    W, X, H = _data(rows=30, cols=7, out=5, seed=2)
    rng = np.random.default_rng(3)
    mask = torch.as_tensor((rng.random((5, 7)) < 0.5).astype(np.float64))
    mask[0] = 0  # a row keeping nothing
    mask[1] = 1  # a row keeping everything
    for damping, tol in ((0.0, 1e-9), (1e-12, 1e-6)):
        out = refit_rows(W, H, mask, damping=damping, rows=30).numpy()
        for r in range(5):
            S = np.flatnonzero(mask[r].numpy())
            ref = np.zeros(7)
            if S.size:
                ref[S] = np.linalg.lstsq(X.numpy()[:, S], X.numpy() @ W.numpy()[r], rcond=None)[0]
            np.testing.assert_allclose(out[r], ref, rtol=tol, atol=tol)


def test_refit_with_damping_minimises_the_damped_objective():
    W, X, H = _data(rows=30, cols=6, out=2, seed=4)
    mask = torch.tensor([[1, 0, 1, 1, 0, 0], [0, 1, 1, 0, 1, 1]], dtype=torch.float64)
    out = refit_rows(W, H, mask, damping=0.1).numpy()
    lam = 0.1 * float(torch.diagonal(H).mean())
    for r in range(2):
        S = np.flatnonzero(mask[r].numpy())
        Xs, t = X.numpy()[:, S], X.numpy() @ W.numpy()[r]
        # argmin ‖X_S v − t‖² + λ‖v − w_S‖² as one stacked least-squares problem
        A = np.vstack([Xs, np.sqrt(lam) * np.eye(S.size)])
        y = np.concatenate([t, np.sqrt(lam) * W.numpy()[r, S]])
        np.testing.assert_allclose(out[r, S], np.linalg.lstsq(A, y, rcond=None)[0], rtol=1e-9, atol=1e-10)


def test_bad_input_gets_one_line_errors():
    W, X, H = _data(rows=4, cols=6, out=2)
    mask = torch.ones(2, 6, dtype=torch.float64)
    with pytest.raises(QSelectError, match="calibration rows") as e:
        refit_rows(W, H, mask, rows=4, name="fc")
    assert "\n" not in str(e.value)
    with pytest.raises(QSelectError, match="obc.*max_cols") as e:
        obc_prune(W, H, 3, max_cols=4, name="fc")
    assert "\n" not in str(e.value)
    model = nn.Sequential(nn.Linear(6, 3))
    with pytest.raises(QSelectError, match="unknown pruning method 'wandaa'") as e:
        prune_classical(model, torch.randn(8, 6), "wandaa", 0.5)
    assert "\n" not in str(e.value)
    with pytest.raises(QSelectError, match="no option"):
        prune_classical(model, torch.randn(8, 6), "wanda", 0.5, blocksize=3)


def test_conv_unfold_reproduces_the_layer():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1, stride=2).double()
    x = torch.randn(4, 2, 7, 7, dtype=torch.float64)
    X = unfold_inputs(conv, x)
    y = (X @ conv.weight.reshape(3, -1).T + conv.bias).reshape(4, -1, 3).permute(0, 2, 1)
    np.testing.assert_allclose(y.reshape(4, 3, 4, 4).detach().numpy(), conv(x).detach().numpy(), atol=1e-12)


def test_snip_saliency_is_abs_grad_times_weight():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    x, y = torch.randn(10, 5), torch.randint(0, 3, (10,))
    s = snip_scores(model, [(x, y)])
    ref = copy.deepcopy(model)
    nn.functional.cross_entropy(ref(x), y).backward()
    for name in ("0.weight", "2.weight"):
        p = dict(ref.named_parameters())[name]
        np.testing.assert_allclose(s[name].numpy(), (p.grad * p).abs().detach().double().numpy(), rtol=1e-5, atol=1e-7)
    res = prune_classical(model, [(x, y)], "snip", 0.5)
    top = torch.argsort(-s["0.weight"], dim=1, stable=True)[:, :keep_per_row(5, 0.5)]
    assert torch.equal(res.masks["0.weight"].nonzero()[:, 1].reshape(4, -1), torch.sort(top, dim=1)[0])


@pytest.fixture(scope="module")
def small_mlp(digits, train_digits_mlp):
    model, _ = train_digits_mlp(digits, {"epochs": 3, "lr": 0.05, "amp": False}, hidden=(32, 32))
    return model


@pytest.mark.parametrize("method", ["magnitude", "random", "wanda", "sparsegpt", "obc"])
def test_every_row_keeps_the_same_count(small_mlp, digits, method):
    res = prune_classical(small_mlp, digits.train.tensors[0][:128], method, 0.7)
    for name, m in res.masks.items():
        rows = m.reshape(m.shape[0], -1)
        assert (rows.sum(dim=1) == keep_per_row(rows.shape[1], 0.7)).all()
        assert torch.equal(res.weights[name] != 0, (m != 0) & (res.weights[name] != 0))
        assert ((res.weights[name] == 0) | (m == 1)).all()
    assert res.info["real_sparsity"] == pytest.approx(res.real_sparsity())


def test_layer_error_order_on_a_trained_mlp(small_mlp, digits):
    calib, held = digits.train.tensors[0][:256], digits.test.tensors[0]
    err = {m: layer_error(small_mlp, prune_classical(small_mlp, calib, m, 0.7), held)["layers"]
           for m in ("magnitude", "wanda", "sparsegpt", "obc")}
    for layer in err["obc"]:
        assert err["obc"][layer] <= err["wanda"][layer]
        assert err["sparsegpt"][layer] <= err["magnitude"][layer]


def test_apply_loads_weights_and_masks(small_mlp, digits):
    res = prune_classical(small_mlp, digits.train.tensors[0][:128], "sparsegpt", 0.5)
    model = res.apply(copy.deepcopy(small_mlp))
    for name, w in res.weights.items():
        mod = model.get_submodule(name.rsplit(".", 1)[0])
        assert torch.equal(mod.weight.detach(), w)
        assert torch.equal(mod.weight_mask, res.masks[name])


def test_imp_with_rewinding_reaches_the_asked_row_sparsity(small_mlp, digits):
    from qselect.classical.data import make_loader

    loader = make_loader(digits.train, 128, shuffle=True, seed=0)
    res = prune_classical(small_mlp, digits.train.tensors[0][:64], "imp", 0.75, train_loader=loader,
                          epochs=2, rounds=1, config={"lr": 0.05, "amp": False})
    assert res.info["epochs"] == 2
    for name, m in res.masks.items():
        assert (m.sum(dim=1) == keep_per_row(m.shape[1], 0.75)).all()
        assert ((res.weights[name] == 0) | (m == 1)).all()
    assert "layers.0.bias" in res.other
    with pytest.raises(QSelectError, match="train_loader"):
        prune_classical(small_mlp, digits.train.tensors[0][:64], "imp", 0.75)
