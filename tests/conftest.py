"""Fixtures shared by the torch test modules.

``one_thread`` is opt-in per module (``pytestmark = pytest.mark.usefixtures("one_thread")``)
so the other modules keep torch's default thread count. Every fixture here is
module-scoped or stateless, so nothing one module does to a dataset or model
reaches another module. qselect's torch code is imported inside the fixtures:
loading this file must not import it for the modules that never use it.
"""
import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    # tiny models: intra-op threads only spin on the shared 2 cores (a forward pass took 100x longer)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def unloadable_kernels(monkeypatch):
    """Make a kernels module's numba half fail to import, as a broken numba install would.

    Call it with the module (``qselect.problems.kernels`` or ``qselect.solvers.qaoa.kernels``);
    its cached loader is cleared before and after the test.
    """
    import importlib
    import sys

    broken = []

    def hide(kernels):
        pkg = importlib.import_module(kernels.__package__)
        monkeypatch.setattr(kernels, "AVAILABLE", True)
        monkeypatch.setitem(sys.modules, f"{kernels.__package__}._kernels_numba", None)  # its import now fails
        monkeypatch.delattr(pkg, "_kernels_numba", raising=False)
        kernels._compiled.cache_clear()
        broken.append(kernels)

    yield hide
    for kernels in broken:
        kernels._compiled.cache_clear()


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's bundled digits, split with seed 0 (one copy per module)."""
    from qselect.classical.data import load_dataset

    return load_dataset("digits", seed=0)


def _train_digits_mlp(digits, config, *, hidden=(64, 64), seed=0, val_loader=None):
    from qselect.classical.data import make_loader
    from qselect.classical.models import build_model
    from qselect.classical.train import train

    model = build_model("mlp", digits.input_shape, digits.num_classes, seed=seed, hidden=hidden)
    history = train(model, make_loader(digits.train, 64, shuffle=True, seed=0), config, val_loader=val_loader)
    return model, history


@pytest.fixture(scope="session")
def train_digits_mlp():
    """``train_digits_mlp(digits, config, *, hidden=(64, 64), seed=0, val_loader=None) -> (model, history)``:
    a fresh MLP trained on the digits train split in shuffled batches of 64 (loader seed 0).

    It returns a new model on every call; a module that shares one between its
    tests keeps it in its own module-scoped fixture and deep-copies before mutating.
    """
    return _train_digits_mlp
