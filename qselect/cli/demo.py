"""``qselect demo``: the whole toolkit on the embedded default, no flags, no network.

1. Train a small MLP on scikit-learn's digits.
2. Neuron selection for its hidden layers at 50% sparsity: one local problem per
   layer, solved by exact search, simulated annealing and QAOA (native
   simulator, decomposed into blocks of at most ``--qubits`` bits by block
   coordinate descent), plus the magnitude/random baselines on the same
   problems. A table per layer compares energy, gap to the exact optimum,
   kept fraction and wall time.
3. Masks from each solver against unstructured magnitude and random pruning of
   the same layers, before and after a short fine-tune.
4. A Prune-and-Tune ensemble whose children are QAOA-selected, beside an
   anti-random one.
5. Report files in the run directory (printed at the end).
"""
from __future__ import annotations

import argparse

from ..app import demo as app
from .common import (
    add_option,
    add_output_options,
    add_run_options,
)


def register(subparsers):
    """Add the ``demo`` command, with only the option groups it uses, to ``subparsers``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction

    Returns
    -------
    argparse.ArgumentParser
    """
    p = subparsers.add_parser("demo", help=app.HELP, description=__doc__.split("\n\n", 1)[1] if __doc__ else app.HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("demo (defaults come from the --size preset; a flag overrides its preset value)")
    add_option(g, "--size", kind="str", default="default", choices=tuple(app.SIZES), metavar="SIZE",
               help=f"preset ({', '.join(app.SIZES)}); 'small' is the quick CI variant")
    for flag, kind, help_ in (("--hidden", "ints", "hidden widths of the mlp"),
                              ("--epochs", "int", "training epochs of the parent"),
                              ("--finetune-epochs", "int", "fine-tuning epochs after pruning"),
                              ("--calib-size", "int", "calibration inputs the local problems are built from"),
                              ("--qubits", "int", "qubit budget per QAOA block"),
                              ("--children", "int", "Prune-and-Tune ensemble size"),
                              ("--tune-epochs", "int", "fine-tuning epochs per child")):
        key = flag[2:].replace("-", "_")
        add_option(g, flag, kind=kind, default=None, metavar="N" if kind == "int" else "W,W",
                   help=f"{help_} (preset default: {app.preset_text(key)})")
    add_option(g, "--sparsity", kind="float", default=0.5, metavar="S", help="fraction of hidden units removed")
    add_option(g, "--p", kind="int", default=1, metavar="P", help="QAOA depth")
    add_option(g, "--backend", kind="str", default="native", metavar="NAME", help="QAOA simulator backend")
    add_run_options(p, scheduler=True)
    add_output_options(p)
    p.set_defaults(func=app.run)
    return p
