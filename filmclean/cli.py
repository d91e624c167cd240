"""Command-line interface: a thin click layer over the library. Heavy imports live inside commands."""

from __future__ import annotations

import functools
import math
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from . import BACKENDS, DEFAULT_TILE, DEVICES, DUST_POLARITIES, TTA_COUNTS, __version__

if TYPE_CHECKING:
    from .api import ModelChoice
    from .engine import RestoreOptions, Restorer


class _Commands(click.Group):
    """The command group: ``restore`` and ``frames`` live here; the model life-cycle commands live
    with the training and evaluation code and are imported only when one of them is run or listed,
    so restoring never imports ``filmclean.train`` (nor evaluation's libraries)."""

    LAZY = {
        "dustify": "filmclean.train.cli_data:dustify_command",
        "train": "filmclean.train.cli_train:train_command",
        "export-onnx": "filmclean.train.cli_train:export_onnx_command",
        "evaluate": "filmclean.evaluation.cli:evaluate_command",
        "evaluate-clip": "filmclean.evaluation.cli:evaluate_clip_command",
        "analyze-layers": "filmclean.evaluation.cli:analyze_layers_command",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY:
            import importlib

            module, attr = self.LAZY[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="filmclean")
def cli() -> None:
    """Remove dust and scratches from scanned film: reels, image sequences and still scans."""


_OPTION_NAMES = (
    "model_path",
    "backend",
    "device",
    "tile",
    "no_tile",
    "overlap",
    "batch",
    "threshold",
    "dust",
    "tta",
    "max_width",
    "max_area",
    "temporal",
    "threads",
)


def option_declarations() -> dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]:
    """Every model and restore option as click declares it, keyed by parameter name, with defaults
    from :class:`filmclean.api.ModelChoice` and :class:`filmclean.engine.RestoreOptions`: the one
    place they are declared (``restore``, ``frames`` and the evaluation commands take theirs here)."""
    from .api import ModelChoice
    from .engine import RestoreOptions

    d = RestoreOptions()
    # one entry per option: a table of declarations rather than logic, hence its length
    return {
        "model_path": click.option(
            "--model",
            "model_path",
            type=click.Path(dir_okay=False, path_type=str),
            default=None,
            help="Model file (.safetensors or .onnx). Default: the shipped default model.",
        ),
        "backend": click.option(
            "--backend",
            type=click.Choice(list(BACKENDS)),
            default=ModelChoice.backend,
            show_default=True,
            help="Inference engine: ONNX Runtime (faster on CPU) or eager PyTorch.",
        ),
        "device": click.option(
            "--device", type=click.Choice(list(DEVICES)), default=ModelChoice.device, show_default=True
        ),
        "tile": click.option(
            "--tile",
            type=click.IntRange(min=16),
            default=d.tile or DEFAULT_TILE,
            show_default=True,
            help="Largest tile side in pixels; memory is bounded by the tile, not the frame.",
        ),
        "no_tile": click.option(
            "--no-tile", is_flag=True, help="Run whole frames in one pass (needs much more memory)."
        ),
        "overlap": click.option(
            "--overlap",
            type=click.IntRange(min=0),
            default=d.overlap,
            help="Tile overlap in pixels [default: twice the network's receptive radius, at most half the "
            "tile]; at least twice the radius makes tiled output equal whole-frame output.",
        ),
        "batch": click.option(
            "--batch",
            type=click.IntRange(min=1),
            default=d.batch,
            show_default=True,
            help="Most tiles per network call.",
        ),
        "threshold": click.option(
            "--threshold",
            type=click.FloatRange(0.0, 1.0),
            default=d.threshold,
            show_default=True,
            help="Mask models: damage probability from which a pixel is repaired; "
            "higher leaves more of the picture untouched.",
        ),
        "dust": click.option(
            "--dust",
            type=click.Choice(list(DUST_POLARITIES)),
            default=d.dust,
            show_default=True,
            help="Mask models: which way dust and scratches change the picture. dark: slides, prints and "
            "positive film (damage only darkens; bright highlights are never touched); light: "
            "negatives scanned and inverted (damage only brightens); any: either (prints carry "
            "both).",
        ),
        "tta": click.option(
            "--tta",
            type=click.Choice([str(n) for n in TTA_COUNTS]),
            default=str(d.tta),
            show_default=True,
            callback=lambda ctx, param, value: int(value),
            help="Run the model on N flips/transposes of each frame and average them: more dust found "
            "and repaired better, N times slower (still scans, or reels with time to spare).",
        ),
        "max_width": click.option(
            "--max-width",
            type=click.IntRange(min=0),
            default=d.max_width or 0,
            show_default=True,
            callback=lambda ctx, param, value: value or None,
            help="Mask models: widest defect repaired, in pixels (0: no limit). A detection wider than "
            "this (a bright flower, a lamp, grass blades taken for a mesh of hairs; detections less than "
            "9 px apart count as one) is taken for picture and left untouched, whole. Raise it for 4K "
            "scans with large blotches.",
        ),
        "max_area": click.option(
            "--max-area",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            callback=lambda ctx, param, value: value or None,
            help="Mask models: largest repair, in pixels of one detection (0: no limit). A larger one "
            "(a street light, a star field, lettering) is left untouched, whole.",
        ),
        "temporal": click.option(
            "--temporal/--no-temporal",
            default=ModelChoice.temporal,
            show_default=True,
            help="Reels and image sequences: use each frame's motion-aligned neighbours. With a "
            "single-frame model (the shipped default) damage on one frame only is found where it departs "
            "from both neighbours and repaired from them, then the model repairs the rest, except what "
            "the neighbours show too (long vertical scratches apart); a temporal model file takes the "
            "neighbours as input. --no-temporal restores every frame on its own.",
        ),
        "threads": click.option(
            "--threads", type=click.IntRange(min=1), default=None, help="CPU threads for inference."
        ),
    }


