"""``qselect select``: masks for a model's layers from its solved local problems.

Model + data + formulation + solver + sparsity + qubit budget → masks file and per-problem results in a run directory.

Model + data + formulation + solver + sparsity + qubit budget → masks file and per-problem results in a run directory.
"""
from __future__ import annotations

from ..report.summary import write_run_report
from . import pipeline as pl
from .console import Console
from .settings import set_threads, validate_common

HELP = "select masks for a model's layers by solving its local problems"


def validate(cfg: dict) -> dict:
    """Check the select settings (common options and the experiment's sizes).

    Parameters
    ----------
    cfg : dict

    Returns
    -------
    dict

    Raises
    ------
    QSelectError
        Naming the first bad value and its option.
    """
    validate_common(cfg)
    return pl.validate_experiment(cfg)


def run(cfg: dict, *, argv=None, given=(), extra=None) -> int:
    """``qselect select``: train (or load) a model, solve its local problems and write the masks.

    Parameters
    ----------
    cfg : dict
        The resolved settings: one key per option the command declares
        (dashes as underscores), as ``qselect.cli`` resolves them from flags,
        ``--config`` and defaults.
    argv : list of str or None
        The command line, recorded in the run's ``run.json``.
    given : iterable of str
        Options set explicitly (by flag or config) rather than by default.
    extra : list of str or None
        Arguments after ``--`` (passed on where the command supports it).

    Returns
    -------
    int
        Process exit code (0 on success).

    Raises
    ------
    QSelectError
        On bad input, before the run directory is created.

    Notes
    -----
    Writes ``masks.pt``, ``problems.csv``, the report and (for built-in
    models) ``model.pt`` into the run directory.
    """
    cfg = pl.drop_unused_model_options(validate(dict(cfg)), given)
    set_threads(cfg)
    con = Console(cfg["quiet"], cfg["verbose"])
    # Everything that can fail on bad input happens before the run directory exists.
    data = pl.load_data(cfg)
    calib = pl.calibration_inputs(data, cfg["calib_size"], cfg["seed"])
    con.info("preparing the model (%s)", cfg["model"])
    parent, parent_info = pl.prepare_parent(cfg, data, progress=con.progress)
    layers = pl.hidden_layers(parent, cfg["layers"])
    if cfg["formulation"] == "neuron" and not cfg["layers"]:
        from ..formulate.select import neuron_layers  # units that vanish when removed (BN, no residual sums)

        layers = neuron_layers(parent, calib)

    from ..runs import Run

    with pl.executor_for(cfg["scheduler"], cfg["formulation"]) as executor, \
            Run.create("select", cfg, cfg["run_dir"], argv=argv).guard() as run_:
        con.info("solving local problems with %s (%s formulation, %d-qubit budget)", cfg["solver"],
                 cfg["formulation"], cfg["qubits"])
        res = pl.select(f"q:{cfg['solver']}", parent, calib, cfg, sparsity=cfg["sparsity"], seed=cfg["seed"],
                        layers=layers, executor=executor, progress=con.progress)
        metrics, _ = pl.evaluate_masks(parent, res.masks, data, cfg, seed=cfg["seed"],
                                       finetune_epochs=cfg["finetune_epochs"], progress=con.progress)

        from ..classical.checkpoint import save_checkpoint
        from ..classical.masks import save_masks

        meta = pl.checkpoint_meta(parent_info, cfg)
        save_masks(run_.file("masks.pt"), res.masks, meta={**meta, "solver": cfg["solver"],
                                                         "formulation": cfg["formulation"],
                                                         "sparsity": cfg["sparsity"]})
        if parent_info["source"] == "built-in" or cfg["save_model"]:
            save_checkpoint(run_.file("model.pt"), parent, meta=meta)
        rows = pl.problem_rows(res.selection, method=cfg["solver"])
        row = {"method": cfg["solver"], "sparsity": cfg["sparsity"], "seed": cfg["seed"],
               "select_seconds": res.seconds, **metrics}
        con.print(f"parent test accuracy {parent_info['test']['accuracy']:.4f}; after selection "
                  f"{metrics['accuracy_pruned']:.4f}"
                  + (f", fine-tuned {metrics['accuracy_finetuned']:.4f}"
                     if metrics["accuracy_finetuned"] is not None else "")
                  + f"; {len(rows)} local problems, weight sparsity {pl.weight_sparsity(res.masks):.3f}")
        from ..report import format_table
        from ..report.summary import CONTROL_COLUMNS, controls_table

        if controls_table(rows):  # sampled answers beside uniform random bitstrings, same shots
            con.print("\nagainst uniform random bitstrings with the same shots (mean over local problems):")
            con.print(format_table(controls_table(rows), CONTROL_COLUMNS))
        write_run_report(run_, cfg, parent_info, [row], problem_rows_=rows, con=con,
                         title="qselect select", extra={"layers": layers})
    return 0
