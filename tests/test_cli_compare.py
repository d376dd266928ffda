"""`qselect compare` (methods × sparsities × seeds → one table and plots) and
`qselect bench` (runs the benchmark scripts, prints their ratios)."""
import csv
import json

import pytest

from qselect.app import bench
from qselect.cli import main


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_compare_table_and_plots(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--methods", "magnitude,random,qaoa", "--sparsities", "0.25,0.5", "--seeds", "0,1",
            "--hidden", "8,8", "--epochs", "3", "--finetune-epochs", "1", "--calib-size", "64", "--qubits", "8",
            "--run-dir", str(out)]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "mean test accuracy over seeds" in stdout and "energy gap to the reference" in stdout
    rows = _csv(out / "results.csv")
    assert len(rows) == 3 * 2 * 2
    assert {(r["method"], r["sparsity"], r["seed"]) for r in rows} == {
        (m, s, d) for m in ("magnitude", "random", "qaoa") for s in ("0.25", "0.5") for d in ("0", "1")}
    for r in rows:
        assert float(r["sparsity_actual"]) == pytest.approx(float(r["sparsity"]), abs=0.07)  # 8 units: k rounds
        assert r["accuracy_pruned"] and r["accuracy_finetuned"]
    problems = _csv(out / "problems.csv")
    qaoa = [p for p in problems if p["method"] == "qaoa"]
    assert len(qaoa) == 2 * 2 * 2  # two hidden layers × sparsities × seeds
    assert all(p["reference"] == "exact" and float(p["gap"]) >= -1e-6 for p in qaoa)
    report = json.loads((out / "report.json").read_text())
    agg = {(a["method"], a["sparsity"]): a for a in report["aggregate"]}
    assert agg[("qaoa", 0.5)]["runs"] == 2 and "accuracy_finetuned_std" in agg[("qaoa", 0.5)]
    # two different parents (one per seed)
    assert [p["seed"] for p in report["parents"]] == [0, 1]
    for png in ("accuracy_vs_sparsity.png", "energy_gap.png", "solver_time.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def _fake_benchmarks(tmp_path, monkeypatch, source: str, names=("qaoa_sim",)):
    """Point `qselect bench` at a folder of stand-in benchmark scripts."""
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    for name in names:
        (folder / f"{name}.py").write_text(source)
    monkeypatch.setattr(bench, "benchmarks_dir", lambda: folder)


def test_bench_runs_scripts_and_prints_ratios(tmp_path, monkeypatch, capsys):
    script = (
        "import argparse, json\n"
        "p = argparse.ArgumentParser(); p.add_argument('--out'); p.add_argument('--quick', action='store_true')\n"
        "p.add_argument('--n', type=int, default=1)\n"
        "a = p.parse_args()\n"
        "json.dump({'quick': a.quick, 'n': a.n, 'ratio_eval_n20_native_vs_aer': 25.0625 * a.n,\n"
        "           'nested': {'ratio_x': 2}}, open(a.out, 'w'))\n")
    _fake_benchmarks(tmp_path, monkeypatch, script, bench.BENCHMARKS)
    out = tmp_path / "b"
    assert main(["bench", "--only", "qaoa_sim", "--run-dir", str(out), "--", "--n", "2"]) == 0
    stdout = capsys.readouterr().out
    assert "qaoa_sim: ratio_eval_n20_native_vs_aer = 50.1" in stdout and "nested.ratio_x = 2" in stdout
    data = json.loads((out / "qaoa_sim.json").read_text())
    assert data["quick"] is True and data["n"] == 2  # quick mode advertised in --help, extra args passed
    report = json.loads((out / "report.json").read_text())
    assert report["ratios"]["qaoa_sim: ratio_eval_n20_native_vs_aer"] == 50.125  # full precision, not as printed
    assert report["files"] == ["qaoa_sim.json", "report.json"]
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_bench_without_json_output_fails_the_run(tmp_path, monkeypatch, capsys):
    _fake_benchmarks(tmp_path, monkeypatch, "print('forgot --out')\n")
    assert main(["bench", "--only", "qaoa_sim", "--run-dir", str(tmp_path / "b")]) == 2
    assert "wrote no readable JSON" in capsys.readouterr().err
    meta = json.loads((tmp_path / "b" / "run.json").read_text())
    assert meta["status"] == "failed" and "wrote no readable JSON" in meta["error"]
    assert not (tmp_path / "b" / "report.json").exists()


def test_bench_failure_is_a_clean_error(tmp_path, monkeypatch, capsys):
    _fake_benchmarks(tmp_path, monkeypatch, "import sys; sys.exit(3)\n")
    assert main(["bench", "--only", "qaoa_sim", "--run-dir", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "benchmark qaoa_sim failed (exit code 3)" in err and "Traceback" not in err
    assert json.loads((tmp_path / "b" / "run.json").read_text())["status"] == "failed"


def test_compare_reuses_the_exact_method_as_reference(tmp_path, monkeypatch, capsys):
    from qselect.app import pipeline

    calls = []
    real = pipeline.select
    monkeypatch.setattr(pipeline, "select", lambda method, *a, **k: calls.append(method) or real(method, *a, **k))
    out = tmp_path / "cmp"
    assert main(["compare", "--methods", "exact,sa", "--sparsities", "0.5", "--seeds", "0", "--hidden", "8,8",
                 "--epochs", "1", "--finetune-epochs", "0", "--calib-size", "32", "--run-dir", str(out), "-q"]) == 0
    assert calls == ["exact", "sa"]  # no second exact solve for the reference
    problems = _csv(out / "problems.csv")
    exact = {p["problem"]: float(p["energy"]) for p in problems if p["method"] == "exact"}
    assert len(exact) == 2 and len(problems) == 4
    for p in problems:
        assert p["reference"] == "exact" and float(p["reference_energy"]) == exact[p["problem"]]
        assert float(p["gap"]) >= 0 and (p["method"] != "exact" or float(p["gap"]) == 0)
