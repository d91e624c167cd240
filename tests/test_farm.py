"""`filmclean farm-job`: an Open Job Description template that openjd checks and runs (issue 21)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli
from media import decode_frames, packets_of
from test_chunks import make_damaged_clip

from filmclean.farm import chunk_ranges

OPENJD = shutil.which("openjd") or str(Path(sys.executable).with_name("openjd"))


class TestChunkRanges:
    def test_cover_every_frame_once(self):
        assert chunk_ranges(10, 4) == [(0, 3), (4, 7), (8, 9)]
        assert chunk_ranges(3, 5) == [(0, 2)]
        with pytest.raises(ValueError):
            chunk_ranges(10, 0)


@pytest.mark.skipif(not Path(OPENJD).exists(), reason="openjd-cli is not installed")
class TestFarmJob:
    def test_template_runs_locally_and_equals_one_run(self, tmp_path, capsys, monkeypatch):
        clip = make_damaged_clip(tmp_path / "reel.mkv", n=12)
        whole = tmp_path / "whole.mkv"
        code, _, err = run_cli(["restore", clip, "-o", whole, "-q"], capsys)
        assert code == 0, err
        monkeypatch.chdir(tmp_path)
        command = shlex.join([sys.executable, "-m", "filmclean"])
        code, out, err = run_cli(
            [
                "farm-job",
                "reel.mkv",
                "-o",
                "farm.mkv",
                "--chunk",
                "5",
                "--command",
                command,
                "--",
                "--threshold",
                "0.5",
            ],
            capsys,
        )
        assert code == 0, err
        assert "12 frames in 3 task(s)" in err and (tmp_path / "farm.mkv.parts").is_dir()
        template = json.loads(out)
        restore, join = template["steps"]
        assert restore["parameterSpace"]["taskParameterDefinitions"][0]["range"] == ["00-04", "05-09", "10-11"]
        assert join["dependencies"] == [{"dependsOn": "Restore"}]
        assert "--threshold" in restore["script"]["actions"]["onRun"]["args"]
        (tmp_path / "job.yaml").write_text(out)
        check = subprocess.run([OPENJD, "check", "job.yaml"], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        run = subprocess.run(
            [OPENJD, "run", "job.yaml", "--step", "Join", "--run-dependencies"], capture_output=True, text=True
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        a, b = decode_frames(whole), decode_frames(tmp_path / "farm.mkv")
        assert len(a) == len(b) == 12
        for (pa, fa), (pb, fb) in zip(a, b, strict=True):
            assert pa == pb
            np.testing.assert_array_equal(fa, fb)
        assert packets_of(tmp_path / "farm.mkv") == packets_of(whole)

    def test_bad_restore_options_are_refused_now(self, tmp_path, capsys, monkeypatch):
        clip = make_damaged_clip(tmp_path / "reel.mkv", n=3)
        monkeypatch.chdir(tmp_path)
        code, out, err = run_cli(["farm-job", clip, "-o", "o.mkv", "--chunk", "2", "--", "--no-such-option"], capsys)
        assert code != 0 and "not a restore option" in err and out == ""
        code, out, err = run_cli(["farm-job", tmp_path / "missing.mkv", "-o", "o.mkv", "--chunk", "2"], capsys)
        assert code != 0 and "missing.mkv" in err and "Traceback" not in err
