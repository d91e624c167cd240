"""Dust polarity: the words training and damage synthesis use, the runtime's own.

:data:`filmclean.DUST_POLARITIES` -- ``any``, ``dark``, ``light`` -- names which way damage changes
the picture, at inference (``--dust``) and here alike:

- ``dark``: damage darkens (slides, prints, positive film scanned directly: dust shows black);
- ``light``: damage brightens (negatives scanned and inverted: dust shows white);
- ``any``: either way. Synthesis draws the polarity at random for each damaged unit -- each image
  (:func:`~filmclean.train.synth.dustify`, a training sample), each sequence
  (:func:`~filmclean.train.synth.dustify_sequence`), each pair of a dustify data set -- light with
  probability :attr:`~filmclean.train.synth.DamageParams.p_light`.

Older configs, dustify manifests and callers said ``random`` (training configs, synthesis) or
``both`` (``filmclean dustify``) for ``any``: :func:`canonical_polarity` reads them as ``any``, so
old files load and compute exactly what they did.
"""

from __future__ import annotations

from typing import Any, Literal

import click

from filmclean import DUST_POLARITIES

#: a polarity as the functions of :mod:`filmclean.train` take it (older words: :data:`LEGACY_POLARITIES`)
Polarity = Literal["any", "dark", "light"]

#: words of older configs and callers, and the polarity each means
LEGACY_POLARITIES: dict[str, str] = {"both": "any", "random": "any"}


def canonical_polarity(value: Any) -> str:
    """``value`` as one of :data:`~filmclean.DUST_POLARITIES` (a legacy word mapped by
    :data:`LEGACY_POLARITIES`). Raises :class:`ValueError` for anything else."""
    if isinstance(value, str):
        value = LEGACY_POLARITIES.get(value, value)
        if value in DUST_POLARITIES:
            return value
    raise ValueError(f"polarity must be one of {', '.join(DUST_POLARITIES)}, got {value!r}")


class PolarityChoice(click.Choice):
    """``click.Choice`` of :data:`~filmclean.DUST_POLARITIES` that also takes the legacy words
    (without listing them) and passes on the canonical word."""

    def __init__(self) -> None:
        super().__init__(list(DUST_POLARITIES))

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            value = LEGACY_POLARITIES.get(value, value)
        return super().convert(value, param, ctx)


__all__ = ["DUST_POLARITIES", "LEGACY_POLARITIES", "Polarity", "PolarityChoice", "canonical_polarity"]
