"""Contact sheet of the synthetic film damage: clean | damaged | mask | zoom, several images.

``python -m filmclean.train.contact_sheet [-o docs/damage_contact_sheet.png] [--seed 0]``

Rows cover both polarities, a range of damage amounts, and the SSIM of every damaged image against
its clean one; the last row shows three frames of a damaged sequence whose scratches persist and
drift while the dust changes. Only images shipped with scikit-image and matplotlib are used, so the
sheet can be rebuilt anywhere and is identical for a given seed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["EXAMPLES", "load_example", "make_contact_sheet", "main"]

TILE = 256
ZOOM = 96  # side of the crop shown enlarged in the zoom column

# (image, polarity, amount)
EXAMPLES: tuple[tuple[str, str, float], ...] = (
    ("astronaut", "dark", 0.08),
    ("coffee", "dark", 0.25),
    ("grace_hopper", "dark", 0.45),
    ("rocket", "dark", 0.8),
    ("chelsea", "light", 0.15),
    ("motorcycle_left", "light", 0.35),
    ("camera", "light", 0.7),
)


def load_example(name: str, size: int = TILE) -> np.ndarray:
    """A scikit-image sample (or matplotlib's ``grace_hopper``) as (size, size, 3) float32 in [0, 1],
    resized (area) so that the shorter side is ``size`` and centre-cropped."""
    import matplotlib
    import skimage.data
    import skimage.io

    from .dustify import resize_center_crop

    if name == "grace_hopper":
        img = skimage.io.imread(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    elif name in ("motorcycle_left", "motorcycle_right"):
        left, right, _disp = skimage.data.stereo_motorcycle()
        img = left if name.endswith("left") else right
    else:
        img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = resize_center_crop(np.ascontiguousarray(img[:, :, :3]), size)
    return img.astype(np.float32) / 255.0


def _zoom(img: np.ndarray, y: int, x: int) -> np.ndarray:
    crop = img[y : y + ZOOM, x : x + ZOOM]
    reps = int(np.ceil(TILE / ZOOM))
    big = np.repeat(np.repeat(crop, reps, axis=0), reps, axis=1)
    return big[:TILE, :TILE]


def make_contact_sheet(
    out_path: str | Path, seed: int = 0, examples: Sequence[tuple[str, str, float]] = EXAMPLES
) -> Path:
    """Render the contact sheet PNG to ``out_path`` (parent folders created) and return the path.

    Row ``i`` damages ``examples[i]`` with ``DamageParams(amount=...)`` and seed ``seed + i``; the
    last row is ``dustify_sequence`` over 9 frames of a slowly panning crop (frames 0, 4, 8 shown,
    plus masks of frames 0 (red) and 8 (green): yellow = damage present in both).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches as mpatches
    import matplotlib.pyplot as plt
    from skimage.metrics import structural_similarity

    from .synth import DamageParams, dustify, dustify_sequence

    rows = len(examples) + 1
    dpi = 100
    head, gap = 40, 30  # px above the first row (column titles) and above every row (label)
    height = head + rows * (TILE + gap)
    fig, axes = plt.subplots(rows, 4, figsize=(4 * TILE / dpi, height / dpi), dpi=dpi)
    fig.subplots_adjust(
        left=0.005, right=0.995, top=1 - (head + gap) / height, bottom=0.003, wspace=0.02, hspace=gap / TILE
    )
    for ax in axes.ravel():
        ax.set_axis_off()
    for c, title in enumerate(("clean", "damaged", "mask (opacity)", f"damaged, {ZOOM}px zoom")):
        fig.text((c + 0.5) / 4, 1 - 8 / height, title, fontsize=11, ha="center", va="top", weight="bold")

    for i, (name, polarity, amount) in enumerate(examples):
        clean = load_example(name)
        damaged, mask = dustify(clean, seed + i, DamageParams(amount=amount), polarity)  # type: ignore[arg-type]
        d8 = np.rint(damaged * 255).astype(np.uint8)
        ssim = structural_similarity(np.rint(clean * 255).astype(np.uint8), d8, channel_axis=-1, data_range=255)
        y, x = (TILE - ZOOM) // 2, (TILE - ZOOM) // 3
        axes[i, 0].imshow(clean, interpolation="nearest")
        axes[i, 1].imshow(d8, interpolation="nearest")
        axes[i, 1].add_patch(
            mpatches.Rectangle((x - 0.5, y - 0.5), ZOOM, ZOOM, fill=False, edgecolor="yellow", linewidth=0.8)
        )
        axes[i, 2].imshow(mask, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[i, 3].imshow(_zoom(d8, y, x), interpolation="nearest")
        axes[i, 0].text(
            0, -6, f"{name}  |  {polarity}  |  amount {amount:.2f}  |  SSIM {ssim:.3f}", fontsize=8, va="bottom"
        )

    # Sequence row: a slow pan over one picture.
    import skimage.data

    from .dustify import resize_center_crop

    base = resize_center_crop(skimage.data.astronaut(), 320).astype(np.float32) / 255.0
    frames = [np.ascontiguousarray(base[20 : 20 + TILE, 8 * t : 8 * t + TILE]) for t in range(9)]
    params = DamageParams(amount=0.2, scratch_rate=25.0)
    dmg, masks = dustify_sequence(frames, seed + 1000, params, "dark")
    r = rows - 1
    for c, t in enumerate((0, 4, 8)):
        axes[r, c].imshow(np.rint(dmg[t] * 255).astype(np.uint8), interpolation="nearest")
    overlay = np.zeros((TILE, TILE, 3), np.float32)
    overlay[..., 0] = masks[0] > 0
    overlay[..., 1] = masks[8] > 0
    axes[r, 3].imshow(overlay, interpolation="nearest")
    axes[r, 0].text(
        0,
        -6,
        "sequence: frames 0, 4, 8 (scratches persist and drift, dust is new "
        "each frame); masks of frames 0 (red) / 8 (green)",
        fontsize=8,
        va="bottom",
    )
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, pil_kwargs={"optimize": True})
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``python -m filmclean.train.contact_sheet [-o PATH] [--seed N]``."""
    ap = argparse.ArgumentParser(
        prog="python -m filmclean.train.contact_sheet", description="Render the synthetic-damage contact sheet."
    )
    ap.add_argument("-o", "--output", type=Path, default=Path("docs/damage_contact_sheet.png"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(make_contact_sheet(args.output, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
