"""ONNX export: parity with PyTorch, dynamic axes, metadata, fp16, sources, CLI, errors."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from filmclean.errors import ModelError
from filmclean.modelfile import read_spec, save_model
from filmclean.nets import build_network


def _model(tmp_path, arch: str, config: dict, info: dict | None = None):
    torch.manual_seed(0)
    net = build_network(arch, config).eval()
    return net, save_model(net, arch, config, tmp_path / f"{arch}.safetensors", info=info or {"note": "test"})


def _ort_run(path, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"]
    return sess.run(None, {"input": x})


@pytest.mark.parametrize(
    "arch,config",
    [("tinyconv", {"seed": 3}), ("tinymask", {"seed": 4}), ("tinyconv", {"seed": 5, "size_multiple": 8})],
)
def test_export_parity_metadata_and_dynamic_axes(tmp_path, arch, config):
    import onnx

    from filmclean.onnx_export import export_onnx

    net, src = _model(tmp_path, arch, config, info={"note": "test", "metric": 0.5})
    out = tmp_path / "m.onnx"
    report = export_onnx(src, out)
    assert report["max_abs_diff"] < 1e-3 and report["providers"] == ["CPUExecutionProvider"]
    shape = report["test_shape"]
    assert (
        shape[0] == 2
        and shape[2] != shape[3]
        and shape[2] % net.size_multiple == 0
        and shape[3] % net.size_multiple == 0
    )
    assert report["outputs"] == (["image", "mask"] if net.has_mask else ["image"])

    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["filmclean.arch"] == arch
    assert json.loads(meta["filmclean.config"]) == config
    assert json.loads(meta["filmclean.info"]) == {"note": "test", "metric": 0.5}
    assert json.loads(meta["filmclean.size_multiple"]) == net.size_multiple
    assert json.loads(meta["filmclean.receptive_radius"]) == net.receptive_radius
    assert json.loads(meta["filmclean.has_mask"]) is net.has_mask
    spec = read_spec(out)
    assert spec.format == "onnx" and spec.arch == arch and spec.info["has_mask"] is net.has_mask

    # another batch size and shape than the report's: the axes are dynamic
    m = net.size_multiple
    x = torch.rand(3, 3, 3 * m if m > 1 else 17, 5 * m if m > 1 else 29, generator=torch.Generator().manual_seed(2))
    got = _ort_run(out, x.numpy())
    with torch.no_grad():
        ref = net(x)
    refs = ref if isinstance(ref, tuple) else (ref,)
    assert len(got) == len(refs)
    for g, r in zip(got, refs, strict=True):
        assert g.shape == tuple(r.shape) and np.abs(g - r.numpy()).max() < 1e-3


def test_export_fp16_keeps_float32_io(tmp_path):
    from filmclean.onnx_export import TOLERANCE_FP16, export_onnx

    net, src = _model(tmp_path, "tinymask", {"seed": 6})
    out = tmp_path / "h.onnx"
    report = export_onnx(src, out, fp16=True, opset=17)
    assert report["fp16"] and report["max_abs_diff"] < TOLERANCE_FP16
    x = torch.rand(1, 3, 24, 40).numpy()
    image, mask = _ort_run(out, x)
    assert image.dtype == np.float32 and mask.dtype == np.float32 and mask.shape == (1, 1, 24, 40)
    assert report["bytes"] < export_onnx(src, tmp_path / "f.onnx", check=False)["bytes"]


def test_export_from_training_run_and_errors(tmp_path, monkeypatch):
    # a tiny run: export its folder (model.safetensors) and its training checkpoint
    import cv2

    import filmclean.onnx_export as ox
    from filmclean.onnx_export import export_onnx
    from filmclean.train.config import Stage, TrainConfig
    from filmclean.train.loop import train

    pairs = tmp_path / "pairs"
    rng = np.random.default_rng(0)
    names = [f"n{i}" for i in range(6)]
    for sub in ("clean", "damaged", "mask"):
        (pairs / "16" / sub).mkdir(parents=True)
    for name in names:
        clean = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
        mask = (rng.random((16, 16)) < 0.1).astype(np.uint8) * 255
        cv2.imwrite(str(pairs / "16" / "clean" / f"{name}.png"), clean)
        cv2.imwrite(
            str(pairs / "16" / "damaged" / f"{name}.png"), np.where(mask[..., None] > 0, 0, clean).astype(np.uint8)
        )
        cv2.imwrite(str(pairs / "16" / "mask" / f"{name}.png"), mask)
    (pairs / "manifest.json").write_text(json.dumps({"splits": {"train": names[:4], "valid": names[4:]}}))

    def mse(out, batch):
        restored, mask = out
        total = ((restored - batch["target"]) ** 2).mean() + ((mask - batch["mask"]) ** 2).mean()
        return total, {"mse": float(total.detach())}

    class Loss(torch.nn.Module):
        forward = staticmethod(mse)

    cfg = TrainConfig(
        arch="tinymask", arch_config={"seed": 1}, loss="mse", pairs_dir=str(pairs), stages=(Stage(16, 1, 2, 1e-2),)
    )
    train(cfg, tmp_path / "run", progress=False, loss=Loss())
    r1 = export_onnx(tmp_path / "run", tmp_path / "a.onnx")
    r2 = export_onnx(tmp_path / "run" / "checkpoint.safetensors", tmp_path / "b.onnx")
    assert r1["max_abs_diff"] < 1e-3 and r2["max_abs_diff"] < 1e-3
    assert read_spec(tmp_path / "b.onnx").arch == "tinymask"

    # not a model; a failed parity check writes nothing
    (tmp_path / "x.safetensors").write_bytes(b"nonsense")
    with pytest.raises(ModelError, match="x.safetensors"):
        export_onnx(tmp_path / "x.safetensors", tmp_path / "x.onnx")
    monkeypatch.setattr(ox, "TOLERANCE_FP32", -1.0)
    _, src = _model(tmp_path, "tinyconv", {"seed": 1, "channels": 16})
    with pytest.raises(ModelError, match="differs from PyTorch"):
        export_onnx(src, tmp_path / "strict.onnx")
    assert not (tmp_path / "strict.onnx").exists() and not (tmp_path / "strict.onnx.partial").exists()


def test_export_cli(tmp_path):
    from filmclean.train.cli_train import export_onnx_command

    _, src = _model(tmp_path, "tinyconv", {"seed": 2})
    res = CliRunner().invoke(export_onnx_command, [str(src), "-o", str(tmp_path / "c.onnx"), "--opset", "17"])
    assert res.exit_code == 0, res.output
    assert "max |ONNX - PyTorch|" in res.output and (tmp_path / "c.onnx").is_file()
    res = CliRunner().invoke(export_onnx_command, [str(src), "-o", str(tmp_path / "h.onnx"), "--fp16", "--no-check"])
    assert res.exit_code == 0 and "fp16" in res.output


@pytest.mark.skipif(importlib.util.find_spec("filmclean.nets.paper_unet") is None, reason="paper_unet not available")
def test_export_paper_unet(tmp_path):
    from filmclean.onnx_export import export_onnx

    _, src = _model(tmp_path, "paper_unet", {})
    report = export_onnx(src, tmp_path / "p.onnx")
    assert report["max_abs_diff"] < 1e-3 and report["outputs"] == ["image"]
    assert read_spec(tmp_path / "p.onnx").arch == "paper_unet"
