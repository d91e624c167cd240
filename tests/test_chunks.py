"""Exact frame-range chunks (`--frames`) and `filmclean join` (issue 21)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from helpers import run_cli
from media import AUDIO_RATE, _sine_frames, decode_frames, make_clip, make_dpx, packets_of, pattern

from filmclean.io.video import VideoFrameItem, VideoReader

CHUNKS = [(0, 14), (15, 29), (30, 44), (45, 59)]


def _damaged_pattern(i: int, w: int = 96, h: int = 64) -> np.ndarray:
    """A 16-bit picture panning by a pixel a frame, with dark specks that sit on one frame each."""
    img = pattern(0, w + 64, h, bits=16)[:, i : i + w].copy()
    rng = np.random.default_rng(100 + i)
    for _ in range(3):
        y, x = int(rng.integers(4, h - 8)), int(rng.integers(4, w - 8))
        img[y : y + 3, x : x + 4] = 2000
    return img


def _cli_ok(args) -> None:
    """Run the CLI in-process (module-scoped fixtures cannot use capsys) and check it succeeded."""
    from filmclean.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code


def dpx_sequence(folder: Path, n: int) -> Path:
    """``n`` 16-bit DPX frames of :func:`_damaged_pattern` named ``reel_00000.dpx`` ... in ``folder``."""
    folder.mkdir()
    for i in range(n):
        make_dpx(folder / f"reel_{i:05d}.dpx", _damaged_pattern(i), bits=16)
    return folder


def make_damaged_clip(path: Path, n: int = 60) -> Path:
    """``n`` frames of :func:`_damaged_pattern` as 10-bit RGB FFV1 at 24 fps, with a stereo PCM
    track as long as the video."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "gbrp10le"
        astream = out.add_stream("pcm_s16le", rate=AUDIO_RATE)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(_damaged_pattern(i), format="rgb48le").reformat(format="gbrp10le")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        for aframe in _sine_frames(n / 24):
            out.mux(astream.encode(aframe))
        out.mux(astream.encode(None))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """60 frames of FFV1 with audio, one-frame specks on every frame."""
    return make_damaged_clip(tmp_path_factory.mktemp("chunks") / "reel.mkv")


