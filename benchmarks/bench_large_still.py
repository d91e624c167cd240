"""Peak memory of restoring one very large still scan (issue: memory bounded by the tile).

Makes a synthetic ``--megapixels`` 8-bit RGB PNG (smooth picture, grain, dark specks) unless it
exists, then runs ``filmclean frames`` on it in a child process for each model setting and prints
the child's peak resident memory (``ru_maxrss``) and wall time:

- ``default``: what a user gets (temporal mode on by default; a lone still uses the single-frame
  model);
- ``temporal-net``: the temporal network itself on the still (no single-frame model installed, so
  it runs with its neighbour inputs empty), to show its stack is made tile by tile.

    python benchmarks/bench_large_still.py --megapixels 100
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def make_still(path: Path, megapixels: float, seed: int = 0) -> None:
    import cv2

    side = int(round((megapixels * 1e6) ** 0.5))
    rng = np.random.default_rng(seed)
    small = rng.random((side // 64 + 2, side // 64 + 2, 3), dtype=np.float32)
    img = cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img * 200 + 30, 0, 255).astype(np.uint8)
    for _ in range(2000):  # dark specks
        y, x = rng.integers(0, side - 8, 2)
        img[y : y + 4, x : x + 4] = 10
    cv2.imwrite(str(path), img)


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(peak RSS in GB, seconds, exit code) of ``filmclean`` with ``args`` in a fresh child."""
    code = (
        "import resource, sys, subprocess\n"
        "r = subprocess.run([sys.executable, '-m', 'filmclean.cli', *sys.argv[1:]])\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(r.returncode)\n"
    )
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
    kb = int(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else 0
    return kb / 1024 / 1024, seconds, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--megapixels", type=float, default=100.0)
    ap.add_argument("--work", type=Path, default=None, help="folder for the still and outputs (default: a temp dir)")
    ap.add_argument("--which", choices=["default", "temporal-net", "both"], default="both")
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="filmclean-bench-"))
    src = work / "in"
    src.mkdir(parents=True, exist_ok=True)
    still = src / f"scan_{int(a.megapixels)}mp.png"
    if not still.exists():
        make_still(still, a.megapixels)
    print(f"still: {still} ({still.stat().st_size / 1e6:.1f} MB, {a.megapixels:g} MP)")
    env = dict(os.environ)
    runs = []
    if a.which in ("default", "both"):
        runs.append(("default", ["frames", str(still), "-o", str(work / "out-default"), "--force", "-q"], env))
    if a.which in ("temporal-net", "both"):
        empty = work / "no-models"
        empty.mkdir(exist_ok=True)
        tenv = {**env, "FILMCLEAN_MODELS": str(empty)}
        runs.append(
            (
                "temporal-net",
                [
                    "frames",
                    str(still),
                    "-o",
                    str(work / "out-temporal"),
                    "--force",
                    "-q",
                    "--model",
                    str(ROOT / "models" / "temporal.onnx"),
                ],
                tenv,
            )
        )
    for name, args, e in runs:
        gb, seconds, rc = run(args, e)
        print(f"{name:13s} peak RSS {gb:5.2f} GB  {seconds:6.1f} s  exit {rc}")


if __name__ == "__main__":
    main()