def declare(f: Callable[..., Any], names: tuple[str, ...]) -> Callable[..., Any]:
    """``f`` with the options ``names`` of :func:`option_declarations`, in that order."""
    decls = option_declarations()
    for name in reversed(names):
        f = decls[name](f)
    return f


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of every command that restores (``restore``, ``frames``).

    The command receives them as two values: ``model`` (:class:`filmclean.api.ModelChoice`: file,
    backend, device, threads, temporal mode) and ``options``
    (:class:`filmclean.engine.RestoreOptions`: tiling, threshold, polarity, test-time
    augmentation); and ``quiet``."""
    from .api import ModelChoice
    from .engine import RestoreOptions

    @functools.wraps(f)
    def command(**kwargs: Any) -> Any:
        v = {name: kwargs.pop(name) for name in _OPTION_NAMES}
        kwargs["model"] = ModelChoice(v["model_path"], v["backend"], v["device"], v["threads"], v["temporal"])
        kwargs["options"] = RestoreOptions(
            tile=None if v["no_tile"] else v["tile"],
            overlap=v["overlap"],
            batch=v["batch"],
            threshold=v["threshold"],
            dust=v["dust"],
            tta=v["tta"],
            max_width=v["max_width"],
            max_area=v["max_area"],
        )
        return f(**kwargs)

    quiet = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
    return declare(quiet(command), _OPTION_NAMES)


def _seconds(param: click.Parameter, value: float | None) -> float | None:
    """A time option: a finite number of seconds, at least 0."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise click.BadParameter(f"{value} is not a time in seconds (a finite number, at least 0)", param=param)
    return value


