"""The library API: a fully wired restorer, and frames, reels and image sequences restored with it.

The CLI's ``restore`` and ``frames``, ``filmclean evaluate``/``evaluate-clip`` and the benchmarks
all build their restorer here, so the default model, its single-frame partner and the options are
resolved in one place::

    import filmclean

    restorer = filmclean.open_restorer()                      # the shipped models
    out = restorer.restore(rgb)                                # (H, W, 3) float32 in [0, 1]
    filmclean.restore_video("reel.mov", "clean.mkv", restorer)
    filmclean.restore_frames("scans/", "restored/", restorer)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import DEFAULT_TILE
from .engine import RestoredFrame, RestoreOptions, Restorer


@dataclass(frozen=True)
class ModelChoice:
    """Which model runs and where: ``model`` is a ``.safetensors``/``.onnx`` path, or ``None`` for
    the shipped single-frame model; ``temporal``: reels and sequences use each frame's aligned
    neighbours (the spike test in front of a single-frame model, or a temporal network's input: see
    :class:`filmclean.sequence.TemporalRestorer`); ``backend`` ``auto|onnx|torch``; ``device``
    ``auto|cpu|cuda``; ``threads`` for inference."""

    model: str | Path | None = None
    backend: str = "auto"
    device: str = "auto"
    threads: int | None = None
    temporal: bool = True

    def open(self, options: RestoreOptions | None = None) -> Restorer:
        """:func:`open_restorer` with this choice."""
        return open_restorer(
            self.model, options, backend=self.backend, device=self.device, threads=self.threads, temporal=self.temporal
        )


def open_restorer(
    model: str | Path | None = None,
    options: RestoreOptions | None = None,
    *,
    backend: str = "auto",
    device: str = "auto",
    threads: int | None = None,
    temporal: bool = True,
) -> Restorer:
    """Load a model and return a :class:`~filmclean.engine.Restorer` ready to use.

    ``model=None`` loads the shipped default model (SHA-256 checked), whatever ``temporal`` says:
    in temporal mode a reel or sequence is restored with the motion-compensated spike test in front
    of it (:class:`filmclean.sequence.TemporalRestorer`), which measured better than the shipped
    temporal network (``models/temporal.*``; see the model card). That network runs when named as
    ``model``, with the shipped single-frame model as its fallback for frames without usable
    neighbours; any other model file is always the model that runs (a temporal one sees empty
    neighbours on such frames). ``restorer.model_file`` records the file actually loaded (for ONNX
    Runtime, possibly a verified export of the file named). Raises
    :class:`~filmclean.errors.ModelError` with one line when no model can be loaded.
    """
    from .model import is_shipped_temporal, load_model, shipped_fallback

    choice = ModelChoice(model, backend, device, threads, temporal)
    options = options or RestoreOptions(tile=DEFAULT_TILE)
    be = load_model(choice.model, backend=choice.backend, device=choice.device, threads=choice.threads)
    fallback = None
    if choice.model is not None and be.info.in_channels != 3 and is_shipped_temporal(choice.model):
        fallback = shipped_fallback(options, choice.backend, choice.device, choice.threads)
    return Restorer(be, options, fallback=fallback)


def restore_image(
    restorer: Restorer,
    rgb: np.ndarray,
    *,
    out: np.ndarray | None = None,
    mask: bool = True,
    protect: np.ndarray | None = None,
    guide: np.ndarray | None = None,
) -> RestoredFrame:
    """Restore one frame on its own -- a still, or a frame without usable neighbours -- exactly as
    ``filmclean frames`` does: a temporal model's single-frame partner when it has one (the shipped
    pair), else the model itself (a temporal one with empty neighbours). ``rgb``: ``(H, W, 3)``
    float32; ``out``, ``mask``, ``protect``, ``guide``: as :meth:`~filmclean.engine.Restorer.restore`."""
    single = restorer.fallback if restorer.temporal and restorer.fallback is not None else restorer
    return single.restore(rgb, out=out, mask=mask, protect=protect, guide=guide)


def open_matte_restorer(choice: ModelChoice, options: RestoreOptions | None = None) -> Restorer:
    """A restorer of ``choice``'s single-frame model that also takes a user's matte
    (:class:`~filmclean.nets.maskguided.MatteGuidedNet`; ``restore(rgb, guide=...)``), run by
    PyTorch from the model's ``.safetensors`` weights (the shipped default when ``choice.model`` is
    ``None``). One-line :class:`~filmclean.errors.ModelError` for a model that cannot take one."""
    from .backends import TorchBackend
    from .errors import ModelError
    from .model import default_model_paths, verify_checksums
    from .modelfile import load_torch_network
    from .nets import network_info
    from .nets.maskguided import MatteGuidedNet

    if choice.model is None:
        path, _ = default_model_paths()
        if path is None:
            raise ModelError("a matte needs the shipped model's .safetensors weights, which are not installed")
        verify_checksums(path.parent, [path.name])
    else:
        path = Path(choice.model)
        if path.suffix != ".safetensors":
            raise ModelError("a matte needs the model's .safetensors weights (not an ONNX export)", path)
    net, _ = load_torch_network(path)
    try:
        guided = MatteGuidedNet(net).eval()
    except ValueError as exc:
        raise ModelError(f"this model cannot take a matte: {exc}", path) from None
    device = "cpu" if choice.device == "auto" else choice.device
    backend = TorchBackend(guided, network_info(guided), device=device, threads=choice.threads)
    backend.model_file = path
    return Restorer(backend, options or RestoreOptions(tile=DEFAULT_TILE))


__all__ = ["ModelChoice", "open_matte_restorer", "open_restorer", "restore_image"]
