"""The ``crmkit`` command.

``crmkit --version`` prints the version; ``crmkit demo`` builds the sample book
(:func:`crmkit.testing.sample.build_sample_book`) in a CRM, reads it back
through the API and prints a summary; ``crmkit db current`` and ``crmkit db
upgrade`` show and upgrade the database schema; ``crmkit import`` and ``crmkit
export`` move records in and out of files (:mod:`crmkit.io`); ``crmkit dedupe``
lists likely duplicate contacts or organizations with their probability and
reasons; ``crmkit automation list`` and ``crmkit automation run`` show the
automation rules and fire the time-based ones; ``crmkit campaign send``
e-mails a campaign through SMTP and ``crmkit campaign import-metrics`` reads
an e-mail tool's report into it.  Any :class:`crmkit.CrmkitError` ends the
command with a one-line message in red and exit status 1, never a traceback.

.. versionadded:: 0.1
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
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
    Action,
    Contact,
    ContactId,
    CrmkitError,
    In,
    Lifecycle,
    Master,
    Money,
    OpportunityId,
    Organization,
    OrganizationId,
    Trigger,
)
from crmkit.core.analytics import Dimension, Period, PeriodKind
from crmkit.core.duplicates import Candidate
from crmkit.core.insights import ActivityDimension
from crmkit.core.tables import Cell, Tabular
from crmkit.core.tables import Table as CoreTable
from crmkit.core.tables import text as cell_text
from crmkit.io.columns import escape_formula

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
    leads, cases and one rep's agenda; then a campaign from segment to ROI and
    an automation rule planning a follow-up call when a deal reaches
    negotiation.

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
        # after the summary: the book above is the sample's, untouched by what follows
        for table in (*_campaign_demo(crm), *_automation_demo(crm)):
            console.print()
            console.print(table)


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


@cli.group()
def automation() -> None:
    """List automation rules and run the time-based ones (from cron)."""


@automation.command("list")
@_DB_OPTION
def automation_list(db: str) -> None:
    """List the automation rules: trigger, condition, actions, firings."""
    console = Console()
    with _open(db) as crm:
        rules = crm.automation.find(order_by="name", archived=None)
        if not rules:
            console.print("No automation rules.")
            return
        table = _table("Automation rules")
        for name in ("rule", "trigger", "actions", "enabled"):
            table.add_column(name)
        for name in ("fired", "failed"):
            table.add_column(name, justify="right")
        for rule in rules:
            table.add_row(
                rule.name,
                _trigger_text(rule.trigger),
                ", ".join(a.kind for a in rule.actions),
                "yes" if rule.enabled and not rule.archived else "no",
                str(len(crm.automation.firings(rule, status="done"))),
                str(len(crm.automation.firings(rule, status="failed"))),
            )
        console.print(table)


@automation.command("run")
@_DB_OPTION
@click.option(
    "--now",
    "now_",
    default=None,
    metavar="ISO-8601",
    help="The instant to run at, with its offset (default: the clock).",
)
def automation_run(db: str, now_: str | None) -> None:
    """Fire the time-based rules that are due (overdue interactions, SLAs, schedules).

    Run it from cron every few minutes; each rule fires once per record and
    occurrence however often it runs.  Exits with status 1 if a firing failed.
    """
    console = Console(soft_wrap=True)
    when = _instant(now_)
    with _open(db) as crm:
        report = crm.automation.run_due(when)
        names = {r.id: r.name for r in crm.automation.find(archived=None)}
    console.print(
        f"[bold]{len(report.fired)}[/] fired, [bold]{report.skipped}[/] already done, "
        f"[bold]{len(report.failed)}[/] failed."
    )
    for firing in report.fired:
        console.print(
            Text(f"  fired {names.get(firing.rule_id, firing.rule_id)} for ")
            + Text(f"{firing.record_entity} {firing.record_id}")
        )
    for error in report.failed:
        Console(stderr=True, soft_wrap=True).print(Text(f"  failed: {error}", style="red"))
    if report.failed:
        raise click.exceptions.Exit(1)


def _instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter("must be an ISO 8601 date and time", param_hint="--now") from None
    if value.utcoffset() is None:
        raise click.BadParameter("needs a UTC offset (+01:00, Z)", param_hint="--now")
    return value


def _trigger_text(trigger: Trigger) -> str:
    kind = trigger.kind.value
    if trigger.stage is not None:
        where = f"{trigger.pipeline}/" if trigger.pipeline else ""
        return f"{kind} -> {where}{trigger.stage}"
    if trigger.every_minutes is not None:
        return f"{kind} every {trigger.every_minutes} min"
    return kind


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
    help="csv, jsonl, xlsx, vcard or a plugin's format (default: from the file's extension).",
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
    same file twice changes nothing.  A .vcf file (or --format vcard) holds
    business cards: contacts with their organization (crm.cards).  Exits with
    status 1 if rows were refused.
    """
    if _is_vcard(path, format_):
        _import_cards(path, entity, db, partial, dry_run, encoding, errors_path)
        return
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


