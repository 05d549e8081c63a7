"""Payout use cases: create (hold in one unit of work, then ask the bank outside it), apply the bank's answers
(notify, query), the query job, reads.

Bank answers and what they do (the adapter's vocabulary, `channel.protocol.PayoutChannel`):
- request WAITING (respCode 00): accepted, stays PENDING; the notify or the query job finishes it.
- request FAIL REJECTED (a signed business refusal), or UNKNOWN CONNECT / BREAKER_OPEN (the request never left):
  definitely not paid → FAILED, hold voided, `payout.failed`.
- any other UNKNOWN (timeout, 5xx, bad signature, "query again" codes): stays PENDING for the query job.
- notify / query SUCCESS → SUCCEEDED, hold posted to the bank, `payout.succeeded`; FAIL (the payout's own result)
  → FAILED, voided, `payout.failed`.
The query job asks about PENDING payouts on a backoff (`QUERY_DELAYS_S`, then every 30 min, divided by the
compensation time scale); a request the bank never acknowledged is sent again (same orderId and txnTime, so the
bank sees one trade) when a query finds nothing. A payout still PENDING `FINAL_TIMEOUT` after creation is FAILED
with reason `TIMEOUT` and voided — the safety net of a pending transfer. A success the bank reports after that is
logged as an error for finance (the money left twice: to the payee and back to available) and acknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from tomato.account.payouts import entries
from tomato.account.payouts import repository as repo
from tomato.account.payouts.errors import OutPayoutNoConflict, PayoutNotFound
from tomato.account.payouts.events import AGGREGATE, PAYOUT_FAILED, PAYOUT_SUCCEEDED
from tomato.account.payouts.models import Payout, PayoutStatus
from tomato.account.payouts.schemas import PayoutCreate, PayoutView, payout_view
from tomato.channel.protocol import (
    ChannelNotify,
    ChannelResult,
    ErrorClass,
    PayoutRef,
    PayoutRequest,
    ResultStatus,
)
from tomato.channel.service import ChannelService
from tomato.core.clock import Clock, as_utc
from tomato.core.db import Database
from tomato.core.errors import InvalidRequest, NoChannelAvailable
from tomato.core.ids import Snowflake
from tomato.core.outbox import add_event
from tomato.merchant.schemas import AppAuth

log = logging.getLogger(__name__)

QUERY_DELAYS_S = (10.0, 30.0, 60.0, 180.0, 600.0, 1800.0)  # after creation: 10 s, then 30 s, 1 m, 3 m, 10 m, 30 m
STEADY_S = 1800.0
FINAL_TIMEOUT = timedelta(hours=24)
BATCH = 200
NOT_FOUND = "34"
_NEVER_SENT = frozenset({ErrorClass.CONNECT, ErrorClass.BREAKER_OPEN})


@dataclass
class PayoutDeps:
    db: Database
    ids: Snowflake
    channels: ChannelService
    clock: Clock
    public_url: str
    business_timezone: str = "Asia/Shanghai"
    time_scale: float = 1.0  # settings.compensation_time_scale: divides the query delays and the final timeout
    wake_relay: Callable[[], None] = field(default=lambda: None)

    def callback_url(self, channel_account_id: str) -> str:
        return f"{self.public_url.rstrip('/')}/callbacks/bank/{channel_account_id}"


class PayoutService:
    def __init__(self, deps: PayoutDeps) -> None:
        self.deps = deps

    # --- create ---------------------------------------------------------------------------------------------

    async def create(self, app: AppAuth, cmd: PayoutCreate) -> tuple[PayoutView, bool]:
        """The payout and whether it was made now (201) rather than found by its out_payout_no (200)."""
        d = self.deps
        digest = cmd.request_hash()
        async with d.db.uow() as uow:
            existing = await repo.by_out_payout_no(uow.session, app.app_id, cmd.out_payout_no)
        if existing is not None:
            return _same_request(existing, digest), False
        account_id = await d.channels.payout_account(app.app_id, cmd.amount)
        if account_id is None:
            raise NoChannelAvailable("no active bank channel account makes payouts")
        payout = self._new(app, cmd, digest, account_id)
        try:
            async with d.db.uow() as uow:
                uow.session.add(payout)
                await uow.flush()  # a twin with this out_payout_no fails here, before any balance moves
                await entries.hold(uow.session, d.ids, d.clock.now(), d.business_timezone, payout)
                await uow.commit()  # InsufficientBalance above rolls the insert back: nothing written
        except IntegrityError:
            async with d.db.uow() as uow:
                winner = await repo.by_out_payout_no(uow.session, app.app_id, cmd.out_payout_no)
            if winner is None:
                raise
            return _same_request(winner, digest), False
        await self._submit(payout)
        return await self._view(payout.payout_no), True

    def _new(self, app: AppAuth, cmd: PayoutCreate, digest: str, account_id: str) -> Payout:
        now = self.deps.clock.now()
        return Payout(
            payout_no=self.deps.ids.next_id("W"),
            app_id=app.app_id,
            mch_no=app.mch_no,
            out_payout_no=cmd.out_payout_no,
            request_hash=digest,
            amount=cmd.amount,
            account_name=cmd.bank_account.name,
            account_number=cmd.bank_account.number,
            bank_name=cmd.bank_account.bank,
            status=PayoutStatus.PENDING.value,
            failure_reason=None,
            channel_account_id=account_id,
            query_count=0,
            # already scheduled: if this process dies before the bank answers, the query job still finds it
            next_query_at=self._next_query_at(now, 0),
            created_at=now,
            updated_at=now,
        )

    # --- the bank -------------------------------------------------------------------------------------------

    async def _submit(self, p: Payout) -> ChannelResult:
        """Sends the payout (outside any unit of work) and applies the answer; returns the answer."""
        answer = await self._call(p, resend=False)
        await self._apply_request_answer(p, answer)
        return answer

    async def _call(self, p: Payout, *, resend: bool) -> ChannelResult:
        request = PayoutRequest(
            payout_no=p.payout_no,
            amount=p.amount,
            account_name=p.account_name,
            account_number=p.account_number,
            bank_name=p.bank_name,
            notify_url=self.deps.callback_url(p.channel_account_id),
            created_at=as_utc(p.created_at),
        )
        try:
            adapter = await self.deps.channels.payout_adapter(p.channel_account_id)
            return await adapter.payout(request)
        except Exception:
            log.exception("payout %s: adapter error on %s", p.payout_no, "resend" if resend else "send")
            return ChannelResult.unknown(ErrorClass.MALFORMED, "adapter error")

    async def _apply_request_answer(self, p: Payout, answer: ChannelResult) -> None:
        if answer.status is ResultStatus.WAITING or answer.status is ResultStatus.SUCCESS:
            values: dict[str, Any] = {"accepted_at": self.deps.clock.now(), "updated_at": self.deps.clock.now()}
            if answer.channel_trade_no:
                values["channel_trade_no"] = answer.channel_trade_no
            async with self.deps.db.uow() as uow:
                await repo.update_pending(uow.session, p.payout_no, values)
                await uow.commit()
            return
        if answer.status is ResultStatus.FAIL or (
            answer.status is ResultStatus.UNKNOWN and answer.error in _NEVER_SENT
        ):
            await self._fail(p.payout_no, _reason(answer))
            return
        log.warning("payout %s: outcome unknown (%s %s); left PENDING", p.payout_no, answer.error, answer.code)

    async def apply_notify(self, channel_account_id: str, notify: ChannelNotify) -> bool:
        """A verified payout notify. False (refused in the bank's form): not our payout on this account, or
        another amount. A duplicate, or a result for a payout already final, is acknowledged (True)."""
        async with self.deps.db.uow() as uow:
            p = await repo.get(uow.session, notify.payout_no or notify.order_no)
        if p is None or p.channel_account_id != channel_account_id:
            return False
        if notify.amount is not None and notify.amount != p.amount:
            log.error("payout %s: the bank reports amount %s, ours is %s", p.payout_no, notify.amount, p.amount)
            return False
        if notify.status is ResultStatus.SUCCESS:
            await self._succeed(p, notify.channel_trade_no, notify.paid_at)
        elif notify.status is ResultStatus.FAIL:
            await self._fail(p.payout_no, notify.failure_reason or "FAILED")
        return True

    async def _succeed(self, p: Payout, channel_trade_no: str | None, at: datetime | None) -> None:
        d = self.deps
        now = d.clock.now()
        values: dict[str, Any] = {"status": PayoutStatus.SUCCEEDED.value, "finished_at": now, "updated_at": now}
        values["next_query_at"] = None
        if channel_trade_no:
            values["channel_trade_no"] = channel_trade_no
        async with d.db.uow() as uow:
            s = uow.session
            if not await repo.update_pending(s, p.payout_no, values):
                current = await repo.get(s, p.payout_no)
                if current is not None and current.status == PayoutStatus.FAILED.value:
                    log.error(
                        "payout %s: the bank paid it (at %s) after it was FAILED and voided: finance must recover "
                        "%s fen from the merchant",
                        p.payout_no,
                        at,
                        p.amount,
                    )
                return
            await entries.post_paid(s, d.ids, now, d.business_timezone, p)
            await self._event(uow.session, p.payout_no, PAYOUT_SUCCEEDED)
            await uow.commit()
        d.wake_relay()

    async def _fail(self, payout_no: str, reason: str) -> None:
        d = self.deps
        now = d.clock.now()
        values = {
            "status": PayoutStatus.FAILED.value,
            "failure_reason": reason[:256],
            "finished_at": now,
            "updated_at": now,
            "next_query_at": None,
        }
        async with d.db.uow() as uow:
            s = uow.session
            if not await repo.update_pending(s, payout_no, values):
                return  # already final: a duplicate, or a race lost to the other outcome
            p = await repo.get(s, payout_no)
            assert p is not None
            await entries.void(s, d.ids, now, d.business_timezone, p)
            await self._event(s, payout_no, PAYOUT_FAILED)
            await uow.commit()
        d.wake_relay()

    async def _event(self, s: Any, payout_no: str, event_type: str) -> None:
        p = await repo.get(s, payout_no)
        assert p is not None
        await s.refresh(p)
        add_event(
            s,
            self.deps.ids,
            event_type=event_type,
            aggregate_type=AGGREGATE,
            aggregate_id=p.payout_no,
            data=payout_view(p).model_dump(mode="json"),
            app_id=p.app_id,
        )

    # --- the query job --------------------------------------------------------------------------------------

    async def query_pending(self) -> int:
        """One round of the compensation job; returns how many PENDING payouts were looked at."""
        async with self.deps.db.uow() as uow:
            due = list(await repo.due_for_query(uow.session, self.deps.clock.now(), BATCH))
        for p in due:
            try:
                await self._compensate(p)
            except Exception:
                log.exception("payout %s: compensation failed; it is due again next round", p.payout_no)
        return len(due)

    async def _compensate(self, p: Payout) -> None:
        d = self.deps
        result = await self._query(p)
        if result.status is ResultStatus.SUCCESS:
            await self._succeed(p, result.channel_trade_no, result.paid_at)
            return
        if result.settles_query:  # FAIL with error NONE: the payout's own failure
            await self._fail(p.payout_no, _reason(result))
            return
        accepted = p.accepted_at is not None
        if result.status is ResultStatus.WAITING and result.code == NOT_FOUND and not accepted:
            answer = await self._call(p, resend=True)
            if answer.status is ResultStatus.FAIL or (
                answer.status is ResultStatus.UNKNOWN and answer.error in _NEVER_SENT
            ):
                # nothing was found at the bank and the resend was refused: no request of ours can be paid
                await self._fail(p.payout_no, _reason(answer))
                return
            accepted = answer.status is ResultStatus.WAITING
        now = d.clock.now()
        if now >= as_utc(p.created_at) + FINAL_TIMEOUT / d.time_scale:
            await self._fail(p.payout_no, f"TIMEOUT: no final answer from the bank within {FINAL_TIMEOUT}")
            return
        count = p.query_count + 1
        values: dict[str, Any] = {
            "query_count": count,
            "next_query_at": self._next_query_at(as_utc(p.created_at), count),
            "updated_at": now,
        }
        if accepted and p.accepted_at is None:
            values["accepted_at"] = now
        async with d.db.uow() as uow:
            await repo.update_pending(uow.session, p.payout_no, values)
            await uow.commit()

    async def _query(self, p: Payout) -> ChannelResult:
        ref = PayoutRef(p.payout_no, as_utc(p.created_at), p.amount)
        try:
            adapter = await self.deps.channels.payout_adapter(p.channel_account_id)
            return await adapter.query_payout(ref)
        except Exception:
            log.exception("payout %s: adapter error on query", p.payout_no)
            return ChannelResult.unknown(ErrorClass.MALFORMED, "adapter error")

    def _next_query_at(self, created_at: datetime, count: int) -> datetime:
        """The (count + 1)-th query: QUERY_DELAYS_S after creation, then every STEADY_S, all scaled; never
        before now."""
        scale = self.deps.time_scale
        if count < len(QUERY_DELAYS_S):
            at = as_utc(created_at) + timedelta(seconds=QUERY_DELAYS_S[count] / scale)
        else:
            steps = count - len(QUERY_DELAYS_S) + 1
            at = as_utc(created_at) + timedelta(seconds=(QUERY_DELAYS_S[-1] + steps * STEADY_S) / scale)
        return max(at, self.deps.clock.now())

    # --- reads ----------------------------------------------------------------------------------------------

    async def get(self, app_id: str, payout_no: str) -> PayoutView:
        async with self.deps.db.uow() as uow:
            p = await repo.get_for_app(uow.session, app_id, payout_no)
        if p is None:
            raise PayoutNotFound(f"payout {payout_no} not found")
        return payout_view(p)

    async def find(self, app_id: str, out_payout_no: str) -> PayoutView:
        async with self.deps.db.uow() as uow:
            p = await repo.by_out_payout_no(uow.session, app_id, out_payout_no)
        if p is None:
            raise PayoutNotFound(f"no payout with out_payout_no {out_payout_no}")
        return payout_view(p)

    async def get_for_merchant(self, mch_no: str, payout_no: str) -> PayoutView:
        """For the merchant portal: another merchant's payout is not found, like one that does not exist."""
        async with self.deps.db.uow() as uow:
            p = await repo.get_for_merchant(uow.session, mch_no, payout_no)
        if p is None:
            raise PayoutNotFound(f"payout {payout_no} not found")
        return payout_view(p)

    async def list_for_merchant(self, mch_no: str, after: str | None, limit: int) -> list[PayoutView]:
        """The merchant's payouts newest first after the payout `after` (a cursor's key: one of its payouts, else
        a 422 naming `cursor`); `limit` rows."""
        async with self.deps.db.uow() as uow:
            key = None
            if after is not None:
                p = await repo.get_for_merchant(uow.session, mch_no, after)
                if p is None:
                    raise InvalidRequest.field("cursor", "unknown cursor")
                key = (p.created_at, p.payout_no)
            rows = await repo.merchant_page(uow.session, mch_no, key, limit)
        return [payout_view(p) for p in rows]

    async def pending_by_merchant(self) -> dict[str, int]:
        """Σ of PENDING payouts per merchant, for `tomato ledger check` (= each payout_in_transit balance)."""
        async with self.deps.db.uow() as uow:
            return await repo.pending_by_merchant(uow.session)

    async def _view(self, payout_no: str) -> PayoutView:
        async with self.deps.db.uow() as uow:
            p = await repo.get(uow.session, payout_no)
        assert p is not None
        return payout_view(p)


def _same_request(p: Payout, digest: str) -> PayoutView:
    if p.request_hash != digest:
        raise OutPayoutNoConflict(f"out_payout_no {p.out_payout_no} was used for a different request")
    return payout_view(p)


def _reason(result: ChannelResult) -> str:
    """`code: message` from the bank (`30: 交易未通过…`), or our error class for a request that never left."""
    head = result.code or (result.error.value if result.error is not ErrorClass.NONE else result.status.value)
    return f"{head}: {result.message}" if result.message else head
