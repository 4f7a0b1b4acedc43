"""The simulated CRM's field metadata: every field of a module with its type, as ``GET /settings/fields`` lists it.

The seed holds the standard fields of Contacts, Accounts, Deals and Leads (as a
German broker's org shows them) and the custom fields the default mapping reads
and writes; Kundennummer and Vertragsnummer are created "Do not allow duplicate
values" (unique), as the upsert on them requires.  :class:`ZohoState` keeps its
own copy per instance, so a test can make a field non-unique or drop it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

# Zoho's system-defined duplicate-check field of each module: an upsert that names
# no duplicate_check_fields matches on it, and may always name it.
SYSTEM_DUPLICATE_FIELDS: dict[str, tuple[str, ...]] = {
    "Contacts": ("Email",), "Accounts": ("Account_Name",), "Deals": ("Deal_Name",), "Leads": ("Email",)}

# Fields Zoho fills itself: a write naming them is ignored, not refused.
SYSTEM_FIELDS = frozenset({"id", "Created_Time", "Modified_Time", "Created_By", "Modified_By", "Full_Name"})

TEXT_LENGTH = 255
TEXTAREA_LENGTH = 32000
# the length Zoho reports for fields whose length is not the user's choice
_DEFAULT_LENGTH = {"email": 100, "phone": 30, "website": 255, "textarea": TEXTAREA_LENGTH, "integer": 9,
                   "double": 16, "currency": 16, "bigint": 18}


@dataclass
class SimField:
    """One field of a module, as the simulator checks writes against it."""

    api_name: str
    data_type: str = "text"
    length: int | None = None
    unique: bool = False
    custom_field: bool = False
    pick_list_values: list[str] = field(default_factory=list)
    lookup_module: str | None = None
    read_only: bool = False
    label: str = ""

    def __post_init__(self) -> None:
        if self.length is None:
            self.length = TEXT_LENGTH if self.data_type == "text" else _DEFAULT_LENGTH.get(self.data_type)
        if not self.label:
            self.label = self.api_name.replace("_", " ")

    def meta(self, field_id: str) -> dict[str, Any]:
        """The field in the shape of Zoho's ``GET /crm/v7/settings/fields?module=`` (the keys a client reads)."""
        lookup: dict[str, Any] = {}
        if self.lookup_module:
            lookup = {"display_label": self.label, "api_name": self.api_name,
                      "module": {"api_name": self.lookup_module, "id": module_id(self.lookup_module)}, "id": field_id}
        picklist = [{"display_value": "-None-", "actual_value": "-None-", "sequence_number": 1, "type": "used"}] \
            if self.data_type in ("picklist", "multiselectpicklist") else []
        picklist += [{"display_value": v, "actual_value": v, "sequence_number": n, "type": "used"}
                     for n, v in enumerate(self.pick_list_values, start=len(picklist) + 1)]
        return {
            "api_name": self.api_name, "field_label": self.label, "display_label": self.label, "id": field_id,
            "data_type": self.data_type,
            "json_type": {"integer": "integer", "bigint": "string", "double": "double", "currency": "double",
                          "boolean": "boolean", "lookup": "jsonobject", "ownerlookup": "jsonobject",
                          "multiselectpicklist": "jsonarray"}.get(self.data_type, "string"),
            "length": self.length, "custom_field": self.custom_field,
            # Zoho gives an empty object for a field that allows duplicates
            "unique": {"case_sensitive": False} if self.unique else {},
            "pick_list_values": picklist, "lookup": lookup, "read_only": self.read_only,
            "field_read_only": self.read_only, "system_mandatory": False, "visible": True,
        }


def module_id(module: str) -> str:
    """Return a stable digit id of a module, as Zoho names modules in duplicate details and lookups."""
    return str(5725767000000002000 + sum(ord(c) for c in module))


def _std(api_name: str, data_type: str = "text", length: int | None = None, **kwargs: Any) -> SimField:
    return SimField(api_name, data_type, length, **kwargs)


def _custom(api_name: str, data_type: str = "text", length: int | None = None, **kwargs: Any) -> SimField:
    return SimField(api_name, data_type, length, custom_field=True, **kwargs)


# Values the broker's org has in its picklists: the German salutations the DailyUp
# list "anreden" delivers, and the deal stage the return path sets.
SALUTATIONS = ["Herr", "Frau", "Divers", "Firma", "Dr.", "Prof."]
DEAL_STAGES = ["Neu", "Beratung", "Angebot", "Antrag gestellt", "Abgeschlossen", "Verloren"]
LEAD_SOURCES = ["Empfehlung", "Website", "Messe", "Telefon", "Bestandskunde"]

_SYSTEM = [_std("Created_Time", "datetime", read_only=True), _std("Modified_Time", "datetime", read_only=True),
           _std("Created_By", "ownerlookup", read_only=True), _std("Modified_By", "ownerlookup", read_only=True),
           _std("Owner", "ownerlookup"), _std("Tag", "text")]
_SYNC = [_custom("Vermittler", "text", 50), _custom("Ameise_Status", "text", 50)]


def _address(prefix: str, zip_name: str) -> list[SimField]:
    return [_std(f"{prefix}_Street", "text", 250), _std(f"{prefix}_City", "text", 100),
            _std(f"{prefix}_State", "text", 100), _std(zip_name, "text", 30), _std(f"{prefix}_Country", "text", 100)]