def _frame_range(param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    """``--frames FIRST-LAST``: frame indices from 0, both ends included."""
    if value is None:
        return None
    first, sep, last = value.partition("-")
    if not sep or not first.strip().isdigit() or not last.strip().isdigit():
        raise click.BadParameter(f"{value!r} is not FIRST-LAST (frame indices from 0, e.g. 0-999)", param=param)
    a, b = int(first), int(last)
    if b < a:
        raise click.BadParameter(f"{value!r}: LAST must not be before FIRST", param=param)
    return a, b


def ray_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--ray ADDRESS``, ``--chunk N`` and ``--workers N`` (restore and frames)."""
    f = click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=None,
        help="With --ray: workers holding the model (default: one per GPU, else one per CPU).",
    )(f)
    f = click.option(
        "--chunk",
        type=click.IntRange(min=1),
        default=240,
        show_default=True,
        help="With --ray: frames per task.",
    )(f)
    return click.option(
        "--ray",
        "ray_address",
        default=None,
        metavar="ADDRESS",
        help="Restore on a Ray cluster (pip install 'filmclean[ray]'): its address, or 'auto' to start "
        "a local one. Chunks are restored by workers that keep the model loaded and joined into one "
        "output identical to a run on one machine; an interrupted run resumes.",
    )(f)


def matte_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--matte PATH`` and ``--matte-mode exact|add`` (restore and frames)."""
    f = click.option(
        "--matte-mode",
        type=click.Choice(["exact", "add"]),
        default="exact",
        show_default=True,
        help="With --matte: repair exactly the matte and nowhere else, or add it to what the model finds.",
    )(f)
    return click.option(
        "--matte",
        type=click.Path(path_type=str),
        default=None,
        metavar="MATTE",
        help="A defect matte (an image for every frame, an image sequence, or a video; matched by frame "
        "number; white = damage): the model repairs from it (its PyTorch weights run).",
    )(f)


FRAMES_HELP = (
    "Restore only frames FIRST-LAST (indices from 0, both included), reading the frames just outside "
    "as neighbours: chunks restored apart equal one whole run."
)


def _make_restorer(model: ModelChoice, options: RestoreOptions, quiet: bool, matte_mode: str | None = None) -> Restorer:
    if matte_mode is not None:
        from .api import open_matte_restorer

        restorer = open_matte_restorer(model, options)
    else:
        restorer = model.open(options)
    if not quiet:
        if matte_mode is not None:
            mode = f"single-frame model guided by the matte ({matte_mode})"
        elif not restorer.temporal:
            mode = "single-frame model" + (
                "; reels and sequences: spike test with the neighbours first"
                if model.temporal
                else ", every frame alone (--no-temporal)"
            )
        elif not model.temporal:
            mode = (
                "single-frame (--no-temporal)"
                if restorer.fallback is not None
                else "temporal model without neighbours (--no-temporal)"
            )
        else:
            mode = "temporal"
        tta = options.tta
        click.echo(
            f"model: {model.model or 'default'} ({mode}) | backend: {restorer.backend.describe()} | "
            f"tile: {options.tile or 'whole frame'}, overlap {restorer.overlap}"
            f"{f' | tta: {tta} transforms' if tta > 1 else ''}",
            err=True,
        )
    note = getattr(restorer.backend, "note", None)
    if note:
        click.echo(f"note: {note}", err=True)
    return restorer


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=str))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=str),
    help="Output video; the extension picks the codec (.mkv FFV1, .mov ProRes, .mp4 H.264).",
)
@click.option("--codec", default=None, help="Override the encoder (e.g. ffv1, prores_ks, libx264, libx265).")
@click.option("--crf", type=int, default=None, help="Quality for H.264/H.265 (lower is better).")
@click.option("--pix-fmt", default=None, help="Override the output pixel format (e.g. yuv422p10le).")
@click.option(
    "--start", type=float, default=None, callback=lambda c, p, v: _seconds(p, v), help="Start time in seconds."
)
@click.option(
    "--end", type=float, default=None, callback=lambda c, p, v: _seconds(p, v), help="End time in seconds (exclusive)."
)
@click.option(
    "--mask-out",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Also write the damage mask as a greyscale video (mask models only).",
)
@click.option(
    "--mask-bits",
    type=click.Choice(["8", "16"]),
    default=None,
    callback=lambda c, p, v: None if v is None else int(v),
    help="Bits of the --mask-out video (default: 16 for sources deeper than 8 bits, else 8).",
)
@click.option(
    "--protect",
    type=click.Path(path_type=str),
    default=None,
    metavar="MATTE",
    help="A protection matte (an image for every frame, an image sequence, or a video; matched by "
    "frame number): its white pixels (above half) are never changed.",
)
@click.option(
    "--frames",
    "frame_range",
    default=None,
    metavar="FIRST-LAST",
    callback=lambda c, p, v: _frame_range(p, v),
    help=FRAMES_HELP + " The output keeps the frames' timestamps and holds their video only: "
    "`filmclean join` puts chunks together with the source's audio.",
)
@click.option("--force", "-f", is_flag=True, help="Overwrite an existing output.")
@matte_options
@ray_options
@model_options
def restore(
    input_path: str,
    output: str,
    codec: str | None,
    crf: int | None,
    pix_fmt: str | None,
    start: float | None,
    end: float | None,
    mask_out: str | None,
    mask_bits: int | None,
    protect: str | None,
    frame_range: tuple[int, int] | None,
    force: bool,
    ray_address: str | None,
    chunk: int,
    workers: int | None,
    matte: str | None,
    matte_mode: str,
    model: ModelChoice,
    options: RestoreOptions,
    quiet: bool,
) -> None:
    """Restore a reel (any video PyAV reads) into OUTPUT, keeping audio, timing and bit depth."""
    from pathlib import Path

    from .pipeline import VideoOptions, restore_video

    if start is not None and end is not None and end <= start:
        raise click.BadParameter("--end must be after --start")
    if frame_range is not None and (start is not None or end is not None):
        raise click.BadParameter("--frames cannot be combined with --start/--end")
    if ray_address is not None and matte:
        raise click.BadParameter("--matte cannot be used with --ray yet")
    if ray_address is not None:
        from .cluster import RayOptions, restore_video_on_ray

        video = VideoOptions(
            codec=codec,
            crf=crf,
            pix_fmt=pix_fmt,
            force=force,
            temporal=model.temporal,
            matte=Path(protect) if protect else None,
        )
        if start is not None or end is not None or frame_range is not None or mask_out:
            raise click.BadParameter("--ray restores whole reels: no --start/--end, --frames or --mask-out")
        ray_opts = RayOptions(address=ray_address, chunk=chunk, workers=workers)
        stats = restore_video_on_ray(input_path, output, model, options, video, ray_opts, quiet=quiet)
        if not quiet:
            click.echo(f"wrote {output}: {stats.summary()}", err=True)
        return
    restorer = _make_restorer(model, options, quiet, matte_mode if matte else None)
    opts = VideoOptions(
        codec=codec,
        crf=crf,
        pix_fmt=pix_fmt,
        start=start,
        end=end,
        force=force,
        mask_out=Path(mask_out) if mask_out else None,
        temporal=model.temporal,
        frames=frame_range,
        matte=Path(protect) if protect else None,
        mask_bits=mask_bits,
        guide=Path(matte) if matte else None,
        guide_mode=matte_mode,
    )
    stats = restore_video(input_path, output, restorer, opts, quiet=quiet)
    if not quiet:
        click.echo(f"wrote {output}: {stats.summary()}", err=True)