@cli.group()
def campaign() -> None:
    """Send a campaign's e-mail; import an e-mail tool's metrics into it."""


@campaign.command("send")
@click.argument("name")
@click.option("--template", "-t", required=True, help="The e-mail template's name.")
@click.option("--from", "sender", required=True, metavar="ADDRESS", help="The From address.")
@click.option("--from-name", default=None, help="The From display name.")
@click.option("--reply-to", default=None, metavar="ADDRESS", help="A Reply-To address.")
@click.option("--batch-size", default=500, show_default=True, help="Messages per connection.")
@click.option(
    "--retry-unconfirmed",
    is_flag=True,
    help="Send again to recipients an interrupted send claimed but never confirmed.",
)
@click.option("--dry-run", is_flag=True, help="Render and count; send and write nothing.")
@_DB_OPTION
def campaign_send(
    name: str,
    template: str,
    sender: str,
    from_name: str | None,
    reply_to: str | None,
    batch_size: int,
    retry_unconfirmed: bool,
    dry_run: bool,
    db: str,
) -> None:
    """E-mail TEMPLATE to the contacts of campaign NAME, through the CRMKIT_SMTP_* server.

    The server comes from CRMKIT_SMTP_HOST, _PORT, _SECURITY (starttls, ssl,
    none), _USERNAME, _PASSWORD.  Running it again sends nothing new.  Exits
    with status 1 if a recipient was refused.
    """
    smtp = None if dry_run else crmkit.SmtpSettings.from_env()
    console = Console()
    with _open(db, actor="crmkit campaign send", smtp=smtp) as crm:
        report = crm.campaigns.send(
            name,
            template,
            sender=sender,
            sender_name=from_name,
            reply_to=reply_to,
            batch_size=batch_size,
            retry_unconfirmed=retry_unconfirmed,
            dry_run=dry_run,
        )
    table = _table(f"Campaign {name}" + (" (dry run)" if dry_run else ""))
    table.add_column("", style="bold")
    table.add_column("recipients", justify="right")
    table.add_row("would be sent" if dry_run else "sent", str(report.sent))
    table.add_row("failed", str(len(report.failures)))
    for reason, count in sorted(report.skipped.items()):
        table.add_row(f"skipped: {reason}", str(count))
    console.print(table)
    if report.failures:
        failures = _table("Refused")
        for column in ("address", "code", "reason"):
            failures.add_column(column)
        for f in report.failures[:50]:
            failures.add_row(Text(f.email), Text(f.code), Text(f.reason))
        console.print(failures)
        raise SystemExit(1)


