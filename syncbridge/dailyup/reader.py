"""Read a DailyUp delivery: the one adapter that knows its file format.

The real format is not public; this reads our stand-in for it: a ZIP named
``DailyUp_{Hauptvermittlernummer}_{YYYYMMDD}.zip`` holding one ``;`` CSV file per
table with a header row.  Encoding, delimiter, date and decimal format are options
(``SYNCBRIDGE_DAILYUP_*`` settings).  Rows are validated by the contracts
of :mod:`contracts.dailyup` and streamed, so a delivery of millions of rows is read
in bounded memory.

Two kinds of failure: :class:`DeliveryRejected` when nothing of the delivery may be
applied (not a ZIP, a table or key column missing, undecodable or truncated
files, a limit exceeded), and :class:`~syncbridge.deliveries.RowError` values,
yielded among the rows, when one row is unusable and the rest of the delivery goes on.

Whatever the bytes, reading takes bounded time and memory: the unpacked size and
the compression ratio of the tables are limited (by the sizes the ZIP declares and
by the bytes actually unpacked), and so are the columns of a header, the length of
a row (no line is read whole before it is measured, unless the first reading of its
file showed every row within the limit) and the fields of a row.  The bytes of a
file whose rows are all within the limit are unpacked once: kept from the first
reading for the reading of its rows, at most :data:`MAX_KEPT_BYTES` of a delivery.  A
``should_stop`` callable is asked while reading; when it answers true the reading
ends with :class:`ReadingStopped`.
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import lzma
import operator
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Literal

from marshmallow import ValidationError

from contracts.dailyup import fields_loader
from syncbridge.deliveries import (
    COLUMNS,
    KEY_COLUMNS,
    KEY_OF,
    REQUIRED_TABLES,
    TABLES,
    VOLATILE_COLUMNS,
    DeliveryName,
    ParsedRow,
    RowError,
)

if TYPE_CHECKING:
    from _csv import Reader as _CsvReader

CHUNK = 1024 * 1024
# Bytes CP1252 leaves undefined: a file holding one of them can only be ISO-8859-1.
CP1252_UNDEFINED = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")
ENCODINGS = {"auto": "auto", "utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8", "cp1252": "cp1252",
             "windows-1252": "cp1252", "iso-8859-1": "iso-8859-1", "latin-1": "iso-8859-1", "latin1": "iso-8859-1"}
# What a damaged ZIP raises while a member is read (CRC mismatch, cut deflate stream, ...); bz2 and a
# seek to an offset before the file's start raise OSError (the file itself was readable: it was hashed).
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError)
# What opening a damaged ZIP or member raises besides: an unsupported version or compression, encryption,
# a name flagged UTF-8 that is not.
OPEN_ERRORS = (*ZIP_ERRORS, NotImplementedError, RuntimeError, UnicodeDecodeError)
# The limits' defaults (the SYNCBRIDGE_DAILYUP_MAX_* settings set them in the service).
MAX_COLUMNS = 1000
MAX_ROW_LENGTH = 1024 * 1024
MAX_FIELDS = 2000
MAX_UNPACKED_BYTES = 2 * 1024 ** 3
MAX_RATIO = 100
# Below this many bytes a member's compression ratio is not checked: tiny files compress oddly.
RATIO_FLOOR = 1024 * 1024
STOP_EVERY = 1024           # lines between two looks at should_stop
# The ZIP's central directory is read whole, an entry per member: a few KiB for a real delivery.
MAX_DIRECTORY_BYTES = 1024 * 1024
# The bytes of a member unpacked by its first reading are kept for the reading of its rows when every record
# of it is within the row length limit, up to this many bytes per delivery (any other member is unpacked
# again when its rows are read).
MAX_KEPT_BYTES = 256 * 1024 * 1024
# Part of every raw row digest: raised when the reading or normalizing of rows changes, so that rows
# stored under the former rules are read and compared again once (see raw_digest_key).
RAW_DIGEST_VERSION = 1
RAW_SEPARATOR = "\x1f"      # between the fields of a row in its raw digest


class DeliveryRejected(Exception):
    """The whole delivery is unusable (nothing of it may be applied).

    Its message is one line: control characters of names taken from the delivery are escaped.
    """

    def __init__(self, message: str) -> None:
        super().__init__("".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                                 for c in message))


class ReadingStopped(Exception):
    """Reading was stopped from outside (the process is shutting down); no verdict on the delivery."""


@dataclass(frozen=True)
class _Table:
    """What the reader learned about one table's file when the delivery was opened."""

    member: zipfile.ZipInfo
    encoding: str
    ends_with_line_break: bool
    header: tuple[str, ...]
    bounded: bool = False   # every record is within the row length limit: csv may read the text directly
    separator_free: bool = False    # no byte of the file is RAW_SEPARATOR


