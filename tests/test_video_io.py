"""Video I/O: probing, identity passes through VideoReader -> VideoWriter keeping frame count,
rate, time base/pts (VFR too), size, bit depth, rotation, colour tags, timecode and bit-exact
audio; time ranges; exact FFV1 RGB/grey round trips; alpha; masks; atomic output; one-line errors."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import media
import numpy as np
import pytest

from filmclean.errors import InputError, OutputError
from filmclean.io.pixfmt import closest_pix_fmt
from filmclean.io.video import PacketItem, VideoFrameItem, VideoReader, probe_video
from filmclean.io.video_write import MaskWriter, VideoWriter

TC = "01:00:00:00"


def copy_through(src: Path, dst: Path, **writer_options) -> list[VideoFrameItem]:
    """Identity pass: every frame and packet from ``src`` into ``dst``; returns the frame items."""
    frames = []
    with VideoReader(src) as reader, VideoWriter(dst, reader.info, reader.container, **writer_options) as writer:
        for item in reader:
            if isinstance(item, VideoFrameItem):
                frames.append(item)
                writer.write_frame(item)
            else:
                writer.write_packet(item)
    return frames


def frame_times(path: Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return [f.pts * stream.time_base for f in c.decode(stream)]


def audio_bytes(path: Path) -> bytes:
    return b"".join(payload for _, payload in media.packets_of(path))


def assert_one_line_error(excinfo: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message and str(path) in message, message
    for word in words:
        assert word.lower() in message.lower(), message


def test_probe_reports_stream_properties(tmp_path):
    src = media.make_clip(tmp_path / "in.mov", n=5, pix_fmt="yuv422p10le", rotation=90, timecode=TC)
    info = probe_video(src)
    assert (info.width, info.height, info.pix_fmt, info.bits, info.codec) == (64, 48, "yuv422p10le", 10, "prores")
    assert info.fps == 24 and info.n_frames == 5 and info.time_base == Fraction(1, 12288)
    assert info.rotation == 90 and len(info.display_matrix) == 9
    assert (info.color_range, info.color_primaries, info.color_trc, info.colorspace) == (1, 1, 1, 1)
    assert info.timecode == TC and info.container.startswith("mov")
    assert abs(info.duration - 5 / 24) < 1e-3 and not info.has_alpha and not info.is_rgb
    kinds = {(s.kind, s.codec, s.copied) for s in info.other_streams}
    assert kinds == {("audio", "pcm_s16le", True), ("data", None, False)}  # tmcd track is recreated, not copied


@pytest.mark.parametrize(
    ("src_name", "pix_fmt", "dst_name", "out_fmt"),
    [
        ("in.mkv", "yuv422p10le", "out.mkv", "yuv422p10le"),
        ("in.mov", "yuv422p10le", "out.mov", "yuv422p10le"),
        ("in.mkv", "yuv420p", "out.mp4", "yuv420p"),
        ("in.mov", "yuv422p10le", "out.mkv", "yuv422p10le"),
    ],
)
def test_identity_pass_keeps_stream_properties_and_audio(tmp_path, src_name, pix_fmt, dst_name, out_fmt):
    src = media.make_clip(tmp_path / src_name, n=5, pix_fmt=pix_fmt, rotation=90, timecode=TC)
    dst = tmp_path / dst_name
    items = copy_through(src, dst)
    before, after = probe_video(src), probe_video(dst)
    assert len(items) == 5 and [i.index for i in items] == list(range(5))
    assert items[0].rgb.dtype == np.float32 and items[0].rgb.shape == (48, 64, 3) and items[0].rgb.flags.c_contiguous
    assert (after.width, after.height, after.fps, after.bits) == (64, 48, 24, before.bits)
    assert after.pix_fmt == out_fmt
    grid = [Fraction(i, 24) for i in range(5)]  # exact, also from a millisecond-rounded Matroska input
    if dst.suffix == ".mkv":  # Matroska stores milliseconds
        grid = [Fraction(round(t * 1000), 1000) for t in grid]
    assert frame_times(dst) == grid
    if src.suffix == dst.suffix:
        assert after.time_base == before.time_base
    assert after.rotation == 90 and after.display_matrix == before.display_matrix
    tags = ("color_range", "color_primaries", "color_trc", "colorspace")
    assert [getattr(after, t) for t in tags] == [getattr(before, t) for t in tags] == [1, 1, 1, 1]
    assert after.timecode == TC
    assert audio_bytes(dst) == audio_bytes(src) and len(audio_bytes(src)) == 48000 * 5 // 24 * 4
    if dst.suffix == ".mkv" and src.suffix == ".mkv":  # same container: the very same packets
        assert media.packets_of(dst) == media.packets_of(src)
    original = np.array([f for _, f in media.decode_frames(src)], np.float64) / 65535
    restored = np.array([f for _, f in media.decode_frames(dst)], np.float64) / 65535
    error = np.abs(original - restored)
    assert abs((original - restored).mean()) < 0.002  # no colour or level shift
    if after.codec == "ffv1":  # lossless: only the YUV -> RGB -> YUV rounding differs
        assert error.max() < 0.015 and error.mean() < 0.001
    else:  # ProRes / H.264 generation loss on a noisy 64x48 picture
        assert error.mean() < 0.03


@pytest.mark.parametrize("pix_fmt", ["rgb48le", "gbrp10le", "gray16le", "gray"])
def test_ffv1_rgb_and_grey_round_trip_exactly(tmp_path, pix_fmt):
    src = media.make_clip(tmp_path / "in.mkv", n=3, pix_fmt=pix_fmt, audio=False, colour=None)
    items = copy_through(src, tmp_path / "out.mkv")
    if pix_fmt.startswith("gray"):
        assert all(np.array_equal(i.rgb[:, :, 0], i.rgb[:, :, 2]) for i in items)
    native = "gbrp16le" if pix_fmt == "rgb48le" else pix_fmt
    for (_, a), (_, b) in zip(media.decode_frames(src, native), media.decode_frames(tmp_path / "out.mkv", native)):
        assert np.array_equal(a, b)
    assert probe_video(tmp_path / "out.mkv").bits == probe_video(src).bits


def test_alpha_is_kept(tmp_path):
    src = media.make_clip(tmp_path / "in.mkv", n=2, pix_fmt="rgba64le", audio=False)
    items = copy_through(src, tmp_path / "out.mkv")
    assert items[0].alpha is not None and items[0].alpha.shape == (48, 64)
    assert probe_video(tmp_path / "out.mkv").has_alpha
    restored = media.decode_frames(tmp_path / "out.mkv", "rgba64le")
    for (_, a), (_, b) in zip(media.decode_frames(src, "rgba64le"), restored):
        assert np.array_equal(a, b)


def test_vfr_pts_are_written_through(tmp_path):
    src = media.make_clip(tmp_path / "in.mkv", n=8, vfr=True)
    copy_through(src, tmp_path / "out.mkv")
    copy_through(src, tmp_path / "out.mov")
    expected = [Fraction(p, 1000) for p in media.vfr_pts(8)]
    assert frame_times(src) == expected
    assert frame_times(tmp_path / "out.mkv") == expected
    # QuickTime: each time within half an input tick (a frame 1/3 ms off the 1/24 s grid may sit on it)
    assert all(abs(a - b) < Fraction(1, 2000) for a, b in zip(frame_times(tmp_path / "out.mov"), expected))
    assert len(frame_times(tmp_path / "out.mov")) == 8
    assert audio_bytes(tmp_path / "out.mov") == audio_bytes(src)


def test_template_given_as_path_copies_audio(tmp_path):
    src = media.make_clip(tmp_path / "in.mkv", n=3, pix_fmt="yuv420p")
    with VideoReader(src) as reader, VideoWriter(tmp_path / "out.mov", reader.info, src) as writer:
        for item in reader:
            (writer.write_frame if isinstance(item, VideoFrameItem) else writer.write_packet)(item)
    assert audio_bytes(tmp_path / "out.mov") == audio_bytes(src)
    assert probe_video(tmp_path / "out.mov").n_frames == 3


def test_time_range_selects_frames_and_audio(tmp_path):
    src = media.make_clip(tmp_path / "in.mov", n=24, pix_fmt="yuv422p10le")
    all_items = [i for i in VideoReader(src) if isinstance(i, VideoFrameItem)]
    with VideoReader(src, start=0.25, end=0.5) as reader:
        items = list(reader)
    frames = [i for i in items if isinstance(i, VideoFrameItem)]
    packets = [i for i in items if isinstance(i, PacketItem)]
    assert [f.index for f in frames] == list(range(6))
    assert [f.pts * f.time_base for f in frames] == [Fraction(k, 24) for k in range(6)]  # start becomes 0
    assert np.array_equal(frames[0].rgb, all_items[6].rgb) and np.array_equal(frames[-1].rgb, all_items[11].rgb)
    times = [p.packet.pts * p.packet.time_base for p in packets]
    assert packets and min(times) >= 0 and max(times) < Fraction(1, 4)
    with VideoReader(src, end=0.25) as reader:
        assert len([i for i in reader if isinstance(i, VideoFrameItem)]) == 6
    out = tmp_path / "cut.mkv"
    with VideoReader(src, start=0.25, end=0.5) as reader, VideoWriter(out, reader.info, reader.container) as writer:
        for item in reader:
            (writer.write_frame if isinstance(item, VideoFrameItem) else writer.write_packet)(item)
    assert frame_times(out) == [Fraction(round(k * 1000 / 24), 1000) for k in range(6)]
    with pytest.raises(InputError) as e:
        list(VideoReader(src, start=5.0))
    assert_one_line_error(e, src, "no video frames")
    with pytest.raises(InputError):
        VideoReader(src, start=0.5, end=0.25)


def test_mask_writer(tmp_path):
    src = media.make_clip(tmp_path / "in.mkv", n=3, pix_fmt="yuv422p10le", audio=False, rotation=180)
    masks = [np.random.default_rng(i).integers(0, 65536, (48, 64)).astype(np.float32) / 65535 for i in range(3)]
    with VideoReader(src) as reader, MaskWriter(tmp_path / "mask.mkv", reader.info) as writer:
        for item, mask in zip(reader, masks):
            writer.write(item, mask)
    info = probe_video(tmp_path / "mask.mkv")
    assert (info.pix_fmt, info.codec, info.other_streams) == ("gray16le", "ffv1", ())
    assert info.display_matrix == probe_video(src).display_matrix and abs(info.rotation) == 180
    decoded = media.decode_frames(tmp_path / "mask.mkv", "gray16le")
    assert all(np.array_equal(d, np.round(m * 65535)) for (_, d), m in zip(decoded, masks))
    assert frame_times(tmp_path / "mask.mkv") == frame_times(src)


def test_writer_options_and_overrides(tmp_path):
    src = media.make_clip(tmp_path / "in.mkv", n=2, pix_fmt="yuv422p10le", audio=False)
    info = probe_video(src)
    copy_through(src, tmp_path / "a.mp4", crf=20, preset="ultrafast", pix_fmt="yuv444p")
    assert probe_video(tmp_path / "a.mp4").pix_fmt == "yuv444p"
    copy_through(src, tmp_path / "b.mkv", codec="prores_ks")
    assert probe_video(tmp_path / "b.mkv").codec == "prores"
    copy_through(src, tmp_path / "c.avi")
    assert (probe_video(tmp_path / "c.avi").codec, probe_video(tmp_path / "c.avi").pix_fmt) == ("ffv1", "yuv422p10le")
    bad = [
        (dict(crf=18), "crf"),
        (dict(pix_fmt="nv12"), "cannot write pixel format"),
        (dict(codec="no-such-codec"), "unknown video encoder"),
    ]
    for options, words in bad:
        with pytest.raises(OutputError) as e:
            VideoWriter(tmp_path / "c.mkv", info, **options)
        assert_one_line_error(e, tmp_path / "c.mkv", words)
    with pytest.raises(OutputError) as e:
        VideoWriter(tmp_path / "c.webm", info)
    assert_one_line_error(e, tmp_path / "c.webm", "unsupported video extension")
    assert closest_pix_fmt("yuvj420p", ["yuv420p", "yuv444p", "gray"]) == "yuv420p"
    assert closest_pix_fmt("rgb24", ["yuv444p", "bgr0", "gbrp10le"]) == "bgr0"
    assert closest_pix_fmt("p010le", ["yuv420p", "yuv420p10le", "yuv444p16le"]) == "yuv420p10le"
    assert closest_pix_fmt("rgb48le", ["gbrp16le", "gbrp10le", "yuv444p16le"]) == "gbrp16le"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mkv", "c.avi", "in.mkv"]


def test_abort_and_exceptions_leave_no_output(tmp_path):
    src = media.make_clip(tmp_path / "in.mkv", n=3, pix_fmt="yuv420p")
    dst = tmp_path / "out.mkv"
    with VideoReader(src) as reader:
        writer = VideoWriter(dst, reader.info, reader.container)
        for item in reader:
            if isinstance(item, VideoFrameItem):
                writer.write_frame(item)
                break
        writer.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with VideoReader(src) as reader, VideoWriter(dst, reader.info, reader.container) as writer:
                writer.write_frame(next(i for i in reader if isinstance(i, VideoFrameItem)))
                partial = [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial-")]
                assert len(partial) == 1 and partial[0].suffix == ".mkv"
                raise exc
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]


def test_output_path_errors(tmp_path):
    src = media.make_clip(tmp_path / "in.mkv", n=2, pix_fmt="yuv420p", audio=False)
    info = probe_video(src)
    with pytest.raises(OutputError) as e:
        VideoWriter(tmp_path / "." / "in.mkv", info, force=True)
    assert_one_line_error(e, tmp_path / "." / "in.mkv", "same file")
    (tmp_path / "exists.mkv").write_bytes(b"old")
    with pytest.raises(OutputError) as e:
        VideoWriter(tmp_path / "exists.mkv", info)
    assert_one_line_error(e, tmp_path / "exists.mkv", "exists", "--force")
    with pytest.raises(OutputError) as e:
        VideoWriter(tmp_path / "missing" / "out.mkv", info)
    assert_one_line_error(e, tmp_path / "missing" / "out.mkv", f"{tmp_path / 'missing'}", "does not exist")
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OutputError) as e:
            VideoWriter(locked / "out.mkv", info)
        assert_one_line_error(e, locked / "out.mkv", "not writable")
    assert (tmp_path / "exists.mkv").read_bytes() == b"old"


def test_bad_inputs_raise_one_line_input_error(tmp_path):
    cases: dict[str, str] = {}
    (tmp_path / "empty.mov").write_bytes(b"")
    cases["empty.mov"] = "empty"
    (tmp_path / "text.mov").write_text("this is not a movie\n" * 50)
    cases["text.mov"] = "not a readable video"
    media.make_audio_only(tmp_path / "audio.mov")
    cases["audio.mov"] = "no video stream"
    mov = media.make_clip(tmp_path / "full.mov", n=24, pix_fmt="yuv422p10le").read_bytes()
    (tmp_path / "cut.mov").write_bytes(mov[: len(mov) // 2])  # index (moov) is at the end: unreadable
    cases["cut.mov"] = "not a readable video"
    with av.open(str(tmp_path / "garbage.mkv"), "w") as out:
        stream = out.add_stream("mjpeg", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        for i in range(3):
            packet = av.Packet(bytes(np.random.default_rng(i).integers(0, 256, 400, dtype=np.uint8)))
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, i, i, Fraction(1, 24)
            out.mux(packet)
    cases["garbage.mkv"] = "cannot decode"
    cases["missing.mkv"] = "no such file"
    media.make_clip(tmp_path / "tiny.mkv", n=1, w=4, h=4, pix_fmt="yuv444p", audio=False)
    cases["tiny.mkv"] = "4x4"
    for name, words in cases.items():
        with pytest.raises(InputError) as e:
            probe_video(tmp_path / name)
        assert_one_line_error(e, tmp_path / name, words)
        assert e.value.__cause__ is None and (e.value.__context__ is None or e.value.__suppress_context__)


@pytest.mark.parametrize("name", ["full.avi", "full.mov"])
def test_truncated_files_with_an_index_raise(tmp_path, name):
    # AVI declares its frame count and a front-indexed QuickTime file lists every frame: a file cut
    # mid-stream is reported (decode error on the torn frame, or too few frames), never shortened
    data = media.make_clip(tmp_path / name, n=24, pix_fmt="yuv422p10le", faststart=name.endswith(".mov")).read_bytes()
    for fraction in (0.5, 0.9):
        cut = tmp_path / f"cut{int(fraction * 10)}{Path(name).suffix}"
        cut.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(InputError) as e:
            list(VideoReader(cut))
        assert_one_line_error(e, cut, "truncated")


def test_truncated_matroska_is_reported(tmp_path):
    # Matroska declares no frame count, but its header declares the duration: a cut file that ends
    # well before it is reported, after the readable frames (this test used to assert the defect)
    mkv = media.make_clip(tmp_path / "full.mkv", n=24, pix_fmt="yuv420p").read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(mkv[: len(mkv) // 2])
    frames = []
    with pytest.raises(InputError, match="truncated"):
        for item in VideoReader(cut):
            if isinstance(item, VideoFrameItem):
                frames.append(item)
    assert 0 < len(frames) < 24
