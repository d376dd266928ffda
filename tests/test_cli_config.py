"""TOML configs: precedence flag > config > default, command tables, the resolved
config stored in the run directory (and reusable), run metadata."""
import json

import pytest

from qselect.cli import build_parser, main
from qselect.cli.common import option_specs
from qselect.config import OptionSpec, coerce, load_config, resolve, to_toml
from qselect.errors import QSelectError

FAST = ["--epochs", "1", "--hidden", "8,8", "--calib-size", "32", "--solver", "exact", "-q"]


def _schema(command="select"):
    _, commands = build_parser()
    return option_specs(commands[command]), list(commands)


def test_every_option_is_in_the_config_schema():
    schema, _ = _schema("compare")
    for key in ("model", "dataset", "formulation", "backend", "qubits", "run_dir",
                "scheduler", "quiet", "verbose", "debug", "methods", "sparsities", "seeds", "finetune_epochs"):
        assert key in schema
    assert schema["sparsities"].kind == "floats" and schema["qubits"].kind == "int"
    assert "config" not in schema


@pytest.mark.parametrize("command,absent", [
    ("compare", ("sparsity", "seed", "solver")),          # compare takes --sparsities, --seeds, --methods
    ("bench", ("sparsity", "formulation", "model", "seed", "qubits", "threads")),
    ("evaluate", ("formulation", "solver", "qubits", "calib_size", "sparsity")),
    ("hardware status", ("model", "sparsity", "formulation", "seed", "device")),
    ("hardware cancel", ("model", "sparsity", "timeout")),
    ("demo", ("model", "dataset", "formulation", "solver", "lr")),
])
def test_a_command_accepts_only_what_it_uses(command, absent):
    schema, _ = _schema(command)
    assert not set(absent) & set(schema)


def test_precedence_flag_over_config_over_default(tmp_path):
    schema, commands = _schema()
    f = tmp_path / "c.toml"
    f.write_text('qubits = 6\nsparsity = 0.3\n[select]\nseed = 4\n[compare]\nseeds = [1, 2]\n')
    cfg = load_config(f, schema, "select", commands)
    assert cfg == {"qubits": 6, "sparsity": 0.3, "seed": 4}  # [compare] table skipped, not applied
    out = resolve(schema, cfg, {"qubits": 9})
    assert out["qubits"] == 9 and out["sparsity"] == 0.3 and out["seed"] == 4 and out["model"] == "mlp"


def test_dashed_keys_and_ints_for_floats(tmp_path):
    schema, commands = _schema()
    f = tmp_path / "c.toml"
    f.write_text("calib-size = 16\nsparsity = 1\n")
    assert load_config(f, schema, "select", commands) == {"calib_size": 16, "sparsity": 1.0}


@pytest.mark.parametrize("kind,value,ok", [
    ("int", True, False), ("int", 3.0, False), ("float", "0.5", False), ("bool", 1, False),
    ("floats", [0.1, "x"], False), ("strs", "a", True), ("floats", 0.5, True), ("float", float("nan"), False),
])
def test_coerce_types(kind, value, ok):
    spec = OptionSpec("x", kind)
    if ok:
        coerce(spec, value, "here")
    else:
        with pytest.raises(QSelectError, match="key 'x' must be"):
            coerce(spec, value, "here")


def test_choices_checked():
    with pytest.raises(QSelectError, match="valid values: a, b"):
        coerce(OptionSpec("x", "str", choices=("a", "b")), "c", "here")


def test_toml_round_trip(tmp_path):
    schema, commands = _schema("compare")
    values = resolve(schema)
    values.update(methods=["sa", "qaoa"], sparsities=[0.25, 0.5], run_dir=None, model='we"ird\\name')
    f = tmp_path / "r.toml"
    f.write_text(to_toml(values, "header"))
    back = load_config(f, schema, "compare", commands)
    assert back == {k: v for k, v in values.items() if v is not None}


def test_run_dir_stores_resolved_config_and_metadata(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("seed = 3\nqubits = 5\n")
    out = tmp_path / "run"
    assert main(["select", "--config", str(cfg), "--sparsity", "0.25", "--run-dir", str(out)] + FAST) == 0
    stdout = capsys.readouterr().out
    assert str(out) in stdout  # --quiet still prints where the report is
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "complete" and meta["command"] == "select"
    assert meta["seeds"] == {"seed": 3}
    assert meta["config"]["qubits"] == 5 and meta["config"]["sparsity"] == 0.25
    for pkg in ("qselect", "qiskit", "torch", "pennylane"):
        assert meta["versions"][pkg]
    assert meta["device"]["device"] in ("cpu", "cuda")
    # the stored config reruns the same experiment
    schema, commands = _schema()
    stored = load_config(out / "config.toml", schema, "select", commands)
    assert stored["seed"] == 3 and stored["qubits"] == 5 and stored["sparsity"] == 0.25
    # ... into a fresh folder: this one holds a finished run, so run-dir is not stored
    assert "run_dir" not in stored and meta["config"]["run_dir"] == str(out)
    report = json.loads((out / "report.json").read_text())
    assert set(report["files"]) >= {"report.json", "results.csv", "summary.md", "problems.csv"}
    assert report["results"][0]["sparsity_actual"] == pytest.approx(0.25, abs=0.01)


def test_default_run_dir_is_under_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["select"] + FAST) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("select-") and (run / "report.json").is_file()


def test_help_lists_match_the_registries():
    """--help names come from static lists (no torch import); they must not drift from the real ones."""
    from qselect.app import settings as common

    assert set(common._HELP_SOLVERS) == set(common.valid_solvers())
    assert common._HELP_MODELS == common.valid_models()
    assert common._HELP_DATASETS == common.valid_datasets()


def test_option_prefixes_are_not_expanded(capsys):
    """``compare --seed 5`` must not silently run ``--seeds 5``: compare takes --seeds only."""
    assert main(["compare", "--seed", "5", "--run-dir", "unused"]) == 2
    assert "unrecognized arguments: --seed" in capsys.readouterr().err
