"""Property: whatever the CRM and Ameise users edit, the next DailyUp brings every Ameise-side value to the CRM.

Both directions run in this process: CRM edits go through the CRM -> Ameise handler
(which leaves echo marks in the DailyUp store on SQLite), Ameise edits are made in
the simulator's state, and a delivery is the simulator's DailyUp taken in by the
importer, its messages loaded through their contract and applied by the return
handler to the in-memory Zoho.
"""
from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.events import AmeiseDeltasSchema, AmeiseRecordChangedSchema
from producers.topology import build_topology
from simulators.ameise import seed_demo as seed_ameise
from simulators.fakes.ameise import InMemoryAmeise
from simulators.fakes.store import MemoryStore
from simulators.fakes.zoho import InMemoryZoho
from simulators.zoho import seed_demo as seed_zoho
from syncbridge.adapters.db.dailyup import SqlDailyUpStore
from syncbridge.adapters.db.migrate import upgrade
from syncbridge.dailyup.importer import DailyUpImporter
from syncbridge.handlers import (
    OK,
    ReturnDependencies,
    SyncDependencies,
    sync_ameise_records_to_crm,
    sync_crm_record_to_ameise,
)
from syncbridge.mapping import load_mapping
from syncbridge.messages import SyncAmeiseRecordsToCrm, SyncCrmRecordToAmeise
from tests.support.fuzzing import examples

CUSTOMERS = ("Erika Mustermann", "Max Neumann")
FIELDS = (("Phone", "Telefon"), ("Mobile", "Mobil"), ("Mailing_City", "Ort"))   # CRM field, DailyUp column
VALUES = {"Phone": ("+49 30 1", "+49 30 2", "+49 30 3"), "Mobile": ("0170 1", "0170 2", "0170 3"),
          "Mailing_City": ("Köln", "Bonn", "Berlin")}


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    """A migrated SQLite database, copied for every example."""
    path = tmp_path_factory.mktemp("echo-property") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


class Collected:
    """A publisher that keeps what the importer publishes (routing key, body, message id)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict, str]] = []

    def publish_many(self, exchange, messages, **kwargs) -> int:
        messages = list(messages)
        self.messages.extend(messages)
        return len(messages)


class Systems:
    """Zoho and Ameise seeded with the demo, both handlers, the importer; a day's counter for deliveries."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.zoho, self.ameise = InMemoryZoho(), InMemoryAmeise()
        self.ids = seed_zoho(self.zoho.state)
        seed_ameise(self.ameise.state)
        self.links = MemoryStore()
        self.dailyup = SqlDailyUpStore.from_url(f"sqlite:///{folder / 'syncbridge.db'}")
        mapping = load_mapping()
        self.sync_deps = SyncDependencies(crm=self.zoho, ameise=self.ameise, store=self.links, mapping=mapping,
                                          module_entities={"Contacts": "person", "Accounts": "company",
                                                           "Deals": "contract"},
                                          default_vermittler="A1B2C3", echoes=self.dailyup)
        self.return_deps = ReturnDependencies(crm=self.zoho, snapshot=self.dailyup, store=self.links, mapping=mapping,
                                              modules={"person": "Contacts", "company": "Accounts",
                                                       "contract": "Deals"})
        self.published = Collected()
        self.importer = DailyUpImporter(self.dailyup, publisher=self.published, topology=build_topology("echo"))
        self.events = 0
        # Deliveries of the days after today: each is exported after the writes before it.
        self.day = datetime.now(UTC).date()

    def crm(self, name: str) -> dict:
        return self.zoho.state.get("Contacts", self.ids[name])

    def number(self, name: str) -> str:
        return self.crm(name)["Kundennummer"]

    def ameise_customer(self, name: str) -> dict:
        """The customer in Ameise, as the DailyUp columns it would be delivered in."""
        return load_mapping().as_dailyup("person").columns(self.ameise.state.get_customer(self.number(name)))

    def edit_in_crm(self, name: str, field: str, value: str) -> None:
        """A CRM user's edit, synced to Ameise as its webhook would have it."""
        self.zoho.update_records("Contacts", [{"id": self.ids[name], field: value}])
        self.sync_to_ameise(name)

    def sync_to_ameise(self, name: str) -> None:
        self.events += 1
        sync_crm_record_to_ameise(SyncCrmRecordToAmeise("Contacts", self.ids[name], f"event-{self.events}"),
                                  self.sync_deps)

    def edit_in_ameise(self, name: str, column: str, value: str) -> None:
        """A user's edit in Ameise of the field the DailyUp delivers as ``column``."""
        if column == "Ort":
            edit = {"Hauptwohnsitz": {"Ort": value}}
        else:
            edit = {"Kontaktdaten": [{"Kontext": "privat", "Typ": column.lower(), "Value": value}]}
        self.ameise.state.edit_customer(self.number(name), edit)

    def deliver(self) -> list[dict]:
        """Take the day's DailyUp in and apply its deltas to the CRM; return the upserted Contacts records."""
        self.day += timedelta(days=1)
        file_name, data = self.ameise.state.dailyup(day=self.day)
        path = self.folder / file_name
        path.write_bytes(data)
        writes = len(self.zoho.writes)
        start = len(self.published.messages)
        result = self.importer.import_file(path)
        assert result.state == "published", result
        schema = AmeiseRecordChangedSchema()
        records = tuple(schema.load(delta) for _, body, _ in self.published.messages[start:]
                        for delta in AmeiseDeltasSchema().load(body))
        if records:
            outcomes = sync_ameise_records_to_crm(SyncAmeiseRecordsToCrm(records), self.return_deps)
            assert all(o.status == OK for o in outcomes), outcomes
        return [r for w in self.zoho.writes[writes:] if w.operation == "upsert" and w.module == "Contacts"
                for r in w.records]


