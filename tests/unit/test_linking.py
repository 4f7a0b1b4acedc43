"""First-time linking: normalising, each evidence rule, ambiguity, accepting, and the return path's guard."""
from __future__ import annotations

import pytest

from simulators.fakes.linking import MemoryLinkingStore
from syncbridge.handlers.linking import (
    LinkGuard,
    Linking,
    LinkingError,
    Side,
    ameise_side,
    match,
    norm_company,
    norm_date,
    norm_email,
    norm_plz,
    norm_text,
    normalise,
    report_rows,
    score,
)
from syncbridge.mapping import load_mapping
from syncbridge.ports import ACCEPTED, AMBIGUOUS, CERTAIN, PROPOSED, REJECTED_PROPOSAL, SUPERSEDED
from tests.support.returns import MODULES, World, company, contract, person


def crm(kind: str, ref: str, number: str = "", module: str = "Contacts", **values) -> Side:
    return Side(kind, ref, number, normalise(kind, values), module=module)


def erika(key: str = "K1", **changes) -> Side:
    data = {"Vorname": "Erika", "Nachname": "Müller", "Geburtsdatum": "1964-08-12", "Email": "erika@example.de",
            "PLZ": "01147", **changes}
    return ameise_side("person", key, data)


def contact(ref: str = "z1", number: str = "", **changes) -> Side:
    values = {"Vorname": "Erika", "Nachname": "Mueller", "Geburtsdatum": "12.08.1964", "Email": "Erika@Example.de ",
              "PLZ": "1147", **changes}
    return crm("person", ref, number, **values)


# ---------------------------------------------------------------- normalising
def test_normalising_spells_out_umlauts_and_ignores_case_accents_and_punctuation():
    assert norm_text("  Jürgen-Björn  MÜLLER ") == "juergen bjoern mueller"
    assert norm_text("Strauß") == norm_text("STRAUSS") == "strauss"
    assert norm_text("José") == "jose"
    assert norm_email(" Erika@Example.DE ") == "erika@example.de"
    assert norm_email("no mail") == ""
    assert norm_plz("1147") == norm_plz("01147") == "01147"
    assert norm_date("12.08.1964") == norm_date("1964-08-12") == norm_date("1964-08-12T00:00:00") == "1964-08-12"
    assert norm_date("soon") == ""
    assert norm_company("Müller Bau GmbH & Co. KG") == norm_company("mueller bau") == "mueller bau"


# ---------------------------------------------------------------- evidence rules
def test_a_crm_record_carrying_the_kundennummer_is_matched_by_it_whatever_else_differs():
    evidence = score(erika("K1"), contact(number="K1", Vorname="Someone", Email=""))
    assert (evidence.score, evidence.reasons) == (100, ("Kundennummer equal",))


def test_a_crm_record_carrying_another_number_is_no_candidate():
    assert score(erika("K1"), contact(number="K2")).score == 0


def test_email_name_and_birth_date_make_a_person_certain_across_umlauts_and_case():
    evidence = score(erika(), contact())
    assert evidence.score >= 90
    assert evidence.reasons[:3] == ("e-mail equal", "name equal", "birth date equal")


def test_a_typo_in_the_name_still_matches_with_its_similarity_named():
    evidence = score(erika(), contact(Nachname="Müler"))
    assert evidence.score >= 90
    assert any(reason.startswith("name similar (") for reason in evidence.reasons)


def test_name_and_birth_date_without_email_is_proposed_not_certain():
    evidence = score(erika(), contact(Email="other@example.de"))
    assert 60 <= evidence.score < 90


def test_same_email_and_name_but_another_birth_date_is_a_relative_not_a_proposal():
    evidence = score(erika(), contact(Geburtsdatum="1990-01-01"))
    assert evidence.score < 60
    assert "birth date differs" in evidence.reasons


def test_another_first_name_on_a_shared_email_is_no_proposal():
    assert score(erika(), contact(Vorname="Hans", Geburtsdatum="1960-02-02")).score < 60


def test_companies_match_by_name_without_legal_form_and_plz():
    a = ameise_side("company", "K7", {"Firma": "Müller Bau GmbH", "PLZ": "50667", "Email": None})
    evidence = score(a, crm("company", "a1", module="Accounts", Firma="Mueller Bau", PLZ="50667"))
    assert evidence.score >= 90
    assert evidence.reasons == ("company name equal", "PLZ equal")
    assert score(a, crm("company", "a2", module="Accounts", Firma="Mueller Bau", PLZ="80331")).score < 60


