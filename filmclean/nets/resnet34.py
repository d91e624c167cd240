"""ResNet-34 (He et al. 2016, BasicBlock) in plain torch with torchvision's exact state-dict keys.

torchvision cannot be installed here, so the network is written out by hand. The module tree and
parameter names are those of ``torchvision.models.resnet34()``::

    conv1.weight                        (64, 3, 7, 7)
    bn1.{weight,bias,running_mean,running_var,num_batches_tracked}
    layer{1..4}.{i}.conv1.weight / bn1.* / conv2.weight / bn2.*
    layer{2,3,4}.0.downsample.0.weight  (1x1 stride-2 projection) / downsample.1.* (its BatchNorm)
    fc.weight (1000, 512), fc.bias (1000,)

218 entries in all (including the 36 ``num_batches_tracked`` buffers), so torchvision's official
``resnet34-b627a593.pth`` loads with ``strict=True``.

Tensor contract of :class:`ResNet34`:

- input ``(N, 3, H, W)`` float32, RGB **already ImageNet-normalised** (``(x - mean) / std`` with
  mean ``(0.485, 0.456, 0.406)``, std ``(0.229, 0.224, 0.225)``); any ``H, W >= 1``.
- ``forward``: ``(N, 1000)`` logits (only when built with ``num_classes``).
- ``forward_features``: the five feature maps a U-Net taps, in order
  ``[relu (64, H/2), layer1 (64, H/4), layer2 (128, H/8), layer3 (256, H/16), layer4 (512, H/32)]``
  (spatial sizes rounded up as the strided convolutions do).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import ModelError

RESNET34_URL = "https://download.pytorch.org/models/resnet34-b627a593.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# (blocks, channels, first stride) per stage, as in torchvision's resnet34
_STAGES: tuple[tuple[int, int, int], ...] = ((3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2))


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut; torchvision's names."""

    expansion = 1

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet34(nn.Module):
    """ResNet-34 with torchvision's module names.

    Args:
        num_classes: size of the ``fc`` classifier (1000 for ImageNet). ``None`` builds the
            headless encoder used by :class:`filmclean.nets.paper_unet.PaperUNet`: no ``avgpool``
            and no ``fc`` (so its state dict is torchvision's minus ``fc.weight``/``fc.bias``).

    Initialisation follows torchvision: Kaiming-normal (fan-out, ReLU) convolutions, BatchNorm
    weight 1 / bias 0, PyTorch's default ``Linear`` init for ``fc``.
    """

    def __init__(self, num_classes: int | None = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        c_in = 64
        for idx, (blocks, c_out, stride) in enumerate(_STAGES, start=1):
            layers = [BasicBlock(c_in, c_out, stride)] + [BasicBlock(c_out, c_out) for _ in range(blocks - 1)]
            self.add_module(f"layer{idx}", nn.Sequential(*layers))
            c_in = c_out
        self.num_classes = num_classes
        self.avgpool: nn.Module | None = None
        self.fc: nn.Linear | None = None
        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512, int(num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # torchvision attribute names, typed for mypy/readers
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Return ``[relu, layer1, layer2, layer3, layer4]`` outputs (strides 2, 4, 8, 16, 32)."""
        x0 = self.relu(self.bn1(self.conv1(x)))
        x1 = self.layer1(self.maxpool(x0))
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        x4 = self.layer4(x3)
        return [x0, x1, x2, x3, x4]

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` normalised RGB -> ``(N, num_classes)`` logits."""
        if self.fc is None or self.avgpool is None:
            raise RuntimeError("this ResNet34 was built without a classifier (num_classes=None); use forward_features")
        feats = self.forward_features(x)[-1]
        return self.fc(torch.flatten(self.avgpool(feats), 1))

    def stages(self) -> Iterator[nn.Module]:
        """The encoder modules in order (stem conv/bn, then layer1..layer4)."""
        yield from (self.conv1, self.bn1, self.layer1, self.layer2, self.layer3, self.layer4)


def _read_local(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise ModelError("ResNet34 weights file not found", path)
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, or a pickle that weights_only refuses
        raise ModelError(f"cannot read ResNet34 weights ({type(exc).__name__}: {exc})", path) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelError("not a ResNet34 state dict (expected a mapping of names to tensors)", path)
    # checkpoints saved from a wrapped model sometimes carry a "module." prefix
    return {k.removeprefix("module."): v for k, v in state.items()}


def read_resnet34_state_dict(source: str | Path | None = None) -> dict[str, Tensor]:
    """Read ImageNet ResNet-34 weights as a torchvision-keyed state dict (not yet checked for fit).

    Args:
        source: a local ``.pth``/``.pt`` (read with ``torch.load(weights_only=True)``: no code runs)
            or ``.safetensors`` file; ``None`` downloads torchvision's ``resnet34-b627a593.pth``
            through ``torch.hub`` (cached in ``$TORCH_HOME/hub/checkpoints``; needs internet).

    Raises:
        ModelError: one line: file missing/unreadable, or the download failed (then it says to
            pass a local file).
    """
    if source is not None:
        return _read_local(Path(source).expanduser())
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30.0)
    try:
        state = torch.hub.load_state_dict_from_url(RESNET34_URL, map_location="cpu", progress=False, check_hash=True)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise ModelError(
            f"cannot download ImageNet ResNet34 weights from {RESNET34_URL} ({reason}); "
            "pass a local resnet34 .pth or .safetensors file instead"
        ) from None
    finally:
        socket.setdefaulttimeout(old_timeout)
    return dict(state)


def load_resnet34_imagenet(source: str | Path | None = None) -> ResNet34:
    """Build :class:`ResNet34` (1000 classes) and load ImageNet weights strictly; returned in eval mode.

    ``source`` as in :func:`read_resnet34_state_dict`. Raises :class:`ModelError` if the file is
    missing/unreadable, the download fails, or the tensors do not fit ResNet-34.
    """
    state = read_resnet34_state_dict(source)
    net = ResNet34(num_classes=1000)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        msg = " ".join(str(exc).split())[:300]
        raise ModelError(
            f"weights do not fit ResNet34 ({msg})", source if source is not None else RESNET34_URL
        ) from None
    return net.eval()


def load_resnet34_encoder_weights(encoder: ResNet34, source: str | Path | None = None) -> None:
    """Load ImageNet weights into a headless ``ResNet34(num_classes=None)`` (``fc.*`` is ignored).

    Every encoder tensor must be present with the right shape; raises :class:`ModelError` otherwise.
    """
    state = {k: v for k, v in read_resnet34_state_dict(source).items() if not k.startswith("fc.")}
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        msg = " ".join(str(exc).split())[:300]
        raise ModelError(
            f"weights do not fit the ResNet34 encoder ({msg})", source if source is not None else RESNET34_URL
        ) from None


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RESNET34_URL",
    "BasicBlock",
    "ResNet34",
    "load_resnet34_encoder_weights",
    "load_resnet34_imagenet",
    "read_resnet34_state_dict",
]
