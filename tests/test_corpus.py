"""The corpus builder's offline pieces (filmclean.train.corpus): licences, copies, wheel members."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from filmclean.train.corpus import CorpusImage, _copy_images, _dep5_licences, _wheel_file

DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: example

Files: nature/Aqua.jpg
       nature/Garden.jpg
Copyright: 2008, Someone <a@b.c>
License: GPL-2+
 The full text is elsewhere.

Files: 16.04/Bridge_by_X.jpg
Copyright: 2018. X
License: CC-BY-SA-4.0
"""


class TestDep5:
    def test_files_with_continuation_lines_get_their_paragraphs_licence(self, tmp_path):
        f = tmp_path / "copyright"
        f.write_text(DEP5)
        lic = _dep5_licences(f)
        assert lic["Aqua.jpg"] == ("GPL-2+", "2008, Someone <a@b.c>") and lic["Garden.jpg"][0] == "GPL-2+"
        assert lic["Bridge_by_X.jpg"] == ("CC-BY-SA-4.0", "2018. X")
        assert _dep5_licences(tmp_path / "missing") == {}


class TestCopyImages:
    def test_bytes_kept_and_sources_written_unreadable_skipped(self, tmp_path):
        src = tmp_path / "src"
        src.mkdir()
        img = np.random.default_rng(0).integers(0, 255, (12, 20, 3), dtype=np.uint8)
        assert cv2.imwrite(str(src / "a.jpg"), img)
        (src / "b.png").write_bytes(b"not an image")
        images = [
            CorpusImage("x-a", src / "a.jpg", "x-a", "test", "CC0-1.0", "me", "test:a.jpg"),
            CorpusImage("x-b", src / "b.png", "x-b", "test", "CC0-1.0", "me", "test:b.png"),
        ]
        with pytest.warns(UserWarning, match="not a readable image"):
            rows = _copy_images(images, tmp_path / "out", heldout=["x-a"])
        assert [r["name"] for r in rows] == ["x-a"] and rows[0]["heldout"] == "1"
        assert (tmp_path / "out" / "x-a.jpg").read_bytes() == (src / "a.jpg").read_bytes()
        with open(tmp_path / "out" / "sources.csv", newline="") as fh:
            read = list(csv.DictReader(fh))
        assert read[0]["width"] == "20" and read[0]["height"] == "12" and read[0]["licence"] == "CC0-1.0"


class TestWheelFile:
    def test_member_read_from_a_cached_wheel(self, tmp_path):
        wheels = tmp_path / "wheels"
        wheels.mkdir()
        with zipfile.ZipFile(wheels / "some_pkg-1.0-py3-none-any.whl", "w") as zf:
            zf.writestr("some_pkg/images/pic.jpg", b"jpeg bytes")
        path = _wheel_file("some-pkg==1.0", "some_pkg/images/pic.jpg", tmp_path)
        assert path is not None and Path(path).read_bytes() == b"jpeg bytes"
        assert _wheel_file("some-pkg==1.0", "some_pkg/images/pic.jpg", tmp_path) == path  # cached
        with pytest.warns(UserWarning, match="cannot read"):
            assert _wheel_file("some-pkg==1.0", "some_pkg/missing.jpg", tmp_path) is None
