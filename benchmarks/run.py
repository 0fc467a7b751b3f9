"""crmkit against raw baselines, in one run, on the same rows.

    make bench            # 100,000 organizations, best of 3 rounds
    python benchmarks/run.py --rows 20000 --repeat 5
    python benchmarks/run.py --only import      # one section (bulk, dedupe, import, forecast)

Machines are shared, so the numbers that matter are the ratios printed at the
end, not the absolute times.  Every contender writes to its own fresh SQLite
file with the same pragmas crmkit uses (WAL, synchronous=FULL, foreign keys).

Bulk create (per organization: name, tax id, market, zone, one e-mail, one phone):

* raw ``sqlite3.executemany`` of prepared rows (no validation);
* SQLAlchemy Core ``insert()`` executemany of the same rows (no validation);
* the floor: validating the same e-mails and phones with the same libraries
  crmkit uses (email-validator, phonenumbers) + the Core executemany;
* ``crm.organizations.bulk_create``: validation, versioning and audit included.

Get (a contact by id, with its organization):

* a raw indexed ``sqlite3`` SELECT joining contact and organization;
* ``crm.contacts.get`` + ``crm.organizations.get``.

Duplicates (the book of :func:`crmkit.testing.duplicates.planted_contacts`,
5% planted near-duplicates; recall and precision against the planted pairs):

* the baseline: a plain script, lower-cased blocking keys (e-mail, last nine
  phone digits, sorted name words) and rapidfuzz ``token_sort_ratio`` >= 85
  plus a shared e-mail or phone;
* crmkit's pure core: profiles, blocking, comparisons, EM fit, decision.

Forecast (a :class:`~crmkit.core.analytics.Book` built in memory: open
deals of random age, stage, amount and close date, plus a fifth as many
closed deals of history, in the ``sales`` pipeline; best of ``--repeat``):

* ``crmkit.core.forecast.forecast``: P10/P50/P90 of the next quarter, with
  the default 2,000 simulations and 100 bootstrap replicates; the target is
  under 2 s for 100,000 open deals.

Analytics (``--opportunities`` of the sales pipeline in one SQLite file, 50
owners, three years of expected close dates; the rows are crmkit's own encoding
of real opportunities, written with one executemany):

* a hand-written ``GROUP BY owner_id, month`` on the file (weighted in floats);
* ``crm.analytics.pipeline(by=("owner", "month"))``: the same groups computed
  by SQLite, exact to the cent.

Frames: ``crm.opportunities.to_pandas()`` against ``pandas.read_sql`` of the
same columns from the same file (the table columns storing the frame's
fields: every field but the stage history); then, for information, both
with every field (``to_pandas(columns=...)`` with the stage history, decoded
per row, against ``read_sql`` of every column).

CSV import (organizations, then two contacts each pointing at its
organization by external_ref; best of ``--repeat`` rounds, each contender on
a fresh database file):

* the floor: reading the files with ``csv``, validating the e-mails and phones
  with the same libraries, raw ``sqlite3.executemany`` in batches of 1,000;
* ``crm.imports.csv``: mapping, domain validation, versions, audit, upsert by
  external_ref and matching keys included.

Import memory: the peak resident memory (``ru_maxrss``) of a fresh process
importing 10,000 and ``--import-rows`` organizations (with twice as many
contacts); a streaming import peaks at about the same at both sizes.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import random
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import phonenumbers
import sqlalchemy as sa
from email_validator import validate_email
from rapidfuzz.fuzz import token_sort_ratio

import crmkit
from crmkit import Money
from crmkit.core.analytics import Book
from crmkit.core.duplicates import contact_spec, find_duplicates
from crmkit.core.entities import LossReason
from crmkit.core.forecast import forecast
from crmkit.core.ids import LossReasonId, OpportunityId, uuid7
from crmkit.core.opportunities import Opportunity
from crmkit.core.pipelines import StageKind
from crmkit.core.transitions import hold, lose, open_opportunity, win
from crmkit.frames import frame_fields
from crmkit.plugins.builtin_pipelines import SALES
from crmkit.serialization import converter
from crmkit.stores.schema import TABLES, EntityCodec
from crmkit.stores.sql import _compiled  # the bench writes rows with the store's own writer
from crmkit.testing.duplicates import PlantedBook, planted_contacts

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
)


def make_rows(n: int) -> list[dict[str, Any]]:
    """The same organizations for every contender."""
    rng = random.Random(42)
    rows = []
    for i in range(n):
        rows.append(
            {
                "name": f"Empresa {i} S.L.",
                "tax_id": f"B{i:08d}",
                "market": rng.choice(["retail", "industria"]),
                "zone": rng.choice(["norte", "sur"]),
                "email": f"info{i}@empresa{i}.es",
                "phone": f"+34 91{rng.randrange(10**7):07d}",
            }
        )
    return rows


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _sqlite(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return conn


_DDL = (
    "CREATE TABLE orgs (id CHAR(32) PRIMARY KEY, version INTEGER NOT NULL, name TEXT NOT NULL, "
    "tax_id TEXT, market_id CHAR(32), zone_id CHAR(32), email TEXT, phone TEXT, "
    "created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL)"
)


def raw_sqlite(path: Path, rows: list[dict[str, Any]], masters: dict[str, str]) -> float:
    conn = _sqlite(path)
    conn.execute(_DDL)
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
    params = [
        (
            uuid.uuid4().hex,
            1,
            r["name"],
            r["tax_id"],
            masters[r["market"]],
            masters[r["zone"]],
            r["email"],
            r["phone"],
            now,
            now,
        )
        for r in rows
    ]

    def run() -> None:
        for start in range(0, len(params), 1000):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO orgs VALUES (?,?,?,?,?,?,?,?,?,?)", params[start : start + 1000]
            )
            conn.execute("COMMIT")

    return timed(run)


def _core_table() -> tuple[sa.MetaData, sa.Table]:
    md = sa.MetaData()
    table = sa.Table(
        "orgs",
        md,
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("tax_id", sa.Text()),
        sa.Column("market_id", sa.Uuid()),
        sa.Column("zone_id", sa.Uuid()),
        sa.Column("email", sa.Text()),
        sa.Column("phone", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    return md, table


def core_engine(path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{path}")

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi: Any, _: Any) -> None:
        dbapi.isolation_level = None
        for pragma in PRAGMAS:
            dbapi.execute(pragma)

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def core_insert(
    path: Path, rows: list[dict[str, Any]], masters: dict[str, str], validate: bool
) -> float:
    engine = core_engine(path)
    md, table = _core_table()
    md.create_all(engine)
    ids = {k: uuid.UUID(v) for k, v in masters.items()}

    def run() -> None:
        now = datetime.now(UTC).replace(tzinfo=None)
        batch: list[dict[str, Any]] = []
        for r in rows:
            email, phone = r["email"], r["phone"]
            if validate:
                email = validate_email(email, check_deliverability=False).normalized
                number = phonenumbers.parse(phone, "ES")
                if not (
                    phonenumbers.is_possible_number(number) and phonenumbers.is_valid_number(number)
                ):
                    raise ValueError(phone)
                phone = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            batch.append(
                {
                    "id": uuid.uuid4(),
                    "version": 1,
                    "name": r["name"],
                    "tax_id": r["tax_id"],
                    "market_id": ids[r["market"]],
                    "zone_id": ids[r["zone"]],
                    "email": email,
                    "phone": phone,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if len(batch) == 1000:
                with engine.begin() as conn:
                    conn.execute(table.insert(), batch)
                batch = []
        if batch:
            with engine.begin() as conn:
                conn.execute(table.insert(), batch)

    elapsed = timed(run)
    engine.dispose()
    return elapsed


def crmkit_bulk(path: Path, rows: list[dict[str, Any]]) -> float:
    with crmkit.open(path, default_region="ES", seed_masters=False) as crm:
        for key in ("retail", "industria"):
            crm.markets.create(name=key.title(), key=key)
        for key in ("norte", "sur"):
            crm.zones.create(name=key.title(), key=key)
        items = [
            {
                "name": r["name"],
                "tax_id": r["tax_id"],
                "market": r["market"],
                "zone": r["zone"],
                "emails": [r["email"]],
                "phones": [r["phone"]],
            }
            for r in rows
        ]
        return timed(lambda: crm.organizations.bulk_create(items))


def bench_get(path: Path, lookups: int) -> tuple[float, float]:
    with crmkit.open(path, default_region="ES", seed_masters=False) as crm:
        orgs = crm.organizations.bulk_create([{"name": f"Org {i}"} for i in range(2000)])
        contacts = crm.contacts.bulk_create(
            [
                {
                    "first_name": f"Ana {i}",
                    "organization": orgs[i % 2000].id,
                    "email": f"ana{i}@org.es",
                }
                for i in range(2000)
            ]
        )
        ids = [c.id for c in contacts]
        rng = random.Random(1)
        picks = [rng.choice(ids) for _ in range(lookups)]

        def via_crmkit() -> None:
            for cid in picks:
                contact = crm.contacts.get(cid)
                assert contact.organization_id is not None
                crm.organizations.get(contact.organization_id)

        conn = _sqlite(path)
        sql = (
            "SELECT c.*, o.* FROM contacts c JOIN organizations o ON o.id = c.organization_id "
            "WHERE c.id = ?"
        )
        hexes = [cid.hex for cid in picks]

        def via_raw() -> None:
            for h in hexes:
                row = conn.execute(sql, (h,)).fetchone()
                assert row is not None

        via_raw()  # warm both
        via_crmkit()
        raw = min(timed(via_raw) for _ in range(3))
        ours = min(timed(via_crmkit) for _ in range(3))
        conn.close()
        return raw, ours


Pairs = set[frozenset[uuid.UUID]]


def baseline_dedupe(book: PlantedBook) -> Pairs:
    """A plain blocking + rapidfuzz script, with hand-picked rules."""
    records = []
    blocks: dict[str, list[int]] = {}
    for i, c in enumerate(book.contacts):
        name = f"{c.first_name} {c.last_name}".lower()
        email = c.email.lower() if c.email else None
        phones = {re.sub(r"\D", "", p)[-9:] for p in c.phones}
        records.append((c.id, name, email, phones))
        keys = [f"p{p}" for p in phones] + ["n" + " ".join(sorted(name.split()))]
        if email:
            keys.append(f"e{email}")
        for key in keys:
            blocks.setdefault(key, []).append(i)
    pairs: set[tuple[int, int]] = set()
    for members in blocks.values():
        if 1 < len(members) <= 100:
            pairs.update(itertools.combinations(members, 2))
    found: Pairs = set()
    for i, j in pairs:
        a, b = records[i], records[j]
        shared = (a[2] is not None and a[2] == b[2]) or bool(a[3] & b[3])
        if shared and token_sort_ratio(a[1], b[1]) >= 85:
            found.add(frozenset((a[0], b[0])))
    return found


def crmkit_dedupe(book: PlantedBook) -> Pairs:
    """crmkit's pure core on the same raw records."""
    return find_duplicates(contact_spec(), book.profiles()).pairs()


