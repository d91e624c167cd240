"""Export a filmclean network to a single-file ONNX model and check it against PyTorch.

The ONNX graph follows the network contract of :mod:`filmclean.nets`: one input ``input``
``(N, 3, H, W)`` float32 in ``[0, 1]`` with dynamic ``N``, ``H``, ``W`` (``H``, ``W`` multiples of
the network's ``size_multiple``), output ``image`` ``(N, 3, H, W)`` and, for networks with
``has_mask``, ``mask`` ``(N, 1, H, W)``. ``metadata_props`` carry ``filmclean.arch``,
``filmclean.config`` and ``filmclean.info`` (copied from the source model) plus
``filmclean.size_multiple``, ``filmclean.receptive_radius`` and ``filmclean.has_mask`` (JSON values),
so :func:`filmclean.modelfile.read_spec` reads an exported file like a ``.safetensors`` one, and
``filmclean.source_sha256``, the SHA-256 of the source ``.safetensors`` file, which
:func:`filmclean.model.load_model` checks before using an export in place of its source.

``fp16=True`` stores weights and computes in float16 while the graph's input and outputs stay
float32 (a ``Cast`` after the input and before each output), so callers feed the same arrays as for
a float32 export; the parity tolerance is loosened accordingly (:data:`TOLERANCE_FP16`).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelError, OutputError
from .io import write_bytes_atomically

if TYPE_CHECKING:
    import onnx
    from torch import nn

    from .backends import NetworkInfo

TOLERANCE_FP32 = 1e-3
TOLERANCE_FP16 = 2e-2


def _load_source(model_path: Path):
    """``(net, metadata dict)`` from a filmclean model file, a training checkpoint or a run folder.

    The metadata includes ``filmclean.source_sha256``, the SHA-256 of the file the weights came from
    (taken before reading them)."""
    from safetensors import safe_open

    from .modelfile import (
        META_ARCH,
        META_CONFIG,
        META_INFO,
        META_SOURCE_SHA256,
        checkpoint_network,
        is_training_checkpoint,
        load_torch_network,
        sha256_file,
    )

    if model_path.is_dir():
        model_path = model_path / "model.safetensors"
        if not model_path.is_file():
            raise ModelError("training run folder has no model.safetensors yet", model_path)
    if not model_path.is_file():
        raise ModelError("model file not found", model_path)
    if model_path.suffix.lower() != ".safetensors":
        raise ModelError("expected a filmclean .safetensors model (or a training run folder)", model_path)

    try:
        digest = sha256_file(model_path)
    except OSError as exc:
        raise ModelError(f"cannot read model file ({exc.strerror})", model_path) from None
    if is_training_checkpoint(model_path):
        net, arch, arch_config = checkpoint_network(model_path)
        meta = {
            META_ARCH: arch,
            META_CONFIG: json.dumps(dict(arch_config), sort_keys=True),
            META_INFO: json.dumps({"source": "training checkpoint"}),
            META_SOURCE_SHA256: digest,
        }
        return net, meta
    net, _spec = load_torch_network(model_path)
    with safe_open(str(model_path), framework="pt") as f:
        raw = f.metadata() or {}
    meta = {k: raw[k] for k in (META_ARCH, META_CONFIG, META_INFO) if k in raw}
    meta.setdefault(META_INFO, "{}")
    meta[META_SOURCE_SHA256] = digest
    return net, meta


def _test_shape(multiple: int, batch: int, rows: int, cols: int, channels: int = 3) -> tuple[int, int, int, int]:
    return (batch, channels, multiple * rows, multiple * cols)


def _cells(multiple: int, target: int) -> int:
    return max(1, -(-target // multiple))


def export_onnx(
    model_path: str | Path,
    out_path: str | Path,
    fp16: bool = False,
    opset: int = 17,
    check: bool = True,
) -> dict[str, Any]:
    """Export ``model_path`` to ``out_path`` (atomic write) and return a report.

    ``model_path``: a filmclean ``.safetensors`` model, a training ``checkpoint.safetensors``, or a
    training run folder (its ``model.safetensors``). The graph is traced at one shape and, with
    ``check``, run by ONNX Runtime (``CPUExecutionProvider``) at a different, non-square shape with
    batch 2 (sizes multiples of ``size_multiple``) and compared with the float32 PyTorch network.
    ``onnx.checker.check_model`` always runs. Raises :class:`~filmclean.errors.ModelError` when the
    difference exceeds the tolerance (1e-3, or 2e-2 with ``fp16``); nothing is written then.

    Returns ``{"path", "fp16", "opset", "outputs", "size_multiple", "receptive_radius", "has_mask",
    "bytes", "max_abs_diff" (None without check), "tolerance", "test_shape", "providers"}``.
    """
    from .nets import network_info

    model_path = Path(model_path)
    out_path = Path(out_path)
    net, meta = _load_source(model_path)
    net = net.float().eval()
    info = network_info(net)
    outputs = ["image", "mask"] if info.has_mask else ["image"]
    model = _trace(net, info, outputs, fp16, opset, model_path)
    _set_metadata(model, meta, info, fp16)
    data = _checked_bytes(model, out_path)
    report: dict[str, Any] = {
        "path": str(out_path),
        "fp16": bool(fp16),
        "opset": int(opset),
        "outputs": outputs,
        **dataclasses.asdict(info),
        "bytes": len(data),
        "max_abs_diff": None,
        "tolerance": TOLERANCE_FP16 if fp16 else TOLERANCE_FP32,
        "test_shape": None,
        "providers": None,
    }
    if check:
        diff, shape, providers = _compare_with_torch(net, info, outputs, data, model_path)
        report.update(max_abs_diff=diff, test_shape=list(shape), providers=providers)
        if not diff <= report["tolerance"]:
            raise ModelError(
                f"ONNX Runtime output differs from PyTorch by {diff:.3g} (tolerance {report['tolerance']:.0e}); "
                "not written",
                model_path,
            )
    _write(out_path, data)
    return report


def _float_io(net: nn.Module, half: bool) -> nn.Module:
    """``net`` behind float32 input and outputs; with ``half`` a float16 copy of it computes inside."""
    import torch
    from torch import nn

    class _Export(nn.Module):
        """Float32 in, float32 out; optionally float16 inside."""

        def __init__(self, inner: nn.Module, half: bool) -> None:
            super().__init__()
            self.inner = copy.deepcopy(inner).half() if half else inner
            self.half_ = half

        def forward(self, x: torch.Tensor):
            out = self.inner(x.half() if self.half_ else x)
            outs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
            return tuple(o.float() for o in outs) if self.half_ else (outs if len(outs) > 1 else outs[0])

    return _Export(net, half).eval()


def _trace(
    net: nn.Module, info: NetworkInfo, outputs: list[str], fp16: bool, opset: int, model_path: Path
) -> onnx.ModelProto:
    """Trace ``net`` (float32 I/O, see :func:`_float_io`) at one small shape into an ONNX model with
    dynamic batch, height and width; any exporter failure becomes a :class:`ModelError`."""
    import onnx
    import torch

    m = info.size_multiple
    wrapper = _float_io(net, fp16)
    shape = _test_shape(m, 1, _cells(m, 32), _cells(m, 48), info.in_channels)
    trace_x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    dynamic = {"input": {0: "batch", 2: "height", 3: "width"}}
    dynamic.update({name: {0: "batch", 2: "height", 3: "width"} for name in outputs})
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (trace_x,),
                buf,  # type: ignore[arg-type]  # the TorchScript exporter (dynamo=False) takes a file object
                dynamo=False,
                input_names=["input"],
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=int(opset),
                do_constant_folding=True,
            )
    except Exception as exc:
        raise ModelError(f"ONNX export failed ({type(exc).__name__}: {exc})", model_path) from None
    return onnx.load_from_string(buf.getvalue())


def _set_metadata(model: onnx.ModelProto, meta: dict[str, str], info: NetworkInfo, fp16: bool) -> None:
    """Replace ``model``'s ``metadata_props`` with the source's ``meta`` plus the network facts."""
    props = dict(meta)
    props.update(
        {
            "filmclean.size_multiple": json.dumps(info.size_multiple),
            "filmclean.receptive_radius": json.dumps(info.receptive_radius),
            "filmclean.has_mask": json.dumps(info.has_mask),
            "filmclean.in_channels": json.dumps(info.in_channels),
            "filmclean.fp16": json.dumps(bool(fp16)),
        }
    )
    del model.metadata_props[:]
    for key in sorted(props):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, props[key]


def _checked_bytes(model: onnx.ModelProto, out_path: Path) -> bytes:
    """``model`` serialized, after ``onnx.checker.check_model`` accepted it."""
    import onnx

    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelError(f"exported ONNX model fails onnx.checker ({exc})", out_path) from None
    return model.SerializeToString()


def _compare_with_torch(
    net: nn.Module, info: NetworkInfo, outputs: list[str], data: bytes, model_path: Path
) -> tuple[float, tuple[int, int, int, int], list[str]]:
    """Run the exported model ``data`` with ONNX Runtime (CPU) and ``net`` with PyTorch on the same
    random batch of 2, at another, non-square shape than the traced one. Returns ``(largest
    absolute difference over all outputs, the input shape, the session's providers)``."""
    import numpy as np
    import onnxruntime as ort
    import torch

    m = info.size_multiple
    shape = _test_shape(m, 2, _cells(m, 40), _cells(m, 72), info.in_channels)  # not the traced shape, not square
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = net(x)
    refs = [r.numpy() for r in (ref if isinstance(ref, (tuple, list)) else (ref,))]
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        got = sess.run(outputs, {"input": x.numpy()})
    except Exception as exc:
        raise ModelError(
            f"ONNX Runtime cannot run the exported model ({type(exc).__name__}: {exc})", model_path
        ) from None
    diff = max(
        float(np.max(np.abs(g.astype(np.float64) - r.astype(np.float64)))) for g, r in zip(got, refs, strict=True)
    )
    return diff, shape, sess.get_providers()


def _write(out_path: Path, data: bytes) -> None:
    """Write ``data`` to ``out_path`` atomically, creating its folder."""
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write ONNX model ({exc.strerror})", out_path) from None
    write_bytes_atomically(out_path, data)


__all__ = ["TOLERANCE_FP16", "TOLERANCE_FP32", "export_onnx"]
