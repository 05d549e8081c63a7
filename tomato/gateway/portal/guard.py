"""Route classes of the portal: language, session, role and CSRF checks before a page handler runs.

`portal_route(*roles)` is for every signed-in page: no or a bad session → the sign-in page (a POST → 403); a user
disabled, or whose role changed, since sign-in → signed out at once; another role → 403 page; a POST whose hidden
CSRF field is missing or wrong → 403 page. Every page reads only the signed-in user's merchant: an id of another
merchant's object is `404`, exactly like an id that does not exist. Service errors become an HTML page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import quote

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from tomato.gateway.console.forms import Form
from tomato.gateway.console.guard import error_page, role_and_form, route_class
from tomato.gateway.console.render import redirect
from tomato.gateway.deps import container
from tomato.gateway.portal import session
from tomato.gateway.portal.render import set_language
from tomato.merchant.portal_schemas import Member

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Viewer:
    """The signed-in portal user. `name`, `role` and `session` are what the shared templates read."""

    member: Member
    session: session.Session

    @property
    def name(self) -> str:
        return self.member.email

    @property
    def role(self) -> str:
        return self.member.role

    @property
    def mch_no(self) -> str:
        return self.member.mch_no

    @property
    def user_id(self) -> str:
        return self.member.user_id


def public_route() -> type[APIRoute]:
    return route_class(set_language)


def portal_route(*roles: str) -> type[APIRoute]:
    return route_class(set_language, admit, roles)


async def admit(request: Request, roles: tuple[str, ...]) -> Response | None:
    """Sets `request.state.viewer` (and `.form` on a POST), or answers the refusal."""
    c = container(request)
    t = request.state.t
    posted = request.method == "POST"
    s = session.read(request, c.box, c.clock.timestamp())
    parsed = session.parse_token(s.token) if s is not None else None
    if s is None or parsed is None or parsed[2]:
        if posted:
            return error_page(request, 403, "FORBIDDEN", t("error.csrf"))
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(f"/portal/login?next={quote(target, safe='')}")
    member = await c.merchants.users.member(parsed[0], parsed[1])  # looked up every time: nothing caches it
    if member is None:  # disabled, or role changed, since sign-in
        response = redirect("/portal/login?reason=revoked")
        session.clear(response, request)
        return response
    request.state.viewer = Viewer(member=member, session=s)
    return await role_and_form(request, s, member.role, roles)


def form_of(request: Request) -> Form:
    form: Form = request.state.form
    return form


def viewer_of(request: Request) -> Viewer:
    viewer: Viewer = request.state.viewer
    return viewer
