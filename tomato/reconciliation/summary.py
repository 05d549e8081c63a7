"""The summary of one batch as CSV (UTF-8 with a BOM, so Excel opens it as UTF-8): counts and amounts on each side
(payments, refunds, fees), matched, each discrepancy type, the status, then one row per discrepancy."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from tomato.core.money import fen_to_yuan
from tomato.reconciliation.models import ReconBatch, ReconDiscrepancy

_SIDES = (("channel", "channel"), ("local", "local"))


def summary_csv(
    b: ReconBatch, totals: dict[str, Any], counts: dict[str, Any], items: Sequence[ReconDiscrepancy]
) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["channel_account_id", b.channel_account_id])
    w.writerow(["date", b.business_date])
    w.writerow(["status", b.status])
    if b.error:
        w.writerow(["error", b.error])
    w.writerow([])
    w.writerow(["side", "pay_count", "pay_amount", "refund_count", "refund_amount", "pay_fee", "refund_fee_returned"])
    for label, side in _SIDES:
        w.writerow([
            label,
            totals.get(f"{side}_pay_count", 0),
            fen_to_yuan(int(totals.get(f"{side}_pay_amount", 0))),
            totals.get(f"{side}_refund_count", 0),
            fen_to_yuan(int(totals.get(f"{side}_refund_amount", 0))),
            fen_to_yuan(int(totals.get(f"{side}_pay_fee", 0))),
            fen_to_yuan(int(totals.get(f"{side}_refund_fee", 0))),
        ])  # fmt: skip
    w.writerow([])
    w.writerow(["count", "value"])
    for key, value in counts.items():
        w.writerow([key, value])
    w.writerow([])
    w.writerow(["discrepancy_id", "type", "status", "order_no", "refund_no", "channel_trade_no", "local_amount",
                "channel_amount", "local_fee", "channel_fee", "resolution", "note", "by"])  # fmt: skip
    for d in items:
        w.writerow([d.id, d.type, d.status, d.order_no or "", d.refund_no or "", d.channel_trade_no or "",
                    _yuan(d.local_amount), _yuan(d.channel_amount), _yuan(d.local_fee), _yuan(d.channel_fee),
                    d.resolution_action or "", _cell(d.resolution_note), _cell(d.resolved_by)])  # fmt: skip
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def _yuan(fen: int | None) -> str:
    return "" if fen is None else fen_to_yuan(fen)


def _cell(text: str | None) -> str:
    """Text a person wrote: never read by a spreadsheet as a formula."""
    if not text:
        return ""
    return "'" + text if text[0] in "=+-@\t\r" else text
