"""Evaluation commands for the ``filmclean`` CLI: ``evaluate``, ``evaluate-clip`` and
``analyze-layers``.

Only click is imported here; the work is done by the other modules of :mod:`filmclean.evaluation`,
imported when a command runs. :mod:`filmclean.cli` loads these commands when one of them is run or
listed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ..train.polarity import PolarityChoice

if TYPE_CHECKING:
    from ..engine import RestoreOptions

__all__ = ["analyze_layers_command", "evaluate_clip_command", "evaluate_command"]


def _model_options(f: Any) -> Any:
    """``--tile/--no-tile/--threshold/--dust/--tta/--max-width/--backend/--device`` as ``filmclean restore``
    declares them (:func:`filmclean.cli.declare`), so an evaluation runs models exactly as a user's
    restore does; a model spec's ``:dust=...``/``:tta=N`` overrides them for that model."""
    from ..cli import declare

    return declare(f, ("tile", "no_tile", "threshold", "dust", "tta", "max_width", "backend", "device"))


def _restore_options(
    tile: int, no_tile: bool, threshold: float, dust: str, tta: int, max_width: int | None
) -> RestoreOptions:
    """The :class:`filmclean.engine.RestoreOptions` of :func:`_model_options`' values."""
    from ..engine import RestoreOptions

    return RestoreOptions(tile=None if no_tile else tile, threshold=threshold, dust=dust, tta=tta, max_width=max_width)


def _size(ctx: click.Context, param: click.Parameter, value: str) -> str:
    text = str(value).strip().lower()
    if text != "full" and not (text.isdigit() and int(text) >= 16):
        raise click.BadParameter(f"expected a size in pixels (>= 16) or 'full', got {value!r}")
    return text


def _names(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter("expected comma-separated image names")
    return names


def _console() -> Any:
    """A rich console on stdout: the terminal's width, or 180 columns when not a terminal (files, pipes)."""
    import sys

    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 180)


