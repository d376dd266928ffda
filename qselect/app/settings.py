"""Validation of run settings shared by the application functions (and so by every command).

Every check raises ``QSelectError`` with one line naming the setting (and its
command-line flag) and how to fix it, before anything is trained or written.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable

from ..errors import QSelectError
from ..runs import check_run_dir
from ..validation import check_seed
from ..validation import check_sparsity as _check_sparsity

log = logging.getLogger("qselect")

# Names the CLI offers; the libraries behind them validate too, but the CLI
# checks first so a typo fails before any training or solving starts.
FORMULATIONS = ("neuron", "weight", "nk", "refit")

QAOA_BACKENDS = ("native", "aer", "statevector", "pennylane")

SCHEDULERS = ("auto", "inline", "process")

# Help texts use these static lists: building the parser must not import torch
# (qselect --help stays instant); validation asks the real registries.
_HELP_SOLVERS = ("exact", "sa", "tabu", "greedy", "magnitude", "random", "qaoa", "swap")

_HELP_MODELS = ("mlp", "lenet5", "resnet18", "vit")

_HELP_DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100")


def valid_models() -> tuple[str, ...]:
    """Names of the built-in models (``mlp``, ``lenet5``, ``resnet18``, ``vit``, ...)."""
    from ..classical.models import MODELS

    return tuple(MODELS)


def valid_datasets() -> tuple[str, ...]:
    """Names of the supported datasets."""
    from ..classical.data import DATASETS

    return tuple(DATASETS)


def valid_solvers() -> tuple[str, ...]:
    """Names ``get_solver`` accepts."""
    from ..solvers import SOLVERS

    return tuple(SOLVERS)


def check_choice(value: str, valid: Iterable[str], what: str, flag: str) -> str:
    """Return ``value`` if it is one of ``valid``.

    Parameters
    ----------
    value : str
    valid : iterable of str
    what : str
        What the value names (for the message).
    flag : str
        The option that sets it (for the message).

    Returns
    -------
    str

    Raises
    ------
    QSelectError
        Listing the valid values and the option.
    """
    valid = tuple(valid)
    if value not in valid:
        raise QSelectError(f"unknown {what} {value!r}; valid {what}s: {', '.join(valid)} (set it with {flag})")
    return value


def check_sparsity(value: float, flag: str = "--sparsity") -> float:
    """Return ``value`` as a float in [0, 1): the toolkit's one sparsity rule (``qselect.validation.check_sparsity``).

    Parameters
    ----------
    value : float
    flag : str

    Returns
    -------
    float

    Raises
    ------
    QSelectError
        Naming ``flag`` and an example value.
    """
    return _check_sparsity(value, "sparsity", flag)


def check_positive(value: int, name: str, flag: str, minimum: int = 1) -> int:
    """Return ``value`` as an int of at least ``minimum``.

    Parameters
    ----------
    value : int
    name : str
    flag : str
    minimum : int

    Returns
    -------
    int

    Raises
    ------
    QSelectError
        Naming the setting and ``flag``.
    """
    if int(value) < minimum:
        raise QSelectError(f"{name} must be at least {minimum}, got {value}; set it with {flag}")
    return int(value)


def check_qubits(qubits: int, solver: str, backend: str) -> int:
    """Check that the qubit budget fits the backend and this machine's memory.

    QAOA only: classical solvers are not held to a qubit budget.

    Parameters
    ----------
    qubits : int
    solver : str
    backend : str

    Returns
    -------
    int

    Raises
    ------
    QSelectError
        If the budget does not fit (saying how many qubits fit).
    """
    from ..problems import check_dense

    check_positive(qubits, "the qubit budget", "--qubits")
    if solver != "qaoa":
        return int(qubits)
    # state vector (complex64 native, complex128 elsewhere) plus the cost vector and work copies
    per = 8 if backend == "native" else 16
    check_dense(qubits, per, f"a QAOA state vector on the {backend} backend", copies=3)
    cap = _solver_cap(solver)
    if cap is not None and qubits > cap:
        raise QSelectError(
            f"the {solver} solver handles at most {cap} qubits per problem, the qubit budget is {qubits}; "
            f"use --qubits {cap} or less"
        )
    return int(qubits)


def _solver_cap(solver: str):
    try:
        from ..solvers import solver_class

        return getattr(solver_class(solver), "max_variables", None)
    except (ImportError, QSelectError):  # registry or solver not available: no cap known
        return None


def check_model(model: str) -> str:
    """A built-in model name, or an existing checkpoint file.

    Parameters
    ----------
    model : str

    Returns
    -------
    str

    Raises
    ------
    QSelectError
        Listing the built-in names when neither.
    """
    if model in valid_models():
        return model
    from .pipeline import _factory, is_factory_spec

    if is_factory_spec(model):
        _factory(model)  # importable, and names a callable: checked before anything runs
        return model
    p = Path(model)
    if p.suffix or os.sep in model or p.exists():
        if not p.exists():
            raise QSelectError(f"checkpoint file {model} does not exist; give a path to a file saved by "
                               f"qselect, or a built-in model ({', '.join(valid_models())})")
        if not p.is_file():
            raise QSelectError(f"--model {model} is a folder, not a checkpoint file; give the checkpoint file")
        return model
    raise QSelectError(f"unknown model {model!r}; valid models: {', '.join(valid_models())} "
                       f"or a checkpoint file path (set it with --model)")


def check_dataset(dataset: str, data_root: str | None) -> str:
    """Canonical dataset name, after checking that its files can be found.

    Parameters
    ----------
    dataset : str
    data_root : str or None
        Folder holding the dataset files (required for everything but digits).

    Returns
    -------
    str

    Raises
    ------
    QSelectError
        If the name is unknown, the folder does not exist, or a file-based
        dataset has no ``--data-root``.
    """
    key = dataset.lower().replace("-", "_")
    check_choice(key, valid_datasets(), "dataset", "--dataset")
    if key == "digits" and data_root is not None:
        raise QSelectError("the digits dataset ships with scikit-learn and reads no files; drop --data-root, or "
                           "name the dataset in that folder with --dataset (mnist, fashion_mnist, cifar10, "
                           "cifar100)")
    if data_root is not None and not Path(data_root).is_dir():
        raise QSelectError(f"dataset directory {data_root} does not exist; pass the folder holding the "
                           f"{dataset} files with --data-root")
    if key != "digits" and data_root is None:
        raise QSelectError(f"dataset {dataset!r} is read from a local folder (nothing is downloaded); "
                           f"pass it with --data-root DIR")
    return key


def check_scheduler(spec: str) -> str:
    """Return ``spec`` if it is ``auto``, ``inline``, ``process`` or a Dask address (``tcp://host:port``).

    Parameters
    ----------
    spec : str

    Returns
    -------
    str

    Raises
    ------
    QSelectError
        Otherwise, or a Dask address of the wrong form (scheme, host, port).
    """
    if spec in SCHEDULERS:
        return spec
    if "://" in spec:  # its form checked now, not after the connect timeout
        from ..executors import check_scheduler_address

        try:
            return check_scheduler_address(spec)
        except QSelectError as err:
            raise QSelectError(f"{err} (set it with --scheduler)") from None
    raise QSelectError(f"unknown scheduler {spec!r}; use auto, inline, process or a Dask address "
                       f"tcp://host:port (set it with --scheduler)")


def validate_common(cfg: dict, *, solver_needed: bool = True) -> dict:
    """Check the settings a command has among the shared ones; raises ``QSelectError``.

    Only keys present in ``cfg`` are checked: a command that does not take an
    option does not have it in its settings.

    Parameters
    ----------
    cfg : dict
        The command's resolved settings.
    solver_needed : bool

    Returns
    -------
    dict
    """
    if "sparsity" in cfg:
        check_sparsity(cfg["sparsity"])
    if "formulation" in cfg:
        check_choice(cfg["formulation"], FORMULATIONS, "formulation", "--formulation")
    if solver_needed and "solver" in cfg:
        check_choice(cfg["solver"], valid_solvers(), "solver", "--solver")
    if "backend" in cfg:
        check_choice(cfg["backend"], QAOA_BACKENDS, "backend", "--backend")
    if "qubits" in cfg:
        check_qubits(cfg["qubits"], cfg.get("solver", "qaoa"), cfg.get("backend", "native"))
    if "seed" in cfg:
        check_seed(cfg["seed"], "seed (--seed)", allow_none=False)
    if "model" in cfg:
        check_model(cfg["model"])
    if cfg.get("weights") and Path(cfg["weights"]).is_dir():
        raise QSelectError(f"--weights {cfg['weights']} is a folder; give the state_dict file in it")
    if cfg.get("weights") and not Path(cfg["weights"]).is_file():
        raise QSelectError(f"weights file {cfg['weights']} does not exist; check the path given to --weights")
    if "dataset" in cfg:
        cfg["dataset"] = check_dataset(cfg["dataset"], cfg.get("data_root"))
    if "scheduler" in cfg:
        check_scheduler(cfg["scheduler"])
    check_run_dir(cfg.get("run_dir"))
    return cfg


def set_threads(cfg: dict) -> int:
    """Apply --threads; returns the count in use (recorded in run.json).

    Parameters
    ----------
    cfg : dict
        The command's resolved settings.

    Returns
    -------
    int
    """
    import torch

    n = int(cfg.get("threads") or 0)
    if n < 0:
        raise QSelectError(f"threads must be 0 (auto) or positive, got {n}; set it with --threads")
    if n == 0 and cfg.get("model") == "mlp":
        n = 1
    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()
