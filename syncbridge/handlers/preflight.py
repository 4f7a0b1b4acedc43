"""The preflight check: nothing syncs on a broken set-up.

Before a direction syncs, the CRM's field metadata is read for every synced
module and compared with the mapping: every field the mapping reads or writes
exists, takes the type of value we send, its picklist holds every value we may
write (lookup texts of the last accepted DailyUp, constants), lookup texts fit
its length; the Kundennummer / Vertragsnummer fields exist and may be matched on
by an upsert (unique).  The Ameise connection is checked too: a grant is stored,
the token can be refreshed, one cheap read answers.

Each problem is a :class:`Finding` with its severity (``blocking`` stops the
direction, ``warning`` does not), the directions it affects, and what to do.
What cannot be verified before a first write (whether the employee may write for
the configured Vermittler: Ameise has no call that tells) is a note, not a finding.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from syncbridge.errors import ReconnectNeeded, Rejected, SyncError, Unavailable
from syncbridge.handlers.ameise_to_crm import DELETED_STATUS
from syncbridge.mapping import DailyUpToCrmMapping, EntityMapping, Mapping, MappingError
from syncbridge.ports import (
    AMEISE_TO_CRM,
    CRM_TO_AMEISE,
    SYSTEM,
    ActivityEntry,
    AmeiseConnection,
    CrmClient,
    CrmField,
    DailyUpSnapshot,
    Store,
)

BLOCKING = "blocking"
WARNING = "warning"
DIRECTIONS = (str(CRM_TO_AMEISE), str(AMEISE_TO_CRM))
BOTH = DIRECTIONS
ACTION = "preflight"            # the action of the activity log entry a worker writes when the check's state changes
ARROWS = {str(CRM_TO_AMEISE): "CRM -> Ameise", str(AMEISE_TO_CRM): "Ameise -> CRM"}

# Zoho data types by what they take.
TEXT_TYPES = frozenset({"text", "textarea", "email", "phone", "website", "picklist", "autonumber"})
NUMBER_TYPES = frozenset({"double", "currency", "decimal", "percent"})
WHOLE_NUMBER_TYPES = frozenset({"integer", "bigint"})
DATE_TYPES = frozenset({"date"})
# What a CRM field of the mapping may be, per mapping type: written (ameise_to_crm) and read (crm_to_ameise).
WRITES = {
    "string": TEXT_TYPES, "template": TEXT_TYPES, "lookup": TEXT_TYPES, "code": TEXT_TYPES,
    "date": DATE_TYPES, "decimal": NUMBER_TYPES,
}
READS = {
    "string": TEXT_TYPES | NUMBER_TYPES | WHOLE_NUMBER_TYPES | DATE_TYPES | {"datetime", "lookup", "ownerlookup",
                                                                             "boolean"},
    "code": TEXT_TYPES | WHOLE_NUMBER_TYPES | NUMBER_TYPES,
    "date": DATE_TYPES | {"datetime"},
    "decimal": NUMBER_TYPES | WHOLE_NUMBER_TYPES,
}
PICKLIST_NONE = "-None-"
REFUSED_VERMITTLER = "Fehlerhafte anfrage"   # the HTML 400 page Ameise answers when the Vermittler is not the employee's


@dataclass(frozen=True)
class Finding:
    """One problem of the set-up."""

    severity: str                      # blocking | warning
    directions: tuple[str, ...]        # the directions it stops (blocking) or endangers (warning)
    subject: str                       # e.g. "Contacts.Kundennummer", "Ameise"
    message: str
    fix: str                           # what to do about it

    def line(self) -> str:
        """One line: severity, directions, subject, problem, what to do."""
        where = ", ".join(ARROWS.get(d, d) for d in self.directions)
        return f"{self.severity.upper():<8} [{where}] {self.subject}: {self.message} -> {self.fix}"


@dataclass(frozen=True)
class PreflightReport:
    """The outcome of one check: the problems found and what could not be verified."""

    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()
    directions: tuple[str, ...] = DIRECTIONS    # the directions that were checked

    def blocking(self, direction: str | None = None) -> list[Finding]:
        """The blocking findings (of ``direction``, if given)."""
        return [f for f in self.findings if f.severity == BLOCKING and (direction is None or direction in f.directions)]

    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    def passes(self, direction: str) -> bool:
        """Whether ``direction`` may sync (it was checked and nothing blocks it)."""
        return direction in self.directions and not self.blocking(direction)

    def summary(self, direction: str | None = None) -> str:
        """One line: how many problems, or what blocks ``direction``."""
        if direction is not None:
            blocking = self.blocking(direction)
            if not blocking:
                return "preflight passed"
            first = f"{blocking[0].subject}: {blocking[0].message}"
            more = f" (and {len(blocking) - 1} more; run `syncbridge check`)" if len(blocking) > 1 else ""
            return first + more
        blocks, warns = len(self.blocking()), len(self.warnings())
        states = ", ".join(f"{ARROWS[d]} {'ready' if self.passes(d) else 'PAUSED'}" for d in self.directions)
        if not self.findings:
            return f"all checks passed: {states}"
        return f"{blocks} blocking, {warns} warning{'s' if warns != 1 else ''}: {states}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": not self.blocking(),
            "directions": {d: ("ready" if self.passes(d) else "paused") for d in self.directions},
            "findings": [asdict(f) for f in self.findings],
            "notes": list(self.notes),
        }


@dataclass
class PreflightDependencies:
    """What the check reads: the CRM, the Ameise connection, the mapping and the settings it needs."""

    crm: CrmClient
    store: Store
    mapping: Mapping
    module_entities: dict[str, str]                 # CRM module -> entity kind (SYNCBRIDGE_ZOHO_MODULES)
    kundennummer_field: str = "Kundennummer"
    vertragsnummer_field: str = "Vertragsnummer"
    status_field: str = ""                          # set by the return path for deleted records (delete mode "mark")
    vermittler: str = ""                            # SYNCBRIDGE_AMEISE_VERMITTLER
    ameise: AmeiseConnection | None = None
    lookups: DailyUpSnapshot | None = None          # the delivered lookup lists, if there is a DailyUp store


@dataclass
class _Check:
    deps: PreflightDependencies
    directions: tuple[str, ...]
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    undelivered: list[str] = field(default_factory=list)    # lookup lists no accepted DailyUp delivered yet

    def add(self, severity: str, directions: Iterable[str], subject: str, message: str, fix: str) -> None:
        wanted = tuple(d for d in directions if d in self.directions)
        if not wanted:
            return
        finding = Finding(severity, wanted, subject, message, fix)
        if finding not in self.findings:
            self.findings.append(finding)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def run_preflight(deps: PreflightDependencies, directions: Iterable[str] = DIRECTIONS) -> PreflightReport:
    """Check the set-up of ``directions``; never raises for an outside system's failure (it is a finding)."""
    check = _Check(deps, tuple(str(d) for d in directions))
    _check_crm(check)
    if check.undelivered and str(AMEISE_TO_CRM) in check.directions:
        check.note("No DailyUp delivery has been accepted yet, so the texts of these lookup lists are checked "
                   f"against their CRM fields only after the first: {', '.join(check.undelivered)}")
    if str(CRM_TO_AMEISE) in check.directions:
        _check_ameise(check)
    order = {BLOCKING: 0, WARNING: 1}
    findings = sorted(check.findings, key=lambda f: order.get(f.severity, 2))
    return PreflightReport(tuple(findings), tuple(check.notes), check.directions)


