"""Process logging: text or JSON lines, with the id of the HTTP request being served on every line logged for it.

The gateway's middleware puts the request id in `REQUEST_ID` (a context variable, so every task the request starts
inherits it); a filter on the handler copies it onto each record, so a line logged anywhere while serving — a
service, SQLAlchemy, uvicorn — carries it. `configure_logging` is called by every process role (and by each
`serve` worker, which starts as a fresh interpreter) and replaces the handler it installed before, so calling it
twice does not double lines. Nothing here logs headers; secrets stay out because no code passes them to a logger.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

REQUEST_ID: ContextVar[str | None] = ContextVar("tomato_request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET = ("alembic", "apscheduler", "httpx", "aio_pika", "aiormq")
# a record's own attributes, and uvicorn's `color_message` (its message again, with terminal colours)
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "request_id", "color_message"
}


class RequestIdFilter(logging.Filter):
    """Adds `record.request_id` (None outside a request); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (RFC 3339 UTC, ms), level, logger, message, request_id when serving a request,
    the fields a call passed with `extra=` (the access log's method, path, status, duration_ms) and exc_info."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            out["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False)


class _TomatoHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so a second `configure_logging` replaces it."""


def configure_logging(
    level: str = "INFO", fmt: Literal["text", "json"] = "text", stream: TextIO | None = None
) -> logging.Handler:
    """Root handler on `stream` (stderr) in the chosen format; chatty libraries at WARNING. uvicorn is started with
    `log_config=None`, so its lines (start-up, errors) reach this handler too. Returns the handler installed."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _TomatoHandler) or _is_basic_stderr(handler):
            root.removeHandler(handler)
    handler = _TomatoHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler


def _is_basic_stderr(handler: logging.Handler) -> bool:
    """A plain stderr handler left by `logging.basicConfig` (it would print every line a second time)."""
    return type(handler) is logging.StreamHandler and getattr(handler, "stream", None) is sys.stderr
