"""The route class of the merchant API `/v1`: every request authenticated, every response signed (errors too).

Order of checks: body ≤ 64 KiB (413 before parsing or verifying, signed only when the app is known) → app known
(else unsigned 401) → header syntax → timestamp window → signature → nonce → merchant/app status → rate limit →
query and path parameters free of control characters (gateway.params) → idempotency. When the checks that need no
I/O all pass, the nonce, the rate limit and the Idempotency-Key claim are one call to the store (`Cache.admit`, one
Redis round trip), whose answer is read in the same order; otherwise they are made one by one. A `/v1` request that
matches no route (404, or 405 for a wrong method) passes the same checks before it gets its answer, so every answer
to a known app is signed. The nonce store and the rate limiter fail closed: when
their backend cannot be reached the request is refused with 503 SERVICE_UNAVAILABLE before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from tomato.core.cache import NonceStore
from tomato.core.crypto import random_token
from tomato.core.errors import AuthError, PayloadTooLarge, RateLimited, ServiceUnavailable, TomatoError
from tomato.gateway import auth, params
from tomato.gateway.deps import container
from tomato.gateway.errors import error_response
from tomato.gateway.idempotency import KEY_RE, RUNNING_TTL_S, IdempotencyGuard, IdempotencyScope
from tomato.merchant.errors import UnknownApp
from tomato.merchant.schemas import AppAuth
from tomato.merchant.signing import sign_outbound

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


async def read_body_capped(request: Request, limit: int = MAX_BODY) -> bytes:
    """Reads at most `limit` bytes; a declared or streamed larger body raises before anything is parsed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
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
            return await self.answer(request, inner)

        return handler

    @classmethod
    async def answer(cls, request: Request, inner: Callable[[Request], Coroutine[Any, Any, Response]]) -> Response:
        """Authenticates the request, runs `inner`, and signs whatever comes out for a known app."""
        app: AppAuth | None = None
        key_index = 0
        try:
            try:
                body = await read_body_capped(request)
            except PayloadTooLarge:
                app = await cls._known_app(request)
                raise
            app = await cls._identify(request)
            key_index = await cls._authenticate(request, app, body)
            response = await cls._run(request, app, body, inner)
        except Exception as exc:
            response = error_response(request, exc)
        if app is not None:
            await cls._sign(request, app, key_index, response)
        return response

    @staticmethod
    async def _identify(request: Request) -> AppAuth:
        app_id = request.headers.get("tomato-app-id")
        if not app_id:
            raise AuthError("Tomato-App-Id: missing")
        if len(app_id) > 64:
            raise UnknownApp("Tomato-App-Id: unknown app")
        return await container(request).merchants.app_auth(app_id)

    @classmethod
    async def _known_app(cls, request: Request) -> AppAuth | None:
        """The app to sign a refusal with, or None when it is missing or unknown (the answer goes unsigned)."""
        try:
            return await cls._identify(request)
        except AuthError:
            return None

    @staticmethod
    async def _authenticate(request: Request, app: AppAuth, body: bytes) -> int:
        c = container(request)
        h = request.headers
        parsed = auth.parse_headers(h.get("tomato-timestamp"), h.get("tomato-nonce"), h.get("tomato-signature"))
        auth.check_timestamp(parsed.timestamp, c.clock.timestamp(), c.settings.timestamp_window_s)
        # the signature covers the timestamp as sent: `0` + ts is another message than ts
        message = auth.signed_message(
            request.method, path_and_query(request), parsed.timestamp_text, parsed.nonce, body
        )
        key_index = auth.verify_signature(app, parsed.signature, message)
        if await _admit(request, app, parsed.nonce, body):
            request.state.app = app
            return key_index
        async with _store_guard("replay protection"):
            await auth.consume_nonce(c.nonces, app.app_id, parsed.nonce)
        c.merchants.ensure_usable(app)
        await _rate_limit(request, app)
        request.state.app = app
        params.refuse_control_characters(request)
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
        admitted: _Claim | None = request.scope.get(_CLAIM)
        if admitted is not None:  # claimed (or found) by the admission call already
            scope = admitted.scope
            stored = None if admitted.standing is None else guard.replay(admitted.standing, admitted.digest)
        else:
            guard.validate(key)
            scope = IdempotencyScope(app.app_id, request.method, request.url.path, key)
            async with _store_guard("Idempotency-Key"):
                stored = await guard.begin(scope, body)
        if stored is not None:
            headers = {"Idempotent-Replayed": "true"}
            return Response(stored.body, status_code=stored.status, media_type="application/json", headers=headers)
        try:
            response = await inner(request)
        except BaseException:
            await _best_effort(guard.finish(scope, body, 500, b""))
            raise
        # the order or refund may be committed by now: failing to store the answer must not turn it into an error
        await _best_effort(guard.finish(scope, body, response.status_code, bytes(response.body)))
        return response

    @staticmethod
    async def _sign(request: Request, app: AppAuth, key_index: int, response: Response) -> None:
        c = container(request)
        platform = await c.merchants.platform_signer() if app.sign_type == "RSA-SHA256" else None
        ts, nonce = str(int(c.clock.timestamp())), random_token(18).replace("-", "a").replace("_", "b")
        response.headers["Tomato-Timestamp"] = ts
        response.headers["Tomato-Nonce"] = nonce
        response.headers["Tomato-Signature"] = sign_outbound(app, platform, ts, nonce, bytes(response.body), key_index)


