"""Jinja2 rendering for the console (autoescape on, undefined names fail) and the headers every page carries.

The CSP allows only this origin's stylesheet and script (no inline script or style at all; the charts are inline SVG
drawn with attributes, which the CSP does not govern); pages are never framed, cached or sent as a referrer.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tomato.core.clock import as_utc

TEMPLATES = Path(__file__).parent / "templates"
_FLASH = re.compile(r"[a-z_]{1,32}", re.ASCII)  # `?ok=<name>` after a form: the page shows the catalogue's flash.<name>

CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def money(fen: int | None) -> str:
    """Integer fen as yuan for reading, "¥1,234.56"; never through a float."""
    if fen is None:
        return "—"
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(int(fen)), 100)
    return f"{sign}¥{yuan:,}.{cents:02d}"


def percent(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio * 100:.1f}%"


def when(value: datetime | str | None, tz: str = "Asia/Shanghai") -> str:
    """A stored UTC time in the business time zone, to the second."""
    if value is None or value == "":
        return "—"
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    return as_utc(moment).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")


def build_environment(*template_dirs: Path) -> Environment:
    """The console's templates, after `template_dirs` when given (the portal's own, which reuse the charts)."""
    env = Environment(
        loader=FileSystemLoader([*template_dirs, TEMPLATES]),
        autoescape=select_autoescape(enabled_extensions=("html", "svg"), default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["percent"] = percent
    env.filters["when"] = when
    return env


ENV = build_environment()


def html(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """Renders `template` with the request's viewer (if signed in), translator and language."""
    return render_page(ENV, request, template, status, **context)


def render_page(env: Environment, request: Request, template: str, status: int = 200, **context: Any) -> Response:
    state = request.state
    viewer = getattr(state, "viewer", None)
    base = {
        "t": state.t,
        "lang": state.lang,
        "viewer": viewer,
        "csrf": viewer.session.csrf if viewer is not None else getattr(state, "anon_csrf", ""),
        "path": request.url.path,
        "query": request.url.query,
        "ok": ok if (ok := request.query_params.get("ok", "")) and _FLASH.fullmatch(ok) else None,
        "tz": request.app.state.container.settings.business_timezone,
    }
    body = env.get_template(template).render(**base, **context)
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def redirect(url: str) -> Response:
    """303: the browser follows with a GET, so reloading the next page never posts the form again."""
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)
