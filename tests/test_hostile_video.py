"""Hostile-input corpus for video I/O: truncated Matroska, odd picture sizes, reproducible H.264 and
alpha that an output format cannot hold. Every refusal is one line naming the file (exit 2 from the
CLI), without a traceback and without anything under the final output name."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import media
import numpy as np
import pytest
import torch
from helpers import run_cli

from filmclean.errors import InputError, OutputError
from filmclean.io.video import VideoFrameItem, VideoReader, probe_video
from filmclean.io.video_write import VideoWriter
from filmclean.modelfile import save_model
from filmclean.nets import build_network


@pytest.fixture(scope="module")
def identity_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = {"size_multiple": 8}
    path = tmp_path_factory.mktemp("models") / "identity.safetensors"
    return save_model(build_network("identity", cfg), "identity", cfg, path)


def restore(src: Path, out: Path, model: Path, capsys, *extra: str) -> tuple[int, str]:
    code, _, err = run_cli(["restore", src, "-o", out, "--model", model, "-q", *extra], capsys)
    return code, err


def assert_refused(code: int, err: str, out: Path, *words: str) -> None:
    """Exit 2, one line holding ``words`` (a file name among them), no traceback, nothing written."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.stem}.partial")]


def copy_through(src: Path, dst: Path, **writer_options) -> None:
    with VideoReader(src) as reader, VideoWriter(dst, reader.info, reader.container, **writer_options) as writer:
        for item in reader:
            (writer.write_frame if isinstance(item, VideoFrameItem) else writer.write_packet)(item)


def frame_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def rgb_frames(path: Path) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return [item.rgb for item in reader if isinstance(item, VideoFrameItem)]


def read_all(path: Path) -> int:
    with VideoReader(path) as reader:
        return sum(isinstance(item, VideoFrameItem) for item in reader)


# --------------------------------------------------------------------------- 1. truncated Matroska


@pytest.mark.parametrize("audio", [False, True])
def test_truncated_matroska_is_refused(tmp_path, identity_model, capsys, audio):
    full = media.make_clip(tmp_path / "full.mkv", n=30, audio=audio)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.4)])
    out = tmp_path / "out.mkv"
    code, err = restore(cut, out, identity_model, capsys)
    assert_refused(code, err, out, str(cut), "truncated", "declares")
    with pytest.raises(InputError) as e:
        read_all(cut)
    assert "truncated" in str(e.value) and "\n" not in str(e.value)
    with VideoReader(cut, end=0.25) as reader:  # the readable part stays usable with a range
        assert sum(isinstance(i, VideoFrameItem) for i in reader) == 6
    code, err = restore(full, tmp_path / "ok.mkv", identity_model, capsys)  # the complete file is fine
    assert code == 0, err
    assert frame_count(tmp_path / "ok.mkv") == 30


