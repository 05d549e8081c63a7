"""The chaos run's verdict: after the drain, proves from the run's own records, the database, the channel's statement
and the webhook receiver that nothing was lost or doubled.

`collect()` gathers a `RunState` (plain data, JSON-able); `check()` is a pure function of it, so a unit test can
damage a finished run's state one way at a time and see each damage reported.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

WEBHOOK_TYPES = {"pay.succeeded", "pay.failed", "pay.closed", "refund.succeeded", "refund.failed", "payout.succeeded",
                 "payout.failed"}  # fmt: skip


@dataclass
class RunState:
    sim_paid: dict[str, int] = field(default_factory=dict)  # order_no → amount the payer paid (simulator's 200)
    channel_payments: dict[str, int] = field(default_factory=dict)  # order_no → amount on the channels' statements
    channel_refunds: dict[str, int] = field(default_factory=dict)  # refund_no → amount on the channels' statements
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # order_no → {status, amount}
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)  # refund_no → {order_no, amount, status}
    events: list[dict[str, str]] = field(default_factory=list)  # {id, type, ref}: ref = order/refund/payout no
    delivered: dict[str, list[str]] = field(default_factory=dict)  # event id → distinct body hashes received
    journals: list[dict[str, Any]] = field(default_factory=list)  # {kind, order_no, refund_no, payout_no}
    ledger_violations: list[str] = field(default_factory=list)  # `tomato ledger check` output, one per violation
    payouts: dict[str, dict[str, Any]] = field(default_factory=dict)  # payout_no → {status, amount}
    bank_payouts: dict[str, dict[str, Any]] = field(default_factory=dict)  # payout_no → the bank's {status, amount}
    recon: dict[str, str] = field(default_factory=dict)  # channel account id → batch status of the day
    keys: dict[str, list[str]] = field(default_factory=dict)  # idempotency key → resource ids its answers named

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunState:
        return cls(**json.loads(text))


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    lost: int = 0
    doubled: int = 0
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lose(self, text: str) -> None:
        self.lost += 1
        self.problems.append(f"lost: {text}")

    def double(self, text: str) -> None:
        self.doubled += 1
        self.problems.append(f"doubled: {text}")


def check(s: RunState) -> Verdict:
    v = Verdict()
    _payments(s, v)
    _deliveries(s, v)
    _refunds(s, v)
    _ledger(s, v)
    for payout_no, p in sorted(s.payouts.items()):
        if p["status"] not in ("SUCCEEDED", "FAILED"):
            v.problems.append(f"payout {payout_no} not final: {p['status']}")
    _bank(s, v)
    for account, status in sorted(s.recon.items()):
        if status != "MATCHED":
            v.problems.append(f"reconciliation of account {account}: {status}")
    for key, ids in sorted(s.keys.items()):
        if len(set(ids)) != 1:
            v.double(f"Idempotency-Key {key} answered with {sorted(set(ids))}")
    v.checked = {"paid orders": len(set(s.sim_paid) | set(s.channel_payments)), "events": len(s.events),
                 "refunds": len(s.refunds), "payouts": len(s.payouts), "idempotency keys": len(s.keys)}  # fmt: skip
    return v


def _payments(s: RunState, v: Verdict) -> None:
    succeeded_events = Counter(e["ref"] for e in s.events if e["type"] == "pay.succeeded")
    paid = {**s.channel_payments, **s.sim_paid}
    for order_no, amount in sorted(paid.items()):
        order = s.orders.get(order_no)
        if order is None or order["status"] != "SUCCEEDED":
            v.lose(f"order {order_no} paid at the channel is {order['status'] if order else 'missing'} here")
            continue
        if order["amount"] != amount:
            v.problems.append(f"order {order_no}: amount {order['amount']} here, {amount} at the channel")
        n = succeeded_events[order_no]
        if n == 0:
            v.lose(f"order {order_no} has no pay.succeeded event")
        elif n > 1:
            v.double(f"order {order_no} has {n} pay.succeeded events")
    for order_no, order in sorted(s.orders.items()):
        if order["status"] == "SUCCEEDED" and order_no not in paid:
            v.double(f"order {order_no} SUCCEEDED here but the channel never took the payment")


def _bank(s: RunState, v: Verdict) -> None:
    """A payout SUCCEEDED here was paid by the bank, for the same amount; one FAILED here was not paid there."""
    for payout_no, p in sorted(s.payouts.items()):
        bank = s.bank_payouts.get(payout_no, {"status": "NOT_FOUND", "amount": None})
        if p["status"] == "SUCCEEDED" and (bank["status"] != "SUCCESS" or bank["amount"] not in (None, p["amount"])):
            v.double(f"payout {payout_no} SUCCEEDED here ({p['amount']}), at the bank {bank}")
        elif p["status"] == "FAILED" and bank["status"] == "SUCCESS":
            v.double(f"payout {payout_no} FAILED here (amount back in available) but the bank paid it")
        elif p["status"] == "FAILED" and bank["status"] not in ("FAIL", "NOT_FOUND"):
            v.problems.append(f"payout {payout_no} FAILED here, at the bank still {bank['status']}")


def _deliveries(s: RunState, v: Verdict) -> None:
    for e in s.events:
        if e["type"] in WEBHOOK_TYPES and not s.delivered.get(e["id"]):
            v.lose(f"event {e['id']} ({e['type']} {e['ref']}) never reached the receiver")
    for event_id, bodies in sorted(s.delivered.items()):
        if len(set(bodies)) > 1:
            v.double(f"event {event_id} delivered with {len(set(bodies))} different bodies")


def _refunds(s: RunState, v: Verdict) -> None:
    per_order: Counter[str] = Counter()
    for refund_no, r in sorted(s.refunds.items()):
        if r["status"] in ("PENDING", "SUCCEEDED"):
            per_order[r["order_no"]] += r["amount"]
        if r["status"] == "PENDING":
            v.problems.append(f"refund {refund_no} still PENDING after the drain")
        if r["status"] == "SUCCEEDED" and s.channel_refunds.get(refund_no) != r["amount"]:
            v.double(f"refund {refund_no} SUCCEEDED here ({r['amount']}), the channel has "
                     f"{s.channel_refunds.get(refund_no)}")  # fmt: skip
    for refund_no, amount in sorted(s.channel_refunds.items()):
        ours = s.refunds.get(refund_no)
        if ours is None or ours["status"] != "SUCCEEDED":
            here = ours["status"] if ours else "missing"
            v.lose(f"refund {refund_no} of {amount} made at the channel is {here} here")
    for order_no, total in sorted(per_order.items()):
        order = s.orders.get(order_no)
        if order is None or total > order["amount"]:
            v.double(f"order {order_no}: refunds {total} exceed the payment {order['amount'] if order else None}")


def _ledger(s: RunState, v: Verdict) -> None:
    # a service-provider payment is booked as its shadow journal (provider_payment / provider_refund, docs/finance.md)
    payments = Counter(j["order_no"] for j in s.journals if j["kind"] in ("payment", "provider_payment"))
    refunds = Counter(j["refund_no"] for j in s.journals if j["kind"] in ("refund", "provider_refund"))
    for order_no, order in sorted(s.orders.items()):
        n = payments[order_no]
        if order["status"] == "SUCCEEDED" and n != 1:
            (v.double if n > 1 else v.lose)(f"order {order_no} booked {n} times in the ledger")
        elif order["status"] != "SUCCEEDED" and n:
            v.double(f"order {order_no} ({order['status']}) booked as a payment")
    for refund_no, r in sorted(s.refunds.items()):
        n = refunds[refund_no]
        if r["status"] == "SUCCEEDED" and n != 1:
            (v.double if n > 1 else v.lose)(f"refund {refund_no} booked {n} times in the ledger")
    v.problems.extend(f"ledger check: {line}" for line in s.ledger_violations)


async def collect(db_url: str, sim_paid: dict[str, int], delivered: dict[str, set[str]], keys: dict[str, set[str]],
                  ledger_violations: list[str], recon: dict[str, str]) -> RunState:  # fmt: skip
    """Reads the run's database (directly, not through the chaos proxies) into a RunState."""
    import asyncpg

    conn = await asyncpg.connect(db_url)
    try:
        s = RunState(sim_paid=dict(sim_paid), ledger_violations=list(ledger_violations), recon=dict(recon))
        s.delivered = {k: sorted(b) for k, b in delivered.items()}
        s.keys = {k: sorted(ids) for k, ids in keys.items()}
        for row in await conn.fetch("SELECT order_no, status, amount FROM pay_orders"):
            s.orders[row["order_no"]] = {"status": row["status"], "amount": row["amount"]}
        for row in await conn.fetch("SELECT refund_no, order_no, amount, status FROM refunds"):
            s.refunds[row["refund_no"]] = {"order_no": row["order_no"], "amount": row["amount"],
                                           "status": row["status"]}  # fmt: skip
        for row in await conn.fetch("SELECT id, event_type, payload FROM outbox_events WHERE app_id IS NOT NULL"):
            data = json.loads(row["payload"]).get("data", {})
            ref = data.get("refund_no") or data.get("payout_no") or data.get("order_no") or ""
            s.events.append({"id": row["id"], "type": row["event_type"], "ref": str(ref)})
        for row in await conn.fetch("SELECT kind, order_no, refund_no, payout_no FROM ledger_journals"):
            s.journals.append(dict(row))
        for row in await conn.fetch("SELECT payout_no, status, amount FROM payouts"):
            s.payouts[row["payout_no"]] = {"status": row["status"], "amount": row["amount"]}
        for row in await conn.fetch("SELECT kind, ref, amount, status FROM recon_lines"):
            target = s.channel_payments if row["kind"] == "PAYMENT" else s.channel_refunds
            target[row["ref"]] = row["amount"]
        return s
    finally:
        await conn.close()


