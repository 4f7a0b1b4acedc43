"""Synthetic DailyUp deliveries: deterministic, realistic German data, written as a stream.

Customer ``i`` (an index) has the same data in every run; what a generation ``g``
delivers is computed from ``(i, g)`` by arithmetic alone, so a delivery of a
million customers is written without holding them, and :func:`expected_delta`
says exactly what changed between two generations.

The rules, for generation ``g >= 1`` (generation 0 is the first delivery):

* ``round(N / 1000)`` (at least one) of the N first customers are deleted, in an order
  fixed by the seed, and as many new customers appear, each with its contracts;
  a deleted customer's contracts are deleted with it.
* Each customer changes one field (Telefon, Strasse or Email, fixed per customer)
  once every 200 generations, at a phase of its own: about 0.5% per delivery.
* Each contract changes Status or BeitragBrutto (with BeitragNetto) once every 100
  generations: about 1% per delivery.
* LetzterLogin and GeaendertAm move for most rows every generation; they are
  volatile columns, no change.
"""
from __future__ import annotations

import codecs
import csv
import io
import os
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, timedelta
from itertools import groupby
from math import gcd
from operator import itemgetter
from pathlib import Path

from syncbridge.deliveries import COLUMNS, CONTRACTS, CUSTOMERS, LOOKUP_TABLES

CUSTOMER_PERIOD = 200
CONTRACT_PERIOD = 100
TURNOVER = 1000          # one customer in this many is deleted, and as many appear, per generation
CHANGING_FIELDS = ("Telefon", "Strasse", "Email")

# ---------------------------------------------------------------------- lookup lists
LOOKUPS: dict[str, tuple[tuple[str, str], ...]] = {
    "gesellschaften": (
        ("1001", "Allianz Versicherungs-AG"), ("1002", "AXA Versicherung AG"),
        ("1003", "HUK-COBURG Haftpflicht-Unterstützungs-Kasse kraftfahrender Beamter Deutschlands a.G."),
        ("1004", "R+V Allgemeine Versicherung AG"), ("1005", "Württembergische Versicherung AG"),
        ("1006", "Gothaer Allgemeine Versicherung AG"), ("1007", "ERGO Versicherung AG"),
        ("1008", "Zurich Insurance plc Niederlassung für Deutschland"), ("1009", "Debeka Allgemeine Versicherung AG"),
        ("1010", "SIGNAL IDUNA Allgemeine Versicherung AG"), ("1011", "Barmenia Allgemeine Versicherungs-AG"),
        ("1012", "LVM Landwirtschaftlicher Versicherungsverein Münster a.G."),
        ("1013", "VHV Allgemeine Versicherung AG"), ("1014", "Alte Leipziger Lebensversicherung a.G."),
        ("1015", "Continentale Krankenversicherung a.G."),
        ("1016", "Die Bayerische (Bayerische Beamten Lebensversicherung a.G.)"),
    ),
    "sparten": (
        ("010", "Kfz-Haftpflicht"), ("011", "Kfz-Vollkasko"), ("012", "Kfz-Teilkasko"), ("020", "Privathaftpflicht"),
        ("021", "Tierhalterhaftpflicht"), ("022", "Haus- und Grundbesitzerhaftpflicht"), ("030", "Hausrat"),
        ("040", "Wohngebäude"), ("050", "Unfall"), ("060", "Rechtsschutz"), ("070", "Berufsunfähigkeit"),
        ("080", "Risikolebensversicherung"), ("090", "Private Rentenversicherung"),
        ("100", "Private Krankenvollversicherung"), ("110", "Krankenzusatzversicherung"),
        ("140", "Betriebshaftpflicht"), ("150", "Inhaltsversicherung (gewerblich)"),
    ),
    "vertragsstatus": (
        ("1", "aktiv"), ("2", "ruhend"), ("3", "gekündigt"), ("4", "beitragsfrei"), ("5", "storniert"),
        ("6", "Antrag"),
    ),
    "zahlweisen": (("0", "Einmalbeitrag"), ("1", "jährlich"), ("2", "halbjährlich"), ("4", "vierteljährlich"),
                   ("12", "monatlich")),
    "laender": (("DE", "Deutschland"), ("AT", "Österreich"), ("CH", "Schweiz"), ("LU", "Luxemburg"),
                ("NL", "Niederlande")),
    "rechtsformen": (
        ("01", "GmbH"), ("02", "AG"), ("03", "GmbH & Co. KG"), ("04", "e.K."), ("05", "KG"), ("06", "OHG"),
        ("07", "UG (haftungsbeschränkt)"), ("08", "GbR"), ("09", "e.V."), ("10", "eG"),
    ),
    "anreden": (("1", "Herr"), ("2", "Frau"), ("3", "Divers"), ("4", "Firma")),
}
SUFFIX_OF_RECHTSFORM = {code: text for code, text in LOOKUPS["rechtsformen"]}

