"""Route classes of the console: language, session, role and CSRF checks before a page handler runs.

`page_route(*roles)` is for every signed-in page: no or a bad session → the sign-in page (a POST → 403); a token
revoked since sign-in → signed out at once; a token of another role → 403 page; a POST whose hidden CSRF field is
missing or wrong → 403 page. Errors of the services become an HTML page with their code and message, never JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from tomato.core.errors import TomatoError
from tomato.gateway.console import csrf, i18n, session
from tomato.gateway.console.forms import Form, read_form
from tomato.gateway.console.render import html, redirect
from tomato.gateway.deps import container

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Viewer:
    """Who is signed in: the token (only ever held server-side, from the sealed cookie), its role and its name."""

    token: str
    role: str
    name: str
    session: session.Session
    token_id: str


def set_language(request: Request) -> None:
    lang = i18n.pick(request.headers.get("accept-language"), request.cookies.get(i18n.COOKIE))
    request.state.lang = lang
    request.state.t = i18n.Translator(lang)


def issues(exc: ValidationError | RequestValidationError) -> list[str]:
    out = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
        out.append(f"{loc or 'form'}: {e.get('msg', 'invalid')}")
    return out


def error_page(request: Request, status: int, code: str, message: str, details: list[str] | None = None) -> Response:
    """Rendered by the page's own environment (`request.state.render`, the portal's) or the console's."""
    render = getattr(request.state, "render", html)
    response: Response = render(request, "error.html", status=status, code=code, message=message, details=details or [])
    return response


async def guarded(request: Request, inner: Callable[[Request], Coroutine[Any, Any, Response]]) -> Response:
    try:
        return await inner(request)
    except TomatoError as exc:
        details = [f"{d.get('field')}: {d.get('issue')}" for d in exc.details or []]
        return error_page(request, exc.status, exc.code, exc.message, details)
    except (ValidationError, RequestValidationError) as exc:
        return error_page(request, 422, "INVALID_REQUEST", request.state.t("error.invalid"), issues(exc))


Admit = Callable[[Request, tuple[str, ...]], Coroutine[Any, Any, Response | None]]


def route_class(
    prepare: Callable[[Request], None], admit: Admit | None = None, roles: tuple[str, ...] = ()
) -> type[APIRoute]:
    """A route class that runs `prepare` (the language), then `admit` (session, role, CSRF) when given, then the
    handler with service errors rendered as pages. The console's and the portal's routes are all made here."""

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            inner = super().get_route_handler()

            async def handler(request: Request) -> Response:
                prepare(request)
                if admit is not None and (refused := await admit(request, roles)) is not None:
                    return refused
                return await guarded(request, inner)

            return handler

    return GuardedRoute


def public_route() -> type[APIRoute]:
    return route_class(set_language)


def page_route(*roles: str) -> type[APIRoute]:
    return route_class(set_language, admit, roles)


async def admit(request: Request, roles: tuple[str, ...]) -> Response | None:
    """Sets `request.state.viewer` (and `.form` on a POST), or answers the refusal."""
    c = container(request)
    t = request.state.t
    posted = request.method == "POST"
    s = session.unseal(c.box, request.cookies.get(session.COOKIE), c.clock.timestamp())
    if s is None or s.token is None:
        if posted:
            return error_page(request, 403, "FORBIDDEN", t("error.csrf"))
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(f"/console/login?next={quote(target, safe='')}")
    who = await c.merchants.admin_identity(s.token)  # looked up every time: nothing caches a token's answer
    if who is None:  # revoked (or deleted) since sign-in: signed out at once
        response = redirect("/console/login?reason=revoked")
        session.clear_cookie(response, request)
        return response
    role = who.role
    request.state.viewer = Viewer(token=s.token, role=role, name=who.actor, session=s, token_id=who.token_id)
    return await role_and_form(request, s, role, roles)


async def role_and_form(request: Request, s: session.Session, role: str, roles: tuple[str, ...]) -> Response | None:
    """The signed-in half of admission, shared with the portal: the role, then (a POST) the form and its CSRF
    token; sets `request.state.form`, or answers the refusal."""
    t = request.state.t
    if role not in roles:
        return error_page(request, 403, "FORBIDDEN", t("error.role", roles=" / ".join(roles)))
    if request.method == "POST":
        try:
            form = await read_form(request)
        except TomatoError as exc:
            return error_page(request, exc.status, exc.code, exc.message)
        if not csrf.valid(s, form.get(csrf.FIELD)):
            log.info("a form without a valid CSRF token was refused on %s", request.url.path)
            return error_page(request, 403, "FORBIDDEN", t("error.csrf"))
        request.state.form = form
    return None


def form_of(request: Request) -> Form:
    form: Form = request.state.form
    return form


def viewer_of(request: Request) -> Viewer:
    viewer: Viewer = request.state.viewer
    return viewer
