"""The hostile-input corpus, runtime side: outputs checked against inputs, non-finite pixels, signals
and stale partial files, tiny and thin frames in temporal mode, memory-bounded tiling, time ranges,
output folders. Each case failed before its fix (see the issue on defects found by that corpus)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_cli, small_temporal_model
from media import make_clip, make_exr, make_png

from filmclean.backends import TorchBackend
from filmclean.engine import NeighbourlessStack, RestoreOptions, Restorer, clean_tile, valid_pixels
from filmclean.io import partial_path, remove_stale_partials
from filmclean.io.images import read_image
from filmclean.modelfile import save_model
from filmclean.nets import build_network, network_info
from filmclean.temporal import build_stack
from filmclean.tiling import BandAccumulator, TileAccumulator, extract_tiles, make_grid, pad_frame, read_tile

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "default.safetensors"


@pytest.fixture(scope="module")
def tinymask(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    cfg = {"channels": 6, "layers": 2, "seed": 2, "size_multiple": 4}
    return save_model(build_network("tinymask", cfg), "tinymask", cfg, d / "tinymask.safetensors")


@pytest.fixture(scope="module")
def temporal_model(tmp_path_factory) -> Path:
    return small_temporal_model(tmp_path_factory.mktemp("tmodel") / "temporal.safetensors", perturb=0.05)


def _pictures(folder: Path, n: int = 3, size: int = 40) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    return [
        make_png(folder / f"scan_{k:03d}.png", rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8), text=None)
        for k in range(n)
    ]


def _damaged(size: int = 96) -> np.ndarray:
    """A smooth float picture with dark specks and a hair-like line (what the shipped model repairs)."""
    import cv2

    rng = np.random.default_rng(0)
    img = cv2.resize(rng.random((6, 6, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    img = img * 0.6 + 0.2 + rng.normal(0, 0.01, (size, size, 3)).astype(np.float32)
    for y, x in [(20, 20), (60, 30), (40, 70), (75, 75)]:
        img[y : y + 4, x : x + 4] = 0.02
    cv2.line(img, (5, 90), (90, 50), (0.05, 0.05, 0.05), 1)
    return np.clip(img, 0, 1).astype(np.float32)


class TestOutputsAgainstInputs:
    """Defect 1: --mask-out into the input folder replaced the scans by masks."""

    def test_mask_out_into_input_folder_is_refused(self, tmp_path, capsys, tinymask):
        files = _pictures(tmp_path / "scans")
        before = [f.read_bytes() for f in files]
        code, _, err = run_cli(
            [
                "frames",
                tmp_path / "scans",
                "-o",
                tmp_path / "out",
                "--mask-out",
                tmp_path / "scans",
                "--model",
                tinymask,
                "--backend",
                "torch",
                "-q",
            ],
            capsys,
        )
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "--mask-out" in err and str(tmp_path / "scans") in err
        assert [f.read_bytes() for f in files] == before
        assert sorted(p.name for p in (tmp_path / "scans").iterdir()) == [f.name for f in files]
        assert not (tmp_path / "out").exists()  # refused before anything was created

    def test_mask_out_equal_to_output_is_refused(self, tmp_path, capsys, tinymask):
        _pictures(tmp_path / "scans")
        out = tmp_path / "out"
        code, _, err = run_cli(
            [
                "frames",
                tmp_path / "scans",
                "-o",
                out,
                "--mask-out",
                out,
                "--model",
                tinymask,
                "--backend",
                "torch",
                "-q",
            ],
            capsys,
        )
        assert code == 2 and "output folder" in err and len(err.strip().splitlines()) == 1
        assert not out.exists()

    def test_mask_names_that_collide_are_refused(self, tmp_path, capsys, tinymask):
        scans = tmp_path / "scans"
        scans.mkdir()
        rng = np.random.default_rng(1)
        make_png(scans / "a.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), text=None)
        from media import make_tiff

        make_tiff(scans / "a.tif", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        code, _, err = run_cli(
            [
                "frames",
                scans,
                "-o",
                tmp_path / "out",
                "--mask-out",
                tmp_path / "masks",
                "--model",
                tinymask,
                "--backend",
                "torch",
                "-q",
            ],
            capsys,
        )
        assert code == 2 and "a.png" in err

    def test_separate_folders_still_work(self, tmp_path, capsys, tinymask):
        files = _pictures(tmp_path / "scans", n=2)
        code, _, err = run_cli(
            [
                "frames",
                tmp_path / "scans",
                "-o",
                tmp_path / "out",
                "--mask-out",
                tmp_path / "masks",
                "--model",
                tinymask,
                "--backend",
                "torch",
                "-q",
            ],
            capsys,
        )
        assert code == 0, err
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f.name for f in files]
        masks = sorted((tmp_path / "masks").iterdir())
        assert [m.name for m in masks] == [f.name for f in files]
        mask = read_image(masks[0])
        assert mask.grey and mask.bits == 16


class TestNonFinitePixels:
    """Defect 5: one NaN or Inf pixel in an EXR turned all repair off."""

    @pytest.mark.skipif(not SHIPPED.is_file(), reason="needs the shipped default model")
    def test_nan_inf_pass_through_and_the_rest_is_restored(self, tmp_path, capsys):
        clean = _damaged()
        bad = clean.copy()
        bad[50, 50, 1] = np.nan
        bad[10, 80] = np.inf
        bad[85, 10, 0] = 3.0
        bad[30, 5, 2] = -0.5
        for name, img in (("plain", clean), ("hostile", bad)):
            (tmp_path / name).mkdir()
            make_exr(tmp_path / name / "a.exr", img, half=False)
            code, _, err = run_cli(
                [
                    "frames",
                    tmp_path / name,
                    "-o",
                    tmp_path / f"out-{name}",
                    "--no-temporal",
                    "--model",
                    SHIPPED,
                    "--backend",
                    "torch",
                    "-q",
                ],
                capsys,
            )
            assert code == 0, err
        a = read_image(tmp_path / "out-plain" / "a.exr").rgb
        b = read_image(tmp_path / "out-hostile" / "a.exr").rgb
        changed_plain = int((a != clean).any(axis=-1).sum())
        changed = int(((b != bad) & ~(np.isnan(b) & np.isnan(bad))).any(axis=-1).sum())
        assert changed_plain > 50
        assert changed >= 0.8 * changed_plain  # the rest of the frame is still restored
        assert np.isnan(b[50, 50, 1]) and np.isinf(b[10, 80]).all()  # passed through untouched
        assert b[85, 10, 0] == 3.0 and b[30, 5, 2] == np.float32(-0.5)
        far = np.ones(clean.shape[:2], bool)
        for y, x in [(50, 50), (10, 80), (85, 10), (30, 5)]:
            far[max(0, y - 20) : y + 21, max(0, x - 20) : x + 21] = False
        # away from them, the same repair (the fill is not strictly local: values agree to 1e-3)
        np.testing.assert_array_equal((a != clean).any(axis=-1)[far], (b != bad).any(axis=-1)[far])
        np.testing.assert_allclose(a[far], b[far], rtol=0, atol=1e-3)

    def test_restorer_masks_invalid_pixels_and_cleans_tiles(self, tinymask):
        from filmclean.modelfile import load_torch_network

        net, _ = load_torch_network(tinymask)
        r = Restorer(
            TorchBackend(net, network_info(net), device="cpu"), RestoreOptions(tile=None, threshold=0.0, max_width=None)
        )
        frame = _damaged(32)
        frame[3, 4] = np.nan
        frame[10, 10, 0] = 7.0
        res = r.restore(frame)
        assert np.isfinite(res.mask).all() and res.mask[3, 4] == 0 and res.mask[10, 10] == 0
        assert np.isnan(res.image[3, 4]).all() and res.image[10, 10, 0] == 7.0
        ok = valid_pixels(frame)
        assert np.isfinite(res.image[ok]).all() and (res.image[ok] != frame[ok]).any()  # threshold 0: all repaired

    def test_clean_tile(self):
        t = np.full((3, 9, 9), 0.5, np.float32)
        t[1, 4, 4] = np.nan
        t[0, 0, 0] = np.inf
        t[2, 8, 8] = -3
        clean_tile(t)
        assert np.isfinite(t).all() and t.min() >= 0 and t.max() <= 1
        assert t[1, 4, 4] == pytest.approx(0.5)  # filled from its neighbours, not a speck


def _wait_for(pattern_dir: Path, glob: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and not any(pattern_dir.glob(glob)):
        time.sleep(0.05)
    assert any(pattern_dir.glob(glob)), f"no {glob} appeared"


class TestSignals:
    """Defect 6: SIGTERM/SIGKILL left hidden partial files, never removed."""

    def _start(self, args: list[str]) -> subprocess.Popen:
        env = {**os.environ}
        return subprocess.Popen(
            [sys.executable, "-m", "filmclean.cli", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=_default_signals,
        )

    def test_sigterm_is_handled_like_ctrl_c(self, tmp_path, tinymask):
        src = make_clip(tmp_path / "long.mkv", n=200, w=256, h=192, audio=True)
        out = tmp_path / "out.mkv"
        proc = self._start(
            [
                "restore",
                src,
                "-o",
                out,
                "--model",
                tinymask,
                "--backend",
                "torch",
                "--tile",
                "64",
                "--mask-out",
                tmp_path / "mask.mkv",
                "-q",
            ]
        )
        _wait_for(tmp_path, ".out.partial*")
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert "terminated" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not out.exists() and not (tmp_path / "mask.mkv").exists()
        assert not list(tmp_path.glob(".*partial*"))

    def test_an_ignored_sighup_stays_ignored(self, tmp_path, tinymask):
        """Under nohup (SIGHUP ignored) a closed terminal must not stop the run."""
        src = make_clip(tmp_path / "clip.mkv", n=40, w=128, h=96, audio=False)
        out = tmp_path / "out.mkv"

        def nohup() -> None:
            _default_signals()
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

        proc = subprocess.Popen(
            [sys.executable, "-m", "filmclean.cli", "restore", str(src), "-o", str(out), "--model", str(tinymask),
             "--backend", "torch", "--tile", "64", "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=nohup,
        )  # fmt: skip
        _wait_for(tmp_path, ".out.partial*")
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.is_file() and not list(tmp_path.glob(".*partial*"))

    def test_sigkill_partials_are_removed_by_the_next_run(self, tmp_path, tinymask):
        src = make_clip(tmp_path / "long.mkv", n=200, w=256, h=192, audio=False)
        out = tmp_path / "out.mkv"
        args = ["restore", src, "-o", out, "--model", tinymask, "--backend", "torch", "--tile", "64", "-q"]
        proc = self._start(args)
        _wait_for(tmp_path, ".out.partial*")
        proc.kill()
        proc.communicate(timeout=60)
        assert list(tmp_path.glob(".out.partial*"))  # SIGKILL cannot be handled: the partial stays
        proc = self._start(
            [
                "restore",
                make_clip(tmp_path / "short.mkv", n=3, audio=False),
                "-o",
                out,
                "--model",
                tinymask,
                "--backend",
                "torch",
                "-q",
            ]
        )
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.exists() and not list(tmp_path.glob(".out.partial*"))

    def test_frames_sigkill_partials_are_removed(self, tmp_path, capsys, tinymask):
        _pictures(tmp_path / "scans", n=2)
        out = tmp_path / "out"
        out.mkdir()
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        stale = partial_path(out / "scan_000.png")
        stale = stale.with_name(stale.name.replace(f"-{os.getpid()}-", f"-{dead.pid}-"))
        stale.write_bytes(b"half a file")
        live = partial_path(out / "scan_001.png")  # this process is alive: a concurrent run's file
        live.write_bytes(b"being written")
        code, _, err = run_cli(
            ["frames", tmp_path / "scans", "-o", out, "--model", tinymask, "--backend", "torch", "-q"], capsys
        )
        assert code == 0, err
        assert not stale.exists() and live.exists()
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["scan_000.png", "scan_001.png"]

    def test_remove_stale_partials_leaves_other_files(self, tmp_path):
        (tmp_path / ".notes.partial").write_text("x")
        (tmp_path / "a.png").write_text("x")
        assert remove_stale_partials(tmp_path) == 0
        assert remove_stale_partials(tmp_path / "missing") == 0


def _default_signals() -> None:
    """Children start with SIGINT/SIGTERM at their defaults even under nohup-like runners."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class TestSmallFramesTemporal:
    """Defect 7: tracebacks in the default temporal mode for tiny or thin frames."""

    @pytest.mark.parametrize("w,h", [(9, 9), (10, 10), (4000, 8), (8, 600)])
    def test_clip(self, tmp_path, capsys, temporal_model, w, h):
        fmt = "yuv420p" if w % 2 == h % 2 == 0 else "yuv444p"
        src = make_clip(tmp_path / "in.mkv", n=4, w=w, h=h, pix_fmt=fmt, audio=False)
        code, _, err = run_cli(
            ["restore", src, "-o", tmp_path / "out.mkv", "--model", temporal_model, "--backend", "torch", "-q"], capsys
        )
        assert code == 0, err
        assert "Traceback" not in err

    def test_png_sequence(self, tmp_path, capsys, temporal_model):
        seq = tmp_path / "seq"
        seq.mkdir()
        rng = np.random.default_rng(2)
        for k in range(3):
            make_png(seq / f"reel_{k:04d}.png", rng.integers(0, 256, (10, 10, 3), dtype=np.uint8), text=None)
        code, _, err = run_cli(
            ["frames", seq, "-o", tmp_path / "out", "--model", temporal_model, "--backend", "torch"], capsys
        )
        assert code == 0, err
        assert "temporal" in err and len(list((tmp_path / "out").iterdir())) == 3


