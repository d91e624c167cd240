"""filmclean: remove dust and scratches from scanned analogue film.

Public library API (the CLI is a thin layer over these):

- :func:`filmclean.model.load_model` -- load a network file (safetensors or ONNX) into a backend.
- :class:`filmclean.engine.Restorer` -- tiled restoration of one frame.
- :func:`filmclean.pipeline.restore_video` / :func:`filmclean.pipeline.restore_frames`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
