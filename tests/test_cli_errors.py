"""Bad input: one line on stderr that says what is wrong and how to fix it, exit
code 2, no traceback, and no output file left behind (nothing half-written)."""
import json
import math

import pytest
import torch

from qselect.classical.checkpoint import save_checkpoint
from qselect.classical.masks import save_masks
from qselect.classical.models import build_model
from qselect.cli import main

FAST = ["--epochs", "1", "--hidden", "8,8", "--calib-size", "32"]
FAST_CKPT = ["--calib-size", "32"]  # a checkpoint brings its own widths and training
FAST_EVAL = []  # evaluate takes the checkpoint as it is: --epochs/--hidden would be refused


def fail(argv, capsys, tmp_path, *, run_dir=True):
    """Run the CLI expecting a user error; return the error line."""
    out = tmp_path / "run"
    rc = main(argv + (["--run-dir", str(out)] if run_dir else []))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    errors = [l for l in err.splitlines() if "error:" in l]
    assert len(errors) == 1 and errors[0] == err.strip().splitlines()[-1], err
    assert errors[0].startswith("qselect: error: ")
    assert not out.exists(), f"bad input left output behind: {list(out.iterdir())}"
    assert not list(tmp_path.rglob("*.tmp"))
    return errors[0]


def ckpt(path, hidden=(8, 8), nan=False):
    model = build_model("mlp", (64,), 10, seed=0, hidden=hidden)
    if nan:
        with torch.no_grad():
            model.layers[0].weight[0, 0] = math.nan
    save_checkpoint(path, model, meta={"model": "mlp", "model_kwargs": {"hidden": list(hidden)},
                                       "input_shape": [64], "num_classes": 10})
    return model


@pytest.mark.parametrize("value", ["1.5", "1", "-0.2", "nan"])
def test_sparsity_outside_the_one_rule(value, capsys, tmp_path):
    msg = fail(["select", "--sparsity", value], capsys, tmp_path)
    assert "sparsity must be a number in [0, 1)" in msg and "--sparsity 0.5" in msg


def test_compare_sparsities_checked_too(capsys, tmp_path):
    assert "sparsity must be a number in [0, 1)" in fail(["compare", "--sparsities", "0.5,1.2"], capsys, tmp_path)


@pytest.mark.parametrize("argv", [["select", "--seed", "5000000000"], ["compare", "--seeds", "0,5000000000"]])
def test_seed_too_large_for_the_generators_is_refused_before_any_folder(argv, capsys, tmp_path):
    assert "seed" in fail(argv, capsys, tmp_path)


def test_qubit_budget_beyond_memory(capsys, tmp_path):
    msg = fail(["select", "--solver", "qaoa", "--qubits", "60"], capsys, tmp_path)
    assert "60 qubits" in msg and "qubits fit" in msg and "--qubits" in msg


def test_qubit_budget_zero(capsys, tmp_path):
    assert "at least 1" in fail(["select", "--qubits", "0"], capsys, tmp_path)


@pytest.mark.parametrize("flag,value,listed", [
    ("--model", "resnet99", "mlp, lenet5, resnet18, vit"),
    ("--dataset", "imagenet", "digits, mnist, fashion_mnist, cifar10, cifar100"),
    ("--solver", "quantum-magic", "exact"),
    ("--backend", "qpu9000", "native, aer, statevector, pennylane"),
    ("--formulation", "edges", "neuron, weight, nk"),
])
def test_unknown_names_list_the_valid_ones(flag, value, listed, capsys, tmp_path):
    msg = fail(["select", flag, value], capsys, tmp_path)
    assert repr(value) in msg and listed in msg and flag in msg
    if flag == "--solver":
        for name in ("sa", "tabu", "qaoa"):
            assert name in msg


def test_compare_exact_limit_beyond_exact_search(capsys, tmp_path):
    # checked up front: exact search would otherwise fail mid-run, after the run directory exists
    msg = fail(["compare", "--exact-limit", "33", "--methods", "sa"], capsys, tmp_path)
    assert "exact-limit 33" in msg and "--exact-limit 32" in msg


def test_demo_ensemble_size(capsys, tmp_path):
    assert fail(["demo", "--children", "0"], capsys, tmp_path).endswith("set it with --children")


