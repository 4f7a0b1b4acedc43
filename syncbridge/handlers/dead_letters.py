"""Dead letters for ops: archive each one, then list, show, replay or discard it.

A dead letter comes from one of two places: a consumer that gave up on a
message (``producers.dead_letters``: the message unchanged, our ``x-error*``
headers saying why), or RabbitMQ itself when a quorum queue's delivery limit is
exceeded (its ``x-death`` / ``x-first-death-*`` headers).  :func:`dead_letter_of`
reads either into one :class:`~syncbridge.ports.DeadLetter`, keeping every
header, known or not.  :class:`DeadLetterOps` is what the CLI and the admin API
call: replay checks the message against the current contract of its routing key
and publishes it, confirmed, to its original exchange; replay and discard are
written to the activity log.  No Flask, click or kombu in here.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from contracts.base import ContractError, load_or_raise
from contracts.events import AmeiseDeltasSchema, AmeiseRecordChangedSchema, CrmRecordChangedSchema
from syncbridge.errors import Unavailable
from syncbridge.messages import (
    AMEISE_DELTAS_KEY,
    AmeiseRecordChanged,
    CrmRecordChanged,
    ameise_record_changed_key,
    crm_record_changed_key,
)
from syncbridge.ports import (
    DEAD,
    DISCARDED,
    REPLAYED,
    STATES,
    SYSTEM,
    ActivityEntry,
    DeadLetter,
    DeadLetterFilter,
    DeadLetterKind,
    DeadLetterStore,
    Publisher,
    Store,
    Topology,
    dead_letter_cause,
    dead_letter_kind,
)

log = logging.getLogger(__name__)

# Kinds RabbitMQ gives (the reason of its x-death header), besides ours from producers.dead_letters.
DELIVERY_LIMIT = DeadLetterKind.DELIVERY_LIMIT
EXPIRED = DeadLetterKind.EXPIRED
MAXLEN = DeadLetterKind.MAXLEN
NACKED = DeadLetterKind.NACKED
UNKNOWN = DeadLetterKind.UNKNOWN
KINDS = tuple(DeadLetterKind)
_BROKER_REASONS = {
    "delivery_limit": (DELIVERY_LIMIT, "delivery limit exceeded"),
    "expired": (EXPIRED, "message expired (TTL)"),
    "maxlen": (MAXLEN, "queue length limit exceeded"),
    "rejected": (NACKED, "rejected by a consumer without requeue"),
}

WORK_QUEUES = ("crm-to-ameise", "ameise-to-crm")
UNKNOWN_QUEUE = "unknown"     # the work queue could not be told
QUEUES = (*WORK_QUEUES, UNKNOWN_QUEUE)

# Headers RabbitMQ sets per delivery: a redelivery of the same dead letter differs only in them.
_PER_DELIVERY = ("x-delivery-count", "x-acquired-count")
# Headers of a failure: a replayed message starts without them, so its consumer starts fresh.
_FAILURE_PREFIXES = ("x-error", "x-first-", "x-last-", "x-retr", "x-death", "x-original-", "x-dead-lettered-at",
                     "x-attempts", *_PER_DELIVERY)
_CONTRACTS = (
    (re.compile(r"^crm\.[^.]+\.changed$"), CrmRecordChangedSchema(), "CrmRecordChanged"),
    (re.compile(f"^{re.escape(AMEISE_DELTAS_KEY)}$"), AmeiseDeltasSchema(), "AmeiseDeltas"),
    (re.compile(r"^ameise\.[^.]+\.[^.]+$"), AmeiseRecordChangedSchema(), "AmeiseRecordChanged"),
)
_DELTA = AmeiseRecordChangedSchema()
_KEY_LENGTH = 64   # the record column
_TEXT_LENGTH = 200

# Outcomes of replay and discard.
REPLAYED_NOW = "replayed"
DISCARDED_NOW = "discarded"
WOULD_REPLAY = "would_replay"
WOULD_DISCARD = "would_discard"
REFUSED = "refused"
NOT_FOUND = "not_found"
FAILED = "failed"
SUCCESSES = (REPLAYED_NOW, DISCARDED_NOW, WOULD_REPLAY, WOULD_DISCARD)


class InvalidFilter(ValueError):
    """A filter value that cannot be used; the message says which and why."""


class SelectionError(ValueError):
    """A replay or discard that does not say which dead letters it means."""


# ---------------------------------------------------------------- archiving
@dataclass(frozen=True)
class ArrivedMessage:
    """A message as it arrived on the dead-letter queue."""

    routing_key: str
    body: bytes
    content_type: str | None
    message_id: str | None
    headers: dict[str, Any] = field(default_factory=dict)


def archive_dead_letter(letters: DeadLetterStore, topology: Topology, message: ArrivedMessage) -> int:
    """Store an arrived dead letter (once, however often it is delivered); return its row id."""
    return letters.archive(dead_letter_of(message, topology))


def dead_letter_of(message: ArrivedMessage, topology: Topology, now: datetime | None = None) -> DeadLetter:
    """Read a dead letter from its headers, ours or RabbitMQ's; never raises on odd headers."""
    now = now or datetime.now(UTC)
    headers = _jsonable(dict(message.headers or {}))
    deaths = headers.get("x-death") if isinstance(headers.get("x-death"), list) else []
    deaths = [death for death in deaths if isinstance(death, dict)]
    last_death = deaths[0] if deaths else {}   # RabbitMQ puts the latest dead-lettering first
    broker_reason = _text(headers.get("x-last-death-reason")) or _text(last_death.get("reason")) \
        or _text(headers.get("x-first-death-reason"))
    ours = _text(headers.get("x-error-kind"))
    ours_at = _time(headers.get("x-dead-lettered-at"))
    broker_at = _time(last_death.get("time"))
    # Both sets of headers: whichever dead-lettered it last explains it.
    by_broker = bool(broker_reason) and (not ours or (broker_at is not None and ours_at is not None
                                                       and broker_at > ours_at))
    routing_key = message.routing_key or ""
    kind: str
    if by_broker:
        kind, reason = _BROKER_REASONS.get(broker_reason, (UNKNOWN, f"dead-lettered by RabbitMQ: {broker_reason}"))
        last_error = _text(headers.get("x-last-error")) or _text(headers.get("x-error"))
        if last_error:
            reason = f"{reason}; last error: {last_error}"
        exchange = _text(headers.get("x-last-death-exchange")) or _text(last_death.get("exchange")) \
            or _text(headers.get("x-first-death-exchange"))
        keys = last_death.get("routing-keys")
        routing_key = routing_key or (_text(keys[0]) if isinstance(keys, list) and keys else "")
        dead_lettered_at = broker_at or now
    elif ours:
        kind = dead_letter_kind(ours)   # an older name (e.g. "contract") as the kind it is now
        reason = _text(headers.get("x-error")) or _text(headers.get("x-last-error")) or "(no reason given)"
        exchange = _text(headers.get("x-original-exchange"))
        routing_key = _text(headers.get("x-original-routing-key")) or routing_key
        dead_lettered_at = ours_at or now
    else:
        kind = UNKNOWN
        reason = _text(headers.get("x-last-error")) or _text(headers.get("x-error")) or "dead-lettered without a reason"
        exchange = ""
        dead_lettered_at = now
    queue = _queue_of(routing_key, topology) or _short_queue(_text(last_death.get("queue")), topology)
    return DeadLetter(
        fingerprint=_fingerprint(message),
        queue=queue,
        kind=str(kind)[:32],
        record=_record_of(queue, message.body),
        exchange=_clean(exchange)[:255],
        routing_key=_clean(routing_key)[:255] or "unknown",
        message_id=_clean(message.message_id or "")[:255] or None,
        content_type=_clean(message.content_type or "")[:255] or "application/octet-stream",
        headers=headers,
        body=bytes(message.body),
        reason=_clean(reason),
        cause=dead_letter_cause(str(kind), _clean(reason)),
        first_error=_clean(_text(headers.get("x-first-error")) or reason),
        attempts=_int(headers.get("x-attempts")),
        first_failed_at=_time(headers.get("x-first-failed-at")),
        dead_lettered_at=dead_lettered_at,
        archived_at=now,
    )


