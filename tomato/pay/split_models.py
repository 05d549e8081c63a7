"""Tables of profit sharing (分账): the receivers a merchant registered and the splits of its orders."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tomato.core.db import Base


class SplitReceiver(Base):
    """Someone a merchant's payments may be split to, at one channel (bound there when registered)."""

    __tablename__ = "split_receivers"

    receiver_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(32))
    mch_no: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    account: Mapped[str] = mapped_column(String(64))
    account_type: Mapped[str] = mapped_column(String(16))  # MERCHANT | PERSONAL
    name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_split_receivers_mch", "mch_no", "channel"),)


class Split(Base):
    """One split of a paid order. `shares` is JSON [{receiver_id, amount, description, status}]; the amount is
    reserved on the order (`pay_orders.split_reserved`) from its insert until it fails or is returned."""

    __tablename__ = "splits"

    split_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    order_no: Mapped[str] = mapped_column(String(32))
    app_id: Mapped[str] = mapped_column(String(32))
    mch_no: Mapped[str] = mapped_column(String(32))
    out_split_no: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # PENDING | SUCCEEDED | FAILED
    amount: Mapped[int] = mapped_column(BigInteger)
    shares: Mapped[str] = mapped_column(Text)
    channel_account_id: Mapped[str] = mapped_column(String(32))
    returned_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Alipay takes split money back inside a refund: the refund that carries this split's return (cleared if it fails)
    return_refund_no: Mapped[str | None] = mapped_column(String(32))
    query_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_query_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("app_id", "out_split_no", name="uq_splits_app_out_split_no"),
        Index("ix_splits_order", "order_no"),
        Index("ix_splits_status_next_query", "status", "next_query_at"),
        Index("ix_splits_return_refund", "return_refund_no"),  # the splits a refund carries (split_returns)
    )
