"""First-time linking: pair the CRM records a broker already has with the Ameise customers and contracts.

A broker who connects syncbridge already keeps most people in both systems under
different ids.  :func:`match` pairs them, first by the Kundennummer / Vertragsnummer a
CRM record carries, then by strong evidence:

* persons: e-mail + name + birth date (a typo-tolerant name compare, umlauts and case ignored),
* companies: company name + PLZ,
* contracts: insurer (Gesellschaft) + policy number (Versicherungsscheinnummer).

Each proposal has a score (0-100) and its reasons.  A pair is *certain* when the
evidence is complete and nothing competes with it; *proposed* when the evidence is
partial; *ambiguous* when two candidates come close, or an e-mail shared by several
customers carries the pair.  Nothing is written until a pair is accepted:
:meth:`Linking.accept` stores the link and writes the number back to the CRM
(``"trigger": []``, like the CRM -> Ameise path does).

The Ameise side is the newest DailyUp snapshot (the whole portfolio, already in the
service's database after the first delivery); the CRM side is ``list_records`` of
each customer and contract module.

:class:`LinkGuard` keeps the return path from creating a CRM record for an Ameise
customer or contract that has a plausible unlinked twin; it reports "needs linking".
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from syncbridge.deliveries import CONTRACTS, CUSTOMERS
from syncbridge.mapping import Mapping
from syncbridge.ports import (
    AMBIGUOUS,
    CERTAIN,
    OPEN_PROPOSAL_STATES,
    PROPOSED,
    CrmClient,
    LinkConflict,
    LinkingStore,
    LinkProposal,
    LinkRun,
    RecordResult,
    Store,
)

CUSTOMER, CONTRACT = "customer", "contract"
PROPOSE_AT = 60          # a pair scoring at least this is proposed
CERTAIN_AT = 90          # ... and at least this (and unrivalled) is certain
UPDATES_PER_CALL = 100   # Zoho updates at most 100 records per call
RIVAL_MARGIN = 10        # a second candidate this close makes a pair ambiguous
NAME_SIMILAR = 0.85      # difflib ratio of two normalised names that counts as the same name
NAME_LOOSE = 0.7         # ... that counts beside a second piece of evidence (birth date or e-mail, and PLZ)
KIND_OF_PERSONENTYP = {"natuerlich": "person", "juristisch": "company"}
# The DailyUp columns that are evidence, per kind; their CRM fields come from the ameise_to_crm mapping.
EVIDENCE = {
    "person": ("Vorname", "Nachname", "Geburtsdatum", "Email", "PLZ"),
    "company": ("Firma", "PLZ", "Email"),
    "contract": ("Gesellschaft", "Versicherungsscheinnummer"),
}
LEGAL_FORMS = {"gmbh", "co", "kg", "ag", "ug", "haftungsbeschraenkt", "ohg", "gbr", "ev", "mbh", "se", "kgaa",
               "partg", "eg", "und", "e", "v", "ltd", "inc"}
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "ae", "Ö": "oe", "Ü": "ue"})
_DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%d.%m.%y", "%d/%m/%Y", "%Y/%m/%d")


class LinkingError(Exception):
    """A proposal cannot be accepted or rejected; the message says why (no personal data)."""


# ---------------------------------------------------------------- normalising
def norm_text(value: Any) -> str:
    """Lower case, umlauts spelled out, accents dropped, every run of other characters one blank."""
    text = str(value or "").translate(_UMLAUTS).casefold()
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(re.findall(r"[a-z0-9]+", text))


def norm_email(value: Any) -> str:
    text = str(value or "").strip().casefold()
    return text if "@" in text else ""


def norm_plz(value: Any) -> str:
    digits = re.sub(r"\D", "", str(value or ""))
    return digits.zfill(5) if digits else ""


def norm_date(value: Any) -> str:
    """An ISO date from ISO, German or a datetime text; '' when it is none."""
    if isinstance(value, (date, datetime)):
        return (value.date() if isinstance(value, datetime) else value).isoformat()
    text = str(value or "").strip()[:10]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    return ""


def norm_number(value: Any) -> str:
    """A policy number or code without blanks, dashes, dots or slashes, upper case."""
    return re.sub(r"[\s\-./]", "", str(value or "")).upper()


def norm_company(value: Any) -> str:
    """A company name without its legal form (GmbH, & Co. KG, AG, ...)."""
    return " ".join(word for word in norm_text(value).split() if word not in LEGAL_FORMS)


def similarity(a: str, b: str) -> float:
    """difflib's ratio of two normalised texts (1.0 equal, 0.0 when one is empty)."""
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