# ---------------------------------------------------------------------- people and places
MALE = ("Jürgen", "Jörg", "Björn", "Sören", "Günther", "Thomas", "Michael", "Andreas", "Stefan", "Klaus",
        "Uwe", "Matthias", "Frank", "Lukas", "Jonas", "Maximilian", "Felix", "Hans-Peter", "Karl-Heinz", "Ömer")
FEMALE = ("Käthe", "Jürgina", "Sabine", "Ursula", "Monika", "Petra", "Claudia", "Anna-Lena", "Lea", "Sophie",
          "Marie", "Hannah", "Gisela", "Bärbel", "Renate", "Doris", "Jana", "Zoë", "Franziska", "Dörte")
DIVERSE = ("Kim", "Alex", "Charlie", "Robin")
LAST = ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
        "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz", "Zimmermann",
        "Braun", "Krüger", "Hofmann", "Hartmann", "Lange", "Schmitt", "Werner", "Krause", "Meier", "Lehmann",
        "Weiß", "Groß", "Köhler", "Jäger", "Böhm", "Strauß", "Meißner", "Fuß", "Günther", "Löffler",
        "Kühn", "Böttcher", "Mößner", "von Bülow", "Özdemir", "Nguyen", "Kowalski", "Weißenbäck")
STREETS = ("Hauptstraße", "Bahnhofstraße", "Schloßallee", "Am Mühlbach", "Königsweg", "Lindenstraße",
           "Gartenstraße", "Dorfstraße", "Kirchgasse", "Friedrich-Ebert-Straße", "Grüner Weg", "Mühlenstraße",
           "Rosenstraße", "Am Weißen Steg", "Goethestraße", "Schillerplatz", "Maximilianstraße", "Große Bleiche",
           "Fürstenwall", "Überseering", "An der Würm", "Ährenfeld", "Ölmühlenweg", "Straße des 17. Juni")
# (Land, PLZ, Ort, Vorwahl); PLZ keep their leading zeros.
PLACES = (
    ("DE", "01067", "Dresden", "0351"), ("DE", "04109", "Leipzig", "0341"), ("DE", "06108", "Halle (Saale)", "0345"),
    ("DE", "07743", "Jena", "03641"), ("DE", "08056", "Zwickau", "0375"), ("DE", "09111", "Chemnitz", "0371"),
    ("DE", "02625", "Bautzen", "03591"), ("DE", "03046", "Cottbus", "0355"), ("DE", "10115", "Berlin", "030"),
    ("DE", "20095", "Hamburg", "040"), ("DE", "28195", "Bremen", "0421"), ("DE", "30159", "Hannover", "0511"),
    ("DE", "40213", "Düsseldorf", "0211"), ("DE", "50667", "Köln", "0221"), ("DE", "60311", "Frankfurt am Main", "069"),
    ("DE", "70173", "Stuttgart", "0711"), ("DE", "80331", "München", "089"), ("DE", "90403", "Nürnberg", "0911"),
    ("DE", "97070", "Würzburg", "0931"), ("DE", "66111", "Saarbrücken", "0681"), ("DE", "24103", "Kiel", "0431"),
    ("DE", "18055", "Rostock", "0381"), ("DE", "99084", "Erfurt", "0361"), ("DE", "48143", "Münster", "0251"),
    ("DE", "79098", "Freiburg im Breisgau", "0761"), ("DE", "94032", "Passau", "0851"),
    ("DE", "88045", "Friedrichshafen", "07541"), ("DE", "37073", "Göttingen", "0551"),
    ("AT", "1010", "Wien", "+43 1"), ("AT", "5020", "Salzburg", "+43 662"), ("CH", "8001", "Zürich", "+41 44"),
)
DOMAINS = ("web.de", "gmx.de", "t-online.de", "gmail.com", "posteo.de", "outlook.de", "freenet.de")
BRANCHES = ("Bau", "Holzbau", "Elektrotechnik", "Logistik", "Bäckerei", "Gartenbau", "Immobilien", "Sanitär",
            "Steuerberatung", "Autohaus", "Zahntechnik", "Brauerei")
