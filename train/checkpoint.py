"""Training checkpoints: the run directory's file names, checkpoint write/read, global RNG state.

A checkpoint (``checkpoint.safetensors``) holds everything needed to continue a run -- tensors
``model.<key>`` (the network's state dict) and ``optim.<param index>.<name>`` (AdamW state),
metadata ``filmclean.train_state`` (JSON: position, step, optimizer hyper-parameters, scheduler and
grad-scaler state, Python / NumPy / torch RNG states, best metric) and ``filmclean.train_config``
(the config JSON). Nothing is pickled. ``state.json`` repeats the train state as readable JSON.

Every file is written atomically: under a hidden partial name (:func:`filmclean.io.partial_path`),
then renamed into place, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from filmclean.errors import FilmcleanError, ModelError, OutputError
from filmclean.modelfile import (
    CHECKPOINT_FORMAT,
    META_CHECKPOINT_FORMAT,
    META_TRAIN_ARCH,
    META_TRAIN_ARCH_CONFIG,
    checkpoint_network,
)

from .config import TrainConfig

CHECKPOINT_NAME = "checkpoint.safetensors"
STATE_NAME = "state.json"
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
MODEL_NAME = "model.safetensors"
META_STATE = "filmclean.train_state"
META_CONFIG = "filmclean.train_config"
META_FORMAT = META_CHECKPOINT_FORMAT
META_ARCH = META_TRAIN_ARCH
META_ARCH_CONFIG = META_TRAIN_ARCH_CONFIG

#: what :func:`read_checkpoint` returns: ``(tensors, train state, config)``
Checkpoint = tuple[dict[str, torch.Tensor], dict[str, Any], TrainConfig]


# -- RNG state ------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's legacy global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _b64(state: torch.Tensor) -> str:
    return base64.b64encode(state.numpy().tobytes()).decode("ascii")


def _unb64(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def capture_rng(device: torch.device) -> dict[str, Any]:
    """The global RNG states as JSON values (torch states base64-encoded)."""
    py = random.getstate()
    npst = np.random.get_state()
    out: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [npst[0], npst[1].tolist(), int(npst[2]), int(npst[3]), float(npst[4])],
        "torch": _b64(torch.get_rng_state()),
    }
    if device.type == "cuda":
        out["cuda"] = _b64(torch.cuda.get_rng_state(device))
    return out


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    nps = state["numpy"]
    np.random.set_state((nps[0], np.asarray(nps[1], dtype=np.uint32), nps[2], nps[3], nps[4]))
    torch.set_rng_state(_unb64(state["torch"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(_unb64(state["cuda"]), device)


# -- files ------------------------------------------------------------------------------------------


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`filmclean.io.write_bytes_atomically`)."""
    from filmclean.io import write_bytes_atomically

    write_bytes_atomically(path, text.encode("utf-8"))


def truncate_lines(path: Path, keep: int) -> None:
    """Keep the first ``keep`` lines of the text file ``path`` (if it exists and has more)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    if len(lines) > keep:
        write_text_atomically(path, "".join(lines[:keep]))


def jsonable(value: Any) -> Any:
    """Optimizer / scheduler / scaler state values as JSON (tuples become lists)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError("only scalar tensors can be stored as JSON")
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint without pickling")


def _optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``opt.state_dict()`` into tensors (``optim.<idx>.<name>``) and JSON (groups, scalars)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = jsonable(value)
    groups = [jsonable(g) for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def groups_from_json(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Optimizer parameter groups as stored (JSON) back as ``torch.optim`` wants them (tuple betas)."""
    out = []
    for g in groups:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        out.append(g)
    return out


def optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """The ``state_dict`` of the optimizer stored in a checkpoint's ``tensors`` and train state
    ``meta`` (its ``optimizer`` entry); inverse of the split :func:`write_checkpoint` makes."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, values in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    return {"state": state, "param_groups": groups_from_json(meta["param_groups"])}


def _save_safetensors_atomically(tensors: dict[str, torch.Tensor], meta: dict[str, str], path: Path) -> None:
    """``safetensors.torch.save_file`` to ``path`` via :func:`filmclean.io.partial_path` and
    :func:`filmclean.io.replace_file` (it writes to a path itself; a checkpoint is too large to be
    held as bytes too). The partial file is removed whatever happens; raises :class:`OutputError`."""
    from safetensors.torch import save_file

    from filmclean.io import error_reason, partial_path, replace_file

    tmp = partial_path(path)
    try:
        save_file(tensors, str(tmp), metadata=meta)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write checkpoint: {error_reason(exc)}", path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    replace_file(tmp, path)


def write_checkpoint(
    run_dir: Path, net: nn.Module, opt: torch.optim.Optimizer, state: dict[str, Any], config: TrainConfig
) -> None:
    """Write ``checkpoint.safetensors`` then ``state.json`` (each atomically)."""
    tensors = {f"model.{k}": v.detach().cpu().clone().contiguous() for k, v in net.state_dict().items()}
    opt_tensors, opt_meta = _optimizer_to_flat(opt)
    tensors.update(opt_tensors)
    state = dict(state, optimizer=opt_meta)
    meta = {
        META_FORMAT: CHECKPOINT_FORMAT,
        META_STATE: json.dumps(state, sort_keys=True),
        META_CONFIG: config.to_json(),
        META_ARCH: config.arch,
        META_ARCH_CONFIG: json.dumps(config.arch_config, sort_keys=True),
    }
    _save_safetensors_atomically(tensors, meta, run_dir / CHECKPOINT_NAME)
    state_json = json.dumps(dict(state, checkpoint=CHECKPOINT_NAME), indent=1, sort_keys=True) + "\n"
    write_text_atomically(run_dir / STATE_NAME, state_json)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """``(tensors, train_state, config)`` of a training checkpoint (raises :class:`ModelError`)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelError("training checkpoint not found", path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get(META_FORMAT) != CHECKPOINT_FORMAT:
            raise ModelError("not a filmclean training checkpoint", path)
        state = json.loads(meta[META_STATE])
        config = TrainConfig.from_json(meta[META_CONFIG])
        tensors = load_file(str(path))
    except FilmcleanError as exc:
        raise ModelError(str(exc), path) from None
    except Exception as exc:
        raise ModelError(f"unreadable training checkpoint ({type(exc).__name__}: {exc})", path) from None
    return tensors, state, config


def network_from_checkpoint(path: str | Path) -> tuple[nn.Module, str, dict[str, Any]]:
    """Rebuild the network stored in a training checkpoint: ``(net in eval mode on CPU, arch, config)``
    (:func:`filmclean.modelfile.checkpoint_network`)."""
    return checkpoint_network(path)


__all__ = [
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "METRICS_NAME",
    "MODEL_NAME",
    "STATE_NAME",
    "Checkpoint",
    "capture_rng",
    "groups_from_json",
    "jsonable",
    "network_from_checkpoint",
    "optimizer_state",
    "read_checkpoint",
    "restore_rng",
    "seed_everything",
    "truncate_lines",
    "write_checkpoint",
    "write_text_atomically",
]
