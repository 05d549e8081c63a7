"""The route class of the merchant API `/v1`: every request authenticated, every response signed (errors too).

Order of checks (API.md §1): app known (else unsigned 401) → body ≤ 64 KiB (413, before parsing or verifying) →
header syntax → timestamp window → signature → nonce → merchant/app status → rate limit → idempotency.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from tomato.core.crypto import random_token
from tomato.core.errors import AuthError, PayloadTooLarge, RateLimited
from tomato.gateway import auth
from tomato.gateway.deps import container
from tomato.gateway.errors import error_response
from tomato.gateway.idempotency import IdempotencyGuard
from tomato.merchant.errors import UnknownApp
from tomato.merchant.schemas import AppAuth
from tomato.merchant.signing import sign_outbound

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


async def read_body_capped(request: Request, limit: int = MAX_BODY) -> bytes:
    """Reads at most `limit` bytes; a declared or streamed larger body raises before anything is parsed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body over {limit // 1024} KiB")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body over {limit // 1024} KiB")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # noqa: SLF001 - lets FastAPI parse the bytes we already read and verified
    return body


def path_and_query(request: Request) -> str:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return (raw + (b"?" + query if query else b"")).decode("latin-1")


def current_app(request: Request) -> AppAuth:
    app: AppAuth = request.state.app
    return app


class SignedRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            app: AppAuth | None = None
            key_index = 0
            try:
                app = await self._identify(request)
                body = await read_body_capped(request)
                key_index = await self._authenticate(request, app, body)
                response = await self._run(request, app, body, inner)
            except Exception as exc:
                response = error_response(request, exc)
            if app is not None:
                await self._sign(request, app, key_index, response)
            return response

        return handler

    @staticmethod
    async def _identify(request: Request) -> AppAuth:
        app_id = request.headers.get("tomato-app-id")
        if not app_id or len(app_id) > 64:
            raise UnknownApp("Tomato-App-Id: missing")
        return await container(request).merchants.app_auth(app_id)

    @staticmethod
    async def _authenticate(request: Request, app: AppAuth, body: bytes) -> int:
        c = container(request)
        h = request.headers
        ts, nonce, sig = auth.parse_headers(h.get("tomato-timestamp"), h.get("tomato-nonce"), h.get("tomato-signature"))
        auth.check_timestamp(ts, c.clock.timestamp(), c.settings.timestamp_window_s)
        message = auth.signed_message(request.method, path_and_query(request), str(ts), nonce, body)
        key_index = auth.verify_signature(app, sig, message)
        try:
            await auth.consume_nonce(c.nonces, app.app_id, nonce)
        except AuthError:
            raise
        except Exception:
            log.warning("nonce store unavailable; accepting request without replay check")
        c.merchants.ensure_usable(app)
        await _rate_limit(request, app)
        request.state.app = app
        return key_index

    @staticmethod
    async def _run(
        request: Request, app: AppAuth, body: bytes, inner: Callable[[Request], Coroutine[Any, Any, Response]]
    ) -> Response:
        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        if key is None:
            return await inner(request)
        c = container(request)
        guard = IdempotencyGuard(c.cache, c.settings.idempotency_ttl_s)
        guard.validate(key)
        stored = await guard.begin(app.app_id, key, body)
        if stored is not None:
            return Response(stored.body, status_code=stored.status, media_type="application/json")
        try:
            response = await inner(request)
        except BaseException:
            await guard.finish(app.app_id, key, body, 500, b"")
            raise
        await guard.finish(app.app_id, key, body, response.status_code, bytes(response.body))
        return response

    @staticmethod
    async def _sign(request: Request, app: AppAuth, key_index: int, response: Response) -> None:
        c = container(request)
        platform = await c.merchants.platform_signer() if app.sign_type == "RSA-SHA256" else None
        ts, nonce = str(int(c.clock.timestamp())), random_token(18).replace("-", "a").replace("_", "b")
        response.headers["Tomato-Timestamp"] = ts
        response.headers["Tomato-Nonce"] = nonce
        response.headers["Tomato-Signature"] = sign_outbound(app, platform, ts, nonce, bytes(response.body), key_index)


async def _rate_limit(request: Request, app: AppAuth) -> None:
    """Per-app GCRA; fails open (with a log line) when the limiter's backend is down."""
    c = container(request)
    try:
        decision = await c.cache.rate_limit(f"app:{app.app_id}", c.settings.rate_limit_rps, c.settings.rate_limit_burst)
    except Exception:
        log.warning("rate limiter unavailable; failing open")
        return
    if not decision.allowed:
        raise RateLimited("too many requests for this app", retry_after=max(1, int(decision.retry_after_s + 0.999)))
