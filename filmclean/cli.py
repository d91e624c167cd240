"""Command-line interface: a thin click layer over the library. Heavy imports live inside commands."""

from __future__ import annotations

import sys

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="filmclean")
def cli() -> None:
    """Remove dust and scratches from scanned film: reels, image sequences and still scans."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one line on stderr and exit code 2."""
    from .errors import FilmcleanError

    try:
        cli.main(args=argv, prog_name="filmclean", standalone_mode=False)
    except FilmcleanError as exc:
        click.echo(f"filmclean: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("filmclean: interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("filmclean: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
