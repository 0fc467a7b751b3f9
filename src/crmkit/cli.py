"""The ``crmkit`` command.

``crmkit --version`` prints the version; ``crmkit demo`` builds the sample book
(:func:`crmkit.testing.sample.build_sample_book`) in a CRM, reads it back
through the API and prints a summary; ``crmkit db current`` and ``crmkit db
upgrade`` show and upgrade the database schema; ``crmkit import`` and ``crmkit
export`` move records in and out of files (:mod:`crmkit.io`); ``crmkit dedupe``
lists likely duplicate contacts or organizations with their probability and
reasons.  Any :class:`crmkit.CrmkitError` ends the command with a one-line
message in red and exit status 1, never a traceback.

.. versionadded:: 0.1
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, TypeVar
from uuid import UUID

import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

import crmkit
from crmkit import (
    CRM,
    Contact,
    ContactId,
    CrmkitError,
    Lifecycle,
    Master,
    Money,
    Organization,
    OrganizationId,
)
from crmkit.core.duplicates import Candidate

__all__ = ["cli", "main"]

M = TypeVar("M", bound=Master)

_LIFECYCLE_STYLES = {
    Lifecycle.CUSTOMER: "green",
    Lifecycle.PROSPECT: "cyan",
    Lifecycle.TARGET: "",
    Lifecycle.FORMER: "dim",
}


class _CrmkitGroup(click.Group):
    """A click group that turns crmkit errors into a clean message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CrmkitError as exc:
            # Text(), not markup: the message may quote user data such as "[b]".
            Console(stderr=True).print(Text(f"Error: {exc}", style="bold red"))
            ctx.exit(1)


@click.group(cls=_CrmkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    crmkit.__version__, "--version", "-V", prog_name="crmkit", message="%(prog)s %(version)s"
)
@click.option(
    "--load-entry-points",
    "-P",
    is_flag=True,
    envvar="CRMKIT_LOAD_ENTRY_POINTS",
    help="Load the plugins installed under the crmkit entry-point group "
    "(their pipelines, fields, file formats and store backends).",
)
@click.pass_context
def cli(ctx: click.Context, load_entry_points: bool) -> None:
    """crmkit: an embeddable, typed CRM."""
    ctx.obj = _Options(load_entry_points=load_entry_points)


class _Options:
    """What the ``crmkit`` group's options ask of every command."""

    def __init__(self, *, load_entry_points: bool) -> None:
        self.load_entry_points = load_entry_points


def _open(db: str, **options: Any) -> CRM:
    """``crmkit.open(db)``, with the plugins the group's options ask for."""
    chosen = click.get_current_context().find_object(_Options)
    entry_points = chosen is not None and chosen.load_entry_points
    return crmkit.open(db, load_entry_points=entry_points, **options)


@cli.command()
@click.option(
    "--db",
    default="crm.db",
    show_default=True,
    metavar="PATH",
    help="The CRM to fill: a SQLite file, a sqlite:// or postgresql:// URL, "
    "or :memory: for a throwaway one.",
)
@click.option(
    "--organizations",
    "-n",
    type=click.IntRange(0, 10_000),
    default=40,
    show_default=True,
    help="How many organizations the sample book has (each with 1-4 contacts).",
)
@click.option(
    "--seed",
    type=int,
    default=7,
    show_default=True,
    help="Random seed: the same seed builds the same book.",
)
def demo(db: str, organizations: int, seed: int) -> None:
    """Build a sample book and print it: organizations, contacts, opportunities
    on their pipeline boards, the weighted pipeline by quarter, interactions,
    leads, cases and one rep's agenda.

    Running it again on the same database adds nothing it made before.
    """
    from crmkit.testing.sample import build_sample_book

    console = Console()
    with _open(db, actor="crmkit demo", timezone="Europe/Madrid") as crm:
        with console.status("Building the sample book..."):
            book = build_sample_book(crm, organizations=organizations, seed=seed)
        console.print()
        title = f"crmkit demo: sample book (seed {seed}) in {_redact(db)}"
        console.rule(Text(title, style="bold"))
        if book.organizations:
            console.print(
                f"Created [bold]{len(book.organizations)}[/] organizations, "
                f"[bold]{len(book.contacts)}[/] contacts, "
                f"[bold]{len(book.opportunities)}[/] opportunities, "
                f"[bold]{len(book.interactions)}[/] interactions, "
                f"[bold]{len(book.leads)}[/] leads and [bold]{len(book.cases)}[/] cases."
            )
        if book.skipped:
            console.print(
                f"[bold]{book.skipped}[/] organizations were there from an earlier run "
                "and were left as they were."
            )
        if not book.organizations and not book.skipped:
            console.print("The sample book has no organizations (--organizations 0).")
        _print_summary(console, crm)


