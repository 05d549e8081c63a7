"""Sign-in, sign-out, the language switch, static files and the dashboard (every role)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from tomato.gateway.console import csrf, dashboard, i18n, session
from tomato.gateway.console.forms import read_form
from tomato.gateway.console.guard import page_route, public_route, viewer_of
from tomato.gateway.console.render import SECURITY_HEADERS, html, redirect
from tomato.gateway.deps import container

public = APIRouter(prefix="/console", route_class=public_route(), include_in_schema=False)
signed_in = APIRouter(prefix="/console", route_class=page_route("operator", "finance"), include_in_schema=False)

STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
_NEXT = re.compile(r"^/console(/[A-Za-z0-9._~/?=&%+-]*)?$")


def safe_next(target: str | None) -> str:
    """Only a path inside the console: never another site (an open redirect) nor `//host`."""
    if target and _NEXT.fullmatch(target) and "//" not in target:
        return target
    return "/console"


def _sign_in_page(request: Request, status: int = 200, error: str | None = None) -> Response:
    c = container(request)
    s = session.unseal(c.box, request.cookies.get(session.COOKIE), c.clock.timestamp())
    if s is None or s.token is not None:
        s = session.new_session(None, c.clock.timestamp())
    request.state.anon_csrf = s.csrf
    reason = request.query_params.get("reason")
    response = html(
        request, "login.html", status=status, error=error, next=safe_next(request.query_params.get("next")),
        revoked=reason == "revoked",
    )  # fmt: skip
    session.set_cookie(response, request, c.box, s)
    return response


@public.get("/login")
async def login_page(request: Request) -> Response:
    """Already signed in with a token still active: straight on; else the form (with a fresh anonymous session)."""
    c = container(request)
    s = session.unseal(c.box, request.cookies.get(session.COOKIE), c.clock.timestamp())
    if s is not None and s.token is not None and await c.merchants.admin_identity(s.token) is not None:
        return redirect(safe_next(request.query_params.get("next")))
    return _sign_in_page(request)


@public.post("/login")
async def login(request: Request) -> Response:
    c = container(request)
    t = request.state.t
    form = await read_form(request)
    anon = session.unseal(c.box, request.cookies.get(session.COOKIE), c.clock.timestamp())
    if not csrf.valid(anon, form.get(csrf.FIELD)):
        return html(request, "error.html", status=403, code="FORBIDDEN", message=t("error.csrf"), details=[])
    token = form.get("token")
    role = await c.merchants.admin_role(token) if token and len(token) <= 256 else None
    if token is None or role is None:
        return _sign_in_page(request, 401, t("login.bad_token"))
    response = redirect(safe_next(form.get("next")))
    session.set_cookie(response, request, c.box, session.new_session(token, c.clock.timestamp()))
    return response


@signed_in.post("/logout")
async def logout(request: Request) -> Response:
    response = redirect("/console/login")
    session.clear_cookie(response, request)
    return response


@public.get("/lang/{code}")
async def switch_language(code: str, request: Request, next: Annotated[str | None, Query()] = None) -> Response:
    """Remembers the chosen language for a year (only a preference: no session needed)."""
    response = redirect(safe_next(next))
    if code in i18n.LANGS:
        response.set_cookie(i18n.COOKIE, code, max_age=365 * 86400, path=session.PATH, samesite="strict",
                            httponly=True, secure=session.is_https(request))  # fmt: skip
    return response


@public.get("/static/{name}")
async def static(name: str) -> Response:
    kind = STATIC_TYPES.get(name)
    if kind is None:
        return Response(b"not found", status_code=404, media_type="text/plain")
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=300"}
    return Response((STATIC / name).read_bytes(), media_type=kind, headers=headers)


@signed_in.get("")
async def home(request: Request) -> Response:
    c = container(request)
    t = request.state.t
    role = viewer_of(request).role
    volume, rate = await dashboard.volume_charts(c, t)
    finance = role == "finance"
    return html(
        request, "dashboard.html",
        volume=volume, rate=rate,
        discrepancies=await dashboard.discrepancy_chart(c, t) if finance else None,
        backlog=await dashboard.backlog_chart(c, t) if not finance else None,
    )  # fmt: skip
