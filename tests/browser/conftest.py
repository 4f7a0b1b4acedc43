"""The dashboard on a port of 127.0.0.1 and Debian's chromium driven by Playwright.

The browser must be installed (`apt-get install chromium`, as .ci/run does): a
missing one fails these tests, it never skips them.  Every test may save
screenshots under artifacts/screenshots/ (kept out of git).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from simulators.server import ServerThread
from tests.support.dashboard import Dashboard

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-first-run", "--disable-background-networking", "--disable-component-update", "--no-sandbox",
                 "--disable-gpu"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`)", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live(tmp_path, store, database_url):
    """The dashboard (users viewer, operator, admin) served on a free port; yields (board, base URL)."""
    board = Dashboard.build(database_url, store=store, real_time=True, dashboard_login_attempts="3")
    server = ServerThread(board.app).start()
    yield board, server.url
    server.stop()


@pytest.fixture
def open_page(browser):
    """``open_page(width=1280, language="en-US")``: a fresh browser context's page; its console errors are kept."""
    contexts = []

    def make(width: int = 1280, height: int = 860, language: str = "en-US"):
        context = browser.new_context(viewport={"width": width, "height": height}, locale=language,
                                      extra_http_headers={"Accept-Language": language})
        contexts.append(context)
        page = context.new_page()
        page.console_errors = []
        page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def screenshot():
    """``screenshot(page, name)``: save the whole page as artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def live_dead_letters(tmp_path, store, database_url):
    """The dashboard with dead letters of two causes (tests.support.issues.seed) and replays going to an
    in-process broker; yields (board, base URL, topology, the seeded ids)."""
    from datetime import UTC, datetime

    from producers.memory import MemoryPublisher
    from producers.topology import build_topology
    from tests.support.issues import seed
    from tests.support.queues import MEMORY

    topology = build_topology(f"sbbrowser-{tmp_path.name[-8:]}")
    publisher = MemoryPublisher(topology, MEMORY)
    board = Dashboard.build(database_url, store=store, real_time=True, publisher=publisher)
    ids = seed(board.parts, topology, datetime.now(UTC))
    server = ServerThread(board.app).start()
    yield board, server.url, topology, ids
    server.stop()
    publisher.close()
