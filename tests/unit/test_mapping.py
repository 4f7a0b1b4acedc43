"""The declarative field mapping: the bundled file, conversions, and checks of custom files."""
import pytest

from syncbridge.mapping import FieldValueError, MappingError, load_mapping, parse_mapping


@pytest.fixture(scope="module")
def mapping():
    return load_mapping()


def test_person_maps_zoho_contact_fields(mapping):
    body = mapping.get("person").to_ameise({
        "id": "4150868000000376008", "Salutation": "Frau", "First_Name": "Erika", "Last_Name": "Mustermann",
        "Date_of_Birth": "1964-08-12", "Mailing_Street": "Heidestraße 17", "Mailing_Zip": "51147",
        "Mailing_City": "Köln", "Email": "erika@example.de", "Owner": {"id": "1", "name": "Broker"},
    })
    assert body == {
        "Anrede": "2",
        "Person": {"Vorname": "Erika", "Nachname": "Mustermann", "Geburtsdatum": "1964-08-12", "Typ": "natuerlich"},
        "Hauptwohnsitz": {"Strasse": "Heidestraße 17", "Postleitzahl": "51147", "Ort": "Köln"},
        "Kontaktdaten": [{"Kontext": "privat", "Typ": "email", "Value": "erika@example.de"}],
    }


def test_company_is_a_legal_person(mapping):
    body = mapping.get("company").to_ameise({"Account_Name": "Muster Bau GmbH", "Billing_Code": "20095",
                                             "Phone": "040 1", "Email": "info@bau.example"})
    assert body == {"Person": {"Firmenname": "Muster Bau GmbH", "Typ": "juristisch"}, "Anrede": "4",
                    "Hauptwohnsitz": {"Postleitzahl": "20095"},
                    "Kontaktdaten": [{"Kontext": "geschaeftlich", "Typ": "email", "Value": "info@bau.example"},
                                     {"Kontext": "geschaeftlich", "Typ": "telefon", "Value": "040 1"}]}


@pytest.mark.parametrize("salutation, code", [("Herr", "1"), ("frau", "2"), (" Mrs. ", "2"), ("Divers", "3")])
def test_codes_come_from_the_value_table(mapping, salutation, code):
    assert mapping.get("person").to_ameise({"Last_Name": "X", "Salutation": salutation})["Anrede"] == code


def test_a_text_outside_the_value_table_names_its_field(mapping):
    with pytest.raises(FieldValueError) as err:
        mapping.get("person").to_ameise({"Last_Name": "X", "Salutation": "Prof."})
    assert err.value.field == "Salutation" and "Herr, Mr., Frau" in str(err.value)


def test_contact_entries_are_selected_by_typ_and_kontext():
    mapping = parse_mapping("""
[person.crm_to_ameise]
fields = [
  { crm = "Email",       ameise = "Kontaktdaten[Kontext=privat,Typ=email].Value" },
  { crm = "Work_Email",  ameise = "Kontaktdaten[Kontext=geschaeftlich,Typ=email].Value" },
  { crm = "Email_Note",  ameise = "Kontaktdaten[Kontext=privat,Typ=email].Bemerkung" },
]
""")
    body = mapping.get("person").to_ameise({"Email": "a@b.de", "Work_Email": "c@d.de", "Email_Note": "abends"})
    assert body == {"Kontaktdaten": [
        {"Kontext": "privat", "Typ": "email", "Value": "a@b.de", "Bemerkung": "abends"},
        {"Kontext": "geschaeftlich", "Typ": "email", "Value": "c@d.de"},
    ]}


def test_paths_read_back_what_they_write():
    from syncbridge.mapping import read_path, write_path

    record: dict = {}
    write_path(record, "Hauptwohnsitz.Postleitzahl", "51147")
    write_path(record, "Kontaktdaten[Kontext=privat,Typ=mobil].Value", "0170 1")
    assert read_path(record, "Hauptwohnsitz.Postleitzahl") == "51147"
    assert read_path(record, "Kontaktdaten[Kontext=privat,Typ=mobil].Value") == "0170 1"
    assert read_path(record, "Kontaktdaten[Kontext=geschaeftlich,Typ=mobil].Value") is None
    assert read_path({"Kontaktdaten": "kaputt"}, "Kontaktdaten[Typ=email].Value") is None


