"""Restore one frame: tiling, batching, blending and (for mask networks) mask-guided compositing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from . import DEFAULT_MAX_WIDTH, DEFAULT_TILE, DUST_POLARITIES, TTA_COUNTS
from .backends import Backend, NetworkInfo
from .tiling import BandAccumulator, TileGrid, make_grid, read_tile, reflect_index


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """Transform ``k`` (0..7) of the 8 flips/transposes of ``a``'s last two axes ``(..., H, W)``.

    Bit 4 transposes, then bit 1 flips left-right and bit 2 top-bottom: ``k < 2`` is the identity
    and the mirror image, ``k < 4`` adds the upside-down pair, ``k < 8`` the transposed four. A view
    (no copy); :func:`inverse_dihedral` undoes it.
    """
    if k & 4:
        a = np.swapaxes(a, -1, -2)
    if k & 1:
        a = a[..., ::-1]
    if k & 2:
        a = a[..., ::-1, :]
    return a


def inverse_dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """The inverse of :func:`dihedral`: ``inverse_dihedral(dihedral(a, k), k)`` equals ``a``."""
    if k & 2:
        a = a[..., ::-1, :]
    if k & 1:
        a = a[..., ::-1]
    if k & 4:
        a = np.swapaxes(a, -1, -2)
    return a


@dataclass(frozen=True)
class RestoreOptions:
    """How frames are cut and composited.

    - ``tile``: tile size in pixels (``None`` = whole frame in one pass);
    - ``overlap``: minimum overlap between neighbouring tiles. ``None`` = twice the network's
      receptive radius (at most half the tile), which makes tiled output equal whole-frame output;
    - ``batch``: tiles per network call;
    - ``threshold``: for mask networks, the damage probability at or above which a pixel is
      replaced by the repair; below it the input pixel passes through unchanged (higher is more
      conservative). Ignored by networks without a mask;
    - ``dust``: which way damage changes the picture, for mask networks. ``"any"``: either way
      (the default: prints carry dark dirt of their own and light spots from dirt on the negative
      they were printed from). ``"dark"``: damage only darkens (slides, prints, positive film
      scanned directly) -- the repair may only brighten a pixel, channel by channel, and a pixel it
      would only darken is left alone. ``"light"``: damage only brightens (negatives scanned and
      inverted) -- the converse. Bright highlights and specular glints are then never taken for
      dark dust, and dark pebbles or pupils never for light dust.
    - ``tta``: test-time augmentation -- the network runs on ``tta`` flips/transposes of each frame
      (1, 2, 4 or 8; see :func:`dihedral`), and their repairs and damage probabilities, mapped back,
      are averaged before compositing. More damage is found and repaired better, at ``tta`` times the
      time; pixels below the threshold still pass through bit-identically.
    - ``max_width``: for mask networks, the widest defect (in pixels) that is repaired. A detection
      (a connected region at or above the threshold, detections less than :data:`DETECTION_GAP`
      pixels apart joined) that holds a disc wider than this is taken for part of the picture -- a
      bright flower, a lamp, a meadow whose grass blades look like hairs -- and left untouched as a
      whole, thin hairs and scratches attached to it included (:func:`wide_detections`).
      Film dust, dirt and blotches are at most about 60 px across on a 2K scan
      (:data:`filmclean.DEFAULT_MAX_WIDTH`); ``None``: no limit.
    - ``max_area``: for mask networks, the largest repair (pixels of one detection, joined as for
      ``max_width``) that is made; a larger one -- a street light, a star field, lettering -- is
      left untouched as a whole. ``None``: no limit.
    """

    tile: int | None = DEFAULT_TILE
    overlap: int | None = None
    batch: int = 4
    threshold: float = 0.5
    dust: str = "any"
    tta: int = 1
    max_width: int | None = DEFAULT_MAX_WIDTH
    max_area: int | None = None

    def __post_init__(self) -> None:
        if self.dust not in DUST_POLARITIES:
            raise ValueError(f"dust must be one of {', '.join(DUST_POLARITIES)}, got {self.dust!r}")
        if self.tta not in TTA_COUNTS:
            raise ValueError(f"tta must be one of {', '.join(map(str, TTA_COUNTS))}, got {self.tta!r}")
        if self.max_width is not None and self.max_width < 1:
            raise ValueError(f"max_width must be at least 1 pixel, got {self.max_width!r}")
        if self.max_area is not None and self.max_area < 1:
            raise ValueError(f"max_area must be at least 1 pixel, got {self.max_area!r}")


@dataclass
class RestoredFrame:
    """``image``: ``(H, W, 3)`` float32 in ``[0, 1]``; ``mask``: ``(H, W)`` float32 or ``None``.

    For mask networks ``mask`` is the network's damage probability (before thresholding); with a
    dust polarity (:attr:`RestoreOptions.dust`) it is 0 where the repair would only have moved the
    pixel the other way, so it shows what can be repaired.
    """

    image: np.ndarray
    mask: np.ndarray | None


class Restorer:
    """Apply a backend (see :mod:`filmclean.backends`) to whole frames of any size.

    ``restore(rgb)`` takes ``(H, W, 3)`` float32 RGB in ``[0, 1]`` and returns a :class:`RestoredFrame`
    of the same size. Memory is bounded by the tile and batch size plus a few frame-sized buffers.
    """

    def __init__(
        self, backend: Backend, options: RestoreOptions | None = None, fallback: Restorer | None = None
    ) -> None:
        self.backend = backend
        self.options = options or RestoreOptions()
        # temporal networks: the single-frame restorer for frames without any usable neighbour
        # (a one-frame sequence, a frame between two cuts, --no-temporal); see sequence.TemporalRestorer
        self.fallback = fallback
        self.model_file = getattr(backend, "model_file", None)  # the file actually loaded, when known
        info = NetworkInfo.of(backend.info)
        self.info = info
        self.multiple = info.size_multiple
        self.radius = info.receptive_radius
        self.has_mask = info.has_mask
        self.in_channels = info.in_channels
        # reflection margin around the frame: enough context for the network at the frame border
        self.margin = min(self.radius, 16)
        self._grids: dict[tuple[int, int], tuple[TileGrid, int]] = {}  # a reel's frames share one tile plan

    @property
    def overlap(self) -> int:
        o = self.options
        if o.overlap is not None:
            return int(o.overlap)
        ov = 2 * self.radius
        if o.tile is not None:
            ov = min(ov, o.tile // 2)
        return ov

    @property
    def temporal(self) -> bool:
        """Whether the network takes the 11-channel stack of :func:`filmclean.temporal.build_stack`."""
        return self.info.temporal

    @property
    def guided(self) -> bool:
        """Whether the network takes a user's matte besides the frame (``restore(..., guide=...)``)."""
        return self.in_channels == GUIDED_CHANNELS

    def _grid(self, h: int, w: int) -> TileGrid:
        """The tile plan for ``h x w`` frames (see :meth:`_plan`)."""
        return self._plan(h, w)[0]

    def _plan(self, h: int, w: int) -> tuple[TileGrid, int]:
        """``(grid, tiles per network call)`` for ``h x w`` frames: tiles of at most
        ``options.tile`` and calls of at most ``options.batch`` tiles, made smaller while the
        estimated working memory -- the network's on one call (:data:`NETWORK_BYTES_PER_PIXEL`) plus
        one band of blended rows -- exceeds :data:`WORK_BUDGET`: first fewer tiles per call, then
        smaller tiles (in 256-px steps, down to 512). Tiles are also at most the backend's
        ``fast_width`` wide, where it has one (ONNX Runtime on the CPU:
        :data:`filmclean.backends.ORT_CPU_FAST_WIDTH`). With the default tile a 1080p frame is one
        tile and a 4K frame three (2192x1552 each: 1.2x the frame's pixels computed); a
        100-megapixel scan gets smaller ones."""
        plan = self._grids.get((h, w))
        if plan is None:
            o = self.options
            tile = o.tile
            per_pixel = (
                NETWORK_BYTES_PER_PIXEL if self.in_channels == 3 else STACK_BYTES_PER_PIXEL
            ) + 12 * self.in_channels
            fast = getattr(self.backend, "fast_width", None)
            while True:
                grid = make_grid(h, w, tile, self.overlap, self.multiple, self.margin, self.radius, fast)
                area = grid.tile_h * grid.tile_w
                band = 4 * (5 if self.has_mask else 4) * grid.tile_h * grid.padded_shape[1]
                fits = int(max(0.0, WORK_BUDGET - band) // (per_pixel * area))
                if fits >= 1 or tile is None or tile <= 512:
                    break
                tile = max(512, tile - 256)
            plan = grid, max(1, min(int(o.batch), len(grid.xs), fits, max(1, BATCH_PIXELS // area)))
            self._grids[(h, w)] = plan
        return plan

    def _bands(self, source) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """The network's output for a ``(C, H, W)`` input (an array, or a lazy source as
        :func:`filmclean.tiling.read_tile` takes), a band of rows at a time: ``(first row,
        restored (3, n, W), prob (1, n, W) or None)`` for consecutive rows covering the frame.

        Only one row of tiles is held, and a network call takes at most :data:`BATCH_PIXELS` of
        tiles, so memory does not grow with the frame. Tiles are cleaned before the network sees
        them (:func:`clean_tile`).
        """
        h, w = source.shape[1:]
        grid, bs = self._plan(h, w)
        if len(grid) == 1:  # one tile (a 1080p frame): its output as it is, no blending
            yield from self._one_tile(source, grid)
            return
        acc = BandAccumulator(grid, 4 if self.has_mask else 3)  # repair and mask share one weight sum
        n_x = len(grid.xs)
        pos = grid.positions
        for iy in range(len(grid.ys)):
            row = list(range(iy * n_x, (iy + 1) * n_x))
            for first in range(0, n_x, bs):
                idx = row[first : first + bs]
                cut = [clean_tile(read_tile(source, grid, pos[i][0], pos[i][1])) for i in idx]
                tiles = cut[0][None] if len(cut) == 1 else np.stack(cut)
                del cut
                out, mask = self.backend(tiles)
                if self.has_mask and mask is None:
                    raise ValueError("the network was declared with a damage mask but returned none")
                for j, i in enumerate(idx):
                    acc.add(i, out[j] if mask is None else np.concatenate([out[j], mask[j]]))
            r0, r1 = acc.finished()
            step = max(1, COMPOSE_PIXELS // w)
            for c0 in range(r0, r1, step):  # in pieces: no band-sized temporaries downstream
                band = acc.blended(c0, min(r1, c0 + step))
                yield c0, band[:3], (band[3:] if self.has_mask else None)
            if iy < len(grid.ys) - 1:
                acc.advance()
        release = getattr(self.backend, "release_memory", None)
        if release is not None and h * w >= RELEASE_PIXELS:
            release()  # the network's working memory need not sit beside a huge frame being encoded

    def _one_tile(self, source, grid: TileGrid) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """:meth:`_bands` for a frame that is one tile: the network's output cropped to the frame
        (what blending one tile of weight 1 gives, without the arithmetic)."""
        h, w = source.shape[1:]
        tile = clean_tile(read_tile(source, grid, 0, 0))
        out, mask = self.backend(tile[None])
        del tile
        if self.has_mask and mask is None:
            raise ValueError("the network was declared with a damage mask but returned none")
        t, _, l, _ = grid.pad
        out = out[0, :, t : t + h, l : l + w]
        prob = mask[0, :, t : t + h, l : l + w] if self.has_mask and mask is not None else None
        step = max(1, COMPOSE_PIXELS // w)
        for c0 in range(0, h, step):
            yield c0, out[:, c0 : c0 + step], None if prob is None else prob[:, c0 : c0 + step]
        release = getattr(self.backend, "release_memory", None)
        if release is not None and h * w >= RELEASE_PIXELS:
            release()

    def _infer(self, chw) -> tuple[np.ndarray, np.ndarray | None]:
        """The network's ``(restored (3, H, W), prob (1, H, W) or None)`` for one ``(C, H, W)`` input."""
        h, w = chw.shape[1:]
        restored = np.empty((3, h, w), np.float32)
        prob = np.empty((1, h, w), np.float32) if self.has_mask else None
        for r0, out, mask in self._bands(chw):
            restored[:, r0 : r0 + out.shape[1]] = out
            if prob is not None and mask is not None:
                prob[:, r0 : r0 + out.shape[1]] = mask
        return restored, prob

    def restore(
        self,
        rgb: np.ndarray,
        stack: np.ndarray | None = None,
        out: np.ndarray | None = None,
        mask: bool = True,
        protect: np.ndarray | None = None,
        guide: np.ndarray | None = None,
    ) -> RestoredFrame:
        """Restore one frame ``rgb`` ``(H, W, 3)``.

        Temporal networks also need ``stack``, the ``(11, H, W)`` input of
        :func:`filmclean.temporal.build_stack` whose first three channels are ``rgb``; tiles are cut
        from it, so each tile carries its neighbours' tiles. Without one (no neighbours), the stack
        is made tile by tile. Other networks take no ``stack``.

        ``out``: where to write the restored frame (``(H, W, 3)`` float32; may be ``rgb`` itself, to
        restore in place when the input is not needed afterwards). Pixels that are not finite or lie
        outside ``[0, 1]`` in any channel (float EXR/TIFF) are passed through untouched (mask 0); the
        network sees them cleaned (:func:`clean_tile`), so they do not disturb the rest.
        ``mask=False``: do not keep the frame's damage mask (``RestoredFrame.mask`` is ``None``),
        one frame-sized buffer fewer when nobody asked for it. ``protect`` (``(H, W)`` bool): pixels
        that pass through bit-identical, mask 0 (a user's protection matte,
        :class:`filmclean.matte.Matte`).
        """
        if protect is not None and protect.shape != rgb.shape[:2]:
            raise ValueError(f"protect must be {rgb.shape[:2]}, got {protect.shape}")
        if self.guided != (guide is not None):
            raise ValueError("a matte-guided network needs a guide, and only it takes one")
        if guide is not None and guide.shape != (2, *rgb.shape[:2]):
            raise ValueError(f"guide must be (2, {rgb.shape[0]}, {rgb.shape[1]}), got {guide.shape}")
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) frame, got shape {rgb.shape}")
        h, w = rgb.shape[:2]
        o = self.options
        source: Any
        if self.temporal:
            if stack is None:
                source = NeighbourlessStack(rgb)
                if o.tta > 1:
                    from .temporal import build_stack

                    source = build_stack(rgb, None, None)
            else:
                source = stack
            if source.shape != (self.in_channels, h, w):
                raise ValueError(f"expected a ({self.in_channels}, {h}, {w}) stack, got shape {source.shape}")
        elif stack is not None:
            raise ValueError("this network takes single frames; no stack")
        elif guide is not None:
            source = np.concatenate([np.transpose(rgb, (2, 0, 1)), guide.astype(np.float32, copy=False)])
        else:
            source = np.transpose(rgb, (2, 0, 1))
        if out is None:
            out = np.empty((h, w, 3), np.float32)
        elif out.shape != (h, w, 3) or out.dtype != np.float32:
            raise ValueError(f"out must be a float32 ({h}, {w}, 3) array, got {out.dtype} {out.shape}")
        # the width and area limits need the frame's whole mask
        whole = (o.max_width is not None or o.max_area is not None) and self.has_mask
        if o.tta == 1 and not whole and not (np.shares_memory(out, rgb) and not self._in_place_safe(h, w)):
            bands = (
                (r0, np.transpose(res, (1, 2, 0)), None if m is None else m[0]) for r0, res, m in self._bands(source)
            )
            return self._compose(rgb, bands, out, mask, None if protect is None or not protect.any() else protect)
        restored, prob = self._infer(source)
        for k in range(1, o.tta):  # test-time augmentation: the mean over o.tta transforms
            res_k, mask_k = self._infer(dihedral(source, k))
            restored += inverse_dihedral(res_k, k)
            if prob is not None and mask_k is not None:  # a mask network: _infer returns a mask for every input
                prob += inverse_dihedral(mask_k, k)
        if o.tta > 1:
            restored /= np.float32(o.tta)
            if prob is not None:
                prob /= np.float32(o.tta)
        drop = None
        if prob is not None:
            if protect is not None:  # protected pixels are no detection: nothing there joins regions
                prob[0][protect] = 0.0
            drop = limited_detections(prob[0], o.threshold, o.max_width, o.max_area)
            if drop is not None and guide is not None:  # the user's matte is repaired whatever its size
                drop &= ~(guide[0] > 0.5)
        if protect is not None and protect.any():
            drop = protect if drop is None else drop | protect
        return self._compose(
            rgb, iter([(0, np.transpose(restored, (1, 2, 0)), None if prob is None else prob[0])]), out, mask, drop
        )

    def _in_place_safe(self, h: int, w: int) -> bool:
        """Whether rows finished by one row of tiles are never read again by a later row (true
        unless the tiles are tiny), so that the output may overwrite the input as it goes."""
        grid = self._grid(h, w)
        t = grid.pad[0]
        for iy in range(len(grid.ys) - 1):
            done = grid.ys[iy + 1] - t  # frame rows below this are written after row iy
            later = reflect_index(np.arange(grid.ys[iy + 1] - t, grid.padded_shape[0] - t), grid.height)
            if later.min() < done:
                return False
        return True

    def _compose(
        self,
        rgb: np.ndarray,
        bands: Iterator[tuple[int, np.ndarray, np.ndarray | None]],
        out: np.ndarray,
        keep_mask: bool = True,
        drop: np.ndarray | None = None,
    ) -> RestoredFrame:
        """Write the output band by band: the clipped output of a plain network, or for mask
        networks the repair composited over the untouched input (:func:`composite`). ``drop``
        (``(H, W)`` bool): pixels that pass through untouched, mask 0, whatever the network says
        (:func:`limited_detections`, a protection matte)."""
        o = self.options
        full_mask = np.zeros(rgb.shape[:2], np.float32) if self.has_mask and keep_mask else None
        for r0, repaired, prob in bands:
            r1 = r0 + repaired.shape[0]
            src = rgb[r0:r1]
            # the usual case, every pixel valid, costs two reductions rather than a mask
            valid = None if in_range(src) else valid_pixels(src)
            if drop is not None:
                kept = ~drop[r0:r1]
                valid = kept if valid is None else valid & kept
            if prob is None:
                result = np.clip(repaired, 0.0, 1.0)
                if valid is not None:  # invalid pixels stay as they are
                    result = np.where(valid[..., None], result, src)
                out[r0:r1] = result
                continue
            prob = np.clip(prob, 0.0, 1.0)
            if o.dust != "any":
                repaired = polarity_clamp(src, repaired, o.dust)
                prob = np.where((repaired == src).all(axis=-1), np.float32(0.0), prob)
            chosen = prob
            if valid is not None:  # invalid or dropped pixels stay as they are (even at threshold 0), mask 0
                prob = np.where(valid, prob, np.float32(0.0))
                chosen = np.where(valid, prob, np.float32(-1.0))
            composite(src, repaired, chosen, o.threshold, out=out[r0:r1])
            if full_mask is not None:
                full_mask[r0:r1] = prob
        return RestoredFrame(out, full_mask)


GUIDED_CHANNELS = 5
"""Input channels of a matte-guided network: RGB, the matte, the weight of the own detections."""

RELEASE_PIXELS = 20_000_000
"""Frames of at least this many pixels (beyond 4K) hand the network's working memory back to the
system when they are done (see ``release_memory`` of :class:`filmclean.backends.OnnxBackend`)."""

COMPOSE_PIXELS = 1 << 20
"""Blended rows are composited over the input in pieces of about this many pixels."""

WORK_BUDGET = 1.25e9
"""Bytes the tile plan allows for the network's working memory plus one band of blended rows."""

NETWORK_BYTES_PER_PIXEL = 220
"""Working memory of a single-frame network per input pixel of one call, its input counted apart:
the default model's peak RSS grew by 177-191 bytes per pixel of one call with ONNX Runtime on the
CPU (tiles of 0.26 to 4.8 megapixels, 2026-12-07), with room for its outputs."""

STACK_BYTES_PER_PIXEL = 400
"""The same for a temporal network (11-channel stack): 1.63 GB for a 2048x2048 tile, 389 bytes."""

BATCH_PIXELS = 4_500_000
"""Most tile pixels per network call: the batch is cut down for large tiles, so that the network's
working memory stays near that of one 2048-px tile (about 1 GB with ONNX Runtime on the CPU)."""


class NeighbourlessStack:
    """The temporal network's ``(11, H, W)`` input for a frame without usable neighbours (the frame
    itself three times, trust 0), made region by region for :func:`filmclean.tiling.read_tile`
    instead of as a frame-sized array (equal to ``build_stack(rgb, None, None)``)."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb = rgb
        self.shape = (11, rgb.shape[0], rgb.shape[1])

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        _, rows, cols = key
        cur = np.transpose(self.rgb[rows, cols], (2, 0, 1))
        return np.concatenate([cur, cur, cur, np.zeros((2, *cur.shape[1:]), np.float32)])


def in_range(rgb: np.ndarray) -> bool:
    """Whether every sample of ``rgb`` is finite and within ``[0, 1]`` (see :func:`valid_pixels`):
    two reductions, and false for NaN (which fails every comparison)."""
    return rgb.size == 0 or bool(rgb.min() >= 0.0 and rgb.max() <= 1.0)


def valid_pixels(rgb: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels whose channels are all finite and within ``[0, 1]`` -- the only ones
    a repair may change (float formats can hold NaN, infinities and out-of-range values)."""
    with np.errstate(invalid="ignore"):
        return cast(np.ndarray, ((rgb >= 0.0) & (rgb <= 1.0)).all(axis=-1))  # an array: rgb has a channel axis


def clean_tile(tile: np.ndarray) -> np.ndarray:
    """What the network may see of a ``(C, h, w)`` tile, in place: non-finite samples replaced by
    the mean of the finite ones within 2 px (0 where there are none), then everything clipped to
    ``[0, 1]`` (the range the networks were trained on). A NaN then looks like its surroundings
    rather than like a speck, and cannot spread through the network to the rest of the tile."""
    bad = ~np.isfinite(tile)
    if bad.any():
        import cv2

        good = (~bad).astype(np.float32)
        tile[bad] = 0.0
        for c in np.flatnonzero(bad.any(axis=(1, 2))):
            num = cv2.blur(tile[c] * good[c], (5, 5), borderType=cv2.BORDER_REFLECT)
            den = cv2.blur(good[c], (5, 5), borderType=cv2.BORDER_REFLECT)
            tile[c][bad[c]] = (num / np.maximum(den, 1e-6))[bad[c]]
    np.clip(tile, 0.0, 1.0, out=tile)
    return tile


def polarity_clamp(rgb: np.ndarray, repaired: np.ndarray, dust: str) -> np.ndarray:
    """The repair limited to the direction damage of polarity ``dust`` can be undone in.

    ``dust="dark"``: ``max(repaired, rgb)`` per channel (dark damage only ever darkened the pixel,
    so the clean value is at least the input); ``"light"``: ``min(repaired, rgb)``; ``"any"``:
    ``repaired`` unchanged. ``rgb``, ``repaired``: ``(H, W, 3)`` float32. Under the damage model
    (:mod:`filmclean.train.synth`) the clamped repair is never further from the clean pixel than
    the unclamped one.
    """
    if dust == "dark":
        return np.maximum(repaired, rgb)
    if dust == "light":
        return np.minimum(repaired, rgb)
    if dust == "any":
        return repaired
    raise ValueError(f"dust must be one of {', '.join(DUST_POLARITIES)}, got {dust!r}")


DETECTION_GAP = 9
"""Detections closer than this many pixels count as one for :func:`wide_detections`: a dense mesh of
thin detections (grass blades, petal edges taken for hairs) is as wide as the area it covers."""


def wide_detections(
    prob: np.ndarray, threshold: float, max_width: float, gap: int = DETECTION_GAP
) -> np.ndarray | None:
    """``(H, W)`` bool: the pixels of every detection in ``prob`` ``(H, W)`` wider than ``max_width``
    pixels, or ``None`` when there is none.

    Detections are the pixels where ``prob >= threshold``; those less than ``gap`` pixels apart are
    joined (a morphological closing with a ``gap``-pixel disc; 0 or 1: none) into 8-connected
    regions. A region is wider than ``max_width`` when a disc of that diameter fits inside it (its
    largest Euclidean distance to a pixel outside it, as :func:`cv2.distanceTransform` measures it,
    exceeds ``max_width / 2``). The frame's edge does not bound a region: one cut by the edge counts
    as if mirrored across it, since the defect may go on beyond the picture. The detections of such
    a region are returned whole. A single hair or scratch stays as thin as it is, and a blotch as
    wide, whatever ``gap``; but a field of dust specks closer than ``gap`` is one region too, and
    left alone when it is wider than ``max_width`` (the price of never repainting a textured
    picture).
    """
    import cv2

    sel = (prob >= threshold).astype(np.uint8)
    joined: np.ndarray = sel
    if gap > 1:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (gap, gap))
        joined = cv2.morphologyEx(sel, cv2.MORPH_CLOSE, disc, borderType=cv2.BORDER_REPLICATE)
    dist = cv2.distanceTransform(joined, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    wide = dist > max_width / 2.0
    if not wide.any():
        return None
    _, labels = cv2.connectedComponents(joined, connectivity=8)
    return cast(np.ndarray, np.isin(labels, np.unique(labels[wide])) & (sel > 0))


def limited_detections(
    prob: np.ndarray, threshold: float, max_width: float | None, max_area: int | None, gap: int = DETECTION_GAP
) -> np.ndarray | None:
    """``(H, W)`` bool: the detections of ``prob`` that are left alone for their size -- wider than
    ``max_width`` (:func:`wide_detections`) or, joined the same way, holding more than ``max_area``
    detected pixels -- or ``None`` when there is none (or no limit)."""
    import cv2

    drop = None if max_width is None else wide_detections(prob, threshold, max_width, gap)
    if max_area is None:
        return drop
    sel = (prob >= threshold).astype(np.uint8)
    joined: np.ndarray = sel
    if gap > 1:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (gap, gap))
        joined = cv2.morphologyEx(sel, cv2.MORPH_CLOSE, disc, borderType=cv2.BORDER_REPLICATE)
    n, labels = cv2.connectedComponents(joined, connectivity=8)
    area = np.bincount(labels.ravel(), weights=sel.ravel().astype(np.float64), minlength=n)
    big = area > max_area
    big[0] = False
    if not big.any():
        return drop
    large = big[labels] & (sel > 0)
    return large if drop is None else drop | large


def composite(
    rgb: np.ndarray, repaired: np.ndarray, prob: np.ndarray, threshold: float, out: np.ndarray | None = None
) -> np.ndarray:
    """Mask-guided output: the repair (clipped to ``[0, 1]``) where ``prob >= threshold``, the
    untouched input elsewhere.

    ``rgb``, ``repaired``: ``(..., H, W, 3)``; ``prob``: ``(..., H, W)``. Pixels below the threshold
    are bit-identical to the input. ``out``: a float32 array of ``rgb``'s shape to write into (may be
    ``rgb`` itself); by default a new one. Only the repaired pixels are computed.
    """
    if out is None:
        out = np.array(rgb, dtype=np.float32, order="C", copy=True)
    elif not np.shares_memory(out, rgb) or out.__array_interface__ != rgb.__array_interface__:
        np.copyto(out, rgb, casting="same_kind")
    where = np.nonzero(prob >= threshold)
    if where[0].size:
        out[where] = np.clip(repaired[where], 0.0, 1.0)
    return out
