"""Options every qselect command shares, their validation, and console output.

Every option is declared once with a kind (for TOML config validation) and a
default; argparse itself gets ``default=SUPPRESS`` so the CLI can tell an
explicit flag from a default and apply the precedence flag > config > default
(see ``qselect.config``). Validation raises ``QSelectError`` with one line that
says what is wrong and how to fix it; ``qselect.cli.main`` prints it.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..config import OptionSpec
from ..errors import QSelectError
from ..runs import check_run_dir  # noqa: F401  (re-exported: the CLI's checks live here)

log = logging.getLogger("qselect")

# Names the CLI offers; the libraries behind them validate too, but the CLI
# checks first so a typo fails before any training or solving starts.
FORMULATIONS = ("neuron", "weight", "nk")
QAOA_BACKENDS = ("native", "aer", "statevector", "pennylane")
SCHEDULERS = ("auto", "inline", "process")
# Help texts use these static lists: building the parser must not import torch
# (qselect --help stays instant); validation asks the real registries.
_HELP_SOLVERS = ("exact", "sa", "tabu", "greedy", "magnitude", "random", "qaoa")
_HELP_MODELS = ("mlp", "lenet5", "resnet18", "vit")
_HELP_DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100")


# --------------------------------------------------------------------------- parsing helpers

def _csv(conv):
    def parse(text: str):
        items = [t.strip() for t in str(text).split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        return [conv(t) for t in items]

    parse.__name__ = f"list of {conv.__name__}"
    return parse


_CONVERTERS = {"str": str, "int": int, "float": float, "floats": _csv(float),
               "ints": _csv(int), "strs": _csv(str)}


def add_option(parser: argparse.ArgumentParser, *flags: str, kind: str, default: Any = None,
               help: str = "", choices: Sequence | None = None, metavar: str | None = None):
    """Add one option; its kind/default are remembered for config files."""
    if kind == "bool":
        action = parser.add_argument(*flags, action="store_true", default=argparse.SUPPRESS, help=help)
    else:
        action = parser.add_argument(*flags, type=_CONVERTERS[kind], default=argparse.SUPPRESS,
                                     help=f"{help} (default: {_show(default)})" if help else None,
                                     metavar=metavar)
    action.qselect_spec = OptionSpec(action.dest, kind, default if kind != "bool" else bool(default),
                                     tuple(choices) if choices else None)
    return action


def _show(v):
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return v


def add_common_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options with the same name in every command (also settable in --config)."""
    g = parser.add_argument_group("common options")
    add_option(g, "--model", kind="str", default="mlp", metavar="NAME|CHECKPOINT",
               help=f"built-in model ({', '.join(_HELP_MODELS)}) or a checkpoint file saved by qselect")
    add_option(g, "--dataset", kind="str", default="digits", metavar="NAME",
               help=f"dataset ({', '.join(_HELP_DATASETS)})")
    add_option(g, "--data-root", kind="str", default=None, metavar="DIR",
               help="folder holding the dataset files for mnist/fashion_mnist/cifar (nothing is downloaded)")
    add_option(g, "--formulation", kind="str", default="neuron", metavar="KIND",
               help=f"local problem formulation ({', '.join(FORMULATIONS)})")
    add_option(g, "--solver", kind="str", default="qaoa", metavar="NAME",
               help=f"solver for the local problems ({', '.join(_HELP_SOLVERS)})")
    add_option(g, "--backend", kind="str", default="native", metavar="NAME",
               help=f"QAOA backend ({', '.join(QAOA_BACKENDS)}; IBM names for submit)")
    add_option(g, "--sparsity", kind="float", default=0.5, metavar="S",
               help="fraction of weights removed, strictly between 0 and 1")
    add_option(g, "--qubits", kind="int", default=10, metavar="Q",
               help="qubit budget per local problem for QAOA; larger problems are split into blocks "
                    "(classical solvers take whole problems, exact search up to 22 bits)")
    add_option(g, "--seed", kind="int", default=0, metavar="N", help="seed for every random choice")
    add_option(g, "--run-dir", kind="str", default=None, metavar="DIR",
               help="output folder (default: a new folder under ./runs/)")
    add_option(g, "--scheduler", kind="str", default="auto", metavar="WHERE",
               help="where local problems are solved: auto, inline, process, or a Dask "
                    "scheduler address tcp://host:port")
    add_option(g, "--threads", kind="int", default=0, metavar="N",
               help="PyTorch CPU threads; 0 = auto (1 for the small mlp, where more threads only add "
                    "overhead, else PyTorch's default). Fixed per run: float sums depend on it")
    g.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                   help="TOML file with any of these options (flags given here win)")
    add_option(g, "--quiet", "-q", kind="bool", default=False, help="print only errors and the report path")
    add_option(g, "--verbose", "-v", kind="bool", default=False, help="print progress details")
    add_option(g, "--debug", kind="bool", default=False, help="show tracebacks for errors")
    return parser


def option_specs(parser: argparse.ArgumentParser) -> dict[str, OptionSpec]:
    """Config schema of a (sub)parser: every option with its kind and default.

    Options added by other modules with plain ``add_argument`` get a kind
    inferred from their action, and their defaults are moved out of argparse
    so that config files can set them too.
    """
    specs: dict[str, OptionSpec] = {}
    for action in parser._actions:  # argparse has no public accessor for this
        if action.dest in ("help", "config", "command", "func") or not action.option_strings:
            continue
        spec = getattr(action, "qselect_spec", None)
        if spec is None:
            spec = _infer_spec(action)
            action.qselect_spec = spec
            action.default = argparse.SUPPRESS
        specs[action.dest] = spec
    return specs