def open_delivery(path: str | os.PathLike[str], *, file_name: str | None = None, encoding: str = "auto",
                  delimiter: str = ";", date_format: str = "%d.%m.%Y", decimal_comma: bool = True,
                  max_columns: int = MAX_COLUMNS, max_row_length: int = MAX_ROW_LENGTH, max_fields: int = MAX_FIELDS,
                  max_unpacked_bytes: int = MAX_UNPACKED_BYTES, max_ratio: int = MAX_RATIO,
                  should_stop: Callable[[], bool] | None = None) -> Delivery:
    """Open a delivery file and check it as far as can be done before reading its rows."""
    return Delivery(path, file_name=file_name, encoding=encoding, delimiter=delimiter, date_format=date_format,
                    decimal_comma=decimal_comma, max_columns=max_columns, max_row_length=max_row_length,
                    max_fields=max_fields, max_unpacked_bytes=max_unpacked_bytes, max_ratio=max_ratio,
                    should_stop=should_stop)


class Delivery:
    """An open delivery: its name, checksum, tables and their rows.  Close it (or use ``with``)."""

    def __init__(self, path: str | os.PathLike[str], *, file_name: str | None = None, encoding: str = "auto",
                 delimiter: str = ";", date_format: str = "%d.%m.%Y", decimal_comma: bool = True,
                 max_columns: int = MAX_COLUMNS, max_row_length: int = MAX_ROW_LENGTH, max_fields: int = MAX_FIELDS,
                 max_unpacked_bytes: int = MAX_UNPACKED_BYTES, max_ratio: int = MAX_RATIO,
                 should_stop: Callable[[], bool] | None = None) -> None:
        if encoding.lower() not in ENCODINGS:
            raise ValueError(f"unknown delivery encoding {encoding!r}; use one of {', '.join(ENCODINGS)}")
        self.max_columns = max_columns
        self.max_row_length = max_row_length
        self.max_fields = max(max_fields, max_columns)   # a row may always hold as many fields as a header
        self.max_unpacked_bytes = max_unpacked_bytes
        self.max_ratio = max_ratio
        self.should_stop = should_stop or (lambda: False)
        self.unpacked = 0   # bytes unpacked so far by the first reading of each table
        # A member's bytes from its first reading, until its rows are read (see MAX_KEPT_BYTES).
        self._kept: dict[zipfile.ZipInfo, io.BytesIO] = {}
        self._kept_left = MAX_KEPT_BYTES
        self.path = Path(path)
        self.file_name = Path(file_name or self.path.name).name
        self.encoding = ENCODINGS[encoding.lower()]
        self.delimiter = delimiter
        self.date_format = date_format
        self.decimal_comma = decimal_comma
        try:
            self.name = DeliveryName.parse(self.file_name)
        except ValueError as exc:
            raise DeliveryRejected(str(exc)) from None
        self.sha256, self.size = _digest(self.path)   # OSError (unreadable file) is no verdict on the delivery
        directory = _directory_size(self.path)
        if directory is not None and directory > MAX_DIRECTORY_BYTES:
            raise DeliveryRejected(f"{self.file_name} has a ZIP directory of {directory} bytes, more than the limit of "
                                   f"{MAX_DIRECTORY_BYTES}: far too many files for a delivery")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except OPEN_ERRORS as exc:
            raise DeliveryRejected(f"{self.file_name} is not a readable ZIP file: {exc}") from exc
        try:
            self._open_tables()
        except BaseException:
            self._zip.close()
            raise

    # ------------------------------------------------------------------ opening
    def _open_tables(self) -> None:
        members: dict[str, zipfile.ZipInfo] = {}
        self.unknown_files: list[str] = []
        for info in self._zip.infolist():
            if not info.filename or info.is_dir():
                continue
            base = info.filename.rsplit("/", 1)[-1]
            table = base[:-4] if base.endswith(".csv") else None
            if table not in COLUMNS:
                self.unknown_files.append(info.filename)
            elif table in members:
                raise DeliveryRejected(f"{self.file_name} holds {base} twice "
                                       f"({members[table].filename} and {info.filename})")
            else:
                members[table] = info
        missing = [f"{t}.csv" for t in REQUIRED_TABLES if t not in members]
        if missing:
            raise DeliveryRejected(f"{self.file_name} has no {' and no '.join(missing)}")
        self._check_declared_sizes(list(members.values()))
        self.tables: tuple[str, ...] = tuple(t for t in TABLES if t in members)
        self._tables: dict[str, _Table] = {}
        self.encodings: dict[str, str] = {}
        self.columns: dict[str, tuple[str, ...]] = {}
        self.extra_columns: dict[str, list[str]] = {}
        self.missing_columns: dict[str, list[str]] = {}
        for table in self.tables:
            info = members[table]
            encoding, ends_with_line_break, bounded, separator_free = self._check_bytes(info)
            header = self._read_header(info, encoding)
            known, named = set(COLUMNS[table]), set(header)
            absent_keys = [c for c in KEY_COLUMNS[table] if c not in named]
            if absent_keys:
                raise DeliveryRejected(f"{info.filename}: the header has no column {', '.join(absent_keys)}")
            self._tables[table] = _Table(info, encoding, ends_with_line_break, header, bounded, separator_free)
            self.encodings[table] = encoding
            self.columns[table] = header
            self.extra_columns[table] = [c for c in header if c not in known]
            self.missing_columns[table] = [c for c in COLUMNS[table] if c not in named]

    def _check_declared_sizes(self, members: list[zipfile.ZipInfo]) -> None:
        """Refuse what the ZIP says it would unpack to before unpacking anything."""
        for info in members:
            self._check_ratio(info, info.file_size, "declares")
        declared = sum(info.file_size for info in members)
        if declared > self.max_unpacked_bytes:
            raise DeliveryRejected(f"{self.file_name} declares {declared} bytes of tables unpacked, more than the "
                                   f"limit of {self.max_unpacked_bytes}")

    def _check_ratio(self, info: zipfile.ZipInfo, size: int, verb: str) -> None:
        # The packed size a ZIP declares cannot be more than the file holds after the member's start.
        packed = max(min(info.compress_size, self.size - info.header_offset), 1)
        if size > RATIO_FLOOR and size > self.max_ratio * packed:
            raise DeliveryRejected(f"{info.filename} {verb} {size} bytes unpacked from {packed} packed, "
                                   f"a compression ratio above the limit of {self.max_ratio}")

    def stop_requested(self) -> None:
        """Raise :class:`ReadingStopped` when ``should_stop`` says so."""
        if self.should_stop():
            raise ReadingStopped(f"reading {self.file_name} was stopped")

    def _check_bytes(self, info: zipfile.ZipInfo) -> tuple[str, bool, bool, bool]:
        """Read a member once: choose or check its encoding; see whether it ends with a line break,
        whether every record is within the row length limit (see :class:`_Bounds`) and whether a byte
        of it is :data:`RAW_SEPARATOR`.

        Reading it whole also makes a damaged ZIP (CRC error) show now, before any row is used.
        """
        try:
            return self._scan(info)
        except ZIP_ERRORS as exc:
            raise DeliveryRejected(f"{info.filename} is damaged in {self.file_name}: {exc}") from exc

    def _unpacked(self, info: zipfile.ZipInfo, chunk: bytes, read: int) -> int:
        """Count the bytes really unpacked (a ZIP's directory may lie); refuse them over a limit."""
        read += len(chunk)
        self.unpacked += len(chunk)
        if read > info.file_size:
            raise DeliveryRejected(f"{info.filename} unpacks to more than the {info.file_size} bytes its ZIP "
                                   f"directory declares: the ZIP is damaged")
        if self.unpacked > self.max_unpacked_bytes:
            raise DeliveryRejected(f"{self.file_name} unpacks to more than the limit of {self.max_unpacked_bytes} "
                                   f"bytes of tables")
        self._check_ratio(info, read, "unpacks to")
        self.stop_requested()
        return read

    def _scan(self, info: zipfile.ZipInfo) -> tuple[str, bool, bool, bool]:
        bounds = _Bounds(self.max_row_length, self.delimiter)
        separator, marked = RAW_SEPARATOR.encode("ascii"), False
        # Kept whole (BOM and all) for the reading of the rows, when it fits: no second unpacking then.
        kept = io.BytesIO() if info.file_size <= self._kept_left else None
        with self._member(info) as raw:
            chunk = raw.read(CHUNK)
            read = self._unpacked(info, chunk, 0)
            if kept is not None:
                kept.write(chunk)
            offset = 0
            encoding = "utf-8" if self.encoding == "auto" else self.encoding
            if chunk.startswith(codecs.BOM_UTF8) and encoding == "utf-8":
                encoding, chunk, offset = "utf-8-sig", chunk[3:], 3
            # The check decodes without the BOM, so error positions count from the file's first byte.
            decoder = codecs.getincrementaldecoder("utf-8" if encoding == "utf-8-sig" else encoding)()
            failure: str | None = None
            cp1252_ok = True
            lines = 0
            last = b""
            while chunk:
                if failure is None:
                    pending = len(decoder.getstate()[0])
                    try:
                        decoder.decode(chunk)
                        lines += chunk.count(b"\n")
                    except UnicodeDecodeError as exc:
                        at = max(exc.start - pending, 0)
                        line = lines + chunk.count(b"\n", 0, at) + 1
                        failure = (f"line {line} is not valid {encoding} "
                                   f"(byte 0x{chunk[at]:02X} at offset {offset + at})")
                        if self.encoding != "auto":
                            break
                if self.encoding == "auto" and cp1252_ok:
                    cp1252_ok = not any(byte in chunk for byte in CP1252_UNDEFINED)
                bounds.feed(chunk)
                if not bounds.ok:
                    kept = None     # read by the measuring reader, which never holds a long row whole
                marked = marked or separator in chunk
                offset += len(chunk)
                last = chunk
                chunk = raw.read(CHUNK)
                read = self._unpacked(info, chunk, read)
                if kept is not None:
                    kept.write(chunk)
            if failure is None:
                try:
                    decoder.decode(b"", True)
                except UnicodeDecodeError:
                    failure = f"the file ends inside a {encoding} character"
        if not chunk and read != info.file_size:   # read to its end: its size must be the one declared
            raise DeliveryRejected(f"{info.filename} unpacks to {read} bytes, not the {info.file_size} its ZIP "
                                   f"directory declares: the ZIP is damaged")
        if failure is not None:
            if self.encoding != "auto" or encoding == "utf-8-sig":
                raise DeliveryRejected(f"{info.filename}: {failure}; the file is not {encoding}")
            # Not UTF-8: the legacy Windows encoding German exports use, unless it cannot be.
            encoding = "cp1252" if cp1252_ok else "iso-8859-1"
        bounded = bounds.finish()
        if kept is not None and bounded:
            self._kept[info] = kept
            self._kept_left -= read
        return encoding, last.endswith((b"\n", b"\r")), bounded, not marked

    def _read_header(self, info: zipfile.ZipInfo, encoding: str) -> tuple[str, ...]:
        with self._csv(info, encoding) as (reader, _):
            header = _header(reader)
        if header is None:
            raise DeliveryRejected(f"{info.filename} is empty: it has no header row")
        names: list[str] = []
        seen: set[str] = set()
        for position, raw in enumerate(header, 1):
            name = raw.strip().lstrip("\ufeff").strip() or f"(column {position})"
            if name in seen:
                raise DeliveryRejected(f"{info.filename}: the header names column {name} twice")
            seen.add(name)
            names.append(name)
        return tuple(names)

    # ------------------------------------------------------------------ streaming
    def rows(self, table: str,
             known: MutableMapping[str, bytes | int | None] | None = None) -> Iterator[ParsedRow | RowError | int]:
        """Stream the rows of ``table``: a ParsedRow per valid row, a RowError per problem.

        With ``known`` (key -> the raw digest its row had when it was last read, see
        :meth:`raw_digest_key`), a row whose raw digest is the one known for its key is
        not validated again, nor yielded: its digest in ``known`` is replaced by its line
        (an ``int``) and it is counted.  It is the same text, read with the same rules, as
        a row found valid before.  The count of such rows is yielded (an ``int``) every
        :data:`STOP_EVERY` rows or so and at the end.  The digest of a key whose first row
        is not as known is taken out of ``known``.
        """
        if table not in self._tables:
            raise KeyError(f"{self.file_name} has no table {table}")
        info = self._tables[table]
        return self._rows(table, info, known)

    def raw_digest_key(self, table: str) -> bytes:
        """The key of the raw digests of ``table``'s rows: its header and the reading rules.

        Two rows have the same raw digest only if their fields (the volatile columns
        aside) are the same text under the same header, date and decimal format:
        then their normalized values are the same too.
        """
        rules = (RAW_DIGEST_VERSION, table, self._tables[table].header, self.date_format, self.decimal_comma)
        return hashlib.blake2b(repr(rules).encode(), digest_size=32).digest()

    def _rows(self, table: str, info: _Table,
              digests: MutableMapping[str, bytes | int | None] | None = None) -> Iterator[ParsedRow | RowError | int]:
        file = info.member.filename
        header = info.header
        width = len(header)
        key_column = KEY_OF[table]
        key_at = header.index(key_column)
        columns = set(COLUMNS[table])
        known = [(i, c) for i, c in enumerate(header) if c in columns]
        extra = [(i, c) for i, c in enumerate(header) if c not in columns]
        volatile = set(VOLATILE_COLUMNS.get(table, ()))
        stable_at = [i for i, c in enumerate(header) if c not in volatile]
        stable, separators = _picker(stable_at), len(stable_at) - 1
        digest_key = self.raw_digest_key(table)
        hasher = hashlib.blake2b(digest_size=16, key=digest_key)
        join = RAW_SEPARATOR.join
        # Without a separator byte in the file no field holds one: every row's raw text is unambiguous.
        unambiguous = info.separator_free
        same: MutableMapping[str, bytes | int | None] = digests if digests is not None else {}
        same_get = same.get
        unchanged = 0   # rows found as they were known, not yielded yet
        load = fields_loader(table, tuple(known), date_format=self.date_format, decimal_comma=self.decimal_comma)
        first_line: dict[str, int] = {}
        first_get = first_line.get
        limit = self.max_fields
        stop_in = STOP_EVERY
        short: RowError | None = None   # held until it is known whether the file was cut in that row
        with self._csv(info.member, info.encoding, measured=not info.bounded, kept=True) as (reader, where):
            _header(reader)
            if isinstance(reader, _Records):
                reader.limit, reader.what = limit, "fields"
            previous = where[0] = reader.line_num
            for fields in reader:
                line, previous = previous + 1, reader.line_num
                where[0] = previous
                count = len(fields)
                if count != width and count > limit:
                    raise DeliveryRejected(f"{file}: the row at line {line} has {count} fields, more than the limit "
                                           f"of {limit}")
                stop_in -= 1
                if not stop_in:
                    stop_in = STOP_EVERY
                    self.stop_requested()
                    if unchanged:
                        yield unchanged
                        unchanged = 0
                key: str | None = fields[key_at].strip() if key_at < count else ""
                if not key:
                    if not fields or not any(f.strip() for f in fields):
                        continue
                    key = None
                if short is not None:
                    yield short
                    short = None
                digest: bytes | None = None
                if key is not None:
                    # A key is noted at its first row: in ``same`` (its line for its digest) when the row is
                    # as known, else in ``first_line`` (and out of ``same``), so that the many unchanged rows
                    # fill no second mapping and a key with a digest is one not seen yet.
                    known_as = same_get(key)
                    if known_as is None:
                        first = first_get(key)
                    elif known_as.__class__ is int:
                        first = int(known_as)
                    else:
                        first = None
                    if first is not None:
                        first_line.setdefault(key, first)   # still known when ``same`` loses the key
                        message = f"duplicate {key_column} {key} (first at line {first})"
                        yield RowError(file, line, key_column, message, key)
                        continue
                    # Trailing empty fields (a ``;`` too many at the end of a line) hold no data: accepted.
                    if count == width or (count > width and not any(f.strip() for f in fields[width:])):
                        raw = join(stable(fields))
                        # A field holding the separator would make the text ambiguous: such a row gets no digest.
                        if unambiguous or raw.count(RAW_SEPARATOR) == separators:
                            hashed = hasher.copy()
                            hashed.update(raw.encode())
                            digest = hashed.digest()
                            if known_as == digest:
                                same[key] = line
                                unchanged += 1
                                continue
                    first_line[key] = line
                    if known_as is not None:
                        del same[key]
                if count != width:
                    if count < width or any(f.strip() for f in fields[width:]):
                        error = RowError(file, line, None, f"expected {width} fields, found {count}", key)
                        if count < width:
                            short = error
                        else:
                            yield error
                        continue
                try:
                    data = load(fields)
                except ValidationError as exc:
                    messages = exc.messages if isinstance(exc.messages, dict) else {None: exc.messages}
                    for column, text in messages.items():
                        column = None if column == "_schema" else column
                        yield RowError(file, line, column, "; ".join(_flat(text)), key)
                    continue
                yield ParsedRow(table, line, data[key_column], data,
                                {c: fields[i] for i, c in extra} if extra else {}, digest)
        if unchanged:
            yield unchanged
        if short is not None:
            if not info.ends_with_line_break:
                raise DeliveryRejected(f"{file}: the last row (line {short.line}) is short of fields and the file "
                                       f"ends without a line break: the file is truncated")
            yield short

    # ------------------------------------------------------------------ plumbing
    def _member(self, info: zipfile.ZipInfo) -> IO[bytes]:
        try:
            return self._zip.open(info)
        except OPEN_ERRORS as exc:
            # NotImplementedError: an unsupported compression; RuntimeError: an encrypted member.
            raise DeliveryRejected(f"{info.filename} cannot be read from {self.file_name}: {exc}") from exc

    def _csv(self, info: zipfile.ZipInfo, encoding: str, *, measured: bool = True, kept: bool = False) -> _CsvMember:
        return _CsvMember(self, info, encoding, measured, kept)

    def _source(self, info: zipfile.ZipInfo, kept: bool) -> IO[bytes]:
        """The member's bytes: those its first reading kept (when ``kept``, once), else unpacked again."""
        buffer = self._kept.pop(info, None) if kept else None
        if buffer is None:
            return self._member(info)
        buffer.seek(0)
        return buffer

    def close(self) -> None:
        """Close the ZIP file."""
        self._kept.clear()
        self._zip.close()

    def __enter__(self) -> Delivery:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Delivery {self.file_name} tables={','.join(self.tables)}>"


