"""Data-set commands for the ``filmclean`` CLI (wired into the command group by ``filmclean.cli``).

Only click (and the polarity words, :mod:`filmclean.train.polarity`) is imported here; the work is
done by :mod:`filmclean.train.dustify`, imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from .polarity import PolarityChoice

__all__ = ["dustify_command"]


def _parse_sizes(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        sizes = [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not sizes or min(sizes) < 8:
        raise click.BadParameter(f"expected sizes >= 8, got {value!r}")
    return sizes


def _parse_split(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        parts = tuple(float(v) for v in value.split(":"))
    except ValueError:
        raise click.BadParameter(f"expected TRAIN:VALID:TEST, e.g. 8:1:1, got {value!r}") from None
    if len(parts) != 3 or min(parts) < 0 or sum(parts) <= 0:
        raise click.BadParameter(f"expected three non-negative numbers, e.g. 8:1:1, got {value!r}")
    return parts


@click.command(name="dustify")
@click.argument("clean_dir", type=click.Path(file_okay=True, dir_okay=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder for <size>/{clean,damaged,mask}/<name>.png and manifest.json.",
)
@click.option(
    "--sizes",
    default="64,128,256",
    show_default=True,
    callback=_parse_sizes,
    help="Comma-separated square sizes in pixels.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Master random seed.")
@click.option(
    "--polarity",
    type=PolarityChoice(),
    default="dark",
    show_default=True,
    help="dark: slides/prints (black dust); light: negatives (white dust); "
    "any: each pair either way at random ('both' is read as any).",
)
@click.option(
    "--split",
    default="8:1:1",
    show_default=True,
    callback=_parse_split,
    help="train:valid:test ratio (by image name; near-duplicate groups kept together).",
)
@click.option(
    "--test-list",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Names forced into the test split, one per line [default: CLEAN_DIR/test_list.txt if present].",
)
@click.option(
    "--groups",
    "groups_csv",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CSV with name,group columns; a group is never split [default: CLEAN_DIR/sources.csv if present].",
)
@click.option("--overwrite", is_flag=True, help="Rebuild into a folder that already has a data set.")
def dustify_command(
    clean_dir: Path,
    out_dir: Path,
    sizes: list[int],
    seed: int,
    polarity: str,
    split: tuple[float, ...],
    test_list: Path | None,
    groups_csv: Path | None,
    overwrite: bool,
) -> None:
    """Build paired clean/damaged training images from a folder of clean images.

    Each image is resized (area interpolation, shorter side to SIZE), centre-cropped to SIZE x SIZE
    and damaged with synthetic dust, hairs, scratches and dirt, with a new pattern at every size.
    """
    from ..errors import InputError
    from .corpus import read_groups, read_name_list
    from .dustify import build_pairs, list_images

    names = list_images(clean_dir)  # fails early, in one line, on a missing or empty folder
    if test_list is None and (clean_dir / "test_list.txt").is_file():
        test_list = clean_dir / "test_list.txt"
        click.echo(f"using test list {test_list}")
    if groups_csv is None and (clean_dir / "sources.csv").is_file():
        groups_csv = clean_dir / "sources.csv"
        click.echo(f"using groups from {groups_csv}")
    test_names: list[str] = []
    if test_list is not None:
        try:
            test_names = read_name_list(test_list)
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read test list: {exc}", test_list) from exc
    groups = None
    if groups_csv is not None:
        try:
            groups = read_groups(groups_csv)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"cannot read groups: {exc}", groups_csv) from exc

    import sys

    with click.progressbar(length=len(names), label="dustify", file=sys.stderr) as bar:
        manifest = build_pairs(
            clean_dir,
            out_dir,
            sizes,
            seed,
            polarity,
            split,
            test_names,
            groups=groups,
            overwrite=overwrite,
            progress=lambda _name: bar.update(1),
        )
    parts = manifest["splits"]
    click.echo(
        f"wrote {len(manifest['images'])} images x sizes {manifest['sizes']} to {out_dir} "
        f"(train {len(parts['train'])}, valid {len(parts['valid'])}, "
        f"test {len(parts['test'])})"
    )
    for size, st in manifest["ssim_summary"].items():
        click.echo(
            f"  {size}px damage SSIM mean {st['mean']:.3f} sd {st['std']:.3f} range {st['min']:.3f}-{st['max']:.3f}"
        )
    if manifest["test_list_missing"]:
        click.echo(
            f"note: {len(manifest['test_list_missing'])} test-list names not found: "
            + ", ".join(manifest["test_list_missing"][:5]),
            err=True,
        )