@cli.group()
def db() -> None:
    """Inspect and upgrade the database schema."""


_DB_OPTION = click.option(
    "--db",
    default="crm.db",
    show_default=True,
    metavar="PATH",
    help="A SQLite file, or a sqlite:// or postgresql:// URL.",
)


@db.command()
@_DB_OPTION
def current(db: str) -> None:
    """Print the database's schema revision and the newest one crmkit has."""
    from crmkit.app import database_url
    from crmkit.stores.sql import database_revision

    revision, head = database_revision(database_url(db))
    state = (
        "empty (created at the newest revision when opened)"
        if revision is None
        else "up to date"
        if revision == head
        else "needs `crmkit db upgrade`"
    )
    Console(soft_wrap=True).print(
        f"{_redact(db)}: revision {revision or '-'} (newest {head}): {state}"
    )


@db.command()
@_DB_OPTION
def upgrade(db: str) -> None:
    """Upgrade the database schema to the newest revision (back it up first)."""
    from crmkit.app import database_url
    from crmkit.stores.sql import upgrade_database

    before, after = upgrade_database(database_url(db))
    if before == after:
        Console(soft_wrap=True).print(f"{_redact(db)}: already at revision {after}")
    else:
        Console(soft_wrap=True).print(
            f"{_redact(db)}: upgraded from {before or '(empty)'} to {after}"
        )


@cli.command()
@_DB_OPTION
@click.option(
    "--entity",
    "-e",
    type=click.Choice(["contact", "organization"]),
    default="contact",
    show_default=True,
    help="What to look for duplicates of.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="The match probability a pair needs (0.5: the calibrated decision).",
)
@click.option(
    "--limit",
    type=click.IntRange(0),
    default=50,
    show_default=True,
    help="Show at most this many pairs (the summary counts them all).",
)
def dedupe(db: str, entity: str, threshold: float, limit: int) -> None:
    """List likely duplicate contacts or organizations, with why.

    Records are paired by shared e-mail, phone or name (blocking), compared
    field by field, and scored by a Fellegi-Sunter model fitted by EM on the
    book itself.  Nothing is changed.
    """
    console = Console()
    with _open(db) as crm:
        with console.status(f"Looking for duplicate {entity}s..."):
            matching = crm.duplicates.find(
                "contact" if entity == "contact" else "organization", threshold=threshold
            )
        names = _record_names(crm, matching.candidates[:limit], entity)
        model = (
            f"fitted by EM on {matching.model.pairs:,} candidate pairs"
            if matching.model.fitted
            else "the default model (too few pairs to fit one)"
        )
        console.print(
            f"[bold]{matching.records:,}[/] {entity}s, [bold]{matching.pairs_compared:,}[/] "
            f"pairs compared, [bold]{len(matching.candidates):,}[/] likely duplicates "
            f"(probability >= {threshold:g}); model: {model}."
        )
        if not matching.candidates:
            return
        table = _table(f"Likely duplicate {entity}s")
        table.add_column("probability", justify="right")
        table.add_column("record")
        table.add_column("probably the same as")
        table.add_column("why")
        for candidate in matching.candidates[:limit]:
            why = Text()
            for reason in candidate.reasons:
                if reason.level != "missing":
                    style = "green" if reason.weight > 0 else "red"
                    why.append(f"{reason.field}: {reason.detail}\n", style=style)
            why.rstrip()
            table.add_row(
                f"{candidate.probability:.3f}",
                _lines(names[candidate.left], str(candidate.left)),
                _lines(names[candidate.right], str(candidate.right)),
                why,
            )
        console.print(table)
        if len(matching.candidates) > limit:
            console.print(f"... and {len(matching.candidates) - limit:,} more (--limit).")


