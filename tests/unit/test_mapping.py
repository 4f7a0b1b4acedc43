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
        "Personentyp": "natuerlich", "Anrede": "Frau", "Vorname": "Erika", "Nachname": "Mustermann",
        "Geburtsdatum": "1964-08-12", "Strasse": "Heidestraße 17", "PLZ": "51147", "Ort": "Köln",
        "Email": "erika@example.de",
    }


def test_company_is_a_legal_person(mapping):
    body = mapping.get("company").to_ameise({"Account_Name": "Muster Bau GmbH", "Billing_Code": "20095"})
    assert body == {"Personentyp": "juristisch", "Firma": "Muster Bau GmbH", "PLZ": "20095"}


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
    assert body == {"Personentyp": "natuerlich", "Nachname": "X"}


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
])
def test_invalid_mapping_files_are_refused_with_a_reason(text, fragment):
    with pytest.raises(MappingError, match=fragment):
        parse_mapping(text)


def test_missing_mapping_file_is_a_clear_error(tmp_path):
    with pytest.raises(MappingError, match="cannot read mapping file"):
        load_mapping(str(tmp_path / "nope.toml"))
