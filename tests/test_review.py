"""`filmclean review`: the page, its repairs, and the review -> reject -> rerun loop in a real browser
(Debian's chromium, headless, driven by Selenium; skipped where either is missing) (issue 22)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli
from media import make_png
from test_chunks import _damaged_pattern

from filmclean.io.images import read_image
from filmclean.review import find_repairs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def _stills(folder: Path, n: int = 2) -> Path:
    folder.mkdir()
    for i in range(n):
        img = (_damaged_pattern(10 * i) >> 8).astype(np.uint8)
        make_png(folder / f"still_{i}.png", img, text=None)
    return folder


def _reviewed(tmp_path: Path, capsys) -> tuple[Path, Path, Path, str]:
    """Two stills restored and reviewed: ``(originals, restored, page, the review's stderr)``."""
    src = _stills(tmp_path / "src")
    out = tmp_path / "out"
    code, _, err = run_cli(["frames", src, "-o", out, "-q"], capsys)
    assert code == 0, err
    page = tmp_path / "review.html"
    code, _, err = run_cli(["review", src, out, "-o", page], capsys)
    assert code == 0, err
    return src, out, page, err


class TestFindRepairs:
    def test_groups_and_ranks(self):
        a = np.zeros((40, 60, 3), np.float32)
        b = a.copy()
        b[5:8, 5:8] = 0.5  # 9 px
        b[20:30, 30:45] = 0.2  # 150 px
        b[20:30, 46] = 0.2  # 1 px apart: the same repair
        labels, repairs = find_repairs(a, b)
        assert len(repairs) == 2
        big, small = repairs
        assert big.pixels == 160 and big.box == (30, 20, 17, 10)
        assert small.pixels == 9 and small.change == pytest.approx(0.5)
        assert set(np.unique(labels)) == {0, big.label, small.label}


def test_page_is_self_contained(tmp_path, capsys):
    src, out, page, err = _reviewed(tmp_path, capsys)
    assert "2 picture(s)" in err
    text = page.read_text()
    assert "<script src" not in text and "http://" not in text and "https://" not in text
    assert text.count("data:image/png;base64,") >= 6  # before, after and labels of each picture


@pytest.mark.skipif(CHROMIUM is None or DRIVER is None, reason="chromium and chromedriver are not installed")
def test_reject_in_the_browser_then_rerun(tmp_path, capsys):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    src, out, page, err = _reviewed(tmp_path, capsys)

    downloads = tmp_path / "mattes"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "profile.default_content_setting_values.automatic_downloads": 1,
        },
    )
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        driver.get(page.as_uri())
        images = driver.find_elements(By.TAG_NAME, "img")
        assert len(images) >= 4
        assert all(
            driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i) for i in images
        )
        crop = driver.find_elements(By.CSS_SELECTOR, ".crop")[0]
        picture, label = int(crop.get_attribute("data-picture")), int(crop.get_attribute("data-id"))
        crop.click()
        assert "rejected" in crop.get_attribute("class")
        assert "1 repair(s) rejected" in driver.find_element(By.ID, "status").text
        driver.find_element(By.ID, "export").click()
        deadline = time.time() + 20
        while time.time() < deadline and len([p for p in downloads.glob("*.png")]) < 2:
            time.sleep(0.2)
    finally:
        driver.quit()
    mattes = sorted(p.name for p in downloads.glob("*.png"))
    assert mattes == ["still_0.png", "still_1.png"]

    name = f"still_{picture}.png"
    before, after = read_image(src / name).rgb, read_image(out / name).rgb
    labels, _ = find_repairs(before, after)
    region = labels == label
    matte = read_image(downloads / name).rgb[..., 0] > 0.5
    np.testing.assert_array_equal(matte, region)  # exactly the rejected repair's pixels

    again = tmp_path / "again"
    code, _, err = run_cli(["frames", src, "-o", again, "--protect", downloads, "-q"], capsys)
    assert code == 0, err
    rerun = read_image(again / name).rgb
    np.testing.assert_array_equal(rerun[region], before[region])  # the rejected repair is not made
    others = (labels > 0) & ~region
    if others.any():
        assert (rerun[others] != before[others]).any()  # the other repairs still are


def test_reel_review_and_mattes_by_frame_number(tmp_path, capsys):
    from media import decode_frames
    from test_chunks import make_damaged_clip

    clip = make_damaged_clip(tmp_path / "reel.mkv", n=10)
    out = tmp_path / "out.mkv"
    code, _, err = run_cli(["restore", clip, "-o", out, "-q"], capsys)
    assert code == 0, err
    page = tmp_path / "review.html"
    code, _, err = run_cli(["review", clip, out, "-o", page, "--frames", "3"], capsys)
    assert code == 0, err
    assert "3 picture(s)" in err and page.read_text().count('"name": "frame_0000') == 3
    mattes = tmp_path / "mattes"
    mattes.mkdir()
    make_png(mattes / "frame_000003.png", np.full((64, 96), 255, np.uint8), text=None)  # protect frame 3 whole
    again = tmp_path / "again.mkv"
    code, _, err = run_cli(["restore", clip, "-o", again, "--protect", mattes, "-q"], capsys)
    assert code == 0, err
    src, first, second = decode_frames(clip), decode_frames(out), decode_frames(again)
    np.testing.assert_array_equal(second[3][1], src[3][1])  # frame 3 untouched
    assert not np.array_equal(first[3][1], src[3][1])  # (it was repaired without the matte)
    np.testing.assert_array_equal(second[5][1], first[5][1])  # frames without a matte file as before
