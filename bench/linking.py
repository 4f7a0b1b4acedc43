"""Benchmark of first-time linking: precision and recall of the proposals, and duplicates after the first delivery.

Generates a broker's two portfolios (seeded, reproducible): ``--ameise`` Ameise
customers (9 in 10 persons, the rest companies; one contract each) and ``--crm`` CRM
records, ``--overlap`` of the Ameise customers having a CRM twin.  The twins differ as
real data does: 1 in 10 already carries the Kundennummer, names carry typos, umlauts
spelled out and other case, some e-mails are missing or changed, some birth dates
missing; families share one e-mail; the CRM also holds relatives (same last name,
address and e-mail, another first name and birth date) and strangers.  Two in three
twins' contracts are also in the CRM as deals (policy number written with blanks or
dashes, no Vertragsnummer).

Then, on the in-memory fakes (Zoho simulator rules, store, snapshot):

1. ``propose``: the pairs with their status; precision (right pairs / pairs proposed)
   and recall (right pairs found / twins) of the certain and of all unambiguous
   proposals, and how many twins are only in an ambiguous group;
2. accept every certain and proposed pair (as a person accepting the list would);
3. the first DailyUp delivery: every customer and contract through the return path
   with the guard; counts the CRM records created for an Ameise record whose twin
   the CRM already had (duplicates) and the records held as "needs linking".

It ends with ONE line of key=value pairs::

    python bench/linking.py              # 5,000 CRM / 5,000 Ameise customers
    python bench/linking.py --quick      # 500 / 500
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulators.fakes.linking import MemoryLinkingStore  # noqa: E402
from simulators.fakes.snapshot import MemorySnapshot  # noqa: E402
from simulators.fakes.store import MemoryStore  # noqa: E402
from simulators.fakes.zoho import InMemoryZoho  # noqa: E402
from syncbridge.handlers.ameise_to_crm import ReturnDependencies, sync_ameise_records_to_crm  # noqa: E402
from syncbridge.handlers.linking import LinkGuard, Linking  # noqa: E402
from syncbridge.mapping import load_mapping  # noqa: E402
from syncbridge.messages import AmeiseRecordChanged, SyncAmeiseRecordsToCrm  # noqa: E402
from syncbridge.ports import AMBIGUOUS, CERTAIN, PROPOSED  # noqa: E402

FIRST = ["Jürgen", "Jörg", "Günther", "Hans-Peter", "Maria", "Anna", "Sören", "Björn", "Käthe", "Lukas", "Paul",
         "Sophie", "Lena", "Max", "Felix", "Emma", "Mia", "Jonas", "Leon", "Lea", "Elias", "Hannah", "Ben", "Noah",
         "Clara", "Greta", "Moritz", "Ida", "Till", "Jörn", "Ute", "Heike", "Dieter", "Uwe", "Renate", "Bärbel",
         "Klaus", "Sabine", "Thomas", "Stefan", "Andrea", "Petra", "Michael", "Frank", "Martina", "Özlem", "Ayşe"]
LAST = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
        "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz", "Zimmermann",
        "Braun", "Krüger", "Hofmann", "Hartmann", "Lange", "Schmitt", "Werner", "Schmitz", "Krause", "Meier",
        "Lehmann", "Schmid", "Schulze", "Maier", "Köhler", "Herrmann", "König", "Walter", "Mayer", "Huber",
        "Kaiser", "Fuchs", "Peters", "Lang", "Scholz", "Möller", "Weiß", "Jung", "Hahn", "Schubert", "Vogel",
        "Friedrich", "Keller", "Günther", "Frank", "Berger", "Winkler", "Roth", "Beck", "Lorenz", "Baumann"]
FIRMS = ["Bäckerei", "Autohaus", "Dachdecker", "Elektro", "Sanitär", "Gartenbau", "Transporte", "Immobilien",
         "Steuerberatung", "Metallbau", "Tischlerei", "Malerbetrieb", "Reisebüro", "Logistik", "Consulting"]
FORMS = ["GmbH", "GmbH & Co. KG", "KG", "AG", "UG (haftungsbeschränkt)", "e.K.", "OHG"]
INSURERS = ["A001", "A002", "A017", "A042", "A105", "A230", "A311", "A404"]
SPELLED = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})


def typo(rng: random.Random, text: str) -> str:
    """One keyboard slip: two letters swapped, one dropped or one doubled."""
    if len(text) < 4:
        return text
    i = rng.randrange(1, len(text) - 2)
    how = rng.randrange(3)
    if how == 0:
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if how == 1:
        return text[:i] + text[i + 1:]
    return text[:i] + text[i] + text[i:]


def variant(rng: random.Random, text: str) -> str:
    """How the CRM may hold a name: typo (1 in 5), umlauts spelled out (1 in 4), other case (1 in 10)."""
    if rng.random() < 0.2:
        text = typo(rng, text)
    if rng.random() < 0.25:
        text = text.translate(SPELLED)
    if rng.random() < 0.1:
        text = text.upper() if rng.random() < 0.5 else text.lower()
    return text


def mail(first: str, last: str, n: int) -> str:
    return f"{first.translate(SPELLED).lower()}.{last.translate(SPELLED).lower()}{n}@example.de".replace(" ", "")


def generate(n_ameise: int, n_crm: int, overlap: float, seed: int = 7):
    """(kunden rows, vertraege rows, CRM records per module, twin: ameise key -> CRM record index per module)."""
    rng = random.Random(seed)
    kunden: dict[str, dict] = {}
    vertraege: dict[str, dict] = {}
    for i in range(n_ameise):
        key = f"K{100000 + i}"
        plz = f"{rng.randrange(1000, 99999):05d}"
        if rng.random() < 0.9:
            first, last = rng.choice(FIRST), rng.choice(LAST)
            born = date(1940, 1, 1) + timedelta(days=rng.randrange(25000))
            kunden[key] = {"Kundennummer": key, "Personentyp": "natuerlich", "Vorname": first, "Nachname": last,
                           "Geburtsdatum": born.isoformat(), "PLZ": plz, "Ort": "Stadt",
                           "Email": mail(first, last, i) if rng.random() < 0.85 else None}
        else:
            name = f"{rng.choice(FIRMS)} {rng.choice(LAST)} {rng.choice(FORMS)}"
            kunden[key] = {"Kundennummer": key, "Personentyp": "juristisch", "Firma": name, "PLZ": plz,
                           "Ort": "Stadt", "Email": f"info{i}@firma.example" if rng.random() < 0.7 else None}
        number = f"V{200000 + i}"
        vertraege[number] = {"Vertragsnummer": number, "Kundennummer": key, "Gesellschaft": rng.choice(INSURERS),
                             "Versicherungsscheinnummer": f"{rng.randrange(10**8, 10**9)}", "Sparte": "010",
                             "Status": "1"}
    # Families: 1 in 20 persons shares the e-mail of the person before (a couple, one address).
    persons = [k for k, row in kunden.items() if row["Personentyp"] == "natuerlich"]
    for before, key in zip(persons, persons[1:], strict=False):
        if rng.random() < 0.05 and kunden[before]["Email"]:
            kunden[key].update(Email=kunden[before]["Email"], Nachname=kunden[before]["Nachname"],
                               PLZ=kunden[before]["PLZ"])
    crm: dict[str, list[dict]] = {"Contacts": [], "Accounts": [], "Deals": []}
    twin: dict[tuple[str, str], tuple[str, int]] = {}      # (entity, ameise key) -> (module, index)
    keys = list(kunden)
    rng.shuffle(keys)
    twins = keys[:int(len(keys) * overlap)]
    for key in twins:
        row = kunden[key]
        carries = key if rng.random() < 0.1 else None
        if row["Personentyp"] == "natuerlich":
            email = row["Email"]
            if email and rng.random() < 0.1:
                email = "other." + email
            elif not email and rng.random() < 0.3:
                email = mail(row["Vorname"], row["Nachname"], 99999)
            record = {"First_Name": variant(rng, row["Vorname"]), "Last_Name": variant(rng, row["Nachname"]),
                      "Email": email, "Mailing_Zip": row["PLZ"],
                      "Date_of_Birth": None if rng.random() < 0.1 else row["Geburtsdatum"], "Kundennummer": carries}
            module = "Contacts"
        else:
            record = {"Account_Name": variant(rng, row["Firma"]), "Billing_Code": row["PLZ"],
                      "Email": row["Email"] if rng.random() < 0.8 else None, "Kundennummer": carries}
            module = "Accounts"
        twin[("customer", key)] = (module, len(crm[module]))
        crm[module].append(record)
    # Deals: two in three twins' contracts, the policy number written another way.
    for number, contract in vertraege.items():
        if ("customer", contract["Kundennummer"]) in twin and rng.random() < 0.67:
            policy = contract["Versicherungsscheinnummer"]
            written = rng.choice([policy, f"{policy[:3]} {policy[3:6]} {policy[6:]}", f"{policy[:4]}-{policy[4:]}"])
            twin[("contract", number)] = ("Deals", len(crm["Deals"]))
            crm["Deals"].append({"Deal_Name": f"Vertrag {written}", "Versicherungsscheinnummer": written,
                                 "Gesellschaft": contract["Gesellschaft"], "Stage": "Abgeschlossen"})
    # The rest of the CRM: relatives of customers (same last name, e-mail and PLZ) and strangers.
    others = n_crm - len(twins)
    for i in range(max(0, others)):
        if rng.random() < 0.3:
            row = kunden[rng.choice(persons)]
            crm["Contacts"].append({"First_Name": rng.choice(FIRST), "Last_Name": row["Nachname"],
                                    "Email": row["Email"], "Mailing_Zip": row["PLZ"],
                                    "Date_of_Birth": (date(1940, 1, 1) + timedelta(days=rng.randrange(25000)))
                                    .isoformat()})
        else:
            first, last = rng.choice(FIRST), rng.choice(LAST)
            crm["Contacts"].append({"First_Name": first, "Last_Name": last, "Email": mail(first, last, 10**6 + i),
                                    "Mailing_Zip": f"{rng.randrange(1000, 99999):05d}",
                                    "Date_of_Birth": (date(1940, 1, 1) + timedelta(days=rng.randrange(25000)))
                                    .isoformat()})
    return kunden, vertraege, crm, twin


def run(n_ameise: int, n_crm: int, overlap: float, seed: int) -> dict[str, object]:
    kunden, vertraege, crm_records, twin = generate(n_ameise, n_crm, overlap, seed)
    zoho = InMemoryZoho()
    ids: dict[tuple[str, int], str] = {}
    for module, records in crm_records.items():
        for index, record in enumerate(records):
            ids[(module, index)] = zoho.seed(module, {k: v for k, v in record.items() if v is not None})
    truth = {(entity, key): ids[where] for (entity, key), where in twin.items()}
    snapshot = MemorySnapshot()
    for key, row in kunden.items():
        snapshot.put("kunden", key, row)
    for key, row in vertraege.items():
        snapshot.put("vertraege", key, row)
    store, proposals = MemoryStore(), MemoryLinkingStore(snapshot)
    mapping = load_mapping(None)
    modules = {"person": "Contacts", "company": "Accounts", "contract": "Deals"}
    linking = Linking(crm=zoho, links=store, proposals=proposals, mapping=mapping, modules=modules)

    started = time.perf_counter()
    _run, result = linking.propose(by="bench")
    propose_s = time.perf_counter() - started
    figures: dict[str, object] = {"ameise": n_ameise, "crm": n_crm,
                                  "twins": sum(1 for entity, _ in truth if entity == "customer"),
                                  "contract_twins": sum(1 for entity, _ in truth if entity == "contract")}
    for entity in ("customer", "contract"):
        wanted = {key for (e, key) in truth if e == entity}
        mine = [p for p in result.proposals if p.entity == entity]
        certain = [p for p in mine if p.status == CERTAIN]
        unambiguous = [p for p in mine if p.status in (CERTAIN, PROPOSED)]
        right = lambda ps: sum(truth.get((entity, p.ameise_key)) == p.zoho_id for p in ps)  # noqa: E731
        in_ambiguous = {p.ameise_key for p in mine if p.status == AMBIGUOUS
                        and truth.get((entity, p.ameise_key)) == p.zoho_id}
        prefix = "" if entity == "customer" else "contract_"
        figures[f"{prefix}certain"] = len(certain)
        figures[f"{prefix}proposed"] = len(unambiguous) - len(certain)
        figures[f"{prefix}ambiguous_records"] = len({p.ameise_key for p in mine if p.status == AMBIGUOUS})
        figures[f"{prefix}precision_certain"] = round(right(certain) / len(certain), 4) if certain else 1.0
        figures[f"{prefix}recall_certain"] = round(right(certain) / len(wanted), 4) if wanted else 1.0
        figures[f"{prefix}precision"] = round(right(unambiguous) / len(unambiguous), 4) if unambiguous else 1.0
        figures[f"{prefix}recall"] = round(right(unambiguous) / len(wanted), 4) if wanted else 1.0
        figures[f"{prefix}recall_with_ambiguous"] = (round((right(unambiguous) + len(in_ambiguous)) / len(wanted), 4)
                                                     if wanted else 1.0)
    figures["propose_s"] = round(propose_s, 2)

    # A person accepts the certain and the proposed pairs; ambiguous ones stay open.
    accepted = 0
    for proposal in proposals.proposals(statuses=(CERTAIN, PROPOSED), limit=None):
        linking.accept(proposal.id or 0, "bench")
        accepted += 1
    figures["accepted"] = accepted

    # The first DailyUp delivery: every customer, then every contract, through the guarded return path.
    before = {module: {r["id"] for r in zoho.records(module)} for module in crm_records}
    deps = ReturnDependencies(crm=zoho, snapshot=snapshot, store=store, mapping=mapping, modules=modules,
                              guard=LinkGuard(proposals, mapping))
    deltas = [AmeiseRecordChanged(f"1:customer:{k}", 1, "2026-11-30", "customer", "created", k) for k in kunden]
    deltas += [AmeiseRecordChanged(f"1:contract:{k}", 1, "2026-11-30", "contract", "created", k) for k in vertraege]
    outcomes = []
    for start in range(0, len(deltas), 100):
        outcomes += sync_ameise_records_to_crm(SyncAmeiseRecordsToCrm(tuple(deltas[start:start + 100])), deps)
    actions = Counter(o.action for o in outcomes)
    created = {(o.entity, o.key): o.zoho_id for o in outcomes if o.action == "created"}
    duplicates = sum(1 for (entity, key), zoho_id in created.items()
                     if (entity, key) in truth and truth[(entity, key)] != zoho_id)
    figures["delivery_created"] = actions["created"]
    figures["delivery_updated"] = actions["updated"]
    figures["delivery_needs_linking"] = actions["needs_linking"]
    figures["delivery_failed"] = actions["failed"]
    figures["duplicates_created"] = duplicates
    after = {module: len(zoho.records(module)) - len(before[module]) for module in crm_records}
    figures["new_crm_records"] = sum(after.values())
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ameise", type=int, default=5000, help="Ameise customers (default 5000)")
    parser.add_argument("--crm", type=int, default=5000, help="CRM contacts and accounts (default 5000)")
    parser.add_argument("--overlap", type=float, default=0.8, help="share of Ameise customers with a CRM twin")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="500 / 500")
    args = parser.parse_args()
    if args.quick:
        args.ameise, args.crm = 500, 500
    figures = run(args.ameise, args.crm, args.overlap, args.seed)
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
