"""Training: config round trip, deterministic data and augmentation, loop, exact resume, CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from filmclean.errors import InputError
from filmclean.train.config import (
    Stage,
    TrainConfig,
    load_config,
    override_schedule,
    paper_stages,
)
from filmclean.train.data import (
    AugmentDraw,
    OnTheFlyDataset,
    PairsDataset,
    augment,
    sample_rng,
    split_names,
)
from filmclean.train.loop import (
    ResumableSampler,
    read_checkpoint,
    set_encoder_frozen,
    train,
)

# -- helpers ---------------------------------------------------------------------------------------


def _pattern(rng: np.random.Generator, s: int) -> np.ndarray:
    yy, xx = np.mgrid[0:s, 0:s] / s
    base = np.stack(
        [
            0.5 + 0.4 * np.sin(6 * xx * rng.uniform(0.5, 2) + rng.uniform(0, 6)),
            0.5 + 0.3 * np.cos(5 * yy * rng.uniform(0.5, 2)),
            0.3 + 0.4 * xx * yy,
        ],
        -1,
    )
    return np.clip(base + rng.normal(0, 0.02, base.shape), 0, 1)


def _write_png(path: Path, img: np.ndarray) -> None:
    import cv2

    arr = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    cv2.imwrite(str(path), arr[..., ::-1] if arr.ndim == 3 else arr)


def make_pairs(root: Path, n: int = 10, sizes: tuple[int, ...] = (16, 32), seed: int = 0) -> Path:
    """A tiny dustify-layout pairs data set: dark specks on smooth patterns."""
    rng = np.random.default_rng(seed)
    names = [f"img{i:02d}" for i in range(n)]
    for s in sizes:
        for sub in ("clean", "damaged", "mask"):
            (root / str(s) / sub).mkdir(parents=True, exist_ok=True)
        for name in names:
            base = _pattern(rng, s)
            mask = (rng.random((s, s)) < 0.06).astype(np.float32)
            _write_png(root / str(s) / "clean" / f"{name}.png", base)
            _write_png(root / str(s) / "damaged" / f"{name}.png", base * (1 - 0.9 * mask[..., None]))
            _write_png(root / str(s) / "mask" / f"{name}.png", mask)
    splits = {"train": names[: n - 3], "valid": names[n - 3 : n - 1], "test": names[n - 1 :]}
    (root / "manifest.json").write_text(json.dumps({"splits": splits}))
    return root


class MSE(nn.Module):
    """Trivial loss with the project's loss contract (mask nets: composite + mask MSE; mask logits,
    which some networks also return in training, are ignored)."""

    def forward(self, out, batch):
        if isinstance(out, tuple):
            r, m = out[:2]
            comp = batch["input"] + m * (r - batch["input"])
            total = ((comp - batch["target"]) ** 2).mean() + 0.1 * ((m - batch["mask"]) ** 2).mean()
        else:
            total = ((out - batch["target"]) ** 2).mean()
        return total, {"mse": float(total.detach())}


class RaiseAt(MSE):
    """Raises KeyboardInterrupt in its ``at``-th call (1-based), inside a training step."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, out, batch):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return super().forward(out, batch)


