"""The corpus builder's offline pieces (filmclean.train.corpus): licences, copies, wheel members,
Qt resource bundles and the explicit lists of the ``more`` level. Nothing here downloads."""

from __future__ import annotations

import bz2
import csv
import hashlib
import io
import os
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

import filmclean.train.corpus as corpus
from filmclean.train.corpus import (
    CorpusImage,
    _cached_wheels,
    _copy_images,
    _dep5_licences,
    _more_images,
    _more_names,
    _wheel_array,
    _wheel_file,
    read_rcc,
)

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


def build_rcc(files: dict[str, tuple[bytes, int]], version: int = 3) -> bytes:
    """A binary Qt resource bundle as ``rcc -binary`` lays it out: header, data, names, tree (nodes
    numbered breadth-first, each directory's children consecutive). ``files``: resource path ->
    (bytes, flags), flag 1 = zlib in qCompress form. Name hashes are left 0 (readers ignore them)."""
    root: dict = {}
    for path, content in files.items():
        *dirs, leaf = path.strip("/").split("/")
        node = root
        for d in dirs:
            node = node.setdefault(d, {})
        node[leaf] = content
    names, data = bytearray(), bytearray()
    name_offsets: dict[str, int] = {}
    nodes: list[bytes] = [b""]
    queue: list[tuple[int, str, object]] = [(0, "", root)]
    while queue:
        index, name, content = queue.pop(0)
        if name not in name_offsets:
            name_offsets[name] = len(names)
            encoded = name.encode("utf-16-be")
            names.extend(struct.pack(">HI", len(encoded) // 2, 0) + encoded)
        name_off = name_offsets[name] if index else 0
        if isinstance(content, dict):
            first = len(nodes)
            nodes.extend([b""] * len(content))
            queue += [(first + i, n, c) for i, (n, c) in enumerate(sorted(content.items()))]
            record = struct.pack(">IHII", name_off, 2, len(content), first)
        else:
            payload, flags = content  # type: ignore[misc]
            blob = struct.pack(">I", len(payload)) + zlib.compress(payload) if flags & 1 else payload
            record = struct.pack(">IHHHI", name_off, flags, 0, 1, len(data))
            data.extend(struct.pack(">I", len(blob)) + blob)
        nodes[index] = record + (struct.pack(">Q", 1_700_000_000_000) if version >= 2 else b"")
    header_size = 24 if version >= 3 else 20
    data_off, names_off = header_size, header_size + len(data)
    tree_off = names_off + len(names)
    header = b"qres" + struct.pack(">IIII", version, tree_off, data_off, names_off)
    header += struct.pack(">I", 1) if version >= 3 else b""
    return header + bytes(data) + bytes(names) + b"".join(nodes)


RCC_FILES = {
    "/game/src/activities/erase/resource/kitten.webp": (b"RIFF....WEBPVP8 raw bytes", 0),
    "/game/src/activities/erase/resource/notes.txt": (b"compressible " * 50, 1),
    "/game/src/activities/erase/resource/animals/owl.webp": (b"another picture", 0),
    "/game/readme": (b"top", 0),
}


class TestReadRcc:
    @pytest.mark.parametrize("version", [1, 2, 3])
    def test_all_files_come_back_with_their_bytes_compressed_or_not(self, version):
        assert read_rcc(build_rcc(RCC_FILES, version)) == {path: data for path, (data, _) in RCC_FILES.items()}

    def test_members_picks_only_the_asked_ones(self):
        got = read_rcc(build_rcc(RCC_FILES), ["/game/readme", "/game/src/activities/erase/resource/missing.webp"])
        assert got == {"/game/readme": b"top"}

    def test_bad_bundles_raise_value_error(self):
        good = build_rcc(RCC_FILES)
        with pytest.raises(ValueError, match="qres"):
            read_rcc(b"PK\x03\x04" + good[4:])
        with pytest.raises(ValueError, match="version"):
            read_rcc(good[:4] + struct.pack(">I", 9) + good[8:])
        with pytest.raises(ValueError):
            read_rcc(good[:-30])  # tree cut short
        # a directory that lists itself as its own child
        tree_off = struct.unpack_from(">I", good, 8)[0]
        looped = good[: tree_off + 6] + struct.pack(">II", 1, 0) + good[tree_off + 14 :]
        with pytest.raises(ValueError, match="cycle"):
            read_rcc(looped)


class TestMoreLists:
    VALIDATION = {
        "gcompris-erase-kitten",
        "gcompris-erase-rhinoceros",
        "gcompris-explore_farm_animals-owl",
        "gcompris-explore_monuments-chateaudeChambord",
        "gcompris-explore_monuments-chichenItza",
        "gcompris-explore_monuments-eiffelTower",
        "gcompris-explore_monuments-petra",
        "gcompris-explore_monuments-redPyramid",
        "gcompris-explore_monuments-victoriaMemorial",
        "gcompris-explore_world_animals-bison",
        "gcompris-explore_world_music-middleeast",
        "tuxpaint-redwoods_above",
    }

    def test_fixed_sizes_no_duplicates_and_the_split_is_the_one_training_uses(self):
        train = _more_names(corpus._MORE_DEBS, corpus._MORE_GCOMPRIS, corpus._MORE_WHEELS)
        valid = _more_names(corpus._MORE_VALIDATION_DEBS, corpus._MORE_VALIDATION_GCOMPRIS)
        assert len(train) == len(set(train)) == 141
        assert len(valid) == len(set(valid)) == 12 and set(valid) == self.VALIDATION
        assert not set(train) & set(valid)
        extra = {f"{prefix}-{Path(f).stem}" for _, _, prefix, files in corpus._EXTRA for f in files}
        assert not (set(train) | set(valid)) & (extra | set(corpus.HELD_OUT))

    def test_more_implies_extra_and_fetches_the_more_packages(self, tmp_path, monkeypatch):
        asked: list[str] = []
        monkeypatch.setattr(corpus, "_deb_root", lambda package, cache, marker: asked.append(package))
        monkeypatch.setattr(corpus, "_wheel_png", lambda requirement, member, cache: None)
        corpus.candidate_images(tmp_path, more=True)
        assert {"lomiri-wallpapers-16.04", "mate-backgrounds"} <= set(asked)  # the --extra packages
        assert {"tuxpaint-data", "palapeli-data", "puzzle-jigsaw", "digikam-data", "gcompris-qt-data"} <= set(asked)
        asked.clear()
        corpus.candidate_images(tmp_path, extra=True)
        assert "mate-backgrounds" in asked and "tuxpaint-data" not in asked

    def test_cli_more_reaches_corpus_and_validation(self, tmp_path, monkeypatch):
        seen: dict[str, dict] = {}

        def fake(kind):
            def collect(*args, **kwargs):
                seen[kind] = kwargs
                return [{"name": "x", "heldout": "0", "source": "s"}]

            return collect

        monkeypatch.setattr(corpus, "collect_corpus", fake("corpus"))
        monkeypatch.setattr(corpus, "collect_validation", fake("valid"))
        assert corpus.main([str(tmp_path / "c"), "--more"]) == 0
        assert corpus.main(["--validation", str(tmp_path / "v"), "--more"]) == 0
        assert seen["corpus"]["more"] is True and seen["valid"]["more"] is True
        assert corpus.main(["--validation", str(tmp_path / "v")]) == 0
        assert seen["valid"]["more"] is False


class TestMoreImages:
    def test_rcc_members_named_and_traced_to_package_bundle_and_resource(self, tmp_path, monkeypatch):
        root = tmp_path / "root"
        rcc_dir = root / "usr/share/gcompris-qt/rcc"
        rcc_dir.mkdir(parents=True)
        pic = cv2.imencode(".webp", np.full((6, 8, 3), 90, np.uint8))[1].tobytes()
        files = {"/gcompris/src/activities/erase/resource/kitten.webp": (pic, 0)}
        (rcc_dir / "erase.rcc").write_bytes(build_rcc(files))
        monkeypatch.setattr(corpus, "_deb_root", lambda package, cache, marker: root)
        table = (("erase", "GPL-3+", "", ("kitten.webp", "gone.webp")),)
        with pytest.warns(UserWarning, match="gone.webp not found"):
            images = _more_images(tmp_path / "cache", (), table, ())
        [im] = images
        assert im.name == "gcompris-erase-kitten" and im.path.read_bytes() == pic
        assert im.origin == (
            "gcompris-qt-data:/usr/share/gcompris-qt/rcc/erase.rcc:/gcompris/src/activities/erase/resource/kitten.webp"
        )


class TestConversions:
    def test_webp_becomes_png_of_its_decoded_pixels(self, tmp_path):
        img = np.random.default_rng(1).integers(0, 255, (10, 14, 3), dtype=np.uint8)
        src = tmp_path / "a.webp"
        src.write_bytes(cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes())
        rows = _copy_images([CorpusImage("x-a", src, "x-a", "t", "l", "", "t:a")], tmp_path / "out", ())
        out = tmp_path / "out" / "x-a.png"
        assert rows[0]["file"] == "x-a.png" and (rows[0]["width"], rows[0]["height"]) == ("14", "10")
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert np.array_equal(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), cv2.imread(str(src), cv2.IMREAD_COLOR))
        assert rows[0]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()

    def test_wheel_arrays_become_bgr(self):
        rgb = np.random.default_rng(2).integers(0, 255, (768, 1024, 3), dtype=np.uint8)
        face = _wheel_array("scipy/misc/face.dat", bz2.compress(rgb.tobytes()))
        assert np.array_equal(face, rgb[..., ::-1])
        gray = [[0, 255, 7], [1, 2, 3]]
        ascent = _wheel_array("scipy/misc/ascent.dat", pickle.dumps(gray, protocol=2))
        assert ascent.shape == (2, 3, 3) and np.array_equal(ascent[..., 1], np.array(gray, np.uint8))
        buf = io.BytesIO()
        np.savez(buf, data=np.array(gray, np.uint8))
        assert np.array_equal(_wheel_array("pywt/data/aero.npz", buf.getvalue()), ascent)

    def test_a_pickle_that_would_call_code_is_refused(self):
        with pytest.raises(ValueError, match="plain"):
            _wheel_array("scipy/misc/ascent.dat", pickle.dumps(os.getcwd))
        with pytest.raises(ValueError, match="8-bit"):
            _wheel_array("scipy/misc/ascent.dat", pickle.dumps([[0, 256]]))


class TestCachedWheels:
    def test_names_match_case_insensitively_and_versions_exactly(self, tmp_path):
        for name in (
            "pywavelets-1.9.0-cp311-none-any.whl",
            "pywavelets-1.9.01-cp311-none-any.whl",
            "scipy-1.9.3-x.whl",
        ):
            (tmp_path / name).write_bytes(b"")
        assert [w.name for w in _cached_wheels(tmp_path, "PyWavelets==1.9.0")] == [
            "pywavelets-1.9.0-cp311-none-any.whl"
        ]
        assert _cached_wheels(tmp_path, "scipy==1.9") == []