class TestBoundedTiling:
    """Defect 8: frame-sized buffers multiplied (a 12000x12000 PNG reached 11.9 GB). The figure for a
    100-megapixel still comes from benchmarks/bench_large_still.py; these check the parts."""

    @pytest.mark.parametrize(
        "h,w,tile,overlap,mult,margin",
        [
            (37, 51, 24, 8, 8, 5),
            (100, 70, 32, 12, 4, 6),
            (5, 7, 8, 2, 4, 2),
            (64, 64, 16, 0, 1, 0),
            (3, 4, 16, 2, 16, 6),  # reflected more than once
            (1, 9, 8, 2, 4, 3),  # one row
            (200, 300, 96, 40, 16, 16),
        ],
    )
    def test_read_tile_equals_padded_tile(self, h, w, tile, overlap, mult, margin):
        x = np.random.default_rng(0).random((3, h, w), dtype=np.float32)
        grid = make_grid(h, w, tile, overlap, mult, margin, guard=2)
        tiles = extract_tiles(pad_frame(x, grid), grid, list(range(len(grid))))
        for i, (y, xx, _, _) in enumerate(grid.positions):
            np.testing.assert_array_equal(read_tile(x, grid, y, xx), tiles[i])

    @pytest.mark.parametrize("h,w,tile,overlap", [(100, 70, 32, 12), (37, 51, 24, 8), (20, 20, 64, 4)])
    def test_bands_equal_whole_accumulator(self, h, w, tile, overlap):
        x = np.random.default_rng(1).random((4, h, w), dtype=np.float32)
        grid = make_grid(h, w, tile, overlap, 4, 3, guard=3)
        padded = pad_frame(x, grid)
        whole = TileAccumulator(grid, 4)
        band = BandAccumulator(grid, 4)
        rows = []
        for i in range(len(grid)):
            t = extract_tiles(padded, grid, [i])[0] * 1.5
            whole.add(i, t)
            band.add(i, t)
            if grid.positions[i][3] == len(grid.xs) - 1:
                rows.append(band.finish_row())
        assert [r0 for r0, _ in rows] == sorted(r0 for r0, _ in rows) and rows[0][0] == 0
        got = np.concatenate([b for _, b in rows], axis=1)
        np.testing.assert_array_equal(got, whole.result())
        assert band.acc.shape[1] == grid.tile_h  # one row of tiles, not the frame

    def test_band_rejects_tiles_out_of_order(self):
        grid = make_grid(64, 64, 16, 4, 1, 0)
        band = BandAccumulator(grid, 1)
        with pytest.raises(ValueError):
            band.add(len(grid.xs), np.zeros((1, grid.tile_h, grid.tile_w), np.float32))

    @pytest.mark.parametrize("tile", [None, 24])
    def test_in_place_equals_out_of_place(self, tile, tinymask):
        from filmclean.modelfile import load_torch_network

        net, _ = load_torch_network(tinymask)
        r = Restorer(TorchBackend(net, network_info(net), device="cpu"), RestoreOptions(tile=tile, overlap=8))
        frame = _damaged(60)
        expected = r.restore(frame)
        inplace = frame.copy()
        got = r.restore(inplace, out=inplace)
        assert got.image is inplace
        np.testing.assert_array_equal(got.image, expected.image)
        np.testing.assert_array_equal(got.mask, expected.mask)
        assert r.restore(frame, mask=False).mask is None

    def test_neighbourless_stack_equals_build_stack(self):
        rgb = np.random.default_rng(3).random((13, 17, 3), dtype=np.float32)
        lazy = NeighbourlessStack(rgb)
        full = build_stack(rgb, None, None)
        assert lazy.shape == full.shape
        np.testing.assert_array_equal(lazy[:, 2:9, 3:15], full[:, 2:9, 3:15])

    def test_batch_is_bounded_in_pixels(self, monkeypatch):
        import filmclean.engine as engine

        sizes = []

        class Spy:
            info = {"size_multiple": 1, "receptive_radius": 2, "has_mask": False, "in_channels": 3}

            def __call__(self, tiles):
                sizes.append(tiles.shape[0] * tiles.shape[2] * tiles.shape[3])
                return tiles, None

        monkeypatch.setattr(engine, "BATCH_PIXELS", 3000)
        Restorer(Spy(), RestoreOptions(tile=32, overlap=4, batch=8)).restore(np.zeros((100, 100, 3), np.float32))
        assert max(sizes) <= 3000 and len(sizes) > 1

    def test_plan_keeps_frames_whole_and_bounds_huge_ones(self):
        import filmclean.engine as engine

        class Shipped:  # the shipped single-frame model's geometry
            info = {"size_multiple": 16, "receptive_radius": 178, "has_mask": True, "in_channels": 3}

        r = Restorer(Shipped(), RestoreOptions())
        assert len(r._grid(1080, 1920)) == 1  # a 1080p frame is still one tile
        grid, batch = r._plan(10000, 10000)
        area = grid.tile_h * grid.tile_w
        work = area * batch * (engine.NETWORK_BYTES_PER_PIXEL + 36) + 20 * grid.tile_h * grid.padded_shape[1]
        assert work <= engine.WORK_BUDGET and grid.tile_h < 2048 and batch == 1

    def test_huge_frames_release_the_networks_memory(self, monkeypatch):
        import filmclean.engine as engine

        class Spy:
            info = {"size_multiple": 1, "receptive_radius": 2, "has_mask": False, "in_channels": 3}
            released = 0

            def __call__(self, tiles):
                return tiles, None

            def release_memory(self):
                self.released += 1

        spy = Spy()
        r = Restorer(spy, RestoreOptions(tile=32, overlap=4))
        r.restore(np.zeros((40, 40, 3), np.float32))
        assert spy.released == 0  # ordinary frames keep the arena for the next one
        monkeypatch.setattr(engine, "RELEASE_PIXELS", 1000)
        r.restore(np.zeros((40, 40, 3), np.float32))
        assert spy.released == 1

    @pytest.mark.skipif(not (ROOT / "models" / "default.onnx").is_file(), reason="needs the shipped ONNX model")
    def test_onnx_release_memory_runs(self):
        from filmclean.model import load_model

        be = load_model(ROOT / "models" / "default.onnx", backend="onnx")
        be.release_memory()
        out, mask = be(np.zeros((1, 3, 32, 32), np.float32))
        assert out.shape == (1, 3, 32, 32) and mask is not None


