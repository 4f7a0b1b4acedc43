"""The drop folder, uploads, the daily watch and the spreadsheet CSV, with a recording importer."""
from __future__ import annotations

import csv
import io
import os
import time
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as time_of_day
from pathlib import Path

import pytest

from syncbridge.dailyup.export import chunked, csv_lines, spreadsheet_value
from syncbridge.dailyup.intake import (
    DailyUpWorker,
    DropFolder,
    UploadRejected,
    due_check,
    import_delivery,
    process_inbox,
)
from syncbridge.dailyup.reader import ReadingStopped, sha256_of

NAME = "DailyUp_100200_20261123.zip"


def zip_bytes(**members: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in (members or {"kunden.csv": "Kundennummer;Personentyp\n"}).items():
            archive.writestr(name, text)
    return buffer.getvalue()


def settled(path: Path) -> Path:
    """Make a file look written a while ago, as a finished FTP upload does."""
    past = time.time() - 60
    os.utime(path, (past, past))
    return path


@dataclass
class Result:
    state: str
    message: str = ""


@dataclass
class RecordingImporter:
    """Answers each file with the next state; remembers what it was asked."""

    states: list[str]
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    published: int = 0
    should_stop_was: object = None

    def import_file(self, path: Path, *, source: str, file_name: str, should_stop=None):
        assert path.exists()
        self.calls.append((path.name, source, file_name))
        state = self.states.pop(0)
        if state == "boom":
            raise RuntimeError("database gone")
        if state == "stop":
            self.should_stop_was = should_stop
            raise ReadingStopped(f"reading {file_name} was stopped")
        return Result(state, "why" if state == "rejected" else "")

    def publish_pending(self) -> int:
        self.published += 1
        return 0


@pytest.fixture
def folder(tmp_path) -> DropFolder:
    return DropFolder.at(tmp_path / "dailyup")


# ---------------------------------------------------------------- uploads
def test_an_upload_lands_whole_in_the_inbox(folder):
    data = zip_bytes()

    path, sha256, size = folder.save_upload(io.BytesIO(data), NAME, max_bytes=10_000)

    assert path == folder.inbox / NAME and path.read_bytes() == data
    assert size == len(data) and sha256 == sha256_of(path)
    assert folder.pending() == [path]  # complete when it appears: no settling wait
    assert list(folder.partial.iterdir()) == []


@pytest.mark.parametrize(("name", "data", "limit", "message"), [
    ("kunden.zip", zip_bytes(), 10_000, "is not named DailyUp_"),
    ("DailyUp_100200_20261340.zip", zip_bytes(), 10_000, "is not a date"),
    (NAME, b"", 10_000, "empty"),
    (NAME, b"Kundennummer;Personentyp\n", 10_000, "not a ZIP"),
    (NAME, zip_bytes(), 10, "larger than 10 bytes"),
])
def test_a_bad_upload_leaves_nothing_behind(folder, name, data, limit, message):
    with pytest.raises(UploadRejected, match=message) as caught:
        folder.save_upload(io.BytesIO(data), name, max_bytes=limit)

    assert caught.value.too_large == (limit == 10)
    assert list(folder.inbox.iterdir()) == [] and list(folder.partial.iterdir()) == []


def test_a_second_upload_of_the_same_name_is_kept_beside_the_first(folder):
    first, _, _ = folder.save_upload(io.BytesIO(zip_bytes()), NAME, max_bytes=10_000)
    second, _, _ = folder.save_upload(io.BytesIO(zip_bytes(**{"kunden.csv": "other\n"})), NAME, max_bytes=10_000)

    assert first != second and first.exists() and second.exists()
    assert second.name.startswith("DailyUp_100200_20261123.") and second.suffix == ".zip"


def test_a_path_in_the_upload_name_is_ignored(folder):
    path, _, _ = folder.save_upload(io.BytesIO(zip_bytes()), f"../../{NAME}", max_bytes=10_000)

    assert path.parent == folder.inbox


# ---------------------------------------------------------------- the inbox
def test_pending_waits_for_a_file_to_settle_and_takes_the_oldest_delivery_first(folder):
    later = folder.inbox / "DailyUp_100200_20261124.zip"
    later.write_bytes(b"x")
    settled(later)
    earlier = folder.inbox / "DailyUp_100200_20261123.zip"
    earlier.write_bytes(b"x")
    settled(earlier)
    fresh = folder.inbox / "DailyUp_100200_20261122.zip"
    fresh.write_bytes(b"still being written")
    (folder.inbox / ".hidden").write_bytes(b"x")

    assert folder.pending() == [earlier, later]


def test_process_inbox_archives_kept_deliveries_and_sets_rejected_ones_aside(folder):
    names = ["DailyUp_1_20261120.zip", "DailyUp_1_20261121.zip", "DailyUp_1_20261122.zip", "DailyUp_1_20261123.zip"]
    for index, name in enumerate(names):
        path = folder.inbox / name
        path.write_bytes(zip_bytes(**{"kunden.csv": f"{index}\n"}))
        settled(path)
    importer = RecordingImporter(["accepted", "rejected", "boom", "superseded"])

    results = process_inbox(importer, folder)

    assert [c[0] for c in importer.calls] == names
    assert all(c[1] == "drop-folder" for c in importer.calls)
    assert isinstance(results[2], RuntimeError)
    # the one whose import failed unexpectedly stays to be tried again
    assert [p.name for p in folder.inbox.iterdir()] == ["DailyUp_1_20261122.zip"]
    archived = sorted(p.name.split("-", 1)[1] for p in folder.archive.iterdir())
    assert archived == ["DailyUp_1_20261120.zip", "DailyUp_1_20261123.zip"]
    rejected = sorted(p.name for p in folder.rejected.iterdir())
    assert len(rejected) == 2 and rejected[0].endswith("DailyUp_1_20261121.zip")
    assert (folder.rejected / rejected[1]).read_text() == "why\n"


def test_an_import_stopped_half_way_leaves_its_file_and_no_other_is_taken(folder):
    names = ["DailyUp_1_20261120.zip", "DailyUp_1_20261121.zip", "DailyUp_1_20261122.zip"]
    for name in names:
        (folder.inbox / name).write_bytes(zip_bytes())
        settled(folder.inbox / name)
    importer = RecordingImporter(["accepted", "stop", "accepted"])
    stopping = [False]

    def should_stop() -> bool:
        return stopping[0]

    results = process_inbox(importer, folder, should_stop=should_stop)

    assert [r.state for r in results] == ["accepted"]
    assert [c[0] for c in importer.calls] == names[:2]
    assert importer.should_stop_was is should_stop            # the importer was given the switch
    assert sorted(p.name for p in folder.inbox.iterdir()) == names[1:]
    assert list(folder.rejected.iterdir()) == []
    stopping[0] = True
    assert process_inbox(importer, folder, should_stop=should_stop) == []   # stopped: nothing more is taken
    assert len(importer.calls) == 2


def test_a_worker_stopped_mid_import_leaves_the_file_and_publishes_nothing(folder):
    (folder.inbox / NAME).write_bytes(zip_bytes())
    settled(folder.inbox / NAME)
    importer = RecordingImporter(["stop"])
    worker = DailyUpWorker(importer, folder, poll_seconds=30, at=AT, received_on=lambda day: True,
                           on_missing=lambda day: None)
    recorded = importer.import_file

    def signal_arrives(path, **kwargs):
        worker.should_stop = True                            # SIGTERM while the delivery is read
        return recorded(path, **kwargs)

    importer.import_file = signal_arrives
    started = time.monotonic()
    worker.run()

    assert time.monotonic() - started < 5                    # not a poll interval of 30 s
    assert importer.should_stop_was() is True                # the worker's own switch reached the import
    assert [p.name for p in folder.inbox.iterdir()] == [NAME]
    assert importer.published == 0


def test_a_named_file_is_copied_to_the_archive_and_left_where_it_is(folder, tmp_path):
    source = tmp_path / NAME
    source.write_bytes(zip_bytes())

    import_delivery(RecordingImporter(["accepted"]), folder, source, source="cli", keep_original=True)
    import_delivery(RecordingImporter(["rejected"]), folder, source, source="cli", keep_original=True)

    assert source.exists()
    assert [p.read_bytes() for p in folder.archive.iterdir()] == [source.read_bytes()]
    assert folder.archive_path(sha256_of(source), NAME).exists()
    assert list(folder.rejected.iterdir()) == []


def test_a_second_upload_name_is_imported_under_the_delivery_name(folder):
    path = folder.inbox / "DailyUp_100200_20261123.1a2b3c4d.zip"
    path.write_bytes(zip_bytes())
    settled(path)
    importer = RecordingImporter(["accepted"])

    process_inbox(importer, folder)

    assert importer.calls[0][2] == NAME
    assert [p.name.split("-", 1)[1] for p in folder.archive.iterdir()] == [NAME]


# ---------------------------------------------------------------- the daily watch
AT = time_of_day(6, 0)


@pytest.mark.parametrize(("now", "last", "due"), [
    (datetime(2026, 11, 23, 5, 59, tzinfo=UTC), None, None),
    (datetime(2026, 11, 23, 6, 0, tzinfo=UTC), None, date(2026, 11, 23)),
    (datetime(2026, 11, 23, 23, 0, tzinfo=UTC), date(2026, 11, 22), date(2026, 11, 23)),
    (datetime(2026, 11, 23, 7, 0, tzinfo=UTC), date(2026, 11, 23), None),
])
def test_due_check(now, last, due):
    assert due_check(now, AT, last) == due


def test_the_worker_reports_a_missing_delivery_once_a_day(folder):
    now = [datetime(2026, 11, 23, 5, 0, tzinfo=UTC)]
    missing: list[date] = []
    delivered: set[date] = {date(2026, 11, 24)}
    worker = DailyUpWorker(RecordingImporter([]), folder, poll_seconds=0.01, at=AT,
                           received_on=lambda day: day in delivered, on_missing=missing.append,
                           clock=lambda: now[0])

    worker.run_once()                                           # before the time: nothing
    now[0] = datetime(2026, 11, 23, 6, 30, tzinfo=UTC)
    worker.run_once()
    worker.run_once()                                           # once per day
    now[0] = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)
    worker.run_once()                                           # delivered that day

    assert missing == [date(2026, 11, 23)]
    assert worker.importer.published == 4                       # the outbox is published every round


