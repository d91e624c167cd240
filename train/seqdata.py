"""Training data for the temporal network: frame triplets, damaged, aligned exactly as at inference.

Every item is a dict of CPU tensors, like :mod:`filmclean.train.data`::

    {"input": (11, S, S) float32 [0, 1]   the stack of filmclean.temporal.build_stack,
     "target": (3, S, S) float32 [0, 1]   the clean middle frame,
     "mask": (1, S, S) float32 [0, 1]     damage opacity of the middle frame,
     "index": int}

An item is made in this order:

1. three clean frames ``t-1, t, t+1``: either cut from a clean still with synthetic camera
   motion (:func:`camera_motion_triplet`: small or occasionally large translation, a little
   rotation and zoom, sometimes a smooth non-affine warp and an independently moving object that
   occludes the background) or, with probability ``clip_fraction``, consecutive frames of a real
   clip (:func:`read_clip_frames`, :func:`clip_triplet`) with one random crop;
2. the same random flip / 90-degree rotation / time reversal for all three (never applied to the
   stack afterwards: the stack is a function of the frames, not an image);
3. sequence events: a missing neighbour (the first or last frame of a reel, p 0.1; both p 0.02),
   a neighbour from another picture (a scene cut, p 0.05), a little flicker of the neighbours;
4. damage with :func:`filmclean.train.synth.dustify_sequence` (dust independent per frame,
   scratches persisting and drifting across the three); a ``clean_fraction`` of training items
   keeps the middle frame undamaged (its neighbours are damaged half of the time);
5. the network input built from the *damaged* frames exactly as the temporal pipeline does at
   inference: ``SequenceAligner(AlignOptions(flow_size=...)).stack(cur, 1, prev, 0, next, 2)``
   (a fresh aligner per item; the flow runs at full resolution at training sizes).

Determinism: every random choice of item ``i`` in epoch ``e`` comes from
:func:`filmclean.train.data.sample_rng` ``(seed, e, i, stream)``; validation items use
``VALID_EPOCH`` and no clean samples, so they are the same every epoch.

Real clips. ``python -m filmclean.train.corpus --clips data/clips`` copies ``vtest.avi`` (768x576,
795 frames, pedestrians, static camera) and ``tree.avi`` (320x240, 444 frames) from Debian's
opencv-doc package. **Reserved for testing, never for training: frames 600-794 of vtest.avi and
all of tree.avi.** ``train/configs/temporal_model.json`` therefore trains on vtest frames 0-599
only (the JSON config format has no comment field, hence this note); a config's clip range is
split again into training (first ~90 %) and validation (last ~10 %) frames by the training loop.

OpenCV threads: in DataLoader workers OpenCV must not be reconfigured (``cv2.setNumThreads`` in a
forked worker whose parent already ran OpenCV's pool hangs), so nothing here touches it; the
training loop sets OpenCV to one thread in the parent before it forks workers, and the forked
workers inherit that setting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from filmclean.errors import InputError

from .data import (
    IMAGE_SUFFIXES,
    STREAM_AUGMENT,
    STREAM_CROP,
    STREAM_DAMAGE,
    VALID_EPOCH,
    read_image,
    resize,
    sample_rng,
)

#: further random streams of one item (besides data.STREAM_CROP / STREAM_DAMAGE / STREAM_AUGMENT)
STREAM_SEQUENCE, STREAM_SOURCE = 3, 4

__all__ = [
    "MotionParams",
    "TemporalDataset",
    "camera_motion_triplet",
    "clip_triplet",
    "clip_triplets",
    "read_clip_frames",
    "sequence_input",
    "split_clip",
]


# -- synthetic camera motion -------------------------------------------------------------------


@dataclass(frozen=True)
class MotionParams:
    """Random camera motion between consecutive frames (pixels at the output size).

    - ``shift``: largest per-step translation of most items; ``large_shift`` of a
      ``large_p`` share of items (fast pans);
    - ``rotate_deg``: largest per-step rotation; ``zoom``: largest per-step relative zoom;
    - ``warp_p``: probability of a smooth random displacement field of up to ``warp_px`` on each
      neighbour (lens breathing, gate weave, parallax: motion that is not an affine map);
    - ``object_p``: probability of an independently moving object (a patch of another part of the
      picture pasted with its own motion, so the background is occluded differently in each
      frame), moving up to ``object_shift`` per step;
    - ``flicker_p``: probability that the neighbours' exposure differs from the middle frame's by
      a factor ``exp(N(0, flicker))`` each (film flicker).
    """

    shift: float = 6.0
    large_shift: float = 25.0
    large_p: float = 0.15
    rotate_deg: float = 1.5
    zoom: float = 0.03
    warp_p: float = 0.3
    warp_px: float = 3.0
    object_p: float = 0.3
    object_shift: float = 12.0
    flicker_p: float = 0.2
    flicker: float = 0.03

    def margin(self, size: int) -> int:
        """Picture around the output crop (px) that the largest motion can bring into view."""
        reach = math.radians(self.rotate_deg) + self.zoom
        return int(math.ceil(self.large_shift + self.warp_px + 0.75 * size * reach)) + 2


DEFAULT_MOTION = MotionParams()


def _smooth_field(rng: np.random.Generator, side: int, amplitude: float, grid: int = 4) -> np.ndarray:
    """A low-frequency random displacement field ``(side, side, 2)`` float32, |d| <= ``amplitude``."""
    import cv2

    coarse = rng.normal(0.0, amplitude / 2.0, (grid, grid, 2)).astype(np.float32)
    field = cv2.resize(coarse, (side, side), interpolation=cv2.INTER_CUBIC)
    return np.clip(field, -amplitude, amplitude)


def _affine_map(
    size: int, patch_side: int, shift: np.ndarray, angle: float, zoom: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sampling maps ``(size, size)`` into a square patch: output pixel ``p`` samples
    ``centre + shift + zoom * R(angle) (p - output centre)``."""
    c = (patch_side - 1) / 2.0
    oc = (size - 1) / 2.0
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    xs -= oc
    ys -= oc
    ca, sa = math.cos(angle) * zoom, math.sin(angle) * zoom
    mx = (c + shift[0]) + ca * xs - sa * ys
    my = (c + shift[1]) + sa * xs + ca * ys
    return mx.astype(np.float32), my.astype(np.float32)


