"""The default model's network and loss: contract, receptive radius, gradients, ONNX parity."""

import numpy as np
import pytest
import torch
from helpers import assert_mask_contract, assert_receptive_radius

from filmclean.nets import build_network, network_info
from filmclean.nets.maskguided import MaskGuidedNet, max_filter, push_pull_fill
from filmclean.train.losses import build_loss
from filmclean.train.maskloss import MaskGuidedLoss


def small_net(**kw):
    torch.manual_seed(0)
    return MaskGuidedNet(widths=(8, 12, 16), dilations=(1, 2), **kw).eval()


class TestMaskGuidedNet:
    def test_contract(self):
        net = small_net()
        assert_mask_contract(net, 8)

    def test_registry_builds_it(self):
        net = build_network("maskguided", {"widths": [8, 12, 16], "dilations": [1], "tophat": [5]})
        assert isinstance(net, MaskGuidedNet)

    @pytest.mark.parametrize("fill_levels,fine_blocks,mask_grow", [(0, 0, 0), (3, 0, 0), (3, 1, 2)])
    def test_receptive_radius_is_an_upper_bound(self, fill_levels, fine_blocks, mask_grow):
        """Changing pixels farther than the radius from a pixel never changes that pixel's output."""
        net = small_net(fill_levels=fill_levels, fine_blocks=fine_blocks, mask_grow=mask_grow)
        with torch.no_grad():  # new fine blocks start as the identity: give them weights that reach
            for block in list(getattr(net, "fine_enc", [])) + list(getattr(net, "fine_dec", [])):
                block.b.weight.normal_(0.0, 0.2)
        if fill_levels:  # make the mask fire over a wide area, so that the fill reaches as far as it can
            with torch.no_grad():
                net.mask_head.bias.fill_(3.0)
        assert_receptive_radius(net, 8)

    @pytest.mark.parametrize("fill_levels", [0, 3])
    def test_every_parameter_gets_a_gradient(self, fill_levels):
        net = small_net(fill_levels=fill_levels).train()
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
        x[..., 10, 10] = 0.0  # a dark speck
        x[..., 20, 20] = 1.0  # a light speck
        cues = net.cues(x)
        assert cues[0, 0, 10, 10] == pytest.approx(0.5) and cues[0, 1, 10, 10] == 0
        assert cues[0, 1, 20, 20] == pytest.approx(0.5) and cues[0, 0, 20, 20] == 0
        assert cues[0, :, 0:5, 25:32].abs().max() == 0  # flat areas give nothing

    @pytest.mark.parametrize("fill_levels", [0, 3])
    def test_onnx_parity(self, tmp_path, fill_levels):
        from filmclean.modelfile import save_model
        from filmclean.onnx_export import export_onnx

        net = small_net(fill_levels=fill_levels)
        cfg = {"widths": [8, 12, 16], "dilations": [1, 2], "tophat": [5, 11], "fill_levels": fill_levels}
        st = save_model(net, "maskguided", cfg, tmp_path / "m.safetensors")
        res = export_onnx(st, tmp_path / "m.onnx")
        assert res["max_abs_diff"] < 1e-3

    def test_onnx_parity_with_fine_blocks_and_a_grown_mask(self, tmp_path):
        from filmclean.modelfile import save_model
        from filmclean.onnx_export import export_onnx

        net = small_net(fill_levels=3, fine_blocks=1, mask_grow=1)
        with torch.no_grad():
            net.fine_dec[0].b.weight.normal_(0.0, 0.1)
        st = save_model(net, "maskguided", net.config(), tmp_path / "m.safetensors")
        res = export_onnx(st, tmp_path / "m.onnx")
        assert res["max_abs_diff"] < 1e-3


