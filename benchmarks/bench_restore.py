"""Speed and memory of restoration: seconds per frame and peak RSS, printed as a table.

Each configuration runs in a fresh subprocess so its peak RSS (``ru_maxrss``) is its own.

    python benchmarks/bench_restore.py                       # the shipped default model
    python benchmarks/bench_restore.py --model run/model.safetensors --backend torch
    python benchmarks/bench_restore.py --arch maskguided     # random weights: speed only

Rows: model-only time on a 1080p / 4K frame, tiled and untiled, per backend; and an end-to-end
``restore`` of a short generated 1080p clip (decode + restore + FFV1 encode) against the model-only
time of the same frames, once with every frame alone (``--no-temporal``) and once as ``restore``
runs by default (for a single-frame model: the motion-compensated spike test in front of it, optical
flow included). A temporal model (``--model models/temporal.safetensors``) is timed on a moving
sequence, optical flow, alignment and the 11-channel network included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"1080p": (1080, 1920), "4K": (2160, 3840)}


def _restorer(args):
    """The restorer under test: a random network of ``--arch``, or ``--model`` (default: the shipped
    single-frame model) opened as ``filmclean restore`` opens it (:func:`filmclean.api.open_restorer`)."""
    from filmclean.api import open_restorer
    from filmclean.engine import Restorer

    if args.arch:
        return Restorer(_arch_backend(args), _options(args))
    return open_restorer(
        args.model, _options(args), backend=args.backend, device=args.device, threads=args.threads, temporal=False
    )


def _arch_backend(args):
    from filmclean.backends import TorchBackend
    from filmclean.model import load_model
    from filmclean.nets import build_network, network_info

    if args.arch:
        import torch

        torch.manual_seed(0)
        net = build_network(args.arch, json.loads(args.arch_config or "{}")).eval()
        if args.backend == "torch":
            return TorchBackend(net, network_info(net), device=args.device, threads=args.threads)
        from filmclean.modelfile import save_model
        from filmclean.onnx_export import export_onnx

        tmp = Path(tempfile.mkdtemp())
        st = save_model(net, args.arch, json.loads(args.arch_config or "{}"), tmp / "m.safetensors")
        export_onnx(st, tmp / "m.onnx", check=False)
        return load_model(tmp / "m.onnx", backend="onnx", device=args.device, threads=args.threads)
    raise ValueError("no --arch given")


def _options(args):
    from filmclean.engine import RestoreOptions

    return RestoreOptions(
        tile=None if args.tile == 0 else args.tile, overlap=args.overlap, batch=args.batch, tta=args.tta
    )


def child_model(args) -> dict:
    """Model-only: restore ``args.repeat`` random frames of one size; time per frame and peak RSS."""
    import numpy as np

    h, w = SIZES[args.size]
    r = _restorer(args)
    be = r.backend
    rng = np.random.default_rng(0)
    if r.temporal:
        # a temporal model: a moving sequence, so that every frame costs its own optical flow
        from filmclean.sequence import TemporalRestorer, Window

        base = rng.random((h // 8, w // 8 + 8 * (args.repeat + 3), 3), dtype=np.float32).repeat(8, 0).repeat(8, 1)
        seq = [np.ascontiguousarray(base[:, 3 * i : 3 * i + w]) for i in range(args.repeat + 3)]
        tr = TemporalRestorer(r, temporal=True)
        tr.restore(Window(seq[0], 0, None, seq[1]))  # warm-up
        t = time.perf_counter()
        for i in range(1, args.repeat + 1):
            tr.restore(Window(seq[i], i, seq[i - 1], seq[i + 1]))
        sec = (time.perf_counter() - t) / args.repeat
        return {
            "backend": be.describe() + " temporal",
            "s_per_frame": sec,
            "overlap": r.overlap,
            "flow_s_per_frame": tr.flow_seconds / (args.repeat + 1),
        }
    frame = rng.random((h, w, 3), dtype=np.float32)
    r.restore(frame)  # warm-up (session init, allocator)
    t = time.perf_counter()
    for _ in range(args.repeat):
        r.restore(frame)
    sec = (time.perf_counter() - t) / args.repeat
    return {"backend": be.describe(), "s_per_frame": sec, "overlap": r.overlap}


def child_e2e(args) -> dict:
    """End-to-end: a generated 1080p clip through ``restore_video`` vs the model time inside it."""
    import av
    import numpy as np

    from filmclean.pipeline import VideoOptions, restore_video

    tmp = Path(tempfile.mkdtemp())
    src = tmp / "in.mkv"
    h, w = SIZES["1080p"]
    rng = np.random.default_rng(0)
    with av.open(str(src), "w") as c:
        s = c.add_stream("ffv1", rate=24)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        base = (rng.random((h // 8, w // 8, 3)) * 255).astype(np.uint8).repeat(8, 0).repeat(8, 1)
        for i in range(args.repeat):
            f = av.VideoFrame.from_ndarray(np.roll(base, i * 3, axis=1), format="rgb24")
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    r = _restorer(args)
    be = r.backend
    r.restore(np.zeros((64, 64, 3), np.float32))
    stats = restore_video(src, tmp / "out.mkv", r, VideoOptions(temporal=args.e2e_temporal == "on"), quiet=True)
    how = " every frame alone"
    if stats.temporal:
        how = " temporal" if r.temporal else " spike test"
    return {
        "backend": be.describe() + how,
        "s_per_frame": stats.seconds / stats.frames,
        "model_s_per_frame": stats.model_seconds / stats.frames,
        "overlap": r.overlap,
        "flow_s_per_frame": stats.flow_seconds / stats.frames,
    }


def run_child(argv: list[str]) -> dict:
    code = (
        f"import resource, json, sys; sys.argv = {['bench', *argv]!r}; import runpy; "
        f"mod = runpy.run_path({__file__!r}, run_name='bench_child'); res = mod['child_main']();"
        "res['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; print('RESULT' + json.dumps(res))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[6:])
    raise RuntimeError(f"benchmark child failed:\n{out.stderr[-3000:]}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model file (default: the shipped default model)")
    p.add_argument("--arch", default=None, help="benchmark a randomly initialised registered network instead")
    p.add_argument("--arch-config", default=None, help="JSON constructor arguments for --arch")
    p.add_argument("--backend", default="onnx", choices=["auto", "torch", "onnx"])
    p.add_argument("--backends", default=None, help="comma list to compare, e.g. onnx,torch")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--tile", type=int, default=2048, help="tile size for the tiled rows (0 = untiled; 2048 = the CLI default)"
    )
    p.add_argument("--overlap", type=int, default=None)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--tta", type=int, default=1, choices=[1, 2, 4, 8], help="test-time augmentation (restore --tta)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--sizes", default="1080p,4K")
    p.add_argument("--no-untiled", action="store_true", help="skip whole-frame rows (they need a lot of memory)")
    p.add_argument("--no-e2e", action="store_true")
    p.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    p.add_argument("--e2e-temporal", default="on", choices=["on", "off"], help=argparse.SUPPRESS)
    p.add_argument("--size", default="1080p", help=argparse.SUPPRESS)
    return p


def child_main() -> dict:
    args = _parser().parse_args(sys.argv[1:])
    return child_e2e(args) if args.mode == "e2e" else child_model(args)


def main() -> None:
    args = _parser().parse_args()
    base: list[str] = []
    for k in ("model", "arch", "arch_config", "device", "threads", "overlap", "tta"):
        v = getattr(args, k)
        if v is not None:
            base += [f"--{k.replace('_', '-')}", str(v)]
    base += ["--batch", str(args.batch), "--repeat", str(args.repeat)]
    backends = args.backends.split(",") if args.backends else [args.backend]
    print(
        f"filmclean benchmark: {os.cpu_count()} CPU core(s); model {args.model or args.arch or 'default'}"
        + (f"; --tta {args.tta}" if args.tta > 1 else "")
    )
    print(f"{'what':<34}{'backend':<28}{'s/frame':>9}{'peak RSS MB':>13}")
    for be in backends:
        for size in args.sizes.split(","):
            tiles = [args.tile] + ([] if args.no_untiled else [0])
            for tile in tiles:
                res = run_child(base + ["--backend", be, "--size", size, "--tile", str(tile)])
                what = f"model only {size} " + (f"tile {tile} ov {res['overlap']}" if tile else "untiled")
                print(f"{what:<34}{res['backend']:<28}{res['s_per_frame']:>9.3f}{res['peak_rss_mb']:>13.0f}")
        if not args.no_e2e:
            # --no-temporal, then the default (a single-frame model: the spike test in front of it)
            for mode in ("off", "on"):
                res = run_child(
                    base + ["--backend", be, "--mode", "e2e", "--tile", str(args.tile), "--e2e-temporal", mode]
                )
                print(
                    f"{'end-to-end restore 1080p (FFV1)':<34}{res['backend']:<28}{res['s_per_frame']:>9.3f}"
                    f"{res['peak_rss_mb']:>13.0f}"
                )
                print(f"{'  of which model (+ alignment)':<34}{'':<28}{res['model_s_per_frame']:>9.3f}")
                if res.get("flow_s_per_frame"):
                    print(f"{'  of which optical flow':<34}{'':<28}{res['flow_s_per_frame']:>9.3f}")


if __name__ == "__main__":
    main()
