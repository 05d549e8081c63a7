"""Pure-ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path): request id, metrics, access log,
last-resort 500."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tomato.core.logs import REQUEST_ID
from tomato.gateway.errors import error_response
from tomato.gateway.metrics import Metrics

_RID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
access = logging.getLogger("tomato.access")


class RequestContextMiddleware:
    """Echoes a well-formed `X-Request-Id` (or makes one) and keeps it in `core.logs.REQUEST_ID` while the request is
    served (every log line of the request carries it), records count and latency per route template, writes one
    access log line (method, path without the query, status, duration; never a header), and answers an unexpected
    exception with `500 INTERNAL_ERROR` itself.

    Starlette's own last resort sends the 500 and then re-raises, and uvicorn drops a connection whose app raised
    after responding — without `Connection: close`, so the client's next request on it fails too. Here the
    exception ends with the response and the connection stays usable.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _RID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        bound = REQUEST_ID.set(rid)
        started = time.perf_counter()
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started_response:
                raise  # half an answer is out: only closing the connection can tell the client
            response = error_response(Request(scope), exc)  # logs the exception with the request id
            await response(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], template, status, seconds)
            if self.access_log:
                _access_line(scope, status, seconds, rid)
            REQUEST_ID.reset(bound)


def _access_line(scope: Scope, status: int, seconds: float, rid: str) -> None:
    """The path as sent (still percent-encoded: no control characters reach the log), at most 512 characters."""
    raw = scope.get("raw_path")
    path = (raw.decode("latin-1") if isinstance(raw, bytes) else str(scope["path"])).split("?", 1)[0][:512]
    ms = round(seconds * 1000, 1)
    if not access.isEnabledFor(logging.INFO):
        return
    # the record `access.info` makes, without its search of the call stack for a file and line no format prints
    record = access.makeRecord(
        access.name,
        logging.INFO,
        "",
        0,
        "%s %s %d %.1fms [%s]",
        (scope["method"], path, status, ms, rid),
        None,
        extra={"method": scope["method"], "path": path, "status": status, "duration_ms": ms},
    )
    access.handle(record)