TITLES = ("Dr.", "Prof. Dr.", "Dipl.-Ing.", "Dr. med.")
ASCII = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ë": "e",
                       " ": "", "-": ""})
# Sparte -> (annual premium range in cents, typical Risiko text)
PREMIUM = {"010": (25000, 120000), "011": (30000, 180000), "012": (8000, 30000), "020": (5000, 15000),
           "021": (6000, 20000), "022": (8000, 40000), "030": (6000, 40000), "040": (30000, 250000),
           "050": (10000, 60000), "060": (20000, 60000), "070": (60000, 300000), "080": (15000, 90000),
           "090": (60000, 600000), "100": (300000, 1200000), "110": (10000, 80000), "140": (40000, 900000),
           "150": (30000, 500000)}
PLATES = ("DD", "L", "HAL", "J", "Z", "C", "BZ", "CB", "B", "HH", "HB", "H", "D", "K", "F", "S", "M", "N", "WÜ",
          "SB", "KI", "HRO", "EF", "MS", "FR", "PA", "FN", "GÖ")
PLATE_LETTERS = "ABCDEFGHKLMNPRSTUVWXYZ"

MASK = (1 << 64) - 1


def _mix(*parts: int) -> int:
    """A 64-bit hash of some integers (splitmix64 steps): the only source of variety."""
    h = 0x9E3779B97F4A7C15
    for part in parts:
        h = ((h ^ part) * 0xBF58476D1CE4E5B9) & MASK
        h = ((h ^ (h >> 31)) * 0x94D049BB133111EB) & MASK
        h ^= h >> 29
    return h


def _german(cents: int) -> str:
    """``123456`` -> ``1.234,56``."""
    euros, rest = divmod(cents, 100)
    return f"{euros:,}".replace(",", ".") + f",{rest:02d}"


def _de(day: date) -> str:
    return day.strftime("%d.%m.%Y")


class _Plan:
    """Who exists in which generation, and which version of their changing fields they show."""

    def __init__(self, customers: int, seed: int) -> None:
        if customers < 1:
            raise ValueError("a delivery needs at least one customer")
        self.n = customers
        self.seed = seed
        self.turnover = max(1, round(customers / TURNOVER))
        # A multiplier coprime with N numbers the first customers in the order they are deleted.
        step = _mix(seed, 1) % customers or 1
        while gcd(step, customers) != 1:
            step += 1
        self.step = step
        self.customer_phase = _mix(seed, 2)
        self.contract_phase = _mix(seed, 4)

    def born(self, i: int) -> int:
        return 0 if i < self.n else 1 + (i - self.n) // self.turnover

    def gone(self, i: int) -> int:
        """The generation from which customer ``i`` is deleted (new customers stay)."""
        if i >= self.n:
            return 1 << 62
        return 1 + ((i * self.step + self.seed) % self.n) // self.turnover

    def alive(self, i: int, g: int) -> bool:
        return self.born(i) <= g < self.gone(i)

    def indexes(self, g: int) -> range:
        return range(self.n + g * self.turnover)

    def kundennummer(self, i: int) -> str:
        # Multiplying by a number coprime with 10**9 spreads the numbers and keeps them distinct.
        return str(5_000_000_000 + (i * 7_919 + self.seed * 104_729) % 1_000_000_000)

    def customer_version(self, i: int, g: int) -> int:
        """How often customer ``i`` has changed by generation ``g``; it changes when this goes up."""
        return (g + (i * 7 + self.customer_phase) % CUSTOMER_PERIOD) // CUSTOMER_PERIOD

    def contract_count(self, i: int) -> int:
        # 10% none, 45% one, 30% two, 10% three, 5% four: about 1.5 each; a new customer comes with one at least.
        r = _mix(self.seed, 3, i) % 20
        count = 0 if r < 2 else 1 if r < 11 else 2 if r < 17 else 3 if r < 19 else 4
        return max(count, 1) if i >= self.n else count

    def vertragsnummer(self, i: int, j: int) -> str:
        return f"VN-{self.kundennummer(i)[1:]}-{j + 1}"

    def contract_version(self, i: int, j: int, g: int) -> int:
        # 37 is coprime with the period, so the phases of the j-th contracts spread evenly.
        return (g + (i * 37 + j * 53 + self.contract_phase) % CONTRACT_PERIOD) // CONTRACT_PERIOD


