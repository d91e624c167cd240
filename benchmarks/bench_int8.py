"""What int8 inference would buy: ONNX Runtime static quantization of a mask model, timed and compared.

Quantizes ``--model`` (an exported ``.onnx``) with ONNX Runtime's ``quantize_static`` (QDQ format,
per-channel int8 weights, uint8 activations calibrated on ``--calib`` 256-px crops of the photographs
in ``--corpus``), then prints seconds per ``--tile`` x ``--tile`` tile for the float and the int8
model on ``--threads`` threads, and on held-out 256-px crops of the same folder how often the two
agree on the thresholded mask. The int8 model is written to ``--out`` for inspection; filmclean does
not load it (the product's contract that pixels below the threshold pass through unchanged needs a
mask that does not move with quantization). A measurement for planning, not a product path::

    python benchmarks/bench_int8.py --model models/default.onnx --corpus data/corpus
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from filmclean.evaluation.pairs import crops_of, open_pairs


class _Crops(CalibrationDataReader):
    def __init__(self, name: str, crops: list[np.ndarray]) -> None:
        self._it = iter([{name: c.transpose(2, 0, 1)[None].astype(np.float32)} for c in crops])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _session(path: Path, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _seconds(sess: ort.InferenceSession, x: np.ndarray, repeat: int) -> float:
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x})
    t = time.perf_counter()
    for _ in range(repeat):
        sess.run(None, {name: x})
    return (time.perf_counter() - t) / repeat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("models/default.onnx"))
    ap.add_argument("--corpus", required=True, help="folder of clean photographs")
    ap.add_argument("--calib", type=int, default=16, help="calibration crops")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--out", type=Path, default=None, help="where to keep the int8 model")
    args = ap.parse_args()

    pairs = crops_of(open_pairs(args.corpus, size="full", split="all"), 256, 2)
    crops = [pairs.load(n).clean for n in pairs.names]
    calib, check = crops[0::2][: args.calib], crops[1::2]
    float_sess = _session(args.model, args.threads)
    name = float_sess.get_inputs()[0].name
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        out = args.out or Path(tmp) / "int8.onnx"
        quant_pre_process(str(args.model), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(out),
            _Crops(name, calib),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        int8_sess = _session(out, args.threads)
        x = np.random.default_rng(0).random((1, 3, args.tile, args.tile), np.float32)
        t_float, t_int8 = _seconds(float_sess, x, args.repeat), _seconds(int8_sess, x, args.repeat)
        agree, moved = [], []
        for c in check:
            inp = {name: c.transpose(2, 0, 1)[None].astype(np.float32)}
            m0, m1 = float_sess.run(None, inp)[1], int8_sess.run(None, inp)[1]
            agree.append(float(((m0 >= args.threshold) == (m1 >= args.threshold)).mean()))
            moved.append(float(np.abs(m0 - m1).max()))
    print(f"{args.model}: {args.tile}x{args.tile} tile, {args.threads} threads")
    print(f"  float32 {t_float:.3f} s   int8 {t_int8:.3f} s   speed-up {t_float / t_int8:.2f}x")
    print(
        f"  thresholded mask agreement on {len(check)} crops: mean {100 * np.mean(agree):.2f} %, "
        f"worst {100 * min(agree):.2f} %; largest probability change {max(moved):.3f}"
    )


if __name__ == "__main__":
    main()