# ---------------------------------------------------------------- the CRM
def _outside_failure(check: _Check, system: str, directions: Iterable[str], exc: SyncError, fix_hint: str) -> None:
    if isinstance(exc, ReconnectNeeded):
        check.add(BLOCKING, directions, system, f"the connection needs a person: {exc.describe()}", fix_hint)
    elif isinstance(exc, Unavailable):
        check.add(BLOCKING, directions, system, f"cannot be reached: {exc.describe()}",
                  "check the address and network, then run `syncbridge check` again")
    else:
        check.add(BLOCKING, directions, system, f"refused the check's request: {exc.describe()}", fix_hint)


def _check_crm(check: _Check) -> None:
    deps = check.deps
    for module, kind in deps.module_entities.items():
        try:
            fields = {f.api_name: f for f in deps.crm.field_metadata(module)}
        except Rejected as exc:
            check.add(BLOCKING, BOTH, f"Zoho CRM {module}", f"its field list cannot be read: {exc.describe()}",
                      "check SYNCBRIDGE_ZOHO_MODULES (module API names) and the Zoho client's scopes "
                      "(ZohoCRM.settings.fields.READ)")
            continue
        except SyncError as exc:
            _outside_failure(check, "Zoho CRM", BOTH, exc, "renew SYNCBRIDGE_ZOHO_REFRESH_TOKEN")
            return   # unreachable: asking for the other modules would say the same
        _check_match_field(check, module, kind, fields)
        try:
            _check_reads(check, module, deps.mapping.from_crm(kind), fields)
        except MappingError:
            pass     # no CRM -> Ameise mapping for the kind: nothing is read
        try:
            _check_writes(check, module, deps.mapping.to_crm(kind), fields)
        except MappingError:
            pass