def test_unreachable_dask_scheduler(capsys, tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    import qselect.executors

    monkeypatch.setattr(qselect.executors, "DASK_CONNECT_TIMEOUT", 1)
    msg = fail(["select", "--scheduler", "tcp://127.0.0.1:1", "--solver", "sa"] + FAST, capsys, tmp_path)
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in msg and "--scheduler process" in msg


def test_unknown_method_in_compare(capsys, tmp_path):
    msg = fail(["compare", "--methods", "magnitude,bogus"], capsys, tmp_path)
    assert "'bogus'" in msg and "magnitude, random" in msg and "qaoa" in msg


def test_missing_dataset_directory(capsys, tmp_path):
    msg = fail(["select", "--dataset", "mnist", "--data-root", str(tmp_path / "nope")], capsys, tmp_path)
    assert "dataset directory" in msg and "does not exist" in msg and "--data-root" in msg


def test_dataset_directory_without_files(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    msg = fail(["select", "--dataset", "mnist", "--data-root", str(tmp_path / "empty")], capsys, tmp_path)
    assert "mnist" in msg.lower() and "empty" in msg


def test_named_dataset_needs_a_directory(capsys, tmp_path):
    assert "--data-root" in fail(["select", "--dataset", "cifar10"], capsys, tmp_path)


def test_corrupt_checkpoint(capsys, tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    msg = fail(["select", "--model", str(bad)] + FAST_CKPT, capsys, tmp_path)
    assert "corrupt" in msg and str(bad) in msg


def test_missing_checkpoint(capsys, tmp_path):
    msg = fail(["select", "--model", str(tmp_path / "gone.pt")], capsys, tmp_path)
    assert "does not exist" in msg


def test_corrupt_masks_file(capsys, tmp_path):
    ckpt(tmp_path / "model.pt")
    bad = tmp_path / "masks.pt"
    bad.write_bytes(b"\x00" * 100)
    msg = fail(["evaluate", "--model", str(tmp_path / "model.pt"), "--masks", str(bad)] + FAST_EVAL, capsys, tmp_path)
    assert "mask file" in msg and "unreadable" in msg


def test_masks_that_do_not_fit_the_model(capsys, tmp_path):
    other = build_model("mlp", (64,), 10, seed=0, hidden=(12, 12))
    save_masks(tmp_path / "masks.pt", {"layers.0.weight": torch.ones_like(other.layers[0].weight)})
    ckpt(tmp_path / "model.pt", hidden=(8, 8))
    msg = fail(["evaluate", "--model", str(tmp_path / "model.pt"), "--masks", str(tmp_path / "masks.pt")] + FAST_EVAL,
               capsys, tmp_path)
    assert "layers.0.weight" in msg and "(12, 64)" in msg and "(8, 64)" in msg


def test_config_unknown_key(capsys, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text("sparsty = 0.5\n")
    msg = fail(["select", "--config", str(cfg)], capsys, tmp_path)
    assert "unknown key 'sparsty'" in msg and "sparsity" in msg and str(cfg) in msg


def test_config_wrong_type(capsys, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('qubits = "ten"\n')
    msg = fail(["select", "--config", str(cfg)], capsys, tmp_path)
    assert "'qubits' must be an integer" in msg and "'ten'" in msg


def test_config_wrong_type_in_command_table(capsys, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[compare]\nsparsities = ["half"]\n')
    assert "'sparsities' must be a number" in fail(["compare", "--config", str(cfg)], capsys, tmp_path)


def test_config_bad_toml(capsys, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text("sparsity = = 0.5\n")
    assert "not valid TOML" in fail(["select", "--config", str(cfg)], capsys, tmp_path)


def test_config_value_out_of_range_is_validated_like_a_flag(capsys, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text("sparsity = 2.0\n")
    assert "sparsity must be a number in [0, 1)" in fail(["select", "--config", str(cfg)], capsys, tmp_path)


def test_empty_calibration_set(capsys, tmp_path):
    msg = fail(["select", "--calib-size", "0"], capsys, tmp_path)
    assert "calibration set is empty" in msg and "--calib-size" in msg


def test_nan_weights(capsys, tmp_path):
    ckpt(tmp_path / "model.pt", nan=True)
    msg = fail(["select", "--model", str(tmp_path / "model.pt")] + FAST_CKPT, capsys, tmp_path)
    assert "layers.0.weight" in msg and "NaN" in msg


def test_no_ibm_account(capsys, tmp_path, monkeypatch):
    pytest.importorskip("qiskit_ibm_runtime")
    import qiskit_ibm_runtime.accounts.management as management

    for var in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_CHANNEL", "QISKIT_IBM_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(management, "_DEFAULT_ACCOUNT_CONFIG_JSON_FILE", str(tmp_path / "home" / "none.json"))
    msg = fail(["hardware", "submit", "--device", "ibm_brisbane"], capsys, tmp_path)
    assert "no IBM Quantum account" in msg and "QISKIT_IBM_TOKEN" in msg and "fake_" in msg


def test_usage_errors_are_one_line(capsys, tmp_path):
    assert "invalid float value" in fail(["select", "--sparsity", "half"], capsys, tmp_path)
    assert "unrecognized arguments" in fail(["select", "--sparsityy", "0.5"], capsys, tmp_path)
    assert "no command given" in fail([], capsys, tmp_path, run_dir=False)


def test_debug_shows_the_traceback(capsys, tmp_path):
    rc = main(["select", "--sparsity", "3", "--debug"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("qselect: error:")


def test_interrupted_report_leaves_no_half_written_file(capsys, tmp_path, monkeypatch):
    import qselect.report.summary as summary

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(summary, "solver_time", boom)  # the second plot: after some files are written
    out = tmp_path / "run"
    rc = main(["select", "--solver", "exact", "--run-dir", str(out), "-q"] + FAST)
    assert rc == 130
    assert not (out / "report.json").exists() and not (out / "summary.md").exists()
    assert not list(out.glob(".*.tmp"))
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted"
    assert (out / "masks.pt").stat().st_size > 0  # what was written is complete


def test_run_dir_of_a_finished_run_is_not_overwritten(capsys, tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    (out / "report.json").write_text('{"old": true}\n')
    rc = main(["select", "--run-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "already holds a finished run" in err and "--run-dir" in err
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]
    assert json.loads((out / "report.json").read_text()) == {"old": True}


def test_a_folder_given_where_a_file_is_expected(capsys, tmp_path):
    ckpt(tmp_path / "model.pt")
    (tmp_path / "adir").mkdir()
    msg = fail(["evaluate", "--model", str(tmp_path / "model.pt"), "--masks", str(tmp_path / "adir")] + FAST_EVAL,
               capsys, tmp_path)
    assert "is a folder" in msg
    msg = fail(["select", "--weights", str(tmp_path / "adir")] + FAST, capsys, tmp_path)
    assert "is a folder" in msg


def test_run_dir_that_is_a_file_is_refused_before_any_work(capsys, tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["select", "--run-dir", str(f)] + FAST) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[-1]] and "is a file" in err[-1]  # one line, before the model is prepared