class _CsvMember:
    """A member opened as CSV rows; errors of the ZIP, the encoding and the quoting become DeliveryRejected.

    ``where[0]`` is kept at the last line of the last complete row, for the messages.  Unless
    ``measured`` is false (the member's records are known to be within the row length limit,
    see :class:`_Bounds`), each line is measured and each record's fields counted as they are read.
    With ``kept``, the bytes the member's first reading kept are read, if they are there.
    """

    def __init__(self, delivery: Delivery, info: zipfile.ZipInfo, encoding: str, measured: bool = True,
                 kept: bool = False) -> None:
        self.delivery, self.info, self.encoding, self.measured, self.kept = delivery, info, encoding, measured, kept
        self.where = [0]

    def __enter__(self) -> tuple[_Records | _CsvReader, list[int]]:
        self.raw = self.delivery._source(self.info, self.kept)
        # newline="" hands line breaks inside quoted fields to csv as they are, as csv requires.
        self.text = io.TextIOWrapper(self.raw, encoding=self.encoding, newline="")
        if not self.measured:
            return csv.reader(self.text, delimiter=self.delivery.delimiter, quotechar='"', strict=True), self.where
        lines = _Lines(self.text, self.delivery, self.info.filename, self.where)
        reader = csv.reader(lines, delimiter=self.delivery.delimiter, quotechar='"', strict=True)
        return _Records(reader, lines, self.delivery.max_columns, "columns"), self.where

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> Literal[False]:
        try:
            self.text.close()
        except ZIP_ERRORS:
            pass    # the error that matters is the one being handled, if any
        file, start = self.info.filename, self.where[0] + 1
        if isinstance(exc, csv.Error):
            if "unexpected end of data" in str(exc):
                raise DeliveryRejected(f"{file}: a quoted field of the row at line {start} is not closed before "
                                       f"the end of the file: the file is truncated or badly quoted") from exc
            raise DeliveryRejected(f"{file}: the row at line {start} is not valid CSV: {exc}") from exc
        if isinstance(exc, UnicodeDecodeError):
            raise DeliveryRejected(f"{file}: the row at line {start} is not {self.encoding}: {exc}") from exc
        if isinstance(exc, ZIP_ERRORS):
            raise DeliveryRejected(f"{file} is damaged in {self.delivery.file_name}: {exc}") from exc
        return False


