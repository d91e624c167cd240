"""Render-farm jobs: a reel cut into frame-range chunks, each restored by one task, then joined.

:func:`farm_job` writes an `Open Job Description <https://github.com/OpenJobDescription>`_ job
template (``jobtemplate-2023-09``): a ``Restore`` step with one task per chunk (``filmclean restore
INPUT --frames FIRST-LAST``) and a ``Join`` step that depends on it (``filmclean join ... --source
INPUT``). AWS Deadline Cloud runs such templates; ``openjd run`` runs one on a single machine. The
same chunk command line maps onto other farm managers (see the README).

The template is written as JSON, which is also YAML. The input, the output and the folder of the
parts are job parameters of type PATH, so that a farm can map them to its workers' paths.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from .errors import InputError, OutputError
from .io.video import open_input

__all__ = ["FarmJob", "chunk_ranges", "count_frames", "farm_job"]


def count_frames(path: str | Path) -> int:
    """The number of video frames of ``path``: its video packets with data, counted without
    decoding. Raises :class:`InputError` (one line) when it cannot be read or holds no video."""
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", p)
    with open_input(p) as c:
        if not c.streams.video:
            raise InputError("no video stream", p)
        try:
            n = sum(1 for packet in c.demux(c.streams.video[0]) if packet.size)
        except av.FFmpegError as exc:
            raise InputError(f"cannot read the video: {exc}", p) from None
    if n == 0:
        raise InputError("the video holds no frames", p)
    return n


def chunk_ranges(frames: int, chunk: int) -> list[tuple[int, int]]:
    """``(first, last)`` of each chunk of ``chunk`` frames covering ``frames`` frames (the last one
    may be shorter)."""
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 frame, got {chunk}")
    return [(a, min(a + chunk, frames) - 1) for a in range(0, frames, chunk)]


@dataclass(frozen=True)
class FarmJob:
    """A job template and what it was made from."""

    template: dict[str, Any]
    frames: int
    chunks: list[tuple[int, int]]
    parts: list[Path]

    def text(self) -> str:
        """The template as JSON (which is also YAML), ending with a newline."""
        return json.dumps(self.template, indent=2) + "\n"


def farm_job(
    input_path: str | Path,
    output: str | Path,
    chunk: int,
    restore_args: Sequence[str] = (),
    command: str = "filmclean",
    parts_dir: str | Path | None = None,
    name: str | None = None,
    template_dir: str | Path | None = None,
) -> FarmJob:
    """The Open Job Description template that restores ``input_path`` into ``output`` in chunks of
    ``chunk`` frames.

    ``restore_args``: further options of every ``filmclean restore`` (model, threshold, ...);
    ``command``: how the workers run filmclean (split like a shell would, e.g. ``"python3 -m
    filmclean"``); ``parts_dir``: where the chunks are written (default: ``OUTPUT.parts`` beside
    the output; it must exist when the tasks run). The paths' defaults are relative to
    ``template_dir`` (default: the current folder), where the template is to be saved: Open Job
    Description joins them to the template's folder."""
    src = Path(input_path).absolute()
    out = Path(output).absolute()
    frames = count_frames(src)
    try:
        ranges = chunk_ranges(frames, chunk)
    except ValueError as exc:
        raise InputError(str(exc), src) from None
    if out.suffix.lower() not in (".mkv", ".mov", ".mp4", ".avi"):
        raise OutputError("the output must be a video file (.mkv, .mov, .mp4 or .avi)", out)
    parts = Path(parts_dir).absolute() if parts_dir is not None else out.with_name(out.name + ".parts")
    argv = shlex.split(command)
    if not argv:
        raise InputError("empty --command", src)
    program, lead = argv[0], argv[1:]
    digits = len(str(frames - 1))
    labels = [f"{a:0{digits}d}-{b:0{digits}d}" for a, b in ranges]
    part = "{{Param.Parts}}/part-{{Task.Param.Frames}}" + out.suffix
    restore = [*lead, "restore", "{{Param.Input}}", "-o", part, "--frames", "{{Task.Param.Frames}}", "--force", "-q"]
    restore += list(restore_args)
    joined = [f"{{{{Param.Parts}}}}/part-{label}{out.suffix}" for label in labels]
    join = [*lead, "join", *joined, "-o", "{{Param.Output}}", "--source", "{{Param.Input}}", "--force"]
    base = Path(template_dir).absolute() if template_dir is not None else Path.cwd()
    template: dict[str, Any] = {
        "specificationVersion": "jobtemplate-2023-09",
        "name": name or f"filmclean restore {src.name}",
        "description": f"{frames} frames of {src.name} restored in {len(ranges)} chunk(s) of up to {chunk}, then joined",
        "parameterDefinitions": [
            _path_param("Input", src, base, "FILE", "IN", "The reel to restore"),
            _path_param("Output", out, base, "FILE", "OUT", "The restored reel"),
            _path_param("Parts", parts, base, "DIRECTORY", "OUT", "Where the restored chunks are written (must exist)"),
        ],
        "steps": [
            {
                "name": "Restore",
                "parameterSpace": {
                    "taskParameterDefinitions": [{"name": "Frames", "type": "STRING", "range": labels}],
                },
                "script": {"actions": {"onRun": {"command": program, "args": restore}}},
            },
            {
                "name": "Join",
                "dependencies": [{"dependsOn": "Restore"}],
                "script": {"actions": {"onRun": {"command": program, "args": join}}},
            },
        ],
    }
    return FarmJob(template, frames, ranges, [parts / f"part-{label}{out.suffix}" for label in labels])


def _path_param(name: str, value: Path, base: Path, kind: str, flow: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "PATH",
        "objectType": kind,
        "dataFlow": flow,
        "default": os.path.relpath(value, base),
        "description": description,
    }
