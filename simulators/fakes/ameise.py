"""In-memory Ameise client with the semantics of :class:`syncbridge.adapters.ameise.AmeiseClient`.

It runs the simulator's own rules (:class:`simulators.ameise.AmeiseState`) without
HTTP, so creates answer only the new number, validation, the Vermittler quirk and
search behave as in the simulator, and one parametrized test suite keeps the
real client and this fake in step.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from simulators.ameise import (
    DEFAULT_EMPLOYEE_ID,
    PAGE_FOREIGN_VERMITTLER,
    PAGE_TITLES,
    AmeiseState,
    ForeignVermittler,
    NotFound,
    UnknownField,
    ValidationFailed,
)
from syncbridge.adapters.ameise import AmeiseRejected
from syncbridge.errors import ExternalServiceError


class InMemoryAmeise:
    """An :class:`syncbridge.ports.AmeiseClient` over an in-memory :class:`AmeiseState`."""

    def __init__(self, state: AmeiseState | None = None, *, employee_id: str = DEFAULT_EMPLOYEE_ID) -> None:
        self.state = state or AmeiseState()
        self.employee_id = employee_id
        self._failures: list[tuple[str | None, ExternalServiceError]] = []

    # ------------------------------------------------------------ test helpers
    @property
    def creates(self) -> dict[str, int]:
        """Creates so far: ``{"customers": n, "contracts": n}``."""
        return self.state.creates

    @property
    def updates(self) -> dict[str, int]:
        """Updates so far: ``{"customers": n, "contracts": n}``."""
        return self.state.updates

    @property
    def customers(self) -> dict[str, dict[str, Any]]:
        """A copy of all customers by Kundennummer."""
        return self.state.customers

    @property
    def contracts(self) -> dict[str, dict[str, Any]]:
        """A copy of all contracts by Vertragsnummer."""
        return self.state.contracts

    def fail_next(self, error: ExternalServiceError, count: int = 1, *, call: str | None = None) -> None:
        """Make the next ``count`` calls (of the method named ``call`` only, if given) raise ``error``."""
        self._failures.extend([(call, error)] * count)

    # ------------------------------------------------------------ AmeiseClient
    def get_customer(self, kundennummer: str) -> dict[str, Any] | None:
        self._maybe_fail("get_customer")
        return self.state.get_customer(str(kundennummer))

    def create_customer(self, data: dict[str, Any]) -> str:
        self._maybe_fail("create_customer")
        with _as_rejected("POST kunden"):
            return self.state.create_customer(data, self.employee_id)["Id"]

    def update_customer(self, kundennummer: str, data: dict[str, Any]) -> None:
        self._maybe_fail("update_customer")
        with _as_rejected(f"PUT kunden/{kundennummer}"):
            self.state.update_customer(str(kundennummer), data, self.employee_id)

    def set_main_address(self, kundennummer: str, address: dict[str, Any]) -> None:
        self._maybe_fail("set_main_address")
        with _as_rejected(f"PUT kunden/{kundennummer}/adressen/0"):
            self.state.put_address(str(kundennummer), 0, address)

    def add_contact(self, kundennummer: str, entry: dict[str, Any]) -> None:
        self._maybe_fail("add_contact")
        with _as_rejected(f"POST kunden/{kundennummer}/kontaktdaten"):
            self.state.add_contact(str(kundennummer), entry)

    def update_contact(self, kundennummer: str, contact_id: str, entry: dict[str, Any]) -> None:
        self._maybe_fail("update_contact")
        with _as_rejected(f"PUT kunden/{kundennummer}/kontaktdaten/{contact_id}"):
            self.state.update_contact(str(kundennummer), str(contact_id), entry)

    def search_customers(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        self._maybe_fail("search_customers")
        with _as_rejected("GET kunden/_search"):
            return self.state.search_customers(query)

    def check_connection(self) -> str:
        """The preflight's probe (:class:`syncbridge.ports.AmeiseConnection`): one search of one hit."""
        self._maybe_fail("check_connection")
        with _as_rejected("GET kunden/_search"):
            self.state.search_customers({"q": "syncbridge-preflight"}, size=1)
        return self.employee_id

    def customer_contracts(self, kundennummer: str) -> list[dict[str, Any]]:
        self._maybe_fail("customer_contracts")
        try:
            return self.state.customer_contracts(str(kundennummer))
        except NotFound:
            return []

    def get_contract(self, vertragsnummer: str) -> dict[str, Any] | None:
        self._maybe_fail("get_contract")
        return self.state.get_contract(str(vertragsnummer))

    def create_contract(self, data: dict[str, Any]) -> str:
        self._maybe_fail("create_contract")
        with _as_rejected("POST vertraege"):
            return self.state.create_contract(data, self.employee_id)["Id"]

    def update_contract(self, vertragsnummer: str, data: dict[str, Any]) -> None:
        self._maybe_fail("update_contract")
        with _as_rejected(f"PUT vertraege/{vertragsnummer}"):
            self.state.update_contract(str(vertragsnummer), data, self.employee_id)

    def _maybe_fail(self, method: str) -> None:
        for index, (call, error) in enumerate(self._failures):
            if call in (None, method):
                del self._failures[index]
                raise error


@contextmanager
def _as_rejected(what: str) -> Iterator[None]:
    """Turn the simulator's refusals into the AmeiseRejected the real client raises."""
    try:
        yield
    except ValidationFailed as exc:
        fields = [m["field"] for m in exc.messages if m.get("field")]
        text = "; ".join(
            m["message"] if not m.get("field") or m["field"] in m["message"] else f"{m['field']}: {m['message']}"
            for m in exc.messages
        )
        raise AmeiseRejected(f"{what}: {text}", status=400, field=fields[0] if fields else None, body=exc.messages) from exc
    except (ForeignVermittler, UnknownField) as exc:
        raise AmeiseRejected(f"{what}: {PAGE_FOREIGN_VERMITTLER}", status=400) from exc
    except NotFound as exc:
        raise AmeiseRejected(f"{what}: {PAGE_TITLES[404]}", status=404) from exc
