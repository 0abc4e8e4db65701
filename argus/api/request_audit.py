"""Every HTTP request becomes one audit event: who (token name), what was read, the status, the reason.

Recorded before the response body leaves: when the event cannot be written the client gets a 500 instead
of data, so nothing is read without a trace.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool

from argus.api.routes import AUDIT_TARGETS
from argus.api.state import actor_of, audit_details, engine_of, reason_of, study_of
from storage.audit import record_event
from storage.database import session_scope

__all__ = ["audit_request"]

_MAX_TEXT = 1000  # longest path / query string kept (object ids and details stay well-bounded)


def _target(request: Request) -> tuple[str, str, str]:
    template = getattr(request.scope.get("route"), "path", None)
    action, object_type, object_id = AUDIT_TARGETS.get(
        str(template), ("api_request", "api", request.url.path[:_MAX_TEXT])
    )
    if object_id is None:
        object_id = str(request.path_params.get("study_uid", ""))[:_MAX_TEXT]
    return action, object_type, object_id


def _record(request: Request, status_code: int) -> None:
    action, object_type, object_id = _target(request)
    details: dict[str, Any] = {
        "method": request.method,
        "path": request.url.path[:_MAX_TEXT],
        "query": request.url.query[:_MAX_TEXT],
        "status": status_code,
        "client": request.client.host if request.client else None,
        **audit_details(request),
    }
    reason = reason_of(request)
    if reason is not None:
        details["reason"] = reason
    with session_scope(engine_of(request)) as session:
        record_event(
            session,
            actor=actor_of(request),
            action=action,
            object_type=object_type,
            object_id=object_id,
            study_uid=study_of(request),
            outcome="success" if status_code < 400 else "failure",
            details=details,
        )


async def audit_request(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """HTTP middleware: run the request, then audit it (also when it failed or was refused)."""
    try:
        response = await call_next(request)
    except Exception:
        await run_in_threadpool(_record, request, 500)
        raise
    # Database work off the event loop: other requests keep being served meanwhile.
    await run_in_threadpool(_record, request, response.status_code)
    return response
