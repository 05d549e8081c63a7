"""Builds everything a process needs from settings — called by serve, worker, scheduler, dev and tests.

Nothing is built at import time. Tests pass overrides (settings, a clock, channel transports) instead of
patching modules.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import httpx

from tomato.account.payouts.service import PayoutDeps, PayoutService
from tomato.account.settlement import SettlementService
from tomato.channel.breakers import BreakerRegistry
from tomato.channel.service import ChannelService
from tomato.core.bus import EventBus, InProcessBus
from tomato.core.cache import Cache, MemoryCache, NonceStore, RedisCache
from tomato.core.clock import Clock, SystemClock
from tomato.core.crypto import SecretBox
from tomato.core.db import Database, create_engine
from tomato.core.ids import Snowflake, WorkerIdLease
from tomato.core.relay import OutboxRelay
from tomato.core.settings import Settings
from tomato.merchant.service import MerchantService
from tomato.pay.service import PayDeps, PayService
from tomato.reconciliation.service import ReconciliationService, ReconDeps
from tomato.reconciliation.source import ChannelStatementSource
from tomato.reconciliation.store import StatementStore

log = logging.getLogger(__name__)


@dataclass
class Container:
    settings: Settings
    db: Database
    cache: Cache
    bus: EventBus
    box: SecretBox
    ids: Snowflake
    lease: WorkerIdLease
    clock: Clock
    nonces: NonceStore
    merchants: MerchantService
    channels: ChannelService
    pay: PayService
    relay: OutboxRelay
    settlement: SettlementService
    payouts: PayoutService
    reconciliation: ReconciliationService

    async def aclose(self) -> None:
        await self.channels.aclose()
        await self.bus.close()
        await self.lease.release()
        await self.cache.close()
        await self.db.dispose()


def secret_box(settings: Settings) -> SecretBox:
    """The key ring from settings; in embedded mode a generated key kept (0600) under the data dir."""
    if settings.secret_keys:
        return SecretBox.from_ring(settings.secret_keys)
    path = Path(settings.data_dir) / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(SecretBox.generate_ring("local1"))
        log.warning("generated a local secret key at %s; set TOMATO_SECRET_KEYS in production", path)
    return SecretBox.from_ring(path.read_text().strip())


async def bootstrap(
    settings: Settings,
    *,
    clock: Clock | None = None,
    channel_transport: httpx.AsyncBaseTransport | None = None,
) -> Container:
    """`channel_transport` lets tests route channel HTTP to an in-process simulator or respx."""
    db = Database(create_engine(settings.database_url))
    cache: Cache = MemoryCache()
    if settings.redis_url:
        cache = RedisCache.from_url(settings.redis_url, settings.redis_prefix)
    bus: EventBus
    if settings.amqp_url:
        from tomato.core.bus_rabbit import RabbitBus

        bus = RabbitBus(settings.amqp_url, settings.amqp_prefix)
    else:
        bus = InProcessBus()
    box = secret_box(settings)
    lease = WorkerIdLease(db)
    ids = await lease.acquire()
    clock = clock or SystemClock()
    relay = OutboxRelay(db, bus)
    merchants = MerchantService(db, box, ids, webhook_allowed_networks=settings.webhook_allowed_networks, clock=clock)
    breakers = BreakerRegistry(
        cache, fail_max=settings.breaker_fail_max, reset_timeout_s=settings.breaker_reset_timeout_s
    )
    channels = ChannelService(
        db,
        box,
        ids,
        timeout_s=settings.channel_timeout_s,
        breakers=breakers,
        clock=clock,
        business_tz=settings.business_timezone,
        transport=channel_transport,
        breaker_alert_s=settings.alert_breaker_open_s,
    )
    pay_deps = PayDeps(
        db=db,
        ids=ids,
        channels=channels,
        merchants=merchants,
        clock=clock,
        public_url=settings.public_url,
        compensation_time_scale=settings.compensation_time_scale,
        refund_window_days=settings.refund_window_days,
        barcode_wait_s=settings.barcode_wait_s,
        barcode_poll_s=settings.barcode_poll_s,
        barcode_confirm_s=settings.barcode_confirm_s,
        # outlasts one channel call (connect, write and read timeouts) with room for the database around it
        submit_lease_s=3 * settings.channel_timeout_s + 10,
        webhook_allowed_networks=settings.webhook_allowed_networks,
        business_tz=settings.business_timezone,
        wake_relay=relay.notify,
    )
    pay = PayService(pay_deps)
    reconciliation = ReconciliationService(
        ReconDeps(
            db=db,
            ids=ids,
            clock=clock,
            pay=pay,
            channels=channels,
            business_tz=settings.business_timezone,
            suspense_minutes=settings.recon_suspense_minutes,
            source=ChannelStatementSource(channels, StatementStore.from_settings(settings, db, clock)),
            wake_relay=relay.notify,
        )
    )
    container = Container(
        settings=settings,
        db=db,
        cache=cache,
        bus=bus,
        box=box,
        ids=ids,
        lease=lease,
        clock=clock,
        nonces=NonceStore(cache, settings.nonce_ttl_s),
        merchants=merchants,
        channels=channels,
        pay=pay,
        relay=relay,
        settlement=SettlementService(db, ids, clock, merchants, business_tz=settings.business_timezone),
        payouts=PayoutService(
            PayoutDeps(
                db=db,
                ids=ids,
                channels=channels,
                clock=clock,
                public_url=settings.public_url,
                business_timezone=settings.business_timezone,
                time_scale=settings.compensation_time_scale,
                wake_relay=relay.notify,
            )
        ),
        reconciliation=reconciliation,
    )
    await _bootstrap_admin_tokens(container)
    return container


async def _bootstrap_admin_tokens(c: Container) -> None:
    if not c.settings.admin_tokens:
        return
    for part in filter(None, (p.strip() for p in c.settings.admin_tokens.split(","))):
        role, _, token = part.partition(":")
        if not token:
            raise ValueError("TOMATO_ADMIN_TOKENS entries are 'role:token'")
        await c.merchants.create_admin_token(role, name=f"bootstrap-{role}", token=token)