@cli.command()
@click.argument("input_spec", metavar="INPUT")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Output folder; files keep their names, format and bit depth.",
)
@click.option(
    "--mask-out",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="Folder for greyscale damage masks (mask models only).",
)
@click.option(
    "--mask-format",
    type=click.Choice(["png", "tiff", "exr"]),
    default="png",
    show_default=True,
    help="--mask-out files: 16-bit PNG or TIFF, or float EXR (the probability exactly).",
)
@click.option(
    "--frames",
    "frame_range",
    default=None,
    metavar="FIRST-LAST",
    callback=lambda c, p, v: _frame_range(p, v),
    help=FRAMES_HELP + " Indices count the files in name order.",
)
@click.option(
    "--protect",
    type=click.Path(path_type=str),
    default=None,
    metavar="MATTE",
    help="A protection matte (one image for every file, or a sequence matched by name, else by "
    "position): its white pixels (above half) are never changed.",
)
@click.option(
    "--infrared",
    is_flag=True,
    help="The files' fourth channel is the scanner's infrared record (RGBI TIFF, DPX/EXR): its dust and "
    "scratch map is added to what the model finds, and the channel is written back unchanged.",
)
@click.option(
    "--ir-threshold",
    type=click.FloatRange(0.01, 1.0),
    default=0.12,
    show_default=True,
    help="With --infrared: how far below the film base's infrared level (a share of it) a defect is.",
)
@click.option("--force", "-f", is_flag=True, help="Redo outputs that already exist (default: skip them, i.e. resume).")
@matte_options
@ray_options
@model_options
def frames(
    input_spec: str,
    output: str,
    mask_out: str | None,
    mask_format: str,
    protect: str | None,
    frame_range: tuple[int, int] | None,
    force: bool,
    ray_address: str | None,
    chunk: int,
    workers: int | None,
    matte: str | None,
    matte_mode: str,
    infrared: bool,
    ir_threshold: float,
    model: ModelChoice,
    options: RestoreOptions,
    quiet: bool,
) -> None:
    """Restore still scans or an image sequence (folder, glob or file: PNG, TIFF, DPX, EXR, JPEG)."""
    from .pipeline import restore_frames

    if ray_address is not None and matte:
        raise click.BadParameter("--matte cannot be used with --ray yet")
    if ray_address is not None:
        from .cluster import RayOptions, restore_frames_on_ray

        if frame_range is not None:
            raise click.BadParameter("--ray restores the whole sequence: no --frames")
        ray_opts = RayOptions(address=ray_address, chunk=chunk, workers=workers)
        stats = restore_frames_on_ray(
            input_spec,
            output,
            model,
            options,
            force=force,
            mask_dir=mask_out,
            options=ray_opts,
            quiet=quiet,
            matte=protect,
            mask_format=mask_format,
        )
        if not quiet:
            click.echo(f"wrote {output}: {stats.summary()}", err=True)
        return

    if ray_address is not None and infrared:
        raise click.BadParameter("--infrared cannot be used with --ray yet")
    guided_mode = matte_mode if matte else ("add" if infrared else None)
    restorer = _make_restorer(model, options, quiet, guided_mode)
    stats = restore_frames(
        input_spec,
        output,
        restorer,
        force=force,
        mask_dir=mask_out,
        quiet=quiet,
        temporal=model.temporal,
        frames=frame_range,
        matte=protect,
        mask_format=mask_format,
        guide=matte,
        guide_mode=matte_mode,
        infrared=ir_threshold if infrared else None,
    )
    for note in stats.notes:
        click.echo(f"note: {note}", err=True)
    if not quiet:
        click.echo(f"wrote {output}: {stats.summary()}", err=True)


