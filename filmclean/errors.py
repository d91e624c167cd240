"""User-facing errors.

Every problem a user can cause (bad input file, unwritable output, missing model) is raised as a
:class:`FilmcleanError` whose message is one line naming the file and the problem. The CLI prints
that line and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations

from pathlib import Path


class FilmcleanError(Exception):
    """A problem with the user's input, output or settings (one-line message)."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        text = " ".join(str(message).split())  # always one line
        if self.path is not None and self.path not in text:
            text = f"{self.path}: {text}"
        super().__init__(text)


class InputError(FilmcleanError):
    """The input file cannot be read or is not something filmclean can process."""


class OutputError(FilmcleanError):
    """The output cannot be written (exists, unwritable, same as input ...)."""


class ModelError(FilmcleanError):
    """No model is installed, or a model file is invalid / fails its checksum."""
