"""Finding and loading models: the shipped default model or a user's file, on either backend."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .backends import OnnxBackend, TorchBackend, cuda_available
from .errors import ModelError
from .modelfile import ModelSpec, load_torch_network, read_spec, sha256_file, verify_checksums

DEFAULT_STEM = "default"
TEMPORAL_STEM = "temporal"


def models_dir() -> Path | None:
    """The folder holding the shipped default model, or ``None``.

    Looked up in this order: ``$FILMCLEAN_MODELS``, the source checkout's top-level ``models/``,
    and the installed package ``filmclean.models`` (``pip install .`` copies ``models/`` there).
    """
    env = os.environ.get("FILMCLEAN_MODELS")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    checkout = here.parent / "models"
    if (checkout / f"{DEFAULT_STEM}.safetensors").is_file() or (checkout / f"{DEFAULT_STEM}.onnx").is_file():
        return checkout
    installed = here / "models"
    if installed.is_dir():
        return installed
    return None


def default_model_paths(stem: str = DEFAULT_STEM) -> tuple[Path | None, Path | None]:
    """``(safetensors, onnx)`` of an installed model (``stem``: ``"default"``, the single-frame
    default model, or ``"temporal"``, its temporal version); either may be ``None``."""
    d = models_dir()
    if d is None:
        return None, None
    st, ox = d / f"{stem}.safetensors", d / f"{stem}.onnx"
    return (st if st.is_file() else None), (ox if ox.is_file() else None)


NO_MODEL = ("no model is installed: the trained default model has not been shipped with this copy of "
            "filmclean; pass --model PATH (a .safetensors or .onnx file from 'filmclean train' / 'filmclean export-onnx')")


def _onnx_cache_for(st_path: Path) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "filmclean" / "onnx"
    digest = sha256_file(st_path)[:16]
    return base / f"{st_path.stem}-{digest}.onnx"


def load_model(path: str | Path | None = None, backend: str = "auto", device: str = "auto",
               threads: int | None = None, fp16: bool | None = None, temporal: bool = False):
    """Load a model into a backend (see :mod:`filmclean.backends`).

    ``path=None`` loads the shipped default model (its SHA-256 sums are checked) and raises
    :class:`ModelError` saying so plainly when none is installed; with ``temporal`` the shipped
    temporal model is preferred when it is installed (for reels and image sequences). ``backend``:

    - ``"torch"``: needs a ``.safetensors`` model;
    - ``"onnx"``: an ``.onnx`` model, or a ``.safetensors`` one exported on first use into a cache;
    - ``"auto"``: ONNX Runtime when an ONNX file is at hand or when running on the CPU (it is
      faster there; a ``.safetensors`` model is exported once into a cache), else torch.
    """
    if backend not in ("auto", "torch", "onnx"):
        raise ModelError(f"unknown backend {backend!r} (auto, torch or onnx)")
    if device not in ("auto", "cpu", "cuda"):
        raise ModelError(f"unknown device {device!r} (auto, cpu or cuda)")
    st_path: Path | None
    onnx_path: Path | None
    if path is None:
        st_path, onnx_path = default_model_paths(TEMPORAL_STEM) if temporal else (None, None)
        if st_path is None and onnx_path is None:
            st_path, onnx_path = default_model_paths()
        if st_path is None and onnx_path is None:
            raise ModelError(NO_MODEL)
        names = [p.name for p in (st_path, onnx_path) if p is not None]
        verify_checksums(models_dir(), names)  # type: ignore[arg-type]
    else:
        p = Path(path)
        spec = read_spec(p)
        st_path, onnx_path = (p, None) if spec.format == "safetensors" else (None, p)
        if st_path is not None:
            sibling = st_path.with_suffix(".onnx")
            if sibling.is_file() and backend == "auto":
                try:
                    if read_spec(sibling).arch == spec.arch:
                        onnx_path = sibling
                except ModelError:
                    onnx_path = None

    if backend == "auto":
        # ONNX Runtime is the faster engine on CPU: use it there, exporting a .safetensors model to
        # a cache on first use; PyTorch (fp16) when a CUDA GPU is used and no ONNX file is at hand.
        use_cuda = device == "cuda" or (device == "auto" and cuda_available())
        backend = "onnx" if onnx_path is not None or not use_cuda else "torch"
    if backend == "torch":
        if st_path is None:
            raise ModelError("the torch backend needs the .safetensors model; this one is ONNX only (use --backend onnx)",
                             onnx_path)
        net, spec = load_torch_network(st_path)
        from .nets import network_info

        return TorchBackend(net, network_info(net), device=device, fp16=fp16, threads=threads)
    if onnx_path is None:
        assert st_path is not None
        onnx_path = _onnx_cache_for(st_path)
        if not onnx_path.is_file():
            from .onnx_export import export_onnx

            export_onnx(st_path, onnx_path, check=False)
    spec = read_spec(onnx_path)
    return OnnxBackend(onnx_path, _onnx_info(spec), device=device, threads=threads)


def single_frame_fallback(be, options, backend, device, threads):
    """For a temporal model: the shipped single-frame model as a :class:`Restorer` (used for frames
    without usable neighbours), or ``None`` when the model is single-frame or none is shipped."""
    from .engine import Restorer

    if int(be.info.get("in_channels", 3)) == 3 or default_model_paths() == (None, None):
        return None
    try:
        return Restorer(load_model(None, backend=backend, device=device, threads=threads), options)
    except ModelError:
        return None


def _onnx_info(spec: ModelSpec) -> dict:
    info = spec.info
    missing = [k for k in ("size_multiple", "receptive_radius", "has_mask") if k not in info]
    if missing:
        raise ModelError(f"ONNX model lacks filmclean metadata ({', '.join(missing)}); export it with 'filmclean export-onnx'",
                         spec.path)
    out = {k: info[k] for k in ("size_multiple", "receptive_radius", "has_mask")}
    out["in_channels"] = int(info.get("in_channels", 3))
    return out


def file_digest(path: str | Path) -> str:
    """Short SHA-256 of a file (for reports)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
