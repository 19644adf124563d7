"""Playwright (sync API) driving Debian's Chromium against pytest-django's live server.

Never `playwright install`: the browser is /usr/bin/chromium. The sync API runs an event loop
in this thread, so Django's async-safety check must be told that the ORM calls made by the test
itself (fixtures, assertions) are fine. That is set per browser test and Playwright is stopped
after each, so no other test of the suite runs with the check off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.personas import *  # noqa: F403

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    # Remembered on the test item so the page fixture can tell, at teardown, that it failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


# The two widths every page must work at: a desktop and a narrow laptop / split screen.
WIDTHS = (1440, 800)


@pytest.fixture
def page(browser, request: pytest.FixtureRequest) -> Iterator[object]:  # type: ignore[no-untyped-def]
    # A test parametrized with `width` (one of WIDTHS) runs at that width.
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    width = int(params.get("width", 1400))
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    # Any script error on any page fails the test: the dashboard must run without them.
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        # What the browser showed when the test failed: the first thing to look at in CI.
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"FAILED-{request.node.name}.png"
        # A crashed page must not hide the test's own failure.
        with contextlib.suppress(Exception):
            tab.screenshot(path=str(path), full_page=True)
    context.close()
    if errors:
        pytest.fail(f"script errors on the page: {errors}")


@pytest.fixture
def screenshot(page):  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        width = (page.viewport_size or {}).get("width", 1400)
        path = SCREENSHOTS / (f"{name}.png" if width == 1400 else f"{name}-{width}.png")
        # Sticky bars would be drawn at the scroll position in a full-page capture.
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