def test_an_ameise_customer_becomes_its_dailyup_row(mapping):
    from simulators.ameise import AmeiseState, seed_demo

    state = AmeiseState()
    seed_demo(state)
    row = mapping.as_dailyup("person").as_dailyup(state.customers["5001234567"])
    assert row == {"Personentyp": "natuerlich", "Anrede": "2", "Vorname": "Erika", "Nachname": "Mustermann",
                   "Geburtsdatum": "1964-08-12", "Strasse": "Heidestraße 17", "PLZ": "51147", "Ort": "Köln",
                   "Land": "Deutschland", "Email": "erika.mustermann@example.de", "Vermittlernummer": "A1B2C3"}
    contract = mapping.as_dailyup("contract").as_dailyup(state.contracts["1119876"])
    assert (contract["BeitragBrutto"], contract["Beginn"], contract["Kundennummer"]) == ("100", "2010-01-01", "5001234567")


def test_a_custom_mapping_without_dailyup_rules_keeps_the_bundled_ones(tmp_path):
    custom = tmp_path / "mapping.toml"
    custom.write_text('[person.crm_to_ameise]\nfields = [{ crm = "Last_Name", ameise = "Person.Nachname" }]\n')
    mapping = load_mapping(str(custom))
    assert mapping.as_dailyup("person").as_dailyup({"Person": {"Nachname": "X"}}) == {"Nachname": "X"}


def test_contract_builds_nested_objects_and_keeps_codes(mapping):
    body = mapping.get("contract").to_ameise({
        "Amount": 100.0, "Beitrag_Netto": "84.03", "Zahlweise": 5, "Sparte": "050", "Gesellschaft": "10330",
        "Beginn": "2010-01-01", "Ablauf": "2016-12-31T00:00:00+01:00", "Vertragsstatus": "A",
    })
    assert body == {
        "Beitrag": {"Brutto": 100, "Netto": 84.03, "Zahlweise": "5"},
        "Laufzeit": {"Beginn": "2010-01-01", "Ablauf": "2016-12-31"},
        "Sparte": "050", "Gesellschaft": "10330", "Status": "A",
    }
    assert mapping.get("contract").customer_lookups == {"Contact_Name": "Contacts", "Account_Name": "Accounts"}


def test_empty_crm_values_are_left_out(mapping):
    body = mapping.get("person").to_ameise({"Last_Name": "X", "Email": "", "Phone": None, "Mobile": "   "})
    assert body == {"Person": {"Nachname": "X", "Typ": "natuerlich"}}


@pytest.mark.parametrize("record, field", [
    ({"Last_Name": "X", "Date_of_Birth": "12.08.1964"}, "Date_of_Birth"),
])
def test_unconvertible_values_name_their_field(mapping, record, field):
    with pytest.raises(FieldValueError) as err:
        mapping.get("person").to_ameise(record)
    assert err.value.field == field


def test_unconvertible_decimal_names_its_field(mapping):
    with pytest.raises(FieldValueError) as err:
        mapping.get("contract").to_ameise({"Amount": "hundert"})
    assert err.value.field == "Amount"


def test_custom_mapping_with_lookup_path():
    mapping = parse_mapping("""
[person.crm_to_ameise]
fields = [{ crm = "Owner.id", ameise = "Betreuer", type = "code" }, { crm = "Last_Name", ameise = "Nachname" }]
""")
    assert mapping.get("person").to_ameise({"Owner": {"id": "77", "name": "B"}, "Last_Name": "X"}) == {
        "Betreuer": "77", "Nachname": "X"}


