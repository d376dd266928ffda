"""``qselect select``: masks for a model's layers from its solved local problems.

Model + data + formulation + solver + sparsity + qubit budget → masks file and per-problem results in a run directory.

Model + data + formulation + solver + sparsity + qubit budget → masks file and per-problem results in a run directory.
"""
from __future__ import annotations

from ..app import select as app
from .common import (
    add_finetune_options,
    add_model_options,
    add_option,
    add_output_options,
    add_run_options,
    add_selection_options,
)


def register(subparsers):
    """Add the ``select`` command, with only the option groups it uses, to ``subparsers``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction

    Returns
    -------
    argparse.ArgumentParser
    """
    p = subparsers.add_parser("select", help=app.HELP, description=app.HELP + ". Writes masks.pt (load with "
                              "qselect.classical.masks.load_masks), model.pt for built-in models, "
                              "problems.csv and a report into the run directory.")
    add_model_options(p)
    add_selection_options(p)
    add_finetune_options(p, finetune_epochs=0)
    add_run_options(p, scheduler=True)
    add_output_options(p)
    add_option(p, "--save-model", kind="bool", default=False,
               help="also save the (trained) parent as model.pt even when it came from a checkpoint")
    p.set_defaults(func=app.run)
    return p