def test_contracts_match_by_insurer_and_policy_number_written_differently():
    a = ameise_side("contract", "V1", {"Gesellschaft": "10330", "Versicherungsscheinnummer": "WG-123-546"})
    deal = crm("contract", "d1", module="Deals", Gesellschaft="10330", Versicherungsscheinnummer="wg 123 546")
    assert score(a, deal).score == 95
    other_insurer = crm("contract", "d2", module="Deals", Gesellschaft="99999", Versicherungsscheinnummer="WG123546")
    assert score(a, other_insurer).score == 0


# ---------------------------------------------------------------- matching and ambiguity
def test_matching_sorts_pairs_into_certain_proposed_and_unmatched_on_each_side():
    ameise = [erika("K1"), erika("K2", Vorname="Paul", Nachname="Schmidt", Email="paul@example.de",
                                  Geburtsdatum="1970-01-01"), erika("K3", Vorname="Nobody", Nachname="Else",
                                                                     Email="", Geburtsdatum="1999-09-09")]
    crm_side = [contact("z1"), contact("z2", Vorname="Paul", Nachname="Schmitt", Email="",
                                      Geburtsdatum="1970-01-01"), contact("z9", Vorname="Zoe", Nachname="Zett",
                                                                          Email="zoe@example.de",
                                                                          Geburtsdatum="1980-05-05")]
    result = match(ameise, crm_side)
    statuses = {p.ameise_key: (p.status, p.zoho_id) for p in result.proposals}
    assert statuses == {"K1": (CERTAIN, "z1"), "K2": (PROPOSED, "z2")}
    assert [a.ref for a in result.unmatched_ameise] == ["K3"]
    assert [c.ref for c in result.unmatched_crm] == ["z9"]
    categories = [row["category"] for row in report_rows(result)]
    assert categories == ["certain", "proposed", "unmatched_ameise", "unmatched_crm"]


def test_two_close_crm_candidates_make_an_ambiguous_group_for_a_person_to_decide():
    result = match([erika("K1", Email="")], [contact("z1", Email=""), contact("z2", Email="")])
    assert {(p.zoho_id, p.status) for p in result.proposals} == {("z1", AMBIGUOUS), ("z2", AMBIGUOUS)}
    assert all("2 CRM candidates" in p.reasons for p in result.proposals)
    assert result.counts()["ambiguous"] == 1


def test_one_crm_record_fitting_two_customers_is_ambiguous():
    twins = [erika("K1", Email=""), erika("K2", Email="")]   # the same person delivered twice
    result = match(twins, [contact("z1", Email="")])
    assert {p.status for p in result.proposals} == {AMBIGUOUS}
    assert any("also fits 1 other customer(s)" in reason for p in result.proposals for reason in p.reasons)


def test_a_shared_email_without_birth_date_is_ambiguous_but_with_one_stays_certain():
    couple = [erika("K1", Geburtsdatum=None), erika("K2", Vorname="Hans", Geburtsdatum=None)]
    result = match(couple, [contact("z1", Geburtsdatum="")])
    [pair] = result.proposals
    assert (pair.ameise_key, pair.status) == ("K1", AMBIGUOUS)
    assert "e-mail equal, shared by 2 customers" in pair.reasons

    couple = [erika("K1"), erika("K2", Vorname="Hans", Geburtsdatum="1960-01-01")]
    [pair] = match(couple, [contact("z1")]).proposals
    assert (pair.ameise_key, pair.status) == ("K1", CERTAIN)


def test_records_already_linked_are_left_out():
    result = match([erika("K1")], [contact("z1")], linked_ameise={("customer", "K1")}, linked_crm={("customer", "z1")})
    assert result.proposals == [] and result.unmatched_ameise == [] and result.unmatched_crm == []
    assert result.counts()["linked"] == 1


# ---------------------------------------------------------------- accepting, rejecting
@pytest.fixture
def world() -> World:
    return World()


def linking_of(world: World, proposals: MemoryLinkingStore) -> Linking:
    return Linking(crm=world.zoho, links=world.store, proposals=proposals, mapping=load_mapping(),
                   modules=dict(MODULES))