@pytest.fixture(scope="module")
def whole(clip, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "whole.mkv"
    _cli_ok(["restore", clip, "-o", out, "-q"])
    return out


def _restore_chunks(clip: Path, folder: Path, capsys, chunks=CHUNKS) -> list[Path]:
    parts = []
    for a, b in chunks:
        part = folder / f"part{a:03d}.mkv"
        code, _, err = run_cli(["restore", clip, "-o", part, "--frames", f"{a}-{b}", "-q"], capsys)
        assert code == 0, err
        parts.append(part)
    return parts


class TestVideoChunks:
    def test_chunks_joined_equal_one_run(self, clip, whole, tmp_path, capsys):
        parts = _restore_chunks(clip, tmp_path, capsys)
        for part, (a, b) in zip(parts, CHUNKS, strict=True):
            assert len(decode_frames(part)) == b - a + 1
            with av.open(str(part)) as c:
                assert [st.type for st in c.streams] == ["video"]  # a chunk is its video alone
        joined = tmp_path / "joined.mkv"
        code, _, err = run_cli(["join", *parts, "-o", joined, "--source", clip], capsys)
        assert code == 0, err
        assert "60 frame(s) from 4 part(s)" in err
        a, b = decode_frames(whole), decode_frames(joined)
        assert len(a) == len(b) == 60
        for (pts_a, fa), (pts_b, fb) in zip(a, b, strict=True):
            assert pts_a == pts_b
            np.testing.assert_array_equal(fa, fb)
        assert packets_of(joined) == packets_of(whole) and len(packets_of(whole)) > 0  # the audio
        assert packets_of(joined, "video") == packets_of(whole, "video")  # FFV1 is intra-only

    def test_temporal_mode_changes_the_frames(self, clip, whole, tmp_path, capsys):
        """The comparison above is not trivially met: restoring without neighbours gives other
        frames, so a chunk that lost its neighbours at its edges would show."""
        alone = tmp_path / "alone.mkv"
        code, _, err = run_cli(["restore", clip, "-o", alone, "--no-temporal", "-q"], capsys)
        assert code == 0, err
        differ = [not np.array_equal(fa, fb) for (_, fa), (_, fb) in zip(decode_frames(whole), decode_frames(alone))]
        assert any(differ)

    def test_reader_gives_the_neighbours_outside_the_range(self, clip):
        with VideoReader(clip, frames=(15, 29), context=1) as reader:
            items = [i for i in reader if isinstance(i, VideoFrameItem)]
        assert [i.index for i in items] == [-1, *range(15), -1]
        assert items[0].context and items[-1].context and not any(i.context for i in items[1:-1])
        with VideoReader(clip) as reader:
            every = [i for i in reader if isinstance(i, VideoFrameItem)]
        assert [i.pts for i in items] == [f.pts for f in every[14:31]]  # source timestamps, unshifted
        np.testing.assert_array_equal(items[1].rgb, every[15].rgb)

    def test_late_chunks_seek_and_equal_one_run(self, tmp_path, capsys):
        """A chunk that starts late in a constant-rate reel decodes from near its start (numbering
        frames by their timestamps) rather than from the file's start, with the same result."""
        long = make_damaged_clip(tmp_path / "long.mkv", n=120)
        with VideoReader(long, frames=(70, 80), context=1) as reader:
            assert reader._numbered_by_time
            items = [i for i in reader if isinstance(i, VideoFrameItem)]
        with VideoReader(long) as reader:
            every = [i for i in reader if isinstance(i, VideoFrameItem)]
        assert [i.pts for i in items] == [f.pts for f in every[69:82]]
        assert [i.context for i in items] == [True] + [False] * 11 + [True]
        for got, want in zip(items, every[69:82], strict=True):
            np.testing.assert_array_equal(got.rgb, want.rgb)
        whole = tmp_path / "whole.mkv"
        code, _, err = run_cli(["restore", long, "-o", whole, "-q"], capsys)
        assert code == 0, err
        parts = _restore_chunks(long, tmp_path, capsys, chunks=[(0, 59), (60, 119)])
        joined = tmp_path / "joined.mkv"
        code, _, err = run_cli(["join", *parts, "-o", joined, "--source", long], capsys)
        assert code == 0, err
        for (pa, fa), (pb, fb) in zip(decode_frames(whole), decode_frames(joined), strict=True):
            assert pa == pb
            np.testing.assert_array_equal(fa, fb)

    def test_variable_rate_counts_from_the_start(self, tmp_path):
        vfr = make_clip(tmp_path / "vfr.mkv", n=60, vfr=True, audio=False)
        with VideoReader(vfr, frames=(50, 55)) as reader:
            assert not reader._numbered_by_time
            items = [i for i in reader if isinstance(i, VideoFrameItem)]
        with VideoReader(vfr) as reader:
            every = [i for i in reader if isinstance(i, VideoFrameItem)]
        assert [i.pts for i in items] == [f.pts for f in every[50:56]]

    def test_last_past_the_end_stops_at_the_end(self, clip, tmp_path, capsys):
        out = tmp_path / "tail.mkv"
        code, _, err = run_cli(["restore", clip, "-o", out, "--frames", "50-1000", "-q"], capsys)
        assert code == 0, err
        assert len(decode_frames(out)) == 10

    @pytest.mark.parametrize(
        "args,message",
        [
            (["--frames", "70-80"], "the video has 60 frame(s)"),
            (["--frames", "9-3"], "LAST must not be before FIRST"),
            (["--frames", "5"], "is not FIRST-LAST"),
            (["--frames", "0-9", "--start", "1"], "cannot be combined"),
        ],
    )
    def test_bad_ranges_are_refused(self, clip, tmp_path, capsys, args, message):
        out = tmp_path / "x.mkv"
        code, _, err = run_cli(["restore", clip, "-o", out, *args], capsys)
        assert code != 0 and message in err and "Traceback" not in err
        assert not out.exists()


@pytest.fixture(scope="module")
def parts(clip, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("parts")
    made = {}
    for name, frames in (("a", "0-9"), ("b", "10-19"), ("c", "20-29"), ("late", "5-14")):
        made[name] = folder / f"{name}.mkv"
        _cli_ok(["restore", clip, "-o", made[name], "--frames", frames, "-q", "--no-temporal"])
    other = make_clip(folder / "other.mkv", n=30, w=64, h=48, audio=False)
    made["small"] = folder / "small.mkv"
    _cli_ok(["restore", other, "-o", made["small"], "--frames", "10-19", "-q", "--no-temporal"])
    return made


class TestJoinRefuses:
    @pytest.mark.parametrize(
        "names,message",
        [
            (["a", "c"], "a gap of 10 frame(s) after a.mkv"),
            (["a", "late"], "overlaps a.mkv by 5 frame(s)"),
            (["a", "small"], "width 64 differs from a.mkv's 96"),
        ],
    )
    def test_parts_that_do_not_fit(self, parts, tmp_path, capsys, names, message):
        out = tmp_path / "j.mkv"
        code, _, err = run_cli(["join", *[parts[n] for n in names], "-o", out], capsys)
        assert code != 0 and message in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert not out.exists() and not list(tmp_path.iterdir())  # no partial file left either

    def test_a_part_with_audio_is_refused(self, parts, clip, tmp_path, capsys):
        code, _, err = run_cli(["join", parts["a"], clip, "-o", tmp_path / "j.mkv"], capsys)
        assert code != 0 and "video alone" in err and "reel.mkv" in err

    def test_existing_output_needs_force(self, parts, tmp_path, capsys):
        out = tmp_path / "j.mkv"
        out.write_bytes(b"keep")
        code, _, err = run_cli(["join", parts["a"], parts["b"], "-o", out], capsys)
        assert code != 0 and out.read_bytes() == b"keep"
        code, _, err = run_cli(["join", parts["a"], parts["b"], "-o", out, "--force"], capsys)
        assert code == 0, err
        assert len(decode_frames(out)) == 20


class TestSequenceChunks:
    def test_dpx_chunks_equal_one_run(self, tmp_path, capsys):
        src = dpx_sequence(tmp_path / "scan", 60)
        whole = tmp_path / "whole"
        code, _, err = run_cli(["frames", src, "-o", whole, "-q"], capsys)
        assert code == 0, err
        chunked = tmp_path / "chunked"
        for a, b in CHUNKS:
            code, _, err = run_cli(["frames", src, "-o", chunked, "--frames", f"{a}-{b}", "-q"], capsys)
            assert code == 0, err
            if a == 0:  # the first chunk wrote its own frames and no others
                assert sorted(p.name for p in chunked.iterdir()) == [f"reel_{i:05d}.dpx" for i in range(a, b + 1)]
        names = sorted(p.name for p in whole.iterdir())
        assert names == sorted(p.name for p in chunked.iterdir()) and len(names) == 60
        for n in names:
            assert (whole / n).read_bytes() == (chunked / n).read_bytes(), n
        alone = tmp_path / "alone"
        code, _, err = run_cli(["frames", src, "-o", alone, "--no-temporal", "-q"], capsys)
        assert code == 0, err
        assert any((whole / n).read_bytes() != (alone / n).read_bytes() for n in names)  # neighbours mattered

    def test_range_past_the_files_is_refused(self, tmp_path, capsys):
        src = tmp_path / "scan"
        src.mkdir()
        for i in range(3):
            make_dpx(src / f"f_{i}.dpx", _damaged_pattern(i, 32, 24), bits=16)
        code, _, err = run_cli(["frames", src, "-o", tmp_path / "out", "--frames", "5-9"], capsys)
        assert code != 0 and "there are 3 file(s)" in err
        assert not (tmp_path / "out").exists()
