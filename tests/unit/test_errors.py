"""The one error tree: every failure of the adapters and the core is either unavailable or rejected."""
from __future__ import annotations

import importlib
import pkgutil

import syncbridge
import syncbridge.adapters
from syncbridge.errors import ExternalServiceError, RecordBusy, RecordRejected, Rejected, SyncError, Unavailable


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def _import_core_and_adapters() -> None:
    for package in (syncbridge, syncbridge.adapters):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".migrations" not in info.name and not info.name.endswith(".__main__"):   # a __main__ runs
                importlib.import_module(info.name)


def test_every_error_is_unavailable_or_rejected() -> None:
    _import_core_and_adapters()
    errors = {cls for cls in _subclasses(SyncError)
              if cls.__module__.startswith(("syncbridge.", "producers.", "consumers."))}
    assert errors, "the tree has no subclasses"
    for cls in errors - {Unavailable, Rejected}:
        if issubclass(cls, (Unavailable, Rejected)):
            assert not issubclass(cls, Unavailable) or not issubclass(cls, Rejected), cls
            continue
        # Otherwise it is a system's base: every error raised under it is one of the two kinds.
        children = _subclasses(cls)
        assert any(issubclass(c, Unavailable) for c in children), f"{cls.__name__} has no unavailable child"
        assert any(issubclass(c, Rejected) for c in children), f"{cls.__name__} has no rejected child"


def test_the_system_bases_derive_from_the_root() -> None:
    from syncbridge.adapters.ameise import AmeiseError, AmeiseRejected, AmeiseUnavailable
    from syncbridge.adapters.zoho import ZohoError, ZohoRejected, ZohoUnavailable

    assert ExternalServiceError is SyncError
    assert issubclass(ZohoError, SyncError) and issubclass(AmeiseError, SyncError)
    assert issubclass(ZohoUnavailable, Unavailable) and issubclass(AmeiseUnavailable, Unavailable)
    assert issubclass(ZohoRejected, Rejected) and issubclass(AmeiseRejected, Rejected)


def test_the_core_errors_say_their_kind_and_describe_in_one_line() -> None:
    assert issubclass(RecordBusy, Unavailable) and issubclass(RecordRejected, Rejected)
    assert RecordRejected("no customer", field="Kundennummer").describe() == "syncbridge field=Kundennummer: no customer"
    assert RecordBusy("Contacts/1 is busy").describe() == "syncbridge: Contacts/1 is busy"


def test_kinds_directions_and_outcomes_are_stored_and_sent_as_their_plain_strings() -> None:
    from syncbridge.handlers import RecordStatus
    from syncbridge.ports import DeadLetterKind, Direction, dead_letter_headers, dead_letter_kind

    headers = dead_letter_headers({}, "syncbridge.events", "crm.Contacts.changed", "why", DeadLetterKind.CONTRACT_VIOLATION)
    assert headers["x-error-kind"] == "contract-violation" and type(headers["x-error-kind"]) is str
    assert DeadLetterKind("contract") is DeadLetterKind.CONTRACT_VIOLATION          # the older name
    assert DeadLetterKind.CONTRACT_VIOLATION.names == ("contract-violation", "contract")
    assert dead_letter_kind("something else") == "something else"                  # kept as it came
    assert [f"{d}" for d in Direction] == ["crm_to_ameise", "ameise_to_crm", "system"]
    assert [f"{s}" for s in RecordStatus] == ["ok", "rejected", "unavailable"]
