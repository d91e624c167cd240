"""Restoring on a local Ray cluster (2 worker processes, bound to 127.0.0.1): the same output as one
process, also when a worker is killed mid-run, and a resumed run (issue 21)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli
from media import decode_frames, packets_of
from test_chunks import dpx_sequence, make_damaged_clip

from filmclean.api import ModelChoice
from filmclean.engine import RestoreOptions
from filmclean.pipeline import VideoOptions

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # as filmclean.cluster.connect does: local only
ray = pytest.importorskip("ray")

from filmclean.cluster import RayOptions, connect, restore_frames_on_ray, restore_video_on_ray  # noqa: E402

LOCAL = RayOptions(address="auto", chunk=6, local_cpus=2)


def _listening() -> set[tuple[str, int]]:
    """``(address, port)`` of every listening TCP socket on this machine (from /proc/net)."""
    found = set()
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            addr, port = fields[1].split(":")
            found.add((addr, int(port, 16)))
    return found


LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


@pytest.fixture(scope="module")
def cluster():
    before = _listening()
    connect(LOCAL)
    assert ray.cluster_resources().get("CPU") == 2
    opened = _listening() - before
    if Path("/proc/net/tcp").exists():
        assert opened, "Ray opened no listening socket?"
        assert {addr for addr, _ in opened} <= LOOPBACK, f"Ray listens beyond 127.0.0.1: {sorted(opened)}"
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def reel(tmp_path_factory) -> tuple[Path, Path]:
    """A 24-frame clip with audio and its restoration by one process."""
    folder = tmp_path_factory.mktemp("ray")
    clip = make_damaged_clip(folder / "reel.mkv", n=24)
    whole = folder / "whole.mkv"
    from filmclean.cli import main

    try:
        main(["restore", str(clip), "-o", str(whole), "-q"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    return clip, whole


def _same_video(a: Path, b: Path) -> None:
    fa, fb = decode_frames(a), decode_frames(b)
    assert len(fa) == len(fb) > 0
    for (pa, xa), (pb, xb) in zip(fa, fb, strict=True):
        assert pa == pb
        np.testing.assert_array_equal(xa, xb)
    assert packets_of(a) == packets_of(b) and len(packets_of(a)) > 0


class TestVideoOnRay:
    def test_cli_equals_one_process(self, cluster, reel, tmp_path, capsys):
        clip, whole = reel
        out = tmp_path / "ray.mkv"
        code, _, err = run_cli(["restore", clip, "-o", out, "--ray", "auto", "--chunk", "6", "-q"], capsys)
        assert code == 0, err
        _same_video(whole, out)
        assert not (tmp_path / "ray.mkv.parts").exists()  # the parts are removed once joined

    def test_a_killed_worker_changes_nothing(self, cluster, reel, tmp_path):
        clip, whole = reel
        out = tmp_path / "ray.mkv"
        killed: list[object] = []
        chunks: list[tuple[int, int]] = []

        def kill_one(first: int, last: int, busy: list[object]) -> None:
            chunks.append((first, last))
            if not killed and busy:  # a worker in the middle of its chunk
                ray.kill(busy[0], no_restart=True)
                killed.append(busy[0])

        stats = restore_video_on_ray(
            clip, out, ModelChoice(), RestoreOptions(), VideoOptions(), LOCAL, quiet=True, on_chunk_done=kill_one
        )
        assert killed, "no worker was busy to kill"
        assert sorted(chunks) == [(0, 5), (6, 11), (12, 17), (18, 23)]  # every chunk done once, in the end
        assert stats.frames == 24
        _same_video(whole, out)

    def test_an_interrupted_run_resumes(self, cluster, reel, tmp_path):
        clip, whole = reel
        out = tmp_path / "ray.mkv"
        done: list[tuple[int, int]] = []

        def stop_after_two(first: int, last: int, busy: list[object]) -> None:
            done.append((first, last))
            if len(done) == 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            restore_video_on_ray(
                clip,
                out,
                ModelChoice(),
                RestoreOptions(),
                VideoOptions(),
                LOCAL,
                quiet=True,
                on_chunk_done=stop_after_two,
            )
        assert not out.exists()
        assert len(list((tmp_path / "ray.mkv.parts").glob("part-*.mkv"))) >= 2
        stats = restore_video_on_ray(clip, out, ModelChoice(), RestoreOptions(), VideoOptions(), LOCAL, quiet=True)
        assert stats.skipped >= 12 and stats.frames + stats.skipped == 24
        _same_video(whole, out)

    def test_parts_of_another_run_are_refused(self, cluster, reel, tmp_path):
        clip, _ = reel
        out = tmp_path / "ray.mkv"
        parts = tmp_path / "ray.mkv.parts"
        parts.mkdir()
        (parts / "manifest.json").write_text('{"input": "something else"}')
        from filmclean.errors import OutputError

        with pytest.raises(OutputError, match="another run"):
            restore_video_on_ray(clip, out, ModelChoice(), RestoreOptions(), VideoOptions(), LOCAL, quiet=True)


class TestSequenceOnRay:
    def test_dpx_sequence_equals_one_process(self, cluster, tmp_path, capsys):
        src = dpx_sequence(tmp_path / "scan", 18)
        whole = tmp_path / "whole"
        code, _, err = run_cli(["frames", src, "-o", whole, "-q"], capsys)
        assert code == 0, err
        out = tmp_path / "ray"
        stats = restore_frames_on_ray(src, out, ModelChoice(), RestoreOptions(), options=LOCAL, quiet=True)
        assert stats.frames == 18
        names = sorted(p.name for p in whole.iterdir())
        assert names == sorted(p.name for p in out.iterdir())
        for n in names:
            assert (whole / n).read_bytes() == (out / n).read_bytes(), n
