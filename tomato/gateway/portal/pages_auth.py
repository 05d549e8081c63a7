"""Sign-in (password, then a one-time code when the user has TOTP on), invitations, sign-out and the language
switch. The anonymous session carries the forms' CSRF token, as in the console."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from tomato.core.errors import TomatoError
from tomato.gateway.console import csrf, i18n
from tomato.gateway.console.forms import Form, read_form
from tomato.gateway.console.render import redirect
from tomato.gateway.deps import container
from tomato.gateway.portal import qr, session
from tomato.gateway.portal.guard import portal_route, public_route
from tomato.gateway.portal.render import html
from tomato.gateway.portal.roles import EVERYONE
from tomato.merchant.portal_schemas import Member

public = APIRouter(prefix="/portal", route_class=public_route(), include_in_schema=False)
signed_in = APIRouter(prefix="/portal", route_class=portal_route(*EVERYONE), include_in_schema=False)

_NEXT = re.compile(r"^/portal(/[A-Za-z0-9._~/?=&%+-]*)?$")
_INVITE = re.compile(r"[A-Za-z0-9_-]{16,64}", re.ASCII)


def safe_next(target: str | None) -> str:
    """Only a path inside the portal: never another site (an open redirect) nor `//host`."""
    if target and _NEXT.fullmatch(target) and "//" not in target:
        return target
    return "/portal"


def _anonymous(request: Request) -> session.Session:
    c = container(request)
    s = session.read(request, c.box, c.clock.timestamp())
    if s is None:
        s = session.new_session(None, c.clock.timestamp())
    request.state.anon_csrf = s.csrf
    return s


def _page(request: Request, template: str, s: session.Session, status: int = 200, **context: object) -> Response:
    response = html(request, template, status=status, **context)
    session.write(response, request, container(request).box, s)
    return response


def _sign_in_page(request: Request, status: int = 200, error: str | None = None) -> Response:
    s = _anonymous(request)
    if s.token is not None:  # a half or whole sign-in: start again with a clean anonymous session
        s = session.new_session(None, container(request).clock.timestamp())
        request.state.anon_csrf = s.csrf
    return _page(
        request, "login.html", s, status, error=error, next=safe_next(request.query_params.get("next")),
        revoked=request.query_params.get("reason") == "revoked",
    )  # fmt: skip


async def _checked_form(request: Request) -> tuple[Form, session.Session] | Response:
    s = _anonymous(request)
    form = await read_form(request)
    if not csrf.valid(s, form.get(csrf.FIELD)):
        return html(request, "error.html", status=403, code="FORBIDDEN", message=request.state.t("error.csrf"),
                    details=[])  # fmt: skip
    return form, s


def _signed_in(request: Request, member: Member, target: str) -> Response:
    c = container(request)
    response = redirect(safe_next(target))
    token = session.token_for(member.user_id, member.session_epoch)
    session.write(response, request, c.box, session.new_session(token, c.clock.timestamp()))
    return response


@public.get("/login")
async def login_page(request: Request) -> Response:
    return _sign_in_page(request)


@public.post("/login")
async def login(request: Request) -> Response:
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    form, _ = checked
    c = container(request)
    try:
        member, needs_code = await c.merchants.users.sign_in(form.get("email") or "", form.get("password") or "")
    except TomatoError as exc:
        return _sign_in_page(request, exc.status, request.state.t(f"login.{exc.code.lower()}"))
    if needs_code:
        pending = session.token_for(member.user_id, member.session_epoch, pending=True)
        response = redirect(f"/portal/login/code?next={safe_next(form.get('next'))}")
        session.write(response, request, c.box, session.new_session(pending, c.clock.timestamp()))
        return response
    return _signed_in(request, member, form.get("next") or "/portal")


def _pending(request: Request, s: session.Session) -> str | None:
    parsed = session.parse_token(s.token)
    c = container(request)
    if parsed is None or not parsed[2] or c.clock.timestamp() - s.issued_at > session.PENDING_S:
        return None
    return parsed[0]


@public.get("/login/code")
async def code_page(request: Request) -> Response:
    s = _anonymous(request)
    if _pending(request, s) is None:
        return redirect("/portal/login")
    return _page(request, "login_code.html", s, error=None, next=safe_next(request.query_params.get("next")))


@public.post("/login/code")
async def code(request: Request) -> Response:
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    form, s = checked
    user_id = _pending(request, s)
    if user_id is None:
        return redirect("/portal/login")
    try:
        member = await container(request).merchants.users.verify_totp(user_id, form.get("code"))
    except TomatoError as exc:
        if exc.code == "ACCOUNT_LOCKED":
            return _sign_in_page(request, exc.status, request.state.t("login.account_locked"))
        return _page(request, "login_code.html", s, exc.status, error=request.state.t("login.bad_code"),
                     next=safe_next(form.get("next")))  # fmt: skip
    return _signed_in(request, member, form.get("next") or "/portal")


@public.get("/invite/{token}")
async def invite_page(token: str, request: Request) -> Response:
    s = _anonymous(request)
    details = await container(request).merchants.users.invite_details(token if _INVITE.fullmatch(token) else "")
    uri = qr.otpauth_uri(details.totp_secret, details.email)
    return _page(request, "invite.html", s, token=token, invite=details, qr=qr.svg(uri), error=None)


@public.post("/invite/{token}")
async def accept_invite(token: str, request: Request) -> Response:
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    form, s = checked
    users = container(request).merchants.users
    valid = token if _INVITE.fullmatch(token) else ""
    details = await users.invite_details(valid)
    if form.get("password") != form.get("password_again"):
        error = request.state.t("portal.invite.mismatch")
    else:
        try:
            member = await users.accept_invite(
                valid, form.get("password") or "", form.get("code"), enable_totp=form.get("totp") == "on"
            )
        except TomatoError as exc:
            if exc.status == 404:
                raise
            error = "; ".join(f"{d.get('field')}: {d.get('issue')}" for d in exc.details or []) or exc.message
        else:
            return _signed_in(request, member, "/portal?ok=welcome")
    uri = qr.otpauth_uri(details.totp_secret, details.email)
    return _page(request, "invite.html", s, 422, token=token, invite=details, qr=qr.svg(uri), error=error)


@signed_in.post("/logout")
async def logout(request: Request) -> Response:
    response = redirect("/portal/login")
    session.clear(response, request)
    return response


@public.get("/lang/{code}")
async def switch_language(code: str, request: Request, next: Annotated[str | None, Query()] = None) -> Response:
    response = redirect(safe_next(next))
    if code in i18n.LANGS:
        response.set_cookie(i18n.COOKIE, code, max_age=365 * 86400, path=session.PATH, samesite="strict",
                            httponly=True, secure=request.url.scheme == "https")  # fmt: skip
    return response