def test_the_worker_stops_like_a_consumer(folder):
    worker = DailyUpWorker(RecordingImporter([]), folder, poll_seconds=30, at=AT,
                           received_on=lambda day: True, on_missing=lambda day: None)
    started = time.monotonic()
    worker.should_stop = True

    worker.run()

    assert time.monotonic() - started < 5 and worker.should_stop


# ---------------------------------------------------------------- spreadsheet CSV
@pytest.mark.parametrize(("column", "value", "shown"), [
    ("BeitragBrutto", "1234.56", "1234,56"),
    ("BeitragBrutto", "-12", "-12"),
    ("Geburtsdatum", "1964-08-12", "12.08.1964"),
    ("Strasse", "=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
    ("Telefon", "+49 221 1234", "'+49 221 1234"),
    ("Ort", "Köln", "Köln"),
    ("Titel", None, ""),
])
def test_spreadsheet_values(column, value, shown):
    assert spreadsheet_value(column, value) == shown


def test_csv_opens_with_semicolons_bom_and_embedded_breaks():
    rows = [{"Kundennummer": "5001234567", "Strasse": 'Hof "Linde"; Haus 2\nHinterhaus', "BeitragBrutto": "10.5"},
            {"Kundennummer": "5001234568"}]

    data = b"".join(chunked(csv_lines(["Kundennummer", "Strasse", "BeitragBrutto"], rows), size=10))

    assert data.startswith("\ufeff".encode())
    assert b"\r\n" in data
    read = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert read == [["Kundennummer", "Strasse", "BeitragBrutto"],
                    ["5001234567", 'Hof "Linde"; Haus 2\nHinterhaus', "10,5"],
                    ["5001234568", "", ""]]