# ---------------------------------------------------------------- the records of both sides
@dataclass(frozen=True)
class Side:
    """One record of one side, with its evidence normalised (keyed by DailyUp column)."""

    kind: str                 # person, company, contract
    ref: str                  # the Kundennummer / Vertragsnummer (Ameise) or the record id (CRM)
    number: str               # the number it carries ('' for a CRM record without one)
    values: dict[str, str]    # DailyUp column -> normalised value
    module: str = ""          # the CRM module (CRM side)
    label: str = ""           # for a person to recognise the record

    @property
    def entity(self) -> str:
        return CONTRACT if self.kind == "contract" else CUSTOMER


def normalise(kind: str, raw: dict[str, Any]) -> dict[str, str]:
    """The evidence of a record (DailyUp columns -> raw values), normalised."""
    values: dict[str, str] = {}
    for column in EVIDENCE[kind]:
        value = raw.get(column)
        if column == "Email":
            values[column] = norm_email(value)
        elif column == "PLZ":
            values[column] = norm_plz(value)
        elif column == "Geburtsdatum":
            values[column] = norm_date(value)
        elif column == "Firma":
            values[column] = norm_company(value)
        elif column in ("Versicherungsscheinnummer", "Gesellschaft"):
            values[column] = norm_number(value)
        else:
            values[column] = norm_text(value)
    return values


def _label(kind: str, raw: dict[str, Any]) -> str:
    parts = [str(raw.get(column) or "").strip() for column in EVIDENCE[kind]]
    if kind == "person":
        parts = [" ".join(p for p in parts[:2] if p)] + parts[2:]
    return ", ".join(p for p in parts if p)


def ameise_side(kind: str, key: str, data: dict[str, Any]) -> Side:
    """An Ameise customer or contract as the DailyUp snapshot holds it."""
    return Side(kind, key, key, normalise(kind, data), label=_label(kind, data))


def crm_side(kind: str, module: str, record: dict[str, Any], fields: dict[str, str], number_field: str) -> Side:
    """A CRM record read with ``fields`` (DailyUp column -> CRM field)."""
    raw = {column: record.get(crm) for column, crm in fields.items()}
    return Side(kind, str(record["id"]), str(record.get(number_field) or "").strip(), normalise(kind, raw),
                module=module, label=_label(kind, raw))


def crm_fields(mapping: Mapping, kind: str) -> dict[str, str]:
    """DailyUp column -> CRM field of the evidence of ``kind``, as the ameise_to_crm mapping writes them."""
    fields: dict[str, str] = {}
    for rule in mapping.to_crm(kind).fields:
        if rule.dailyup in EVIDENCE[kind] and rule.type != "lookup":
            fields.setdefault(rule.dailyup, rule.crm)
    return fields


# ---------------------------------------------------------------- scoring
@dataclass(frozen=True)
class Evidence:
    """How strongly two records are the same, and why."""

    score: int
    reasons: tuple[str, ...]
    shared_email: bool = False    # the pair rests on an e-mail several Ameise customers share


NONE = Evidence(0, ())


def _name_reason(ratio: float, what: str) -> str:
    return f"{what} equal" if ratio >= 1.0 else f"{what} similar ({ratio:.0%})"