def _write_mkv(target, n: int = 24, start: int = 0, audio_seconds: float | None = None) -> None:
    """FFV1 Matroska with video pts ``start..start+n-1`` (1/24 s) and optional pcm audio."""
    with av.open(target, "w", format="matroska") as out:
        video = out.add_stream("ffv1", rate=24, time_base=Fraction(1, 24))
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("pcm_s16le", rate=media.AUDIO_RATE) if audio_seconds else None
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(media.pattern(i, bits=8), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = start + i, Fraction(1, 24)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            for aframe in media._sine_frames(audio_seconds):
                aframe.pts += start * media.AUDIO_RATE // 24
                out.mux(audio.encode(aframe))
            out.mux(audio.encode(None))


class _Pipe(io.RawIOBase):
    """A write-only, unseekable sink: the Matroska muxer cannot go back to fill in the duration."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.data += b
        return len(b)


def test_complete_matroska_variants_are_not_flagged(tmp_path):
    _write_mkv(str(tmp_path / "long_audio.mkv"), audio_seconds=3.0)  # audio outlasts the video by 2 s
    assert probe_video(tmp_path / "long_audio.mkv").duration == pytest.approx(3.0, abs=0.01)
    assert read_all(tmp_path / "long_audio.mkv") == 24
    _write_mkv(str(tmp_path / "short_audio.mkv"), audio_seconds=0.3)
    assert read_all(tmp_path / "short_audio.mkv") == 24
    _write_mkv(str(tmp_path / "late.mkv"), start=240, audio_seconds=1.0)  # first frame at 10 s
    assert read_all(tmp_path / "late.mkv") == 24
    vfr = media.make_clip(tmp_path / "vfr.mkv", n=30, vfr=True)  # irregular steps up to 125 ms
    assert read_all(vfr) == 30
    # written as a stream: no duration in the header, FFmpeg estimates one from the bit rate
    pipe = _Pipe()
    _write_mkv(pipe, audio_seconds=1.0)
    (tmp_path / "stream.mkv").write_bytes(bytes(pipe.data))
    assert read_all(tmp_path / "stream.mkv") == 24


@pytest.mark.parametrize(("codec", "ext"), [("ffv1", ".mkv"), ("libx264", ".mp4")])
def test_video_after_audio_keeps_its_last_frames(tmp_path, codec, ext):
    # PyAV's end-of-stream packets all carry stream_index 0: when audio is stream #0 the video
    # decoder was never drained and the frames it still held were silently lost
    path = tmp_path / f"audio_first{ext}"
    with av.open(str(path), "w") as out:
        audio = out.add_stream("pcm_s16le", rate=media.AUDIO_RATE)
        video = out.add_stream(codec, rate=24, time_base=Fraction(1, 24))
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        for i in range(24):
            frame = av.VideoFrame.from_ndarray(media.pattern(i, bits=8), format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for aframe in media._sine_frames(1.0):
            out.mux(audio.encode(aframe))
        out.mux(audio.encode(None))
    assert probe_video(path).video_stream == 1
    assert read_all(path) == 24


# --------------------------------------------------------------------------- 2. odd picture sizes


@pytest.mark.parametrize(
    ("w", "h", "pix_fmt"),
    [(641, 479, "yuv420p"), (640, 479, "yuv420p"), (1919, 1079, "yuv420p"), (639, 479, "yuv422p")],
)
def test_ffv1_takes_odd_sizes(tmp_path, w, h, pix_fmt):
    src = media.make_clip(tmp_path / "in.mkv", n=2, w=w, h=h, pix_fmt=pix_fmt, audio=False)
    copy_through(src, tmp_path / "out.mkv")
    info = probe_video(tmp_path / "out.mkv")
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("ffv1", pix_fmt, w, h)
    # compared as the reader converts (FFmpeg's default YUV -> RGB path garbles an odd last column)
    a, b = np.array(rgb_frames(src)), np.array(rgb_frames(tmp_path / "out.mkv"))
    assert a.shape == b.shape == (2, h, w, 3)
    assert np.abs(a - b).max() < 0.02  # lossless up to the YUV -> RGB -> YUV rounding


@pytest.mark.parametrize(("w", "h", "pix_fmt"), [(641, 479, "yuv420p"), (639, 479, "yuv422p")])
def test_cli_restores_odd_sizes_to_mkv(tmp_path, identity_model, capsys, w, h, pix_fmt):
    src = media.make_clip(tmp_path / "in.mkv", n=3, w=w, h=h, pix_fmt=pix_fmt, audio=True)
    code, err = restore(src, tmp_path / "out.mkv", identity_model, capsys)
    assert code == 0, err
    info = probe_video(tmp_path / "out.mkv")
    assert (info.width, info.height, info.pix_fmt) == (w, h, pix_fmt) and frame_count(tmp_path / "out.mkv") == 3


def test_h264_odd_sizes_pick_a_fitting_chroma_format_or_refuse(tmp_path, identity_model, capsys):
    for (w, h), expected in {(641, 479): "yuv444p", (640, 479): "yuv422p", (640, 480): "yuv420p"}.items():
        src = media.make_clip(tmp_path / f"in{w}x{h}.mkv", n=2, w=w, h=h, audio=False)
        out = tmp_path / f"out{w}x{h}.mp4"
        code, err = restore(src, out, identity_model, capsys)
        assert code == 0, err
        info = probe_video(out)
        assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", expected, w, h)
    src = tmp_path / "in641x479.mkv"
    out = tmp_path / "forced.mp4"
    code, err = restore(src, out, identity_model, capsys, "--pix-fmt", "yuv420p")
    assert_refused(code, err, out, str(out), "641x479", "yuv420p", "even width and height")
    with pytest.raises(OutputError) as e:
        VideoWriter(out, probe_video(src), codec="libx265", pix_fmt="yuv422p")
    assert "even width" in str(e.value) and str(out) in str(e.value)
    assert not out.exists()


def test_encoder_refusing_a_size_is_one_line(tmp_path):
    src = media.make_clip(tmp_path / "in.mkv", n=1, w=64, h=48, audio=False)
    out = tmp_path / "out.mkv"
    with pytest.raises(OutputError) as e:  # FFV1 with a slice count no grid can give
        VideoWriter(out, probe_video(src), codec_options={"slices": "7"})
    message = str(e.value)
    assert "\n" not in message and str(out) in message and "64x48" in message and "ffv1" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]


# --------------------------------------------------------------------------- 3. reproducible H.264


def test_mp4_output_is_reproducible(tmp_path):
    # 320 px = 20 macroblocks, not a multiple of 8: where x264's AVX-512 mbtree code gave a
    # different file on nearly every run
    src = media.make_clip(tmp_path / "in.mkv", n=30, w=320, h=240, audio=True)
    outputs = []
    for k in range(3):
        copy_through(src, tmp_path / f"out{k}.mp4")
        outputs.append((tmp_path / f"out{k}.mp4").read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]


def test_cli_mp4_output_is_reproducible(tmp_path, identity_model, capsys):
    src = media.make_clip(tmp_path / "in.mkv", n=24, w=176, h=144, audio=True)
    for name in ("a.mp4", "b.mp4"):
        code, err = restore(src, tmp_path / name, identity_model, capsys)
        assert code == 0, err
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


# --------------------------------------------------------------------------- 4. alpha


def test_alpha_to_mp4_is_refused_unless_a_pix_fmt_is_chosen(tmp_path, identity_model, capsys):
    src = media.make_clip(tmp_path / "in.mkv", n=2, pix_fmt="rgba64le", audio=False, colour=None)
    out = tmp_path / "out.mp4"
    code, err = restore(src, out, identity_model, capsys)
    assert_refused(code, err, out, str(out), "alpha", ".mkv", ".mov")
    code, err = restore(src, out, identity_model, capsys, "--pix-fmt", "yuv420p")  # dropping it on purpose
    assert code == 0, err
    assert not probe_video(out).has_alpha
    code, err = restore(src, tmp_path / "out.mov", identity_model, capsys)
    assert code == 0, err
    assert probe_video(tmp_path / "out.mov").has_alpha


@pytest.mark.parametrize("pix_fmt", ["yuva420p", "ya8"])
def test_prores_keeps_alpha_of_subsampled_and_grey_sources(tmp_path, pix_fmt):
    src = media.make_clip(tmp_path / "in.mkv", n=2, pix_fmt=pix_fmt, audio=False, colour=None)
    assert probe_video(src).has_alpha
    copy_through(src, tmp_path / "out.mov")
    info = probe_video(tmp_path / "out.mov")
    assert info.has_alpha and info.codec == "prores"
    a = media.decode_frames(src, "rgba64le")
    b = media.decode_frames(tmp_path / "out.mov", "rgba64le")
    alpha_error = max(np.abs(x[..., 3].astype(int) - y[..., 3].astype(int)).max() for (_, x), (_, y) in zip(a, b))
    assert alpha_error < 65535 * 0.01
