"""Datasets as seeded train/val/test ``TensorDataset`` splits, and fast seeded loaders.

``digits`` (scikit-learn's bundled 8x8 handwritten digits) needs no download
and is the default. MNIST / Fashion-MNIST (IDX files) and CIFAR-10/100 (the
python pickle batches) are read from a local directory with parsers written
here; nothing is ever downloaded. A missing or malformed file raises
``QSelectError`` naming the file and the expected format.
"""
from __future__ import annotations

import gzip
import io
import math
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from ..errors import QSelectError

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100")


@dataclass
class DataSplits:
    """Train/validation/test splits (float32 inputs, int64 labels) and their shape facts."""

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    num_classes: int
    input_shape: tuple
    name: str = ""
    mean: tuple = ()   # per-channel statistics of the *training* inputs before any
    std: tuple = ()    # standardisation (what was subtracted / divided, if normalised)
    normalized: bool = False

    def sizes(self) -> dict:
        """Number of samples in each split: ``{'train': …, 'val': …, 'test': …}``."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


# --------------------------------------------------------------------------- loaders

def make_loader(dataset: TensorDataset, batch_size: int = 128, shuffle: bool = False,
                seed: int = 0, drop_last: bool = False) -> DataLoader:
    """A ``DataLoader`` that fetches whole batches at once (fast for in-memory tensors).

    Shuffling uses its own ``torch.Generator`` seeded with ``seed``: the same seed
    gives the same sequence of epochs' orders, independent of global RNG state.

    Parameters
    ----------
    dataset : torch.utils.data.TensorDataset
    batch_size : int
    shuffle : bool
    seed : int
        Seed of the loader's own generator.
    drop_last : bool

    Returns
    -------
    torch.utils.data.DataLoader
    """
    if batch_size < 1:
        raise QSelectError(f"batch_size must be >= 1, got {batch_size}")
    if shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(int(seed)))
    else:
        sampler = SequentialSampler(dataset)
    # batch_size=None + BatchSampler: TensorDataset indexes with a list in one go,
    # instead of collating batch_size single rows.
    return DataLoader(dataset, batch_size=None,
                      sampler=BatchSampler(sampler, batch_size=batch_size, drop_last=drop_last))


# --------------------------------------------------------------------------- splits

def _split_indices(labels: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Stratified seeded split of ``range(len(labels))`` into len(fractions)+1 parts."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        start = 0
        for i, f in enumerate(fractions):
            n = int(round(f * len(idx)))
            parts[i].append(idx[start:start + n])
            start += n
        parts[-1].append(idx[start:])
    return [np.sort(np.concatenate(p)) for p in parts]


def _channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    axes = (0,) + tuple(range(2, x.ndim)) if x.ndim > 2 else (0,)
    mean = x.mean(axis=axes)
    std = x.std(axis=axes)
    return mean, np.where(std > 0, std, 1.0)


def _finish(name, x_train, y_train, x_test, y_test, num_classes, seed, val_fraction,
            normalize) -> DataSplits:
    val_idx, train_idx = _split_indices(y_train, (val_fraction,), seed)
    xt, xv = x_train[train_idx], x_train[val_idx]
    yt, yv = y_train[train_idx], y_train[val_idx]
    mean, std = _channel_stats(xt)
    if normalize:
        shape = (1, -1) + (1,) * (xt.ndim - 2) if xt.ndim > 2 else (1, -1)
        m, s = mean.reshape(shape), std.reshape(shape)
        xt, xv, x_test = (xt - m) / s, (xv - m) / s, (x_test - m) / s

    def ds(x, y):
        return TensorDataset(torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32),
                             torch.as_tensor(y, dtype=torch.int64))

    return DataSplits(ds(xt, yt), ds(xv, yv), ds(x_test, y_test), int(num_classes),
                      tuple(xt.shape[1:]), name, tuple(float(v) for v in np.atleast_1d(mean)),
                      tuple(float(v) for v in np.atleast_1d(std)), bool(normalize))


def load_dataset(name: str = "digits", root=None, seed: int = 0, *, val_fraction: float = 0.1,
                 test_fraction: float = 0.2, image: bool = False,
                 normalize: bool | None = None) -> DataSplits:
    """Load ``name`` into seeded stratified train/val/test splits.

    digits: inputs scaled to [0, 1], shape (64,) or (1, 8, 8) with ``image=True``;
    ``test_fraction`` of all samples is the test split. mnist / fashion_mnist /
    cifar10 / cifar100: read from ``root`` (the folder holding the files, or a
    parent with the usual sub-folder); the published test set is the test split.
    In every case ``val_fraction`` of the remaining training data is held out.
    ``normalize`` standardises per channel with training statistics (default:
    on for CIFAR, off otherwise; images otherwise scaled to [0, 1]).

    Parameters
    ----------
    name : {"digits", "mnist", "fashion_mnist", "cifar10", "cifar100"}
    root : str, os.PathLike or None
        Folder holding the files (not needed for digits).
    seed : int
        Seed of the stratified splits.
    val_fraction : float
        Share of the training data held out for validation.
    test_fraction : float
        Digits only: share of all samples in the test split.
    image : bool
        Digits: shape (1, 8, 8) instead of (64,).
    normalize : bool or None
        Per-channel standardisation with training statistics.

    Returns
    -------
    DataSplits
        ``train``, ``val``, ``test`` (TensorDatasets of float32 inputs and
        int64 labels), ``num_classes``, ``input_shape``.

    Raises
    ------
    QSelectError
        On an unknown name, or a missing or malformed file (named, with the
        expected format).
    """
    key = name.lower().replace("-", "_")
    if key not in DATASETS:
        raise QSelectError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    for what, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= f < 1.0:
            raise QSelectError(f"{what} must be in [0, 1), got {f}")
    if normalize is None:
        normalize = key.startswith("cifar")
    if key == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = (d.data / 16.0).astype(np.float32)
        y = d.target.astype(np.int64)
        if image:
            x = x.reshape(-1, 1, 8, 8)
        test_idx, train_idx = _split_indices(y, (test_fraction,), seed)
        return _finish("digits", x[train_idx], y[train_idx], x[test_idx], y[test_idx], 10,
                       seed + 1, val_fraction, normalize)
    if root is None:
        raise QSelectError(f"dataset {name!r} is read from a local folder: pass root=<folder with "
                           "the published files> (nothing is downloaded)")
    root = Path(root)
    if key in ("mnist", "fashion_mnist"):
        folder = _find_folder(root, key, ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"],
                              [key, "MNIST/raw" if key == "mnist" else "FashionMNIST/raw",
                               "MNIST" if key == "mnist" else "FashionMNIST",
                               "fashion-mnist", "fashion"])
        xtr = read_idx(_idx_file(folder, "train-images-idx3-ubyte"))
        ytr = read_idx(_idx_file(folder, "train-labels-idx1-ubyte"))
        xte = read_idx(_idx_file(folder, "t10k-images-idx3-ubyte"))
        yte = read_idx(_idx_file(folder, "t10k-labels-idx1-ubyte"))
        for xs, ys, which in ((xtr, ytr, "train"), (xte, yte, "t10k")):
            if xs.ndim != 3 or ys.ndim != 1 or len(xs) != len(ys):
                raise QSelectError(f"{folder}: {which} images {xs.shape} and labels {ys.shape} do "
                                   "not match; expected (N, rows, cols) images and (N,) labels")
        to_x = lambda a: (a.astype(np.float32) / 255.0)[:, None]  # noqa: E731
        return _finish(key, to_x(xtr), ytr.astype(np.int64), to_x(xte), yte.astype(np.int64), 10,
                       seed, val_fraction, normalize)
    # CIFAR
    if key == "cifar10":
        folder = _find_folder(root, key, ["data_batch_1"], ["cifar-10-batches-py", "cifar10"])
        train = [read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
        test = read_cifar_batch(folder / "test_batch")
        classes = 10
    else:
        folder = _find_folder(root, key, ["train"], ["cifar-100-python", "cifar100"])
        train = [read_cifar_batch(folder / "train")]
        test = read_cifar_batch(folder / "test")
        classes = 100
    xtr = np.concatenate([b[0] for b in train]).astype(np.float32) / 255.0
    ytr = np.concatenate([b[1] for b in train])
    xte, yte = test[0].astype(np.float32) / 255.0, test[1]
    return _finish(key, xtr, ytr, xte, yte, classes, seed, val_fraction, normalize)


def _find_folder(root: Path, key: str, markers: list[str], subdirs: list[str]) -> Path:
    for folder in [root] + [root / s for s in subdirs]:
        if any((folder / m).is_file() for m in markers):
            return folder
    raise QSelectError(f"no {key} files under {root} (looked for {markers[0]} in it and in "
                       f"{', '.join(subdirs)}); put the published files there — nothing is downloaded")


def _idx_file(folder: Path, stem: str) -> Path:
    for p in (folder / stem, folder / (stem + ".gz")):
        if p.is_file():
            return p
    raise QSelectError(f"missing {folder / stem}[.gz]; expected the IDX file of the published "
                       "MNIST-format dataset")


# --------------------------------------------------------------------------- IDX

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path) -> np.ndarray:
    """Parse an IDX file (MNIST format), gzipped (``.gz``) or not, into a numpy array.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    numpy.ndarray
        Dtype and shape from the IDX header.

    Raises
    ------
    QSelectError
        If the header, sizes or byte count are inconsistent.
    """
    path = Path(path)
    expect = "an IDX file (magic 0x0000 + type byte + ndim byte, big-endian int32 sizes, data)"
    if not path.is_file():
        raise QSelectError(f"missing {path}; expected {expect}")
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:  # zlib.error: a corrupt stream
        raise QSelectError(f"{path} is not readable ({' '.join(str(exc).split())}); expected {expect}, "
                           "optionally gzipped") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise QSelectError(f"{path} has a bad header {raw[:4]!r}; expected {expect}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise QSelectError(f"{path} is truncated in its header; expected {expect}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    need = math.prod(dims) * dtype.itemsize  # exact Python ints: an int64 product can wrap to 0
    if len(raw) - header != need:
        raise QSelectError(f"{path} holds {len(raw) - header} data bytes but its header {dims} "
                           f"needs {need}; the file is truncated or not {expect}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


# --------------------------------------------------------------------------- CIFAR pickles

class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickle only plain containers and numpy arrays: a data file must not run code."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """Parse one CIFAR python pickle batch -> (images uint8 (N, 3, 32, 32), labels int64 (N,)).

    Reads ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    images : numpy.ndarray of uint8, shape (N, 3, 32, 32)
    labels : numpy.ndarray of int64, shape (N,)

    Raises
    ------
    QSelectError
        If the file is not a CIFAR batch (the unpickler only rebuilds numpy
        arrays, so a data file cannot run code).
    """
    path = Path(path)
    expect = ("a CIFAR python pickle batch (dict with b'data' uint8 (N, 3072) and b'labels' or "
              "b'fine_labels')")
    if not path.is_file():
        raise QSelectError(f"missing {path}; expected {expect}")
    try:
        with open(path, "rb") as fh:
            d = _ArrayOnlyUnpickler(io.BytesIO(fh.read()), encoding="bytes").load()
    except Exception as exc:  # pickle raises many types on garbage
        raise QSelectError(f"{path} could not be unpickled ({type(exc).__name__}: {exc}); "
                           f"expected {expect}") from None
    if not isinstance(d, dict):
        raise QSelectError(f"{path} holds a {type(d).__name__}, expected {expect}")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    labels = d.get("labels", d.get("fine_labels"))
    data = d.get("data")
    if data is None or labels is None:
        raise QSelectError(f"{path} lacks 'data' or labels (keys: {sorted(d)}); expected {expect}")
    data = np.asarray(data)
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise QSelectError(f"{path}: labels are not integers; expected {expect}") from None
    if labels.ndim != 1:
        raise QSelectError(f"{path}: labels must be a flat list of integers, got shape {labels.shape}; "
                           f"expected {expect}")
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise QSelectError(f"{path}: data {data.shape} / labels {labels.shape} do not match; "
                           f"expected {expect}")
    return data.astype(np.uint8).reshape(-1, 3, 32, 32), labels
