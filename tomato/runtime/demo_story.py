"""The steps of `tomato demo`'s story, each driven over HTTP exactly as a merchant, a payer (the simulator's payer
API) and finance staff would (docs/api.md), each ending in a one-line result or a `StepFailed` saying why.

Every wait is on a condition polled against a deadline: the figures come from the API's own answers (the fees the
platform charged, the balance it reports), never from constants the story assumes.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from tomato.account.check import check_ledger
from tomato.core.clock import business_date
from tomato.runtime.demo_client import SignedClient, WebhookReceiver
from tomato.runtime.demo_stack import DemoStack

T = TypeVar("T")
WAIT_S = 20.0  # docs/api.md promises seconds for each of these; a stack that needs more than this is broken
POLL_S = 0.05
SETTLE_AHEAD_DAYS = 15  # a settlement run this far ahead covers T+1 across any run of holidays
PAYOUT_ACCOUNT = {"name": "Demo Merchant Ltd", "number": "6222020200112233445", "bank": "ICBC"}


@dataclass(frozen=True)
class Purchase:
    pay_method: str
    channel: str
    amount: int
    subject: str


PURCHASES = (
    Purchase("ALIPAY_QR", "alipay", 12_800, "Pour-over coffee kit"),
    Purchase("WECHAT_NATIVE", "wechat", 8_800, "Oolong tea sampler"),
    Purchase("BANK_WEB", "bank", 100_000, "Espresso machine"),
)
REFUND_OF_FIRST = 3_000  # a partial refund of the Alipay order


class StepFailed(Exception):
    """The step's condition did not hold; the message says what was expected and what was seen."""


def yuan(fen: int) -> str:
    """1234567 → "¥12,345.67" (integer arithmetic only)."""
    whole, cents = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}¥{whole:,}.{cents:02d}"


