"""The experiment steps the commands share.

Data, parent model, calibration batch, selection by any method, evaluation before and after fine-tuning.

Kept free of argparse so that tests (and notebooks) can call the same steps the
CLI runs. Every step takes its seed explicitly: on CPU the same config gives
bit-identical masks and numbers.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import QSelectError
from ..solvers.exact import EXACT_SEARCH_BITS
from .settings import check_positive

log = logging.getLogger("qselect")

#: selection methods that do not go through local problems (unstructured classical baselines)
CLASSICAL_METHODS = ("magnitude", "random")
#: one-shot pruners of qselect.pruners: per output row, layer after layer on the calibration batch
#: (each layer on the already-pruned network's activations); sparsegpt/obc also update the weights
PRUNER_METHODS = ("wanda", "sparsegpt", "obc", "snip", "imp")
IMAGE_MODELS = ("lenet5", "resnet18", "vit")


def validate_experiment(cfg: dict) -> dict:
    """Check the training and selection sizes a command has (only keys present); raises ``QSelectError``.

    Parameters
    ----------
    cfg : dict
        The command's resolved settings.

    Returns
    -------
    dict
    """
    for key, low in (("epochs", 0), ("finetune_epochs", 0), ("batch_size", 1), ("p", 1)):
        if key in cfg:
            flag = key.replace("_", "-")
            check_positive(cfg[key], flag, f"--{flag}", minimum=low)
    if "calib_size" in cfg and cfg["calib_size"] < 1:
        raise QSelectError(f"the calibration set is empty (--calib-size {cfg['calib_size']}); the local "
                           f"problems need activations: use --calib-size 1 or more (e.g. 256)")
    if "lr" in cfg and not (cfg["lr"] > 0 and math.isfinite(cfg["lr"])):
        raise QSelectError(f"lr must be a positive number, got {cfg['lr']}; set it with --lr")
    if "hidden" in cfg and any(h < 1 for h in cfg["hidden"]):
        raise QSelectError(f"hidden widths must be positive, got {cfg['hidden']}; e.g. --hidden 32,32")
    if cfg.get("hidden"):
        _check_mlp_fits(cfg)
        _check_hidden_keep_units(cfg)
    return cfg


def _check_hidden_keep_units(cfg: dict) -> None:
    """Refuse a sparsity at which a hidden layer of the built-in MLP would keep nothing.

    For the built-in MLP (widths known before it is built), refuse a sparsity at which a pruned hidden layer would keep
    no unit (neuron) or no input per unit (weight/nk); the selection itself checks every other model once it is loaded.
    """
    from ..validation import check_keeps_some

    if cfg.get("model", "mlp") != "mlp" or cfg.get("layers"):
        return
    widths = [int(h) for h in cfg["hidden"]]
    sparsities = cfg.get("sparsities") or ([cfg["sparsity"]] if "sparsity" in cfg else [])
    groups = widths if cfg.get("formulation", "neuron") == "neuron" else widths[:-1]  # units, or fan-ins
    what = ("units of a hidden layer" if cfg.get("formulation", "neuron") == "neuron"
            else "inputs of every unit of a hidden layer")
    for sp in sparsities:
        for n in groups:
            check_keeps_some(n, float(sp), f"{what} (--hidden {','.join(map(str, widths))})")


#: input features of the largest built-in dataset (CIFAR: 3×32×32), for the MLP memory bound
_MAX_INPUT_FEATURES = 3072


def _check_mlp_fits(cfg: dict) -> None:
    """Refuse MLP widths whose training state cannot fit in memory.

    Refuse MLP widths whose weights (with gradients, optimiser state and copies) cannot fit in memory, before anything
    is created (the allocation itself would fail mid-run).
    """
    from ..problems.memory import available_bytes

    widths = [_MAX_INPUT_FEATURES, *map(int, cfg["hidden"]), 100]
    params = sum(a * b + b for a, b in zip(widths, widths[1:]))
    need = params * 4 * 6  # float32 weights, gradients, momentum, best-state and child copies
    avail = available_bytes()
    if need > avail:
        size = f"~{need / 2**30:.3g} GiB" if need < 2**100 else f"about 2^{need.bit_length() - 1} bytes"
        raise QSelectError(f"--hidden {','.join(map(str, cfg['hidden']))} gives an MLP of about 2^"
                           f"{params.bit_length() - 1} parameters, needing {size} with training state, more than "
                           f"the {avail / 2**30:.3g} GiB available; use narrower layers (e.g. --hidden 32,32)")


# --------------------------------------------------------------------------- data and models

def load_data(cfg: dict):
    """The dataset ``cfg`` names, split with ``cfg["seed"]`` (image-shaped for conv models).

    Parameters
    ----------
    cfg : dict
        ``dataset``, ``data_root``, ``model``, ``seed``.

    Returns
    -------
    qselect.classical.data.DataSplits

    Raises
    ------
    QSelectError
        If the dataset files are missing or malformed.
    """
    from ..classical.data import load_dataset

    image = cfg["model"] in IMAGE_MODELS or _checkpoint_wants_image(cfg["model"]) \
        or (is_factory_spec(cfg["model"]) and bool(getattr(_factory(cfg["model"]), "image", False)))
    return load_dataset(cfg["dataset"], root=cfg.get("data_root"), seed=cfg["seed"], image=image)


def _checkpoint_wants_image(model: str) -> bool:
    if model in IMAGE_MODELS or not Path(model).is_file():
        return False
    return _checkpoint_meta(model).get("model") in IMAGE_MODELS


def _checkpoint_meta(path) -> dict:
    from ..classical.checkpoint import load_checkpoint

    return load_checkpoint(path).get("meta", {}) or {}


def train_config(cfg: dict, epochs: int, seed: int, progress: bool):
    """A :class:`~qselect.classical.train.TrainConfig` from the command's ``lr`` and ``batch_size`` (device ``auto``).

    Parameters
    ----------
    cfg : dict
        The command's resolved settings.
    epochs : int
    seed : int
    progress : bool

    Returns
    -------
    TrainConfig
    """
    from ..classical.train import TrainConfig

    return TrainConfig(epochs=epochs, lr=cfg["lr"], batch_size=cfg["batch_size"], seed=seed,
                       device="auto", progress=progress)


def drop_unused_model_options(cfg: dict, given) -> dict:
    """Check the options that a checkpoint fixes.

    A checkpoint brings its own architecture and training: refuse ``--hidden``/``--epochs`` given with one, and leave
    the defaults out of ``cfg`` (so config.toml records only what was used).

    Parameters
    ----------
    cfg : dict
        Resolved settings (changed in place and returned).
    given : iterable of str or None
        Options set by flag or config file (``None``: do not refuse, only drop).

    Returns
    -------
    dict

    Raises
    ------
    QSelectError
        When an option that cannot apply was set explicitly.
    """
    name = str(cfg.get("model", "mlp"))
    checkpoint = name not in IMAGE_MODELS + ("mlp",) and not is_factory_spec(name)
    trained_here = not checkpoint and not cfg.get("weights")
    unused = [k for k in ("hidden", "epochs") if k in cfg
              and ((k == "epochs" and not trained_here) or (k == "hidden" and name != "mlp"))]
    set_ = [k for k in unused if given is not None and k in set(given)]
    if set_:
        flags = " and ".join(f"--{k}" for k in set_)
        why = (f"the checkpoint {name} holds its architecture and training" if checkpoint
               else "--weights brings trained weights" if "epochs" in set_ and cfg.get("weights")
               else f"--hidden sets the widths of the built-in mlp, not of {name}")
        raise QSelectError(f"{flags} do{'es' if len(set_) == 1 else ''} not apply here: {why}; drop {flags}")
    for k in unused:
        cfg.pop(k)
    return cfg


def is_factory_spec(name: str) -> bool:
    """Whether ``--model`` names a user architecture ``package.module:factory`` (not a file)."""
    name = str(name)
    module, sep, attr = name.partition(":")
    return bool(sep) and not Path(name).exists() and attr.isidentifier() \
        and all(part.isidentifier() for part in module.split("."))


def _factory(spec: str):
    import importlib

    module, _, attr = spec.partition(":")
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # ImportError, or whatever the user's module raises on import
        raise QSelectError(f"cannot import {module!r} for --model {spec} ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]}); make it importable (pip install -e your "
                           "package, or add its folder to PYTHONPATH)") from None
    factory = getattr(mod, attr, None)
    if not callable(factory):
        raise QSelectError(f"{module} has no callable {attr!r} for --model {spec}; name a function that "
                           "returns a torch.nn.Module")
    return factory


def user_model(spec: str, input_shape, num_classes: int, seed: int):
    """Build a user architecture from ``package.module:factory`` (the convention of PyTorch CLIs).

    The factory is called with ``input_shape`` and ``num_classes`` keywords when it accepts them
    (else without arguments), under ``torch.manual_seed(seed)``. Inputs are flat vectors unless
    the factory has an attribute ``image = True`` (then ``(C, H, W)`` images).

    Parameters
    ----------
    spec : str
        ``package.module:factory``.
    input_shape : tuple of int
    num_classes : int
    seed : int

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    QSelectError
        The module cannot be imported, the factory is missing, fails or returns no ``nn.Module``.
    """
    import inspect

    import torch
    from torch import nn

    factory = _factory(spec)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    kw = {k: v for k, v in (("input_shape", tuple(input_shape)), ("num_classes", int(num_classes))) if k in params}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        try:
            model = factory(**kw)
        except Exception as exc:
            raise QSelectError(f"--model {spec}: the factory failed ({type(exc).__name__}: "
                               f"{' '.join(str(exc).split())[:200]})") from None
    if not isinstance(model, nn.Module):
        raise QSelectError(f"--model {spec} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _architecture(name: str, shape, classes: int, seed: int, kwargs: dict):
    from ..classical.models import build_model

    if is_factory_spec(name):
        return user_model(name, shape, classes, seed)
    return build_model(name, shape, classes, seed=seed, **kwargs)


def load_weights(model, path) -> None:
    """Load ``--weights``: a ``state_dict`` (``torch.save(model.state_dict(), path)``) or a qselect checkpoint.

    Loading stays ``weights_only`` (no code runs from the file).

    Parameters
    ----------
    model : torch.nn.Module
        Loaded in place.
    path : str or os.PathLike

    Raises
    ------
    QSelectError
        Missing or unreadable file, a pickled whole module, or weights of another architecture.
    """
    import torch

    from ..classical.checkpoint import _FORMAT, load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise QSelectError(f"weights file {path} does not exist; check the path given to --weights")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise QSelectError(f"{path} holds a pickled Python object (torch.save(model)); save the weights "
                               "with torch.save(model.state_dict(), path) and pass that file") from None
        raise QSelectError(f"weights file {path} is unreadable ({type(exc).__name__}); expected "
                           "torch.save(model.state_dict(), path)") from None
    if isinstance(sd, dict) and sd.get("format") == _FORMAT:
        load_checkpoint(path, model)
        return
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise QSelectError(f"{path} is not a state_dict (parameter name -> tensor); save one with "
                           "torch.save(model.state_dict(), path)")
    try:
        model.load_state_dict(sd)
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).strip().splitlines()[:3])
        raise QSelectError(f"the weights in {path} do not fit --model ({detail[:300]}); pass the "
                           "architecture they were saved from") from None


def prepare_parent(cfg: dict, data, progress: bool = False):
    """Build and train a built-in model, or load a checkpoint; returns (model, info).

    Parameters
    ----------
    cfg : dict
        The command's resolved settings.
    data : DataSplits
    progress : bool

    Returns
    -------
    model : torch.nn.Module
    info : dict

    Raises
    ------
    QSelectError
        On a bad checkpoint or NaN weights.
    """
    from ..classical.checkpoint import load_checkpoint
    from ..classical.data import make_loader
    from ..classical.train import evaluate, train

    name = cfg["model"]
    weights = cfg.get("weights")
    if Path(name).is_file() and name not in IMAGE_MODELS + ("mlp",):
        if weights:
            raise QSelectError(f"--weights goes with a built-in model or package.module:factory; the checkpoint "
                               f"{name} holds its own weights: drop --weights")
        payload = load_checkpoint(name)
        meta = payload.get("meta") or {}
        if "model" not in meta:
            raise QSelectError(f"checkpoint {name} does not say which architecture it holds (no 'model' in "
                               f"its meta); use a checkpoint written by 'qselect select' (model.pt)")
        shape, classes = tuple(meta.get("input_shape", data.input_shape)), meta.get("num_classes", data.num_classes)
        if tuple(shape) != tuple(data.input_shape) or classes != data.num_classes:
            raise QSelectError(f"checkpoint {name} was trained for inputs {tuple(shape)} with {classes} classes, "
                               f"but dataset {cfg['dataset']!r} has {tuple(data.input_shape)} and "
                               f"{data.num_classes}; use the dataset it was trained on")
        model = _architecture(meta["model"], shape, classes, cfg["seed"], meta.get("model_kwargs", {}))
        load_checkpoint(name, model)
        info = {"source": str(name), "model": meta["model"], "model_kwargs": meta.get("model_kwargs", {}),
                "trained_epochs": meta.get("epochs")}
    else:
        kwargs = {"hidden": tuple(cfg["hidden"])} if name == "mlp" else {}
        model = _architecture(name, data.input_shape, data.num_classes, cfg["seed"], kwargs)
        plain_kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
        if weights:  # the user's trained weights: nothing to train
            load_weights(model, weights)
            info = {"source": str(weights), "model": name, "model_kwargs": plain_kwargs, "trained_epochs": None}
        else:
            t0 = time.perf_counter()
            history = train(model, make_loader(data.train, cfg["batch_size"], shuffle=True, seed=cfg["seed"]),
                            train_config(cfg, cfg["epochs"], cfg["seed"], progress))
            info = {"source": "factory" if is_factory_spec(name) else "built-in", "model": name,
                    "model_kwargs": plain_kwargs, "trained_epochs": cfg["epochs"],
                    "train_seconds": time.perf_counter() - t0, "final_train_loss": _last(history.get("train_loss"))}
    check_finite(model, cfg["model"])
    model.eval()
    info["test"] = evaluate(model, make_loader(data.test, 512))
    info["input_shape"], info["num_classes"] = list(data.input_shape), data.num_classes
    return model, info


def checkpoint_meta(parent_info: dict, cfg: dict) -> dict:
    """What a saved model.pt / masks file records, so 'qselect evaluate' can rebuild the model.

    Parameters
    ----------
    parent_info : dict
    cfg : dict
        The command's resolved settings.

    Returns
    -------
    dict
    """
    return {"model": parent_info["model"], "model_kwargs": parent_info["model_kwargs"],
            "input_shape": parent_info["input_shape"], "num_classes": parent_info["num_classes"],
            "dataset": cfg["dataset"], "epochs": parent_info.get("trained_epochs"), "seed": cfg["seed"]}


def _last(x):
    return float(x[-1]) if x else None


def check_finite(model, where: str = "the model") -> None:
    """NaN/inf weights make every local problem meaningless: refuse them up front.

    Parameters
    ----------
    model : torch.nn.Module
    where : str

    Raises
    ------
    QSelectError
        Naming the parameter with NaN/inf.
    """
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_floating_point() and not bool(t.isfinite().all()):
            bad = int((~t.isfinite()).sum())
            raise QSelectError(f"{where}: parameter {name} has {bad} NaN/inf value(s); the model is broken "
                               f"(diverged training?) — retrain it or load another checkpoint")


def calibration_inputs(data, size: int, seed: int):
    """The first ``size`` inputs of a seeded permutation of the training split.

    Parameters
    ----------
    data : DataSplits
    size : int
    seed : int

    Returns
    -------
    torch.Tensor
    """
    import torch

    n = len(data.train)
    if n == 0 or size < 1:
        raise QSelectError("the calibration set is empty; the local problems need activations — use "
                           "--calib-size 1 or more and a dataset with training samples")
    g = torch.Generator().manual_seed(int(seed) + 7919)
    idx = torch.randperm(n, generator=g)[: min(size, n)]
    return data.train.tensors[0][idx]


def hidden_layers(model, layers=None) -> list[str]:
    """Module names of the layers to prune: given, or every prunable layer but the output one.

    Parameters
    ----------
    model : torch.nn.Module
    layers : list of str or None

    Returns
    -------
    list of str
    """
    from ..classical.masks import prunable_parameters

    names = [p.rsplit(".", 1)[0] for p in prunable_parameters(model)]
    if layers:
        unknown = [l for l in layers if l not in names]
        if unknown:
            raise QSelectError(f"unknown layer(s) {', '.join(unknown)}; prunable layers of this model: "
                               f"{', '.join(names)} (set them with --layers)")
        return list(layers)
    if len(names) < 2:
        raise QSelectError("the model has fewer than two prunable layers; pass --layers explicitly")
    return names[:-1]


# --------------------------------------------------------------------------- executors and solvers

def make_executor(spec: str, formulation: str):
    """'auto': in-process for the few problems of neuron selection, a process pool otherwise.

    Parameters
    ----------
    spec : str
        ``auto``, ``inline``, ``process`` or a Dask address.
    formulation : str

    Returns
    -------
    Executor or None
    """
    from ..executors import get_executor

    if spec == "auto":
        spec = "inline" if formulation == "neuron" else "process"
    if spec == "inline":
        return None  # in process: no executor to start
    return get_executor(spec)


def close_executor(executor) -> None:
    """Close an executor opened by :func:`make_executor` (``None`` is allowed).

    Parameters
    ----------
    executor : Executor or None
    """
    if executor is not None:
        executor.close()


@contextlib.contextmanager
def executor_for(spec: str, formulation: str):
    """``make_executor`` closed on exit.

    Enter it before creating the run directory: an unreachable Dask scheduler is bad input and must leave no folder
    behind.

    Parameters
    ----------
    spec : str
    formulation : str

    Returns
    -------
    context manager yielding Executor or None
    """
    executor = make_executor(spec, formulation)
    try:
        yield executor
    finally:
        close_executor(executor)


def make_solver(name: str, *, seed: int, backend: str = "native", p: int = 1):
    """A registry solver with the run's seed (and QAOA backend/depth) where it takes them.

    Parameters
    ----------
    name : str
    seed : int
    backend : str
        QAOA simulator backend.
    p : int
        QAOA depth.

    Returns
    -------
    Solver
    """
    from ..solvers import get_solver, solver_class

    cls = solver_class(name)
    params = inspect.signature(cls.__init__).parameters
    kw: dict[str, Any] = {}
    if "seed" in params:
        kw["seed"] = seed
    if name == "qaoa":
        kw.update(backend=backend, p=p)
    return get_solver(name, **kw)


# --------------------------------------------------------------------------- selection

#: solvers that run on (simulated) qubits; only they are held to the qubit budget
QUANTUM_SOLVERS = ("qaoa",)
#: exact search over 2^n energies: whole problems up to this size, blocks above
EXACT_BLOCK = EXACT_SEARCH_BITS
#: "no decomposition" for classical heuristics (SA, tabu, greedy, baselines)
WHOLE = 1 << 20


def block_size(solver: str, cfg: dict) -> int:
    """Largest block a solver gets.

    The qubit budget for QAOA, whole problems for classical heuristics, and blocks of ``exact_limit`` bits for exact
    search (its cost is 2^n).

    Parameters
    ----------
    solver : str
    cfg : dict
        The command's resolved settings.

    Returns
    -------
    int
    """
    if solver in QUANTUM_SOLVERS:
        return int(cfg["qubits"])
    if solver == "exact":
        return int(cfg.get("exact_limit") or EXACT_BLOCK)
    return WHOLE

@dataclass
class MethodResult:
    """Masks chosen by one selection method, with its timing.

    Attributes
    ----------
    method : str
    masks : dict of str -> torch.Tensor
        Parameter name -> float 0/1 mask of the parameter's shape.
    seconds : float
        Wall time of the selection.
    selection : Selection or None
        The local problems and their answers, for local-problem methods.
    info : dict
    """

    method: str
    masks: dict
    seconds: float
    selection: Any = None  # the Selection of local-problem methods
    info: dict = field(default_factory=dict)


def select(method: str, model, calib, cfg: dict, *, sparsity: float, seed: int, layers: list[str],
           executor=None, progress: bool = False, qubits: int | None = None, data=None) -> MethodResult:
    """Masks from a classical baseline (magnitude/random) or from local problems solved by ``method``.

    Parameters
    ----------
    method : str
        ``magnitude``/``random`` (unstructured baselines), a solver name, or ``q:<solver>``.
    model : torch.nn.Module
    calib : torch.Tensor
    cfg : dict
        The command's resolved settings.
    sparsity : float
    seed : int
    layers : list of str
    executor : Executor or None
    progress : bool
    qubits : int or None

    Returns
    -------
    MethodResult
    """
    t0 = time.perf_counter()
    if method in PRUNER_METHODS:
        from .prune import prune

        opts = {}
        if method == "imp":  # a fixed budget: 2 pruning rounds with rewinding in 3 epochs
            if data is None:
                raise QSelectError("imp trains the network; it needs the training data (data=...)")
            from ..classical.data import make_loader

            opts = dict(train_loader=make_loader(data.train, cfg["batch_size"], shuffle=True, seed=seed),
                        epochs=3, rounds=2, config=train_config(cfg, 1, seed, False))
        res = prune(model, calib, method, sparsity, layers=layers, seed=seed, **opts)
        return MethodResult(method, dict(res.masks), time.perf_counter() - t0,
                            info={"weights": res.weights, "other": res.other})
    if method in CLASSICAL_METHODS:
        from ..classical import baselines

        names = [f"{l}.weight" for l in layers]
        if method == "magnitude":
            masks = baselines.magnitude_masks(model, sparsity, scope="layer", layers=names)
        else:
            masks = baselines.random_masks(model, sparsity, scope="layer", seed=seed, layers=names)
        return MethodResult(method, dict(masks), time.perf_counter() - t0)
    solver_name = method.removeprefix("q:")
    from ..formulate import select_masks

    solver = make_solver(solver_name, seed=seed, backend=cfg["backend"], p=cfg["p"])
    # NK: K (the local problem size) is --qubits for every solver, never a solver's block size
    nk = {"K": int(cfg["qubits"])} if cfg["formulation"] == "nk" else {}
    selection = select_masks(model, calib, formulation=cfg["formulation"], sparsity=sparsity, solver=solver,
                             qubits=qubits or block_size(solver_name, cfg), layers=layers, seed=seed,
                             executor=executor, progress=progress, **nk)
    return MethodResult(method, dict(selection.masks), time.perf_counter() - t0, selection)


# --------------------------------------------------------------------------- evaluation

def evaluate_masks(parent, masks: dict, data, cfg: dict, *, seed: int, finetune_epochs: int,
                   progress: bool = False, weights: dict | None = None) -> tuple[dict, Any]:
    """Metrics of the pruned parent, then of the pruned child after a short fine-tune.

    Returns (metrics, fine-tuned child). The parent is never modified.

    Parameters
    ----------
    parent : torch.nn.Module
    masks : dict of str -> torch.Tensor
    data : DataSplits
    cfg : dict
        The command's resolved settings.
    seed : int
    finetune_epochs : int
    progress : bool

    Returns
    -------
    metrics : dict
    child : torch.nn.Module
    """
    from ..classical.data import make_loader
    from ..classical.masks import apply_masks
    from ..classical.train import evaluate, train

    child = copy.deepcopy(parent)
    if weights:  # methods that change weights (sparsegpt, obc, imp, --refit): load them, then mask
        from ..pruners import PruneResult

        PruneResult(masks, weights).apply(child)
    else:
        apply_masks(child, masks)
    test = make_loader(data.test, 512)
    # one basis for every method: weight entries only (neuron methods also mask biases, pruners do not)
    kept = int(sum(float(m.sum()) for k, m in masks.items() if k.endswith("weight")))
    total = int(sum(m.numel() for k, m in masks.items() if k.endswith("weight")))
    out = {"sparsity_actual": weight_sparsity(masks), "kept_weights": kept, "masked_weights_total": total}
    m = evaluate(child, test)
    out.update(accuracy_pruned=m["accuracy"], nll_pruned=m["nll"], ece_pruned=m["ece"])
    if finetune_epochs > 0:
        train(child, make_loader(data.train, cfg["batch_size"], shuffle=True, seed=seed),
              train_config(cfg, finetune_epochs, seed, progress))
        child.eval()
        m = evaluate(child, test)
        out.update(accuracy_finetuned=m["accuracy"], nll_finetuned=m["nll"], ece_finetuned=m["ece"])
    else:
        out.update(accuracy_finetuned=None, nll_finetuned=None, ece_finetuned=None)
    return out, child


def refit_weights(res: MethodResult, model, calib, sparsity: float, damping: float = 0.01) -> MethodResult:
    """Follow ``res``'s masks by the damped least-squares refit of every row's kept weights.

    Layer after layer on the already-refitted network's calibration activations
    (``qselect.pruners.refit_rows``); the weights land in ``res.info["weights"]``.

    Parameters
    ----------
    res : MethodResult
    model : torch.nn.Module
        The dense parent (not changed).
    calib : torch.Tensor
    sparsity : float
    damping : float

    Returns
    -------
    MethodResult
        ``res``, with ``info["weights"]`` and its seconds increased by the refit's.
    """
    from ..pruners import fixed_masks_fn, prune_layers

    t0 = time.perf_counter()
    layers = [k[:-len(".weight")] for k in res.masks if k.endswith(".weight")]
    out = prune_layers(model, calib, fixed_masks_fn(res.masks), sparsity, layers=layers, refit=True,
                       damping=damping)
    res.info["weights"] = out.weights
    res.info.pop("other", None)
    res.seconds += time.perf_counter() - t0
    return res


def held_out_layer_error(parent, masks: dict, data, weights: dict | None = None) -> float:
    """Mean over the pruned layers of ‖Y_pruned − Y_dense‖² / ‖Y_dense‖² on the test inputs.

    Parameters
    ----------
    parent : torch.nn.Module
    masks : dict of str -> torch.Tensor
    data : DataSplits
    weights : dict or None
        Weights after pruning (None: the parent's, masked).

    Returns
    -------
    float
    """
    from ..pruners import PruneResult, layer_error

    return layer_error(parent, PruneResult(masks, dict(weights or {})), data.test.tensors[0])["mean"]


def weight_sparsity(masks: dict) -> float:
    """Fraction of the masked *weight* entries removed (biases not counted).

    Parameters
    ----------
    masks : dict of str -> torch.Tensor

    Returns
    -------
    float
    """
    kept = total = 0
    for name, m in masks.items():
        if name.endswith("weight"):
            kept += float(m.sum())
            total += m.numel()
    return 1.0 - kept / total if total else 0.0


def problem_rows(selection, *, method: str | None = None) -> list[dict]:
    """One row per local problem of a Selection: where it lives, its size and the solver's answer.

    Parameters
    ----------
    selection : Selection
    method : str or None

    Returns
    -------
    list of dict
    """
    from ..solvers.controls import control_fields

    if selection is None:
        return []
    rows = []
    for lp, res in zip(selection.problems, selection.results):
        row = {"problem": f"{lp.layer}#{lp.index}", "layer": lp.layer, "kind": lp.kind, "index": int(lp.index),
               "n": int(lp.problem.n), "k": None if lp.k is None else int(lp.k),
               "method": method or res.solver, "solver": res.solver, "energy": float(res.energy),
               "kept": res.kept, "kept_fraction": res.kept_fraction, "wall_time": float(res.wall_time),
               "scale": float(lp.problem.scale())}
        exp = getattr(res, "expectation", None)
        if exp is not None:
            row["expectation"] = float(exp)
        row.update(control_fields(res))  # QAOA's P(opt) beside uniform sampling's, same shots
        rows.append(row)
    return rows
