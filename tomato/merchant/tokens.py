"""Admin bearer tokens: create (the plaintext shown once), resolve, list and revoke.

Only the SHA-256 of a token is stored, and every request resolves its token in the database (nothing is cached), so
a revoked token is refused on its very next request, in every process. A token is looked up by the hash of what the
client presented: no comparison of secrets happens in Python that could leak timing.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from tomato.core.clock import utcnow
from tomato.core.crypto import random_token, sha256_hex
from tomato.core.db import Database
from tomato.core.errors import InvalidRequest
from tomato.merchant import repository as repo
from tomato.merchant.admin_schemas import AdminIdentity, AdminTokenCreated, AdminTokenView
from tomato.merchant.errors import AdminTokenNotFound, AdminTokenRevoked
from tomato.merchant.models import AdminToken

ROLES = ("operator", "finance")
MAX_NAME = 128


def new_token_id() -> str:
    return f"tok_{secrets.token_hex(8)}"


class AdminTokens:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, role: str, name: str = "", token: str | None = None) -> AdminTokenCreated:
        """Stores only the hash. `token` lets settings bootstrap a known one: if it exists already (even revoked)
        nothing changes, so a restart never brings a revoked bootstrap token back."""
        if role not in ROLES:
            raise InvalidRequest.field("role", f"must be one of {', '.join(ROLES)}")
        if len(name) > MAX_NAME:
            raise InvalidRequest.field("name", f"at most {MAX_NAME} characters")
        plaintext = token or f"tpk_{role}_{random_token(24)}"
        token_hash = sha256_hex(plaintext.encode())
        async with self._db.uow() as uow:
            row = await repo.find_token(uow.session, token_hash)
            if row is None:
                row = AdminToken(
                    token_hash=token_hash,
                    token_id=new_token_id(),
                    role=role,
                    name=name or role,
                    created_at=utcnow(),
                    revoked_at=None,
                )
                uow.session.add(row)
                await uow.commit()
        return AdminTokenCreated(**token_view(row).model_dump(), token=plaintext)

    async def identity(self, token: str, *, include_revoked: bool = False) -> AdminIdentity | None:
        """Who a presented token is; None when unknown, or revoked unless `include_revoked` (an audit record of the
        request that revoked its own token still names who acted)."""
        async with self._db.uow() as uow:
            row = await repo.find_token(uow.session, sha256_hex(token.encode()))
        if row is None or (row.revoked_at is not None and not include_revoked):
            return None
        return AdminIdentity(token_id=row.token_id, role=row.role, name=row.name)

    async def get(self, token_id: str) -> AdminTokenView:
        async with self._db.uow() as uow:
            row = await repo.find_token_by_id(uow.session, token_id)
        if row is None:
            raise AdminTokenNotFound(f"admin token {token_id} not found")
        return token_view(row)

    async def page(self, after: str | None, limit: int) -> list[AdminTokenView]:
        async with self._db.uow() as uow:
            rows: Sequence[AdminToken] = await repo.list_tokens(uow.session, after, limit)
            return [token_view(r) for r in rows]

    async def revoke(self, token_id: str) -> AdminTokenView:
        """Unknown → 404 TOKEN_NOT_FOUND; already revoked → 409 ORDER_STATE_CONFLICT (compare-and-set, so of two
        concurrent revocations exactly one succeeds)."""
        async with self._db.uow() as uow:
            if not await repo.revoke_token(uow.session, token_id, utcnow()):
                row = await repo.find_token_by_id(uow.session, token_id)
                if row is None:
                    raise AdminTokenNotFound(f"admin token {token_id} not found")
                raise AdminTokenRevoked(f"admin token {token_id} is already revoked")
            await uow.commit()
        return await self.get(token_id)


def token_view(row: AdminToken) -> AdminTokenView:
    return AdminTokenView(
        id=row.token_id, role=row.role, name=row.name, created_at=row.created_at, revoked_at=row.revoked_at
    )
