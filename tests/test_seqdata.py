"""Training data for the temporal network: camera-motion triplets, clips, TemporalDataset, wiring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from filmclean.errors import InputError
from filmclean.modelfile import load_torch_network, save_model
from filmclean.nets import build_network
from filmclean.nets.temporal import TemporalMaskGuidedNet
from filmclean.temporal import AlignOptions, align_neighbour, frame_flows
from filmclean.train.config import Stage, TrainConfig, load_config
from filmclean.train.loop import DataPlan, network_from_checkpoint, train
from filmclean.train.seqdata import (
    MotionParams,
    TemporalDataset,
    camera_motion_triplet,
    clip_triplet,
    read_clip_frames,
    split_clip,
)

SMALL = {"widths": [8, 8, 8], "dilations": [1], "tophat": [5]}
NAMES = ["img0", "img1", "img2"]


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random colour image with texture DIS can track."""
    import cv2

    g = np.random.default_rng(seed)
    img = g.random((h, w, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(img, (0, 0), 2.0) * 3 - 1, 0, 1)


def _write_png(path: Path, img: np.ndarray) -> None:
    import cv2

    cv2.imwrite(str(path), (np.clip(img, 0, 1) * 255).round().astype(np.uint8)[..., ::-1])


def _write_clip(path: Path, n: int = 10, w: int = 64, h: int = 48) -> np.ndarray:
    """An FFV1 (lossless RGB) clip of a smooth picture panning 1 px per frame; returns its frames."""
    import av

    big = (smooth_image(h + 8, w + 2 * n, seed=5) * 255).round().astype(np.uint8)
    frames = np.stack([np.ascontiguousarray(big[4 : 4 + h, i : i + w]) for i in range(n)])
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = w, h, "bgr0"
        for rgb in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="bgr0")))
        out.mux(stream.encode(None))
    return frames


@pytest.fixture()
def clean_dir(tmp_path):
    d = tmp_path / "clean"
    d.mkdir()
    for i, name in enumerate(NAMES):
        _write_png(d / f"{name}.png", smooth_image(96, 112, seed=i))
    return d


@pytest.fixture()
def clip(tmp_path):
    path = tmp_path / "clip.mkv"
    return path, _write_clip(path)


def _dataset(clean_dir, clip_frames=(), **kw):
    kw.setdefault("crops_per_image", 2)
    return TemporalDataset(clean_dir, 64, NAMES, seed=3, polarity="random", clips=list(clip_frames), **kw)


# -- clips -----------------------------------------------------------------------------------------


def test_read_clip_frames_range_and_types(clip):
    path, frames = clip
    got = read_clip_frames(path, 2, 6)
    assert got.shape == (5, 48, 64, 3) and got.dtype == np.float32
    assert np.array_equal(np.round(got * 255).astype(np.uint8), frames[2:7])  # FFV1 RGB is lossless
    raw = read_clip_frames(path, 0, 9, as_uint8=True)
    assert raw.dtype == np.uint8 and np.array_equal(raw, frames)
    assert read_clip_frames(path, 0, 1, max_side=32).shape == (2, 24, 32, 3)
    with pytest.raises(InputError, match="fewer"):
        read_clip_frames(path, 5, 12)
    with pytest.raises(InputError):
        read_clip_frames(path.with_name("missing.mkv"), 0, 2)


def test_clip_triplet_is_consecutive_with_one_crop(clip):
    _, frames = clip
    trip = clip_triplet(frames, 32, np.random.default_rng(0), crop_scale=(1.0, 1.0))
    assert len(trip) == 3 and all(f.shape == (32, 32, 3) and f.dtype == np.float32 for f in trip)
    # the clip pans by 1 source px per frame: consecutive frames differ, but only a little
    d01, d12 = (float(np.abs(trip[k + 1] - trip[k]).mean()) for k in (0, 1))
    assert 0 < d01 < 0.1 and 0 < d12 < 0.1
    assert split_clip(10) == (7, 3) and split_clip(600) == (540, 60) and split_clip(5) == (5, 0)


