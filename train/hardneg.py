"""Mine a detector's false detections on clean training photographs ("hard negatives").

A detector that flags a bright pillar as a light scratch needs to meet such pillars, undamaged,
far more often than random crops show them. :func:`mine_false_detections` runs a mask-predicting
network over the clean photographs of a run's training split, at a few zooms, and returns where it
detects damage that is not there. A run given the result (``hard_crops`` in its config, with
``p_hard`` the share of crops) centres that share of its training crops on those places
(:class:`filmclean.train.data.OnTheFlyDataset`); the crops are damaged as usual, so the same
structure is seen both clean and next to real damage.

Only training photographs are mined: validation and test images stay unseen.

File format (JSON)::

    {"model": "...", "threshold": 0.5, "zooms": [0.35, 0.6, 1.0],
     "points": {"<photo name>": [[u, v, zoom, weight], ...]}}

``u``, ``v`` are the centre of a false detection as a fraction of the photo's width and height,
``zoom`` the scale it was found at, ``weight`` its area in pixels times its highest probability.

Command line::

    python -m filmclean.train.hardneg runs/X/checkpoint.safetensors train/configs/X.json -o hard.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from filmclean.errors import FilmcleanError, InputError

__all__ = ["false_detections", "load_hard_points", "mine_false_detections"]


def false_detections(prob: np.ndarray, threshold: float, top: int) -> list[tuple[float, float, float]]:
    """Connected regions of ``prob >= threshold`` in an ``(H, W)`` probability map of a clean
    picture: up to ``top`` of them, largest ``area * max probability`` first, as ``(u, v, weight)``
    with ``u``, ``v`` the region's centroid as fractions of the width and height."""
    h, w = prob.shape
    flagged = (prob >= threshold).astype(np.uint8)
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(flagged, connectivity=8)
    if n <= 1:
        return []
    peak = np.zeros(n, np.float64)
    np.maximum.at(peak, labels.ravel(), prob.ravel().astype(np.float64))
    found = [
        ((centroids[i, 0] + 0.5) / w, (centroids[i, 1] + 0.5) / h, float(stats[i, cv2.CC_STAT_AREA] * peak[i]))
        for i in range(1, n)
    ]
    found.sort(key=lambda t: -t[2])
    return [(float(u), float(v), wt) for u, v, wt in found[:top]]


def _probability(net: torch.nn.Module, img: np.ndarray) -> np.ndarray:
    """The network's damage probability ``(H, W)`` for an ``(H, W, 3)`` float32 picture."""
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].float()
    h, w = x.shape[-2:]
    m = int(getattr(net, "size_multiple", 8))
    x = F.pad(x, (0, (-w) % m, 0, (-h) % m), mode="replicate")
    with torch.no_grad():
        out = net(x)
    if not isinstance(out, (tuple, list)) or len(out) < 2:
        raise InputError("hard-negative mining needs a mask-predicting network")
    return out[1][0, 0, :h, :w].float().numpy()


def mine_false_detections(
    net: torch.nn.Module,
    photos: dict[str, np.ndarray],
    zooms: Sequence[float] = (0.35, 0.6, 1.0),
    threshold: float = 0.5,
    top: int = 32,
    max_side: int = 2600,
) -> dict[str, list[list[float]]]:
    """False detections of ``net`` (eval mode) on clean ``photos`` (name -> ``(H, W, 3)`` float32
    in [0, 1]), each photo resized by every zoom (at most ``max_side`` px on its long side, never
    enlarged); per photo a list of ``[u, v, zoom, weight]`` (see :func:`false_detections`)."""
    points: dict[str, list[list[float]]] = {}
    for name, photo in photos.items():
        found: list[list[float]] = []
        h, w = photo.shape[:2]
        for zoom in zooms:
            z = min(float(zoom), 1.0, max_side / max(h, w))
            size = (max(8, round(w * z)), max(8, round(h * z)))
            img = photo if size == (w, h) else cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
            for u, v, weight in false_detections(_probability(net, img), threshold, top):
                found.append([round(u, 5), round(v, 5), round(z, 4), round(weight, 3)])
        points[name] = found
    return points


def load_hard_points(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """Read a mining file: photo name -> list of ``(u, v)`` centres. Raises :class:`InputError`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        points = data["points"]
        out = {str(name): [(float(p[0]), float(p[1])) for p in pts] for name, pts in points.items()}
    except FileNotFoundError:
        raise InputError("hard-negative file not found", path) from None
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise InputError(f"not a hard-negative file ({type(exc).__name__}: {exc})", path) from None
    for name, pts in out.items():
        if any(not (0.0 <= u <= 1.0 and 0.0 <= v <= 1.0) for u, v in pts):
            raise InputError(f"hard-negative points of {name!r} lie outside the photo", path)
    return out


def _main(argv: Sequence[str] | None = None) -> int:
    from filmclean.modelfile import checkpoint_network, is_training_checkpoint, load_torch_network

    from .config import load_config
    from .data import clean_image_paths, read_image
    from .sampling import DataPlan

    ap = argparse.ArgumentParser(prog="python -m filmclean.train.hardneg", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="training checkpoint or filmclean .safetensors model")
    ap.add_argument("config", help="training config whose training photographs are mined")
    ap.add_argument("-o", "--output", required=True, help="JSON file to write")
    ap.add_argument("--zooms", default="0.35,0.6,1.0", help="scales the photos are searched at")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--top", type=int, default=32, help="most false detections kept per photo and zoom")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        zooms = [float(z) for z in args.zooms.split(",") if z.strip()]
        if not zooms or any(not 0 < z <= 1 for z in zooms):
            raise InputError(f"--zooms must be numbers in (0, 1], got {args.zooms!r}")
        loaded = (
            checkpoint_network(args.model) if is_training_checkpoint(args.model) else load_torch_network(args.model)
        )
        net = loaded[0].eval()
        config = load_config(args.config)
        if config.clean_dir is None:
            raise InputError("the config has no clean_dir to mine", args.config)
        plan = DataPlan(config)
        paths = clean_image_paths(config.clean_dir)
        points: dict[str, Any] = {}
        for name in plan.train_names:
            found = mine_false_detections(net, {name: read_image(paths[name])}, zooms, args.threshold, args.top)
            points.update(found)
            print(f"{name}: {len(found[name])} false detections", file=sys.stderr)
        out = Path(args.output)
        tmp = out.with_name(out.name + ".part")
        doc = {"model": str(args.model), "threshold": args.threshold, "zooms": zooms, "points": points}
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(out)
    except FilmcleanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main())
