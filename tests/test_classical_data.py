"""Data: digits splits, seeded loaders, IDX / CIFAR parsers on tiny generated files, augmentation."""
import gzip
import os
import pickle

import numpy as np
import pytest
import torch

from qselect.classical.augment import CifarAugment, normalize, random_crop, random_hflip
from qselect.classical.data import load_dataset, make_loader, read_cifar_batch, read_idx
from qselect.errors import QSelectError

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- digits

def test_digits_split_is_seeded_disjoint_stratified_and_scaled():
    d = load_dataset("digits", seed=0)
    assert d.num_classes == 10 and d.input_shape == (64,)
    n = len(d.train) + len(d.val) + len(d.test)
    assert n == 1797
    assert abs(len(d.test) - 0.2 * 1797) < 12 and abs(len(d.val) - 0.1 * 0.8 * 1797) < 12
    x = torch.cat([d.train.tensors[0], d.val.tensors[0], d.test.tensors[0]])
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    # the three splits are disjoint: every digits row appears exactly once
    from sklearn.datasets import load_digits
    ref = torch.as_tensor(load_digits().data / 16.0, dtype=torch.float32)
    assert torch.equal(torch.sort(x, dim=0).values, torch.sort(ref, dim=0).values)
    rows = {tuple(r.tolist()) for r in d.test.tensors[0]}
    assert not rows & {tuple(r.tolist()) for r in d.train.tensors[0]}
    # stratified: every class in every split
    for split in (d.train, d.val, d.test):
        assert set(split.tensors[1].tolist()) == set(range(10))
    d2 = load_dataset("digits", seed=0)
    assert torch.equal(d.test.tensors[0], d2.test.tensors[0])
    d3 = load_dataset("digits", seed=1)
    assert not torch.equal(d.test.tensors[1], d3.test.tensors[1])


def test_digits_image_shape_and_unknown_name():
    d = load_dataset("digits", image=True)
    assert d.input_shape == (1, 8, 8) and d.train.tensors[0].shape[1:] == (1, 8, 8)
    with pytest.raises(QSelectError, match="unknown dataset"):
        load_dataset("imagenet")
    with pytest.raises(QSelectError, match="root"):
        load_dataset("mnist")
    for bad in (1.0, -0.2):
        with pytest.raises(QSelectError, match="test_fraction must be in"):
            load_dataset("digits", test_fraction=bad)


