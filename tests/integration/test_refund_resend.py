"""Issue 15 item 5: a resent refund is failed only by an answer that says the refund cannot exist or be made.

The first request's answer was lost (a 5xx here), so whether the channel made the refund is unknown; the job's
query finds nothing final and sends the request again under the same refund number. A signed refusal of that
resend which only says "not now" (WeChat's 429 FREQUENCY_LIMITED) leaves the refund PENDING for the next query;
a refusal that says it cannot be made (WeChat's NOT_ENOUGH) fails it and frees its amount.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.fixtures.pay_stack import PayStack
from tests.integration.test_refunds import events, get_order, paid_order, refund, wait_for
from tomato.channel.sandbox import wechat_simulator
from tomato.channel.sandbox.wechat import WxError


async def pending_refund(pay: PayStack, amount: int = 400) -> tuple[dict[str, Any], dict[str, Any]]:
    """A paid WeChat order and a refund whose request got a 5xx: PENDING, never acknowledged, not made."""
    order = await paid_order(pay, 1000, pay_method="WECHAT_NATIVE")
    await pay.faults(channel="wechat", error_rate=1.0)
    r = await refund(pay, order, amount, "rs-1")
    await pay.faults(channel="wechat", error_rate=0.0)
    assert r.status_code == 201 and r.json()["status"] == "PENDING", r.text
    return order, r.json()


def refuse_refunds(monkeypatch: pytest.MonkeyPatch, pay: PayStack, status: int, code: str) -> Callable[[], int]:
    """Makes the simulated WeChat answer refund requests with a signed `status`/`code` error; returns a counter."""
    sim = wechat_simulator(pay.sandbox)
    seen = [0]

    def refuse(call: Any) -> Any:
        seen[0] += 1
        raise WxError(status, code, "sandbox: refused by the test")

    monkeypatch.setattr(sim, "_refund", refuse)
    return lambda: seen[0]


async def get_refund(pay: PayStack, refund_no: str) -> dict[str, Any]:
    return (await pay.client.request("GET", f"/v1/refunds/{refund_no}")).json()  # type: ignore[no-any-return]


def advance(pay: PayStack, seconds: int) -> None:
    pay.clock.advance(timedelta(seconds=seconds))
    pay.client.clock_offset += seconds


async def test_a_rate_limited_resend_stays_pending_and_a_later_round_settles_it(
    pay: PayStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    order, pending = await pending_refund(pay)
    resends = refuse_refunds(monkeypatch, pay, 429, "FREQUENCY_LIMITED")
    advance(pay, 31)
    assert await pay.c.pay.query_pending_refunds() == 1
    assert resends() == 1  # the query found nothing, so the request went again and was throttled
    still = await get_refund(pay, pending["refund_no"])
    assert still["status"] == "PENDING" and still["failure_reason"] is None
    assert await events(pay, pending["refund_no"], "refund.failed") == 0
    over = await refund(pay, order, 601, "rs-2")  # its amount stays held
    assert over.status_code == 409 and over.json()["error"]["code"] == "REFUND_AMOUNT_EXCEEDED"

    monkeypatch.undo()  # the channel takes requests again: the next round sends it and it goes through
    advance(pay, 60)
    assert await pay.c.pay.query_pending_refunds() == 1

    async def succeeded() -> bool:
        return (await get_refund(pay, pending["refund_no"]))["status"] == "SUCCEEDED"

    await wait_for(succeeded)
    got = await get_order(pay, order["order_no"])
    assert (got["refunded_amount"], got["refund_status"]) == (400, "PARTIAL")
    assert await events(pay, pending["refund_no"], "refund.succeeded") == 1
    assert await events(pay, pending["refund_no"], "refund.failed") == 0


async def test_a_resend_refused_for_good_fails_the_refund(pay: PayStack, monkeypatch: pytest.MonkeyPatch) -> None:
    order, pending = await pending_refund(pay)
    resends = refuse_refunds(monkeypatch, pay, 403, "NOT_ENOUGH")
    advance(pay, 31)
    assert await pay.c.pay.query_pending_refunds() == 1
    assert resends() == 1
    failed = await get_refund(pay, pending["refund_no"])
    assert failed["status"] == "FAILED" and "NOT_ENOUGH" in failed["failure_reason"]
    assert await events(pay, pending["refund_no"], "refund.failed") == 1
    monkeypatch.undo()
    again = await refund(pay, order, 1000, "rs-3")  # its amount is free again
    assert again.status_code == 201, again.text
