"""The API's endpoints: studies (viewer, auditor, admin) and the audit trail (auditor, admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from argus.api.auth import AUDIT_READERS, DATA_READERS, Caller, require
from argus.api.schemas import AuditPageOut, AuditQuery, StudyDetailOut, StudyPageOut, StudyQuery
from argus.api.state import add_audit_details, engine_of, set_audit_study, set_reason
from argus.results import audit_page, study_detail, study_summary
from storage.audit_query import find_events
from storage.database import session_scope
from storage.repository import get_study, list_studies

__all__ = ["AUDIT_TARGETS", "router"]

router = APIRouter(prefix="/api")

# How the request audit names what each route reads: (action, object type, object id; None = the study UID
# from the path). Every other path is audited as a plain "api_request".
AUDIT_TARGETS: dict[str, tuple[str, str, str | None]] = {
    "/api/studies": ("viewed", "study", "studies"),
    "/api/studies/{study_uid}": ("viewed", "study", None),
    "/api/audit": ("viewed", "audit", "audit_events"),
}

DataReader = Annotated[Caller, Depends(require(DATA_READERS))]
AuditReader = Annotated[Caller, Depends(require(AUDIT_READERS))]


@router.get("/studies", response_model=StudyPageOut, summary="List studies, newest first")
def studies(request: Request, caller: DataReader, query: Annotated[StudyQuery, Query()]) -> dict[str, Any]:
    """Studies, optionally of one patient or accession number, a page at a time."""
    with session_scope(engine_of(request)) as session:
        rows, total = list_studies(
            session,
            patient_id=query.patient,
            accession_number=query.accession,
            limit=query.limit,
            offset=query.offset,
        )
    filters = query.model_dump(exclude_none=True, exclude={"limit", "offset"})
    add_audit_details(request, filters=filters, count=len(rows), total=total)
    return {
        "total": total,
        "offset": query.offset,
        "limit": query.limit,
        "studies": [study_summary(s) for s in rows],
    }


@router.get("/studies/{study_uid}", response_model=StudyDetailOut, summary="One study with its results")
def study(request: Request, caller: DataReader, study_uid: str) -> dict[str, Any]:
    """A study with every run's findings, report and artifacts; 404 if there is no such study."""
    set_audit_study(request, study_uid)
    with session_scope(engine_of(request)) as session:
        row = get_study(session, study_uid=study_uid)
        if row is None:
            reason = f"no study {study_uid}"
            set_reason(request, reason)
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=reason)
        detail = study_detail(session, row)
    add_audit_details(request, runs=[r["run_id"] for r in detail["runs"]])
    return detail


@router.get("/audit", response_model=AuditPageOut, summary="Query the audit trail")
def audit(request: Request, caller: AuditReader, query: Annotated[AuditQuery, Query()]) -> dict[str, Any]:
    """Audit events matching every given filter (the filters of ``argus audit``), a page at a time."""
    filters = query.to_filter()
    if filters.study_uid is not None:
        set_audit_study(request, filters.study_uid)
    with session_scope(engine_of(request)) as session:
        page = find_events(
            session, filters, limit=query.limit, offset=query.offset, newest_first=query.newest
        )
    add_audit_details(request, filters=filters.described(), count=len(page.events), total=page.total)
    return audit_page(page, query.limit)
