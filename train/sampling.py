"""What a run trains on, in which order: data sets per size (:class:`DataPlan`), the resumable
sampler, and the DataLoaders.

Every random choice of the data pipeline is a pure function of ``(seed, epoch, index)`` (see
:mod:`filmclean.train.data`), the order of an epoch is a function of ``(seed, epoch)``
(``DistributedSampler``), and DataLoaders get their own generators so they never draw from the
global torch RNG; a resumed epoch starts its sampler past the batches already seen
(:class:`ResumableSampler`), so nothing is loaded twice.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import signal
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from filmclean.errors import InputError

from .config import TrainConfig
from .data import OnTheFlyDataset, PairsDataset, list_clean_names, split_names
from .hardneg import load_hard_points


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (shuffled by ``seed + epoch``) that starts ``skip`` samples into its
    per-process order, so a resumed epoch continues with exactly the batches not yet seen."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int, epoch: int, skip: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


@contextlib.contextmanager
def opencv_single_threaded(enabled: bool) -> Iterator[None]:
    """While active (when ``enabled``), OpenCV runs one thread in this process, and so in the
    DataLoader workers forked from it: they inherit the setting (reconfiguring OpenCV inside a
    forked worker can hang, see :func:`_worker_init`), and many workers each running a pool of
    every core would only oversubscribe the CPU. The previous setting is restored on exit."""
    if not enabled:
        yield
        return
    try:
        import cv2
    except ImportError:  # pragma: no cover - opencv-python-headless is a dependency
        yield
        return
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _worker_init(_: int) -> None:
    """DataLoader workers: default signal handling (not the trainer's deferred one).

    OpenCV's thread pool is deliberately not touched here: ``cv2.setNumThreads`` in a forked
    worker whose parent already started the pool waits forever for threads that were not forked.
    (The parent sets one thread before forking instead: :func:`opencv_single_threaded`.)
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class DataPlan:
    """Builds (and caches per size) the train and validation datasets of a config.

    Temporal runs (``config.temporal``) get :class:`~filmclean.train.seqdata.TemporalDataset` s:
    the same train/valid split of the clean photos, and each clip range split into its first
    ~90 % (training) and last ~10 % (validation) frames (:func:`~filmclean.train.seqdata.split_clip`);
    the clips are decoded once (uint8) and shared by every size.
    """

    #: validation items per validation photo in temporal runs (random crops, fixed per index)
    TEMPORAL_VALID_CROPS = 4

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self._train: dict[int, Dataset] = {}
        self._valid: dict[int, Dataset | None] = {}
        self._clips: tuple[list[np.ndarray], list[np.ndarray]] | None = None
        if config.pairs_dir is None and config.clean_dir is None:
            raise InputError("no training data: give a pairs data set (--pairs) or a folder of clean photos (--clean)")
        if config.clean_dir is not None:
            names = [n for n in list_clean_names(config.clean_dir) if n not in set(config.exclude_names)]
            if not names:
                raise InputError("no clean images to train on", config.clean_dir)
            self.train_names, self.valid_names = split_names(names, config.valid_fraction, config.seed)

    def clip_frames(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """``(train, valid)`` frame arrays of the config's clips (decoded on first use)."""
        if self._clips is None:
            from .seqdata import read_clip_frames, split_clip

            train_clips: list[np.ndarray] = []
            valid_clips: list[np.ndarray] = []
            for clip in self.config.clips:
                frames = read_clip_frames(clip["path"], clip["first"], clip["last"], as_uint8=True)
                n_train, n_valid = split_clip(len(frames))
                train_clips.append(frames[:n_train])
                if n_valid:
                    valid_clips.append(frames[n_train:])
            self._clips = (train_clips, valid_clips)
        return self._clips

    def _temporal(self, size: int, names: list[str], validation: bool) -> Dataset:
        from .seqdata import TemporalDataset

        c = self.config
        train_clips, valid_clips = self.clip_frames()
        return TemporalDataset(
            c.clean_dir,
            size,
            names,
            c.seed,
            c.polarity,
            clips=valid_clips if validation else train_clips,
            clip_fraction=c.clip_fraction,
            validation=validation,
            crops_per_image=self.TEMPORAL_VALID_CROPS if validation else c.crops_per_image,
            crop_scale=c.crop_scale,
            synth_params=c.synth_params,
            clean_fraction=0.0 if validation else c.clean_fraction,
        )

    def train_set(self, size: int, epoch: int) -> Dataset:
        """The training set at ``size``, set to draw the samples of (global) ``epoch``."""
        c = self.config
        ds = self._train.get(size)
        if ds is None:
            if c.temporal:
                ds = self._temporal(size, self.train_names, validation=False)
            elif c.pairs_dir is not None:
                ds = PairsDataset(c.pairs_dir, size, "train", exclude=c.exclude_names, augment=c.augment, seed=c.seed)
            else:
                ds = OnTheFlyDataset(
                    c.clean_dir,  # type: ignore[arg-type]
                    size,
                    self.train_names,
                    c.seed,
                    c.polarity,
                    augment=c.augment,
                    crops_per_image=c.crops_per_image,
                    crop_scale=c.crop_scale,
                    crop_zoom=c.crop_zoom,
                    hard_points=load_hard_points(c.hard_crops) if c.p_hard > 0 and c.hard_crops else None,
                    p_hard=c.p_hard,
                    synth_params=c.synth_params,
                    clean_fraction=c.clean_fraction,
                    damage=c.damage,
                    film_params=c.film_params,
                )
            if len(ds) == 0:
                raise InputError(f"the training split is empty at size {size}", c.pairs_dir or c.clean_dir)
            self._train[size] = ds
        ds.set_epoch(epoch)  # type: ignore[attr-defined]
        return ds

    def valid_set(self, size: int) -> Dataset | None:
        """The validation set at ``size`` (the same items every epoch), or None when there is none."""
        c = self.config
        if size not in self._valid:
            ds: Dataset | None = None
            if c.pairs_dir is not None:
                from .data import read_manifest

                if "valid" in read_manifest(c.pairs_dir)["splits"]:
                    ds = PairsDataset(c.pairs_dir, size, "valid", exclude=c.exclude_names)
            elif c.temporal:
                if self.valid_names or self.clip_frames()[1]:
                    ds = self._temporal(size, self.valid_names, validation=True)
            elif self.valid_names:
                ds = OnTheFlyDataset(
                    c.clean_dir,  # type: ignore[arg-type]
                    size,
                    self.valid_names,
                    c.seed,
                    c.polarity,
                    validation=True,
                    synth_params=c.synth_params,
                    damage=c.damage,
                    film_params=c.film_params,
                )
            self._valid[size] = ds if ds is not None and len(ds) > 0 else None
        return self._valid[size]


def steps_per_epoch(n_items: int, batch_size: int, world: int) -> int:
    """Optimizer steps in one epoch: ``per_process // batch_size`` (incomplete batches dropped), or 1
    when a process has fewer items than one batch (then that short batch is used)."""
    per_process = math.ceil(n_items / world)
    return max(1, per_process // batch_size)


def make_loader(
    ds: Dataset,
    batch_size: int,
    sampler: Any,
    config: TrainConfig,
    device: torch.device,
    drop_last: bool,
    gen_seed: int,
) -> DataLoader:
    """A DataLoader over ``ds`` in ``sampler``'s order with ``config.num_workers`` workers (default
    signal handling in them) and its own generator seeded with ``gen_seed``."""
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=config.num_workers,
        drop_last=drop_last,
        pin_memory=device.type == "cuda",
        worker_init_fn=_worker_init if config.num_workers > 0 else None,
        generator=torch.Generator().manual_seed(gen_seed),  # never draw from the global torch RNG
        persistent_workers=False,
    )


__all__ = [
    "DataPlan",
    "ResumableSampler",
    "make_loader",
    "opencv_single_threaded",
    "steps_per_epoch",
]
