"""Hostile model files: an unrelated .onnx beside (or cached for) a .safetensors is never run in its
place, and a stored config declaring a network larger than the file's tensors is refused before
anything is allocated (one-line ModelError naming the file, no traceback)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SMALL, run_cli

from filmclean.errors import ModelError
from filmclean.model import _onnx_cache_for, load_model
from filmclean.modelfile import load_torch_network, read_spec, save_model, sha256_file
from filmclean.nets import build_network
from filmclean.onnx_export import export_onnx


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Exports made by load_model go to a cache under tmp_path, never the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def _tinyconv(path: Path, seed: int) -> Path:
    config = {"channels": 6, "layers": 3, "seed": seed}
    return save_model(build_network("tinyconv", config), "tinyconv", config, path)


def _batch() -> np.ndarray:
    return torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(7)).numpy()


def _torch_output(path: Path, x: np.ndarray) -> np.ndarray:
    net, _ = load_torch_network(path)
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def _cache_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "xdg").rglob("*.onnx"))


def _set_config(src: Path, dst: Path, config_text: str) -> Path:
    """Copy the model ``src`` to ``dst`` with its stored ``filmclean.config`` replaced."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    meta["filmclean.config"] = config_text
    save_file(load_file(str(src)), str(dst), metadata=meta)
    return dst


def _one_line(excinfo: pytest.ExceptionInfo, path: Path, *words: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and str(path) in message, message
    for word in words:
        assert word.lower() in message.lower(), message
    return message


# --------------------------------------------------------------------------- the wrong model


def test_unrelated_onnx_beside_the_safetensors_is_not_run(tmp_path):
    d = tmp_path / "models"
    mine = _tinyconv(d / "mine.safetensors", seed=1)
    other = _tinyconv(tmp_path / "other" / "other.safetensors", seed=2)
    export_onnx(other, d / "mine.onnx", check=False)  # same name stem, same architecture, other weights
    assert read_spec(d / "mine.onnx").arch == read_spec(mine).arch

    x = _batch()
    want, foreign = _torch_output(mine, x), _torch_output(other, x)
    assert np.abs(want - foreign).max() > 1e-2  # the two models really differ
    got, _ = load_model(mine, backend="auto", device="cpu")(x)
    assert np.abs(got - want).max() < 1e-4, "ran the unrelated mine.onnx instead of mine.safetensors"
    assert len(_cache_files(tmp_path)) == 1  # exported afresh into the cache


def test_export_without_a_recorded_source_is_not_trusted(tmp_path):
    """An .onnx of the same model made before checksums were recorded is not used either (nothing
    proves where it came from); the model is exported to the cache instead."""
    import onnx

    mine = _tinyconv(tmp_path / "mine.safetensors", seed=1)
    export_onnx(mine, tmp_path / "mine.onnx", check=False)
    model = onnx.load(str(tmp_path / "mine.onnx"))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != "filmclean.source_sha256"]
    del model.metadata_props[:]
    for key, value in kept:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(tmp_path / "mine.onnx"))
    assert read_spec(tmp_path / "mine.onnx").source_sha256 is None

    load_model(mine, backend="auto", device="cpu")
    assert len(_cache_files(tmp_path)) == 1


def test_genuine_export_beside_the_safetensors_is_used(tmp_path):
    mine = _tinyconv(tmp_path / "mine.safetensors", seed=1)
    export_onnx(mine, tmp_path / "mine.onnx", check=False)
    assert read_spec(tmp_path / "mine.onnx").source_sha256 == sha256_file(mine)
    x = _batch()
    got, _ = load_model(mine, backend="auto", device="cpu")(x)
    assert np.abs(got - _torch_output(mine, x)).max() < 1e-4
    assert _cache_files(tmp_path) == []  # the sibling was used: nothing exported


def test_stale_or_foreign_cache_entry_is_replaced(tmp_path):
    mine = _tinyconv(tmp_path / "mine.safetensors", seed=1)
    other = _tinyconv(tmp_path / "other.safetensors", seed=2)
    cached = _onnx_cache_for(mine, sha256_file(mine))
    export_onnx(other, cached, check=False)  # something else sits where mine's export belongs
    x = _batch()
    got, _ = load_model(mine, backend="onnx", device="cpu")(x)
    assert np.abs(got - _torch_output(mine, x)).max() < 1e-4
    assert read_spec(cached).source_sha256 == sha256_file(mine)
    # the now genuine cache entry is reused as it is
    before = cached.stat().st_mtime_ns
    load_model(mine, backend="onnx", device="cpu")
    assert cached.stat().st_mtime_ns == before


