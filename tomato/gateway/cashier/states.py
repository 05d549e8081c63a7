"""What the payer's situation is: which wallet app opened the page, and what the order looks like to them."""

from __future__ import annotations

from datetime import datetime

from tomato.pay.schemas import PayOrderView

ALIPAY_UA, WECHAT_UA = "AlipayClient", "MicroMessenger"
WALLETS = ("alipay", "wechat")


def detect_wallet(user_agent: str) -> str | None:
    """`alipay` inside the Alipay app, `wechat` inside WeChat, None in any other browser."""
    if ALIPAY_UA in user_agent:
        return "alipay"
    if WECHAT_UA in user_agent:
        return "wechat"
    return None


def display_state(order: PayOrderView, now: datetime) -> str:
    """waiting | paid | failed | closed | expired (closed because its time ran out, or past it and never tried)."""
    if order.status == "SUCCEEDED":
        return "paid"
    if order.status == "FAILED":
        return "failed"
    expired = now >= datetime.fromisoformat(order.expire_at)
    if order.status == "CLOSED":
        return "expired" if expired else "closed"
    if order.status == "CREATED" and expired:  # the expiry job has not closed it yet; do not start a wallet now
        return "expired"
    return "waiting"
