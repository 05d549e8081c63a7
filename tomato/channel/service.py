"""Channel use cases: channel accounts, routing rules, and handing out adapters for an account.

Adapters are built once per account (with their own small guarded HTTP pool) and rebuilt when the account
changes. This context knows nothing of orders.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.channel import limits
from tomato.channel.breaker_watch import BreakerWatch
from tomato.channel.breakers import BreakerRegistry
from tomato.channel.errors import ChannelAccountNotFound, RoutingRuleNotFound
from tomato.channel.guarded import GuardedAdapter
from tomato.channel.health import HealthWindow
from tomato.channel.http import guarded_client
from tomato.channel.identities import ActiveIdentities, IdentityStore
from tomato.channel.models import ChannelAccount, RoutingRule
from tomato.channel.protocol import AckResponse, ChannelAdapter, PayoutChannel, SubMerchant
from tomato.channel.registry import FAMILIES
from tomato.channel.routing import candidates_of, order_candidates, pick_rule
from tomato.channel.schemas import (
    MODES_OF,
    SERVICE_PROVIDER_MODES,
    AccountHealth,
    ChannelAccountCreate,
    ChannelAccountUpdate,
    ChannelAccountView,
    ChannelIdentityCreate,
    ChannelIdentityView,
    RoutingRuleCreate,
    RoutingRuleView,
)
from tomato.channel.sub_merchant import SubMerchantAdapter
from tomato.core.clock import Clock, utcnow
from tomato.core.crypto import SecretBox
from tomato.core.db import Database
from tomato.core.errors import InvalidRequest
from tomato.core.ids import Snowflake
from tomato.core.loadonce import LoadOnce
from tomato.core.pay_methods import CHANNEL_OF, PayMethod

SNAPSHOT_TTL_S = 2.0


@dataclass(frozen=True)
class _Snapshot:
    rules: list[RoutingRule]
    accounts: dict[str, ChannelAccount]
    identities: ActiveIdentities


@dataclass(frozen=True)
class Route:
    """One candidate an order may be tried on, in the order to try them."""

    channel: str
    channel_account_id: str


class ChannelService:
    def __init__(
        self,
        db: Database,
        box: SecretBox,
        ids: Snowflake,
        *,
        timeout_s: float,
        breakers: BreakerRegistry,
        clock: Clock,
        business_tz: str = "Asia/Shanghai",
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        breaker_alert_s: float = 300.0,
    ) -> None:
        self._db = db
        self._box = box
        self._ids = ids
        self._timeout = timeout_s
        self._transport = transport
        self._rng = rng or random.Random()
        self._clock = clock
        self._tz = ZoneInfo(business_tz)
        self.breakers = breakers
        self.breaker_watch = BreakerWatch(breakers, breaker_alert_s)
        self.health = HealthWindow()
        self._adapters: dict[str, tuple[str, ChannelAdapter, httpx.AsyncClient]] = {}
        self._snapshot: LoadOnce[None, _Snapshot] = LoadOnce(SNAPSHOT_TTL_S)
        self.identities = IdentityStore(db, box, ids)

    # --- accounts ------------------------------------------------------------------------------------

    async def create_account(self, cmd: ChannelAccountCreate) -> ChannelAccountView:
        family = FAMILIES.get(cmd.channel)
        if family is None:
            raise InvalidRequest.field("channel", f"channel {cmd.channel} is not available")
        mode = _mode_of(cmd)
        config = {**cmd.config, "mode": mode}
        try:
            family.validate(config)
        except ValueError as exc:
            field = str(exc).split(":", 1)[0].strip() if ":" in str(exc) else "config"
            raise InvalidRequest(str(exc), details=[{"field": f"config.{field}", "issue": str(exc)}]) from exc
        now = utcnow()
        account = ChannelAccount(
            id=f"CA{self._ids.next_int()}",
            channel=cmd.channel,
            name=cmd.name,
            status="ACTIVE",
            mch_no=cmd.mch_no,
            daily_limit=cmd.daily_limit,
            cost_ppm=cmd.cost_ppm,
            mode=mode,
            config_ciphertext="",
            created_at=now,
            updated_at=now,
        )
        account.config_ciphertext = self._box.encrypt(json.dumps(config), context=f"channel-account:{account.id}")
        async with self._db.uow() as uow:
            uow.session.add(account)
            await uow.commit()
        self.invalidate()
        return _view(account)

    async def list_accounts(self, after: str | None, limit: int) -> list[ChannelAccountView]:
        q = select(ChannelAccount).order_by(ChannelAccount.id).limit(limit)
        if after is not None:
            q = q.where(ChannelAccount.id > after)
        async with self._db.uow() as uow:
            return [_view(a) for a in (await uow.session.scalars(q)).all()]

    async def get_account(self, account_id: str) -> ChannelAccountView:
        return _view(await self._account(account_id))

    async def set_status(self, account_id: str, status: str) -> ChannelAccountView:
        async with self._db.uow() as uow:
            res = await uow.session.execute(
                update(ChannelAccount).where(ChannelAccount.id == account_id).values(status=status, updated_at=utcnow())
            )
            if not res.rowcount:  # type: ignore[attr-defined]
                raise ChannelAccountNotFound(f"channel account {account_id} not found")
            await uow.commit()
        self.invalidate()
        return await self.get_account(account_id)

    async def update_account(self, account_id: str, cmd: ChannelAccountUpdate) -> ChannelAccountView:
        values: dict[str, Any] = {name: getattr(cmd, name) for name in cmd.model_fields_set}
        async with self._db.uow() as uow:
            res = await uow.session.execute(
                update(ChannelAccount).where(ChannelAccount.id == account_id).values(**values, updated_at=utcnow())
            )
            if not res.rowcount:  # type: ignore[attr-defined]
                raise ChannelAccountNotFound(f"channel account {account_id} not found")
            await uow.commit()
        self.invalidate()
        return await self.get_account(account_id)

    @staticmethod
    async def cost_ppm(session: AsyncSession, account_id: str) -> int:
        """The account's channel cost rate, read in the caller's unit of work (the payment snapshot); 0 when the
        account is unknown."""
        q = select(ChannelAccount.cost_ppm).where(ChannelAccount.id == account_id)
        return int((await session.execute(q)).scalar_one_or_none() or 0)

    @staticmethod
    async def settles_to_merchant(session: AsyncSession, account_id: str) -> bool:
        """Whether the account is a service provider's, whose channel settles payments straight to the merchant
        (read in the caller's unit of work: the payment snapshot)."""
        q = select(ChannelAccount.mode).where(ChannelAccount.id == account_id)
        return (await session.execute(q)).scalar_one_or_none() in SERVICE_PROVIDER_MODES

    async def _account(self, account_id: str) -> ChannelAccount:
        async with self._db.uow() as uow:
            account = await uow.session.get(ChannelAccount, account_id)
        if account is None:
            raise ChannelAccountNotFound(f"channel account {account_id} not found")
        return account

    # --- adapters ------------------------------------------------------------------------------------

    async def adapter(self, account_id: str) -> ChannelAdapter:
        """The adapter of an account, disabled or not (orders already on it are still queried and closed)."""
        account = (await self._routing_data()).accounts.get(account_id) or await self._account(account_id)
        stamp = account.updated_at.isoformat()
        cached = self._adapters.get(account_id)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        config: Mapping[str, Any] = json.loads(
            self._box.decrypt(account.config_ciphertext, context=f"channel-account:{account.id}")
        )
        http = guarded_client(self._timeout, self._transport)
        adapter = GuardedAdapter(account_id, FAMILIES[account.channel].build(config, http), self.breakers, self.health)
        if cached is not None:
            await cached[2].aclose()
        self._adapters[account_id] = (stamp, adapter, http)
        return adapter

    async def adapter_for(self, account_id: str, mch_no: str) -> ChannelAdapter:
        """The adapter to act for `mch_no` on the account: a service provider's carries the merchant's identity on
        every request (the active one, else the last one disabled: its orders are still followed up)."""
        adapter = await self.adapter(account_id)
        account = (await self._routing_data()).accounts.get(account_id) or await self._account(account_id)
        if account.mode not in SERVICE_PROVIDER_MODES:
            return adapter
        sub = await self.identities.sub_merchant(account_id, mch_no)
        # no identity at all: the adapter refuses the request itself (SUB_MERCHANT_REQUIRED), nothing is sent
        return adapter if sub is None else SubMerchantAdapter(adapter, sub)

    async def statement_subs(self, account_id: str) -> list[SubMerchant]:
        """The sub-merchants whose statements make up a service-provider account's day ([] for a direct account, or
        for a WeChat partner, whose bill lists every sub-merchant at once)."""
        account = await self._account(account_id)
        if account.mode != "isv":
            return []
        return await self.identities.sub_merchants(account_id)

    async def accounts_for(self, channel: str, mch_no: str) -> list[str]:
        """The ACTIVE accounts of `channel` that may act for `mch_no` (direct ones, and service providers on which
        it has an active identity), by id."""
        data = await self._routing_data()
        return sorted(
            a.id
            for a in data.accounts.values()
            if a.channel == channel and a.status == "ACTIVE" and data.identities.allows(a, mch_no)
        )

    async def is_service_provider(self, account_id: str) -> bool:
        """False for a direct account and for an unknown one (whose reports the pay context refuses anyway)."""
        account = (await self._routing_data()).accounts.get(account_id)
        if account is None:
            try:
                account = await self._account(account_id)
            except ChannelAccountNotFound:
                return False
        return account.mode in SERVICE_PROVIDER_MODES

    async def notify_matches(self, account_id: str, mch_no: str, sub_merchant: str | None) -> bool:
        """A verified notify may change `mch_no`'s order only if it names the merchant's own sub-merchant (service
        providers; a direct account's notify names none): another sub-merchant's notify is refused."""
        if not await self.is_service_provider(account_id):
            return True
        sub = await self.identities.sub_merchant(account_id, mch_no)
        return sub is not None and sub_merchant is not None and sub.notify_id == sub_merchant

    # --- service-provider identities ------------------------------------------------------------------

    async def create_identity(self, mch_no: str, cmd: ChannelIdentityCreate) -> ChannelIdentityView:
        created = await self.identities.create(await self._account(cmd.channel_account_id), mch_no, cmd)
        self.invalidate()
        return created

    async def list_identities(self, mch_no: str) -> list[ChannelIdentityView]:
        return await self.identities.of_merchant(mch_no)

    async def disable_identity(self, identity_id: str) -> tuple[ChannelIdentityView, ChannelIdentityView]:
        changed = await self.identities.disable(identity_id)
        self.invalidate()
        return changed

    async def payout_adapter(self, account_id: str) -> PayoutChannel:
        """The account's adapter as a payout channel (guarded by its breaker like every call); an account of a
        channel that makes no payouts answers each payout FAIL REJECTED `PAYOUT_NOT_SUPPORTED`."""
        adapter = await self.adapter(account_id)
        assert isinstance(adapter, PayoutChannel), "adapters are GuardedAdapters, which speak PayoutChannel"
        return adapter

    async def payout_account(self, app_id: str, amount: int) -> str | None:
        """The bank account a payout goes out through: the one routing picks for `BANK_WEB` (the app's own rule
        first, breakers and disabled accounts skipped), else the first ACTIVE bank account by id (its breaker may
        be open: the payout then fails at once and its hold is voided). None: there is no ACTIVE bank account."""
        for route in await self.route(app_id, PayMethod.BANK_WEB.value, amount):
            if route.channel == "bank":
                return route.channel_account_id
        accounts = (await self._routing_data()).accounts
        active = sorted(a.id for a in accounts.values() if a.channel == "bank" and a.status == "ACTIVE")
        return active[0] if active else None

    @staticmethod
    def callback_refusal(channel: str, message: str) -> AckResponse | None:
        """A refusal in `channel`'s own callback form, for a notify no account of ours can take (None: no such
        channel). A channel retries what it does not recognise as refused, so a bare 404 would not do."""
        family = FAMILIES.get(channel)
        return family.ack(False, message) if family is not None else None

    async def _routing_data(self) -> _Snapshot:
        """Rules and accounts, read at most every SNAPSHOT_TTL_S (admin changes here invalidate at once; other
        processes see them within the TTL) — they rarely change and every order needs them. Concurrent misses share
        one read (core.loadonce)."""

        async def load() -> _Snapshot:
            async with self._db.uow() as uow:
                rules = list((await uow.session.scalars(select(RoutingRule))).all())
                accounts = {a.id: a for a in (await uow.session.scalars(select(ChannelAccount))).all()}
                identities = await IdentityStore.active(uow.session)
            return _Snapshot(rules, accounts, identities)

        return await self._snapshot.get(None, load)

    def invalidate(self) -> None:
        self._snapshot.clear()

    async def aclose(self) -> None:
        await self.breakers.drain()  # deferred successes reach the store before the cache closes
        for _, _, http in self._adapters.values():
            await http.aclose()
        self._adapters.clear()

    # --- routing -------------------------------------------------------------------------------------

    async def create_rule(self, cmd: RoutingRuleCreate) -> RoutingRuleView:
        async with self._db.uow() as uow:
            for cand in cmd.candidates:
                account = await uow.session.get(ChannelAccount, cand.channel_account_id)
                if account is None:
                    raise InvalidRequest.field("candidates", f"unknown channel account {cand.channel_account_id}")
                for method in cmd.pay_methods:
                    if CHANNEL_OF[method] not in (None, account.channel) or method is PayMethod.CASHIER:
                        raise InvalidRequest.field(
                            "candidates", f"{account.channel} account {account.id} does not serve {method.value}"
                        )
            rule = RoutingRule(
                id=f"RR{self._ids.next_int()}",
                rank=cmd.rank,
                pay_methods=json.dumps([m.value for m in cmd.pay_methods]),
                app_id=cmd.app_id,
                min_amount=cmd.min_amount,
                max_amount=cmd.max_amount,
                candidates=json.dumps([c.model_dump() for c in cmd.candidates]),
                time_start=cmd.time_start,
                time_end=cmd.time_end,
                created_at=utcnow(),
            )
            uow.session.add(rule)
            await uow.commit()
        self.invalidate()
        return _rule_view(rule)

    async def list_rules(self, after: tuple[int, str] | None, limit: int) -> list[RoutingRuleView]:
        """Highest rank first (the order routing consults them), then by id; `after` is the last (rank, id) seen."""
        q = select(RoutingRule).order_by(RoutingRule.rank.desc(), RoutingRule.id).limit(limit)
        if after is not None:
            rank, rule_id = after
            q = q.where(or_(RoutingRule.rank < rank, and_(RoutingRule.rank == rank, RoutingRule.id > rule_id)))
        async with self._db.uow() as uow:
            rules = (await uow.session.scalars(q)).all()
        return [_rule_view(r) for r in rules]

    async def delete_rule(self, rule_id: str) -> None:
        async with self._db.uow() as uow:
            res = await uow.session.execute(delete(RoutingRule).where(RoutingRule.id == rule_id))
            if not res.rowcount:  # type: ignore[attr-defined]
                raise RoutingRuleNotFound(f"routing rule {rule_id} not found")
            await uow.commit()
        self.invalidate()

    async def route(self, app_id: str, pay_method: str, amount: int, mch_no: str | None = None) -> list[Route]:
        """Candidate accounts to try, in order. Left out: disabled accounts, open breakers, accounts whose
        daily limit is below the amount itself, and service-provider accounts on which `mch_no` has no active
        identity. Whether today's room fits is decided by `hold_daily_limit`, atomically,
        as each candidate is tried. Empty: nothing to try (NO_CHANNEL_AVAILABLE)."""
        local = self._clock.now().astimezone(self._tz)
        data = await self._routing_data()
        rule = pick_rule(data.rules, app_id, pay_method, amount, local.strftime("%H:%M"))
        if rule is None:
            return []
        ids = [c.channel_account_id for c in order_candidates(candidates_of(rule), self._rng)]
        accounts = data.accounts
        unbroken = await self.breakers.available([i for i in ids if i in accounts and accounts[i].status == "ACTIVE"])
        routes = []
        for account_id in ids:
            account = accounts.get(account_id)
            if account is None or account.status != "ACTIVE" or account_id not in unbroken:
                continue
            if not data.identities.allows(account, mch_no):
                continue
            if account.daily_limit is not None and amount > account.daily_limit:
                continue
            routes.append(Route(account.channel, account.id))
        return routes

    # --- daily limits --------------------------------------------------------------------------------

    async def hold_daily_limit(self, hold_id: str, account_id: str, amount: int) -> bool:
        """Takes `amount` of the account's room for today (business date in the business zone) under the caller's
        `hold_id`; False when it does not fit. An account without a limit always has room and nothing is held."""
        account = (await self._routing_data()).accounts.get(account_id)
        if account is None or account.daily_limit is None:
            return True
        now = self._clock.now()
        day = now.astimezone(self._tz).date().isoformat()
        async with self._db.uow() as uow:
            held = await limits.hold(uow.session, hold_id, account_id, day, amount, account.daily_limit, now)
            if held:
                await uow.commit()
        return held

    async def release_daily_limit(self, hold_ids: Sequence[str]) -> int:
        """Gives back the holds among `hold_ids` still standing (each at most once); returns the amount freed."""
        if not hold_ids:
            return 0
        async with self._db.uow() as uow:
            freed = await limits.release(uow.session, hold_ids)
            await uow.commit()
        return freed

    async def watch_breakers(self) -> int:
        """The scheduler's breaker watch over every ACTIVE account (breaker_watch.py); returns the alerts raised."""
        async with self._db.uow() as uow:
            ids = list(
                (
                    await uow.session.scalars(
                        select(ChannelAccount.id).where(ChannelAccount.status == "ACTIVE").order_by(ChannelAccount.id)
                    )
                ).all()
            )
        return await self.breaker_watch.check(ids, time.time())

    async def health_of(self, account_id: str | None = None) -> list[AccountHealth]:
        if account_id is not None:
            accounts = [await self._account(account_id)]
        else:
            async with self._db.uow() as uow:
                accounts = list((await uow.session.scalars(select(ChannelAccount).order_by(ChannelAccount.id))).all())
        out = []
        for a in accounts:
            await self.breakers.refresh(a.id)
            b, h = self.breakers.view(a.id), self.health.snapshot(a.id)
            out.append(
                AccountHealth(
                    channel_account_id=a.id, channel=a.channel, status=a.status, breaker=b.state,
                    fail_counter=b.fail_counter, opened_at=b.opened_at, calls=h.calls,
                    success_rate=h.success_rate, p50_ms=h.p50_ms, p99_ms=h.p99_ms,
                )
            )  # fmt: skip
        return out


def _view(a: ChannelAccount) -> ChannelAccountView:
    return ChannelAccountView(
        id=a.id,
        channel=a.channel,
        name=a.name,
        status=a.status,
        mch_no=a.mch_no,
        daily_limit=a.daily_limit,
        cost_ppm=a.cost_ppm,
        mode=a.mode,
        created_at=a.created_at,
    )


def _mode_of(cmd: ChannelAccountCreate) -> str:
    """The account's mode, given at the top level or as `config.mode` (not both, unless they agree)."""
    inner = cmd.config.get("mode")
    if inner is not None and cmd.mode is not None and inner != cmd.mode:
        raise InvalidRequest.field("mode", f"{cmd.mode!r} disagrees with config.mode {inner!r}")
    mode = cmd.mode or inner or "direct"
    if mode not in MODES_OF[cmd.channel]:
        field = "mode" if cmd.mode is not None else "config.mode"
        modes = ", ".join(MODES_OF[cmd.channel])
        raise InvalidRequest.field(field, f"a {cmd.channel} account's mode is one of {modes}")
    return str(mode)


def _rule_view(r: RoutingRule) -> RoutingRuleView:
    return RoutingRuleView.model_validate(
        {
            "id": r.id,
            "rank": r.rank,
            "pay_methods": json.loads(r.pay_methods),
            "app_id": r.app_id,
            "min_amount": r.min_amount,
            "max_amount": r.max_amount,
            "candidates": json.loads(r.candidates),
            "time_start": r.time_start,
            "time_end": r.time_end,
            "created_at": r.created_at,
        }
    )
