"""Probe a mask model with plain artefacts: the share of each one's visible pixels it flags.

One crop of 256 px from each photograph of ``--corpus`` (clean), and on it one artefact at a time --
a vertical or slanted line, a curled hair, an opaque disc of 6, 20 or 40 px -- dark (multiplying the
picture) or light (the same on the inverted picture) at two opacities. Prints, per artefact, the
share of its visible pixels (change > 2/255) at or above the threshold, and the share of the clean
crops' pixels flagged. ``--blurred`` repeats it on the same crops blurred (Gaussian, sigma 8 px):
the gap between the two shows how much the picture's texture, rather than the artefact, decides
whether damage is found. A quick check that a detector has learnt what damage does to a picture and
not only the shapes of one generator; it is not a benchmark::

    python scripts/probe_shapes.py train/runs/detector-film-13/checkpoint.safetensors --corpus data/valid
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import cv2
import numpy as np
import torch

from filmclean.errors import FilmcleanError
from filmclean.evaluation.pairs import crops_of, open_pairs
from filmclean.modelfile import checkpoint_network, is_training_checkpoint, load_torch_network


def _line(rng: np.random.Generator, w: int, slant: float) -> np.ndarray:
    m = np.zeros((256, 256), np.float32)
    x = int(rng.integers(40, 216))
    cv2.line(m, (x, 0), (x + int(slant * 256), 255), 1.0, w, cv2.LINE_AA)
    return m


def _disc(rng: np.random.Generator, d: int) -> np.ndarray:
    m = np.zeros((256, 256), np.float32)
    cx, cy = (int(v) for v in rng.integers(40, 216, 2))
    cv2.circle(m, (cx, cy), max(1, d // 2), 1.0, -1, cv2.LINE_AA)
    return m


def _curl(rng: np.random.Generator, w: int) -> np.ndarray:
    m = np.zeros((256, 256), np.float32)
    t = np.linspace(0, 1, 200)
    c = rng.integers(60, 196, 2)
    r, a = 20 + 30 * t, 6 * t + rng.uniform(0, 6)
    pts = np.stack([c[0] + r * np.cos(a), c[1] + r * np.sin(a)], 1).astype(np.int32)
    cv2.polylines(m, [pts], False, 1.0, w, cv2.LINE_AA)
    return m


ARTEFACTS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "line 1 px": lambda g: _line(g, 1, 0.0),
    "line 2 px": lambda g: _line(g, 2, 0.0),
    "slanted 2 px": lambda g: _line(g, 2, 0.3),
    "curl 3 px": lambda g: _curl(g, 3),
    "disc 6 px": lambda g: _disc(g, 6),
    "disc 20 px": lambda g: _disc(g, 20),
    "disc 40 px": lambda g: _disc(g, 40),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a mask model (.safetensors) or training checkpoint")
    ap.add_argument("--corpus", required=True, help="folder of clean photographs")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blurred", action="store_true", help="also probe on the crops blurred (sigma 8 px)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        loaded = (
            checkpoint_network(args.model) if is_training_checkpoint(args.model) else load_torch_network(args.model)
        )
    except FilmcleanError as exc:
        raise SystemExit(f"probe_shapes: {exc}") from None
    net = (loaded[0] if isinstance(loaded, tuple) else loaded).eval()
    pairs = crops_of(open_pairs(args.corpus, size="full", split="all"), 256, 1)
    photo = [pairs.load(n).clean for n in pairs.names]
    backgrounds = {"photo": photo}
    if args.blurred:
        backgrounds["blurred"] = [cv2.GaussianBlur(c, (0, 0), 8.0) for c in photo]
    for label, crops in backgrounds.items():
        _probe(net, crops, args.threshold, label)


def _probe(net: torch.nn.Module, crops: list[np.ndarray], threshold: float, label: str) -> None:
    """Print the flagged shares of every artefact on ``crops``."""

    def flagged(batch: list[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            _, m = net(torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float())
        return m[:, 0].numpy() >= threshold

    print(f"{label}: {len(crops)} crops; clean pixels flagged: {100 * flagged(crops).mean():.2f} %")
    print("artefact        " + "  ".join(f"{p} {a:.1f}" for p in ("dark", "light") for a in (0.4, 0.8)))
    for name, make in ARTEFACTS.items():
        rng = np.random.default_rng(0)
        shares = []
        for pol in ("dark", "light"):
            for opacity in (0.4, 0.8):
                batch, masks = [], []
                for c in crops:
                    a = make(rng)[..., None] * opacity
                    d = c * (1 - a) if pol == "dark" else 1 - (1 - c) * (1 - a)
                    batch.append(d.astype(np.float32))
                    masks.append(np.abs(d - c).max(-1) > 2 / 255)
                hit = flagged(batch)
                shares.append(sum((h & m).sum() for h, m in zip(hit, masks)) / max(1, sum(m.sum() for m in masks)))
        print(f"{name:15s} " + "  ".join(f"{100 * s:8.0f}" for s in shares), flush=True)


if __name__ == "__main__":
    main()
