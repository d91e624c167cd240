"""benchmarks/gpu_check.py and gpu_check.sh: the parts that run without a GPU."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


class TestTestPicture:
    def test_deterministic_and_damaged(self):
        gc = _module()
        a, b = gc.test_picture(seed=0), gc.test_picture(seed=0)
        assert a.shape == (384, 512, 3) and a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
        assert a.min() >= 0 and a.max() <= 1
        assert (a[:, int(512 * 0.9)] == np.float32(0.92)).all()  # the scratch


class TestCpuRun:
    def test_runtimes_agree_on_the_cpu(self, tmp_path, capsys):
        gc = _module()
        out = tmp_path / "figures.json"
        code = gc.main(["--device", "cpu", "--sizes", "256", "--repeat", "1", "--frames", "0", "--json", str(out)])
        text = capsys.readouterr().out
        assert code == 0, text
        report = json.loads(out.read_text())
        rows = report["models"]["default"]
        assert set(rows) == {"torch cpu fp32", "onnx cpu"}
        for row in rows.values():
            p = row["parity"]
            assert p["max_abs_diff"] < 1e-3 and p["decisions_differ"] / p["pixels"] < 0.005
            assert p["repaired"] > 0 and row["256"]["s_per_frame"] > 0
        assert "FAIL" not in text and "decisions differ" in text

    def test_a_mismatch_fails(self, tmp_path, capsys, monkeypatch):
        """A runtime whose repairs differ from the CPU's makes the check fail (exit 1)."""
        gc = _module()
        real = gc.parity

        def off(*args, **kwargs):
            p = real(*args, **kwargs)
            p["decisions_differ"] = p["pixels"] // 10
            return p

        monkeypatch.setattr(gc, "parity", off)
        code = gc.main(["--device", "cpu", "--sizes", "256", "--repeat", "1", "--frames", "0"])
        assert code == 1 and "FAIL" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU is here")
def test_script_says_when_there_is_no_gpu():
    env = {**os.environ, "PYTHON": sys.executable}
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True, env=env)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "no NVIDIA GPU" in res.stderr