def bench_dedupe(rows: int, repeat: int) -> tuple[float, float]:
    """Print each contender's time, recall and precision; return both times."""
    book = planted_contacts(rows)
    print(f"duplicates among {rows:,} contacts, 5% planted")
    times = {}
    for name, run in (
        ("baseline blocking + rapidfuzz", baseline_dedupe),
        ("crmkit", crmkit_dedupe),
    ):
        found: Pairs = set()
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            found = run(book)
            best = min(best, time.perf_counter() - start)
        hits = len(found & book.duplicates)
        recall = hits / len(book.duplicates)
        precision = hits / len(found) if found else 0.0
        print(f"  {name:<30} {best:8.2f} s  recall {recall:.4f}  precision {precision:.4f}")
        times[name] = best
    return times["baseline blocking + rapidfuzz"], times["crmkit"]


# ------------------------------------------------------------------- import


def write_import_files(d: Path, orgs: int) -> tuple[Path, Path]:
    """A CSV of ``orgs`` organizations and one of two contacts for each."""
    rng = random.Random(7)
    org_path, contact_path = d / "orgs.csv", d / "contacts.csv"
    with org_path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["external_ref", "name", "tax_id", "emails", "phones"])
        for i in range(orgs):
            phone = f"+34 91{rng.randrange(10**7):07d}"
            out.writerow([f"O{i}", f"Empresa {i} S.L.", f"B{i:08d}", f"info@empresa{i}.es", phone])
    with contact_path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["external_ref", "first_name", "last_name", "email", "phones", "organization"])
        for i in range(2 * orgs):
            phone = f"+34 6{rng.randrange(10**8):08d}"
            out.writerow(
                [f"C{i}", f"Ana{i}", f"Ruiz{i}", f"ana{i}@empresa{i // 2}.es", phone, f"O{i // 2}"]
            )
    return org_path, contact_path