# -- synthetic camera motion -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_camera_motion_frames_differ_but_align(seed):
    img = smooth_image(240, 300, seed=seed)
    rng = np.random.default_rng(seed)
    prev, cur, nxt = camera_motion_triplet(img, 128, rng, params=MotionParams(object_p=0.0, large_p=0.0))
    assert all(f.shape == (128, 128, 3) and f.dtype == np.float32 for f in (prev, cur, nxt))
    assert all(0.0 <= f.min() and f.max() <= 1.0 for f in (prev, cur, nxt))
    inner = (slice(16, -16), slice(16, -16))
    for nb in (prev, nxt):
        assert float(np.abs(nb - cur)[inner].mean()) > 0.01  # the camera moved
        pf = frame_flows(cur, nb, AlignOptions(flow_size=128))
        aligned, trust = align_neighbour(cur, nb, pf.ab, pf.ba)
        assert float(np.abs(aligned - cur)[inner].mean()) < 0.03
        assert float(trust[inner].mean()) > 0.8


def test_camera_motion_is_deterministic_and_object_occludes():
    img = smooth_image(200, 200, seed=4)
    a = camera_motion_triplet(img, 64, np.random.default_rng(7), params=MotionParams(object_p=1.0))
    b = camera_motion_triplet(img, 64, np.random.default_rng(7), params=MotionParams(object_p=1.0))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


# -- the data set ------------------------------------------------------------------------------------


def test_sample_contract(clean_dir, clip):
    _, frames = clip
    ds = _dataset(clean_dir, [frames], clip_fraction=0.5, clean_fraction=0.3)
    assert len(ds) == 6
    for i in range(len(ds)):
        it = ds[i]
        x, y, m = it["input"], it["target"], it["mask"]
        assert x.shape == (11, 64, 64) and y.shape == (3, 64, 64) and m.shape == (1, 64, 64)
        assert x.dtype == y.dtype == m.dtype == torch.float32 and it["index"] == i
        for t in (x, y, m):
            assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
        # channels 0-2 are the damaged middle frame: the clean target wherever the mask is 0, changed elsewhere
        changed = (x[:3] != y).any(dim=0)
        assert torch.equal(changed, m[0] > 0)
        clean_mid, _ = ds.frames(i)
        assert torch.equal(y, torch.from_numpy(clean_mid[1].transpose(2, 0, 1).copy()))


def test_clean_fraction_keeps_the_middle_frame_clean(clean_dir):
    ds = _dataset(clean_dir, clean_fraction=0.99, crops_per_image=2)
    items = [ds[i] for i in range(len(ds))]
    assert sum(bool(torch.equal(it["input"][:3], it["target"]) and it["mask"].max() == 0) for it in items) >= 4
    valid = _dataset(clean_dir, clean_fraction=0.99, validation=True, crops_per_image=1)
    assert all(valid[i]["mask"].max() > 0 for i in range(len(valid)))  # validation is always damaged


def test_missing_neighbours_have_zero_trust(clean_dir):
    ds = _dataset(clean_dir, missing_p=1.0, both_missing_p=0.0, cut_p=0.0)
    for i in range(len(ds)):
        x = ds[i]["input"]
        missing = [k for k in (0, 1) if float(x[9 + k].max()) == 0.0]
        assert len(missing) == 1
        k = missing[0]
        assert torch.equal(x[3 + 3 * k : 6 + 3 * k], x[0:3])  # the current frame stands in for it
        assert float(x[9 + (1 - k)].mean()) > 0.3  # the other neighbour is used
    both = _dataset(clean_dir, both_missing_p=1.0, crops_per_image=1)
    x = both[0]["input"]
    assert float(x[9:11].max()) == 0.0 and torch.equal(x[3:6], x[0:3]) and torch.equal(x[6:9], x[0:3])


