"""``argus audit`` (query, verify), ``argus token``, ``argus purge`` and ``argus api``: thin shells over
storage/ and argus/api/. Every read of the audit trail is itself audited."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import asdict
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from argus.runtime import configure_environment
from argus.settings import get_settings

__all__ = ["register"]

console = Console()
err = Console(stderr=True)

audit_app = typer.Typer(help="The audit trail: query it (filters, pages, table / JSON / CSV) or verify it.")
token_app = typer.Typer(help="HTTP API tokens (roles viewer, auditor, admin).", no_args_is_help=True)

_CSV_COLUMNS = (
    "id",
    "time",
    "actor",
    "host",
    "action",
    "object_type",
    "object_id",
    "study_uid",
    "run_id",
    "outcome",
    "details",
)


class RoleOption(StrEnum):
    viewer = "viewer"
    auditor = "auditor"
    admin = "admin"


def _utc_time(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO-8601 time such as 2026-11-25 or 2026-11-25T08:00:00Z"
        ) from None


def _write_csv(rows: list[dict[str, Any]]) -> None:
    writer = csv.DictWriter(sys.stdout, fieldnames=_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "details": json.dumps(row["details"], sort_keys=True)})


@audit_app.callback(invoke_without_command=True)
def audit(
    ctx: typer.Context,
    study: Annotated[str | None, typer.Option(help="Study Instance UID.")] = None,
    patient: Annotated[str | None, typer.Option(help="Patient ID (events of the patient's studies).")] = None,
    accession: Annotated[str | None, typer.Option(help="Accession number.")] = None,
    since: Annotated[
        datetime | None, typer.Option(parser=_utc_time, help="ISO-8601, inclusive; no offset means UTC.")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(parser=_utc_time, help="ISO-8601, exclusive; no offset means UTC.")
    ] = None,
    action: Annotated[str | None, typer.Option(help="ingested, analyzed, viewed, deleted, ...")] = None,
    by: Annotated[str | None, typer.Option("--actor", help="Who: argus:<user>, token:<name>, ...")] = None,
    model_version: Annotated[str | None, typer.Option(help="Runs using this model version.")] = None,
    label: Annotated[str | None, typer.Option(help="Events of runs with a finding of this label.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Page size.")] = 1000,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many events (paging).")] = 0,
    newest: Annotated[bool, typer.Option("--newest", help="Newest first.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON: total, offset, limit, events.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV, one event per line, details as JSON.")] = False,
) -> None:
    """List audit events matching every given filter, oldest first (``--newest`` for the latest)."""
    if ctx.invoked_subcommand is not None:
        return
    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv")
    configure_environment(get_settings())
    from argus.db import db_session
    from argus.identity import actor
    from argus.results import audit_page, record_read
    from storage.audit_query import AuditFilter, find_events

    try:
        filters = AuditFilter(
            patient_id=patient,
            study_uid=study,
            accession_number=accession,
            since=since,
            until=until,
            action=action,
            actor=by,
            model_version=model_version,
            label=label,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    output = "json" if as_json else "csv" if as_csv else "table"
    with db_session() as session:
        page = find_events(session, filters, limit=limit, offset=offset, newest_first=newest)
        payload = audit_page(page, limit)
        record_read(
            session,
            actor=actor(),
            exported=output != "table",
            object_type="audit",
            object_id="audit_events",
            study_uid=study,
            details={
                "filters": filters.described(),
                "count": len(page.events),
                "total": page.total,
                "offset": offset,
                "format": output,
            },
        )
    if as_json:
        print(json.dumps(payload, indent=2))
    elif as_csv:
        _write_csv(payload["events"])
    else:
        _print_events(payload)


def _print_events(payload: dict[str, Any]) -> None:
    rows = payload["events"]
    offset = payload["offset"]
    shown = f"{offset + 1}-{offset + len(rows)}" if rows else "none"
    table = Table(title=f"Audit trail: events {shown} of {payload['total']}")
    for column in ("time", "actor", "action", "object", "outcome"):
        table.add_column(column)
    for e in rows:
        target = f"{e['object_type']}:{e['object_id']}"
        table.add_row(e["time"], e["actor"], e["action"], target, e["outcome"])
    console.print(table)


@audit_app.command()
def verify() -> None:
    """Check every event's hash and link; name each edited or deleted row. Exit 0 only when intact."""
    configure_environment(get_settings())
    from argus.db import db_session
    from argus.identity import actor
    from storage.audit import record_event, verify_chain
    from storage.audit_query import count_events

    # Verify in one transaction, record in another: on SQLite a writing transaction would hold the
    # database's write lock for the whole (possibly long) check.
    with db_session() as session:
        problems = verify_chain(session)
        total = count_events(session)
    with db_session() as session:
        record_event(
            session,
            actor=actor(),
            action="verified",
            object_type="audit",
            object_id="audit_events",
            outcome="failure" if problems else "success",
            details={"events": total, "problems": problems[:100]},
        )
    if not problems:
        print(f"audit chain intact: {total} events")
        return
    for problem in problems:
        print(problem)
    err.print(f"[red]audit chain broken:[/red] {len(problems)} problem(s) in {total} events", highlight=False)
    raise typer.Exit(1)


