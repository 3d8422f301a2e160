"""Debian's chromium driven by Playwright (never a downloaded browser), for the portal's
real-browser tests.

    from tests.browsing import chromium, log_in, page   # noqa: F401 (fixtures)

    def test_x(portal, page):
        log_in(page, portal.base_url, CLINICIAN.name, CLINICIAN.password)

`chromium` is one browser per module with a fresh profile in the test's temp dir (so a test can
scan it); `page` is a new tab with no cookies. The portal's certificate is self-signed: HTTPS
errors are ignored here, and tests/portaling.py's client checks the certificate instead.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from bench.served_portal import CHROMIUM, FLAGS, log_in  # noqa: F401 (log_in: for the tests)

TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """A Playwright BrowserContext over Debian's chromium (profile: `chromium.profile_dir`)."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=FLAGS, headless=True, ignore_https_errors=True,
            viewport={"width": 1280, "height": 800})
        context.set_default_timeout(TIMEOUT_MS)
        context.profile_dir = profile
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(chromium):
    chromium.clear_cookies()
    tab = chromium.new_page()
    try:
        yield tab
    finally:
        tab.close()