@campaign.command("import-metrics")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--campaign", "campaign_name", required=True, help="The campaign's name.")
@_DB_OPTION
@_FORMAT_OPTION
@click.option(
    "--map",
    "mappings",
    multiple=True,
    metavar="HEADER=COLUMN",
    help="Read HEADER as email, sent, opened, clicked, bounced or unsubscribed; HEADER= skips it.",
)
@click.option("--partial", is_flag=True, help="Write the valid rows (default: all or nothing).")
@click.option("--dry-run", is_flag=True, help="Check every row, write nothing.")
@click.option("--encoding", default=None, help="The file's encoding (default: sniffed).")
@click.option("--delimiter", default=None, help="The CSV separator (default: sniffed).")
@click.option("--date-format", default=None, metavar="FORMAT", help="e.g. %d/%m/%Y %H:%M.")
@click.option(
    "--errors",
    "errors_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the refused rows as CSV (line, column, code, message).",
)
def campaign_import_metrics(
    path: Path,
    campaign_name: str,
    db: str,
    format_: str | None,
    mappings: tuple[str, ...],
    partial: bool,
    dry_run: bool,
    encoding: str | None,
    delimiter: str | None,
    date_format: str | None,
    errors_path: Path | None,
) -> None:
    """Import an e-mail tool's per-contact report (sent, opened, clicked...) into a campaign.

    Headers in English or Spanish are recognised (email/correo, opened/abierto,
    clicks/clics, bounced/rebotado, unsubscribed/baja...).  Importing the same
    file twice changes nothing.  Exits with status 1 if rows were refused.
    """
    console = Console()
    with _open(db, actor="crmkit campaign import-metrics") as crm:
        report = crm.imports.campaign_metrics(
            path,
            campaign=campaign_name,
            mapping=_mapping(mappings),
            format=format_,
            mode="partial" if partial else "atomic",
            dry_run=dry_run,
            encoding=encoding,
            delimiter=delimiter,
            date_format=date_format,
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
    if _is_vcard(path, format_):
        _export_cards(path, entity, db, equals, order_by, limit, archived)
        return
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


_VCARD_SUFFIXES: Final = (".vcf", ".vcard")


def _is_vcard(path: Path, format_: str | None) -> bool:
    """Business cards go through ``crm.cards`` (``--format vcard`` or a .vcf file)."""
    return format_ == "vcard" or (format_ is None and path.suffix.lower() in _VCARD_SUFFIXES)


def _cards_entity(entity: str) -> None:
    if entity != "contacts":
        raise crmkit.ValidationError(
            "entity", "business cards (vCard) hold contacts", code="choice", value=entity
        )


def _import_cards(
    path: Path,
    entity: str,
    db: str,
    partial: bool,
    dry_run: bool,
    encoding: str | None,
    errors_path: Path | None,
) -> None:
    _cards_entity(entity)
    console = Console()
    with _open(db, actor="crmkit import") as crm:
        report = crm.cards.import_file(
            path, mode="partial" if partial else "atomic", dry_run=dry_run, encoding=encoding
        )
    _print_report(console, report, errors_path)


def _print_report(console: Console, report: crmkit.ImportReport, errors_path: Path | None) -> None:
    console.print(Text(report.summary()))
    if report.errors:
        console.print(report.table())
        if errors_path is not None:
            report.to_csv(errors_path)
            console.print(Text(f"Errors written to {errors_path}"))
        raise SystemExit(1)


def _export_cards(
    path: Path,
    entity: str,
    db: str,
    equals: dict[str, Any],
    order_by: str | None,
    limit: int | None,
    archived: bool,
) -> None:
    _cards_entity(entity)
    with _open(db) as crm:
        written = crm.cards.export(
            path, order_by=order_by or (), limit=limit, archived=archived, **equals
        )
    Console().print(Text(f"{written} contacts written to {path} (vCard 3.0)"))


# ------------------------------------------------------------------ calendar


@cli.group()
def calendar() -> None:
    """Planned interactions to and from iCalendar (.ics) files."""


@calendar.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@_DB_OPTION
@click.option(
    "--user",
    "users",
    multiple=True,
    metavar="NAME",
    help="Only this user's planned interactions (repeat for several; default: everyone's).",
)
@click.option("--team", default=None, metavar="NAME", help="Only the team members' ones.")
@click.option("--cancelled", is_flag=True, help="Also write cancelled ones (STATUS:CANCELLED).")
@click.option(
    "--minutes", type=click.IntRange(min=1), default=30, show_default=True, help="Event length."
)
def calendar_export(
    path: Path, db: str, users: tuple[str, ...], team: str | None, cancelled: bool, minutes: int
) -> None:
    """Write planned interactions as an iCalendar feed (times in UTC)."""
    from datetime import timedelta

    with _open(db) as crm:
        written = crm.calendar.export(
            path,
            users=list(users) if users else None,
            team=team,
            cancelled=cancelled,
            duration=timedelta(minutes=minutes),
        )
    Console().print(Text(f"{written} events written to {path}"))


@calendar.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@_DB_OPTION
@click.option("--kind", default="meeting", show_default=True, help="The interactions' kind.")
@click.option(
    "--assignee", default=None, metavar="NAME", help="The user of events no CRM user organizes."
)
@click.option("--partial", is_flag=True, help="Write the valid events (default: all or nothing).")
@click.option("--dry-run", is_flag=True, help="Check every event, write nothing.")
@click.option(
    "--errors",
    "errors_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the refused events as CSV (line, column, code, message).",
)
def calendar_import(
    path: Path,
    db: str,
    kind: str,
    assignee: str | None,
    partial: bool,
    dry_run: bool,
    errors_path: Path | None,
) -> None:
    """Import the events of an .ics file as planned interactions (idempotent by UID)."""
    with _open(db, actor="crmkit calendar import") as crm:
        report = crm.calendar.import_file(
            path,
            kind=kind,
            assignee=assignee,
            mode="partial" if partial else "atomic",
            dry_run=dry_run,
        )
    _print_report(Console(), report, errors_path)


# ---------------------------------------------------------------------- mail


@cli.group()
def mail() -> None:
    """E-mail messages into the CRM."""


@mail.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@_DB_OPTION
@click.option("--create-lead", is_flag=True, help="Create a lead when no contact matches.")
def mail_ingest(paths: tuple[Path, ...], db: str, create_lead: bool) -> None:
    """Log .eml files as e-mail interactions of the contacts they name.

    A message ingested before (same Message-ID) is skipped.  Exits with
    status 1 if a file was refused.
    """
    console = Console()
    table = _table("E-mail")
    for name in ("file", "result", "contact", "subject"):
        table.add_column(name)
    failed = False
    with _open(db, actor="crmkit mail ingest") as crm:
        for path in paths:
            try:
                done = crm.inbox.ingest(path, create_lead=create_lead)
            except crmkit.ValidationError as error:
                failed = True
                table.add_row(path.name, Text("refused", style="red"), "", str(error))
                continue
            if done.duplicate:
                result = "already ingested"
            elif done.interaction is not None:
                result = f"logged ({done.direction.value})"
            elif done.lead is not None:
                result = "lead created"
            else:
                result = "no contact"
            who = done.contacts[0].full_name if done.contacts else ""
            subject = done.interaction.subject if done.interaction is not None else ""
            table.add_row(path.name, result, who, subject or "")
    console.print(table)
    if failed:
        raise SystemExit(1)


# ==================================================================== reports


class _ReportArgs:
    """What ``crmkit report`` passes to a report kind: the options, already parsed."""

    def __init__(
        self,
        *,
        as_of: datetime | None,
        by: str | None,
        currency: str,
        pipeline: str | None,
        since: datetime | None,
        fiscal_start: int = 1,
        period: str | None = None,
        periods: int = 4,
    ) -> None:
        self.fiscal_start = fiscal_start
        self.period = period
        self.periods = periods
        self.as_of = as_of
        self.by = by
        self.currency = currency
        self.pipeline = pipeline
        self.since = since


class _ReportKind:
    """One kind of ``crmkit report``: how to compute it, its ``--by`` values, its chart."""

    def __init__(
        self,
        run: Callable[[CRM, _ReportArgs], Tabular],
        *,
        help: str,
        by: Sequence[str] = (),
        chart: Callable[[Any, Path], object] | None = None,
        ids: str | None = None,
    ) -> None:
        self.run = run
        self.help = help
        self.by = tuple(by)
        self.chart = chart
        self.ids = ids  # what the first column holds without --by (user, zone...)


def _chart(name: str) -> Callable[[Any, Path], object]:
    """The ``crmkit.analysis`` function ``name``, imported when a chart is drawn."""

    def draw(result: Any, path: Path) -> object:
        from crmkit import analysis

        return getattr(analysis, name)(result, path)

    return draw


def _analysis() -> Any:
    """:mod:`crmkit.analysis`, imported when a chart is drawn (matplotlib is an extra)."""
    from crmkit import analysis

    return analysis


def _current_quarter(crm: CRM, args: _ReportArgs) -> Period:
    """The fiscal quarter the report's moment falls in."""
    moment = args.as_of or crm.now()
    today = moment.astimezone(crm.timezone).date()
    return Period.containing(today, PeriodKind.QUARTER, fiscal_start=args.fiscal_start)


_PIPELINE_BY: Final = tuple(d.value for d in Dimension)
_ACTIVITY_BY: Final = tuple(d.value for d in ActivityDimension)
_PERIODS: Final = tuple(k.value for k in PeriodKind)

#: The kinds of ``crmkit report``, by name.  A new kind is one entry: a function
#: of the CRM and the parsed options returning a tabular result (anything with
#: ``table()``, see :mod:`crmkit.core.tables`), the ``--by`` values it accepts,
#: and optionally the chart ``--chart`` draws.
_REPORTS: Final[dict[str, _ReportKind]] = {
    "pipeline": _ReportKind(
        lambda crm, a: crm.analytics.pipeline(
            currency=a.currency,
            as_of=a.as_of,
            by=a.by,
            pipeline=a.pipeline,
            fiscal_start=a.fiscal_start,
        ),
        help="open pipeline value and weighted value",
        by=_PIPELINE_BY,
        chart=_chart("pipeline_chart"),
    ),
    "winrate": _ReportKind(
        lambda crm, a: (
            crm.analytics.win_rates(
                by=a.by,
                currency=a.currency,
                as_of=a.as_of,
                since=a.since,
                pipeline=a.pipeline,
                fiscal_start=a.fiscal_start,
            )
            if a.by
            else crm.analytics.win_rate(
                currency=a.currency, as_of=a.as_of, since=a.since, pipeline=a.pipeline
            )
        ),
        help="win rate by count and value, average deal (deals closed since --since)",
        by=_PIPELINE_BY,
    ),
    "forecast": _ReportKind(
        lambda crm, a: crm.forecast.series(
            currency=a.currency,
            kind=a.by or "quarter",
            start=a.period,
            periods=a.periods,
            as_of=a.as_of,
            pipeline=a.pipeline,
            fiscal_start=a.fiscal_start,
        ),
        help="P10/P50/P90 of the revenue won per period (--periods, from --period)",
        by=_PERIODS,
        chart=lambda result, path: _analysis().forecast_fan(result.fan(), path),
    ),
    "targets": _ReportKind(
        lambda crm, a: crm.forecast.attainment_report(
            period=a.period or _current_quarter(crm, a),
            as_of=a.as_of,
            fiscal_start=a.fiscal_start,
        ),
        help="sales-target attainment of --period (this quarter by default) and its chances",
        chart=lambda result, path: _analysis().attainment_chart(result.bars(), path),
    ),
    "funnel": _ReportKind(
        lambda crm, a: crm.analytics.funnel(pipeline=a.pipeline or "sales", as_of=a.as_of),
        help="stage conversion funnel of --pipeline (sales by default)",
        chart=_chart("funnel_chart"),
    ),
    "cycle": _ReportKind(
        lambda crm, a: crm.analytics.sales_cycle(as_of=a.as_of, pipeline=a.pipeline),
        help="sales-cycle length (Kaplan-Meier, open deals censored)",
    ),
    "stages": _ReportKind(
        lambda crm, a: crm.analytics.time_in_stage(pipeline=a.pipeline or "sales", as_of=a.as_of),
        help="time in each stage of --pipeline (sales by default)",
    ),
    "velocity": _ReportKind(
        lambda crm, a: crm.analytics.velocity(
            currency=a.currency, as_of=a.as_of, pipeline=a.pipeline
        ),
        help="pipeline velocity over the last year",
    ),
    "waterfall": _ReportKind(
        lambda crm, a: crm.analytics.waterfall(
            start=a.since or (a.as_of or crm.now()) - timedelta(days=30),
            end=a.as_of,
            currency=a.currency,
            pipeline=a.pipeline,
        ),
        help="how the pipeline moved from --since (30 days before) to --as-of",
    ),
    "interactions": _ReportKind(
        lambda crm, a: crm.analytics.interaction_results(
            by=a.by, as_of=a.as_of, since=a.since, fiscal_start=a.fiscal_start
        ),
        help="interactions done (since --since) and how many led to an opportunity",
        by=_ACTIVITY_BY,
    ),
    "campaigns": _ReportKind(
        lambda crm, a: crm.analytics.campaign_roi(currency=a.currency, as_of=a.as_of),
        help="leads, opportunities, wins, cost and ROI per campaign",
    ),
    "customers": _ReportKind(
        lambda crm, a: crm.analytics.customer_value(
            currency=a.currency, as_of=a.as_of, since=a.since
        ),
        help="won revenue (since --since) and host revenue per customer",
    ),
    "retention": _ReportKind(
        lambda crm, a: crm.analytics.retention(
            by=a.by or "quarter", as_of=a.as_of, fiscal_start=a.fiscal_start
        ),
        help="customers by cohort of their first win, and who won again (--by quarter)",
        by=_PERIODS,
    ),
    "reps": _ReportKind(
        lambda crm, a: crm.analytics.rep_performance(
            currency=a.currency, as_of=a.as_of, since=a.since
        ),
        help="won value, win rate, open pipeline and activity per user (since --since)",
        ids="user",
    ),
    "health": _ReportKind(
        lambda crm, a: crm.analytics.relationship_health(as_of=a.as_of),
        help="recency and frequency of interactions per organization",
    ),
}


def _moment(value: str | None, crm: CRM, name: str) -> datetime | None:
    """``--as-of``/``--since``: a date is the end of that day in the CRM's time zone;
    a datetime without offset is in the CRM's time zone."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1), time(0), tzinfo=crm.timezone)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise crmkit.ValidationError(
            name, "must be an ISO 8601 date or datetime", code="invalid", value=value
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=crm.timezone)


def _labelled(crm: CRM, ids: str | None, table: CoreTable) -> CoreTable:
    """``table`` with a ``name`` column after the first when it holds ids (owner, zone...),
    and loss reasons named in the notes."""
    if any(label.startswith("lost for ") for label, _ in table.notes):
        reasons = {str(r.id): r.label() for r in crm.loss_reasons.find(archived=None)}
        notes = tuple(
            (f"lost for {reasons.get(label[9:], label[9:])}", value)
            if label.startswith("lost for ")
            else (label, value)
            for label, value in table.notes
        )
        table = CoreTable(title=table.title, columns=table.columns, rows=table.rows, notes=notes)
    if ids not in ("owner", "user", "team", "zone", "source", "campaign", "outcome"):
        return table
    names: dict[str, str]
    if ids in ("owner", "user"):
        names = {str(u.id): u.name for u in crm.users.find(archived=None)}
    elif ids == "team":
        names = {str(t.id): t.name for t in crm.teams.find(archived=None)}
    elif ids == "campaign":
        names = {str(c.id): c.name for c in crm.campaigns.find(archived=None)}
    else:
        masters: Sequence[Master] = (
            crm.zones.find(archived=None)
            if ids == "zone"
            else crm.sources.find(archived=None)
            if ids == "source"
            else crm.outcomes.find(archived=None)
        )
        names = {str(m.id): m.label() for m in masters}
    return CoreTable(
        title=table.title,
        columns=(table.columns[0], "name", *table.columns[1:]),
        rows=tuple(
            (row[0], names.get(str(row[0]), "") if row[0] is not None else "", *row[1:])
            for row in table.rows
        ),
        notes=table.notes,
    )


def _shown(value: Cell) -> str:
    """A cell for the terminal: ratios to 4 places, amounts with thousands separators."""
    if isinstance(value, Decimal):
        if value == value.to_integral_value() or -value.as_tuple().exponent <= 2:  # type: ignore[operator]
            return f"{value:,}"
        return f"{value:,.4f}"
    if isinstance(value, timedelta):
        if value >= timedelta(days=1):
            return f"{value / timedelta(days=1):,.1f} days"
        return str(value - timedelta(microseconds=value.microseconds))
    return cell_text(value)


def _print_analysis(console: Console, table: CoreTable) -> None:
    hidden = {0} if table.columns[1:2] == ("name",) else set()  # the ids behind the names
    title = table.title
    if "currency" in table.columns:  # one currency per report: say it once
        at = table.columns.index("currency")
        codes = {row[at] for row in table.rows} - {None}
        if len(codes) <= 1:
            hidden.add(at)
            title += f" ({codes.pop()})" if codes else ""
    console.print(Text(title, style="bold"))
    for label, value in table.notes:
        console.print(Text(f"{label}: {_shown(value)}"))
    rich = Table(box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
    shown = [i for i in range(len(table.columns)) if i not in hidden]
    for i in shown:
        name = table.columns[i]
        numeric = any(
            isinstance(row[i], int | Decimal | timedelta) and not isinstance(row[i], bool)
            for row in table.rows
        )
        rich.add_column(name, justify="right" if numeric else "left")
    for row in table.rows:
        rich.add_row(*(Text(_shown(row[i])) for i in shown))
    console.print(rich)


def _report_help() -> str:
    width = max(len(name) for name in _REPORTS)
    return "\n".join(f"{name.ljust(width)}  {kind.help}" for name, kind in sorted(_REPORTS.items()))


@cli.command("report", epilog="\b\nKinds:\n" + _report_help())
@click.argument("kind", type=click.Choice(sorted(_REPORTS)), metavar="KIND")
@_DB_OPTION
@click.option(
    "--by",
    default=None,
    metavar="DIMENSION",
    help="Group by owner, team, zone, stage, source, campaign, pipeline, month, quarter or "
    "year (interactions: kind, outcome, user, campaign or a period). By team, a deal counts "
    "under every team of its owner.",
)
@click.option(
    "--as-of",
    "as_of",
    default=None,
    metavar="DATE",
    help="The report as it stood then (YYYY-MM-DD: the end of that day; default: now).",
)
@click.option(
    "--since",
    default=None,
    metavar="DATE",
    help="Start of the window (winrate: deals closed since; waterfall: the start).",
)
@click.option("--currency", default="EUR", show_default=True, help="The report's currency.")
@click.option("--pipeline", default=None, metavar="KEY", help="Only this pipeline.")
@click.option(
    "--fiscal-start",
    type=click.IntRange(1, 12),
    default=1,
    show_default=True,
    help="The month the fiscal year starts (quarters and years are fiscal).",
)
@click.option(
    "--period",
    default=None,
    metavar="LABEL",
    help="forecast: the first period; targets: the period (2027-Q1, 2027-03, 2027, FY2027-Q3).",
)
@click.option(
    "--periods",
    type=click.IntRange(1, 36),
    default=4,
    show_default=True,
    help="forecast: how many consecutive periods.",
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="A Rich table, CSV or JSON (exact amounts, ids and names).",
)
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also draw the report as a PNG (needs the plot extra).",
)
def report(
    kind: str,
    db: str,
    by: str | None,
    as_of: str | None,
    since: str | None,
    currency: str,
    pipeline: str | None,
    fiscal_start: int,
    period: str | None,
    periods: int,
    format_: str,
    chart: Path | None,
) -> None:
    """Print an analytics report: pipeline, funnel, cycle, winrate...

    Amounts are exact; --format csv and json give every figure as stored,
    with the names of owners, teams, zones, sources and campaigns next to their ids.
    The definitions are in the "Analytics and forecasting" guide.
    """
    spec = _REPORTS[kind]
    if by is not None and by not in spec.by:
        choices = ", ".join(spec.by) if spec.by else "none (this report has no groups)"
        raise crmkit.ValidationError("by", f"must be one of: {choices}", code="choice", value=by)
    if chart is not None and spec.chart is None:
        raise crmkit.ValidationError(
            "chart", f"the {kind} report has no chart", code="choice", value=str(chart)
        )
    console = Console()
    with _open(db) as crm:
        options = _ReportArgs(
            as_of=_moment(as_of, crm, "as_of"),
            by=by,
            currency=currency,
            pipeline=pipeline,
            since=_moment(since, crm, "since"),
            fiscal_start=fiscal_start,
            period=period,
            periods=periods,
        )
        result = spec.run(crm, options)
        table = _labelled(crm, by or spec.ids, result.table())
    if format_ == "json":
        document = {
            "title": table.title,
            "notes": {label: _json_cell(value) for label, value in table.notes},
            "rows": [{k: _json_cell(v) for k, v in row.items()} for row in table.records()],
        }
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
    elif format_ == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(table.columns)
        writer.writerows(
            [escape_formula(v) if isinstance(v, str) else cell_text(v) for v in row]
            for row in table.rows
        )
        click.echo(out.getvalue(), nl=False)
    else:
        _print_analysis(console, table)
    if chart is not None:
        assert spec.chart is not None
        spec.chart(result, chart)
        if format_ == "table":
            console.print(Text(f"Chart written to {chart}"))


def _json_cell(value: Cell) -> object:
    """Numbers that are exact in JSON stay numbers; Decimal, dates and durations are text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, timedelta):
        return value.total_seconds()
    return cell_text(value)


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


