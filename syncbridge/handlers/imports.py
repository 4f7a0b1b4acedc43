"""What the Imports page does with DailyUp deliveries: list them, export their tables, take one in after a dry run.

An upload is first *reviewed*: kept aside under ``<drop folder>/review/`` and
compared with the snapshot by the importer's dry run (nothing stored, nothing
published).  Applying it puts that same file into the inbox, where the DailyUp
worker imports and publishes it like any upload; discarding it deletes it.
Reviewing, applying, discarding and every download of a table are written to the
audit log with who and when.
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from syncbridge.dailyup.export import ExportUnavailable, import_table
from syncbridge.dailyup.importer import DailyUpImporter
from syncbridge.dailyup.intake import DropFolder, UploadRejected
from syncbridge.ports import AuditEntry, DailyUpImport, ImportHistory, OperatorStore

TOKEN = re.compile(r"^[0-9a-f]{64}$")     # a review is named by its file's SHA-256
FORMATS = ("csv", "xlsx")


class ImportProblem(Exception):
    """A refused request: ``code`` (upload, too_large, no_review, export) with the details in ``params``."""

    def __init__(self, code: str, message: str, **params: Any) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


@dataclass(frozen=True)
class Review:
    """An uploaded delivery waiting for "apply", with what its dry run found."""

    token: str                          # its SHA-256
    file_name: str
    size: int
    by: str
    at: datetime
    state: str                          # what the import would make of it: accepted, duplicate, rejected, ...
    message: str
    rows: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    deltas: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class ImportsDesk:
    """The DailyUp as the dashboard works with it (built by ``syncbridge.bootstrap.dashboard_parts``)."""

    def __init__(self, history: ImportHistory, folder: DropFolder, importer: DailyUpImporter, audit: OperatorStore,
                 *, reader_options: dict[str, Any], max_upload_bytes: int,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.history = history
        self.folder = folder
        self.importer = importer
        self.audit = audit
        self.reader_options = reader_options
        self.max_upload_bytes = max_upload_bytes
        self.now = now

    # ------------------------------------------------------------ reading
    def imports(self, limit: int = 50) -> list[DailyUpImport]:
        return self.history.imports(limit=limit)

    def get(self, import_id: int) -> DailyUpImport | None:
        return self.history.get_import(import_id)

    def row_errors(self, import_id: int, limit: int | None = 100) -> list[Any]:
        return self.history.row_errors(import_id, limit=limit)

    def export(self, imp: DailyUpImport, table: str, fmt: str, *, by: str) -> tuple[list[str], Iterator[dict[str, Any]]]:
        """The columns and rows of a table of ``imp`` (or ``errors``), as accepted; the download is audited."""
        if fmt not in FORMATS:
            raise ImportProblem("export", f"no format {fmt!r}")
        try:
            columns, rows = import_table(self.history, self.folder, imp, table, self.reader_options)
        except ExportUnavailable as exc:
            raise ImportProblem("export", str(exc)) from None
        self.audit.audit(AuditEntry(actor=by, action="import.downloaded", target=str(imp.id),
                                    details={"table": table, "format": fmt}, at=self.now()))
        return columns, rows

    # ------------------------------------------------------------ upload, dry run, apply
    @property
    def review_folder(self) -> DropFolder:
        return DropFolder.at(self.folder.root / "review")

    def review(self, stream: IO[bytes], file_name: str, *, by: str) -> Review:
        """Keep an upload aside and dry-run it; ImportProblem when it is no delivery (misnamed, empty, no ZIP)."""
        aside = self.review_folder
        try:
            path, sha256, size = aside.save_upload(stream, file_name, max_bytes=self.max_upload_bytes)
        except UploadRejected as exc:
            raise ImportProblem("too_large" if exc.too_large else "upload", str(exc)) from None
        kept = aside.root / f"{sha256}.zip"
        path.replace(kept)
        name = Path(file_name).name
        try:
            result = self.importer.diff(kept, file_name=name)
        except BaseException:
            kept.unlink(missing_ok=True)
            raise
        review = Review(sha256, name, size, by, self.now(), result.state, result.message, dict(result.rows),
                        result.errors, dict(result.deltas), {k: list(v) for k, v in result.samples.items()})
        description = {**dataclasses.asdict(review), "at": review.at.isoformat()}
        (aside.root / f"{sha256}.json").write_text(json.dumps(description, ensure_ascii=False), encoding="utf-8")
        self.audit.audit(AuditEntry(actor=by, action="import.reviewed", target=name,
                                    details={"sha256": sha256, "state": result.state, "deltas": dict(result.deltas)},
                                    at=review.at))
        return review

    def pending_review(self, token: str) -> Review | None:
        """The review of this token, or None (unknown, applied or discarded)."""
        if not TOKEN.match(token):
            return None
        aside = self.folder.root / "review"
        try:
            description = json.loads((aside / f"{token}.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        if not (aside / f"{token}.zip").exists():
            return None
        return Review(**{**description, "at": datetime.fromisoformat(description["at"])})

    def apply(self, token: str, *, by: str) -> str:
        """Put a reviewed delivery into the inbox for the DailyUp worker; the name it has there."""
        review = self.pending_review(token)
        if review is None:
            raise ImportProblem("no_review", "no such upload waiting")
        aside = self.folder.root / "review"
        self.folder.ensure()
        try:
            with open(aside / f"{token}.zip", "rb") as stream:
                path, _, _ = self.folder.save_upload(stream, review.file_name, max_bytes=self.max_upload_bytes,
                                                     source="upload")
        except FileNotFoundError:       # applied or discarded meanwhile
            raise ImportProblem("no_review", "no such upload waiting") from None
        self._forget(token)
        self.audit.audit(AuditEntry(actor=by, action="import.applied", target=review.file_name,
                                    details={"sha256": token, "inbox": path.name}, at=self.now()))
        return path.name

    def discard(self, token: str, *, by: str) -> bool:
        """Delete a reviewed upload; whether there was one."""
        review = self.pending_review(token)
        if review is None:
            return False
        self._forget(token)
        self.audit.audit(AuditEntry(actor=by, action="import.discarded", target=review.file_name,
                                    details={"sha256": token}, at=self.now()))
        return True

    def _forget(self, token: str) -> None:
        aside = self.folder.root / "review"
        (aside / f"{token}.zip").unlink(missing_ok=True)
        (aside / f"{token}.json").unlink(missing_ok=True)
