"""Motion-compensated spike detection: damage that is on one frame and on neither neighbour.

Dust, dirt and most hairs sit on one frame of film. Once the previous and the next frame are
aligned to it (:mod:`filmclean.temporal`), such a defect is a *spike*: the current pixel departs from
both aligned neighbours the same way, while the neighbours agree with each other (the classical
spike-detection index). Persistent damage -- a scratch, dirt in the scanner gate -- is in the
neighbours too and is never a spike; it has to be found within the frame.

Alignment fails somewhere on every real reel (leaves in the wind, fast limbs, occlusion), and there
a plain spike test fires on picture. Three guards keep it to damage:

- **misalignment tolerance**: a pixel counts only when it lies outside the range of both neighbours
  over a small window (``window``, a share of the short side) around the aligned position -- a
  feature the flow put a few pixels off is still inside that range;
- **local reliability**: the threshold rises with the neighbours' local disagreement (``local``
  times the median of their difference over ``local_window``), which is high wherever motion is not
  compensated and near zero under a speck of dust (both neighbours show the picture there);
- **the frame's noise**: the threshold is at least ``k`` robust standard deviations of the
  neighbours' difference over the frame (grain and compression noise), and at least ``min_change``.

Arrays: frames ``(H, W, 3)`` float32 in ``[0, 1]``; the stack of :func:`filmclean.temporal.build_stack`
``(11, H, W)``; masks ``(H, W)`` bool.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .temporal import CURRENT, NEXT_RGB, NEXT_TRUST, PREV_RGB, PREV_TRUST

__all__ = [
    "SpikeOptions",
    "Spikes",
    "consistent_pixels",
    "detect_spikes",
    "match_exposure",
    "persistent_detections",
    "scratch_pixels",
    "spike_repair",
]


@dataclass(frozen=True)
class SpikeOptions:
    """Thresholds of :func:`detect_spikes` (changes in ``[0, 1]`` units, windows as shares of the
    frame's short side).

    - ``min_change``: smallest departure from both neighbours taken for a spike;
    - ``k``: the threshold is at least ``k`` robust standard deviations (1.4826 x the median
      absolute value) of the aligned neighbours' difference over the trusted pixels of the frame;
    - ``local``: and at least ``local`` times the neighbours' local difference (its median over a
      box of side ``2 * local_window * short side + 1``);
    - ``window``: misalignment tolerated, the radius of the box over which each neighbour's range
      (minimum to maximum) is taken;
    - ``ratio``: the departure must also be ``ratio`` times the two neighbours' own difference at the
      pixel;
    - ``min_trust``: trust (from :func:`filmclean.temporal.flow_confidence`) above which an aligned
      neighbour is used; both must be trusted. The default, 0, uses every pixel whose neighbours
      land inside their frames: the flow's forward-backward check fails under the damage itself
      (a quarter of the one-frame damage of a static shot fell below a trust of 0.5), and the two
      neighbours' agreement (``ratio``, ``local``) is the better guard;
    - ``blur``: the tests compare the frames after a Gaussian blur of this sigma (pixels), which
      lowers grain and compression noise more than it lowers a speck;
    - ``grow``: spikes also take in connected pixels that depart from both neighbours the same way
      by half the threshold (a defect's faint rim), then ``grow`` more pixels around;
    - ``match_exposure``: bring each aligned neighbour to the current frame's exposure first
      (:func:`match_exposure`, one gain per channel): old film flickers, and a frame 8 % brighter
      than both neighbours otherwise departs from them almost everywhere (a third of the pixels of
      clean vtest frames given a random gain of 0.92-1.08 each were taken for spikes).
    """

    min_change: float = 0.03
    k: float = 4.0
    local: float = 8.0
    local_window: float = 0.02
    window: float = 0.005
    ratio: float = 2.0
    min_trust: float = 0.0
    blur: float = 0.7
    grow: int = 2
    match_exposure: bool = True

    def __post_init__(self) -> None:
        for name in ("min_change", "k", "local", "local_window", "window", "ratio", "min_trust", "blur"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}")
        if self.grow < 0:
            raise ValueError(f"grow must not be negative, got {self.grow!r}")


@dataclass
class Spikes:
    """What :func:`detect_spikes` found in one frame.

    ``mask``: the spikes grown over their rims (``(H, W)`` bool); ``core``: the pixels that passed
    every test (``mask``'s seeds); ``usable``: the pixels where both neighbours are trusted (the only
    ones that can be tested); ``threshold``: the frame-wide part of the threshold."""

    mask: np.ndarray
    core: np.ndarray
    usable: np.ndarray
    threshold: float
    #: the aligned neighbours as tested (``(6, H, W)``: previous then next RGB, exposure-matched),
    #: which :func:`spike_repair` and :func:`consistent_pixels` use; ``None``: the stack's own
    neighbours: np.ndarray | None = None

    @property
    def per_10k(self) -> float:
        """Spike pixels (``core``) per 10,000 usable pixels (0 when none is usable)."""
        n = int(self.usable.sum())
        return 0.0 if n == 0 else 1e4 * float(self.core.sum()) / n


def _box(short: int, share: float) -> int:
    return max(1, int(round(share * short)))


SATURATED = 0.98
"""A neighbour's pixel with a channel at or above this is clipped: :func:`detect_spikes` does not test there."""


def match_exposure(stack: np.ndarray) -> np.ndarray:
    """The aligned neighbours of ``stack`` brought to the current frame's exposure: ``(6, H, W)``
    float32, previous then next RGB.

    Each channel of a neighbour is multiplied by one gain, the median ratio of the current frame to
    it over every fourth pixel of every fourth row where both are above 0.05 and below
    :data:`SATURATED` (clipped to 0.5-2):
    exposure flicker between frames is taken out, and specks of dust, a few per cent of the
    pixels, do not move a median."""
    import cv2

    out = np.empty((6, *stack.shape[1:]), np.float32)
    for c in range(3):
        cur = stack[CURRENT][c]
        for i, nb in enumerate((stack[PREV_RGB][c], stack[NEXT_RGB][c])):
            a, b = cur[::4, ::4], nb[::4, ::4]
            ok = (a > 0.05) & (b > 0.05) & (a < SATURATED) & (b < SATURATED)
            gain = float(np.clip(np.median(a[ok] / b[ok]), 0.5, 2.0)) if ok.sum() > 16 else 1.0
            # the float32 product, rounded once (OpenCV multiplies in double: exact for two floats)
            plane = cv2.multiply(nb, float(np.float32(gain)), dst=out[3 * i + c])
            cv2.min(cv2.max(plane, 0.0, dst=plane), 1.0, dst=plane)
    return out


def detect_spikes(stack: np.ndarray, options: SpikeOptions = SpikeOptions()) -> Spikes:
    """One-frame damage in the current frame of ``stack`` (see the module docstring)."""
    import cv2

    usable = (stack[PREV_TRUST][0] > options.min_trust) & (stack[NEXT_TRUST][0] > options.min_trust)
    # a neighbour's clipped highlight only says the picture there is at least that bright (least of
    # all once its exposure is matched to a darker frame): only a darker departure counts there
    top = cv2.max(cv2.max(stack[PREV_RGB][0], stack[PREV_RGB][1]), stack[PREV_RGB][2])
    top = cv2.max(top, cv2.max(cv2.max(stack[NEXT_RGB][0], stack[NEXT_RGB][1]), stack[NEXT_RGB][2]))
    clipped = cv2.dilate((top >= SATURATED).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0  # and its blurred edge
    h, w = stack.shape[1:]
    none = np.zeros((h, w), bool)
    if not usable.any():
        return Spikes(none, none.copy(), usable, float("inf"))
    short = min(h, w)
    r = _box(short, options.window)
    box = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 1, 2 * r + 1))
    # channel planes, as the stack holds them; OpenCV's element-wise operations, which are faster
    # than numpy's on these sizes
    same = np.zeros((h, w), np.float32)  # departure from both neighbours the same way (any channel)
    agree = np.zeros((h, w), np.float32)  # the neighbours' own difference
    outside = np.full((h, w), -1.0, np.float32)  # departure from both neighbours' range near the pixel
    # summed departure, > 0 where the frame is brighter: only needed where a neighbour is clipped
    brighter = np.zeros((h, w), np.float32) if clipped.any() else None
    neighbours = match_exposure(stack) if options.match_exposure else None
    for c in range(3):
        cur, prev, nxt = stack[CURRENT][c], stack[PREV_RGB][c], stack[NEXT_RGB][c]
        if neighbours is not None:
            prev, nxt = neighbours[c], neighbours[3 + c]
        if options.blur > 0:  # the tests see through grain and compression noise; the repair does not
            cur, prev, nxt = (cv2.GaussianBlur(a, (0, 0), options.blur) for a in (cur, prev, nxt))
        dp, dn = cv2.subtract(cur, prev), cv2.subtract(cur, nxt)
        if brighter is not None:
            brighter += dp + dn
        # min(|dp|, |dn|) where both have one sign, else 0: min(dp, dn) when both are positive,
        # -max(dp, dn) when both are negative, and both of those negative or 0 otherwise (same
        # starts at 0, so the maximum drops them)
        cv2.max(same, cv2.min(dp, dn), dst=same)
        cv2.max(same, cv2.multiply(cv2.max(dp, dn), -1.0), dst=same)
        cv2.max(agree, cv2.absdiff(prev, nxt), dst=agree)
        low = cv2.min(cv2.erode(prev, box), cv2.erode(nxt, box))
        high = cv2.max(cv2.dilate(prev, box), cv2.dilate(nxt, box))
        cv2.max(outside, cv2.max(cv2.subtract(low, cur), cv2.subtract(cur, high)), dst=outside)
    sample = agree[::2, ::2][usable[::2, ::2]]  # every fourth pixel is plenty for a median
    sigma = 1.4826 * float(np.median(sample if sample.size else agree[usable]))
    tau = max(options.min_change, options.k * sigma)
    rl = 2 * _box(short, options.local_window) + 1
    # the neighbours' typical local disagreement: a median, so that a neighbour's own speck of dust
    # does not raise the threshold around it (8-bit steps: OpenCV's large median filters take uint8)
    local = cv2.medianBlur(np.clip(agree * 255.0 + 0.5, 0, 255).astype(np.uint8), rl).astype(np.float32) / 255.0
    thresh = np.maximum(np.float32(tau), np.float32(options.local) * local)
    core = usable & (outside > thresh) & (same > options.ratio * agree)
    if brighter is not None:
        core &= ~(clipped & (brighter > 0))
    if not core.any():
        return Spikes(none, core, usable, tau, neighbours)
    rim = usable & (same > 0.5 * thresh) & (same > agree)
    n, labels = cv2.connectedComponents((rim | core).astype(np.uint8), connectivity=8)
    seeded = np.zeros(n, bool)
    seeded[np.unique(labels[core])] = True
    seeded[0] = False
    mask = seeded[labels]
    if options.grow:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * options.grow + 1, 2 * options.grow + 1))
        mask = cv2.dilate(mask.astype(np.uint8), disc).astype(bool) & usable
    return Spikes(mask, core, usable, tau, neighbours)


