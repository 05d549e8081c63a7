"""Commands into and read models out of the admin side of the merchant context: admin tokens and the audit trail.

Kept apart from schemas.py (merchants, apps, fee plans): these describe the operators themselves, not merchants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tomato.core.clock import UtcDateTime
from tomato.core.text import SafeText

AdminRole = Literal["operator", "finance"]
Via = Literal["api", "console", "cli"]
VIAS: tuple[str, ...] = ("api", "console", "cli", "portal")
TOKEN_ID_PATTERN = r"^tok_[0-9a-f]{16}$"


# --- admin tokens ----------------------------------------------------------------------------------------------


class AdminTokenCreate(BaseModel):
    """`POST /admin/tokens`: a new bearer token of `role`, called `name` in lists and audit rows."""

    model_config = ConfigDict(extra="forbid")

    role: AdminRole = Field(description="what the token may do: `operator` or `finance`")
    name: SafeText = Field(min_length=1, max_length=128, description="who or what holds it, shown as role:name")


class AdminTokenView(BaseModel):
    """A token as lists show it: never its secret nor the secret's hash."""

    id: str = Field(description="the token's public id, tok_ + 16 hex digits")
    role: str = Field(description="`operator` or `finance`")
    name: str = Field(description="the holder's name; audit rows record the actor as role:name")
    created_at: UtcDateTime = Field(description="when the token was created (RFC 3339, UTC)")
    revoked_at: UtcDateTime | None = Field(description="when it was revoked; null while it is valid")


class AdminTokenCreated(AdminTokenView):
    """Returned once at creation: the only time the token itself is ever shown."""

    token: str = Field(description="the bearer token; shown only in this answer, stored only as a hash")


class AdminTokenPage(BaseModel):
    data: list[AdminTokenView] = Field(description="tokens, oldest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


@dataclass(frozen=True)
class AdminIdentity:
    """Who an active token is: what audit rows record as the actor."""

    token_id: str
    role: str
    name: str

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.name}"


# --- the audit trail -------------------------------------------------------------------------------------------


class AuditEntryView(BaseModel):
    id: str = Field(description="the record's id, AU…; newer records have greater numbers")
    at: UtcDateTime = Field(description="when the action succeeded (RFC 3339, UTC)")
    actor: str = Field(description="role:name of the token that acted (as named then); `cli:<user>` from the CLI")
    actor_token_id: str | None = Field(
        description="the acting token's id (tok_…), or the portal user's id (U…); null for CLI actions"
    )
    via: str = Field(description="`api`, `console`, `cli` or `portal` (a merchant's user, actor `portal:role:email`)")
    action: str = Field(description="what was done, e.g. `app.freeze`, `reconciliation.resolve` (docs/audit.md)")
    target: str = Field(description="what it was done to, e.g. an app id, a merchant number, a token id")
    before: dict[str, Any] | None = Field(description="the target's view before (secrets redacted); null: none")
    after: dict[str, Any] | None = Field(description="the target's view after (secrets redacted); null: none")
    request_id: str | None = Field(description="the X-Request-Id of the request that acted, when there was one")


class AuditPage(BaseModel):
    data: list[AuditEntryView] = Field(description="audit records, newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


@dataclass(frozen=True)
class AuditFilter:
    """What `GET /admin/audit` narrows by; None matches everything. `actor` is a token id (tok_…) or role:name;
    `since` is inclusive, `until` exclusive."""

    action: str | None = None
    actor: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    mch_no: str | None = None  # a merchant's own portal actions (its owner's activity page)