def test_export_from_training_checkpoint_records_its_source(tmp_path):
    """Exports record the checksum of the file the weights came from, whatever kind it is."""
    mine = _tinyconv(tmp_path / "mine.safetensors", seed=1)
    export_onnx(mine, tmp_path / "a.onnx", check=False)
    meta = read_spec(tmp_path / "a.onnx")
    assert meta.source_sha256 == sha256_file(mine) and len(meta.source_sha256) == 64


# --------------------------------------------------------------------------- hostile configs


def _small_maskguided(path: Path) -> Path:
    torch.manual_seed(0)
    return save_model(build_network("maskguided", SMALL), "maskguided", SMALL, path)


def test_config_with_huge_layer_widths_is_refused_without_allocating(tmp_path):
    good = _small_maskguided(tmp_path / "good.safetensors")
    bad = _set_config(good, tmp_path / "huge.safetensors", json.dumps({**SMALL, "widths": [96000, 96000, 96000]}))
    start = time.perf_counter()
    with pytest.raises(ModelError) as e:
        load_torch_network(bad)
    _one_line(e, bad, "do not fit", "maskguided")
    for backend in ("torch", "onnx", "auto"):
        with pytest.raises(ModelError) as e:
            load_model(bad, backend=backend, device="cpu")
        _one_line(e, bad)
    assert time.perf_counter() - start < 30
    assert _cache_files(tmp_path) == []
    net, _ = load_torch_network(good)  # the file's own config still loads
    assert net.widths == (8, 8, 8)


def test_config_describing_a_million_blocks_is_stopped_early(tmp_path):
    good = _small_maskguided(tmp_path / "good.safetensors")
    bad = _set_config(good, tmp_path / "long.safetensors", json.dumps({**SMALL, "dilations": [1] * 100_000}))
    start = time.perf_counter()
    with pytest.raises(ModelError) as e:
        load_torch_network(bad)
    _one_line(e, bad, "larger than")
    assert time.perf_counter() - start < 20  # building 100000 blocks takes minutes, even on the meta device


@pytest.mark.parametrize(
    "config_text,words",
    [
        ('{"widths": [-8, 8, 8], "dilations": [1], "tophat": [5]}', ["cannot build"]),
        ('{"widths": [1e400, 8, 8], "dilations": [1], "tophat": [5]}', ["cannot build"]),
        ('{"widths": [8, 8, 8], "bogus": 1}', ["cannot build"]),
        ('{"widths": [8, 8, 16], "dilations": [1], "tophat": [5]}', ["do not fit"]),
        ("[8, 8, 8]", ["not valid"]),
        ("[" * 100_000 + "]" * 100_000, ["not valid"]),
        ("{nonsense", ["not valid"]),
    ],
    ids=["negative", "infinite", "unknown-key", "wrong-width", "not-object", "deeply-nested", "not-json"],
)
def test_bad_stored_configs_are_one_line_errors(tmp_path, config_text, words):
    good = _small_maskguided(tmp_path / "good.safetensors")
    bad = _set_config(good, tmp_path / "bad.safetensors", config_text)
    with pytest.raises(ModelError) as e:
        load_torch_network(bad)
    _one_line(e, bad, *words)


def test_hostile_config_through_the_cli(tmp_path, capsys):
    from media import make_png

    good = _small_maskguided(tmp_path / "good.safetensors")
    bad = _set_config(good, tmp_path / "huge.safetensors", json.dumps({**SMALL, "widths": [96000, 96000, 96000]}))
    seq = tmp_path / "in"
    seq.mkdir()
    make_png(seq / "f.png", np.zeros((48, 64, 3), np.uint8))
    for backend in ("auto", "torch"):
        code, _, err = run_cli(
            ["frames", seq, "-o", tmp_path / f"out_{backend}", "--model", bad, "--backend", backend, "-q"], capsys
        )
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert "huge.safetensors" in lines[0]


def test_onnx_with_hostile_engine_metadata_is_refused(tmp_path):
    import onnx

    mine = _tinyconv(tmp_path / "mine.safetensors", seed=1)
    path = tmp_path / "mine.onnx"
    export_onnx(mine, path, check=False)
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "filmclean.size_multiple":
            prop.value = json.dumps("eight")
        if prop.key == "filmclean.receptive_radius":
            prop.value = json.dumps(-3)
    onnx.save(model, str(path))
    with pytest.raises(ModelError) as e:
        load_model(path, device="cpu")
    _one_line(e, path, "size_multiple", "receptive_radius")
