"""Motion-compensated neighbours for temporal restoration.

Dust sits on one frame of film only; the picture under it is usually visible in the frames before
and after. This module aligns the previous and the next frame to the current one with dense optical
flow (OpenCV's DIS, on the CPU) and says, per pixel, how far each aligned neighbour can be trusted.
The temporal network (:class:`filmclean.nets.temporal.TemporalMaskGuidedNet`) takes the result as
one stacked input (:func:`build_stack`).

Stack contract (``(STACK_CHANNELS, H, W)`` float32, channels first like the network's input, all
in ``[0, 1]``):

- channels 0-2: the current frame, RGB;
- channels 3-5: the previous frame warped onto the current one (the current frame where missing);
- channels 6-8: the next frame warped onto the current one (the current frame where missing);
- channel 9: trust in the previous frame, channel 10: trust in the next frame (0 = do not use:
  first/last frame, a scene cut, occlusion or a failed match; 1 = forward-backward consistent flow).

Trust comes from the flow alone (forward-backward consistency, landing inside the frame), never from
the colour difference, and the flow is matched on median-filtered luminance: a speck of dust *is* a colour difference, and must not lower the trust of the
neighbour that shows the picture under it. Scene cuts are found from colour histograms of small
thumbnails (:func:`is_scene_cut`) and zero a neighbour's trust entirely.

:class:`SequenceAligner` walks a sequence once and computes each consecutive pair's flows once
(both directions), so a frame costs two flow fields however it is used.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

STACK_CHANNELS = 11
CURRENT = slice(0, 3)  # the current frame, RGB
PREV_RGB = slice(3, 6)  # the previous frame aligned to it
NEXT_RGB = slice(6, 9)  # the next frame aligned to it
NEIGHBOURS = slice(3, 11)  # both aligned neighbours and their trust
TRUST = slice(9, 11)  # trust in the previous, the next frame
PREV_TRUST = slice(9, 10)
NEXT_TRUST = slice(10, 11)
_MIN_FLOW_SIDE = 32  # DIS fails on images under ~32 px on a side (OpenCV 4.x/5.x)

__all__ = [
    "AGREEMENT_SIZE",
    "AGREEMENT_TOLERANCE",
    "CURRENT",
    "NEIGHBOURS",
    "NEXT_RGB",
    "NEXT_TRUST",
    "PREV_RGB",
    "PREV_TRUST",
    "TRUST",
    "AlignOptions",
    "PairFlow",
    "STACK_CHANNELS",
    "SequenceAligner",
    "agreement",
    "align_neighbour",
    "build_stack",
    "flow_confidence",
    "frame_flows",
    "is_scene_cut",
    "related",
    "warp",
]


@dataclass(frozen=True)
class AlignOptions:
    """How neighbours are aligned.

    - ``flow_size``: the flow is computed on frames scaled down so that their longer side is at most
      this many pixels (then scaled back up); DIS on a 1080p frame at 960 px takes tens of ms;
    - ``preset``: DIS preset, ``"ultrafast"``, ``"fast"`` or ``"medium"``;
    - ``cut_threshold``: histogram distance (0-1, see :func:`is_scene_cut`) above which two
      consecutive frames are taken to belong to different shots;
    - ``fb_tolerance``: forward-backward mismatch (pixels, at full resolution) still fully trusted;
    - ``small_trust``: compute that trust at the flow's reduced size and enlarge it (a quarter of
      the work at 1080p; the same motion boundaries to within a pixel of the flow), instead of
      on the enlarged flows at full resolution;
    - ``min_agreement``: the share of the picture (see :func:`agreement`) on which an aligned
      neighbour must be trusted and show the same picture to be used at all: below it the two
      frames are not of one scene (unrelated stills whose names look like a sequence, a cut the
      histograms missed) and the neighbour is dropped like a cut.
    """

    flow_size: int = 960
    preset: str = "fast"
    cut_threshold: float = 0.5
    fb_tolerance: float = 0.5
    small_trust: bool = True
    min_agreement: float = 0.5


AGREEMENT_SIZE = 256
"""Longer side (pixels) at which :func:`agreement` compares a frame with its aligned neighbour."""

AGREEMENT_TOLERANCE = 0.1
"""Largest colour difference (0-1, after a 5x5 median) at which two aligned pixels agree; lowered to
half the picture's own spread (its standard deviation) for low-contrast pictures, down to 0.01."""


