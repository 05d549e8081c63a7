"""The dashboard (every role)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tomato.gateway.portal.guard import portal_route
from tomato.gateway.portal.render import html
from tomato.gateway.portal.roles import EVERYONE

router = APIRouter(prefix="/portal", route_class=portal_route(*EVERYONE), include_in_schema=False)


@router.get("")
async def home(request: Request) -> Response:
    return html(request, "home.html")
