"""The GPU check script runs end to end on the CPU at small sizes (it shrinks itself without CUDA)."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def gpu_check(monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setitem(mod.SMOKE, "agree", [5])
    monkeypatch.setitem(mod.SMOKE, "eval", [8])
    monkeypatch.setitem(mod.SMOKE, "layer_blocks", 2)
    monkeypatch.setitem(mod.SMOKE, "layer_bits", 5)
    monkeypatch.setitem(mod.SMOKE, "resnet_batch", 2)
    # training itself is tested with the classical pipeline; here only the wiring (an untrained MLP)
    import qselect.classical.train as tr

    monkeypatch.setattr(tr, "train", lambda model, loader, config=None, **kw: {})
    return mod


def test_gpu_check_cpu_smoke_writes_every_section(gpu_check, tmp_path):
    out = tmp_path / "gpu.json"
    gpu_check.main(["--cpu-smoke", "--out", str(out)])
    d = json.loads(out.read_text())
    assert d["smoke"] and d["device"] == "cpu"
    for name in ("agreement", "evaluation", "layer", "classical"):
        assert "error" not in d[name], d[name]
    # the torch engine agrees with NumPy complex128: complex128 to rounding, complex64 to float32 precision
    for row in d["agreement"]:
        tol = 1e-10 if row["dtype"] == "complex128" else 1e-4
        assert row["value_abs_diff"] < tol and row["gradient_max_abs_diff"] < tol
    assert {r["mixer"] for r in d["agreement"]} == {"x", "xy"}
    ev = d["evaluation"][0]
    assert ev["n"] == 8 and ev["expectation_s"] > 0 and ev["ratio_to_hbm_bound"] > 0 and ev["value_and_grad_s"] > 0
    assert d["copy_bandwidth_GBps"] > 0
    assert d["layer"]["cpu_numpy_batched"]["problems_per_s"] > 0
    assert 0 <= d["classical"]["digits_mlp"]["test_accuracy"] <= 1
    assert d["classical"]["resnet18_cifar_shape"]["amp_off"]["train_images_per_s"] > 0
