"""Maps every error to the API error body; never leaks stack traces or SQL."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from tomato.core.errors import MalformedJson, RateLimited, ServiceUnavailable, TomatoError

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


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path. A path may be split over several routes, and included
    routers nest, so each method is tried against the whole routing table through its public `matches`."""
    routes = request.scope["app"].router.routes
    return [m for m in _METHODS if any(r.matches({**request.scope, "method": m})[0] is Match.FULL for r in routes)]


def _unparseable(exc: Exception) -> bool:
    """A body that could not be read as JSON: broken syntax (FastAPI's `json_invalid`) or bytes that do not even
    decode (FastAPI's bare 400) — one answer for both."""
    if isinstance(exc, RequestValidationError):
        return any(e.get("type") == "json_invalid" for e in exc.errors())
    return isinstance(exc, StarletteHTTPException) and exc.status_code == 400


def _database_unreachable(exc: Exception) -> bool:
    """The database is down or restarting (the pool cannot connect, or the connection died under the request): an
    outage to retry after, not a bug. Whether a commit in flight landed is unknown, so the retry needs the same
    Idempotency-Key (or out_*_no) — as after any 5xx."""
    return isinstance(exc, ConnectionError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def error_response(request: Request, exc: Exception) -> Response:
    """The one place that turns an exception into status + error body (signed later by the v1 layer)."""
    rid = request_id(request)
    headers: dict[str, str] = {}
    if _unparseable(exc):
        exc = MalformedJson("the body was not JSON")
    if _database_unreachable(exc):
        log.warning("database unreachable on %s %s [%s]: %s", request.method, request.url.path, rid,
                    type(exc).__name__)  # fmt: skip
        exc = ServiceUnavailable("the database cannot be reached right now; retry")
    if isinstance(exc, TomatoError):
        status, body = exc.status, error_body(exc.code, exc.message, rid, exc.details)
        if isinstance(exc, RateLimited | ServiceUnavailable):
            headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, RequestValidationError):
        details = validation_details(exc)
        status, message = 422, "; ".join(f"{d['field']}: {d['issue']}" for d in details)
        body = error_body("INVALID_REQUEST", message, rid, details)
    elif isinstance(exc, StarletteHTTPException):
        status = exc.status_code
        body = error_body(_HTTP_CODES.get(status, "HTTP_ERROR"), str(exc.detail), rid)
        if status == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
    else:
        log.error("unhandled error on %s %s [%s]", request.method, request.url.path, rid, exc_info=exc)
        status, body = 500, error_body("INTERNAL_ERROR", "internal error", rid)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def install(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> Response:
        return error_response(request, exc)

    for kind in (TomatoError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(kind, handle)