@click.command(name="evaluate")
@click.option(
    "--pairs",
    "pairs_dir",
    required=True,
    type=click.Path(path_type=str),
    help="Pairs from 'filmclean dustify' (SIZE/{clean,damaged,mask}/ + manifest.json), or any folder "
    "with clean/ and damaged/ (optional mask/) holding files of matching names.",
)
@click.option(
    "--size",
    default="256",
    show_default=True,
    callback=_size,
    help="Which size of a dustify set; 'full' = the full-size held-out originals (the manifest's "
    "clean_dir, or PAIRS itself as a folder of clean images), damaged on the fly with a fixed "
    "seed per image, so whole images go through the model's tiling.",
)
@click.option(
    "--split",
    type=click.Choice(["test", "all"]),
    default="test",
    show_default=True,
    help="test: the manifest's test names (all pairs when there is no manifest).",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="MODEL",
    help="Repeatable. A model file (.safetensors/.onnx) or a reference: identity, "
    "dns[:radius=2,threshold=0.1] (Dust & Scratches median filter), oracle[:radius=3] "
    "(true mask + Telea inpainting), default (the shipped model). "
    "[default: identity, dns, oracle (if masks), default (if installed)]",
)
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Report folder: report.json, per_image.csv and PNG figures (replaced if present).",
)
@click.option(
    "--damage",
    type=click.Choice(["stored", "heldout", "sprites", "film"]),
    default="stored",
    show_default=True,
    help="stored: the pairs' own damage (dustify's files; the training generator for --size full); heldout: "
    "damage drawn afresh on each clean image by the generator never used for training, reported per kind "
    "(dust, dirt, hair, scratch); sprites: the same generator with every artefact a real shape from the "
    "held-out sprites (never used for training); film: the film-damage detectors' training generator "
    "(train/filmdamage.py, default parameters), reported per kind like heldout.",
)
@click.option(
    "--damage-seed", type=int, default=0, show_default=True, help="Seed of the drawn damage (heldout, sprites, film)."
)
@click.option(
    "--crops",
    type=click.IntRange(min=1),
    default=None,
    help="Score N random square crops of each (damaged) image instead of whole images, each through the "
    "model alone; with --size full the damage keeps its scan-scale sizes in the crops.",
)
@click.option("--crop-size", type=click.IntRange(min=16), default=256, show_default=True, help="Side of --crops.")
@_model_options
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate only the first N pairs (by name).")
@click.option(
    "--names",
    "wanted",
    default=None,
    callback=_names,
    help="Comma-separated image names to evaluate instead of the split (e.g. a training run's validation "
    "images, for choosing a model).",
)
@click.option(
    "--worst",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="Rows of each worst-case contact sheet (0 = none).",
)
@click.option("--no-lpips", is_flag=True, help="Skip LPIPS (VGG-16 on every image is the slowest metric on a CPU).")
@click.option("--no-figures", is_flag=True, help="Write report.json and per_image.csv only.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def evaluate_command(
    pairs_dir: str,
    size: str,
    split: str,
    models: tuple[str, ...],
    out_dir: str,
    damage: str,
    damage_seed: int,
    crops: int | None,
    crop_size: int,
    tile: int,
    no_tile: bool,
    threshold: float,
    dust: str,
    tta: int,
    max_width: int | None,
    backend: str,
    device: str,
    limit: int | None,
    wanted: list[str] | None,
    worst: int,
    no_lpips: bool,
    no_figures: bool,
    quiet: bool,
) -> None:
    """Score models on test pairs as in Ivanova et al. 2022: SSIM of predictions on damaged AND on clean
    inputs, δSSIM, PSNR, LPIPS and time, with histograms and worst-case sheets; with true masks, also
    where SSIM is lost (damage missed, undamaged pixels changed)."""
    from ..api import ModelChoice
    from .methods import default_method_specs, parse_method
    from .metrics import LpipsScorer
    from .pairs import crops_of, open_pairs, with_film_damage, with_heldout_damage
    from .report import attribution_table, kind_table, results_table, write_report
    from .still import evaluate

    pairs = open_pairs(pairs_dir, size, split, limit, wanted)
    if damage in ("heldout", "sprites"):
        pairs = with_heldout_damage(pairs, damage_seed, sprites_only=damage == "sprites")
    elif damage == "film":
        pairs = with_film_damage(pairs, damage_seed)
    if crops is not None:
        pairs = crops_of(pairs, crop_size, crops, damage_seed)
    specs = list(models) or default_method_specs(pairs.has_masks)
    options = _restore_options(tile, no_tile, threshold, dust, tta, max_width)
    methods = [parse_method(s, options, ModelChoice(backend=backend, device=device)) for s in specs]
    scorer = LpipsScorer(enabled=not no_lpips)
    if not quiet:
        click.echo(
            f"evaluating {', '.join(m.name for m in methods)} on {len(pairs)} pairs "
            f"({pairs.settings.get('size')}, split {pairs.settings.get('split')}) from {pairs_dir}",
            err=True,
        )
        if not scorer.available and not no_lpips:
            click.echo(f"LPIPS unavailable: {scorer.reason}", err=True)

    def progress(i: int, n: int, name: str) -> None:
        if not quiet:
            click.echo(f"[{i + 1}/{n}] {name}", err=True)

    result = evaluate(pairs, methods, lpips=scorer, worst=worst, progress=progress)
    result.settings.update(
        {
            "tile": None if no_tile else tile,
            "threshold": threshold,
            "dust": dust,
            "tta": tta,
            "max_width": max_width,
            "backend": backend,
            "device": device,
            "limit": limit,
        }
    )
    paths = write_report(result, out_dir, figures=not no_figures)
    _console().print(results_table(result))
    for table in (attribution_table(result), kind_table(result)):
        if table is not None:
            _console().print(table)
    if not quiet:
        click.echo(
            f"wrote {paths['report']}, {paths['csv'].name} and {len(result.figures)} figures in {out_dir}", err=True
        )


@click.command(name="analyze-layers")
@click.option(
    "--pairs",
    "pairs_dir",
    required=True,
    type=click.Path(path_type=str),
    help="Pairs folder, as for 'filmclean evaluate'.",
)
@click.option(
    "--names",
    default=None,
    callback=_names,
    help="Comma-separated image names [default: three test pairs spread over the damage range].",
)
@click.option("--size", default="256", show_default=True, callback=_size, help="As for 'filmclean evaluate'.")
@click.option(
    "--top",
    "top_k",
    type=click.IntRange(min=1),
    default=9,
    show_default=True,
    help="Size of the most-activated filter sets compared.",
)
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Folder for layer_response.json and the plots.",
)
def analyze_layers_command(pairs_dir: str, names: list[str] | None, size: str, top_k: int, out_dir: str) -> None:
    """The paper's layer-response experiment: which of VGG-16's most activated filters change when dust and
    scratches are added, for the five pre-pool ReLUs (Table 1 of Ivanova et al. 2022)."""
    from .layers import analyze_layers, layers_table, write_layer_report
    from .pairs import open_pairs

    pairs = open_pairs(pairs_dir, size, "all" if names else "test")
    analysis = analyze_layers(pairs, names, top_k=top_k)
    paths = write_layer_report(analysis, out_dir)
    _console().print(layers_table(analysis))
    click.echo(f"wrote {paths['json']} and {len(paths) - 1} plots in {out_dir}", err=True)