class SigintAt(MSE):
    """Sends this process SIGINT (like Ctrl-C) during its ``at``-th call."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, out, batch):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return super().forward(out, batch)


class EncNet(nn.Module):
    """A network with an encoder/decoder split (for freeze tests)."""

    has_mask = False
    size_multiple = 1
    receptive_radius = 2

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.dec = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x):
        return (x + self.dec(self.enc(x))).clamp(0, 1)

    def encoder_parameters(self):
        return self.enc.parameters()

    def encoder_norm_parameters(self):
        return self.enc[1].parameters()


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return make_pairs(tmp_path_factory.mktemp("pairs"))


def _cfg(pairs: Path, arch: str = "tinyconv", **kw) -> TrainConfig:
    base = dict(
        arch=arch,
        arch_config={"seed": 1},
        loss="mse",
        pairs_dir=str(pairs),
        stages=(Stage(16, 2, 2, 1e-2), Stage(32, 2, 2, 3e-3, False, 0.5)),
        checkpoint_every=2,
        log_every=1,
    )
    base.update(kw)
    return TrainConfig(**base)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    tensors, _, _ = read_checkpoint(run / "checkpoint.safetensors")
    return tensors


def _metrics(run: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k != "images_per_s"} for line in (run / "metrics.jsonl").open()
    ]


def _assert_same_run(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert sorted(wa) == sorted(wb)
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    assert _metrics(a) == _metrics(b)
    sa, sb = json.loads((a / "state.json").read_text()), json.loads((b / "state.json").read_text())
    assert sa["global_step"] == sb["global_step"] and sa["best"] == sb["best"]


# -- config ----------------------------------------------------------------------------------------


def test_config_round_trip_and_files(tmp_path):
    cfg = TrainConfig(
        arch="tinymask",
        arch_config={"channels": 4, "seed": 3},
        loss="model2",
        loss_kwargs={"mask_weight": 0.5, "layer_weights": [1.0, 2.0]},
        clean_dir="/data/clean",
        exclude_names=("a", "b"),
        valid_fraction=0.25,
        crops_per_image=3,
        crop_scale=(0.3, 0.9),
        synth_params={"amount": 0.5, "opacity_range": [0.6, 1.0]},
        polarity="random",
        augment=False,
        stages=paper_stages((32, 64), epochs=2, finetune="each", lr=2e-3),
        train_bn=False,
        weight_decay=0.0,
        grad_clip=1.5,
        seed=7,
        amp="bf16",
        num_workers=2,
        device="cpu",
        checkpoint_every=17,
        log_every=3,
    )
    text = cfg.to_json()
    back = TrainConfig.from_json(text)
    assert back == cfg and back.to_json() == text
    assert isinstance(back.stages[0], Stage) and isinstance(back.crop_scale, tuple)
    assert TrainConfig.from_json(TrainConfig().to_json()) == TrainConfig()
    # file round trip, JSON and TOML, with relative data paths resolved against the file
    assert load_config(cfg.save(tmp_path / "c.json")) == cfg
    (tmp_path / "c.toml").write_text(
        'arch = "tinyconv"\npairs_dir = "pairs"\nseed = 4\n'
        "[[stages]]\nsize = 32\nepochs = 3\nbatch_size = 4\nlr_max = 0.001\n"
        "[[stages]]\nsize = 32\nepochs = 1\nbatch_size = 4\nlr_max = 0.0001\nfreeze_encoder = false\npct_start = 0.5\n"
    )
    t = load_config(tmp_path / "c.toml")
    assert t.pairs_dir == str((tmp_path / "pairs").resolve()) and t.seed == 4
    assert t.stages == (Stage(32, 3, 4, 1e-3), Stage(32, 1, 4, 1e-4, False, 0.5))
    # errors are one-line InputErrors
    with pytest.raises(InputError, match="unknown training config field"):
        TrainConfig.from_dict({"archh": "x"})
    with pytest.raises(InputError, match="polarity"):
        TrainConfig(polarity="grey")
    with pytest.raises(InputError, match="either pairs_dir or clean_dir"):
        TrainConfig(pairs_dir="a", clean_dir="b")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match="bad.json"):
        load_config(tmp_path / "bad.json")


def test_config_polarity_takes_the_runtime_words_and_reads_the_old_one():
    from filmclean import DUST_POLARITIES
    from filmclean.train.polarity import PolarityChoice

    assert TrainConfig().polarity in DUST_POLARITIES and TrainConfig(polarity="any").polarity == "any"
    old = json.loads(TrainConfig(clean_dir="/c").to_json())
    old["polarity"] = "random"  # what configs said before the vocabulary was the runtime's
    cfg = TrainConfig.from_json(json.dumps(old))
    assert cfg.polarity == "any" and cfg == TrainConfig(clean_dir="/c", polarity="any")
    assert json.loads(cfg.to_json())["polarity"] == "any"
    shipped = sorted((Path(__file__).resolve().parents[1] / "train" / "configs").glob("*.json"))
    assert shipped and all(load_config(path).polarity in DUST_POLARITIES for path in shipped)
    choice = PolarityChoice()
    assert [choice.convert(w, None, None) for w in ("any", "dark", "light", "random", "both")] == [
        "any",
        "dark",
        "light",
        "any",
        "any",
    ]
    assert tuple(choice.choices) == DUST_POLARITIES


def test_paper_schedule_and_overrides():
    st = paper_stages()
    assert [(s.size, s.epochs, s.freeze_encoder, s.pct_start) for s in st] == [
        (64, 10, True, 0.8),
        (128, 10, True, 0.8),
        (256, 10, True, 0.8),
        (256, 20, False, 0.5),
    ]
    assert st[3].lr_max == pytest.approx(st[2].lr_max / 10)
    each = paper_stages((64, 128), finetune="each")
    assert [s.freeze_encoder for s in each] == [True, False, True, False]
    o = override_schedule(st, epochs=2, batch_size=3, lr=5e-3)
    assert all(s.epochs == 2 and s.batch_size == 3 for s in o)
    assert o[0].lr_max == 5e-3 and o[3].lr_max == pytest.approx(5e-4)
    o2 = override_schedule(st, sizes=(32,), epochs=1)
    assert [(s.size, s.epochs, s.freeze_encoder) for s in o2] == [(32, 1, True), (32, 1, False)]


# -- data ------------------------------------------------------------------------------------------


def test_augmentation_applies_identically():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(3, 24, 24, generator=g)
    mask = base[:1].clone()
    # flip only: exact flip of all three
    inp, tgt, m = augment(base, base.clone(), mask, AugmentDraw(True, None, None, None, None))
    assert torch.equal(inp, base.flip(2)) and torch.equal(tgt, base.flip(2)) and torch.equal(m, mask.flip(2))
    # warp + zoom + flip: the same resampling for all three
    draw = AugmentDraw(True, (0.2, -0.1, 0.05, -0.2), (1.4, 0.3, 0.8), None, None)
    inp, tgt, m = augment(base, base.clone(), mask, draw)
    assert not torch.allclose(inp, base.flip(2), atol=1e-3)
    assert torch.equal(inp, tgt) and torch.equal(m, inp[:1])
    # lighting: input and target alike, the mask only moves with the geometry
    draw_l = AugmentDraw(True, (0.2, -0.1, 0.05, -0.2), (1.4, 0.3, 0.8), 0.7, 1.8)
    inp_l, tgt_l, m_l = augment(base, base.clone(), mask, draw_l)
    assert torch.equal(inp_l, tgt_l) and torch.equal(m_l, m)
    assert float((inp_l - inp).abs().max()) > 0.05 and float(inp_l.min()) >= 0 and float(inp_l.max()) <= 1
    # draws are a pure function of (seed, epoch, index) and cover every transform
    draws = [AugmentDraw.draw(sample_rng(0, 1, i, 2)) for i in range(40)]
    assert draws[5] == AugmentDraw.draw(sample_rng(0, 1, 5, 2))
    assert any(d.flip for d in draws) and any(d.warp for d in draws) and any(d.zoom for d in draws)
    assert any(d.brightness for d in draws) and any(d.contrast for d in draws) and not all(d.flip for d in draws)


def test_pairs_dataset_deterministic(pairs):
    ds = PairsDataset(pairs, 32, "train", augment=True, seed=3, epoch=1)
    assert len(ds) == 7
    a, b = ds[2], ds[2]
    for key in ("input", "target", "mask"):
        assert torch.equal(a[key], b[key])
    assert a["input"].shape == (3, 32, 32) and a["mask"].shape == (1, 32, 32) and a["input"].dtype == torch.float32
    epoch1 = [ds[i]["target"] for i in range(len(ds))]
    ds.set_epoch(2)  # a new epoch draws new augmentations
    assert any(not torch.equal(ds[i]["target"], epoch1[i]) for i in range(len(ds)))
    plain = PairsDataset(pairs, 32, "train")[2]
    # without augmentation an item is the files' content; the mask marks where input and target differ
    assert torch.equal(plain["mask"][0] > 0.5, (plain["input"] - plain["target"]).abs().amax(0) > 0.02)
    v = PairsDataset(pairs, 16, "valid", exclude=["img07"])
    assert v.names == ["img08"]
    with pytest.raises(InputError, match="no split"):
        PairsDataset(pairs, 16, "nope")
    with pytest.raises(InputError, match="64/clean"):
        PairsDataset(pairs, 64, "train")


def test_on_the_fly_dataset_deterministic(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        _write_png(tmp_path / f"p{i}.png", _pattern(rng, 40 + 8 * i)[:, : 30 + 8 * i])
    ds = OnTheFlyDataset(
        tmp_path, 24, ["p0", "p1", "p2"], seed=5, polarity="random", epoch=0, augment=True, crops_per_image=2
    )
    assert len(ds) == 6
    a, b = (
        ds[3],
        OnTheFlyDataset(
            tmp_path, 24, ["p0", "p1", "p2"], seed=5, polarity="random", epoch=0, augment=True, crops_per_image=2
        )[3],
    )
    for key in ("input", "target", "mask"):
        assert torch.equal(a[key], b[key])
    assert a["input"].shape == (3, 24, 24) and a["mask"].shape == (1, 24, 24)
    assert float(a["mask"].min()) >= 0 and float(a["mask"].max()) <= 1
    ds.set_epoch(1)
    assert not torch.equal(ds[3]["input"], a["input"])
    val = OnTheFlyDataset(tmp_path, 24, ["p0"], seed=5, validation=True, augment=True)
    v1, v2 = val[0], val[0]
    val.set_epoch(9)
    assert torch.equal(v1["input"], v2["input"]) and torch.equal(val[0]["input"], v1["input"])
    tr, va = split_names([f"n{i}" for i in range(10)], 0.2, seed=1)
    assert len(va) == 2 and sorted(tr + va) == sorted(f"n{i}" for i in range(10))
    assert split_names([f"n{i}" for i in range(10)], 0.2, seed=1) == (tr, va)


class TestCropZoom:
    @staticmethod
    def _checker(path: Path, side: int) -> None:
        img = np.indices((side, side)).sum(axis=0) % 2 * 255  # one-pixel checkerboard
        _write_png(path, np.repeat(img[..., None], 3, axis=2).astype(np.uint8))

    def test_zoom_one_cuts_the_photo_at_its_own_scale(self, tmp_path):
        self._checker(tmp_path / "c.png", 200)
        native = OnTheFlyDataset(tmp_path, 24, ["c"], seed=1, crop_zoom=(1.0, 1.0), clean_fraction=1.0)
        t = native[0]["target"].numpy()
        assert set(np.unique(np.round(t, 3))) == {0.0, 1.0}  # not resampled: the checkerboard survives
        halved = OnTheFlyDataset(tmp_path, 24, ["c"], seed=1, crop_zoom=(0.5, 0.5), clean_fraction=1.0)
        assert np.allclose(halved[0]["target"].numpy(), 0.5, atol=0.05)  # 48 px averaged down to 24
        legacy = OnTheFlyDataset(tmp_path, 24, ["c"], seed=1, crop_scale=(0.5, 1.0), clean_fraction=1.0)
        assert np.ptp(legacy[0]["target"].numpy()) < 0.5  # a fraction of the short side: resampled

    def test_a_photo_smaller_than_the_crop_gives_its_whole_short_side(self, tmp_path):
        self._checker(tmp_path / "c.png", 16)
        item = OnTheFlyDataset(tmp_path, 24, ["c"], seed=1, crop_zoom=(0.8, 1.2), clean_fraction=1.0)[0]
        assert item["target"].shape == (3, 24, 24)

    def test_config(self):
        cfg = TrainConfig(clean_dir="/data", crop_zoom=[0.3, 1.0])
        assert cfg.crop_zoom == (0.3, 1.0) and TrainConfig.from_json(cfg.to_json()) == cfg
        for bad in ([0.0, 1.0], [1.0, 0.5], [0.5, 5.0], [1.0]):
            with pytest.raises(InputError, match="crop_zoom"):
                TrainConfig(clean_dir="/data", crop_zoom=bad)
        with pytest.raises(InputError, match="still training only"):
            TrainConfig(clean_dir="/data", crop_zoom=[0.5, 1.0], temporal=True)


def test_sampler_skip_continues_the_same_order():
    ds = list(range(11))
    full = list(ResumableSampler(ds, 1, 0, seed=4, epoch=3))
    assert sorted(full) == ds and full == list(ResumableSampler(ds, 1, 0, seed=4, epoch=3))
    assert list(ResumableSampler(ds, 1, 0, seed=4, epoch=3, skip=4)) == full[4:]
    assert full != list(ResumableSampler(ds, 1, 0, seed=4, epoch=4))
    r0, r1 = list(ResumableSampler(ds, 2, 0, 4, 3)), list(ResumableSampler(ds, 2, 1, 4, 3))
    assert len(r0) == len(r1) == 6 and set(r0) | set(r1) == set(ds)


# -- loop ------------------------------------------------------------------------------------------


def test_tiny_run_loss_falls_and_model_loads(pairs, tmp_path):
    from filmclean.modelfile import load_torch_network

    cfg = _cfg(pairs, stages=(Stage(32, 6, 2, 2e-2),), augment=False, checkpoint_every=0)
    result = train(cfg, tmp_path / "run", progress=False, loss=MSE())
    assert result["status"] == "finished" and result["step"] == 18 and result["stage"] == 1
    valid = [m for m in _metrics(tmp_path / "run") if m["kind"] == "valid"]
    assert len(valid) == 6
    assert valid[-1]["train_loss"] < 0.7 * valid[0]["train_loss"]
    assert valid[-1]["ssim"] > valid[-1]["input_ssim"]
    net, spec = load_torch_network(tmp_path / "run" / "model.safetensors")
    assert spec.arch == "tinyconv" and spec.config == {"seed": 1}
    assert spec.info["training"]["valid_ssim"] == result["best"]["ssim"]
    with torch.no_grad():
        assert net(torch.rand(1, 3, 20, 28)).shape == (1, 3, 20, 28)
    assert TrainConfig.from_json((tmp_path / "run" / "config.json").read_text()) == cfg
    # a finished run resumes to "finished" without training
    again = train(cfg, tmp_path / "run", progress=False, loss=MSE())
    assert again["status"] == "finished" and again["step"] == 18


def test_without_validation_split_the_latest_model_is_kept(tmp_path):
    pairs = make_pairs(tmp_path / "p", n=5, sizes=(16,))
    manifest = json.loads((pairs / "manifest.json").read_text())
    del manifest["splits"]["valid"]
    (pairs / "manifest.json").write_text(json.dumps(manifest))
    cfg = _cfg(pairs, stages=(Stage(16, 2, 2, 1e-2),))
    result = train(cfg, tmp_path / "run", progress=False, loss=MSE())
    assert result["best"] is None and result["model_path"] == str(tmp_path / "run" / "model.safetensors")
    valid = [m for m in _metrics(tmp_path / "run") if m["kind"] == "valid"]
    assert len(valid) == 2 and "ssim" not in valid[0] and valid[0]["best"] is False
    from filmclean.modelfile import load_torch_network

    net, spec = load_torch_network(tmp_path / "run" / "model.safetensors")
    assert spec.info["training"]["epoch"] == 1  # the last epoch's network
    w = _weights(tmp_path / "run")
    assert all(torch.equal(v, w["model." + k]) for k, v in net.state_dict().items())


def test_run_dir_holds_only_its_files_and_stale_partials_go(pairs, tmp_path):
    """Files are written under hidden partial names (filmclean.io.partial_path) and renamed; a
    partial that a killed run left behind is removed when the run is started again."""
    from filmclean.train.loop import TrainState

    run = tmp_path / "run"
    cfg = _cfg(pairs, stages=(Stage(16, 1, 2, 1e-2),))
    train(cfg, run, progress=False, loss=MSE(), max_steps=1)
    code = (
        "import sys\nfrom filmclean.io import partial_path\n"
        "p = partial_path(sys.argv[1]); p.write_bytes(b'half'); print(p.name)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(run / "checkpoint.safetensors")], capture_output=True, text=True, check=True
    )
    stale = run / proc.stdout.strip()  # its writer has exited: as if killed mid-write
    assert stale.is_file() and stale.name.startswith(".checkpoint.partial-")
    result = train(cfg, run, progress=False, loss=MSE())
    assert result["status"] == "finished" and not stale.exists()
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint.safetensors",
        "config.json",
        "metrics.jsonl",
        "model.safetensors",
        "state.json",
    ]
    state = TrainState.from_saved(json.loads((run / "state.json").read_text()))
    assert (state.stage, state.epoch, state.global_step) == (1, 0, 3) and state.model_path == result["model_path"]


def test_build_loss_by_name(pairs, tmp_path):
    pytest.importorskip("filmclean.train.losses")
    cfg = _cfg(pairs, stages=(Stage(16, 1, 4, 1e-2),), augment=True)
    result = train(cfg, tmp_path / "run", progress=True)  # loss "mse" from build_loss; rich progress on
    assert result["status"] == "finished" and result["last_loss"] is not None


@pytest.mark.parametrize("arch", ["tinyconv", "tinymask"])
def test_resume_after_max_steps_is_exact(pairs, tmp_path, arch):
    cfg = _cfg(pairs, arch)
    full = train(cfg, tmp_path / "a", progress=False, loss=MSE())
    assert full["status"] == "finished" and full["step"] == 12  # 2 stages x 2 epochs x 3 steps
    # stop mid-epoch (1, 4, 5: between checkpoints too), at an epoch end (6: stage boundary), mid stage 2
    for k in (1, 4, 5, 6, 8):
        r = train(cfg, tmp_path / "b", progress=False, loss=MSE(), max_steps=k)
        assert r["status"] == "stopped" and r["step"] == k
    r = train(cfg, tmp_path / "b", progress=False, loss=MSE())
    assert r["status"] == "finished" and r["best"] == full["best"]
    _assert_same_run(tmp_path / "a", tmp_path / "b")


def _spatial_weights_channels_last(net: nn.Module) -> list[bool]:
    """For each convolution weight with a kernel wider than 1x1 over more than one input channel (the
    weights whose two layouts differ): whether it is in channels-last layout."""
    return [
        p.is_contiguous(memory_format=torch.channels_last)
        for p in net.parameters()
        if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1
    ]


def test_channels_last_network_trains_so_and_resumes_exactly(pairs, tmp_path, monkeypatch):
    """A network asking for channels-last training (InvResMaskNet) runs so on the CPU; its checkpoints
    are written all the same and a resumed run ends identical to an uninterrupted one."""
    from filmclean.train import loop

    built: list[nn.Module] = []
    real = loop.build_network
    monkeypatch.setattr(loop, "build_network", lambda *a, **k: built.append(real(*a, **k)) or built[-1])
    tiny = dict(widths=[4] * 4, expand=[1] * 4, enc_dilations=[[1]] * 4, dec_blocks=[1, 1, 1], refine_width=4)
    cfg = _cfg(pairs, "maskguided_ir", arch_config=tiny, stages=(Stage(32, 2, 2, 1e-2),))
    assert train(cfg, tmp_path / "a", progress=False, loss=MSE())["status"] == "finished"
    layouts = _spatial_weights_channels_last(built[-1])
    assert layouts and all(layouts)
    assert train(cfg, tmp_path / "b", progress=False, loss=MSE(), max_steps=3)["step"] == 3
    assert train(cfg, tmp_path / "b", progress=False, loss=MSE())["status"] == "finished"
    _assert_same_run(tmp_path / "a", tmp_path / "b")
    # a dense network keeps the default layout
    train(_cfg(pairs, "tinymask", stages=(Stage(16, 1, 2, 1e-2),)), tmp_path / "c", progress=False, loss=MSE())
    assert not any(_spatial_weights_channels_last(built[-1]))


def test_on_the_fly_run_resumes_exactly(tmp_path):
    rng = np.random.default_rng(1)
    clean = tmp_path / "clean"
    clean.mkdir()
    for i in range(5):
        _write_png(clean / f"photo{i}.png", _pattern(rng, 48)[:, : 36 + 4 * i])
    cfg = TrainConfig(
        arch="tinymask",
        arch_config={"seed": 2},
        loss="mse",
        clean_dir=str(clean),
        exclude_names=("photo4",),
        valid_fraction=0.25,
        crops_per_image=2,
        polarity="random",
        stages=(Stage(24, 2, 2, 1e-2),),
        checkpoint_every=2,
    )
    full = train(cfg, tmp_path / "a", progress=False, loss=MSE())
    assert full["status"] == "finished" and full["step"] == 6  # 3 train photos x 2 crops / batch 2 x 2 epochs
    valid = [m for m in _metrics(tmp_path / "a") if m["kind"] == "valid"]
    assert [m["valid_count"] for m in valid] == [1, 1] and valid[0]["input_ssim"] == valid[1]["input_ssim"]
    train(cfg, tmp_path / "b", progress=False, loss=MSE(), max_steps=4)
    train(cfg, tmp_path / "b", progress=False, loss=MSE())
    _assert_same_run(tmp_path / "a", tmp_path / "b")


@pytest.fixture
def default_sigint():
    """Ctrl-C handled as in an interactive shell, whatever this process inherited: a suite started
    with SIGINT ignored (``nohup``, a background job, a CI runner) passes ``SIG_IGN`` on to pytest,
    and training, which restores the handler it found, would then leave SIGINT ignored."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def test_resume_after_keyboard_interrupt_is_exact(pairs, tmp_path, default_sigint):
    cfg = _cfg(pairs, num_workers=1)
    train(cfg, tmp_path / "a", progress=False, loss=MSE())
    with pytest.raises(KeyboardInterrupt):  # raised inside step 8: the last checkpoint is step 6
        train(cfg, tmp_path / "b", progress=False, loss=RaiseAt(8))
    assert json.loads((tmp_path / "b" / "state.json").read_text())["global_step"] == 6
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C during step 3 of the resumed run: step 9 completes, then stop
        train(cfg, tmp_path / "b", progress=False, loss=SigintAt(3))
    assert json.loads((tmp_path / "b" / "state.json").read_text())["global_step"] == 9
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    train(cfg, tmp_path / "b", progress=False, loss=MSE())
    _assert_same_run(tmp_path / "a", tmp_path / "b")


