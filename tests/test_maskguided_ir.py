"""The inverted-residual detector network: contract, receptive radius, gradients, config, ONNX parity."""

import pytest
import torch
from helpers import assert_mask_contract, assert_receptive_radius

from filmclean.errors import ModelError
from filmclean.nets import build_network
from filmclean.nets.maskguided_ir import InvResMaskNet
from filmclean.train.maskloss import MaskGuidedLoss

SMALL = {
    "widths": [8, 8, 12, 16],
    "expand": [2, 2, 2, 2],
    "enc_dilations": [[1], [1, 2], [1], [2]],
    "dec_blocks": [1, 1, 0],
    "tophat": [5],
    "fill_levels": 3,
    "mask_grow": 1,
    "refine_width": 8,
}


def small_net(reach: bool = True, **kw):
    """A small network; with ``reach`` every block's projection gets weights (they start at zero)."""
    torch.manual_seed(0)
    net = InvResMaskNet(**(SMALL | kw)).eval()
    if reach:
        with torch.no_grad():
            for name, p in net.named_parameters():
                if name.endswith("project.weight"):
                    p.normal_(0.0, 0.2)
    return net


class TestInvResMaskNet:
    def test_contract(self):
        net = small_net()
        x = assert_mask_contract(net, 16)
        net.train()
        restored, mask, logits = net(x)
        assert logits.shape == (2, 1, 48, 64)

    def test_registry_builds_it_and_config_rebuilds_it(self):
        net = build_network("maskguided_ir", SMALL)
        assert isinstance(net, InvResMaskNet)
        assert net.config() == SMALL
        again = build_network("maskguided_ir", net.config())
        again.load_state_dict(net.state_dict())  # strict: same layers

    def test_new_blocks_start_as_the_identity(self):
        net = small_net(reach=False)
        for name, p in net.named_parameters():
            if name.endswith("project.weight"):
                assert p.abs().max() == 0, name

    def test_receptive_radius_is_an_upper_bound(self):
        """Changing pixels farther than the radius from a pixel never changes that pixel's output."""
        net = small_net()
        with torch.no_grad():
            net.mask_head.bias.fill_(3.0)  # a wide mask, so that the fill reaches as far as it can
        assert_receptive_radius(net, 16)

    def test_every_parameter_gets_a_gradient(self):
        net = small_net().train()
        x = torch.rand(2, 3, 32, 32)
        mask = (torch.rand(2, 1, 32, 32) > 0.9).float() * 0.8
        loss, _ = MaskGuidedLoss()(net(x), {"input": x, "target": x.clamp(0.1, 0.9), "mask": mask})
        loss.backward()
        for name, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name

    @pytest.mark.parametrize(
        "bad",
        [
            {"widths": [8, 8, 8]},
            {"expand": [2, 2, 2, 0]},
            {"enc_dilations": [[1], [1], [], [1]]},
            {"dec_blocks": [1, 1, 99]},
            {"fill_levels": 0},
            {"mask_grow": 5},
        ],
    )
    def test_bad_settings_are_refused(self, bad):
        with pytest.raises(ValueError):
            InvResMaskNet(**(SMALL | bad))

    def test_it_is_not_grown_from_another_network(self):
        with pytest.raises(ValueError):
            InvResMaskNet.grown_from(small_net(), fine_blocks=1)

    def test_onnx_parity_and_reload(self, tmp_path):
        from filmclean.modelfile import load_torch_network, save_model
        from filmclean.onnx_export import export_onnx

        net = small_net()
        st = save_model(net, "maskguided_ir", net.config(), tmp_path / "m.safetensors")
        res = export_onnx(st, tmp_path / "m.onnx")
        assert res["max_abs_diff"] < 1e-3
        loaded, spec = load_torch_network(st)
        assert spec.arch == "maskguided_ir"
        x = torch.rand(1, 3, 32, 48)
        with torch.no_grad():
            assert torch.equal(loaded(x)[1], net(x)[1])

    def test_weights_that_do_not_fit_are_refused(self, tmp_path):
        from filmclean.modelfile import load_torch_network, save_model

        st = save_model(small_net(), "maskguided_ir", SMALL | {"widths": [8, 8, 12, 24]}, tmp_path / "m.safetensors")
        with pytest.raises(ModelError):
            load_torch_network(st)
