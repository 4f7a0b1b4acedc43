"""The Imports and Statistics pages in Debian's chromium: downloads, an upload with its dry run, the demo's bars."""
from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.sync_api import expect

from simulators.server import ServerThread
from simulators.stack import DEMO_LOGIN, deliver_demo_dailyup, start_stack
from syncbridge.adapters.db.events import SqlActivityLog
from syncbridge.config import Settings
from syncbridge.ports import AMEISE_TO_CRM, EventFilter
from tests.support.dashboard import PASSWORDS, Dashboard
from tests.support.imports import FORMULA, delivery, imported
from tests.support.waiting import wait_for


@pytest.fixture
def live_imports(tmp_path, store, database_url):
    """The dashboard with its own drop folder and one imported delivery; yields (board, base URL, import result)."""
    board = Dashboard.build(database_url, store=store, real_time=True, dailyup_dir=str(tmp_path / "dailyup"))
    first = imported(board.settings, delivery(tmp_path / "made", formula=True, bad_date=True))
    server = ServerThread(board.app).start()
    yield board, server.url, first
    server.stop()


def sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("form button[type=submit].primary").click()
    page.wait_for_url(re.compile(r".*/$"))


def fits(page, width: int = 375) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= width


def test_an_operator_downloads_an_import_table_as_csv_and_xlsx(live_imports, open_page, screenshot, tmp_path):
    board, base, first = live_imports
    page = open_page()
    sign_in(page, base, "operator", PASSWORDS["operator"])
    page.get_by_role("link", name="Imports").click()
    expect(page.get_by_role("cell", name=re.compile("Customers: created 3"))).to_be_visible()
    screenshot(page, "imports-en")
    page.get_by_role("link", name="DailyUp_100200_20261102.zip").click()
    expect(page.get_by_role("heading", name=re.compile("Import 1"))).to_be_visible()
    expect(page.get_by_role("cell", name="Not a valid date.")).to_be_visible()
    screenshot(page, "import-detail-en")

    with page.expect_download() as csv_download:
        page.get_by_role("link", name="kunden as CSV").click()
    csv_path = tmp_path / "kunden.csv"
    csv_download.value.save_as(csv_path)
    assert csv_download.value.suggested_filename == "DailyUp_100200_20261102-kunden.csv"
    lines = csv_path.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("Kundennummer;") and len(lines) == 1 + first.rows["kunden"]
    assert any(";'" + FORMULA + ";" in line for line in lines)

    with page.expect_download() as xlsx_download:
        page.get_by_role("link", name="kunden as XLSX").click()
    sheet = load_workbook(io.BytesIO(Path(xlsx_download.value.path()).read_bytes())).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0][0] == "Kundennummer" and len(rows) == 1 + first.rows["kunden"]
    assert [row[0] for row in rows[1:]] == [line.split(";")[0] for line in lines[1:]]     # the same rows
    assert FORMULA in rows[1]
    actions = [(e.action, e.details.get("format")) for e in board.parts.operators.audit_entries(limit=10)]
    assert ("import.downloaded", "csv") in actions and ("import.downloaded", "xlsx") in actions
    assert page.console_errors == []


def test_an_operator_uploads_a_delivery_sees_the_dry_run_and_applies_it(live_imports, open_page, screenshot, tmp_path):
    board, base, _ = live_imports
    page = open_page()
    sign_in(page, base, "operator", PASSWORDS["operator"])
    page.goto(f"{base}/imports")
    page.get_by_label(re.compile("Delivery")).set_input_files(str(delivery(tmp_path / "next", generation=1)))
    page.get_by_role("button", name="Check delivery").click()
    page.wait_for_url(re.compile(r".*/imports/uploads/[0-9a-f]{64}$"))
    expect(page.get_by_role("heading", name="What importing DailyUp_100200_20261103.zip would change")).to_be_visible()
    expect(page.get_by_role("rowheader", name="Customers: created")).to_be_visible()
    expect(page.get_by_role("rowheader", name="Customers: deleted")).to_be_visible()
    screenshot(page, "import-review-en")

    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(f"{base}/imports")
    expect(page.get_by_text("DailyUp_100200_20261103.upload.zip is in the inbox")).to_be_visible()
    screenshot(page, "imports-applied-en")
    assert [p.name for p in (tmp_path / "dailyup" / "inbox").iterdir()] == ["DailyUp_100200_20261103.upload.zip"]
    assert board.parts.operators.audit_entries(limit=1)[0].action == "import.applied"


