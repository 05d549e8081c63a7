"""`Idempotency-Key` on POST: a key is scoped per app, method and path. The same key on the same path with the same
bytes within 24 h replays the first response; different bytes, or the first request still running, is a conflict;
the same key on another path is another key. Responses ≥ 400 are not stored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tomato.core.cache import Cache
from tomato.core.crypto import sha256_hex
from tomato.core.errors import Conflict, InvalidRequest

KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
RUNNING_TTL_S = 120


class IdempotencyKeyConflict(Conflict):
    code = "IDEMPOTENCY_KEY_CONFLICT"


@dataclass(frozen=True)
class IdempotencyScope:
    """Where a key applies: one app, one method, one path (the key cannot contain ':', so slots never collide)."""

    app_id: str
    method: str
    path: str
    key: str

    @property
    def slot(self) -> str:
        return f"idem:{self.app_id}:{self.method}:{self.path}:{self.key}"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes


class IdempotencyGuard:
    def __init__(self, cache: Cache, ttl_s: int) -> None:
        self._cache = cache
        self._ttl = ttl_s

    @staticmethod
    def validate(key: str) -> None:
        if not KEY_RE.match(key):
            raise InvalidRequest.field("Idempotency-Key", "1-64 characters of [A-Za-z0-9_-]")

    async def begin(self, scope: IdempotencyScope, body: bytes) -> StoredResponse | None:
        """Claims the key (None: go ahead) or returns the stored response to replay; raises on conflict."""
        slot = scope.slot
        digest, running = self.running(body)
        if await self._cache.set_nx(slot, running, RUNNING_TTL_S):
            return None
        raw = await self._cache.get(slot)
        if raw is None:  # expired between the two calls: claim again
            return await self.begin(scope, body)
        return self.replay(raw, digest)

    @staticmethod
    def running(body: bytes) -> tuple[str, str]:
        """The body's digest, and the slot's value while its first request runs (claimed for RUNNING_TTL_S)."""
        digest = sha256_hex(body)
        return digest, json.dumps({"h": digest, "s": "running"})

    @staticmethod
    def replay(raw: str, digest: str) -> StoredResponse:
        """The stored answer for a repeat of the same bytes; raises on other bytes or while the first still runs."""
        stored = json.loads(raw)
        if stored["h"] != digest:
            raise IdempotencyKeyConflict("Idempotency-Key was used with a different request body")
        if stored["s"] == "running":
            raise IdempotencyKeyConflict("a request with this Idempotency-Key is still running")
        return StoredResponse(int(stored["status"]), stored["body"].encode())

    async def finish(self, scope: IdempotencyScope, body: bytes, status: int, response: bytes) -> None:
        slot = scope.slot
        if status >= 400:
            await self._cache.delete(slot)
            return
        value = {"h": sha256_hex(body), "s": "done", "status": status, "body": response.decode()}
        await self._cache.set(slot, json.dumps(value), self._ttl)
