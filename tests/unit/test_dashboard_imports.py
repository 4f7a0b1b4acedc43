"""The Imports page: deliveries and their figures, downloads as CSV and XLSX, upload with a dry run, apply, discard."""
from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook

from tests.support.dashboard import Dashboard, csrf_token, post_form
from tests.support.imports import FORMULA, delivery, imported


@pytest.fixture
def board(database_url, store, tmp_path) -> Dashboard:
    return Dashboard.build(database_url, store=store, dailyup_dir=str(tmp_path / "dailyup"))


@pytest.fixture
def first(board, tmp_path):
    """An accepted delivery of four customers, one with a formula-like Nachname, one with a row error."""
    return imported(board.settings, delivery(tmp_path / "made", formula=True, bad_date=True))


def text_of(answer) -> str:
    return answer.get_data(as_text=True)


def audit_actions(board) -> list[tuple[str, str, str]]:
    return [(e.actor, e.action, e.target) for e in board.parts.operators.audit_entries(limit=50)]


def upload(client, path, name: str | None = None):
    token = csrf_token(text_of(client.get("/imports")))
    with open(path, "rb") as stream:
        return client.post("/imports/uploads", data={"csrf_token": token, "file": (stream, name or path.name)},
                           content_type="multipart/form-data")


def test_the_list_shows_each_delivery_with_state_rows_errors_changes_and_duration(board, first):
    page = text_of(board.signed_in("viewer").get("/imports"))
    assert "DailyUp_100200_20261102.zip" in page and f'href="/imports/{first.import_id}"' in page
    assert "accepted" in page
    assert f'<td class="num">{sum(first.rows.values())}</td>' in page
    assert '<td class="num">1</td>' in page                          # one row error
    assert "Customers: created 3" in page and "Contracts: created 6" in page
    assert " s</td>" in page                                         # the duration


def test_an_import_shows_rows_per_table_timings_and_its_row_errors(board, first):
    page = text_of(board.signed_in("operator").get(f"/imports/{first.import_id}"))
    assert '<th scope="row">kunden</th>' in page and '<td class="num">3</td>' in page
    assert "reading and checking" in page and "comparing and storing" in page
    assert "<td>GeaendertAm</td><td>5000741022</td><td>Not a valid date.</td>" in page     # the row error
    assert f'/imports/{first.import_id}/kunden.csv' in page and f'/imports/{first.import_id}/errors.xlsx' in page


def test_a_viewer_sees_no_download_and_may_neither_download_nor_upload(board, first, tmp_path):
    viewer = board.signed_in("viewer")
    page = text_of(viewer.get(f"/imports/{first.import_id}"))
    assert f"/imports/{first.import_id}/kunden.csv" not in page and "Operators can download the tables." in page
    assert "Upload a delivery" not in text_of(viewer.get("/imports"))
    assert viewer.get(f"/imports/{first.import_id}/kunden.csv").status_code == 403
    assert upload(viewer, delivery(tmp_path / "next", generation=1)).status_code == 403
    assert [a for a in audit_actions(board) if a[1].startswith("import.")] == []