def _fingerprint(message: ArrivedMessage) -> str:
    headers = {k: v for k, v in (message.headers or {}).items() if k not in _PER_DELIVERY}
    identity = {"routing_key": message.routing_key, "message_id": message.message_id,
                "content_type": message.content_type, "headers": _jsonable(headers),
                "body": hashlib.sha256(bytes(message.body)).hexdigest()}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _queue_of(routing_key: str, topology: Topology) -> str | None:
    for queue in (topology.crm_to_ameise, topology.ameise_to_crm):
        if routing_key.startswith(queue.routing_key.removesuffix("#")):
            return _short_queue(queue.name, topology)
    return None


def _short_queue(name: str, topology: Topology) -> str:
    short = name.removeprefix(f"{topology.namespace}.")
    return short if short in WORK_QUEUES else UNKNOWN_QUEUE


def _record_of(queue: str, body: bytes) -> str | None:
    """The Zoho record id of a CRM event, the Kundennummer / Vertragsnummer of a DailyUp delta."""
    data = _json_object(body)
    value = data.get({"crm-to-ameise": "record_id", "ameise-to-crm": "key"}.get(queue, ""))
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    value = _clean(str(value).strip())
    return value if 0 < len(value) <= _KEY_LENGTH else None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _jsonable(value: Any) -> Any:
    """Header values as JSON can hold them (AMQP tables carry timestamps, bytes, decimals)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)   # JSON has no NaN or infinity
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL characters.
    return text.replace("\x00", "\ufffd")


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _time(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ---------------------------------------------------------------- filters and selections
def parse_filter(*, queue: str | None = None, kind: str | None = None, record: str | None = None,
                 since: str | datetime | None = None, until: str | datetime | None = None,
                 state: str | None = None, text: str | None = None, cause: str | None = None) -> DeadLetterFilter:
    """Build a filter from text (CLI options, query parameters); empty values count as not given."""
    queue, kind, record, state, text, cause = (_given(value) for value in (queue, kind, record, state, text, cause))
    kind = None if kind is None else dead_letter_kind(kind)   # an older name filters as the kind it is now
    for name, value, allowed in (("queue", queue, QUEUES), ("kind", kind, KINDS), ("state", state, STATES)):
        if value is not None and value not in allowed:
            raise InvalidFilter(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    if record is not None and len(record) > _KEY_LENGTH:
        raise InvalidFilter(f"record must be a record id, Kundennummer or Vertragsnummer "
                            f"(at most {_KEY_LENGTH} characters)")
    start, end = _filter_time("since", since), _filter_time("until", until)
    if start is not None and end is not None and start >= end:
        raise InvalidFilter("since must be before until")
    if text is not None and len(text) > _TEXT_LENGTH:
        raise InvalidFilter(f"text must be at most {_TEXT_LENGTH} characters")
    if cause is not None and len(cause) > 255:
        raise InvalidFilter("cause must be at most 255 characters")
    return DeadLetterFilter(queue=queue, kind=kind, record=record, since=start, until=end, state=state, text=text,
                            cause=cause)


def _given(value: str | None) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else value


def _filter_time(name: str, value: str | datetime | None) -> datetime | None:
    if isinstance(value, datetime):
        return _time(value)
    if (value := _given(value)) is None:
        return None
    try:
        return _time(datetime.fromisoformat(value))   # a time without offset is UTC
    except (ValueError, OverflowError):   # OverflowError: 0001-01-01T00:00+14:00 is before UTC's first second
        raise InvalidFilter(f"{name} must be an ISO 8601 date or time (e.g. 2026-12-01 or 2026-12-01T08:00Z), "
                            f"not {value!r}") from None


@dataclass(frozen=True)
class Selection:
    """The dead letters a replay or discard acts on: ids, or a filter, or all of them (explicitly)."""

    ids: tuple[int, ...] = ()
    filter: DeadLetterFilter = DeadLetterFilter()
    everything: bool = False

    def __post_init__(self) -> None:
        if self.ids and (self.everything or not self.filter.empty):
            raise SelectionError("name dead letters by id or by filter, not both")
        if not self.ids and self.filter.empty and not self.everything:
            raise SelectionError("name the dead letters: ids, a filter, or all of them explicitly")


@dataclass(frozen=True)
class Outcome:
    """What a replay or discard did (or, in a dry run, would do) with one dead letter."""

    id: int
    status: str                 # replayed, discarded, would_replay, would_discard, refused, not_found, failed
    routing_key: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in SUCCESSES


# ---------------------------------------------------------------- replay
def contract_problem(letter: DeadLetter) -> str | None:
    """Why the message may not be replayed under the current contract of its routing key, or None."""
    for pattern, schema, name in _CONTRACTS:
        if pattern.match(letter.routing_key):
            break
    else:
        return f"no contract for routing key {letter.routing_key!r}"
    if (letter.content_type or "").split(";")[0].strip() != "application/json":
        return f"content type {letter.content_type!r}: the consumers accept application/json only"
    try:
        data = json.loads(letter.replay_body)
    except (ValueError, TypeError) as exc:
        return f"the body is not JSON: {exc}"
    contract = f"{name} v{schema.SCHEMA_VERSION}"
    try:
        message = load_or_raise(schema, data)
    except ContractError as exc:
        return f"contract {contract} violated: {exc.errors}"
    if isinstance(message, list):
        # Several deltas: each must meet its own contract, as the consumer loads each on its own.
        for index, delta in enumerate(message):
            try:
                load_or_raise(_DELTA, delta)
            except ContractError as exc:
                return f"delta {index} of {contract}: contract AmeiseRecordChanged v{_DELTA.SCHEMA_VERSION} violated: " \
                       f"{exc.errors}"
        expected = AMEISE_DELTAS_KEY
    elif isinstance(message, CrmRecordChanged):
        expected = crm_record_changed_key(message.module)
    elif isinstance(message, AmeiseRecordChanged):
        expected = ameise_record_changed_key(message.entity, message.change)
    else:
        return f"{contract} is no message the service replays"
    if expected != letter.routing_key:
        return f"routing key {letter.routing_key!r} does not match the message ({contract} says {expected!r})"
    return None


def replay_headers(letter: DeadLetter) -> dict[str, Any]:
    """The headers of a replay: the failure's removed so the consumer starts fresh, the rest kept, the replay noted."""
    headers = {k: v for k, v in letter.headers.items() if not k.startswith(_FAILURE_PREFIXES)}
    # Replays of earlier generations (a replayed message that died again) count too.
    earlier = _int(letter.headers.get("x-replays")) or 0
    headers.update({"x-replayed-from": letter.id, "x-replays": earlier + letter.replays + 1})
    return headers