def score_person(a: Side, c: Side, email_users: int = 1) -> Evidence:
    """Evidence that Ameise person ``a`` and CRM contact ``c`` are one person."""
    av, cv = a.values, c.values
    first = similarity(av["Vorname"], cv["Vorname"])
    last = similarity(av["Nachname"], cv["Nachname"])
    full = similarity(f"{av['Vorname']} {av['Nachname']}", f"{cv['Vorname']} {cv['Nachname']}")
    swapped = similarity(f"{av['Nachname']} {av['Vorname']}", f"{cv['Vorname']} {cv['Nachname']}")
    name_ratio = max(full, swapped)
    name = name_ratio >= NAME_SIMILAR and last >= 0.75 or (swapped >= NAME_SIMILAR)
    email = bool(av["Email"]) and av["Email"] == cv["Email"]
    dob_known = bool(av["Geburtsdatum"] and cv["Geburtsdatum"])
    dob = dob_known and av["Geburtsdatum"] == cv["Geburtsdatum"]
    shared = email and email_users > 1
    reasons: list[str] = []
    if email:
        reasons.append(f"e-mail equal, shared by {email_users} customers" if shared else "e-mail equal")
    if name:
        reasons.append(_name_reason(name_ratio, "name"))
    elif last >= NAME_SIMILAR:
        reasons.append(_name_reason(last, "last name") + f", first name differs ({first:.0%})")
    if dob:
        reasons.append("birth date equal")
    elif dob_known:
        reasons.append("birth date differs")
    plz = bool(av["PLZ"]) and av["PLZ"] == cv["PLZ"]
    if plz:
        reasons.append("PLZ equal")
    loose = name_ratio >= NAME_LOOSE        # two slips in short names (Clara Hahn / Clraa Hhan)
    if name and dob and email:
        score = 90 if shared else 97
    elif name and dob:
        score = 85 if plz else 80
    elif name and email and not dob_known:
        score = 65 if shared else 75
    elif email and dob and (last >= NAME_SIMILAR or loose):
        score = 60 if shared else 70    # a first name written differently (Hans-Peter / Peter), or slips
    elif email and dob:
        score = 45 if shared else 60    # a new last name (marriage), nothing else differs
    elif dob and plz and loose:
        score = 65
    elif email and plz and loose and not dob_known and not shared:
        score = 65
    elif name and plz and not dob_known:
        score = 60
    elif name and email:      # birth dates known and different: relatives sharing an address
        score = 35
    else:
        score = 20 if (email or name) else 0
    return Evidence(score, tuple(reasons), shared)


def score_company(a: Side, c: Side, email_users: int = 1) -> Evidence:
    """Evidence that Ameise company ``a`` and CRM account ``c`` are one company."""
    av, cv = a.values, c.values
    ratio = similarity(av["Firma"], cv["Firma"])
    name = ratio >= NAME_SIMILAR
    plz = bool(av["PLZ"]) and av["PLZ"] == cv["PLZ"]
    plz_known = bool(av["PLZ"] and cv["PLZ"])
    email = bool(av["Email"]) and av["Email"] == cv["Email"]
    shared = email and email_users > 1
    reasons: list[str] = []
    if name:
        reasons.append(_name_reason(ratio, "company name"))
    if plz:
        reasons.append("PLZ equal")
    elif plz_known:
        reasons.append("PLZ differs")
    if email:
        reasons.append(f"e-mail equal, shared by {email_users} customers" if shared else "e-mail equal")
    if name and plz:
        score = 95 if email or ratio >= 1.0 else 90
    elif name and email:
        score = 75 if not shared else 65
    elif name and not plz_known:
        score = 60
    elif plz and email and not shared:
        score = 60
    else:
        score = 25 if name else 0
    return Evidence(score, tuple(reasons), shared)


def score_contract(a: Side, c: Side, email_users: int = 1) -> Evidence:  # noqa: ARG001 - one signature for all kinds
    """Evidence that Ameise contract ``a`` and CRM deal ``c`` are one contract."""
    av, cv = a.values, c.values
    policy = bool(av["Versicherungsscheinnummer"]) and av["Versicherungsscheinnummer"] == cv["Versicherungsscheinnummer"]
    if not policy:
        return NONE
    insurer_known = bool(av["Gesellschaft"] and cv["Gesellschaft"])
    if insurer_known and av["Gesellschaft"] == cv["Gesellschaft"]:
        return Evidence(95, ("policy number equal", "insurer equal"))
    if insurer_known:
        return Evidence(0, ("policy number equal", "insurer differs"))
    return Evidence(70, ("policy number equal", "insurer unknown on one side"))


SCORERS: dict[str, Callable[[Side, Side, int], Evidence]] = {
    "person": score_person, "company": score_company, "contract": score_contract}