@cli.command()
@click.argument("parts", nargs=-1, required=True, metavar="PART...")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=str), help="Joined video.")
@click.option(
    "--source",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="The reel the parts were restored from: its audio, subtitle and data streams are copied once.",
)
@click.option("--force", "-f", is_flag=True, help="Overwrite an existing output.")
@click.option("-q", "--quiet", is_flag=True, help="No summary line.")
def join(parts: tuple[str, ...], output: str, source: str | None, force: bool, quiet: bool) -> None:
    """Join chunks made by `restore --frames` (in order) into OUTPUT without re-encoding."""
    from .io.join import join_parts

    stats = join_parts(parts, output, source=source, force=force)
    if not quiet:
        click.echo(
            f"wrote {output}: {stats.frames} frame(s) from {stats.parts} part(s)"
            + (f", {stats.copied_packets} packet(s) of the source's other streams" if source else ""),
            err=True,
        )


@cli.command()
@click.argument("original", metavar="ORIGINAL")
@click.argument("restored", metavar="RESTORED")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=str), help="The HTML page.")
@click.option(
    "--frames",
    "count",
    type=click.IntRange(min=1),
    default=12,
    show_default=True,
    help="Reels: how many of the most changed frames to show.",
)
@click.option("--force", "-f", is_flag=True, help="Overwrite an existing page.")
def review(original: str, restored: str, output: str, count: int, force: bool) -> None:
    """Write one self-contained HTML page to review the repairs: ORIGINAL and RESTORED are two folders
    of stills or sequences (files paired by name) or two videos. Clicking a repair rejects it; the
    page exports protect mattes for `--protect`."""
    from .review import write_review

    stats = write_review(original, restored, output, frames=count, force=force)
    click.echo(f"wrote {output}: {stats.pictures} picture(s), {stats.repairs} repair(s)", err=True)