def _match_field_name(deps: PreflightDependencies, kind: str) -> tuple[str, str]:
    if kind == "contract":
        return deps.vertragsnummer_field, "SYNCBRIDGE_ZOHO_FIELD_VERTRAGSNUMMER"
    return deps.kundennummer_field, "SYNCBRIDGE_ZOHO_FIELD_KUNDENNUMMER"


def _check_match_field(check: _Check, module: str, kind: str, fields: dict[str, CrmField]) -> None:
    name, setting = _match_field_name(check.deps, kind)
    what = "Vertragsnummer" if kind == "contract" else "Kundennummer"
    found = fields.get(name)
    subject = f"{module}.{name}"
    if found is None:
        check.add(BLOCKING, BOTH, subject, f"the {what} field does not exist (CRM -> Ameise writes the number back "
                  "into it, Ameise -> CRM matches its upserts on it)",
                  f"create the custom field {name} in {module} as a single line (text) with 'Do not allow "
                  f"duplicate values', or name the existing one in {setting}")
        return
    if not found.duplicate_check:
        check.add(BLOCKING, [str(AMEISE_TO_CRM)], subject,
                  f"the {what} field allows duplicate values, so Zoho refuses upserts that match on it",
                  f"tick 'Do not allow duplicate values' for {name} in {module} (Setup > Modules and Fields)")
    if found.data_type not in ("text", "autonumber"):
        check.add(WARNING, BOTH, subject, f"the {what} field is of type {found.data_type}; numbers with leading "
                  "zeros and letters need a single line (text)", f"make {name} a single line (text) field")
    if found.read_only:
        check.add(BLOCKING, BOTH, subject, f"the {what} field is read-only for the API user",
                  f"give the API user write access to {module}.{name}")


def _missing(check: _Check, directions: Iterable[str], module: str, name: str, use: str) -> None:
    check.add(BLOCKING, directions, f"{module}.{name}", f"the field does not exist; the mapping {use}",
              f"create {name} in {module}, or change the mapping file (SYNCBRIDGE_MAPPING_FILE)")