def score(a: Side, c: Side, email_users: int = 1) -> Evidence:
    """Evidence that ``a`` (Ameise) and ``c`` (CRM) are one record; the number first."""
    if c.number:
        if c.number == a.number:
            what = "Vertragsnummer" if a.kind == "contract" else "Kundennummer"
            return Evidence(100, (f"{what} equal",))
        return NONE           # the CRM record is another Ameise record's
    return SCORERS[a.kind](a, c, email_users)


# ---------------------------------------------------------------- matching
@dataclass
class MatchResult:
    """Every pair found, and what stayed unmatched on each side."""

    proposals: list[LinkProposal] = field(default_factory=list)
    unmatched_ameise: list[Side] = field(default_factory=list)
    unmatched_crm: list[Side] = field(default_factory=list)
    linked: int = 0           # pairs the store already links

    def counts(self) -> dict[str, int]:
        counts = Counter(p.status for p in self.proposals)
        ambiguous_records = len({p.ameise_key for p in self.proposals if p.status == AMBIGUOUS})
        return {"matched": sum(1 for p in self.proposals if p.status == CERTAIN and p.score == 100),
                "certain": counts[CERTAIN], "proposed": counts[PROPOSED], "ambiguous": ambiguous_records,
                "ambiguous_pairs": counts[AMBIGUOUS], "unmatched_ameise": len(self.unmatched_ameise),
                "unmatched_crm": len(self.unmatched_crm), "linked": self.linked}


def _blocks(kind: str, side: Side) -> list[tuple[str, str]]:
    """The index keys under which a record's candidates are looked for."""
    v = side.values
    keys = [("number", side.number)] if side.number else []
    if kind == "person":
        keys += [("email", v["Email"]), ("dob", v["Geburtsdatum"]), ("last", v["Nachname"][:4]),
                 ("plz", v["PLZ"])]
    elif kind == "company":
        words = v["Firma"].split()
        keys += [("email", v["Email"]), ("plz", v["PLZ"]), ("firma", words[0] if words else "")]
    else:
        keys += [("policy", v["Versicherungsscheinnummer"])]
    return [(name, value) for name, value in keys if value]


def match(ameise: Sequence[Side], crm: Sequence[Side], *, linked_ameise: Iterable[tuple[str, str]] = (),
          linked_crm: Iterable[tuple[str, str]] = ()) -> MatchResult:
    """Pair Ameise records with CRM records of the same entity kind.

    ``linked_ameise`` / ``linked_crm``: (entity, key or id) already linked; left out of the matching.
    """
    done_a, done_c = set(linked_ameise), set(linked_crm)
    result = MatchResult(linked=len(done_a))
    for kind in ("person", "company", "contract"):
        a_side = [a for a in ameise if a.kind == kind and (a.entity, a.ref) not in done_a]
        c_side = [c for c in crm if c.kind == kind and (c.entity, c.ref) not in done_c]
        _match_kind(kind, a_side, c_side, result)
    return result


