"""``filmclean review``: one self-contained HTML page to check every repair, and reject some.

Given the originals and the restored results (two folders of stills or sequences, files paired by
name; or two videos, frames paired by number), the page shows before and after for each still -- or
for the reel's frames that changed most -- with every repair outlined (a repair: a connected group
of changed pixels, 2 px apart joined), and lists the largest repairs with crops, ranked by the
pixels changed times the mean change. Clicking a repair (outline or crop) rejects it; "Export
protect mattes" downloads one greyscale PNG per picture, white over the rejected repairs' pixels,
named so that ``--protect`` matches it: ``<name>.png`` for stills (a black one where nothing is
rejected, so every picture has its matte), ``frame_<number>.png`` for a reel (frames without a
file are not protected). Rerunning with ``--protect`` on the folder of those files leaves the
rejected repairs' pixels as they were.

The page works offline: every picture is embedded (before/after at most ``max_side`` px, the label
map at full size), no external script or font.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["ReviewStats", "find_repairs", "write_review"]

VIDEO_EXTS = {".mkv", ".mov", ".mp4", ".avi", ".webm", ".mxf"}


@dataclass
class ReviewStats:
    pictures: int = 0
    repairs: int = 0


@dataclass
class Repair:
    label: int
    box: tuple[int, int, int, int]  # x, y, w, h
    pixels: int
    change: float  # mean largest-channel change over its pixels

    @property
    def score(self) -> float:
        return self.pixels * self.change


def find_repairs(
    before: np.ndarray, after: np.ndarray, tolerance: float = 0.5 / 255
) -> tuple[np.ndarray, list[Repair]]:
    """``(labels, repairs)``: ``labels`` ``(H, W)`` int32, the repair each changed pixel belongs to
    (0: unchanged), and the repairs, largest score first. Pixels changed by more than
    ``tolerance`` in any channel are changed; changed pixels less than 2 px apart are one repair."""
    import cv2

    diff = np.abs(after.astype(np.float32) - before.astype(np.float32)).max(axis=-1)
    changed = diff > tolerance
    if not changed.any():
        return np.zeros(changed.shape, np.int32), []
    joined = cv2.dilate(changed.astype(np.uint8), np.ones((3, 3), np.uint8))
    n, groups = cv2.connectedComponents(joined, connectivity=8)
    labels = np.where(changed, groups, 0).astype(np.int32)
    pixels = np.bincount(labels.ravel(), minlength=n)
    total = np.bincount(labels.ravel(), weights=diff.ravel().astype(np.float64), minlength=n)
    ys, xs = np.nonzero(changed)
    lab = labels[ys, xs]
    lo_x, lo_y = np.full(n, changed.shape[1]), np.full(n, changed.shape[0])
    hi_x, hi_y = np.full(n, -1), np.full(n, -1)
    np.minimum.at(lo_x, lab, xs)
    np.minimum.at(lo_y, lab, ys)
    np.maximum.at(hi_x, lab, xs)
    np.maximum.at(hi_y, lab, ys)
    repairs = [
        Repair(
            i,
            (int(lo_x[i]), int(lo_y[i]), int(hi_x[i] - lo_x[i] + 1), int(hi_y[i] - lo_y[i] + 1)),
            int(pixels[i]),
            float(total[i] / pixels[i]),
        )
        for i in range(1, n)
        if pixels[i]
    ]
    repairs.sort(key=lambda r: -r.score)
    return labels, repairs


def _png(rgb: np.ndarray) -> str:
    import cv2

    ok, buf = cv2.imencode(".png", rgb)
    if not ok:
        raise InputError("cannot encode a picture for the page", Path("."))
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _display(rgb: np.ndarray, max_side: int) -> tuple[str, float]:
    """An 8-bit BGR PNG data URI of ``rgb`` at most ``max_side`` px, and its scale."""
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    img = np.clip(np.nan_to_num(rgb) * 255 + 0.5, 0, 255).astype(np.uint8)[..., ::-1]
    if scale < 1:
        img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return _png(np.ascontiguousarray(img)), scale


def _label_png(labels: np.ndarray) -> str:
    """The label map as a PNG data URI: label = R + 256 G + 65536 B (BGR order for OpenCV)."""
    lab = labels.astype(np.uint32)
    bgr = np.stack([(lab >> 16) & 255, (lab >> 8) & 255, lab & 255], axis=-1).astype(np.uint8)
    return _png(bgr)


def _crop(rgb: np.ndarray, box: tuple[int, int, int, int], pad: int = 8, side: int = 96) -> str:
    import cv2

    x, y, w, h = box
    h_img, w_img = rgb.shape[:2]
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(w_img, x + w + pad), min(h_img, y + h + pad)
    img = np.clip(np.nan_to_num(rgb[y0:y1, x0:x1]) * 255 + 0.5, 0, 255).astype(np.uint8)[..., ::-1]
    s = side / max(img.shape[:2])
    img = cv2.resize(
        img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))), interpolation=cv2.INTER_NEAREST
    )
    return _png(np.ascontiguousarray(img))


def _pairs_of_stills(original: Path, restored: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    from .io.images import list_images, read_image

    out = []
    for f in list_images(original):
        other = restored / f.name if restored.is_dir() else restored
        if not other.exists():
            raise InputError(f"no restored file for {f.name}", restored)
        a, b = read_image(f).rgb, read_image(other).rgb
        if a.shape != b.shape:
            raise InputError(f"{f.name}: the restored picture has another size", other)
        out.append((f.stem, a, b))
    return out


def _changed_frames(original: Path, restored: Path, count: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The ``count`` frames of the reel that changed most (by pixels changed), in frame order."""
    from .io.video import VideoFrameItem, VideoReader

    scored: list[tuple[float, int]] = []
    with VideoReader(original) as ra, VideoReader(restored) as rb:
        fa = (i for i in ra if isinstance(i, VideoFrameItem))
        fb = (i for i in rb if isinstance(i, VideoFrameItem))
        for n, (a, b) in enumerate(zip(fa, fb)):
            if a.rgb.shape != b.rgb.shape:
                raise InputError("the restored reel has another frame size", restored)
            scored.append((float((np.abs(a.rgb - b.rgb).max(axis=-1) > 0.5 / 255).sum()), n))
    chosen = sorted(n for _, n in sorted(scored, reverse=True)[:count])
    out = []
    with VideoReader(original) as ra, VideoReader(restored) as rb:
        fa = (i for i in ra if isinstance(i, VideoFrameItem))
        fb = (i for i in rb if isinstance(i, VideoFrameItem))
        for n, (a, b) in enumerate(zip(fa, fb)):
            if n in chosen:
                out.append((f"frame_{n:06d}", a.rgb, b.rgb))
    return out


