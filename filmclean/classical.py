"""Classical (non-learned) temporal references for sequence evaluation.

:func:`tmedian` is FFmpeg's ``tmedian`` filter (per-pixel median of each frame and its ``radius``
neighbours on either side) run through PyAV's filter graph (``buffer -> tmedian -> buffersink``).

Pixel format: frames are fed as ``gbrp16le`` (planar 16-bit RGB), a format ``tmedian`` supports
natively, so FFmpeg inserts no conversion and the median is taken on 16-bit samples (float input
rounded to the nearest 1/65535). Float formats (``gbrpf32le``) are not among tmedian's formats
(FFmpeg converts them to ``gbrp16le`` behind our back) and 8-bit ``gbrp`` would lose precision.
The median of an odd window is one of its samples, and rounding is monotonic, so each output
sample is mapped back to the float input sample of the window it came from (the current frame's
first): the result is the exact float median, or, where two window samples round to the same
16-bit code, a sample less than 1/65535 from it. A frame equal to its neighbours (or any frame
the median leaves alone) comes back bit-identical.

Delay and ends: FFmpeg's tmedian holds frames until it has a full window of ``2 * radius + 1`` and
emits nothing for the first and last ``radius`` frames (N inputs give N - 2 * radius outputs, the
k-th output being the median of inputs k .. k + 2 * radius). To return one frame per input, in
order, the sequence is padded by repeating its first and last frame ``radius`` times (the window
is clamped at the ends, so the very first and last frame, a majority in their own windows, pass
through unfiltered), and the graph is flushed with an end-of-stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from fractions import Fraction

import numpy as np

__all__ = ["TMEDIAN_PIX_FMT", "tmedian"]

#: pixel format fed to FFmpeg's tmedian (planar 16-bit RGB, supported natively by the filter)
TMEDIAN_PIX_FMT = "gbrp16le"
_SCALE = 65535.0


def tmedian(frames: Iterable[np.ndarray], radius: int = 1) -> Iterator[np.ndarray]:
    """FFmpeg's ``tmedian=radius=R`` over a sequence of ``(H, W, 3)`` float frames in ``[0, 1]``.

    Yields one float32 ``(H, W, 3)`` frame in ``[0, 1]`` per input frame, in order: output ``t`` is
    the per-pixel, per-channel median of inputs ``t - R .. t + R`` (indices clamped to the
    sequence), computed by FFmpeg on 16-bit samples and mapped back to the float inputs (see the
    module docstring). Frames are read lazily; at most ``2 * R + 2`` are held. ``radius``: 1..127
    (FFmpeg's limit); frames of another shape than the first raise ``ValueError``.
    """
    import av
    import av.filter

    r = int(radius)
    if r != radius or not 1 <= r <= 127:
        raise ValueError(f"tmedian radius must be a whole number in 1..127, got {radius}")
    span = 2 * r + 1
    prefer = [j for j in range(span) if j != r] + [r]  # assigned in this order: the current frame wins
    time_base = Fraction(1, 1000)
    graph = None
    shape: tuple[int, ...] | None = None
    window: deque[tuple[np.ndarray, np.ndarray]] = deque()  # (float, uint16) padded inputs not yet done with
    pts = 0
    owed = 0  # outputs still to come: one per real input frame

    def push(rgb: np.ndarray) -> None:
        nonlocal pts
        q = np.rint(rgb * np.float32(_SCALE)).astype(np.uint16)
        window.append((rgb, q))
        frame = av.VideoFrame.from_ndarray(q, format=TMEDIAN_PIX_FMT)
        frame.pts = pts
        frame.time_base = time_base
        graph.vpush(frame)
        pts += 1

    def drain(final: bool) -> Iterator[np.ndarray]:
        nonlocal owed
        while True:
            try:
                out = graph.vpull()
            except av.BlockingIOError:
                if final:
                    raise RuntimeError("tmedian stopped before returning every frame") from None
                return
            except av.EOFError:
                return
            if owed <= 0 or len(window) < span:  # cannot happen: the padding gives one output per input
                raise RuntimeError("tmedian returned more frames than it was given")
            owed -= 1
            if out.format.name != TMEDIAN_PIX_FMT:
                out = out.reformat(format=TMEDIAN_PIX_FMT)
            med = out.to_ndarray()
            res = med.astype(np.float32) / np.float32(_SCALE)
            for j in prefer:
                f, q = window[j]
                sel = q == med
                res[sel] = f[sel]
            window.popleft()
            yield res

    for item in frames:
        arr = np.asarray(item)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"expected (H, W, 3) frames, got shape {arr.shape}")
        first = graph is None
        if first:
            shape = arr.shape
            h, w = arr.shape[:2]
            graph = av.filter.Graph()
            src = graph.add_buffer(width=w, height=h, format=TMEDIAN_PIX_FMT, time_base=time_base)
            med = graph.add("tmedian", f"radius={r}")
            sink = graph.add("buffersink")
            src.link_to(med)
            med.link_to(sink)
            graph.configure()
        elif arr.shape != shape:
            raise ValueError(f"all frames must have one size: {shape} then {arr.shape}")
        rgb = np.ascontiguousarray(np.clip(arr.astype(np.float32, copy=False), 0.0, 1.0))
        if first:
            for _ in range(r):  # clamp the window at the start
                push(rgb)
        push(rgb)
        owed += 1
        yield from drain(False)
    if graph is None:
        return
    last = window[-1][0]
    for _ in range(r):  # clamp the window at the end
        push(last)
    graph.vpush(None)
    yield from drain(True)
    if owed:
        raise RuntimeError(f"tmedian returned {owed} frames fewer than it was given")
