"""Inference backends: eager PyTorch and ONNX Runtime behind one call signature.

A backend is called with a batch of tiles ``(N, C, h, w)`` float32 numpy in ``[0, 1]`` (``C`` is
``info.in_channels``: 3 for RGB, 11 for the temporal stack; ``h, w`` multiples of
``info.size_multiple``) and returns ``(restored, mask)``: ``restored`` is
``(N, 3, h, w)`` float32, ``mask`` is ``(N, 1, h, w)`` float32 in ``[0, 1]`` or ``None`` when the
network predicts no mask.

``describe()`` reports what actually runs (ONNX Runtime may fall back from CUDA to the CPU
silently; the provider in use is read back from the session, never assumed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import ModelError


@dataclass(frozen=True)
class NetworkInfo:
    """What the engine needs to know of a network (or of its ONNX export).

    - ``size_multiple``: tile height and width must be multiples of it;
    - ``receptive_radius``: how far an output pixel sees; tiles overlapping by twice this give the
      whole-frame result;
    - ``has_mask``: the network returns ``(restored, mask)``, the mask being the damage probability;
    - ``in_channels``: 3 for single frames, 11 for the temporal stack
      (:data:`filmclean.temporal.STACK_CHANNELS`), 5 for a frame and a user's matte
      (:class:`filmclean.nets.maskguided.MatteGuidedNet`).
    """

    size_multiple: int = 1
    receptive_radius: int = 0
    has_mask: bool = False
    in_channels: int = 3

    @classmethod
    def of(cls, info: NetworkInfo | Mapping[str, Any]) -> NetworkInfo:
        """``info`` as a :class:`NetworkInfo` (from a mapping with the same keys, e.g. model-file
        metadata; missing keys take the defaults)."""
        if isinstance(info, NetworkInfo):
            return info
        return cls(
            size_multiple=int(info.get("size_multiple", 1)),
            receptive_radius=int(info.get("receptive_radius", 0)),
            has_mask=bool(info.get("has_mask", False)),
            in_channels=int(info.get("in_channels", 3)),
        )

    @property
    def temporal(self) -> bool:
        """Whether the network takes the temporal stack rather than one RGB frame."""
        return self.in_channels == 11  # filmclean.temporal.STACK_CHANNELS

    def __getitem__(self, key: str) -> Any:
        """Read access by field name, for code written against the former plain dict."""
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)


class Backend(Protocol):
    """Runs a network on batches of tiles (see the module docstring for the tensor contract)."""

    name: str
    device: str
    info: NetworkInfo

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...

    def describe(self) -> str: ...


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - torch always importable here
        return False


class TorchBackend:
    """Eager PyTorch. On CUDA the network runs in float16 (``fp16=True``, the default there)."""

    name = "torch"

    def __init__(
        self,
        net,
        info: NetworkInfo | Mapping[str, Any],
        device: str = "auto",
        fp16: bool | None = None,
        threads: int | None = None,
    ) -> None:
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise ModelError("--device cuda was asked for but PyTorch sees no CUDA GPU")
        self.threads = int(threads) if threads else None  # applied around each call, then restored
        self.model_file: Path | None = None  # the file loaded (set by filmclean.model.load_model)
        self.note: str | None = None  # something the user should know about how it was loaded
        self.device = device
        self.fp16 = (device == "cuda") if fp16 is None else bool(fp16 and device == "cuda")
        self.info = NetworkInfo.of(info)
        self.net = net.to(device).eval()
        if self.fp16:
            self.net = self.net.half()

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        if not self.threads:
            return self._run(batch)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self._run(batch)
        finally:
            torch.set_num_threads(previous)

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            if self.fp16:
                x = x.half()
            out = self.net(x)
            if isinstance(out, (tuple, list)):
                img, mask = out[0], out[1]
            else:
                img, mask = out, None
            img_np = img.float().cpu().numpy()
            mask_np = None if mask is None else mask.float().cpu().numpy()
        return img_np, mask_np

    def describe(self) -> str:
        return f"torch ({self.device}{', fp16' if self.fp16 else ''})"


ORT_CPU_FAST_WIDTH = 2016
"""Widest tile (pixels) that ONNX Runtime's CPU provider runs at full speed. Its MaxPool -- the
mask networks' top-hat cues take square maxima of 5 and 11 px over the whole input -- slows down
10-20x once the input is 2040 px wide or more (measured with ONNX Runtime 1.31 on the 2-core
machine: an 11-px MaxPool over 1120 rows took 9 ms at 1952 columns and 104-193 ms at 2040-3872;
the default model 1.18 s on a 1120x1952 tile and 1.74 s on a 1120x2048 one). The tile plan cuts
wider frames into tiles this wide at most (:meth:`filmclean.engine.Restorer._plan`)."""


class OnnxBackend:
    """ONNX Runtime with the CUDA provider when a GPU is usable, else the CPU provider."""

    name = "onnx"

    def __init__(
        self, path: str | Path, info: NetworkInfo | Mapping[str, Any], device: str = "auto", threads: int | None = None
    ) -> None:
        import onnxruntime as ort

        available = ort.get_available_providers()
        if device == "cuda" and "CUDAExecutionProvider" not in available:
            raise ModelError("--device cuda was asked for but ONNX Runtime has no CUDA provider", path)
        want_cuda = device == "cuda" or (device == "auto" and "CUDAExecutionProvider" in available and cuda_available())
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if want_cuda else ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        # no memory pattern: planning one arena block per input shape costs ~60 % more peak memory
        # (1.75 vs 1.10 GB on a 2048-px tile of the default model) for no measurable speed
        opts.enable_mem_pattern = False
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3  # this session only: our own report says which provider runs
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as exc:
            raise ModelError(f"ONNX Runtime cannot load the model ({type(exc).__name__}: {exc})", path) from None
        self.providers = self.session.get_providers()
        if device == "cuda" and self.providers[0] != "CUDAExecutionProvider":
            raise ModelError("ONNX Runtime could not start its CUDA provider (CUDA/cuDNN libraries missing?)", path)
        self.device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        self.info = NetworkInfo.of(info)
        self.model_file: Path | None = Path(path)
        self.note: str | None = None  # something the user should know about how it was loaded
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_half = "float16" in inp.type
        #: tiles at most this wide run at full speed (see :data:`ORT_CPU_FAST_WIDTH`)
        self.fast_width: int | None = ORT_CPU_FAST_WIDTH if self.device == "cpu" else None

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        x = np.ascontiguousarray(batch, dtype=np.float16 if self.input_half else np.float32)
        outs = self.session.run(None, {self.input_name: x})
        img = outs[0].astype(np.float32, copy=False)
        mask = outs[1].astype(np.float32, copy=False) if len(outs) > 1 else None
        return img, mask

    def release_memory(self) -> None:
        """Hand the free part of ONNX Runtime's CPU memory arena back to the system. The arena keeps
        the largest working set it has needed (about 1 GB for a 2048-px tile); after a very large
        frame that would sit beside the frame while it is encoded. A tiny run with arena shrinkage
        frees it (the next frame grows it again: a few allocations)."""
        import onnxruntime as ort

        if self.device != "cpu":
            return
        options = ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        side = max(32, self.info.size_multiple)
        channels = self.info.in_channels
        x = np.zeros((1, channels, side, side), np.float16 if self.input_half else np.float32)
        self.session.run(None, {self.input_name: x}, options)

    def describe(self) -> str:
        return f"onnx ({self.providers[0]})"
