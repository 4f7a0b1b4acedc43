"""The Ameise -> CRM handler over in-memory fakes: DailyUp rows, deltas and a world to apply them in."""
from __future__ import annotations

from simulators.fakes.snapshot import MemorySnapshot
from simulators.fakes.store import MemoryStore
from simulators.fakes.zoho import InMemoryZoho
from syncbridge.handlers import (
    ReturnDependencies,
    sync_ameise_records_to_crm,
)
from syncbridge.mapping import load_mapping
from syncbridge.messages import AmeiseRecordChanged, SyncAmeiseRecordsToCrm

MODULES = {"person": "Contacts", "company": "Accounts", "contract": "Deals"}


LOOKUPS = {
    "anreden": {"1": "Herr", "2": "Frau"},
    "laender": {"D": "Deutschland", "A": "Österreich"},
    "rechtsformen": {"GMBH": "GmbH", "AG": "Aktiengesellschaft"},
    "sparten": {"040": "Privathaftpflicht", "050": "Wohngebäude"},
    "gesellschaften": {"10330": "Allianz Versicherungs-AG"},
    "vertragsstatus": {"A": "aktiv", "S": "storniert"},
    "zahlweisen": {"1": "jährlich", "5": "monatlich"},
}


def person(kundennummer: str, **changes) -> dict:
    """A kunden row of a natural person, normalized as the importer stores it."""
    return {"Kundennummer": kundennummer, "Vermittlernummer": "A1B2C3", "Personentyp": "natuerlich", "Anrede": "2",
            "Titel": None, "Vorname": "Erika", "Nachname": f"Mustermann {kundennummer}", "Firma": None,
            "Rechtsform": None, "Geburtsdatum": "1964-08-12", "Strasse": "Heidestraße 17", "PLZ": "01147",
            "Ort": "Köln", "Land": "D", "Email": f"kunde{kundennummer}@example.de", "Telefon": "+49 221 1234567",
            "Mobil": None, "BenutzernameSimplr": None, "LetzterLogin": None, "GeaendertAm": "2025-03-01", **changes}


def company(kundennummer: str, **changes) -> dict:
    """A kunden row of a legal person."""
    return person(kundennummer, Personentyp="juristisch", Anrede=None, Vorname=None, Nachname=None, Geburtsdatum=None,
                  Firma=f"Muster Bau {kundennummer}", Rechtsform="GMBH", **changes)


def contract(vertragsnummer: str, kundennummer: str, **changes) -> dict:
    """A vertraege row."""
    return {"Vertragsnummer": vertragsnummer, "Kundennummer": kundennummer, "Versicherungsscheinnummer": "WG-123-546",
            "Gesellschaft": "10330", "Sparte": "050", "Status": "A", "BeitragBrutto": "100", "BeitragNetto": "84.03",
            "Zahlweise": "5", "Beginn": "2010-01-01", "Ablauf": "2030-12-31", "Risiko": None,
            "Vermittlernummer": "A1B2C3", "GeaendertAm": "2025-03-01", **changes}


def delta(entity: str, key: str, change: str = "created", import_id: int = 1) -> AmeiseRecordChanged:
    return AmeiseRecordChanged(delta_id=f"{import_id}:{entity}:{key}", import_id=import_id, delivered_on="2025-03-01",
                               entity=entity, change=change, key=key)


class World:
    """The handler's dependencies over an empty in-memory CRM."""

    def __init__(self, delete_mode: str = "mark") -> None:
        self.zoho = InMemoryZoho()
        self.store = MemoryStore()
        self.snapshot = MemorySnapshot(LOOKUPS)
        self.deps = ReturnDependencies(crm=self.zoho, snapshot=self.snapshot, store=self.store, mapping=load_mapping(),
                                       modules=dict(MODULES), delete_mode=delete_mode)

    def apply(self, *records: AmeiseRecordChanged):
        return sync_ameise_records_to_crm(SyncAmeiseRecordsToCrm(tuple(records)), self.deps)

    def customer(self, row: dict) -> AmeiseRecordChanged:
        self.snapshot.put("kunden", row["Kundennummer"], row)
        return delta("customer", row["Kundennummer"])

    def contract(self, row: dict) -> AmeiseRecordChanged:
        self.snapshot.put("vertraege", row["Vertragsnummer"], row)
        return delta("contract", row["Vertragsnummer"])

    def only(self, module: str) -> dict:
        [record] = self.zoho.records(module)
        return record