def _check_reads(check: _Check, module: str, mapping: EntityMapping, fields: dict[str, CrmField]) -> None:
    direction = [str(CRM_TO_AMEISE)]
    for rule in mapping.fields:
        name = rule.crm.split(".", 1)[0]
        found = fields.get(name)
        if found is None:
            _missing(check, direction, module, name, f"reads it for Ameise's {rule.ameise}")
            continue
        if found.data_type not in READS.get(rule.type, TEXT_TYPES):
            check.add(WARNING, direction, f"{module}.{name}",
                      f"is of type {found.data_type}, the mapping reads it as {rule.type} for Ameise's {rule.ameise}; "
                      "values that do not convert are refused record by record",
                      f"change the rule's type in the mapping file or the field's type in {module}")
        if rule.values and found.data_type == "picklist":
            table = check.deps.mapping.value_tables.get(rule.values, {})
            known = {text.strip().casefold() for text in table}
            lacking = [v for v in found.pick_list_values if v != PICKLIST_NONE and v.strip().casefold() not in known]
            if lacking:
                check.add(WARNING, direction, f"{module}.{name}",
                          f"picklist values the value table {rule.values!r} has no code for: {', '.join(lacking)}; "
                          "a record with one of them is refused",
                          f"add them to [values.{rule.values}] in the mapping file, or remove them from the picklist")
    for name in mapping.customer_lookups:
        found = fields.get(name)
        if found is None:
            _missing(check, BOTH, module, name, "finds the contract's customer through it")
        elif found.data_type != "lookup":
            check.add(BLOCKING, BOTH, f"{module}.{name}", f"is of type {found.data_type}, not a lookup: the "
                      "contract's customer cannot be found through it",
                      "name a lookup field in customer_lookups of the mapping file")


def _check_writes(check: _Check, module: str, mapping: DailyUpToCrmMapping,
                  fields: dict[str, CrmField]) -> None:
    direction = [str(AMEISE_TO_CRM)]
    lookups = check.deps.lookups
    for rule in mapping.fields:
        found = fields.get(rule.crm)
        if found is None:
            _missing(check, direction, module, rule.crm, f"writes DailyUp's {rule.dailyup or 'template'} into it")
            continue
        if not _writable(check, module, found):
            continue
        if found.data_type not in WRITES.get(rule.type, TEXT_TYPES):
            hint = "" if rule.type != "decimal" or found.data_type not in WHOLE_NUMBER_TYPES else \
                " (a whole-number field refuses amounts with cents)"
            check.add(BLOCKING, direction, f"{module}.{rule.crm}",
                      f"is of type {found.data_type}, the mapping writes {rule.type} values into it{hint}; "
                      "Zoho refuses them (expected_data_type)",
                      f"change the field's type in {module}, or the rule in the mapping file")
            continue
        if rule.type != "lookup":
            if found.data_type == "picklist" and rule.type != "template":
                check.note(f"{module}.{rule.crm} is a picklist fed from DailyUp's {rule.dailyup}: its values are "
                           "only known when they arrive; a value the picklist lacks is refused record by record")
            continue
        texts = lookups.lookups(rule.table) if lookups is not None else {}
        if not texts:
            check.undelivered.append(f"{rule.table} ({module}.{rule.crm})")
            continue
        _check_values(check, module, found, sorted(set(texts.values())), f"the DailyUp list {rule.table!r}")
    for name, value in mapping.constants.items():
        found = fields.get(name)
        if found is None:
            _missing(check, direction, module, name, f"sets it to {value!r} on every record")
        elif _writable(check, module, found):
            _check_values(check, module, found, [str(value)], "the mapping's constants")
    status = check.deps.status_field
    if status:
        found = fields.get(status)
        if found is None:
            _missing(check, direction, module, status, "marks records Ameise no longer delivers in it "
                     "(SYNCBRIDGE_ZOHO_FIELD_AMEISE_STATUS)")
        elif _writable(check, module, found):
            _check_values(check, module, found, [DELETED_STATUS], "the deletion mark")


def _writable(check: _Check, module: str, found: CrmField) -> bool:
    if found.read_only:
        check.add(BLOCKING, [str(AMEISE_TO_CRM)], f"{module}.{found.api_name}", "is read-only, the mapping writes it",
                  "remove the rule from the mapping file, or make the field writable")
        return False
    return True