class TestTimeRange:
    """Defect 11: --start nan|inf|1e308 gave tracebacks."""

    @pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e308"])
    def test_bad_start(self, tmp_path, capsys, tinymask, value):
        src = make_clip(tmp_path / "in.mkv", n=3, audio=False)
        code, _, err = run_cli(
            [
                "restore",
                src,
                "-o",
                tmp_path / "out.mkv",
                "--start",
                value,
                "--model",
                tinymask,
                "--backend",
                "torch",
                "-q",
            ],
            capsys,
        )
        assert code == 2 and "Traceback" not in err
        assert "--start" in err.strip().splitlines()[-1]  # click's usage error, or our one line
        assert not (tmp_path / "out.mkv").exists() and not list(tmp_path.glob(".out*"))


class TestOutputFolders:
    """Defect 11: an unwritable new output folder gave a traceback; a failed run left an empty folder."""

    def test_output_folder_that_cannot_be_made(self, tmp_path, capsys, tinymask, monkeypatch):
        _pictures(tmp_path / "scans", n=1)
        real_mkdir = Path.mkdir

        def read_only(self, *args, **kwargs):
            if "ro" in self.parts:
                raise OSError(30, "Read-only file system")
            return real_mkdir(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", read_only)
        code, _, err = run_cli(
            [
                "frames",
                tmp_path / "scans",
                "-o",
                tmp_path / "ro" / "new",
                "--model",
                tinymask,
                "--backend",
                "torch",
                "-q",
            ],
            capsys,
        )
        assert code == 2 and "Read-only file system" in err and str(tmp_path / "ro" / "new") in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1

    def test_failed_run_leaves_no_empty_folder(self, tmp_path, capsys, tinymask):
        scans = tmp_path / "scans"
        scans.mkdir()
        (scans / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
        out, masks = tmp_path / "new" / "out", tmp_path / "new" / "masks"
        code, _, err = run_cli(
            ["frames", scans, "-o", out, "--mask-out", masks, "--model", tinymask, "--backend", "torch", "-q"], capsys
        )
        assert code == 2 and "broken.png" in err
        assert not out.exists() and not masks.exists()

    def test_existing_folder_is_kept(self, tmp_path, capsys, tinymask):
        scans = tmp_path / "scans"
        scans.mkdir()
        (scans / "broken.png").write_bytes(b"not a png")
        out = tmp_path / "out"
        out.mkdir()
        code, _, _ = run_cli(["frames", scans, "-o", out, "--model", tinymask, "--backend", "torch", "-q"], capsys)
        assert code == 2 and out.is_dir()
