"""The app in a real browser: a Streamlit server on 127.0.0.1, driven by Selenium in headless Chromium.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them; the test is skipped
with that advice where they are missing). Every page is visited, one adaptation and one
recommendation are performed, visible text is asserted, and a screenshot of each page is saved into
``$PERSONALIZE_SCREENSHOTS`` (default: the test's temporary folder).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_S = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(real_data) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "apps" / "Home.py"), "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                    pytest.fail(f"the Streamlit server did not start: {output[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("PERSONALIZE_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def wait_for_text(driver, text: str, timeout: float = WAIT_S) -> str:
    """Wait until ``text`` is visible on the page (and no app is still running); return the page text."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = driver.find_element(By.TAG_NAME, "body").text
        if text in body:
            return body
        time.sleep(0.5)
    raise AssertionError(f"{text!r} never appeared; the page shows: {body[-1500:]}")


def settle(driver, seconds: float = 3.0) -> None:
    """Let the script run finish and tables and charts draw (they paint after the text appears)."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + WAIT_S
    while driver.find_elements(By.CSS_SELECTOR, "[data-testid='stStatusWidget']") and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(seconds)


def click_button(driver, label: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    locator = (By.XPATH, f"//button[normalize-space()='{label}']")
    WebDriverWait(driver, WAIT_S).until(expected_conditions.element_to_be_clickable(locator)).click()


def click_tab(driver, label: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    locator = (By.XPATH, f"//*[@role='tab'][contains(normalize-space(), '{label}')]")
    tab = WebDriverWait(driver, WAIT_S).until(expected_conditions.presence_of_element_located(locator))
    driver.execute_script("arguments[0].click();", tab)


def test_every_page_in_a_real_browser(server, browser, screenshots) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server)
    wait_for_text(browser, "Data and shipped models are ready")
    settle(browser)
    browser.save_screenshot(str(screenshots / "home.png"))

    browser.get(f"{server}/Sentiment")
    wait_for_text(browser, "Press Adapt to fit the model")
    click_button(browser, "Adapt")
    page = wait_for_text(browser, "After adapting")
    assert "Before adapting (zero-shot)" in page and "Frozen encoder, same examples" in page
    assert "held-out examples of the domain; adapted in" in page
    wait_for_text(browser, "Accuracy vs K on this domain")
    settle(browser)
    browser.save_screenshot(str(screenshots / "sentiment.png"))

    browser.get(f"{server}/Recommendations")
    page = wait_for_text(browser, "Top 10 from the whole catalogue")
    assert "held-out ratings, scored (MAE" in page
    settle(browser)
    browser.save_screenshot(str(screenshots / "recommendations.png"))

    browser.get(f"{server}/Benchmarks")
    wait_for_text(browser, "Cross-domain few-shot sentiment benchmark")
    settle(browser)
    charts = "[data-testid='stVegaLiteChart'], [data-testid='stArrowVegaLiteChart'], .vega-embed"
    assert browser.find_elements(By.CSS_SELECTOR, charts)  # the interactive charts drew
    browser.save_screenshot(str(screenshots / "benchmarks.png"))
    click_tab(browser, "Recommendation")
    assert "Full-catalogue ranking" in wait_for_text(browser, "Cold-start recommendation benchmark")
    click_tab(browser, "Speed, ceiling, scale")
    wait_for_text(browser, "Engine speed (CPU)")
    for name in ("home", "sentiment", "recommendations", "benchmarks"):
        assert (screenshots / f"{name}.png").stat().st_size > 10_000  # a real picture, not an empty page