def agreement(current: np.ndarray, aligned: np.ndarray, trust: np.ndarray) -> float:
    """The share of pixels where the aligned neighbour is trusted (``trust > 0.5``) and shows the
    same picture (every median-filtered channel, after one gain per channel for exposure flicker,
    within the tolerance of :data:`AGREEMENT_TOLERANCE`),
    compared at :data:`AGREEMENT_SIZE` px. Consecutive frames of one scene agree almost everywhere
    (dust covers little); unrelated pictures almost nowhere, even where a smooth area gives a
    consistent flow."""
    import cv2

    h, w = current.shape[:2]
    scale = min(1.0, AGREEMENT_SIZE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))

    def small(x: np.ndarray) -> np.ndarray:
        # reduce first (a 1080p frame: a hundredth of the pixels to convert), then to 8 bits
        if scale != 1.0:
            x = cv2.resize(np.ascontiguousarray(x, np.float32), size, interpolation=cv2.INTER_AREA)
        x8 = np.clip(np.nan_to_num(x) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return cv2.medianBlur(np.ascontiguousarray(x8), 5).astype(np.int16)

    a, b = small(current), small(aligned)
    # one gain per channel first: a frame of the same scene exposed differently (film flickers)
    # still shows the same picture
    for c in range(a.shape[-1]):
        ok = (a[..., c] > 12) & (b[..., c] > 12)
        if ok.sum() > 16:
            gain = float(np.clip(np.median(a[..., c][ok] / b[..., c][ok]), 0.5, 2.0))
            b[..., c] = np.clip(np.rint(b[..., c] * gain), 0, 255).astype(np.int16)
    t = trust if scale == 1.0 else cv2.resize(trust, size, interpolation=cv2.INTER_AREA)
    tol = float(np.clip(0.5 * a.std(), 0.01 * 255, AGREEMENT_TOLERANCE * 255))
    same = (np.abs(a - b) <= tol).all(axis=-1)
    return float(np.mean(same & (t > 0.5)))


def related(a: np.ndarray, b: np.ndarray, options: AlignOptions = AlignOptions()) -> bool:
    """Whether two ``(H, W, 3)`` frames show one scene, judged cheaply at :data:`AGREEMENT_SIZE` px:
    same size, no scene cut, and ``b`` aligned onto ``a`` by optical flow agrees with it on at least
    ``options.min_agreement`` of the picture (:func:`agreement`)."""
    import cv2

    if a.shape != b.shape:
        return False
    h, w = a.shape[:2]
    scale = min(1.0, AGREEMENT_SIZE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small_a, small_b = (
        np.clip(
            np.nan_to_num(cv2.resize(np.ascontiguousarray(x, np.float32), size, interpolation=cv2.INTER_AREA)), 0, 1
        )
        for x in (a, b)
    )
    small = replace(options, flow_size=AGREEMENT_SIZE)
    pf = frame_flows(small_a, small_b, small)
    if pf.cut or pf.failed:
        return False
    aligned, trust = align_neighbour(small_a, small_b, pf.ab, pf.ba, options.fb_tolerance)
    return agreement(small_a, aligned, trust) >= options.min_agreement


def _gray8(rgb: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    g = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    g8: np.ndarray = np.clip(g * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if scale != 1.0:
        h, w = g8.shape
        g8 = cv2.resize(g8, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
    # a 5x5 median removes specks and thin hairs before matching, so that the flow (and its
    # forward-backward trust) is not bent by the very dust the neighbours are wanted for
    return cv2.medianBlur(g8, 5)


def _dis(preset: str):
    import cv2

    presets = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }
    if preset not in presets:
        raise ValueError(f"unknown DIS preset {preset!r}; known: {', '.join(presets)}")
    return cv2.DISOpticalFlow_create(presets[preset])  # type: ignore[attr-defined]  # alias missing from cv2's stubs


def _upscale_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    fh, fw = flow.shape[:2]
    if (fh, fw) == (height, width):
        return flow
    up = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    up[..., 0] *= width / fw
    up[..., 1] *= height / fh
    return up


@dataclass
class PairFlow:
    """Flows between two consecutive frames ``a`` and ``b`` at full resolution, ``(H, W, 2)``
    float32 ``(dx, dy)``: ``ab`` maps a pixel of ``a`` to its position in ``b``, ``ba`` the reverse.
    ``cut``: the two frames belong to different shots (the flows are then zero)."""

    ab: np.ndarray
    ba: np.ndarray
    cut: bool
    failed: bool = False  # the flow could not be computed: the neighbour is not used
    #: the same flows as computed, at the reduced size of ``AlignOptions.flow_size`` (in its
    #: pixels), when that is smaller than the frame; ``None`` otherwise
    ab_small: np.ndarray | None = None
    ba_small: np.ndarray | None = None

    def reversed(self) -> PairFlow:
        """The flows from ``b`` to ``a``."""
        return PairFlow(self.ba, self.ab, self.cut, self.failed, self.ba_small, self.ab_small)


def frame_flows(a: np.ndarray, b: np.ndarray, options: AlignOptions = AlignOptions()) -> PairFlow:
    """DIS flow in both directions between two ``(H, W, 3)`` frames in ``[0, 1]``."""
    h, w = a.shape[:2]
    if is_scene_cut(a, b, options.cut_threshold):
        zero = np.zeros((h, w, 2), np.float32)
        return PairFlow(zero, zero.copy(), True)
    import cv2

    scale = min(1.0, options.flow_size / max(h, w))
    ga, gb = _gray8(a, scale), _gray8(b, scale)
    gh, gw = ga.shape
    # DIS needs some height and width at its coarsest scale: a thin or tiny frame is matched with
    # its border repeated out to _MIN_FLOW_SIDE px, and the flow is cropped back
    py, px = max(0, _MIN_FLOW_SIDE - gh), max(0, _MIN_FLOW_SIDE - gw)
    if py or px:
        ga, gb = (cv2.copyMakeBorder(g, 0, py, 0, px, cv2.BORDER_REPLICATE) for g in (ga, gb))
    dis = _dis(options.preset)
    try:
        ab = dis.calc(ga, gb, None)[:gh, :gw]
        ba = dis.calc(gb, ga, None)[:gh, :gw]
    except cv2.error:  # a failed match: the neighbour is not used (trust 0), as for any failed match
        zero = np.zeros((h, w, 2), np.float32)
        return PairFlow(zero, zero.copy(), False, failed=True)
    ab, ba = np.ascontiguousarray(ab), np.ascontiguousarray(ba)
    small = (ab, ba) if (gh, gw) != (h, w) else (None, None)
    return PairFlow(_upscale_flow(ab, h, w), _upscale_flow(ba, h, w), False, False, *small)


def _thumb_hist(rgb: np.ndarray) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    s = min(1.0, 64.0 / max(h, w))
    small = cv2.resize(
        np.ascontiguousarray(rgb, dtype=np.float32),
        (max(1, round(w * s)), max(1, round(h * s))),
        interpolation=cv2.INTER_AREA,
    )
    q = np.clip((small * 8).astype(np.int32), 0, 7)
    idx = (q[..., 0] * 64 + q[..., 1] * 8 + q[..., 2]).ravel()
    hist = np.bincount(idx, minlength=512).astype(np.float64)
    return hist / max(1.0, hist.sum())


def is_scene_cut(a: np.ndarray, b: np.ndarray, threshold: float = 0.5) -> bool:
    """Whether two frames belong to different shots: the total-variation distance (0 = same colours,
    1 = no colour in common) between 8x8x8-bin colour histograms of 64-px thumbnails exceeds
    ``threshold``. Dust covers too little of a frame to move this distance much; a cut to another
    shot usually moves it by more than half."""
    d = 0.5 * float(np.abs(_thumb_hist(a) - _thumb_hist(b)).sum())
    return d > threshold


def flow_maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(map_x, map_y, inside)`` for :func:`warp`: where each pixel ``p`` samples, ``p + flow(p)``
    (float32 ``(H, W)`` each), and a float32 ``(H, W)`` map that is 1 where that lies inside the
    image and 0 outside. One flow warps several images (a neighbour and the backward flow) with
    the same maps."""
    h, w = flow.shape[:2]
    mx = flow[..., 0] + np.arange(w, dtype=np.float32)[None, :]
    my = flow[..., 1] + np.arange(h, dtype=np.float32)[:, None]
    inside = (mx >= -0.5) & (mx <= w - 0.5) & (my >= -0.5) & (my <= h - 0.5)
    return mx, my, inside.astype(np.float32)


def warp(
    image: np.ndarray, flow: np.ndarray, maps: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``image`` (``(H, W, C)`` or ``(H, W)``) at ``p + flow(p)`` for every pixel ``p``.

    Returns ``(warped, inside)``: bilinear samples (border pixels repeated) and a float32 ``(H, W)``
    map that is 1 where the sample lies inside the image and 0 outside. ``maps``: the flow's
    :func:`flow_maps`, when already at hand.
    """
    import cv2

    mx, my, inside = flow_maps(flow) if maps is None else maps
    warped = cv2.remap(np.ascontiguousarray(image), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return warped, inside


def flow_confidence(
    forward: np.ndarray,
    backward: np.ndarray,
    tolerance: float = 0.5,
    fill: int = 11,
    maps: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    unit: float = 1.0,
) -> np.ndarray:
    """Trust ``(H, W)`` in ``[0, 1]`` of the flow ``forward`` (current -> neighbour) given the flow
    ``backward`` (neighbour -> current): going there and back should return to the start.

    With ``e`` the round-trip error in pixels, trust is 1 up to ``tolerance + 1 % of the squared
    motion`` (the usual occlusion test of Sundaram et al. 2010, made soft) and falls off as a
    Gaussian of width 1 px beyond it; low-trust islands narrower than ``fill`` px are closed
    (morphological closing); samples landing outside the frame get 0. ``maps``: ``forward``'s
    :func:`flow_maps`, when already at hand. ``unit``: the size of the flows' pixels in the pixels
    the tolerance is given in (flows computed at half size: 0.5).
    """
    import cv2

    back, inside = warp(backward, forward, maps)
    fx, fy, bx, by = forward[..., 0], forward[..., 1], back[..., 0], back[..., 1]
    if unit != 1.0:
        k = np.float32(1.0 / unit)
        fx, fy, bx, by = fx * k, fy * k, bx * k, by * k
    e2 = cv2.magnitude(fx + bx, fy + by) ** 2
    tol = np.float32(tolerance**2) + np.float32(0.01) * (cv2.magnitude(fx, fy) ** 2 + cv2.magnitude(bx, by) ** 2)
    excess = np.maximum(e2 - tol, np.float32(0.0)) * np.float32(-0.5)
    conf = cv2.exp(excess)
    if fill > 1:
        # close holes of distrust smaller than ``fill`` px: a speck of dust bends the flow around
        # itself, and exactly there the neighbour is needed; occlusions span whole motion edges
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (fill, fill))
        conf = cv2.morphologyEx(conf, cv2.MORPH_CLOSE, kernel)
    return (conf * inside).astype(np.float32, copy=False)


def align_neighbour(
    current: np.ndarray,
    neighbour: np.ndarray,
    forward: np.ndarray,
    backward: np.ndarray,
    tolerance: float = 0.5,
    small: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``neighbour`` warped onto ``current`` and its trust map: ``((H, W, 3), (H, W))`` float32.

    ``small``: the forward and backward flows at the reduced size they were computed at; the trust
    is then computed there (:func:`flow_confidence` with the errors measured in full-resolution
    pixels and the closing scaled) and enlarged, a quarter of the work on a 1080p frame."""
    maps = flow_maps(forward)
    aligned, _ = warp(neighbour, forward, maps)
    if small is None:
        conf = flow_confidence(forward, backward, tolerance, maps=maps)
    else:
        import cv2

        h, w = forward.shape[:2]
        scale = small[0].shape[1] / w
        fill = max(3, int(round(11 * scale)) | 1)
        conf = flow_confidence(small[0], small[1], tolerance, fill=fill, unit=scale)
        conf = np.clip(cv2.resize(conf, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return aligned.astype(np.float32, copy=False), conf


def build_stack(
    current: np.ndarray, prev: tuple[np.ndarray, np.ndarray] | None, next_: tuple[np.ndarray, np.ndarray] | None
) -> np.ndarray:
    """The temporal network's input ``(11, H, W)`` (see the module docstring).

    ``prev``/``next_`` are ``(aligned_rgb, trust)`` from :func:`align_neighbour`, or ``None`` when
    there is no usable neighbour (first/last frame, scene cut): the current frame with trust 0
    stands in for it.
    """
    h, w = current.shape[:2]
    out = np.empty((STACK_CHANNELS, h, w), np.float32)
    cur = np.transpose(current, (2, 0, 1))
    out[CURRENT] = cur
    for nb, rgb_slice, trust_slice in ((prev, PREV_RGB, PREV_TRUST), (next_, NEXT_RGB, NEXT_TRUST)):
        rgb, trust = out[rgb_slice], out[trust_slice][0]
        if nb is None:
            rgb[...] = cur
            trust[...] = 0.0
        else:
            np.clip(np.transpose(nb[0], (2, 0, 1)), 0.0, 1.0, out=rgb)
            np.clip(nb[1], 0.0, 1.0, out=trust)
    return out


class SequenceAligner:
    """Build :func:`build_stack` inputs for the frames of one sequence, in order.

    Call :meth:`stack` with ``(prev, current, next)`` frames (``None`` for a missing neighbour) and
    a key for each (e.g. the frame index). The flows of each consecutive pair are computed once and
    reused by both frames of the pair; only the last pair is kept, so memory stays at two flow pairs.
    """

    def __init__(self, options: AlignOptions = AlignOptions()) -> None:
        self.options = options
        self._cache: dict[tuple[object, object], PairFlow] = {}
        self.flow_seconds = 0.0
        self.cuts = 0
        self.unrelated = 0  # neighbours dropped because they do not show the same picture

    def _pair(self, key_a: object, a: np.ndarray, key_b: object, b: np.ndarray) -> PairFlow:
        import time

        if (key_a, key_b) in self._cache:
            return self._cache[(key_a, key_b)]
        if (key_b, key_a) in self._cache:
            return self._cache[(key_b, key_a)].reversed()
        t = time.perf_counter()
        pf = frame_flows(a, b, self.options)
        self.flow_seconds += time.perf_counter() - t
        self.cuts += int(pf.cut)
        # keep only pairs that touch key_b (the newest frame): older ones are not needed again
        self._cache = {k: v for k, v in self._cache.items() if key_a in k or key_b in k}
        self._cache[(key_a, key_b)] = pf
        return pf

    def stack(
        self,
        current: np.ndarray,
        key: object,
        prev: np.ndarray | None = None,
        prev_key: object = None,
        next_: np.ndarray | None = None,
        next_key: object = None,
    ) -> np.ndarray:
        neighbours: list[tuple[np.ndarray, np.ndarray] | None] = []
        for nb, nb_key in ((prev, prev_key), (next_, next_key)):
            if nb is None or nb.shape != current.shape:  # a frame of another size is no neighbour
                neighbours.append(None)
                continue
            pf = self._pair(key, current, nb_key, nb)
            if pf.cut or pf.failed:
                neighbours.append(None)
                continue
            small = None
            if self.options.small_trust and pf.ab_small is not None and pf.ba_small is not None:
                small = (pf.ab_small, pf.ba_small)
            aligned, trust = align_neighbour(current, nb, pf.ab, pf.ba, self.options.fb_tolerance, small)
            if agreement(current, aligned, trust) < self.options.min_agreement:
                self.unrelated += 1  # not one scene: the neighbour would only mislead the network
                neighbours.append(None)
                continue
            neighbours.append((aligned, trust))
        return build_stack(current, neighbours[0], neighbours[1])
