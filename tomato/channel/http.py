"""The HTTP client every adapter gets: explicit timeouts and a guard against calls inside a DB transaction."""

from __future__ import annotations

import httpx

from tomato.core.db import forbid_http_in_transaction


async def _guard(request: httpx.Request) -> None:
    forbid_http_in_transaction(f"channel {request.method} {request.url.host}")


def guarded_client(timeout_s: float, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0)),
        limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
        event_hooks={"request": [_guard]},
        transport=transport,
        follow_redirects=False,
    )
