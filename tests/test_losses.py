"""Training losses: hand-checked values (numpy), zero at identity, gradients, calling convention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from filmclean.nets.vgg16 import VGG16Features
from filmclean.train.losses import (
    MODEL1_WEIGHTS,
    MODEL2_WEIGHTS,
    PerceptualLoss,
    build_loss,
    gram_matrix,
)

MEAN = np.array([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)


class Identity5(nn.Module):
    """A feature extractor whose five "layers" are the image itself (makes every term hand-checkable)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))  # so that freezing has something to freeze

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x + 0 * self.dummy] * 5


# --- numpy references -------------------------------------------------------------------------------


def np_gram(f: np.ndarray) -> np.ndarray:
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    return np.einsum("ncl,ndl->ncd", flat, flat) / (c * h * w)


def np_ssim_map(a: np.ndarray, b: np.ndarray, window: int = 5, sigma: float = 1.5) -> np.ndarray:
    """SSIM (Wang et al. 2004) with a Gaussian window, reflect padding, C1 = 0.01^2, C2 = 0.03^2."""
    x = np.arange(window) - window // 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    g /= g.sum()
    r = window // 2

    def blur(img: np.ndarray) -> np.ndarray:
        p = np.pad(img, ((0, 0), (0, 0), (r, r), (r, r)), mode="reflect")
        rows = sum(g[i] * p[:, :, i : i + img.shape[2], :] for i in range(window))
        return sum(g[j] * rows[:, :, :, j : j + img.shape[3]] for j in range(window))

    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = blur(a), blur(b)
    s_aa = blur(a * a) - mu_a**2
    s_bb = blur(b * b) - mu_b**2
    s_ab = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2) + 1e-12)


def _pair(seed: int, shape=(2, 3, 8, 10)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64).float(), torch.rand(
        shape, generator=g, dtype=torch.float64
    ).float()


# --- hand-checked values ----------------------------------------------------------------------------


def test_gram_matrix_by_hand():
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, C=2, H=1, W=2)
    # F F^T = [[1+4, 3+8], [3+8, 9+16]] / (C*H*W = 4)
    assert torch.allclose(gram_matrix(f), torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4)


def test_mse_by_hand():
    p, t = _pair(0)
    total, terms = build_loss("mse")(p, {"input": t, "target": t})
    ref = np.mean(((p.numpy() - t.numpy()) / STD) ** 2)
    assert abs(float(total) - ref) < 1e-5 * ref and abs(terms["mse"] - ref) < 1e-5 * ref
    total_rgb, _ = build_loss("mse", imagenet_space=False)(p, {"input": t, "target": t})
    assert abs(float(total_rgb) - np.mean((p.numpy() - t.numpy()) ** 2)) < 1e-6


@pytest.mark.parametrize("name,weights", [("model1", MODEL1_WEIGHTS), ("model2", MODEL2_WEIGHTS)])
def test_model1_model2_by_hand(name, weights):
    p, t = _pair(1)
    loss = build_loss(name, vgg=Identity5())
    total, terms = loss(p, {"input": t, "target": t})
    P, T = p.numpy().astype(np.float64), t.numpy().astype(np.float64)
    pixel = np.mean(np.abs((P - T) / STD))
    feat = np.mean(np.abs(P - T))
    gram = np.mean(np.abs(np_gram(P) - np_gram(T)))
    ref = pixel + sum(w * feat for w in weights) + sum(5e3 * w * w * gram for w in weights)
    assert abs(float(total) - ref) < 1e-4 * ref
    assert (
        abs(terms["pixel"] - pixel) < 1e-6 and abs(terms["feat_2"] - feat) < 1e-6 and abs(terms["gram_4"] - gram) < 1e-7
    )
    assert set(terms) == {"pixel", *(f"feat_{i}" for i in range(5)), *(f"gram_{i}" for i in range(5))}


def test_model3_by_hand():
    p, t = _pair(2, shape=(2, 3, 9, 11))
    loss = build_loss("model3", vgg=Identity5())
    total, terms = loss(p, {"input": t, "target": t})
    P, T = p.numpy().astype(np.float64), t.numpy().astype(np.float64)
    Pn, Tn = (P - MEAN) / STD, (T - MEAN) / STD
    pixel_ssim = 1 - np_ssim_map(Pn, Tn).mean()
    pixel = np.mean(np.abs(Pn - Tn))
    feat = 1 - np_ssim_map(P, T).mean()
    gram = np.mean(np.abs(np_gram(P) - np_gram(T)))
    w = MODEL2_WEIGHTS
    ref = pixel_ssim + pixel + sum(wi * feat for wi in w) + sum(5e3 * wi * wi * gram for wi in w)
    assert abs(terms["pixel_ssim"] - pixel_ssim) < 1e-5
    assert abs(terms["feat_0"] - feat) < 1e-5
    assert abs(terms["pixel"] - pixel) < 1e-6
    assert abs(float(total) - ref) < 1e-4 * ref


