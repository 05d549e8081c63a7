"""What the pay use cases need, built once by bootstrap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tomato.channel.service import ChannelService
from tomato.core.clock import Clock
from tomato.core.db import Database
from tomato.core.ids import Snowflake
from tomato.core.netguard import check_literal
from tomato.merchant.service import MerchantService


@dataclass
class PayDeps:
    db: Database
    ids: Snowflake
    channels: ChannelService
    merchants: MerchantService
    clock: Clock
    public_url: str
    compensation_time_scale: float = 1.0
    refund_window_days: int = 365
    submit_lease_s: float = 40.0  # how long one submission of a CREATED order holds it (renewed per candidate)
    barcode_wait_s: float = 5.0  # how long a barcode create waits for a final answer
    barcode_poll_s: float = 2.5  # how often an unconfirmed barcode payment is asked about
    barcode_confirm_s: float = 30.0  # after this long unconfirmed, a barcode payment is reversed
    webhook_allowed_networks: str = ""  # CIDRs a notify_url may name despite the SSRF guard
    business_tz: str = "Asia/Shanghai"  # the zone of business dates in booking facts (TOMATO_BUSINESS_TIMEZONE)
    wake_relay: Callable[[], None] = field(default=lambda: None)

    def check_notify_url(self, url: str | None) -> None:
        """Refuses literal loopback/private/link-local webhook targets at creation (delivery re-checks DNS)."""
        if url is not None:
            check_literal(url, self.webhook_allowed_networks)

    def callback_url(self, channel: str, account_id: str) -> str:
        return f"{self.public_url.rstrip('/')}/callbacks/{channel}/{account_id}"