def test_the_imports_pages_in_german_on_a_375_px_screen_by_keyboard(live_imports, open_page, screenshot, tmp_path):
    board, base, first = live_imports
    page = open_page(width=375, height=812, language="de-DE")
    sign_in(page, base, "operator", PASSWORDS["operator"])
    page.goto(f"{base}/imports")
    expect(page.get_by_role("heading", name="Lieferung hochladen")).to_be_visible()
    assert fits(page)
    screenshot(page, "imports-375-de")
    # By keyboard: the file field and the check button are reachable in order.
    page.get_by_label(re.compile("Lieferung \\(")).focus()
    page.get_by_label(re.compile("Lieferung \\(")).set_input_files(str(delivery(tmp_path / "next", generation=1)))
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Lieferung prüfen"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/imports/uploads/[0-9a-f]{64}$"))
    expect(page.get_by_role("heading", name=re.compile("Was der Import von"))).to_be_visible()
    assert fits(page)
    screenshot(page, "import-review-375-de")
    page.goto(f"{base}/imports/{first.import_id}")
    expect(page.get_by_role("heading", name="Zeilenfehler (1)")).to_be_visible()
    assert fits(page)
    screenshot(page, "import-detail-375-de")


@pytest.fixture
def demo(tmp_path):
    """The dev stack as `syncbridge run` starts it (in-process broker, fresh SQLite), with today's demo delivery."""
    settings = Settings.from_env({}, database_url=f"sqlite:///{tmp_path}/syncbridge.db",
                                 dailyup_dir=str(tmp_path / "dailyup"), dailyup_poll_seconds="0.2")
    stack = start_stack(settings, dashboard_port=0)
    try:
        deliver_demo_dailyup(stack)
        yield stack
    finally:
        stack.stop()


def test_the_statistics_page_shows_bars_for_the_demo_data(demo, open_page, screenshot):
    now = datetime.now(UTC)

    def synced() -> int:
        counts = demo.services.store.activity_counts(since=now - timedelta(days=1), until=now + timedelta(days=1))
        # The return path's updates (the demo's CRM -> Ameise saves at start are "updated" too).
        return sum(c.count for c in counts if c.action == "updated" and c.direction == "ameise_to_crm")
    wait_for(lambda: synced() >= 1, timeout=30, what="the demo delivery's changes in the CRM")

    base = demo.dashboard.url
    page = open_page()
    sign_in(page, base, *DEMO_LOGIN)
    page.get_by_role("link", name="Statistics").click()
    chart = page.get_by_role("img", name=re.compile("Customers · Ameise → Zoho CRM"))
    bars = chart.locator("rect.bar.kind-changed")
    assert bars.count() == 1
    # One bar counts each customer the delivery changed once: as many as the deliveries that updated one.
    attempts = SqlActivityLog(demo.services.store.engine).events(
        EventFilter(direction=str(AMEISE_TO_CRM), entity="customer", result="ok"), limit=500)
    changed = sum(1 for attempt in attempts if attempt.action == "updated")
    assert changed >= 1
    assert re.fullmatch(rf".*: {changed} changed", bars.first.locator("title").text_content())
    assert page.locator("rect.bar").count() >= 2
    expect(page.get_by_role("heading", name=re.compile("Last \\d+ synced records"))).to_be_visible()
    expect(page.get_by_role("cell", name=re.compile("5001234567")).first).to_be_visible()
    screenshot(page, "statistics-en")

    # The range selector by keyboard.
    page.get_by_label("Period").focus()
    page.keyboard.press("End")                 # the last option: 90 days
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/statistics\?days=90$"))
    assert page.locator("rect.bar").count() >= 2

    german = open_page(width=375, height=812, language="de-DE")
    sign_in(german, base, *DEMO_LOGIN)
    german.goto(f"{base}/statistics")
    expect(german.get_by_role("img", name=re.compile("Kunden · Ameise → Zoho CRM"))).to_be_visible()
    assert fits(german)
    screenshot(german, "statistics-375-de")
    german.goto(f"{base}/imports")
    expect(german.get_by_role("cell", name=re.compile("DailyUp_100200_"))).to_be_visible()
    assert fits(german)
    screenshot(german, "imports-demo-375-de")
    assert page.console_errors == [] and german.console_errors == []
