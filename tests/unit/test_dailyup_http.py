"""The DailyUp routes of the receiver: upload errors and the admin API, on a SQLite file and a temporary drop folder."""
from __future__ import annotations

import io

import pytest

from syncbridge.adapters.db import migrate
from syncbridge.bootstrap import web_app
from syncbridge.config import Settings
from syncbridge.dailyup.generate import write_delivery
from syncbridge.dailyup.importer import DailyUpImporter
from syncbridge.dailyup.intake import DropFolder, import_delivery

UPLOAD = {"X-Upload-Token": "dev-dailyup-upload-token"}
ADMIN = {"X-Admin-Token": "dev-admin-token"}


@pytest.fixture
def settings(tmp_path) -> Settings:
    url = f"sqlite:///{tmp_path}/x.db"
    migrate.upgrade(url)
    return Settings.from_env({}, database_url=url, dailyup_dir=str(tmp_path / "dailyup"),
                             dailyup_max_upload_bytes="200000")


@pytest.fixture
def http(settings):
    return web_app(settings).test_client()


@pytest.fixture
def delivery(tmp_path):
    return write_delivery(tmp_path, customers=30)


def inbox(settings):
    return sorted(p.name for p in DropFolder.at(settings.dailyup_dir).inbox.iterdir())


# ---------------------------------------------------------------- upload
def test_upload_as_multipart_and_as_raw_body(http, settings, delivery):
    multipart = http.post("/dailyup/deliveries", headers=UPLOAD,
                          data={"file": (io.BytesIO(delivery.read_bytes()), delivery.name)})
    raw = http.post(f"/dailyup/deliveries?name={delivery.name}", data=delivery.read_bytes(),
                    headers={"Authorization": "Bearer dev-dailyup-upload-token", "Content-Type": "application/zip"})

    assert multipart.status_code == 202 and raw.status_code == 202
    body = multipart.get_json()
    assert body["status"] == "received" and body["bytes"] == delivery.stat().st_size
    assert body["status_url"] == f"/dailyup/imports?sha256={body['sha256']}"
    assert len(inbox(settings)) == 2   # the same name twice: both kept for the importer to judge


@pytest.mark.parametrize(("headers", "status", "error"), [
    ({}, 401, "unauthorized"),
    ({"X-Upload-Token": "wrong"}, 401, "unauthorized"),
    ({"X-Upload-Token": "dev-admin-token"}, 401, "unauthorized"),   # the admin secret is not the upload secret
])
def test_upload_needs_its_secret(http, settings, delivery, headers, status, error):
    answer = http.post("/dailyup/deliveries", headers=headers,
                       data={"file": (io.BytesIO(delivery.read_bytes()), delivery.name)})

    assert answer.status_code == status and answer.get_json()["error"] == error
    assert inbox(settings) == []


def test_bad_uploads_get_clear_answers_and_leave_nothing(http, settings, delivery):
    data = delivery.read_bytes()
    cases = [
        (http.post("/dailyup/deliveries", headers=UPLOAD, data={"file": (io.BytesIO(data), "kunden.zip")}),
         400, "is not named DailyUp_"),
        (http.post("/dailyup/deliveries", headers=UPLOAD, data={"other": (io.BytesIO(data), delivery.name)}),
         400, "multipart field 'file'"),
        (http.post("/dailyup/deliveries", headers={**UPLOAD, "Content-Type": "text/csv"}, data=b"a;b\n"),
         415, "Send a ZIP"),
        (http.post(f"/dailyup/deliveries?name={delivery.name}", headers={**UPLOAD, "Content-Type": "application/zip"},
                   data=b"Kundennummer;Personentyp\n"), 400, "not a ZIP"),
        (http.post(f"/dailyup/deliveries?name={delivery.name}", headers={**UPLOAD, "Content-Type": "application/zip"},
                   data=b"PK\x03\x04" + b"0" * 300_000), 413, ""),
    ]
    for answer, status, text in cases:
        assert answer.status_code == status, answer.get_data(as_text=True)
        body = answer.get_json()
        assert text in body["message"] and "Traceback" not in answer.get_data(as_text=True)
    assert inbox(settings) == []


def test_an_upload_larger_than_the_webhook_limit_is_fine(http, settings, tmp_path):
    (tmp_path / "big").mkdir()
    big = write_delivery(tmp_path / "big", customers=1000)

    answer = http.post("/dailyup/deliveries", headers=UPLOAD, data={"file": (io.BytesIO(big.read_bytes()), big.name)})

    assert big.stat().st_size > settings.max_body_bytes
    assert answer.status_code == 202, answer.get_json()


# ---------------------------------------------------------------- admin API
@pytest.fixture
def imported(settings, delivery, tmp_path):
    from syncbridge.adapters.db.dailyup import SqlDailyUpStore

    store = SqlDailyUpStore.from_url(settings.database_url)
    folder = DropFolder.at(settings.dailyup_dir)
    result = import_delivery(DailyUpImporter(store), folder, delivery, source="cli", keep_original=True)
    assert result.state == "accepted"
    return result


def test_the_admin_api_needs_its_secret(http, imported):
    for path in ("/dailyup/imports", "/dailyup/imports/latest", f"/dailyup/imports/{imported.import_id}/kunden.csv"):
        assert http.get(path).status_code == 401
        assert http.get(path, headers=UPLOAD).status_code == 401


def test_imports_list_detail_and_downloads(http, imported, delivery):
    listed = http.get("/dailyup/imports", headers=ADMIN).get_json()["imports"]
    latest = http.get("/dailyup/imports/latest", headers=ADMIN).get_json()
    by_sha = http.get(f"/dailyup/imports?sha256={listed[0]['sha256']}", headers=ADMIN).get_json()["imports"]

    assert [i["id"] for i in listed] == [imported.import_id] == [i["id"] for i in by_sha]
    assert latest["file_name"] == delivery.name and latest["rows"]["kunden"] == 30
    assert latest["downloads"]["kunden"] == f"/dailyup/imports/{imported.import_id}/kunden.csv"
    csv_answer = http.get(latest["downloads"]["sparten"], headers=ADMIN)
    assert csv_answer.status_code == 200 and csv_answer.mimetype == "text/csv"
    assert "attachment" in csv_answer.headers["Content-Disposition"]
    assert csv_answer.get_data().decode("utf-8-sig").startswith("ID;Text\r\n")


@pytest.mark.parametrize(("path", "status"), [
    ("/dailyup/imports/999", 404),
    ("/dailyup/imports/abc", 404),
    ("/dailyup/imports/latest/nothing.csv", 404),
    ("/dailyup/imports?limit=x", 400),
])
def test_admin_api_errors_are_json(http, imported, path, status):
    answer = http.get(path, headers=ADMIN)

    assert answer.status_code == status and answer.get_json()["message"]
