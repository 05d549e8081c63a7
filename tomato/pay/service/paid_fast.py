"""The common payment report — a payable order paid in full through an account it was submitted to — in two
statements on PostgreSQL, straight on the pooled asyncpg connection.

Why: the general path (`confirm.apply_report`) makes about ten round trips through the ORM (order, attempts, fee
plan, account cost, account mode, BEGIN, the PAID compare-and-set, refresh, the outbox insert, COMMIT), and
SQLAlchemy's per-statement machinery costs several times the driver's own CPU. Here:

1. one SELECT reads the order, the channel of its first attempt on the reporting account, the merchant's fee plan
   and the account's cost rate and mode — the same reads as the general path, in one statement;
2. one statement makes the PAID compare-and-set and inserts the `pay.succeeded` outbox row (a data-modifying CTE:
   atomic as one statement, the row exists if and only if the order moved). The event's payload is built from the
   row read in 1 plus what the update sets; the update only applies when every payload column it does not set
   still holds the value read (pay_data, refunded_amount, refund_status, expire_at; the others never change), so
   the payload is exactly what a re-read after the update would give.

Anything else — SQLite, an order not CREATED/PAYING, another amount, an unknown order or account, a failed or
waiting report, a compare-and-set that found the order changed — returns None and the general path decides,
with its anomalies and logs. Nothing here weakens it: same guard states, same snapshot, same event, one transaction.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from tomato.channel.protocol import ResultStatus
from tomato.channel.schemas import SERVICE_PROVIDER_MODES
from tomato.core.outbox import event_values
from tomato.core.rawpg import raw_connection
from tomato.merchant.schemas import FeeTerms
from tomato.pay.events import PAY_SUCCEEDED
from tomato.pay.models import PayOrder
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.fees import payment_facts, snapshot_of
from tomato.pay.service.views import order_payload
from tomato.pay.states import OrderStatus

if TYPE_CHECKING:
    from tomato.pay.service.confirm import PaymentReport

# the order's columns the payload and the facts are made of (besides those the update sets)
_ORDER_COLUMNS = (
    "order_no", "app_id", "mch_no", "out_trade_no", "status", "amount", "currency", "subject", "body", "pay_method",
    "pay_data", "refunded_amount", "refund_status", "expire_at", "created_at", "metadata_json",
)  # fmt: skip
_PAYABLE = (OrderStatus.CREATED.value, OrderStatus.PAYING.value)

_READ = f"""
SELECT {", ".join("o." + c for c in _ORDER_COLUMNS)},
       (SELECT a.channel FROM pay_attempts a WHERE a.order_no = o.order_no AND a.channel_account_id = $2
        ORDER BY a.created_at LIMIT 1) AS attempt_channel,
       fp.id AS fee_plan_id, fp.rates AS fee_rates, fp.min_fee AS fee_min, fp.refund_fee AS fee_refund_rule,
       ca.cost_ppm AS account_cost_ppm, ca.mode AS account_mode
FROM pay_orders o
LEFT JOIN merchants m ON m.mch_no = o.mch_no
LEFT JOIN fee_plans fp ON fp.id = m.fee_plan_id
LEFT JOIN channel_accounts ca ON ca.id = $2
WHERE o.order_no = $1
"""

_SET = (
    "fee_ppm", "fee", "refund_fee_rule", "channel_cost_ppm", "channel_cost", "service_provider", "channel",
    "channel_account_id", "channel_trade_no", "paid_at", "updated_at",
)  # fmt: skip
_GUARD = ("pay_data", "refunded_amount", "refund_status", "expire_at")
_EVENT = ("id", "seq", "event_type", "aggregate_type", "aggregate_id", "app_id", "payload", "created_at", "facts")


def _write_sql() -> str:
    n = 1  # $1 is the order_no
    sets = []
    for col in _SET:
        n += 1
        sets.append(f"{col} = ${n}")
    guards = []
    for col in _GUARD:
        n += 1
        op = "IS NOT DISTINCT FROM" if col == "pay_data" else "="
        guards.append(f"{col} {op} ${n}")
    marks = []
    for _ in _EVENT:
        n += 1
        marks.append(f"${n}")
    payable = ", ".join(f"'{s}'" for s in _PAYABLE)
    return (
        f"WITH paid AS (UPDATE pay_orders SET status = '{OrderStatus.SUCCEEDED.value}', paid_after_close = false, "
        f"next_query_at = NULL, version = version + 1, {', '.join(sets)} "
        f"WHERE order_no = $1 AND status IN ({payable}) AND {' AND '.join(guards)} RETURNING order_no) "
        f"INSERT INTO outbox_events ({', '.join(_EVENT)}, published_at) SELECT {', '.join(marks)}, NULL FROM paid "
        "RETURNING id"
    )


_WRITE = _write_sql()


async def try_apply(deps: PayDeps, report: PaymentReport) -> bool:
    """True when this call made the order SUCCEEDED (with its outbox row); False: let the general path decide."""
    if report.status is not ResultStatus.SUCCESS or report.amount is None or deps.db.dialect != "postgresql":
        return False
    async with raw_connection(deps.db.engine, "the PAID compare-and-set of a notify") as raw:
        return await _apply(deps, report, raw)


async def _read(raw: Any, order_no: str, account_id: str) -> Any:
    return await raw.fetchrow(_READ, order_no, account_id)


async def _apply(deps: PayDeps, report: PaymentReport, raw: Any) -> bool:
    assert report.amount is not None
    found = await _read(raw, report.order_no, report.channel_account_id)
    if found is None or found["attempt_channel"] is None or found["account_mode"] is None:
        return False
    row = dict(found)
    if row["status"] not in _PAYABLE or row["amount"] != report.amount:
        return False
    terms = None
    if row["fee_plan_id"] is not None:
        terms = FeeTerms(row["fee_plan_id"], json.loads(row["fee_rates"]), row["fee_min"], row["fee_refund_rule"])
    now = deps.clock.now()
    values: dict[str, Any] = {
        **snapshot_of(
            row["amount"], row["pay_method"], terms, int(row["account_cost_ppm"] or 0),
            row["account_mode"] in SERVICE_PROVIDER_MODES,
        ),
        "channel": row["attempt_channel"],
        "channel_account_id": report.channel_account_id,
        "channel_trade_no": report.channel_trade_no,
        "paid_at": report.paid_at or now,
        "updated_at": now,
    }  # fmt: skip
    # the order as the update leaves it, as a plain object: the views read attributes only, no ORM instance needed
    order = cast(PayOrder, SimpleNamespace(**{c: row[c] for c in _ORDER_COLUMNS}, **values, paid_after_close=False))
    order.status = OrderStatus.SUCCEEDED.value
    event = event_values(
        deps.ids, event_type=PAY_SUCCEEDED, aggregate_type="pay_order", aggregate_id=order.order_no,
        data=order_payload(order), app_id=order.app_id, facts=payment_facts(deps, order),
    )  # fmt: skip
    args = [report.order_no, *(values[c] for c in _SET), *(row[c] for c in _GUARD), *(event[c] for c in _EVENT)]
    return await raw.fetchval(_WRITE, *args) is not None
