"""The demo records of ``syncbridge run``."""
from __future__ import annotations

import logging

from simulators.zoho.state import ZohoState

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ demo data
def seed_demo(state: ZohoState) -> dict[str, str]:
    """Seed the demo broker's CRM; return the new record ids by name."""
    ids: dict[str, str] = {}
    ids["Erika Mustermann"] = state.seed("Contacts", {
        "Salutation": "Frau", "First_Name": "Erika", "Last_Name": "Mustermann",
        "Email": "erika.mustermann@example.de", "Phone": "+49 221 1234567", "Date_of_Birth": "1964-08-12",
        "Mailing_Street": "Heidestraße 17", "Mailing_Zip": "51147", "Mailing_City": "Köln",
        "Mailing_Country": "Deutschland", "Kundennummer": "5001234567"})
    ids["Max Neumann"] = state.seed("Contacts", {
        "Salutation": "Herr", "First_Name": "Max", "Last_Name": "Neumann", "Email": "max.neumann@example.de",
        "Phone": "+49 40 9876543", "Date_of_Birth": "1988-02-29", "Mailing_Street": "Osterstraße 88",
        "Mailing_Zip": "20259", "Mailing_City": "Hamburg", "Mailing_Country": "Deutschland"})
    ids["Muster Bau GmbH"] = state.seed("Accounts", {
        "Account_Name": "Muster Bau GmbH", "Rechtsform": "GmbH", "Phone": "+49 221 998877",
        "Billing_Street": "Industriestraße 5", "Billing_Code": "50829", "Billing_City": "Köln",
        "Billing_Country": "Deutschland", "Email": "info@musterbau.example"})
    ids["Wohngebäude Mustermann"] = state.seed("Deals", {
        "Deal_Name": "Wohngebäude Mustermann", "Vertragsnummer": "1119876",
        "Contact_Name": {"id": ids["Erika Mustermann"]}, "Stage": "Abgeschlossen",
        "Versicherungsscheinnummer": "WG-123-546", "Gesellschaft": "10330", "Sparte": "050",
        "Vertragsstatus": "A", "Amount": 100.0, "Beitrag_Netto": 84.03, "Zahlweise": "5",
        "Beginn": "2010-01-01", "Ablauf": "2030-12-31"})
    ids["Haftpflicht Neumann"] = state.seed("Deals", {
        "Deal_Name": "Haftpflicht Neumann", "Contact_Name": {"id": ids["Max Neumann"]}, "Stage": "Abgeschlossen",
        "Gesellschaft": "10330", "Sparte": "040", "Vertragsstatus": "A", "Amount": 60.0, "Beitrag_Netto": 50.42,
        "Zahlweise": "1", "Beginn": "2025-01-01"})
    return ids