class _Lines:
    """The lines of a member for csv.reader, each record measured as it is read.

    A line is never read longer than what is left of :attr:`Delivery.max_row_length`
    for the record it belongs to (a record may span lines inside quotes), so a
    huge row is refused after reading at most that much of it.
    """

    def __init__(self, text: io.TextIOWrapper, delivery: Delivery, file: str, where: list[int]) -> None:
        self.text, self.delivery, self.file, self.where = text, delivery, file, where
        self.limit = delivery.max_row_length
        self.used = 0       # characters of the record being read
        self.count = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.text.readline(self.limit - self.used + 1)
        if not line:
            raise StopIteration
        self.used += len(line)
        if self.used > self.limit:
            raise DeliveryRejected(f"{self.file}: the row at line {self.where[0] + 1} is longer than the limit of "
                                   f"{self.limit} characters")
        self.count += 1
        if self.count % STOP_EVERY == 0:
            self.delivery.stop_requested()
        return line


class _Bounds:
    """Tells from a member's bytes whether every record csv reads from it is within the row length limit.

    Then csv.reader may read the text directly, without :class:`_Lines` measuring every
    line.  Fed the bytes chunk by chunk (a BOM already cut off), it looks at what shapes
    the records, the same in every encoding a delivery may have: the ASCII bytes of quote,
    delimiter and line breaks.  Bytes count at least the characters they decode to.  A line
    (up to ``\\n``) without a quote that starts a record holds whole records (a ``\\r``
    alone ends one too), none longer than the line.  From a line with a quote on, csv itself
    reads the record, on the latin-1 text of the lines, so that a quoted field spanning
    lines is measured whole.  Anything else (a delimiter that is not ASCII, a record csv
    refuses or that is not finished at the end, quotes in more than about one record per
    4 KiB) answers False: the measuring reader then reads the member and tells exactly
    what is wrong with it.
    """

    def __init__(self, limit: int, delimiter: str) -> None:
        self.limit = limit
        self.delimiter = delimiter
        self.ok = len(delimiter) == 1 and delimiter.isascii() and delimiter not in '"\r\n\x00'
        self.carry = b""    # the lines after the last whole record read, the last one maybe unfinished

    def feed(self, chunk: bytes) -> None:
        if self.ok:
            self._lines(self.carry + chunk if self.carry else chunk, False)

    def finish(self) -> bool:
        """Whether the member may be read without measuring (after its last chunk was fed)."""
        if self.ok and self.carry:
            self._lines(self.carry + b"\n", True)     # the last line, without its line break
        return self.ok

    def _lines(self, data: bytes, last: bool) -> None:
        """Read ``data`` up to its last line break; ``data`` starts with a record."""
        limit, end = self.limit, data.rfind(b"\n") + 1
        start = 0
        # Every line is at most ``limit`` bytes long when each ``limit`` bytes hold a line break.
        while end - start > limit:
            cut = data.rfind(b"\n", start, start + limit)
            if cut < 0:
                self.ok = False
                return
            start = cut + 1
        start = 0
        quote = data.find(b'"', 0, end)
        # Records with quotes are read one by one here: a file that quotes most of its rows is left to the
        # measuring reader after a few of them, rather than read twice by csv.
        allowed = 16 + len(data) // 4096
        while quote >= 0:
            allowed -= 1
            if not allowed:
                self.ok = False
                return
            start = data.rfind(b"\n", start, quote) + 1 or start
            after = self._record(data, start, end)
            if after is None:
                break
            if after - start > limit:
                self.ok = False
                return
            start = after
            quote = data.find(b'"', start, end)
        else:
            start = end
        if not self.ok:
            return
        self.carry = data[start:]
        if len(self.carry) > limit or (last and self.carry):
            # A line, or a record of lines, longer than the limit; or a quoted field not closed at the end.
            self.ok = False

    def _record(self, data: bytes, start: int, end: int) -> int | None:
        """Where the record csv reads from offset ``start`` ends (None: not before ``end``, or not valid)."""
        at = [start, False]

        def text() -> Iterator[str]:
            while (cut := data.find(b"\n", at[0], end)) >= 0:
                line, at[0] = data[at[0]:cut + 1], cut + 1
                yield line.decode("latin-1")
            at[1] = True

        try:
            next(csv.reader(text(), delimiter=self.delimiter, quotechar='"', strict=True))
        except csv.Error:
            # Not finished before ``end``; or not valid CSV, and the measuring reader says where and why.
            self.ok = self.ok and bool(at[1])
            return None
        except StopIteration:
            return None
        position: int = at[0]
        return position


