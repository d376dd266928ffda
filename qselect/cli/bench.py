"""``qselect bench``: run the benchmark scripts and print their headline ratios.

Runs ``benchmarks/qaoa_sim.py`` (native simulator vs Aer / qiskit-algorithms)
and ``benchmarks/seed_methods.py`` (seed methods vs their baselines) from the
source checkout, each in quick mode unless ``--full``, writing their JSON into
the run directory. Arguments after ``--`` go to the scripts unchanged.
"""
from __future__ import annotations

import argparse

from ..app import bench as app
from .common import (
    add_option,
    add_output_options,
    add_run_options,
)


def register(subparsers):
    """Add the ``bench`` command, with only the option groups it uses, to ``subparsers``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction

    Returns
    -------
    argparse.ArgumentParser
    """
    p = subparsers.add_parser("bench", help=app.HELP, description=__doc__.split("\n\n", 1)[1])
    add_option(p, "--only", kind="strs", default=list(app.DEFAULT_BENCHMARKS), metavar="NAME,NAME",
               help=f"benchmarks to run (any of {', '.join(app.BENCHMARKS)})")
    add_option(p, "--full", kind="bool", default=False, help="full benchmark instead of quick mode")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="after --: arguments passed to the scripts")
    add_run_options(p, seed=False, threads=False)
    add_output_options(p)
    p.set_defaults(func=app.run)
    return p
