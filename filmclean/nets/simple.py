"""Small networks for tests, benchmarks and pipeline checks (never shipped as a model).

Contract: see :mod:`filmclean.nets`. All take ``(N, 3, H, W)`` float in ``[0, 1]``.
"""

from __future__ import annotations

import torch
from torch import nn


class IdentityNet(nn.Module):
    """Returns its input unchanged. ``size_multiple`` is configurable so padding paths can be tested.

    A single zero-initialised 1x1 convolution is added to the input so that the network has a
    parameter (needed for saving/export) while staying an exact identity.
    """

    has_mask = False
    receptive_radius = 0

    def __init__(self, size_multiple: int = 1) -> None:
        super().__init__()
        self.size_multiple = int(size_multiple)
        self.zero = nn.Conv2d(3, 3, 1, bias=False)
        nn.init.zeros_(self.zero.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.zero(x)


class TinyConvNet(nn.Module):
    """A few 3x3 convolutions with a residual: a non-trivial, position-independent network.

    ``receptive_radius`` = number of 3x3 layers (each adds one pixel of context).
    Zero padding at the image border, like every real network here.
    """

    has_mask = False

    def __init__(self, channels: int = 8, layers: int = 3, size_multiple: int = 1, seed: int | None = None) -> None:
        super().__init__()
        self.size_multiple = int(size_multiple)
        self.receptive_radius = int(layers)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        mods: list[nn.Module] = []
        c_in = 3
        for i in range(layers):
            c_out = 3 if i == layers - 1 else channels
            conv = nn.Conv2d(c_in, c_out, 3, padding=1)
            if gen is not None:
                assert conv.bias is not None  # Conv2d has a bias by default
                with torch.no_grad():
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 0.1)
                    conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen) * 0.01)
            mods.append(conv)
            if i != layers - 1:
                mods.append(nn.ReLU())
            c_in = c_out
        self.body = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.body(x)).clamp(0.0, 1.0)


class TinyMaskNet(nn.Module):
    """A tiny mask-producing network: ``(restored, mask)``. For pipeline tests of ``--mask-out``."""

    has_mask = True

    def __init__(self, channels: int = 8, layers: int = 2, size_multiple: int = 1, seed: int | None = None) -> None:
        super().__init__()
        self.size_multiple = int(size_multiple)
        self.receptive_radius = int(layers)
        self.image = TinyConvNet(channels, layers, 1, seed)
        self.mask = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, 1, 1))
        if seed is not None:
            gen = torch.Generator().manual_seed(seed + 1)
            with torch.no_grad():
                for p in self.mask.parameters():
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image(x), torch.sigmoid(self.mask(x))