async def bank_view(env: dict[str, str], db_url: str) -> dict[str, dict[str, Any]]:
    """Every payout as the bank answers its query (the bank's own query API, through the product's bank adapter
    with the account's stored keys): payout_no → {status: SUCCESS | FAIL | WAITING | UNKNOWN | NOT_FOUND, amount}."""
    import asyncpg

    from tomato.bootstrap import bootstrap
    from tomato.channel.protocol import PayoutRef
    from tomato.core.settings import load_settings

    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT payout_no, created_at, amount, channel_account_id FROM payouts")
    finally:
        await conn.close()
    settings = load_settings(database_url=db_url.replace("postgresql://", "postgresql+asyncpg://", 1),
                             secret_keys=env["TOMATO_SECRET_KEYS"], redis_url=None, amqp_url=None,
                             data_dir=env["TOMATO_DATA_DIR"])  # fmt: skip
    c = await bootstrap(settings)
    out: dict[str, dict[str, Any]] = {}
    try:
        for row in rows:
            adapter = await c.channels.payout_adapter(row["channel_account_id"])
            result = await adapter.query_payout(PayoutRef(row["payout_no"], row["created_at"], row["amount"]))
            status = "NOT_FOUND" if result.status == "WAITING" and result.code == "34" else str(result.status)
            out[row["payout_no"]] = {"status": status, "amount": result.amount, "code": result.code}
    finally:
        await c.aclose()
    return out