async def until(probe: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = WAIT_S) -> T:
    """Polls `probe` until it returns something other than None; past the deadline the step fails naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        got = await probe()
        if got is not None:
            return got
        if loop.time() > deadline:
            raise StepFailed(f"{what} did not happen within {timeout_s:.0f} s")
        await asyncio.sleep(POLL_S)


@dataclass
class Story:
    stack: DemoStack
    merchant: SignedClient
    http: httpx.AsyncClient  # the gateway, for the admin API
    sandbox: httpx.AsyncClient  # the simulator's payer API
    receiver: WebhookReceiver
    tag: str = field(default_factory=lambda: secrets.token_hex(4).upper())
    orders: list[dict[str, Any]] = field(default_factory=list)
    balance: dict[str, int] = field(default_factory=dict)
    figures: list[tuple[str, int]] = field(default_factory=list)

    def _admin(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.stack.credentials.admin_tokens[role]}"}

    async def _status(self, path: str, wanted: str, passing: tuple[str, ...]) -> dict[str, Any] | None:
        got: dict[str, Any] = await self.merchant.call("GET", path)
        if got["status"] == wanted:
            return got
        if got["status"] not in passing:
            raise StepFailed(f"{path} became {got['status']}, not {wanted}")
        return None

    async def _balance(self) -> dict[str, int]:
        got = await self.merchant.call("GET", "/v1/balance")
        return {"pending": int(got["pending"]), "available": int(got["available"])}

    async def transactions(self) -> list[dict[str, Any]]:
        """Every balance transaction of the merchant (the demo merchant is new, so a few pages at most)."""
        rows: list[dict[str, Any]] = []
        path = "/v1/balance/transactions?limit=100"
        while True:
            page = await self.merchant.call("GET", path)
            rows += page["data"]
            if page["next_cursor"] is None:
                return rows
            path = f"/v1/balance/transactions?limit=100&cursor={quote(page['next_cursor'], safe='')}"

    async def create_orders(self) -> str:
        for n, p in enumerate(PURCHASES, 1):
            payload: dict[str, Any] = {"out_trade_no": f"DEMO-{self.tag}-{n}", "amount": p.amount, "currency": "CNY",
                                       "subject": p.subject, "pay_method": p.pay_method}  # fmt: skip
            if p.pay_method == "BANK_WEB":
                payload["return_url"] = "https://shop.example/thanks"
            order = await self.merchant.call("POST", "/v1/pay/orders", payload, expect=(201,))
            if (order["status"], order["channel"]) != ("PAYING", p.channel):
                raise StepFailed(f"{p.pay_method} order is {order['status']} on {order['channel']}, not PAYING on "
                                 f"{p.channel}")  # fmt: skip
            self.orders.append(order)
        return " · ".join(f"{o['pay_method']} {yuan(o['amount'])} {o['pay_data']['type']}" for o in self.orders)

    async def pay_orders(self) -> str:
        for order in self.orders:
            data = order["pay_data"]
            scan = {"content": data["value"]} if data["type"] == "qr_code" else {"order_no": order["order_no"]}
            r = await self.sandbox.post("/sandbox/scan", json={**scan, "result": "paid"})
            if r.status_code != 200 or r.json().get("status") != "PAID":
                raise StepFailed(f"the simulator did not pay {order['order_no']}: {r.status_code} {r.text[:200]}")
        for i, order in enumerate(self.orders):
            path = f"/v1/pay/orders/{order['order_no']}"
            self.orders[i] = await until(partial(self._status, path, "SUCCEEDED", ("PAYING",)), f"{path} SUCCEEDED")
        return f"{len(self.orders)}/{len(self.orders)} SUCCEEDED on " + ", ".join(o["channel"] for o in self.orders)

    async def webhooks(self) -> str:
        wanted = {o["order_no"] for o in self.orders}
        await self._webhooks("pay.succeeded", wanted)
        return f"{len(wanted)} pay.succeeded received, each signature verified with the app secret"

    async def _webhooks(self, type_: str, wanted: set[str]) -> None:
        if not await self.receiver.wait_until(lambda: wanted <= self.receiver.events(type_).keys(), WAIT_S):
            missing = wanted - self.receiver.events(type_).keys()
            raise StepFailed(f"no verified {type_} webhook for {', '.join(sorted(missing))} within {WAIT_S:.0f} s")
        if self.receiver.rejected:
            raise StepFailed(f"{self.receiver.rejected} webhook(s) failed signature verification")

    async def pending_balance(self) -> str:
        async def booked() -> dict[str, int] | None:
            payments = [t for t in await self.transactions() if t["type"] == "payment"]
            balance = await self._balance()
            net = sum(int(t["net"]) for t in payments)
            return balance if len(payments) == len(self.orders) and balance["pending"] == net else None

        self.balance = await until(booked, "the ledger booking the payments into pending")
        paid = sum(int(o["amount"]) for o in self.orders)
        return (f"pending {yuan(self.balance['pending'])} (paid {yuan(paid)} less fees "
                f"{yuan(paid - self.balance['pending'])}) · available {yuan(self.balance['available'])}")  # fmt: skip

    async def partial_refund(self) -> str:
        order = self.orders[0]
        body = {"order_no": order["order_no"], "out_refund_no": f"DEMO-{self.tag}-R1", "amount": REFUND_OF_FIRST,
                "reason": "one item returned"}  # fmt: skip
        refund = await self.merchant.call("POST", "/v1/refunds", body, expect=(201,))
        path = f"/v1/refunds/{refund['refund_no']}"
        await until(partial(self._status, path, "SUCCEEDED", ("PENDING",)), f"{path} SUCCEEDED")
        got = await self.merchant.call("GET", f"/v1/pay/orders/{order['order_no']}")
        if (got["refund_status"], got["refunded_amount"]) != ("PARTIAL", REFUND_OF_FIRST):
            raise StepFailed(f"order shows {got['refund_status']} {got['refunded_amount']}, not PARTIAL")
        await self._webhooks("refund.succeeded", {refund["refund_no"]})

        async def booked() -> dict[str, int] | None:
            rows = [t for t in await self.transactions() if t["refund_no"] == refund["refund_no"]]
            balance = await self._balance()
            return balance if rows and balance["pending"] == self.balance["pending"] + int(rows[0]["net"]) else None

        self.balance = await until(booked, "the ledger booking the refund")
        return (f"{yuan(REFUND_OF_FIRST)} of the {yuan(order['amount'])} {order['channel']} order SUCCEEDED, "
                f"order PARTIAL · refund.succeeded verified · pending {yuan(self.balance['pending'])}")  # fmt: skip

    async def settle(self) -> str:
        today = date.fromisoformat(business_date(self.stack.c.clock.now(), self.stack.c.settings.business_timezone))
        run_for = (today + timedelta(days=SETTLE_AHEAD_DAYS)).isoformat()
        r = await self.http.post("/admin/settlements/run", json={"date": run_for}, headers=self._admin("finance"))
        if r.status_code != 200:
            raise StepFailed(f"POST /admin/settlements/run answered {r.status_code}: {r.text[:200]}")
        before, after = self.balance, await self._balance()
        want = {"pending": 0, "available": before["available"] + before["pending"]}
        if after != want:
            raise StepFailed(f"balance after settlement is {after}, expected {want}")
        self.balance = after
        return f"run for {run_for} (ahead of T+1): {yuan(before['pending'])} pending → available"

    async def pay_out(self) -> str:
        amount = self.balance["available"] // 2 // 100 * 100  # half of it, in whole yuan
        body = {"out_payout_no": f"DEMO-{self.tag}-W1", "amount": amount, "bank_account": PAYOUT_ACCOUNT}
        payout = await self.merchant.call("POST", "/v1/payouts", body, expect=(201,))
        path = f"/v1/payouts/{payout['payout_no']}"
        await until(partial(self._status, path, "SUCCEEDED", ("PENDING",)), f"{path} SUCCEEDED")
        await self._webhooks("payout.succeeded", {payout["payout_no"]})
        after = await self._balance()
        want = {"pending": 0, "available": self.balance["available"] - amount}
        if after != want:
            raise StepFailed(f"balance after the payout is {after}, expected {want}")
        self.balance = after
        return f"{yuan(amount)} to the bank SUCCEEDED, payout.succeeded verified, available {yuan(after['available'])}"

    async def reconcile(self) -> str:
        tz = self.stack.c.settings.business_timezone
        days = sorted({business_date(datetime.fromisoformat(o["paid_at"]), tz) for o in self.orders})
        results = []
        for channel, account_id in self.stack.credentials.channel_accounts.items():
            for day in days:
                r = await self.http.post("/admin/reconciliation/run", json={"channel_account_id": account_id,
                                         "date": day}, headers=self._admin("finance"))  # fmt: skip
                if r.status_code != 200:
                    raise StepFailed(f"{channel} {day}: POST /admin/reconciliation/run answered {r.status_code}: "
                                     f"{r.text[:200]}")  # fmt: skip
                batch = r.json()
                counts = batch["counts"]
                if batch["status"] != "MATCHED" or batch["discrepancies"]:
                    found = {k: v for k, v in counts.items() if v and k.isupper()}
                    raise StepFailed(f"{channel} account {day} is {batch['status']} with {batch['discrepancies']} "
                                     f"discrepancies {found}")  # fmt: skip
                results.append(f"{channel} MATCHED {counts['matched']}/{counts['channel_rows']}")
        return " · ".join(results) + f" ({', '.join(days)})"

    async def ledger_check(self) -> str:
        c = self.stack.c
        report = await check_ledger(c.db, c.pay.succeeded_orders, c.clock.now(),
                                    pending_payouts=c.payouts.pending_by_merchant)  # fmt: skip
        if not report.ok:
            raise StepFailed(f"{len(report.violations)} violation(s), first: {report.violations[0]}")
        return "every journal balances, balances equal their lines, trial balance 0"

    async def summarize(self) -> str:
        """The money figures from the merchant's own transaction list, checked against the balance it reports."""
        rows = await self.transactions()

        def total(type_: str, key: str = "amount") -> int:
            return sum(int(t[key]) for t in rows if t["type"] == type_)

        paid, refunded, paid_out = total("payment"), -total("refund"), -total("payout")
        fees = total("payment", "fee") + total("refund", "fee")
        balance = await self._balance()
        self.figures = [
            ("paid", paid),
            ("fees (less the refund's share)", fees),
            ("refunded", refunded),
            ("settled to available", total("settlement")),
            ("paid out", paid_out),
            ("balance: pending", balance["pending"]),
            ("balance: available", balance["available"]),
        ]
        kept = paid - fees - refunded - paid_out
        if kept != balance["pending"] + balance["available"]:
            raise StepFailed(f"paid − fees − refunded − paid out = {kept} fen, but the balance holds "
                             f"{balance['pending'] + balance['available']} fen")  # fmt: skip
        return f"paid − fees − refunded − paid out = balance = {yuan(kept)}"
