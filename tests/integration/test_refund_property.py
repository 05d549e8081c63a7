"""Issue 5 acceptance 3 (property): whatever the sequence of partial refunds, channel refusals, timeouts, lost
requests, slow refunds, retries, duplicate notifies and compensation rounds,

- Σ(PENDING + SUCCEEDED) ≤ amount, and the order's reservation equals it;
- refunded_amount = Σ SUCCEEDED, refund_status follows it;
- the channel is never asked to give back more than was paid;
- a refund is SUCCEEDED exactly when the channel gave the money back (never FAILED after it did), and once the
  compensation job has run every refund is final with exactly one refund.* event.

The service runs against the real database (SQLite and PostgreSQL) with a scripted in-memory channel, so each
example takes milliseconds and the channel's truth is known exactly.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tomato.channel.protocol import ChannelNotify, ChannelResult, ErrorClass, RefundRef, RefundRequest, ResultStatus
from tomato.core.clock import FrozenClock
from tomato.core.db import Database
from tomato.core.ids import Snowflake
from tomato.merchant.schemas import AppAuth
from tomato.pay.errors import OutRefundNoConflict, RefundAmountExceeded
from tomato.pay.models import PayOrder
from tomato.pay.schemas import RefundCreate
from tomato.pay.service import Outcome, PayDeps, PayService

ACCOUNT = "CA-prop"
APP = AppAuth(
    app_id="APP-prop", mch_no="M-prop", sign_type="HMAC-SHA256", app_status="ACTIVE", merchant_status="ACTIVE",
    hmac_secrets=(), rsa_public_keys=(), pay_methods=frozenset(), amount_limit=10**8, notify_url=None,
)  # fmt: skip

# what the channel does with a new refund request
OUTCOMES = (
    "ok",  # refunds, answers SUCCESS
    "reject",  # refuses (signed business error): nothing moved
    "timeout",  # refunds, but the answer is lost: UNKNOWN
    "lost",  # never arrives (5xx before the channel acted): UNKNOWN, nothing moved
    "connect",  # never left us: UNKNOWN/CONNECT, nothing moved
    "processing_ok",  # accepted, WAITING; later succeeds
    "processing_fail",  # accepted, WAITING; later fails
)


class ScriptedChannel:
    """A channel adapter that refunds as scripted, deduplicates by refund number, and remembers the truth."""

    channel = "alipay"
    pay_methods: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.next_outcome = "ok"
        self.truth: dict[str, str] = {}  # refund_no → DONE | FAILED | PROCESSING
        self.amounts: dict[str, int] = {}
        self.order_of: dict[str, str] = {}
        self.settles_to: dict[str, str] = {}
        self.overdrawn = False

    async def adapter(self, account_id: str) -> ScriptedChannel:  # the ChannelService seams
        return self

    async def adapter_for(self, account_id: str, mch_no: str) -> ScriptedChannel:
        return self

    async def is_service_provider(self, account_id: str) -> bool:
        return False

    def _held(self, order_no: str) -> int:
        return sum(self.amounts[r] for r, s in self.truth.items() if s in ("DONE", "PROCESSING")
                   and self.order_of[r] == order_no)  # fmt: skip

    def _answer(self, refund_no: str) -> ChannelResult:
        state = self.truth[refund_no]
        if state == "DONE":
            amount = self.amounts[refund_no]
            return ChannelResult(ResultStatus.SUCCESS, amount=amount, channel_refund_no=f"C{refund_no}")
        if state == "FAILED":
            return ChannelResult(ResultStatus.FAIL, code="REFUND_FAILED")
        return ChannelResult(ResultStatus.WAITING, channel_refund_no=f"C{refund_no}")

    async def refund(self, req: RefundRequest) -> ChannelResult:
        if req.refund_no in self.truth:
            return self._answer(req.refund_no)
        outcome, self.next_outcome = self.next_outcome, "ok"  # a resend by the job simply works
        if outcome == "reject":
            return ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code="NOT_ALLOWED", message="refused")
        if outcome == "lost":
            return ChannelResult.unknown(ErrorClass.SERVER, "HTTP 502")
        if outcome == "connect":
            return ChannelResult.unknown(ErrorClass.CONNECT, "connection refused")
        if self._held(req.order_no) + req.amount > req.total_amount:
            self.overdrawn = True
            return ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code="EXCEEDS", message="over-refund")
        self.amounts[req.refund_no], self.order_of[req.refund_no] = req.amount, req.order_no
        if outcome.startswith("processing"):
            self.truth[req.refund_no] = "PROCESSING"
            self.settles_to[req.refund_no] = "DONE" if outcome == "processing_ok" else "FAILED"
            return self._answer(req.refund_no)
        self.truth[req.refund_no] = "DONE"
        if outcome == "timeout":
            return ChannelResult.unknown(ErrorClass.TIMEOUT, "ReadTimeout")
        return self._answer(req.refund_no)

    async def query_refund(self, ref: RefundRef) -> ChannelResult:
        if ref.refund_no not in self.truth:
            return ChannelResult(ResultStatus.WAITING)  # no such refund here (yet)
        if self.truth[ref.refund_no] == "PROCESSING":
            self.truth[ref.refund_no] = self.settles_to[ref.refund_no]
        return self._answer(ref.refund_no)


@pytest.fixture
def channel() -> ScriptedChannel:
    return ScriptedChannel()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def service(db: Database, channel: ScriptedChannel, clock: FrozenClock) -> PayService:
    deps = PayDeps(
        db=db, ids=Snowflake(901), channels=channel, merchants=None, clock=clock,  # type: ignore[arg-type]
        public_url="http://tomato.test",
    )  # fmt: skip
    return PayService(deps)


async def _new_order(db: Database, amount: int, now: datetime) -> str:
    order_no = f"P{uuid.uuid4().int % 10**18}"
    async with db.uow() as uow:
        uow.session.add(
            PayOrder(
                order_no=order_no, app_id=APP.app_id, mch_no=APP.mch_no, out_trade_no=order_no, request_hash="h",
                status="SUCCEEDED", paid_after_close=False, amount=amount, currency="CNY", subject="s",
                pay_method="ALIPAY_QR", channel="alipay", channel_account_id=ACCOUNT, channel_trade_no=f"T{order_no}",
                metadata_json="{}", refunded_amount=0, refund_status="NONE", refund_reserved=0, refund_count=0,
                expire_at=now, paid_at=now, query_count=0, version=1, created_at=now, updated_at=now,
            )
        )  # fmt: skip
        await uow.commit()
    return order_no


async def _books(db: Database, order_no: str) -> tuple[dict[str, Any], dict[str, str], dict[str, int]]:
    """(order row, refund_no → status, refund_no → amount) as the database holds them now."""
    order_q = text("SELECT amount, refund_reserved, refunded_amount, refund_status FROM pay_orders WHERE order_no = :o")
    refunds_q = text("SELECT refund_no, status, amount FROM refunds WHERE order_no = :o")
    async with db.engine.connect() as conn:
        order = (await conn.execute(order_q, {"o": order_no})).one()._asdict()
        rows = (await conn.execute(refunds_q, {"o": order_no})).all()
    return order, {r.refund_no: r.status for r in rows}, {r.refund_no: int(r.amount) for r in rows}


def _check_invariants(order: dict[str, Any], status: dict[str, str], amounts: dict[str, int],
                      channel: ScriptedChannel) -> None:  # fmt: skip
    held = sum(amounts[r] for r, s in status.items() if s in ("PENDING", "SUCCEEDED"))
    succeeded = sum(amounts[r] for r, s in status.items() if s == "SUCCEEDED")
    assert held <= order["amount"]
    assert order["refund_reserved"] == held
    assert order["refunded_amount"] == succeeded
    expected_status = "NONE" if succeeded == 0 else "FULL" if succeeded == order["amount"] else "PARTIAL"
    assert order["refund_status"] == expected_status
    assert not channel.overdrawn
    for refund_no, s in status.items():
        truth = channel.truth.get(refund_no)
        if s == "SUCCEEDED":
            assert truth == "DONE", refund_no
        if s == "FAILED":
            assert truth in (None, "FAILED"), refund_no  # never FAILED once money moved


async def _events(db: Database, refund_no: str) -> dict[str, int]:
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT event_type, count(*) FROM outbox_events WHERE aggregate_id = :a GROUP BY event_type"),
                {"a": refund_no},
            )
        ).all()
    return {str(t): int(n) for t, n in rows}


refund_op = st.tuples(st.just("refund"), st.integers(1, 1000), st.sampled_from(OUTCOMES))
retry_op = st.tuples(st.just("retry"), st.integers(0, 50), st.booleans())
notify_op = st.tuples(st.just("notify"), st.integers(0, 50), st.integers(1, 3))
job_op = st.tuples(st.just("job"))
ops = st.lists(st.one_of(refund_op, refund_op, retry_op, notify_op, job_op), min_size=1, max_size=14)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(order_amount=st.integers(1, 1000), steps=ops)
async def test_refund_arithmetic_holds_under_any_sequence(
    db: Database, service: PayService, channel: ScriptedChannel, clock: FrozenClock,
    order_amount: int, steps: list[tuple[Any, ...]],
) -> None:  # fmt: skip
    order_no = await _new_order(db, order_amount, clock.now())
    prefix = uuid.uuid4().hex[:8]
    created: list[RefundCreate] = []
    for n, step in enumerate(steps):
        _, before_status, before_amounts = await _books(db, order_no)
        held = sum(before_amounts[r] for r, s in before_status.items() if s in ("PENDING", "SUCCEEDED"))
        if step[0] == "refund":
            _, amount, outcome = step
            cmd = RefundCreate(order_no=order_no, out_refund_no=f"{prefix}-{n}", amount=amount)
            channel.next_outcome = outcome
            if amount > order_amount - held:
                with pytest.raises(RefundAmountExceeded):
                    await service.create_refund(APP, cmd)
                channel.next_outcome = "ok"
                continue
            view, was_created = await service.create_refund(APP, cmd)
            assert was_created
            created.append(cmd)
            expected = {"ok": "SUCCEEDED", "reject": "FAILED"}.get(outcome, "PENDING")
            assert view.status == expected, (outcome, view)
        elif step[0] == "retry" and created:
            cmd = created[step[1] % len(created)]
            if step[2]:
                view, was_created = await service.create_refund(APP, cmd)
                assert not was_created and view.out_refund_no == cmd.out_refund_no
            else:
                with pytest.raises(OutRefundNoConflict):
                    await service.create_refund(APP, cmd.model_copy(update={"amount": cmd.amount + 1}))
        elif step[0] == "notify" and created:
            found = await service.find_refund(APP.app_id, created[step[1] % len(created)].out_refund_no)
            truth = channel.truth.get(found.refund_no)
            if truth in ("DONE", "FAILED"):
                notify = ChannelNotify(
                    kind="refund", status=ResultStatus.SUCCESS if truth == "DONE" else ResultStatus.FAIL,
                    order_no=order_no, refund_no=found.refund_no, amount=found.amount,
                )  # fmt: skip
                outcomes = [await service.apply_notify(ACCOUNT, notify) for _ in range(step[2])]
                assert outcomes.count(Outcome.APPLIED) <= 1 and Outcome.REJECTED not in outcomes
        elif step[0] == "job":
            clock.advance(timedelta(minutes=31))
            await service.query_pending_refunds()
        _check_invariants(*await _books(db, order_no), channel)

    for _ in range(4):  # at most: query → resend → query settles a slow refund
        clock.advance(timedelta(minutes=31))
        await service.query_pending_refunds()
    order, status, amounts = await _books(db, order_no)
    _check_invariants(order, status, amounts, channel)
    for refund_no, s in status.items():
        assert s in ("SUCCEEDED", "FAILED"), (refund_no, s, channel.truth.get(refund_no))
        assert (s == "SUCCEEDED") == (channel.truth.get(refund_no) == "DONE")
        expected_events = {"refund.succeeded": 1} if s == "SUCCEEDED" else {"refund.failed": 1}
        assert await _events(db, refund_no) == expected_events
