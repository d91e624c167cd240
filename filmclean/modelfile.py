"""Model files: weights in safetensors with the architecture in the header, or an exported ONNX.

A filmclean ``.safetensors`` model carries in its metadata (string -> string):

- ``filmclean.arch``: a name from :data:`filmclean.nets.ARCHITECTURES`;
- ``filmclean.config``: JSON of the constructor keyword arguments;
- ``filmclean.info``: JSON of free-form facts (training run, data, metrics), optional.

An exported ``.onnx`` model carries the same three keys in its ``metadata_props`` plus
``filmclean.size_multiple``, ``filmclean.receptive_radius`` and ``filmclean.has_mask``, and (exports
made since it was introduced) ``filmclean.source_sha256``, the SHA-256 of the ``.safetensors`` file
it was exported from, so that an ``.onnx`` lying beside a ``.safetensors`` (or in the export cache)
is only used in its place when it verifiably is its export.

The stored architecture config is not trusted: before a network is built for real it is built on
PyTorch's ``meta`` device (no memory) and its state-dict shapes are compared with the tensors in the
file (:func:`network_from_state`), so a config declaring huge layers cannot allocate more than the
file holds.

Weights are never unpickled: safetensors only (``torch.load(weights_only=True)`` is accepted for
foreign ``.pth`` backbone files elsewhere).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError

META_ARCH = "filmclean.arch"
META_CONFIG = "filmclean.config"
META_INFO = "filmclean.info"
META_SOURCE_SHA256 = "filmclean.source_sha256"
"""ONNX metadata key: hex SHA-256 of the ``.safetensors`` file the export was made from."""


@dataclass(frozen=True)
class ModelSpec:
    """What a model file says about itself."""

    path: Path
    format: str  # "safetensors" | "onnx"
    arch: str
    config: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    source_sha256: str | None = None  # ONNX exports: SHA-256 of the source .safetensors, if recorded


def save_model(net, arch: str, config: dict[str, Any], path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Save ``net``'s state dict as a filmclean safetensors model, atomically
    (:func:`filmclean.io.write_bytes_atomically`; :class:`~filmclean.errors.OutputError` on failure)."""
    from safetensors.torch import save

    from .io import write_bytes_atomically

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    meta = {
        META_ARCH: arch,
        META_CONFIG: json.dumps(config, sort_keys=True),
        META_INFO: json.dumps(info or {}, sort_keys=True),
    }
    write_bytes_atomically(path, save(state, metadata=meta))
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
        if not isinstance(config, dict) or not isinstance(info, dict):
            raise ValueError(f"{META_CONFIG} and {META_INFO} must be JSON objects")
        for key in ("size_multiple", "receptive_radius", "has_mask", "in_channels"):
            if f"filmclean.{key}" in meta:
                info.setdefault(key, json.loads(meta[f"filmclean.{key}"]))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ModelError(f"model metadata is not valid ({type(exc).__name__}: {_brief(exc)})", path) from None
    source = meta.get(META_SOURCE_SHA256)
    return ModelSpec(
        path=path,
        format=fmt,
        arch=meta[META_ARCH],
        config=config,
        info=info,
        source_sha256=source.lower() if source else None,
    )


_REGISTRATIONS_PER_TENSOR = 8
"""Bound on module/parameter/buffer registrations while building a network, per tensor in the file
(the networks here make at most 3 per state-dict tensor), plus :data:`_REGISTRATIONS_SLACK`."""
_REGISTRATIONS_SLACK = 256


class _TooManyRegistrations(Exception):
    """Raised from a registration hook to stop building a network far larger than its file."""


