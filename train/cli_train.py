"""Click commands ``filmclean train`` and ``filmclean export-onnx`` (wired into the CLI group by
:mod:`filmclean.cli`). Only ``click`` (and :mod:`filmclean.train.polarity`, which needs nothing more)
is imported at module level; the work happens in
:func:`filmclean.train.loop.train` and :func:`filmclean.onnx_export.export_onnx`.

Configuration of ``train``, later sources winning: the :class:`~filmclean.train.config.TrainConfig`
defaults; ``--config FILE`` (JSON or TOML) or, when that is absent and the run is resumed, the
run directory's ``config.json``; then the flags below. Schedule flags: ``--sizes`` replaces the
schedule with the paper's for those sizes; ``--epochs`` sets every stage's epochs;
``--batch-size`` every stage's per-process batch size; ``--lr`` the peak learning rate (the other
stages keep their ratio to it).
"""

from __future__ import annotations

from pathlib import Path

import click

from .polarity import PolarityChoice


def _parse_sizes(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        sizes = tuple(int(v) for v in value.replace(" ", "").split(",") if v)
    except ValueError:
        raise click.BadParameter("expected comma-separated integers, e.g. 64,128,256") from None
    if not sizes or any(s < 8 for s in sizes):
        raise click.BadParameter("sizes must be integers >= 8")
    return sizes


@click.command("train")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Training config file (.json or .toml).",
)
@click.option(
    "--run-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for checkpoints, logs and model.safetensors.",
)
@click.option("--arch", help="Network architecture (e.g. paper_unet, tinyconv).")
@click.option("--arch-config", help="Network constructor arguments as a JSON object.")
@click.option("--loss", help="Loss: mse, model1, model2, model3 (or maskguided).")
@click.option(
    "--pairs", "pairs_dir", type=click.Path(file_okay=False, path_type=Path), help="Dustify pairs data set folder."
)
@click.option(
    "--clean",
    "clean_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of clean photos, damaged on the fly.",
)
@click.option(
    "--polarity",
    type=PolarityChoice(),
    help="Damage polarity for --clean: dark, light or any (each sample at random; 'random' is read as any).",
)
@click.option(
    "--sizes", callback=_parse_sizes, help="Progressive training sizes, e.g. 64,128,256 (the paper's schedule)."
)
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs of every stage.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Per-process batch size of every stage.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Peak learning rate.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Device (default auto).")
@click.option("--amp", type=click.Choice(["off", "bf16", "fp16"]), help="Mixed precision.")
@click.option("--num-workers", type=click.IntRange(min=0), help="DataLoader worker processes.")
@click.option("--seed", type=click.IntRange(min=0), help="Random seed of the run.")
@click.option("--augment/--no-augment", default=None, help="The paper's training augmentations.")
@click.option("--checkpoint-every", type=click.IntRange(min=0), help="Steps between checkpoints (0: epoch ends only).")
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Continue the run in --run-dir if it has a checkpoint.",
)
@click.option(
    "--max-steps", type=click.IntRange(min=1), help="Stop (with a checkpoint) when the run reaches this many steps."
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def train_command(
    config_file: Path | None,
    run_dir: Path,
    arch: str | None,
    arch_config: str | None,
    loss: str | None,
    pairs_dir: Path | None,
    clean_dir: Path | None,
    polarity: str | None,
    sizes: tuple[int, ...] | None,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    device: str | None,
    amp: str | None,
    num_workers: int | None,
    seed: int | None,
    augment: bool | None,
    checkpoint_every: int | None,
    resume: bool,
    max_steps: int | None,
    progress: bool,
) -> None:
    """Train a restoration network (progressive sizes, one-cycle, frozen then unfrozen encoder).

    Resumable: run the same command again to continue from the last checkpoint.
    """
    import json

    from filmclean.errors import InputError

    from .config import TrainConfig, load_config, override_schedule
    from .loop import CONFIG_NAME, train

    if pairs_dir is not None and clean_dir is not None:
        raise click.UsageError("give either --pairs or --clean, not both")
    if config_file is not None:
        config = load_config(config_file)
    elif resume and (run_dir / CONFIG_NAME).is_file():
        config = load_config(run_dir / CONFIG_NAME)
    else:
        config = TrainConfig()
    changes: dict = {}
    if arch_config is not None:
        try:
            changes["arch_config"] = json.loads(arch_config)
        except json.JSONDecodeError as exc:
            raise InputError(f"--arch-config is not valid JSON ({exc})") from None
    if pairs_dir is not None:
        changes.update(pairs_dir=str(pairs_dir.resolve()), clean_dir=None)
    if clean_dir is not None:
        changes.update(clean_dir=str(clean_dir.resolve()), pairs_dir=None)
    data_changes = {k: changes.pop(k) for k in ("pairs_dir", "clean_dir") if k in changes}
    config = config.replace(
        arch=arch,
        loss=loss,
        polarity=polarity,
        device=device,
        amp=amp,
        num_workers=num_workers,
        seed=seed,
        augment=augment,
        checkpoint_every=checkpoint_every,
        **changes,
    )
    if data_changes:
        import dataclasses

        config = dataclasses.replace(config, **data_changes)
    if sizes is not None or epochs is not None or batch_size is not None or lr is not None:
        config = config.replace(stages=override_schedule(config.stages, sizes, epochs, batch_size, lr))
    if config.pairs_dir is None and config.clean_dir is None:
        raise click.UsageError("no training data: give --pairs DIR or --clean DIR (or a --config that names one)")

    result = train(config, run_dir, resume=resume, progress=progress, max_steps=max_steps)
    best = result["best"]
    line = f"{result['status']} at step {result['step']}"
    if best is not None:
        line += (
            f"; best validation SSIM {best['ssim']:.4f} at {best['size']} px (damaged input {best['input_ssim']:.4f})"
        )
    if result["model_path"]:
        line += f"; model: {result['model_path']}"
    click.echo(line)


@click.command("export-onnx")
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="ONNX file to write."
)
@click.option("--fp16", is_flag=True, help="Float16 weights and compute (input and outputs stay float32).")
@click.option("--opset", type=click.IntRange(min=13), default=17, show_default=True, help="ONNX opset version.")
@click.option(
    "--check/--no-check", default=True, show_default=True, help="Compare ONNX Runtime with PyTorch on a test input."
)
def export_onnx_command(checkpoint: Path, output: Path, fp16: bool, opset: int, check: bool) -> None:
    """Export a model (a filmclean .safetensors, a training checkpoint or a run folder) to ONNX."""
    from filmclean.onnx_export import export_onnx

    report = export_onnx(checkpoint, output, fp16=fp16, opset=opset, check=check)
    fp16_note = ", fp16" if report["fp16"] else ""
    line = f"wrote {report['path']} ({report['bytes'] / 1e6:.1f} MB, opset {report['opset']}{fp16_note})"
    if report["max_abs_diff"] is not None:
        line += f"; max |ONNX - PyTorch| = {report['max_abs_diff']:.2e} on {'x'.join(map(str, report['test_shape']))}"
    click.echo(line)


__all__ = ["export_onnx_command", "train_command"]
