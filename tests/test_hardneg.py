"""Hard-negative mining (filmclean.train.hardneg) and crops centred on its finds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from filmclean.errors import InputError
from filmclean.train.config import TrainConfig, load_config
from filmclean.train.data import OnTheFlyDataset
from filmclean.train.hardneg import false_detections, load_hard_points, mine_false_detections


class _BrightSpotDetector(nn.Module):
    """Calls every pixel brighter than 0.9 damage: a detector with a known false alarm."""

    size_multiple = 8

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, (x.mean(dim=1, keepdim=True) > 0.9).float()


def _write_png(path: Path, img: np.ndarray) -> None:
    import cv2

    cv2.imwrite(str(path), (np.clip(img, 0, 1) * 255).round().astype(np.uint8)[..., ::-1])


class TestFalseDetections:
    def test_regions_in_order_of_size_times_peak(self):
        prob = np.zeros((40, 80), np.float32)
        prob[10:14, 20:24] = 0.8  # 16 px
        prob[30:36, 60:66] = 0.6  # 36 px
        prob[0:2, 0:2] = 0.3  # below the threshold
        found = false_detections(prob, 0.5, top=5)
        assert len(found) == 2
        (u1, v1, w1), (u2, v2, w2) = found
        assert (u1, v1) == pytest.approx((63 / 80, 33 / 40)) and w1 == pytest.approx(36 * 0.6)
        assert (u2, v2) == pytest.approx((22 / 80, 12 / 40)) and w2 == pytest.approx(16 * 0.8)
        assert len(false_detections(prob, 0.5, top=1)) == 1
        assert false_detections(np.zeros((8, 8), np.float32), 0.5, top=3) == []


class TestMining:
    def test_finds_the_bright_spot_at_every_zoom(self):
        photo = np.full((64, 96, 3), 0.4, np.float32)
        photo[40:52, 70:82] = 1.0  # centre (76, 46)
        points = mine_false_detections(_BrightSpotDetector(), {"p": photo}, zooms=(0.5, 1.0), top=4)
        assert [p[2] for p in points["p"]] == [0.5, 1.0]
        for u, v, _, weight in points["p"]:
            assert u == pytest.approx(76 / 96, abs=0.02) and v == pytest.approx(46 / 64, abs=0.02) and weight > 0

    def test_file_round_trip_and_bad_files(self, tmp_path):
        good = tmp_path / "h.json"
        good.write_text(json.dumps({"points": {"a": [[0.25, 0.5, 1.0, 3.0]], "b": []}}))
        assert load_hard_points(good) == {"a": [(0.25, 0.5)], "b": []}
        with pytest.raises(InputError, match="not found"):
            load_hard_points(tmp_path / "missing.json")
        bad = tmp_path / "bad.json"
        bad.write_text("{")
        with pytest.raises(InputError, match="not a hard-negative file"):
            load_hard_points(bad)
        bad.write_text(json.dumps({"points": {"a": [[1.5, 0.5, 1, 1]]}}))
        with pytest.raises(InputError, match="outside"):
            load_hard_points(bad)


class TestHardCrops:
    def test_crops_centre_on_the_points(self, tmp_path):
        photo = np.zeros((200, 200, 3), np.float32)
        photo[150:160, 20:30] = 1.0  # a white square far from the centre
        _write_png(tmp_path / "p.png", photo)
        kw = dict(crop_zoom=(1.0, 1.0), clean_fraction=1.0, crops_per_image=20)
        hard = OnTheFlyDataset(
            tmp_path, 48, ["p"], seed=3, hard_points={"p": [(25 / 200, 155 / 200)]}, p_hard=1.0, **kw
        )
        assert all(float(hard[i]["target"].max()) == 1.0 for i in range(20))  # the square is in every crop
        plain = OnTheFlyDataset(tmp_path, 48, ["p"], seed=3, **kw)
        assert sum(float(plain[i]["target"].max()) == 1.0 for i in range(20)) < 10

    def test_config(self, tmp_path):
        (tmp_path / "h.json").write_text(json.dumps({"points": {}}))
        (tmp_path / "c.json").write_text(json.dumps({"clean_dir": ".", "hard_crops": "h.json", "p_hard": 0.3}))
        cfg = load_config(tmp_path / "c.json")
        assert cfg.hard_crops == str(tmp_path / "h.json") and cfg.p_hard == 0.3
        with pytest.raises(InputError, match="p_hard needs hard_crops"):
            TrainConfig(clean_dir="/d", p_hard=0.2)
        with pytest.raises(InputError, match="p_hard"):
            TrainConfig(clean_dir="/d", hard_crops="h.json", p_hard=1.5)