@contextmanager
def _registration_budget(limit: int) -> Iterator[None]:
    """Abort (``_TooManyRegistrations``) network construction in this thread once it has
    registered more than ``limit`` modules, parameters and buffers (a config listing a million
    blocks would otherwise take minutes and gigabytes even on the meta device)."""
    from torch.nn.modules import module as torch_module

    thread = threading.get_ident()
    count = 0

    def hook(*_: Any) -> None:
        nonlocal count
        if threading.get_ident() == thread:
            count += 1
            if count > limit:
                raise _TooManyRegistrations
        return None

    handles = [
        torch_module.register_module_module_registration_hook(hook),
        torch_module.register_module_parameter_registration_hook(hook),
        torch_module.register_module_buffer_registration_hook(hook),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _brief(value: Any, limit: int = 200) -> str:
    """``str(value)`` on one line, cut to ``limit`` characters (file metadata may be huge)."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "absent" if shape is None else "[" + ", ".join(str(d) for d in shape) + "]"


def check_network_fits(arch: str, config: Any, shapes: Mapping[str, tuple[int, ...]], path: str | Path) -> None:
    """Check that network ``arch`` built with ``config`` has exactly the state-dict tensors ``shapes``
    (name -> shape, the tensors of the model file ``path``), without allocating the network.

    The network is built on the ``meta`` device under a bound on how many modules/tensors it may
    register (:data:`_REGISTRATIONS_PER_TENSOR` per tensor in the file). Raises :class:`ModelError`
    (one line naming ``path``) when it cannot be built or its tensors differ from the file's.
    """
    import torch

    from .nets import build_network

    if not isinstance(config, dict):
        raise ModelError(f"stored config of network {_brief(repr(arch))} is not a JSON object", path)
    limit = _REGISTRATIONS_PER_TENSOR * len(shapes) + _REGISTRATIONS_SLACK
    try:
        with _registration_budget(limit), torch.device("meta"):
            net = build_network(arch, config)
        expected = {name: tuple(t.shape) for name, t in net.state_dict().items()}
    except _TooManyRegistrations:
        raise ModelError(
            f"stored config of network {_brief(repr(arch))} describes a network far larger than the "
            f"{len(shapes)} tensors in the file",
            path,
        ) from None
    except Exception as exc:  # bad config values: KeyError, TypeError, ValueError, RuntimeError, OverflowError ...
        raise ModelError(
            f"cannot build network {_brief(repr(arch))} from its stored config ({type(exc).__name__}: {_brief(exc)})",
            path,
        ) from None
    got = {name: tuple(int(d) for d in shape) for name, shape in shapes.items()}
    if expected == got:
        return
    wrong = [name for name in expected if name in got and expected[name] != got[name]]
    missing = [name for name in expected if name not in got]
    extra = [name for name in got if name not in expected]
    problems = [
        f"{name} is {_shape_text(expected[name])} in the network but {_shape_text(got[name])} in the file"
        for name in wrong[:2]
    ]
    if missing:
        problems.append(f"{len(missing)} tensor(s) missing from the file (e.g. {missing[0]})")
    if extra:
        problems.append(f"{len(extra)} unexpected tensor(s) in the file (e.g. {extra[0]})")
    if len(wrong) > 2:
        problems.append(f"{len(wrong) - 2} more of different shape")
    raise ModelError(
        f"weights do not fit network {_brief(repr(arch))} with its stored config: {_brief('; '.join(problems), 600)}",
        path,
    )


def network_from_state(arch: str, config: Any, state: Mapping[str, Any], path: str | Path):
    """Build network ``arch`` with ``config`` and load ``state`` (name -> tensor) into it, strictly.

    The config is validated against ``state`` first (:func:`check_network_fits`), so only a network
    the size of the file's tensors is ever allocated. Returns the network in eval mode on the CPU;
    raises :class:`ModelError` naming ``path``.
    """
    from .nets import build_network

    check_network_fits(arch, config, {name: tuple(t.shape) for name, t in state.items()}, path)
    try:
        net = build_network(arch, config)
    except Exception as exc:
        raise ModelError(
            f"cannot build network {_brief(repr(arch))}: {type(exc).__name__}: {_brief(exc)}", path
        ) from None
    try:
        net.load_state_dict(dict(state), strict=True)
    except Exception as exc:
        raise ModelError(f"weights do not fit network {_brief(repr(arch))}: {_brief(exc, 600)}", path) from None
    return net.eval()


def load_torch_network(path: str | Path):
    """Build the network named in a safetensors model file and load its weights (strict).

    The stored config is checked against the file's tensors before anything is allocated (see
    :func:`network_from_state`). Returns ``(net, spec)`` with ``net`` in eval mode on the CPU.
    """
    from safetensors.torch import load_file

    spec = read_spec(path)
    if spec.format != "safetensors":
        raise ModelError("expected a .safetensors model for the torch backend", path)
    try:
        state = load_file(str(spec.path))
    except Exception as exc:
        raise ModelError(f"cannot read the weights ({type(exc).__name__}: {_brief(exc)})", path) from None
    return network_from_state(spec.arch, spec.config, state, spec.path), spec


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


# -- training checkpoints (written by filmclean.train; read here so that exporting one needs no
# training code) ------------------------------------------------------------------------------------

CHECKPOINT_FORMAT = "filmclean-train-checkpoint-1"
"""Value of :data:`META_CHECKPOINT_FORMAT` in a training checkpoint."""
META_CHECKPOINT_FORMAT = "filmclean.checkpoint_format"
META_TRAIN_ARCH = "filmclean.train_arch"
META_TRAIN_ARCH_CONFIG = "filmclean.train_arch_config"


def is_training_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a ``.safetensors`` training checkpoint (see ``filmclean.train.loop``)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get(META_CHECKPOINT_FORMAT) == CHECKPOINT_FORMAT
    except Exception:
        return False


def checkpoint_network(path: str | Path):
    """The network stored in a training checkpoint: ``(net in eval mode on the CPU, arch, config)``,
    its config checked against the weights (:func:`network_from_state`). Raises :class:`ModelError`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not is_training_checkpoint(path):
        raise ModelError("not a filmclean training checkpoint", path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        arch = meta[META_TRAIN_ARCH]
        config = json.loads(meta[META_TRAIN_ARCH_CONFIG])
        tensors = load_file(str(path))
    except Exception as exc:
        raise ModelError(f"unreadable training checkpoint ({type(exc).__name__}: {_brief(exc)})", path) from None
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    return network_from_state(arch, config, state, path), arch, config