def install_unmatched(app: FastAPI) -> None:
    """Replaces the HTTP-error handler of `errors.install` (call it after): a `/v1` request no route took (404, or
    405 with `Allow`) goes through the same checks as any other, so a known app's answer is signed like every `/v1`
    answer and only an unidentified app's stays unsigned."""

    async def handle(request: Request, exc: Exception) -> Response:
        path = request.url.path
        merchant_api = path == "/v1" or path.startswith("/v1/")
        if not (merchant_api and isinstance(exc, StarletteHTTPException) and exc.status_code in (404, 405)):
            return error_response(request, exc)

        async def refuse(_: Request) -> Response:
            raise exc

        return await SignedRoute.answer(request, refuse)

    app.add_exception_handler(StarletteHTTPException, handle)


_CLAIM = "tomato.idempotency_claim"


@dataclass(frozen=True)
class _Claim:
    """The Idempotency-Key slot as the admission call left it: claimed by us (`standing` None) or the value found."""

    scope: IdempotencyScope
    digest: str
    standing: str | None


async def _admit(request: Request, app: AppAuth, nonce: str, body: bytes) -> bool:
    """Nonce, rate limit and Idempotency-Key claim in one store call, when every check between them that needs no
    I/O passes (app usable, parameters clean, key well-formed) and one store keeps all three; raises what the
    separate checks would raise. False: nothing was done, make the separate calls (in order, with their errors)."""
    c = container(request)
    cache = c.cache
    if c.nonces.cache is not cache:
        return False
    try:
        c.merchants.ensure_usable(app)
    except TomatoError:
        return False
    if params.first_issue(request) is not None:
        return False
    key = request.headers.get("idempotency-key") if request.method == "POST" else None
    if key is not None and not KEY_RE.match(key):
        return False
    settings = c.settings
    slot, value, digest = None, "", ""
    if key is not None:
        scope = IdempotencyScope(app.app_id, request.method, request.url.path, key)
        slot = scope.slot
        digest, value = IdempotencyGuard.running(body)
    async with _store_guard("replay protection"):
        admission = await cache.admit(
            NonceStore.key(app.app_id, nonce), c.nonces.ttl_s, f"app:{app.app_id}", settings.rate_limit_rps,
            settings.rate_limit_burst, slot, value, RUNNING_TTL_S,
        )  # fmt: skip
    if not admission.nonce_fresh:
        raise auth.NonceReused("Tomato-Nonce was already used")
    decision = admission.rate
    assert decision is not None
    if not decision.allowed:
        raise RateLimited("too many requests for this app", retry_after=max(1, int(decision.retry_after_s + 0.999)))
    if slot is not None:
        request.scope[_CLAIM] = _Claim(scope, digest, None if admission.claimed else admission.stored)
    return True


async def _rate_limit(request: Request, app: AppAuth) -> None:
    """Per-app GCRA; fails closed (503) when the limiter's backend is down."""
    c = container(request)
    async with _store_guard("rate limiting"):
        decision = await c.cache.rate_limit(f"app:{app.app_id}", c.settings.rate_limit_rps, c.settings.rate_limit_burst)
    if not decision.allowed:
        raise RateLimited("too many requests for this app", retry_after=max(1, int(decision.retry_after_s + 0.999)))


@asynccontextmanager
async def _store_guard(what: str) -> AsyncIterator[None]:
    """Turns a failure of the request-guard store (Redis) into 503: a safety check is never skipped."""
    try:
        yield
    except TomatoError:
        raise
    except Exception as exc:
        log.warning("%s store unreachable; refusing the request: %r", what, exc)
        raise ServiceUnavailable(f"{what} is temporarily unavailable; retry later") from exc


async def _best_effort(step: Awaitable[None]) -> None:
    try:
        await step
    except Exception as exc:
        log.warning("could not store the Idempotency-Key response; answering it anyway: %r", exc)
