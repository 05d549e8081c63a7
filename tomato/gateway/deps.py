"""FastAPI dependencies: the process container and admin role checks."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from tomato.bootstrap import Container
from tomato.core.errors import Forbidden, Unauthenticated
from tomato.gateway import params


def container(request: Request) -> Container:
    c: Container = request.app.state.container
    return c


async def check_role(request: Request, roles: tuple[str, ...]) -> str:
    """Bearer-token check: no or unknown token → 401, a token of another role → 403."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing bearer token")
    role = await container(request).merchants.admin_role(token.strip())
    if role is None:
        raise Unauthenticated("unknown or revoked token")
    if role not in roles:
        raise Forbidden(f"this needs the {' or '.join(roles)} role")
    return role


def admin_route(*roles: str) -> type[APIRoute]:
    """A route class whose handler checks the bearer token before FastAPI reads or parses the body: the token
    answers first (401/403), then the query and path parameters (gateway.params) and the body (400/422)."""

    class AdminRoute(APIRoute):
        def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
            # the roles go into the OpenAPI document with the operation (gateway.openapi)
            kwargs["openapi_extra"] = {**(kwargs.get("openapi_extra") or {}), "x-roles": list(roles)}
            super().__init__(path, endpoint, **kwargs)

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            inner = super().get_route_handler()

            async def handler(request: Request) -> Response:
                request.state.admin_role = await check_role(request, roles)
                params.refuse_control_characters(request)
                return await inner(request)

            return handler

    return AdminRoute
