"""PaperUNet: shapes, gradients, parameter groups, building blocks and ONNX export."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from filmclean.nets import build_network, network_info
from filmclean.nets.paper_unet import (
    PaperUNet,
    PixelShuffleICNR,
    SelfAttention,
    SpectralNormConv1x1,
    WeightNormConv2d,
)
from filmclean.nets.resnet34 import ResNet34


@pytest.fixture(scope="module")
def net() -> PaperUNet:
    torch.manual_seed(0)
    n = PaperUNet()
    # realistic BatchNorm statistics (fresh running stats make eval outputs saturate)
    n.train()
    with torch.no_grad():
        for _ in range(2):
            n(torch.rand(2, 3, 64, 64))
    return n.eval()


def test_contract_attributes_and_registry(net):
    info = dataclasses.asdict(network_info(net))
    assert info == {
        "size_multiple": 1,
        "receptive_radius": PaperUNet.receptive_radius,
        "has_mask": False,
        "in_channels": 3,
    }
    assert info["receptive_radius"] >= 64
    config = {"pretrained": None, "self_attention": True, "blur": True, "norm": "weight"}
    assert json.loads(json.dumps(config)) == config
    assert isinstance(build_network("paper_unet", {"norm": "none", "blur": False, "self_attention": False}), PaperUNet)
    with pytest.raises(ValueError):
        PaperUNet(norm="group")  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(1, 3, 33, 47), (2, 3, 64, 48), (1, 3, 5, 7), (1, 3, 32, 32)])
def test_keeps_input_size(net, shape):
    with torch.no_grad():
        y = net(torch.rand(*shape))
    assert y.shape == shape and y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_architecture_layout(net):
    # the fastai DynamicUnet(resnet34) channel plan
    assert [b.out_channels for b in net.blocks] == [512, 384, 256, 96]
    assert [isinstance(b.conv2[-1], SelfAttention) for b in net.blocks] == [False, True, False, False]
    assert net.res.conv1[0].weight_v.shape[:2] == (99, 99)
    enc_keys = [(k, tuple(v.shape)) for k, v in net.encoder.state_dict().items()]
    assert enc_keys == [(k, tuple(v.shape)) for k, v in ResNet34(num_classes=None).state_dict().items()]
    # weight norm everywhere in the decoder, no BatchNorm inside its conv layers
    assert any(isinstance(m, WeightNormConv2d) for m in net.middle.modules())
    n_params = sum(p.numel() for p in net.parameters())
    assert 41_000_000 < n_params < 42_000_000


def test_parameter_groups(net):
    enc = list(net.encoder_parameters())
    dec = list(net.decoder_parameters())
    ids_all = {id(p) for p in net.parameters()}
    assert {id(p) for p in enc}.isdisjoint({id(p) for p in dec})
    assert {id(p) for p in enc} | {id(p) for p in dec} == ids_all
    assert sum(p.numel() for p in enc) == 21_284_672  # resnet34 without fc
    bn = list(net.encoder_norm_parameters())
    assert bn and {id(p) for p in bn} <= {id(p) for p in enc}


@pytest.mark.parametrize("norm", ["weight", "batch", "none"])
def test_every_parameter_gets_a_gradient(norm):
    torch.manual_seed(1)
    n = PaperUNet(norm=norm).train()
    for m in n.modules():  # gamma starts at 0, which blocks the query/key gradients: open it
        if isinstance(m, SelfAttention):
            with torch.no_grad():
                m.gamma.fill_(0.5)
    x = torch.rand(2, 3, 32, 32)
    y = n(x)
    F.l1_loss(y, torch.rand_like(y)).backward()
    missing = [k for k, p in n.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []
    zero = [k for k, p in n.named_parameters() if float(p.grad.abs().sum()) == 0.0]
    if norm == "batch":
        # by design: the residual block's second BatchNorm starts at weight 0 (fastai BatchZero), which
        # blocks its convs at step 1, and a BatchNorm right after a bias-free conv cancels the bias
        # of whatever precedes it
        assert set(zero) <= {
            "middle.1.2.bias",
            "res.conv1.0.weight",
            "res.conv1.2.weight",
            "res.conv1.2.bias",
            "res.conv2.0.weight",
        }
    else:
        assert zero == []


def test_pretrained_encoder_is_loaded(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(2)
    src = ResNet34()
    path = tmp_path / "r34.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    n = PaperUNet(pretrained=str(path), self_attention=False, blur=False, norm="none")
    assert torch.equal(n.encoder.layer3[5].conv2.weight, src.layer3[5].conv2.weight)
    assert torch.equal(n.encoder.bn1.running_mean, src.bn1.running_mean)


def test_icnr_starts_as_nearest_upsampling():
    torch.manual_seed(3)
    for norm in ("weight", "none"):
        up = PixelShuffleICNR(8, 4, blur=False, norm=norm)
        y = up(torch.randn(1, 8, 5, 6))
        assert y.shape == (1, 4, 10, 12)
        base = y[..., 0::2, 0::2]
        for dy, dx in ((0, 1), (1, 0), (1, 1)):
            assert torch.allclose(y[..., dy::2, dx::2], base, atol=1e-6)
    blurred = PixelShuffleICNR(8, 4, blur=True, norm="weight")(torch.randn(1, 8, 5, 6))
    assert blurred.shape == (1, 4, 10, 12)


def test_self_attention_identity_at_init_and_spectral_norm():
    torch.manual_seed(4)
    sa = SelfAttention(16)
    x = torch.randn(2, 16, 5, 7)
    assert torch.equal(sa(x), x)
    with torch.no_grad():
        sa.gamma.fill_(1.0)
    y = sa(x)
    assert y.shape == x.shape and not torch.allclose(y, x)
    sn = SpectralNormConv1x1(6, 4).train()
    for _ in range(30):
        sn(torch.randn(1, 6, 3))
    sigma = torch.linalg.matrix_norm(sn.weight.detach(), ord=2)
    est = float((sn.u * (sn.weight.detach() @ sn.v)).sum())
    assert abs(est - float(sigma)) < 1e-3 * float(sigma)
    sn.eval()
    with torch.no_grad():
        w_eff = torch.linalg.matrix_norm(sn(torch.eye(6)[None])[0], ord=2)
    assert abs(float(w_eff) - 1.0) < 1e-3


def test_onnx_export_dynamic_size(net, tmp_path):
    import onnxruntime as ort

    path = tmp_path / "paper_unet.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.rand(1, 3, 64, 64),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "h", 3: "w"}},
        )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 64, 64), (2, 3, 96, 64), (1, 3, 33, 47)]:
        x = torch.rand(*shape)
        got = sess.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            ref = net(x).numpy()
        assert got.shape == shape
        assert float(np.abs(got - ref).max()) < 1e-3
