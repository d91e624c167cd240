"""Helpers shared by the tests: running the real CLI entry point, tiny model files."""

from __future__ import annotations

from pathlib import Path

import torch

from filmclean.cli import main
from filmclean.modelfile import save_model

SMALL = {"widths": [8, 8, 8], "dilations": [1], "tophat": [5]}  # a tiny MaskGuidedNet / temporal net


def run_cli(args, capsys) -> tuple[int, str, str]:
    """Run the real entry point in-process; return (exit code, stdout, stderr)."""
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def small_temporal_model(path: Path, perturb: float = 0.0) -> Path:
    """Save a tiny temporal network built from a random single-frame one (``perturb`` > 0 also
    makes its neighbour weights non-zero) as a model file at ``path``."""
    from filmclean.nets.maskguided import MaskGuidedNet
    from filmclean.nets.temporal import TemporalMaskGuidedNet

    torch.manual_seed(3)
    single = MaskGuidedNet(**SMALL)
    for p in single.parameters():
        p.data.normal_(0, 0.2)
    tnet = TemporalMaskGuidedNet.from_single(single)
    if perturb:
        for p in tnet.parameters():
            p.data.add_(torch.randn_like(p) * perturb)
    return save_model(tnet, "temporal_maskguided", SMALL, path)