def test_a_table_downloads_as_spreadsheet_ready_csv_and_the_download_is_audited(board, first):
    answer = board.signed_in("operator").get(f"/imports/{first.import_id}/kunden.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert 'filename="DailyUp_100200_20261102-kunden.csv"' in answer.headers["Content-Disposition"]
    text = answer.get_data().decode("utf-8")
    lines = text.lstrip("\ufeff").splitlines()
    assert text.startswith("\ufeff") and lines[0].startswith("Kundennummer;Vermittlernummer;")
    assert len(lines) == 1 + first.rows["kunden"]
    assert "'" + FORMULA in text                                      # defused for spreadsheets
    assert ("operator", "import.downloaded", str(first.import_id)) in audit_actions(board)


def test_a_table_downloads_as_xlsx_with_typed_dates_and_formula_like_text_kept_as_text(board, first):
    answer = board.signed_in("operator").get(f"/imports/{first.import_id}/kunden.xlsx")
    assert answer.status_code == 200
    assert answer.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = load_workbook(io.BytesIO(answer.get_data())).active
    rows = list(sheet.iter_rows())
    header = [cell.value for cell in rows[0]]
    assert header[:2] == ["Kundennummer", "Vermittlernummer"] and len(rows) == 1 + first.rows["kunden"]
    name = rows[1][header.index("Nachname")]
    assert name.value == FORMULA and name.data_type == "s"            # text, never a formula
    born = rows[1][header.index("Geburtsdatum")]
    assert born.is_date and born.number_format == "DD.MM.YYYY"


def test_the_row_errors_download_as_csv_and_xlsx(board, first):
    operator = board.signed_in("operator")
    text = operator.get(f"/imports/{first.import_id}/errors.csv").get_data().decode("utf-8")
    assert text.lstrip("\ufeff").splitlines()[0] == "file;line;column;key;message" and "kunden.csv" in text
    sheet = load_workbook(io.BytesIO(operator.get(f"/imports/{first.import_id}/errors.xlsx").get_data())).active
    assert [c.value for c in next(sheet.iter_rows())] == ["file", "line", "column", "key", "message"]
    assert sheet.max_row == 2


@pytest.mark.parametrize("path", ["/imports/999", "/imports/999/kunden.csv", "/imports/1/nichts.csv",
                                  "/imports/1/kunden.pdf", "/imports/uploads/" + "0" * 64, "/imports/uploads/x"])
def test_what_does_not_exist_is_not_found(board, first, path):
    assert board.signed_in("operator").get(path).status_code == 404


def test_an_upload_shows_the_dry_run_then_apply_puts_it_in_the_inbox_audited(board, first, tmp_path):
    operator = board.signed_in("operator")
    answer = upload(operator, delivery(tmp_path / "next", generation=1, customers=4))
    assert answer.status_code == 303
    review = answer.headers["Location"]
    page = text_of(operator.get(review))
    assert "What importing DailyUp_100200_20261103.zip would change" in page
    assert "Customers: created" in page and "Customers: deleted" in page          # one turned over
    assert "Apply" in page
    inbox = tmp_path / "dailyup" / "inbox"
    assert not inbox.exists() or list(inbox.iterdir()) == []                      # nothing taken in yet
    assert len(board.parts.imports.imports()) == 1                                # the dry run stored nothing

    applied = post_form(operator, review, review + "/apply")
    assert applied.status_code == 303
    assert [p.name for p in inbox.iterdir()] == ["DailyUp_100200_20261103.upload.zip"]
    assert "is in the inbox" in text_of(operator.get("/imports"))
    assert operator.get(review).status_code == 404                                # applied: gone from review
    actions = audit_actions(board)
    assert ("operator", "import.applied", "DailyUp_100200_20261103.zip") in actions
    assert ("operator", "import.reviewed", "DailyUp_100200_20261103.zip") in actions


def test_applying_twice_applies_once(board, first, tmp_path):
    operator = board.signed_in("operator")
    review = upload(operator, delivery(tmp_path / "next", generation=1)).headers["Location"]
    token = csrf_token(text_of(operator.get(review)))
    assert operator.post(review + "/apply", data={"csrf_token": token}).status_code == 303
    again = operator.post(review + "/apply", data={"csrf_token": token}, follow_redirects=True)
    assert "no longer waiting" in text_of(again)
    assert len(list((tmp_path / "dailyup" / "inbox").iterdir())) == 1


def test_a_discarded_upload_is_deleted_and_audited(board, first, tmp_path):
    operator = board.signed_in("operator")
    review = upload(operator, delivery(tmp_path / "next", generation=1)).headers["Location"]
    assert post_form(operator, review, review + "/discard").status_code == 303
    assert operator.get(review).status_code == 404
    assert list((tmp_path / "dailyup" / "review").glob("*.zip")) == []
    assert ("operator", "import.discarded", "DailyUp_100200_20261103.zip") in audit_actions(board)


def test_a_delivery_imported_already_cannot_be_applied_again(board, first, tmp_path):
    operator = board.signed_in("operator")
    page = text_of(operator.get(upload(operator, tmp_path / "made" / "DailyUp_100200_20261102.zip").headers["Location"]))
    assert "already imported" in page and ">Apply<" not in page and ">Discard<" in page


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("Lieferung.zip", None, "This is not a DailyUp delivery"),
    ("DailyUp_100200_20261103.zip", b"not a zip", "This is not a DailyUp delivery"),
    ("DailyUp_100200_20261103.zip", b"", "This is not a DailyUp delivery"),
])
def test_an_upload_that_is_no_delivery_is_refused_with_the_reason(board, tmp_path, name, content, expected):
    operator = board.signed_in("operator")
    path = tmp_path / "upload.zip"
    if content is None:
        path = delivery(tmp_path / "next")
    else:
        path.write_bytes(content)
    answer = upload(operator, path, name)
    assert answer.status_code == 303 and answer.headers["Location"] == "/imports"
    assert expected in text_of(operator.get("/imports"))
    assert list((tmp_path / "dailyup" / "review").glob("*.zip")) == []


def test_the_pages_speak_german(board, first):
    german = board.signed_in("operator", language="de")
    assert "Lieferung hochladen" in text_of(german.get("/imports"))
    page = text_of(german.get(f"/imports/{first.import_id}"))
    assert "Zeilenfehler" in page and "Kunden: angelegt" in page