def _seed() -> dict[str, list[SimField]]:
    contacts = [
        *_SYSTEM, _std("Salutation", "picklist", pick_list_values=list(SALUTATIONS)),
        _std("First_Name", "text", 40), _std("Last_Name", "text", 80), _std("Full_Name", "text", 120, read_only=True),
        _std("Account_Name", "lookup", lookup_module="Accounts"), _std("Reporting_To", "lookup", lookup_module="Contacts"),
        _std("Email", "email"), _std("Secondary_Email", "email"), _std("Title", "text", 100),
        _std("Department", "text", 100), _std("Phone", "phone"), _std("Home_Phone", "phone"),
        _std("Other_Phone", "phone"), _std("Mobile", "phone"), _std("Fax", "phone"), _std("Assistant", "text", 40),
        _std("Asst_Phone", "phone"), _std("Date_of_Birth", "date"),
        _std("Lead_Source", "picklist", pick_list_values=list(LEAD_SOURCES)), _std("Email_Opt_Out", "boolean"),
        *_address("Mailing", "Mailing_Zip"), *_address("Other", "Other_Zip"), _std("Description", "textarea"),
        _custom("Kundennummer", "text", 50, unique=True), _custom("Titel", "text", 50), _custom("Geschlecht", "text", 20),
        *_SYNC,
    ]
    accounts = [
        *_SYSTEM, _std("Account_Name", "text", 200), _std("Account_Number", "text", 40),
        _std("Account_Site", "text", 80), _std("Parent_Account", "lookup", lookup_module="Accounts"),
        _std("Account_Type", "picklist", pick_list_values=["Kunde", "Interessent", "Partner", "Sonstige"]),
        _std("Industry", "picklist", pick_list_values=["Bau", "Handel", "Handwerk", "Dienstleistung", "Industrie"]),
        _std("Annual_Revenue", "currency"), _std("Employees", "integer"), _std("Ownership", "text", 100),
        _std("Phone", "phone"), _std("Fax", "phone"), _std("Website", "website"), _std("Rating", "text", 40),
        *_address("Billing", "Billing_Code"), *_address("Shipping", "Shipping_Code"), _std("Description", "textarea"),
        # Accounts have no standard e-mail field: the broker adds one
        _custom("Email", "email"), _custom("Kundennummer", "text", 50, unique=True), _custom("Rechtsform", "text", 100),
        *_SYNC,
    ]
    deals = [
        *_SYSTEM, _std("Deal_Name", "text", 120), _std("Amount", "currency"), _std("Closing_Date", "date"),
        _std("Stage", "picklist", pick_list_values=list(DEAL_STAGES)), _std("Probability", "integer", 3),
        _std("Expected_Revenue", "currency", read_only=True), _std("Type", "picklist",
                                                                   pick_list_values=["Neugeschäft", "Bestand"]),
        _std("Next_Step", "text", 100), _std("Lead_Source", "picklist", pick_list_values=list(LEAD_SOURCES)),
        _std("Contact_Name", "lookup", lookup_module="Contacts"), _std("Account_Name", "lookup", lookup_module="Accounts"),
        _std("Description", "textarea"),
        _custom("Vertragsnummer", "text", 50, unique=True), _custom("Versicherungsscheinnummer", "text", 100),
        _custom("Antragsnummer", "text", 100), _custom("Gesellschaft", "text", 20), _custom("Gesellschaft_Text"),
        _custom("Sparte", "text", 20), _custom("Sparte_Text"), _custom("Vertragsstatus", "text", 20),
        _custom("Vertragsstatus_Text"), _custom("Zahlweise", "text", 20), _custom("Zahlweise_Text"),
        _custom("Beitrag_Netto", "currency"), _custom("Beitrag_Steuer", "currency"), _custom("Beginn", "date"),
        _custom("Ablauf", "date"), _custom("Risiko", "textarea", 2000), *_SYNC,
    ]
    leads = [
        *_SYSTEM, _std("Salutation", "picklist", pick_list_values=list(SALUTATIONS)), _std("First_Name", "text", 40),
        _std("Last_Name", "text", 80), _std("Full_Name", "text", 120, read_only=True), _std("Company", "text", 200),
        _std("Designation", "text", 100), _std("Email", "email"), _std("Secondary_Email", "email"),
        _std("Phone", "phone"), _std("Mobile", "phone"), _std("Fax", "phone"), _std("Website", "website"),
        _std("Lead_Source", "picklist", pick_list_values=list(LEAD_SOURCES)),
        _std("Lead_Status", "picklist", pick_list_values=["Neu", "Kontaktiert", "Qualifiziert", "Verloren"]),
        _std("Annual_Revenue", "currency"), _std("No_of_Employees", "integer"), _std("Email_Opt_Out", "boolean"),
        _std("Street", "text", 250), _std("City", "text", 100), _std("State", "text", 100), _std("Zip_Code", "text", 30),
        _std("Country", "text", 100), _std("Description", "textarea"),
    ]
    return {"Contacts": contacts, "Accounts": accounts, "Deals": deals, "Leads": leads}


def default_fields(modules: tuple[str, ...] | list[str] | None = None) -> dict[str, dict[str, SimField]]:
    """A fresh copy of the seeded field metadata, per module by API name (a module the seed lacks gets the system fields)."""
    seed = _seed()
    names = list(modules) if modules is not None else list(seed)
    return {m: {f.api_name: copy.deepcopy(f) for f in seed.get(m, _SYSTEM)} for m in names}


def field_id(module: str, api_name: str) -> str:
    """A stable digit id of a field."""
    return str(5725767000000003000 + (sum(ord(c) for c in module) * 31 + sum(ord(c) * (i + 1)
                                                                        for i, c in enumerate(api_name))) % 900000)
