"""Maps every error to the API error body; never leaks stack traces or SQL."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tomato.core.errors import RateLimited, ServiceUnavailable, TomatoError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "INVALID_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    422: "INVALID_REQUEST",
}


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def error_body(code: str, message: str, rid: str, details: list[dict[str, Any]] | None = None) -> bytes:
    err: dict[str, Any] = {"code": code, "message": message, "request_id": rid}
    if details:
        err["details"] = details
    return json.dumps({"error": err}, ensure_ascii=False, separators=(",", ":")).encode()


def validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")]
        details.append({"field": ".".join(loc) or "body", "issue": str(e.get("msg", "invalid"))})
    return details


def error_response(request: Request, exc: Exception) -> Response:
    """The one place that turns an exception into status + error body (signed later by the v1 layer)."""
    rid = request_id(request)
    headers: dict[str, str] = {}
    if isinstance(exc, TomatoError):
        status, body = exc.status, error_body(exc.code, exc.message, rid, exc.details)
        if isinstance(exc, RateLimited | ServiceUnavailable):
            headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, RequestValidationError):
        details = validation_details(exc)
        malformed = any(e.get("type") == "json_invalid" for e in exc.errors())
        status = 400 if malformed else 422
        message = "malformed JSON body" if malformed else "; ".join(f"{d['field']}: {d['issue']}" for d in details)
        body = error_body("INVALID_REQUEST", message, rid, details)
    elif isinstance(exc, StarletteHTTPException):
        status = exc.status_code
        body = error_body(_HTTP_CODES.get(status, "HTTP_ERROR"), str(exc.detail), rid)
    else:
        log.error("unhandled error on %s %s [%s]", request.method, request.url.path, rid, exc_info=exc)
        status, body = 500, error_body("INTERNAL_ERROR", "internal error", rid)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def install(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> Response:
        return error_response(request, exc)

    for kind in (TomatoError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(kind, handle)
