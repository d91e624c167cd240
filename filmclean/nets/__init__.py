"""Restoration networks.

Tensor contract shared by every network here (and by the ONNX files exported from them):

- input ``x``: ``(N, C, H, W)`` float32 (or float16 on CUDA) in ``[0, 1]``: RGB (``C = 3``) for
  single-frame networks, the 11-channel stack of :func:`filmclean.temporal.build_stack` for temporal ones;
  ``H`` and ``W`` must be multiples of the network's ``size_multiple`` (the engine pads tiles).
- output: ``(N, 3, H, W)`` restored RGB in ``[0, 1]``; networks with ``has_mask = True`` return a
  tuple ``(restored, mask)`` where ``restored`` is the raw repair (meaningful where mask is high)
  and ``mask`` is ``(N, 1, H, W)``, the per-pixel damage probability in ``[0, 1]``.

Every network class carries three class/instance attributes used by the engine:

- ``size_multiple`` (int): H and W must be divisible by it.
- ``receptive_radius`` (int): how far (in pixels) an output pixel can see; tiles overlapping by at
  least twice this produce the same result as whole-frame inference.
- ``has_mask`` (bool): whether forward returns ``(restored, mask)``.
- ``in_channels`` (int, default 3): 11 for temporal networks, whose input is the stack of
  :func:`filmclean.temporal.build_stack` (current frame, aligned neighbours, trust maps).

Networks are built by name from :data:`ARCHITECTURES` (an explicit table; nothing is discovered by
importing files from a folder). A network's constructor takes only JSON-serialisable keyword
arguments so that ``(arch, config)`` stored beside the weights rebuilds it exactly.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from ..backends import NetworkInfo

# name -> "module:Class"; modules are imported on demand so that heavy networks cost nothing unless used
ARCHITECTURES: dict[str, str] = {
    "identity": "filmclean.nets.simple:IdentityNet",
    "tinyconv": "filmclean.nets.simple:TinyConvNet",
    "tinymask": "filmclean.nets.simple:TinyMaskNet",
    "paper_unet": "filmclean.nets.paper_unet:PaperUNet",
    "maskguided": "filmclean.nets.maskguided:MaskGuidedNet",
    "maskguided_ir": "filmclean.nets.maskguided_ir:InvResMaskNet",
    "temporal_maskguided": "filmclean.nets.temporal:TemporalMaskGuidedNet",
}


def network_class(arch: str) -> type[nn.Module]:
    """Return the class registered under ``arch`` (raises ``KeyError`` for unknown names)."""
    if arch not in ARCHITECTURES:
        raise KeyError(f"unknown network architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    module_name, cls_name = ARCHITECTURES[arch].split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def build_network(arch: str, config: dict[str, Any] | None = None) -> nn.Module:
    """Build a network by registered name with keyword ``config``."""
    return network_class(arch)(**(config or {}))


def network_info(net: nn.Module) -> NetworkInfo:
    """The engine-facing attributes of a network (see the module docstring)."""
    return NetworkInfo(
        size_multiple=int(getattr(net, "size_multiple", 1)),
        receptive_radius=int(getattr(net, "receptive_radius", 0)),
        has_mask=bool(getattr(net, "has_mask", False)),
        in_channels=int(getattr(net, "in_channels", 3)),
    )


__all__ = ["ARCHITECTURES", "build_network", "network_class", "network_info"]
