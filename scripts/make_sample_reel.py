"""Make the sample reel used by the README's first command, offline and deterministically.

A slow camera move over scikit-image's ``coffee`` photograph (a held-out image: training never sees
it), damaged with filmclean's film-damage synthesis (dust and hairs new on every frame, scratches
that persist and drift), encoded as 10-bit ProRes 422 HQ in a .mov with a 48 kHz stereo PCM track.
Also writes the undamaged clip (``*_clean.mov``) so the restoration can be scored.

    python scripts/make_sample_reel.py samples/sample_reel.mov [--frames 48]
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def camera_move(photo: np.ndarray, n: int, width: int, height: int) -> list[np.ndarray]:
    """``n`` crops of ``width x height`` sliding diagonally with a slight zoom (float RGB [0,1])."""
    import cv2

    h, w = photo.shape[:2]
    frames = []
    for i in range(n):
        t = i / max(1, n - 1)
        zoom = 1.0 + 0.08 * t
        cw, ch = width / zoom * (w / width) * 0.9, height / zoom * (w / width) * 0.9
        cx = cw / 2 + (w - cw) * (0.15 + 0.7 * t)
        cy = ch / 2 + (h - ch) * (0.3 + 0.4 * t)
        m = np.array([[cw / width, 0, cx - cw / 2], [0, ch / height, cy - ch / 2]], np.float64)
        frames.append(
            cv2.warpAffine(
                photo,
                m,
                (width, height),
                flags=cv2.WARP_INVERSE_MAP | cv2.INTER_CUBIC,
                borderMode=cv2.BORDER_REFLECT101,
            )
        )
    return [np.clip(f, 0, 1).astype(np.float32) for f in frames]


def write_mov(path: Path, frames: list[np.ndarray], fps: int = 24, audio: bool = True) -> None:
    tmp = path.with_name(path.stem + ".partial" + path.suffix)
    with av.open(str(tmp), "w") as c:
        v = c.add_stream("prores_ks", rate=Fraction(fps))
        v.width, v.height = frames[0].shape[1], frames[0].shape[0]
        v.pix_fmt = "yuv422p10le"
        v.options = {"profile": "3"}
        v.codec_context.color_primaries = 1
        v.codec_context.color_trc = 1
        v.codec_context.colorspace = 1
        v.codec_context.color_range = 1
        a = None
        if audio:
            a = c.add_stream("pcm_s16le", rate=48000)
            a.layout = "stereo"
        for f in frames:
            vf = av.VideoFrame.from_ndarray(np.round(f * 65535).astype(np.uint16), format="rgb48le")
            vf = vf.reformat(format="yuv422p10le", dst_colorspace="ITU709", dst_color_range="MPEG")
            for p in v.encode(vf):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if a is not None:
            n = int(48000 * len(frames) / fps)
            t = np.arange(n) / 48000
            tone = (0.2 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
            samples = np.stack([tone, tone], axis=0).reshape(1, -1, order="F")
            for start in range(0, n, 1024):
                chunk = np.ascontiguousarray(samples[:, 2 * start : 2 * min(n, start + 1024)])
                af = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
                af.sample_rate = 48000
                af.pts = start
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output", type=Path)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="640x400")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--amount", type=float, default=0.1, help="damage amount (0..1) of the synthesis")
    args = ap.parse_args()
    from skimage import data

    from filmclean.train.synth import DamageParams, dustify_sequence

    width, height = (int(v) for v in args.size.split("x"))
    photo = data.coffee().astype(np.float32) / 255.0
    clean = camera_move(photo, args.frames, width, height)
    damaged, _ = dustify_sequence(clean, args.seed, DamageParams(amount=args.amount), polarity="dark")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_mov(args.output, damaged)
    write_mov(args.output.with_name(args.output.stem + "_clean.mov"), clean, audio=False)
    print(f"wrote {args.output} and {args.output.stem}_clean.mov ({args.frames} frames, {width}x{height})")


if __name__ == "__main__":
    main()
