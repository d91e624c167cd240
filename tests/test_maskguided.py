"""The default model's network and loss: contract, receptive radius, gradients, ONNX parity."""

import numpy as np
import pytest
import torch

from filmclean.nets import build_network, network_info
from filmclean.nets.maskguided import MaskGuidedNet
from filmclean.train.losses import build_loss
from filmclean.train.maskloss import MaskGuidedLoss


def small_net(**kw):
    torch.manual_seed(0)
    return MaskGuidedNet(widths=(8, 12, 16), dilations=(1, 2), **kw).eval()


class TestMaskGuidedNet:
    def test_contract(self):
        net = small_net()
        x = torch.rand(2, 3, 48, 64)
        restored, mask = net(x)
        assert restored.shape == (2, 3, 48, 64) and mask.shape == (2, 1, 48, 64)
        assert restored.min() >= 0 and restored.max() <= 1 and mask.min() >= 0 and mask.max() <= 1
        info = network_info(net)
        assert info == {"size_multiple": 8, "receptive_radius": net.receptive_radius, "has_mask": True, "in_channels": 3}

    def test_registry_builds_it(self):
        net = build_network("maskguided", {"widths": [8, 12, 16], "dilations": [1], "tophat": [5]})
        assert isinstance(net, MaskGuidedNet)

    def test_receptive_radius_is_an_upper_bound(self):
        """Changing pixels farther than the radius from a pixel never changes that pixel's output."""
        net = small_net()
        r = net.receptive_radius
        size = 2 * r + 40
        size += (-size) % 8
        x = torch.rand(1, 3, size, size)
        c = size // 2
        y = x.clone()
        y[..., : c - r - 1, :] = torch.rand_like(y[..., : c - r - 1, :])  # everything above the radius
        with torch.no_grad():
            a, ma = net(x)
            b, mb = net(y)
        assert torch.allclose(a[..., c, c], b[..., c, c], atol=1e-6)
        assert torch.allclose(ma[..., c, c], mb[..., c, c], atol=1e-6)
        # ... and nearer pixels do matter (the radius is not vacuous)
        z = x.clone()
        z[..., c - 2: c + 3, c - 2: c + 3] = 0
        with torch.no_grad():
            assert not torch.allclose(net(z)[1][..., c, c], ma[..., c, c])

    def test_every_parameter_gets_a_gradient(self):
        net = small_net().train()
        x = torch.rand(2, 3, 32, 32)
        mask = (torch.rand(2, 1, 32, 32) > 0.9).float() * 0.8
        loss, terms = MaskGuidedLoss()(net(x), {"input": x, "target": x.clamp(0.1, 0.9), "mask": mask})
        loss.backward()
        for name, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name
        assert set(terms) == {"bce", "dice", "out_l1", "out_ssim", "repair_l1", "keep_l1"}

    def test_tophat_cues_find_dark_and_light_specks(self):
        net = small_net()
        x = torch.full((1, 3, 32, 32), 0.5)
        x[..., 10, 10] = 0.0   # a dark speck
        x[..., 20, 20] = 1.0   # a light speck
        cues = net.cues(x)
        assert cues[0, 0, 10, 10] == pytest.approx(0.5) and cues[0, 1, 10, 10] == 0
        assert cues[0, 1, 20, 20] == pytest.approx(0.5) and cues[0, 0, 20, 20] == 0
        assert cues[0, :, 0:5, 25:32].abs().max() == 0  # flat areas give nothing

    def test_onnx_parity(self, tmp_path):
        from filmclean.modelfile import save_model
        from filmclean.onnx_export import export_onnx

        net = small_net()
        cfg = {"widths": [8, 12, 16], "dilations": [1, 2], "tophat": [5, 11]}
        st = save_model(net, "maskguided", cfg, tmp_path / "m.safetensors")
        res = export_onnx(st, tmp_path / "m.onnx")
        assert res["max_abs_diff"] < 1e-3


class TestMaskGuidedLoss:
    def test_perfect_prediction_has_small_loss(self):
        y = torch.rand(1, 3, 32, 32)
        true = torch.zeros(1, 1, 32, 32)
        true[..., 8:12, 8:12] = 1.0
        x = y * (1 - true)
        perfect = (y, true)
        worse = (x, 1 - true)
        batch = {"input": x, "target": y, "mask": true}
        lp, tp = MaskGuidedLoss()(perfect, batch)
        lw, _ = MaskGuidedLoss()(worse, batch)
        assert tp["out_l1"] == pytest.approx(0.0, abs=1e-6) and tp["repair_l1"] == pytest.approx(0.0, abs=1e-6)
        assert lp < lw

    def test_faint_damage_is_left_out_of_bce(self):
        y = torch.rand(1, 3, 16, 16)
        faint = torch.full((1, 1, 16, 16), 0.05)
        loss = MaskGuidedLoss(min_opacity=0.1)
        _, t_hi = loss((y, torch.full_like(faint, 0.99)), {"input": y, "target": y, "mask": faint})
        _, t_lo = loss((y, torch.full_like(faint, 0.01)), {"input": y, "target": y, "mask": faint})
        assert t_hi["bce"] == t_lo["bce"] == 0.0  # no label either way

    def test_bce_value_by_hand(self):
        prob = torch.tensor([0.8, 0.3]).repeat(8, 4).reshape(1, 1, 8, 8)  # alternating columns
        opacity = torch.tensor([0.5, 0.0]).repeat(8, 4).reshape(1, 1, 8, 8)
        y = torch.zeros(1, 3, 8, 8)
        _, t = MaskGuidedLoss(pos_weight=2.0)((y, prob), {"input": y, "target": y, "mask": opacity})
        expected = (2 * -np.log(0.8) + -np.log(0.7)) / 3
        assert t["bce"] == pytest.approx(expected, rel=1e-5)

    def test_factory(self):
        assert isinstance(build_loss("maskguided"), MaskGuidedLoss)
