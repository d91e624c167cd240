"""ResNet-34: torchvision's exact state-dict layout, weight loading and its error messages."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from filmclean.errors import ModelError
from filmclean.nets import resnet34 as r34
from filmclean.nets.resnet34 import ResNet34, load_resnet34_encoder_weights, load_resnet34_imagenet

# torchvision.models.resnet34().state_dict(): name and shape ("-" = 0-d num_batches_tracked), in order.
# Written out from torchvision's definition (BasicBlock x (3, 4, 6, 3); downsample = 1x1 conv + BN
# on the first block of layer2..4), 218 entries, 36 of them num_batches_tracked.
TORCHVISION_RESNET34 = """
conv1.weight 64x3x7x7
bn1.weight 64
bn1.bias 64
bn1.running_mean 64
bn1.running_var 64
bn1.num_batches_tracked -
layer1.0.conv1.weight 64x64x3x3
layer1.0.bn1.weight 64
layer1.0.bn1.bias 64
layer1.0.bn1.running_mean 64
layer1.0.bn1.running_var 64
layer1.0.bn1.num_batches_tracked -
layer1.0.conv2.weight 64x64x3x3
layer1.0.bn2.weight 64
layer1.0.bn2.bias 64
layer1.0.bn2.running_mean 64
layer1.0.bn2.running_var 64
layer1.0.bn2.num_batches_tracked -
layer1.1.conv1.weight 64x64x3x3
layer1.1.bn1.weight 64
layer1.1.bn1.bias 64
layer1.1.bn1.running_mean 64
layer1.1.bn1.running_var 64
layer1.1.bn1.num_batches_tracked -
layer1.1.conv2.weight 64x64x3x3
layer1.1.bn2.weight 64
layer1.1.bn2.bias 64
layer1.1.bn2.running_mean 64
layer1.1.bn2.running_var 64
layer1.1.bn2.num_batches_tracked -
layer1.2.conv1.weight 64x64x3x3
layer1.2.bn1.weight 64
layer1.2.bn1.bias 64
layer1.2.bn1.running_mean 64
layer1.2.bn1.running_var 64
layer1.2.bn1.num_batches_tracked -
layer1.2.conv2.weight 64x64x3x3
layer1.2.bn2.weight 64
layer1.2.bn2.bias 64
layer1.2.bn2.running_mean 64
layer1.2.bn2.running_var 64
layer1.2.bn2.num_batches_tracked -
layer2.0.conv1.weight 128x64x3x3
layer2.0.bn1.weight 128
layer2.0.bn1.bias 128
layer2.0.bn1.running_mean 128
layer2.0.bn1.running_var 128
layer2.0.bn1.num_batches_tracked -
layer2.0.conv2.weight 128x128x3x3
layer2.0.bn2.weight 128
layer2.0.bn2.bias 128
layer2.0.bn2.running_mean 128
layer2.0.bn2.running_var 128
layer2.0.bn2.num_batches_tracked -
layer2.0.downsample.0.weight 128x64x1x1
layer2.0.downsample.1.weight 128
layer2.0.downsample.1.bias 128
layer2.0.downsample.1.running_mean 128
layer2.0.downsample.1.running_var 128
layer2.0.downsample.1.num_batches_tracked -
layer2.1.conv1.weight 128x128x3x3
layer2.1.bn1.weight 128
layer2.1.bn1.bias 128
layer2.1.bn1.running_mean 128
layer2.1.bn1.running_var 128
layer2.1.bn1.num_batches_tracked -
layer2.1.conv2.weight 128x128x3x3
layer2.1.bn2.weight 128
layer2.1.bn2.bias 128
layer2.1.bn2.running_mean 128
layer2.1.bn2.running_var 128
layer2.1.bn2.num_batches_tracked -
layer2.2.conv1.weight 128x128x3x3
layer2.2.bn1.weight 128
layer2.2.bn1.bias 128
layer2.2.bn1.running_mean 128
layer2.2.bn1.running_var 128
layer2.2.bn1.num_batches_tracked -
layer2.2.conv2.weight 128x128x3x3
layer2.2.bn2.weight 128
layer2.2.bn2.bias 128
layer2.2.bn2.running_mean 128
layer2.2.bn2.running_var 128
layer2.2.bn2.num_batches_tracked -
layer2.3.conv1.weight 128x128x3x3
layer2.3.bn1.weight 128
layer2.3.bn1.bias 128
layer2.3.bn1.running_mean 128
layer2.3.bn1.running_var 128
layer2.3.bn1.num_batches_tracked -
layer2.3.conv2.weight 128x128x3x3
layer2.3.bn2.weight 128
layer2.3.bn2.bias 128
layer2.3.bn2.running_mean 128
layer2.3.bn2.running_var 128
layer2.3.bn2.num_batches_tracked -
layer3.0.conv1.weight 256x128x3x3
layer3.0.bn1.weight 256
layer3.0.bn1.bias 256
layer3.0.bn1.running_mean 256
layer3.0.bn1.running_var 256
layer3.0.bn1.num_batches_tracked -
layer3.0.conv2.weight 256x256x3x3
layer3.0.bn2.weight 256
layer3.0.bn2.bias 256
layer3.0.bn2.running_mean 256
layer3.0.bn2.running_var 256
layer3.0.bn2.num_batches_tracked -
layer3.0.downsample.0.weight 256x128x1x1
layer3.0.downsample.1.weight 256
layer3.0.downsample.1.bias 256
layer3.0.downsample.1.running_mean 256
layer3.0.downsample.1.running_var 256
layer3.0.downsample.1.num_batches_tracked -
layer3.1.conv1.weight 256x256x3x3
layer3.1.bn1.weight 256
layer3.1.bn1.bias 256
layer3.1.bn1.running_mean 256
layer3.1.bn1.running_var 256
layer3.1.bn1.num_batches_tracked -
layer3.1.conv2.weight 256x256x3x3
layer3.1.bn2.weight 256
layer3.1.bn2.bias 256
layer3.1.bn2.running_mean 256
layer3.1.bn2.running_var 256
layer3.1.bn2.num_batches_tracked -
layer3.2.conv1.weight 256x256x3x3
layer3.2.bn1.weight 256
layer3.2.bn1.bias 256
layer3.2.bn1.running_mean 256
layer3.2.bn1.running_var 256
layer3.2.bn1.num_batches_tracked -
layer3.2.conv2.weight 256x256x3x3
layer3.2.bn2.weight 256
layer3.2.bn2.bias 256
layer3.2.bn2.running_mean 256
layer3.2.bn2.running_var 256
layer3.2.bn2.num_batches_tracked -
layer3.3.conv1.weight 256x256x3x3
layer3.3.bn1.weight 256
layer3.3.bn1.bias 256
layer3.3.bn1.running_mean 256
layer3.3.bn1.running_var 256
layer3.3.bn1.num_batches_tracked -
layer3.3.conv2.weight 256x256x3x3
layer3.3.bn2.weight 256
layer3.3.bn2.bias 256
layer3.3.bn2.running_mean 256
layer3.3.bn2.running_var 256
layer3.3.bn2.num_batches_tracked -
layer3.4.conv1.weight 256x256x3x3
layer3.4.bn1.weight 256
layer3.4.bn1.bias 256
layer3.4.bn1.running_mean 256
layer3.4.bn1.running_var 256
layer3.4.bn1.num_batches_tracked -
layer3.4.conv2.weight 256x256x3x3
layer3.4.bn2.weight 256
layer3.4.bn2.bias 256
layer3.4.bn2.running_mean 256
layer3.4.bn2.running_var 256
layer3.4.bn2.num_batches_tracked -
layer3.5.conv1.weight 256x256x3x3
layer3.5.bn1.weight 256
layer3.5.bn1.bias 256
layer3.5.bn1.running_mean 256
layer3.5.bn1.running_var 256
layer3.5.bn1.num_batches_tracked -
layer3.5.conv2.weight 256x256x3x3
layer3.5.bn2.weight 256
layer3.5.bn2.bias 256
layer3.5.bn2.running_mean 256
layer3.5.bn2.running_var 256
layer3.5.bn2.num_batches_tracked -
layer4.0.conv1.weight 512x256x3x3
layer4.0.bn1.weight 512
layer4.0.bn1.bias 512
layer4.0.bn1.running_mean 512
layer4.0.bn1.running_var 512
layer4.0.bn1.num_batches_tracked -
layer4.0.conv2.weight 512x512x3x3
layer4.0.bn2.weight 512
layer4.0.bn2.bias 512
layer4.0.bn2.running_mean 512
layer4.0.bn2.running_var 512
layer4.0.bn2.num_batches_tracked -
layer4.0.downsample.0.weight 512x256x1x1
layer4.0.downsample.1.weight 512
layer4.0.downsample.1.bias 512
layer4.0.downsample.1.running_mean 512
layer4.0.downsample.1.running_var 512
layer4.0.downsample.1.num_batches_tracked -
layer4.1.conv1.weight 512x512x3x3
layer4.1.bn1.weight 512
layer4.1.bn1.bias 512
layer4.1.bn1.running_mean 512
layer4.1.bn1.running_var 512
layer4.1.bn1.num_batches_tracked -
layer4.1.conv2.weight 512x512x3x3
layer4.1.bn2.weight 512
layer4.1.bn2.bias 512
layer4.1.bn2.running_mean 512
layer4.1.bn2.running_var 512
layer4.1.bn2.num_batches_tracked -
layer4.2.conv1.weight 512x512x3x3
layer4.2.bn1.weight 512
layer4.2.bn1.bias 512
layer4.2.bn1.running_mean 512
layer4.2.bn1.running_var 512
layer4.2.bn1.num_batches_tracked -
layer4.2.conv2.weight 512x512x3x3
layer4.2.bn2.weight 512
layer4.2.bn2.bias 512
layer4.2.bn2.running_mean 512
layer4.2.bn2.running_var 512
layer4.2.bn2.num_batches_tracked -
fc.weight 1000x512
fc.bias 1000
"""


def _expected() -> list[tuple[str, tuple[int, ...]]]:
    out = []
    for line in TORCHVISION_RESNET34.strip().splitlines():
        name, shape = line.split()
        out.append((name, () if shape == "-" else tuple(int(s) for s in shape.split("x"))))
    return out


def test_state_dict_matches_torchvision_exactly():
    expected = _expected()
    assert len(expected) == 218
    assert sum(name.endswith("num_batches_tracked") for name, _ in expected) == 36
    got = [(k, tuple(v.shape)) for k, v in ResNet34().state_dict().items()]
    assert got == expected


def test_headless_encoder_is_torchvision_minus_fc():
    enc = ResNet34(num_classes=None)
    expected = [(n, s) for n, s in _expected() if not n.startswith("fc.")]
    assert [(k, tuple(v.shape)) for k, v in enc.state_dict().items()] == expected
    assert enc.fc is None and enc.avgpool is None
    with pytest.raises(RuntimeError):
        enc(torch.rand(1, 3, 32, 32))


def test_forward_shapes():
    net = ResNet34().eval()
    with torch.no_grad():
        feats = net.forward_features(torch.rand(1, 3, 64, 96))
        logits = net(torch.rand(2, 3, 32, 32))
    assert [tuple(f.shape) for f in feats] == [
        (1, 64, 32, 48),
        (1, 64, 16, 24),
        (1, 128, 8, 12),
        (1, 256, 4, 6),
        (1, 512, 2, 3),
    ]
    assert logits.shape == (2, 1000)


def test_loads_local_pth_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    src = ResNet34()
    state = src.state_dict()
    pth = tmp_path / "resnet34.pth"
    torch.save(state, pth)
    net = load_resnet34_imagenet(pth)
    assert not net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    # torchvision's older files carry no num_batches_tracked; a "module." prefix is tolerated
    st = tmp_path / "resnet34.safetensors"
    save_file(
        {f"module.{k}": v.contiguous() for k, v in state.items() if not k.endswith("num_batches_tracked")}, str(st)
    )
    net2 = load_resnet34_imagenet(st)
    assert torch.equal(net2.conv1.weight, src.conv1.weight)
    enc = ResNet34(num_classes=None)
    load_resnet34_encoder_weights(enc, st)
    assert torch.equal(enc.layer4[2].bn2.running_var, src.layer4[2].bn2.running_var)


def test_errors_are_one_line_model_errors(tmp_path):
    with pytest.raises(ModelError) as e:
        load_resnet34_imagenet(tmp_path / "missing.pth")
    assert "not found" in str(e.value) and "\n" not in str(e.value)
    bad = tmp_path / "partial.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, bad)
    with pytest.raises(ModelError) as e:
        load_resnet34_imagenet(bad)
    assert "do not fit" in str(e.value) and "\n" not in str(e.value)
    wrong = tmp_path / "wrong.pth"
    torch.save({k: torch.zeros(1) for k in ResNet34().state_dict()}, wrong)
    with pytest.raises(ModelError):
        load_resnet34_imagenet(wrong)


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pth_is_never_unpickled_unsafely(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"conv1.weight": _Evil(str(marker))}, f)
    with pytest.raises(ModelError):
        load_resnet34_imagenet(evil)
    assert not marker.exists()


def test_download_failure_tells_user_to_pass_a_file(monkeypatch):
    calls = []

    def offline(url, **kw):
        calls.append(url)
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(ModelError) as e:
        load_resnet34_imagenet(None)
    msg = str(e.value)
    assert calls == [r34.RESNET34_URL]
    assert "\n" not in msg and "local" in msg and "resnet34-b627a593.pth" in msg