def spike_repair(stack: np.ndarray, spikes: Spikes) -> np.ndarray:
    """The current frame with its spikes repaired from the aligned neighbours: ``(H, W, 3)`` float32.

    A spike pixel takes, channel by channel, the median of itself and its two aligned neighbours --
    the neighbour nearer to it, so real picture and real grain rather than a blend; a rim pixel
    that lies between its neighbours keeps its value. Other pixels are bit-identical to the input.
    """
    cur = np.ascontiguousarray(np.transpose(stack[CURRENT], (1, 2, 0)), dtype=np.float32)
    out = cur.copy()
    if not spikes.mask.any():
        return out
    ys, xs = np.nonzero(spikes.mask)
    nb = spikes.neighbours if spikes.neighbours is not None else np.concatenate([stack[PREV_RGB], stack[NEXT_RGB]])
    trio = np.stack([cur[ys, xs], nb[:3, ys, xs].T, nb[3:, ys, xs].T])
    out[ys, xs] = np.median(trio, axis=0)
    return out


def consistent_pixels(stack: np.ndarray, spikes: Spikes, options: SpikeOptions = SpikeOptions()) -> np.ndarray:
    """``(H, W)`` bool: pixels that every trusted aligned neighbour shows the same (within the
    frame's spike threshold, or ``min_change`` when it has none), with at least one neighbour trusted.

    What the neighbours show too is picture, or damage that persists from frame to frame."""
    cur = stack[CURRENT]
    ok = np.zeros(cur.shape[1:], bool)
    tau = spikes.threshold if np.isfinite(spikes.threshold) else options.min_change
    same = np.ones(cur.shape[1:], bool)
    nb = spikes.neighbours if spikes.neighbours is not None else np.concatenate([stack[PREV_RGB], stack[NEXT_RGB]])
    for rgb, trust in ((nb[:3], PREV_TRUST), (nb[3:], NEXT_TRUST)):
        trusted = stack[trust][0] > options.min_trust
        ok |= trusted
        same &= ~trusted | (np.abs(cur - rgb).max(axis=0) <= tau)
    return ok & same