def _infer_spec(action: argparse.Action) -> OptionSpec:
    default = action.default if action.default is not argparse.SUPPRESS else None
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        kind = "bool"
    else:
        base = {int: "int", float: "float"}.get(action.type, "str")
        if action.nargs in ("*", "+") or isinstance(default, list):
            kind = {"int": "ints", "float": "floats", "str": "strs"}[base]
        else:
            kind = base
    return OptionSpec(action.dest, kind, default, tuple(action.choices) if action.choices else None)


# --------------------------------------------------------------------------- valid names

def valid_models() -> tuple[str, ...]:
    from ..classical.models import MODELS

    return tuple(MODELS)


def valid_datasets() -> tuple[str, ...]:
    from ..classical.data import DATASETS

    return tuple(DATASETS)


def valid_solvers() -> tuple[str, ...]:
    from ..solvers import SOLVERS

    return tuple(SOLVERS)


# --------------------------------------------------------------------------- validation

def check_choice(value: str, valid: Iterable[str], what: str, flag: str) -> str:
    valid = tuple(valid)
    if value not in valid:
        raise QSelectError(f"unknown {what} {value!r}; valid {what}s: {', '.join(valid)} (set it with {flag})")
    return value


def check_sparsity(value: float, flag: str = "--sparsity") -> float:
    if not (0.0 < float(value) < 1.0):
        raise QSelectError(
            f"sparsity must be strictly between 0 and 1 (the fraction of weights removed), got {value}; "
            f"e.g. {flag} 0.5"
        )
    return float(value)


def check_positive(value: int, name: str, flag: str, minimum: int = 1) -> int:
    if int(value) < minimum:
        raise QSelectError(f"{name} must be at least {minimum}, got {value}; set it with {flag}")
    return int(value)


def check_qubits(qubits: int, solver: str, backend: str) -> int:
    """The qubit budget must fit the backend and this machine's memory (QAOA only: classical
    solvers are not held to a qubit budget)."""
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
    """A built-in model name, or an existing checkpoint file."""
    if model in valid_models():
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
    key = dataset.lower().replace("-", "_")
    check_choice(key, valid_datasets(), "dataset", "--dataset")
    if data_root is not None and not Path(data_root).is_dir():
        raise QSelectError(f"dataset directory {data_root} does not exist; pass the folder holding the "
                           f"{dataset} files with --data-root")
    if key != "digits" and data_root is None:
        raise QSelectError(f"dataset {dataset!r} is read from a local folder (nothing is downloaded); "
                           f"pass it with --data-root DIR")
    return key


def check_scheduler(spec: str) -> str:
    if spec in SCHEDULERS or "://" in spec:
        return spec
    raise QSelectError(f"unknown scheduler {spec!r}; use auto, inline, process or a Dask address "
                       f"tcp://host:port (set it with --scheduler)")


def validate_common(cfg: dict, *, solver_needed: bool = True) -> dict:
    """Check the shared options of a resolved config; raises QSelectError."""
    check_sparsity(cfg["sparsity"])
    check_choice(cfg["formulation"], FORMULATIONS, "formulation", "--formulation")
    if solver_needed:
        check_choice(cfg["solver"], valid_solvers(), "solver", "--solver")
    check_choice(cfg["backend"], QAOA_BACKENDS, "backend", "--backend")
    check_qubits(cfg["qubits"], cfg["solver"], cfg["backend"])
    if cfg["seed"] < 0:
        raise QSelectError(f"seed must be a non-negative integer, got {cfg['seed']}; set it with --seed")
    check_model(cfg["model"])
    cfg["dataset"] = check_dataset(cfg["dataset"], cfg.get("data_root"))
    check_scheduler(cfg["scheduler"])
    check_run_dir(cfg.get("run_dir"))
    return cfg


def set_threads(cfg: dict) -> int:
    """Apply --threads; returns the count in use (recorded in run.json)."""
    import torch

    n = int(cfg.get("threads") or 0)
    if n < 0:
        raise QSelectError(f"threads must be 0 (auto) or positive, got {n}; set it with --threads")
    if n == 0 and cfg.get("model") == "mlp":
        n = 1
    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()


# --------------------------------------------------------------------------- console

class Console:
    """stdout for results (tables, report path), stderr logging for progress."""

    def __init__(self, quiet: bool = False, verbose: bool = False, stream=None):
        self.quiet = quiet
        self.verbose = verbose
        self.stream = stream

    @property
    def progress(self) -> bool:
        """Progress bars: not when quiet; on a terminal, or always with --verbose."""
        return not self.quiet and (self.verbose or sys.stderr.isatty())

    def print(self, *args, **kw) -> None:
        if not self.quiet:
            print(*args, file=self.stream or sys.stdout, **kw)

    def result(self, *args) -> None:
        """Always printed (the report location), even with --quiet."""
        print(*args, file=self.stream or sys.stdout)

    def info(self, msg: str, *args) -> None:
        log.info(msg, *args)


def setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logger = logging.getLogger("qselect")
    logger.setLevel(level)
    if not any(getattr(h, "_qselect", False) for h in logger.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("qselect: %(message)s"))
        h._qselect = True
        logger.addHandler(h)
        logger.propagate = False
    for h in logger.handlers:
        if getattr(h, "_qselect", False):
            h.stream = sys.stderr  # tests swap sys.stderr between calls