def floor_import(path: Path, org_path: Path, contact_path: Path) -> float:
    """Read with ``csv``, validate e-mails and phones, raw ``sqlite3.executemany``."""

    def valid(email: str, phone: str) -> tuple[str, str]:
        number = phonenumbers.parse(phone, "ES")
        if not (phonenumbers.is_possible_number(number) and phonenumbers.is_valid_number(number)):
            raise ValueError(phone)
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return validate_email(email, check_deliverability=False).normalized, e164

    def load(conn: sqlite3.Connection, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == 1000:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(sql, batch)
                conn.execute("COMMIT")
                batch = []
        if batch:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, batch)
            conn.execute("COMMIT")

    def run() -> None:
        conn = _sqlite(path)
        conn.execute(
            "CREATE TABLE orgs (id CHAR(32) PRIMARY KEY, ref TEXT UNIQUE, name TEXT NOT NULL, "
            "tax_id TEXT, email TEXT, phone TEXT)"
        )
        conn.execute(
            "CREATE TABLE contacts (id CHAR(32) PRIMARY KEY, ref TEXT UNIQUE, first TEXT, "
            "last TEXT, email TEXT, phone TEXT, org_id CHAR(32) REFERENCES orgs (id))"
        )
        ids: dict[str, str] = {}

        def orgs() -> Iterator[tuple[Any, ...]]:
            with org_path.open(newline="", encoding="utf-8") as f:
                for r in csv.DictReader(f):
                    ids[r["external_ref"]] = uuid.uuid4().hex
                    email, phone = valid(r["emails"], r["phones"])
                    yield (
                        ids[r["external_ref"]],
                        r["external_ref"],
                        r["name"],
                        r["tax_id"],
                        email,
                        phone,
                    )

        def contacts() -> Iterator[tuple[Any, ...]]:
            with contact_path.open(newline="", encoding="utf-8") as f:
                for r in csv.DictReader(f):
                    email, phone = valid(r["email"], r["phones"])
                    org = ids[r["organization"]]
                    yield (
                        uuid.uuid4().hex,
                        r["external_ref"],
                        r["first_name"],
                        r["last_name"],
                        email,
                        phone,
                        org,
                    )

        load(conn, "INSERT INTO orgs VALUES (?, ?, ?, ?, ?, ?)", orgs())
        load(conn, "INSERT INTO contacts VALUES (?, ?, ?, ?, ?, ?, ?)", contacts())
        conn.close()

    return timed(run)


