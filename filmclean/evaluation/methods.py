"""The methods under test: restoration of stills (:class:`Method`) and of sequences
(:class:`ClipMethod`), the references built in, models, and the ``--model``/``--method`` specs.

Still methods are plain callables ``restore(image, mask) -> image``: besides model files (opened by
:func:`filmclean.api.open_restorer`, stills restored by :func:`filmclean.api.restore_image`), three
references: ``identity``, ``dns`` (a classical Dust & Scratches filter) and ``oracle`` (the true
mask filled by OpenCV's Telea inpainting); see :func:`parse_method`. Clip methods map a sequence to
a sequence of the same length: ``identity``, ``tmedian`` (FFmpeg's temporal median), ``single`` and
``temporal`` models (:func:`filmclean.sequence.restore_sequence`); see :func:`parse_clip_method`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..api import ModelChoice
from ..engine import RestoreOptions
from ..errors import InputError, ModelError

__all__ = [
    "ClipMethod",
    "Method",
    "as_output",
    "check_method_names",
    "default_clip_method_specs",
    "default_method_specs",
    "dns_method",
    "dust_and_scratches",
    "identity_clip_method",
    "identity_method",
    "model_clip_method",
    "model_method",
    "oracle_inpaint",
    "oracle_method",
    "parse_clip_method",
    "parse_method",
    "parse_params",
    "tmedian_clip_method",
]


@dataclass
class Method:
    """A restoration method under test.

    ``restore(image, mask)``: ``image`` ``(H, W, 3)`` float32 in ``[0, 1]`` (a private copy the
    method may modify), ``mask`` the true damage ``(H, W)`` bool of that input (all False for a
    clean input) or ``None`` when unknown; returns an ``(H, W, 3)`` image in ``[0, 1]`` (it is
    clipped and cast to float32). ``needs_mask``: the method cannot run without a true mask.
    ``info``: facts for the report (file, backend, parameters ...).
    """

    name: str
    restore: Callable[[np.ndarray, np.ndarray | None], np.ndarray]
    description: str = ""
    kind: str = "custom"
    needs_mask: bool = False
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClipMethod:
    """A restoration method for sequences.

    ``run(frames)``: ``frames`` an iterable of ``(H, W, 3)`` float32 frames in ``[0, 1]`` (private
    copies the method may modify), read lazily; returns an iterable of as many ``(H, W, 3)`` frames,
    in order (clipped to ``[0, 1]`` and cast to float32). ``info``: facts for the report.
    """

    name: str
    run: Callable[[Iterable[np.ndarray]], Iterable[np.ndarray]]
    description: str = ""
    kind: str = "custom"
    info: dict[str, Any] = field(default_factory=dict)


def as_output(out: Any, like: np.ndarray, method: str) -> np.ndarray:
    """A method's output for the input ``like``, clipped to ``[0, 1]`` as contiguous float32.

    Raises :class:`ValueError` naming ``method`` when the output's shape is not the input's.
    """
    arr = np.asarray(out)
    if arr.shape != like.shape:
        raise ValueError(f"method {method!r} returned shape {arr.shape} for an input of shape {like.shape}")
    return np.ascontiguousarray(np.clip(arr, 0.0, 1.0), dtype=np.float32)


def check_method_names(methods: Sequence[Method] | Sequence[ClipMethod], noun: str = "method") -> None:
    """Raise :class:`InputError` when there are no methods or two share a name (``"<noun> given twice"``)."""
    if not methods:
        raise InputError("no methods to evaluate")
    names = [m.name for m in methods]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"{noun} given twice: {', '.join(dup)}")


# ------------------------------------------------------------------------------------------------
# references for stills


def identity_method(name: str = "identity") -> Method:
    """The input unchanged (lower bound on repair, upper bound on preservation)."""
    return Method(name, lambda image, mask: image, "returns its input unchanged", "reference")


def dust_and_scratches(image: np.ndarray, radius: int = 2, threshold: float = 0.1) -> np.ndarray:
    """Classical Dust & Scratches filter.

    The median of each channel over a disk of ``radius`` px (``skimage.morphology.disk``,
    reflected borders, :func:`scipy.ndimage.median_filter`) replaces a pixel's three channels
    wherever any channel departs from its median by more than ``threshold``; other pixels are kept
    bit-identical. ``image``: ``(H, W, 3)`` float in ``[0, 1]``; returns float32.
    """
    from scipy.ndimage import median_filter
    from skimage.morphology import disk

    img = np.asarray(image, dtype=np.float32)
    if radius < 1:
        return img.copy()
    med = median_filter(img, footprint=disk(int(radius)).astype(bool)[..., None], mode="reflect")
    replace = (np.abs(img - med).max(axis=-1) > float(threshold))[..., None]
    return np.ascontiguousarray(np.where(replace, med, img), dtype=np.float32)


def dns_method(radius: int = 2, threshold: float = 0.1, name: str | None = None) -> Method:
    """:func:`dust_and_scratches` as a :class:`Method`."""
    if int(radius) != radius or radius < 1:
        raise InputError(f"dns radius must be a whole number >= 1, got {radius}")
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"dns threshold must be in [0, 1], got {threshold}")
    r, t = int(radius), float(threshold)
    return Method(
        name or "dns",
        lambda image, mask: dust_and_scratches(image, r, t),
        f"Dust & Scratches: median over a disk of radius {r} px where a channel departs by > {t}",
        "reference",
        info={"radius": r, "threshold": t},
    )


def oracle_inpaint(image: np.ndarray, mask: np.ndarray, radius: int = 3) -> np.ndarray:
    """Fill the true damage ``mask`` (``(H, W)``, nonzero = damaged) by Telea inpainting.

    Each channel is quantised to 16 bits and filled by ``cv2.inpaint(..., radius,
    cv2.INPAINT_TELEA)`` (OpenCV's inpainting takes 8-bit 3-channel or single-channel 16-bit
    images; its single-channel float path gave out-of-range values). Pixels outside the mask are
    returned bit-identical; an empty mask returns the input unchanged. Returns float32 in ``[0, 1]``.
    """
    import cv2

    img = np.asarray(image, dtype=np.float32)
    m = np.asarray(mask) > 0
    if not m.any():
        return img.copy()
    m8 = m.astype(np.uint8)
    q = np.rint(np.clip(img, 0.0, 1.0) * 65535.0).astype(np.uint16)
    filled = np.stack(
        [
            cv2.inpaint(np.ascontiguousarray(q[..., c]), m8, float(radius), cv2.INPAINT_TELEA)
            for c in range(img.shape[2])
        ],
        axis=-1,
    ).astype(np.float32) / np.float32(65535.0)
    return np.ascontiguousarray(np.where(m[..., None], filled, img), dtype=np.float32)


def oracle_method(radius: int = 3, name: str | None = None) -> Method:
    """:func:`oracle_inpaint` with the true mask as a :class:`Method` (needs masks)."""
    if int(radius) != radius or radius < 1:
        raise InputError(f"oracle radius must be a whole number >= 1, got {radius}")
    r = int(radius)

    def restore(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        if mask is None:
            raise InputError("the oracle reference needs the true damage masks (mask/ folder)")
        return oracle_inpaint(image, mask, r)

    return Method(
        name or "oracle",
        restore,
        f"true mask + OpenCV Telea inpainting (radius {r})",
        "reference",
        needs_mask=True,
        info={"radius": r},
    )


# ------------------------------------------------------------------------------------------------
# references for sequences


def identity_clip_method(name: str = "identity") -> ClipMethod:
    """Every frame unchanged."""
    return ClipMethod(name, lambda frames: frames, "returns its input unchanged", "reference")


def tmedian_clip_method(radius: int = 1, name: str | None = None) -> ClipMethod:
    """FFmpeg's temporal median (:func:`filmclean.classical.tmedian`) as a :class:`ClipMethod`."""
    from ..classical import TMEDIAN_PIX_FMT, tmedian

    if int(radius) != radius or not 1 <= radius <= 127:
        raise InputError(f"tmedian radius must be a whole number in 1..127, got {radius}")
    r = int(radius)
    return ClipMethod(
        name or "tmedian",
        lambda frames: tmedian(frames, r),
        f"FFmpeg tmedian=radius={r} (per-pixel median of {2 * r + 1} frames, ends clamped) via PyAV, {TMEDIAN_PIX_FMT}",
        "reference",
        info={"radius": r, "pix_fmt": TMEDIAN_PIX_FMT},
    )


