"""Seamless tiled inference: split a padded frame into equal tiles, blend them back with feathering.

The frame is first padded by a margin (reflection) and up to the network's size multiple; the
same padding is used for whole-frame inference, so tiled and untiled runs see the same borders.
Tiles all have one size (so they batch), start on multiples of the network's size multiple, and
overlap by at least the requested overlap. Each tile's blend weight is zero within ``guard``
pixels of an edge it shares with a neighbour (where zero padding inside the network makes its
output differ from the whole-frame result), then rises with a smoothstep to one. The 1-D weights
of neighbouring tiles sum to one, so with ``overlap >= 2 * receptive_radius`` the blended result
equals whole-frame inference up to float rounding.

Arrays here are ``(C, H, W)`` float32 numpy (channel-first, like the network input).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)``, spread evenly.

    ``length`` and ``tile`` must be multiples of ``multiple``; starts are multiples of it too.
    Consecutive tiles overlap by at least ``min(overlap, tile // 2)`` pixels, and no pixel is in
    more than two tiles along an axis; the first tile starts at 0, the last ends at ``length``.
    """
    if tile >= length:
        return [0]
    overlap = min(max(0, overlap), tile // 2)
    step = max(multiple, ((tile - overlap) // multiple) * multiple)
    span = length - tile
    n = -(-span // step) + 1
    return [((i * span) // (n - 1) // multiple) * multiple for i in range(n)]


def axis_weights(length: int, tile: int, starts: list[int], guard: int) -> list[np.ndarray]:
    """1-D blend weights (float32, size ``tile``) for each tile start along one axis.

    For each pair of neighbours overlapping by ``ov`` pixels, a pixel at offset ``d`` into the
    overlap gets weight ``s((d - g + 1) / (ov - 2g + 1))`` in the right tile and the complement in
    the left tile, where ``s`` is smoothstep and ``g = min(guard, ov // 2)``. Edges on the frame
    border get weight one.
    """
    weights = []
    n = len(starts)
    for i, s in enumerate(starts):
        w = np.ones(tile, dtype=np.float64)
        if i > 0:  # left/top neighbour
            ov = starts[i - 1] + tile - s
            g = min(guard, ov // 2)
            d = np.arange(tile, dtype=np.float64)
            w = np.minimum(w, _smoothstep((d - g + 1) / (ov - 2 * g + 1)))
        if i < n - 1:  # right/bottom neighbour
            ov = s + tile - starts[i + 1]
            g = min(guard, ov // 2)
            d = np.arange(tile, dtype=np.float64)[::-1]  # distance from the right edge
            w = np.minimum(w, _smoothstep((d - g + 1) / (ov - 2 * g + 1)))
        weights.append(w.astype(np.float32))
    return weights


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of one padded frame lie.

    ``pad`` is ``(top, bottom, left, right)`` applied to the original ``(height, width)`` frame;
    ``padded_shape`` is the result; tiles are ``tile_h x tile_w`` at every ``(y, x)`` in ``ys x xs``.
    """

    height: int
    width: int
    pad: tuple[int, int, int, int]
    tile_h: int
    tile_w: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]
    weights_y: tuple[np.ndarray, ...]
    weights_x: tuple[np.ndarray, ...]

    @property
    def padded_shape(self) -> tuple[int, int]:
        t, b, l, r = self.pad
        return self.height + t + b, self.width + l + r

    @cached_property
    def positions(self) -> list[tuple[int, int, int, int]]:
        """``(y, x, iy, ix)`` for every tile, row-major."""
        return [(y, x, iy, ix) for iy, y in enumerate(self.ys) for ix, x in enumerate(self.xs)]

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m


def _axis_plan(length: int, tile: int | None, overlap: int, multiple: int) -> tuple[int, list[int]]:
    """Tile size and starts along one axis: the fewest tiles of at most ``tile`` (rounded to the
    multiple) that cover ``length`` with the overlap, each made only as large as needed."""
    if tile is None or tile >= length:
        return length, [0]
    t_max = max(multiple, (int(tile) // multiple) * multiple)
    ov = min(overlap, t_max // 2)
    n = max(2, -(-(length - ov) // max(1, t_max - ov)))
    size = min(length, _round_up(-(-(length + (n - 1) * ov) // n), multiple))
    return size, tile_starts(length, size, ov, multiple)


def make_grid(
    height: int,
    width: int,
    tile: int | None,
    overlap: int,
    multiple: int = 1,
    margin: int = 0,
    guard: int = 0,
    max_tile_width: int | None = None,
) -> TileGrid:
    """Plan the tiles for a ``height x width`` frame.

    ``tile=None`` (or a tile larger than the padded frame) gives one whole-frame tile. ``margin``
    pixels of reflection are added on every side; the bottom/right get extra reflection up to a
    multiple of ``multiple``. ``tile`` is rounded down to a multiple of ``multiple`` (at least one
    multiple). ``guard`` is the network's receptive radius (see :func:`axis_weights`).
    ``max_tile_width``: tiled frames (``tile`` given) are cut into tiles at most this wide, however
    large ``tile`` is (a runtime that slows down past a width, see
    :data:`filmclean.backends.ORT_CPU_FAST_WIDTH`).
    """
    if height < 1 or width < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    multiple = max(1, int(multiple))
    ph = _round_up(height + 2 * margin, multiple)
    pw = _round_up(width + 2 * margin, multiple)
    pad = (margin, ph - height - margin, margin, pw - width - margin)
    overlap = max(0, int(overlap))
    th, ys = _axis_plan(ph, tile, overlap, multiple)
    tile_w = tile if tile is None or max_tile_width is None else min(int(tile), int(max_tile_width))
    tw, xs = _axis_plan(pw, tile_w, overlap, multiple)
    return TileGrid(
        height,
        width,
        pad,
        th,
        tw,
        tuple(ys),
        tuple(xs),
        tuple(axis_weights(ph, th, ys, guard)),
        tuple(axis_weights(pw, tw, xs, guard)),
    )


def pad_frame(chw: np.ndarray, grid: TileGrid) -> np.ndarray:
    """Reflect-pad a ``(C, H, W)`` frame as the grid says (numpy reflection works for any size)."""
    t, b, l, r = grid.pad
    if t == b == l == r == 0:
        return chw
    return np.pad(chw, ((0, 0), (t, b), (l, r)), mode="reflect")


def extract_tiles(padded: np.ndarray, grid: TileGrid, indices: list[int]) -> np.ndarray:
    """Stack the tiles with the given row-major indices into ``(N, C, tile_h, tile_w)``."""
    pos = grid.positions
    return np.stack(
        [padded[:, pos[i][0] : pos[i][0] + grid.tile_h, pos[i][1] : pos[i][1] + grid.tile_w] for i in indices]
    )


class TileAccumulator:
    """Weighted sum of tile outputs over the padded frame; :meth:`result` crops back to the frame."""

    def __init__(self, grid: TileGrid, channels: int) -> None:
        self.grid = grid
        ph, pw = grid.padded_shape
        self.acc = np.zeros((channels, ph, pw), dtype=np.float32)
        self.wsum = np.zeros((ph, pw), dtype=np.float32)

    def add(self, index: int, tile_out: np.ndarray) -> None:
        """Add one tile output ``(C, tile_h, tile_w)`` at row-major tile ``index``."""
        y, x, iy, ix = self.grid.positions[index]
        w = np.outer(self.grid.weights_y[iy], self.grid.weights_x[ix])
        th, tw = self.grid.tile_h, self.grid.tile_w
        self.acc[:, y : y + th, x : x + tw] += tile_out * w
        self.wsum[y : y + th, x : x + tw] += w

    def result(self) -> np.ndarray:
        """The blended ``(C, H, W)`` output cropped to the original frame."""
        g = self.grid
        t, _, l, _ = g.pad
        acc = self.acc[:, t : t + g.height, l : l + g.width]
        ws = self.wsum[t : t + g.height, l : l + g.width]
        return acc / np.maximum(ws, 1e-12)


def reflect_index(index: np.ndarray, length: int) -> np.ndarray:
    """Indices into ``[0, length)`` for positions ``index`` (any integers) under numpy's ``"reflect"``
    padding: mirrored on the first and last sample, repeated as often as needed, so
    ``a[reflect_index(np.arange(-p, n + q), n)]`` equals ``np.pad(a, (p, q), mode="reflect")``."""
    if length == 1:
        return np.zeros_like(index)
    period = 2 * (length - 1)
    i = np.mod(index, period)
    return np.where(i > length - 1, period - i, i)


def _reflect_span(start: int, size: int, length: int) -> tuple[int, int, int, int] | None:
    """``(first, end, before, after)``: the rows ``[first, end)`` of an axis of ``length`` that a
    tile spanning ``[start, start + size)`` of the reflected axis reads, and the reflected rows
    before and after them, when a reflect pad of ``[first, end)`` gives the tile (the span touches
    the edge it reflects about, and no pad is longer than the span minus one, unless the span is
    the whole axis); ``None`` otherwise."""
    first, end = max(0, start), min(length, start + size)
    before, after = first - start, start + size - end
    if end <= first:
        return None
    if (first, end) != (0, length) and max(before, after) > end - first - 1:
        return None
    return first, end, before, after


def read_tile(source, grid: TileGrid, y: int, x: int) -> np.ndarray:
    """The ``(C, tile_h, tile_w)`` float32 tile at padded position ``(y, x)``, cut straight from the
    unpadded ``(C, H, W)`` ``source``: equal to the same tile of :func:`pad_frame`'s output, without a
    padded copy of the frame. ``source`` is a numpy array or any object that answers
    ``source[:, r0:r1, c0:c1]`` with an array (e.g. a temporal stack built tile by tile)."""
    t, _, l, _ = grid.pad
    rows = _reflect_span(y - t, grid.tile_h, grid.height)
    cols = _reflect_span(x - l, grid.tile_w, grid.width)
    if rows is not None and cols is not None:  # the usual case: one copy, reflected at the edges
        region = np.asarray(source[:, rows[0] : rows[1], cols[0] : cols[1]], dtype=np.float32)
        pads = ((0, 0), rows[2:], cols[2:])
        if any(pads[1]) or any(pads[2]):
            return np.pad(region, pads, mode="reflect")
        fresh = not isinstance(source, np.ndarray) or not np.may_share_memory(region, source)
        return np.ascontiguousarray(region) if fresh else np.array(region, order="C")
    ri = reflect_index(np.arange(y - t, y - t + grid.tile_h), grid.height)
    ci = reflect_index(np.arange(x - l, x - l + grid.tile_w), grid.width)
    r0, r1 = int(ri.min()), int(ri.max()) + 1
    c0, c1 = int(ci.min()), int(ci.max()) + 1
    region = np.asarray(source[:, r0:r1, c0:c1], dtype=np.float32)
    return np.ascontiguousarray(region[:, ri - r0][:, :, ci - c0])


class BandAccumulator:
    """:class:`TileAccumulator` for one row of tiles at a time: memory is a band of ``tile_h`` rows
    of the padded frame, whatever the frame's height.

    Tiles must be added row of tiles by row of tiles, in the grid's order. :meth:`finish_row` then
    returns the rows that no later tile touches, blended exactly as :meth:`TileAccumulator.result`
    would (the same sums in the same order), and moves the band down to the next row of tiles.
    """

    def __init__(self, grid: TileGrid, channels: int) -> None:
        self.grid = grid
        _, pw = grid.padded_shape
        self.acc = np.zeros((channels, grid.tile_h, pw), dtype=np.float32)
        self.wsum = np.zeros((grid.tile_h, pw), dtype=np.float32)
        self.row = 0  # index of the row of tiles being accumulated
        self.origin = grid.ys[0]  # padded row held by ``acc[:, 0]``

    def add(self, index: int, tile_out: np.ndarray) -> None:
        """Add one tile output ``(C, tile_h, tile_w)`` at row-major tile ``index`` (in the current row)."""
        y, x, iy, ix = self.grid.positions[index]
        if iy != self.row:
            raise ValueError(f"tile {index} is in row {iy}; the band holds row {self.row}")
        w = np.outer(self.grid.weights_y[iy], self.grid.weights_x[ix])
        th, tw = self.grid.tile_h, self.grid.tile_w
        o = y - self.origin
        self.acc[:, o : o + th, x : x + tw] += tile_out * w
        self.wsum[o : o + th, x : x + tw] += w

    def finished(self) -> tuple[int, int]:
        """Frame rows ``[r0, r1)`` that the current row of tiles completes (no later tile touches
        them; ``r1 == r0`` is possible)."""
        g = self.grid
        t = g.pad[0]
        last = self.row == len(g.ys) - 1
        end = g.padded_shape[0] if last else g.ys[self.row + 1]  # padded rows [origin, end) are final
        a, b = max(self.origin, t), min(end, t + g.height)
        return a - t, max(a, b) - t

    def blended(self, r0: int, r1: int) -> np.ndarray:
        """The blended ``(C, r1 - r0, W)`` output for frame rows ``[r0, r1)`` within :meth:`finished`
        (a band can be taken in pieces, so that no band-sized temporary is needed)."""
        g = self.grid
        t, _, l, _ = g.pad
        a, b = r0 + t - self.origin, r1 + t - self.origin
        return self.acc[:, a:b, l : l + g.width] / np.maximum(self.wsum[a:b, l : l + g.width], 1e-12)

    def advance(self) -> None:
        """Move the band down to the next row of tiles, keeping the rows it shares with it."""
        g = self.grid
        if self.row == len(g.ys) - 1:
            raise ValueError("the last row of tiles has been accumulated")
        end = g.ys[self.row + 1]
        keep = self.origin + g.tile_h - end  # rows shared with the next row of tiles
        shift = end - self.origin
        self.acc[:, :keep] = self.acc[:, shift : shift + keep].copy()
        self.acc[:, keep:] = 0.0
        self.wsum[:keep] = self.wsum[shift : shift + keep].copy()
        self.wsum[keep:] = 0.0
        self.origin = end
        self.row += 1

    def finish_row(self) -> tuple[int, np.ndarray]:
        """``(first frame row, blended (C, n, W))`` for the rows :meth:`finished` by the current row
        of tiles, then :meth:`advance` (unless it was the last row)."""
        r0, r1 = self.finished()
        out = self.blended(r0, r1)
        if self.row < len(self.grid.ys) - 1:
            self.advance()
        return r0, out
