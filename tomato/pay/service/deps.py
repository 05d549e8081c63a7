"""What the pay use cases need, built once by bootstrap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tomato.channel.service import ChannelService
from tomato.core.clock import Clock
from tomato.core.db import Database
from tomato.core.ids import Snowflake
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
    wake_relay: Callable[[], None] = field(default=lambda: None)

    def callback_url(self, channel: str, account_id: str) -> str:
        return f"{self.public_url.rstrip('/')}/callbacks/{channel}/{account_id}"