def _match_kind(kind: str, ameise: list[Side], crm: list[Side], result: MatchResult) -> None:
    index: dict[tuple[str, str], list[int]] = defaultdict(list)
    for position, record in enumerate(crm):
        for key in _blocks(kind, record):
            index[key].append(position)
    email_users = Counter(a.values.get("Email", "") for a in ameise if a.values.get("Email"))
    # Every pair worth proposing, both ways.
    by_ameise: dict[int, list[tuple[int, Evidence]]] = {}
    by_crm: dict[int, list[tuple[int, Evidence]]] = defaultdict(list)
    for ai, a in enumerate(ameise):
        seen: set[int] = set()
        found: list[tuple[int, Evidence]] = []
        for key in [("number", a.ref)] + _blocks(kind, a):
            for ci in index.get(key, ()):
                if ci in seen:
                    continue
                seen.add(ci)
                evidence = score(a, crm[ci], email_users[a.values.get("Email", "")] if a.values.get("Email") else 1)
                if evidence.score >= PROPOSE_AT:
                    found.append((ci, evidence))
        found.sort(key=lambda item: -item[1].score)
        by_ameise[ai] = found
        for ci, evidence in found:
            by_crm[ci].append((ai, evidence))
    paired_crm: set[int] = set()
    for ai, a in enumerate(ameise):
        found = by_ameise[ai]
        if not found:
            result.unmatched_ameise.append(a)
            continue
        best_ci, best = found[0]
        rivals = [(ci, ev) for ci, ev in found[1:] if ev.score >= best.score - RIVAL_MARGIN and best.score < 100]
        crm_rivals = [(other, ev) for other, ev in by_crm[best_ci]
                      if other != ai and ev.score >= best.score - RIVAL_MARGIN]
        if best.score == 100:
            crm_rivals = [(other, ev) for other, ev in crm_rivals if ev.score == 100]
        ambiguous = bool(rivals or crm_rivals) or (best.shared_email and best.score < CERTAIN_AT)
        if ambiguous:
            for ci, evidence in [(best_ci, best)] + rivals:
                reasons = evidence.reasons
                if crm_rivals and ci == best_ci:
                    reasons += (f"the CRM record also fits {len(crm_rivals)} other customer(s)",)
                if rivals:
                    reasons += (f"{len(rivals) + 1} CRM candidates",)
                result.proposals.append(_proposal(a, crm[ci], evidence.score, reasons, AMBIGUOUS))
                paired_crm.add(ci)
        else:
            status = CERTAIN if best.score >= CERTAIN_AT else PROPOSED
            result.proposals.append(_proposal(a, crm[best_ci], best.score, best.reasons, status))
            paired_crm.add(best_ci)
    result.unmatched_crm.extend(c for ci, c in enumerate(crm) if ci not in paired_crm)


def _proposal(a: Side, c: Side, points: int, reasons: tuple[str, ...], status: str) -> LinkProposal:
    return LinkProposal(entity=a.entity, kind=a.kind, ameise_key=a.ref, zoho_module=c.module, zoho_id=c.ref,
                        score=points, reasons=reasons, status=status, ameise_label=a.label, crm_label=c.label,
                        crm_number=c.number)


# ---------------------------------------------------------------- the service
Progress = Callable[[str, int, int | None], None]


def _no_progress(stage: str, done: int, total: int | None) -> None:  # noqa: ARG001
    return None


