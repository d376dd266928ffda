"""Anti-random pairs and N-way partitions: disjoint children that cover the parent exactly."""
import pytest
import torch

from qselect.classical.masks import apply_masks, get_masks, mask_sparsity
from qselect.classical.models import build_model
from qselect.errors import QSelectError
from qselect.methods import anti_random_pair, check_partition, partition_children, partition_masks


def _mlp(seed=0):
    return build_model("mlp", (64,), 10, seed=seed, hidden=(24, 16))


def test_anti_random_siblings_are_disjoint_and_cover_the_parent():
    model = _mlp()
    a, b = anti_random_pair(model, seed=3)
    parent = get_masks(model, include_dense=True)
    assert set(a) == set(parent) == set(b)
    for name in parent:
        assert torch.equal(a[name] + b[name], parent[name])  # exact cover, no overlap
        assert abs(float(a[name].mean()) - 0.5) <= 1.0 / a[name].numel() + 1e-9
    assert check_partition(parent, [a, b]) == {"overlap": 0, "uncovered": 0, "outside": 0}


def test_anti_random_pair_of_an_already_pruned_parent_covers_only_its_weights():
    model = _mlp()
    first, _ = anti_random_pair(model, seed=0)
    apply_masks(model, first)  # parent now keeps 50%
    a, b = anti_random_pair(model, seed=1)
    for name, base in get_masks(model).items():
        assert torch.equal(a[name] + b[name], base)
    assert mask_sparsity(a)["overall"] == pytest.approx(0.75, abs=0.01)


@pytest.mark.parametrize("parts", [3, 4, 7])
def test_n_way_partition_covers_exactly_with_equal_shares(parts):
    model = _mlp()
    children = partition_masks(model, parts, seed=5)
    parent = get_masks(model, include_dense=True)
    assert check_partition(parent, children) == {"overlap": 0, "uncovered": 0, "outside": 0}
    for name, base in parent.items():
        sizes = [int(c[name].sum()) for c in children]
        assert max(sizes) - min(sizes) <= 1
        assert sum(sizes) == base.numel()


def test_partitions_are_seeded():
    model = _mlp()
    same = partition_masks(model, 3, seed=2), partition_masks(model, 3, seed=2)
    other = partition_masks(model, 3, seed=9)
    for x, y in zip(*same):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert not all(torch.equal(same[0][0][k], other[0][k]) for k in other[0])


def test_partition_children_groups_siblings():
    model = _mlp()
    kids = partition_children(model, 5, 2, seed=0)
    assert len(kids) == 5
    parent = get_masks(model, include_dense=True)
    assert check_partition(parent, kids[0:2])["overlap"] == 0
    assert check_partition(parent, kids[2:4]) == {"overlap": 0, "uncovered": 0, "outside": 0}
    # different groups are different partitions
    assert not all(torch.equal(kids[0][k], kids[2][k]) for k in parent)


def test_partition_rejects_bad_parts():
    with pytest.raises(QSelectError, match="parts"):
        partition_masks(_mlp(), 1)
