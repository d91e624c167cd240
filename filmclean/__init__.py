"""filmclean: remove dust and scratches from scanned analogue film.

Public library API (the CLI is a thin layer over these):

- :func:`filmclean.model.load_model` -- load a network file (safetensors or ONNX) into a backend.
- :class:`filmclean.engine.Restorer` -- tiled restoration of one frame.
- :func:`filmclean.pipeline.restore_video` / :func:`filmclean.pipeline.restore_frames`.
"""

__version__ = "0.1.0"

#: Default tile side in pixels (the CLI's ``--tile``). A 1080p frame is one tile, so no overlap is
#: computed twice; a 4K frame is six tiles, which keeps the default model's peak memory under 2 GB
#: (``benchmarks/bench_restore.py``). Kept here, free of imports, so the thin CLI can show it.
DEFAULT_TILE = 2048

#: which way damage changes the picture (``RestoreOptions.dust``, the CLI's ``--dust``)
DUST_POLARITIES = ("any", "dark", "light")

#: how many flips/transposes test-time augmentation may average (``RestoreOptions.tta``, ``--tta``)
TTA_COUNTS = (1, 2, 4, 8)

__all__ = ["DEFAULT_TILE", "DUST_POLARITIES", "TTA_COUNTS", "__version__"]