#: The demo's campaign, segment and rule (found by name on a second run).
_DEMO_CAMPAIGN: Final = "Spring push / Campaña de primavera"
_DEMO_SEGMENT: Final = "Prospects and customers"
_DEMO_RULE: Final = "Negotiation follow-up"


def _campaign_demo(crm: CRM) -> list[Table]:
    """A campaign from segment to ROI: segment, budget, launch, calls, attribution, results.

    The first run builds it in one transaction; later runs only read it back.
    """
    try:
        campaign = crm.campaigns.get_by_name(_DEMO_CAMPAIGN)
    except crmkit.NotFoundError:
        campaign = _build_campaign(crm)
    results = crm.campaigns.results(campaign)
    calls = crm.interactions.count(campaign=campaign.id, kind="call")
    table = _table(
        f"Campaign {campaign.name}",
        caption=f"segment {_DEMO_SEGMENT!r}: lifecycle prospect or customer",
    )
    for name in ("Members", "Calls", "Leads", "Deals", "Won", "Won value", "Cost", "Per lead"):
        table.add_column(name, justify="right")
    table.add_column("ROI", justify="right")
    table.add_row(
        str(results.members),
        str(calls),
        str(results.leads),
        str(results.opportunities),
        str(results.won),
        _short_money(results.won_value),
        _short_money(results.cost),
        _short_money(results.cost_per_lead),
        "-" if results.roi is None else f"{results.roi:.0%}",
    )
    return [table]


