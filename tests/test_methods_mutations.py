"""Sparse Mutation Decompositions: exact mutation size, seeds, subspaces, evolution and ensembles."""
import copy

import pytest
import torch

from qselect.classical.baselines import magnitude_masks
from qselect.classical.data import make_loader
from qselect.classical.masks import apply_masks, get_masks
from qselect.classical.train import TrainConfig, evaluate
from qselect.errors import QSelectError
from qselect.methods import SparseMutation, complement_masks, evolve, mutated_children

pytestmark = pytest.mark.usefixtures("one_thread")


def _changed(a, b):
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    return {k: torch.nonzero((pa[k] != pb[k]).reshape(-1)).reshape(-1) for k in pa if not torch.equal(pa[k], pb[k])}


@pytest.fixture(scope="module")
def parent(digits, train_digits_mlp):
    return train_digits_mlp(digits, TrainConfig(epochs=6, lr=0.1, batch_size=64, device="cpu", seed=0),
                            hidden=(32,))[0]


@pytest.mark.parametrize("kw, expect", [({"count": 37}, 37), ({"fraction": 0.05}, None)])
def test_mutation_touches_exactly_the_asked_number_and_is_reproducible(parent, kw, expect):
    op = SparseMutation(parent, scale=0.5, **kw)
    total = sum(p.numel() for n, p in parent.named_parameters() if n.endswith("weight"))
    expect = expect if expect is not None else round(0.05 * total)
    child = copy.deepcopy(parent)
    rec = op(child, seed=3)
    changed = _changed(parent, child)
    assert rec.count == expect == sum(v.numel() for v in changed.values())
    assert all(k.endswith("weight") for k in changed)  # biases are outside the default subspace
    for k, idx in changed.items():  # the record says exactly where and by how much
        assert torch.equal(idx, rec.indices[k].sort().values)
        diff = (dict(child.named_parameters())[k] - dict(parent.named_parameters())[k]).reshape(-1)
        assert torch.allclose(diff[rec.indices[k]], rec.deltas[k], atol=1e-6)
    again = copy.deepcopy(parent)
    op(again, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(child.parameters(), again.parameters()))
    other = copy.deepcopy(parent)
    op(other, seed=4)
    assert not all(torch.equal(p, q) for p, q in zip(child.parameters(), other.parameters()))
    op.apply(child, rec, sign=-1.0)  # undo
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(child.parameters(), parent.parameters()))


def test_mask_subspace_restricts_mutations_and_skips_pruned_weights(parent):
    keep = magnitude_masks(parent, 0.9)  # subspace: the 10% largest weights
    op = SparseMutation(parent, fraction=1.0, scale=0.1, subspace=keep)
    assert op.size == sum(int(m.sum()) for m in keep.values())
    child = copy.deepcopy(parent)
    op(child, seed=0)
    for k, idx in _changed(parent, child).items():
        assert bool((keep[k].reshape(-1)[idx] == 1).all())
    # a pruned parent: masked weights are never mutated (they could not matter)
    pruned = apply_masks(copy.deepcopy(parent), complement_masks(keep))
    op2 = SparseMutation(pruned, count=50, scale=0.1)
    rec = op2(pruned, seed=1)
    live = get_masks(pruned)
    assert rec.count == 50
    assert all(bool((live[k].reshape(-1)[i] == 1).all()) for k, i in rec.indices.items())


def test_one_generation_children_are_diverse_and_an_ensemble(digits, parent):
    val, test = make_loader(digits.val, 512), make_loader(digits.test, 512)
    res = mutated_children(parent, val, children=3, population=6, fraction=0.05, scale=0.05, seed=0,
                           train_size=len(digits.train), parent_epochs=6)
    assert len(res.children) == 3 and res.fitness == sorted(res.fitness)
    assert res.fitness == pytest.approx([evaluate(c, val)["nll"] for c in res.children])
    assert res.cost["evaluations"] == 6 and res.cost["epochs"] == 6.0
    assert res.cost["flop_epochs"] == pytest.approx(6 + 6 * len(digits.val) / len(digits.train) / 3)
    ev = res.evaluate(test)
    assert ev["disagreement"] > 0 and ev["accuracy"] > 0.8
    assert len({tuple(l) for l in res.lineage}) == 3


def test_generations_never_get_worse_with_elitism(digits, parent):
    val = make_loader(digits.val, 512)
    res = evolve(parent, val, SparseMutation(parent, count=20, scale=0.05), generations=3, population=4,
                 children=2, seed=1)
    best = [h["elite_best"] for h in res.history]
    assert all(b <= a + 1e-12 for a, b in zip(best, best[1:]))
    assert best[0] <= res.history[0]["parent_fitness"] or res.history[0]["best"] == best[0]
    assert max(len(l) for l in res.lineage) <= 3  # a child composes one mutation per generation


@pytest.mark.parametrize("kw, match", [({"fraction": 0.0}, r"\(0, 1\]"), ({"fraction": 1.5}, r"\(0, 1\]"),
                                       ({"fraction": -0.1}, r"\(0, 1\]"), ({"count": 0}, "count"),
                                       ({"scale": 0}, "scale"), ({"subspace": "dense"}, "subspace"),
                                       ({"layers": ["nope.weight"]}, "nope.weight"),
                                       ({"count": 10**9}, "exceeds")])
def test_bad_mutation_options_raise_one_line(parent, kw, match):
    with pytest.raises(QSelectError, match=match) as err:
        SparseMutation(parent, **kw)
    assert "\n" not in str(err.value)


def test_bad_evolution_options_raise(digits, parent):
    val = make_loader(digits.val, 512)
    with pytest.raises(QSelectError, match="cannot exceed"):
        evolve(parent, val, population=2, children=3)
    with pytest.raises(QSelectError, match="fitness"):
        evolve(parent, val, fitness="loss")