# ---------------------------------------------------------------------- rows
def _customer(plan: _Plan, i: int, g: int, day: date, hauptvermittler: str) -> dict[str, str]:
    h = _mix(plan.seed, 10, i)
    version = plan.customer_version(i, g)
    changing = CHANGING_FIELDS[h % 3]
    land, plz, ort, vorwahl = PLACES[(h >> 2) % len(PLACES)]
    nachname = LAST[(h >> 8) % len(LAST)]
    legal = (h >> 14) % 100 < 12
    kind = (h >> 21) % 100
    row = dict.fromkeys(COLUMNS[CUSTOMERS], "")
    row["Kundennummer"] = plan.kundennummer(i)
    row["Vermittlernummer"] = _vermittler(plan, i, hauptvermittler)
    row["Land"], row["PLZ"], row["Ort"] = land, plz, ort
    if legal:
        branch = BRANCHES[(h >> 36) % len(BRANCHES)]
        row["Personentyp"], row["Anrede"] = "juristisch", "4"
        rechtsform = f"{(h >> 40) % len(SUFFIX_OF_RECHTSFORM) + 1:02d}"
        if kind < 4:    # the messy ones: quotes and ``;`` in one, a line break in another
            row["Firma"] = f'{nachname} & Söhne "{branch}"; Niederlassung {ort}'
        elif kind < 8:
            row["Firma"] = f"{nachname} {branch} {SUFFIX_OF_RECHTSFORM[rechtsform]}\nZweigniederlassung {ort}"
        else:
            row["Firma"] = f"{branch} {nachname} {SUFFIX_OF_RECHTSFORM[rechtsform]}"
        if kind < 70:   # some deliver the Rechtsform as a code, others only in the name
            row["Rechtsform"] = rechtsform
        email_local = branch.translate(ASCII).lower()
        email_domain = f"{nachname.translate(ASCII).lower()}-{branch.translate(ASCII).lower()}.de"
    else:
        sex = kind % 40
        first = (DIVERSE if sex == 0 else MALE if sex % 2 else FEMALE)
        vorname = first[(h >> 36) % len(first)]
        row["Personentyp"], row["Anrede"] = "natuerlich", "3" if sex == 0 else "1" if sex % 2 else "2"
        row["Vorname"], row["Nachname"] = vorname, nachname
        title = (h >> 41) % 50
        row["Titel"] = TITLES[title] if title < len(TITLES) else ""
        row["Geburtsdatum"] = _de(date(1940, 1, 1) + timedelta(days=(h >> 44) % 23_000))
        email_local = f"{vorname.translate(ASCII).lower()}.{nachname.translate(ASCII).lower()}"
        email_domain = DOMAINS[(h >> 50) % len(DOMAINS)]
        if (h >> 53) % 10 < 6:
            row["Mobil"] = f"01{(h >> 56) % 3 + 5}{(h >> 58) % 10} {(h >> 20) % 9_000_000 + 1_000_000}"
    h2 = _mix(plan.seed, 11, i)
    street_at, house = h2 % len(STREETS), h2 >> 8
    number = f"{house % 180 + 1}" + ("a" if house % 11 == 0 else "")
    row["Strasse"] = f"{STREETS[street_at]} {number}"
    row["Telefon"] = f"{vorwahl} {(h2 >> 16) % 9_000_000 + 1_000_000}" if (h2 >> 40) % 10 < 8 else ""
    row["Email"] = f"{email_local}@{email_domain}" if (h2 >> 44) % 10 < 8 else ""
    if version:
        if changing == "Telefon":
            row["Telefon"] = f"{vorwahl} {((h2 >> 16) + version * 7_919) % 9_000_000 + 1_000_000}"
        elif changing == "Strasse":
            row["Strasse"] = f"{STREETS[(street_at + version) % len(STREETS)]} {number}"
        else:
            row["Email"] = f"{email_local}.{version}@{email_domain}"
    if (h2 >> 48) % 10 < 4:
        row["BenutzernameSimplr"] = f"{row['Kundennummer'][-6:]}.{email_local[:12]}"
        row["LetzterLogin"] = _de(day - timedelta(days=_mix(plan.seed, 12, i, g) % 90))
    row["GeaendertAm"] = _de(day - timedelta(days=_mix(plan.seed, 13, i, g) % 400))
    return row