def _record_names(crm: CRM, candidates: Sequence[Candidate], entity: str) -> dict[UUID, str]:
    ids = {c.left for c in candidates} | {c.right for c in candidates}
    if entity == "contact":
        return {i: crm.contacts.get(ContactId(i)).full_name for i in ids}
    return {i: crm.organizations.get(OrganizationId(i)).name for i in ids}


# ------------------------------------------------------------ import, export

_ENTITIES: Final = ("organizations", "contacts", "leads", "opportunities", "interactions")

_ENTITY_OPTION = click.option(
    "--entity",
    "-e",
    type=click.Choice(_ENTITIES),
    required=True,
    help="What the file holds.",
)
_FORMAT_OPTION = click.option(
    "--format",
    "format_",
    default=None,
    metavar="KEY",
    help="csv, jsonl, xlsx or a plugin's format (default: from the file's extension).",
)


@cli.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@_ENTITY_OPTION
@_DB_OPTION
@_FORMAT_OPTION
@click.option(
    "--map",
    "mappings",
    multiple=True,
    metavar="HEADER=COLUMN",
    help="Read the file's HEADER as COLUMN (a field or custom.<key>); "
    "HEADER= skips it. Repeat for each header.",
)
@click.option("--partial", is_flag=True, help="Write the valid rows (default: all or nothing).")
@click.option("--dry-run", is_flag=True, help="Validate every row, write nothing.")
@click.option("--encoding", default=None, help="The file's encoding (default: sniffed).")
@click.option("--delimiter", default=None, help="The CSV separator (default: sniffed).")
@click.option("--decimal-comma", is_flag=True, help="Numbers are written 1.234,56.")
@click.option("--date-format", default=None, metavar="FORMAT", help="e.g. %d/%m/%Y.")
@click.option("--currency", default=None, help="The currency of amounts given without one.")
@click.option(
    "--errors",
    "errors_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the refused rows as CSV (line, column, code, message).",
)
@click.option(
    "--duplicate-check",
    type=click.Choice(["off", "warn", "refuse"]),
    default="off",
    show_default=True,
    help="Likely duplicate contacts and organizations: warn, or refuse the row.",
)
def import_(
    path: Path,
    entity: str,
    db: str,
    format_: str | None,
    mappings: tuple[str, ...],
    partial: bool,
    dry_run: bool,
    encoding: str | None,
    delimiter: str | None,
    decimal_comma: bool,
    date_format: str | None,
    currency: str | None,
    errors_path: Path | None,
    duplicate_check: Literal["off", "warn", "refuse"],
) -> None:
    """Import a file of records, with a progress bar and a table of the refused rows.

    Rows match existing records by external_ref (else id), so importing the
    same file twice changes nothing.  Exits with status 1 if rows were refused.
    """
    mapping = _mapping(mappings)
    console = Console()
    with (
        _open(db, actor="crmkit import") as crm,
        Progress(
            TextColumn("[bold]Importing {task.fields[name]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as bar,
    ):
        estimate = _records_in(path)
        task = bar.add_task("import", total=estimate, name=path.name)
        report = crm.imports.file(
            path,
            entity=entity,
            format=format_,
            mapping=mapping,
            mode="partial" if partial else "atomic",
            dry_run=dry_run,
            encoding=encoding,
            delimiter=delimiter,
            decimal_comma=decimal_comma,
            date_format=date_format,
            currency=currency,
            progress=lambda done: bar.update(task, completed=done, total=max(estimate or 0, done)),
            duplicate_check=duplicate_check,
        )
    console.print(Text(report.summary()))
    if report.errors:
        console.print(report.table())
        if errors_path is not None:
            report.to_csv(errors_path)
            console.print(Text(f"Errors written to {errors_path}"))
        raise SystemExit(1)


def _mapping(pairs: Sequence[str]) -> dict[str, str | None] | None:
    if not pairs:
        return None
    mapping: dict[str, str | None] = {}
    for pair in pairs:
        header, separator, column = pair.partition("=")
        if not separator or not header:
            raise crmkit.ValidationError(
                "map", "must be HEADER=COLUMN (or HEADER= to skip)", code="invalid", value=pair
            )
        mapping[header] = column or None
    return mapping


def _records_in(path: Path) -> int | None:
    """About how many records a text file holds (its lines but the header), for the bar."""
    if path.suffix.lower() == ".xlsx":
        return None
    try:
        with path.open("rb") as f:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return None  # the import reports it
    return max(lines - 1, 1)


@cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@_ENTITY_OPTION
@_DB_OPTION
@_FORMAT_OPTION
@click.option(
    "--where",
    "criteria",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Only records whose FIELD equals VALUE (text, enum values, master keys). Repeat.",
)
@click.option("--order-by", default=None, metavar="FIELD", help="Sort by FIELD (-FIELD: desc).")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most this many.")
@click.option("--archived", is_flag=True, help="Export the archived records instead.")
@click.option("--columns", default=None, metavar="A,B,...", help="Only these columns, in order.")
@click.option("--lossless", is_flag=True, help="Cells exactly as stored (not formula-safe).")
@click.option("--delimiter", default=",", show_default=True, help="The CSV separator.")
@click.option("--encoding", default="utf-8", show_default=True, help="utf-8-sig for Excel.")
def export(
    path: Path,
    entity: str,
    db: str,
    format_: str | None,
    criteria: tuple[str, ...],
    order_by: str | None,
    limit: int | None,
    archived: bool,
    columns: str | None,
    lossless: bool,
    delimiter: str,
    encoding: str,
) -> None:
    """Export the records matching the criteria to a file (CSV, JSON Lines, XLSX...).

    Cells a spreadsheet would run as formulas are escaped unless --lossless.
    """
    equals: dict[str, Any] = {}
    for pair in criteria:
        field, separator, value = pair.partition("=")
        if not separator or not field:
            raise crmkit.ValidationError("where", "must be FIELD=VALUE", code="invalid", value=pair)
        equals[field] = value
    with _open(db) as crm:
        written = crm.exports.file(
            path,
            entity=entity,
            format=format_,
            lossless=lossless,
            columns=columns.split(",") if columns else None,
            encoding=encoding,
            delimiter=delimiter,
            order_by=order_by or (),
            limit=limit,
            archived=archived,
            **equals,
        )
    Console().print(Text(f"{written} {entity} written to {path}"))


def _redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


# ================================================================== summary

#: Consoles at least this wide get one column per field; narrower ones stack
#: related fields in one cell so the tables stay readable in 80 columns.
_WIDE: Final = 150


def _table(title: str, **options: Any) -> Table:
    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
        **options,
    )


def _print_summary(console: Console, crm: CRM) -> None:
    """Read the book back through the API and print it."""
    zones = crm.zones.find(order_by="created_at")
    markets = crm.markets.find(order_by="created_at")
    wide = console.width >= _WIDE
    tables = (
        _counts_table(crm),
        _market_zone_table(crm, markets, zones),
        _organizations_table(
            crm,
            _by_id(crm.markets.find(archived=None)),
            _by_id(crm.zones.find(archived=None)),
            wide,
        ),
        _contacts_table(crm, wide),
        *_boards(crm),
        *_forecast(crm),
        *_agenda(crm),
    )
    for table in tables:
        console.print()
        console.print(table)


def _boards(crm: CRM) -> list[Table]:
    """One board per pipeline in use: its stages as columns, count and amount in each."""
    tables = []
    for pipeline in crm.pipelines:
        opportunities = crm.opportunities.find(pipeline=pipeline.key)
        if not opportunities:
            continue
        table = _table(f"Pipeline {pipeline.name} / {pipeline.name_es}")
        table.add_column("")
        for stage in pipeline.stages:
            table.add_column(_lines(stage.label, stage.label_es), justify="right")
        counts = {stage.key: 0 for stage in pipeline.stages}
        amounts: dict[str, Money | None] = {stage.key: None for stage in pipeline.stages}
        for opp in opportunities:
            counts[opp.stage] += 1
            if opp.amount is not None:
                total = amounts[opp.stage]
                amounts[opp.stage] = opp.amount if total is None else total + opp.amount
        table.add_row("opportunities", *(str(counts[s.key]) for s in pipeline.stages))
        table.add_row(
            "amount",
            *(_short_money(amounts[s.key]) for s in pipeline.stages),
        )
        tables.append(table)
    return tables


def _forecast(crm: CRM, currency: str = "EUR") -> list[Table]:
    """The open pipeline and weighted pipeline by quarter of expected close."""
    try:
        report = crm.analytics.pipeline(by="quarter", currency=currency)
    except crmkit.ValidationError as error:
        if error.code == "no_rate":  # amounts in currencies without a known rate
            return []
        raise
    if not report.total.count:
        return []
    table = _table("Forecast / previsión", caption="open deals, by expected close")
    for name in ("Quarter", "Deals", "Pipeline", "Weighted"):
        table.add_column(name, justify="left" if name == "Quarter" else "right")
    for row in (*report.rows, report.total):
        key = "total" if row is report.total else row.key or "no date"
        table.add_row(key, str(row.count), _short_money(row.value), _short_money(row.weighted))
    return [table]


def _agenda(crm: CRM) -> list[Table]:
    """The agenda of the user with the most planned work: overdue, today, upcoming."""
    users = crm.users.find(order_by="name")
    if not users:
        return []
    busiest = max(users, key=lambda u: crm.interactions.count(status="planned", assignee=u))
    agenda = crm.agenda.view(user=busiest, limit=8)
    counts = agenda.counts
    title = (
        f"Agenda (panel de control) of {busiest.name}: {counts.overdue} overdue, "
        f"{counts.today} today, {counts.upcoming} in the next 7 days, "
        f"{counts.overdue_cases} cases past their SLA"
    )
    table = _table(title)
    for column in ("When", "", "Kind", "Subject", "Organization"):
        table.add_column(column)
    names = {o.id: o.name for o in crm.organizations.find(owner=busiest, archived=None)}
    tz = crm.timezone
    for label, items in (
        ("overdue", agenda.overdue),
        ("today", agenda.today),
        ("upcoming", agenda.upcoming),
    ):
        for item in items:
            when = item.when.astimezone(tz).strftime("%a %d %b %H:%M")
            org = names.get(item.organization_id, "") if item.organization_id else ""
            style = "red" if label == "overdue" else ""
            table.add_row(Text(when, style=style), label, item.kind, item.subject or "", org)
    for case in agenda.overdue_cases:
        due = case.sla_due.astimezone(tz).strftime("%a %d %b %H:%M")
        org = names.get(case.organization_id, "") if case.organization_id else ""
        table.add_row(Text(due, style="red"), "case SLA", case.case_type, case.subject, org)
    return [table]


def _short_money(value: Money | None) -> str:
    if value is None:
        return "·"
    amount = value.amount
    if abs(amount) >= 1_000_000:
        return f"{amount / 1_000_000:.1f}M {value.currency}"
    if abs(amount) >= 1_000:
        return f"{amount / 1_000:.0f}k {value.currency}"
    return f"{amount:.0f} {value.currency}"


def _by_id(masters: Iterable[M]) -> dict[UUID, M]:
    return {m.id: m for m in masters}


def _label(masters: Mapping[UUID, Master], id: UUID | None, language: str = "en") -> str:
    master = masters.get(id) if id is not None else None
    return master.label(language) if master is not None else ""


def _lines(first: str, second: str) -> Text:
    """Two values in one cell, the second dimmed below the first."""
    text = Text(first)
    if second:
        text.append("\n" + second, style="dim")
    return text


def _counts_table(crm: CRM) -> Table:
    table = _table("Records")
    table.add_column("Entity")
    table.add_column("Count", justify="right")
    rows = (
        ("Organizations", crm.organizations.count()),
        ("Contacts", crm.contacts.count()),
        ("  of which do not contact", crm.contacts.count(do_not_contact=True)),
        ("Users", crm.users.count()),
        ("Zones", crm.zones.count()),
        ("Markets", crm.markets.count()),
        ("Sources", crm.sources.count()),
        ("Positions", crm.positions.count()),
        ("Opportunities", crm.opportunities.count()),
        ("  of which won", crm.opportunities.count(status="won")),
        ("  of which lost", crm.opportunities.count(status="lost")),
        ("Interactions", crm.interactions.count()),
        ("  of which planned", crm.interactions.count(status="planned")),
        ("Leads", crm.leads.count()),
        ("  of which converted", crm.leads.count(status="converted")),
        ("Cases", crm.cases.count()),
    )
    for name, count in rows:
        table.add_row(name, str(count))
    return table


def _market_zone_table(crm: CRM, markets: Sequence[Master], zones: Sequence[Master]) -> Table:
    table = _table("Organizations by market and zone", show_footer=True)
    table.add_column("Market", footer="Total", min_width=13)
    for zone in zones:
        total = crm.organizations.count(zone=zone)
        table.add_column(Text(zone.label()), footer=str(total), justify="right")
    table.add_column("Total", footer=str(crm.organizations.count()), justify="right", min_width=5)
    for market in markets:
        cells = [crm.organizations.count(market=market, zone=zone) for zone in zones]
        table.add_row(
            Text(market.label()),
            *(str(n) if n else Text("·", style="dim") for n in cells),
            str(crm.organizations.count(market=market)),
        )
    return table


def _organizations_table(
    crm: CRM,
    markets: Mapping[UUID, Master],
    zones: Mapping[UUID, Master],
    wide: bool,
    limit: int = 10,
) -> Table:
    organizations = crm.organizations.find(order_by="name", limit=limit)
    total = crm.organizations.count()
    table = _table(f"Organizations (first {len(organizations)} of {total} by name)")
    if wide:
        for header in ("Name", "Market", "Zone", "Lifecycle", "Phone", "E-mail"):
            table.add_column(header, no_wrap=header == "Phone")
    else:
        table.add_column("Name / market · zone")
        table.add_column("Lifecycle")
        table.add_column("Phone / e-mail", overflow="fold")
    table.add_column("Contacts" if wide else "#", justify="right")
    if not wide:
        table.caption, table.caption_justify = "#: number of contacts", "left"
    for org in organizations:
        market, zone = _label(markets, org.market_id), _label(zones, org.zone_id)
        phone = org.phones[0].international() if org.phones else ""
        email = str(org.emails[0]) if org.emails else ""
        lifecycle = Text(org.lifecycle.value, style=_LIFECYCLE_STYLES[org.lifecycle])
        contacts = str(crm.contacts.count(organization=org.id))
        if wide:
            table.add_row(
                Text(org.name), Text(market), Text(zone), lifecycle, phone, Text(email), contacts
            )
        else:
            place = " · ".join(part for part in (market, zone) if part)
            table.add_row(_lines(org.name, place), lifecycle, _lines(phone, email), contacts)
    return table


def _contacts_table(crm: CRM, wide: bool, per_language: int = 4) -> Table:
    """A few contacts in each language, with their position labelled in that language."""
    contacts: list[Contact] = []
    for language in ("es", "en"):
        contacts += crm.contacts.find(
            language=language, order_by=("last_name", "first_name"), limit=per_language
        )
    positions = _by_id(crm.positions.find(archived=None))
    organizations: dict[UUID, Organization] = {}
    table = _table("Some contacts (positions in the contact's language)")
    if wide:
        for header in ("Name", "Organization", "Position", "Lang", "Prefers", "E-mail"):
            table.add_column(header)
    else:
        table.add_column("Name / e-mail", overflow="fold")
        table.add_column("Organization / position")
        table.add_column("Prefers")
    for contact in contacts:
        org_name = ""
        if contact.organization_id is not None:
            if contact.organization_id not in organizations:
                org = crm.organizations.get(contact.organization_id)
                organizations[org.id] = org
            org_name = organizations[contact.organization_id].name
        email = str(contact.email) if contact.email else ""
        position = _label(positions, contact.position_id, contact.language or "en")
        language = contact.language or ""
        channel = contact.preferred_channel.value if contact.preferred_channel else ""
        name = Text(contact.full_name)
        if contact.do_not_contact:
            name.append(" (do not contact)", style="red")
        if wide:
            table.add_row(name, Text(org_name), Text(position), language, channel, Text(email))
        else:
            if email:
                name.append("\n" + email, style="dim")
            prefers = " · ".join(part for part in (language, channel) if part)
            table.add_row(name, _lines(org_name, position), prefers)
    return table


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``crmkit`` command (the console-script entry point).

    Args:
        argv: the arguments; ``sys.argv[1:]`` when ``None``.
    """
    cli.main(args=argv, prog_name="crmkit")
