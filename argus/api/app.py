"""The FastAPI application: ``create_app(settings)`` builds it; ``argus api`` serves it with uvicorn."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from argus.api.request_audit import audit_request
from argus.api.routes import router
from argus.api.state import set_reason
from argus.db import migrated_engine
from argus.settings import Settings, get_settings

__all__ = ["create_app"]

_DESCRIPTION = """Studies and results (roles viewer, auditor, admin) and the audit trail (auditor, admin).

Authenticate with `Authorization: Bearer <token>`; make tokens with
`argus token create --role ROLE --name NAME`. Every request, refused ones included, is recorded
in the audit trail under `token:<name>`.
"""


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())[1:]) or "query"
    if error.get("type") == "extra_forbidden":
        return f"{where}: unknown parameter"
    text = f"{where}: {error.get('msg', 'invalid')}"
    if "input" in error and not isinstance(error["input"], dict):
        text += f" (got {error['input']!r})"
    return text


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with FastAPI's usual ``detail`` list plus one readable ``message`` naming each bad parameter."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    message = "invalid request: " + "; ".join(_describe(e) for e in errors)
    set_reason(request, message)
    detail = jsonable_encoder(errors, custom_encoder={Exception: str})
    return JSONResponse(status_code=422, content={"message": message, "detail": detail})


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API over the database of ``settings`` (default: the process settings), migrated if needed."""
    settings = settings or get_settings()
    app = FastAPI(title="Argus API", version="0.1.0", description=_DESCRIPTION)
    app.state.engine = migrated_engine(settings.resolved_database_url)
    app.include_router(router)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.middleware("http")(audit_request)
    return app
