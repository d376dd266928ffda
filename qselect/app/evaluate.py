"""``qselect evaluate``: accuracy of a model under a masks file, before and after fine-tuning."""
from __future__ import annotations

from pathlib import Path

from ..errors import QSelectError
from . import pipeline as pl
from .console import Console
from .settings import set_threads, validate_common

HELP = "evaluate a masks file on a model (pruned, then fine-tuned)"


def run(cfg: dict, *, argv=None, given=None, extra=None) -> int:
    """``qselect evaluate``: a masks file on a model — accuracy, NLL and ECE pruned, then after fine-tuning.

    Parameters
    ----------
    cfg : dict
        The resolved settings: one key per option the command declares
        (dashes as underscores), as ``qselect.cli`` resolves them from flags,
        ``--config`` and defaults.
    argv : list of str or None
        The command line, recorded in the run's ``run.json``.
    given : iterable of str or None
        Options set explicitly (by flag or config) rather than by default; the
        command line passes them and then ``model`` must be among them
        (``None``, from a notebook: ``cfg["model"]`` is taken as meant).
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
    """
    cfg = dict(cfg)
    if not cfg["masks"]:
        raise QSelectError("no masks file given; pass --masks FILE (e.g. the masks.pt of a 'qselect select' run)")
    if Path(cfg["masks"]).is_dir():
        raise QSelectError(f"--masks {cfg['masks']} is a folder; give the masks file in it (e.g. masks.pt)")
    if not Path(cfg["masks"]).is_file():
        raise QSelectError(f"masks file {cfg['masks']} does not exist; check the path given to --masks")
    if given is not None and "model" not in given:
        # masks only mean something on the weights they were selected on: a freshly trained parent
        # would be evaluated silently (and badly) instead
        raise QSelectError("evaluate needs the model the masks were selected on; pass --model "
                           "<run directory>/model.pt (written by 'qselect select')")
    validate_common(cfg, solver_needed=False)
    pl.validate_experiment(cfg)
    pl.drop_unused_model_options(cfg, given)
    con = Console(cfg["quiet"], cfg["verbose"])
    set_threads(cfg)

    from ..classical.masks import load_masks, mask_sparsity

    data = pl.load_data(cfg)
    parent, parent_info = pl.prepare_parent(cfg, data, progress=con.progress)
    masks = load_masks(cfg["masks"], parent)  # checks names and shapes against the model

    from ..runs import Run

    run_ = Run.create("evaluate", cfg, cfg["run_dir"], argv=argv)
    with run_.guard():
        metrics, child = pl.evaluate_masks(parent, masks, data, cfg, seed=cfg["seed"],
                                           finetune_epochs=cfg["finetune_epochs"], progress=con.progress)
        if cfg.get("save"):
            from ..classical.checkpoint import save_checkpoint

            meta = {**pl.checkpoint_meta(parent_info, cfg), "masks": Path(cfg["masks"]).name,
                    "finetune_epochs": cfg["finetune_epochs"]}
            save_checkpoint(run_.file("model-pruned.pt"), child, meta=meta)
            con.print(f"pruned{' and fine-tuned' if cfg['finetune_epochs'] else ''} model: "
                      f"{run_.file('model-pruned.pt')}")
        row = {"method": Path(cfg["masks"]).name, "sparsity": round(mask_sparsity(masks)["overall"], 6),
               "seed": cfg["seed"], **metrics}
        con.print(f"parent {parent_info['test']['accuracy']:.4f}; masked {metrics['accuracy_pruned']:.4f}"
                  + (f"; fine-tuned {metrics['accuracy_finetuned']:.4f}"
                     if metrics["accuracy_finetuned"] is not None else ""))
        from ..report.summary import write_run_report

        write_run_report(run_, cfg, parent_info, [row], con=con, title="qselect evaluate")
    return 0