def crmkit_import(path: Path, org_path: Path, contact_path: Path) -> float:
    """``crm.imports.csv`` of both files: mapping, domain validation, audit, dedupe keys."""
    with crmkit.open(path, default_region="ES", seed_masters=False) as crm:

        def run() -> None:
            for file, entity in ((org_path, "organizations"), (contact_path, "contacts")):
                report = crm.imports.csv(file, entity=entity)
                assert not report.errors, report.errors[:3]

        return timed(run)


def import_memory(d: Path, orgs: int) -> float:
    """The peak resident memory (MB) of a fresh process importing ``orgs``
    organizations and their contacts."""
    write_import_files(d, orgs)
    probe = [sys.executable, __file__, "--probe-import-memory", str(d), str(orgs)]
    result = subprocess.run(probe, check=True, capture_output=True, text=True)
    return float(result.stdout.split()[-1])


def _probe_import_memory(d: Path, orgs: int) -> None:
    """Print this process's peak resident memory (MB) once it imported the files."""
    org_path, contact_path = d / "orgs.csv", d / "contacts.csv"
    with crmkit.open(d / f"memory-{orgs}.db", default_region="ES", seed_masters=False) as crm:
        for file, entity in ((org_path, "organizations"), (contact_path, "contacts")):
            report = crm.imports.csv(file, entity=entity)
            assert not report.errors, report.errors[:3]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{peak / 1024:.1f}")  # ru_maxrss is in KiB on Linux


def bench_import(d: Path, orgs: int, repeat: int) -> tuple[float, float]:
    """The floor's and crmkit's best times (of ``repeat`` rounds, on fresh files) for
    ``orgs`` organizations and twice as many contacts."""
    org_path, contact_path = write_import_files(d, orgs)
    print(f"CSV import of {orgs:,} organizations and {2 * orgs:,} contacts (SQLite)")
    floors: list[float] = []
    ours: list[float] = []
    for attempt in range(repeat):  # rounds interleave the contenders, as in bulk
        floors.append(floor_import(d / f"import-floor-{attempt}.db", org_path, contact_path))
        ours.append(crmkit_import(d / f"import-crmkit-{attempt}.db", org_path, contact_path))
    floor, best = min(floors), min(ours)
    rounds = ", ".join(f"{o / f:.2f}x" for f, o in zip(floors, ours, strict=True))
    print(f"  floor (csv + validation + raw sqlite3)  {floor:8.2f} s")
    print(f"  crmkit imports.csv                      {best:8.2f} s")
    print(f"  ratio crmkit / floor             {best / floor:8.2f}x   (target <= 1.5x)")
    print(f"  (each round: {rounds})")
    return floor, best


