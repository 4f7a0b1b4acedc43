"""Where deliveries come in: the drop folder, uploads, and the daily watch for them.

The drop folder (``SYNCBRIDGE_DAILYUP_DIR``) has three parts::

    inbox/      the FTP server of a deployment writes here; uploads are moved here whole
    archive/    deliveries read (accepted, superseded or already known), as
                ``<first 12 hex of sha256>-<file name>``: the CSV export re-reads them
    rejected/   deliveries that could not be used, each with ``<name>.reason.txt``

A file is only taken once it has not changed for :data:`SETTLE_SECONDS`, so a
delivery still being written by the FTP server is never read half.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as time_of_day
from pathlib import Path
from typing import IO, TYPE_CHECKING

from syncbridge.dailyup.reader import ReadingStopped, sha256_of
from syncbridge.deliveries import DeliveryName

if TYPE_CHECKING:   # the importer uses this module: no import at run time
    from syncbridge.dailyup.importer import DailyUpImporter, ImportResult

log = logging.getLogger("syncbridge.dailyup")

SETTLE_SECONDS = 2.0
CHUNK = 1024 * 1024
PUBLISH_RETRY_MAX_S = 30.0
UPLOAD_SOURCES = ("upload",)   # sources that save_upload marks in the file name


class UploadRejected(ValueError):
    """An upload that is not stored: misnamed, too large, empty or not a ZIP."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


