"""Finding and loading models: the shipped default model or a user's file, on either backend."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from . import BACKENDS, DEVICES
from .backends import NetworkInfo, OnnxBackend, TorchBackend, cuda_available
from .errors import ModelError, OutputError
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


NO_MODEL = (
    "no model is installed: the trained default model has not been shipped with this copy of "
    "filmclean; pass --model PATH (a .safetensors or .onnx file from 'filmclean train' / 'filmclean export-onnx')"
)


def _onnx_cache_for(st_path: Path, digest: str) -> Path:
    """Where the ONNX export of ``st_path`` (whose SHA-256 is ``digest``) is cached."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "filmclean" / "onnx"
    return base / f"{st_path.stem}-{digest[:16]}.onnx"


def is_export_of(onnx_path: Path, digest: str) -> bool:
    """Whether ``onnx_path`` is a readable filmclean ONNX export whose metadata records that it was
    made from a ``.safetensors`` file with SHA-256 ``digest`` (``filmclean.source_sha256``).

    An ``.onnx`` with no such record (an older export, a foreign file) or another checksum is not
    taken for the ``.safetensors`` model, whatever its name or architecture."""
    if not onnx_path.is_file():
        return False
    try:
        return read_spec(onnx_path).source_sha256 == digest.lower()
    except ModelError:
        return False


def load_model(
    path: str | Path | None = None,
    backend: str = "auto",
    device: str = "auto",
    threads: int | None = None,
    fp16: bool | None = None,
    temporal: bool = False,
):
    """Load a model into a backend (see :mod:`filmclean.backends`).

    ``path=None`` loads the shipped default model (its SHA-256 sums are checked) and raises
    :class:`ModelError` saying so plainly when none is installed; with ``temporal`` the shipped
    temporal model is preferred when it is installed (for reels and image sequences). ``backend``:

    - ``"torch"``: needs a ``.safetensors`` model;
    - ``"onnx"``: an ``.onnx`` model, or a ``.safetensors`` one exported on first use into a cache;
    - ``"auto"``: ONNX Runtime when an ONNX file is at hand or when running on the CPU (it is
      faster there; a ``.safetensors`` model is exported once into a cache), else torch.

    The model run is the file named, or an export verifiably made from it: for a user's
    ``.safetensors``, an ``.onnx`` beside it (``auto``) or in the cache is only used when its
    recorded source checksum is the ``.safetensors``' SHA-256 (:func:`is_export_of`); otherwise the
    model is exported afresh into the cache. The shipped models are checked against their
    ``SHA256SUMS`` instead.
    """
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r} (auto, torch or onnx)")
    if device not in DEVICES:
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
        if st_path is not None and backend == "auto":
            sibling = st_path.with_suffix(".onnx")
            if sibling.is_file() and is_export_of(sibling, _sha256(st_path)):
                onnx_path = sibling

    if backend == "auto":
        # ONNX Runtime is the faster engine on CPU: use it there, exporting a .safetensors model to
        # a cache on first use; PyTorch (fp16) when a CUDA GPU is used and no ONNX file is at hand.
        use_cuda = device == "cuda" or (device == "auto" and cuda_available())
        backend = "onnx" if onnx_path is not None or not use_cuda else "torch"
    if backend == "torch":
        if st_path is None:
            raise ModelError(
                "the torch backend needs the .safetensors model; this one is ONNX only (use --backend onnx)", onnx_path
            )
        net, spec = load_torch_network(st_path)
        from .nets import network_info

        tb = TorchBackend(net, network_info(net), device=device, fp16=fp16, threads=threads)
        tb.model_file = st_path
        return tb
    if onnx_path is not None:
        return _onnx_backend(onnx_path, device, threads)
    assert st_path is not None
    digest = _sha256(st_path)
    cached = _onnx_cache_for(st_path, digest)
    if is_export_of(cached, digest):
        return _onnx_backend(cached, device, threads)
    try:
        _export(st_path, cached, digest)  # absent, from an older version, or not this model's
        return _onnx_backend(cached, device, threads)
    except OutputError as exc:
        # the cache cannot be written (read-only home, full disk): export for this run only
        with tempfile.TemporaryDirectory(prefix="filmclean-onnx-") as tmp:
            be = _onnx_backend(_export(st_path, Path(tmp) / cached.name, digest), device, threads)
        be.note = f"ONNX cache not writable ({exc}); the model was exported for this run only"
        return be


def _export(st_path: Path, onnx_path: Path, digest: str) -> Path:
    from .onnx_export import export_onnx

    export_onnx(st_path, onnx_path, check=False)
    if not is_export_of(onnx_path, digest):
        raise ModelError("model file changed while it was being exported; run again", st_path)
    return onnx_path


def _onnx_backend(onnx_path: Path, device: str, threads: int | None) -> OnnxBackend:
    be = OnnxBackend(onnx_path, _onnx_info(read_spec(onnx_path)), device=device, threads=threads)
    be.model_file = onnx_path
    return be


def _sha256(path: Path) -> str:
    """SHA-256 of a model file, as :class:`ModelError` when it cannot be read."""
    try:
        return sha256_file(path)
    except OSError as exc:
        raise ModelError(f"cannot read model file ({exc.strerror})", path) from None


def is_shipped_temporal(path: str | Path) -> bool:
    """Whether ``path`` is one of the shipped temporal model's files (``models/temporal.*``)."""
    try:
        target = Path(path).resolve()
    except OSError:
        return False
    return any(p is not None and p.resolve() == target for p in default_model_paths(TEMPORAL_STEM))


def shipped_fallback(options, backend: str = "auto", device: str = "auto", threads: int | None = None):
    """The shipped single-frame model as a :class:`~filmclean.engine.Restorer` with ``options``: the
    partner of the shipped temporal model for frames without usable neighbours; ``None`` when no
    single-frame model is shipped."""
    from .engine import Restorer

    if default_model_paths() == (None, None):
        return None
    try:
        return Restorer(load_model(None, backend=backend, device=device, threads=threads), options)
    except ModelError:
        return None


def _onnx_info(spec: ModelSpec) -> NetworkInfo:
    info = spec.info
    missing = [k for k in ("size_multiple", "receptive_radius", "has_mask") if k not in info]
    if missing:
        raise ModelError(
            f"ONNX model lacks filmclean metadata ({', '.join(missing)}); export it with 'filmclean export-onnx'",
            spec.path,
        )
    out = {k: info[k] for k in ("size_multiple", "receptive_radius", "has_mask")}
    out["in_channels"] = info.get("in_channels", 3)
    checks = {
        "size_multiple": lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096,
        "receptive_radius": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 1 << 16,
        "has_mask": lambda v: isinstance(v, bool),
        "in_channels": lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1024,
    }
    bad = [f"{k}={repr(out[k])[:40]}" for k, ok in checks.items() if not ok(out[k])]
    if bad:
        raise ModelError(f"ONNX model has invalid filmclean metadata ({', '.join(bad)})", spec.path)
    return NetworkInfo.of(out)


def file_digest(path: str | Path) -> str:
    """Short SHA-256 of a file (for reports)."""
    return sha256_file(path)[:12]