def test_scene_cut_neighbour_is_another_picture(clean_dir):
    ds = _dataset(clean_dir, missing_p=0.0, both_missing_p=0.0, cut_p=1.0, crops_per_image=1)
    clean = _dataset(clean_dir, missing_p=0.0, both_missing_p=0.0, cut_p=0.0, crops_per_image=1)
    for i in range(len(ds)):
        a, b = ds[i]["input"], clean[i]["input"]
        assert torch.equal(a[:3], b[:3])  # the middle frame and its damage do not change
        assert not torch.equal(a[3:11], b[3:11])


def test_validation_items_are_deterministic(clean_dir, clip):
    _, frames = clip
    ds = _dataset(clean_dir, [frames], validation=True, clip_fraction=0.5)
    again = _dataset(clean_dir, [frames], validation=True, clip_fraction=0.5)
    again.set_epoch(5)
    for i in range(len(ds)):
        a, b = ds[i], again[i]
        assert all(torch.equal(a[k], b[k]) for k in ("input", "target", "mask"))
    train_ds = _dataset(clean_dir, [frames])
    e0 = train_ds[1]["input"].clone()
    train_ds.set_epoch(1)
    assert not torch.equal(e0, train_ds[1]["input"])  # training items change with the epoch
    train_ds.set_epoch(0)
    assert torch.equal(e0, train_ds[1]["input"])


def test_clip_only_dataset(clip):
    path, _ = clip
    ds = TemporalDataset(None, 32, [], seed=0, clips=[{"path": str(path), "first": 0, "last": 9}], crops_per_image=3)
    assert len(ds) == 3 and ds[2]["input"].shape == (11, 32, 32)


# -- configuration and the training loop ----------------------------------------------------------------


def _temporal_config(clean_dir, clip_path=None, **kw):
    base = dict(
        arch="temporal_maskguided",
        arch_config=SMALL,
        loss="maskguided",
        clean_dir=str(clean_dir),
        temporal=True,
        valid_fraction=0.34,
        crops_per_image=1,
        crop_scale=(0.5, 1.0),
        polarity="random",
        clean_fraction=0.3,
        clips=[{"path": str(clip_path), "first": 0, "last": 9}] if clip_path else [],
        clip_fraction=0.5,
        stages=(Stage(size=32, epochs=1, batch_size=1, lr_max=1e-3, freeze_encoder=False),),
    )
    base.update(kw)
    return TrainConfig(**base)


def test_config_fields_validated_and_paths_resolved(tmp_path, clean_dir):
    cfg = _temporal_config(clean_dir, tmp_path / "c.mkv")
    assert cfg.clips == ({"path": str(tmp_path / "c.mkv"), "first": 0, "last": 9},)
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    assert TrainConfig().temporal is False and TrainConfig().clips == () and TrainConfig().clip_fraction == 0.3
    for bad in (
        dict(clips=[{"path": "a.avi", "first": 0}]),
        dict(clips=[{"path": "a.avi", "first": 5, "last": 6}]),
        dict(clips=[{"path": "a.avi", "first": -1, "last": 6}]),
        dict(clips="a.avi"),
        dict(clip_fraction=1.5),
        dict(temporal="yes"),
        dict(temporal=False),  # clips without temporal
    ):
        with pytest.raises(InputError):
            _temporal_config(clean_dir, tmp_path / "c.mkv", **bad)
    with pytest.raises(InputError):
        TrainConfig(temporal=True, pairs_dir=str(tmp_path))
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "t.json").write_text(
        json.dumps(
            {"temporal": True, "clean_dir": "../clean", "clips": [{"path": "../clips/v.avi", "first": 0, "last": 99}]}
        )
    )
    loaded = load_config(tmp_path / "cfg" / "t.json")
    assert loaded.clips[0]["path"] == str((tmp_path / "clips" / "v.avi").resolve())
    assert loaded.clean_dir == str(clean_dir.resolve())


def test_shipped_temporal_config_loads():
    cfg = load_config(Path(__file__).resolve().parents[1] / "train" / "configs" / "temporal_model.json")
    assert cfg.temporal and cfg.arch == "temporal_maskguided" and cfg.clip_fraction == 0.3
    assert [(Path(c["path"]).name, c["first"], c["last"]) for c in cfg.clips] == [("vtest.avi", 0, 599)]
    assert cfg.init_from.endswith("models/default.safetensors") and cfg.crops_per_image == 32


