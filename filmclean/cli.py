"""Command-line interface: a thin click layer over the library. Heavy imports live inside commands."""

from __future__ import annotations

import math
import signal
import sys
import threading

import click

from . import DEFAULT_TILE, DUST_POLARITIES, TTA_COUNTS, __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="filmclean")
def cli() -> None:
    """Remove dust and scratches from scanned film: reels, image sequences and still scans."""


def _model_options(f):
    """Options shared by every command that runs a model."""
    opts = [
        click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=str), default=None,
                     help="Model file (.safetensors or .onnx). Default: the shipped default model."),
        click.option("--backend", type=click.Choice(["auto", "torch", "onnx"]), default="auto", show_default=True,
                     help="Inference engine: ONNX Runtime (faster on CPU) or eager PyTorch."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
        click.option("--tile", type=click.IntRange(min=16), default=DEFAULT_TILE, show_default=True,
                     help="Tile size in pixels; memory is bounded by the tile, not the frame."),
        click.option("--no-tile", is_flag=True, help="Run whole frames in one pass (needs much more memory)."),
        click.option("--overlap", type=click.IntRange(min=0), default=None,
                     help="Tile overlap in pixels [default: twice the network's receptive radius, at most half the "
                          "tile]; at least twice the radius makes tiled output equal whole-frame output."),
        click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Tiles per network call."),
        click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
                     help="Mask models: damage probability from which a pixel is repaired; "
                          "higher leaves more of the picture untouched."),
        click.option("--dust", type=click.Choice(list(DUST_POLARITIES)), default="any", show_default=True,
                     help="Mask models: which way dust and scratches change the picture. dark: slides, prints and "
                          "positive film (damage only darkens; bright highlights are never touched); light: "
                          "negatives scanned and inverted (damage only brightens); any: either (prints carry "
                          "both)."),
        click.option("--tta", type=click.Choice([str(n) for n in TTA_COUNTS]), default="1", show_default=True,
                     callback=lambda ctx, param, value: int(value),
                     help="Run the model on N flips/transposes of each frame and average them: more dust found "
                          "and repaired better, N times slower (still scans, or reels with time to spare)."),
        click.option("--temporal/--no-temporal", default=True, show_default=True,
                     help="Reels and image sequences: repair each frame with the help of its motion-aligned "
                          "neighbours (needs a temporal model; the shipped one is used by default). "
                          "--no-temporal restores every frame on its own."),
        click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for inference."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _seconds(param: click.Parameter, value: float | None) -> float | None:
    """A time option: a finite number of seconds, at least 0."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise click.BadParameter(f"{value} is not a time in seconds (a finite number, at least 0)", param=param)
    return value


def _make_restorer(model_path: str | None, backend: str, device: str, tile: int, no_tile: bool,
                   overlap: int | None, batch: int, threshold: float, dust: str, tta: int, temporal: bool,
                   threads: int | None, quiet: bool):
    from .api import open_restorer
    from .engine import RestoreOptions

    options = RestoreOptions(tile=None if no_tile else tile, overlap=overlap, batch=batch, threshold=threshold,
                             dust=dust, tta=tta)
    restorer = open_restorer(model_path, options, backend=backend, device=device, threads=threads, temporal=temporal)
    if not quiet:
        if not restorer.temporal:
            mode = "single-frame model"
        elif not temporal:
            mode = "single-frame (--no-temporal)" if restorer.fallback is not None else \
                "temporal model without neighbours (--no-temporal)"
        else:
            mode = "temporal"
        click.echo(f"model: {model_path or 'default'} ({mode}) | backend: {restorer.backend.describe()} | "
                   f"tile: {'whole frame' if no_tile else tile}, overlap {restorer.overlap}"
                   f"{f' | tta: {tta} transforms' if tta > 1 else ''}", err=True)
    return restorer


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="Output video; the extension picks the codec (.mkv FFV1, .mov ProRes, .mp4 H.264).")
@click.option("--codec", default=None, help="Override the encoder (e.g. ffv1, prores_ks, libx264, libx265).")
@click.option("--crf", type=int, default=None, help="Quality for H.264/H.265 (lower is better).")
@click.option("--pix-fmt", default=None, help="Override the output pixel format (e.g. yuv422p10le).")
@click.option("--start", type=float, default=None, callback=lambda c, p, v: _seconds(p, v),
              help="Start time in seconds.")
@click.option("--end", type=float, default=None, callback=lambda c, p, v: _seconds(p, v),
              help="End time in seconds (exclusive).")
@click.option("--mask-out", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Also write the damage mask as a greyscale video (mask models only).")
@click.option("--force", "-f", is_flag=True, help="Overwrite an existing output.")
@_model_options
def restore(input_path, output, codec, crf, pix_fmt, start, end, mask_out, force, model_path, backend, device, tile,
            no_tile, overlap, batch, threshold, dust, tta, temporal, threads, quiet):
    """Restore a reel (any video PyAV reads) into OUTPUT, keeping audio, timing and bit depth."""
    from pathlib import Path

    from .pipeline import VideoOptions, restore_video

    if start is not None and end is not None and end <= start:
        raise click.BadParameter("--end must be after --start")
    restorer = _make_restorer(model_path, backend, device, tile, no_tile, overlap, batch, threshold, dust, tta,
                              temporal, threads, quiet)
    opts = VideoOptions(codec=codec, crf=crf, pix_fmt=pix_fmt, start=start, end=end, force=force,
                        mask_out=Path(mask_out) if mask_out else None, temporal=temporal)
    stats = restore_video(input_path, output, restorer, opts, quiet=quiet)
    if not quiet:
        click.echo(f"wrote {output}: {stats.summary()}", err=True)


@cli.command()
@click.argument("input_spec", metavar="INPUT")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Output folder; files keep their names, format and bit depth.")
@click.option("--mask-out", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Folder for greyscale damage masks (mask models only).")
@click.option("--force", "-f", is_flag=True, help="Redo outputs that already exist (default: skip them, i.e. resume).")
@_model_options
def frames(input_spec, output, mask_out, force, model_path, backend, device, tile, no_tile, overlap, batch, threshold,
           dust, tta, temporal, threads, quiet):
    """Restore still scans or an image sequence (folder, glob or file: PNG, TIFF, DPX, EXR, JPEG)."""
    from .pipeline import restore_frames

    restorer = _make_restorer(model_path, backend, device, tile, no_tile, overlap, batch, threshold, dust, tta,
                              temporal, threads, quiet)
    stats = restore_frames(input_spec, output, restorer, force=force, mask_dir=mask_out, quiet=quiet, temporal=temporal)
    if not quiet:
        click.echo(f"wrote {output}: {stats.summary()}", err=True)


def _register_lifecycle_commands() -> None:
    """Model life-cycle commands live with the training code (only click is imported by these modules)."""
    from .train.cli_data import dustify_command
    from .cli_eval import analyze_layers_command, evaluate_clip_command, evaluate_command
    from .train.cli_train import export_onnx_command, train_command

    cli.add_command(dustify_command)
    cli.add_command(train_command)
    cli.add_command(export_onnx_command)
    cli.add_command(evaluate_command)
    cli.add_command(analyze_layers_command)
    cli.add_command(evaluate_clip_command)


_register_lifecycle_commands()


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
        previous = {s: signal.signal(s, _terminate) for s in _STOP_SIGNALS}
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
