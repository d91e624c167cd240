"""Training-run configuration: one frozen :class:`TrainConfig` per run, saved as ``config.json``.

A run is fully described by a :class:`TrainConfig`; :func:`filmclean.train.loop.train` writes it to
``<run_dir>/config.json`` beside the checkpoints, and a resumed run must present an equal config
(only the *runtime* fields in :data:`RUNTIME_FIELDS` may differ).

Sources, later ones winning: the dataclass defaults, a JSON or TOML file (:func:`load_config`),
then command-line overrides (:meth:`TrainConfig.replace`, :func:`override_schedule`).

Schedule. Training is a sequence of :class:`Stage` s, each one one-cycle learning-rate policy over
``epochs`` epochs at image ``size``. Ivanova et al. (VISAPP 2022, sec. 3.4) train progressively at
three sizes for 10 epochs each with the pretrained encoder frozen (one-cycle, the learning rate
rising for the first 80 % of the steps), then fine-tune the whole network, encoder unfrozen, for 20
more epochs at the largest size with the rise over 50 % of the steps; Adam with PyTorch's default
betas and weight decay 1e-3. :func:`paper_stages` builds that schedule (``finetune="last"``); with
``finetune="each"`` every size gets its own unfrozen phase (the common fastai recipe).

Round trip: ``TrainConfig.from_json(c.to_json()) == c`` and ``from_json(s).to_json() == s`` for any
``s`` produced by :meth:`TrainConfig.to_json`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filmclean import DUST_POLARITIES
from filmclean.errors import InputError

from .polarity import canonical_polarity

#: damage polarities of on-the-fly synthesis: the runtime's :data:`filmclean.DUST_POLARITIES`
#: (configs saying ``random``, the older word for ``any``, still load: :mod:`filmclean.train.polarity`)
POLARITIES = DUST_POLARITIES
AMP_MODES = ("off", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
FINETUNE_MODES = ("last", "each", "none")

#: Fields that only change how a run executes, not what it computes (bit-exactness aside when the
#: device or the precision changes); a resumed run may change these. ``amp`` is among them because
#: the right precision belongs to the machine: bfloat16 is fast on CPUs with bfloat16 instructions
#: and several times slower than float32 on those without.
RUNTIME_FIELDS = frozenset({"num_workers", "device", "checkpoint_every", "log_every", "amp"})


def _check_fields(cls: type, data: Any, what: str, list_known: bool = False) -> None:
    """Raise :class:`InputError` unless ``data`` is a mapping whose keys are fields of ``cls``."""
    if not isinstance(data, Mapping):
        raise InputError(f"{what} must be a table/object, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        hint = f" (known: {', '.join(sorted(known))})" if list_known else ""
        raise InputError(f"unknown {what.split(' ', 1)[1]} field(s): {', '.join(unknown)}{hint}")


@dataclass(frozen=True)
class Stage:
    """One one-cycle training phase.

    - ``size``: training crops are ``size x size`` pixels (a pairs data set must have ``<size>/``);
    - ``epochs``: passes over the training set (>= 1);
    - ``batch_size``: images per step *per process* (the global batch under DDP is
      ``batch_size * world_size``);
    - ``lr_max``: peak learning rate of the one-cycle policy (start ``lr_max/25``, end
      ``lr_max/25e4``, PyTorch's ``OneCycleLR`` defaults);
    - ``freeze_encoder``: train with the network's ``encoder_parameters()`` frozen (ignored for
      networks without that method);
    - ``pct_start``: fraction of the stage's steps during which the learning rate rises.
    """

    size: int
    epochs: int
    batch_size: int
    lr_max: float
    freeze_encoder: bool = True
    pct_start: float = 0.8

    def __post_init__(self) -> None:
        for name, lo in (("size", 8), ("epochs", 1), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise InputError(f"stage {name} must be an integer >= {lo}, got {value!r}")
        if (
            isinstance(self.lr_max, bool)
            or not isinstance(self.lr_max, (int, float))
            or not (math.isfinite(self.lr_max) and self.lr_max > 0)
        ):
            raise InputError(f"stage lr_max must be a positive number, got {self.lr_max!r}")
        object.__setattr__(self, "lr_max", float(self.lr_max))
        if not isinstance(self.freeze_encoder, bool):
            raise InputError(f"stage freeze_encoder must be true or false, got {self.freeze_encoder!r}")
        if (
            isinstance(self.pct_start, bool)
            or not isinstance(self.pct_start, (int, float))
            or not (0.0 < self.pct_start < 1.0)
        ):
            raise InputError(f"stage pct_start must be in (0, 1), got {self.pct_start!r}")
        object.__setattr__(self, "pct_start", float(self.pct_start))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stage:
        _check_fields(cls, data, "a stage", list_known=True)
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise InputError(f"invalid stage {dict(data)!r}: {exc}") from None


def default_batch_size(size: int) -> int:
    """Per-process batch size used by :func:`paper_stages` when none is given: ``max(2, 2048 // size)``."""
    return max(2, 2048 // int(size))


def paper_stages(
    sizes: tuple[int, ...] | list[int] = (64, 128, 256),
    epochs: int = 10,
    finetune_epochs: int = 20,
    batch_size: int | None = None,
    lr: float = 1e-3,
    finetune_lr_factor: float = 0.1,
    finetune: str = "last",
) -> tuple[Stage, ...]:
    """The progressive schedule of the paper.

    For each size in ``sizes`` (in order): a frozen-encoder stage of ``epochs`` epochs at ``lr`` with
    ``pct_start=0.8``. Unfrozen fine-tune stages (``finetune_epochs`` epochs, ``lr *
    finetune_lr_factor``, ``pct_start=0.5``) follow the last size only (``finetune="last"``, the
    paper), each size (``"each"``), or never (``"none"``). ``batch_size`` None means
    :func:`default_batch_size` per size.
    """
    if finetune not in FINETUNE_MODES:
        raise InputError(f"finetune must be one of {', '.join(FINETUNE_MODES)}, got {finetune!r}")
    sizes = tuple(int(s) for s in sizes)
    if not sizes:
        raise InputError("at least one training size is needed")
    stages: list[Stage] = []
    for i, size in enumerate(sizes):
        bs = batch_size if batch_size is not None else default_batch_size(size)
        stages.append(Stage(size=size, epochs=epochs, batch_size=bs, lr_max=lr, freeze_encoder=True, pct_start=0.8))
        if finetune == "each" or (finetune == "last" and i == len(sizes) - 1):
            stages.append(
                Stage(
                    size=size,
                    epochs=finetune_epochs,
                    batch_size=bs,
                    lr_max=lr * finetune_lr_factor,
                    freeze_encoder=False,
                    pct_start=0.5,
                )
            )
    return tuple(stages)


def override_schedule(
    stages: tuple[Stage, ...],
    sizes: tuple[int, ...] | list[int] | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
) -> tuple[Stage, ...]:
    """Apply the command line's schedule flags to ``stages``.

    - ``sizes``: replaces the schedule by :func:`paper_stages` ``(sizes)`` (then the other flags apply);
    - ``epochs``: every stage runs this many epochs;
    - ``batch_size``: every stage uses this per-process batch size;
    - ``lr``: the largest stage ``lr_max`` becomes ``lr``; the others keep their ratio to it
      (so fine-tune stages stay 10x lower in the paper schedule).
    """
    if sizes is not None:
        stages = paper_stages(sizes)
    out = list(stages)
    if epochs is not None:
        out = [dataclasses.replace(s, epochs=int(epochs)) for s in out]
    if batch_size is not None:
        out = [dataclasses.replace(s, batch_size=int(batch_size)) for s in out]
    if lr is not None:
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise InputError(f"learning rate must be a positive number, got {lr!r}")
        peak = max(s.lr_max for s in out)
        out = [
            dataclasses.replace(s, lr_max=float(lr) if s.lr_max == peak else float(lr) * (s.lr_max / peak)) for s in out
        ]
    return tuple(out)


def _tuple_of_str(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{name} must be a list of strings, got {value!r}")
    return tuple(value)


def _range(value: Any, name: str, top: float) -> tuple[float, float]:
    """``value`` as ``(min, max)`` with ``0 < min <= max <= top``, else :class:`InputError`."""
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or not (0.0 < value[0] <= value[1] <= top)
    ):
        raise InputError(f"{name} must be [min, max] with 0 < min <= max <= {top:g}, got {value!r}")
    return float(value[0]), float(value[1])


def _fraction(value: Any, name: str, one_allowed: bool = False) -> float:
    """``value`` as a float in [0, 1) -- [0, 1] when ``one_allowed`` -- else :class:`InputError`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (0.0 <= value <= 1.0 if one_allowed else 0.0 <= value < 1.0)
    ):
        raise InputError(f"{name} must be in [0, 1{']' if one_allowed else ')'}, got {value!r}")
    return float(value)


def _clip_list(value: Any) -> tuple[dict[str, Any], ...]:
    """Validated ``clips``: a tuple of ``{"path": str, "first": int, "last": int}``."""
    if isinstance(value, (str, Mapping)) or not isinstance(value, (list, tuple)):
        raise InputError(f"clips must be a list of {{path, first, last}} objects, got {value!r}")
    out = []
    for item in value:
        if not isinstance(item, Mapping) or set(item) != {"path", "first", "last"}:
            raise InputError(f"a clip must be an object with exactly path, first and last, got {item!r}")
        path, first, last = item["path"], item["first"], item["last"]
        if not isinstance(path, (str, Path)) or not str(path):
            raise InputError(f"clip path must be a file path, got {path!r}")
        for name, v in (("first", first), ("last", last)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InputError(f"clip {name} must be an integer >= 0, got {v!r}")
        if last < first + 2:
            raise InputError(f"a clip needs at least 3 frames, got {first}..{last}")
        out.append({"path": str(path), "first": int(first), "last": int(last)})
    return tuple(out)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run (frozen; compare with ``==``).

    Network and loss:

    - ``arch``: a name from :data:`filmclean.nets.ARCHITECTURES`; ``arch_config``: its constructor
      keyword arguments (JSON values);
    - ``loss``: a name for :func:`filmclean.train.losses.build_loss` (``mse``, ``model1``, ``model2``,
      ``model3``); ``loss_kwargs``: its keyword arguments.

    Data (exactly one of ``pairs_dir`` / ``clean_dir``):

    - ``pairs_dir``: a dustify pairs data set (``<size>/{clean,damaged,mask}/<name>.png`` and
      ``manifest.json`` with ``splits``); splits ``train`` and ``valid`` are used;
    - ``clean_dir``: a folder of clean photographs, damaged on the fly by ``synth.dustify`` with a
      seed derived from ``(seed, epoch, index)``; ``valid_fraction`` of the names (chosen by
      ``seed``) are held for validation, ``crops_per_image`` random crops of each photo make one
      epoch, a crop's side is ``crop_scale`` (min, max) times the photo's short side, or, with
      ``crop_zoom`` (min, max), ``size / z`` pixels of the photo for a zoom ``z`` drawn log-uniform
      in that range (at most the short side): ``crop_zoom`` [0.3, 1] keeps every crop at or below
      the photo's own scale, so no picture is seen blurred by enlargement (still runs only);
      ``synth_params``: fields of ``synth.DamageParams`` for ``dustify`` (None: its defaults);
      ``damage``: the on-the-fly generator, ``synth`` (``synth.dustify``) or ``film``
      (:mod:`filmclean.train.filmdamage`: training sprites, wide procedural damage, grain; the mask
      is the visible change) with ``film_params`` (fields of ``FilmDamageParams``);
      ``clean_fraction``: share of training samples left undamaged (input = target, empty mask),
      so a network learns to leave clean film alone;
      ``hard_crops``: a file of a detector's false detections on the training photographs
      (:mod:`filmclean.train.hardneg`), ``p_hard``: the share of training crops centred on one of
      them (still runs only);
    - ``init_from``: a filmclean ``.safetensors`` model or a training checkpoint of the same
      architecture whose weights start the run (fine-tuning, e.g. on one's own scans); a maskguided
      network may also start one with more ``fine_blocks`` or another ``mask_grow``
      (``MaskGuidedNet.grown_from``); None = fresh initialisation;
    - ``exclude_names``: image names (file stems) never used for training or validation
      (held-out test images);
    - ``polarity``: damage polarity for on-the-fly synthesis: ``dark``, ``light`` or ``any`` (each
      sample dark or light at random; the older word ``random`` is read as ``any``);
    - ``augment``: the paper's augmentations on training samples (flip, symmetric warp, zoom,
      brightness, contrast);
    - ``temporal``: the run trains a temporal network (11-channel input, e.g.
      ``temporal_maskguided``) on damaged frame triplets (:class:`filmclean.train.seqdata.TemporalDataset`:
      stills of ``clean_dir`` with synthetic camera motion, and real clips); needs ``clean_dir``;
      ``augment`` does not apply (the triplets get their own flips and rotations);
    - ``clips``: real footage for temporal runs, a list of ``{"path": FILE, "first": int,
      "last": int}`` (frame numbers, inclusive, at least 3 frames); the last ~10 % of each range
      validate; ``clip_fraction``: share of samples taken from the clips (0-1).

    Optimisation: ``stages`` (see :class:`Stage`), ``train_bn`` (in a frozen encoder, keep the
    parameters of ``encoder_norm_parameters()`` trainable, as fastai does), ``weight_decay``
    (AdamW, decoupled),
    ``grad_clip`` (max global gradient norm, 0 = off), ``seed``, ``amp`` (``off``, ``bf16``,
    ``fp16``; autocast on CUDA only, ``bf16`` also on CPU).

    Runtime (may change on resume): ``num_workers`` (DataLoader worker processes), ``device``
    (``auto``, ``cpu``, ``cuda``), ``checkpoint_every`` (steps between checkpoints, besides every
    epoch end; 0 = epoch ends only), ``log_every`` (steps between training-loss lines in
    ``metrics.jsonl``).
    """

    arch: str = "paper_unet"
    arch_config: dict[str, Any] = field(default_factory=dict)
    loss: str = "model1"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    pairs_dir: str | None = None
    clean_dir: str | None = None
    exclude_names: tuple[str, ...] = ()
    valid_fraction: float = 0.1
    crops_per_image: int = 1
    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_zoom: tuple[float, float] | None = None
    hard_crops: str | None = None
    p_hard: float = 0.0
    synth_params: dict[str, Any] | None = None
    damage: str = "synth"
    film_params: dict[str, Any] | None = None
    clean_fraction: float = 0.0
    init_from: str | None = None
    polarity: str = "dark"
    augment: bool = True
    temporal: bool = False
    clips: tuple[dict[str, Any], ...] = ()
    clip_fraction: float = 0.3
    stages: tuple[Stage, ...] = field(default_factory=paper_stages)
    train_bn: bool = True
    weight_decay: float = 1e-3
    grad_clip: float = 0.0
    seed: int = 0
    amp: str = "off"
    num_workers: int = 0
    device: str = "auto"
    checkpoint_every: int = 500
    log_every: int = 10

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731  (frozen)
        if not isinstance(self.arch, str) or not self.arch:
            raise InputError(f"arch must be a network name, got {self.arch!r}")
        for name in ("arch_config", "loss_kwargs"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise InputError(f"{name} must be a table/object, got {value!r}")
            set_(name, json.loads(json.dumps(dict(value))))  # own copy, JSON values only
        if self.damage not in ("synth", "film"):
            raise InputError(f"damage must be 'synth' or 'film', got {self.damage!r}")
        if self.film_params is not None:
            if not isinstance(self.film_params, Mapping):
                raise InputError(f"film_params must be a table/object, got {self.film_params!r}")
            set_("film_params", json.loads(json.dumps(dict(self.film_params))))
        if self.synth_params is not None:
            if not isinstance(self.synth_params, Mapping):
                raise InputError(f"synth_params must be a table/object, got {self.synth_params!r}")
            set_("synth_params", json.loads(json.dumps(dict(self.synth_params))))
        if not isinstance(self.loss, str) or not self.loss:
            raise InputError(f"loss must be a loss name, got {self.loss!r}")
        for name in ("pairs_dir", "clean_dir"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, (str, Path)):
                    raise InputError(f"{name} must be a path, got {value!r}")
                set_(name, str(value))
        if self.pairs_dir is not None and self.clean_dir is not None:
            raise InputError("give either pairs_dir or clean_dir, not both")
        set_("exclude_names", _tuple_of_str(self.exclude_names, "exclude_names"))
        set_("valid_fraction", _fraction(self.valid_fraction, "valid_fraction"))
        set_("crop_scale", _range(self.crop_scale, "crop_scale", 1.0))
        if self.crop_zoom is not None:
            set_("crop_zoom", _range(self.crop_zoom, "crop_zoom", 4.0))
        try:
            set_("polarity", canonical_polarity(self.polarity))
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if self.amp not in AMP_MODES:
            raise InputError(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if self.device not in DEVICES:
            raise InputError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        for name in ("augment", "train_bn", "temporal"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be true or false, got {getattr(self, name)!r}")
        stages = self.stages
        if isinstance(stages, (Stage, Mapping)) or not isinstance(stages, (list, tuple)) or not stages:
            raise InputError("stages must be a non-empty list of stages")
        set_("stages", tuple(s if isinstance(s, Stage) else Stage.from_dict(s) for s in stages))
        minimums = (("crops_per_image", 1), ("seed", 0), ("num_workers", 0), ("checkpoint_every", 0), ("log_every", 1))
        for name, lo in minimums:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise InputError(f"{name} must be an integer >= {lo}, got {value!r}")
        set_("clean_fraction", _fraction(self.clean_fraction, "clean_fraction"))
        set_("clips", _clip_list(self.clips))
        set_("clip_fraction", _fraction(self.clip_fraction, "clip_fraction", one_allowed=True))
        if self.clips and not self.temporal:
            raise InputError("clips are used by temporal runs only: set temporal to true or drop clips")
        set_("p_hard", _fraction(self.p_hard, "p_hard"))
        if self.hard_crops is not None and not isinstance(self.hard_crops, str):
            raise InputError(f"hard_crops must be a file path, got {self.hard_crops!r}")
        if self.p_hard > 0 and self.hard_crops is None:
            raise InputError("p_hard needs hard_crops, a file of false detections (python -m filmclean.train.hardneg)")
        if self.temporal and self.p_hard > 0:
            raise InputError("hard_crops apply to still training only")
        if self.temporal and self.crop_zoom is not None:
            raise InputError("crop_zoom applies to still training only; temporal runs use crop_scale")
        if self.temporal and self.pairs_dir is not None:
            raise InputError("a temporal run needs clean_dir (frames are damaged on the fly), not pairs_dir")
        if self.init_from is not None and not isinstance(self.init_from, str):
            raise InputError(f"init_from must be a model file path, got {self.init_from!r}")
        for name in ("weight_decay", "grad_clip"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and value >= 0)
            ):
                raise InputError(f"{name} must be a number >= 0, got {value!r}")
            set_(name, float(value))

    # -- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists, stages become dicts)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "stages":
                value = [s.to_dict() for s in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a dict as produced by :meth:`to_dict` (missing keys take their defaults).

        Raises :class:`~filmclean.errors.InputError` for unknown keys or invalid values.
        """
        _check_fields(cls, data, "a training config")
        return cls(**dict(data))

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, 2-space indent, trailing newline)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"training config is not valid JSON ({exc})") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path`` atomically (:func:`filmclean.io.write_bytes_atomically`;
        raises :class:`~filmclean.errors.OutputError`)."""
        from filmclean.io import write_bytes_atomically

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomically(path, self.to_json().encode("utf-8"))
        return path

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated; ``None`` values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InputError(f"unknown training config field(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def differences(self, other: TrainConfig, ignore: frozenset[str] = RUNTIME_FIELDS) -> list[str]:
        """Names of fields (outside ``ignore``) whose values differ between ``self`` and ``other``."""
        return [
            f.name
            for f in dataclasses.fields(self)
            if f.name not in ignore and getattr(self, f.name) != getattr(other, f.name)
        ]


def load_config(path: str | Path) -> TrainConfig:
    """Read a :class:`TrainConfig` from a ``.json`` or ``.toml`` file.

    Relative ``pairs_dir`` / ``clean_dir`` / ``init_from`` / ``hard_crops`` and clip paths are taken relative to
    the file's folder. TOML
    stages are written as ``[[stages]]`` tables; a key that is absent takes its default.
    Raises :class:`~filmclean.errors.InputError` naming the file for any problem.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("training config file not found", path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(path.read_text())
        elif suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            data = tomllib.loads(path.read_text())
        else:
            raise InputError("training config must be a .json or .toml file", path)
    except InputError:
        raise
    except Exception as exc:  # JSON / TOML syntax, encoding
        raise InputError(f"cannot parse training config ({type(exc).__name__}: {exc})", path) from None
    if isinstance(data, dict):
        for key in ("pairs_dir", "clean_dir", "init_from", "hard_crops"):
            value = data.get(key)
            if isinstance(value, str) and not Path(value).expanduser().is_absolute():
                data[key] = str((path.parent / value).resolve())
            elif isinstance(value, str):
                data[key] = str(Path(value).expanduser())
        if isinstance(data.get("clips"), list):
            clips = []
            for item in data["clips"]:
                if isinstance(item, dict) and isinstance(item.get("path"), str):
                    p = Path(item["path"]).expanduser()
                    item = dict(item, path=str(p if p.is_absolute() else (path.parent / p).resolve()))
                clips.append(item)
            data["clips"] = clips
    try:
        return TrainConfig.from_dict(data)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


__all__ = [
    "AMP_MODES",
    "DEVICES",
    "POLARITIES",
    "RUNTIME_FIELDS",
    "Stage",
    "TrainConfig",
    "default_batch_size",
    "load_config",
    "override_schedule",
    "paper_stages",
]