class DeadLetterOps:
    """List, show, replay and discard archived dead letters; replay and discard go to the activity log."""

    def __init__(self, letters: DeadLetterStore, activity: Store, *, publisher: Publisher | None = None,
                 topology: Topology | None = None, page: int = 500) -> None:
        self.letters = letters
        self.activity = activity
        self.publisher = publisher
        self.topology = topology
        self.page = page

    def find(self, flt: DeadLetterFilter = DeadLetterFilter(), *, limit: int = 100) -> list[DeadLetter]:
        """Return the dead letters ``flt`` matches, newest first."""
        return self.letters.find(flt, limit=limit)

    def get(self, letter_id: int) -> DeadLetter | None:
        """Return one dead letter by its id."""
        return self.letters.get(letter_id)

    def replay(self, selection: Selection, *, by: str, force: bool = False, dry_run: bool = False) -> list[Outcome]:
        """Publish each selected dead letter again to its original exchange and routing key, confirmed.

        A message that fails the current contract of its routing key stays dead with the reason.
        A dead letter replayed or discarded before needs ``force``.  A broker that does not
        confirm stops the replay there: that dead letter stays as it was, the rest are not tried.
        """
        if not dry_run and (self.publisher is None or self.topology is None):
            raise RuntimeError("replaying needs a publisher and the topology")
        outcomes = []
        for letter_id in self._selected(selection):
            outcome = self._replay_one(letter_id, by, force, dry_run)
            outcomes.append(outcome)
            if outcome.status == FAILED:
                break
        return outcomes

    def discard(self, selection: Selection, *, by: str, note: str | None = None, force: bool = False,
                dry_run: bool = False) -> list[Outcome]:
        """Mark each selected dead letter discarded (it stays in the archive); one acted on before needs ``force``."""
        outcomes = []
        for letter_id in self._selected(selection):
            with self.letters.change(letter_id) as change:
                if change is None:
                    outcomes.append(Outcome(letter_id, NOT_FOUND, reason="no such dead letter"))
                    continue
                letter = change.letter
                refusal = _state_refusal(letter, force)
                if refusal or dry_run:
                    outcomes.append(Outcome(letter_id, REFUSED if refusal else WOULD_DISCARD, letter.routing_key,
                                            refusal))
                    continue
                letter = change.discarded(by, note)
            self._log(letter, "dead_letter_discarded", by, note=note)
            outcomes.append(Outcome(letter_id, DISCARDED_NOW, letter.routing_key))
        return outcomes

    def correct(self, letter_id: int, body: bytes, *, by: str) -> tuple[DeadLetter | None, str | None]:
        """Keep ``body`` as the correction of a dead letter that a replay publishes; the original stays.

        The correction must pass the contract of the letter's routing key; if it does not, nothing is
        kept and the second value says why.  Returns the letter as it is now (None if there is none).
        """
        with self.letters.change(letter_id) as change:
            if change is None:
                return None, "no such dead letter"
            letter = change.letter
            if letter.state != DEAD:
                return letter, f"state {letter.state!r}: only a dead letter is corrected"
            problem = contract_problem(replace(letter, corrected_body=body))
            if problem:
                return letter, problem
            letter = change.corrected(body, by)
        self._log(letter, "dead_letter_corrected", by)
        return letter, None

    # ------------------------------------------------------------ helpers
    def _replay_one(self, letter_id: int, by: str, force: bool, dry_run: bool) -> Outcome:
        try:
            with self.letters.change(letter_id) as change:
                if change is None:
                    return Outcome(letter_id, NOT_FOUND, reason="no such dead letter")
                letter = change.letter
                refusal = _state_refusal(letter, force)
                if refusal:
                    return Outcome(letter_id, REFUSED, letter.routing_key, refusal)
                problem = contract_problem(letter)
                if dry_run:
                    return Outcome(letter_id, REFUSED if problem else WOULD_REPLAY, letter.routing_key, problem)
                if problem:
                    letter = change.refused(problem)
                else:
                    # Publish first, mark second: if the broker does not confirm, the row stays dead.
                    headers = replay_headers(letter)
                    if self.publisher is None or self.topology is None:
                        raise RuntimeError("replaying needs a publisher and the topology")
                    self.publisher.publish(letter.exchange or self.topology.events.name, letter.routing_key,
                                           letter.replay_body, message_id=letter.message_id or f"dead-letter-{letter.id}",
                                           headers=headers, content_type=letter.content_type)
                    letter = change.replayed(by)
        except Unavailable as exc:   # the broker did not confirm
            log.error("replaying dead letter %s failed: %s", letter_id, exc)
            return Outcome(letter_id, FAILED, reason=f"{exc}; the dead letters after it were not tried")
        # The activity log is written after the row's transaction: on SQLite a second writer would wait for it.
        if problem:
            self._log(letter, "dead_letter_replayed", by, result="error", error=problem)
            return Outcome(letter_id, REFUSED, letter.routing_key, problem)
        self._log(letter, "dead_letter_replayed", by, replays=letter.replays, exchange=letter.exchange)
        return Outcome(letter_id, REPLAYED_NOW, letter.routing_key)

    def _selected(self, selection: Selection) -> Iterator[int]:
        if selection.ids:
            yield from dict.fromkeys(selection.ids)
            return
        flt = selection.filter
        if flt.state is None:
            # A bulk action means the letters still dead unless it names another state.
            flt = replace(flt, state=DEAD)
        after = 0
        while ids := self.letters.ids(flt, after=after, limit=self.page):
            yield from ids
            after = ids[-1]

    def _log(self, letter: DeadLetter, action: str, by: str, *, result: str = "ok", error: str | None = None,
             **details: Any) -> None:
        crm = letter.queue == "crm-to-ameise"
        self.activity.log(ActivityEntry(
            direction=SYSTEM, action=action, result=result, error=error, event_id=letter.message_id,
            zoho_id=letter.record if crm else None,
            ameise_id=letter.record if letter.queue == "ameise-to-crm" else None,
            details={"by": by, "dead_letter_id": letter.id, "routing_key": letter.routing_key, "queue": letter.queue,
                     "kind": letter.kind, **{k: v for k, v in details.items() if v is not None}},
        ))


