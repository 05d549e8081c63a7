"""What the reconciliation use cases need, built once by bootstrap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tomato.channel.service import ChannelService
from tomato.core.clock import Clock
from tomato.core.db import Database
from tomato.core.ids import Snowflake
from tomato.pay.service import PayService
from tomato.reconciliation.source import StatementSource


@dataclass
class ReconDeps:
    db: Database
    ids: Snowflake
    clock: Clock
    pay: PayService
    channels: ChannelService
    business_tz: str = "Asia/Shanghai"
    suspense_minutes: int = 10
    source: StatementSource | None = None
    wake_relay: Callable[[], None] = lambda: None