def test_nothing_is_written_until_a_pair_is_accepted_then_link_and_number_without_workflow(world):
    zoho_id = world.zoho.seed("Contacts", {"First_Name": "Erika", "Last_Name": "Mustermann 5001",
                                           "Email": "kunde5001@example.de", "Date_of_Birth": "1964-08-12"})
    world.snapshot.put("kunden", "5001", person("5001"))
    proposals = MemoryLinkingStore(world.snapshot)
    linking = linking_of(world, proposals)

    run, result = linking.propose("anna")
    assert run.counts["certain"] == 1
    assert world.zoho.writes == [] and world.store.find_link("customer", ameise_id="5001") is None
    [proposal] = proposals.proposals()
    assert (proposal.status, proposal.zoho_id, proposal.ameise_key) == (CERTAIN, zoho_id, "5001")

    accepted, errors = linking.accept_certain("anna")
    assert (accepted, errors) == (1, [])
    [write] = world.zoho.writes
    assert (write.operation, write.module, write.records) == ("update", "Contacts",
                                                              [{"id": zoho_id, "Kundennummer": "5001"}])
    assert world.store.find_link("customer", ameise_id="5001").zoho_id == zoho_id
    assert proposals.proposal(proposal.id).status == ACCEPTED
    with pytest.raises(LinkingError, match="is accepted, not open"):
        linking.accept(proposal.id, "anna")


def test_accepting_one_of_an_ambiguous_group_supersedes_the_other_and_reject_writes_nothing(world):
    for _ in range(2):
        world.zoho.seed("Contacts", {"First_Name": "Erika", "Last_Name": "Mustermann 5001",
                                     "Date_of_Birth": "1964-08-12"})
    world.snapshot.put("kunden", "5001", person("5001"))
    proposals = MemoryLinkingStore(world.snapshot)
    linking = linking_of(world, proposals)
    linking.propose("anna")
    first, second = proposals.proposals()
    assert (first.status, second.status) == (AMBIGUOUS, AMBIGUOUS)

    linking.accept(second.id, "ben")
    assert proposals.proposal(first.id).status == SUPERSEDED
    assert world.store.find_link("customer", zoho_id=second.zoho_id).ameise_id == "5001"
    with pytest.raises(LinkingError):
        linking.reject(first.id, "ben")
    with pytest.raises(LinkingError, match="does not exist"):
        linking.accept(999, "ben")


def test_rejecting_writes_nothing(world):
    world.zoho.seed("Contacts", {"First_Name": "Erika", "Last_Name": "Mustermann 5001", "Date_of_Birth": "1964-08-12"})
    world.snapshot.put("kunden", "5001", person("5001"))
    proposals = MemoryLinkingStore(world.snapshot)
    linking = linking_of(world, proposals)
    linking.propose("anna")
    [proposal] = proposals.proposals()
    assert linking.reject(proposal.id, "anna").status == REJECTED_PROPOSAL
    assert world.zoho.writes == [] and world.store.find_link("customer", ameise_id="5001") is None


# ---------------------------------------------------------------- the return path's guard
def guarded(world: World, proposals: MemoryLinkingStore) -> World:
    world.deps.guard = LinkGuard(proposals, load_mapping())
    return world


def test_before_linking_a_customer_whose_email_a_crm_record_without_number_carries_is_held(world):
    twin = world.zoho.seed("Contacts", {"Last_Name": "Mustermann", "Email": "kunde5001@example.de"})
    guarded(world, MemoryLinkingStore(world.snapshot))

    [outcome] = world.apply(world.customer(person("5001")))

    assert (outcome.status, outcome.action) == ("ok", "needs_linking")
    assert "syncbridge link propose" in outcome.reason
    assert [r["id"] for r in world.zoho.records("Contacts")] == [twin]      # no second record
    [entry] = world.store.activities()
    assert (entry.action, entry.ameise_id) == ("needs_linking", "5001")
    assert "needs linking" in entry.details["reason"]


def test_before_linking_a_customer_without_a_twin_or_with_its_number_in_the_crm_is_applied(world):
    world.zoho.seed("Contacts", {"Last_Name": "Other", "Email": "kunde5002@example.de", "Kundennummer": "5002"})
    guarded(world, MemoryLinkingStore(world.snapshot))

    outcomes = world.apply(world.customer(person("5001")), world.customer(person("5002")))

    assert [(o.key, o.action) for o in outcomes] == [("5001", "created"), ("5002", "updated")]


