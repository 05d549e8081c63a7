"""What the merchant portal's user service takes and returns."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tomato.core.clock import UtcDateTime

PORTAL_ROLES: tuple[str, ...] = ("owner", "developer", "finance", "support")
MIN_PASSWORD = 10
MAX_PASSWORD = 128


class PortalInvite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=254, description="the person's email: their sign-in name")
    role: str = Field(description="owner, developer, finance or support")


class PortalUserView(BaseModel):
    user_id: str = Field(description="the user's id, U…")
    mch_no: str = Field(description="the merchant the user belongs to")
    email: str = Field(description="the sign-in name, lower-case")
    role: str = Field(description="owner, developer, finance or support")
    status: str = Field(description="INVITED (has not set a password yet), ACTIVE or DISABLED")
    totp_enabled: bool = Field(description="whether sign-in asks for a one-time code")
    locked_until: UtcDateTime | None = Field(description="set while the account is locked after failed sign-ins")
    invited_by: str = Field(description="who made the invitation (`console:…`, `operator:…`, `portal:owner:…`)")
    created_at: UtcDateTime = Field(description="when the invitation was made (RFC 3339 UTC)")
    last_login_at: UtcDateTime | None = Field(description="the last successful sign-in; null: never")


class PortalInvitation(BaseModel):
    user: PortalUserView = Field(description="the invited user, status INVITED")
    invite_token: str = Field(description="shown once: the person opens /portal/invite/<token> to set a password")
    invite_expires_at: UtcDateTime = Field(description="the link works until then (7 days), once")


class Member(BaseModel):
    """A signed-in portal user as a page sees it."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    mch_no: str
    email: str
    role: str
    session_epoch: int


class InviteDetails(BaseModel):
    """What the invitation page shows before the password is set."""

    email: str
    role: str
    mch_no: str
    totp_secret: str
    totp_required: bool
    expires_at: datetime