step = st.one_of(
    st.tuples(st.just("crm"), st.sampled_from(CUSTOMERS), st.sampled_from(FIELDS), st.integers(0, 2)),
    st.tuples(st.just("ameise"), st.sampled_from(CUSTOMERS), st.sampled_from(FIELDS), st.integers(0, 2)),
    st.tuples(st.just("deliver")),
)


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=8))
def test_after_a_delivery_the_crm_has_every_ameise_value_and_gets_none_of_our_echoes(template_db, steps):
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(template_db, Path(folder) / "syncbridge.db")
        systems = Systems(Path(folder))
        try:
            run(systems, steps)
        finally:
            systems.dailyup.engine.dispose()


def run(systems: Systems, steps: list[tuple]) -> None:
    # Max is in the CRM only: the CRM -> Ameise direction creates him there (and leaves its echo).
    systems.sync_to_ameise("Max Neumann")
    # (customer, column) -> who wrote Ameise's value last since the previous delivery
    writer: dict[tuple[str, str], str] = {}

    def crm_wrote(name: str) -> None:
        # A sync writes every mapped CRM field that has a value.
        for field, column in FIELDS:
            if systems.crm(name).get(field):
                writer[(name, column)] = "crm"

    crm_wrote("Max Neumann")
    for action, *args in [*steps, ("deliver",)]:
        if action == "crm":
            name, (field, _), choice = args
            systems.edit_in_crm(name, field, VALUES[field][choice])
            crm_wrote(name)
        elif action == "ameise":
            name, (field, column), choice = args
            systems.edit_in_ameise(name, column, VALUES[field][choice])
            writer[(name, column)] = "ameise"
        else:
            upserted = systems.deliver()
            for name in CUSTOMERS:
                crm, ameise = systems.crm(name), systems.ameise_customer(name)
                # Every value Ameise has is in the CRM now (an empty one wipes nothing) ...
                assert {f: crm.get(f) for f, c in FIELDS if ameise.get(c)} == {
                    f: ameise[c] for f, c in FIELDS if ameise.get(c)}, (name, steps)
                # ... and what came back from our own writes was not sent to the CRM again.
                ours = {field for field, column in FIELDS if writer.get((name, column)) == "crm"}
                for record in upserted:
                    if record.get("Kundennummer") == systems.number(name):
                        assert not ours & set(record), (name, sorted(ours & set(record)), steps)
            writer.clear()