def test_make_loader_seeded_shuffle_covers_everything():
    d = load_dataset("digits")
    order = lambda seed: torch.cat([y for _x, y in make_loader(d.train, 100, shuffle=True, seed=seed)])  # noqa: E731
    a, b, c = order(0), order(0), order(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.sort(a).values, torch.sort(d.train.tensors[1]).values)
    batches = list(make_loader(d.train, 100))
    assert len(batches) == -(-len(d.train) // 100)
    assert torch.equal(batches[0][0], d.train.tensors[0][:100])
    with pytest.raises(QSelectError):
        make_loader(d.train, 0)


# ----------------------------------------------------------------------------- IDX

def _idx_bytes(arr: np.ndarray, code: int) -> bytes:
    head = bytes([0, 0, code, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _write_mnist(folder, n_train=30, n_test=12, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(n_test, dtype=np.uint8) % 10,
    }
    for name, arr in data.items():
        raw = _idx_bytes(arr, 0x08)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return data


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files_load(tmp_path, gz):
    data = _write_mnist(tmp_path / "MNIST" / "raw", gz=gz)   # torchvision's layout
    d = load_dataset("mnist", root=tmp_path, val_fraction=0.2)
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10
    assert len(d.train) + len(d.val) == 30 and len(d.test) == 12
    assert torch.allclose(d.test.tensors[0][:, 0] * 255.0,
                          torch.as_tensor(data["t10k-images-idx3-ubyte"], dtype=torch.float32))
    assert d.test.tensors[1].tolist() == data["t10k-labels-idx1-ubyte"].tolist()
    f = load_dataset("fashion-mnist", root=tmp_path / "MNIST" / "raw")  # files directly in root
    assert len(f.test) == 12


def test_read_idx_dtypes_roundtrip(tmp_path):
    for arr, code in ((np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 7, 0x0C),
                      (np.linspace(-1, 1, 6).astype(np.float32).reshape(3, 2), 0x0D),
                      (np.array([-3, 4, 5], dtype=np.int16), 0x0B)):
        p = tmp_path / f"a{code}.idx"
        p.write_bytes(_idx_bytes(arr, code))
        np.testing.assert_array_equal(read_idx(p), arr)


def test_malformed_idx_errors_name_the_file(tmp_path):
    folder = tmp_path / "m"
    _write_mnist(folder)
    bad = folder / "t10k-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-5])                      # truncated
    with pytest.raises(QSelectError, match="t10k-images-idx3-ubyte.*truncated"):
        load_dataset("mnist", root=folder)
    bad.write_bytes(b"\x12\x34\x08\x03" + b"\x00" * 40)         # bad magic
    with pytest.raises(QSelectError, match="t10k-images-idx3-ubyte.*IDX"):
        load_dataset("mnist", root=folder)
    bad.unlink()
    with pytest.raises(QSelectError, match="missing .*t10k-images-idx3-ubyte"):
        load_dataset("mnist", root=folder)
    (folder / "x.gz").write_bytes(b"\x1f\x8bgarbage")
    with pytest.raises(QSelectError, match="x.gz"):
        read_idx(folder / "x.gz")
    with pytest.raises(QSelectError, match="no mnist files"):
        load_dataset("mnist", root=tmp_path / "empty")
    # labels that do not match the images
    folder2 = tmp_path / "m2"
    _write_mnist(folder2)
    (folder2 / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(7, np.uint8), 0x08))
    with pytest.raises(QSelectError, match="do not match"):
        load_dataset("mnist", root=folder2)


# ----------------------------------------------------------------------------- CIFAR

def _write_cifar_batch(path, n, rng, key=b"labels", classes=10):
    d = {b"batch_label": b"x", key: [int(v) for v in rng.integers(0, classes, n)],
         b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"f"] * n}
    with open(path, "wb") as fh:
        pickle.dump(d, fh, protocol=2)
    return d


def test_cifar10_and_cifar100_pickles_load(tmp_path):
    rng = np.random.default_rng(0)
    c10 = tmp_path / "cifar-10-batches-py"
    c10.mkdir()
    for i in range(1, 6):
        _write_cifar_batch(c10 / f"data_batch_{i}", 4, rng)
    t = _write_cifar_batch(c10 / "test_batch", 5, rng)
    d = load_dataset("cifar10", root=tmp_path, val_fraction=0.0)
    assert d.input_shape == (3, 32, 32) and d.num_classes == 10 and len(d.test) == 5
    assert d.normalized and len(d.mean) == 3
    x = d.train.tensors[0]
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    raw = d.test.tensors[0] * torch.tensor(d.std).view(1, 3, 1, 1) + torch.tensor(d.mean).view(1, 3, 1, 1)
    expect = torch.as_tensor(t[b"data"].reshape(-1, 3, 32, 32), dtype=torch.float32) / 255.0
    assert torch.allclose(raw, expect, atol=1e-5)
    assert d.test.tensors[1].tolist() == t[b"labels"]
    c100 = tmp_path / "cifar-100-python"
    c100.mkdir()
    _write_cifar_batch(c100 / "train", 6, rng, key=b"fine_labels", classes=100)
    _write_cifar_batch(c100 / "test", 3, rng, key=b"fine_labels", classes=100)
    e = load_dataset("cifar100", root=tmp_path, normalize=False, val_fraction=0.0)
    assert e.num_classes == 100 and len(e.train) == 6 and float(e.train.tensors[0].max()) <= 1.0


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_cifar_malformed_and_hostile_files(tmp_path):
    p = tmp_path / "data_batch_1"
    with open(p, "wb") as fh:
        pickle.dump({b"data": _Evil(), b"labels": [0]}, fh)
    with pytest.raises(QSelectError, match="data_batch_1.*refusing"):
        read_cifar_batch(p)
    p.write_bytes(b"not a pickle at all")
    with pytest.raises(QSelectError, match="data_batch_1.*CIFAR"):
        read_cifar_batch(p)
    with open(p, "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, fh)
    with pytest.raises(QSelectError, match="3072"):
        read_cifar_batch(p)
    _write_cifar_batch(p, 2, np.random.default_rng(0))
    with pytest.raises(QSelectError, match="missing .*data_batch_2"):
        load_dataset("cifar10", root=tmp_path)


# ----------------------------------------------------------------------------- augmentation

def test_random_crop_is_a_shifted_window_and_flip_mirrors():
    x = torch.arange(8 * 3 * 5 * 5, dtype=torch.float32).reshape(8, 3, 5, 5) + 1
    g = torch.Generator().manual_seed(3)
    out = random_crop(x, 2, g)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for b in range(8):   # each output is exactly one 5x5 window of its padded image
        hits = [(i, j) for i in range(5) for j in range(5) if torch.equal(padded[b, :, i:i + 5, j:j + 5], out[b])]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) > 1   # windows differ per image (returning x unchanged would fail)
    f = random_hflip(x, torch.Generator().manual_seed(0), p=1.0)
    assert torch.equal(f, x.flip(-1))
    assert torch.equal(random_hflip(x, torch.Generator(), p=0.0), x)
    n = normalize(torch.ones(1, 2, 1, 1), (0.5, 0.0), (0.25, 2.0))
    assert n.flatten().tolist() == [2.0, 0.5]


def test_cifar_augment_seeded():
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    a, b, c = CifarAugment(seed=1)(x), CifarAugment(seed=1)(x), CifarAugment(seed=2)(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    n = CifarAugment(mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 4.0), pad=0, flip=False)(x)
    assert torch.allclose(n[:, 1], (x[:, 1] - 0.2) / 2.0)
    with pytest.raises(QSelectError, match="B, C, H, W"):
        CifarAugment()(torch.zeros(3, 8, 8))
