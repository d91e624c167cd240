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


def assert_receptive_radius(net: torch.nn.Module, multiple: int) -> None:
    """Changing pixels farther than ``net.receptive_radius`` from the centre pixel never changes that
    pixel's output (repair and mask), and changing the pixels next to it does (the radius is not
    vacuous). ``net`` is a mask network in eval mode whose mask head fires widely enough for the
    fill to reach as far as it can."""
    r = net.receptive_radius
    size = 2 * r + 40
    size += (-size) % multiple
    x = torch.rand(1, 3, size, size)
    c = size // 2
    y = x.clone()
    y[..., : c - r - 1, :] = torch.rand_like(y[..., : c - r - 1, :])  # everything above the radius
    with torch.no_grad():
        a, ma = net(x)
        b, mb = net(y)
    assert torch.allclose(a[..., c, c], b[..., c, c], atol=1e-6)
    assert torch.allclose(ma[..., c, c], mb[..., c, c], atol=1e-6)
    z = x.clone()
    z[..., c - 2 : c + 3, c - 2 : c + 3] = 0
    with torch.no_grad():
        assert not torch.allclose(net(z)[1][..., c, c], ma[..., c, c])


def assert_mask_contract(net: torch.nn.Module, multiple: int) -> torch.Tensor:
    """A single-frame mask network in eval mode returns ``(restored, mask)`` of the input's size in
    ``[0, 1]`` and reports its engine attributes; returns the ``(2, 3, 48, 64)`` input it used."""
    import dataclasses

    from filmclean.nets import network_info

    x = torch.rand(2, 3, 48, 64)
    restored, mask = net(x)
    assert restored.shape == (2, 3, 48, 64) and mask.shape == (2, 1, 48, 64)
    assert restored.min() >= 0 and restored.max() <= 1 and mask.min() >= 0 and mask.max() <= 1
    assert dataclasses.asdict(network_info(net)) == {
        "size_multiple": multiple,
        "receptive_radius": net.receptive_radius,
        "has_mask": True,
        "in_channels": 3,
    }
    return x