def test_data_plan_splits_clips(clean_dir, clip):
    path, _ = clip
    plan = DataPlan(_temporal_config(clean_dir, path))
    tr, va = plan.train_set(32, 0), plan.valid_set(32)
    assert isinstance(tr, TemporalDataset) and isinstance(va, TemporalDataset) and va.validation
    assert [len(c) for c in tr.clips] == [7] and [len(c) for c in va.clips] == [3]
    assert set(tr.names).isdisjoint(va.names) and len(tr.names) + len(va.names) == 3


def test_tiny_temporal_run_writes_a_model(clean_dir, clip, tmp_path):
    path, _ = clip
    result = train(_temporal_config(clean_dir, path), tmp_path / "run", progress=False)
    assert result["status"] == "finished" and result["step"] == 2
    assert result["best"] is not None and 0.0 < result["best"]["input_ssim"] <= 1.0
    net, spec = load_torch_network(tmp_path / "run" / "model.safetensors")
    assert spec.arch == "temporal_maskguided" and isinstance(net, TemporalMaskGuidedNet)
    with pytest.raises(InputError, match="temporal"):  # a single-frame network cannot train on stacks
        train(_temporal_config(clean_dir, arch="maskguided"), tmp_path / "run2", progress=False, max_steps=1)


def test_init_from_single_frame_model(clean_dir, tmp_path):
    torch.manual_seed(0)
    single = build_network("maskguided", SMALL)
    src = save_model(single, "maskguided", SMALL, tmp_path / "single.safetensors")
    cfg = _temporal_config(clean_dir, init_from=str(src), stages=(Stage(32, 1, 1, 1e-12, freeze_encoder=False),))
    train(cfg, tmp_path / "run", progress=False, max_steps=1)
    net, _, _ = network_from_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    expected = TemporalMaskGuidedNet.from_single(single).state_dict()
    for k, v in net.state_dict().items():
        assert torch.allclose(v, expected[k], atol=1e-6), k  # a near-zero learning rate keeps the start
    x = torch.from_numpy(DataPlan(cfg).train_set(32, 0)[0]["input"].numpy())[None]
    with torch.no_grad():
        a, b = net.eval()(x), single.eval()(x[:, :3])
    assert torch.allclose(a[0], b[0], atol=1e-5) and torch.allclose(a[1], b[1], atol=1e-5)
    wrong = save_model(
        build_network("tinyconv", {"channels": 4, "layers": 2}),
        "tinyconv",
        {"channels": 4, "layers": 2},
        tmp_path / "wrong.safetensors",
    )
    with pytest.raises(InputError, match="tinyconv"):
        train(cfg.replace(init_from=str(wrong)), tmp_path / "run2", progress=False, max_steps=1)


def test_collect_clips_copies_from_the_package(tmp_path):
    from filmclean.train.corpus import _OPENCV_DATA, CLIPS, collect_clips, main

    data = tmp_path / "cache" / "opencv-doc-root" / _OPENCV_DATA
    data.mkdir(parents=True)
    for i, name in enumerate(CLIPS):
        (data / name).write_bytes(bytes([i]) * 100)
    if (Path("/") / _OPENCV_DATA / CLIPS[0]).exists():
        pytest.skip("opencv-doc is installed system-wide: the fake cache would not be used")
    paths = collect_clips(tmp_path / "clips", tmp_path / "cache")
    assert [p.name for p in paths] == list(CLIPS)
    assert (tmp_path / "clips" / "tree.avi").read_bytes() == bytes([1]) * 100
    assert not list((tmp_path / "clips").glob("*.partial"))
    assert main(["--clips", str(tmp_path / "again"), "--cache", str(tmp_path / "cache")]) == 0
    assert (tmp_path / "again" / "vtest.avi").is_file()
