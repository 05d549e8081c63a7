"""FastAPI dependencies: the process container and admin role checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from tomato.bootstrap import Container
from tomato.core.errors import Forbidden, Unauthenticated


def container(request: Request) -> Container:
    c: Container = request.app.state.container
    return c


def require_role(*roles: str) -> Callable[[Request], Awaitable[str]]:
    """Bearer-token check: no or unknown token → 401, a token of another role → 403."""

    async def check(request: Request) -> str:
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

    return check