@dataclass(frozen=True)
class DropFolder:
    """The folders of deliveries under one root."""

    root: Path

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> DropFolder:
        folder = cls(Path(path))
        folder.ensure()
        return folder

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    @property
    def partial(self) -> Path:
        return self.root / "partial"

    def ensure(self) -> None:
        for path in (self.inbox, self.archive, self.rejected, self.partial):
            path.mkdir(parents=True, exist_ok=True)

    def pending(self, *, settle: float = SETTLE_SECONDS, now: float | None = None) -> list[Path]:
        """Files waiting in the inbox that have settled, oldest delivery first."""
        now = time.time() if now is None else now
        files = []
        for path in self.inbox.iterdir():
            if not path.is_file() or path.name.startswith("."):
                continue
            try:
                if now - path.stat().st_mtime < settle:
                    continue
            except FileNotFoundError:  # taken by another worker meanwhile
                continue
            files.append(path)
        return sorted(files, key=_delivery_order)

    def archive_path(self, sha256: str, file_name: str) -> Path:
        """Where an accepted delivery is kept."""
        return self.archive / f"{sha256[:12]}-{Path(file_name).name}"

    def move_to_archive(self, path: Path, sha256: str) -> Path:
        target = self.archive_path(sha256, _base_name(path.name))
        if target.exists():
            path.unlink()  # the same bytes are kept already
        else:
            os.replace(path, target)
        return target

    def copy_to_archive(self, path: Path, sha256: str, file_name: str) -> Path:
        target = self.archive_path(sha256, file_name)
        if not target.exists():
            partial = self.partial / f"{uuid.uuid4().hex}.part"
            shutil.copyfile(path, partial)
            os.replace(partial, target)
        return target

    def move_to_rejected(self, path: Path, reason: str) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        target = self.rejected / f"{stamp}-{path.name}"
        os.replace(path, target)
        target.with_name(target.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")
        return target

    def save_upload(self, stream: IO[bytes], file_name: str, *, max_bytes: int,
                    source: str = "") -> tuple[Path, str, int]:
        """Write an upload to the inbox atomically; return (path, sha256, size).

        With ``source`` the file is stored as ``<name>.<source>.zip``, and its import records that source.
        """
        file_name = Path(file_name or "").name
        try:
            DeliveryName.parse(file_name)
        except ValueError as exc:
            raise UploadRejected(str(exc)) from None
        partial = self.partial / f"{uuid.uuid4().hex}.part"
        digest, size = hashlib.sha256(), 0
        try:
            with open(partial, "wb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise UploadRejected(f"the delivery is larger than {max_bytes} bytes", too_large=True)
                    digest.update(chunk)
                    out.write(chunk)
            if size == 0:
                raise UploadRejected("the upload is empty")
            with open(partial, "rb") as check:
                if check.read(4) != b"PK\x03\x04":
                    raise UploadRejected("the upload is not a ZIP file")
            mark = f"{source}." if source else ""
            target = self.inbox / f"{Path(file_name).stem}.{mark}zip"
            if target.exists():
                # Another delivery of the same name waits: keep both, the importer tells them apart.
                target = self.inbox / f"{Path(file_name).stem}.{mark}{digest.hexdigest()[:8]}.zip"
            # Old enough to be taken at once: the file is complete when it appears.
            os.utime(partial, (time.time() - SETTLE_SECONDS, time.time() - SETTLE_SECONDS))
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return target, digest.hexdigest(), size


def _delivery_order(path: Path) -> tuple[object, ...]:
    try:
        name = DeliveryName.parse(_base_name(path.name))
        return (0, name.delivered_on, path.stat().st_mtime, path.name)
    except (ValueError, FileNotFoundError):
        return (1, date.max, 0.0, path.name)


def _source_of(file_name: str, default: str) -> str:
    """``DailyUp_1_20261123.upload.zip`` (stored by :meth:`DropFolder.save_upload`) -> ``upload``."""
    mark = file_name.partition(".")[2].split(".")[0]
    return mark if mark in UPLOAD_SOURCES else default


def _base_name(file_name: str) -> str:
    """``DailyUp_1_20261123.ab12cd34.zip`` (a second upload of a name) -> ``DailyUp_1_20261123.zip``."""
    stem, _, rest = file_name.partition(".")
    return f"{stem}.zip" if rest.endswith("zip") else file_name


# ---------------------------------------------------------------------- taking deliveries in
KEPT_STATES = ("accepted", "published", "superseded", "duplicate")


def import_delivery(importer: DailyUpImporter, folder: DropFolder, path: Path, *, source: str,
                    file_name: str | None = None, keep_original: bool = False,
                    should_stop: Callable[[], bool] | None = None) -> ImportResult:
    """Import one delivery file, then archive it (kept states) or put it aside as rejected.

    With ``keep_original`` (a file named on the command line) the file is copied to
    the archive and otherwise left where it is.  A delivery over one of the reader's
    limits is rejected like any unusable one, so it never blocks the next.  When
    ``should_stop`` answers true mid-import, ReadingStopped is raised and the file stays.
    """
    file_name = file_name or path.name
    result = importer.import_file(path, source=source, file_name=file_name, should_stop=should_stop)
    if result.state in KEPT_STATES:
        if keep_original:
            folder.copy_to_archive(path, sha256_of(path), file_name)
        else:
            folder.move_to_archive(path, sha256_of(path))
    elif not keep_original:
        folder.move_to_rejected(path, result.message)
    log.info("delivery %s: %s %s", file_name, result.state, result.message)
    return result


def process_inbox(importer: DailyUpImporter, folder: DropFolder, *, source: str = "drop-folder",
                  should_stop: Callable[[], bool] = lambda: False) -> list[ImportResult | Exception]:
    """Import every settled delivery in the inbox, oldest first, until ``should_stop`` answers true."""
    results: list[ImportResult | Exception] = []
    for path in folder.pending():
        if should_stop():
            break
        try:
            results.append(import_delivery(importer, folder, path, source=_source_of(path.name, source),
                                           file_name=_base_name(path.name), should_stop=should_stop))
        except ReadingStopped:
            log.info("stopped while importing %s; it stays in the inbox and is taken again", path.name)
            break
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others; it stays in the inbox
            log.exception("importing %s failed; it stays in the inbox and is tried again", path.name)
            results.append(exc)
    return results


# ---------------------------------------------------------------------- the daily watch
def due_check(now: datetime, at: time_of_day, last_checked: date | None) -> date | None:
    """The day whose delivery should be checked for now, if that check has not run yet."""
    today = now.date()
    if (now.hour, now.minute) >= (at.hour, at.minute) and last_checked != today:
        return today
    return None


class DailyUpWorker:
    """Look into the drop folder every few seconds; at the daily time, report a missing delivery.

    A delivery is only missed once one was to be expected: the watch was running at
    the day's time, or deliveries have come before (``ever_received``).  A service
    started for the first time after the daily time does not begin with an error.
    """

    def __init__(self, importer: DailyUpImporter, folder: DropFolder, *, poll_seconds: float, at: time_of_day,
                 received_on: Callable[[date], bool],
                 on_missing: Callable[[date], None], clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 ever_received: Callable[[], bool] = lambda: False) -> None:
        self.importer = importer
        self.folder = folder
        self.poll_seconds = poll_seconds
        self.at = at
        self.received_on = received_on
        self.on_missing = on_missing
        self.clock = clock
        self.ever_received = ever_received
        self.watching_since = clock()
        self.last_checked: date | None = None
        self.stop_event = threading.Event()
        self.publish_failures = 0
        self.publish_at = 0.0          # time.monotonic() of the next attempt to publish the outbox

    def run_once(self) -> list[ImportResult | Exception]:
        results = process_inbox(self.importer, self.folder, should_stop=self.stop_event.is_set)
        if self.stop_event.is_set():
            return results
        if time.monotonic() >= self.publish_at:
            try:
                self.importer.publish_pending()
                self.publish_failures = 0
            except Exception as exc:  # noqa: BLE001 - the outbox keeps them; a later round publishes
                # The broker is away: wait 1 s, 3 s, 5 s, ... up to 30 s between attempts, one line each.
                self.publish_failures += 1
                wait = min(PUBLISH_RETRY_MAX_S, 1.0 + 2.0 * (self.publish_failures - 1))
                self.publish_at = time.monotonic() + wait
                log.warning("publishing DailyUp deltas failed, trying again in %.0f s: %s", wait, exc)
        day = due_check(self.clock(), self.at, self.last_checked)
        if day is not None:
            self.last_checked = day
            if self._expected(day) and not self.received_on(day):
                self.on_missing(day)
        return results

    def _expected(self, day: date) -> bool:
        """Whether a delivery for ``day`` was to be expected by now."""
        due = datetime.combine(day, self.at, tzinfo=self.watching_since.tzinfo)
        return self.watching_since <= due or self.ever_received()

    def run(self) -> None:
        log.info("DailyUp worker watching %s every %ss; delivery expected by %s UTC",
                 self.folder.inbox, self.poll_seconds, self.at.strftime("%H:%M"))
        while not self.stop_event.is_set():
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - keep watching; the error is logged
                log.exception("DailyUp round failed")
            self.stop_event.wait(self.poll_seconds)

    def stop(self) -> None:
        self.stop_event.set()

    # The same stop switch as the kombu consumers, so every worker is stopped alike.
    @property
    def should_stop(self) -> bool:
        return self.stop_event.is_set()

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        if value:
            self.stop_event.set()
