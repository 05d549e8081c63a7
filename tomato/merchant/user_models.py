"""The merchant portal's users (private to the merchant context): people of one merchant who sign in at `/portal`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tomato.core.db import Base


class MerchantUser(Base):
    """One person of one merchant. `email` is unique across the platform (it is the sign-in name). The password is
    an argon2id hash; the TOTP secret is sealed with the platform key ring. `session_epoch` is in every session
    cookie: bumping it (password set, role changed, disabled) ends every session of the user at once.
    `failed_logins` and `locked_until` implement the lockout; `totp_last_step` refuses a code used twice."""

    __tablename__ = "merchant_users"
    __table_args__ = (Index("ix_merchant_users_mch", "mch_no", "created_at"),)

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    mch_no: Mapped[str] = mapped_column(String(32))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # owner | developer | finance | support
    status: Mapped[str] = mapped_column(String(16))  # INVITED | ACTIVE | DISABLED
    password_hash: Mapped[str | None] = mapped_column(Text)
    totp_secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    totp_enabled: Mapped[bool] = mapped_column(default=False)
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    invite_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    invite_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    invited_by: Mapped[str] = mapped_column(String(160))
    session_epoch: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
