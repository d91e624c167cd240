"""GPU check: the shipped models on a GPU against the CPU result, and frames per second.

Run by ``benchmarks/gpu_check.sh`` (which installs what is missing first); on its own::

    python benchmarks/gpu_check.py                  # needs an NVIDIA GPU
    python benchmarks/gpu_check.py --device cpu --sizes 256 --frames 3   # the same checks on the CPU

For each shipped model (``models/default.*``; ``models/temporal.*`` with ``--temporal``) and each
runtime that can run here -- PyTorch in float32 and float16, ONNX Runtime's CUDA provider, its
TensorRT provider where it is installed (``--device cpu``: PyTorch float32 and ONNX Runtime on the
CPU) -- it prints:

- **parity** on a generated test picture (a smooth scene with grain, specks, a hair and a
  scratch) against ONNX Runtime on the CPU: the largest difference of the restored picture, how
  many pixels' repair decisions (damage probability at or above the threshold) differ, and how many
  pixels are repaired by each;
- **speed**: seconds per frame and frames per second of the model alone (``restore`` of one frame,
  tiling and compositing included) at each of ``--sizes``, and end to end (``restore_video`` of a
  generated 1080p FFV1 clip, decode and encode included) with every frame alone and as ``restore``
  runs by default (the spike test in front of the single-frame model).

A line starting ``FAIL`` means a runtime's repairs differ from the CPU's by more than
``--tolerance`` of the pixels; the exit status is then 1. One ``--json`` file keeps every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SIZES = {"256": (256, 256), "720p": (720, 1280), "1080p": (1080, 1920), "4K": (2160, 3840)}


def test_picture(h: int = 384, w: int = 512, seed: int = 0) -> np.ndarray:
    """A deterministic damaged test picture ``(h, w, 3)`` float32 in ``[0, 1]``: smooth shapes and
    gradients with grain, dark and light specks, a curved hair and a vertical scratch."""
    import cv2

    rng = np.random.default_rng(seed)
    low = rng.random((h // 32 + 2, w // 32 + 2, 3)).astype(np.float32)
    pic = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pic = 0.25 + 0.5 * np.clip(pic, 0, 1) * (0.6 + 0.4 * np.sin(xx / 37.0)[..., None])
    cv2.circle(pic, (w // 3, h // 2), h // 6, (0.8, 0.7, 0.5), -1, cv2.LINE_AA)
    cv2.rectangle(pic, (w // 2, h // 5), (w // 2 + w // 5, h // 5 + h // 4), (0.2, 0.3, 0.4), -1)
    pic += rng.normal(0, 0.015, pic.shape).astype(np.float32)  # grain
    for _ in range(40):  # specks
        y, x, r = int(rng.integers(0, h)), int(rng.integers(0, w)), int(rng.integers(1, 5))
        v = float(rng.choice([0.03, 0.95]))
        cv2.circle(pic, (x, y), r, (v, v, v), -1, cv2.LINE_AA)
    pts = np.stack([np.linspace(w * 0.6, w * 0.8, 30), h * 0.6 + 25 * np.sin(np.linspace(0, 5, 30))], 1)
    cv2.polylines(pic, [pts.astype(np.int32)], False, (0.05, 0.05, 0.05), 1, cv2.LINE_AA)  # a hair
    pic[:, int(w * 0.9)] = 0.92  # a scratch
    return np.clip(pic, 0, 1).astype(np.float32)


@dataclass
class Runtime:
    """One way of running a model: a name and the arguments of :func:`filmclean.model.load_model`."""

    name: str
    backend: str
    device: str
    fp16: bool | None = None
    tensorrt: bool = False


def runtimes(device: str) -> list[Runtime]:
    """What can run here: on ``cuda``, PyTorch float32/float16, ONNX Runtime CUDA and (where its
    provider is installed) TensorRT; on ``cpu``, PyTorch and ONNX Runtime."""
    if device == "cpu":
        return [Runtime("torch cpu fp32", "torch", "cpu"), Runtime("onnx cpu", "onnx", "cpu")]
    found = [
        Runtime("torch cuda fp32", "torch", "cuda", fp16=False),
        Runtime("torch cuda fp16", "torch", "cuda", fp16=True),
    ]
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
    except ImportError:
        providers = []
    if "CUDAExecutionProvider" in providers:
        found.append(Runtime("onnx cuda", "onnx", "cuda"))
    else:
        print("onnx cuda: skipped (ONNX Runtime has no CUDA provider here: install onnxruntime-gpu)")
    if "TensorrtExecutionProvider" in providers:
        found.append(Runtime("onnx tensorrt fp16", "onnx", "cuda", tensorrt=True))
    return found


def load(model: Path, rt: Runtime, tile: int | None):
    """A :class:`filmclean.engine.Restorer` of ``model`` on runtime ``rt``."""
    from filmclean.engine import RestoreOptions, Restorer
    from filmclean.model import load_model

    path = model.with_suffix(".onnx" if rt.backend == "onnx" else ".safetensors")
    be = load_model(path, backend=rt.backend, device=rt.device, fp16=rt.fp16)
    if rt.tensorrt:
        import onnxruntime as ort

        cache = Path(tempfile.gettempdir()) / "filmclean-trt"
        cache.mkdir(exist_ok=True)
        trt = {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}
        be.session = ort.InferenceSession(
            str(path), providers=[("TensorrtExecutionProvider", trt), "CUDAExecutionProvider", "CPUExecutionProvider"]
        )
    return Restorer(be, RestoreOptions(tile=tile))


def restore_one(restorer, frame: np.ndarray, stack: np.ndarray | None):
    return restorer.restore(frame, stack) if restorer.temporal else restorer.restore(frame)


def parity(model: Path, rt: Runtime, reference, frame: np.ndarray, stack: np.ndarray | None) -> dict[str, Any]:
    """``rt``'s result on ``frame`` against ``reference`` (a :class:`RestoredFrame` from ONNX
    Runtime on the CPU)."""
    r = load(model, rt, tile=None)
    res = restore_one(r, frame, stack)
    thr = r.options.threshold
    out: dict[str, Any] = {"max_abs_diff": float(np.abs(res.image - reference.image).max())}
    if res.mask is not None and reference.mask is not None:
        a, b = res.mask >= thr, reference.mask >= thr
        out.update(
            decisions_differ=int((a != b).sum()),
            repaired=int((res.image != frame).any(axis=-1).sum()),
            repaired_cpu=int((reference.image != frame).any(axis=-1).sum()),
            pixels=int(a.size),
        )
    return out


def speed(model: Path, rt: Runtime, size: str, repeat: int) -> dict[str, Any]:
    """Seconds per frame of the model alone (one frame restored: tiles, network, compositing)."""
    h, w = SIZES[size]
    r = load(model, rt, tile=None if rt.device == "cuda" else 4096)
    rng = np.random.default_rng(0)
    frame = rng.random((h, w, 3), dtype=np.float32)
    stack = None
    if r.temporal:
        from filmclean.temporal import build_stack

        stack = build_stack(frame, np.roll(frame, 2, axis=1), np.roll(frame, -2, axis=1))
    restore_one(r, frame, stack)  # warm-up: sessions, kernels, engines
    _sync(rt)
    t = time.perf_counter()
    for _ in range(repeat):
        restore_one(r, frame, stack)
    _sync(rt)
    sec = (time.perf_counter() - t) / repeat
    return {"s_per_frame": sec, "fps": 1.0 / sec}


def _sync(rt: Runtime) -> None:
    if rt.device == "cuda" and rt.backend == "torch":
        import torch

        torch.cuda.synchronize()


def end_to_end(model: Path, rt: Runtime, frames: int, temporal: bool) -> dict[str, Any]:
    """``restore_video`` of a generated 1080p FFV1 clip of ``frames`` frames: seconds per frame."""
    import av

    from filmclean.pipeline import VideoOptions, restore_video

    h, w = SIZES["1080p"]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.mkv", Path(tmp) / "out.mkv"
        rng = np.random.default_rng(0)
        base = (rng.random((h // 8, w // 8 + frames, 3)) * 255).astype(np.uint8).repeat(8, 0).repeat(8, 1)
        with av.open(str(src), "w") as c:
            s = c.add_stream("ffv1", rate=24)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            for i in range(frames):
                f = av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:, 8 * i : 8 * i + w]), format="rgb24")
                for p in s.encode(f):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        r = load(model, rt, tile=None if rt.device == "cuda" else 4096)
        r.restore(np.zeros((64, 64, 3), np.float32))
        stats = restore_video(src, dst, r, VideoOptions(temporal=temporal), quiet=True)
    return {"s_per_frame": stats.seconds / stats.frames, "fps": stats.frames / stats.seconds, "frames": stats.frames}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--sizes", default="1080p,4K", help=f"comma list of {', '.join(SIZES)}")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--frames", type=int, default=24, help="frames of the end-to-end clip (0: no end-to-end rows)")
    ap.add_argument("--temporal", action="store_true", help="also the shipped temporal network")
    ap.add_argument(
        "--tolerance", type=float, default=0.005, help="largest share of repair decisions allowed to differ"
    )
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = ap.parse_args(argv)

    from filmclean.model import default_model_paths
    from filmclean.temporal import build_stack

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("gpu_check: PyTorch sees no CUDA GPU (use --device cpu to check the script itself)", file=sys.stderr)
            return 2
        print(f"GPU: {torch.cuda.get_device_name(0)}; PyTorch {torch.__version__}")
    stems = ["default"] + (["temporal"] if args.temporal else [])
    found = runtimes(args.device)
    report: dict[str, Any] = {"device": args.device, "models": {}}
    failed = False
    frame = test_picture()
    shifted = np.roll(frame, 3, axis=1), np.roll(frame, -3, axis=1)
    for stem in stems:
        st, onnx_path = default_model_paths(stem)
        if st is None or onnx_path is None:
            print(f"{stem}: not installed (models/{stem}.safetensors and .onnx)", file=sys.stderr)
            return 2
        model = st.with_suffix("")
        cpu = load(model, Runtime("onnx cpu", "onnx", "cpu"), tile=None)
        stack = build_stack(frame, *shifted) if cpu.temporal else None
        reference = restore_one(cpu, frame, stack)
        rows: dict[str, Any] = {}
        for rt in found:
            row: dict[str, Any] = {"parity": parity(model, rt, reference, frame, stack)}
            p = row["parity"]
            line = f"{stem:<9}{rt.name:<20} max |diff| {p['max_abs_diff']:.2e}"
            if "decisions_differ" in p:
                share = p["decisions_differ"] / p["pixels"]
                line += (
                    f"; repair decisions differ at {p['decisions_differ']} of {p['pixels']} px ({100 * share:.3f} %);"
                    f" repaired {p['repaired']} px (CPU {p['repaired_cpu']})"
                )
                if share > args.tolerance:
                    failed = True
                    line = "FAIL " + line
            print(line, flush=True)
            for size in args.sizes.split(","):
                row[size] = speed(model, rt, size, args.repeat)
                print(
                    f"{stem:<9}{rt.name:<20} model {size:<6} {row[size]['s_per_frame']:.3f} s/frame  {row[size]['fps']:.1f} fps",
                    flush=True,
                )
            rows[rt.name] = row
        if args.frames and stem == "default":
            for rt in found:
                if rt.name.endswith("fp32") and args.device == "cuda":
                    continue  # end to end with the runtimes a user would run
                for temporal in (False, True):
                    e = end_to_end(model, rt, args.frames, temporal)
                    how = "temporal (spike test)" if temporal else "every frame alone"
                    rows[rt.name][f"e2e_{'temporal' if temporal else 'alone'}"] = e
                    print(
                        f"{stem:<9}{rt.name:<20} end to end 1080p FFV1, {how}: {e['s_per_frame']:.3f} s/frame  {e['fps']:.1f} fps",
                        flush=True,
                    )
        report["models"][stem] = rows
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
