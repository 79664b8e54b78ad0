"""Headless Chromium for browser tests (Debian's chromium + chromedriver; no browser download).

Use as a fixture: ``from tests.browser import chrome, login  # noqa: F401`` in a test module, or
call ``make_driver()`` for more than one browser. Skips (with the reason) when Chromium is missing,
except in CI where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")


def _available() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) or shutil.which(path)):
            return f"{path} not installed (apt-get install chromium chromium-driver)"
    return None


def make_driver(width: int = 1280, height: int = 900):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic", "--autoplay-policy=no-user-gesture-required",
                 f"--window-size={width},{height}", f"--user-data-dir={tempfile.mkdtemp(prefix='chrome-')}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


@pytest.fixture
def chrome():
    reason = _available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    driver = make_driver()
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def login(driver, base_url: str, username: str, password: str) -> None:
    """Log in through the admin login form (a real session cookie, like an operator)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base_url}/admin/login/")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # Wait for the post-login page: a navigation started before it lands would be cancelled.
    WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.ID, "user-tools"))