# ---------------------------------------------------------------- analytics

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
OWNERS = 50


class _Clock:
    now = T0

    def __call__(self) -> datetime:
        return self.now


def _prototypes(crm: crmkit.CRM, owner: uuid.UUID) -> list[Opportunity]:
    """One real opportunity per state of the sales pipeline, opened and moved at T0."""
    pipe = crm.pipelines.get("sales")
    reason = crm.loss_reasons.create(key="bench-price", name="Price")
    fields: dict[str, Any] = {
        "name": "Deal",
        "amount": Money("1", "EUR"),
        "expected_close": date(2027, 1, 1),
        "owner_id": owner,
    }

    def opened(stage: str) -> Opportunity:
        return open_opportunity(
            pipe, id=OpportunityId(uuid7()), now=T0, by=None, stage=stage, **fields
        )[0]

    protos = [opened(s.key) for s in pipe.of_kind(StageKind.OPEN)]
    protos += [opened(s.key) for s in pipe.of_kind(StageKind.OPEN)]  # open deals: 2/3
    protos.append(hold(opened("lead"), pipe, now=T0, by=None)[0])
    protos.append(win(opened("negotiation"), pipe, now=T0, by=None)[0])
    protos.append(lose(opened("lead"), pipe, reason=reason, note=None, now=T0, by=None)[0])
    return protos


