"""``qselect ensemble``: the low-cost ensembles and sparse-training peers from the command line."""
import json

import pytest

from qselect.cli import main

FAST = ["--epochs", "2", "--hidden", "8,8", "--children", "2", "--tune-epochs", "1", "--finetune-epochs", "1"]


def test_ensembles_and_sparse_methods_write_a_report(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["ensemble", *FAST, "--methods", "antirandom,mutations,rigl",
               "--target-sparsity", "0.8", "--run-dir", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    names = [r["name"] for r in report["ensembles"]]
    assert names == ["parent (dense)", "antirandom", "mutations"]
    for r in report["ensembles"][1:]:
        assert r["members"] == 2 and 0 <= r["cka"] <= 1 + 1e-9 and r["epochs"] >= 2
    rigl = report["results"][0]
    assert rigl["method"] == "rigl" and rigl["sparsity_actual"] == pytest.approx(0.8, abs=0.01)
    assert "Representation similarity" in (out / "summary.md").read_text()


@pytest.mark.parametrize("flags, words", [(["--methods", "bagging"], "--methods"),
                                          (["--mutation-fraction", "0"], "(0, 1]"),
                                          (["--mutation-fraction", "1.5"], "(0, 1]"),
                                          (["--children", "1"], "--children")])
def test_bad_input_is_one_line(tmp_path, capsys, flags, words):
    out = tmp_path / "run"
    rc = main(["ensemble", *FAST, *flags, "--run-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("qselect: error: ") and words in line
    assert not out.exists()
