"""The structure the code base promises: the runtime never imports training or evaluation code, the
public API works as the README shows, and no library call changes process-wide state."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from media import make_clip, make_png

from filmclean.modelfile import save_model
from filmclean.nets import build_network

ROOT = Path(__file__).resolve().parent.parent

_PROBE = """
import json, sys
from filmclean.cli import main
for args in {runs!r}:
    try:
        main(args)
    except SystemExit as exc:
        assert exc.code in (0, None), (args, exc.code)
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("filmclean", "skimage", "kornia", "matplotlib")))))
"""


@pytest.fixture(scope="module")
def tinymask(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = {"channels": 6, "layers": 2, "seed": 2, "size_multiple": 4}
    return save_model(
        build_network("tinymask", cfg), "tinymask", cfg, tmp_path_factory.mktemp("m") / "tinymask.safetensors"
    )


class TestImportDirection:
    def test_restoring_imports_no_training_or_evaluation_code(self, tmp_path, tinymask):
        clip = make_clip(tmp_path / "in.mkv", n=3, audio=True)
        (tmp_path / "stills").mkdir()
        make_png(tmp_path / "stills" / "a.png", np.full((24, 32, 3), 128, np.uint8), text=None)
        common = ["--model", str(tinymask), "--backend", "torch", "-q"]
        runs = [
            ["restore", str(clip), "-o", str(tmp_path / "out.mkv"), *common],
            ["frames", str(tmp_path / "stills"), "-o", str(tmp_path / "out"), *common],
        ]
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE.format(runs=runs)], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr
        modules = json.loads(proc.stdout.strip().splitlines()[-1])
        assert (tmp_path / "out.mkv").is_file() and (tmp_path / "out" / "a.png").is_file()
        assert "filmclean.engine" in modules  # the probe did restore
        assert [
            m
            for m in modules
            if m.startswith(
                ("filmclean.train", "filmclean.evaluation", "filmclean.cli_eval", "skimage", "kornia", "matplotlib")
            )
        ] == []

    def test_runtime_sources_never_import_training(self):
        offenders = []
        for path in (ROOT / "filmclean").rglob("*.py"):
            rel = path.relative_to(ROOT / "filmclean")
            if rel.parts[0] in ("evaluation",) or rel.name in ("cli_eval.py", "evaluate.py", "evaluate_clip.py"):
                continue  # evaluation may use both
            text = path.read_text()
            if re.search(r"^\s*(from|import)\s+(filmclean\.train|\.train)\b", text, re.M):
                offenders.append(str(rel))
        assert offenders == []


class TestReadmeExample:
    def test_python_example_runs(self, tmp_path, tinymask, monkeypatch):
        readme = (ROOT / "README.md").read_text()
        m = re.search(r"```python\n(.*?)```", readme, re.S)
        assert m, "the README has a Python example"
        code = m.group(1)
        clip = make_clip(tmp_path / "reel.mov", n=3, pix_fmt="yuv422p10le", audio=True)
        (tmp_path / "scans").mkdir()
        make_png(tmp_path / "scans" / "scan_001.png", np.full((40, 48, 3), 100, np.uint8), text=None)
        monkeypatch.chdir(tmp_path)
        # the example loads the shipped models; here a tiny model stands in for them
        import filmclean.api

        real = filmclean.api.open_restorer
        monkeypatch.setattr(
            filmclean.api,
            "open_restorer",
            lambda model=None, *a, **k: real(model or tinymask, *a, **{**k, "backend": "torch"}),
        )
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)
        assert clip.is_file() and (tmp_path / "clean.mkv").is_file()
        assert (tmp_path / "restored" / "scan_001.png").is_file()
        assert namespace["result"].image.shape == (32, 48, 3)


class TestNoGlobalState:
    def test_torch_threads_are_restored(self, tinymask):
        import filmclean

        before = torch.get_num_threads()
        restorer = filmclean.open_restorer(tinymask, backend="torch", threads=2)
        restorer.restore(np.zeros((16, 16, 3), np.float32))
        assert torch.get_num_threads() == before

    def test_tests_use_a_temporary_cache(self):
        import os

        cache = Path(os.environ["XDG_CACHE_HOME"])
        assert cache != Path.home() / ".cache" and "pytest" in str(cache)


class TestDefectsFound:
    def test_no_temporal_with_a_users_temporal_model_runs_that_model(self, tmp_path, capsys):
        """--model X --no-temporal with a temporal X used to restore with the shipped single-frame
        model while the banner named X; now X runs (its neighbour inputs empty), shipped models or not."""
        from helpers import run_cli, small_temporal_model

        from filmclean.backends import TorchBackend
        from filmclean.engine import RestoreOptions, Restorer
        from filmclean.io.images import read_image
        from filmclean.modelfile import load_torch_network

        model = small_temporal_model(tmp_path / "t.safetensors", perturb=0.1)
        seq = tmp_path / "seq"
        seq.mkdir()
        rng = np.random.default_rng(4)
        for k in range(3):
            make_png(seq / f"reel_{k:04d}.png", rng.integers(0, 256, (32, 40, 3), dtype=np.uint8), text=None)
        code, _, err = run_cli(
            [
                "frames",
                seq,
                "-o",
                tmp_path / "out",
                "--model",
                model,
                "--backend",
                "torch",
                "--no-temporal",
                "--tile",
                "64",
            ],
            capsys,
        )
        assert code == 0, err
        assert "without neighbours" in err
        net, _ = load_torch_network(model)
        from filmclean.nets import network_info

        expected = Restorer(TorchBackend(net, network_info(net), device="cpu"), RestoreOptions(tile=64))
        frame = read_image(seq / "reel_0001.png")
        got = read_image(tmp_path / "out" / "reel_0001.png")
        want = np.round(np.clip(expected.restore(frame.rgb).image, 0, 1) * 255)
        np.testing.assert_array_equal(np.round(got.rgb * 255), want)

    def test_unwritable_onnx_cache_still_restores(self, tmp_path, capsys, tinymask, monkeypatch):
        """A restore failed (exit 2) only because the ONNX cache could not be written."""
        import filmclean.model as model

        blocker = tmp_path / "not-a-folder"
        blocker.write_text("a file where the cache folder should be")
        monkeypatch.setattr(model, "_onnx_cache_for", lambda st, digest: blocker / "cache" / f"{st.stem}.onnx")
        (tmp_path / "stills").mkdir()
        make_png(tmp_path / "stills" / "a.png", np.full((24, 32, 3), 90, np.uint8), text=None)
        from helpers import run_cli

        code, _, err = run_cli(
            ["frames", tmp_path / "stills", "-o", tmp_path / "out", "--model", tinymask, "--backend", "onnx"], capsys
        )
        assert code == 0, err
        assert "ONNX cache not writable" in err and (tmp_path / "out" / "a.png").is_file()
        assert not list(tmp_path.glob("filmclean-onnx-*"))

    def test_evaluate_runs_a_temporal_model_on_stills_as_frames_does(self, tmp_path, capsys):
        """evaluate used to run a temporal model on stills without the rule frames applies; both now
        restore a still the same way (filmclean.api.restore_image)."""
        from helpers import run_cli, small_temporal_model

        from filmclean.api import ModelChoice
        from filmclean.engine import RestoreOptions
        from filmclean.evaluation.methods import model_method
        from filmclean.io.images import read_image

        model = small_temporal_model(tmp_path / "t.safetensors", perturb=0.1)
        (tmp_path / "stills").mkdir()
        rng = np.random.default_rng(6)
        make_png(tmp_path / "stills" / "a.png", rng.integers(0, 256, (32, 40, 3), dtype=np.uint8), text=None)
        code, _, err = run_cli(
            [
                "frames",
                tmp_path / "stills",
                "-o",
                tmp_path / "out",
                "--model",
                model,
                "--backend",
                "torch",
                "--tile",
                "64",
                "-q",
            ],
            capsys,
        )
        assert code == 0, err
        still = read_image(tmp_path / "stills" / "a.png").rgb
        scored = model_method(model, RestoreOptions(tile=64), ModelChoice(backend="torch")).restore(still, None)
        np.testing.assert_array_equal(
            np.round(np.clip(scored, 0, 1) * 255), np.round(read_image(tmp_path / "out" / "a.png").rgb * 255)
        )
