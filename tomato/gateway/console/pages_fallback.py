"""Any other path under /console: a 404 page in the console's language (included last, after every real page)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tomato.gateway.console.guard import error_page, public_route
from tomato.gateway.console.render import redirect

router = APIRouter(prefix="/console", route_class=public_route(), include_in_schema=False)


@router.get("/{rest:path}")
async def not_found(rest: str, request: Request) -> Response:
    if rest == "":  # "/console/": the dashboard's own address is "/console"
        return redirect("/console")
    return error_page(request, 404, "NOT_FOUND", request.state.t("error.not_found"))
