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
    r = int(radius)
    if r != radius or not 1 <= r <= 127:
        raise ValueError(f"tmedian radius must be a whole number in 1..127, got {radius}")
    median: _MedianGraph | None = None
    for item in frames:
        arr = np.asarray(item)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"expected (H, W, 3) frames, got shape {arr.shape}")
        first = median is None
        if median is None:
            median = _MedianGraph(arr.shape, r)
        elif arr.shape != median.shape:
            raise ValueError(f"all frames must have one size: {median.shape} then {arr.shape}")
        rgb = np.ascontiguousarray(np.clip(arr.astype(np.float32, copy=False), 0.0, 1.0))
        if first:
            for _ in range(r):  # clamp the window at the start
                median.push(rgb)
        median.push(rgb)
        median.owed += 1
        yield from median.drain(False)
    if median is None:
        return
    yield from median.finish()


class _MedianGraph:
    """FFmpeg's ``buffer -> tmedian -> buffersink`` graph for frames of one ``shape``, with the padded
    inputs whose window is not done yet (``(float, uint16)`` pairs) and the count of outputs owed."""

    def __init__(self, shape: tuple[int, ...], radius: int) -> None:
        import av.filter

        self.shape = shape
        self.radius = radius
        self.span = 2 * radius + 1
        self.prefer = [j for j in range(self.span) if j != radius] + [radius]  # the current frame wins
        self.time_base = Fraction(1, 1000)
        self.window: deque[tuple[np.ndarray, np.ndarray]] = deque()  # (float, uint16) padded inputs
        self.pts = 0
        self.owed = 0  # outputs still to come: one per real input frame
        h, w = shape[:2]
        self.graph = av.filter.Graph()
        # PyAV takes a pixel format name for ``format``; its stub only allows a VideoFormat
        src = self.graph.add_buffer(
            width=w,
            height=h,
            format=TMEDIAN_PIX_FMT,  # type: ignore[arg-type]
            time_base=self.time_base,
        )
        med = self.graph.add("tmedian", f"radius={radius}")
        sink = self.graph.add("buffersink")
        src.link_to(med)
        med.link_to(sink)
        self.graph.configure()

    def push(self, rgb: np.ndarray) -> None:
        """Feed one (padding or real) float frame to the filter."""
        import av

        q = np.rint(rgb * np.float32(_SCALE)).astype(np.uint16)
        self.window.append((rgb, q))
        frame = av.VideoFrame.from_ndarray(q, format=TMEDIAN_PIX_FMT)
        frame.pts = self.pts
        frame.time_base = self.time_base
        self.graph.vpush(frame)
        self.pts += 1

    def drain(self, final: bool) -> Iterator[np.ndarray]:
        """The outputs the filter has ready, mapped back to float samples; with ``final`` (after
        the end of stream) the filter must not ask for more input."""
        import av

        while True:
            try:
                out = self.graph.vpull()
            except av.BlockingIOError:
                if final:
                    raise RuntimeError("tmedian stopped before returning every frame") from None
                return
            except av.EOFError:
                return
            if self.owed <= 0 or len(self.window) < self.span:  # cannot happen: the padding gives one per input
                raise RuntimeError("tmedian returned more frames than it was given")
            self.owed -= 1
            if out.format.name != TMEDIAN_PIX_FMT:
                out = out.reformat(format=TMEDIAN_PIX_FMT)
            res = self._to_float(out.to_ndarray())
            self.window.popleft()
            yield res

    def _to_float(self, med: np.ndarray) -> np.ndarray:
        """The 16-bit median ``med`` of the window's first ``span`` frames with each sample replaced
        by the float input sample it came from (the current frame's first)."""
        res = med.astype(np.float32) / np.float32(_SCALE)
        for j in self.prefer:
            f, q = self.window[j]
            sel = q == med
            res[sel] = f[sel]
        return res

    def finish(self) -> Iterator[np.ndarray]:
        """Pad the end (the window is clamped there), end the stream and yield the last outputs."""
        last = self.window[-1][0]
        for _ in range(self.radius):  # clamp the window at the end
            self.push(last)
        self.graph.vpush(None)
        yield from self.drain(True)
        if self.owed:
            raise RuntimeError(f"tmedian returned {self.owed} frames fewer than it was given")