# ------------------------------------------------------------------------------------------------
# models


def _model_file(path: str | Path | None, temporal: bool = False) -> Path | None:
    """The file behind a model choice: ``path``, or for ``None`` the shipped model (with ``temporal``,
    the shipped temporal model when one is installed) or ``None`` when none is."""
    from ..model import TEMPORAL_STEM, default_model_paths

    if path is not None:
        return Path(path)
    st, ox = default_model_paths(TEMPORAL_STEM) if temporal else (None, None)
    if st is None and ox is None:
        st, ox = default_model_paths()
    return st or ox


def _model_info(file: Path | None, restorer: Any, options: RestoreOptions, **extra: Any) -> dict[str, Any]:
    """The report's facts about a model method (``extra`` after the backend)."""
    from ..model import file_digest

    mask = restorer.has_mask
    return {
        "file": str(file) if file else None,
        "sha256_12": file_digest(file) if file else None,
        "backend": restorer.backend.describe(),
        **extra,
        "tile": options.tile,
        "overlap": restorer.overlap,
        "batch": options.batch,
        "threshold": options.threshold if mask else None,
        "dust": options.dust if mask else None,
        "tta": options.tta,
        "max_width": options.max_width if mask else None,
    }


def model_method(
    path: str | Path | None,
    options: RestoreOptions | None = None,
    choice: ModelChoice | None = None,
    *,
    name: str | None = None,
) -> Method:
    """A filmclean model file (``.safetensors``/``.onnx``; ``None`` = the shipped default model)
    opened by :func:`filmclean.api.open_restorer` with ``options`` and ``choice``'s backend, device
    and threads (its ``model`` and ``temporal`` are not used: stills are stills), every still
    restored by :func:`filmclean.api.restore_image` as ``filmclean frames`` restores it.
    Raises :class:`filmclean.errors.ModelError` if it cannot load."""
    from ..api import restore_image

    options = options or RestoreOptions()
    choice = replace(choice or ModelChoice(), model=path, temporal=False)
    restorer = choice.open(options)
    file = _model_file(path)
    info = _model_info(file, restorer, options)
    label = name or ("default" if path is None else Path(path).name)
    return Method(
        label,
        lambda image, mask: restore_image(restorer, image).image,
        f"model {file.name if file else 'default'} via {restorer.backend.describe()}",
        "model",
        info=info,
    )


