"""The demo records of ``syncbridge run``."""
from __future__ import annotations

from simulators.ameise.state import DEFAULT_VERMITTLER, AmeiseState


def seed_demo(state: AmeiseState) -> tuple[str, str]:
    """Seed Erika Mustermann and her contract; return (Kundennummer, Vertragsnummer)."""
    kunde = state.seed_customer(
        {
            "Anrede": "2",
            "Person": {"Typ": "natuerlich", "Vorname": "Erika", "Nachname": "Mustermann",
                       "Geburtsdatum": "1964-08-12", "Geschlecht": "weiblich"},
            "Kontaktdaten": [{"Kontext": "privat", "Typ": "email", "Value": "erika.mustermann@example.de"}],
            "Hauptwohnsitz": {"Strasse": "Heidestraße 17", "Postleitzahl": "51147", "Ort": "Köln",
                              "Land": "Deutschland"},
            "Vermittler": DEFAULT_VERMITTLER,
        },
        kundennummer="5001234567",
    )
    vertrag = state.seed_contract(
        {
            "Status": "A", "Gesellschaft": "10330", "Kunde": kunde, "Sparte": "050",
            "Beitrag": {"Brutto": 100, "Netto": 84.03, "Steuer": 15.97, "Zahlweise": "5"},
            "Laufzeit": {"Beginn": "2010-01-01", "Ablauf": "2030-12-31"},
            "Risiko": "", "Antragsnummer": "", "Versicherungsscheinnummer": "WG-123-546",
            "Vermittler": DEFAULT_VERMITTLER,
        },
        vertragsnummer="1119876",
    )
    return kunde, vertrag
