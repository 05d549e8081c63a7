"""The statement of a service-provider account: every sub-merchant's bill for the day, combined into one file.

A provider account has no bill of its own for its sub-merchants' trades: each sub-merchant's is downloaded with its
identity (`download_statement(day, sub)`) and the bills are combined into the one file kept for (account, day).
Alipay: one zip holding each bill's members under `<auth_app_id>/`, read by the parser detail file by detail file.
A sub-merchant with no bill for the day (Alipay `isp.bill_not_exist`) contributes nothing; when none has one, the
provider's day had no trade: `NO_STATEMENT_EXIST`, which reconciliation reads as an empty statement.
"""

from __future__ import annotations

import io
import re
import shutil
import zipfile
import zlib
from collections.abc import Sequence
from datetime import date

from tomato.channel.protocol import (
    ChannelAdapter,
    ChannelResult,
    ErrorClass,
    ResultStatus,
    StatementUnavailable,
    SubMerchant,
)
from tomato.reconciliation.parsers.alipay import member_name

NO_BILL = frozenset({"isp.bill_not_exist"})  # the sub-merchant has no bill for the day
NO_TRADES = "NO_STATEMENT_EXIST"  # the code reconciliation reads as "no trade that day: an empty statement"
_UNSAFE = re.compile(r"[^0-9A-Za-z_-]")


def sub_name(sub: SubMerchant, index: int) -> str:
    """The folder of a sub-merchant's bill in the combined file: its id, filename-safe, unique by position."""
    ident = _UNSAFE.sub("_", sub.notify_id or "")[:64]
    return f"{index:03d}-{ident}" if ident else f"{index:03d}"


async def combined_statement(adapter: ChannelAdapter, day: date, subs: Sequence[SubMerchant]) -> bytes:
    """Download every sub-merchant's bill for `day` and combine them; `StatementUnavailable` as the adapter raises
    it, except a sub-merchant's "no bill", which is skipped."""
    ordered = sorted(subs, key=lambda s: s.notify_id or "")
    parts: list[tuple[str, bytes]] = []
    refusal: StatementUnavailable | None = None
    for index, sub in enumerate(ordered):
        try:
            parts.append((sub_name(sub, index), await adapter.download_statement(day, sub)))
        except StatementUnavailable as exc:
            if exc.result.code not in NO_BILL:
                raise
            refusal = exc
    if not parts:
        assert refusal is not None  # subs is never empty here
        empty = ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code=NO_TRADES, message="no sub-merchant bill")
        raise StatementUnavailable(empty, adapter.channel) from refusal
    return combine(adapter.channel, parts)


def combine(channel: str, parts: Sequence[tuple[str, bytes]]) -> bytes:
    """One file of `(folder, bill)` parts in `channel`'s statement format; ValueError for a channel without one."""
    if channel == "alipay":
        return _alipay(parts)
    raise ValueError(f"no combined statement format for channel {channel!r}")


def _alipay(parts: Sequence[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for folder, data in parts:
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as bill:
                    for info in bill.infolist():
                        target = zipfile.ZipInfo(f"{folder}/{member_name(info)}", date_time=info.date_time)
                        target.compress_type = zipfile.ZIP_DEFLATED
                        with bill.open(info) as src, out.open(target, "w") as dst:
                            shutil.copyfileobj(src, dst, 1024 * 1024)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                result = ChannelResult.unknown(ErrorClass.MALFORMED, f"bill of {folder} is not a zip: {exc}")
                raise StatementUnavailable(result, "alipay") from None
    return buffer.getvalue()