@click.command(name="evaluate-clip")
@click.argument("clip", type=click.Path(path_type=str))
@click.option(
    "--method",
    "methods",
    multiple=True,
    metavar="METHOD",
    help="Repeatable. identity, tmedian[:radius=R] (FFmpeg's temporal median), single[:MODEL] (a model "
    "restoring every frame alone; plain 'single' = the shipped default model), temporal[:MODEL] (a "
    "temporal model with motion-aligned neighbours; plain 'temporal' = the shipped temporal model), "
    "spikes[:MODEL] (a single-frame model after one-frame damage is found and repaired from the aligned "
    "neighbours by a motion-compensated spike test; plain 'spikes' = the shipped default model). "
    "[default: identity, tmedian, single (if a model is installed), temporal (if a temporal model is "
    "installed)]",
)
@click.option(
    "--first",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="First frame to evaluate (0 = the clip's first frame).",
)
@click.option(
    "--last",
    type=click.IntRange(min=0),
    default=None,
    help="Last frame to evaluate, inclusive [default: the clip's last frame]. Frames are held in memory.",
)
@click.option(
    "--max-side",
    type=click.IntRange(min=16),
    default=None,
    help="Downscale (INTER_AREA) so that the longer side is at most this many pixels.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic damage.")
@click.option(
    "--polarity",
    type=PolarityChoice(),
    default="any",
    show_default=True,
    help="Damage polarity: dark (prints/slides), light (negatives) or any (drawn from the seed; "
    "'random' is read as any).",
)
@click.option(
    "--damage",
    type=click.Choice(["dustify", "heldout"]),
    default="dustify",
    show_default=True,
    help="Synthetic damage: dustify (the older training generator) or heldout (the generator never used "
    "for training: dust, dirt and hairs drawn afresh on every frame over scratches that persist; the "
    "table then gives the share of each kind left alone). --polarity applies to dustify.",
)
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Report folder: report.json, per_frame.csv, ssim_per_frame.png and strip.png (replaced if present).",
)
@_model_options
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for inference.")
@click.option("--no-figures", is_flag=True, help="Write report.json and per_frame.csv only.")
@click.option(
    "--no-reference",
    is_flag=True,
    help="The clip is real damaged footage with no clean version: draw no damage, and score each method by "
    "the one-frame spikes a motion-compensated spike test finds before and after, and the pixels it "
    "changed (report.json, per_frame.csv, contact.png).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def evaluate_clip_command(
    clip: str,
    methods: tuple[str, ...],
    first: int,
    last: int | None,
    max_side: int | None,
    seed: int,
    polarity: str,
    damage: str,
    out_dir: str,
    tile: int,
    no_tile: bool,
    threshold: float,
    dust: str,
    tta: int,
    max_width: int | None,
    backend: str,
    device: str,
    threads: int | None,
    no_figures: bool,
    no_reference: bool,
    quiet: bool,
) -> None:
    """Score methods on frames of a CLIP damaged with synthetic dust and persistent scratches: SSIM of their
    outputs on the damaged AND on the clean frames, frames made worse, flicker against the clean clip's own,
    and time per frame. With --no-reference, score real damaged footage as it is (see that option)."""
    from ..api import ModelChoice
    from .clip import evaluate_clip
    from .methods import default_clip_method_specs
    from .report import clip_table

    if last is not None and last < first:
        raise click.BadParameter(f"--last ({last}) must not be before --first ({first})", param_hint="--last")
    specs = list(methods) or default_clip_method_specs()

    def progress(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    options = _restore_options(tile, no_tile, threshold, dust, tta, max_width)
    choice = ModelChoice(backend=backend, device=device, threads=threads)
    if no_reference:
        from ..errors import InputError
        from .clip import read_clip
        from .footage import evaluate_footage, footage_table, write_footage_report
        from .methods import parse_clip_method

        progress(f"reading {clip} (frames {first}-{'end' if last is None else last})")
        frames = read_clip(clip, first, last, max_side)
        if len(frames.frames) < 3:
            raise InputError("the spike test needs at least 3 frames", clip)
        found = evaluate_footage(
            frames.frames,
            [parse_clip_method(m, options, choice) for m in specs],
            settings=dict(frames.settings),
            contact=not no_figures,
            progress=progress,
        )
        paths = write_footage_report(found, out_dir)
        _console().print(footage_table(found))
        if not quiet:
            click.echo(f"wrote {', '.join(sorted(p.name for p in paths.values()))} in {out_dir}", err=True)
        return

    result = evaluate_clip(
        clip,
        specs,
        first=first,
        last=last,
        max_side=max_side,
        seed=seed,
        polarity=polarity,
        out_dir=out_dir,
        options=options,
        choice=choice,
        figures=not no_figures,
        damage=damage,
        progress=progress,
    )
    _console().print(clip_table(result))
    if not quiet:
        click.echo(f"wrote report.json, per_frame.csv and {len(result.figures)} figures in {out_dir}", err=True)