def _remap(img: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    import cv2

    out = cv2.remap(img, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    return np.clip(out, 0.0, 1.0, out=out)


def _region(image: np.ndarray, side: float, rng: np.random.Generator, out_side: int) -> np.ndarray:
    """A random square of ``side`` pixels of ``image`` resized to ``out_side`` (float32)."""
    h, w = image.shape[:2]
    s = int(round(min(max(side, 2.0), h, w)))
    y = int(rng.integers(0, h - s + 1))
    x = int(rng.integers(0, w - s + 1))
    return resize(np.ascontiguousarray(image[y : y + s, x : x + s], dtype=np.float32), out_side, out_side)


def _paste_object(
    frames: list[np.ndarray],
    image: np.ndarray,
    region_side: float,
    patch_side: int,
    rng: np.random.Generator,
    p: MotionParams,
) -> None:
    """Paste a soft-edged elliptical patch of ``image`` over the frames (in place), moving on its own."""
    import cv2

    size = frames[0].shape[0]
    obj_side = int(rng.integers(max(4, int(0.15 * size)), max(5, int(0.45 * size)) + 1))
    texture = _region(image, region_side * obj_side / patch_side, rng, obj_side)
    alpha = np.zeros((obj_side, obj_side), np.float32)
    centre = (obj_side / 2.0, obj_side / 2.0)
    axes = (obj_side / 2.0 * rng.uniform(0.55, 0.95), obj_side / 2.0 * rng.uniform(0.35, 0.95))
    cv2.ellipse(alpha, (centre, (2 * axes[0], 2 * axes[1]), float(rng.uniform(0, 180))), 1.0, -1, cv2.LINE_AA)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.8)
    rgba = np.concatenate([texture * alpha[..., None], alpha[..., None]], axis=2)  # premultiplied
    pos = rng.uniform(-0.25 * obj_side, size - 0.75 * obj_side, 2)
    vel = [rng.normal(0.0, p.object_shift / 2.0, 2).clip(-p.object_shift, p.object_shift) for _ in range(2)]
    offsets = (pos - vel[0], pos, pos + vel[1])
    for frame, (ox, oy) in zip(frames, offsets):
        m = np.array([[1.0, 0.0, ox], [0.0, 1.0, oy]], np.float32)
        layer = cv2.warpAffine(
            rgba, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        a = layer[..., 3:4]
        frame *= 1.0 - a
        frame += layer[..., :3]
        np.clip(frame, 0.0, 1.0, out=frame)


def camera_motion_triplet(
    image: np.ndarray,
    size: int,
    rng: np.random.Generator,
    *,
    crop_scale: tuple[float, float] = (0.5, 1.0),
    params: MotionParams = DEFAULT_MOTION,
) -> list[np.ndarray]:
    """Frames ``t-1, t, t+1`` (each ``(size, size, 3)`` float32 in ``[0, 1]``) of a camera moving
    over the clean still ``image`` (``(H, W, 3)`` float in ``[0, 1]``).

    A square of ``u * short side`` (``u ~ U(crop_scale)``) is resized so that the output crop plus
    a margin (:meth:`MotionParams.margin`) fills it; the frames are sampled (bicubic, reflected
    borders only beyond the margin) from its middle: the middle frame with a sub-pixel offset, the
    neighbours with the motion of :class:`MotionParams` (``rng`` draws everything).
    """
    size = int(size)
    margin = params.margin(size)
    patch_side = size + 2 * margin
    h, w = image.shape[:2]
    region_side = min(h, w) * float(rng.uniform(*crop_scale))
    patch = _region(image, region_side, rng, patch_side)

    large = rng.random() < params.large_p
    limit = params.large_shift if large else params.shift
    speed = float(rng.uniform(0.0, limit))
    direction = float(rng.uniform(0.0, 2.0 * math.pi))
    velocity = speed * np.array([math.cos(direction), math.sin(direction)])
    base = rng.uniform(-0.5, 0.5, 2)
    maps = [_affine_map(size, patch_side, base, 0.0, 1.0)]
    for sign in (-1.0, 1.0):
        step = velocity + rng.normal(0.0, 0.15 * limit + 0.2, 2)
        norm = float(np.hypot(*step))
        if norm > limit:
            step *= limit / norm
        angle = math.radians(float(rng.uniform(-params.rotate_deg, params.rotate_deg)))
        zoom = 1.0 + float(rng.uniform(-params.zoom, params.zoom))
        mx, my = _affine_map(size, patch_side, base + sign * step, sign * angle, zoom**sign)
        if rng.random() < params.warp_p:
            field = _smooth_field(rng, size, params.warp_px)
            mx += field[..., 0]
            my += field[..., 1]
        maps.append((mx, my))
    prev_map, mid_map, next_map = maps[1], maps[0], maps[2]
    frames = [_remap(patch, *m) for m in (prev_map, mid_map, next_map)]
    if rng.random() < params.object_p:
        _paste_object(frames, image, region_side, patch_side, rng, params)
    return frames


# -- real clips --------------------------------------------------------------------------------


def read_clip_frames(
    path: str | Path, first: int, last: int, max_side: int | None = None, *, as_uint8: bool = False
) -> np.ndarray:
    """Frames ``first..last`` (inclusive, 0-based decode order) of a video file, decoded with PyAV.

    Returns ``(N, H, W, 3)`` RGB, float32 in ``[0, 1]`` (or uint8 with ``as_uint8``, 4x less
    memory); frames whose longer side exceeds ``max_side`` are reduced (area averaging). Raises
    :class:`~filmclean.errors.InputError` if the file cannot be read or has fewer frames.
    """
    import av
    import cv2

    path = Path(path)
    first, last = int(first), int(last)
    if first < 0 or last < first:
        raise InputError(f"invalid clip frame range {first}..{last}", path)
    if not path.is_file():
        raise InputError("clip not found", path)
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError("clip has no video stream", path)
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i < first:
                    continue
                if i > last:
                    break
                rgb = frame.to_ndarray(format="rgb24")
                h, w = rgb.shape[:2]
                if max_side is not None and max(h, w) > max_side:
                    f = max_side / max(h, w)
                    rgb = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
                frames.append(rgb)
    except InputError:
        raise
    except Exception as exc:  # PyAV errors, corrupt files
        raise InputError(f"cannot decode clip ({type(exc).__name__}: {exc})", path) from None
    if len(frames) < last - first + 1:
        raise InputError(f"clip has {first + len(frames)} frames, fewer than the {last + 1} asked for", path)
    out = np.stack(frames)
    return out if as_uint8 else out.astype(np.float32) / np.float32(255.0)


def _as_float(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame.astype(np.float32) * np.float32(1.0 / 255.0)
    return np.asarray(frame, dtype=np.float32)


def clip_triplet(
    frames: np.ndarray | Sequence[np.ndarray],
    size: int,
    rng: np.random.Generator,
    *,
    crop_scale: tuple[float, float] = (0.5, 1.0),
) -> list[np.ndarray]:
    """Three consecutive frames at a random position of ``frames`` (``(N, H, W, 3)`` uint8 or float
    in ``[0, 1]``, N >= 3), all cut by the same random square of ``u * short side`` (``u ~
    U(crop_scale)``) and resized to ``size``: a list of three ``(size, size, 3)`` float32."""
    n = len(frames)
    if n < 3:
        raise ValueError(f"a clip triplet needs at least 3 frames, got {n}")
    t = int(rng.integers(0, n - 2))
    h, w = frames[t].shape[:2]
    side = int(round(min(h, w) * float(rng.uniform(*crop_scale))))
    side = max(1, min(side, h, w))
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(0, w - side + 1))
    out = []
    for k in range(3):
        crop = _as_float(frames[t + k][y : y + side, x : x + side])
        out.append(np.clip(resize(np.ascontiguousarray(crop), size, size), 0.0, 1.0))
    return out


def clip_triplets(
    frames: np.ndarray | Sequence[np.ndarray],
    size: int,
    rng: np.random.Generator,
    count: int,
    *,
    crop_scale: tuple[float, float] = (0.5, 1.0),
) -> list[list[np.ndarray]]:
    """``count`` random triplets of :func:`clip_triplet`."""
    return [clip_triplet(frames, size, rng, crop_scale=crop_scale) for _ in range(int(count))]


def split_clip(n_frames: int, valid_share: float = 0.1) -> tuple[int, int]:
    """``(train, valid)`` frame counts of a clip range: the last ``max(3, round(share * n))``
    frames validate when at least 3 training frames remain, else none do."""
    n_valid = max(3, int(round(n_frames * valid_share)))
    if valid_share <= 0 or n_frames - n_valid < 3:
        return n_frames, 0
    return n_frames - n_valid, n_valid


# -- the network input -------------------------------------------------------------------------


def sequence_input(current: np.ndarray, prev: np.ndarray | None, next_: np.ndarray | None) -> np.ndarray:
    """The ``(11, H, W)`` stack of the damaged frames, built as the temporal pipeline does
    (a fresh :class:`~filmclean.temporal.SequenceAligner`, flow at full resolution)."""
    from filmclean.temporal import AlignOptions, SequenceAligner

    side = max(current.shape[:2])
    aligner = SequenceAligner(AlignOptions(flow_size=max(AlignOptions().flow_size, side)))
    return aligner.stack(current, 1, prev, 0, next_, 2)


def _augment_frames(frames: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same flip / 90-degree rotation for all frames, and a random time direction."""
    k = int(rng.integers(0, 4))
    flip = rng.random() < 0.5
    reverse = rng.random() < 0.5
    out = []
    for f in frames:
        if flip:
            f = f[:, ::-1]
        if k:
            f = np.rot90(f, k)
        out.append(np.ascontiguousarray(f, dtype=np.float32))
    return out[::-1] if reverse else out


def _to_chw(img: np.ndarray) -> torch.Tensor:
    if img.ndim == 2:
        img = img[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))


class TemporalDataset(Dataset):
    """Damaged frame triplets from clean stills (synthetic camera motion) and real clips.

    - ``clean_dir`` / ``names``: the stills (file stems in ``clean_dir``); item ``i`` uses still
      ``names[i // crops_per_image]`` unless it is a clip item;
    - ``clips``: real footage, each an array ``(N, H, W, 3)`` (uint8 or float in ``[0, 1]``) of
      consecutive frames, or a mapping ``{"path", "first", "last"}`` read with
      :func:`read_clip_frames` (kept as uint8); an item comes from a clip with probability
      ``clip_fraction`` (always when there are no stills), the clip chosen in proportion to its
      number of triplets;
    - ``len = crops_per_image * len(names)`` (``* len(clips)`` when there are no stills);
    - ``polarity`` / ``synth_params``: damage as :func:`~filmclean.train.synth.dustify_sequence`;
    - ``clean_fraction``: share of training items whose middle frame is undamaged;
    - ``validation``: the same items every epoch (no clean items).

    See the module docstring for how an item is made. Call :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        clean_dir: str | Path | None,
        size: int,
        names: Sequence[str],
        seed: int,
        polarity: str = "dark",
        epoch: int = 0,
        *,
        clips: Sequence[np.ndarray | Mapping[str, Any]] = (),
        clip_fraction: float = 0.3,
        validation: bool = False,
        crops_per_image: int = 1,
        crop_scale: tuple[float, float] = (0.5, 1.0),
        synth_params: dict[str, Any] | None = None,
        clean_fraction: float = 0.0,
        motion: MotionParams = DEFAULT_MOTION,
        missing_p: float = 0.15,
        both_missing_p: float = 0.15,
        cut_p: float = 0.05,
        cache_bytes: int = 1 << 30,
    ) -> None:
        from .synth import DamageParams, dustify_sequence

        self._dustify_sequence = dustify_sequence
        try:
            self._damage_params = (
                None
                if synth_params is None
                else DamageParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in synth_params.items()})
            )
        except (TypeError, ValueError) as exc:
            raise InputError(f"invalid synth_params: {exc}") from None
        self.size = int(size)
        self.names = list(names)
        self.seed = int(seed)
        self.polarity = polarity
        self.epoch = int(epoch)
        self.validation = bool(validation)
        self.crops_per_image = int(crops_per_image)
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.clean_fraction = float(clean_fraction)
        self.clip_fraction = float(clip_fraction)
        self.motion = motion
        self.missing_p, self.both_missing_p, self.cut_p = float(missing_p), float(both_missing_p), float(cut_p)
        self.cache_bytes = int(cache_bytes)
        self._cache: dict[str, np.ndarray] = {}
        self._cached = 0
        self.clips: list[np.ndarray] = []
        for clip in clips:
            if isinstance(clip, Mapping):
                clip = read_clip_frames(clip["path"], int(clip["first"]), int(clip["last"]), as_uint8=True)
            arr = np.asarray(clip)
            if arr.ndim != 4 or arr.shape[3] != 3:
                raise InputError(f"a clip must be frames (N, H, W, 3), got shape {arr.shape}")
            if len(arr) >= 3:
                self.clips.append(arr)
        weights = np.array([len(c) - 2 for c in self.clips], np.float64)
        self._clip_weights = weights / weights.sum() if len(weights) else weights
        self.paths: dict[str, Path] = {}
        if self.names:
            if clean_dir is None or not Path(clean_dir).is_dir():
                raise InputError("clean image folder not found", clean_dir)
            root = Path(clean_dir)
            available = {p.stem: p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
            for name in self.names:
                if name not in available:
                    raise InputError(f"no image named {name!r}", root)
                self.paths[name] = available[name]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.crops_per_image * (len(self.names) if self.names else len(self.clips))

    def _photo(self, name: str) -> np.ndarray:
        img = self._cache.get(name)
        if img is not None:
            return img
        img = read_image(self.paths[name])
        short = min(img.shape[:2])
        # the smallest region (crop_scale[0] of the short side) becomes size + 2 * margin pixels
        keep = int(math.ceil((self.size + 2 * self.motion.margin(self.size)) / self.crop_scale[0]))
        if short > keep:
            f = keep / short
            img = resize(img, max(keep, int(round(img.shape[1] * f))), max(keep, int(round(img.shape[0] * f))))
        if self._cached + img.nbytes <= self.cache_bytes:
            self._cache[name] = img
            self._cached += img.nbytes
        return img

    def _clip_item(self, rng: np.random.Generator) -> list[np.ndarray]:
        j = int(rng.choice(len(self.clips), p=self._clip_weights)) if len(self.clips) > 1 else 0
        return clip_triplet(self.clips[j], self.size, rng, crop_scale=self.crop_scale)

    def _foreign_frame(self, index: int, rng: np.random.Generator) -> np.ndarray:
        """A frame of another picture (a scene cut): another still, else another clip, else a far
        part of the same clip or still."""
        own = self.names[index // self.crops_per_image] if self.names else None
        others = [n for n in self.names if n != own]
        if others:
            photo = self._photo(others[int(rng.integers(0, len(others)))])
            side = min(photo.shape[:2]) * rng.uniform(*self.crop_scale)
            return np.clip(_region(photo, side, rng, self.size), 0.0, 1.0)
        if self.clips:
            clip = self.clips[int(rng.integers(0, len(self.clips)))]
            return clip_triplet(clip, self.size, rng, crop_scale=self.crop_scale)[1]
        photo = self._photo(own)  # type: ignore[arg-type]
        side = min(photo.shape[:2]) * rng.uniform(*self.crop_scale)
        return np.clip(np.rot90(_region(photo, side, rng, self.size), 2), 0.0, 1.0)

    def frames(self, index: int) -> tuple[list[np.ndarray], np.random.Generator]:
        """The three clean frames of item ``index`` after augmentation (flip, rotation, time
        direction), before sequence events and damage; and the generator of the sequence events."""
        epoch = VALID_EPOCH if self.validation else self.epoch
        source = sample_rng(self.seed, epoch, index, STREAM_SOURCE)
        rng = sample_rng(self.seed, epoch, index, STREAM_CROP)
        from_clip = bool(self.clips) and (not self.names or source.random() < self.clip_fraction)
        if from_clip:
            frames = self._clip_item(rng)
        else:
            photo = self._photo(self.names[index // self.crops_per_image])
            frames = camera_motion_triplet(photo, self.size, rng, crop_scale=self.crop_scale, params=self.motion)
        frames = _augment_frames(frames, sample_rng(self.seed, epoch, index, STREAM_AUGMENT))
        return frames, sample_rng(self.seed, epoch, index, STREAM_SEQUENCE)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        epoch = VALID_EPOCH if self.validation else self.epoch
        clean, events = self.frames(index)
        # sequence events: drawn in a fixed order whether used or not
        u = events.random(4)
        side = int(events.integers(0, 2))  # 0: previous, 1: next
        gains = np.exp(events.normal(0.0, self.motion.flicker, 2))
        present = [True, True]
        if u[0] < self.both_missing_p:
            present = [False, False]
        elif u[1] < self.missing_p:
            present[side] = False
        frames = list(clean)
        if u[2] < self.cut_p and present[side]:
            frames[2 * side] = self._foreign_frame(index, events)
        if u[3] < self.motion.flicker_p:
            for k, g in zip((0, 2), gains):
                frames[k] = np.clip(frames[k] * np.float32(g), 0.0, 1.0)

        damage_rng = sample_rng(self.seed, epoch, index, STREAM_DAMAGE)
        keep_clean = self.clean_fraction > 0 and not self.validation and damage_rng.random() < self.clean_fraction
        damaged, masks = self._dustify_sequence(frames, damage_rng, params=self._damage_params, polarity=self.polarity)
        target = clean[1]
        if keep_clean:
            damaged[1], masks[1] = target, np.zeros(target.shape[:2], np.float32)
            if damage_rng.random() < 0.5:  # the neighbours undamaged too
                damaged[0], damaged[2] = frames[0], frames[2]
        stack = sequence_input(
            np.asarray(damaged[1], np.float32),
            np.asarray(damaged[0], np.float32) if present[0] else None,
            np.asarray(damaged[2], np.float32) if present[1] else None,
        )
        return {
            "input": torch.from_numpy(stack),
            "target": _to_chw(target),
            "mask": _to_chw(np.asarray(masks[1], dtype=np.float32)),
            "index": index,
        }