@pytest.mark.parametrize("text, fragment", [
    ("[people.crm_to_ameise]\nfields=[{crm='A', ameise='B'}]", "unknown entity kind"),
    ("[person.sideways]\nfields=[{crm='A', ameise='B'}]", "unknown direction"),
    ("[person.crm_to_ameise]\nfields=[{crm='A', ameise='B', type='money'}]", "type 'money'"),
    ("[person.crm_to_ameise]\nfields=[{crm='A', ameise='B'}, {crm='C', ameise='B'}]", "mapped twice"),
    ("[person.crm_to_ameise]\nfields=[{crm='A'}]", "needs crm and ameise"),
    ("[contract.crm_to_ameise]\nfields=[{crm='A', ameise='B'}]", "customer_lookups"),
    ("[person.crm_to_ameise\n", "mapping"),
    ("[person.crm_to_ameise]\nfields=[{crm='A', ameise='Anrede', values='anrede'}]", "unknown value table 'anrede'"),
    ("[values.anrede]\nHerr = 1\n", "code as non-empty text"),
    ("[person.crm_to_ameise]\nfields=[{crm='A', ameise='Kontaktdaten[Typ=email]'}]", "ends at a list entry"),
    ("[person.crm_to_ameise]\nfields=[{crm='A', ameise='Kontaktdaten[email].Value'}]", "Key=value"),
    ("[person.crm_to_ameise]\nfields=[{crm='A', ameise='Person..Vorname'}]", "malformed path"),
    ("[person.ameise_to_dailyup]\nfields=[{ameise='Person.Vorname', dailyup='Vorname2'}]", "unknown DailyUp column"),
    ("[person.ameise_to_dailyup]\nfields=[{ameise='Person.Vorname'}]", "needs ameise and dailyup"),
])
def test_invalid_mapping_files_are_refused_with_a_reason(text, fragment):
    with pytest.raises(MappingError, match=fragment):
        parse_mapping(text)


def test_missing_mapping_file_is_a_clear_error(tmp_path):
    with pytest.raises(MappingError, match="cannot read mapping file"):
        load_mapping(str(tmp_path / "nope.toml"))


# ---------------------------------------------------------------- ameise_to_crm (DailyUp -> CRM)
LOOKUP_LISTS = {"sparten": {"050": "Wohngebäude"}, "laender": {"D": "Deutschland"}, "anreden": {"2": "Frau"}}


def test_person_maps_a_dailyup_row_to_contact_fields(mapping):
    values = mapping.to_crm("person").to_crm({
        "Kundennummer": "5001234567", "Personentyp": "natuerlich", "Anrede": "2", "Vorname": "Erika",
        "Nachname": "Mustermann", "Geburtsdatum": "1964-08-12", "PLZ": "01147", "Land": "D", "Telefon": None,
        "Mobil": "", "LetzterLogin": "2025-03-01",
    }, LOOKUP_LISTS)
    assert values.fields == {"Salutation": "Frau", "First_Name": "Erika", "Last_Name": "Mustermann",
                             "Date_of_Birth": "1964-08-12", "Mailing_Zip": "01147", "Mailing_Country": "Deutschland"}
    assert values.unknown_codes == ()


def test_contract_keeps_codes_adds_texts_and_builds_the_deal_name(mapping):
    contract = mapping.to_crm("contract")
    values = contract.to_crm({"Vertragsnummer": "1119876", "Sparte": "050", "Gesellschaft": "10330",
                              "BeitragBrutto": "1234.5", "BeitragNetto": "100", "Beginn": "2010-01-01"}, LOOKUP_LISTS)
    assert values.fields == {
        "Deal_Name": "Wohngebäude 1119876", "Sparte": "050", "Sparte_Text": "Wohngebäude", "Gesellschaft": "10330",
        "Gesellschaft_Text": "10330", "Amount": 1234.5, "Beitrag_Netto": 100, "Beginn": "2010-01-01",
        "Stage": "Abgeschlossen"}
    assert values.unknown_codes == ("Gesellschaft=10330 (gesellschaften)",)
    assert contract.lookup_tables == {"sparten", "gesellschaften", "vertragsstatus", "zahlweisen"}