def _check_values(check: _Check, module: str, found: CrmField, values: list[str], source: str) -> None:
    subject = f"{module}.{found.api_name}"
    if found.data_type == "picklist":
        allowed = set(found.pick_list_values)
        lacking = [v for v in values if v not in allowed]
        if lacking:
            check.add(BLOCKING, [str(AMEISE_TO_CRM)], subject,
                      f"the picklist lacks values of {source}: {', '.join(lacking)}",
                      f"add them to the picklist {found.api_name} in {module}")
    if found.length and found.data_type in TEXT_TYPES:
        long = [v for v in values if len(v) > found.length]
        if long:
            check.add(BLOCKING, [str(AMEISE_TO_CRM)], subject,
                      f"values of {source} are longer than its {found.length} characters: {', '.join(long)}",
                      f"raise the length of {found.api_name} in {module}")


# ---------------------------------------------------------------- Ameise
def _check_ameise(check: _Check) -> None:
    deps = check.deps
    direction = [str(CRM_TO_AMEISE)]
    employee = ""
    if deps.ameise is None:
        state, detail = deps.store.tokens.status("ameise")
        if state != "active":
            check.add(BLOCKING, direction, "Ameise", f"not connected ({state}{': ' + detail if detail else ''})",
                      "run `syncbridge connect ameise`")
            return
    else:
        try:
            employee = deps.ameise.check_connection()
        except SyncError as exc:
            _outside_failure(check, "Ameise", direction, exc, "run `syncbridge connect ameise`")
            return
    if not deps.vermittler:
        check.add(WARNING, direction, "SYNCBRIDGE_AMEISE_VERMITTLER",
                  "is not set: a record whose CRM field Vermittler is empty is written without a Vermittler",
                  "set it to the Vermittler number the connected employee writes for")
    who = f"employee {employee}" if employee else "the connected employee"
    if deps.vermittler:
        check.note(f"Whether {who} may write for Vermittler {deps.vermittler} cannot be verified before a first "
                   "write: Ameise offers no call that tells. A refused write is answered 400 'Fehlerhafte anfrage!' "
                   "and dead-lettered.")
    refused = _last_write_refused(deps.store)
    if refused is not None:
        check.add(WARNING, direction, "Ameise",
                  f"the last write to Ameise was refused with 'Fehlerhafte anfrage!' ({refused}); Ameise answers so "
                  "when the Vermittler is not the employee's (or a field is unknown)",
                  "check SYNCBRIDGE_AMEISE_VERMITTLER and the CRM's Vermittler values against the employee's "
                  "Vermittler numbers in Ameise")


def _last_write_refused(store: Store) -> str | None:
    """The record of the newest CRM -> Ameise write when Ameise refused it with its HTML 400 page, else None."""
    for entry in store.activities(direction=str(CRM_TO_AMEISE), limit=50):
        if entry.action == ACTION:
            continue
        if entry.result == "ok" and entry.action in ("created", "updated"):
            return None
        if entry.result == "error" and REFUSED_VERMITTLER in (entry.error or ""):
            return f"{entry.zoho_module or ''}/{entry.zoho_id or ''}".strip("/") or "a record"
    return None


# ---------------------------------------------------------------- the recorded state
# A system entry of the activity log per change, naming its direction in details (the
# entries of a direction are the records it synced; a check is none of them).
def last_recorded(store: Store, direction: str) -> ActivityEntry | None:
    """The newest preflight entry of ``direction`` in the activity log (what its worker found)."""
    for entry in store.activities(direction=str(SYSTEM), action=ACTION, limit=100):
        if entry.details.get("direction") == direction:
            return entry
    return None


def record_preflight(store: Store, direction: str, report: PreflightReport) -> ActivityEntry | None:
    """Log the check's state for ``direction`` when it differs from the last one logged; return the new entry."""
    passes = report.passes(direction)
    error = None if passes else f"{ARROWS[direction]} paused: preflight failing: {report.summary(direction)}"
    last = last_recorded(store, direction)
    if last is not None and (last.result == "ok") == passes and last.error == error:
        return None
    findings = [asdict(f) for f in report.findings if direction in f.directions]
    return store.log(ActivityEntry(direction=str(SYSTEM), action=ACTION, result="ok" if passes else "error",
                                   error=error, details={"direction": direction, "findings": findings}))