#: Scratch-like pixels lie on a straight run at least this long (pixels) ...
SCRATCH_MIN_LENGTH = 24
#: ... and, for :func:`persistent_detections`, at least this share of the frame's height (a scratch
#: runs along the film; a lamp post or a tripod leg the single-frame model took for one is shorter) ...
SCRATCH_SHARE = 0.3
#: ... within this many degrees of vertical.
SCRATCH_MAX_SLANT = 25.0


@functools.lru_cache(maxsize=8)
def _line_kernels(length: int, max_slant: float) -> tuple[np.ndarray, ...]:
    """Structuring elements: 1-px lines of ``length`` pixels from vertical to ``max_slant`` degrees
    either way, in 5-degree steps."""
    import cv2

    kernels = []
    length |= 1  # odd, so that the anchor is the centre and the opening is exact
    c = length // 2
    for deg in np.arange(-max_slant, max_slant + 1e-6, 5.0):
        k = np.zeros((length, length), np.uint8)
        dx = np.tan(np.deg2rad(deg)) * c
        cv2.line(k, (round(c - dx), 0), (round(c + dx), length - 1), 1, 1)
        kernels.append(k)
    return tuple(kernels)


def scratch_pixels(
    mask: np.ndarray, length: int = SCRATCH_MIN_LENGTH, max_slant: float = SCRATCH_MAX_SLANT
) -> np.ndarray:
    """``(H, W)`` bool: the pixels of ``mask`` on a straight run of at least ``length`` pixels within
    ``max_slant`` degrees of vertical (a morphological opening by line segments; the union over the
    angles). Runs longer than 192 px are found on the mask reduced by a whole factor so that they are
    96 to 191 px long (any pixel set in a block sets the block, which may join structures up to
    ``factor - 1`` px apart), which keeps the cost small for long runs on large frames; the result
    is then limited to the mask's own pixels."""
    import cv2

    m = mask.astype(np.uint8)
    factor = max(1, int(length) // 96)
    if factor > 1:
        h, w = m.shape
        hs, ws = -(-h // factor), -(-w // factor)
        padded = np.zeros((hs * factor, ws * factor), np.uint8)
        padded[:h, :w] = m
        m = padded.reshape(hs, factor, ws, factor).max(axis=(1, 3))
    found = np.zeros(m.shape, np.uint8)
    for k in _line_kernels(max(3, int(length) // factor), float(max_slant)):
        found |= np.asarray(cv2.morphologyEx(m, cv2.MORPH_OPEN, k), np.uint8)
    if factor > 1:
        found = np.repeat(np.repeat(found, factor, axis=0), factor, axis=1)[: mask.shape[0], : mask.shape[1]]
    return (found > 0) & mask


def persistent_detections(changed: np.ndarray, consistent: np.ndarray, scratch_length: int | None = None) -> np.ndarray:
    """``(H, W)`` bool: the pixels of ``changed`` (a single-frame model's repairs) to undo: those of its
    connected regions that the aligned neighbours mostly show too (more than half of the region's
    pixels ``consistent``), except pixels on a scratch-like run (:func:`scratch_pixels`) of at least
    ``scratch_length`` pixels (default: :data:`SCRATCH_SHARE` of the frame's height, at least
    :data:`SCRATCH_MIN_LENGTH`).

    Such a region is picture the model took for damage -- or dirt that stays on the scanner gate,
    which a static shot cannot tell from picture -- so a temporal restoration leaves it alone, while
    a scratch that runs through every frame is still repaired."""
    import cv2

    if not changed.any():
        return np.zeros_like(changed)
    n, labels = cv2.connectedComponents(changed.astype(np.uint8), connectivity=8)
    counts = np.bincount(labels.ravel(), minlength=n)
    agree = np.bincount(labels.ravel(), weights=consistent.ravel().astype(np.float64), minlength=n)
    drop = agree > 0.5 * counts
    drop[0] = False
    undo = drop[labels]
    if undo.any():
        length = scratch_length or max(SCRATCH_MIN_LENGTH, round(SCRATCH_SHARE * changed.shape[0]))
        undo &= ~scratch_pixels(changed, length)
    return undo