def test_model3_constant_images_closed_form():
    """Constant images: SSIM = (2ab + C1) / (a^2 + b^2 + C1) exactly; Gram = a_c a_d / C."""
    a = torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1).expand(1, 3, 6, 6).contiguous()
    b = torch.tensor([0.3, 0.5, 0.6]).view(1, 3, 1, 1).expand(1, 3, 6, 6).contiguous()
    total, terms = build_loss("model3", vgg=Identity5())(a, {"input": b, "target": b})
    av, bv = np.array([0.2, 0.5, 0.9]), np.array([0.3, 0.5, 0.6])
    an, bn = (av - MEAN.ravel()) / STD.ravel(), (bv - MEAN.ravel()) / STD.ravel()
    c1 = 1e-4
    ssim = lambda x, y: np.mean((2 * x * y + c1) / (x * x + y * y + c1))  # noqa: E731
    pixel_ssim, feat = 1 - ssim(an, bn), 1 - ssim(av, bv)
    pixel = np.mean(np.abs(an - bn))
    gram = np.mean(np.abs(np.outer(av, av) - np.outer(bv, bv))) / 3
    ref = pixel_ssim + pixel + sum(w * feat for w in MODEL2_WEIGHTS) + sum(5e3 * w * w * gram for w in MODEL2_WEIGHTS)
    # float32 leaves ~1e-7 of spurious local variance in the blurred constants (vs C2 = 9e-4)
    assert abs(terms["pixel_ssim"] - pixel_ssim) < 3e-4 and abs(terms["feat_3"] - feat) < 3e-4
    assert abs(terms["gram_0"] - gram) < 1e-6
    assert abs(float(total) - ref) < 1e-3 * ref


# --- behaviour with the real VGG-16 architecture (random weights) -----------------------------------


@pytest.fixture(scope="module")
def vgg() -> VGG16Features:
    torch.manual_seed(0)
    return VGG16Features()


@pytest.mark.parametrize("name", ["mse", "model1", "model2", "model3"])
def test_zero_for_identical_and_gradients_flow(name, vgg):
    kw = {} if name == "mse" else {"vgg": vgg}
    loss = build_loss(name, **kw)
    loss.train()
    if name != "mse":
        assert not loss.vgg.training and not any(p.requires_grad for p in loss.vgg.parameters())
    g = torch.Generator().manual_seed(5)
    t = torch.rand(2, 3, 32, 32, generator=g)
    same, terms = loss(t.clone(), {"input": t, "target": t})
    if name == "model3":
        # SSIM(x, x) = 1 up to kornia's eps: den + 1e-12 with den = C1 * C2 = 9e-8 in all-zero ReLU regions
        assert 0.0 <= float(same) < 1e-3
        assert terms["pixel_ssim"] < 1e-6 and terms["gram_2"] == 0.0
    else:
        assert float(same) == 0.0
    assert all(np.isfinite(v) for v in terms.values())
    pred = torch.rand(2, 3, 32, 32, generator=g).requires_grad_(True)
    total, _ = loss(pred, {"input": t, "target": t})
    assert float(total.detach()) > 0
    total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and float(pred.grad.abs().sum()) > 0
    if name != "mse":
        assert all(p.grad is None for p in loss.vgg.parameters())


def test_mask_network_output_is_composited_and_mask_term():
    p, t = _pair(3)
    x = torch.rand_like(t)
    m = torch.rand(2, 1, 8, 10)
    total, terms = build_loss("mse", imagenet_space=False)((p, m), {"input": x, "target": t})
    comp = x + m * (p - x)
    assert abs(float(total) - float(((comp - t) ** 2).mean())) < 1e-6
    true = (torch.rand(2, 1, 8, 10) > 0.5).float()
    loss = build_loss("model2", vgg=Identity5(), mask_weight=2.0)
    total2, terms2 = loss((p, m), {"input": x, "target": t, "mask": true})
    bce = float(torch.nn.functional.binary_cross_entropy(m, true))
    assert abs(terms2["mask_bce"] - bce) < 1e-5
    base, _ = build_loss("model2", vgg=Identity5())((p, m), {"input": x, "target": t})
    assert abs(float(total2) - (float(base) + 2.0 * bce)) < 1e-3


def test_factory_errors_and_options(vgg):
    with pytest.raises(KeyError):
        build_loss("perceptual")
    with pytest.raises(TypeError):
        build_loss("mse", layer_weights=(1, 2, 3, 4, 5))
    custom = build_loss("model2", vgg=Identity5(), layer_weights=(1, 0, 0, 0, 0), gram_scale=1.0)
    assert isinstance(custom, PerceptualLoss) and custom.layer_weights == (1.0, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="layer weights"):
        PerceptualLoss(vgg, (1.0, 2.0))(
            torch.rand(1, 3, 16, 16), {"input": torch.rand(1, 3, 16, 16), "target": torch.rand(1, 3, 16, 16)}
        )
