"""Frames with their neighbours: the sequence side of temporal restoration.

:func:`windows` turns a stream of items (decoded frames, possibly interleaved with other items such
as audio packets) into frames that know their previous and next frame, holding back one frame at a
time: memory stays at three frames whatever the sequence's length. Context frames (read only to be
neighbours, e.g. just outside a ``--start/--end`` range) serve as neighbours but are not yielded.

:class:`TemporalRestorer` restores one :class:`Window` with a temporal network (neighbours aligned
by :class:`filmclean.temporal.SequenceAligner`) or, for single-frame networks or with
``temporal=False``, from the current frame alone. :func:`restore_sequence` is the plain-list
version used by evaluation and tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from .api import restore_image
from .engine import RestoredFrame, Restorer
from .spikes import SpikeOptions, consistent_pixels, detect_spikes, persistent_detections, spike_repair
from .temporal import TRUST, AlignOptions, SequenceAligner

T = TypeVar("T")

__all__ = ["TemporalRestorer", "Window", "restore_sequence", "windows"]


@dataclass
class Window(Generic[T]):
    """A frame item with its neighbours (``None`` at the ends of the sequence) and their positions
    in the stream (``index`` counts frame items, context frames included)."""

    current: T
    index: int
    prev: T | None = None
    next: T | None = None


def windows(
    items: Iterable[Any],
    is_frame: Callable[[Any], bool] = lambda item: True,
    is_output: Callable[[Any], bool] = lambda item: True,
) -> Iterator[Any]:
    """Yield every non-frame item as it comes and every output frame as a :class:`Window`.

    A frame is yielded once the next frame has been read (or the stream has ended), so frames come
    out one frame late, in order; non-frame items are never held back. Frames for which
    ``is_output`` is false are used as neighbours only.
    """
    prev: Any = None
    held: Any = None
    count = 0
    for item in items:
        if not is_frame(item):
            yield item
            continue
        if held is not None:
            win = Window(held, count - 1, prev, item)
            if is_output(held):
                yield win
            prev = held
        held = item
        count += 1
    if held is not None and is_output(held):
        yield Window(held, count - 1, prev, None)


class TemporalRestorer:
    """Restore frames of one sequence, in order, using their neighbours when the network can.

    ``restore(window, rgb=...)``: ``rgb`` extracts the ``(H, W, 3)`` frame from a window item
    (identity by default). With a single-frame network, or ``temporal=False``, the neighbours are
    ignored and this is :meth:`filmclean.engine.Restorer.restore` on the current frame. A frame
    with no usable neighbour (none given, scene cuts on both sides, or ``temporal=False``) goes to
    ``restorer.fallback`` (the single-frame model) when there is one; otherwise the temporal
    network sees a stack whose neighbours have trust 0.

    ``spikes``: with a single-frame network and ``temporal=True``, the neighbours are used without a
    temporal network (:meth:`restore_with_spikes`): one-frame damage is found by the motion-compensated
    spike test and repaired from the aligned neighbours, then the single-frame network repairs the
    rest, except what the neighbours show too (:func:`filmclean.spikes.persistent_detections`).
    ``None``: a single-frame network restores every frame alone.
    """

    def __init__(
        self,
        restorer: Restorer,
        temporal: bool = True,
        align: AlignOptions | None = None,
        spikes: SpikeOptions | None = None,
    ) -> None:
        self.restorer = restorer
        self.spikes = None if restorer.temporal else spikes
        self.use_neighbours = bool(temporal and (restorer.temporal or self.spikes is not None))
        self.aligner = SequenceAligner(align or AlignOptions()) if self.use_neighbours else None
        self.fallbacks = 0  # frames restored by the single-frame fallback for want of neighbours
        self.spike_pixels = 0  # pixels repaired from the neighbours by the spike test
        self.kept_pixels = 0  # single-frame repairs undone because the neighbours show the same

    @property
    def flow_seconds(self) -> float:
        return self.aligner.flow_seconds if self.aligner is not None else 0.0

    @property
    def cuts(self) -> int:
        return self.aligner.cuts if self.aligner is not None else 0

    def fill_stats(self, stats: Any) -> None:
        """Copy what this restorer counted into a run's statistics (:class:`filmclean.pipeline.RunStats`)."""
        stats.flow_seconds, stats.cuts, stats.alone = self.flow_seconds, self.cuts, self.fallbacks
        stats.spike_pixels, stats.kept_pixels = self.spike_pixels, self.kept_pixels

    def restore(
        self,
        window: Window,
        rgb: Callable[[Any], np.ndarray] = lambda item: item,
        in_place: bool = False,
        mask: bool = True,
        protect: np.ndarray | None = None,
        guide: np.ndarray | None = None,
    ) -> RestoredFrame:
        """Restore ``window``'s current frame. ``in_place``: the restored frame may overwrite the
        current frame's array (when nothing reads it afterwards, e.g. no neighbours are used);
        ``mask=False``: the damage mask is not kept (see :meth:`Restorer.restore`); ``protect``:
        ``(H, W)`` bool pixels that pass through bit-identical (a protection matte); ``guide``: a
        matte-guided restorer's ``(2, H, W)`` matte and detection weight
        (:meth:`filmclean.engine.Restorer.restore`); with weight 0 the spike test repairs only
        inside the matte too."""
        cur = rgb(window.current)
        out = cur if in_place and cur.dtype == np.float32 and cur.flags.writeable else None
        single = self.restorer.fallback if self.restorer.temporal and self.restorer.fallback is not None else None
        if self.aligner is None:
            return restore_image(self.restorer, cur, out=out, mask=mask, protect=protect, guide=guide)
        prev = None if window.prev is None else rgb(window.prev)
        nxt = None if window.next is None else rgb(window.next)
        stack = self.aligner.stack(cur, window.index, prev, window.index - 1, nxt, window.index + 1)
        if self.spikes is not None:
            if not stack[TRUST].any():
                self.fallbacks += 1
                return self.restorer.restore(cur, out=out, mask=mask, protect=protect, guide=guide)
            return self.restore_with_spikes(stack, out=out, mask=mask, protect=protect, guide=guide)
        if single is not None and not stack[TRUST].any():
            self.fallbacks += 1
            # no usable neighbour at all: the single-frame model
            return single.restore(cur, out=out, mask=mask, protect=protect, guide=guide)
        return self.restorer.restore(cur, stack, out=out, mask=mask, protect=protect, guide=guide)

    def restore_with_spikes(
        self,
        stack: np.ndarray,
        out: np.ndarray | None = None,
        mask: bool = True,
        protect: np.ndarray | None = None,
        guide: np.ndarray | None = None,
    ) -> RestoredFrame:
        """Restore the current frame of ``stack`` (:func:`filmclean.temporal.build_stack`) with a
        single-frame network and the spike test (see the class docstring). The mask, when kept, is
        1 on spike repairs and the network's probability where its repair stands."""
        options = self.spikes or SpikeOptions()
        found = detect_spikes(stack, options)
        if protect is not None:
            found.mask &= ~protect
            found.core &= ~protect
        if guide is not None and not guide[1].any():  # exactly the matte: no spike repair outside it
            inside = guide[0] > 0.5
            found.mask &= inside
            found.core &= inside
        repaired = spike_repair(stack, found)
        res = self.restorer.restore(repaired, out=out, mask=True, protect=protect, guide=guide)
        differs = res.image != repaired
        changed = differs[..., 0] | differs[..., 1] | differs[..., 2]
        undo = persistent_detections(changed, consistent_pixels(stack, found, options))
        image = res.image
        if undo.any():
            image[undo] = repaired[undo]
        self.spike_pixels += int(found.mask.sum())
        self.kept_pixels += int(undo.sum())
        full = None
        if mask and res.mask is not None:
            full = res.mask
            full[undo] = 0.0
            full[found.mask] = 1.0
        return RestoredFrame(image, full)


def restore_sequence(
    frames: Iterable[np.ndarray],
    restorer: Restorer,
    temporal: bool = True,
    align: AlignOptions | None = None,
    spikes: SpikeOptions | None = None,
) -> Iterator[RestoredFrame]:
    """Restore ``(H, W, 3)`` frames of one sequence in order (see :class:`TemporalRestorer`)."""
    tr = TemporalRestorer(restorer, temporal=temporal, align=align, spikes=spikes)
    for win in windows(frames):
        yield tr.restore(win)