def _insert_rebuilding_indexes(path: Path, insert: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` into opportunities, building its indexes once at the end."""
    conn = _sqlite(path)
    conn.execute("PRAGMA synchronous=OFF")  # a bench file: build it fast
    indexes = [
        (name, ddl)
        for name, ddl in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = 'opportunities' AND sql IS NOT NULL"
        )
    ]
    conn.execute("BEGIN")
    for name, _ in indexes:  # built once at the end: faster than row by row
        conn.execute(f'DROP INDEX "{name}"')
    conn.executemany(insert, rows)
    for _, ddl in indexes:
        conn.execute(ddl)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def build_opportunities(path: Path, n: int) -> None:
    """``n`` opportunities written as crmkit writes them, in one executemany.

    Each row is a prototype's insert parameters (from the store's own row
    writer) with the id, amount, owner and expected close replaced by values
    bound the same way; a sample is read back through crmkit and compared.
    """
    clock = _Clock()
    with crmkit.open(path, clock=clock, seed_masters=False) as crm:
        owners = [crm.users.create(name=f"Rep {i}").id for i in range(OWNERS)]
        protos = _prototypes(crm, owners[0])
        table = TABLES[Opportunity]
        dialect = sa.create_engine("sqlite://").dialect
        compiled = _compiled(table, dialect)  # the statement and writer add_many uses
        write = compiled.writer(EntityCodec(Opportunity))
        order = [compiled.insert_names[i] for i in compiled.insert_order]
        binds = dict(zip(compiled.insert_names, compiled.binds, strict=True))
        at = {
            name: order.index(name)
            for name in (
                "id",
                "amount_minor",
                "owner_id",
                "expected_close",
                "created_at",
                "updated_at",
                "closed_at",
                "history",
            )
        }

        def bound(name: str, value: object) -> object:
            bind = binds[name]
            return value if bind is None else bind(value)

        owner_values = [bound("owner_id", o) for o in owners]
        days = [date(2026, 1, 1) + timedelta(days=d) for d in range(3 * 365)]
        day_values = [bound("expected_close", d) for d in days]
        templates = [list(write(p)) for p in protos]
        rng = random.Random(7)
        rows: list[tuple[Any, ...]] = []
        sample: list[tuple[int, int, int, int, OpportunityId, datetime]] = []
        t0_json = json.dumps(converter.unstructure(T0))
        for i in range(n):
            t, minor = rng.randrange(len(templates)), rng.randrange(10_000, 10_000_000)
            o, d = rng.randrange(OWNERS), rng.randrange(len(days))
            # each deal opened (and moved) at its own moment of the past year
            when = T0 - timedelta(seconds=rng.randrange(365 * 86_400), microseconds=i % 997)
            moment = bound("created_at", when)
            row = templates[t].copy()
            oid = OpportunityId(uuid7())
            row[at["id"]] = bound("id", oid)
            row[at["amount_minor"]] = minor
            row[at["owner_id"]] = owner_values[o]
            row[at["expected_close"]] = day_values[d]
            row[at["created_at"]] = row[at["updated_at"]] = moment
            if row[at["closed_at"]] is not None:
                row[at["closed_at"]] = moment
            row[at["history"]] = row[at["history"]].replace(
                t0_json, json.dumps(converter.unstructure(when))
            )
            rows.append(tuple(row))
            if i % max(1, n // 5) == 0:
                sample.append((t, minor, o, d, oid, when))
        _insert_rebuilding_indexes(path, compiled.insert_sql, rows)
        for t, minor, o, d, oid, when in sample:  # crmkit reads what it would have written
            proto = protos[t]
            expected = attrs.evolve(
                proto,
                id=oid,
                amount=Money.from_minor_units(minor, "EUR"),
                owner_id=owners[o],
                expected_close=days[d],
                created_at=when,
                updated_at=when,
                closed_at=None if proto.closed_at is None else when,
                history=tuple(attrs.evolve(c, at=when) for c in proto.history),
            )
            assert crm.opportunities.get(oid) == expected, "the bench rows are not crmkit's"


_HAND_WRITTEN = (
    "SELECT owner_id, substr(expected_close, 1, 7) AS month, count(*), sum(amount_minor), "
    "sum(amount_minor * CAST(probability AS REAL)) FROM opportunities "
    "WHERE archived = 0 AND status IN ('open', 'on_hold') AND amount_currency = 'EUR' "
    "GROUP BY owner_id, month"
)


def bench_analytics(path: Path, repeat: int) -> tuple[float, float, int]:
    """Best-of times: the hand-written GROUP BY, and crm.analytics.pipeline on the same file."""
    conn = _sqlite(path)
    clock = _Clock()
    clock.now = T0 + timedelta(days=1)
    with crmkit.open(path, clock=clock, seed_masters=False) as crm:
        best_sql = best_ours = float("inf")
        groups = 0
        for _ in range(repeat):
            best_sql = min(best_sql, timed(lambda: conn.execute(_HAND_WRITTEN).fetchall()))
            start = time.perf_counter()
            report = crm.analytics.pipeline(currency="EUR", by=("owner", "month"))
            best_ours = min(best_ours, time.perf_counter() - start)
            groups = len(report.rows)
        expected = {(r[0], r[1]): (r[2], r[3]) for r in conn.execute(_HAND_WRITTEN)}
        assert groups == len(expected), "crmkit and the hand-written SQL disagree"
    conn.close()
    return best_sql, best_ours, groups


_FILES: dict[int, Path] = {}


def opportunity_file(d: Path, n: int) -> Path:
    """The file of ``n`` opportunities, built once per run."""
    if n not in _FILES:
        path = d / f"opportunities-{n}.db"
        seconds = timed(lambda: build_opportunities(path, n))
        print(f"  (built {n:,} opportunities in {seconds:.1f} s)")
        _FILES[n] = path
    return _FILES[n]


def bench_analytics_section(args: argparse.Namespace) -> None:
    """Weighted pipeline by owner x month: crmkit against a hand-written GROUP BY."""
    n = args.opportunities
    print(f"weighted pipeline by owner x month over {n:,} opportunities (SQLite)")
    sql, ours, groups = bench_analytics(opportunity_file(args.workdir, n), args.repeat)
    print(f"  hand-written SQL GROUP BY       {sql:8.3f} s   ({groups:,} groups)")
    print(f"  crmkit analytics.pipeline       {ours:8.3f} s")
    print(f"  ratio crmkit / SQL              {ours / sql:8.2f}x   (target <= 1.5x)")
    print(f"RESULT analytics_ratio={ours / sql:.2f}")


def bench_frames(
    path: Path, repeat: int, fields: tuple[str, ...] | None = None
) -> tuple[float, float, int]:
    """Best-of times: pandas.read_sql of the frame's columns, and to_pandas() of the same rows.

    ``fields``: the frame's fields (``columns=``), or None for the default
    frame; the baseline reads exactly the table columns storing them.
    """
    import pandas as pd

    shown = frame_fields(Opportunity, fields)
    columns = ", ".join(EntityCodec(Opportunity).column_names(shown))
    select = f"SELECT {columns} FROM opportunities WHERE archived = 0 ORDER BY id"
    engine = sa.create_engine(f"sqlite:///{path}")
    clock = _Clock()
    clock.now = T0 + timedelta(days=1)
    best_sql = best_ours = float("inf")
    rows = 0
    with crmkit.open(path, clock=clock, seed_masters=False) as crm, engine.connect() as conn:
        for attempt in range(repeat):
            sql = timed(lambda: pd.read_sql(sa.text(select), conn))
            start = time.perf_counter()
            frame = crm.opportunities.to_pandas(columns=fields)
            ours = time.perf_counter() - start
            best_sql, best_ours = min(best_sql, sql), min(best_ours, ours)
            print(
                f"  round {attempt + 1}: read_sql {sql:6.2f} s, "
                f"crmkit {ours:6.2f} s  {ours / sql:.2f}x"
            )
            rows = len(frame)
            del frame
    engine.dispose()
    return best_sql, best_ours, rows


def bench_frames_section(args: argparse.Namespace) -> None:
    """to_pandas() of every opportunity against pandas.read_sql of the same columns."""
    n = args.opportunities
    path = opportunity_file(args.workdir, n)
    print(f"to_pandas() of {n:,} opportunities (SQLite)")
    sql, ours, rows = bench_frames(path, args.repeat)
    print(f"  pandas.read_sql of the columns  {sql:8.3f} s   ({rows:,} rows)")
    print(f"  crmkit opportunities.to_pandas  {ours:8.3f} s")
    print(f"  ratio crmkit / read_sql         {ours / sql:8.2f}x   (target <= 1.5x)")
    everything = tuple(f.name for f in attrs.fields(Opportunity))
    full_sql, full_ours, _ = bench_frames(path, args.repeat, everything)
    print("  with every field (columns= adds the stage history, decoded per row):")
    print(f"  pandas.read_sql of the columns  {full_sql:8.3f} s")
    print(f"  crmkit to_pandas(columns=...)   {full_ours:8.3f} s")
    print(f"  ratio crmkit / read_sql         {full_ours / full_sql:8.2f}x   (no target)")
    print(
        f"RESULT frames_ratio={ours / sql:.2f} frames_all_fields_ratio={full_ours / full_sql:.2f}"
    )


def bench_bulk_section(args: argparse.Namespace) -> None:
    """Bulk create and point reads."""
    rows = make_rows(args.rows)
    masters = {k: uuid.uuid4().hex for k in ("retail", "industria", "norte", "sur")}
    with tempfile.TemporaryDirectory(prefix="crmkit-bench-") as tmp:
        d = Path(tmp)
        print(f"bulk create of {args.rows:,} organizations (SQLite, WAL, synchronous=FULL)")
        contenders: dict[str, Callable[[Path], float]] = {
            "raw sqlite3 executemany": lambda f: raw_sqlite(f, rows, masters),
            "SQLAlchemy Core executemany": lambda f: core_insert(f, rows, masters, False),
            "floor (validation + Core)": lambda f: core_insert(f, rows, masters, True),
            "crmkit bulk_create": lambda f: crmkit_bulk(f, rows),
        }
        # each round runs every contender once, on a fresh file; the best of
        # the rounds is kept (as timeit does): on a shared machine the noise
        # only ever adds time
        results: dict[str, float] = {}
        for attempt in range(args.repeat):
            for i, (name, run) in enumerate(contenders.items()):
                seconds = run(d / f"bulk-{attempt}-{i}.db")
                results[name] = min(seconds, results.get(name, seconds))
        for name, seconds in results.items():
            print(f"  {name:<30} {seconds:8.2f} s  {args.rows / seconds:10,.0f} rows/s")
        floor = results["floor (validation + Core)"]
        bulk_ratio = results["crmkit bulk_create"] / floor
        print(f"  ratio crmkit / floor            {bulk_ratio:8.2f}x   (target <= 1.5x)")
        print(
            f"  ratio Core / raw sqlite3        "
            f"{results['SQLAlchemy Core executemany'] / results['raw sqlite3 executemany']:8.2f}x"
        )

        raw, ours = bench_get(d / "get.db", args.lookups)
        print(f"get a contact by id with its organization ({args.lookups:,} lookups)")
        print(f"  raw sqlite3 indexed SELECT       {raw / args.lookups * 1e6:8.1f} us each")
        print(f"  crmkit get + get               {ours / args.lookups * 1e6:8.1f} us each")
        get_ratio = ours / raw
        print(f"  ratio crmkit / raw             {get_ratio:8.2f}x   (target <= 3x)")
    print(f"RESULT bulk_ratio={bulk_ratio:.2f} get_ratio={get_ratio:.2f}")


def bench_dedupe_section(args: argparse.Namespace) -> None:
    """Duplicate detection against the plain blocking + rapidfuzz script."""
    baseline, ours = bench_dedupe(args.dedupe_rows, args.repeat)
    print(f"  ratio crmkit / baseline        {ours / baseline:8.2f}x")
    print(f"RESULT dedupe_ratio={ours / baseline:.2f}")


def bench_import_section(args: argparse.Namespace) -> None:
    """CSV import against the csv + validation + raw sqlite3 floor."""
    with tempfile.TemporaryDirectory(prefix="crmkit-bench-") as tmp:
        floor, imported = bench_import(Path(tmp), args.import_rows, args.repeat)
    sizes = sorted({min(10_000, args.import_rows), args.import_rows})
    grown: dict[int, float] = {}
    print("import memory (peak resident memory of a fresh process per size)")
    for orgs in sizes:
        with tempfile.TemporaryDirectory(prefix="crmkit-bench-") as tmp:
            grown[orgs] = import_memory(Path(tmp), orgs)
        print(f"  {orgs:>7,} organizations + {2 * orgs:>7,} contacts  {grown[orgs]:8.1f} MB")
    growth = grown[sizes[-1]] - grown[sizes[0]]
    print(f"  growth from {sizes[0]:,} to {sizes[-1]:,}      {growth:8.1f} MB   (target <= 50 MB)")
    print(f"RESULT import_ratio={imported / floor:.2f} import_memory_growth_mb={growth:.1f}")


def forecast_book(open_deals: int, seed: int = 1) -> tuple[Book, datetime]:
    """A book of ``open_deals`` open deals and a fifth as many closed ones, and its ``as_of``."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    as_of = datetime(2027, 1, 10, tzinfo=UTC)
    hours = int((as_of - start) / timedelta(hours=1))
    reason = LossReason(
        id=LossReasonId(uuid.uuid4()), version=1, created_at=start, updated_at=start,
        key="price", name="Price",
    )  # fmt: skip
    stages = ("lead", "qualified", "proposal", "negotiation")
    opportunities = []
    for i in range(open_deals + open_deals // 5):
        opened = start + timedelta(hours=rng.randrange(hours))
        closing = i >= open_deals
        opp, _ = open_opportunity(
            SALES,
            id=OpportunityId(uuid.uuid4()),
            now=opened,
            by=None,
            stage="proposal" if closing else rng.choice(stages),
            name=f"Deal {i}",
            amount=crmkit.Money.from_minor_units(rng.randrange(10**5, 10**7), "EUR"),
            expected_close=opened.date() + timedelta(days=rng.randrange(10, 200)),
        )
        close = opened + timedelta(days=rng.expovariate(1 / 60))
        if closing and close < as_of:
            if rng.random() < 0.3:
                opp, _ = win(opp, SALES, now=close, by=None)
            else:
                opp, _ = lose(opp, SALES, reason=reason, note=None, now=close, by=None)
        opportunities.append(opp)
    return Book(opportunities=opportunities, pipelines=[SALES]), as_of


def bench_forecast_section(args: argparse.Namespace) -> None:
    """The probabilistic forecast of a quarter over a book of open deals."""
    book, as_of = forecast_book(args.forecast_deals)
    best = min(
        timed(lambda: forecast(book, period="2027-Q1", as_of=as_of, currency="EUR", seed=1))
        for _ in range(args.repeat)
    )
    result = forecast(book, period="2027-Q1", as_of=as_of, currency="EUR", seed=1)
    print(f"forecast P10/P50/P90 of a quarter ({args.forecast_deals:,} open deals)")
    print(f"  P10 {result.p10}  P50 {result.p50}  P90 {result.p90}")
    print(f"  crmkit forecast                {best:8.3f} s      (target < 2 s)")
    print(f"RESULT forecast_seconds={best:.2f}")


#: the sections, in the order they run; ``--only`` picks some of them
SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {
    "bulk": bench_bulk_section,
    "dedupe": bench_dedupe_section,
    "import": bench_import_section,
    "forecast": bench_forecast_section,
    "analytics": bench_analytics_section,
    "frames": bench_frames_section,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--probe-import-memory"]:  # the child process of import_memory
        _probe_import_memory(Path(argv[1]), int(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=5_000)
    parser.add_argument("--dedupe-rows", type=int, default=100_000)
    parser.add_argument(
        "--import-rows", type=int, default=100_000, help="organizations (contacts: twice)"
    )
    parser.add_argument(
        "--forecast-deals", type=int, default=100_000, help="open deals in the forecast's book"
    )
    parser.add_argument(
        "--opportunities", type=int, default=1_000_000, help="for analytics and frames"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds; the best time of each contender counts"
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default: all of {', '.join(SECTIONS)})",
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")
    with tempfile.TemporaryDirectory(prefix="crmkit-bench-") as tmp:
        args.workdir = Path(tmp)
        _FILES.clear()
        for name in chosen:
            SECTIONS[name](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