def test_a_template_leaves_no_blanks_for_empty_columns():
    mapping = parse_mapping("""
[contract.ameise_to_crm]
fields = [{ crm = "Deal_Name", type = "template", template = "{Sparte|sparten} - {Risiko} {Vertragsnummer}" }]
""")
    values = mapping.to_crm("contract").to_crm({"Vertragsnummer": "V1", "Sparte": None, "Risiko": ""}, {})
    assert values.fields == {"Deal_Name": "- V1"}
    assert values.unknown_codes == ()


def test_an_unconvertible_dailyup_value_names_its_column(mapping):
    with pytest.raises(FieldValueError) as err:
        mapping.to_crm("contract").to_crm({"Vertragsnummer": "V1", "BeitragBrutto": "1.234,56"}, {})
    assert err.value.field == "BeitragBrutto"


def test_a_missing_direction_is_a_clear_error():
    mapping = parse_mapping("[person.crm_to_ameise]\nfields=[{crm='A', ameise='B'}]")
    with pytest.raises(MappingError, match=r"no mapping for \[person.ameise_to_crm\]"):
        mapping.to_crm("person")


RULES = "[contract.ameise_to_crm]\nfields=[{}]"


@pytest.mark.parametrize("rule, fragment", [
    ("dailyup='Sparte'", "needs dailyup \\(or a template\\) and crm"),
    ("crm='Sparte'", "needs dailyup \\(or a template\\) and crm"),
    ("dailyup='Sparte', crm='Sparte', ameise='X'", "unknown keys \\['ameise'\\]"),
    ("dailyup='Sparte', crm='Sparte', type='money'", "type 'money'"),
    ("dailyup='Sparte', crm='Sparte', type='lookup'", "table is needed by, and only allowed for, type lookup"),
    ("dailyup='Sparte', crm='Sparte', table='sparten'", "table is needed by, and only allowed for, type lookup"),
    ("dailyup='Sparte', crm='Sparte', type='lookup', table='branchen'", "unknown lookup list 'branchen'"),
    ("dailyup='Sprate', crm='Sparte'", "unknown DailyUp column 'Sprate'"),
    ("dailyup='Nachname', crm='Last_Name'", "unknown DailyUp column 'Nachname'"),
    ("dailyup='Sparte', crm='Deal_Name', template='{Sparte}'", "only a rule of type template has a template"),
    ("dailyup='Sparte', crm='Deal_Name', type='template', template='{Sparte}'", "a template rule has a template and no dailyup"),
    ("crm='Deal_Name', type='template', template='{Sparte'", "write placeholders as"),
    ("crm='Deal_Name', type='template', template='Vertrag'", "names no column"),
    ("crm='Deal_Name', type='template', template='{Sparte|branchen}'", "unknown lookup list 'branchen'"),
    ("crm='Deal_Name', type='template', template='{Kunde}'", "unknown DailyUp column 'Kunde'"),
], ids=["no-crm", "no-dailyup", "unknown-key", "bad-type", "lookup-without-table", "table-without-lookup",
        "unknown-table", "unknown-column", "column-of-customers", "template-on-string", "template-with-dailyup",
        "template-braces", "template-without-column", "template-unknown-table", "template-unknown-column"])
def test_invalid_ameise_to_crm_rules_are_refused_with_a_reason(rule, fragment):
    with pytest.raises(MappingError, match=fragment):
        parse_mapping(RULES.replace("{}", "{" + rule + "}"))


@pytest.mark.parametrize("text, fragment", [
    ("[person.ameise_to_crm]\nfields=[{dailyup='Vorname', crm='A'}, {dailyup='Nachname', crm='A'}]",
     "CRM field 'A' is mapped twice"),
    ("[contract.ameise_to_crm]\ncustomer_lookups={Contact_Name='Contacts'}\nfields=[{dailyup='Sparte', crm='S'}]",
     "unknown keys \\['customer_lookups'\\]"),
    ("[company.ameise_to_crm]\nconstants={Stage='x'}", "no field rules"),
])
def test_invalid_ameise_to_crm_tables_are_refused_with_a_reason(text, fragment):
    with pytest.raises(MappingError, match=fragment):
        parse_mapping(text)