def model_clip_method(
    path: str | Path | None,
    temporal: bool,
    options: RestoreOptions | None = None,
    choice: ModelChoice | None = None,
    *,
    name: str | None = None,
    spikes: bool = False,
) -> ClipMethod:
    """A model run by :func:`filmclean.sequence.restore_sequence` on a restorer opened with
    ``options`` and ``choice``'s backend, device and threads (its ``model`` and ``temporal`` are
    replaced by ``path`` and ``temporal``): ``temporal=False`` restores every frame alone,
    ``temporal=True`` with its motion-aligned neighbours (needs a temporal network).

    ``path=None``: the shipped model (with ``temporal``, the shipped temporal model when one is
    installed). ``spikes=True``: a single-frame network (``path=None``: the shipped default model)
    with the neighbours used by the motion-compensated spike test
    (:meth:`filmclean.sequence.TemporalRestorer.restore_with_spikes`). Raises :class:`ModelError`
    when the model cannot load, or when ``temporal`` is asked of a single-frame network.
    """
    from ..sequence import restore_sequence
    from ..spikes import SpikeOptions

    options = options or RestoreOptions()
    named = path
    if temporal and not spikes and path is None:
        path = _model_file(None, True)  # the shipped temporal network, which a plain model choice no longer loads
    choice = replace(choice or ModelChoice(), model=path, temporal=temporal and not spikes)
    restorer = choice.open(options)
    file = _model_file(path, temporal and not spikes)
    if spikes and restorer.temporal:
        raise ModelError("is a temporal model; the spikes method takes a single-frame model (spikes:PATH)", file)
    if temporal and not restorer.temporal and not spikes:
        if named is None:
            raise ModelError(
                "the shipped default model is single-frame; the temporal method needs a temporal "
                "model file (temporal:PATH)",
                file,
            )
        raise ModelError(
            "is a single-frame model (3-channel input); the temporal method needs a temporal model "
            "file (temporal:PATH)",
            file,
        )
    kind = "spikes" if spikes else "temporal" if temporal else "single"
    label = name or (kind + ("" if named is None else f":{Path(named).name}"))
    info = _model_info(file, restorer, options, network_temporal=restorer.temporal, uses_neighbours=temporal or spikes)
    spike_options = SpikeOptions() if spikes else None

    def run(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for rf in restore_sequence(frames, restorer, temporal=temporal or spikes, spikes=spike_options):
            yield rf.image

    how = {
        "spikes": "one-frame damage found and repaired from motion-aligned neighbours (spike test), then every frame",
        "temporal": "with motion-aligned neighbours",
        "single": "every frame alone",
    }[kind]
    return ClipMethod(
        label,
        run,
        f"model {file.name if file else 'default'} via {restorer.backend.describe()}, {how}",
        "model",
        info=info,
    )


# ------------------------------------------------------------------------------------------------
# specs


def parse_params(text: str, allowed: Mapping[str, Any], spec: str) -> dict[str, Any]:
    """``key=value,...`` parameters of a method spec; ``allowed`` maps each key to int, float or
    a tuple of the strings it may take. Raises :class:`InputError` naming ``spec``."""
    out: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or key not in allowed:
            raise InputError(
                f"bad model parameter {part!r} in {spec!r}; allowed: {', '.join(f'{k}=' for k in allowed) or 'none'}"
            )
        kind = allowed[key]
        if isinstance(kind, tuple):
            if value.strip() not in kind:
                raise InputError(f"parameter {key} in {spec!r} must be one of {', '.join(kind)}, got {value!r}")
            out[key] = value.strip()
            continue
        try:
            num = float(value)
        except ValueError:
            raise InputError(f"parameter {key} in {spec!r} must be a number, got {value!r}") from None
        if kind is int:
            if num != int(num):
                raise InputError(f"parameter {key} in {spec!r} must be a whole number, got {value!r}")
            out[key] = int(num)
        else:
            out[key] = num
    return out


def _model_spec(text: str) -> tuple[Path, str] | None:
    """``(path, parameters)`` when ``text`` names a model file (``PATH`` or ``PATH:key=value,...``)."""
    path, args = Path(text).expanduser(), ""
    if not path.is_file() and ":" in text:
        head, _, tail = text.rpartition(":")
        if Path(head).suffix.lower() in (".safetensors", ".onnx") or Path(head).expanduser().is_file():
            path, args = Path(head).expanduser(), tail
    if path.suffix.lower() in (".safetensors", ".onnx") or path.is_file():
        return path, args
    return None


def parse_method(spec: str, options: RestoreOptions | None = None, choice: ModelChoice | None = None) -> Method:
    """Build a :class:`Method` from a ``--model`` value.

    - a path to a model file (ends in ``.safetensors``/``.onnx`` or is an existing file):
      :func:`model_method` with ``options`` and ``choice``'s backend, device and threads;
    - ``identity``;
    - ``dns`` or ``dns:radius=R,threshold=T`` (defaults 2 and 0.1): :func:`dns_method`;
    - ``oracle`` or ``oracle:radius=R`` (default 3): :func:`oracle_method`;
    - ``default``: the shipped default model.

    Models (files and ``default``) take ``:dust=any|dark|light,threshold=T,tta=N,max_width=W`` after
    the name, which override ``dust``, ``threshold``, ``tta`` and ``max_width`` (0: no limit) for
    that model alone (``default:dust=dark``, ``my.onnx:threshold=0.7``, ``default:tta=8``), so one
    run can compare settings side by side.

    The method's name is ``spec`` as given (a file's name for paths). Raises :class:`InputError`
    for unknown names, bad parameters or a missing model file.
    """
    from .. import DUST_POLARITIES

    text = spec.strip()
    base = options or RestoreOptions()

    def model_options(args: str) -> RestoreOptions:
        """``base`` with a model spec's own ``dust``/``threshold``/``tta``/``max_width`` (checked)."""
        own = parse_params(args, {"dust": DUST_POLARITIES, "threshold": float, "tta": int, "max_width": int}, spec)
        if not 0.0 <= own.get("threshold", base.threshold) <= 1.0:
            raise InputError(f"threshold in {spec!r} must be in [0, 1]")
        if own.get("max_width", 0) < 0:
            raise InputError(f"max_width in {spec!r} must be at least 0 (0: no limit)")
        if own.get("max_width") == 0:
            own["max_width"] = None
        try:
            return replace(base, **own)
        except ValueError as exc:
            raise InputError(f"{exc} in {spec!r}") from None

    found = _model_spec(text)
    if found is not None:
        path, args = found
        if not path.is_file():
            raise InputError("model file not found", path)
        return model_method(path, model_options(args), choice, name=path.name + (f":{args}" if args else ""))
    kind, _, args = text.partition(":")
    kind = kind.strip().lower()
    if kind == "identity":
        parse_params(args, {}, spec)
        return identity_method(text)
    if kind == "dns":
        p = parse_params(args, {"radius": int, "threshold": float}, spec)
        return dns_method(p.get("radius", 2), p.get("threshold", 0.1), name=text)
    if kind == "oracle":
        p = parse_params(args, {"radius": int}, spec)
        return oracle_method(p.get("radius", 3), name=text)
    if kind == "default":
        return model_method(None, model_options(args), choice, name=text)
    raise InputError(
        f"unknown model {spec!r}: give a .safetensors/.onnx file or one of identity, "
        "dns[:radius=R,threshold=T], oracle[:radius=R], default"
    )


def parse_clip_method(
    spec: str, options: RestoreOptions | None = None, choice: ModelChoice | None = None
) -> ClipMethod:
    """Build a :class:`ClipMethod` from a ``--method`` value.

    - ``identity``;
    - ``tmedian`` or ``tmedian:radius=R`` (default 1);
    - ``single`` or ``single:PATH``: the shipped default model / a model file, every frame alone;
    - ``temporal`` or ``temporal:PATH``: the shipped temporal model / a temporal model file, with
      motion-aligned neighbours (an error if the model is single-frame);
    - ``spikes`` or ``spikes:PATH``: the shipped default model / a single-frame model file, with
      one-frame damage found and repaired from the aligned neighbours by the spike test first.

    Raises :class:`InputError` for unknown names, bad parameters or a missing model file, and
    :class:`ModelError` for models that cannot be used.
    """
    text = spec.strip()
    kind, _, arg = text.partition(":")
    kind = kind.strip().lower()
    arg = arg.strip()
    if kind == "identity":
        parse_params(arg, {}, spec)
        return identity_clip_method()
    if kind == "tmedian":
        p = parse_params(arg, {"radius": int}, spec)
        return tmedian_clip_method(p.get("radius", 1), name=text)
    if kind in ("single", "temporal", "spikes"):
        path = Path(arg).expanduser() if arg else None
        if path is not None and not path.is_file():
            raise InputError("model file not found", path)
        return model_clip_method(path, kind == "temporal", options, choice, spikes=kind == "spikes")
    raise InputError(
        f"unknown method {spec!r}: give one of identity, tmedian[:radius=R], single[:MODEL], temporal[:MODEL], "
        "spikes[:MODEL]"
    )


def default_method_specs(has_masks: bool) -> list[str]:
    """The ``--model`` specs ``filmclean evaluate`` runs when none are given: identity, dns, oracle
    (with true masks) and the shipped default model (when installed)."""
    from ..model import default_model_paths

    specs = ["identity", "dns"] + (["oracle"] if has_masks else [])
    if any(default_model_paths()):
        specs.append("default")
    return specs


def default_clip_method_specs() -> list[str]:
    """The ``--method`` specs ``filmclean evaluate-clip`` runs when none are given: identity, tmedian,
    single (when a model is installed) and temporal (when a temporal model is installed)."""
    from ..model import TEMPORAL_STEM, default_model_paths

    specs = ["identity", "tmedian"]
    if any(default_model_paths()):
        specs.append("single")
    if any(default_model_paths(TEMPORAL_STEM)):
        specs.append("temporal")
    return specs
