"""Headless Chromium for the browser tests (test_book, test_explorer_browser), driven by Selenium.

Chromium and its driver come from the system (Debian: ``apt-get install chromium chromium-driver``; browsers
are never downloaded at run time), ``selenium`` from the dev extra. Without them a test is skipped with one
line saying what to install; with ``AGAN_REQUIRE_BROWSER=1`` (set by ``.ci/run``) it fails instead.
"""

from __future__ import annotations

import os
import shutil

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver")
INSTALL = "install Chromium and its driver (Debian: apt-get install chromium chromium-driver) and selenium"


def _which(names) -> str | None:
    return next((shutil.which(n) for n in names if shutil.which(n)), None)


def missing(what: str):
    """Skip (or, under AGAN_REQUIRE_BROWSER=1, fail) saying what to install."""
    message = f"no {what}: {INSTALL}"
    if os.environ.get("AGAN_REQUIRE_BROWSER") == "1":
        pytest.fail(message + " (AGAN_REQUIRE_BROWSER=1)")
    pytest.skip(message)


def chromium(window: str = "1400,1000"):
    """A headless Chromium WebDriver (the caller quits it), or skip/fail via :func:`missing`."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium")
    binary, driver = _which(BROWSERS), _which(DRIVERS)
    if binary is None or driver is None:
        missing("Chromium on PATH" if binary is None else "chromedriver on PATH")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={window}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)
