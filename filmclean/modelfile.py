"""Model files: weights in safetensors with the architecture in the header, or an exported ONNX.

A filmclean ``.safetensors`` model carries in its metadata (string -> string):

- ``filmclean.arch``: a name from :data:`filmclean.nets.ARCHITECTURES`;
- ``filmclean.config``: JSON of the constructor keyword arguments;
- ``filmclean.info``: JSON of free-form facts (training run, data, metrics), optional.

An exported ``.onnx`` model carries the same three keys in its ``metadata_props`` plus
``filmclean.size_multiple``, ``filmclean.receptive_radius`` and ``filmclean.has_mask``.

Weights are never unpickled: safetensors only (``torch.load(weights_only=True)`` is accepted for
foreign ``.pth`` backbone files elsewhere).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError

META_ARCH = "filmclean.arch"
META_CONFIG = "filmclean.config"
META_INFO = "filmclean.info"


@dataclass(frozen=True)
class ModelSpec:
    """What a model file says about itself."""

    path: Path
    format: str  # "safetensors" | "onnx"
    arch: str
    config: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


def save_model(net, arch: str, config: dict[str, Any], path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Save ``net``'s state dict as a filmclean safetensors model (atomic: temp name then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    meta = {META_ARCH: arch, META_CONFIG: json.dumps(config, sort_keys=True), META_INFO: json.dumps(info or {}, sort_keys=True)}
    tmp = path.with_name(path.name + ".partial")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def read_spec(path: str | Path) -> ModelSpec:
    """Read a model file's header (no weights loaded). Raises :class:`ModelError` if it is not a model."""
    path = Path(path)
    if not path.is_file():
        raise ModelError("model file not found", path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".onnx":
            import onnx

            m = onnx.load(str(path), load_external_data=False)
            meta = {p.key: p.value for p in m.metadata_props}
            fmt = "onnx"
        elif suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            fmt = "safetensors"
        else:
            raise ModelError("unsupported model format (expected .safetensors or .onnx)", path)
    except ModelError:
        raise
    except Exception as exc:  # corrupt file
        raise ModelError(f"not a readable model file ({type(exc).__name__}: {exc})", path) from None
    if META_ARCH not in meta:
        raise ModelError("not a filmclean model (no filmclean.arch in its metadata)", path)
    try:
        config = json.loads(meta.get(META_CONFIG, "{}"))
        info = json.loads(meta.get(META_INFO, "{}"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"model metadata is not valid JSON ({exc})", path) from None
    for key in ("size_multiple", "receptive_radius", "has_mask", "in_channels"):
        if f"filmclean.{key}" in meta:
            info.setdefault(key, json.loads(meta[f"filmclean.{key}"]))
    return ModelSpec(path=path, format=fmt, arch=meta[META_ARCH], config=config, info=info)


def load_torch_network(path: str | Path):
    """Build the network named in a safetensors model file and load its weights (strict).

    Returns ``(net, spec)`` with ``net`` in eval mode on the CPU.
    """
    from safetensors.torch import load_file

    from .nets import build_network

    spec = read_spec(path)
    if spec.format != "safetensors":
        raise ModelError("expected a .safetensors model for the torch backend", path)
    try:
        net = build_network(spec.arch, spec.config)
    except (KeyError, TypeError) as exc:
        raise ModelError(f"cannot build network {spec.arch!r}: {exc}", path) from None
    try:
        state = load_file(str(spec.path))
        net.load_state_dict(state, strict=True)
    except Exception as exc:
        raise ModelError(f"weights do not fit network {spec.arch!r}: {exc}", path) from None
    net.eval()
    return net, spec


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def verify_checksums(directory: str | Path, names: list[str] | None = None) -> None:
    """Check files in ``directory`` against its ``SHA256SUMS`` (``<hex>  <name>`` lines).

    Raises :class:`ModelError` naming the first file whose sum is wrong or missing.
    """
    directory = Path(directory)
    sums_path = directory / "SHA256SUMS"
    if not sums_path.is_file():
        raise ModelError("no SHA256SUMS beside the model", sums_path)
    sums: dict[str, str] = {}
    for line in sums_path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip().lstrip("*")] = digest.lower()
    for name in names if names is not None else list(sums):
        if name not in sums:
            raise ModelError("not listed in SHA256SUMS", directory / name)
        if sha256_file(directory / name) != sums[name]:
            raise ModelError("SHA-256 checksum mismatch (file corrupt or modified)", directory / name)