def _build_campaign(crm: CRM) -> crmkit.Campaign:
    now = crm.now()
    with crm.transaction():
        try:
            segment = crm.segments.get_by_name(_DEMO_SEGMENT)
        except crmkit.NotFoundError:
            segment = crm.segments.create(
                name=_DEMO_SEGMENT, criteria=In("lifecycle", ["prospect", "customer"])
            )
        campaign = crm.campaigns.create(
            name=_DEMO_CAMPAIGN,
            kind="call",
            segment=segment,
            starts_on=now.date(),
            budget=Money("5000", "EUR"),
            actual_cost=Money("3200", "EUR"),
        )
        campaign = crm.campaigns.launch(campaign)
        users = crm.users.find(order_by="name", limit=3)
        if users:
            crm.campaigns.plan_actions(
                campaign, kind="call", at=now + timedelta(days=7), users=users
            )
        members = crm.campaigns.members(campaign)[:4]
        for n, member in enumerate(members):
            crm.leads.create(
                first_name="Demo", last_name=f"Lead {n + 1}", company=member.name, campaign=campaign
            )
            deal = crm.opportunities.create(
                name=f"{member.name}: spring order",
                organization=member,
                pipeline="sales",
                amount=Money(4000 + 1500 * n, "EUR"),
                expected_close=now.date() + timedelta(days=30),
                campaign=campaign,
            )
            if n < 2:  # two of them won already
                for stage in ("qualified", "proposal"):
                    deal = crm.opportunities.advance(deal.id, to=stage)
                crm.opportunities.win(deal.id)
    return crm.campaigns.get(campaign.id)


