"""Command-line options: declared once with a kind and a default, grouped by concern.

Every option is declared once with a kind (for TOML config validation) and a
default; argparse itself gets ``default=SUPPRESS`` so the CLI can tell an
explicit flag from a default and apply the precedence flag > config > default
(see ``qselect.config``). Validation lives in ``qselect.app.settings``.
"""
from __future__ import annotations

import argparse
from typing import Any, Sequence

from ..app.settings import _HELP_DATASETS, _HELP_MODELS, _HELP_SOLVERS, FORMULATIONS, QAOA_BACKENDS
from ..config import OptionSpec


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
    """Add one option; its kind/default are remembered for config files.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        Or an argument group.
    *flags : str
    kind : str
        ``str``, ``int``, ``float``, ``bool``, ``ints``, ``floats`` or ``strs``.
    default : object
    help : str
    choices : sequence or None
    metavar : str or None
    """
    if kind == "bool":
        action = parser.add_argument(*flags, action="store_true", default=argparse.SUPPRESS, help=help)
    else:
        action = parser.add_argument(*flags, type=_CONVERTERS[kind], default=argparse.SUPPRESS,
                                     help=(f"{help} (default: {_show(default)})" if default is not None else help)
                                     if help else None,
                                     metavar=metavar)
    action.qselect_spec = OptionSpec(action.dest, kind, default if kind != "bool" else bool(default),
                                     tuple(choices) if choices else None)
    return action


def _show(v):
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return v


def option_specs(parser: argparse.ArgumentParser) -> dict[str, OptionSpec]:
    """Config schema of a (sub)parser: every option with its kind and default.

    Options added by other modules with plain ``add_argument`` get a kind
    inferred from their action, and their defaults are moved out of argparse
    so that config files can set them too.

    Parameters
    ----------
    parser : argparse.ArgumentParser

    Returns
    -------
    dict of str -> OptionSpec
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


# --------------------------------------------------------------------------- option groups
# Each command attaches only the groups it uses: a command accepts only what it uses.

def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--quiet``, ``--verbose``, ``--debug`` (every command).

    Parameters
    ----------
    parser : argparse.ArgumentParser
    """
    g = parser.add_argument_group("output")
    g.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                   help="TOML file with any of this command's options (flags given here win)")
    add_option(g, "--quiet", "-q", kind="bool", default=False, help="print only errors and the report path")
    add_option(g, "--verbose", "-v", kind="bool", default=False, help="print progress details")
    add_option(g, "--debug", kind="bool", default=False, help="show tracebacks for errors")


def add_run_options(parser: argparse.ArgumentParser, *, seed: bool = True, threads: bool = True,
                    scheduler: bool = False, run_dir_help: str | None = None) -> None:
    """Where a run writes and how it computes: ``--run-dir``, ``--seed``, ``--threads``, ``--scheduler``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    seed, threads, scheduler : bool
        Which of those options the command takes.
    run_dir_help : str or None
    """
    g = parser.add_argument_group("run")
    add_option(g, "--run-dir", kind="str", default=None, metavar="DIR",
               help=run_dir_help or "output folder; unset: a new folder under ./runs/")
    if seed:
        add_option(g, "--seed", kind="int", default=0, metavar="N", help="seed for every random choice")
    if threads:
        add_option(g, "--threads", kind="int", default=0, metavar="N",
                   help="PyTorch CPU threads; 0 = auto (1 for the small mlp, where more threads only add "
                        "overhead, else PyTorch's default). Fixed per run: float sums depend on it")
    if scheduler:
        add_option(g, "--scheduler", kind="str", default="auto", metavar="WHERE",
                   help="where local problems are solved: auto, inline, process, or a Dask "
                        "scheduler address tcp://host:port")


