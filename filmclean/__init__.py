"""filmclean: remove dust and scratches from scanned analogue film.

The public library API (the CLI is a thin layer over it)::

    import filmclean

    restorer = filmclean.open_restorer()                        # the shipped models
    result = filmclean.restore_image(restorer, rgb)              # (H, W, 3) float32 RGB in [0, 1]
    filmclean.restore_video("reel.mov", "clean.mkv", restorer)   # audio, timing, bit depth kept
    filmclean.restore_frames("scans/", "restored/", restorer)   # names, formats, bit depth kept

Names are imported on first use, so ``import filmclean`` stays cheap (the CLI shows its help
without loading PyTorch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Default largest tile side in pixels (the CLI's ``--tile``). The tile plan makes tiles smaller
#: where the network's working memory would exceed its budget, and narrower than ONNX Runtime's fast
#: width on the CPU (:meth:`filmclean.engine.Restorer._plan`): a 1080p frame is one tile, so no
#: overlap is computed twice; a 4K frame is three tiles of 2192x1552 (1.2x its pixels computed),
#: with the default model's peak memory under 2 GB (``benchmarks/bench_restore.py``). Kept here,
#: free of imports, so the thin CLI can show it.
DEFAULT_TILE = 4096

#: Widest detection (pixels) that mask models repair (``RestoreOptions.max_width``, ``--max-width``):
#: the film dust, dirt and blotches filmclean is for are at most about 60 px across on a 2K scan
#: (about 85 px on a 4K one); a wider detection is a bright flower, a lamp, or grass blades taken for
#: a mesh of hairs, and is left untouched. Chosen on the validation photographs (model card).
DEFAULT_MAX_WIDTH = 96

#: which way damage changes the picture (``RestoreOptions.dust``, the CLI's ``--dust``)
DUST_POLARITIES = ("any", "dark", "light")

#: how many flips/transposes test-time augmentation may average (``RestoreOptions.tta``, ``--tta``)
TTA_COUNTS = (1, 2, 4, 8)

#: inference engines (``--backend``) and devices (``--device``)
BACKENDS = ("auto", "torch", "onnx")
DEVICES = ("auto", "cpu", "cuda")

_EXPORTS = {
    "open_restorer": "filmclean.api",
    "restore_image": "filmclean.api",
    "ModelChoice": "filmclean.api",
    "restore_video": "filmclean.pipeline",
    "restore_frames": "filmclean.pipeline",
    "VideoOptions": "filmclean.pipeline",
    "RunStats": "filmclean.pipeline",
    "Restorer": "filmclean.engine",
    "RestoreOptions": "filmclean.engine",
    "RestoredFrame": "filmclean.engine",
    "NetworkInfo": "filmclean.backends",
    "FilmcleanError": "filmclean.errors",
    "InputError": "filmclean.errors",
    "OutputError": "filmclean.errors",
    "ModelError": "filmclean.errors",
}

if TYPE_CHECKING:
    from .api import ModelChoice, open_restorer, restore_image
    from .backends import NetworkInfo
    from .engine import RestoredFrame, RestoreOptions, Restorer
    from .errors import FilmcleanError, InputError, ModelError, OutputError
    from .pipeline import RunStats, VideoOptions, restore_frames, restore_video


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'filmclean' has no attribute {name!r}")


__all__ = [
    "BACKENDS",
    "DEFAULT_MAX_WIDTH",
    "DEFAULT_TILE",
    "DEVICES",
    "DUST_POLARITIES",
    "TTA_COUNTS",
    "FilmcleanError",
    "InputError",
    "ModelChoice",
    "ModelError",
    "NetworkInfo",
    "OutputError",
    "RestoreOptions",
    "RestoredFrame",
    "Restorer",
    "RunStats",
    "VideoOptions",
    "__version__",
    "open_restorer",
    "restore_frames",
    "restore_image",
    "restore_video",
]
