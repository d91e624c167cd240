"""Restore one frame: tiling, batching, blending and (for mask networks) mask-guided compositing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import DEFAULT_TILE, DUST_POLARITIES, TTA_COUNTS
from .tiling import TileAccumulator, TileGrid, extract_tiles, make_grid, pad_frame


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
    """

    tile: int | None = DEFAULT_TILE
    overlap: int | None = None
    batch: int = 4
    threshold: float = 0.5
    dust: str = "any"
    tta: int = 1

    def __post_init__(self) -> None:
        if self.dust not in DUST_POLARITIES:
            raise ValueError(f"dust must be one of {', '.join(DUST_POLARITIES)}, got {self.dust!r}")
        if self.tta not in TTA_COUNTS:
            raise ValueError(f"tta must be one of {', '.join(map(str, TTA_COUNTS))}, got {self.tta!r}")


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

    def __init__(self, backend, options: RestoreOptions | None = None, fallback: "Restorer | None" = None) -> None:
        self.backend = backend
        self.options = options or RestoreOptions()
        # temporal networks: the single-frame restorer for frames without any usable neighbour
        # (a one-frame sequence, a frame between two cuts, --no-temporal); see sequence.TemporalRestorer
        self.fallback = fallback
        info = backend.info
        self.multiple = int(info.get("size_multiple", 1))
        self.radius = int(info.get("receptive_radius", 0))
        self.has_mask = bool(info.get("has_mask", False))
        self.in_channels = int(info.get("in_channels", 3))
        # reflection margin around the frame: enough context for the network at the frame border
        self.margin = min(self.radius, 16)
        self._grids: dict[tuple[int, int], TileGrid] = {}  # a reel's frames share one tile plan

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
        return self.in_channels != 3

    def _infer(self, chw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The network's ``(restored (3, H, W), prob (1, H, W) or None)`` for one ``(C, H, W)`` input,
        tile by tile."""
        h, w = chw.shape[1:]
        o = self.options
        grid = self._grids.get((h, w))
        if grid is None:
            grid = make_grid(h, w, o.tile, self.overlap, self.multiple, self.margin, self.radius)
            self._grids[(h, w)] = grid
        padded = pad_frame(np.ascontiguousarray(chw, dtype=np.float32), grid)
        img_acc = TileAccumulator(grid, 3)
        mask_acc = TileAccumulator(grid, 1) if self.has_mask else None
        n = len(grid)
        bs = max(1, int(o.batch))
        for first in range(0, n, bs):
            idx = list(range(first, min(n, first + bs)))
            out, mask = self.backend(extract_tiles(padded, grid, idx))
            for j, i in enumerate(idx):
                img_acc.add(i, out[j])
                if mask_acc is not None and mask is not None:
                    mask_acc.add(i, mask[j])
        return img_acc.result(), (mask_acc.result() if mask_acc is not None else None)

    def restore(self, rgb: np.ndarray, stack: np.ndarray | None = None) -> RestoredFrame:
        """Restore one frame ``rgb`` ``(H, W, 3)``.

        Temporal networks also need ``stack``, the ``(11, H, W)`` input of
        :func:`filmclean.temporal.build_stack` whose first three channels are ``rgb``; tiles are cut
        from it, so each tile carries its neighbours' tiles. Other networks take no ``stack``.
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) frame, got shape {rgb.shape}")
        h, w = rgb.shape[:2]
        if self.temporal:
            if stack is None:
                from .temporal import build_stack

                stack = build_stack(rgb, None, None)
            if stack.shape != (self.in_channels, h, w):
                raise ValueError(f"expected a ({self.in_channels}, {h}, {w}) stack, got shape {stack.shape}")
        elif stack is not None:
            raise ValueError("this network takes single frames; no stack")
        chw = np.transpose(rgb, (2, 0, 1)) if stack is None else stack
        o = self.options
        restored, prob = self._infer(chw)
        for k in range(1, o.tta):  # test-time augmentation: the mean over o.tta transforms
            out, mask = self._infer(dihedral(chw, k))
            restored = restored + inverse_dihedral(out, k)
            if prob is not None:  # a mask network: _infer returns a mask for every input
                prob = prob + inverse_dihedral(mask, k)
        if o.tta > 1:
            restored /= np.float32(o.tta)
            if prob is not None:
                prob /= np.float32(o.tta)
        if prob is None:
            image = np.clip(np.transpose(restored, (1, 2, 0)), 0.0, 1.0)
            return RestoredFrame(np.ascontiguousarray(image, dtype=np.float32), None)
        prob = np.clip(prob[0], 0.0, 1.0)
        repaired = np.transpose(restored, (1, 2, 0))
        if o.dust != "any":
            repaired = polarity_clamp(rgb, repaired, o.dust)
            prob = np.where((repaired == rgb).all(axis=-1), np.float32(0.0), prob)
        image = composite(rgb, repaired, prob, o.threshold)
        return RestoredFrame(image, prob.astype(np.float32))


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


def composite(rgb: np.ndarray, repaired: np.ndarray, prob: np.ndarray, threshold: float) -> np.ndarray:
    """Mask-guided output: the repair where ``prob >= threshold``, the untouched input elsewhere.

    ``rgb``, ``repaired``: ``(H, W, 3)``; ``prob``: ``(H, W)``. Pixels below the threshold are
    bit-identical to the input.
    """
    sel = (prob >= threshold)[..., None]
    out = np.where(sel, np.clip(repaired, 0.0, 1.0), rgb)
    return np.ascontiguousarray(out, dtype=np.float32)
