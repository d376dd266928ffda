"""`qselect select` writes masks + model that `qselect evaluate` (and a second
select from the checkpoint) read back with the same numbers."""
import csv
import json

import pytest
import torch

from qselect.classical.masks import load_masks, mask_sparsity
from qselect.cli import main


def _row(path):
    with open(path, newline="") as fh:
        return next(csv.DictReader(fh))


def test_select_then_evaluate_round_trip(tmp_path, capsys):
    sel = tmp_path / "sel"
    assert main(["select", "--solver", "qaoa", "--qubits", "5", "--hidden", "10,10", "--epochs", "3",
                 "--calib-size", "64", "--sparsity", "0.4", "--run-dir", str(sel), "-q"]) == 0
    masks = load_masks(sel / "masks.pt")
    assert set(masks) == {"layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"}
    # neuron formulation: whole rows kept or dropped, 6 of 10 units kept per layer
    rows = masks["layers.0.weight"].sum(1)
    assert set(rows.tolist()) <= {0.0, 64.0} and int((rows > 0).sum()) == 6
    problems = list(csv.DictReader(open(sel / "problems.csv")))
    assert [p["layer"] for p in problems] == ["layers.0", "layers.2"]
    assert all(p["solver"].startswith("block(qaoa") for p in problems)  # 10 units > 5 qubits: decomposed
    ev = tmp_path / "ev"
    assert main(["evaluate", "--model", str(sel / "model.pt"), "--masks", str(sel / "masks.pt"),
                 "--finetune-epochs", "0", "--run-dir", str(ev), "-q"]) == 0
    assert float(_row(ev / "results.csv")["accuracy_pruned"]) == float(_row(sel / "results.csv")["accuracy_pruned"])
    # selecting again from the saved checkpoint reproduces the masks
    again = tmp_path / "again"
    assert main(["select", "--model", str(sel / "model.pt"), "--solver", "qaoa", "--qubits", "5",
                 "--calib-size", "64", "--sparsity", "0.4", "--run-dir", str(again), "-q"]) == 0
    m2 = load_masks(again / "masks.pt")
    assert all(torch.equal(masks[k], m2[k]) for k in masks)
    assert not (again / "model.pt").exists()  # a checkpoint model is not copied unless --save-model
    meta = json.loads((again / "report.json").read_text())["parent"]
    assert meta["source"] == str(sel / "model.pt") and meta["model_kwargs"] == {"hidden": [10, 10]}
    assert mask_sparsity(m2)["overall"] == pytest.approx(0.4, abs=0.01)