def _state_refusal(letter: DeadLetter, force: bool) -> str | None:
    if letter.state == DEAD or force:
        return None
    if letter.state == REPLAYED:
        return (f"replayed already ({letter.replays}x, last by {letter.replayed_by} at "
                f"{letter.replayed_at:%Y-%m-%d %H:%M:%S}); use force to replay it again")
    if letter.state == DISCARDED:
        return (f"discarded by {letter.discarded_by} at {letter.discarded_at:%Y-%m-%d %H:%M:%S}; "
                "use force to act on it anyway")
    return f"state {letter.state!r}"


# ---------------------------------------------------------------- presentation
def as_json(letter: DeadLetter, *, full: bool = False) -> dict[str, Any]:
    """A dead letter as JSON values: the summary, or with ``full`` its headers and body too."""
    times = ("first_failed_at", "dead_lettered_at", "archived_at", "replayed_at", "discarded_at")
    summary = {
        "id": letter.id, "state": letter.state, "queue": letter.queue, "kind": letter.kind, "record": letter.record,
        "routing_key": letter.routing_key, "exchange": letter.exchange, "message_id": letter.message_id,
        "reason": letter.reason, "first_error": letter.first_error, "attempts": letter.attempts,
        "replays": letter.replays, "replayed_by": letter.replayed_by, "replay_error": letter.replay_error,
        "discarded_by": letter.discarded_by, "note": letter.note,
        **{name: getattr(letter, name).isoformat() if getattr(letter, name) else None for name in times},
    }
    if full:
        summary.update({"content_type": letter.content_type, "headers": letter.headers, **body_view(letter.body)})
        if letter.corrected_body is not None:
            summary.update({"corrected_by": letter.corrected_by, "corrected_at": letter.corrected_at.isoformat()
                            if letter.corrected_at else None,
                            "corrected": body_view(letter.corrected_body)})
    return summary


def body_view(body: bytes) -> dict[str, Any]:
    """The body as JSON (``body``), else as text (``body_text``), else base64 (``body_base64``)."""
    try:
        return {"body": json.loads(body)}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(body).decode("ascii")}
    except ValueError:
        try:
            return {"body_text": body.decode("utf-8")}
        except UnicodeDecodeError:
            return {"body_base64": base64.b64encode(body).decode("ascii")}
