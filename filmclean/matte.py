"""Protection mattes: the pixels a user never wants touched (titles, stars, glints, lettering).

A matte is a greyscale (or RGB: its brightest channel counts) picture, white where the picture is
protected: a single image for every frame; an image sequence (a folder or a glob), matched to an
image sequence's files by name (the file stem) or else by position, and to a reel's frames by the
number in its file names (``frame_000123.png`` for frame 123, from 0; frames without a file are not
protected, as ``filmclean review`` exports them); or a video, matched by frame number.
It may come from any editor, an edited ``--mask-out``, Nuke or Resolve. A pixel is protected where
the matte is above one half; such pixels pass through bit-identical, whatever the model or the
neighbours say.

Arrays: protection masks are ``(H, W)`` bool.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = ["Matte", "matte_of"]

VIDEO_EXTS = {".mkv", ".mov", ".mp4", ".avi", ".webm", ".mxf"}


def matte_of(values: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool from a decoded matte ``(H, W, 3)`` or ``(H, W)`` in ``[0, 1]``: above one half."""
    grey = values.max(axis=-1) if values.ndim == 3 else values
    return np.asarray(grey > 0.5)


class Matte:
    """A protection matte opened for one run; :meth:`get` gives the matte of one frame."""

    def __init__(self, path: str | Path) -> None:
        from .io.images import list_images

        self.path = Path(path)
        self._single: np.ndarray | None = None
        self._files: list[Path] = []
        self._by_stem: dict[str, Path] = {}
        self._video: Iterator[np.ndarray] | None = None
        self._video_at = -1
        self._video_frame: np.ndarray | None = None
        if self.path.suffix.lower() in VIDEO_EXTS:
            if not self.path.exists():
                raise InputError("matte not found", self.path)
            self.kind = "video"
        elif self.path.is_file():
            self.kind = "image"
        else:
            self.kind = "sequence"
            self._files = list_images(self.path)
            self._by_stem = {f.stem: f for f in self._files}

    def _check(self, mask: np.ndarray, shape: tuple[int, int], where: Path) -> np.ndarray:
        if mask.shape != shape:
            h, w = shape
            raise InputError(f"matte is {mask.shape[1]}x{mask.shape[0]}, the picture {w}x{h}", where)
        return mask

    def get(self, index: int, shape: tuple[int, int], name: str | None = None) -> np.ndarray:
        """The matte for frame number ``index`` (from 0 in the input reel or sequence) of size
        ``shape`` ``(H, W)``, or for the file whose stem is ``name``. Frames are asked for in
        increasing order when the matte is a video. One-line :class:`InputError` for a matte of
        another size or without the frame."""
        from .io.images import read_image

        if self.kind == "image":
            if self._single is None:
                self._single = matte_of(read_image(self.path).rgb)
            return self._check(self._single, shape, self.path)
        if self.kind == "sequence":
            f = self._by_stem.get(name) if name is not None else None
            if f is None and name is None:  # a reel's frame: the file named with its number, if any
                f = self._by_number().get(index)
                if f is None:
                    return np.zeros(shape, bool)
            if f is None:
                if not 0 <= index < len(self._files):
                    raise InputError(
                        f"no matte for frame {index} (the matte sequence has {len(self._files)})", self.path
                    )
                f = self._files[index]
            return self._check(matte_of(read_image(f).rgb), shape, f)
        return self._check(self._video_matte(index), shape, self.path)

    def _by_number(self) -> dict[int, Path]:
        """The sequence's files by the last number in their names (``frame_000123.png``: 123)."""
        import re

        found = {}
        for f in self._files:
            m = re.search(r"(\d+)\D*$", f.stem)
            if m:
                found[int(m.group(1))] = f
        return found

    def _video_matte(self, index: int) -> np.ndarray:
        from .io.video import VideoFrameItem, VideoReader

        if index < self._video_at:
            raise InputError(f"matte frames must be asked for in order ({index} after {self._video_at})", self.path)
        if self._video is None:
            reader = VideoReader(self.path)

            def frames() -> Iterator[np.ndarray]:
                with reader:
                    for item in reader:
                        if isinstance(item, VideoFrameItem):
                            yield matte_of(item.rgb)

            self._video = frames()
        while self._video_at < index:
            try:
                self._video_frame = next(self._video)
            except StopIteration:
                raise InputError(
                    f"no matte for frame {index} (the matte video has {self._video_at + 1})", self.path
                ) from None
            self._video_at += 1
        assert self._video_frame is not None
        return self._video_frame