def _automation_demo(crm: CRM) -> list[Table]:
    """The negotiation follow-up rule, and the call it planned when a deal reached negotiation."""
    try:
        rule = crm.automation.get_by_name(_DEMO_RULE)
    except crmkit.NotFoundError:
        rule = crm.automation.create(
            name=_DEMO_RULE,
            description="Plan a follow-up call when a sales deal reaches negotiation",
            trigger=Trigger.stage_changed("negotiation", pipeline="sales"),
            actions=[Action.plan_interaction("call", due_in=timedelta(days=2))],
        )
        ready = crm.opportunities.find(
            pipeline="sales", stage="proposal", status="open", order_by="name", limit=1
        )
        if ready:
            crm.opportunities.advance(ready[0].id, to="negotiation")  # the rule fires
    table = _table(
        f"Automation rule {rule.name}",
        caption="when a sales deal reaches negotiation: a call two days later, for its owner",
    )
    for name in ("Deal", "Planned call", "Due", "For"):
        table.add_column(name)
    users = {u.id: u for u in crm.users.find(archived=None)}
    for firing in crm.automation.firings(rule, limit=5):
        if firing.record_id is None:
            continue
        deal = crm.opportunities.get(OpportunityId(firing.record_id))
        for call in crm.interactions.find(opportunity=deal.id, kind="call", status="planned"):
            owner = users.get(call.assignee_id) if call.assignee_id else None
            table.add_row(
                deal.name,
                call.subject or "",
                (call.scheduled_at or firing.fired_at)
                .astimezone(crm.timezone)
                .strftime("%Y-%m-%d %H:%M"),
                owner.name if owner else "-",
            )
    if not table.row_count:
        table.add_row("no sales deal reached negotiation yet", "", "", "")
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
