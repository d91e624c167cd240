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

With ONNX Runtime each model row also gives the network's work for the frame -- GFLOP of its
convolutions (two per multiply-add, counted on the ONNX graph for the tiles the plan computes) --
and the GFLOP/s achieved, beside what one plain 3x3 convolution reaches on the same cores and
threads (``plain convolution``): the distance to the machine's limit. The ratios the speed issue
asks for (4K / 1080p, end to end / model, temporal / single-frame) close the table, from the
same run.
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

from filmclean import DEFAULT_TILE

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
            "gflop": _plan_gflop(r, h, w),
        }
    frame = rng.random((h, w, 3), dtype=np.float32)
    r.restore(frame)  # warm-up (session init, allocator)
    t = time.perf_counter()
    for _ in range(args.repeat):
        r.restore(frame)
    sec = (time.perf_counter() - t) / args.repeat
    return {"backend": be.describe(), "s_per_frame": sec, "overlap": r.overlap, "gflop": _plan_gflop(r, h, w)}


def conv_gflop(onnx_path: str | Path, channels: int, height: int, width: int) -> float:
    """GFLOP of the convolutions (Conv nodes; 2 FLOP per multiply-add, bias ignored) of one
    ``(1, channels, height, width)`` input through the ONNX model at ``onnx_path``, from ONNX's
    shape inference. Other operators (pooling, resizing, element-wise) are not counted."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(onnx_path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, (1, channels, height, width), strict=True):
        d.ClearField("dim_param")
        d.dim_value = v
    model = shape_inference.infer_shapes(model)
    values = list(model.graph.value_info) + list(model.graph.output)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}
    weights = {w.name: list(w.dims) for w in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        if node.op_type != "Conv" or node.input[1] not in weights or node.output[0] not in shapes:
            continue
        out, w = shapes[node.output[0]], weights[node.input[1]]
        if 0 in out:
            raise ValueError(f"no static shape for {node.name} of {onnx_path}")
        per_output = 1
        for k in w[1:]:  # input channels per group x kernel
            per_output *= k
        n = 1
        for k in out:
            n *= k
        macs += n * per_output
    return 2.0 * macs / 1e9


def _plan_gflop(restorer, h: int, w: int) -> float | None:
    """The network's GFLOP for an ``h x w`` frame as the restorer's tile plan computes it (ONNX
    models only; ``None`` otherwise)."""
    path = getattr(restorer.backend, "model_file", None)
    if path is None or Path(path).suffix != ".onnx":
        return None
    grid, _ = restorer._plan(h, w)
    return len(grid) * conv_gflop(path, restorer.in_channels, grid.tile_h, grid.tile_w)


def child_plain(args) -> dict:
    """GFLOP/s of one plain 3x3 convolution (32 -> 32 channels over 1024 x 1024, the default
    model's widths and a tile-sized plane) in ONNX Runtime on the CPU with ``--threads``: what
    these cores reach on the operation the networks are made of (best of five runs)."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    c, side = 32, 1024
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((c, c, 3, 3)).astype(np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node],
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, side, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, side, side])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    so = ort.SessionOptions()
    if args.threads:
        so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random((1, c, side, side), dtype=np.float32)
    sess.run(None, {"x": x})
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        sess.run(None, {"x": x})
        best = min(best, time.perf_counter() - t)
    return {"gflop_s": 2.0 * c * c * 9 * side * side / best / 1e9, "onnx": onnx.__version__}


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
        "--tile",
        type=int,
        default=DEFAULT_TILE,
        help=f"tile size for the tiled rows (0 = untiled; default {DEFAULT_TILE}, the CLI's)",
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
    if args.mode == "plain":
        return child_plain(args)
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
    print(f"{'what':<34}{'backend':<28}{'s/frame':>9}{'peak RSS MB':>13}{'GFLOP':>8}{'GFLOP/s':>9}")
    model_s: dict[tuple[str, str, int], float] = {}
    e2e_s: dict[tuple[str, str], float] = {}
    for be in backends:
        for size in args.sizes.split(","):
            tiles = [args.tile] + ([] if args.no_untiled else [0])
            for tile in tiles:
                res = run_child(base + ["--backend", be, "--size", size, "--tile", str(tile)])
                model_s[(be, size, tile)] = res["s_per_frame"]
                what = f"model only {size} " + (f"tile {tile} ov {res['overlap']}" if tile else "untiled")
                flops = ""
                if res.get("gflop"):
                    flops = f"{res['gflop']:>8.1f}{res['gflop'] / res['s_per_frame']:>9.1f}"
                print(f"{what:<34}{res['backend']:<28}{res['s_per_frame']:>9.3f}{res['peak_rss_mb']:>13.0f}{flops}")
        if not args.no_e2e:
            # --no-temporal, then the default (a single-frame model: the spike test in front of it)
            for mode in ("off", "on"):
                res = run_child(
                    base + ["--backend", be, "--mode", "e2e", "--tile", str(args.tile), "--e2e-temporal", mode]
                )
                e2e_s[(be, mode)] = res["s_per_frame"]
                print(
                    f"{'end-to-end restore 1080p (FFV1)':<34}{res['backend']:<28}{res['s_per_frame']:>9.3f}"
                    f"{res['peak_rss_mb']:>13.0f}"
                )
                print(f"{'  of which model (+ alignment)':<34}{'':<28}{res['model_s_per_frame']:>9.3f}")
                if res.get("flow_s_per_frame"):
                    print(f"{'  of which optical flow':<34}{'':<28}{res['flow_s_per_frame']:>9.3f}")
    if "onnx" in backends or "auto" in backends:
        plain = run_child(base + ["--mode", "plain"])
        print(
            f"{'plain conv 3x3, 32 ch, 1024 px':<34}{'onnx (CPUExecutionProvider)':<28}{'':>9}{'':>13}{'':>8}"
            f"{plain['gflop_s']:>9.1f}"
        )
    print("ratios (this run):")
    for be in backends:
        one, four = model_s.get((be, "1080p", args.tile)), model_s.get((be, "4K", args.tile))
        if one and four:
            print(f"  {be}: 4K / 1080p model only {four / one:.2f}x (4x the pixels)")
        alone, spikes = e2e_s.get((be, "off")), e2e_s.get((be, "on"))
        if one and alone:
            print(f"  {be}: end to end / model only at 1080p {alone / one:.2f}x")
        if alone and spikes:
            print(f"  {be}: temporal (default) / every frame alone, end to end {spikes / alone:.2f}x")


if __name__ == "__main__":
    main()
