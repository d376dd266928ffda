"""``qselect compare``: many selectors × sparsities × seeds → one table and plots.

Each seed trains its own parent (data split, initialisation, calibration batch
and solvers all follow the seed), so the spread over seeds is the honest one.
For every (seed, sparsity) the local problems are the same for all solvers; the
QAOA (and every other solver's) energy gap is measured against the exact
optimum of each problem when it has at most ``--exact-limit`` bits, else
against the best energy any solver found ("best-found").
"""
from __future__ import annotations

from ..app import compare as app
from .common import (
    add_finetune_options,
    add_model_options,
    add_option,
    add_output_options,
    add_run_options,
    add_selection_options,
)


def register(subparsers):
    """Add the ``compare`` command, with only the option groups it uses, to ``subparsers``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction

    Returns
    -------
    argparse.ArgumentParser
    """
    p = subparsers.add_parser("compare", help=app.HELP, description=__doc__.split("\n\n", 1)[1])
    add_model_options(p)
    add_selection_options(p, solver=False, sparsity=False)
    add_finetune_options(p, finetune_epochs=2)
    add_option(p, "--methods", kind="strs", default=["magnitude", "random", "sa", "qaoa"], metavar="M,M",
               help="selectors: magnitude, random (classical, unstructured), one-shot pruners (wanda, "
                    "sparsegpt, obc, snip, imp; per row, layer by layer), or a solver name for the local "
                    "problems (exact, sa, tabu, greedy, qaoa; q:magnitude / q:random for the solver-level "
                    "baselines)")
    add_option(p, "--refit", kind="bool", default=False,
               help="follow every method's mask by the damped least-squares refit of each row's kept weights")
    add_option(p, "--sparsities", kind="floats", default=[0.3, 0.5, 0.7], metavar="S,S",
               help="target sparsities")
    add_option(p, "--seeds", kind="ints", default=[0, 1], metavar="N,N", help="seeds (one parent per seed)")
    add_option(p, "--exact-limit", kind="int", default=app.EXACT_SEARCH_BITS, metavar="N",
               help="local problems up to this many bits get an exact reference for the energy gaps")
    add_run_options(p, seed=False, scheduler=True)
    add_output_options(p)
    p.set_defaults(func=app.run)
    return p
