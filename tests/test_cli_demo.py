"""`qselect demo --size small` end to end: the report has every method, sane
accuracies, the target kept fraction and the QAOA gap to exact; a rerun with the
same seed reproduces masks and numbers."""
import csv
import json

import pytest
import torch

from qselect.app.demo import DEMO_SOLVERS
from qselect.cli import main


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    runs = []
    for i in range(2):
        out = base / f"run{i}"
        assert main(["demo", "--size", "small", "--run-dir", str(out), "-q"]) == 0
        runs.append(out)
    return runs


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_report_files(demo_runs):
    out = demo_runs[0]
    report = json.loads((out / "report.json").read_text())
    for name in report["files"]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    for name in ("results.csv", "problems.csv", "summary.md", "accuracy.png", "energy_gap.png",
                 "solver_time.png", "config.toml", "run.json", "model.pt"):
        assert (out / name).is_file(), name
    assert (out / "energy_gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert not list(out.glob(".*.tmp"))


def test_every_method_present_above_chance_at_target_sparsity(demo_runs):
    rows = _csv(demo_runs[0] / "results.csv")
    methods = {r["method"] for r in rows}
    assert methods == {"magnitude", "random"} | {f"qselect-{s}" for s in DEMO_SOLVERS}
    for r in rows:
        assert float(r["sparsity_actual"]) == pytest.approx(0.5, abs=0.01)
        assert float(r["accuracy_finetuned"]) > 0.1  # chance on 10 digits
    # the dense parent and the data-aware selections are well above chance
    report = json.loads((demo_runs[0] / "report.json").read_text())
    assert report["parent"]["test"]["accuracy"] > 0.6
    by = {r["method"]: r for r in rows}
    for m in ("magnitude", "qselect-exact", "qselect-qaoa"):
        assert float(by[m]["accuracy_finetuned"]) > 0.3, m


def test_solver_table_has_qaoa_gap_to_exact(demo_runs):
    report = json.loads((demo_runs[0] / "report.json").read_text())
    table = report["solver_table"]
    layers = report["layers"]
    assert {(r["layer"], r["solver"]) for r in table} == {(l, s) for l in layers for s in DEMO_SOLVERS}
    for r in table:
        assert r["kept_fraction"] == pytest.approx(0.5, abs=0.01)
        assert r["gap"] >= -1e-6 * max(1.0, abs(r["energy"]))  # nothing beats the exact optimum
        if r["solver"] == "exact":
            assert r["gap"] == 0
    qaoa = [r for r in report["problems"] if r["method"] == "qselect-qaoa"]
    assert qaoa and all(r["reference"] == "exact" and r["gap"] is not None for r in qaoa)
    summary = (demo_runs[0] / "summary.md").read_text()
    assert "gap to exact" in summary and "| qaoa |" in summary


def test_ensembles_reported(demo_runs):
    ens = json.loads((demo_runs[0] / "report.json").read_text())["ensembles"]
    names = [e["name"] for e in ens]
    assert names == ["parent (dense)", "qaoa-selected", "anti-random"]
    q = ens[1]
    assert q["members"] == 2 and q["accuracy"] > 0.1 and q["distinct_children"] >= 1


def test_rerun_with_same_seed_is_identical(demo_runs):
    a, b = demo_runs
    for name in sorted(p.name for p in a.glob("masks-*.pt")):
        ma, mb = torch.load(a / name, weights_only=True), torch.load(b / name, weights_only=True)
        assert ma["masks"].keys() == mb["masks"].keys()
        assert all(torch.equal(ma["masks"][k], mb["masks"][k]) for k in ma["masks"])
    timing = ("select_seconds", "wall_time", "seconds")
    for table in ("results.csv", "problems.csv"):
        ra, rb = _csv(a / table), _csv(b / table)
        strip = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows]  # noqa: E731
        assert strip(ra) == strip(rb), table
    ea = json.loads((a / "report.json").read_text())["ensembles"]
    eb = json.loads((b / "report.json").read_text())["ensembles"]
    assert [(e["accuracy"], e["nll"]) for e in ea] == [(e["accuracy"], e["nll"]) for e in eb]


def test_demo_masks_evaluate_on_its_model(demo_runs, tmp_path):
    """model.pt + masks-<method>.pt of a demo run feed 'qselect evaluate' and give the demo's numbers."""
    out = demo_runs[0]
    ev = tmp_path / "ev"
    assert main(["evaluate", "--model", str(out / "model.pt"), "--masks", str(out / "masks-qselect-qaoa.pt"),
                 "--finetune-epochs", "0", "--run-dir", str(ev), "-q"]) == 0
    demo = {r["method"]: r for r in _csv(out / "results.csv")}["qselect-qaoa"]
    (row,) = _csv(ev / "results.csv")
    assert float(row["accuracy_pruned"]) == float(demo["accuracy_pruned"])