def test_keyboard_interrupt_test_passes_with_sigint_ignored(pairs, tmp_path):
    """The test above, started the way ``nohup`` or a background runner starts it: with SIGINT
    ignored in the process (inherited as ``SIG_IGN``)."""
    code = (
        "import signal, sys, pytest\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        f"args = ['-q', '-p', 'no:cacheprovider', {__file__!r}, '-k', 'resume_after_keyboard_interrupt']\n"
        "sys.exit(pytest.main(args))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout


def test_workers_do_not_hang_after_opencv_ran_in_the_parent(pairs, tmp_path):
    """DataLoader workers are forked; a worker that reconfigures OpenCV's thread pool after the
    parent has used it hangs. Run in a subprocess so that a regression fails instead of hanging."""
    cfg = _cfg(pairs, stages=(Stage(16, 2, 2, 1e-2),), num_workers=2)
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    code = (
        "import cv2, numpy as np, torch\n"
        "from filmclean.train.config import load_config\n"
        "from filmclean.train.loop import train\n"
        "big = np.random.default_rng(0).random((1500, 1500, 3), dtype=np.float32)\n"
        "for _ in range(3):\n"
        "    cv2.GaussianBlur(big, (0, 0), 5)  # OpenCV's thread pool now runs in this process\n"
        f"cfg = load_config({str(tmp_path / 'cfg.json')!r})\n"
        f"print(train(cfg, {str(tmp_path / 'run')!r}, progress=False)['status'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("finished"), proc.stderr[-3000:]


def test_resume_refuses_other_config_and_no_resume_restarts(pairs, tmp_path):
    cfg = _cfg(pairs, stages=(Stage(16, 1, 2, 1e-2),))
    train(cfg, tmp_path / "r", progress=False, loss=MSE(), max_steps=1)
    with pytest.raises(InputError, match="differs in: seed"):
        train(cfg.replace(seed=9), tmp_path / "r", progress=False, loss=MSE())
    # runtime fields (precision included) may change on resume
    r = train(cfg.replace(checkpoint_every=1, num_workers=0, amp="bf16"), tmp_path / "r", progress=False, loss=MSE())
    assert r["status"] == "finished"
    r = train(cfg.replace(seed=9), tmp_path / "r", resume=False, progress=False, loss=MSE(), max_steps=2)
    assert r["step"] == 2 and len(_metrics(tmp_path / "r")) == 2


def test_frozen_encoder_stage(pairs, tmp_path, monkeypatch):
    from filmclean import nets

    monkeypatch.setitem(nets.ARCHITECTURES, "encnet", f"{__name__}:EncNet")
    net = EncNet()
    assert set_encoder_frozen(net, True) == 2 and net.enc[1].weight.requires_grad
    assert set_encoder_frozen(net, True, train_bn=False) == 4 and not net.enc[1].weight.requires_grad
    assert set_encoder_frozen(net, False) == 0 and all(p.requires_grad for p in net.parameters())

    cfg = _cfg(pairs, "encnet", arch_config={}, stages=(Stage(16, 1, 2, 1e-2),))
    torch.manual_seed(cfg.seed)
    init = EncNet().state_dict()
    train(cfg, tmp_path / "f", progress=False, loss=MSE())
    w = _weights(tmp_path / "f")
    assert torch.equal(w["model.enc.0.weight"], init["enc.0.weight"])  # frozen conv unchanged
    assert not torch.equal(w["model.enc.1.weight"], init["enc.1.weight"])  # its BatchNorm trains
    assert not torch.equal(w["model.dec.weight"], init["dec.weight"])
    train(
        cfg.replace(stages=(Stage(16, 1, 2, 1e-2, freeze_encoder=False),)), tmp_path / "u", progress=False, loss=MSE()
    )
    assert not torch.equal(_weights(tmp_path / "u")["model.enc.0.weight"], init["enc.0.weight"])


class SpeckMaskNet(nn.Module):
    """A fixed mask network: the repair is a 3x3 maximum (it fills dark specks), the damage
    probability 0.7 on dark pixels and 0.3 elsewhere -- so the soft composite
    ``x + p (r - x)`` and inference's hard one (repair where ``p >= 0.5``) differ everywhere."""

    has_mask = True

    def forward(self, x):
        repair = torch.nn.functional.max_pool2d(x, 3, stride=1, padding=1)
        prob = torch.where(x.amin(1, keepdim=True) < 0.1, 0.7, 0.3)
        return repair, prob


def _speck_items(n: int = 5, s: int = 24) -> list[dict]:
    rng = np.random.default_rng(3)
    items = []
    for _ in range(n):
        target = torch.from_numpy(_pattern(rng, s).astype(np.float32)).permute(2, 0, 1).contiguous()
        mask = torch.from_numpy((rng.random((s, s)) < 0.05).astype(np.float32))[None]
        items.append({"input": target * (1 - 0.95 * mask), "target": target, "mask": mask})
    return items


def test_validation_scores_the_hard_composite_inference_outputs():
    """Checkpoints are picked on what users get: the SSIM validation reports is that of
    :func:`filmclean.engine.composite` at the default threshold, not of the soft composite."""
    import kornia

    from filmclean.engine import RestoreOptions, composite
    from filmclean.train.loop import DistInfo, validate

    items = _speck_items()
    net = SpeckMaskNet()
    cfg = TrainConfig(arch="tinymask", seed=1, num_workers=0, amp="off", device="cpu")
    metrics = validate(net, items, 2, torch.device("cpu"), cfg, DistInfo())
    x = torch.stack([it["input"] for it in items])
    y = torch.stack([it["target"] for it in items])
    with torch.no_grad():
        repair, prob = net(x)
    hard = composite(
        x.permute(0, 2, 3, 1).numpy(),
        repair.permute(0, 2, 3, 1).numpy(),
        prob[:, 0].numpy(),
        RestoreOptions().threshold,
    )
    hard_t = torch.from_numpy(hard).permute(0, 3, 1, 2)
    ssim = lambda a: float(kornia.metrics.ssim(a, y, 11).mean(dim=(1, 2, 3)).mean())  # noqa: E731
    soft = x + prob * (repair - x)
    assert abs(ssim(hard_t) - ssim(soft)) > 1e-3  # the case tells the two apart
    assert metrics["ssim"] == pytest.approx(ssim(hard_t), abs=1e-6)
    assert metrics["input_ssim"] == pytest.approx(ssim(x), abs=1e-6) and metrics["count"] == len(items)


# -- CLI -------------------------------------------------------------------------------------------


def test_cli_train_and_resume(pairs, tmp_path):
    from filmclean.train.cli_train import train_command

    runner = CliRunner()
    run = tmp_path / "cli"
    args = [
        "--run-dir",
        str(run),
        "--arch",
        "tinyconv",
        "--loss",
        "mse",
        "--pairs",
        str(pairs),
        "--sizes",
        "16",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--lr",
        "0.01",
        "--device",
        "cpu",
        "--seed",
        "2",
        "--no-progress",
    ]
    res = runner.invoke(train_command, args + ["--max-steps", "2"])
    assert res.exit_code == 0, res.output
    assert "stopped at step 2" in res.output
    cfg = TrainConfig.from_json((run / "config.json").read_text())
    assert cfg.seed == 2 and [s.size for s in cfg.stages] == [16, 16] and cfg.stages[0].lr_max == 0.01
    res = runner.invoke(train_command, ["--run-dir", str(run), "--no-progress"])  # resumes from config.json
    assert res.exit_code == 0, res.output
    assert "finished at step 6" in res.output and "model.safetensors" in res.output
    res = runner.invoke(train_command, ["--run-dir", str(tmp_path / "x"), "--arch", "tinyconv"])
    assert res.exit_code != 0 and "no training data" in res.output
    res = runner.invoke(train_command, args + ["--seed", "3"])
    assert isinstance(res.exception, InputError) and "differs in: seed" in str(res.exception)


def _torchrun(script: Path, *args: str, timeout: float = 150) -> str:
    """Run ``torchrun --nproc_per_node=2 script args`` (the launcher is killed on timeout)."""
    launcher = Path(sys.executable).with_name("torchrun")
    cmd = [str(launcher) if launcher.exists() else "torchrun", "--nproc_per_node=2", "--standalone", str(script), *args]
    proc = subprocess.Popen(
        cmd,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # (the workers exit by themselves: faulthandler in the script)
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 0, out[-2000:] + err[-4000:]
    return out


@pytest.mark.skipif(
    not Path(sys.executable).with_name("torchrun").exists() and not shutil.which("torchrun"), reason="no torchrun"
)
def test_ddp_two_processes_cpu(pairs, tmp_path):
    """``torchrun --nproc_per_node=2`` on the CPU (Gloo). Launch 1: a full run; train() joins the
    process group itself. Launch 2, in a group made by the caller: a run stopped at step 3, then
    resumed from its files. Both runs end identical; only rank 0 wrote files."""
    cfg = _cfg(pairs, stages=(Stage(16, 2, 2, 1e-2),), device="cpu")
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    script = tmp_path / "ddp.py"
    script.write_text(
        "import faulthandler, os, sys, torch\n"
        "faulthandler.dump_traceback_later(100, exit=True)  # a hung rank reports where and exits\n"
        "import torch.distributed as dist\n"
        "torch.set_num_threads(1)\n"
        "from filmclean.train.config import load_config\n"
        "from filmclean.train.loop import train\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_train_loop import MSE\n"
        f"cfg = load_config({str(tmp_path / 'cfg.json')!r})\n"
        "run, own_group = sys.argv[1], sys.argv[2] == 'own'\n"
        "def report(r):\n"
        "    os.write(1, f\"RESULT {os.environ['RANK']} {r['status']} {r['step']}\\n\".encode())  # one atomic write\n"
        "if own_group:\n"
        "    report(train(cfg, run, progress=False, loss=MSE()))\n"
        "    assert not dist.is_initialized()\n"
        "else:\n"
        "    dist.init_process_group('gloo')\n"
        "    report(train(cfg, run, progress=False, loss=MSE(), max_steps=3))\n"
        "    report(train(cfg, run, progress=False, loss=MSE()))\n"
        "    assert dist.is_initialized()\n"
        "    dist.barrier()\n"
        "    dist.destroy_process_group()\n"
    )
    t = time.time()
    out_a = _torchrun(script, str(tmp_path / "a"), "own")
    out_b = _torchrun(script, str(tmp_path / "b"), "caller")
    assert time.time() - t < 90
    for rank in "01":  # 7 items / 2 ranks -> 4 per rank -> 2 steps per epoch, 2 epochs
        assert f"RESULT {rank} finished 4" in out_a
        assert f"RESULT {rank} stopped 3" in out_b and f"RESULT {rank} finished 4" in out_b
    assert len([m for m in _metrics(tmp_path / "a") if m["kind"] == "valid"]) == 2
    assert not list(tmp_path.glob("*/*.partial"))
    _assert_same_run(tmp_path / "a", tmp_path / "b")