def write_review(
    original: str | Path,
    restored: str | Path,
    output: str | Path,
    frames: int = 12,
    max_side: int = 1600,
    top: int = 24,
    force: bool = False,
) -> ReviewStats:
    """Write the review page (see the module docstring) to ``output``, atomically."""
    from .io import check_output_path, write_bytes_atomically

    a, b = Path(original), Path(restored)
    for p in (a, b):
        if not p.exists():
            raise InputError("not found", p)
    out = check_output_path(output, force=force)
    reel = a.suffix.lower() in VIDEO_EXTS
    pictures = _changed_frames(a, b, frames) if reel else _pairs_of_stills(a, b)
    data: list[dict[str, Any]] = []
    crops: list[tuple[float, dict[str, Any]]] = []
    stats = ReviewStats(pictures=len(pictures))
    for k, (name, before, after) in enumerate(pictures):
        labels, repairs = find_repairs(before, after)
        stats.repairs += len(repairs)
        b_uri, scale = _display(before, max_side)
        a_uri, _ = _display(after, max_side)
        h, w = before.shape[:2]
        data.append(
            {
                "name": name,
                "width": w,
                "height": h,
                "scale": scale,
                "before": b_uri,
                "after": a_uri,
                "labels": _label_png(labels),
                "repairs": [{"id": r.label, "box": r.box, "pixels": r.pixels, "change": r.change} for r in repairs],
            }
        )
        for r in repairs[:top]:
            crops.append(
                (
                    r.score,
                    {
                        "picture": k,
                        "id": r.label,
                        "pixels": r.pixels,
                        "change": round(r.change, 4),
                        "before": _crop(before, r.box),
                        "after": _crop(after, r.box),
                    },
                )
            )
    crops.sort(key=lambda t: -t[0])
    page = _PAGE.replace("__TITLE__", html.escape(f"filmclean review: {a.name}")).replace(
        "__DATA__", json.dumps({"pictures": data, "top": [c for _, c in crops[:top]], "reel": reel})
    )
    write_bytes_atomically(out, page.encode("utf-8"))
    return stats


_PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font-family:sans-serif;background:#222;color:#eee;margin:16px}
h1{font-size:18px} h2{font-size:15px;margin:18px 0 6px}
.pair{display:flex;gap:8px;flex-wrap:wrap}
.view{position:relative;display:inline-block}
.view img{display:block}
.view canvas{position:absolute;left:0;top:0;cursor:pointer}
.crops{display:flex;flex-wrap:wrap;gap:8px}
.crop{border:3px solid #3c3;padding:2px;cursor:pointer;background:#333}
.crop.rejected{border-color:#e33}
.crop img{display:block;image-rendering:pixelated}
button{font-size:14px;padding:6px 12px;margin:8px 0}
#status{color:#aaa}
</style></head><body>
<h1>__TITLE__</h1>
<p>Green: repairs kept. Click a repair (its outline or its crop) to reject it (red); click again to keep it.
Then export the protect mattes and rerun with <code>--protect FOLDER</code>.</p>
<button id="export">Export protect mattes</button> <span id="status"></span>
<h2>Largest repairs</h2><div class="crops" id="crops"></div>
<div id="pictures"></div>
<script>
const DATA = __DATA__;
const rejected = DATA.pictures.map(() => new Set());
const overlays = [];
function draw(k) {
  const p = DATA.pictures[k], c = overlays[k], g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height); g.lineWidth = 2;
  for (const r of p.repairs) {
    const [x, y, w, h] = r.box.map(v => v * p.scale);
    g.strokeStyle = rejected[k].has(r.id) ? '#e33' : '#3c3';
    g.strokeRect(x - 2, y - 2, w + 4, h + 4);
  }
  for (const el of document.querySelectorAll('.crop[data-picture="' + k + '"]'))
    el.classList.toggle('rejected', rejected[k].has(Number(el.dataset.id)));
  document.getElementById('status').textContent =
    rejected.reduce((n, s) => n + s.size, 0) + ' repair(s) rejected';
}
function toggle(k, id) { rejected[k].has(id) ? rejected[k].delete(id) : rejected[k].add(id); draw(k); }
DATA.pictures.forEach((p, k) => {
  const box = document.createElement('div');
  box.innerHTML = '<h2></h2><div class="pair"><div class="view"><img class="before"></div>' +
    '<div class="view"><img class="after"><canvas></canvas></div></div>';
  box.querySelector('h2').textContent = p.name + ' (' + p.repairs.length + ' repairs)';
  box.querySelector('img.before').src = p.before;
  const img = box.querySelector('img.after'), c = box.querySelector('canvas');
  img.src = p.after; img.dataset.picture = k;
  c.width = Math.round(p.width * p.scale); c.height = Math.round(p.height * p.scale);
  c.dataset.picture = k; overlays[k] = c;
  c.addEventListener('click', ev => {
    const rect = c.getBoundingClientRect();
    const x = (ev.clientX - rect.left) / p.scale, y = (ev.clientY - rect.top) / p.scale;
    let best = null;
    for (const r of p.repairs) {
      const [bx, by, bw, bh] = r.box;
      if (x >= bx - 3 && x <= bx + bw + 3 && y >= by - 3 && y <= by + bh + 3 && (!best || bw * bh < best.box[2] * best.box[3])) best = r;
    }
    if (best) toggle(k, best.id);
  });
  document.getElementById('pictures').appendChild(box);
  draw(k);
});
DATA.top.forEach(t => {
  const el = document.createElement('div');
  el.className = 'crop'; el.dataset.picture = t.picture; el.dataset.id = t.id;
  el.title = DATA.pictures[t.picture].name + ': ' + t.pixels + ' px, mean change ' + t.change;
  el.innerHTML = '<img class="b"><img class="a">';
  el.querySelector('img.b').src = t.before; el.querySelector('img.a').src = t.after;
  el.addEventListener('click', () => toggle(t.picture, t.id));
  document.getElementById('crops').appendChild(el);
  draw(t.picture);
});
function loadImage(src) {
  return new Promise((ok, fail) => { const i = new Image(); i.onload = () => ok(i); i.onerror = fail; i.src = src; });
}
async function matte(k) {
  const p = DATA.pictures[k], i = await loadImage(p.labels);
  const c = document.createElement('canvas'); c.width = p.width; c.height = p.height;
  const g = c.getContext('2d'); g.drawImage(i, 0, 0);
  const px = g.getImageData(0, 0, p.width, p.height), d = px.data, keep = rejected[k];
  for (let j = 0; j < d.length; j += 4) {
    const id = d[j] + 256 * d[j + 1] + 65536 * d[j + 2];
    const v = id && keep.has(id) ? 255 : 0;
    d[j] = d[j + 1] = d[j + 2] = v; d[j + 3] = 255;
  }
  g.putImageData(px, 0, 0);
  return c.toDataURL('image/png');
}
document.getElementById('export').addEventListener('click', async () => {
  let n = 0;
  for (let k = 0; k < DATA.pictures.length; k++) {
    if (DATA.reel && !rejected[k].size) continue;
    const a = document.createElement('a');
    a.href = await matte(k); a.download = DATA.pictures[k].name + '.png';
    document.body.appendChild(a); a.click(); a.remove(); n++;
  }
  document.getElementById('status').textContent = n + ' matte(s) exported';
});
</script></body></html>
"""