class TestMaxFilter:
    @pytest.mark.parametrize("k", [1, 3, 5, 11])
    def test_equals_one_square_max_pool_edges_included(self, k):
        y = torch.randn(2, 3, 19, 23)
        assert torch.equal(max_filter(y, k), torch.nn.functional.max_pool2d(y, k, 1, k // 2))

    def test_a_speck_spreads_over_a_square(self):
        y = torch.zeros(1, 1, 9, 9)
        y[..., 4, 4] = 1.0
        out = max_filter(y, 5)
        assert out[..., 2:7, 2:7].min() == 1.0 and out.sum() == 25


class TestPushPullFill:
    def test_trusted_pixels_are_kept_and_a_hole_in_a_flat_area_takes_its_value(self):
        x = torch.rand(1, 3, 64, 64) * 0.2 + 0.4
        w = torch.ones(1, 1, 64, 64)
        x[..., 20:26, 30:35] = 1.0  # a speck ...
        w[..., 20:26, 30:35] = 0.0  # ... that the mask calls damaged
        flat = x.clone()
        flat[:] = 0.5
        flat[..., 20:26, 30:35] = 1.0
        out = push_pull_fill(x, w, 3)
        hole = w[0, 0] == 0
        assert torch.equal(out[..., ~hole], x[..., ~hole])  # weight 1: unchanged
        assert torch.allclose(push_pull_fill(flat, w, 3)[..., hole], torch.tensor(0.5), atol=2e-3)
        assert (out[..., hole] - 0.5).abs().max() < 0.1  # filled from the surroundings' 0.4..0.6

    def test_fill_follows_a_gradient_across_a_thin_scratch(self):
        ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64).clone()
        w = torch.ones(1, 1, 64, 64)
        w[..., 10:54, 31:33] = 0.0  # a vertical scratch two pixels wide
        damaged = ramp.clone()
        damaged[..., 10:54, 31:33] = 0.0
        out = push_pull_fill(damaged, w, 3)
        err = (out - ramp)[..., 10:54, 31:33].abs().max()
        assert err < 0.03  # the ramp rises 1/63 per pixel: the fill is within two steps of it

    def test_half_trusted_pixels_and_levels_zero(self):
        x = torch.rand(2, 3, 16, 16)
        assert torch.equal(push_pull_fill(x, torch.ones(2, 1, 16, 16), 0), x)
        assert torch.equal(push_pull_fill(x, torch.full((2, 1, 16, 16), 0.5), 2), x)  # gain 2: weight 0.5 is enough

    def test_a_hole_wider_than_the_pyramid_gets_the_local_average(self):
        x = torch.full((1, 3, 64, 64), 0.3)
        w = torch.ones(1, 1, 64, 64)
        x[..., 16:48, 16:48] = 0.9
        w[..., 16:48, 16:48] = 0.0
        out = push_pull_fill(x, w, 2)  # 4-px cells: the middle of a 32-px hole has no trusted pixel near
        assert out[0, 0, 32, 32] == pytest.approx(0.9, abs=1e-3)
        assert out[0, 0, 17, 17] < 0.75  # near its edge the surroundings pull it towards their 0.3


class TestFillAndRefine:
    def test_contract_and_size_multiple(self):
        net = small_net(fill_levels=4)
        assert net.size_multiple == 16 and network_info(net)["size_multiple"] == 16
        restored, mask = net(torch.rand(1, 3, 48, 64))
        assert restored.shape == (1, 3, 48, 64) and mask.shape == (1, 1, 48, 64)
        assert restored.min() >= 0 and restored.max() <= 1
        with pytest.raises(ValueError):
            MaskGuidedNet(fill_levels=-1)

    def test_from_base_keeps_the_mask_and_repairs_a_detected_speck_from_its_surroundings(self):
        base = small_net()
        with torch.no_grad():
            base.head.bias[12:16].fill_(-20.0)  # mask: nothing damaged ...
        x = torch.full((1, 3, 64, 64), 0.4)
        x[..., 30:33, 30:33] = 1.0
        net = MaskGuidedNet.from_base(base, 3).eval()
        with torch.no_grad():
            _, m0 = base(x)
            _, m1 = net(x)
            assert torch.equal(m0, m1)
            net.mask_head.bias.copy_(torch.tensor([-20.0] * 4))
            net.mask_head.weight.zero_()
            r, m = net(x)
        assert float(m.max()) < 1e-6
        assert torch.allclose(r, x, atol=0.01)  # no damage found: the fill is the picture itself
        with torch.no_grad():
            logits = torch.full((1, 1, 64, 64), -20.0)
            logits[..., 30:33, 30:33] = 20.0  # ... until the mask covers the speck
            net.mask_head.bias.zero_()
            # feed the wanted logits through the 2x2 fold: the mask head's bias per sub-pixel can't,
            # so check the fill the network would use directly
            fill = push_pull_fill(x, 1 - torch.sigmoid(logits), 3)
        assert (fill[..., 30:33, 30:33] - 0.4).abs().max() < 1e-3
        with pytest.raises(ValueError):
            MaskGuidedNet.from_base(net, 3)

    def test_state_dict_keys(self):
        net = small_net(fill_levels=3)
        keys = set(net.state_dict())
        assert "head.weight" not in keys and {"mask_head.weight", "refine.0.0.weight", "refine.1.weight"} <= keys


class TestGrownFrom:
    def test_new_fine_blocks_start_as_the_identity(self):
        base = small_net(fill_levels=3)
        net = MaskGuidedNet.grown_from(base, fine_blocks=2).eval()
        assert net.fine_blocks == 2 and len(net.fine_enc) == 2 and len(net.fine_dec) == 2
        assert net.receptive_radius == base.receptive_radius + 16
        x = torch.rand(2, 3, 64, 64)
        with torch.no_grad():
            (r0, m0), (r1, m1) = base(x), net(x)
        assert torch.allclose(m0, m1, atol=1e-6) and torch.allclose(r0, r1, atol=1e-6)

    def test_a_grown_mask_is_the_max_filter_of_the_detection_and_is_filled(self):
        base = small_net(fill_levels=3)
        net = MaskGuidedNet.grown_from(base, mask_grow=2).eval()
        x = torch.full((1, 3, 64, 64), 0.4)
        x[..., 30:33, 30:33] = 1.0
        with torch.no_grad():
            _, m0 = base(x)
            r1, m1 = net(x)
            assert torch.allclose(m1, torch.nn.functional.max_pool2d(m0, 5, 1, 2), atol=1e-6)
            net.train()
            _, prob, logits = net(x)
        assert torch.allclose(torch.sigmoid(logits), m0, atol=1e-6)  # the loss scores the detection
        assert torch.allclose(prob, m1, atol=1e-6)

    def test_config_rebuilds_and_bad_settings_are_refused(self):
        net = small_net(fill_levels=3, fine_blocks=1, mask_grow=1)
        again = MaskGuidedNet(**net.config())
        assert set(again.state_dict()) == set(net.state_dict())
        assert "fine_enc.0.a.0.weight" in net.state_dict() and "fine_enc.0.a.0.weight" not in small_net().state_dict()
        with pytest.raises(ValueError):
            MaskGuidedNet.grown_from(net, fine_blocks=0)
        for bad in ({"fine_blocks": -1}, {"fine_blocks": 5}, {"mask_grow": 9}):
            with pytest.raises(ValueError):
                MaskGuidedNet(**bad)

    def test_a_temporal_network_is_not_built_from_a_grown_one(self):
        from filmclean.nets.temporal import TemporalMaskGuidedNet

        with pytest.raises(ValueError, match="fine_blocks"):
            TemporalMaskGuidedNet.from_single(small_net(fill_levels=3, fine_blocks=1))


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

    def test_terms_weighted_zero_are_reported_but_carry_no_gradient(self):
        y = torch.rand(1, 3, 16, 16)
        opacity = torch.zeros(1, 1, 16, 16)
        opacity[..., 4:8, 4:8] = 0.5
        restored = torch.rand(1, 3, 16, 16, requires_grad=True)
        prob = torch.full((1, 1, 16, 16), 0.5, requires_grad=True)
        batch = {"input": y, "target": y, "mask": opacity}
        only_mask = MaskGuidedLoss(w_out=0.0, w_ssim=0.0, w_repair=0.0, w_keep=0.0)
        total, terms = only_mask((restored, prob), batch)
        assert terms["out_l1"] > 0 and terms["out_ssim"] > 0  # still reported
        total.backward()
        assert restored.grad is None or float(restored.grad.abs().sum()) == 0.0
        assert prob.grad is not None and float(prob.grad.abs().sum()) > 0

    def test_float32_under_bfloat16_autocast(self):
        y = torch.rand(2, 3, 32, 32)
        opacity = (torch.rand(2, 1, 32, 32) > 0.9).float()
        logits = torch.randn(2, 1, 32, 32)
        out = (y, torch.sigmoid(logits), logits)
        batch = {"input": y, "target": y, "mask": opacity}
        ref, t_ref = MaskGuidedLoss()(out, batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = tuple(t.to(torch.bfloat16) for t in out)
            total, t_low = MaskGuidedLoss()(low, batch)
        assert total.dtype == torch.float32
        assert t_low["dice"] == pytest.approx(t_ref["dice"], abs=2e-3)  # bf16 inputs, float32 sums
