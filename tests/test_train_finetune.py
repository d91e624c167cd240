"""Fine-tuning options of a training run: undamaged samples and starting from a model file."""

import numpy as np
import pytest
import torch

from filmclean.errors import InputError
from filmclean.modelfile import save_model
from filmclean.nets import build_network
from filmclean.train.config import Stage, TrainConfig
from filmclean.train.data import OnTheFlyDataset
from filmclean.train.loop import train


@pytest.fixture()
def clean_dir(tmp_path):
    import cv2

    d = tmp_path / "clean"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        img = (rng.random((40, 40, 3)) * 255).astype(np.uint8)
        cv2.imwrite(str(d / f"img{i}.png"), cv2.resize(img, (80, 80), interpolation=cv2.INTER_CUBIC))
    return d


def test_clean_fraction_gives_untouched_samples(clean_dir):
    ds = OnTheFlyDataset(
        clean_dir, 32, ["img0", "img1", "img2", "img3"], seed=1, crops_per_image=10, clean_fraction=0.5
    )
    clean = [
        bool(torch.equal(it["input"], it["target"]) and it["mask"].max() == 0) for it in (ds[i] for i in range(40))
    ]
    assert 8 <= sum(clean) <= 32  # about half, deterministic for the seed
    again = OnTheFlyDataset(
        clean_dir, 32, ["img0", "img1", "img2", "img3"], seed=1, crops_per_image=10, clean_fraction=0.5
    )
    assert all(torch.equal(ds[i]["input"], again[i]["input"]) for i in range(40))
    none = OnTheFlyDataset(clean_dir, 32, ["img0", "img1", "img2", "img3"], seed=1, crops_per_image=10)
    assert not any(torch.equal(none[i]["input"], none[i]["target"]) for i in range(40))


def test_clean_fraction_validated():
    with pytest.raises(InputError):
        TrainConfig(clean_fraction=1.5)


def test_init_from_starts_from_the_given_weights(clean_dir, tmp_path):
    torch.manual_seed(3)
    cfg = {"channels": 4, "layers": 2}
    start = build_network("tinyconv", cfg)
    src = save_model(start, "tinyconv", cfg, tmp_path / "start.safetensors")
    config = TrainConfig(
        arch="tinyconv",
        arch_config=cfg,
        loss="mse",
        loss_kwargs={"imagenet_space": False},
        clean_dir=str(clean_dir),
        init_from=str(src),
        augment=False,
        valid_fraction=0.25,
        stages=(Stage(size=16, epochs=1, batch_size=2, lr_max=1e-12),),
    )
    train(config, tmp_path / "run", progress=False, max_steps=1)
    from filmclean.train.loop import network_from_checkpoint

    net, _, _ = network_from_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    for (k, a), b in zip(start.state_dict().items(), net.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k  # a near-zero learning rate keeps the start weights
    wrong = save_model(build_network("identity", {}), "identity", {}, tmp_path / "wrong.safetensors")
    with pytest.raises(InputError, match="identity"):
        train(config.replace(init_from=str(wrong)), tmp_path / "run2", progress=False, max_steps=1)


def _maskguided_config(clean_dir, arch_config, lr_max=1e-12, **kw):
    """A one-epoch maskguided run at 16 px on ``clean_dir`` (``kw``: further config fields)."""
    return TrainConfig(
        arch="maskguided",
        arch_config=arch_config,
        loss="maskguided",
        clean_dir=str(clean_dir),
        augment=False,
        valid_fraction=0.25,
        stages=(Stage(size=16, epochs=1, batch_size=2, lr_max=lr_max),),
        **kw,
    )


def test_init_from_a_network_without_the_fill_keeps_its_weights_and_mask(clean_dir, tmp_path):
    torch.manual_seed(4)
    base_cfg = {"widths": [8, 12, 16], "dilations": [1], "tophat": [5]}
    base = build_network("maskguided", base_cfg).eval()
    src = save_model(base, "maskguided", base_cfg, tmp_path / "base.safetensors")
    fill_cfg = {**base_cfg, "fill_levels": 2}
    config = _maskguided_config(clean_dir, fill_cfg, init_from=str(src))
    train(config, tmp_path / "run", progress=False, max_steps=1)
    from filmclean.train.loop import network_from_checkpoint

    net, arch, cfg = network_from_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    assert arch == "maskguided" and cfg["fill_levels"] == 2 and net.fill_levels == 2
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net(x)[1], base(x)[1], atol=1e-5)  # the same mask: only the repair changed
    assert torch.allclose(net.stem[0].weight, base.stem[0].weight, atol=1e-6)
    assert torch.allclose(net.mask_head.weight, base.head.weight[12:16], atol=1e-6)


def test_init_from_a_training_checkpoint_into_a_grown_network(clean_dir, tmp_path):
    """A run may start from another run's checkpoint, adding fine blocks and a grown mask."""
    from filmclean.nets.maskguided import MaskGuidedNet
    from filmclean.train.loop import network_from_checkpoint

    base_cfg = {"widths": [8, 12, 16], "dilations": [1], "tophat": [5], "fill_levels": 2}
    first = _maskguided_config(clean_dir, base_cfg, lr_max=1e-3)
    train(first, tmp_path / "run1", progress=False, max_steps=2)
    ckpt = tmp_path / "run1" / "checkpoint.safetensors"
    base, _, _ = network_from_checkpoint(ckpt)
    grown_cfg = {**base_cfg, "fine_blocks": 1, "mask_grow": 1}
    second = _maskguided_config(clean_dir, grown_cfg, init_from=str(ckpt))
    train(second, tmp_path / "run2", progress=False, max_steps=1)
    net, _, cfg = network_from_checkpoint(tmp_path / "run2" / "checkpoint.safetensors")
    assert isinstance(net, MaskGuidedNet) and cfg["fine_blocks"] == 1 and net.mask_grow == 1
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = torch.nn.functional.max_pool2d(base.eval()(x)[1], 3, 1, 1)
        assert torch.allclose(net.eval()(x)[1], expected, atol=1e-5)
    with pytest.raises(InputError, match="fine blocks"):
        train(
            first.replace(init_from=str(tmp_path / "run2" / "checkpoint.safetensors")),
            tmp_path / "run3",
            progress=False,
            max_steps=1,
        )