def test_after_linking_an_open_proposal_holds_the_customer_and_its_contract(world):
    world.zoho.seed("Contacts", {"First_Name": "Erika", "Last_Name": "Mustermann 5001", "Date_of_Birth": "1964-08-12"})
    world.zoho.seed("Contacts", {"First_Name": "Erika", "Last_Name": "Mustermann 5001", "Date_of_Birth": "1964-08-12"})
    world.snapshot.put("kunden", "5001", person("5001"))
    proposals = MemoryLinkingStore(world.snapshot)
    linking_of(world, proposals).propose("anna")                          # ambiguous: two candidates
    guarded(world, proposals)

    outcomes = world.apply(world.customer(person("5001")), world.contract(contract("V1", "5001")))

    assert [(o.status, o.action) for o in outcomes] == [("ok", "needs_linking"), ("ok", "needs_linking")]
    assert "waits for a decision" in outcomes[0].reason
    assert len(world.zoho.records("Contacts")) == 2 and world.zoho.records("Deals") == []
    # a contract delivered in a later batch waits for its customer the same way, without a retry
    [later] = world.apply(world.contract(contract("V2", "5001")))
    assert (later.status, later.action) == ("ok", "needs_linking")


def test_the_first_delivery_after_accepting_creates_no_duplicate(world):
    erika_id = world.zoho.seed("Contacts", {"First_Name": "Erika", "Last_Name": "Mustermann 5001",
                                            "Email": "KUNDE5001@example.de", "Date_of_Birth": "1964-08-12"})
    bau_id = world.zoho.seed("Accounts", {"Account_Name": "Muster Bau 5002 GmbH", "Billing_Code": "01147"})
    deal_id = world.zoho.seed("Deals", {"Deal_Name": "Haus", "Stage": "Abgeschlossen", "Gesellschaft": "10330",
                                        "Versicherungsscheinnummer": "WG 123 546"})
    for row in (person("5001"), company("5002"), person("5003")):
        world.snapshot.put("kunden", row["Kundennummer"], row)
    world.snapshot.put("vertraege", "V1", contract("V1", "5001"))
    proposals = MemoryLinkingStore(world.snapshot)
    linking = linking_of(world, proposals)
    linking.propose("anna")
    assert linking.accept_certain("anna") == (3, [])
    guarded(world, proposals)

    outcomes = world.apply(*(world.customer(world.snapshot.rows[("kunden", k)].data) for k in ("5001", "5002", "5003")),
                           world.contract(contract("V1", "5001")))

    assert {o.key: o.action for o in outcomes} == {"5001": "updated", "5002": "updated", "5003": "created",
                                                   "V1": "updated"}
    assert {r["id"] for r in world.zoho.records("Contacts")} - {erika_id} != set()   # 5003 is new
    assert len(world.zoho.records("Contacts")) == 2
    assert [r["id"] for r in world.zoho.records("Accounts")] == [bau_id]
    assert [r["id"] for r in world.zoho.records("Deals")] == [deal_id]
    assert world.zoho.records("Deals")[0]["Vertragsnummer"] == "V1"


def test_accepting_every_certain_pair_writes_the_numbers_in_one_update_per_module_and_reports_refusals(world):
    ids = [world.zoho.seed("Contacts", {"First_Name": "Erika", "Last_Name": f"Mustermann {n}",
                                        "Email": f"kunde{n}@example.de", "Date_of_Birth": "1964-08-12"})
           for n in ("5001", "5002", "5003")]
    for n in ("5001", "5002", "5003"):
        world.snapshot.put("kunden", n, person(n))
    proposals = MemoryLinkingStore(world.snapshot)
    linking = linking_of(world, proposals)
    linking.propose("anna")
    world.zoho.delete_records("Contacts", [ids[1]])          # deleted in the CRM meanwhile
    world.zoho.writes.clear()

    accepted, errors = linking.accept_certain("anna")

    assert accepted == 2
    [error] = errors
    assert "the CRM refused the number: INVALID_DATA" in error
    [write] = world.zoho.writes
    assert (write.operation, len(write.records)) == ("update", 3)
    assert {r["id"]: r.get("Kundennummer") for r in world.zoho.records("Contacts")} == {ids[0]: "5001",
                                                                                      ids[2]: "5003"}
    assert world.store.find_link("customer", ameise_id="5002") is None
    assert [p.ameise_key for p in proposals.proposals(statuses=(CERTAIN,))] == ["5002"]
