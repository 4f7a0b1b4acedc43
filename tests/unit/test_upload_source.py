"""A delivery uploaded over HTTP is recorded as an upload; one from the FTP drop as drop-folder."""
from __future__ import annotations

import io
import os
import shutil

import pytest

from syncbridge.adapters.db import migrate
from syncbridge.bootstrap import build_dailyup, web_app
from syncbridge.config import Settings
from syncbridge.dailyup.generate import write_delivery
from syncbridge.dailyup.importer import DailyUpImporter
from syncbridge.dailyup.intake import process_inbox


@pytest.fixture
def settings(tmp_path) -> Settings:
    url = f"sqlite:///{tmp_path}/x.db"
    migrate.upgrade(url)
    return Settings.from_env({}, database_url=url, dailyup_dir=str(tmp_path / "dailyup"))


def test_an_http_upload_is_recorded_as_upload_and_an_ftp_drop_as_drop_folder(settings, tmp_path):
    uploaded = write_delivery(tmp_path, customers=10)
    dropped = write_delivery(tmp_path, customers=10, generation=1)
    answer = web_app(settings).test_client().post(
        "/dailyup/deliveries", headers={"X-Upload-Token": "dev-dailyup-upload-token"},
        data={"file": (io.BytesIO(uploaded.read_bytes()), uploaded.name)})
    assert answer.status_code == 202, answer.get_json()
    store, folder, options = build_dailyup(settings)
    shutil.copy(dropped, folder.inbox / dropped.name)
    for path in folder.inbox.iterdir():
        os.utime(path, (0, 0))               # both have settled long ago

    results = process_inbox(DailyUpImporter(store, reader_options=options), folder)

    assert [r.state for r in results] == ["accepted", "accepted"]
    sources = {imp.file_name: imp.source for imp in store.imports()}
    assert sources == {uploaded.name: "upload", dropped.name: "drop-folder"}
