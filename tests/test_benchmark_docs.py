"""The benchmarks page generator: every results file appears, unknown ones generically."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _make_docs():
    spec = importlib.util.spec_from_file_location("make_docs", ROOT / "benchmarks" / "make_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_unknown_results_file_rendered_with_figures_tables_and_command(tmp_path):
    md = _make_docs()
    res = tmp_path / "benchmarks" / "results"
    res.mkdir(parents=True)
    (tmp_path / "benchmarks" / "widget.py").write_text("")
    (res / "widget.json").write_text(json.dumps({
        "ratio_speed": 12.5, "nested": {"ratio_other": 3}, "figures": {"best_gap": 0.25},
        "summary": [{"method": "a", "acc": 0.9, "acc_std": 0.01}, {"method": "b", "acc": 0.8}],
        "machine": {"cpus": 2}}))
    (res / "mystery.json").write_text(json.dumps({"command": "python other.py --x 1", "value": 7}))
    (res / "broken.json").write_text("{not json")
    text = md.render(res)
    assert "`ratio_speed` | **12.5** | `python benchmarks/widget.py --out benchmarks/results/widget.json`" in text
    assert "`nested.ratio_other` | **3**" in text
    assert "`figures.best_gap` | **0.25**" in text
    assert "| a | 0.9 ± 0.01 |" in text and "| b | 0.8 |" in text
    assert "python other.py --x 1" in text and "| `value` | 7 |" in text
    assert "## broken.json" in text and "Could not be read" in text
    assert "Machine: cpus 2" in text


def test_check_flags_a_stale_page(tmp_path):
    md = _make_docs()
    res = tmp_path / "results"
    res.mkdir()
    (res / "x.json").write_text(json.dumps({"ratio_a": 2.0}))
    out = tmp_path / "bench.md"
    assert md.main(["--results", str(res), "--out", str(out)]) == 0
    assert md.main(["--results", str(res), "--out", str(out), "--check"]) == 0
    (res / "x.json").write_text(json.dumps({"ratio_a": 3.0}))
    assert md.main(["--results", str(res), "--out", str(out), "--check"]) == 1


def test_records_with_nested_variants_become_long_tables(tmp_path):
    md = _make_docs()
    res = tmp_path / "results"
    res.mkdir()
    (res / "compile.json").write_text(json.dumps({"cases": [
        {"device": "d1", "n": 8, "plain": {"gates": 10, "depth": 5}, "routed": {"gates": 7, "depth": 4}}]}))
    text = md.render(res)
    assert "| device | n | variant | gates | depth |" in text
    assert "| d1 | 8 | plain | 10 | 5 |" in text and "| d1 | 8 | routed | 7 | 4 |" in text