def _contract(plan: _Plan, i: int, j: int, g: int, day: date, vermittler: str) -> dict[str, str]:
    h = _mix(plan.seed, 20, i, j)
    version = plan.contract_version(i, j, g)
    sparten = LOOKUPS["sparten"]
    sparte = sparten[h % len(sparten)][0]
    low, high = PREMIUM[sparte]
    brutto = low + (h >> 8) % (high - low)
    status = "1" if (h >> 30) % 10 < 8 else ("2", "3", "4", "6")[(h >> 34) % 4]
    if version and (h >> 36) % 2:
        brutto += version * 1_234
    elif version:
        status = str((int(status) - 1 + version) % 6 + 1)
    beginn = date(1998, 1, 1) + timedelta(days=(h >> 38) % 10_500)
    row = dict.fromkeys(COLUMNS[CONTRACTS], "")
    row["Vertragsnummer"] = plan.vertragsnummer(i, j)
    row["Kundennummer"] = plan.kundennummer(i)
    row["Versicherungsscheinnummer"] = (f"{sparte[:2]} {(h >> 12) % 90_000 + 10_000}/"
                                        f"{(h >> 28) % 9_000 + 1_000}-{h % 97:02d}")
    row["Gesellschaft"] = LOOKUPS["gesellschaften"][(h >> 52) % len(LOOKUPS["gesellschaften"])][0]
    row["Sparte"], row["Status"] = sparte, status
    row["BeitragBrutto"] = _german(brutto)
    row["BeitragNetto"] = _german(round(brutto / 1.19))     # without 19% Versicherungsteuer
    row["Zahlweise"] = ("1", "12", "4", "2", "0")[(h >> 56) % 5]
    row["Beginn"] = _de(beginn)
    if sparte in ("070", "080", "090"):
        row["Ablauf"] = _de(beginn.replace(year=beginn.year + 25, day=1))
    if sparte.startswith("01"):
        letters = PLATE_LETTERS[(h >> 24) % len(PLATE_LETTERS)] + PLATE_LETTERS[(h >> 29) % len(PLATE_LETTERS)]
        row["Risiko"] = f"{PLATES[(h >> 20) % len(PLATES)]}-{letters} {(h >> 40) % 9_000 + 1}"
    elif sparte in ("030", "040"):
        row["Risiko"] = ('Hausrat; Keller "trocken"\n2. OG links' if (h >> 44) % 25 == 0
                         else f"{STREETS[(h >> 44) % len(STREETS)]} {(h >> 48) % 90 + 1}")
    row["Vermittlernummer"] = vermittler
    row["GeaendertAm"] = _de(day - timedelta(days=_mix(plan.seed, 21, i, j, g) % 700))
    return row


def generation_rows(customers: int, generation: int, seed: int = 7, *, hauptvermittler: str = "100200",
                    first_day: date = date(2026, 11, 2)) -> Iterator[tuple[str, dict[str, str]]]:
    """The rows of one generation as ``(table, {column: CSV text})``: customers, contracts, then lookup lists."""
    plan = _Plan(customers, seed)
    day = first_day + timedelta(days=generation)

    def alive() -> Iterator[int]:
        return (i for i in plan.indexes(generation) if plan.alive(i, generation))

    for i in alive():
        yield CUSTOMERS, _customer(plan, i, generation, day, hauptvermittler)
    for i in alive():
        vermittler = _vermittler(plan, i, hauptvermittler)
        for j in range(plan.contract_count(i)):
            yield CONTRACTS, _contract(plan, i, j, generation, day, vermittler)
    for table in LOOKUP_TABLES:
        for code, text in LOOKUPS[table]:
            yield table, {"ID": code, "Text": text}