@cli.command("farm-job", context_settings={"ignore_unknown_options": True})
@click.argument("input_path", metavar="INPUT")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=str), help="Restored reel.")
@click.option("--chunk", type=click.IntRange(min=1), required=True, help="Frames per task.")
@click.option(
    "--command",
    "program",
    default="filmclean",
    show_default=True,
    help='How the workers run filmclean, e.g. "python3 -m filmclean".',
)
@click.option(
    "--parts",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="Folder for the restored chunks (default: OUTPUT.parts beside the output; created now).",
)
@click.option(
    "--template-dir",
    type=click.Path(file_okay=False, path_type=str),
    default=".",
    show_default=True,
    help="Where the template will be saved: its paths are given relative to it.",
)
@click.argument("restore_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- RESTORE OPTIONS]")
def farm_job_command(
    input_path: str,
    output: str,
    chunk: int,
    program: str,
    parts: str | None,
    template_dir: str,
    restore_args: tuple[str, ...],
) -> None:
    """Write an Open Job Description job template (to stdout) that restores INPUT on a render farm:
    one task per chunk of frames (`restore --frames`), then `join`. Options after `--` are passed to
    every `restore` (model, threshold, ...). Check it with `openjd check`, run it on one machine with
    `openjd run JOB --step Join --run-dependencies`, or submit it to AWS Deadline Cloud."""
    from pathlib import Path

    from .errors import OutputError
    from .farm import farm_job

    extra = [a for a in restore_args if a != "--"] if restore_args[:1] == ("--",) else list(restore_args)
    try:  # the options must be ones restore takes: checked now, not on the farm
        restore.make_context("restore", [input_path, "-o", output, *extra], resilient_parsing=False)
    except click.UsageError as exc:
        raise click.BadParameter(
            f"not a restore option: {exc.format_message()}", param_hint="RESTORE OPTIONS"
        ) from None
    job = farm_job(input_path, output, chunk, extra, command=program, parts_dir=parts, template_dir=template_dir)
    folder = job.parts[0].parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the parts folder: {exc.strerror}", folder) from None
    click.echo(job.text(), nl=False)
    click.echo(
        f"{job.frames} frames in {len(job.chunks)} task(s) of up to {chunk}; parts in {folder}; "
        f"output {Path(output).absolute()}",
        err=True,
    )


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM/SIGHUP (``kill``, ``timeout``, job schedulers, a closed
    terminal): handled exactly like Ctrl-C, so every writer removes its partial file on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _interrupted(exc: BaseException | None) -> None:
    """Report an interruption in one line and exit 128 + the signal number (130 for Ctrl-C)."""
    while exc is not None and not isinstance(exc, KeyboardInterrupt):
        exc = exc.__cause__ or exc.__context__
    if isinstance(exc, Terminated):
        click.echo(f"filmclean: terminated ({signal.Signals(exc.signum).name}); no partial output left", err=True)
        sys.exit(128 + exc.signum)
    click.echo("filmclean: interrupted", err=True)
    sys.exit(130)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one line on stderr and exit code 2; SIGINT,
    SIGTERM and SIGHUP stop the run cleanly (partial files removed) with exit 128 + signal."""
    from .errors import FilmcleanError

    previous = {}
    if threading.current_thread() is threading.main_thread():
        # a signal the caller ignores stays ignored (nohup ignores SIGHUP so that a run survives
        # the terminal closing)
        previous = {s: signal.signal(s, _terminate) for s in _STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        cli.main(args=argv, prog_name="filmclean", standalone_mode=False)
    except FilmcleanError as exc:
        click.echo(f"filmclean: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        _interrupted(exc)
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


if __name__ == "__main__":
    main()
