"""Tables of the reconciliation context."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from tomato.core.db import Base


class StatementFile(Base):
    """One raw statement fetched for a channel account and business date, kept for audit (docs/reconciliation.md).

    The file itself lives in the statement store under its sha256; a date fetched again with other content gets a
    second row (the newest `fetched_at` is the current one), the same content again only a newer `fetched_at`.
    """

    __tablename__ = "statement_files"

    channel_account_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    business_date: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, the channel's date
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
