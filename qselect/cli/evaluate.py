"""``qselect evaluate``: accuracy of a model under a masks file, before and after fine-tuning."""
from __future__ import annotations

from ..app import evaluate as app
from .common import (
    add_finetune_options,
    add_model_options,
    add_option,
    add_output_options,
    add_run_options,
)


def register(subparsers):
    """Add the ``evaluate`` command, with only the option groups it uses, to ``subparsers``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction

    Returns
    -------
    argparse.ArgumentParser
    """
    p = subparsers.add_parser("evaluate", help=app.HELP, description=app.HELP + ". --model is usually the model.pt "
                              "written by 'qselect select' next to its masks.pt.")
    add_model_options(p)
    add_finetune_options(p, finetune_epochs=3)
    add_option(p, "--masks", kind="str", default=None, metavar="FILE", help="masks file (masks.pt)")
    add_option(p, "--save", kind="bool", default=False,
               help="also write the pruned (and fine-tuned) model as model-pruned.pt in the run directory "
                    "(a checkpoint with its masks: reuse it with --model, or load_checkpoint in Python)")
    add_run_options(p)
    add_output_options(p)
    p.set_defaults(func=app.run)
    return p
