"""``qselect ensemble``: low-cost ensembles and sparse-training peers from one parent, side by side.

Prune and Tune (anti-random, random, partition or qselect-selected children),
Snapshot Ensembles (from scratch or from the parent), mutated-children
ensembles (Sparse Mutation Decompositions), independent models; and one-shot,
SSA, RigL and IMP at a target sparsity. Reports accuracy, NLL, ECE,
disagreement, pairwise KL, linear CKA between members, and cost in epochs and
FLOP-epochs; ``--diversity`` adds feature-visualisation figures per layer.
"""
from __future__ import annotations

from ..app import ensemble as app
from .common import (
    add_finetune_options,
    add_model_options,
    add_option,
    add_output_options,
    add_run_options,
    add_selection_options,
)


def register(subparsers):
    """Add the ``ensemble`` command, with only the option groups it uses, to ``subparsers``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction

    Returns
    -------
    argparse.ArgumentParser
    """
    p = subparsers.add_parser("ensemble", help=app.HELP, description=__doc__.split("\n\n", 1)[1])
    add_model_options(p, epochs=15)
    add_selection_options(p, solver=True, sparsity=True, calib_size=64)
    add_finetune_options(p, finetune_epochs=4)
    g = p.add_argument_group("ensembles")
    add_option(g, "--methods", kind="strs", default=["antirandom", "snapshot", "mutations"], metavar="M,M",
               help=f"ensembles ({', '.join(app.ENSEMBLE_METHODS)}) and sparse-training methods "
                    f"({', '.join(app.SPARSE_METHODS)})")
    add_option(g, "--children", kind="int", default=4, metavar="N",
               help="members per ensemble (PaT children, snapshots = cycles, mutated children)")
    add_option(g, "--tune-epochs", kind="int", default=2, metavar="N",
               help="epochs per PaT child; a snapshot cycle from the parent lasts as long")
    add_option(g, "--mutation-fraction", kind="float", default=0.1, metavar="F",
               help="share of the weights one sparse mutation touches, in (0, 1]")
    add_option(g, "--mutation-scale", kind="float", default=1.0, metavar="S",
               help="mutation std in units of each layer's weight std")
    add_option(g, "--generations", kind="int", default=1, metavar="N",
               help="mutation generations (1: one-generation children; more: elitist evolution)")
    add_option(g, "--target-sparsity", kind="float", default=0.9, metavar="S",
               help="final sparsity of the sparse-training methods (one-shot, ssa, rigl, imp)")
    add_option(g, "--diversity", kind="bool", default=False,
               help="also draw feature visualisations (one PNG per layer) of two members per ensemble")
    add_run_options(p)
    add_output_options(p)
    p.set_defaults(func=app.run)
    return p