class _Records:
    """csv.reader's records, each refused beyond ``limit`` fields (``what`` names them in the message)."""

    def __init__(self, reader: _CsvReader, lines: _Lines, limit: int, what: str) -> None:
        self.reader, self.lines, self.limit, self.what = reader, lines, limit, what

    @property
    def line_num(self) -> int:
        return self.reader.line_num

    def __iter__(self) -> _Records:
        return self

    def __next__(self) -> list[str]:
        fields = next(self.reader)
        self.lines.used = 0     # the next record is measured from its start
        if len(fields) > self.limit:
            where = "the header" if self.what == "columns" else f"the row at line {self.lines.where[0] + 1}"
            raise DeliveryRejected(f"{self.lines.file}: {where} has {len(fields)} {self.what}, more than the limit "
                                   f"of {self.limit}")
        return fields


def _header(reader: Iterable[list[str]]) -> list[str] | None:
    """The first row that is not empty, or None for a file without one."""
    for fields in reader:
        if any(f.strip() for f in fields):
            return fields
    return None


def _picker(indexes: list[int]) -> Callable[[list[str]], tuple[str, ...]]:
    getter = operator.itemgetter(*indexes)
    return getter if len(indexes) > 1 else (lambda fields: (getter(fields),))


def _flat(messages: object) -> list[str]:
    if isinstance(messages, dict):
        return [m for value in messages.values() for m in _flat(value)]
    if isinstance(messages, (list, tuple)):
        return [m for value in messages for m in _flat(value)]
    return [str(messages)]


def _directory_size(path: Path) -> int | None:
    """The size of a ZIP's central directory as its end record says (None when there is none to find).

    The end record is looked for as zipfile does (the last one in the final 64 KiB);
    zipfile reads that many bytes and makes an entry of each member in them.
    """
    with open(path, "rb") as file:
        size = file.seek(0, os.SEEK_END)
        start = max(0, size - (1 << 16) - 22)
        file.seek(start)
        tail = file.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return None
        directory: int = struct.unpack_from("<I", tail, at + 12)[0]
        locator = at - 20
        if directory == 0xFFFFFFFF and locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":
            # ZIP64: the size is in the ZIP64 end record the locator points to.
            file.seek(min(struct.unpack_from("<Q", tail, locator + 8)[0], size))
            record = file.read(56)
            if len(record) == 56 and record[:4] == b"PK\x06\x06":
                directory = struct.unpack_from("<Q", record, 40)[0]
    return directory


def _digest(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def sha256_of(path: os.PathLike[str] | str) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