@dataclass
class Linking:
    """First-time linking on the CRM, the link store and the proposal store; built by bootstrap."""

    crm: CrmClient
    links: Store
    proposals: LinkingStore
    mapping: Mapping
    modules: dict[str, str]                     # entity kind -> CRM module
    kundennummer_field: str = "Kundennummer"
    vertragsnummer_field: str = "Vertragsnummer"
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def number_field(self, entity: str) -> str:
        return self.vertragsnummer_field if entity == CONTRACT else self.kundennummer_field

    # ------------------------------------------------------------ reading
    def read_ameise(self, progress: Progress = _no_progress) -> list[Side]:
        """The Ameise customers and contracts of the DailyUp snapshot (deleted ones left out)."""
        sides: list[Side] = []
        for table in (CUSTOMERS, CONTRACTS):
            before = len(sides)
            for row in self.proposals.snapshot_records(table):
                if table == CONTRACTS:
                    sides.append(ameise_side("contract", row.key, row.data))
                else:
                    kind = KIND_OF_PERSONENTYP.get(str(row.data.get("Personentyp") or "").strip())
                    if kind:
                        sides.append(ameise_side(kind, row.key, row.data))
            progress(f"Ameise {table}", len(sides) - before, None)
        return sides

    def read_crm(self, progress: Progress = _no_progress) -> list[Side]:
        """Every record of the customer and contract modules, with the evidence fields and the number."""
        sides: list[Side] = []
        for kind in ("person", "company", "contract"):
            module = self.modules.get(kind)
            if not module:
                continue
            fields = crm_fields(self.mapping, kind)
            number_field = self.number_field(CONTRACT if kind == "contract" else CUSTOMER)
            names = list(dict.fromkeys([*fields.values(), number_field]))[:49]   # id comes with every record
            records = self.crm.list_records(module, names)
            sides.extend(crm_side(kind, module, record, fields, number_field) for record in records)
            progress(f"CRM {module}", len(records), len(records))
        return sides

    def compute(self, progress: Progress = _no_progress) -> MatchResult:
        """Read both sides and pair them; nothing is written."""
        ameise = self.read_ameise(progress)
        crm = self.read_crm(progress)
        linked_a = {(a.entity, a.ref) for a in ameise if self.links.find_link(a.entity, ameise_id=a.ref)}
        linked_c = {(c.entity, c.ref) for c in crm if self.links.find_link(c.entity, zoho_id=c.ref)}
        result = match(ameise, crm, linked_ameise=linked_a, linked_crm=linked_c)
        progress("matched", len(result.proposals), len(result.proposals))
        return result

    # ------------------------------------------------------------ proposing
    def propose(self, by: str, progress: Progress = _no_progress) -> tuple[LinkRun, MatchResult]:
        """Compute the proposals and keep them (replacing the open ones of an earlier run)."""
        result = self.compute(progress)
        run = self.proposals.record_run(by=by, at=self.now(), counts=result.counts(), proposals=result.proposals)
        return run, result

    # ------------------------------------------------------------ deciding
    def accept(self, proposal_id: int, by: str) -> LinkProposal:
        """Store the pair's link and write the number back to the CRM record (``"trigger": []``)."""
        proposal = self._open(proposal_id)
        self._check_free(proposal)
        if proposal.crm_number != proposal.ameise_key:
            [answer] = self.crm.update_records(proposal.zoho_module, [self._number_body(proposal)])
            self._written(proposal, answer)
        return self._link(proposal, by)

    def accept_certain(self, by: str, progress: Progress = _no_progress) -> tuple[int, list[str]]:
        """Accept every certain proposal, the numbers in updates of up to 100 records per module.

        Returns (accepted, one error line per pair that failed).
        """
        certain = self.proposals.proposals(statuses=(CERTAIN,), limit=None)
        accepted, errors, done = 0, [], 0
        by_module: dict[str, list[LinkProposal]] = defaultdict(list)
        for proposal in certain:
            by_module[proposal.zoho_module].append(proposal)
        for module, proposals in by_module.items():
            for start in range(0, len(proposals), UPDATES_PER_CALL):
                chunk, to_write = [], []
                for proposal in proposals[start:start + UPDATES_PER_CALL]:
                    try:
                        self._check_free(proposal)
                    except LinkingError as exc:
                        errors.append(str(exc))
                        continue
                    chunk.append(proposal)
                    if proposal.crm_number != proposal.ameise_key:
                        to_write.append(proposal)
                answers = self.crm.update_records(module, [self._number_body(p) for p in to_write]) if to_write else []
                refused = set()
                for proposal, answer in zip(to_write, answers, strict=True):
                    try:
                        self._written(proposal, answer)
                    except LinkingError as exc:
                        errors.append(str(exc))
                        refused.add(proposal.id)
                for proposal in chunk:
                    if proposal.id in refused:
                        continue
                    try:
                        self._link(proposal, by)
                        accepted += 1
                    except LinkingError as exc:
                        errors.append(str(exc))
                done += min(UPDATES_PER_CALL, len(proposals) - start)
                progress("accepted", done, len(certain))
        return accepted, errors

    def _open(self, proposal_id: int) -> LinkProposal:
        proposal = self.proposals.proposal(proposal_id)
        if proposal is None:
            raise LinkingError(f"proposal {proposal_id} does not exist")
        if proposal.status not in OPEN_PROPOSAL_STATES:
            raise LinkingError(f"proposal {proposal_id} is {proposal.status}, not open")
        return proposal

    def _check_free(self, proposal: LinkProposal) -> None:
        """Neither record may be linked to another one already."""
        other = self.links.find_link(proposal.entity, ameise_id=proposal.ameise_key)
        if other is not None and other.zoho_id != proposal.zoho_id:
            raise LinkingError(f"proposal {proposal.id}: the Ameise record is already linked to CRM record "
                               f"{other.zoho_id}")
        linked = self.links.find_link(proposal.entity, zoho_id=proposal.zoho_id)
        if linked is not None and linked.ameise_id != proposal.ameise_key:
            raise LinkingError(f"proposal {proposal.id}: the CRM record is already linked to another Ameise record")

    def _number_body(self, proposal: LinkProposal) -> dict[str, Any]:
        return {"id": proposal.zoho_id, self.number_field(proposal.entity): proposal.ameise_key}

    @staticmethod
    def _written(proposal: LinkProposal, answer: RecordResult) -> None:
        if not answer.ok:
            raise LinkingError(f"proposal {proposal.id}: the CRM refused the number: {answer.code} "
                               f"{answer.field or ''}".rstrip())

    def _link(self, proposal: LinkProposal, by: str) -> LinkProposal:
        try:
            self.links.save_link(proposal.entity, proposal.zoho_module, proposal.zoho_id, proposal.ameise_key)
        except LinkConflict as exc:
            raise LinkingError(f"proposal {proposal.id}: {exc}") from exc
        return self.proposals.decide(proposal.id or 0, "accepted", by=by, at=self.now())

    def reject(self, proposal_id: int, by: str) -> LinkProposal:
        self._open(proposal_id)
        return self.proposals.decide(proposal_id, "rejected", by=by, at=self.now())