@token_app.command("create")
def token_create(
    role: Annotated[RoleOption, typer.Option(help="viewer: studies; auditor: + audit trail; admin: all.")],
    name: Annotated[str, typer.Option(help="Unique name; the audit trail records requests as token:<name>.")],
) -> None:
    """Create a token and print it once (only its sha256 is stored)."""
    configure_environment(get_settings())
    from argus.db import db_session
    from argus.identity import actor
    from storage.tokens import TokenError, create_token

    try:
        with db_session() as session:
            secret = create_token(session, name=name, role=role.value, created_by=actor())
    except TokenError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    print(secret)
    err.print(f"Token {name!r} ({role.value}) created. Store it now: it is not shown again.", highlight=False)


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="The token's name.")]) -> None:
    """Revoke a token: requests with it get 401 from now on."""
    configure_environment(get_settings())
    from argus.db import db_session
    from argus.identity import actor
    from storage.tokens import TokenError, revoke_token

    try:
        with db_session() as session:
            revoke_token(session, name=name, revoked_by=actor())
    except TokenError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    print(f"token {name!r} revoked")


@token_app.command("list")
def token_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Tokens with role, creator and times (never the secrets: they are not stored)."""
    configure_environment(get_settings())
    from argus.db import db_session
    from storage.tokens import list_tokens

    with db_session() as session:
        rows = [
            {
                "name": t.name,
                "role": t.role,
                "created_at": t.created_at.isoformat(),
                "created_by": t.created_by,
                "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
            }
            for t in list_tokens(session)
        ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="API tokens")
    for column in ("name", "role", "created", "by", "revoked"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["name"], r["role"], r["created_at"], r["created_by"], r["revoked_at"] or "")
    console.print(table)


def purge(
    study: Annotated[str, typer.Option(help="Study Instance UID to remove.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a study's objects and rows (runs, findings, reports, artifacts); the audit trail stays."""
    settings = get_settings()
    configure_environment(settings)
    from argus.db import engine
    from argus.identity import actor
    from argus.objects import object_store
    from storage.purge import PurgeError, plan_purge, purge_study

    store, lease = object_store(), settings.run_lease_seconds
    try:
        plan = plan_purge(engine(), store, study_uid=study, lease_seconds=lease)
        counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in asdict(plan).items() if k != "study_uid")
        err.print(f"Study {study}: {counts}", highlight=False)
        if not yes:
            typer.confirm("Delete all of it for good (the audit trail keeps a record)?", abort=True)
        result = purge_study(engine(), store, study_uid=study, actor=actor(), lease_seconds=lease)
    except PurgeError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    print(json.dumps(asdict(result)))


def api(
    host: Annotated[str, typer.Option(help="Interface to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) with uvicorn."""
    settings = get_settings()
    configure_environment(settings)
    import uvicorn

    from argus.api.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def register(app: typer.Typer) -> None:
    """Add these commands to the ``argus`` command."""
    app.add_typer(audit_app, name="audit")
    app.add_typer(token_app, name="token")
    app.command()(purge)
    app.command()(api)