def add_model_options(parser: argparse.ArgumentParser, *, epochs: int = 20, hidden=(32, 32),
                      batch_size: int = 64, lr: float = 0.1) -> None:
    """The parent model and its data: ``--model --dataset --data-root --epochs --hidden --batch-size --lr``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    epochs, hidden, batch_size, lr
        The command's defaults.
    """
    g = parser.add_argument_group("model and data")
    add_option(g, "--model", kind="str", default="mlp", metavar="NAME|CHECKPOINT|MODULE:FACTORY",
               help=f"built-in model ({', '.join(_HELP_MODELS)}), a checkpoint file saved by qselect, or your "
                    "own architecture as package.module:factory (a function returning a torch.nn.Module)")
    add_option(g, "--weights", kind="str", default=None, metavar="FILE",
               help="trained weights for --model (a state_dict: torch.save(model.state_dict(), FILE)); "
                    "without it a built-in or factory model is trained first")
    add_option(g, "--dataset", kind="str", default="digits", metavar="NAME",
               help=f"dataset ({', '.join(_HELP_DATASETS)})")
    add_option(g, "--data-root", kind="str", default=None, metavar="DIR",
               help="folder holding the dataset files for mnist/fashion_mnist/cifar (nothing is downloaded)")
    add_option(g, "--epochs", kind="int", default=epochs, metavar="N",
               help="training epochs of a built-in parent (not used with a checkpoint)")
    add_option(g, "--hidden", kind="ints", default=list(hidden), metavar="W,W",
               help="hidden widths of the built-in mlp")
    add_option(g, "--batch-size", kind="int", default=batch_size, metavar="N", help="training batch size")
    add_option(g, "--lr", kind="float", default=lr, metavar="LR", help="peak learning rate (one-cycle SGD)")


def add_selection_options(parser: argparse.ArgumentParser, *, solver: bool = True, sparsity: bool = True,
                          simulator: bool = True, calib_size: int = 256, p: int = 1) -> None:
    """Add the options of the local problems and their solver.

    ``--formulation --solver --backend --sparsity --qubits --p --layers --calib-size``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    solver, sparsity, simulator : bool
        Whether the command takes ``--solver``, ``--sparsity``, ``--backend``.
    calib_size, p : int
        Defaults.
    """
    g = parser.add_argument_group("selection")
    add_option(g, "--formulation", kind="str", default="neuron", metavar="KIND",
               help=f"local problem formulation ({', '.join(FORMULATIONS)})")
    if solver:
        add_option(g, "--solver", kind="str", default="qaoa", metavar="NAME",
                   help=f"solver for the local problems ({', '.join(_HELP_SOLVERS)})")
    if simulator:
        add_option(g, "--backend", kind="str", default="native", metavar="NAME",
                   help=f"QAOA simulator backend ({', '.join(QAOA_BACKENDS)})")
    if sparsity:
        add_option(g, "--sparsity", kind="float", default=0.5, metavar="S",
                   help="fraction of weights removed, in [0, 1) (0 keeps everything)")
    add_option(g, "--qubits", kind="int", default=10, metavar="Q",
               help="qubit budget per local problem for QAOA; larger problems are split into blocks "
                    "(classical solvers take whole problems, exact search whole problems up to 22 bits). "
                    "With --formulation nk it is also K, the weights each unit decides exactly (2^K costs), "
                    "for every solver")
    add_option(g, "--p", kind="int", default=p, metavar="P", help="QAOA depth")
    add_option(g, "--layers", kind="strs", default=None, metavar="NAME,NAME",
               help="layers to prune (default: the hidden layers, i.e. all prunable layers but the output)")
    add_option(g, "--calib-size", kind="int", default=calib_size, metavar="N",
               help="calibration inputs (from the training split) the local problems are built from")


def add_finetune_options(parser: argparse.ArgumentParser, *, finetune_epochs: int = 3) -> None:
    """``--finetune-epochs``: the short fine-tune after pruning.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    finetune_epochs : int
        Default.
    """
    g = parser.add_argument_group("fine-tuning")
    add_option(g, "--finetune-epochs", kind="int", default=finetune_epochs, metavar="N",
               help="fine-tuning epochs after pruning (0 = no fine-tune)")