# ---------------------------------------------------------------- the report
REPORT_COLUMNS = ("category", "entity", "kind", "score", "kundennummer_or_vertragsnummer", "zoho_module",
                  "zoho_id", "ameise_record", "crm_record", "reasons")


def report_rows(result: MatchResult) -> list[dict[str, Any]]:
    """The dry-run report: matched, certain, proposed, ambiguous, unmatched on each side."""
    rows: list[dict[str, Any]] = []
    for p in sorted(result.proposals, key=lambda p: (p.status, -p.score, p.ameise_key)):
        category = "matched" if p.status == CERTAIN and p.score == 100 else p.status
        rows.append({"category": category, "entity": p.entity, "kind": p.kind, "score": p.score,
                     "kundennummer_or_vertragsnummer": p.ameise_key, "zoho_module": p.zoho_module,
                     "zoho_id": p.zoho_id, "ameise_record": p.ameise_label, "crm_record": p.crm_label,
                     "reasons": "; ".join(p.reasons)})
    for a in result.unmatched_ameise:
        rows.append({"category": "unmatched_ameise", "entity": a.entity, "kind": a.kind, "score": "",
                     "kundennummer_or_vertragsnummer": a.ref, "zoho_module": "", "zoho_id": "",
                     "ameise_record": a.label, "crm_record": "", "reasons": ""})
    for c in result.unmatched_crm:
        rows.append({"category": "unmatched_crm", "entity": c.entity, "kind": c.kind, "score": "",
                     "kundennummer_or_vertragsnummer": c.number, "zoho_module": c.module, "zoho_id": c.ref,
                     "ameise_record": "", "crm_record": c.label, "reasons": ""})
    return rows


# ---------------------------------------------------------------- the return path's guard
@dataclass
class LinkGuard:
    """Whether the return path must hold an Ameise record instead of creating it in the CRM.

    A record is held ("needs linking") when an open proposal names it; until linking has
    run at all, also when the CRM has a record without a number that shares its e-mail
    (persons, companies), its company name (companies) or its policy number (contracts).
    """

    proposals: LinkingStore
    mapping: Mapping
    kundennummer_field: str = "Kundennummer"
    vertragsnummer_field: str = "Vertragsnummer"

    def hold_reason(self, kind: str, key: str, data: dict[str, Any], module: str,
                    search: Callable[[str, str, str], list[dict[str, Any]]]) -> str:
        """Why ``key`` must not be created in the CRM now ('' when it may); ``search(module, field, value)``."""
        entity = CONTRACT if kind == "contract" else CUSTOMER
        if self.proposals.open_proposals_for(entity, key):
            return "needs linking: a linking proposal waits for a decision (syncbridge link list)"
        if self.proposals.last_run() is not None:
            return ""
        fields = crm_fields(self.mapping, kind)
        number_field = self.vertragsnummer_field if entity == CONTRACT else self.kundennummer_field
        probes = {"person": ("Email",), "company": ("Email", "Firma"), "contract": ("Versicherungsscheinnummer",)}
        for column in probes[kind]:
            value = str(data.get(column) or "").strip()
            crm_field = fields.get(column)
            if not value or not crm_field:
                continue
            for record in search(module, crm_field, value):
                number = str(record.get(number_field) or "").strip()
                if not number:
                    return (f"needs linking: the CRM has a record without {number_field} with the same "
                            f"{column}; run syncbridge link propose before the first delivery")
        return ""