def _vermittler(plan: _Plan, i: int, hauptvermittler: str) -> str:
    """The broker of customer ``i`` and its contracts: mostly the main broker, else one of its sub-brokers."""
    h = _mix(plan.seed, 14, i)
    return hauptvermittler if h % 10 < 7 else f"{hauptvermittler}-{(h >> 8) % 12 + 1:02d}"


def expected_delta(customers: int, generation: int, seed: int = 7) -> dict[str, dict[str, set[str]]]:
    """What generation ``generation`` changed against the one before, by entity and change.

    Generation 0 is compared with nothing: everything in it is created.
    """
    plan = _Plan(customers, seed)
    g = generation
    delta: dict[str, dict[str, set[str]]] = {
        entity: {"created": set(), "changed": set(), "deleted": set()} for entity in ("customer", "contract")}
    for i in plan.indexes(g):
        before, now = g > 0 and plan.alive(i, g - 1), plan.alive(i, g)
        if not before and not now:
            continue
        change = "created" if now and not before else "deleted" if before and not now else None
        contracts = range(plan.contract_count(i))
        if change:
            delta["customer"][change].add(plan.kundennummer(i))
            delta["contract"][change].update(plan.vertragsnummer(i, j) for j in contracts)
            continue
        if plan.customer_version(i, g) != plan.customer_version(i, g - 1):
            delta["customer"]["changed"].add(plan.kundennummer(i))
        delta["contract"]["changed"].update(plan.vertragsnummer(i, j) for j in contracts
                                            if plan.contract_version(i, j, g) != plan.contract_version(i, j, g - 1))
    return delta


# ---------------------------------------------------------------------- files
def write_delivery(target_dir: str | os.PathLike[str], *, customers: int, generation: int = 0,
                   hauptvermittler: str = "100200", first_day: date = date(2026, 11, 2), seed: int = 7,
                   encoding: str = "utf-8", bom: bool = False) -> Path:
    """Write ``DailyUp_{hauptvermittler}_{first_day + generation days}.zip`` into ``target_dir``; return its path.

    ``bom`` starts the UTF-8 files with a byte order mark (no effect on other encodings).
    The file appears whole: it is written under a hidden name and renamed.
    """
    day = first_day + timedelta(days=generation)
    path = Path(target_dir) / f"DailyUp_{hauptvermittler}_{day:%Y%m%d}.zip"
    partial = path.with_name(f".{path.name}.part")
    text_encoding = "utf-8-sig" if bom and codecs.lookup(encoding).name == "utf-8" else encoding
    stamp = (day.year, day.month, day.day, 5, 30, 0)
    rows = generation_rows(customers, generation, seed, hauptvermittler=hauptvermittler, first_day=first_day)
    try:
        with zipfile.ZipFile(partial, "w") as archive:
            for table, group in groupby(rows, key=itemgetter(0)):
                # Fixed time stamps: the same arguments give the same bytes, so a repeated delivery is one.
                info = zipfile.ZipInfo(f"{table}.csv", date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(info, "w", force_zip64=True) as member, \
                        io.TextIOWrapper(member, encoding=text_encoding, newline="") as text:
                    writer = csv.writer(text, delimiter=";", lineterminator="\r\n")
                    columns = COLUMNS[table]
                    writer.writerow(columns)
                    writer.writerows([row[c] for c in columns] for _, row in group)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[str] | Mapping[str, str]], *, encoding: str = "utf-8",
              bom: bool = False, delimiter: str = ";", line_end: str = "\r\n") -> bytes:
    """A CSV file's bytes: header and rows (lists, or dicts by column name) in ``encoding``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=line_end)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(c, "") for c in header] if isinstance(row, Mapping) else row)
    return (codecs.BOM_UTF8 if bom else b"") + buffer.getvalue().encode(encoding)


def write_zip(path: str | os.PathLike[str], members: Mapping[str, bytes]) -> Path:
    """Write a ZIP holding exactly these members (name -> bytes), for hand-made deliveries."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path
