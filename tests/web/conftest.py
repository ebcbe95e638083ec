"""Fixtures of the browser tests: headless Chromium browsers driven by Selenium through Debian's
``chromedriver`` (the server is the pytest plugin's ``boxoffice_server``, in test mode).

Without ``chromium`` or ``chromedriver`` the tests are skipped, unless
``BOXOFFICE_REQUIRE_BROWSER`` is set (``make test`` sets it): then they fail. Every browser
runs in its own session (chromedriver and the Chromium it starts), quit at the end of its test
and then killed by that session's id, whatever is left of it.

``BOXOFFICE_SCREENSHOTS=DIR`` makes the tests save screenshots of the pages they reach in
DIR (``docs/img`` for the documentation): ``BOXOFFICE_SCREENSHOTS=docs/img pytest tests/web``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

REQUIRE_BROWSER_ENV = "BOXOFFICE_REQUIRE_BROWSER"
SCREENSHOTS_ENV = "BOXOFFICE_SCREENSHOTS"
# Wide enough for the seat map beside the cart (a phone's width is emulated where tested).
WINDOW = (1200, 900)

Browsers = Callable[..., webdriver.Chrome]


def browser_programs() -> tuple[str, str]:
    """The Chromium and chromedriver programs; skips the test when one is missing, fails it
    when ``BOXOFFICE_REQUIRE_BROWSER`` is set."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is not None and driver is not None:
        return chromium, driver
    missing = "chromium" if chromium is None else "chromedriver"
    if os.environ.get(REQUIRE_BROWSER_ENV):
        pytest.fail(f"{REQUIRE_BROWSER_ENV} is set but {missing} is not installed")
    pytest.skip(f"{missing} is not installed (Debian: apt-get install chromium chromium-driver)")


@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[Browsers]:
    """Opens headless Chromium browsers (``browsers()`` one more, with its own profile); all
    are quit after the test, and their sessions killed."""
    chromium, driver_program = browser_programs()
    opened: list[webdriver.Chrome] = []

    def open_browser(width: int = WINDOW[0], height: int = WINDOW[1]) -> webdriver.Chrome:
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in (
            "--headless=new",
            "--no-sandbox",  # tests may run as root, where Chromium's sandbox cannot start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={tmp_path / f'profile-{len(opened)}'}",
            f"--window-size={width},{height}",
        ):
            options.add_argument(flag)
        # Its own session: chromedriver and every Chromium process it starts are killed
        # together by that id, even if quitting fails.
        service = Service(driver_program, popen_kw={"start_new_session": True})
        browser = webdriver.Chrome(options=options, service=service)
        opened.append(browser)
        return browser

    try:
        yield open_browser
    finally:
        for browser in opened:
            process = browser.service.process
            with contextlib.suppress(Exception):
                browser.quit()
            if process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    process.wait(timeout=10)


@pytest.fixture
def screenshot() -> Callable[[webdriver.Chrome, str], None]:
    """``screenshot(browser, name)`` saves ``DIR/name.png`` when ``BOXOFFICE_SCREENSHOTS=DIR``
    is set, and does nothing otherwise."""
    directory = os.environ.get(SCREENSHOTS_ENV)

    def save(browser: webdriver.Chrome, name: str) -> None:
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(Path(directory) / f"{name}.png"))

    return save
