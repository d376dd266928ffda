"""Turning a hardware run's device answers into masks, and the local problems a run sends.

A run that starts from a model (``qselect hardware submit`` or
:func:`qselect.app.hardware.run_submit`) saves its selection context — the
parent (``model.pt``), every local problem, where its bits land and its
classical answer — so that :func:`write_hardware_masks` can later build
``masks.pt`` from the device's answers without the original process; both
``qselect hardware fetch`` and :func:`qselect.hardware.api.fetch` call it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def local_problems(selection, qubits: int) -> tuple[dict, dict]:
    """Hardware problems from a Selection: each local problem, or ≤ ``qubits``-bit blocks of it.

    A local problem larger than the budget is split into consecutive blocks,
    each with the other bits fixed at the classical solution (one block
    coordinate step from it), so every hardware problem fits the budget.

    Parameters
    ----------
    selection : Selection
    qubits : int

    Returns
    -------
    problems : dict of str -> Problem
    meta : dict of str -> dict
    """
    problems, meta = {}, {}
    for i, (lp, res) in enumerate(zip(selection.problems, selection.results)):
        base = f"{lp.layer}#{lp.index}"
        if lp.n <= qubits:
            pid = f"p{i:04d}"
            problems[pid] = lp.problem
            meta[pid] = {"layer": lp.layer, "kind": lp.kind, "index": int(lp.index), "local_problem": base,
                         "local_index": i}
            continue
        for b, start in enumerate(range(0, lp.n, qubits)):
            block = list(range(start, min(start + qubits, lp.n)))
            fixed = {j: int(res.bits[j]) for j in range(lp.n) if j not in block}
            pid = f"p{i:04d}b{b:02d}"
            problems[pid] = lp.problem.fix(fixed)
            meta[pid] = {"layer": lp.layer, "kind": lp.kind, "index": int(lp.index), "local_problem": base,
                         "local_index": i, "block": f"{block[0]}-{block[-1]}", "block_start": block[0],
                         "block_stop": block[-1] + 1}
    return problems, meta


CONTEXT_JSON = "local_problems.json"


CONTEXT_NPZ = "local_problems.npz"


MODEL_FILE = "model.pt"


def save_selection_context(run_dir, parent, parent_info, cfg, sel, layers) -> None:
    """Save what ``fetch`` needs to turn device answers into masks later.

    Without the original process: the parent (model.pt), every local problem, where its bits land, and its classical
    answer.

    Parameters
    ----------
    run_dir : str or os.PathLike
    parent : torch.nn.Module
    parent_info : dict
    cfg : dict
    sel : Selection
    layers : list of str
    """
    from ..classical.checkpoint import save_checkpoint
    from ..io import atomic_write_json
    from .runner import save_problems

    meta = {"model": parent_info["model"], "model_kwargs": parent_info["model_kwargs"],
            "input_shape": parent_info["input_shape"], "num_classes": parent_info["num_classes"],
            "dataset": cfg["dataset"], "seed": cfg["seed"]}
    save_checkpoint(Path(run_dir) / MODEL_FILE, parent, meta=meta)
    save_problems(Path(run_dir) / CONTEXT_NPZ, {f"l{i:04d}": lp.problem for i, lp in enumerate(sel.problems)})
    atomic_write_json(Path(run_dir) / CONTEXT_JSON, {"layers": list(layers), "problems": [
        {"layer": lp.layer, "kind": lp.kind, "index": int(lp.index), "param": lp.param,
         "k": None if lp.k is None else int(lp.k), "positions": np.asarray(lp.positions).tolist(),
         "zero": None if lp.zero is None else np.asarray(lp.zero).tolist(),
         "classical_bits": "".join(str(int(b)) for b in res.bits)}
        for lp, res in zip(sel.problems, sel.results)]})


def assemble_local_bits(problem, classical_bits, rows) -> tuple[np.ndarray, dict]:
    """The device's answer for one local problem.

    A problem that ran whole takes the device's best bitstring. A problem run
    as blocks (each solved with the rest fixed at the classical answer) takes
    each block's device bits in turn when that does not raise the full
    problem's energy: a block-coordinate step from the classical answer.

    Parameters
    ----------
    problem : Problem
    classical_bits : numpy.ndarray of uint8, shape (n,)
    rows : list of dict
        The report rows of the problem's hardware runs.

    Returns
    -------
    bits : numpy.ndarray of uint8, shape (n,)
    info : dict
    """
    bits = np.array([int(c) for c in classical_bits], dtype=np.uint8)
    e_classical = float(problem.energy(bits))
    accepted = 0
    for row in rows:
        hw = np.array([int(c) for c in row["hardware_bits"]], dtype=np.uint8)
        if "block_start" not in row:
            bits, accepted = hw, 1
            continue
        trial = bits.copy()
        trial[row["block_start"]:row["block_stop"]] = hw
        if problem.energy(trial) <= problem.energy(bits) + 1e-12:
            bits, accepted = trial, accepted + 1
    return bits, {"classical_energy": e_classical, "hardware_energy": float(problem.energy(bits)),
                  "blocks": len(rows), "accepted": accepted}


_CONTEXT_KEYS = {"layer", "kind", "index", "param", "k", "positions", "zero", "classical_bits"}


def check_selection_context(run_dir, report) -> tuple[dict, dict] | None:
    """The saved selection context (``local_problems.json``, ``model.pt``) or one line saying what is wrong.

    Checked before anything is written: a run whose problems came from a model
    (``plan.json`` records ``selection_context``: the context is saved before
    the plan) but whose context is now missing or damaged
    (unparsable or wrong-shaped JSON, a truncated ``model.pt``) raises instead
    of silently producing no ``masks.pt``.

    Parameters
    ----------
    run_dir : pathlib.Path
    report : dict

    Returns
    -------
    (dict, dict) or None
        The context and the checkpoint payload; None for a run planned without a model.

    Raises
    ------
    QSelectError
        Missing or damaged context, with the file named.
    """
    from ..errors import QSelectError

    path = run_dir / CONTEXT_JSON
    try:  # plan.json records whether the context was saved before the run was planned
        from_model = bool(json.loads((run_dir / "plan.json").read_text(encoding="utf-8")).get("selection_context"))
    except (OSError, ValueError, AttributeError):
        from_model = False
    if not path.exists():
        if from_model:
            raise QSelectError(f"{path} is missing although the run was planned from a model, so masks.pt cannot "
                               "be built; the device results are in report.json: restore the file or run "
                               "`qselect hardware submit` again in a new --run-dir for masks")
        return None
    try:
        ctx = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise QSelectError(f"{path} is damaged (not valid JSON: {exc}); masks.pt was not written: restore it or "
                           "submit again in a new --run-dir") from None
    rows = ctx.get("problems") if isinstance(ctx, dict) else None
    bad = (not isinstance(rows, list) or not isinstance(ctx.get("layers"), list)
           or any(not isinstance(r, dict) or not _CONTEXT_KEYS <= set(r) for r in rows))
    top = max((int(r["local_index"]) for r in report.get("problems", []) if "local_index" in r), default=-1)
    if bad or top >= len(rows):
        raise QSelectError(f"{path} has the wrong shape (expected 'layers' and 'problems' with "
                           f"{sorted(_CONTEXT_KEYS)} for each of the run's local problems); masks.pt was not "
                           "written: restore it or submit again in a new --run-dir")
    from ..classical.checkpoint import load_checkpoint  # torch: only for runs planned from a model

    try:
        payload = load_checkpoint(run_dir / MODEL_FILE)
    except QSelectError as exc:
        raise QSelectError(f"{run_dir / MODEL_FILE} cannot be read ({exc}); masks.pt was not written") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a truncated file
        raise QSelectError(f"{run_dir / MODEL_FILE} is damaged ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'}); masks.pt was not written: "
                           "restore it or submit again in a new --run-dir") from None
    if not isinstance(payload, dict) or "meta" not in payload:
        raise QSelectError(f"{run_dir / MODEL_FILE} holds no model metadata; masks.pt was not written")
    return ctx, payload


def write_hardware_masks(run_dir, report, con=None):
    """masks.pt from the device's answers (classical answers where a problem was not sent).

    Parameters
    ----------
    run_dir : str or os.PathLike
    report : dict
    con : Console or None

    Returns
    -------
    pathlib.Path or None
        ``masks.pt``, or None when the run has no selection context.
    """
    run_dir = Path(run_dir)
    checked = check_selection_context(run_dir, report)
    if checked is None:
        return None  # a run planned from the library API: no model to mask
    from ..classical.checkpoint import load_checkpoint
    from ..classical.masks import mask_sparsity, save_masks
    from ..classical.models import build_model
    from ..formulate import LocalProblem, build_masks
    from ..io import atomic_write_json
    from ..solvers.base import make_result
    from .runner import load_problems

    ctx, payload = checked
    meta = payload["meta"]
    model = build_model(meta["model"], tuple(meta["input_shape"]), meta["num_classes"], seed=meta.get("seed", 0),
                        **meta.get("model_kwargs", {}))
    load_checkpoint(run_dir / MODEL_FILE, model)
    ids = [f"l{i:04d}" for i in range(len(ctx["problems"]))]
    full = load_problems(run_dir / CONTEXT_NPZ, ids)
    rows_of: dict[int, list] = {}
    for row in report["problems"]:
        if "local_index" in row:
            rows_of.setdefault(int(row["local_index"]), []).append(row)
    lps, results, summary = [], [], []
    for i, (lid, info) in enumerate(zip(ids, ctx["problems"])):
        zero = None if info["zero"] is None else np.asarray(info["zero"], dtype=np.int64)
        lps.append(LocalProblem(full[lid], info["layer"], info["kind"], info["index"],
                                np.asarray(info["positions"], dtype=np.int64), info["k"], info["param"], zero))
        bits, s = assemble_local_bits(full[lid], info["classical_bits"], rows_of.get(i, []))
        results.append(make_result(full[lid], bits, "hardware" if i in rows_of else "classical"))
        summary.append({"local_problem": f"{info['layer']}#{info['index']}", "sent": i in rows_of, **s})
    masks = build_masks(model, lps, results, ctx["layers"])
    # no run id (random per submit) in the metadata: identical runs write identical bytes; run.json and
    # report.json name the run
    save_masks(run_dir / "masks.pt", masks, meta={**meta, "solver": f"qaoa@{report['summary']['backend']}",
                                                  "source": "hardware run"})
    sent = [r for r in summary if r["sent"]]
    atomic_write_json(run_dir / "masks_summary.json", {"problems": summary, "sent": len(sent),
                                                       "sparsity": mask_sparsity(masks)["overall"]})
    if con is not None:
        worse = sum(r["hardware_energy"] > r["classical_energy"] + 1e-9 * max(1.0, abs(r["classical_energy"]))
                    for r in sent)
        con.print(f"masks.pt: device answers for {len(sent)}/{len(summary)} local problems "
                  f"({worse} worse than the classical answer)")
    return run_dir / "masks.pt"
